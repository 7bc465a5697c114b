//! Prometheus metrics, named as Kafka's JMX-exporter rules and kafka-exporter name them so
//! existing dashboards and alerts work (see `docs/metrics.md`). Counters are bumped on the request
//! path (one labelled lookup per request or partition, never per record); gauges that describe
//! state (partitions, offsets, lag, disk) are computed when Prometheus scrapes.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use strait_config::BrokerConfig;

use crate::group::Coordinator;
use crate::replica_manager::ReplicaManager;

/// Request latency buckets (seconds): sub-millisecond produce up to long-polling fetches.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub struct Metrics {
    registry: Registry,
    pub messages_in: IntCounterVec,
    pub bytes_in: IntCounterVec,
    pub bytes_out: IntCounterVec,
    pub replication_bytes_out: IntCounterVec,
    pub follower_read_bytes: IntCounterVec,
    pub preferred_replica_redirects: IntCounterVec,
    pub produce_requests: IntCounterVec,
    pub failed_produce_requests: IntCounterVec,
    pub fetch_requests: IntCounterVec,
    pub failed_fetch_requests: IntCounterVec,
    pub requests: IntCounterVec,
    pub errors: IntCounterVec,
    pub request_duration: HistogramVec,
    pub connections: IntGaugeVec,
    /// Requests parked until a condition or their timeout (Kafka's purgatories).
    purgatory: IntGaugeVec,
    /// Incremental fetch sessions held (KIP-227).
    pub fetch_sessions: IntGauge,
    pub connections_accepted: IntCounterVec,
    pub connections_closed_on_error: IntCounterVec,
    /// SASL authentications by listener, mechanism and result (`success` / `failure`).
    pub authentications: IntCounterVec,
    quota_throttled: IntCounterVec,
    quota_throttle_seconds: prometheus::CounterVec,
    pub isr_shrinks: IntCounter,
    /// Record bytes Fetch responses sent from segment files with sendfile (plaintext listeners).
    pub fetch_zero_copy_bytes: IntCounter,
    /// Tiered storage (KIP-405): copies, remote reads, deletions, copy lag.
    pub remote: crate::remote_log::metrics::RemoteMetrics,
    pub isr_expands: IntCounter,
    pub cleaner_runs: IntCounter,
    pub cleaner_segments_rewritten: IntCounter,
    pub recovery_runs: IntCounter,
    txn_completed_total: IntCounterVec,
    /// Transactions the coordinator aborted because they outlived their transaction.timeout.ms.
    pub txn_timed_out: IntCounter,
    txn_ongoing: IntGauge,
    /// Kafka's `kafka.log:type=LogManager,name=OfflineLogDirectoryCount`.
    offline_log_dirs: IntGauge,
    txn_ids: IntGauge,
    lso_lag: IntGaugeVec,
    partition_count: IntGauge,
    leader_count: IntGauge,
    under_replicated: IntGauge,
    active_controller: IntGauge,
    offline_partitions: IntGauge,
    topic_count: IntGauge,
    global_partition_count: IntGauge,
    log_size: IntGaugeVec,
    log_start: IntGaugeVec,
    log_end: IntGaugeVec,
    log_segments: IntGaugeVec,
    partition_current_offset: IntGaugeVec,
    partition_oldest_offset: IntGaugeVec,
    group_offset: IntGaugeVec,
    group_lag: IntGaugeVec,
    group_members: IntGaugeVec,
    dir_free: IntGaugeVec,
    dir_total: IntGaugeVec,
    info: IntGaugeVec,
}

pub(crate) fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    r.register(Box::new(c.clone())).expect("unique metric name");
    c
}

pub(crate) fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition");
    r.register(Box::new(g.clone())).expect("unique metric name");
    g
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("static metric definition");
    r.register(Box::new(g.clone())).expect("unique metric name");
    g
}

fn plain_counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("static metric definition");
    r.register(Box::new(c.clone())).expect("unique metric name");
    c
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// One request throttled for `wait` by a quota of `kind`.
    pub fn throttled(&self, kind: &str, wait: std::time::Duration) {
        self.quota_throttled.with_label_values(&[kind]).inc();
        self.quota_throttle_seconds
            .with_label_values(&[kind])
            .inc_by(wait.as_secs_f64());
    }

    /// One transaction completed by this coordinator.
    pub fn txn_completed(&self, commit: bool) {
        let result = if commit { "commit" } else { "abort" };
        self.txn_completed_total.with_label_values(&[result]).inc();
    }

    /// Counts one parked request of kind `operation` ("Fetch", "Produce") until the returned
    /// guard drops, however the wait ends (answer, timeout, closed connection).
    pub fn delayed(&self, operation: &str) -> Delayed {
        let gauge = self.purgatory.with_label_values(&[operation]);
        gauge.inc();
        Delayed(gauge)
    }

    /// Builds the registry. Metric definitions are static, so the `expect`s cannot fire at run
    /// time unless this function itself is wrong (covered by the unit test below).
    pub fn new() -> Self {
        let r = Registry::new();
        let topic = &["topic"];
        let tp = &["topic", "partition"];
        let gtp = &["consumergroup", "topic", "partition"];
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "strait_request_duration_seconds",
                "Time from a request's arrival to its response, by Kafka API.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["request"],
        )
        .expect("static metric definition");
        r.register(Box::new(request_duration.clone()))
            .expect("unique metric name");
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("unique metric name");
        Metrics {
            messages_in: counter(
                &r,
                "kafka_server_brokertopicmetrics_messagesin_total",
                "Records appended.",
                topic,
            ),
            bytes_in: counter(
                &r,
                "kafka_server_brokertopicmetrics_bytesin_total",
                "Record-batch bytes appended.",
                topic,
            ),
            bytes_out: counter(
                &r,
                "kafka_server_brokertopicmetrics_bytesout_total",
                "Record-batch bytes returned to consumers by Fetch (replication is counted apart).",
                topic,
            ),
            replication_bytes_out: counter(
                &r,
                "kafka_server_brokertopicmetrics_replicationbytesout_total",
                "Record-batch bytes returned to follower replicas by Fetch.",
                topic,
            ),
            follower_read_bytes: counter(
                &r,
                "strait_fetch_follower_read_bytes_total",
                "Record-batch bytes this broker served to consumers as a follower (fetch from follower, KIP-392); part of bytesout.",
                topic,
            ),
            preferred_replica_redirects: counter(
                &r,
                "strait_fetch_preferred_replica_redirects_total",
                "Consumer partition fetches the leader answered with a preferred read replica in the consumer's rack (KIP-392).",
                topic,
            ),
            produce_requests: counter(
                &r,
                "kafka_server_brokertopicmetrics_totalproducerequests_total",
                "Partition produce requests.",
                topic,
            ),
            failed_produce_requests: counter(
                &r,
                "kafka_server_brokertopicmetrics_failedproducerequests_total",
                "Failed partition produce requests.",
                topic,
            ),
            fetch_requests: counter(
                &r,
                "kafka_server_brokertopicmetrics_totalfetchrequests_total",
                "Partition fetch requests.",
                topic,
            ),
            failed_fetch_requests: counter(
                &r,
                "kafka_server_brokertopicmetrics_failedfetchrequests_total",
                "Failed partition fetch requests.",
                topic,
            ),
            requests: counter(
                &r,
                "kafka_network_requestmetrics_requests_total",
                "Requests handled, by API.",
                &["request"],
            ),
            errors: counter(
                &r,
                "kafka_network_requestmetrics_errors_total",
                "Error codes returned, by API and error.",
                &["request", "error"],
            ),
            request_duration,
            fetch_sessions: gauge(
                &r,
                "kafka_server_fetchsessioncache_numincrementalfetchsessions",
                "Incremental fetch sessions (KIP-227) the broker holds, followers' included.",
            ),
            purgatory: gauge_vec(
                &r,
                "kafka_server_delayedoperationpurgatory_purgatorysize",
                "Requests parked until they can complete or time out: Fetch waiting for data, Produce (acks=all) waiting for replication.",
                &["delayedoperation"],
            ),
            connections: gauge_vec(
                &r,
                "strait_connections_open",
                "Open client connections.",
                &["listener"],
            ),
            connections_accepted: counter(
                &r,
                "strait_connections_accepted_total",
                "Connections accepted.",
                &["listener"],
            ),
            connections_closed_on_error: counter(
                &r,
                "strait_connections_closed_on_error_total",
                "Connections closed for bad input.",
                &["listener"],
            ),
            quota_throttled: counter(
                &r,
                "strait_quota_throttled_requests_total",
                "Requests answered with a quota throttle (the connection muted meanwhile), by quota type.",
                &["type"],
            ),
            quota_throttle_seconds: {
                let c = prometheus::CounterVec::new(
                    Opts::new(
                        "strait_quota_throttle_seconds_total",
                        "Throttle time handed to clients over their quota, by quota type.",
                    ),
                    &["type"],
                )
                .expect("static metric definition");
                r.register(Box::new(c.clone())).expect("unique metric name");
                c
            },
            authentications: counter(
                &r,
                "strait_sasl_authentications_total",
                "SASL authentications (and KIP-368 re-authentications) by result: success or failure.",
                &["listener", "mechanism", "result"],
            ),
            fetch_zero_copy_bytes: plain_counter(
                &r,
                "strait_fetch_zero_copy_bytes_total",
                "Record bytes Fetch responses sent from segment files with sendfile (plaintext listeners; TLS copies).",
            ),
            isr_shrinks: plain_counter(
                &r,
                "kafka_server_replicamanager_isrshrinks_total",
                "ISR shrinks.",
            ),
            isr_expands: plain_counter(
                &r,
                "kafka_server_replicamanager_isrexpands_total",
                "ISR expansions.",
            ),
            cleaner_runs: plain_counter(
                &r,
                "strait_log_cleaner_runs_total",
                "Log cleaner passes that compacted at least one log.",
            ),
            cleaner_segments_rewritten: plain_counter(
                &r,
                "strait_log_cleaner_segments_rewritten_total",
                "Segments rewritten by compaction.",
            ),
            recovery_runs: plain_counter(
                &r,
                "strait_log_recovery_runs_total",
                "Start-ups that scanned logs after an unclean stop.",
            ),
            txn_completed_total: counter(
                &r,
                "strait_transactions_completed_total",
                "Transactions this broker coordinated to the end (every marker written), by result: commit or abort.",
                &["result"],
            ),
            txn_timed_out: plain_counter(
                &r,
                "strait_transactions_timed_out_total",
                "Transactions the coordinator aborted (fencing their producer) because they outlived their transaction.timeout.ms.",
            ),
            offline_log_dirs: gauge(
                &r,
                "kafka_log_logmanager_offlinelogdirectorycount",
                "Log dirs taken offline by an I/O error.",
            ),
            txn_ongoing: gauge(
                &r,
                "strait_transactions_ongoing",
                "Ongoing transactions this broker coordinates.",
            ),
            txn_ids: gauge(
                &r,
                "strait_transactional_ids",
                "Transactional ids this broker coordinates.",
            ),
            lso_lag: gauge_vec(
                &r,
                "kafka_cluster_partition_laststableoffsetlag",
                "High watermark minus last stable offset: records read_committed consumers cannot read yet because a transaction is open.",
                tp,
            ),
            partition_count: gauge(
                &r,
                "kafka_server_replicamanager_partitioncount",
                "Partitions hosted.",
            ),
            leader_count: gauge(
                &r,
                "kafka_server_replicamanager_leadercount",
                "Partitions led.",
            ),
            under_replicated: gauge(
                &r,
                "kafka_server_replicamanager_underreplicatedpartitions",
                "Partitions with fewer in-sync replicas than replicas.",
            ),
            active_controller: gauge(
                &r,
                "kafka_controller_kafkacontroller_activecontrollercount",
                "1 on the active controller.",
            ),
            offline_partitions: gauge(
                &r,
                "kafka_controller_kafkacontroller_offlinepartitionscount",
                "Partitions without a leader.",
            ),
            topic_count: gauge(
                &r,
                "kafka_controller_kafkacontroller_globaltopiccount",
                "Topics in the cluster.",
            ),
            global_partition_count: gauge(
                &r,
                "kafka_controller_kafkacontroller_globalpartitioncount",
                "Partitions in the cluster.",
            ),
            log_size: gauge_vec(&r, "kafka_log_log_size", "Bytes on disk.", tp),
            log_start: gauge_vec(&r, "kafka_log_log_logstartoffset", "Log start offset.", tp),
            log_end: gauge_vec(&r, "kafka_log_log_logendoffset", "Log end offset.", tp),
            log_segments: gauge_vec(&r, "kafka_log_log_numlogsegments", "Segments.", tp),
            partition_current_offset: gauge_vec(
                &r,
                "kafka_topic_partition_current_offset",
                "High watermark.",
                tp,
            ),
            partition_oldest_offset: gauge_vec(
                &r,
                "kafka_topic_partition_oldest_offset",
                "Log start offset.",
                tp,
            ),
            group_offset: gauge_vec(
                &r,
                "kafka_consumergroup_current_offset",
                "Committed offset.",
                gtp,
            ),
            group_lag: gauge_vec(
                &r,
                "kafka_consumergroup_lag",
                "High watermark minus committed offset.",
                gtp,
            ),
            group_members: gauge_vec(
                &r,
                "kafka_consumergroup_members",
                "Group members.",
                &["consumergroup"],
            ),
            dir_free: gauge_vec(
                &r,
                "strait_log_dir_free_bytes",
                "Free bytes on the log dir's filesystem.",
                &["dir"],
            ),
            dir_total: gauge_vec(
                &r,
                "strait_log_dir_total_bytes",
                "Size of the log dir's filesystem.",
                &["dir"],
            ),
            info: gauge_vec(
                &r,
                "strait_broker_info",
                "Build and identity of this broker.",
                &["version", "cluster_id", "node_id"],
            ),
            remote: crate::remote_log::metrics::RemoteMetrics::new(&r),
            registry: r,
        }
    }

    /// Refreshes the state gauges from the hosted partitions and groups and renders the text
    /// exposition format.
    pub fn render(
        &self,
        cluster_id: &str,
        config: &BrokerConfig,
        replicas: &ReplicaManager,
        groups: &Coordinator,
        txns: &crate::txn::TxnCoordinator,
    ) -> String {
        self.refresh(cluster_id, config, replicas, groups);
        let (ongoing, ids) = txns.counts();
        self.txn_ongoing.set(ongoing as i64);
        self.txn_ids.set(ids as i64);
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families; an error yields a partial page.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    fn refresh(
        &self,
        cluster_id: &str,
        config: &BrokerConfig,
        replicas: &ReplicaManager,
        groups: &Coordinator,
    ) {
        self.info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                cluster_id,
                &config.node_id.to_string(),
            ])
            .set(1);
        // Single node: this broker is the active controller and leads every partition.
        self.active_controller.set(1);
        self.under_replicated.set(0);
        self.offline_partitions.set(0);
        for g in [
            &self.log_size,
            &self.log_start,
            &self.log_end,
            &self.log_segments,
            &self.partition_current_offset,
            &self.partition_oldest_offset,
            &self.group_offset,
            &self.group_lag,
            &self.group_members,
            &self.lso_lag,
        ] {
            // Deleted topics and groups must disappear, not linger at their last value.
            g.reset();
        }
        let topics = replicas.all_topics();
        let mut partitions = 0i64;
        let mut high_watermarks = std::collections::HashMap::new();
        for t in &topics {
            for p in &t.partitions {
                partitions += 1;
                let index = p.index.to_string();
                let labels = [t.meta.name.as_str(), index.as_str()];
                let log = &p.log;
                let hw = log.high_watermark();
                high_watermarks.insert((t.meta.name.clone(), p.index), hw);
                self.log_size
                    .with_label_values(&labels)
                    .set(log.size_bytes() as i64);
                self.log_start
                    .with_label_values(&labels)
                    .set(log.log_start_offset());
                self.log_end
                    .with_label_values(&labels)
                    .set(log.log_end_offset());
                self.log_segments
                    .with_label_values(&labels)
                    .set(log.segment_count() as i64);
                self.partition_current_offset
                    .with_label_values(&labels)
                    .set(hw);
                self.partition_oldest_offset
                    .with_label_values(&labels)
                    .set(log.log_start_offset());
                self.lso_lag
                    .with_label_values(&labels)
                    .set((hw - log.last_stable_offset()).max(0));
            }
        }
        self.partition_count.set(partitions);
        self.leader_count.set(partitions);
        self.topic_count.set(topics.len() as i64);
        self.global_partition_count.set(partitions);
        for (group, members, offsets) in groups.lag_view() {
            self.group_members
                .with_label_values(&[group.as_str()])
                .set(members as i64);
            for (topic, partition, committed) in offsets {
                let index = partition.to_string();
                let labels = [group.as_str(), topic.as_str(), index.as_str()];
                self.group_offset.with_label_values(&labels).set(committed);
                if let Some(hw) = high_watermarks.get(&(topic.clone(), partition)) {
                    self.group_lag
                        .with_label_values(&labels)
                        .set((hw - committed).max(0));
                }
            }
        }
        let offline = replicas.logs.offline_dirs();
        self.offline_log_dirs.set(offline.len() as i64);
        for dir in config.log_dirs.iter().filter(|d| !offline.contains(d)) {
            let name = dir.display().to_string();
            if let (Ok(free), Ok(total)) = (fs4::available_space(dir), fs4::total_space(dir)) {
                self.dir_free
                    .with_label_values(&[name.as_str()])
                    .set(free as i64);
                self.dir_total
                    .with_label_values(&[name.as_str()])
                    .set(total as i64);
            }
        }
    }
}

/// One request in a purgatory; see [`Metrics::delayed`].
pub struct Delayed(IntGauge);

impl Drop for Delayed {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_builds_and_renders_kafka_names() {
        let m = Metrics::new();
        m.messages_in.with_label_values(&["orders"]).inc_by(3);
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&m.registry.gather(), &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("kafka_server_brokertopicmetrics_messagesin_total{topic=\"orders\"} 3")
        );
    }
}
