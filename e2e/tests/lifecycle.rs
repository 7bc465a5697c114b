//! Cluster identity and lifecycle: every node of one cluster reports the same cluster id (the
//! one the metadata quorum holds), a node given another cluster's data dir refuses to start
//! naming both ids, SIGTERM always ends a node in bounded time even when it is the last one
//! (no controller left to talk to), and the next start of a cleanly stopped node skips recovery.
//! Covered both for a cluster started by hand with Kafka's keys and for `strait-broker dev`.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, DescribeClusterRequest, DescribeClusterResponse};
use strait_e2e::cluster::{Cluster, ClusterSpec};
use strait_e2e::wire::WireClient;
use strait_e2e::{broker_binary, free_port, http, wait_for, wait_until};

/// What a SIGTERM may take: the controlled shutdown gives up after a broker session timeout
/// (3 s in these tests) without a controller; the rest is flushing and closing.
const STOP_BOUND: Duration = Duration::from_secs(15);
const READY: Duration = Duration::from_secs(60);

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn meta_properties(log_dir: &Path) -> String {
    std::fs::read_to_string(log_dir.join("meta.properties")).expect("read meta.properties")
}

fn cluster_id_in(log_dir: &Path) -> String {
    meta_properties(log_dir)
        .lines()
        .find_map(|l| l.strip_prefix("cluster.id="))
        .expect("cluster.id in meta.properties")
        .to_string()
}

#[test]
fn one_cluster_id_a_foreign_data_dir_refused_and_bounded_sigterm_one_at_a_time() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::combined(&["a", "b", "c"])).expect("cluster");
    cluster
        .create_topic("lifecycle", 3, 3, &[("min.insync.replicas", "2")])
        .expect("topic");

    // One id, from every broker, in Metadata, DescribeCluster and on disk.
    let id = cluster.described_cluster_id(1).expect("describe cluster");
    assert_eq!(id.len(), 22, "a Kafka-format cluster id: {id}");
    for node in cluster.ids() {
        assert_eq!(
            cluster.described_cluster_id(node).unwrap(),
            id,
            "node {node}"
        );
        let metadata = cluster.metadata_from(node, Some(&[])).unwrap();
        assert_eq!(
            metadata.cluster_id.as_deref(),
            Some(id.as_str()),
            "node {node}"
        );
        assert_eq!(cluster_id_in(cluster.node(node).unwrap().log_dir()), id);
    }

    // Node 3 given a data dir that names another cluster: refused, naming both ids.
    let dir3 = cluster.node(3).unwrap().log_dir().to_path_buf();
    let status = cluster.terminate(3).expect("stop node 3");
    assert!(status.success(), "node 3 exit: {status}");
    let original = meta_properties(&dir3);
    let foreign = "Zm9yZWlnbi1jbHVzdGVyLWlk";
    std::fs::write(
        dir3.join("meta.properties"),
        original.replace(
            &format!("cluster.id={id}"),
            &format!("cluster.id={foreign}"),
        ),
    )
    .unwrap();
    cluster.restart(3).expect("spawn node 3");
    let refused = cluster.wait_ready(3, READY);
    assert!(
        refused.is_err(),
        "node 3 started on another cluster's data dir"
    );
    let stderr = cluster.node(3).unwrap().stderr();
    assert!(
        stderr.contains(foreign) && stderr.contains(&id) && stderr.contains("refusing"),
        "the refusal names both ids: {stderr}"
    );
    // Put the right volume back: the node joins with nothing lost.
    std::fs::write(dir3.join("meta.properties"), original).unwrap();
    cluster.restart(3).expect("spawn node 3");
    cluster.wait_ready(3, READY).expect("node 3 back");

    // SIGTERM one node at a time: each ends in bounded time with success, the last one too
    // (no controller is left to answer its controlled shutdown).
    for node in [1, 2, 3] {
        let began = Instant::now();
        let status = cluster.terminate(node).expect("terminate");
        let took = began.elapsed();
        assert!(status.success(), "node {node} exit: {status}");
        assert!(took < STOP_BOUND, "node {node} took {took:?} to stop");
    }

    // The next start of each needs no recovery scan, and the cluster keeps its id.
    for node in [1, 2, 3] {
        cluster.restart(node).expect("spawn");
    }
    cluster.wait_all_ready(READY).expect("all back");
    for node in [1, 2, 3] {
        let stderr = cluster.node(node).unwrap().stderr();
        assert!(
            stderr.contains("shut down cleanly; skipped recovery")
                && !stderr.contains("ran recovery"),
            "node {node} recovered after a clean stop: {stderr}"
        );
        assert_eq!(cluster.described_cluster_id(node).unwrap(), id);
    }
}

/// A base port whose `dev` ports (Kafka and controller: base..base+5; metrics: base+1000..+1002)
/// are all free on loopback.
fn dev_base_port() -> u16 {
    wait_for(Duration::from_secs(10), "free ports for dev", || {
        let base = free_port().ok()?;
        if base > 60_000 {
            return None;
        }
        let ports = (base..base + 6).chain(base + 1000..base + 1003);
        let held: Vec<TcpListener> = ports
            .map(|p| TcpListener::bind(("127.0.0.1", p)).ok())
            .collect::<Option<_>>()?;
        drop(held);
        Some(base)
    })
    .expect("a free port range")
}

fn described_id(addr: SocketAddr) -> Option<String> {
    let mut client = WireClient::connect(addr).ok()?;
    let response: DescribeClusterResponse = client
        .call(
            ApiKey::DescribeCluster,
            0,
            &DescribeClusterRequest::default(),
        )
        .ok()?;
    (response.error_code == 0).then(|| response.cluster_id.to_string())
}

struct Dev(Child);

impl Drop for Dev {
    fn drop(&mut self) {
        // Only if the test failed before stopping it: the launcher kills its own nodes.
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let _ = wait_for(Duration::from_secs(60), "dev to stop", || {
                self.0.try_wait().ok().flatten()
            });
        }
    }
}

#[test]
fn dev_nodes_share_one_cluster_id_and_ctrl_c_stops_them_in_bounded_time() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let base = dev_base_port();
    let mut dev = Dev(Command::new(broker_binary().unwrap())
        .args([
            "dev",
            "--brokers",
            "3",
            "--base-port",
            &base.to_string(),
            "--data-dir",
        ])
        .arg(data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dev"));
    let metrics = |i: u16| SocketAddr::from(([127, 0, 0, 1], base + 1000 + i));
    let kafka = |i: u16| SocketAddr::from(([127, 0, 0, 1], base + 2 * i));
    wait_until(READY, "every dev node ready", || {
        (0..3).all(|i| {
            http::get(metrics(i), "/ready", Duration::from_secs(2)).is_ok_and(|r| r.status == 200)
        })
    })
    .expect("dev nodes ready");
    let ids: Vec<String> = (0..3)
        .map(|i| described_id(kafka(i)).expect("DescribeCluster"))
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one cluster id: {ids:?}"
    );

    // Ctrl-C reaches the launcher (and, from a terminal, the whole process group): every node
    // stops, and the launcher returns, in bounded time.
    let began = Instant::now();
    let pid = dev.0.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let status = wait_for(Duration::from_secs(60), "dev to stop", || {
        dev.0.try_wait().ok().flatten()
    })
    .expect("dev stopped");
    assert!(status.success(), "dev exit: {status}");
    assert!(
        began.elapsed() < STOP_BOUND,
        "dev took {:?} to stop",
        began.elapsed()
    );
    for i in 0..3 {
        assert!(
            TcpListener::bind(kafka(i)).is_ok(),
            "node {} still holds its port",
            i + 1
        );
    }
}
