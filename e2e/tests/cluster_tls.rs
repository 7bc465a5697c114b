//! Brokers replicating over mutual TLS: three KRaft nodes whose inter-broker listener is SSL with
//! `ssl.client.auth=required`, so every follower fetch runs over TLS with both brokers verifying
//! each other against the cluster CA (host names checked). Acks=all writes need those fetches, a
//! full ISR proves they work, and a leader killed under load loses nothing acknowledged.

use std::time::Duration;

use strait_e2e::checker::{read_topic, verify};
use strait_e2e::cluster::{Cluster, ClusterSpec, READY_TIMEOUT};
use strait_e2e::load::{BackgroundProducer, LoadPlan};
use strait_e2e::pki::Pki;
use strait_e2e::{producer_config, wait_until};

const PARTITIONS: i32 = 3;
const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn brokers_replicate_over_mutual_tls_and_fail_over() {
    let pki = Pki::generate().expect("test PKI");
    let mut spec = ClusterSpec::combined(&["a", "b", "c"]);
    spec.replication_protocol = Some("SSL".into());
    for (k, v) in [
        ("listener.name.replication.ssl.keystore.type", "PEM".into()),
        (
            "listener.name.replication.ssl.keystore.location",
            pki.path_str("keystore.pem"),
        ),
        (
            "listener.name.replication.ssl.truststore.type",
            "PEM".into(),
        ),
        (
            "listener.name.replication.ssl.truststore.location",
            pki.path_str("ca.pem"),
        ),
        (
            "listener.name.replication.ssl.client.auth",
            "required".into(),
        ),
    ] {
        spec.overrides.push((k.to_string(), v));
    }
    let mut cluster = Cluster::start(spec).expect("cluster with TLS replication");
    let topic = "tls-replicated";
    cluster
        .create_topic(topic, PARTITIONS, 3, &[("min.insync.replicas", "2")])
        .expect("create RF=3 topic");

    let mut config = producer_config(&cluster.bootstrap());
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "60000")
        .set("request.timeout.ms", "5000");
    let total = 60_000;
    let producer = BackgroundProducer::start(
        config,
        topic,
        LoadPlan {
            partitions: PARTITIONS,
            limit: Some(total),
            rate: Some(10_000),
            max_duration: Duration::from_secs(120),
        },
    )
    .expect("start producer");
    wait_until(TIMEOUT, "20k acks=all writes", || {
        producer.acked() >= 20_000
    })
    .unwrap_or_else(|e| panic!("{e}: {} acked", producer.acked()));
    // Followers keep up over TLS: every ISR is whole.
    let infos = cluster.partition_info(topic).expect("metadata");
    assert!(
        infos.iter().all(|p| p.isr.len() == 3),
        "followers fetch over TLS: {infos:?}"
    );

    let leader = cluster
        .wait_for_leader(topic, 0, TIMEOUT, |p| p.leader > 0)
        .expect("a leader")
        .leader as u32;
    cluster.kill(leader).expect("SIGKILL the leader");
    cluster
        .wait_for_leader(topic, 0, TIMEOUT, |p| {
            p.leader > 0 && p.leader as u32 != leader
        })
        .expect("a new leader");
    wait_until(Duration::from_secs(120), "the producer to finish", || {
        producer.finished()
    })
    .expect("production completes");
    let acked = producer.stop().expect("stop producer");
    let content =
        read_topic(&cluster.live_bootstrap(), topic, Duration::from_secs(90)).expect("read back");
    let report = verify(&acked, &content);
    report.check().expect("nothing acknowledged is lost");
    assert_eq!(report.acked as u64, total);

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
