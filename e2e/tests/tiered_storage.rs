//! Tiered storage (KIP-405) seen through real clients: closed segments go to the object store
//! (the embedded local-directory store, and a real S3 server, s3s-fs), local disk keeps only the
//! tail, a librdkafka consumer reads everything back from offset 0 byte for byte, ListOffsets
//! finds offsets by timestamp in the remote tier and reports earliest-local (-4) and
//! latest-tiered (-5), the remote tier survives a broker restart, retention and topic deletion
//! remove remote objects, and a store outage or wrong credentials never block produce nor lose
//! data. A replica rebuilt from an empty disk starts at the remote tail with the leader epochs
//! and producer state of the data below it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use strait_e2e::checker::{read_topic, verify};
use strait_e2e::cluster::{Cluster, ClusterSpec, READY_TIMEOUT};
use strait_e2e::exposition::Scrape;
use strait_e2e::load::{BackgroundProducer, LoadPlan};
use strait_e2e::s3::{ACCESS_KEY, S3Server, SECRET_KEY, s3s_fs_binary};
use strait_e2e::wire::WireClient;
use strait_e2e::{
    Admin, Broker, BrokerOptions, TestMessage, consumer_config, free_port,
    idempotent_producer_config, produce_all, read_range, wait_until,
};

const VALUE_BYTES: usize = 512;
const BASE_TS: i64 = 1_700_000_000_000;
const WAIT: Duration = Duration::from_secs(60);

const EARLIEST: i64 = -2;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// Message `i`: a recognisable key and value, and a timestamp that grows with `i`.
fn message(i: usize) -> TestMessage {
    let mut value = format!("value-{i:08}-").into_bytes();
    value.resize(VALUE_BYTES, b'a' + (i % 26) as u8);
    TestMessage {
        key: Some(format!("key-{i}").into_bytes()),
        value: Some(value),
        headers: vec![("h".into(), Some(i.to_string().into_bytes()))],
        partition: Some(0),
        timestamp: Some(BASE_TS + i as i64),
    }
}

fn produce(bootstrap: &str, topic: &str, range: std::ops::Range<usize>) {
    produce_with(bootstrap, topic, range, &[]);
}

/// [`produce`] with further producer settings (compression).
fn produce_with(
    bootstrap: &str,
    topic: &str,
    range: std::ops::Range<usize>,
    extra: &[(&str, &str)],
) {
    let messages: Vec<TestMessage> = range.clone().map(message).collect();
    // Batches stay well below segment.bytes (a batch never spans segments).
    let mut config = idempotent_producer_config(bootstrap);
    config.set("batch.size", "65536");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let deliveries =
        produce_all(&config, topic, &messages, Duration::from_secs(120)).expect("produce");
    for d in &deliveries {
        let (partition, offset) = d.result.clone().expect("every record acknowledged");
        assert_eq!((partition, offset), (0, (range.start + d.index) as i64));
    }
}

/// Reads [0, n) from the start of the log and checks every record byte for byte.
fn check_all(bootstrap: &str, topic: &str, n: usize) {
    let read = read_range(bootstrap, topic, 0, 0, n as i64, WAIT).expect("read from offset 0");
    assert_eq!(read.len(), n, "records read from offset 0");
    for (i, m) in read.iter().enumerate() {
        assert_eq!(m.offset, i as i64);
        assert!(m.same_content(&message(i)), "record {i} differs");
        assert_eq!(m.timestamp, Some(BASE_TS + i as i64));
    }
}

fn list_offset(broker: &Broker, topic: &str, timestamp: i64) -> i64 {
    list_offset_at(broker.addr(), topic, timestamp)
}

/// ListOffsets against the broker at `addr` (which must lead partition 0).
fn list_offset_at(addr: SocketAddr, topic: &str, timestamp: i64) -> i64 {
    match try_list_offset_at(addr, topic, timestamp) {
        Ok(offset) => offset,
        Err(code) => panic!("ListOffsets {timestamp} error {code}"),
    }
}

/// ListOffsets for partition 0 at `addr`: the offset, or the partition's error code.
fn try_list_offset_at(addr: SocketAddr, topic: &str, timestamp: i64) -> Result<i64, i16> {
    let mut client = WireClient::connect(addr).expect("connect");
    let response: ListOffsetsResponse = client
        .call(
            ApiKey::ListOffsets,
            9,
            &ListOffsetsRequest::default()
                .with_replica_id((-1).into())
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(vec![
                            ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(timestamp),
                        ]),
                ]),
        )
        .expect("ListOffsets");
    let p = &response.topics[0].partitions[0];
    if p.error_code != 0 {
        return Err(p.error_code);
    }
    Ok(p.offset)
}

/// librdkafka's offsetsForTimes.
fn offset_for_time(bootstrap: &str, topic: &str, ts: i64) -> i64 {
    let consumer: BaseConsumer = consumer_config(bootstrap).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Offset(ts))
        .expect("tpl");
    let found = consumer
        .offsets_for_times(tpl, Duration::from_secs(10))
        .expect("offsets_for_times");
    match found.elements()[0].offset() {
        rdkafka::Offset::Offset(o) => o,
        other => panic!("offset for {ts}: {other:?}"),
    }
}

/// Files under `dir` whose names end with `suffix`, recursively.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(files(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            out.push(path);
        }
    }
    out
}

fn bytes_of(paths: &[PathBuf]) -> u64 {
    paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

fn scrape(metrics: &str) -> Scrape {
    Scrape::fetch(metrics.parse().expect("addr"), Duration::from_secs(5)).expect("scrape")
}

fn metric(metrics: &str, name: &str, topic: &str) -> f64 {
    scrape(metrics)
        .sum(name, &[("topic", topic)])
        .unwrap_or(0.0)
}

const TOPIC_CONFIGS: &[(&str, &str)] = &[
    ("remote.storage.enable", "true"),
    ("segment.bytes", "262144"),
    ("local.retention.bytes", "524288"),
    ("retention.ms", "-1"),
];

fn start(extra: &[(&str, String)]) -> (Broker, String) {
    let metrics = format!("127.0.0.1:{}", free_port().expect("port"));
    let mut overrides: Vec<(String, String)> = vec![
        ("remote.log.manager.task.interval.ms".into(), "200".into()),
        ("log.retention.check.interval.ms".into(), "200".into()),
        ("metrics.listener".into(), metrics.clone()),
    ];
    overrides.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let broker = Broker::start_with(BrokerOptions {
        overrides,
        ..BrokerOptions::default()
    })
    .expect("start broker");
    (broker, metrics)
}

#[test]
fn local_directory_store_offloads_serves_and_expires() {
    // No store configured: the embedded default keeps remote segments beside the data dir.
    let (mut broker, metrics) = start(&[]);
    let store = PathBuf::from(format!("{}-remote", broker.log_dir().display()));
    let bootstrap = broker.bootstrap();
    let topic = "tiered-local";
    let admin = Admin::new(&bootstrap).expect("admin");
    // Kafka's rules: no tiering of compacted topics, local retention within total retention.
    let refused = [
        vec![
            ("remote.storage.enable", "true"),
            ("cleanup.policy", "compact"),
        ],
        vec![
            ("remote.storage.enable", "true"),
            ("retention.ms", "60000"),
            ("local.retention.ms", "120000"),
        ],
    ];
    for configs in refused {
        let created = admin.create_topic("tiered-refused", 1, &configs);
        assert!(created.is_err(), "{configs:?} accepted");
    }
    admin.create_topic(topic, 1, TOPIC_CONFIGS).expect("create");
    let n = 16_000;
    produce(&bootstrap, topic, 0..n);

    // Copied segments leave local disk; the remote tier holds the log's start.
    wait_until(WAIT, "local log start moves into the remote tier", || {
        list_offset(&broker, topic, EARLIEST_LOCAL) > 4_000
    })
    .expect("local retention after copying");
    let partition_dir = broker.log_dir().join(format!("{topic}-0"));
    wait_until(WAIT, "local disk holds only the tail", || {
        bytes_of(&files(&partition_dir, ".log")) < 2 << 20
    })
    .expect("local.retention.bytes applied");
    assert_eq!(list_offset(&broker, topic, EARLIEST), 0);
    let tiered = list_offset(&broker, topic, LATEST_TIERED);
    let local_start = list_offset(&broker, topic, EARLIEST_LOCAL);
    assert!(
        tiered >= local_start - 1,
        "tiered {tiered} local start {local_start}"
    );
    let remote = bytes_of(&files(&store, ".log"));
    assert!(remote > 4 << 20, "the store holds the rest: {remote} bytes");

    check_all(&bootstrap, topic, n);
    // A timestamp far below the local log start is found in the remote tier.
    assert_eq!(offset_for_time(&bootstrap, topic, BASE_TS + 1_234), 1_234);
    assert!(
        metric(
            &metrics,
            "kafka_server_brokertopicmetrics_remotecopybytes_total",
            topic
        ) > 0.0
    );
    assert!(
        metric(
            &metrics,
            "kafka_server_brokertopicmetrics_remotefetchbytes_total",
            topic
        ) > 0.0
    );

    // The remote tier is in the metadata log: a SIGKILLed broker serves it again.
    broker.kill().expect("kill");
    broker.restart().expect("restart");
    // Ready may come a moment before the partition is led again (NOT_LEADER_OR_FOLLOWER, which
    // clients retry).
    wait_until(
        WAIT,
        "the restarted broker serves the log from offset 0",
        || try_list_offset_at(broker.addr(), topic, EARLIEST) == Ok(0),
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {:?}",
            try_list_offset_at(broker.addr(), topic, EARLIEST)
        )
    });
    let head = read_range(&bootstrap, topic, 0, 0, 100, WAIT).expect("read after restart");
    assert!(
        head.iter()
            .enumerate()
            .all(|(i, m)| m.same_content(&message(i)))
    );

    // retention.bytes applies to the whole log: remote segments go, the log start moves.
    let before = files(&store, ".log").len();
    alter_topic(&bootstrap, topic, &[("retention.bytes", "2097152")]);
    wait_until(WAIT, "remote retention deletes remote segments", || {
        list_offset(&broker, topic, EARLIEST) > 0 && files(&store, ".log").len() < before
    })
    .expect("remote retention");
    let earliest = list_offset(&broker, topic, EARLIEST);
    let tail = read_range(&bootstrap, topic, 0, earliest, earliest + 10, WAIT).expect("read");
    assert_eq!(tail[0].offset, earliest);

    // Deleting the topic deletes its remote objects.
    admin.delete_topic(topic).expect("delete topic");
    wait_until(WAIT, "the store holds nothing of the deleted topic", || {
        files(&store, "")
            .iter()
            .all(|p| !p.to_string_lossy().contains(topic))
    })
    .expect("remote data of a deleted topic purged");
    broker.assert_alive().expect("broker alive");
}

/// Records of the volume test: 2.1 million of 512-byte values, just over 1 GiB of values.
const VOLUME_RECORDS: usize = 2_100_000;
/// Records produced and checked at a time, so the test never holds the whole volume.
const VOLUME_CHUNK: usize = 150_000;

/// Produces [`VOLUME_RECORDS`] to a fresh tiered topic through `broker`, waits until local disk
/// holds only the tail and `store` the rest, finds a timestamp deep in the remote part, and reads
/// everything back from offset 0 byte for byte.
fn gibibyte_through(broker: &mut Broker, topic: &str, store: &Path) {
    let bootstrap = broker.bootstrap();
    Admin::new(&bootstrap)
        .expect("admin")
        .create_topic(
            topic,
            1,
            &[
                ("remote.storage.enable", "true"),
                ("segment.bytes", "16777216"),
                // The records' timestamps are years old: as in Kafka, segment.ms counts from
                // the first record's timestamp, so the default would roll at every batch.
                ("segment.ms", "315360000000"),
                ("local.retention.bytes", "33554432"),
                ("retention.ms", "-1"),
            ],
        )
        .expect("create");
    let started = std::time::Instant::now();
    for from in (0..VOLUME_RECORDS).step_by(VOLUME_CHUNK) {
        produce(
            &bootstrap,
            topic,
            from..(from + VOLUME_CHUNK).min(VOLUME_RECORDS),
        );
    }
    let produced = started.elapsed();
    let n = VOLUME_RECORDS as i64;
    let partition_dir = broker.log_dir().join(format!("{topic}-0"));
    wait_until(
        Duration::from_secs(180),
        "all but the tail copied and deleted locally",
        || {
            list_offset(broker, topic, LATEST_TIERED) > n - 200_000
                && bytes_of(&files(&partition_dir, ".log")) < 80 << 20
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: tiered up to {}, {} local bytes",
            list_offset(broker, topic, LATEST_TIERED),
            bytes_of(&files(&partition_dir, ".log"))
        )
    });
    let copied = started.elapsed();
    eprintln!("{topic}: produced in {produced:?}, copied by {copied:?}");
    let remote = bytes_of(&files(store, ".log"));
    let local = bytes_of(&files(&partition_dir, ".log"));
    assert!(
        remote + local > 1 << 30 && local < 80 << 20,
        "1 GiB+ in all, all but the tail remote: {remote} bytes remote, {local} local"
    );
    assert_eq!(list_offset(broker, topic, EARLIEST), 0);
    assert!(list_offset(broker, topic, EARLIEST_LOCAL) > n - 200_000);
    // A timestamp deep in the remote part.
    assert_eq!(
        offset_for_time(&bootstrap, topic, BASE_TS + 1_234_567),
        1_234_567
    );
    let reading = std::time::Instant::now();
    for from in (0..VOLUME_RECORDS).step_by(VOLUME_CHUNK) {
        let until = (from + VOLUME_CHUNK).min(VOLUME_RECORDS);
        let read =
            read_range(&bootstrap, topic, 0, from as i64, until as i64, WAIT).expect("read back");
        assert_eq!(read.len(), until - from, "records read from {from}");
        for (m, i) in read.iter().zip(from..) {
            assert_eq!(m.offset, i as i64);
            assert!(m.same_content(&message(i)), "record {i} differs");
            assert_eq!(m.timestamp, Some(BASE_TS + i as i64));
        }
    }
    eprintln!(
        "{topic}: {VOLUME_RECORDS} records produced in {produced:?}, copied by {copied:?}, \
         {remote} bytes remote, read back from offset 0 in {:?}",
        reading.elapsed()
    );
    broker.assert_alive().expect("broker alive");
}

#[test]
fn a_gibibyte_goes_remote_and_reads_back_byte_exact() {
    // The embedded default store (a local directory beside the data dir).
    let (mut broker, _) = start(&[]);
    let store = PathBuf::from(format!("{}-remote", broker.log_dir().display()));
    gibibyte_through(&mut broker, "tiered-volume-local", &store);
    drop(broker);
    std::fs::remove_dir_all(&store).ok();
    // A real S3 server.
    if !s3_available() {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let bucket = "strait-volume";
    let s3 = S3Server::start(work.path(), bucket).expect("start s3s-fs");
    let (mut broker, _) = start(&s3_overrides(&s3, bucket, SECRET_KEY));
    gibibyte_through(&mut broker, "tiered-volume-s3", &s3.bucket_dir(bucket));
}

/// ListOffsets by timestamp into compressed remote batches answers the exact record, not the
/// batch's first one: the broker decompresses the batch it reads back from the store.
#[test]
fn timestamps_inside_compressed_remote_batches_are_exact() {
    let (mut broker, _) = start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = "tiered-compressed";
    // lz4 shrinks these values to a few bytes each: keep (almost) nothing local.
    Admin::new(&bootstrap)
        .expect("admin")
        .create_topic(
            topic,
            1,
            &[
                ("remote.storage.enable", "true"),
                ("segment.bytes", "65536"),
                ("local.retention.bytes", "1"),
                ("retention.ms", "-1"),
            ],
        )
        .expect("create");
    let n = 16_000;
    produce_with(&bootstrap, topic, 0..n, &[("compression.type", "lz4")]);
    wait_until(WAIT, "the head of the log only remote", || {
        list_offset(&broker, topic, EARLIEST_LOCAL) > 4_000
    })
    .expect("local retention after copying");
    for i in [1_234usize, 2_001, 3_999] {
        let ts = BASE_TS + i as i64;
        assert_eq!(
            offset_for_time(&bootstrap, topic, ts),
            i as i64,
            "timestamp of record {i}"
        );
    }
    let head = read_range(&bootstrap, topic, 0, 0, 2_000, WAIT).expect("read compressed head");
    assert!(
        head.iter()
            .enumerate()
            .all(|(i, m)| m.same_content(&message(i)))
    );
    broker.assert_alive().expect("broker alive");
}

/// AlterConfigs replaces a topic's overrides: the test's topic configs plus `extra`.
fn alter_topic(bootstrap: &str, topic: &str, extra: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin");
    let mut change = AlterConfig::new(ResourceSpecifier::Topic(topic));
    for (k, v) in TOPIC_CONFIGS.iter().chain(extra) {
        change = change.set(k, v);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results = runtime
        .block_on(admin.alter_configs([&change], &AdminOptions::new()))
        .expect("alter configs");
    for r in results {
        r.expect("config accepted");
    }
}

fn s3_overrides(s3: &S3Server, bucket: &str, secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("rsm.config.storage.backend", "s3".into()),
        ("rsm.config.storage.s3.bucket.name", bucket.into()),
        ("rsm.config.storage.s3.endpoint.url", s3.endpoint()),
        ("rsm.config.storage.s3.region", "us-east-1".into()),
        (
            "rsm.config.storage.s3.path.style.access.enabled",
            "true".into(),
        ),
        ("rsm.config.storage.aws.access.key.id", ACCESS_KEY.into()),
        ("rsm.config.storage.aws.secret.access.key", secret.into()),
        ("rsm.config.key.prefix", "strait/".into()),
        ("remote.log.storage.system.enable", "true".into()),
    ]
}

/// s3s-fs is installed by e2e/setup.sh; CI must have it, a developer's machine may not.
fn s3_available() -> bool {
    if s3s_fs_binary().is_some() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "s3s-fs missing in CI: e2e/setup.sh installs it"
    );
    eprintln!("skipping: s3s-fs not installed (run e2e/setup.sh)");
    false
}

#[test]
fn s3_outage_and_wrong_credentials_never_block_produce_nor_lose_data() {
    if !s3_available() {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let bucket = "strait-tiered";
    let mut s3 = S3Server::start(work.path(), bucket).expect("start s3s-fs");
    let (mut broker, metrics) = start(&s3_overrides(&s3, bucket, SECRET_KEY));
    let bootstrap = broker.bootstrap();
    let topic = "tiered-s3";
    Admin::new(&bootstrap)
        .expect("admin")
        .create_topic(topic, 1, TOPIC_CONFIGS)
        .expect("create");
    produce(&bootstrap, topic, 0..8_000);
    wait_until(WAIT, "segments copied to S3", || {
        list_offset(&broker, topic, EARLIEST_LOCAL) > 2_000
            && files(&s3.bucket_dir(bucket), ".log").len() >= 4
    })
    .expect("copies to s3s-fs");

    // The store goes away: produce goes on, copies fail and are retried, local disk keeps it all.
    s3.stop();
    produce(&bootstrap, topic, 8_000..16_000);
    wait_until(WAIT, "failed copies counted", || {
        metric(
            &metrics,
            "kafka_server_brokertopicmetrics_remotecopyerrors_total",
            topic,
        ) > 0.0
    })
    .expect("copy errors while the store is down");
    // Nothing is copied while the store is down, and nothing uncopied leaves local disk.
    let tiered = list_offset(&broker, topic, LATEST_TIERED);
    let local_start = list_offset(&broker, topic, EARLIEST_LOCAL);
    assert!(
        local_start <= tiered + 1,
        "local start {local_start}, tiered {tiered}"
    );
    assert!(tiered < 8_000, "copied while the store was down: {tiered}");
    assert!(
        broker.stderr().contains("tiered storage"),
        "a log line says why"
    );

    // Back: the copies resume and local retention catches up.
    s3.restart().expect("restart s3s-fs");
    wait_until(WAIT, "copying resumes after the outage", || {
        list_offset(&broker, topic, LATEST_TIERED) > 12_000
            && list_offset(&broker, topic, EARLIEST_LOCAL) > local_start
    })
    .expect("copies resume");
    check_all(&bootstrap, topic, 16_000);
    broker.assert_alive().expect("broker alive");
    drop(broker);

    // Wrong credentials: a clear log line and metric, produce unaffected, data all local.
    let (mut broker, metrics) = start(&s3_overrides(&s3, bucket, "not-the-secret"));
    let bootstrap = broker.bootstrap();
    let topic = "tiered-badcreds";
    Admin::new(&bootstrap)
        .expect("admin")
        .create_topic(topic, 1, TOPIC_CONFIGS)
        .expect("create");
    produce(&bootstrap, topic, 0..4_000);
    wait_until(WAIT, "copies refused by the store are counted", || {
        metric(
            &metrics,
            "kafka_server_brokertopicmetrics_remotecopyerrors_total",
            topic,
        ) > 0.0
    })
    .expect("copy errors with wrong credentials");
    assert_eq!(list_offset(&broker, topic, EARLIEST_LOCAL), 0);
    assert!(
        broker.stderr().contains("copying a segment failed"),
        "{}",
        broker.stderr_tail()
    );
    check_all(&bootstrap, topic, 4_000);
    broker.assert_alive().expect("broker alive");
}

/// Base offsets of the complete segments (those with a manifest) in the store, with how many
/// complete copies each has.
fn complete_copies(store: &Path) -> BTreeMap<i64, usize> {
    let mut out = BTreeMap::new();
    for manifest in files(store, ".manifest") {
        let name = manifest
            .file_name()
            .map(|n| n.to_string_lossy().to_string());
        if let Some(base) = name.and_then(|n| n.get(..20).and_then(|b| b.parse::<i64>().ok())) {
            *out.entry(base).or_insert(0) += 1;
        }
    }
    out
}

#[test]
fn leader_killed_while_copying_and_a_follower_rebuilt_from_an_empty_disk() {
    const TOPIC: &str = "tiered-cluster";
    let work = tempfile::tempdir().expect("temp dir");
    let store = work.path().join("store");
    let mut spec = ClusterSpec::combined(&["a", "b", "c"]);
    spec.overrides.extend(
        [
            ("remote.log.manager.task.interval.ms", "100"),
            ("log.retention.check.interval.ms", "200"),
            ("rsm.config.storage.backend", "filesystem"),
            (
                "rsm.config.storage.root",
                store.to_str().expect("utf-8 path"),
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let mut cluster = Cluster::start(spec).expect("start cluster");
    cluster
        .create_topic_assigned(
            TOPIC,
            &[&[1, 2, 3]],
            &[
                ("remote.storage.enable", "true"),
                ("segment.bytes", "65536"),
                ("local.retention.bytes", "131072"),
                ("retention.ms", "-1"),
                ("min.insync.replicas", "2"),
            ],
        )
        .expect("create topic");
    let mut config = idempotent_producer_config(&cluster.bootstrap());
    config.set("batch.size", "16384");
    let producer = BackgroundProducer::start(
        config,
        TOPIC,
        LoadPlan {
            partitions: 1,
            limit: None,
            rate: Some(4_000),
            max_duration: Duration::from_secs(120),
        },
    )
    .expect("producer");
    let leader = cluster.node(1).and_then(|n| n.addr()).expect("node 1");
    wait_until(WAIT, "node 1 to copy segments", || {
        list_offset_at(leader, TOPIC, LATEST_TIERED) > 2_000
    })
    .expect("copies before the fault");
    // Copies run back to back at this rate: the kill lands during one (or between two).
    let before = list_offset_at(leader, TOPIC, LATEST_TIERED);
    cluster.kill(1).expect("SIGKILL the leader");
    let moved = cluster
        .wait_for_leader(TOPIC, 0, WAIT, |p| p.leader > 1)
        .expect("a new leader");
    let new_leader = cluster
        .node(moved.leader as u32)
        .and_then(|n| n.addr())
        .expect("new leader address");
    wait_until(WAIT, "the new leader to continue copying", || {
        list_offset_at(new_leader, TOPIC, LATEST_TIERED) > before + 2_000
    })
    .expect("copies after the leader change");

    // Node 1 comes back without its replica: it starts after the highest copied offset.
    let replica_dir = cluster
        .node(1)
        .expect("node 1")
        .log_dir()
        .join(format!("{TOPIC}-0"));
    std::fs::remove_dir_all(&replica_dir).expect("wipe node 1's replica");
    cluster.restart(1).expect("restart node 1");
    cluster
        .wait_ready(1, READY_TIMEOUT)
        .expect("node 1 back in the ISR");
    let first_local = strait_e2e::segments::segment_files(&replica_dir)
        .expect("node 1's segments")
        .first()
        .map(|(base, _)| *base)
        .expect("a segment");
    assert!(
        first_local > 0,
        "node 1 rebuilt from offset 0 instead of the remote tail"
    );
    // Its leader epochs reach below its local data (from the remote segments' metadata), so
    // OffsetForLeaderEpoch answers for the whole log; its producer state comes from the
    // producer snapshot uploaded with the remote segment below its start.
    let checkpoint = replica_dir.join("leader-epoch-checkpoint");
    let first_epoch_start = || {
        let text = std::fs::read_to_string(&checkpoint).ok()?;
        text.lines()
            .nth(2)?
            .split_whitespace()
            .nth(1)?
            .parse::<i64>()
            .ok()
    };
    wait_until(
        WAIT,
        "node 1's leader epochs to cover the remote tier",
        || first_epoch_start().is_some_and(|o| o < first_local),
    )
    .unwrap_or_else(|e| panic!("{e}: first epoch starts at {:?}", first_epoch_start()));
    wait_until(WAIT, "node 1 to install the remote producer state", || {
        cluster.node(1).is_ok_and(|n| {
            n.stderr()
                .contains("installed the remote tier's producer state")
        })
    })
    .unwrap_or_else(|e| {
        let tail = cluster.node(1).map(|n| n.stderr_tail()).unwrap_or_default();
        panic!("{e}: {tail}")
    });

    let acked = producer.stop().expect("stop producer");
    let tiered = list_offset_at(new_leader, TOPIC, LATEST_TIERED);
    // A copy the dead leader left unfinished is deleted by its successor: every complete
    // segment in the store is there once (a re-rolled segment copied again after the leader
    // change starts at another offset).
    wait_until(WAIT, "no segment copied twice", || {
        complete_copies(&store).values().all(|n| *n == 1)
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", complete_copies(&store)));
    let content = read_topic(&cluster.bootstrap(), TOPIC, Duration::from_secs(90)).expect("read");
    let report = verify(&acked, &content);
    eprintln!(
        "{TOPIC}: {} acked, {} read, tiered up to {tiered}, node 1 starts at {first_local}",
        report.acked, report.read
    );
    report.check().expect("nothing acknowledged lost");
}
