//! Log compaction seen through real clients: keyed updates and tombstones collapse to the latest
//! record per key, offsets never change, a consumer reading from offset 0 while the cleaner runs
//! always sees a consistent log, and keyless records are refused with INVALID_RECORD.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, ProduceResponse};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use strait_e2e::wire::{WireClient, produce_request, produce_result, record_batch};
use strait_e2e::{
    Admin, Broker, ConsumedMessage, TestMessage, produce_all, producer_config, read_range,
    wait_until, watermarks,
};

const KEYS: usize = 300;
const VERSIONS: usize = 12;
const PARTITIONS: i32 = 2;
/// Every tenth key ends with a tombstone.
const TOMBSTONE_EVERY: usize = 10;
const INVALID_RECORD: i16 = 87;
const READ_TIMEOUT: Duration = Duration::from_secs(60);

fn compacted_topic_configs() -> Vec<(&'static str, &'static str)> {
    vec![
        ("cleanup.policy", "compact"),
        ("segment.bytes", "16384"),
        ("segment.ms", "500"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("min.compaction.lag.ms", "0"),
        // Long enough that tombstones outlive the test: readers must see them.
        ("delete.retention.ms", "600000"),
    ]
}

fn key_of(k: usize) -> Vec<u8> {
    format!("key-{k:04}").into_bytes()
}

/// Value of version `v` of key `k`, or `None` for the final tombstone of a deleted key.
fn value_of(k: usize, v: usize) -> Option<Vec<u8>> {
    if k.is_multiple_of(TOMBSTONE_EVERY) && v == VERSIONS - 1 {
        return None;
    }
    // Padding makes segments roll often at 16 KiB.
    Some(format!("key-{k:04}-v{v:02}-{}", "x".repeat(60)).into_bytes())
}

fn parse_key(key: &[u8]) -> Option<usize> {
    std::str::from_utf8(key)
        .ok()?
        .strip_prefix("key-")?
        .parse()
        .ok()
}

/// What was produced at each offset: `(key index, version)`.
type Produced = HashMap<(i32, i64), (usize, usize)>;

/// Checks one read of a partition against what was produced. `complete` says that production
/// had finished before the read started, so each key's last record must be its final version.
fn check_read(
    partition: i32,
    read: &[ConsumedMessage],
    produced: &Produced,
    complete: bool,
) -> Result<(), String> {
    let mut last_offset = -1;
    let mut last_version: HashMap<usize, usize> = HashMap::new();
    for m in read {
        if m.offset <= last_offset {
            return Err(format!("offset {} after {last_offset}", m.offset));
        }
        last_offset = m.offset;
        let Some(key) = m.key.as_deref().and_then(parse_key) else {
            continue; // sentinel records that roll segments
        };
        let &(k, v) = produced
            .get(&(partition, m.offset))
            .ok_or_else(|| format!("offset {partition}@{} was never produced", m.offset))?;
        if k != key || m.value != value_of(k, v) {
            return Err(format!(
                "offset {partition}@{} holds key {key} {:?}, produced key {k} version {v}",
                m.offset,
                m.value.as_deref().map(String::from_utf8_lossy)
            ));
        }
        if let Some(previous) = last_version.insert(k, v)
            && previous >= v
        {
            return Err(format!("key {k}: version {v} after {previous}"));
        }
    }
    if complete {
        for (k, v) in &last_version {
            if *v != VERSIONS - 1 {
                return Err(format!("key {k}: last record seen is version {v}"));
            }
        }
    }
    Ok(())
}

#[test]
fn compaction_keeps_latest_per_key_with_stable_offsets_and_consistent_readers() {
    let broker = Broker::start(&[]).expect("broker");
    let bootstrap = broker.bootstrap();
    let topic = "compacted";
    Admin::new(&bootstrap)
        .and_then(|a| a.create_topic(topic, PARTITIONS, &compacted_topic_configs()))
        .expect("create compacted topic");

    let produced: Arc<std::sync::Mutex<Produced>> = Arc::default();
    let production_done = Arc::new(AtomicBool::new(false));
    let stop_reader = Arc::new(AtomicBool::new(false));
    let passes = Arc::new(AtomicUsize::new(0));
    let complete_passes = Arc::new(AtomicUsize::new(0));

    // The reader re-reads every partition from offset 0 for as long as the test runs.
    let reader = {
        let (produced, done, stop) = (
            produced.clone(),
            production_done.clone(),
            stop_reader.clone(),
        );
        let (passes, complete_passes, bootstrap) =
            (passes.clone(), complete_passes.clone(), bootstrap.clone());
        std::thread::spawn(move || -> Result<(), String> {
            let deadline = Instant::now() + Duration::from_secs(240);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                let complete = done.load(Ordering::SeqCst);
                for partition in 0..PARTITIONS {
                    let (low, high) =
                        watermarks(&bootstrap, topic, partition).map_err(|e| e.to_string())?;
                    if low != 0 {
                        return Err(format!(
                            "log start offset of partition {partition} moved to {low}"
                        ));
                    }
                    let read = read_range(&bootstrap, topic, partition, 0, high, READ_TIMEOUT)
                        .map_err(|e| e.to_string())?;
                    // Offsets of records produced after this pass started are not known yet.
                    let snapshot = produced.lock().map_err(|_| "poisoned")?.clone();
                    let known: Vec<ConsumedMessage> = read
                        .into_iter()
                        .filter(|m| {
                            m.key.as_deref().and_then(parse_key).is_none()
                                || snapshot.contains_key(&(partition, m.offset))
                        })
                        .collect();
                    check_read(partition, &known, &snapshot, complete).map_err(|e| {
                        format!(
                            "pass {}: partition {partition}: {e}",
                            passes.load(Ordering::SeqCst)
                        )
                    })?;
                }
                passes.fetch_add(1, Ordering::SeqCst);
                if complete {
                    complete_passes.fetch_add(1, Ordering::SeqCst);
                }
            }
            Ok(())
        })
    };

    // Round v writes version v of every key; each round is acknowledged before the next.
    let config = producer_config(&bootstrap);
    for v in 0..VERSIONS {
        let messages: Vec<TestMessage> = (0..KEYS)
            .map(|k| TestMessage {
                key: Some(key_of(k)),
                value: value_of(k, v),
                partition: Some((k % PARTITIONS as usize) as i32),
                ..TestMessage::default()
            })
            .collect();
        let deliveries =
            produce_all(&config, topic, &messages, Duration::from_secs(30)).expect("produce round");
        let mut map = produced.lock().expect("produced map");
        for d in deliveries {
            let (partition, offset) = d
                .result
                .unwrap_or_else(|e| panic!("round {v} message {}: {e}", d.index));
            map.insert((partition, offset), (d.index, v));
        }
    }
    production_done.store(true, Ordering::SeqCst);

    // Sentinel records (another key) roll the segments holding the data once segment.ms passed,
    // so the cleaner may compact every data record; wait until it has.
    let sentinel = |n: usize| -> Vec<TestMessage> {
        (0..PARTITIONS)
            .map(|p| TestMessage {
                key: Some(format!("sentinel-{p}").into_bytes()),
                value: Some(format!("{n}").into_bytes()),
                partition: Some(p),
                ..TestMessage::default()
            })
            .collect()
    };
    let final_map = produced.lock().expect("produced").clone();
    let compacted = |read: &[ConsumedMessage]| -> bool {
        let data: Vec<&ConsumedMessage> = read
            .iter()
            .filter(|m| m.key.as_deref().and_then(parse_key).is_some())
            .collect();
        data.len() == KEYS / PARTITIONS as usize
    };
    let mut probes = 0;
    let mut last_probe = Instant::now() - Duration::from_secs(1);
    wait_until(
        Duration::from_secs(120),
        "data records compacted to one per key",
        || {
            if last_probe.elapsed() < Duration::from_millis(700) {
                return false;
            }
            last_probe = Instant::now();
            probes += 1;
            produce_all(&config, topic, &sentinel(probes), Duration::from_secs(10))
                .expect("sentinel");
            (0..PARTITIONS).all(|p| {
                let (_, high) = watermarks(&bootstrap, topic, p).expect("watermarks");
                read_range(&bootstrap, topic, p, 0, high, READ_TIMEOUT).is_ok_and(|r| compacted(&r))
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e}; broker stderr:\n{}", broker.stderr_tail()));

    // Let the reader finish at least one more full pass over the cleaned log, then stop it.
    let seen = complete_passes.load(Ordering::SeqCst);
    wait_until(
        Duration::from_secs(60),
        "a reader pass over the cleaned log",
        || complete_passes.load(Ordering::SeqCst) > seen || reader.is_finished(),
    )
    .expect("reader pass");
    stop_reader.store(true, Ordering::SeqCst);
    let outcome = reader.join().expect("reader thread");
    assert_eq!(outcome, Ok(()), "consistent reads during cleaning");
    println!(
        "reader: {} passes, {} after production; {probes} sentinel probes",
        passes.load(Ordering::SeqCst),
        complete_passes.load(Ordering::SeqCst)
    );

    // Exactly the final record of every key remains, at the offset it was written at.
    for partition in 0..PARTITIONS {
        let (low, high) = watermarks(&bootstrap, topic, partition).expect("watermarks");
        assert_eq!(low, 0, "compaction does not move the log start");
        let read = read_range(&bootstrap, topic, partition, 0, high, READ_TIMEOUT).expect("read");
        let data: Vec<&ConsumedMessage> = read
            .iter()
            .filter(|m| m.key.as_deref().and_then(parse_key).is_some())
            .collect();
        for m in &data {
            let (k, v) = final_map[&(partition, m.offset)];
            assert_eq!(v, VERSIONS - 1, "key {k}: only its latest version remains");
            assert_eq!(
                m.value,
                value_of(k, v),
                "key {k} at {partition}@{}",
                m.offset
            );
        }
        let keys: std::collections::BTreeSet<usize> = data
            .iter()
            .filter_map(|m| m.key.as_deref().and_then(parse_key))
            .collect();
        let expected: std::collections::BTreeSet<usize> = (0..KEYS)
            .filter(|k| (k % PARTITIONS as usize) as i32 == partition)
            .collect();
        assert_eq!(
            keys, expected,
            "every key of partition {partition} kept once"
        );
        let tombstones = data.iter().filter(|m| m.value.is_none()).count();
        assert_eq!(
            tombstones,
            expected
                .iter()
                .filter(|k| k.is_multiple_of(TOMBSTONE_EVERY))
                .count(),
            "tombstones kept within delete.retention.ms"
        );
    }
}

#[test]
fn keyless_produce_to_compacted_topic_is_invalid_record() {
    let broker = Broker::start(&[]).expect("broker");
    let topic = "compacted-keyless";
    Admin::new(&broker.bootstrap())
        .and_then(|a| a.create_topic(topic, 1, &compacted_topic_configs()))
        .expect("create compacted topic");

    let mut client = WireClient::connect(broker.addr()).expect("connect");
    let batch = record_batch(&[b"no key"]).expect("batch");
    let response: ProduceResponse = client
        .call(ApiKey::Produce, 9, &produce_request(topic, 0, -1, batch))
        .expect("produce");
    let (error, _) = produce_result(&response).expect("partition result");
    assert_eq!(
        error, INVALID_RECORD,
        "raw keyless produce to a compacted topic"
    );

    let deliveries = produce_all(
        &producer_config(&broker.bootstrap()),
        topic,
        &[TestMessage {
            value: Some(b"no key".to_vec()),
            ..TestMessage::default()
        }],
        Duration::from_secs(30),
    )
    .expect("produce");
    match &deliveries[0].result {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::InvalidRecord)) => {}
        other => panic!("librdkafka keyless produce: {other:?}"),
    }
    assert_eq!(
        watermarks(&broker.bootstrap(), topic, 0).expect("watermarks"),
        (0, 0),
        "nothing written"
    );

    let keyed = produce_all(
        &producer_config(&broker.bootstrap()),
        topic,
        &[TestMessage {
            key: Some(b"k".to_vec()),
            value: Some(b"v".to_vec()),
            ..TestMessage::default()
        }],
        Duration::from_secs(30),
    )
    .expect("produce keyed");
    assert_eq!(
        keyed[0].result.as_ref().ok(),
        Some(&(0, 0)),
        "keyed produce still works"
    );
}
