//! The configuration the operator renders for a broker pod is accepted by the real broker: the
//! `server.properties` of a Cluster plus the per-broker overrides (node id, rack, advertised
//! listeners) start a Strait broker process. Addresses are moved to 127.0.0.1 and free ports.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strait_crds::ClusterSpec;
use strait_operator::cluster::config::server_properties;

fn spec() -> ClusterSpec {
    serde_json::from_value(serde_json::json!({
        "replicas": 3,
        "zones": ["a", "b", "c"],
        "storage": {"size": "1Gi"},
        "config": {"num.partitions": "3", "log.retention.ms": "3600000"},
        "listeners": [{"name": "plain", "port": 9092, "type": "internal"}]
    }))
    .unwrap_or_else(|e| panic!("spec: {e}"))
}

#[test]
fn rendered_config_starts_a_broker() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let ports: Vec<u16> = (0..3)
        .map(|_| strait_e2e::free_port().unwrap_or_else(|e| panic!("port: {e}")))
        .collect();
    let data = dir.path().join("data");
    let properties = server_properties(&spec())
        .replace("0.0.0.0:9091", &format!("127.0.0.1:{}", ports[0]))
        .replace("0.0.0.0:9092", &format!("127.0.0.1:{}", ports[1]))
        .replace("0.0.0.0:9404", &format!("127.0.0.1:{}", ports[2]))
        .replace("/var/lib/strait/data", &data.to_string_lossy());
    assert!(!properties.contains("0.0.0.0"), "{properties}");
    let file = dir.path().join("server.properties");
    std::fs::write(&file, &properties).unwrap_or_else(|e| panic!("write: {e}"));
    let stderr_path = dir.path().join("stderr.log");
    let stderr = std::fs::File::create(&stderr_path).unwrap_or_else(|e| panic!("log: {e}"));
    let binary = strait_e2e::broker_binary().unwrap_or_else(|e| panic!("{e}"));
    // The same overrides a pod gets, with its ordinal (node id 1000, zone b) expanded.
    let mut child = Command::new(binary)
        .arg("--config")
        .arg(&file)
        .args(["--override", "node.id=1000", "--override", "broker.rack=b"])
        .arg("--override")
        .arg(format!(
            "advertised.listeners=REPLICATION://127.0.0.1:{},PLAIN://127.0.0.1:{}",
            ports[0], ports[1]
        ))
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = String::new();
    let ready = loop {
        log.clear();
        if let Ok(mut f) = std::fs::File::open(&stderr_path) {
            let _ = f.read_to_string(&mut log);
        }
        if log.contains("broker ready") {
            break true;
        }
        if matches!(child.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ready,
        "broker did not start with the rendered config:\n{properties}\n{log}"
    );
    assert!(log.contains("node_id=1000"), "{log}");
}
