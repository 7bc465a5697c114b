//! kcat (Debian's kafkacat, librdkafka 2.0) against the broker started without a config file:
//! produce, consume and `-L` metadata.

use std::time::Duration;

use strait_e2e::Broker;
use strait_e2e::kcat::kcat;

fn start_without_config() -> Broker {
    // Only port, data dir and metrics listener, all through --override (the harness default).
    Broker::start(&[]).expect("start broker")
}

#[test]
fn kcat_produce_and_consume() {
    let broker = start_without_config();
    let bootstrap = broker.bootstrap();
    let lines: Vec<String> = (0..500).map(|i| format!("key{i}:value {i}")).collect();
    let input = lines.join("\n") + "\n";
    let produced = kcat(
        &[
            "-b",
            &bootstrap,
            "-P",
            "-t",
            "kcat-topic",
            "-p",
            "0",
            "-K:",
            "-X",
            "acks=all",
        ],
        input.as_bytes(),
        Duration::from_secs(60),
    );
    assert!(produced.status.success(), "kcat -P failed: {produced:?}");

    let consumed = kcat(
        &[
            "-b",
            &bootstrap,
            "-C",
            "-t",
            "kcat-topic",
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k|%s|%o\\n",
        ],
        b"",
        Duration::from_secs(60),
    );
    assert!(consumed.status.success(), "kcat -C failed: {consumed:?}");
    let stdout = String::from_utf8_lossy(&consumed.stdout);
    let got: Vec<&str> = stdout.lines().collect();
    assert_eq!(got.len(), 500, "consumed lines: {stdout}");
    for (i, line) in got.iter().enumerate() {
        assert_eq!(*line, format!("key{i}|value {i}|{i}"));
    }
}

#[test]
fn kcat_lists_metadata() {
    let broker = Broker::start(&[("num.partitions", "3")]).expect("start broker");
    let bootstrap = broker.bootstrap();
    // Metadata auto-creates the topic; kcat -L -t asks for it.
    let output = kcat(
        &["-b", &bootstrap, "-L", "-t", "listed-topic"],
        b"",
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "kcat -L failed: {output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(" 1 brokers:"), "broker count in: {stdout}");
    assert!(
        stdout.contains(&format!("at 127.0.0.1:{}", broker.port())),
        "advertised address in: {stdout}"
    );
    assert!(
        stdout.contains("topic \"listed-topic\" with 3 partitions"),
        "topic in: {stdout}"
    );
    for p in 0..3 {
        assert!(
            stdout.contains(&format!("partition {p}, leader")),
            "partition {p} in: {stdout}"
        );
    }
}
