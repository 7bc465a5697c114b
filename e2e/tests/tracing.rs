//! OpenTelemetry export: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, a real broker process exports one
//! span per Kafka request over OTLP/HTTP to a collector endpoint (here a minimal OTLP/HTTP
//! receiver on loopback that records what it is sent); without it, the broker says it is not
//! exporting and builds no exporter.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use strait_e2e::{broker_binary, free_port, wait_until};

/// (path, body) of every POST the receiver got.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// Accepts OTLP/HTTP export requests and answers each with an empty (valid) protobuf response.
fn otlp_receiver() -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
    let port = listener.local_addr().expect("addr").port();
    let received: Received = Arc::default();
    let sink = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let sink = sink.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut stream = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let mut length = 0usize;
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = header.trim();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    sink.lock().expect("lock").push((path, body));
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
                    );
                }
            });
        }
    });
    (port, received)
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_broker(port: u16, dir: &std::path::Path, otlp: Option<u16>) -> (Proc, std::path::PathBuf) {
    let log = dir.join("stderr.log");
    let mut cmd = Command::new(broker_binary().expect("broker binary"));
    cmd.arg("--override")
        .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
        .arg("--override")
        .arg(format!("log.dirs={}", dir.join("data").display()))
        .arg("--override")
        .arg("metrics.listener=")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    if let Some(p) = otlp {
        cmd.env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{p}"),
        )
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    }
    let child = Proc(cmd.spawn().expect("spawn broker"));
    wait_until(Duration::from_secs(30), "broker ready", || {
        std::fs::read_to_string(&log).is_ok_and(|s| s.contains("broker ready"))
    })
    .expect("broker did not start");
    (child, log)
}

fn produce(port: u16, n: usize) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .create()
        .expect("producer");
    for i in 0..n {
        let payload = format!("span-{i}");
        producer
            .send(BaseRecord::<(), _>::to("traced").payload(&payload))
            .expect("enqueue");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

#[test]
fn request_spans_are_exported_over_otlp_when_configured() {
    let (otlp_port, received) = otlp_receiver();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().expect("port");
    let (_broker, log) = start_broker(port, dir.path(), Some(otlp_port));
    assert!(
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("exporting request spans over OTLP"),
        "the broker should announce OTLP export"
    );
    produce(port, 10);
    // Spans are batched and sent within OTEL_BSP_SCHEDULE_DELAY.
    wait_until(Duration::from_secs(30), "Produce span exported", || {
        received.lock().expect("lock").iter().any(|(path, body)| {
            path == "/v1/traces"
                && body.windows(7).any(|w| w == b"Produce")
                && body.windows(13).any(|w| w == b"strait-broker")
        })
    })
    .expect("no Produce request span reached the OTLP receiver");
}

#[test]
fn nothing_is_exported_without_an_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().expect("port");
    let (_broker, log) = start_broker(port, dir.path(), None);
    produce(port, 3);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !text.contains("exporting request spans over OTLP"),
        "{text}"
    );
    assert!(!text.contains("OTLP trace export disabled"), "{text}");
}
