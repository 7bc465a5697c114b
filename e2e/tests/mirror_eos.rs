//! `strait-mirror`'s exactly-once MM2 mode (`exactly.once.source.support=enabled`) between two
//! real single-node Strait brokers A and B, with real mirror processes:
//!
//! 1. `exactly_once_across_kills`: a bounded load of distinct records is produced to `A:orders`
//!    (4 partitions) while the mirror is SIGKILLed and restarted mid-copy, three times. A
//!    read_committed read of `B:A.orders` then holds every source record exactly once, in the
//!    source's order per partition. Each kill is timed for a moment a transaction holding
//!    records is open on the target (last stable offset below the high watermark), and at least
//!    one must have left such a transaction behind: the restart aborts it, a read_uncommitted
//!    read shows its records, read_committed does not.
//! 2. `exactly_once_with_two_processes_and_a_zombie`: two mirror processes share the flow; one
//!    is SIGSTOPped mid-copy (its session expires and the other takes its partitions, fencing
//!    it), then SIGCONTed (a zombie whose open transactions must fail), then the other is
//!    SIGKILLed mid-copy. Still exactly once.
//!
//! `STRAIT_E2E_MIRROR_EOS=disabled` runs the same scenarios on the at-least-once path, which
//! fails them with duplicates (how the tests were shown able to fail).
//!
//! Needs `target/release/strait-mirror` and `strait-broker`:
//! `cargo build --release --bin strait-mirror --bin strait-broker`.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ListOffsetsRequest, ListOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use rustix::process::{Pid, Signal, kill_process};
use strait_e2e::kafka::is_transient;
use strait_e2e::mirror::MirrorProcess as Mirror;
use strait_e2e::wire::WireClient;
use strait_e2e::{
    Admin, Broker, TestMessage, consumer_config, free_port, idempotent_producer_config,
    produce_all, wait_for, watermarks,
};

/// How long the mirror's progress steps, and its catching up at the end, may take.
const WAIT: Duration = Duration::from_secs(60);
/// How long reading one partition may take.
const READ_WAIT: Duration = Duration::from_secs(20);

fn eos_setting() -> String {
    std::env::var("STRAIT_E2E_MIRROR_EOS").unwrap_or_else(|_| "enabled".into())
}

fn write_config(dir: &Path, a: &str, b: &str) -> std::path::PathBuf {
    let path = dir.join("mm2.properties");
    std::fs::write(
        &path,
        format!(
            "clusters = A, B\n\
             A.bootstrap.servers = {a}\n\
             B.bootstrap.servers = {b}\n\
             A->B.enabled = true\n\
             A->B.exactly.once.source.support = {}\n\
             transaction.timeout.ms = 30000\n\
             replication.factor = 1\n\
             offset-syncs.topic.replication.factor = 1\n\
             checkpoints.topic.replication.factor = 1\n\
             heartbeats.topic.replication.factor = 1\n\
             refresh.topics.interval.seconds = 1\n\
             emit.checkpoints.interval.seconds = 1\n",
            eos_setting()
        ),
    )
    .expect("write config");
    path
}

/// Produces records with distinct values `<p>-<i>` to each of `partitions` partitions of
/// `topic`, `round` per partition at a time with `pause` between rounds, until `stop` is set or
/// `cap` per partition are written; how many per partition it wrote.
fn load(
    bootstrap: String,
    topic: &'static str,
    partitions: i32,
    round: usize,
    pause: Duration,
    cap: usize,
) -> (JoinHandle<usize>, Arc<AtomicBool>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut i = 0;
        while i < cap && !flag.load(Ordering::SeqCst) {
            let end = (i + round).min(cap);
            let batch: Vec<TestMessage> = (0..partitions)
                .flat_map(|p| {
                    (i..end).map(move |j| TestMessage {
                        value: Some(format!("{p}-{j}").into_bytes()),
                        partition: Some(p),
                        ..TestMessage::default()
                    })
                })
                .collect();
            for d in produce_all(
                &idempotent_producer_config(&bootstrap),
                topic,
                &batch,
                Duration::from_secs(60),
            )
            .expect("produce")
            {
                d.result.expect("delivered");
            }
            i = end;
            std::thread::sleep(pause);
        }
        i
    });
    (handle, stop)
}

/// Every record of a partition, from the start to the end a consumer of `isolation` sees (the
/// last stable offset for read_committed): (offset, value).
fn read_values(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    isolation: &str,
) -> Vec<(i64, Vec<u8>)> {
    let consumer: BaseConsumer = consumer_config(bootstrap)
        .set("isolation.level", isolation)
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .expect("assignment");
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + READ_WAIT;
    let mut out = Vec::new();
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => out.push((m.offset(), m.payload().unwrap_or_default().to_vec())),
            Some(Err(KafkaError::PartitionEOF(_))) => return out,
            Some(Err(e)) if is_transient(&e) => {}
            Some(Err(e)) => panic!("reading {topic}-{partition} ({isolation}): {e}"),
        }
    }
    panic!("reading {topic}-{partition} ({isolation}): no end within {READ_WAIT:?}");
}

fn high_watermarks(bootstrap: &str, topic: &str, partitions: i32) -> i64 {
    (0..partitions)
        .map(|p| watermarks(bootstrap, topic, p).map_or(0, |(_, high)| high))
        .sum()
}

/// Waits until `B:remote` holds (read_committed) every record of `A:topic`, then checks each
/// partition: the read_committed values are exactly the source's, in order; read_uncommitted
/// sees all of them too. Returns the records only read_uncommitted sees (aborted ones).
fn assert_exactly_once(
    a: &str,
    b: &str,
    topic: &str,
    remote: &str,
    partitions: i32,
    logs: &dyn Fn() -> String,
) -> usize {
    let mut aborted = 0;
    let mut problems = Vec::new();
    for p in 0..partitions {
        let source: Vec<Vec<u8>> = read_values(a, topic, p, "read_uncommitted")
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let wanted: HashSet<&Vec<u8>> = source.iter().collect();
        assert_eq!(wanted.len(), source.len(), "source values are distinct");
        let copied = wait_for(WAIT, "every source record committed on the target", || {
            let copied = read_values(b, remote, p, "read_committed");
            let seen: HashSet<&Vec<u8>> = copied.iter().map(|(_, v)| v).collect();
            wanted.is_subset(&seen).then_some(copied)
        })
        .unwrap_or_else(|e| panic!("{e} (partition {p})\n{}", logs()));
        let values: Vec<&Vec<u8>> = copied.iter().map(|(_, v)| v).collect();
        let distinct: HashSet<&Vec<u8>> = values.iter().copied().collect();
        let duplicates = values.len() - distinct.len();
        let foreign = distinct.difference(&wanted).count();
        let in_order = values.iter().copied().eq(source.iter());
        eprintln!(
            "partition {p}: {} source records, {} read_committed on the target, {duplicates} duplicates",
            source.len(),
            values.len()
        );
        if duplicates > 0 || foreign > 0 || !in_order {
            problems.push(format!(
                "partition {p}: {} source records, {} read_committed copies, {duplicates} duplicates, {foreign} foreign, same order: {in_order}",
                source.len(),
                values.len()
            ));
        }
        let uncommitted = read_values(b, remote, p, "read_uncommitted");
        let all_offsets: BTreeSet<i64> = uncommitted.iter().map(|(o, _)| *o).collect();
        let committed_offsets: BTreeSet<i64> = copied.iter().map(|(o, _)| *o).collect();
        assert!(
            committed_offsets.is_subset(&all_offsets),
            "partition {p}: read_committed returned offsets read_uncommitted does not have"
        );
        // Records read_uncommitted returns before the end of the committed read and
        // read_committed skips: those of aborted transactions.
        let end = committed_offsets.last().copied().unwrap_or(-1);
        aborted += all_offsets
            .iter()
            .filter(|o| **o <= end && !committed_offsets.contains(o))
            .count();
    }
    assert!(
        problems.is_empty(),
        "not exactly once:\n{}",
        problems.join("\n")
    );
    aborted
}

/// A metrics port: without one every mirror process would bind the default one.
fn port() -> u16 {
    free_port().expect("free port")
}

/// The end offsets of `topic`'s partitions on the broker at `addr` (one ListOffsets): the high
/// watermarks (`isolation` 0) or the last stable offsets (1).
fn ends(client: &mut WireClient, topic: &str, partitions: i32, isolation: i8) -> Vec<i64> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation)
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(
                    (0..partitions)
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_current_leader_epoch(-1)
                                .with_timestamp(-1)
                        })
                        .collect(),
                ),
        ]);
    let response: ListOffsetsResponse = client
        .call(ApiKey::ListOffsets, 4, &request)
        .expect("ListOffsets");
    let mut out = vec![0; usize::try_from(partitions).expect("partitions")];
    for p in response.topics.iter().flat_map(|t| &t.partitions) {
        assert_eq!(
            p.error_code, 0,
            "ListOffsets of {topic}-{}",
            p.partition_index
        );
        out[usize::try_from(p.partition_index).expect("partition")] = p.offset;
    }
    out
}

/// Whether a transaction holding records is open on a partition of `topic`: its last stable
/// offset is below the high watermark read just before.
fn open_transaction(client: &mut WireClient, topic: &str, partitions: i32) -> bool {
    let high = ends(client, topic, partitions, 0);
    let stable = ends(client, topic, partitions, 1);
    stable.iter().zip(&high).any(|(s, h)| s < h)
}

/// SIGKILLs `mirror`, at a moment a transaction of it holding records is open on the target if
/// one is seen within `within`; then whether that transaction was left open (orphaned: no
/// commit reached the target before the kill), which the next owner must abort.
fn kill_mid_transaction(
    mirror: &mut Mirror,
    client: &mut WireClient,
    topic: &str,
    partitions: i32,
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline && !open_transaction(client, topic, partitions) {}
    mirror.kill();
    // A commit already under way when the process died completes within milliseconds.
    wait_for(Duration::from_secs(1), "no open transaction", || {
        (!open_transaction(client, topic, partitions)).then_some(())
    })
    .is_err()
}

fn signal(mirror: &Mirror, signal: Signal) {
    let pid = Pid::from_raw(i32::try_from(mirror.pid()).expect("pid")).expect("pid");
    kill_process(pid, signal).expect("signal the mirror");
}

#[test]
fn exactly_once_across_kills() {
    const PARTITIONS: i32 = 4;
    let started = Instant::now();
    let a = Broker::start(&[]).expect("start broker A");
    let b = Broker::start(&[]).expect("start broker B");
    let (a_boot, b_boot) = (a.bootstrap(), b.bootstrap());
    Admin::new(&a_boot)
        .expect("admin A")
        .create_topic("orders", PARTITIONS, &[])
        .expect("create orders");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &a_boot, &b_boot);
    let log = dir.path().join("mirror.log");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    // Records arrive in rounds of 1,000 until the kills are done (at most 50,000), so every
    // kill lands while there is more to copy.
    let (loader, stop) = load(
        a_boot.clone(),
        "orders",
        PARTITIONS,
        250,
        Duration::from_millis(100),
        12_500,
    );
    let mut mirror = Mirror::start(&config, Some(port()), &log).expect("start mirror");
    let mut target = WireClient::connect(b.addr()).expect("connect to B");
    let mut at_last_kill = 0;
    let mut orphaned = 0;
    for kill in 0..KILLS {
        let copied = wait_for(WAIT, "the mirror copying", || {
            let high = high_watermarks(&b_boot, "A.orders", PARTITIONS);
            (high >= at_last_kill + 4_000).then_some(high)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", read_log()));
        let orphan = kill_mid_transaction(
            &mut mirror,
            &mut target,
            "A.orders",
            PARTITIONS,
            Duration::from_secs(5),
        );
        orphaned += usize::from(orphan);
        assert!(
            !loader.is_finished(),
            "kill {kill}: the load ended before it, so it may not have been mid-copy"
        );
        eprintln!(
            "kill {kill} at {:.1?}: {copied} records on the target (read_uncommitted), a transaction with records left open: {orphan}",
            started.elapsed(),
        );
        at_last_kill = copied;
        mirror = Mirror::start(&config, Some(port()), &log).expect("restart mirror");
    }
    stop.store(true, Ordering::SeqCst);
    let per_partition = loader.join().expect("loader");
    let total = high_watermarks(&a_boot, "orders", PARTITIONS);
    assert_eq!(total, PARTITIONS as i64 * per_partition as i64);
    let aborted = assert_exactly_once(
        &a_boot, &b_boot, "orders", "A.orders", PARTITIONS, &read_log,
    );
    eprintln!(
        "exactly once: {total} records, {KILLS} kills ({orphaned} leaving a transaction with records open); {aborted} aborted records visible only to read_uncommitted; {:.1?}",
        started.elapsed()
    );
    // Each kill waits for a moment a transaction holds records; at least one must have caught
    // one, so the aborted records (and read_committed skipping them) are really exercised.
    assert!(orphaned > 0, "no kill left a transaction with records open");
    assert!(
        aborted > 0,
        "a kill left records in an open transaction, and no read_uncommitted read shows them aborted"
    );
    assert!(mirror.is_running(), "{}", read_log());
    assert!(
        !read_log().contains("panicked"),
        "the mirror panicked:\n{}",
        read_log()
    );
}

/// SIGKILLs of the mirror in `exactly_once_across_kills`.
const KILLS: usize = 3;

#[test]
fn exactly_once_with_two_processes_and_a_zombie() {
    const PARTITIONS: i32 = 6;
    let started = Instant::now();
    let a = Broker::start(&[]).expect("start broker A");
    let b = Broker::start(&[]).expect("start broker B");
    let (a_boot, b_boot) = (a.bootstrap(), b.bootstrap());
    Admin::new(&a_boot)
        .expect("admin A")
        .create_topic("events", PARTITIONS, &[])
        .expect("create events");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &a_boot, &b_boot);
    let (log1, log2) = (
        dir.path().join("mirror-1.log"),
        dir.path().join("mirror-2.log"),
    );
    let logs = || {
        format!(
            "--- mirror 1\n{}\n--- mirror 2\n{}",
            std::fs::read_to_string(&log1).unwrap_or_default(),
            std::fs::read_to_string(&log2).unwrap_or_default()
        )
    };
    // Records arrive (at most 60,000) until after mirror 2 was killed.
    let (loader, stop) = load(
        a_boot.clone(),
        "events",
        PARTITIONS,
        100,
        Duration::from_millis(100),
        10_000,
    );
    let m1 = Mirror::start(&config, Some(port()), &log1).expect("start mirror 1");
    let mut m2 = Mirror::start(&config, Some(port()), &log2).expect("start mirror 2");
    let copying = |path: &Path| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .matches("copying partition")
            .count()
    };
    wait_for(WAIT, "both processes copying", || {
        let high = high_watermarks(&b_boot, "A.events", PARTITIONS);
        (high >= 2_000 && copying(&log1) > 0 && copying(&log2) > 0).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    // Mirror 1 freezes: its session expires, mirror 2 takes every partition (fencing mirror 1's
    // producers and aborting what they had open).
    signal(&m1, Signal::STOP);
    let before = copying(&log2);
    eprintln!("mirror 1 stopped at {:.1?}", started.elapsed());
    wait_for(WAIT, "mirror 2 taking mirror 1's partitions", || {
        (copying(&log2) > before).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    // Mirror 1 wakes as a zombie: its copiers are fenced, it rejoins and shares again.
    signal(&m1, Signal::CONT);
    eprintln!("mirror 1 continued at {:.1?}", started.elapsed());
    let rejoined = copying(&log1);
    wait_for(WAIT, "mirror 1 sharing the flow again", || {
        (copying(&log1) > rejoined).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    let at_rejoin = high_watermarks(&b_boot, "A.events", PARTITIONS);
    wait_for(WAIT, "both copying again", || {
        (high_watermarks(&b_boot, "A.events", PARTITIONS) >= at_rejoin + 1_000).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    let mut target = WireClient::connect(b.addr()).expect("connect to B");
    let orphan = kill_mid_transaction(
        &mut m2,
        &mut target,
        "A.events",
        PARTITIONS,
        Duration::from_secs(5),
    );
    assert!(
        !loader.is_finished(),
        "the load ended before mirror 2 was killed, so it may not have been mid-copy"
    );
    let at_kill = high_watermarks(&b_boot, "A.events", PARTITIONS);
    eprintln!(
        "mirror 2 killed at {:.1?} with {at_kill} records on the target, a transaction with records left open: {orphan}",
        started.elapsed()
    );
    // Records still arrive for mirror 1 to take over after mirror 2's session expired.
    let produced = high_watermarks(&a_boot, "events", PARTITIONS);
    wait_for(WAIT, "more records on the source", || {
        (high_watermarks(&a_boot, "events", PARTITIONS) >= produced + 1_000).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    stop.store(true, Ordering::SeqCst);
    let per_partition = loader.join().expect("loader");
    let total = high_watermarks(&a_boot, "events", PARTITIONS);
    assert_eq!(total, PARTITIONS as i64 * per_partition as i64);
    let aborted = assert_exactly_once(&a_boot, &b_boot, "events", "A.events", PARTITIONS, &logs);
    let fenced = std::fs::read_to_string(&log1)
        .unwrap_or_default()
        .matches("fenced by another producer")
        .count();
    eprintln!(
        "exactly once with two processes: {total} records; {aborted} aborted records; mirror 1 fenced {fenced} times; {:.1?}",
        started.elapsed()
    );
    assert!(
        !logs().contains("panicked"),
        "a mirror panicked:\n{}",
        logs()
    );
    drop(m1);
}
