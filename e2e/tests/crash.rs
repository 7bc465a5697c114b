//! Crash safety with real faults: SIGKILL during acks=all production, torn or corrupted segment
//! tails, and the clean-shutdown marker after SIGTERM.

use std::fs::OpenOptions;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext, PurgeConfig};
use strait_e2e::segments::{BatchInfo, batches, partition_dir, segment_files};
use strait_e2e::{
    Broker, TestMessage, produce_all, producer_config, read_partition, read_range, wait_until,
    watermarks,
};

/// Sends `(partition, offset, payload)` of every acknowledged message.
struct AckContext {
    acked: mpsc::Sender<(i32, i64, Vec<u8>)>,
    count: Arc<AtomicUsize>,
}

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Ok(message) = result {
            let payload = message.payload().map(<[u8]>::to_vec).unwrap_or_default();
            let _ = self
                .acked
                .send((message.partition(), message.offset(), payload));
            self.count.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[test]
fn acked_messages_survive_sigkill() {
    let mut broker = Broker::start(&[
        ("num.partitions", "2"),
        ("log.flush.interval.messages", "1"),
        ("log.segment.bytes", "65536"),
    ])
    .expect("start broker");
    let topic = "durable";
    let (tx, rx) = mpsc::channel();
    let count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut config = producer_config(&broker.bootstrap());
    config
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("message.timeout.ms", "5000");
    let producer: BaseProducer<AckContext> = config
        .create_with_context(AckContext {
            acked: tx,
            count: count.clone(),
        })
        .expect("producer");
    let stop_flag = stop.clone();
    let worker = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut i = 0u64;
        while !stop_flag.load(Ordering::SeqCst) && Instant::now() < deadline {
            let payload = format!("durable-{i:08}");
            let record: BaseRecord<'_, (), String, ()> = BaseRecord::to(topic)
                .payload(&payload)
                .partition((i % 2) as i32);
            if producer.send(record).is_ok() {
                i += 1;
            }
            producer.poll(Duration::from_millis(u64::from(i.is_multiple_of(100))));
        }
        // The broker is dead: drop what is still queued, deliver the remaining reports.
        producer.purge(PurgeConfig::default().queue().inflight());
        producer.poll(Duration::from_millis(100));
    });
    wait_until(
        Duration::from_secs(60),
        "3000 acknowledged messages",
        || count.load(Ordering::SeqCst) >= 3000,
    )
    .expect("production under way");
    broker.kill().expect("SIGKILL broker");
    stop.store(true, Ordering::SeqCst);
    worker.join().expect("producer thread");
    let acked: Vec<(i32, i64, Vec<u8>)> = rx.try_iter().collect();
    assert!(acked.len() >= 3000);

    broker.restart().expect("restart after SIGKILL");
    let ready = broker.ready_line().unwrap_or_default();
    assert!(
        ready.contains("clean_start=false"),
        "recovery after kill: {ready}"
    );
    for partition in 0..2 {
        // The consumer checks CRCs: a corrupt batch fails the read.
        let got = read_partition(
            &broker.bootstrap(),
            topic,
            partition,
            Duration::from_secs(60),
        )
        .expect("read after recovery");
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m.offset, got[0].offset + i as i64, "contiguous offsets");
        }
        for (p, offset, payload) in acked.iter().filter(|(p, _, _)| *p == partition) {
            let found = got.get(*offset as usize).unwrap_or_else(|| {
                panic!(
                    "acked {p}/{offset} lost; partition has {} messages",
                    got.len()
                )
            });
            assert_eq!(found.offset, *offset);
            assert_eq!(
                found.value.as_deref(),
                Some(payload.as_slice()),
                "{p}/{offset}"
            );
        }
    }
}

/// Produces 20 rounds of 50 messages to `topic`-0 (several batches) and returns them.
fn produce_rounds(broker: &Broker, topic: &str) -> Vec<TestMessage> {
    let mut all = Vec::new();
    let mut config = producer_config(&broker.bootstrap());
    config.set("acks", "all");
    for round in 0..20 {
        let sent: Vec<TestMessage> = (0..50)
            .map(|i| TestMessage {
                key: Some(format!("r{round}").into_bytes()),
                value: Some(format!("round {round} message {i}").into_bytes()),
                partition: Some(0),
                ..TestMessage::default()
            })
            .collect();
        let deliveries =
            produce_all(&config, topic, &sent, Duration::from_secs(30)).expect("produce");
        assert!(deliveries.iter().all(|d| d.result.is_ok()));
        all.extend(sent);
    }
    all
}

/// The active segment of `topic`-0 and its last batch.
fn last_batch(broker: &Broker, topic: &str) -> (std::path::PathBuf, BatchInfo) {
    let dir = partition_dir(broker.log_dir(), topic, 0);
    let (_, active) = segment_files(&dir)
        .expect("segments")
        .pop()
        .expect("an active segment");
    let last = *batches(&active).expect("batches").last().expect("a batch");
    (active, last)
}

/// Checks that exactly the messages before `last.base_offset` are served, intact, and that the
/// log accepts new writes right after them.
fn assert_recovered_before(broker: &Broker, topic: &str, sent: &[TestMessage], last: BatchInfo) {
    let ready = broker.ready_line().unwrap_or_default();
    assert!(
        ready.contains("clean_start=false"),
        "a recovery scan ran: {ready}"
    );
    let (low, high) = watermarks(&broker.bootstrap(), topic, 0).expect("watermarks");
    assert_eq!(
        (low, high),
        (0, last.base_offset),
        "log truncated to the last whole batch"
    );
    let got = read_range(
        &broker.bootstrap(),
        topic,
        0,
        0,
        high,
        Duration::from_secs(30),
    )
    .expect("read intact prefix");
    for (i, m) in got.iter().enumerate() {
        assert!(m.same_content(&sent[i]), "message {i} intact");
    }
    let more = vec![TestMessage {
        value: Some(b"after recovery".to_vec()),
        partition: Some(0),
        ..TestMessage::default()
    }];
    let mut config = producer_config(&broker.bootstrap());
    config.set("acks", "all");
    let d = produce_all(&config, topic, &more, Duration::from_secs(30)).expect("produce");
    assert_eq!(d[0].result.as_ref().ok(), Some(&(0, last.base_offset)));
}

#[test]
fn torn_tail_after_graceful_stop_is_recovered() {
    let mut broker = Broker::start(&[("num.partitions", "1")]).expect("start broker");
    let topic = "torn";
    let sent = produce_rounds(&broker, topic);
    let status = broker.stop().expect("SIGTERM");
    assert!(status.success(), "graceful exit: {status}");
    let (active, last) = last_batch(&broker, topic);
    // Cut the last batch short, as a crash in the middle of a write would.
    let file = OpenOptions::new()
        .write(true)
        .open(&active)
        .expect("open segment");
    let len = file.metadata().expect("metadata").len();
    file.set_len(len - 7).expect("truncate");
    drop(file);
    broker.restart().expect("start after truncation");
    assert_recovered_before(&broker, topic, &sent, last);
}

#[test]
fn corrupt_tail_after_sigkill_is_recovered() {
    let mut broker = Broker::start(&[("num.partitions", "1")]).expect("start broker");
    let topic = "corrupt";
    let sent = produce_rounds(&broker, topic);
    broker.kill().expect("SIGKILL");
    let (active, last) = last_batch(&broker, topic);
    // Flip the last bytes of the last batch: its CRC no longer matches.
    let mut data = std::fs::read(&active).expect("read segment");
    let end = (last.position + last.size) as usize;
    for b in &mut data[end - 8..end] {
        *b ^= 0xff;
    }
    std::fs::write(&active, &data).expect("write segment");
    broker.restart().expect("start after corruption");
    assert_recovered_before(&broker, topic, &sent, last);
}

#[test]
fn sigterm_exits_zero_and_next_start_is_clean() {
    let mut broker = Broker::start(&[("num.partitions", "1")]).expect("start broker");
    let sent = produce_rounds(&broker, "clean");
    let status = broker.stop().expect("SIGTERM");
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    broker.restart().expect("start again");
    let ready = broker.ready_line().unwrap_or_default();
    assert!(
        ready.contains("clean_start=true"),
        "checkpoints trusted: {ready}"
    );
    let got =
        read_partition(&broker.bootstrap(), "clean", 0, Duration::from_secs(30)).expect("read");
    assert_eq!(got.len(), sent.len());
    assert!(got.iter().zip(&sent).all(|(m, s)| m.same_content(s)));

    // SIGINT is graceful too.
    let status = broker.interrupt().expect("SIGINT");
    assert_eq!(status.code(), Some(0), "exit status after SIGINT");
    broker.restart().expect("start again");
    let ready = broker.ready_line().unwrap_or_default();
    assert!(ready.contains("clean_start=true"), "after SIGINT: {ready}");
}
