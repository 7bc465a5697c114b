//! Encrypted cluster traffic. Brokers replicating over mutual TLS: three KRaft nodes whose
//! inter-broker listener is SSL with `ssl.client.auth=required`, so every follower fetch runs
//! over TLS with both brokers verifying each other against the cluster CA (host names checked).
//! Acks=all writes need those fetches, a full ISR proves they work, and a leader killed under
//! load loses nothing acknowledged. And a controller quorum over mutual TLS: Raft between the
//! voters, and a broker-only node's registration, heartbeats and metadata fetches, all on an SSL
//! CONTROLLER listener, through the loss of the active controller.

use std::time::Duration;

use strait_e2e::cluster::{Cluster, ClusterSpec, NodeSpec, READY_TIMEOUT};
use strait_e2e::failover::kill_leader_under_load;
use strait_e2e::pki::Pki;
use strait_e2e::{TestMessage, produce_all, producer_config, read_partition, wait_until};

const PARTITIONS: i32 = 3;
const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn brokers_replicate_over_mutual_tls_and_fail_over() {
    let pki = Pki::generate().expect("test PKI");
    let mut spec = ClusterSpec::combined(&["a", "b", "c"]);
    spec.replication_protocol = Some("SSL".into());
    spec.overrides.extend(mutual_tls("replication", &pki));
    let mut cluster = Cluster::start(spec).expect("cluster with TLS replication");
    let topic = "tls-replicated";
    cluster
        .create_topic(topic, PARTITIONS, 3, &[("min.insync.replicas", "2")])
        .expect("create RF=3 topic");

    let leader = kill_leader_under_load(
        &mut cluster,
        topic,
        PARTITIONS,
        60_000,
        20_000,
        "followers fetch over TLS",
    );

    // The killed broker catches up over TLS again.
    cluster.restart(leader).expect("restart");
    cluster.wait_ready(leader, READY_TIMEOUT).expect("rejoins");
    wait_until(TIMEOUT, "the restarted broker back in every ISR", || {
        cluster
            .partition_info(topic)
            .is_ok_and(|ps| ps.iter().all(|p| p.isr.contains(&(leader as i32))))
    })
    .expect("ISR expands");
}

fn messages(range: std::ops::Range<u32>) -> Vec<TestMessage> {
    range
        .map(|i| TestMessage {
            value: Some(format!("m{i}").into_bytes()),
            partition: Some(0),
            ..Default::default()
        })
        .collect()
}

/// `listener.name.<listener>.ssl.*` for mutual TLS with the test PKI.
fn mutual_tls(listener: &str, pki: &Pki) -> Vec<(String, String)> {
    [
        ("ssl.keystore.type", "PEM".to_string()),
        ("ssl.keystore.location", pki.path_str("keystore.pem")),
        ("ssl.truststore.type", "PEM".to_string()),
        ("ssl.truststore.location", pki.path_str("ca.pem")),
        ("ssl.client.auth", "required".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("listener.name.{listener}.{k}"), v))
    .collect()
}

#[test]
fn the_controller_quorum_runs_over_mutual_tls() {
    let pki = Pki::generate().expect("test PKI");
    let mut spec = ClusterSpec::combined(&["a", "b", "c"]);
    spec.nodes.push(NodeSpec::broker(4, "a"));
    spec.controller_protocol = Some("SSL".into());
    spec.overrides.extend(mutual_tls("controller", &pki));
    // Ready means registered and heartbeating: over TLS to the controllers, for node 4 too.
    let mut cluster = Cluster::start(spec).expect("cluster with an SSL controller quorum");
    let before = cluster.quorum(4).expect("DescribeQuorum");
    assert_eq!(before.voters.len(), 3, "{before:?}");
    assert_eq!(before.observers, vec![4], "{before:?}");

    let topic = "tls-quorum";
    cluster
        .create_topic(topic, 1, 3, &[("min.insync.replicas", "2")])
        .expect("CreateTopics through the controller");
    let first = messages(0..100);
    produce_all(
        &producer_config(&cluster.bootstrap()),
        topic,
        &first,
        TIMEOUT,
    )
    .expect("produce");

    // Raft elects a new leader over TLS once the active controller dies.
    let active = before.leader as u32;
    cluster.kill(active).expect("SIGKILL the active controller");
    wait_until(TIMEOUT, "a new active controller", || {
        cluster
            .quorum(4)
            .is_ok_and(|q| q.leader > 0 && q.leader as u32 != active && q.epoch > before.epoch)
    })
    .expect("re-election over TLS");
    let more = messages(100..200);
    produce_all(
        &producer_config(&cluster.live_bootstrap()),
        topic,
        &more,
        TIMEOUT,
    )
    .expect("produce after the failover");
    let read =
        read_partition(&cluster.live_bootstrap(), topic, 0, TIMEOUT).expect("read everything back");
    assert_eq!(read.len(), 200);

    // The restarted voter catches up with the quorum over TLS.
    cluster.restart(active).expect("restart");
    cluster.wait_ready(active, READY_TIMEOUT).expect("rejoins");
}
