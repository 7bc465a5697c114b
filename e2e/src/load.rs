//! A producer running on its own thread while a test injects faults or rebalances: sends
//! numbered payloads round-robin over partitions (paced or as fast as the queue allows) and
//! keeps every delivery report, so a test can compare what was acknowledged with what is read.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};

use crate::error::{HarnessError, Result};

/// One delivery report: the sequence number of the message and where it landed.
#[derive(Debug, Clone)]
pub struct Acked {
    pub seq: u64,
    pub partition: i32,
    pub result: std::result::Result<i64, KafkaError>,
}

/// The payload of message `seq`: fixed width so that byte order is numeric order.
pub fn payload_of(seq: u64) -> String {
    format!("msg-{seq:010}")
}

/// Parses a `payload_of` payload back into its sequence number.
pub fn seq_of(payload: &[u8]) -> Option<u64> {
    std::str::from_utf8(payload)
        .ok()?
        .strip_prefix("msg-")?
        .parse()
        .ok()
}

/// How the background producer sends.
#[derive(Debug, Clone, Copy)]
pub struct LoadPlan {
    /// Number of partitions to spread messages over (`seq % partitions`).
    pub partitions: i32,
    /// Stop after this many messages (`None`: until `stop`).
    pub limit: Option<u64>,
    /// Messages per second (`None`: as fast as the producer queue accepts them).
    pub rate: Option<u32>,
    /// Upper bound of the whole run, so a stuck test cannot produce forever.
    pub max_duration: Duration,
}

/// Delivery reports and the count of successful ones, shared with the test thread.
#[derive(Default)]
struct Reports {
    list: Mutex<Vec<Acked>>,
    ok: AtomicUsize,
}

struct ReportContext {
    reports: Arc<Reports>,
}

impl ClientContext for ReportContext {}

impl ProducerContext for ReportContext {
    type DeliveryOpaque = Box<(u64, i32)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Box<(u64, i32)>) {
        let (seq, partition) = *opaque;
        let result = match result {
            Ok(message) => {
                self.reports.ok.fetch_add(1, Ordering::SeqCst);
                Ok(message.offset())
            }
            Err((error, _)) => Err(error.clone()),
        };
        if let Ok(mut reports) = self.reports.list.lock() {
            reports.push(Acked {
                seq,
                partition,
                result,
            });
        }
    }
}

/// A producer thread; `stop` (or the plan's limit) ends it and returns every delivery report.
pub struct BackgroundProducer {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    reports: Arc<Reports>,
    worker: Option<JoinHandle<Result<()>>>,
}

impl BackgroundProducer {
    /// Starts producing `payload_of(seq)` for seq = 0, 1, ... to `topic` with `config`.
    pub fn start(config: ClientConfig, topic: &str, plan: LoadPlan) -> Result<BackgroundProducer> {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let reports = Arc::new(Reports::default());
        let producer: BaseProducer<ReportContext> = config
            .create_with_context(ReportContext {
                reports: reports.clone(),
            })
            .map_err(|e| HarnessError::kafka("create producer", e))?;
        let topic = topic.to_string();
        let (stop_flag, sent_count) = (stop.clone(), sent.clone());
        let worker =
            std::thread::spawn(move || run(&producer, &topic, plan, &stop_flag, &sent_count));
        Ok(BackgroundProducer {
            stop,
            sent,
            reports,
            worker: Some(worker),
        })
    }

    /// Messages handed to the producer so far.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    /// Successful delivery reports so far.
    pub fn acked(&self) -> usize {
        self.reports.ok.load(Ordering::SeqCst)
    }

    /// Whether the producer thread has finished (limit reached and flushed, or failed).
    pub fn finished(&self) -> bool {
        self.worker.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops sending, flushes (bounded by the plan) and returns every delivery report sorted by
    /// sequence number.
    pub fn stop(mut self) -> Result<Vec<Acked>> {
        self.stop.store(true, Ordering::SeqCst);
        let worker = self
            .worker
            .take()
            .ok_or_else(|| HarnessError::Unexpected("producer already stopped".into()))?;
        let outcome = worker
            .join()
            .map_err(|_| HarnessError::Unexpected("producer thread panicked".into()))?;
        let mut reports = self
            .reports
            .list
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .map_err(|_| HarnessError::Unexpected("report list poisoned".into()))?;
        outcome?;
        reports.sort_by_key(|r| r.seq);
        Ok(reports)
    }
}

impl Drop for BackgroundProducer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn run(
    producer: &BaseProducer<ReportContext>,
    topic: &str,
    plan: LoadPlan,
    stop: &AtomicBool,
    sent: &AtomicUsize,
) -> Result<()> {
    let started = Instant::now();
    let deadline = started + plan.max_duration;
    let partitions = plan.partitions.max(1);
    let mut seq: u64 = 0;
    while !stop.load(Ordering::SeqCst) && plan.limit.is_none_or(|l| seq < l) {
        if Instant::now() >= deadline {
            return Err(HarnessError::Timeout(format!(
                "background producer: {seq} messages sent in {:?}",
                plan.max_duration
            )));
        }
        if let Some(rate) = plan.rate {
            let due = started + Duration::from_secs_f64(seq as f64 / f64::from(rate.max(1)));
            let now = Instant::now();
            if due > now {
                producer.poll(due - now);
                continue;
            }
        }
        let partition = (seq % partitions as u64) as i32;
        let payload = payload_of(seq);
        let record: BaseRecord<'_, (), String, Box<(u64, i32)>> =
            BaseRecord::with_opaque_to(topic, Box::new((seq, partition)))
                .payload(&payload)
                .partition(partition);
        match producer.send(record) {
            Ok(()) => {
                seq += 1;
                sent.store(seq as usize, Ordering::SeqCst);
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(10));
            }
            Err((error, _)) => {
                return Err(HarnessError::kafka(format!("send message {seq}"), error));
            }
        }
        producer.poll(Duration::ZERO);
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    producer
        .flush(remaining)
        .map_err(|e| HarnessError::kafka("flush background producer", e))
}
