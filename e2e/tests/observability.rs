//! Observability end to end: a broker with its metrics listener on, a known workload through
//! librdkafka (N messages produced, consumed and committed by a group that then stops, K more
//! produced), then the metrics checked three ways: the scraped text directly (exact counters and
//! lag), a real Prometheus scraping the broker (every PromQL of every dashboard panel, variable
//! and alert rule must parse; broker panels must return data), and `promtool`. A second,
//! tiered topic (the embedded local-directory store) is filled until segments are copied and
//! read back from offset 0, so the tiered-storage panels have data too.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use strait_e2e::dashboards::{
    Dashboard, builtin_variables, label_values_promql, load_dashboards, load_rule_groups,
    metric_names, substitute,
};
use strait_e2e::exposition::Scrape;
use strait_e2e::prometheus::{PrometheusServer, ScrapeJob, promtool_binary};
use strait_e2e::{
    Admin, Broker, TestMessage, free_port, http, produce_all, producer_config, read_range,
    wait_for, wait_until, watermarks,
};

const TOPIC: &str = "metrics-orders";
/// A tiered topic: small segments and local retention, so copies and remote reads happen.
const TIERED_TOPIC: &str = "metrics-tiered";
/// Records of TIERED_VALUE_BYTES produced to it (about 2 MiB: several 256 KiB segments).
const TIERED_N: usize = 2_000;
const TIERED_VALUE_BYTES: usize = 1024;
/// Counters the broker creates for a topic only at its first error (a healthy run has none):
/// their expressions must parse, and panels fall back to the request counters times 0.
const FIRST_ERROR_COUNTERS: &[&str] = &[
    "kafka_server_brokertopicmetrics_remotecopyerrors_total",
    "kafka_server_brokertopicmetrics_remotefetcherrors_total",
    "kafka_server_brokertopicmetrics_remotedeleteerrors_total",
];
const GROUP: &str = "metrics-readers";
const PARTITIONS: i32 = 3;
/// Messages produced and consumed by the group.
const N: usize = 300;
/// Messages produced after the group stopped: its lag.
const K: usize = 120;
const JOB: &str = "strait";
/// Dashboards of other processes (operator, strait-mirror): their queries only have to parse here.
const NOT_BROKER_DASHBOARDS: &[&str] = &["strait-operator.json", "strait-mirror.json"];
/// Metrics of other processes, exempt from "the broker exposes it".
const NOT_BROKER_METRIC_PREFIXES: &[&str] = &[
    "strait_operator_",
    "strait_mirror_",
    "kafka_connect_mirror_",
];
/// The topic's `max.message.bytes`: one larger message provokes a failed produce.
const MAX_MESSAGE_BYTES: &str = "16384";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const WORKLOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a PromQL expression may take to return data once Prometheus scrapes the broker
/// (rates need two samples; `deriv` too).
const DATA_TIMEOUT: Duration = Duration::from_secs(30);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

fn scrape(addr: SocketAddr) -> Scrape {
    Scrape::fetch(addr, CALL_TIMEOUT).expect("GET /metrics: 200 with valid exposition")
}

fn scrape_text(addr: SocketAddr) -> String {
    http::get(addr, "/metrics", CALL_TIMEOUT)
        .expect("GET /metrics")
        .text()
}

fn messages(count: usize, tag: &str) -> Vec<TestMessage> {
    (0..count)
        .map(|i| TestMessage {
            key: Some(format!("{tag}-{i}").into_bytes()),
            value: Some(format!("{tag} value {i} {}", "x".repeat(i % 50)).into_bytes()),
            ..TestMessage::default()
        })
        .collect()
}

fn produce(bootstrap: &str, count: usize, tag: &str) {
    let deliveries = produce_all(
        &producer_config(bootstrap),
        TOPIC,
        &messages(count, tag),
        WORKLOAD_TIMEOUT,
    )
    .expect("produce");
    let failed: Vec<_> = deliveries.iter().filter(|d| d.result.is_err()).collect();
    assert!(failed.is_empty(), "failed deliveries: {failed:?}");
    assert_eq!(deliveries.len(), count);
}

/// Subscribes as `GROUP`, reads `count` messages, commits synchronously, returns the committed
/// offset per partition, and closes (the group then has no members).
fn consume_and_commit(bootstrap: &str, count: usize) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", GROUP)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .expect("create consumer");
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    let mut read = 0usize;
    wait_until(
        WORKLOAD_TIMEOUT,
        "group consumer to read every message",
        || {
            if let Some(result) = consumer.poll(Duration::from_millis(100)) {
                let message = result.expect("consume");
                assert_eq!(message.topic(), TOPIC);
                read += 1;
            }
            read >= count
        },
    )
    .expect("consume");
    assert_eq!(read, count, "read more messages than were produced");
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit");
    let mut list = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        list.add_partition(TOPIC, partition);
    }
    let committed = consumer
        .committed_offsets(list, CALL_TIMEOUT)
        .expect("committed offsets");
    let offsets: BTreeMap<i32, i64> = committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect();
    consumer.unsubscribe();
    drop(consumer);
    offsets
}

/// One produce rejected with MESSAGE_TOO_LARGE and fetches beyond the log end
/// (OFFSET_OUT_OF_RANGE): the failure counters and error panels must then have data.
fn provoke_failures(bootstrap: &str, metrics_addr: SocketAddr) {
    let topic = [("topic", TOPIC)];
    let failed_produce = |s: &Scrape| {
        s.sum(
            "kafka_server_brokertopicmetrics_failedproducerequests_total",
            &topic,
        )
        .unwrap_or(0.0)
    };
    let failed_fetch = |s: &Scrape| {
        s.sum(
            "kafka_server_brokertopicmetrics_failedfetchrequests_total",
            &topic,
        )
        .unwrap_or(0.0)
    };
    let before = scrape(metrics_addr);

    let oversize = TestMessage {
        key: Some(b"too-large".to_vec()),
        value: Some(vec![b'x'; 32 * 1024]),
        partition: Some(0),
        ..TestMessage::default()
    };
    let deliveries = produce_all(
        &producer_config(bootstrap),
        TOPIC,
        &[oversize],
        WORKLOAD_TIMEOUT,
    )
    .expect("produce oversize");
    assert!(
        matches!(
            deliveries.first().map(|d| &d.result),
            Some(Err(KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageSizeTooLarge
            )))
        ),
        "oversize message: {deliveries:?}"
    );
    let after = scrape(metrics_addr);
    assert!(
        failed_produce(&after) > failed_produce(&before),
        "failed produce requests did not rise"
    );
    assert!(
        after
            .sum(
                "kafka_network_requestmetrics_errors_total",
                &[("request", "Produce"), ("error", "MESSAGE_TOO_LARGE")]
            )
            .unwrap_or(0.0)
            > 0.0,
        "no Produce MESSAGE_TOO_LARGE error counted"
    );

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "metrics-out-of-range")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .create()
        .expect("create consumer");
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(TOPIC, 0, Offset::Offset(1_000_000))
        .expect("partition offset");
    consumer.assign(&list).expect("assign");
    wait_until(WORKLOAD_TIMEOUT, "a failed fetch to be counted", || {
        // The client reports the out-of-range offset as an error; the broker counts it.
        let _ = consumer.poll(Duration::from_millis(100));
        failed_fetch(&scrape(metrics_addr)) > failed_fetch(&before)
    })
    .expect("failed fetch");
}

/// Fills a tiered topic until closed segments are copied and local retention removed some of
/// them, then reads it from offset 0 (partly from the store) until a remote fetch is counted.
fn tiered_workload(bootstrap: &str, metrics_addr: SocketAddr) {
    Admin::new(bootstrap)
        .expect("admin")
        .create_topic(
            TIERED_TOPIC,
            1,
            &[
                ("remote.storage.enable", "true"),
                ("segment.bytes", "262144"),
                ("local.retention.bytes", "524288"),
                ("retention.ms", "-1"),
            ],
        )
        .expect("create tiered topic");
    let records: Vec<TestMessage> = (0..TIERED_N)
        .map(|i| {
            let mut value = format!("tiered-{i:06}-").into_bytes();
            value.resize(TIERED_VALUE_BYTES, b'a' + (i % 26) as u8);
            TestMessage {
                value: Some(value),
                ..TestMessage::default()
            }
        })
        .collect();
    // Batches stay well below segment.bytes (a batch never spans segments).
    let mut config = producer_config(bootstrap);
    config.set("batch.size", "65536");
    let deliveries =
        produce_all(&config, TIERED_TOPIC, &records, WORKLOAD_TIMEOUT).expect("produce tiered");
    assert!(
        deliveries.iter().all(|d| d.result.is_ok()),
        "failed tiered deliveries"
    );
    let topic = [("topic", TIERED_TOPIC)];
    let sum = |s: &Scrape, name: &str| s.sum(name, &topic).unwrap_or(0.0);
    wait_until(WORKLOAD_TIMEOUT, "segments copied to the store", || {
        let s = scrape(metrics_addr);
        sum(&s, "kafka_server_brokertopicmetrics_remotecopybytes_total") > 0.0
            && sum(&s, "kafka_server_brokertopicmetrics_remotelogsizebytes") > 0.0
    })
    .expect("remote copies");
    wait_until(WORKLOAD_TIMEOUT, "a fetch served from the store", || {
        let read = read_range(
            bootstrap,
            TIERED_TOPIC,
            0,
            0,
            TIERED_N as i64,
            WORKLOAD_TIMEOUT,
        )
        .expect("read tiered topic from offset 0");
        assert_eq!(read.len(), TIERED_N, "tiered records read from offset 0");
        sum(
            &scrape(metrics_addr),
            "kafka_server_brokertopicmetrics_remotefetchbytes_total",
        ) > 0.0
    })
    .expect("remote fetch");
}

/// Values for Grafana's template variables: the workload's topic and group, the scrape job, an
/// operator kind, mirror cluster aliases, and interval/range macros that cover this short test.
fn variable_values() -> HashMap<&'static str, &'static str> {
    let mut values = builtin_variables();
    values.extend([
        ("job", JOB),
        ("topic", "metrics-orders|metrics-tiered"),
        ("consumergroup", GROUP),
        ("kind", "Cluster"),
        ("source", "A"),
        ("target", "B"),
    ]);
    values
}

#[test]
fn metrics_dashboards_and_alerts_against_real_prometheus() {
    let root = repo_root();
    let dashboards_dir = root.join("dashboards");
    let alerts = dashboards_dir.join("alerts.yaml");

    let metrics_port = free_port().expect("free port");
    let metrics_addr = SocketAddr::from(([127, 0, 0, 1], metrics_port));
    let metrics_listener = metrics_addr.to_string();
    let broker = Broker::start(&[
        ("metrics.listener", metrics_listener.as_str()),
        // The tiered topic's copies and local retention run within the test's waits.
        ("remote.log.manager.task.interval.ms", "200"),
        ("log.retention.check.interval.ms", "200"),
    ])
    .expect("start broker");
    let bootstrap = broker.bootstrap();

    let healthz = http::get(metrics_addr, "/healthz", CALL_TIMEOUT).expect("GET /healthz");
    assert_eq!(healthz.status, 200, "/healthz: {}", healthz.text());

    // The workload: N in, all consumed and committed by a group that stops, then K more in.
    Admin::new(&bootstrap)
        .expect("admin")
        .create_topic(
            TOPIC,
            PARTITIONS,
            &[("max.message.bytes", MAX_MESSAGE_BYTES)],
        )
        .expect("create topic");
    let before = scrape(metrics_addr);
    let messages_in = |s: &Scrape| {
        s.sum(
            "kafka_server_brokertopicmetrics_messagesin_total",
            &[("topic", TOPIC)],
        )
        .unwrap_or(0.0)
    };
    let in_before = messages_in(&before);
    produce(&bootstrap, N, "first");
    let after_first = scrape(metrics_addr);
    assert_eq!(
        messages_in(&after_first) - in_before,
        N as f64,
        "messages-in must rise by exactly N"
    );
    let committed = consume_and_commit(&bootstrap, N);
    assert_eq!(
        committed.values().sum::<i64>(),
        N as i64,
        "committed offsets {committed:?}"
    );
    produce(&bootstrap, K, "second");
    provoke_failures(&bootstrap, metrics_addr);
    tiered_workload(&bootstrap, metrics_addr);

    // Direct scrape: counters and lag.
    let ends: BTreeMap<i32, i64> = (0..PARTITIONS)
        .map(|p| (p, watermarks(&bootstrap, TOPIC, p).expect("watermarks").1))
        .collect();
    assert_eq!(ends.values().sum::<i64>(), (N + K) as i64);
    let topic = [("topic", TOPIC)];
    // Lag and group gauges may be computed periodically: wait (bounded) for them to settle.
    let settled = wait_for(
        Duration::from_secs(30),
        "consumer-group lag metrics",
        || {
            let scrape = scrape(metrics_addr);
            let all_match = (0..PARTITIONS).all(|p| {
                let partition = p.to_string();
                let labels = [
                    ("consumergroup", GROUP),
                    ("topic", TOPIC),
                    ("partition", partition.as_str()),
                ];
                let want_lag = ends[&p] - committed.get(&p).copied().unwrap_or(0);
                scrape.sum("kafka_consumergroup_lag", &labels) == Some(want_lag as f64)
                    && scrape.sum("kafka_consumergroup_current_offset", &labels)
                        == committed.get(&p).map(|&o| o as f64)
            });
            all_match.then_some(scrape)
        },
    );
    let scraped = match settled {
        Ok(scrape) => scrape,
        Err(e) => {
            let lines: Vec<String> = scrape_text(metrics_addr)
                .lines()
                .filter(|l| l.starts_with("kafka_consumergroup"))
                .map(str::to_string)
                .collect();
            panic!("{e}: want end offsets {ends:?} minus committed {committed:?}; got {lines:#?}");
        }
    };
    assert_eq!(
        messages_in(&scraped) - in_before,
        (N + K) as f64,
        "messages-in must rise by exactly N + K"
    );
    let bytes_in = scraped
        .sum("kafka_server_brokertopicmetrics_bytesin_total", &topic)
        .unwrap_or(0.0);
    let bytes_out = scraped
        .sum("kafka_server_brokertopicmetrics_bytesout_total", &topic)
        .unwrap_or(0.0);
    assert!(bytes_in > 0.0, "bytes in {bytes_in}");
    assert!(bytes_out > 0.0, "bytes out {bytes_out}");
    assert!(
        scraped
            .sum(
                "kafka_server_brokertopicmetrics_totalproducerequests_total",
                &topic
            )
            .unwrap_or(0.0)
            > 0.0
    );
    assert_eq!(
        scraped.sum("kafka_consumergroup_members", &[("consumergroup", GROUP)]),
        Some(0.0),
        "the stopped group has no members"
    );
    for p in 0..PARTITIONS {
        let partition = p.to_string();
        let labels = [("topic", TOPIC), ("partition", partition.as_str())];
        assert_eq!(
            scraped.sum("kafka_log_log_logendoffset", &labels),
            Some(ends[&p] as f64),
            "log end offset of partition {p}"
        );
    }
    assert!(
        scraped
            .sum("process_resident_memory_bytes", &[])
            .unwrap_or(0.0)
            > 0.0
    );

    // promtool: the rules file (the scraped text is linted last, after a full workload).
    let promtool = promtool_binary();
    let rules_check = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(&alerts)
        .output()
        .expect("run promtool check rules");
    assert!(
        rules_check.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&rules_check.stdout),
        String::from_utf8_lossy(&rules_check.stderr)
    );
    // Dashboards are well formed before any query runs.
    let boards = load_dashboards(&dashboards_dir).expect("load dashboards");
    let names: Vec<String> = boards.iter().map(Dashboard::name).collect();
    for expected in [
        "strait-cluster-overview.json",
        "strait-topics.json",
        "strait-consumer-groups.json",
        "strait-replication.json",
        "strait-operator.json",
        "strait-mirror.json",
    ] {
        assert!(names.iter().any(|n| n == expected), "missing {expected}");
    }
    let problems: Vec<String> = boards.iter().flat_map(Dashboard::problems).collect();
    assert!(problems.is_empty(), "dashboard problems: {problems:#?}");
    let mut uids: Vec<&str> = boards.iter().filter_map(Dashboard::uid).collect();
    uids.sort_unstable();
    let unique = uids.len();
    uids.dedup();
    assert_eq!(uids.len(), unique, "dashboard uids must be unique");
    let groups = load_rule_groups(&alerts).expect("load alert rules");
    for rule in groups.iter().flat_map(|g| &g.rules) {
        let name = rule
            .alert
            .as_deref()
            .or(rule.record.as_deref())
            .unwrap_or("?");
        assert!(rule.labels.contains_key("severity"), "{name}: no severity");
        for key in ["summary", "description", "runbook"] {
            assert!(rule.annotations.contains_key(key), "{name}: no {key}");
        }
    }

    // Every metric the broker dashboards and alerts read is one the broker exposes. The operator's
    // and strait-mirror's own dashboards and metrics are not the broker's (the mirror's are
    // checked against a running strait-mirror in mirror_mm2.rs).
    let exposed = scrape(metrics_addr);
    let mut unknown = Vec::new();
    let broker_exprs = boards
        .iter()
        .filter(|b| !NOT_BROKER_DASHBOARDS.contains(&b.name().as_str()))
        .flat_map(|b| b.panel_queries().into_iter().map(|q| q.expr))
        .chain(
            groups
                .iter()
                .flat_map(|g| g.rules.iter().map(|r| r.expr.clone())),
        );
    for expr in broker_exprs {
        for metric in metric_names(&expr) {
            let other_process = NOT_BROKER_METRIC_PREFIXES
                .iter()
                .any(|p| metric.starts_with(p));
            let first_error = FIRST_ERROR_COUNTERS.contains(&metric.as_str());
            if !other_process && !first_error && metric != "up" && !exposed.has_metric(&metric) {
                unknown.push(format!("{metric} (in {expr})"));
            }
        }
    }
    unknown.sort();
    unknown.dedup();
    assert!(
        unknown.is_empty(),
        "metrics not exposed by the broker: {unknown:#?}"
    );

    // A real Prometheus scraping the broker every second, with the alert rules loaded.
    let prometheus = PrometheusServer::start(
        &[ScrapeJob {
            job: JOB.into(),
            target: metrics_addr,
        }],
        Duration::from_secs(1),
        &[alerts.as_path()],
    )
    .expect("start prometheus");
    prometheus
        .wait_target_up(JOB, Duration::from_secs(30))
        .expect("broker target up");
    let in_prometheus = wait_for(
        DATA_TIMEOUT,
        "prometheus to see the messages-in counter",
        || {
            let data = prometheus
                .query(&format!(
                    "sum(kafka_server_brokertopicmetrics_messagesin_total{{job=\"{JOB}\", topic=\"{TOPIC}\"}})"
                ))
                .ok()?;
            data.vector().first().map(|(_, v)| *v)
        },
    )
    .expect("messages in through prometheus");
    assert_eq!(in_prometheus - in_before, (N + K) as f64);

    let values = variable_values();
    let mut failures = Vec::new();
    let mut empty = Vec::new();
    let mut evaluated = 0usize;
    for board in &boards {
        let broker_board = !NOT_BROKER_DASHBOARDS.contains(&board.name().as_str());
        let mut exprs: Vec<(String, String)> = board
            .panel_queries()
            .into_iter()
            .map(|q| (format!("{}/{} {}", board.name(), q.panel, q.ref_id), q.expr))
            .collect();
        for var in board.variables().into_iter().filter(|v| v.kind == "query") {
            let query = var.query.unwrap_or_default();
            match label_values_promql(&query) {
                Some(promql) => exprs.push((format!("{}/${}", board.name(), var.name), promql)),
                None => failures.push(format!(
                    "{}: variable {}: not label_values: {query}",
                    board.name(),
                    var.name
                )),
            }
        }
        for (what, raw) in exprs {
            let expr = match substitute(&raw, &values) {
                Ok(expr) => expr,
                Err(e) => {
                    failures.push(format!("{what}: {e}"));
                    continue;
                }
            };
            evaluated += 1;
            if let Err(e) = prometheus.query(&expr) {
                failures.push(format!("{what}: {e}"));
                continue;
            }
            if !broker_board {
                continue;
            }
            let has_data = wait_for(DATA_TIMEOUT, &what, || {
                prometheus.query(&expr).ok().filter(|d| !d.is_empty())
            });
            if has_data.is_err() {
                empty.push(format!("{what}: {expr}"));
            }
        }
    }
    for group in &groups {
        for rule in &group.rules {
            evaluated += 1;
            if let Err(e) = prometheus.query(&rule.expr) {
                failures.push(format!("alert {:?}: {e}", rule.alert));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "PromQL that does not evaluate: {failures:#?}"
    );
    assert!(empty.is_empty(), "broker panels without data: {empty:#?}");
    assert!(evaluated > 60, "only {evaluated} expressions evaluated");

    // Prometheus loaded and evaluated every rule group without errors.
    let rule_count: usize = groups.iter().map(|g| g.rules.len()).sum();
    wait_until(DATA_TIMEOUT, "every alert rule evaluated", || {
        prometheus
            .api("/api/v1/rules")
            .ok()
            .and_then(|data| {
                let loaded: Vec<serde_json::Value> = data
                    .get("groups")?
                    .as_array()?
                    .iter()
                    .flat_map(|g| {
                        g.get("rules")
                            .and_then(|r| r.as_array())
                            .cloned()
                            .unwrap_or_default()
                    })
                    .collect();
                Some(
                    loaded.len() == rule_count
                        && loaded
                            .iter()
                            .all(|r| r.get("health").and_then(|h| h.as_str()) == Some("ok")),
                )
            })
            .unwrap_or(false)
    })
    .expect("alert rules healthy in prometheus");
    // A healthy single broker with a small lag has no alert pending or firing — except the
    // log-dir alert when the machine's disk really is under 10 % free: it then reports the
    // filesystem truthfully and says nothing about the broker.
    let alerts_now = prometheus.query("ALERTS").expect("ALERTS");
    let unexpected: Vec<&serde_json::Value> = alerts_now
        .result
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| {
            let metric = &a["metric"];
            let disk = metric["alertname"] == "StraitLogDirAlmostFull"
                && metric["dir"]
                    .as_str()
                    .is_some_and(|dir| free_fraction(dir).is_some_and(|f| f < 0.1));
            !disk
        })
        .collect();
    assert!(unexpected.is_empty(), "alerts: {unexpected:?}");

    // promtool lints the text of a scrape taken after the whole workload (every series exists).
    let mut metrics_check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool check metrics");
    metrics_check
        .stdin
        .take()
        .expect("promtool stdin")
        .write_all(scrape_text(metrics_addr).as_bytes())
        .expect("write metrics to promtool");
    let metrics_output = metrics_check.wait_with_output().expect("promtool output");
    assert!(
        metrics_output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&metrics_output.stdout),
        String::from_utf8_lossy(&metrics_output.stderr)
    );
}

/// The share of the filesystem holding `dir` that is free for use.
fn free_fraction(dir: &str) -> Option<f64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    (st.f_blocks > 0).then(|| st.f_bavail as f64 / st.f_blocks as f64)
}
