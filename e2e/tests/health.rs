//! The broker's HTTP listener beyond /metrics: `/healthz` and `/ready` answer 200 on a running
//! broker (the operator's liveness and readiness probes) and unknown paths 404.

use std::net::SocketAddr;
use std::time::Duration;

use strait_e2e::{Broker, free_port, http};

const TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn healthz_and_ready_answer_on_the_metrics_listener() {
    let port = free_port().expect("port");
    let listener = format!("127.0.0.1:{port}");
    let mut broker = Broker::start(&[("metrics.listener", listener.as_str())]).expect("broker");
    let addr: SocketAddr = listener.parse().expect("addr");
    for path in ["/healthz", "/ready"] {
        let r = http::get(addr, path, TIMEOUT).expect("GET");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    assert_eq!(http::get(addr, "/nope", TIMEOUT).expect("GET").status, 404);
    broker.assert_alive().expect("broker alive");
}
