//! ListOffsets by timestamp (earliest, latest, by time) through librdkafka, and segment rolling
//! and time/size retention with small segments: files appear, old ones go, the log start moves.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use strait_e2e::segments::{partition_dir, segment_files};
use strait_e2e::{
    Broker, TestMessage, consumer_config, produce_all, producer_config, read_range, wait_until,
    watermarks,
};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn offset_for(consumer: &BaseConsumer, topic: &str, timestamp: i64) -> Offset {
    // rdkafka spells the special timestamps -2 (earliest) and -1 (latest) as offsets.
    let query_offset = match timestamp {
        -2 => Offset::Beginning,
        -1 => Offset::End,
        t => Offset::Offset(t),
    };
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset(topic, 0, query_offset)
        .expect("build query");
    let result = consumer
        .offsets_for_times(query, Duration::from_secs(10))
        .expect("offsets_for_times");
    let element = result
        .find_partition(topic, 0)
        .expect("partition in result");
    assert!(
        element.error().is_ok(),
        "error for {timestamp}: {:?}",
        element.error()
    );
    element.offset()
}

#[test]
fn list_offsets_by_timestamp() {
    let broker = Broker::start(&[("num.partitions", "1")]).expect("start broker");
    let topic = "timed";
    let base = now_ms() - 3_600_000;
    // 100 messages one second apart, an hour ago.
    let sent: Vec<TestMessage> = (0..100)
        .map(|i| TestMessage {
            value: Some(format!("m{i}").into_bytes()),
            partition: Some(0),
            timestamp: Some(base + i * 1000),
            ..TestMessage::default()
        })
        .collect();
    let mut config = producer_config(&broker.bootstrap());
    config.set("acks", "all");
    let deliveries = produce_all(&config, topic, &sent, Duration::from_secs(30)).expect("produce");
    assert!(deliveries.iter().all(|d| d.result.is_ok()), "all acked");

    let consumer: BaseConsumer = consumer_config(&broker.bootstrap())
        .create()
        .expect("consumer");
    assert_eq!(
        offset_for(&consumer, topic, -2),
        Offset::Offset(0),
        "earliest"
    );
    assert_eq!(
        offset_for(&consumer, topic, -1),
        Offset::Offset(100),
        "latest"
    );
    assert_eq!(
        offset_for(&consumer, topic, base),
        Offset::Offset(0),
        "first timestamp"
    );
    assert_eq!(
        offset_for(&consumer, topic, base - 10_000),
        Offset::Offset(0),
        "before all"
    );
    assert_eq!(
        offset_for(&consumer, topic, base + 50_000),
        Offset::Offset(50),
        "exact time"
    );
    assert_eq!(
        offset_for(&consumer, topic, base + 50_001),
        Offset::Offset(51),
        "between"
    );
    assert_eq!(
        offset_for(&consumer, topic, base + 99_000),
        Offset::Offset(99),
        "last"
    );
    // Later than every record: no offset (Kafka answers -1, librdkafka maps it to End).
    assert_eq!(
        offset_for(&consumer, topic, base + 200_000),
        Offset::End,
        "after all"
    );
    assert_eq!(
        watermarks(&broker.bootstrap(), topic, 0).expect("watermarks"),
        (0, 100)
    );
}

/// Produces `count` messages of `size` bytes to partition 0 with the given create time.
fn fill(broker: &Broker, topic: &str, count: usize, size: usize, timestamp: Option<i64>) {
    let sent: Vec<TestMessage> = (0..count)
        .map(|i| TestMessage {
            value: Some(vec![(i % 251) as u8; size]),
            partition: Some(0),
            timestamp,
            ..TestMessage::default()
        })
        .collect();
    let mut config = producer_config(&broker.bootstrap());
    // Small batches so segments roll at many points.
    config.set("acks", "all").set("batch.num.messages", "10");
    let deliveries = produce_all(&config, topic, &sent, Duration::from_secs(60)).expect("produce");
    for d in &deliveries {
        assert!(
            d.result.is_ok(),
            "message {} not acked: {:?}",
            d.index,
            d.result
        );
    }
}

#[test]
fn segments_roll_at_segment_bytes() {
    let broker = Broker::start(&[
        ("num.partitions", "1"),
        ("log.segment.bytes", "16384"),
        ("log.retention.ms", "-1"),
    ])
    .expect("start broker");
    fill(&broker, "rolled", 400, 1000, None);
    let dir = partition_dir(broker.log_dir(), "rolled", 0);
    let segments = segment_files(&dir).expect("list segments");
    // ~400 KB in 16 KiB segments: many segments, each with its indexes, none far over the limit.
    assert!(segments.len() >= 15, "segments: {segments:?}");
    assert_eq!(segments[0].0, 0, "first segment starts at 0");
    let closed = segments.len() - 1;
    for (i, (base, path)) in segments.iter().enumerate() {
        let size = std::fs::metadata(path).expect("segment metadata").len();
        assert!(size <= 16384 + 11_000, "segment {base} has {size} bytes");
        if i == closed {
            continue;
        }
        for ext in ["index", "timeindex"] {
            assert!(path.with_extension(ext).exists(), "{ext} of segment {base}");
        }
    }
    let bases: Vec<i64> = segments.iter().map(|(b, _)| *b).collect();
    assert!(
        bases.windows(2).all(|w| w[0] < w[1]),
        "increasing bases {bases:?}"
    );
    let got = read_range(
        &broker.bootstrap(),
        "rolled",
        0,
        0,
        400,
        Duration::from_secs(60),
    )
    .expect("read across segments");
    assert_eq!(got.len(), 400);
}

#[test]
fn time_retention_deletes_old_segments() {
    let broker = Broker::start(&[
        ("num.partitions", "1"),
        ("log.segment.bytes", "16384"),
        ("log.retention.ms", "60000"),
        ("log.retention.check.interval.ms", "200"),
    ])
    .expect("start broker");
    let topic = "aged";
    // Records an hour old: every closed segment is past retention at once.
    fill(&broker, topic, 300, 1000, Some(now_ms() - 3_600_000));
    let dir = partition_dir(broker.log_dir(), topic, 0);
    // Retention may run while the fill is still going (its records are old from the start), so a
    // first pass can delete only the segments closed by then: wait for the pass after the fill.
    wait_until(Duration::from_secs(30), "old segments deleted", || {
        segment_files(&dir)
            .is_ok_and(|s| s.len() == 1 && s.first().is_some_and(|(base, _)| *base > 0))
    })
    .expect("retention ran");
    let remaining = segment_files(&dir).expect("list");
    assert_eq!(
        remaining.len(),
        1,
        "only the active segment stays: {remaining:?}"
    );
    let (low, high) = watermarks(&broker.bootstrap(), topic, 0).expect("watermarks");
    assert_eq!(high, 300, "log end unchanged");
    assert_eq!(
        low, remaining[0].0,
        "log start = base of the first remaining segment"
    );

    // The earliest offset moved: reading from the beginning starts at the new log start.
    let consumer: BaseConsumer = consumer_config(&broker.bootstrap())
        .create()
        .expect("consumer");
    assert_eq!(
        offset_for(&consumer, topic, -2),
        Offset::Offset(low),
        "earliest moved"
    );
    // Kafka may also delete the active segment when all its records are past retention.
    let got = read_range(
        &broker.bootstrap(),
        topic,
        0,
        low,
        high,
        Duration::from_secs(30),
    )
    .expect("read the rest");
    assert_eq!(got.len() as i64, high - low);
    assert!(got.first().is_none_or(|m| m.offset == low));
}

#[test]
fn size_retention_keeps_the_log_bounded() {
    let broker = Broker::start(&[
        ("num.partitions", "1"),
        ("log.segment.bytes", "16384"),
        ("log.retention.bytes", "65536"),
        ("log.retention.ms", "-1"),
        ("log.retention.check.interval.ms", "200"),
    ])
    .expect("start broker");
    let topic = "sized";
    fill(&broker, topic, 400, 1000, None);
    let dir = partition_dir(broker.log_dir(), topic, 0);
    let total = |dir: &std::path::Path| -> u64 {
        segment_files(dir)
            .map(|s| {
                s.iter()
                    .filter_map(|(_, p)| std::fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(u64::MAX)
    };
    // Kafka deletes whole segments while the log stays over retention.bytes without them.
    wait_until(
        Duration::from_secs(30),
        "log trimmed to retention.bytes",
        || total(&dir) <= 65536 + 16384 + 11_000,
    )
    .expect("size retention ran");
    // Retention may still take a segment in its next passes (every 200 ms): read once the log
    // start held over several passes, or a read from it races a deletion.
    let mut last = (-1, Instant::now());
    wait_until(Duration::from_secs(30), "log start settled", || {
        let low = watermarks(&broker.bootstrap(), topic, 0).map_or(-1, |w| w.0);
        if low != last.0 {
            last = (low, Instant::now());
        }
        last.1.elapsed() >= Duration::from_secs(1)
    })
    .expect("retention settled");
    let (low, high) = watermarks(&broker.bootstrap(), topic, 0).expect("watermarks");
    assert!(low > 0, "log start advanced");
    assert_eq!(high, 400);
    let got = read_range(
        &broker.bootstrap(),
        topic,
        0,
        low,
        high,
        Duration::from_secs(30),
    )
    .expect("read remaining");
    assert_eq!(got.len() as i64, high - low);
}
