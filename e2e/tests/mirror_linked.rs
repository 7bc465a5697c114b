//! `strait-mirror` in linked (offset-preserving) mode between two real single-node Strait
//! brokers A (source) and B (target), driven by librdkafka: records written to `A:orders`
//! (plain, compressed, and transactional, committed and aborted) are on `B:orders` at the same
//! offsets, and Fetch returns byte-identical record batches from both; an ordinary producer to
//! the mirror topic is refused with INVALID_REQUEST; the mirror SIGKILLed mid-stream and
//! restarted continues with no gap and no duplicate (the logs stay byte-identical); a group's
//! committed offsets are copied; `strait-mirror --failover` with a transaction left open on the
//! source makes `B:orders` writable, a consumer of the group resumes on B exactly at its
//! committed offset, read_committed consumers are not stuck behind the open transaction, the
//! source is untouched, a second failover has nothing to do, and the still running mirror
//! stops the failed-over partitions. One broker pair for all checks.
//!
//! Needs `target/release/strait-mirror` and `strait-broker`:
//! `cargo build --release --bin strait-mirror --bin strait-broker`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use strait_e2e::exposition::Scrape;
use strait_e2e::mirror::{MirrorProcess as Mirror, mirror_binary};
use strait_e2e::wire::WireClient;
use strait_e2e::{
    Admin, Broker, TestMessage, free_port, idempotent_producer_config, produce_all,
    producer_config, read_range, wait_for, wait_until,
};

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 3;
const WAIT: Duration = Duration::from_secs(30);
const GROUP: &str = "app";
const MIRROR_SOURCE: &str = "strait.mirror.source";

/// The mirror on `config`, with metrics on a free port.
fn start_mirror(config: &Path, stderr: &Path) -> Mirror {
    let port = free_port().expect("free port");
    Mirror::start(config, Some(port), stderr).expect("start mirror")
}

fn failover(config: &Path) -> Output {
    Command::new(mirror_binary().expect("mirror binary"))
        .arg("--config")
        .arg(config)
        .arg("--failover")
        .env("RUST_LOG", "info")
        .output()
        .expect("run strait-mirror --failover")
}

/// One partition's log as Fetch (read_uncommitted) returns it: the whole record batches from
/// offset 0 up to the high watermark, concatenated, with the high watermark and the last
/// stable offset.
struct RawLog {
    bytes: Bytes,
    high_watermark: i64,
    last_stable_offset: i64,
}

impl RawLog {
    /// The producer ids of the batches (-1 left out).
    fn producer_ids(&self) -> Vec<i64> {
        let mut out = Vec::new();
        let mut b = &self.bytes[..];
        while b.len() >= 61 {
            let size = (&b[8..12]).get_i32() as usize + 12;
            let id = (&b[43..51]).get_i64();
            if id >= 0 {
                out.push(id);
            }
            b = &b[size..];
        }
        out
    }

    /// (base offset, attributes) of each batch.
    fn batches(&self) -> Vec<(i64, i16)> {
        let mut out = Vec::new();
        let mut b = &self.bytes[..];
        while b.len() >= 61 {
            let base = (&b[0..8]).get_i64();
            let size = (&b[8..12]).get_i32() as usize + 12;
            out.push((base, (&b[21..23]).get_i16()));
            b = &b[size..];
        }
        out
    }
}

fn raw_log(addr: SocketAddr, topic: &str, partition: i32) -> RawLog {
    try_raw_log(addr, topic, partition).unwrap_or_else(|e| panic!("{e}"))
}

/// [`raw_log`], or the partition's error (a topic not created yet).
fn try_raw_log(addr: SocketAddr, topic: &str, partition: i32) -> Result<RawLog, String> {
    let mut client = WireClient::connect(addr).map_err(|e| e.to_string())?;
    let mut bytes = BytesMut::new();
    let mut next = 0i64;
    loop {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(8 << 20)
            .with_isolation_level(0)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(next)
                            .with_log_start_offset(-1)
                            .with_partition_max_bytes(8 << 20),
                    ]),
            ]);
        let response: FetchResponse = client
            .call(ApiKey::Fetch, 11, &request)
            .map_err(|e| e.to_string())?;
        let p = &response.responses[0].partitions[0];
        if p.error_code != 0 {
            return Err(format!(
                "Fetch {topic}-{partition} at {next}: error {}",
                p.error_code
            ));
        }
        let records = p.records.clone().unwrap_or_default();
        let mut b = &records[..];
        let mut took = 0;
        while b.len() >= 61 {
            let size = (&b[8..12]).get_i32() as usize + 12;
            if size > b.len() {
                break;
            }
            let base = (&b[0..8]).get_i64();
            let last = base + i64::from((&b[23..27]).get_i32());
            if last >= next {
                bytes.extend_from_slice(&b[..size]);
                next = last + 1;
            }
            b = &b[size..];
            took += 1;
        }
        if next >= p.high_watermark || took == 0 {
            return Ok(RawLog {
                bytes: bytes.freeze(),
                high_watermark: p.high_watermark,
                last_stable_offset: p.last_stable_offset,
            });
        }
    }
}

/// Waits until every partition of `B:orders` holds A's log byte for byte.
fn wait_identical(a: &Broker, b: &Broker, what: &str) {
    for p in 0..PARTITIONS {
        let mut last = (0, 0);
        let same = wait_for(WAIT, &format!("{what}: {TOPIC}-{p} identical on B"), || {
            let source = raw_log(a.addr(), TOPIC, p);
            let target = try_raw_log(b.addr(), TOPIC, p).ok()?;
            last = (source.high_watermark, target.high_watermark);
            (source.bytes == target.bytes && source.high_watermark == target.high_watermark)
                .then_some(())
        });
        assert!(
            same.is_ok(),
            "{what}: {TOPIC}-{p} differs: high watermarks A {} B {}",
            last.0,
            last.1
        );
    }
}

fn message(p: i32, i: usize, tag: &str) -> TestMessage {
    TestMessage {
        key: Some(format!("{tag}-key-{p}-{i}").into_bytes()),
        value: Some(format!("{tag}-value-{p}-{i}-{}", "x".repeat(i % 40)).into_bytes()),
        headers: vec![("h".into(), Some(b"1".to_vec())), ("h".into(), None)],
        partition: Some(p),
        timestamp: None,
    }
}

fn produce(config: &ClientConfig, tag: &str, per_partition: usize) {
    let messages: Vec<TestMessage> = (0..PARTITIONS)
        .flat_map(|p| (0..per_partition).map(move |i| message(p, i, tag)))
        .collect();
    for d in produce_all(config, TOPIC, &messages, WAIT).expect("produce") {
        d.result.expect("delivered");
    }
}

fn transactional_producer(bootstrap: &str, id: &str) -> BaseProducer {
    let producer: BaseProducer = producer_config(bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("transactional.id", id)
        // Longer than the test: the transaction left open must stay open on the source.
        .set("transaction.timeout.ms", "300000")
        .create()
        .expect("transactional producer");
    producer.init_transactions(WAIT).expect("init transactions");
    producer
}

/// Sends `n` records per partition in `partitions` inside the open transaction and flushes.
fn send_in_transaction(producer: &BaseProducer, partitions: &[i32], n: usize, tag: &str) {
    for &p in partitions {
        for i in 0..n {
            let key = format!("{tag}-key-{p}-{i}");
            let value = format!("{tag}-value-{p}-{i}");
            producer
                .send(BaseRecord::to(TOPIC).partition(p).key(&key).payload(&value))
                .expect("send in transaction");
        }
    }
    producer.flush(WAIT).expect("flush transaction");
}

fn topic_config(bootstrap: &str, topic: &str, key: &str) -> Option<String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results = runtime
        .block_on(admin.describe_configs(
            [&ResourceSpecifier::Topic(topic)],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .expect("describe configs");
    let resource = results
        .into_iter()
        .next()
        .expect("one resource")
        .expect("described");
    resource
        .get(key)
        .and_then(|e| e.value.clone())
        .filter(|v| !v.is_empty())
}

fn group_consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .set("isolation.level", "read_committed")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("group consumer")
}

fn committed(bootstrap: &str) -> BTreeMap<i32, i64> {
    let consumer = group_consumer(bootstrap);
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(TOPIC, p);
    }
    let Ok(result) = consumer.committed_offsets(tpl, Duration::from_secs(10)) else {
        return BTreeMap::new();
    };
    result
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// A linked `A->B` flow with the identity policy, fast refreshes.
fn write_config(dir: &Path, a: &Broker, b: &Broker) -> PathBuf {
    let config = dir.join("mm2.properties");
    std::fs::write(
        &config,
        format!(
            "clusters=A,B\n\
             A.bootstrap.servers={}\n\
             B.bootstrap.servers={}\n\
             A->B.enabled=true\n\
             A->B.mirror.mode=linked\n\
             replication.policy.class=org.apache.kafka.connect.mirror.IdentityReplicationPolicy\n\
             replication.factor=1\n\
             refresh.topics.interval.seconds=2\n\
             sync.group.offsets.interval.seconds=1\n",
            a.bootstrap(),
            b.bootstrap()
        ),
    )
    .expect("write config");
    config
}

/// After a failover, an idempotent producer (the Java client's default) writes to the former
/// mirror topic. Its new producer id must not collide with the producer ids of the mirrored
/// batches: A allocated those, and B allocates from the same range (both start at 0).
#[test]
fn idempotent_producer_after_failover() {
    let a = Broker::start(&[]).expect("start broker A");
    let b = Broker::start(&[]).expect("start broker B");
    let dir = tempfile::tempdir().expect("tempdir");
    Admin::new(&a.bootstrap())
        .expect("admin A")
        .create_topic(TOPIC, PARTITIONS, &[])
        .expect("create A:orders");
    let txn = transactional_producer(&a.bootstrap(), "orders-writer");
    txn.begin_transaction().expect("begin");
    send_in_transaction(&txn, &[0, 1, 2], 5, "committed");
    txn.commit_transaction(WAIT).expect("commit");
    produce(
        &idempotent_producer_config(&a.bootstrap()),
        "idempotent-a",
        5,
    );
    let config = write_config(dir.path(), &a, &b);
    let mirror = start_mirror(&config, &dir.path().join("mirror.log"));
    wait_identical(&a, &b, "linked");
    drop(mirror);
    let out = failover(&config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mirrored_ids: std::collections::BTreeSet<i64> = (0..PARTITIONS)
        .flat_map(|p| raw_log(b.addr(), TOPIC, p).producer_ids())
        .collect();
    let messages: Vec<TestMessage> = (0..PARTITIONS).map(|p| message(p, 0, "on-b")).collect();
    let written = produce_all(
        &idempotent_producer_config(&b.bootstrap()),
        TOPIC,
        &messages,
        Duration::from_secs(60),
    )
    .expect("idempotent produce to B after failover");
    let errors: Vec<String> = written
        .iter()
        .filter_map(|d| d.result.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert!(
        errors.is_empty(),
        "idempotent produce to B after failover: {errors:?} (producer ids in B's mirrored batches: {mirrored_ids:?})"
    );
}

#[test]
fn linked_mode_between_two_brokers() {
    let started = Instant::now();
    let a = Broker::start(&[]).expect("start broker A");
    let b = Broker::start(&[]).expect("start broker B");
    let dir = tempfile::tempdir().expect("tempdir");
    Admin::new(&a.bootstrap())
        .expect("admin A")
        .create_topic(TOPIC, PARTITIONS, &[("retention.ms", "86400000")])
        .expect("create A:orders");

    // Plain, compressed and transactional batches (a committed and an aborted transaction).
    produce(
        producer_config(&a.bootstrap()).set("acks", "all"),
        "plain",
        40,
    );
    for codec in ["gzip", "lz4", "zstd", "snappy"] {
        produce(
            producer_config(&a.bootstrap())
                .set("acks", "all")
                .set("compression.type", codec),
            codec,
            30,
        );
    }
    let txn = transactional_producer(&a.bootstrap(), "orders-writer");
    txn.begin_transaction().expect("begin");
    send_in_transaction(&txn, &[0, 1, 2], 20, "committed");
    txn.commit_transaction(WAIT).expect("commit");
    txn.begin_transaction().expect("begin");
    send_in_transaction(&txn, &[1], 10, "aborted");
    txn.abort_transaction(WAIT).expect("abort");

    let config = write_config(dir.path(), &a, &b);
    let stderr = dir.path().join("mirror.log");
    let mut mirror = start_mirror(&config, &stderr);

    // Same offsets, same bytes.
    wait_identical(&a, &b, "initial copy");
    // The same metric series as MM2 mode: records counted, lag 0 once caught up.
    let labels = [("source", "A"), ("target", "B"), ("topic", TOPIC)];
    wait_until(WAIT, "linked metrics", || {
        Scrape::fetch(
            mirror.metrics_addr().expect("metrics address"),
            Duration::from_secs(5),
        )
        .is_ok_and(|m| {
            m.sum(
                "kafka_connect_mirror_mirrorsourceconnector_record_count",
                &labels,
            )
            .is_some_and(|n| n > 0.0)
                && m.sum(
                    "kafka_connect_mirror_mirrorsourceconnector_byte_count",
                    &labels,
                )
                .is_some_and(|n| n > 0.0)
                && m.sum("strait_mirror_partition_lag_records", &labels) == Some(0.0)
                && m.find("strait_mirror_partition_lag_records", &labels)
                    .count()
                    == PARTITIONS as usize
        })
    })
    .unwrap_or_else(|_| panic!("mirror metrics missing; log:\n{}", mirror.log()));
    assert_eq!(
        topic_config(&b.bootstrap(), TOPIC, MIRROR_SOURCE).as_deref(),
        Some("A:orders"),
        "the mirror topic is marked"
    );
    assert_eq!(
        topic_config(&b.bootstrap(), TOPIC, "retention.ms").as_deref(),
        Some("86400000"),
        "topic settings synced"
    );
    assert_eq!(
        topic_config(&a.bootstrap(), TOPIC, MIRROR_SOURCE),
        None,
        "the source is not marked"
    );
    let attributes: Vec<i16> = (0..PARTITIONS)
        .flat_map(|p| raw_log(b.addr(), TOPIC, p).batches())
        .map(|(_, attrs)| attrs)
        .collect();
    for (what, bit) in [
        ("compressed", 0x7),
        ("transactional", 1 << 4),
        ("control", 1 << 5),
    ] {
        assert!(
            attributes.iter().any(|a| a & bit != 0),
            "the copied logs hold {what} batches"
        );
    }

    // An ordinary producer to the mirror topic is refused, and the application sees it.
    let refused = produce_all(
        producer_config(&b.bootstrap())
            .set("acks", "all")
            .set("message.timeout.ms", "10000"),
        TOPIC,
        &[message(0, 0, "intruder")],
        WAIT,
    )
    .expect("produce to the mirror topic");
    match &refused[0].result {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::InvalidRequest)) => {}
        other => panic!("produce to a mirror topic: expected INVALID_REQUEST, got {other:?}"),
    }

    // SIGKILL mid-stream and restart: no gap, no duplicate.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, sent, bootstrap) = (stop.clone(), sent.clone(), a.bootstrap());
        std::thread::spawn(move || {
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                produce(
                    producer_config(&bootstrap)
                        .set("acks", "all")
                        .set("compression.type", "lz4"),
                    &format!("stream{round}"),
                    20,
                );
                sent.fetch_add(20 * PARTITIONS as usize, Ordering::Relaxed);
                round += 1;
            }
        })
    };
    wait_until(WAIT, "records streaming before the kill", || {
        sent.load(Ordering::Relaxed) >= 300
    })
    .expect("stream");
    mirror.kill();
    wait_until(WAIT, "records streaming while the mirror is down", || {
        sent.load(Ordering::Relaxed) >= 900
    })
    .expect("stream");
    let mirror = start_mirror(&config, &stderr);
    wait_until(WAIT, "records streaming after the restart", || {
        sent.load(Ordering::Relaxed) >= 1500
    })
    .expect("stream");
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer thread");
    wait_identical(&a, &b, "after SIGKILL and restart");

    // A group consumes part of the source and commits.
    let mut want: BTreeMap<i32, i64> = BTreeMap::new();
    {
        let consumer = group_consumer(&a.bootstrap());
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
                .expect("assignment");
        }
        consumer.assign(&tpl).expect("assign");
        let targets: BTreeMap<i32, usize> =
            (0..PARTITIONS).map(|p| (p, 57 + p as usize * 13)).collect();
        let mut read: BTreeMap<i32, usize> = BTreeMap::new();
        let deadline = Instant::now() + WAIT;
        while targets
            .iter()
            .any(|(p, n)| read.get(p).copied().unwrap_or(0) < *n)
        {
            assert!(Instant::now() < deadline, "group consumer stuck: {read:?}");
            let Some(m) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let m = m.expect("consume A");
            let count = read.entry(m.partition()).or_default();
            if *count < targets[&m.partition()] {
                *count += 1;
                want.insert(m.partition(), m.offset() + 1);
            }
        }
        let mut commit = TopicPartitionList::new();
        for (p, o) in &want {
            commit
                .add_partition_offset(TOPIC, *p, Offset::Offset(*o))
                .expect("commit list");
        }
        consumer
            .commit(&commit, CommitMode::Sync)
            .expect("commit on A");
    }
    assert_eq!(committed(&a.bootstrap()), want);
    wait_until(WAIT, "group offsets copied to B", || {
        committed(&b.bootstrap()) == want
    })
    .unwrap_or_else(|_| panic!("B's group: {:?}, A's: {want:?}", committed(&b.bootstrap())));

    // A transaction left open on the source, mirrored as it is.
    let open = transactional_producer(&a.bootstrap(), "left-open");
    open.begin_transaction().expect("begin");
    send_in_transaction(&open, &[0, 2], 7, "open");
    wait_identical(&a, &b, "with a transaction open");
    let before: Vec<RawLog> = (0..PARTITIONS)
        .map(|p| raw_log(a.addr(), TOPIC, p))
        .collect();
    assert!(
        before[0].last_stable_offset < before[0].high_watermark,
        "the open transaction holds A's last stable offset back"
    );

    // Failover.
    let out = failover(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr_text = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "failover failed: {:?}\n{stdout}\n{stderr_text}",
        out.status
    );
    assert!(
        stdout.contains("orders: failed over (was a mirror of A:orders)")
            && stdout.contains("failover: 1 topics failed over, 0 failed")
            && stdout.contains("orders-0: aborted the transaction producer")
            && stdout.contains("orders-2: aborted the transaction producer")
            && !stdout.contains("orders-1: aborted"),
        "{stdout}"
    );
    assert_eq!(topic_config(&b.bootstrap(), TOPIC, MIRROR_SOURCE), None);
    let again = failover(&config);
    let again_out = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "second failover: {again_out}");
    assert!(
        again_out.contains("nothing to fail over")
            && again_out.contains("failover: 0 topics failed over, 0 failed"),
        "{again_out}"
    );

    // The source is untouched by the failover.
    for (p, log) in before.iter().enumerate() {
        let now = raw_log(a.addr(), TOPIC, p as i32);
        assert_eq!(
            (now.high_watermark, now.bytes == log.bytes),
            (log.high_watermark, true),
            "A:{TOPIC}-{p} changed by the failover"
        );
    }
    assert_eq!(
        committed(&b.bootstrap()),
        want,
        "the group kept its offsets"
    );

    // A consumer of the group on B resumes exactly at the committed offsets.
    {
        let consumer = group_consumer(&b.bootstrap());
        consumer.subscribe(&[TOPIC]).expect("subscribe on B");
        let mut first: BTreeMap<i32, (i64, Option<Vec<u8>>)> = BTreeMap::new();
        let deadline = Instant::now() + WAIT;
        while first.len() < PARTITIONS as usize {
            assert!(Instant::now() < deadline, "group on B read only {first:?}");
            let Some(m) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let m = m.expect("consume B");
            first
                .entry(m.partition())
                .or_insert((m.offset(), m.key().map(<[u8]>::to_vec)));
        }
        for (p, (offset, key)) in &first {
            assert_eq!(*offset, want[p], "partition {p}: first offset read on B");
            let on_a =
                read_range(&a.bootstrap(), TOPIC, *p, *offset, *offset + 1, WAIT).expect("read A");
            assert_eq!(*key, on_a[0].key, "partition {p}: the same record as on A");
        }
    }

    // Writable now; a read_committed reader is not stuck behind the open transaction.
    let fresh = TestMessage {
        key: Some(b"after-failover".to_vec()),
        value: Some(b"written on B".to_vec()),
        partition: Some(0),
        ..TestMessage::default()
    };
    let written = produce_all(
        producer_config(&b.bootstrap())
            .set("acks", "all")
            .set("message.timeout.ms", "60000"),
        TOPIC,
        std::slice::from_ref(&fresh),
        Duration::from_secs(60),
    )
    .expect("produce to B after failover");
    let (_, at) = written[0]
        .result
        .clone()
        .expect("written to B after failover");
    assert!(
        at >= before[0].high_watermark,
        "appended after the mirrored log"
    );
    let tail = read_range(&b.bootstrap(), TOPIC, 0, want[&0], at + 1, WAIT)
        .expect("read_committed read past the open transaction");
    assert_eq!(tail.last().map(|m| m.key.clone()), Some(fresh.key.clone()));
    assert!(
        !tail
            .iter()
            .any(|m| m.key.as_deref().is_some_and(|k| k.starts_with(b"open-"))),
        "the source's open transaction is aborted on B"
    );

    // The source is still writable; the running mirror stops the failed-over partition.
    produce(
        producer_config(&a.bootstrap()).set("acks", "all"),
        "after",
        2,
    );
    // Either the linker's append is refused ("not a mirror topic") or the topic sync finds the
    // marker gone first; both stop the partition.
    wait_until(WAIT, "the mirror notices the failover", || {
        let log = mirror.log();
        log.contains("no longer a mirror topic") || log.contains("without strait.mirror.source")
    })
    .unwrap_or_else(|_| panic!("mirror log:\n{}", mirror.log()));
    assert_eq!(
        raw_log(b.addr(), TOPIC, 1).high_watermark,
        before[1].high_watermark,
        "nothing linked after the failover"
    );

    drop(open);
    drop(txn);
    eprintln!("mirror_linked took {:?}", started.elapsed());
}
