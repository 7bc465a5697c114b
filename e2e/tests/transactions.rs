//! Kafka transactions on a 3-node cluster under real faults, on one cluster start:
//!
//! 1. An exactly-once consume-transform-produce pipeline (`python/txn_pipeline.py`, its own
//!    process, confluent-kafka) copies 100,000 records from an RF=3 input to an RF=3 output while
//!    the pipeline process is SIGKILLed and restarted (the restart fences the dead copy), the node
//!    leading the pipeline's transaction coordinator partition (`__transaction_state`) is
//!    SIGKILLed and restarted, and then the leader of an output partition. A read_committed read
//!    of the output holds every input record exactly once, and the group's committed offsets are
//!    the input's end.
//! 2. A Jepsen-style randomized check: four transactional producers (rdkafka) write small
//!    transactions to random partitions of two topics, committing or aborting at random, while a
//!    coordinator and a partition leader are SIGKILLed and (in a network-namespace lab, when the
//!    machine allows it) a coordinator is cut off its peers. After every transaction is closed
//!    (last stable offset = high watermark everywhere), read_committed consumers read everything
//!    and `txn_checker` asserts no aborted read, no lost commit, no duplicate, atomic visibility
//!    and per-producer order.
//!
//! Every broker process must stay up (no crash) throughout. Transactions need the overrides
//! `transaction.state.log.replication.factor=3` and `transaction.state.log.min.isr=2`; four
//! `__transaction_state` partitions keep the start fast.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};
use strait_e2e::cluster::{Cluster, ClusterSpec, READY_TIMEOUT};
use strait_e2e::kafka::is_transient;
use strait_e2e::netns::{self, NetLab};
use strait_e2e::txn_checker::{self, Observed, Outcome, Txn, Write};
use strait_e2e::wire::WireClient;
use strait_e2e::{TestMessage, produce_all, producer_config, wait_for, wait_until};

const TXN_STATE_PARTITIONS: i32 = 4;
const PARTITIONS: i32 = 3;
const FAULT_TIMEOUT: Duration = Duration::from_secs(60);
const READ_TIMEOUT: Duration = Duration::from_secs(90);
/// How long every open transaction may take to be closed once the clients stopped.
const STABLE_TIMEOUT: Duration = Duration::from_secs(60);

const PIPE_IN: &str = "pipe-in";
const PIPE_OUT: &str = "pipe-out";
const PIPE_GROUP: &str = "pipe-group";
const PIPE_TXN_ID: &str = "pipe-txn";
const PIPE_RECORDS: u64 = 100_000;
/// Input records per second: the run lasts ~35 s plus the fault stalls, so every fault lands
/// mid-run.
const PIPE_RATE: u32 = 3_000;
const PIPE_TIMEOUT: Duration = Duration::from_secs(240);
const PIPE_MAX_STARTS: u32 = 8;
/// A pipeline copy without progress for this long is killed and replaced (see `supervise`).
const PIPE_STALL: Duration = Duration::from_secs(75);

const JEPSEN_TOPICS: [&str; 2] = ["jep-a", "jep-b"];
const JEPSEN_PRODUCERS: u32 = 4;
const JEPSEN_MAX_TXNS: u64 = 2_000;
const JEPSEN_TIMEOUT: Duration = Duration::from_secs(150);

fn txn_spec() -> ClusterSpec {
    let mut spec = ClusterSpec::combined(&["a", "b", "c"]);
    for (k, v) in [
        ("transaction.state.log.replication.factor", "3"),
        ("transaction.state.log.min.isr", "2"),
        (
            "transaction.state.log.num.partitions",
            &TXN_STATE_PARTITIONS.to_string(),
        ),
        (
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            "1000",
        ),
        ("group.initial.rebalance.delay.ms", "0"),
    ] {
        spec.overrides.push((k.to_string(), v.to_string()));
    }
    spec
}

#[test]
fn transactions_stay_exactly_once_through_kills_and_partitions() {
    let lab = match netns::required() {
        Ok(true) => Some(Arc::new(
            NetLab::create(&[1, 2, 3]).expect("network namespaces"),
        )),
        Ok(false) => None,
        Err(reason) => panic!("{reason}"),
    };
    match lab {
        Some(lab) => {
            let inner = lab.clone();
            lab.run_in_clients(move || scenario(Some(inner)))
                .expect("enter the client namespace");
        }
        None => scenario(None),
    }
}

type Phase = fn(&mut Cluster, Option<&NetLab>);

fn scenario(lab: Option<Arc<NetLab>>) {
    let started = Instant::now();
    let mut cluster = match &lab {
        Some(lab) => Cluster::start_in_lab(txn_spec(), lab.clone()),
        None => Cluster::start(txn_spec()),
    }
    .expect("3-node cluster");
    let phases: [(&str, Phase); 2] = [
        ("pipeline", pipeline_phase),
        ("randomized", randomized_phase),
    ];
    let mut failures = Vec::new();
    for (name, phase) in phases {
        let phase_start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| phase(&mut cluster, lab.as_deref())));
        eprintln!(
            "phase {name}: {} in {:.0?}",
            if result.is_ok() { "ok" } else { "FAILED" },
            phase_start.elapsed()
        );
        let passed = result.is_ok();
        if let Err(panic) = result {
            failures.push(format!("{name}: {}", panic_message(&panic)));
        }
        // Whatever happened, the next phase starts from a whole cluster. A node that is not
        // running after a phase that passed (and so restarted every node it killed) crashed.
        if let Some(lab) = &lab {
            for id in cluster.ids() {
                let _ = lab.heal(id);
            }
        }
        let live = cluster.live_ids();
        for id in cluster.ids() {
            if !live.contains(&id) {
                if passed {
                    failures.push(format!(
                        "{name}: node {id} exited during the phase:\n{}",
                        cluster
                            .node(id)
                            .map(|n| n.stderr_tail())
                            .unwrap_or_default()
                    ));
                }
                cluster.restart(id).expect("restart node");
            }
        }
        if let Err(e) = cluster.wait_all_ready(READY_TIMEOUT) {
            failures.push(format!("after {name}: cluster not ready: {e}"));
            break;
        }
    }
    for node in cluster.nodes() {
        let stderr = node.stderr();
        if let Some(at) = stderr.find("panicked") {
            failures.push(format!(
                "node {} logged a panic: {}",
                node.spec().id,
                &stderr[at..stderr.len().min(at + 2000)]
            ));
        }
    }
    eprintln!("transactions scenario took {:.0?}", started.elapsed());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "non-string panic".into())
}

// ------------------------------------------------------------------------------------------------
// Cluster helpers

/// Kafka's `partitionFor(transactionalId)`: abs(Java String.hashCode) % partitions.
fn txn_partition(transactional_id: &str) -> i32 {
    let mut h: i32 = 0;
    for unit in transactional_id.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % TXN_STATE_PARTITIONS
}

/// FindCoordinator (transaction) asked of the nodes `via`, first answer wins.
fn txn_coordinator_via(cluster: &Cluster, via: &[u32], transactional_id: &str) -> Option<u32> {
    for &id in via {
        let Ok(addr) = cluster.node(id).and_then(|n| n.addr()) else {
            continue;
        };
        let Ok(mut client) = WireClient::connect(addr) else {
            continue;
        };
        let Ok(versions) = client.api_versions() else {
            continue;
        };
        let Some(&(lo, hi)) = versions.get(&(ApiKey::FindCoordinator as i16)) else {
            continue;
        };
        // v4+ batches keys; v1-3 carry one key and its type.
        let version = hi.min(3);
        if lo > version || version < 1 {
            continue;
        }
        let request = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(transactional_id.to_string()))
            .with_key_type(1);
        let Ok(response) =
            client.call::<_, FindCoordinatorResponse>(ApiKey::FindCoordinator, version, &request)
        else {
            continue;
        };
        if response.error_code == 0 && response.node_id.0 > 0 {
            return Some(response.node_id.0 as u32);
        }
    }
    None
}

fn txn_coordinator(cluster: &mut Cluster, transactional_id: &str) -> u32 {
    let live = cluster.live_ids();
    wait_for(
        FAULT_TIMEOUT,
        &format!("a transaction coordinator for {transactional_id}"),
        || txn_coordinator_via(cluster, &live, transactional_id),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The coordinator must be the leader of `__transaction_state` partition
/// `partitionFor(transactional id)`, as in Kafka, so Kafka's tools and a migration agree.
fn check_coordinator_is_partition_leader(cluster: &mut Cluster, transactional_id: &str) {
    let partition = txn_partition(transactional_id);
    let coordinator = txn_coordinator(cluster, transactional_id);
    let info = cluster
        .wait_for_leader("__transaction_state", partition, FAULT_TIMEOUT, |p| {
            p.leader > 0
        })
        .expect("__transaction_state in Metadata");
    assert_eq!(
        info.leader as u32, coordinator,
        "FindCoordinator({transactional_id}) names node {coordinator}, but __transaction_state-\
         {partition} is led by {info:?}"
    );
    assert_eq!(
        info.replicas.len(),
        3,
        "transaction.state.log.replication.factor=3: {info:?}"
    );
}

/// SIGKILLs node `victim`, waits until `moved` holds (leadership elsewhere), restarts the node
/// and waits until it is ready again.
fn kill_and_restart(
    cluster: &mut Cluster,
    victim: u32,
    what: &str,
    mut moved: impl FnMut(&mut Cluster) -> bool,
) {
    let started = Instant::now();
    cluster.kill(victim).expect("SIGKILL");
    wait_until(FAULT_TIMEOUT, what, || moved(cluster)).unwrap_or_else(|e| {
        panic!("{e} after SIGKILL of node {victim}");
    });
    eprintln!(
        "node {victim} SIGKILLed: {what} after {:.1?}",
        started.elapsed()
    );
    cluster.restart(victim).expect("restart");
    cluster
        .wait_ready(victim, READY_TIMEOUT)
        .expect("restarted node ready");
}

fn kill_coordinator(cluster: &mut Cluster, transactional_id: &str) -> u32 {
    let victim = txn_coordinator(cluster, transactional_id);
    kill_and_restart(
        cluster,
        victim,
        &format!("another coordinator for {transactional_id}"),
        |c| {
            let live = c.live_ids();
            txn_coordinator_via(c, &live, transactional_id).is_some_and(|n| n != victim)
        },
    );
    victim
}

fn kill_leader(cluster: &mut Cluster, topic: &str, partition: i32) -> u32 {
    let victim = cluster
        .wait_for_leader(topic, partition, FAULT_TIMEOUT, |p| p.leader > 0)
        .expect("a leader")
        .leader as u32;
    kill_and_restart(
        cluster,
        victim,
        &format!("a new leader of {topic}-{partition}"),
        |c| {
            c.partition_info(topic).is_ok_and(|info| {
                info.iter()
                    .any(|p| p.partition == partition && p.leader > 0 && p.leader as u32 != victim)
            })
        },
    );
    victim
}

fn durable_topic(cluster: &mut Cluster, name: &str) {
    cluster
        .create_topic(name, PARTITIONS, 3, &[("min.insync.replicas", "2")])
        .expect("create RF=3 topic");
}

// ------------------------------------------------------------------------------------------------
// Reading

fn reader_config(bootstrap: &str, isolation: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "strait-e2e-txn-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation)
        .set("auto.offset.reset", "earliest")
        .set("check.crcs", "true");
    config
}

/// ListOffsets(latest) of every partition under `isolation`: the high watermarks for
/// read_uncommitted, the last stable offsets for read_committed.
fn ends(bootstrap: &str, topic: &str, isolation: &str) -> Option<Vec<i64>> {
    let consumer: BaseConsumer = reader_config(bootstrap, isolation).create().ok()?;
    (0..PARTITIONS)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(5))
                .ok()
                .map(|(_, high)| high)
        })
        .collect()
}

/// Waits until no transaction is open on `topic`: LSO = high watermark on every partition.
fn wait_stable(bootstrap: &str, topic: &str) -> Vec<i64> {
    let mut last = None;
    wait_for(
        STABLE_TIMEOUT,
        &format!("every transaction on {topic} to be closed (LSO = HWM)"),
        || {
            let committed = ends(bootstrap, topic, "read_committed")?;
            let all = ends(bootstrap, topic, "read_uncommitted")?;
            last = Some((committed.clone(), all.clone()));
            (committed == all).then_some(all)
        },
    )
    .unwrap_or_else(|e| panic!("{e}: last (LSOs, HWMs) {last:?} — a hanging transaction"))
}

/// Reads every partition of `topic` from the start to its end under read_committed.
fn read_committed(bootstrap: &str, topic: &str) -> BTreeMap<i32, Vec<(i64, Vec<u8>)>> {
    let consumer: BaseConsumer = reader_config(bootstrap, "read_committed")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("assignment");
    }
    consumer.assign(&assignment).expect("assign");
    let mut out: BTreeMap<i32, Vec<(i64, Vec<u8>)>> =
        (0..PARTITIONS).map(|p| (p, Vec::new())).collect();
    let mut eof = std::collections::BTreeSet::new();
    let deadline = Instant::now() + READ_TIMEOUT;
    while eof.len() < PARTITIONS as usize {
        assert!(
            Instant::now() < deadline,
            "read_committed of {topic}: only partitions {eof:?} reached their end"
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let value = m.payload().map(<[u8]>::to_vec).unwrap_or_default();
                assert!(
                    !value.is_empty(),
                    "{topic}-{} offset {}: an empty record (a control record?)",
                    m.partition(),
                    m.offset()
                );
                out.entry(m.partition())
                    .or_default()
                    .push((m.offset(), value));
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                eof.insert(p);
            }
            Some(Err(e)) if is_transient(&e) => {}
            Some(Err(e)) => panic!("read_committed of {topic}: {e}"),
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// Phase 1: the pipeline

fn python() -> String {
    std::env::var("STRAIT_E2E_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The pipeline process, restarted after any non-zero exit; its `progress` lines (committed
/// input records) are kept in `progress`.
struct Pipeline {
    args: Vec<String>,
    child: Option<Child>,
    progress: Arc<AtomicU64>,
    starts: u32,
    exits: Vec<ExitStatus>,
    logs: tempfile::TempDir,
    done: bool,
    /// Progress as last seen, and since when.
    seen: (u64, Instant),
    /// Copies killed because they made no progress for `PIPE_STALL`.
    stall_restarts: u32,
}

impl Pipeline {
    fn start(bootstrap: &str) -> Pipeline {
        let args = [
            "--bootstrap",
            bootstrap,
            "--input",
            PIPE_IN,
            "--output",
            PIPE_OUT,
            "--group",
            PIPE_GROUP,
            "--transactional-id",
            PIPE_TXN_ID,
            "--max-rate",
            &PIPE_RATE.to_string(),
            "--commit-interval-ms",
            "500",
            "--deadline-s",
            &PIPE_TIMEOUT.as_secs().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut pipeline = Pipeline {
            args,
            child: None,
            progress: Arc::new(AtomicU64::new(0)),
            starts: 0,
            exits: Vec::new(),
            logs: tempfile::Builder::new()
                .prefix("strait-txn-pipeline-")
                .tempdir()
                .expect("temp dir"),
            done: false,
            seen: (0, Instant::now()),
            stall_restarts: 0,
        };
        pipeline.spawn();
        pipeline
    }

    fn log_path(&self, start: u32) -> PathBuf {
        self.logs.path().join(format!("pipeline-{start}.log"))
    }

    fn spawn(&mut self) {
        assert!(
            self.starts < PIPE_MAX_STARTS,
            "the pipeline was started {} times; exits {:?}; last stderr:\n{}",
            self.starts,
            self.exits,
            self.stderr_tail()
        );
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/txn_pipeline.py");
        let stderr = std::fs::File::create(self.log_path(self.starts)).expect("log file");
        let mut child = Command::new(python())
            .arg(script)
            .args(&self.args)
            // cargo's library path is for the test binary, not for Python's librdkafka.
            .env_remove("LD_LIBRARY_PATH")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} {script}: {e}", python()));
        self.starts += 1;
        let stdout = child.stdout.take().expect("piped stdout");
        let progress = self.progress.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if let Some(n) = line
                    .strip_prefix("progress ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                {
                    progress.fetch_max(n, Ordering::SeqCst);
                }
            }
        });
        self.child = Some(child);
    }

    fn progress(&self) -> u64 {
        self.progress.load(Ordering::SeqCst)
    }

    fn stderr_tail(&self) -> String {
        let Some(last) = self.starts.checked_sub(1) else {
            return String::new();
        };
        let text = std::fs::read_to_string(self.log_path(last)).unwrap_or_default();
        let cut = text.len().saturating_sub(3000);
        let cut = (cut..=text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[cut..].to_string()
    }

    /// Notices an exit: 0 means done; anything else is logged and the pipeline started again.
    fn supervise(&mut self) -> bool {
        if self.done {
            return true;
        }
        let progress = self.progress();
        if progress != self.seen.0 {
            self.seen = (progress, Instant::now());
        }
        let Some(child) = self.child.as_mut() else {
            return false;
        };
        let Ok(Some(status)) = child.try_wait() else {
            // A copy blocked inside a client call is treated as crashed: the next copy fences it
            // and goes on, so exactly-once must still hold. A hang on the broker side stalls the
            // next copy too, and the run still fails. The pipeline's watchdog has logged where
            // it was blocked.
            if self.seen.1.elapsed() >= PIPE_STALL {
                self.stall_restarts += 1;
                eprintln!(
                    "pipeline made no progress for {PIPE_STALL:?} at {progress}; SIGKILL and \
                     restart. stderr tail:\n{}",
                    self.stderr_tail()
                );
                self.seen = (progress, Instant::now());
                self.kill_and_restart();
            }
            return false;
        };
        self.child = None;
        self.exits.push(status);
        if status.success() {
            self.done = true;
            return true;
        }
        eprintln!(
            "pipeline exited {status} at progress {}; restarting. stderr tail:\n{}",
            self.progress(),
            self.stderr_tail()
        );
        self.spawn();
        false
    }

    /// SIGKILLs the running pipeline and starts a new copy.
    fn kill_and_restart(&mut self) {
        let mut child = self.child.take().expect("the pipeline runs");
        child.kill().expect("SIGKILL the pipeline");
        let status = child.wait().expect("reap the pipeline");
        self.exits.push(status);
        self.spawn();
    }

    fn wait_progress(&mut self, at: u64, what: &str) {
        self.wait_progress_for(PIPE_TIMEOUT, at, what);
    }

    fn wait_progress_for(&mut self, timeout: Duration, at: u64, what: &str) {
        wait_until(timeout, what, || {
            self.supervise();
            self.progress() >= at
        })
        .unwrap_or_else(|e| {
            panic!(
                "{e}: progress {}, exits {:?}, stderr tail:\n{}",
                self.progress(),
                self.exits,
                self.stderr_tail()
            )
        });
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn pipeline_phase(cluster: &mut Cluster, _lab: Option<&NetLab>) {
    durable_topic(cluster, PIPE_IN);
    durable_topic(cluster, PIPE_OUT);
    let messages: Vec<TestMessage> = (0..PIPE_RECORDS)
        .map(|i| TestMessage {
            value: Some(format!("v{i}").into_bytes()),
            partition: Some((i % PARTITIONS as u64) as i32),
            ..TestMessage::default()
        })
        .collect();
    let mut config = producer_config(&cluster.bootstrap());
    config.set("enable.idempotence", "true").set("acks", "all");
    let deliveries = produce_all(&config, PIPE_IN, &messages, Duration::from_secs(120))
        .expect("produce the input");
    // (partition, offset) -> value
    let mut expected: HashMap<(i32, i64), Vec<u8>> = HashMap::new();
    for d in &deliveries {
        let (partition, offset) = d.result.clone().expect("input delivered");
        expected.insert(
            (partition, offset),
            messages[d.index].value.clone().unwrap(),
        );
    }
    let input_ends = ends(&cluster.bootstrap(), PIPE_IN, "read_uncommitted").expect("input ends");
    assert_eq!(input_ends.iter().sum::<i64>() as u64, PIPE_RECORDS);

    let mut pipeline = Pipeline::start(&cluster.bootstrap());
    pipeline.wait_progress_for(FAULT_TIMEOUT, 1, "the pipeline's first commit");
    check_coordinator_is_partition_leader(cluster, PIPE_TXN_ID);

    pipeline.wait_progress(PIPE_RECORDS / 5, "20% through the pipeline");
    assert!(!pipeline.done, "the pipeline finished before the faults");
    pipeline.kill_and_restart();
    eprintln!(
        "pipeline SIGKILLed at {} and restarted",
        pipeline.progress()
    );

    pipeline.wait_progress(
        PIPE_RECORDS * 2 / 5,
        "40% through the pipeline (after its restart)",
    );
    let victim = kill_coordinator(cluster, PIPE_TXN_ID);
    eprintln!(
        "coordinator node {victim} SIGKILLed and restarted; progress {}",
        pipeline.progress()
    );

    pipeline.wait_progress(
        PIPE_RECORDS * 65 / 100,
        "65% through the pipeline (after the coordinator kill)",
    );
    let victim = kill_leader(cluster, PIPE_OUT, 0);
    eprintln!(
        "{PIPE_OUT}-0 leader node {victim} SIGKILLed and restarted; progress {}",
        pipeline.progress()
    );

    wait_until(PIPE_TIMEOUT, "the pipeline to finish", || {
        pipeline.supervise()
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: progress {}, exits {:?}, stderr tail:\n{}\nbrokers' warnings:\n{}",
            pipeline.progress(),
            pipeline.exits,
            pipeline.stderr_tail(),
            broker_warnings(cluster)
        )
    });
    eprintln!(
        "pipeline done after {} starts ({} after a stall), exits {:?}",
        pipeline.starts, pipeline.stall_restarts, pipeline.exits
    );

    let bootstrap = cluster.live_bootstrap();
    let output_ends = wait_stable(&bootstrap, PIPE_OUT);
    let output = read_committed(&bootstrap, PIPE_OUT);
    let mut seen: HashMap<(i32, i64), usize> = HashMap::new();
    let mut problems = Vec::new();
    for (&out_partition, records) in &output {
        for (offset, value) in records {
            let text = String::from_utf8_lossy(value);
            let mut parts = text.splitn(3, ':');
            let parsed = (|| {
                let p = parts.next()?.parse::<i32>().ok()?;
                let o = parts.next()?.parse::<i64>().ok()?;
                Some((p, o, parts.next()?.as_bytes().to_vec()))
            })();
            let Some((p, o, v)) = parsed else {
                problems.push(format!(
                    "{PIPE_OUT}-{out_partition}@{offset}: foreign {text:?}"
                ));
                continue;
            };
            if p != out_partition {
                problems.push(format!(
                    "{PIPE_OUT}-{out_partition}@{offset}: from input partition {p}"
                ));
            }
            if expected.get(&(p, o)) != Some(&v) {
                problems.push(format!(
                    "{PIPE_OUT}-{out_partition}@{offset}: {text:?} matches no input record"
                ));
            }
            *seen.entry((p, o)).or_default() += 1;
        }
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    let missing: Vec<_> = expected.keys().filter(|k| !seen.contains_key(k)).collect();
    let read: usize = output.values().map(Vec::len).sum();
    let all = ends(&bootstrap, PIPE_OUT, "read_uncommitted").unwrap_or_default();
    eprintln!(
        "pipeline output: {read} committed records read, log ends {output_ends:?} ({all:?}), \
         {} duplicated, {} missing",
        duplicated.len(),
        missing.len()
    );
    assert!(
        problems.is_empty() && duplicated.is_empty() && missing.is_empty(),
        "exactly-once violated: {} problems {:?}; {} duplicated {:?}; {} missing {:?}",
        problems.len(),
        &problems[..problems.len().min(10)],
        duplicated.len(),
        &duplicated[..duplicated.len().min(10)],
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(read as u64, PIPE_RECORDS);

    // The group's offsets, committed inside the transactions, are the input's end.
    let consumer: BaseConsumer = {
        let mut config = reader_config(&bootstrap, "read_committed");
        config.set("group.id", PIPE_GROUP);
        config.create().expect("consumer")
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(PIPE_IN, p);
    }
    let committed = wait_for(FAULT_TIMEOUT, "the group's committed offsets", || {
        consumer
            .committed_offsets(tpl.clone(), Duration::from_secs(10))
            .ok()
    })
    .expect("OffsetFetch");
    let committed: Vec<i64> = (0..PARTITIONS)
        .map(
            |p| match committed.find_partition(PIPE_IN, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                other => panic!("no committed offset for {PIPE_IN}-{p}: {other:?}"),
            },
        )
        .collect();
    assert_eq!(committed, input_ends, "committed offsets = input ends");
}

// ------------------------------------------------------------------------------------------------
// Phase 2: randomized transactions, checked

struct Stop(Arc<AtomicBool>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn txn_producer(
    bootstrap: &str,
    transactional_id: &str,
) -> Option<ThreadedProducer<DefaultProducerContext>> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", "20000")
        .set("request.timeout.ms", "5000")
        .set("retry.backoff.ms", "100")
        .set("linger.ms", "2")
        .create()
        .ok()?;
    let deadline = Instant::now() + FAULT_TIMEOUT;
    loop {
        match producer.init_transactions(Duration::from_secs(20)) {
            Ok(()) => return Some(producer),
            Err(KafkaError::Transaction(e)) if e.is_retriable() && Instant::now() < deadline => {}
            Err(e) => {
                eprintln!("{transactional_id}: init_transactions: {e}");
                return None;
            }
        }
    }
}

/// How a commit attempt ended, and whether the producer instance is still usable.
fn commit(producer: &ThreadedProducer<DefaultProducerContext>) -> (Outcome, bool) {
    let deadline = Instant::now() + FAULT_TIMEOUT;
    // Whether rd_kafka_commit_transaction (and so maybe EndTxn(commit)) was reached: the rdkafka
    // wrapper flushes first and fails with `Flush` before it.
    let mut end_txn_attempted = false;
    loop {
        match producer.commit_transaction(Duration::from_secs(20)) {
            Ok(()) => return (Outcome::Committed, true),
            Err(KafkaError::Flush(_)) if Instant::now() < deadline && !end_txn_attempted => {
                // Records still undelivered: the commit was not sent; abort instead.
                return (Outcome::Aborted, abort(producer));
            }
            Err(KafkaError::Transaction(e)) => {
                end_txn_attempted = true;
                if e.is_retriable() && Instant::now() < deadline {
                    continue;
                }
                if e.txn_requires_abort() && !e.is_fatal() {
                    // librdkafka says the transaction failed and must be aborted; the abort
                    // (EndTxn(abort)) succeeding means the coordinator aborted it.
                    return if abort(producer) {
                        (Outcome::Aborted, true)
                    } else {
                        (Outcome::Unknown, false)
                    };
                }
                return (Outcome::Unknown, false);
            }
            Err(_) => return (Outcome::Unknown, false),
        }
    }
}

/// Aborts the open transaction; whether the producer instance is still usable.
fn abort(producer: &ThreadedProducer<DefaultProducerContext>) -> bool {
    let deadline = Instant::now() + FAULT_TIMEOUT;
    loop {
        match producer.abort_transaction(Duration::from_secs(20)) {
            Ok(()) => return true,
            Err(KafkaError::Transaction(e)) if e.is_retriable() && Instant::now() < deadline => {}
            Err(_) => return false,
        }
    }
}

/// One logical producer (a transactional id; client instances replaced after fatal errors):
/// random transactions until `stop`, each recorded with the outcome the client saw.
fn random_producer(
    id: u32,
    bootstrap: String,
    seed: u64,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> Vec<Txn> {
    let transactional_id = format!("jepsen-{id}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut history = Vec::new();
    let mut producer = None;
    let mut seq = 0u64;
    let deadline = Instant::now() + JEPSEN_TIMEOUT;
    while !stop.load(Ordering::SeqCst) && seq < JEPSEN_MAX_TXNS && Instant::now() < deadline {
        if producer.is_none() {
            producer = txn_producer(&bootstrap, &transactional_id);
            if producer.is_none() {
                // A retry backoff, not a synchronisation: the next instance tries again.
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        }
        let p = producer.as_ref().expect("a producer");
        if let Err(e) = p.begin_transaction() {
            eprintln!("{transactional_id}: begin_transaction: {e}");
            producer = None;
            continue;
        }
        let mut writes = Vec::new();
        let mut send_failed = false;
        for j in 0..rng.random_range(1..=6) {
            let topic = JEPSEN_TOPICS[rng.random_range(0..JEPSEN_TOPICS.len())];
            let partition = rng.random_range(0..PARTITIONS);
            let value = format!("{id}-{seq}-{j}").into_bytes();
            match p.send(
                BaseRecord::<(), Vec<u8>>::to(topic)
                    .partition(partition)
                    .payload(&value),
            ) {
                Ok(()) => writes.push(Write {
                    topic: topic.to_string(),
                    partition,
                    value,
                }),
                Err((e, _)) => {
                    eprintln!("{transactional_id}: send: {e}");
                    send_failed = true;
                    break;
                }
            }
        }
        let (outcome, usable) = if !send_failed && rng.random_bool(0.7) {
            commit(p)
        } else {
            // Never committed, so never visible, whatever the abort returns.
            (Outcome::Aborted, abort(p))
        };
        if !usable {
            producer = None;
        }
        history.push(Txn {
            producer: id,
            seq,
            writes,
            outcome,
        });
        seq += 1;
        done.fetch_add(1, Ordering::SeqCst);
    }
    history
}

fn randomized_phase(cluster: &mut Cluster, lab: Option<&NetLab>) {
    for topic in JEPSEN_TOPICS {
        durable_topic(cluster, topic);
    }
    let seed = std::env::var("STRAIT_E2E_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        });
    eprintln!("randomized transactions: seed {seed} (STRAIT_E2E_SEED to repeat the choices)");
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_unwind = Stop(stop.clone());
    let counters: Vec<Arc<AtomicU64>> = (0..JEPSEN_PRODUCERS)
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    let handles: Vec<_> = (0..JEPSEN_PRODUCERS)
        .map(|id| {
            let (bootstrap, stop, done) = (
                cluster.bootstrap(),
                stop.clone(),
                counters[id as usize].clone(),
            );
            let seed = seed.wrapping_add(u64::from(id) * 7919);
            std::thread::spawn(move || random_producer(id, bootstrap, seed, stop, done))
        })
        .collect();
    let total = |counters: &[Arc<AtomicU64>]| -> Vec<u64> {
        counters.iter().map(|c| c.load(Ordering::SeqCst)).collect()
    };
    let each_past = |counters: &[Arc<AtomicU64>], base: &[u64], more: u64, what: &str| {
        wait_until(FAULT_TIMEOUT, what, || {
            counters
                .iter()
                .zip(base)
                .all(|(c, b)| c.load(Ordering::SeqCst) >= b + more)
        })
        .unwrap_or_else(|e| panic!("{e}: transactions per producer {:?}", total(counters)));
    };

    each_past(&counters, &[0; 4], 20, "20 transactions per producer");
    let victim = kill_coordinator(cluster, "jepsen-0");
    eprintln!(
        "jepsen-0's coordinator node {victim} SIGKILLed; transactions {:?}",
        total(&counters)
    );

    each_past(
        &counters,
        &total(&counters),
        15,
        "15 more transactions each",
    );
    let victim = kill_leader(cluster, JEPSEN_TOPICS[0], 1);
    eprintln!(
        "{}-1 leader node {victim} SIGKILLed; transactions {:?}",
        JEPSEN_TOPICS[0],
        total(&counters)
    );

    each_past(
        &counters,
        &total(&counters),
        15,
        "15 more transactions each",
    );
    if let Some(lab) = lab {
        // Cut jepsen-1's coordinator off its peers (clients still reach it): it cannot replicate
        // __transaction_state (min.isr=2) and must not complete a commit; the majority takes over.
        let cut = txn_coordinator(cluster, "jepsen-1");
        let majority: Vec<u32> = cluster.ids().into_iter().filter(|&i| i != cut).collect();
        lab.cut(cut).expect("cut the coordinator off");
        let moved = wait_for(
            FAULT_TIMEOUT,
            "the majority to elect another coordinator",
            || txn_coordinator_via(cluster, &majority, "jepsen-1").filter(|&n| n != cut),
        );
        let during = total(&counters);
        eprintln!(
            "jepsen-1's coordinator node {cut} cut off: majority coordinator {moved:?}; \
             transactions {during:?}"
        );
        // Keep the cut for a few transactions' worth of traffic on the majority side.
        let _ = wait_until(
            Duration::from_secs(15),
            "traffic during the partition",
            || {
                total(&counters)
                    .iter()
                    .zip(&during)
                    .all(|(n, d)| *n >= d + 5)
            },
        );
        lab.heal(cut).expect("heal");
        cluster
            .wait_all_ready(READY_TIMEOUT)
            .expect("the cut node catches up");
        moved.unwrap_or_else(|e| panic!("{e}"));
    } else {
        eprintln!("no network namespaces: the partition step is skipped");
    }
    each_past(
        &counters,
        &total(&counters),
        10,
        "10 more transactions each after the faults",
    );
    stop.store(true, Ordering::SeqCst);

    let mut history = Vec::new();
    for handle in handles {
        history.extend(handle.join().expect("producer thread"));
    }
    let bootstrap = cluster.live_bootstrap();
    let mut observed = Observed::new();
    for topic in JEPSEN_TOPICS {
        wait_stable(&bootstrap, topic);
        for (partition, records) in read_committed(&bootstrap, topic) {
            observed.insert((topic.to_string(), partition), records);
        }
    }
    let report = txn_checker::check(&history, &observed);
    eprintln!(
        "checker: {} committed, {} aborted, {} unknown ({} visible), {} read",
        report.committed, report.aborted, report.unknown, report.unknown_visible, report.read
    );
    report.check().expect("transactional guarantees");
    assert!(
        report.committed >= 40 && report.aborted >= 10,
        "too little traffic to mean anything: {report:?}"
    );
}

/// The last warnings and errors each node logged, for a failure message.
fn broker_warnings(cluster: &Cluster) -> String {
    let mut out = String::new();
    for node in cluster.nodes() {
        let stderr = node.stderr();
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .filter(|l| !l.contains("openraft"))
            .collect();
        out.push_str(&format!("--- node {}:\n", node.spec().id));
        for l in &lines[lines.len().saturating_sub(40)..] {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}
