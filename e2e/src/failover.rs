//! The leader-kill check the encrypted and authenticated cluster tests share: an idempotent
//! acks=all producer at a fixed rate, the full ISR checked once enough is acknowledged, the
//! leader of partition 0 SIGKILLed, and every acknowledged record read back from the survivors.

use std::time::Duration;

use crate::checker::{read_topic, verify};
use crate::cluster::Cluster;
use crate::load::{BackgroundProducer, LoadPlan};
use crate::{producer_config, wait_until};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Produces `total` records to `topic` (RF=3, `partitions` partitions), kills the leader of
/// partition 0 once `warmup` are acknowledged (after checking every ISR is whole: `why` says what
/// that proves), and checks that nothing acknowledged is lost. Returns the killed node's id.
pub fn kill_leader_under_load(
    cluster: &mut Cluster,
    topic: &str,
    partitions: i32,
    total: u64,
    warmup: u64,
    why: &str,
) -> u32 {
    let mut config = producer_config(&cluster.bootstrap());
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "60000")
        .set("request.timeout.ms", "5000");
    let producer = BackgroundProducer::start(
        config,
        topic,
        LoadPlan {
            partitions,
            limit: Some(total),
            rate: Some(10_000),
            max_duration: Duration::from_secs(120),
        },
    )
    .expect("start producer");
    wait_until(TIMEOUT, "acks=all writes before the kill", || {
        producer.acked() as u64 >= warmup
    })
    .unwrap_or_else(|e| panic!("{e}: {} acked", producer.acked()));
    let infos = cluster.partition_info(topic).expect("metadata");
    assert!(infos.iter().all(|p| p.isr.len() == 3), "{why}: {infos:?}");

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
    leader
}
