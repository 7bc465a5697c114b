//! strait-bench: throughput and latency of a Strait broker under librdkafka producers and a
//! consumer on one partition. Starts its own release broker unless `--bootstrap` is given.
//!
//! Run: `cargo run --release -p strait-e2e --bin strait-bench -- [--messages N] [--seconds S]`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use strait_e2e::{Broker, consumer_config, producer_config};

#[derive(Parser, Debug)]
#[command(about = "Produce/consume benchmark against a Strait (or any Kafka) broker")]
struct Args {
    /// Use this broker instead of starting one (host:port).
    #[arg(long)]
    bootstrap: Option<String>,
    /// Messages per case at most.
    #[arg(long, default_value_t = 300_000)]
    messages: usize,
    /// Seconds per case at most.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Record sizes in bytes.
    #[arg(long, value_delimiter = ',', default_values_t = vec![100usize, 1024])]
    sizes: Vec<usize>,
    /// acks settings.
    #[arg(long, value_delimiter = ',', default_values_t = vec!["1".to_string(), "all".to_string()])]
    acks: Vec<String>,
    /// Topic name prefix (a suffix per case and run keeps runs apart).
    #[arg(long, default_value = "strait-bench")]
    topic: String,
}

/// Latency of each delivered message, in microseconds.
#[derive(Default)]
struct LatencyContext {
    latencies_us: Mutex<Vec<u64>>,
    failures: Mutex<u64>,
}

impl ClientContext for LatencyContext {}

impl ProducerContext for LatencyContext {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at: Box<Instant>) {
        if result.is_ok() {
            if let Ok(mut l) = self.latencies_us.lock() {
                l.push(sent_at.elapsed().as_micros() as u64);
            }
        } else if let Ok(mut f) = self.failures.lock() {
            *f += 1;
        }
    }
}

struct ProduceReport {
    messages: u64,
    bytes: u64,
    failures: u64,
    elapsed: Duration,
    p50_us: u64,
    p99_us: u64,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn produce_case(
    bootstrap: &str,
    topic: &str,
    size: usize,
    acks: &str,
    args: &Args,
) -> anyhow::Result<ProduceReport> {
    let mut config = producer_config(bootstrap);
    config
        .set("acks", acks)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("compression.type", "none");
    let producer: BaseProducer<LatencyContext> =
        config.create_with_context(LatencyContext::default())?;
    let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let limit = Duration::from_secs(args.seconds);
    let start = Instant::now();
    let mut sent = 0usize;
    while sent < args.messages && start.elapsed() < limit {
        let record: BaseRecord<'_, (), Vec<u8>, Box<Instant>> =
            BaseRecord::with_opaque_to(topic, Box::new(Instant::now()))
                .payload(&payload)
                .partition(0);
        match producer.send(record) {
            Ok(()) => sent += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e.into()),
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30))?;
    let elapsed = start.elapsed();
    let mut latencies = producer
        .context()
        .latencies_us
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .map_err(|_| anyhow::anyhow!("latency list poisoned"))?;
    let failures = producer
        .context()
        .failures
        .lock()
        .map(|f| *f)
        .map_err(|_| anyhow::anyhow!("failure count poisoned"))?;
    latencies.sort_unstable();
    Ok(ProduceReport {
        messages: latencies.len() as u64,
        bytes: latencies.len() as u64 * size as u64,
        failures,
        elapsed,
        p50_us: percentile(&latencies, 0.50),
        p99_us: percentile(&latencies, 0.99),
    })
}

/// Reads partition 0 of `topic` from the beginning to its high watermark; returns (msgs, bytes, time).
fn consume_case(
    bootstrap: &str,
    topic: &str,
    limit: Duration,
) -> anyhow::Result<(u64, u64, Duration)> {
    let mut config = consumer_config(bootstrap);
    config.set("fetch.max.bytes", "52428800");
    let consumer: BaseConsumer = config.create()?;
    let (low, high) = consumer.fetch_watermarks(topic, 0, Duration::from_secs(10))?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Offset(low))?;
    consumer.assign(&assignment)?;
    let start = Instant::now();
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut next = low;
    while next < high && start.elapsed() < limit {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message?;
            messages += 1;
            bytes += message.payload_len() as u64;
            next = message.offset() + 1;
        }
    }
    Ok((messages, bytes, start.elapsed()))
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1_000_000.0 / elapsed.as_secs_f64().max(1e-9)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let broker = match &args.bootstrap {
        Some(_) => None,
        None => Some(Broker::start(&[("num.partitions", "1")])?),
    };
    let bootstrap = match (&args.bootstrap, &broker) {
        (Some(b), _) => b.clone(),
        (None, Some(broker)) => broker.bootstrap(),
        (None, None) => anyhow::bail!("no broker"),
    };
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    println!(
        "strait-bench against {bootstrap}: up to {} messages or {} s per case",
        args.messages, args.seconds
    );
    println!(
        "{:<28} {:>10} {:>12} {:>10} {:>10} {:>10} {:>8}",
        "case", "messages", "msgs/s", "MB/s", "p50 ms", "p99 ms", "failed"
    );
    let mut consume_rows = Vec::new();
    for &size in &args.sizes {
        for acks in &args.acks {
            let topic = format!("{}-{run_id}-{size}b-acks{acks}", args.topic);
            let r = produce_case(&bootstrap, &topic, size, acks, &args)?;
            println!(
                "{:<28} {:>10} {:>12.0} {:>10.1} {:>10.2} {:>10.2} {:>8}",
                format!("produce {size} B acks={acks}"),
                r.messages,
                r.messages as f64 / r.elapsed.as_secs_f64().max(1e-9),
                mb_per_s(r.bytes, r.elapsed),
                r.p50_us as f64 / 1000.0,
                r.p99_us as f64 / 1000.0,
                r.failures
            );
            consume_rows.push((format!("consume {size} B acks={acks}"), topic));
        }
    }
    for (label, topic) in &consume_rows {
        let (messages, bytes, elapsed) = consume_case(
            &bootstrap,
            topic,
            Duration::from_secs(args.seconds.max(1) * 3),
        )?;
        println!(
            "{:<28} {:>10} {:>12.0} {:>10.1}",
            label,
            messages,
            messages as f64 / elapsed.as_secs_f64().max(1e-9),
            mb_per_s(bytes, elapsed)
        );
    }
    drop(broker);
    Ok(())
}
