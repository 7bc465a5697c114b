//! The idempotent producer across broker crashes: librdkafka with `enable.idempotence=true` and
//! acks=all keeps retrying while the broker is SIGKILLed and restarted; the broker's sequence
//! checks must turn every retry of an already written batch into a duplicate acknowledgement, so
//! the topic holds each message exactly once, in order per partition.

use std::collections::HashMap;
use std::time::Duration;

use strait_e2e::load::{BackgroundProducer, LoadPlan, seq_of};
use strait_e2e::{Admin, Broker, producer_config, read_partition, wait_until};

const MESSAGES: u64 = 200_000;
const PARTITIONS: i32 = 3;
/// Paced so that both kills land while messages are in flight.
const RATE: u32 = 40_000;

#[test]
fn idempotent_producer_survives_two_sigkills_exactly_once() {
    // Flushing every append widens the window between a batch reaching the log and its
    // acknowledgement leaving, so a kill often leaves written-but-unacknowledged batches that
    // librdkafka then retries: exactly what the sequence checks must deduplicate.
    let mut broker = Broker::start(&[("log.flush.interval.messages", "1")]).expect("broker");
    let topic = "idempotent";
    Admin::new(&broker.bootstrap())
        .and_then(|a| a.create_topic(topic, PARTITIONS, &[]))
        .expect("create topic");
    let mut config = producer_config(&broker.bootstrap());
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "180000")
        .set("queue.buffering.max.messages", "300000")
        .set("reconnect.backoff.max.ms", "200");
    let producer = BackgroundProducer::start(
        config,
        topic,
        LoadPlan {
            partitions: PARTITIONS,
            limit: Some(MESSAGES),
            rate: Some(RATE),
            max_duration: Duration::from_secs(240),
        },
    )
    .expect("producer");

    for (kill, at) in [(1, MESSAGES / 3), (2, 2 * MESSAGES / 3)] {
        wait_until(
            Duration::from_secs(120),
            &format!("{at} acknowledged before kill {kill}"),
            || producer.acked() as u64 >= at,
        )
        .unwrap_or_else(|e| panic!("{e}; stderr:\n{}", broker.stderr_tail()));
        let in_flight = producer.sent() - producer.acked();
        broker.kill().expect("SIGKILL");
        println!(
            "kill {kill}: {} acknowledged, {in_flight} sent but not acknowledged",
            producer.acked()
        );
        assert!(
            (producer.acked() as u64) < MESSAGES,
            "kill {kill} came after production finished"
        );
        broker.restart().expect("restart after SIGKILL");
    }
    wait_until(Duration::from_secs(200), "producer to finish", || {
        producer.finished()
    })
    .expect("producer finished");
    let reports = producer.stop().expect("all delivered");
    assert_eq!(
        reports.len() as u64,
        MESSAGES,
        "one delivery report per message"
    );
    let failed: Vec<_> = reports
        .iter()
        .filter(|r| r.result.is_err())
        .take(5)
        .collect();
    assert!(failed.is_empty(), "failed deliveries: {failed:?}");
    let acked_at: HashMap<u64, (i32, i64)> = reports
        .iter()
        .filter_map(|r| r.result.as_ref().ok().map(|o| (r.seq, (r.partition, *o))))
        .collect();

    let mut seen = vec![false; MESSAGES as usize];
    for partition in 0..PARTITIONS {
        let messages = read_partition(
            &broker.bootstrap(),
            topic,
            partition,
            Duration::from_secs(120),
        )
        .expect("read partition");
        let mut previous: Option<u64> = None;
        for (i, m) in messages.iter().enumerate() {
            assert_eq!(
                m.offset, i as i64,
                "contiguous offsets in partition {partition}"
            );
            let value = m.value.as_deref().unwrap_or_default();
            let seq = seq_of(value).unwrap_or_else(|| {
                panic!(
                    "foreign payload {:?} at {partition}@{}",
                    String::from_utf8_lossy(value),
                    m.offset
                )
            });
            assert_eq!(
                seq % PARTITIONS as u64,
                partition as u64,
                "seq {seq} in partition {partition}"
            );
            let slot = seen
                .get_mut(seq as usize)
                .unwrap_or_else(|| panic!("seq {seq} out of range"));
            assert!(
                !*slot,
                "seq {seq} stored twice (again at {partition}@{})",
                m.offset
            );
            *slot = true;
            if let Some(p) = previous {
                assert!(
                    seq > p,
                    "order in partition {partition}: {seq} after {p} at offset {}",
                    m.offset
                );
            }
            previous = Some(seq);
            assert_eq!(
                acked_at.get(&seq),
                Some(&(partition, m.offset)),
                "seq {seq} stored where its acknowledgement said"
            );
        }
    }
    let missing: Vec<usize> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| !**s)
        .map(|(i, _)| i)
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );
}
