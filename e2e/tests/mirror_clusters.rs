//! `strait-mirror` (MM2 mode) between two three-node Strait clusters under faults: 200,000
//! records written to six partitions of `A:orders` in ten chunks, and between chunks the mirror
//! is SIGKILLed and restarted (twice), the source partition leader is killed (and restarted),
//! and the target partition leader is killed (and restarted). At the end every source record is
//! on `B:A.orders` in the same partition and in the same order; duplicates (only what was copied
//! after a killed mirror's last progress commit may repeat) are counted and reported.
//!
//! Needs `target/release/strait-mirror` and `strait-broker`.

use std::time::Duration;

use strait_e2e::cluster::{Cluster, ClusterSpec, READY_TIMEOUT};
use strait_e2e::mirror::MirrorProcess;
use strait_e2e::{
    ConsumedMessage, TestMessage, produce_all, producer_config, read_partition, wait_for,
    watermarks,
};

const PARTITIONS: i32 = 6;
const CHUNKS: usize = 10;
const PER_CHUNK: usize = 20_000;
const WAIT: Duration = Duration::from_secs(180);

fn message(n: usize) -> TestMessage {
    let p = (n % PARTITIONS as usize) as i32;
    TestMessage {
        key: Some(format!("k{n}").into_bytes()),
        value: Some(format!("record {n:07} {}", "x".repeat(n % 64)).into_bytes()),
        headers: Vec::new(),
        partition: Some(p),
        timestamp: None,
    }
}

fn produce_chunk(bootstrap: &str, chunk: usize) {
    let messages: Vec<TestMessage> = (chunk * PER_CHUNK..(chunk + 1) * PER_CHUNK)
        .map(message)
        .collect();
    let config = producer_config(bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .clone();
    let deliveries = produce_all(&config, "orders", &messages, WAIT).expect("produce");
    for d in deliveries {
        d.result.expect("delivered");
    }
}

fn high_watermarks(bootstrap: &str, topic: &str) -> Vec<i64> {
    (0..PARTITIONS)
        .map(|p| watermarks(bootstrap, topic, p).map_or(0, |(_, high)| high))
        .collect()
}

/// Waits until the target holds at least `records` records in all.
fn wait_copied(target: &str, records: i64) {
    wait_for(WAIT, &format!("{records} records on the target"), || {
        (high_watermarks(target, "A.orders").iter().sum::<i64>() >= records).then_some(())
    })
    .expect("mirror progress");
}

fn leader_of(cluster: &mut Cluster, topic: &str, partition: i32) -> u32 {
    let info = cluster
        .wait_for_leader(topic, partition, WAIT, |p| p.leader >= 0)
        .expect("leader");
    info.leader as u32
}

fn values(messages: &[ConsumedMessage]) -> Vec<Vec<u8>> {
    messages
        .iter()
        .map(|m| m.value.clone().unwrap_or_default())
        .collect()
}

#[test]
fn mm2_mode_between_two_clusters_survives_mirror_source_and_target_kills() {
    let mut a = Cluster::start(ClusterSpec::combined(&["a1", "a2", "a3"])).expect("cluster A");
    let mut b = Cluster::start(ClusterSpec::combined(&["b1", "b2", "b3"])).expect("cluster B");
    a.wait_all_ready(READY_TIMEOUT).expect("A ready");
    b.wait_all_ready(READY_TIMEOUT).expect("B ready");
    a.create_topic("orders", PARTITIONS, 3, &[("min.insync.replicas", "2")])
        .expect("create orders");
    let (source, target) = (a.bootstrap(), b.bootstrap());

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("mm2.properties");
    std::fs::write(
        &config,
        format!(
            "clusters = A, B\n\
             A.bootstrap.servers = {source}\n\
             B.bootstrap.servers = {target}\n\
             A->B.enabled = true\n\
             A->B.topics = orders\n\
             replication.factor = 3\n\
             refresh.topics.interval.seconds = 1\n\
             emit.checkpoints.interval.seconds = 5\n"
        ),
    )
    .expect("write config");
    let stderr = dir.path().join("mirror.log");
    let mut mirror = MirrorProcess::start(&config, None, &stderr).expect("start mirror");

    let mut chunk = 0;
    while chunk < CHUNKS {
        produce_chunk(&source, chunk);
        let mut written = ((chunk + 1) * PER_CHUNK) as i64;
        match chunk {
            // The mirror SIGKILLed mid-copy, twice, and started again.
            2 | 8 => {
                wait_copied(&target, written - PER_CHUNK as i64);
                mirror.kill();
                mirror = MirrorProcess::start(&config, None, &stderr).expect("restart mirror");
            }
            // The source leader of a partition killed while the next chunk is written and
            // copied, then restarted.
            4 => {
                let leader = leader_of(&mut a, "orders", 0);
                a.kill(leader).expect("kill source leader");
                chunk += 1;
                produce_chunk(&a.live_bootstrap(), chunk);
                written += PER_CHUNK as i64;
                wait_copied(&target, written);
                a.restart(leader).expect("restart source node");
                a.wait_all_ready(READY_TIMEOUT).expect("A ready again");
            }
            // The target leader of a partition killed while the mirror writes, then restarted.
            6 => {
                let leader = leader_of(&mut b, "A.orders", 0);
                b.kill(leader).expect("kill target leader");
                wait_copied(&target, written);
                b.restart(leader).expect("restart target node");
                b.wait_all_ready(READY_TIMEOUT).expect("B ready again");
            }
            _ => {}
        }
        chunk += 1;
    }
    let source_marks = high_watermarks(&a.live_bootstrap(), "orders");
    assert_eq!(
        source_marks.iter().sum::<i64>(),
        (CHUNKS * PER_CHUNK) as i64,
        "the idempotent producer wrote each record once"
    );
    wait_for(WAIT, "the target to reach the source's end offsets", || {
        let copied = high_watermarks(&b.live_bootstrap(), "A.orders");
        copied
            .iter()
            .zip(&source_marks)
            .all(|(t, s)| t >= s)
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\nmirror log:\n{}", mirror.log()));

    let mut duplicates = 0usize;
    for p in 0..PARTITIONS {
        let sent = values(&read_partition(&a.live_bootstrap(), "orders", p, WAIT).expect("read A"));
        let copied =
            values(&read_partition(&b.live_bootstrap(), "A.orders", p, WAIT).expect("read B"));
        // First occurrences, in order, are exactly the source; the rest are re-copies.
        let mut seen = std::collections::HashSet::new();
        let firsts: Vec<Vec<u8>> = copied
            .iter()
            .filter(|v| seen.insert((*v).clone()))
            .cloned()
            .collect();
        assert_eq!(firsts.len(), sent.len(), "partition {p}: records lost");
        assert!(firsts == sent, "partition {p}: order or content differs");
        duplicates += copied.len() - firsts.len();
    }
    let total: i64 = source_marks.iter().sum();
    println!(
        "mirrored {total} records across 2 mirror kills and source/target leader kills; {duplicates} duplicates"
    );
    assert!(mirror.is_running(), "mirror exited:\n{}", mirror.log());
}
