//! The broker's command line: `--config` files with Kafka key names, invalid values rejected with
//! the key named, unknown keys only warned about.

use std::process::{Command, Stdio};
use std::time::Duration;

use strait_e2e::{Broker, BrokerOptions, broker_binary, topic_partitions, wait_for};

#[test]
fn config_file_is_read_and_unknown_keys_warned() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("server.properties");
    std::fs::write(
        &config,
        "# Kafka-style properties\nnum.partitions=4\nauto.create.topics.enable=true\nsome.unknown.key=1\n",
    )
    .expect("write config");
    let broker = Broker::start_with(BrokerOptions {
        config_file: Some(config),
        ..BrokerOptions::default()
    })
    .expect("start with config file");
    let partitions = wait_for(Duration::from_secs(10), "auto-created topic", || {
        topic_partitions(&broker.bootstrap(), "from-config").ok()
    })
    .expect("topic auto-created");
    assert_eq!(partitions, 4, "num.partitions from the file");
    assert!(
        broker.stderr().contains("some.unknown.key"),
        "unknown key warned about: {}",
        broker.stderr_tail()
    );
}

#[test]
fn invalid_value_exits_non_zero_naming_the_key() {
    let binary = broker_binary().expect("broker binary");
    let dir = tempfile::tempdir().expect("temp dir");
    let stderr_path = dir.path().join("stderr.log");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let mut child = Command::new(binary)
        .args(["--override", "listeners=PLAINTEXT://127.0.0.1:0"])
        .arg("--override")
        .arg(format!("log.dirs={}", dir.path().join("data").display()))
        .args(["--override", "metrics.listener="])
        .args(["--override", "num.partitions=not-a-number"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("run broker");
    let status = wait_for(
        Duration::from_secs(20),
        "broker to refuse the config",
        || child.try_wait().ok().flatten(),
    );
    if status.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let status = status.expect("broker exits on an invalid value");
    assert!(!status.success(), "must refuse an invalid value");
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(stderr.contains("num.partitions"), "key named in: {stderr}");
}
