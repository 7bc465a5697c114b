//! strait-bench: throughput and latency of Strait under librdkafka producers. By default it
//! starts one release broker (or uses `--bootstrap`) and measures produce and consume on one
//! partition; with `--cluster` it starts three combined broker+controller nodes (racks a, b, c)
//! and compares an RF=1 acks=1 topic with an RF=3, `min.insync.replicas=2`, idempotent acks=all
//! topic: the cost of replication on this machine.
//!
//! Run: `cargo run --release -p strait-e2e --bin strait-bench -- [--cluster] [--messages N]
//! [--seconds S]`.

use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use strait_e2e::cluster::{Cluster, ClusterSpec};
use strait_e2e::{Broker, broker_binary, consumer_config, producer_config};

#[derive(Parser, Debug)]
#[command(about = "Produce/consume benchmark against a Strait (or any Kafka) broker")]
struct Args {
    /// Use this broker instead of starting one (host:port).
    #[arg(long, conflicts_with = "cluster")]
    bootstrap: Option<String>,
    /// Start a three-node cluster (racks a, b, c) and compare RF=1 acks=1 with RF=3
    /// min.insync.replicas=2 idempotent acks=all (`--acks` does not apply).
    #[arg(long)]
    cluster: bool,
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

/// Set by SIGINT/SIGTERM: cases stop early and `main` returns, so the brokers are dropped
/// (killed and reaped) instead of outliving the bench.
static STOP: AtomicBool = AtomicBool::new(false);

fn stopping() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Handles SIGINT and SIGTERM on a thread of its own by setting [`STOP`].
fn watch_signals() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Registered here, before any broker starts, so no signal falls into a gap.
    let (mut interrupt, mut terminate) = {
        let _guard = runtime.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(async {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            });
            STOP.store(true, Ordering::SeqCst);
            eprintln!("strait-bench: signal received, stopping and cleaning up the brokers");
        })?;
    Ok(())
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

/// One produce case: where, what and how.
struct ProduceCase<'a> {
    topic: &'a str,
    size: usize,
    acks: &'a str,
    idempotent: bool,
}

struct ProduceReport {
    messages: u64,
    bytes: u64,
    failures: u64,
    elapsed: Duration,
    p50_us: u64,
    p99_us: u64,
}

impl ProduceReport {
    fn msgs_per_s(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Producer settings on top of [`producer_config`], shared by every case of both modes.
const PRODUCER_SETTINGS: [(&str, &str); 3] = [
    ("linger.ms", "5"),
    ("batch.size", "1000000"),
    ("compression.type", "none"),
];

fn produce_case(
    bootstrap: &str,
    case: &ProduceCase<'_>,
    args: &Args,
) -> anyhow::Result<ProduceReport> {
    let mut config = producer_config(bootstrap);
    config.set("acks", case.acks);
    for (key, value) in PRODUCER_SETTINGS {
        config.set(key, value);
    }
    if case.idempotent {
        config.set("enable.idempotence", "true");
    }
    let producer: BaseProducer<LatencyContext> =
        config.create_with_context(LatencyContext::default())?;
    let payload: Vec<u8> = (0..case.size).map(|i| (i % 251) as u8).collect();
    let limit = Duration::from_secs(args.seconds);
    let start = Instant::now();
    let mut sent = 0usize;
    while sent < args.messages && start.elapsed() < limit && !stopping() {
        let record: BaseRecord<'_, (), Vec<u8>, Box<Instant>> =
            BaseRecord::with_opaque_to(case.topic, Box::new(Instant::now()))
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
        bytes: latencies.len() as u64 * case.size as u64,
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
    while next < high && start.elapsed() < limit && !stopping() {
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

fn run_id() -> anyhow::Result<u64> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs())
}

fn check_stop() -> anyhow::Result<()> {
    if stopping() {
        anyhow::bail!("interrupted");
    }
    Ok(())
}

/// One broker (started here unless `--bootstrap`), one partition, every size x acks.
fn run_single(args: &Args) -> anyhow::Result<()> {
    let broker = match &args.bootstrap {
        Some(_) => None,
        None => Some(Broker::start(&[("num.partitions", "1")])?),
    };
    let bootstrap = match (&args.bootstrap, &broker) {
        (Some(b), _) => b.clone(),
        (None, Some(broker)) => broker.bootstrap(),
        (None, None) => anyhow::bail!("no broker"),
    };
    let run_id = run_id()?;
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
            check_stop()?;
            let topic = format!("{}-{run_id}-{size}b-acks{acks}", args.topic);
            let case = ProduceCase {
                topic: &topic,
                size,
                acks,
                idempotent: false,
            };
            let r = produce_case(&bootstrap, &case, args)?;
            println!(
                "{:<28} {:>10} {:>12.0} {:>10.1} {:>10.2} {:>10.2} {:>8}",
                format!("produce {size} B acks={acks}"),
                r.messages,
                r.msgs_per_s(),
                mb_per_s(r.bytes, r.elapsed),
                r.p50_us as f64 / 1000.0,
                r.p99_us as f64 / 1000.0,
                r.failures
            );
            consume_rows.push((format!("consume {size} B acks={acks}"), topic));
        }
    }
    for (label, topic) in &consume_rows {
        check_stop()?;
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

/// The two replication setups compared in cluster mode.
struct ClusterCase {
    label: &'static str,
    replication_factor: i32,
    topic_configs: &'static [(&'static str, &'static str)],
    acks: &'static str,
    idempotent: bool,
}

const CLUSTER_CASES: [ClusterCase; 2] = [
    ClusterCase {
        label: "RF=1 acks=1",
        replication_factor: 1,
        topic_configs: &[],
        acks: "1",
        idempotent: false,
    },
    ClusterCase {
        label: "RF=3 minISR=2 acks=all idem",
        replication_factor: 3,
        topic_configs: &[("min.insync.replicas", "2")],
        acks: "all",
        idempotent: true,
    },
];

/// Three combined nodes in racks a, b, c with the broker's own (Kafka's) timeouts, not the
/// harness's fast failure-detection ones; every size x both replication setups.
fn run_cluster(args: &Args) -> anyhow::Result<()> {
    let spec = ClusterSpec {
        overrides: Vec::new(),
        ..ClusterSpec::combined(&["a", "b", "c"])
    };
    let started = Instant::now();
    let mut cluster = Cluster::start(spec)?;
    println!(
        "cluster:  3 combined broker+controller nodes (racks a, b, c) on {}, ready in {:.1} s",
        cluster.bootstrap(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "cases:    one partition per topic; up to {} messages or {} s per case",
        args.messages, args.seconds
    );
    println!();
    println!(
        "{:<28} {:>6} {:>9} {:>10} {:>10} {:>8} {:>9} {:>9} {:>6}  leader / ISR after",
        "case", "size", "messages", "msgs/s", "MB/s", "p50 ms", "p99 ms", "seconds", "failed"
    );
    let run_id = run_id()?;
    let bootstrap = cluster.bootstrap();
    for &size in &args.sizes {
        for case in &CLUSTER_CASES {
            check_stop()?;
            let topic = format!(
                "{}-{run_id}-{size}b-rf{}",
                args.topic, case.replication_factor
            );
            cluster.create_topic(&topic, 1, case.replication_factor, case.topic_configs)?;
            let produce = ProduceCase {
                topic: &topic,
                size,
                acks: case.acks,
                idempotent: case.idempotent,
            };
            let r = produce_case(&bootstrap, &produce, args)?;
            // A shrunken ISR would mean the RF=3 numbers were not measured with 3 replicas.
            let after = match cluster.partition_info(&topic)?.first() {
                Some(p) => format!("{} / {:?}", p.leader, p.isr),
                None => "no partition".to_string(),
            };
            println!(
                "{:<28} {:>6} {:>9} {:>10.0} {:>10.1} {:>8.2} {:>9.2} {:>9.1} {:>6}  {}",
                case.label,
                format!("{size} B"),
                r.messages,
                r.msgs_per_s(),
                mb_per_s(r.bytes, r.elapsed),
                r.p50_us as f64 / 1000.0,
                r.p99_us as f64 / 1000.0,
                r.elapsed.as_secs_f64(),
                r.failures,
                after
            );
        }
    }
    drop(cluster);
    Ok(())
}

/// The `model name` of the first CPU in `/proc/cpuinfo` text.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_string())
    })
}

/// `MemTotal` of `/proc/meminfo` text, in GiB.
fn mem_total_gib(meminfo: &str) -> Option<f64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / (1024.0 * 1024.0))
}

/// What the numbers depend on: the command, the machine, the client and the broker binary.
fn print_preamble(args: &Args) {
    let command: Vec<String> = std::env::args().collect();
    println!("command:  {}", command.join(" "));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let model = cpu_model(&read("/proc/cpuinfo")).unwrap_or_else(|| "unknown CPU".into());
    let memory = mem_total_gib(&read("/proc/meminfo"))
        .map_or_else(|| "unknown memory".into(), |g| format!("{g:.1} GiB RAM"));
    let kernel = read("/proc/sys/kernel/osrelease");
    println!(
        "machine:  {cores} cores ({model}), {memory}, Linux {}",
        kernel.trim()
    );
    let (_, rdkafka_version) = rdkafka::util::get_rdkafka_version();
    let settings: Vec<String> = PRODUCER_SETTINGS
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!(
        "producer: librdkafka {rdkafka_version}, {}; latency = send() to delivery report",
        settings.join(", ")
    );
    if args.bootstrap.is_none() {
        match broker_binary() {
            Ok(path) => println!("broker:   {}", path.display()),
            Err(e) => println!("broker:   {e}"),
        }
    }
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    watch_signals()?;
    let result = if args.cluster {
        print_preamble(&args);
        run_cluster(&args)
    } else {
        run_single(&args)
    };
    // The brokers are gone by now (dropped inside the run); an interruption is not a failure.
    match result {
        Err(_) if stopping() => {
            eprintln!("strait-bench: interrupted");
            Ok(ExitCode::from(130))
        }
        other => other.map(|()| ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_picks_the_nearest_rank() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 0.50), 51);
        assert_eq!(percentile(&sorted, 0.99), 99);
        assert_eq!(percentile(&sorted, 1.0), 100);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn machine_facts_parse_proc_files() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon X\n\n\
                       processor\t: 1\nmodel name\t: Xeon X\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("Xeon X"));
        assert_eq!(cpu_model("processor : 0\n"), None);
        let meminfo = "MemTotal:       25165824 kB\nMemFree:         1000 kB\n";
        assert_eq!(mem_total_gib(meminfo), Some(24.0));
        assert_eq!(mem_total_gib("MemFree: 1 kB\n"), None);
    }
}
