//! The network-partition lab itself, without brokers: nodes reach each other and the clients
//! reach every node; a cut node loses its peers but keeps its clients; healing restores it.

use std::net::TcpListener;
use std::time::Duration;

use strait_e2e::netns::{self, NetLab};
use strait_e2e::wait_until;

#[test]
fn lab_cuts_a_node_off_its_peers_only() {
    if !netns::required().unwrap_or_else(|reason| panic!("{reason}")) {
        return;
    }
    let lab = NetLab::create(&[1, 2, 3]).expect("create the lab");
    // A socket stays in the namespace it was made in, so the listener can live on this thread.
    let listener = lab
        .run_in_node(1, || TcpListener::bind((NetLab::addr(1), 0)))
        .expect("enter node 1")
        .expect("bind in node 1");
    let target = listener.local_addr().expect("listener address");
    assert!(lab.reachable(Some(2), target), "node 2 reaches node 1");
    assert!(lab.reachable(Some(3), target), "node 3 reaches node 1");
    assert!(lab.reachable(None, target), "clients reach node 1");
    assert!(
        !lab.in_clients(),
        "the test thread stays in its own namespace"
    );
    assert!(
        lab.run_in_clients(|| lab.in_clients())
            .expect("enter clients")
    );

    lab.cut(1).expect("cut node 1");
    assert!(!lab.reachable(Some(2), target), "node 2 is cut off node 1");
    assert!(!lab.reachable(Some(3), target), "node 3 is cut off node 1");
    assert!(lab.reachable(None, target), "clients still reach node 1");

    lab.heal(1).expect("heal node 1");
    wait_until(
        Duration::from_secs(10),
        "node 2 to reach node 1 again",
        || lab.reachable(Some(2), target),
    )
    .expect("healed");
}
