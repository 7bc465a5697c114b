//! JBOD: a broker with two log dirs. Partitions land on both and DescribeLogDirs reports sizes
//! equal to the segment files on disk; AlterReplicaLogDirs moves every partition to the other dir
//! under a running acks=all producer without losing or doubling a record; and a dir whose disk
//! goes away (a tmpfs unmounted under the broker) takes only its partitions offline.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strait_e2e::checker::{read_topic, verify};
use strait_e2e::exposition::Scrape;
use strait_e2e::load::{BackgroundProducer, LoadPlan};
use strait_e2e::log_dirs::{self, Described, DirState, segment_bytes};
use strait_e2e::tmpfs::Mount;
use strait_e2e::wire::{WireClient, produce_request, produce_result, record_batch};
use strait_e2e::{
    Admin, Broker, BrokerOptions, free_port, idempotent_producer_config, read_partition, wait_for,
    wait_until,
};

const PARTITIONS: i32 = 4;
/// Records written to each partition before the move: 400 batches of 3 (1.2 MB, more than the
/// broker copies under the log's lock, so the move copies in rounds).
const PREFILL: usize = 1200;
const KAFKA_STORAGE_ERROR: i16 = 56;
const LOG_DIR_NOT_FOUND: i16 = 57;
const REPLICA_NOT_AVAILABLE: i16 = 9;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

fn describe(client: &mut WireClient) -> Described {
    log_dirs::describe(client).expect("DescribeLogDirs")
}

fn alter(client: &mut WireClient, moves: &[(String, &str, i32)]) -> Vec<(String, i32, i16)> {
    log_dirs::alter(client, moves).expect("AlterReplicaLogDirs")
}

fn start_two_dirs(dirs: &[PathBuf], metrics: Option<&str>) -> Broker {
    let joined = dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut overrides = vec![
        ("log.dirs", joined.as_str()),
        ("num.partitions", "4"),
        // Small segments: several per partition, and a roll soon after a disk goes away.
        ("log.segment.bytes", "65536"),
    ];
    if let Some(m) = metrics {
        overrides.push(("metrics.listener", m));
    }
    Broker::start_with(BrokerOptions::with_overrides(&overrides)).expect("start broker")
}

#[test]
fn describe_and_move_replicas_under_load() {
    let work = tempfile::tempdir().expect("temp dir");
    let dirs = vec![work.path().join("d1"), work.path().join("d2")];
    let mut broker = start_two_dirs(&dirs, None);
    let topic = "jbod";
    Admin::new(&broker.bootstrap())
        .and_then(|a| a.create_topic(topic, PARTITIONS, &[]))
        .expect("create topic");
    let mut client = WireClient::connect(broker.addr()).expect("connect");

    // (a) some data in every partition; sizes as on disk; partitions on both dirs.
    for p in 0..PARTITIONS {
        for round in 0..400u32 {
            let value = vec![round as u8; 1000];
            let batch = record_batch(&[&value, &value, &value]).expect("batch");
            let response: ProduceResponse = client
                .call(ApiKey::Produce, 9, &produce_request(topic, p, -1, batch))
                .expect("produce");
            assert_eq!(produce_result(&response).expect("result").0, 0);
        }
    }
    let described = describe(&mut client);
    assert_eq!(described.dirs.len(), 2);
    for (dir, state) in &described.dirs {
        let (total, usable) = (state.total_bytes, state.usable_bytes);
        assert_eq!(state.error_code, 0, "{dir}");
        assert!(
            total > 0 && usable > 0 && usable <= total,
            "{dir}: {total} {usable}"
        );
    }
    let before = described.placement(topic);
    assert_eq!(before.len(), PARTITIONS as usize, "{before:?}");
    let used: std::collections::BTreeSet<&String> = before.values().collect();
    assert_eq!(used.len(), 2, "partitions on both dirs: {before:?}");
    for ((dir, t, p), r) in &described.replicas {
        let on_disk = segment_bytes(&Path::new(dir).join(format!("{t}-{p}"))).expect("sizes");
        assert_eq!(r.size, on_disk, "{dir} {t}-{p}");
        assert_eq!((r.offset_lag, r.is_future), (0, false));
        if t == topic {
            assert!(r.size > 1_200_000, "{t}-{p}: {}", r.size);
        }
    }

    // Errors: an unknown dir, a partition not hosted.
    let errors = alter(
        &mut client,
        &[
            ("/no/such/dir".into(), topic, 0),
            (dirs[0].display().to_string(), "no-such-topic", 0),
        ],
    );
    assert!(
        errors.contains(&(topic.to_string(), 0, LOG_DIR_NOT_FOUND)),
        "{errors:?}"
    );
    assert!(
        errors.contains(&("no-such-topic".to_string(), 0, REPLICA_NOT_AVAILABLE)),
        "{errors:?}"
    );

    // (b) move every partition to the other dir while an acks=all producer runs.
    let mut config = idempotent_producer_config(&broker.bootstrap());
    config.set("message.timeout.ms", "120000");
    let producer = BackgroundProducer::start(
        config,
        topic,
        LoadPlan {
            partitions: PARTITIONS,
            limit: None,
            rate: Some(3000),
            max_duration: Duration::from_secs(120),
        },
    )
    .expect("producer");
    wait_until(
        Duration::from_secs(60),
        "3000 acked before the move",
        || producer.acked() >= 3000,
    )
    .expect("acked");
    let other = |dir: &String| {
        dirs.iter()
            .map(|d| d.display().to_string())
            .find(|d| d != dir)
            .expect("other dir")
    };
    let moves: Vec<(String, &str, i32)> = before
        .iter()
        .map(|(p, dir)| (other(dir), topic, *p))
        .collect();
    let results = alter(&mut client, &moves);
    assert!(results.iter().all(|(_, _, e)| *e == 0), "{results:?}");
    let expected: BTreeMap<i32, String> = moves.iter().map(|(d, _, p)| (*p, d.clone())).collect();
    wait_for(
        Duration::from_secs(60),
        "every partition in its new dir",
        || {
            let d = describe(&mut client);
            (!d.moving() && d.placement(topic) == expected).then_some(())
        },
    )
    .expect("moved");
    let acked_at_move = producer.acked();
    wait_until(Duration::from_secs(60), "appends after the move", || {
        producer.acked() >= acked_at_move + 3000
    })
    .expect("producing after the move");
    let reports = producer.stop().expect("producer stopped");
    let mut content =
        read_topic(&broker.bootstrap(), topic, Duration::from_secs(60)).expect("read");
    // The records of (a) come first in every partition, intact; the producer's follow.
    for (p, records) in content.iter_mut() {
        let prefill: Vec<_> = records.drain(..PREFILL.min(records.len())).collect();
        assert_eq!(prefill.len(), PREFILL, "partition {p}");
        for (i, (offset, value)) in prefill.iter().enumerate() {
            assert_eq!(*offset, i as i64);
            assert_eq!(value.as_slice(), &[(i / 3) as u8; 1000][..], "{p}@{offset}");
        }
    }
    let report = verify(&reports, &content);
    println!(
        "move under load: {} acked, {} failed, {} read",
        report.acked, report.failed, report.read
    );
    report.check().expect("nothing lost or duplicated");
    assert_eq!(report.failed, 0);
    for (p, dir) in &expected {
        assert!(Path::new(dir).join(format!("{topic}-{p}")).is_dir());
        let old = &before[p];
        assert!(
            !Path::new(old).join(format!("{topic}-{p}")).exists(),
            "{old} still has {p}"
        );
    }
    // The moved logs survive a restart where they are now.
    broker.restart().expect("restart");
    let mut client = WireClient::connect(broker.addr()).expect("connect");
    assert_eq!(describe(&mut client).placement(topic), expected);
    let again = read_topic(&broker.bootstrap(), topic, Duration::from_secs(60)).expect("read");
    assert_eq!(
        again.values().map(Vec::len).sum::<usize>(),
        report.read + PREFILL * PARTITIONS as usize,
        "same records after restart"
    );
    broker.assert_alive().expect("alive");
}

/// Leader of each partition of `topic` (-1: none), from Metadata.
fn leaders(client: &mut WireClient, topic: &str) -> BTreeMap<i32, i32> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(topic.to_string())),
        ))]));
    let response: MetadataResponse = client
        .call(ApiKey::Metadata, 12, &request)
        .expect("Metadata");
    response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect()
}

fn produce_one(client: &mut WireClient, topic: &str, p: i32) -> i16 {
    let value = vec![b'x'; 4000];
    let batch = record_batch(&[&value, &value]).expect("batch");
    let response: ProduceResponse = client
        .call(ApiKey::Produce, 9, &produce_request(topic, p, -1, batch))
        .expect("produce answered");
    produce_result(&response).expect("result").0
}

#[test]
fn a_failed_dir_takes_only_its_partitions_offline() {
    let work = tempfile::tempdir().expect("temp dir");
    let dirs = vec![work.path().join("d1"), work.path().join("d2")];
    std::fs::create_dir_all(&dirs[1]).expect("mount point");
    let mount = match Mount::tmpfs(&dirs[1], "64m") {
        Ok(m) => m,
        Err(reason) => {
            println!(
                "SKIP a_failed_dir_takes_only_its_partitions_offline: mount not permitted: {reason}"
            );
            return;
        }
    };
    let metrics_port = free_port().expect("port");
    let metrics = format!("127.0.0.1:{metrics_port}");
    // Declared after the mount so that it is dropped (killed) before the unmount.
    let mut broker = start_two_dirs(&dirs, Some(&metrics));
    let topic = "fail";
    Admin::new(&broker.bootstrap())
        .and_then(|a| a.create_topic(topic, PARTITIONS, &[]))
        .expect("create topic");
    let mut client = WireClient::connect(broker.addr()).expect("connect");
    for p in 0..PARTITIONS {
        for _ in 0..5 {
            assert_eq!(produce_one(&mut client, topic, p), 0);
        }
    }
    let before = describe(&mut client).placement(topic);
    let failing = dirs[1].display().to_string();
    let (lost, kept): (Vec<i32>, Vec<i32>) = (0..PARTITIONS).partition(|p| before[p] == failing);
    assert!(!lost.is_empty() && !kept.is_empty(), "{before:?}");

    mount.pull().expect("pull the disk");
    // Appends go on into open files until one needs a new file (the next segment roll); then
    // the dir is offline and its partitions answer KAFKA_STORAGE_ERROR, until the controller
    // hears of it and takes their leadership (this broker holds their only replica, so they
    // have none: NOT_LEADER_OR_FOLLOWER, as from Kafka).
    let mut saw_storage_error = false;
    wait_for(
        Duration::from_secs(60),
        "the failed dir's partitions refusing appends",
        || {
            let codes: Vec<i16> = lost
                .iter()
                .map(|p| produce_one(&mut client, topic, *p))
                .collect();
            saw_storage_error |= codes.contains(&KAFKA_STORAGE_ERROR);
            codes
                .iter()
                .all(|c| [KAFKA_STORAGE_ERROR, NOT_LEADER_OR_FOLLOWER].contains(c))
                .then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}; stderr:\n{}", broker.stderr_tail()));
    assert!(saw_storage_error);
    wait_for(
        Duration::from_secs(30),
        "the controller to take the offline partitions' leadership",
        || {
            let now = leaders(&mut client, topic);
            lost.iter().all(|p| now[p] == -1).then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}; stderr:\n{}", broker.stderr_tail()));
    let now = leaders(&mut client, topic);
    assert!(kept.iter().all(|p| now[p] == 1), "{now:?}");
    broker.assert_alive().expect("the broker stays up");
    for p in &kept {
        assert_eq!(
            produce_one(&mut client, topic, *p),
            0,
            "partition {p} keeps serving"
        );
        let records = read_partition(&broker.bootstrap(), topic, *p, Duration::from_secs(30))
            .expect("consume a partition of the healthy dir");
        assert!(
            records.len() >= 12,
            "partition {p}: {} records",
            records.len()
        );
    }
    let described = describe(&mut client);
    assert_eq!(
        described.dirs[&failing],
        DirState {
            error_code: KAFKA_STORAGE_ERROR,
            total_bytes: -1,
            usable_bytes: -1
        }
    );
    assert_eq!(described.dirs[&dirs[0].display().to_string()].error_code, 0);
    assert!(described.replicas.keys().all(|(d, _, _)| *d != failing));
    let addr: SocketAddr = metrics.parse().expect("addr");
    let scrape = Scrape::fetch(addr, Duration::from_secs(5)).expect("scrape");
    assert_eq!(
        scrape.sum("kafka_log_logmanager_offlinelogdirectorycount", &[]),
        Some(1.0)
    );
    broker.assert_alive().expect("alive at the end");
}

#[test]
fn a_dir_missing_at_start_keeps_its_partitions_offline_until_it_returns() {
    let work = tempfile::tempdir().expect("temp dir");
    let dirs = vec![work.path().join("d1"), work.path().join("d2")];
    let mut broker = start_two_dirs(&dirs, None);
    let topic = "gone";
    Admin::new(&broker.bootstrap())
        .and_then(|a| a.create_topic(topic, PARTITIONS, &[]))
        .expect("create topic");
    let mut client = WireClient::connect(broker.addr()).expect("connect");
    for p in 0..PARTITIONS {
        assert_eq!(produce_one(&mut client, topic, p), 0);
    }
    let before = describe(&mut client).placement(topic);
    let missing = dirs[1].display().to_string();
    let (lost, kept): (Vec<i32>, Vec<i32>) = (0..PARTITIONS).partition(|p| before[p] == missing);
    assert!(!lost.is_empty() && !kept.is_empty(), "{before:?}");
    broker.stop().expect("stop");

    // The disk is not there at the next start: a file stands where the dir was.
    let aside = work.path().join("d2-aside");
    std::fs::rename(&dirs[1], &aside).expect("move the dir away");
    std::fs::write(&dirs[1], b"not a log dir").expect("block the path");
    broker.restart().expect("starts on the other dir");
    let mut client = WireClient::connect(broker.addr()).expect("connect");
    let described = describe(&mut client);
    assert_eq!(described.dirs[&missing].error_code, KAFKA_STORAGE_ERROR);
    for p in &kept {
        wait_for(
            Duration::from_secs(30),
            "a healthy dir's partition serving",
            || (produce_one(&mut client, topic, *p) == 0).then_some(()),
        )
        .unwrap_or_else(|e| panic!("{e}; stderr:\n{}", broker.stderr_tail()));
    }
    // Its partitions get no empty log elsewhere: they stay unavailable.
    for p in &lost {
        assert_ne!(produce_one(&mut client, topic, *p), 0, "partition {p}");
        assert!(
            !dirs[0].join(format!("{topic}-{p}")).exists(),
            "an empty {topic}-{p} was created on the healthy dir"
        );
    }
    broker.stop().expect("stop");

    // The disk is back: everything is there again.
    std::fs::remove_file(&dirs[1]).expect("unblock");
    std::fs::rename(&aside, &dirs[1]).expect("put the dir back");
    broker.restart().expect("restart with both dirs");
    let mut client = WireClient::connect(broker.addr()).expect("connect");
    for p in 0..PARTITIONS {
        wait_for(Duration::from_secs(30), "partition back", || {
            (produce_one(&mut client, topic, p) == 0).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}; stderr:\n{}", broker.stderr_tail()));
        let records =
            read_partition(&broker.bootstrap(), topic, p, Duration::from_secs(30)).expect("read");
        let expected = if kept.contains(&p) { 6 } else { 4 };
        assert_eq!(records.len(), expected, "partition {p}");
    }
}
