//! Kafka's RemoteLogManager metrics (BrokerTopicMetrics' Remote* meters and gauges, named as the
//! JMX exporter renders them, as the rest of Strait's Kafka metrics are), per topic, counted on
//! the broker that did the work; the gauges cover the partitions this broker leads.

use std::sync::Arc;

use prometheus::{IntCounterVec, IntGaugeVec, Registry};

use crate::broker::Broker;
use crate::metrics::{counter, gauge_vec};
use crate::replica_manager::{Partition, Topic};

pub struct RemoteMetrics {
    pub copy_bytes: IntCounterVec,
    pub copy_requests: IntCounterVec,
    pub copy_errors: IntCounterVec,
    pub fetch_bytes: IntCounterVec,
    pub fetch_requests: IntCounterVec,
    pub fetch_errors: IntCounterVec,
    pub delete_requests: IntCounterVec,
    pub delete_errors: IntCounterVec,
    pub copy_lag_bytes: IntGaugeVec,
    pub copy_lag_segments: IntGaugeVec,
    pub log_size_bytes: IntGaugeVec,
    pub metadata_count: IntGaugeVec,
}

impl RemoteMetrics {
    pub fn new(r: &Registry) -> RemoteMetrics {
        let topic = &["topic"];
        let c = |name: &str, help: &str| {
            counter(
                r,
                &format!("kafka_server_brokertopicmetrics_{name}_total"),
                help,
                topic,
            )
        };
        let g = |name: &str, help: &str| {
            gauge_vec(
                r,
                &format!("kafka_server_brokertopicmetrics_{name}"),
                help,
                topic,
            )
        };
        RemoteMetrics {
            copy_bytes: c("remotecopybytes", "Segment bytes copied to remote storage."),
            copy_requests: c(
                "remotecopyrequests",
                "Segment copies to remote storage attempted.",
            ),
            copy_errors: c(
                "remotecopyerrors",
                "Segment copies to remote storage that failed.",
            ),
            fetch_bytes: c(
                "remotefetchbytes",
                "Record bytes read from remote storage for fetches.",
            ),
            fetch_requests: c("remotefetchrequests", "Fetches served from remote storage."),
            fetch_errors: c(
                "remotefetcherrors",
                "Fetches from remote storage that failed.",
            ),
            delete_requests: c(
                "remotedeleterequests",
                "Remote segment deletions attempted.",
            ),
            delete_errors: c(
                "remotedeleteerrors",
                "Remote segment deletions that failed.",
            ),
            copy_lag_bytes: g(
                "remotecopylagbytes",
                "Bytes of closed local segments not yet copied to remote storage (partitions led here).",
            ),
            copy_lag_segments: g(
                "remotecopylagsegments",
                "Closed local segments not yet copied to remote storage (partitions led here).",
            ),
            log_size_bytes: g(
                "remotelogsizebytes",
                "Bytes held in remote storage (partitions led here).",
            ),
            metadata_count: g(
                "remotelogmetadatacount",
                "Remote segments in the metadata (partitions led here).",
            ),
        }
    }
}

/// Refreshes the gauges from `led`, the tiered partitions this broker leads (listed once per
/// manager tick for the passes and the gauges).
pub fn refresh(broker: &Broker, led: &[(Arc<Topic>, Arc<Partition>)]) {
    let m = &broker.metrics.remote;
    let image = broker.node().image();
    for g in [
        &m.copy_lag_bytes,
        &m.copy_lag_segments,
        &m.log_size_bytes,
        &m.metadata_count,
    ] {
        g.reset();
    }
    for (topic, partition) in led {
        let name = topic.meta.name.as_str();
        // Kafka's meters exist at 0 from the start: an alert on errors needs the series.
        for c in [&m.copy_errors, &m.fetch_errors, &m.delete_errors] {
            c.with_label_values(&[name]);
        }
        let (bytes, segments) = partition.log.copy_lag();
        m.copy_lag_bytes
            .with_label_values(&[name])
            .add(bytes as i64);
        m.copy_lag_segments
            .with_label_values(&[name])
            .add(segments as i64);
        if let Some(remote) = image.remote_partition(name, partition.index) {
            let size: u64 = remote.copied().iter().map(|s| s.size_bytes).sum();
            m.log_size_bytes.with_label_values(&[name]).add(size as i64);
            m.metadata_count
                .with_label_values(&[name])
                .add(remote.segments.len() as i64);
        }
    }
}
