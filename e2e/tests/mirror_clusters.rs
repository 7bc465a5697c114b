//! `strait-mirror` between two three-node Strait clusters under faults, in both modes: records
//! written to six partitions of `A:orders` in ten chunks, and between chunks the mirror is
//! SIGKILLed and restarted (twice), the source partition leader is killed (and restarted), and
//! the target partition leader is killed (and restarted).
//!
//! - MM2 mode (200,000 records): at the end every source record is on `B:A.orders` in the same
//!   partition and in the same order; duplicates (only what was copied after a killed mirror's
//!   last progress commit may repeat) are counted and reported.
//! - Linked mode (100,000 records): `B:A.orders` is the source log again, record for record at
//!   the same offsets with the same timestamps, and no duplicates at all: the target's log end is
//!   the mirror's progress, so neither a killed mirror nor a new leader on either side can make
//!   it copy a batch twice.
//!
//! Needs `target/release/strait-mirror` and `strait-broker`.

use std::time::Duration;

use strait_e2e::cluster::{Cluster, ClusterSpec, READY_TIMEOUT};
use strait_e2e::mirror::{MirrorProcess, assert_copied_in_order, wait_caught_up};
use strait_e2e::{
    ConsumedMessage, TestMessage, free_port, produce_all, producer_config, read_partition,
    wait_for, watermarks,
};

const PARTITIONS: i32 = 6;
const CHUNKS: usize = 10;
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

fn produce_chunk(bootstrap: &str, chunk: usize, per_chunk: usize) {
    let messages: Vec<TestMessage> = (chunk * per_chunk..(chunk + 1) * per_chunk)
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
fn wait_copied(target: &str, records: i64, mirror: &MirrorProcess) {
    wait_for(WAIT, &format!("{records} records on the target"), || {
        (high_watermarks(target, "A.orders").iter().sum::<i64>() >= records).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\nmirror log:\n{}", mirror.log()));
}

fn leader_of(cluster: &mut Cluster, topic: &str, partition: i32) -> u32 {
    let info = cluster
        .wait_for_leader(topic, partition, WAIT, |p| p.leader >= 0)
        .expect("leader");
    info.leader as u32
}

/// Which mirror mode a run uses, and how much it writes.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Mm2,
    Linked,
}

impl Mode {
    fn per_chunk(self) -> usize {
        match self {
            Mode::Mm2 => 20_000,
            Mode::Linked => 10_000,
        }
    }

    fn config_lines(self) -> &'static str {
        match self {
            Mode::Mm2 => "emit.checkpoints.interval.seconds = 5\n",
            Mode::Linked => "A->B.mirror.mode = linked\n",
        }
    }
}

#[test]
fn mm2_mode_between_two_clusters_survives_mirror_source_and_target_kills() {
    let duplicates = mirror_under_faults(Mode::Mm2);
    println!("mm2 mode: {duplicates} duplicates");
}

#[test]
fn linked_mode_between_two_clusters_survives_mirror_source_and_target_kills() {
    let duplicates = mirror_under_faults(Mode::Linked);
    assert_eq!(duplicates, 0, "a linked mirror never copies a record twice");
}

/// Runs the fault sequence in `mode`, checks the target against the source and returns the
/// number of duplicated records on the target.
fn mirror_under_faults(mode: Mode) -> usize {
    let per_chunk = mode.per_chunk();
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
             refresh.topics.interval.seconds = 1\n{}",
            mode.config_lines()
        ),
    )
    .expect("write config");
    let stderr = dir.path().join("mirror.log");
    // Its own metrics port: both modes run at once, and the default port would be shared.
    let metrics = Some(free_port().expect("free port"));
    let mut mirror = MirrorProcess::start(&config, metrics, &stderr).expect("start mirror");

    let mut chunk = 0;
    while chunk < CHUNKS {
        produce_chunk(&source, chunk, per_chunk);
        let mut written = ((chunk + 1) * per_chunk) as i64;
        match chunk {
            // The mirror SIGKILLed mid-copy, twice, and started again.
            2 | 8 => {
                wait_copied(&target, written - per_chunk as i64, &mirror);
                mirror.kill();
                mirror = MirrorProcess::start(&config, metrics, &stderr).expect("restart mirror");
            }
            // The source leader of a partition killed while the next chunk is written and
            // copied, then restarted.
            4 => {
                let leader = leader_of(&mut a, "orders", 0);
                a.kill(leader).expect("kill source leader");
                chunk += 1;
                produce_chunk(&a.live_bootstrap(), chunk, per_chunk);
                written += per_chunk as i64;
                wait_copied(&target, written, &mirror);
                a.restart(leader).expect("restart source node");
                a.wait_all_ready(READY_TIMEOUT).expect("A ready again");
            }
            // The target leader of a partition killed while the mirror writes, then restarted.
            6 => {
                let leader = leader_of(&mut b, "A.orders", 0);
                b.kill(leader).expect("kill target leader");
                wait_copied(&target, written, &mirror);
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
        (CHUNKS * per_chunk) as i64,
        "the idempotent producer wrote each record once"
    );
    wait_caught_up(
        (&a.live_bootstrap(), "orders"),
        (&b.live_bootstrap(), "A.orders"),
        PARTITIONS,
        &mirror,
        WAIT,
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let mut duplicates = 0usize;
    for p in 0..PARTITIONS {
        let sent = read_partition(&a.live_bootstrap(), "orders", p, WAIT).expect("read A");
        let copied = read_partition(&b.live_bootstrap(), "A.orders", p, WAIT).expect("read B");
        if mode == Mode::Linked {
            let at = |m: &[ConsumedMessage]| -> Vec<(i64, Option<i64>, Vec<u8>)> {
                m.iter()
                    .map(|r| (r.offset, r.timestamp, r.value.clone().unwrap_or_default()))
                    .collect()
            };
            assert!(
                at(&copied) == at(&sent),
                "partition {p}: the mirror topic is not the source log again ({} vs {} records)",
                copied.len(),
                sent.len()
            );
        }
        duplicates += assert_copied_in_order(p, &sent, &copied);
    }
    let total: i64 = source_marks.iter().sum();
    println!(
        "mirrored {total} records across 2 mirror kills and source/target leader kills; {duplicates} duplicates"
    );
    assert!(mirror.is_running(), "mirror exited:\n{}", mirror.log());
    duplicates
}
