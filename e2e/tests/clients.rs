//! librdkafka producer and consumer against a real broker: 100k keyed messages with headers over
//! 3 partitions per compression codec, read back byte-exact and in order; acks 0, 1 and -1.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::RngCore;
use strait_e2e::{Broker, TestMessage, produce_all, producer_config, read_partition};

const PARTITIONS: i32 = 3;
const MESSAGES: usize = 100_000;

fn messages(count: usize) -> Vec<TestMessage> {
    let mut rng = rand::rng();
    (0..count)
        .map(|i| {
            let mut value = vec![0u8; 64 + i % 64];
            rng.fill_bytes(&mut value);
            TestMessage {
                key: Some(format!("key-{}", i % 1000).into_bytes()),
                value: Some(value),
                // Duplicate keys and null values are legal Kafka headers and must survive.
                headers: vec![
                    ("seq".into(), Some(i.to_string().into_bytes())),
                    ("dup".into(), Some(b"first".to_vec())),
                    ("dup".into(), Some(b"second".to_vec())),
                    ("null".into(), None),
                ],
                ..TestMessage::default()
            }
        })
        .collect()
}

/// Produces `MESSAGES` messages with `codec`, reads every partition back and compares.
fn round_trip(codec: &str) {
    let broker = Broker::start(&[("num.partitions", "3")]).expect("start broker");
    let topic = format!("codec-{codec}");
    let sent = messages(MESSAGES);
    let mut config = producer_config(&broker.bootstrap());
    config
        .set("compression.type", codec)
        .set("acks", "all")
        .set("batch.num.messages", "2000")
        .set("linger.ms", "20");
    let deliveries =
        produce_all(&config, &topic, &sent, Duration::from_secs(120)).expect("produce");

    // Expected content per partition, keyed by the offset each delivery report gave.
    let mut expected: BTreeMap<i32, Vec<(i64, usize)>> = BTreeMap::new();
    for delivery in &deliveries {
        let (partition, offset) = delivery
            .result
            .clone()
            .unwrap_or_else(|e| panic!("message {} not acked: {e}", delivery.index));
        expected
            .entry(partition)
            .or_default()
            .push((offset, delivery.index));
    }
    assert_eq!(
        expected.len(),
        PARTITIONS as usize,
        "keys spread over all partitions"
    );

    for partition in 0..PARTITIONS {
        let mut want = expected.remove(&partition).unwrap_or_default();
        want.sort();
        let got = read_partition(
            &broker.bootstrap(),
            &topic,
            partition,
            Duration::from_secs(120),
        )
        .expect("read partition");
        assert_eq!(
            got.len(),
            want.len(),
            "{codec}: message count of partition {partition}"
        );
        let mut last_index = None;
        for (message, (offset, index)) in got.iter().zip(&want) {
            assert_eq!(
                message.offset, *offset,
                "{codec}: offset in partition {partition}"
            );
            assert!(
                message.same_content(&sent[*index]),
                "{codec}: message {index} at {partition}/{offset} differs: got {message:?}"
            );
            // Offsets were assigned in production order within the partition.
            assert!(
                last_index < Some(*index),
                "{codec}: order in partition {partition}"
            );
            last_index = Some(*index);
        }
    }
}

#[test]
fn round_trip_uncompressed() {
    round_trip("none");
}

#[test]
fn round_trip_gzip() {
    round_trip("gzip");
}

#[test]
fn round_trip_snappy() {
    round_trip("snappy");
}

#[test]
fn round_trip_lz4() {
    round_trip("lz4");
}

#[test]
fn round_trip_zstd() {
    round_trip("zstd");
}

#[test]
fn produce_with_each_acks_setting() {
    let broker = Broker::start(&[("num.partitions", "1")]).expect("start broker");
    for acks in ["0", "1", "-1"] {
        let topic = format!("acks{acks}");
        let sent: Vec<TestMessage> = (0..2000)
            .map(|i| TestMessage {
                key: Some(format!("k{i}").into_bytes()),
                value: Some(format!("acks {acks} message {i}").into_bytes()),
                partition: Some(0),
                ..TestMessage::default()
            })
            .collect();
        let mut config = producer_config(&broker.bootstrap());
        config.set("acks", acks);
        let deliveries =
            produce_all(&config, &topic, &sent, Duration::from_secs(60)).expect("produce");
        for delivery in &deliveries {
            let (_, offset) = delivery
                .result
                .clone()
                .unwrap_or_else(|e| panic!("acks={acks}: message {} failed: {e}", delivery.index));
            if acks != "0" {
                assert_eq!(offset, delivery.index as i64, "acks={acks}: offset");
            }
        }
        // acks=0 has no response to wait for: wait until the broker has appended everything.
        strait_e2e::wait_until(Duration::from_secs(20), "acks=0 messages to land", || {
            strait_e2e::watermarks(&broker.bootstrap(), &topic, 0)
                .is_ok_and(|(_, high)| high >= sent.len() as i64)
        })
        .expect("all messages appended");
        let got = read_partition(&broker.bootstrap(), &topic, 0, Duration::from_secs(60))
            .expect("read back");
        assert_eq!(got.len(), sent.len(), "acks={acks}: count");
        for (i, (message, want)) in got.iter().zip(&sent).enumerate() {
            assert_eq!(message.offset, i as i64, "acks={acks}: offset");
            assert!(
                message.same_content(want),
                "acks={acks}: message {i} differs"
            );
        }
    }
}
