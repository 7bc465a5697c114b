//! The mirror's Prometheus metrics, named as MM2's JMX exporter names them where MM2 has them
//! (`kafka_connect_mirror_mirrorsourceconnector_*`, labels `source`, `target`, `topic`,
//! `partition`), plus per-partition lag, and the `/metrics` HTTP endpoint serving them.

use std::net::SocketAddr;

use prometheus::{Encoder, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const PREFIX: &str = "kafka_connect_mirror_mirrorsourceconnector_";
const LABELS: &[&str] = &["source", "target", "topic", "partition"];

/// Every metric of the process.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub record_count: IntCounterVec,
    pub byte_count: IntCounterVec,
    pub replication_latency_ms: GaugeVec,
    pub replication_latency_ms_max: GaugeVec,
    pub replication_latency_ms_avg: GaugeVec,
    pub record_age_ms: GaugeVec,
    pub record_age_ms_max: GaugeVec,
    pub record_age_ms_avg: GaugeVec,
    pub partition_lag_records: IntGaugeVec,
    pub last_copy_timestamp_seconds: GaugeVec,
    pub checkpoints_emitted: IntCounterVec,
    pub heartbeats_emitted: IntCounterVec,
    pub acl_bindings_created: IntCounterVec,
    pub acl_sync_errors: IntCounterVec,
}

/// A partition's label values.
pub struct PartitionLabels<'a> {
    pub source: &'a str,
    pub target: &'a str,
    pub topic: &'a str,
    pub partition: &'a str,
}

impl PartitionLabels<'_> {
    pub fn values(&self) -> [&str; 4] {
        [self.source, self.target, self.topic, self.partition]
    }
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(format!("{PREFIX}{name}"), help), LABELS)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge = |name: &str, help: &str| -> Result<GaugeVec, prometheus::Error> {
            let g = GaugeVec::new(Opts::new(format!("{PREFIX}{name}"), help), LABELS)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let record_count = counter("record_count", "Records replicated source -> target.")?;
        let byte_count = counter(
            "byte_count",
            "Bytes (keys, values, headers) replicated source -> target.",
        )?;
        let replication_latency_ms = gauge(
            "replication_latency_ms",
            "Time from a record's timestamp to its acknowledgement by the target (last batch).",
        )?;
        let replication_latency_ms_max = gauge(
            "replication_latency_ms_max",
            "Maximum replication latency of the last batch.",
        )?;
        let replication_latency_ms_avg = gauge(
            "replication_latency_ms_avg",
            "Average replication latency of the last batch.",
        )?;
        let record_age_ms = gauge(
            "record_age_ms",
            "Age of a record when fetched from the source (last batch).",
        )?;
        let record_age_ms_max =
            gauge("record_age_ms_max", "Maximum record age of the last batch.")?;
        let record_age_ms_avg =
            gauge("record_age_ms_avg", "Average record age of the last batch.")?;
        let partition_lag_records = IntGaugeVec::new(
            Opts::new(
                "strait_mirror_partition_lag_records",
                "Source high watermark minus the next source offset to copy.",
            ),
            LABELS,
        )?;
        registry.register(Box::new(partition_lag_records.clone()))?;
        let last_copy_timestamp_seconds = GaugeVec::new(
            Opts::new(
                "strait_mirror_partition_last_progress_timestamp_seconds",
                "When the partition was last caught up or last copied records (Unix seconds).",
            ),
            LABELS,
        )?;
        registry.register(Box::new(last_copy_timestamp_seconds.clone()))?;
        let checkpoints_emitted = IntCounterVec::new(
            Opts::new(
                "strait_mirror_checkpoints_emitted_total",
                "Checkpoint records written to <source>.checkpoints.internal.",
            ),
            &["source", "target"],
        )?;
        registry.register(Box::new(checkpoints_emitted.clone()))?;
        let heartbeats_emitted = IntCounterVec::new(
            Opts::new(
                "strait_mirror_heartbeats_emitted_total",
                "Heartbeat records written to the target's heartbeats topic.",
            ),
            &["source", "target"],
        )?;
        registry.register(Box::new(heartbeats_emitted.clone()))?;
        let acl_bindings_created = IntCounterVec::new(
            Opts::new(
                "strait_mirror_acl_bindings_created_total",
                "Topic ACL bindings the target accepted from the ACL sync (CreateAcls).",
            ),
            &["source", "target"],
        )?;
        registry.register(Box::new(acl_bindings_created.clone()))?;
        let acl_sync_errors = IntCounterVec::new(
            Opts::new(
                "strait_mirror_acl_sync_errors_total",
                "Topic ACL sync passes that failed (retried next interval).",
            ),
            &["source", "target"],
        )?;
        registry.register(Box::new(acl_sync_errors.clone()))?;
        Ok(Metrics {
            registry,
            record_count,
            byte_count,
            replication_latency_ms,
            replication_latency_ms_max,
            replication_latency_ms_avg,
            record_age_ms,
            record_age_ms_max,
            record_age_ms_avg,
            partition_lag_records,
            last_copy_timestamp_seconds,
            checkpoints_emitted,
            heartbeats_emitted,
            acl_bindings_created,
            acl_sync_errors,
        })
    }

    /// Records a batch copied: its record and byte count, the ages of its records when fetched
    /// and their latencies when acknowledged (ms).
    pub fn copied(
        &self,
        labels: &PartitionLabels<'_>,
        records: u64,
        bytes: u64,
        ages: &[f64],
        latencies: &[f64],
    ) {
        let v = labels.values();
        self.record_count.with_label_values(&v).inc_by(records);
        self.byte_count.with_label_values(&v).inc_by(bytes);
        let stats = |xs: &[f64]| -> Option<(f64, f64, f64)> {
            let last = *xs.last()?;
            let max = xs.iter().copied().fold(f64::MIN, f64::max);
            let avg = xs.iter().sum::<f64>() / xs.len() as f64;
            Some((last, max, avg))
        };
        if let Some((last, max, avg)) = stats(ages) {
            self.record_age_ms.with_label_values(&v).set(last);
            self.record_age_ms_max.with_label_values(&v).set(max);
            self.record_age_ms_avg.with_label_values(&v).set(avg);
        }
        if let Some((last, max, avg)) = stats(latencies) {
            self.replication_latency_ms.with_label_values(&v).set(last);
            self.replication_latency_ms_max
                .with_label_values(&v)
                .set(max);
            self.replication_latency_ms_avg
                .with_label_values(&v)
                .set(avg);
        }
    }

    /// Drops a partition's series once this process no longer copies it (moved to another
    /// process, topic no longer mirrored): a stale lag or progress gauge would keep alerts
    /// firing for a partition someone else is copying.
    pub fn forget_partition(&self, labels: &PartitionLabels<'_>) {
        let v = labels.values();
        for counter in [&self.record_count, &self.byte_count] {
            let _ = counter.remove_label_values(&v);
        }
        for gauge in [
            &self.replication_latency_ms,
            &self.replication_latency_ms_max,
            &self.replication_latency_ms_avg,
            &self.record_age_ms,
            &self.record_age_ms_max,
            &self.record_age_ms_avg,
            &self.last_copy_timestamp_seconds,
        ] {
            let _ = gauge.remove_label_values(&v);
        }
        let _ = self.partition_lag_records.remove_label_values(&v);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// Serves `GET /metrics` (and `/` with the same body) on `listener` until the process ends.
pub async fn serve(listener: TcpListener, metrics: Metrics) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut read = 0;
            // Read the request head (bounded); the body, if any, is ignored.
            while read < buf.len() {
                match tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    stream.read(&mut buf[read..]),
                )
                .await
                {
                    Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => {
                        read += n;
                        if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
            let head = String::from_utf8_lossy(&buf[..read]);
            let path = head.split_whitespace().nth(1).unwrap_or("");
            let (status, body, kind) = if path == "/metrics" || path == "/" {
                ("200 OK", metrics.render(), "text/plain; version=0.0.4")
            } else if path == "/healthz" {
                ("200 OK", "ok\n".to_owned(), "text/plain")
            } else {
                ("404 Not Found", "not found\n".to_owned(), "text/plain")
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Binds `addr` for [`serve`].
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forgotten_partition_leaves_no_series_and_others_stay() {
        let metrics = Metrics::new().expect("metrics");
        let labels = |partition| PartitionLabels {
            source: "a",
            target: "b",
            topic: "orders",
            partition,
        };
        for p in ["0", "1"] {
            metrics.copied(&labels(p), 3, 300, &[5.0], &[2.0]);
            metrics
                .partition_lag_records
                .with_label_values(&labels(p).values())
                .set(7);
            metrics
                .last_copy_timestamp_seconds
                .with_label_values(&labels(p).values())
                .set(1.0);
        }
        metrics.forget_partition(&labels("0"));
        let text = metrics.render();
        assert!(!text.contains("partition=\"0\""), "{text}");
        for name in [
            "strait_mirror_partition_lag_records",
            "strait_mirror_partition_last_progress_timestamp_seconds",
            "kafka_connect_mirror_mirrorsourceconnector_record_count",
            "kafka_connect_mirror_mirrorsourceconnector_replication_latency_ms_max",
        ] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(name) && l.contains("partition=\"1\"")),
                "{name} for partition 1 must stay: {text}"
            );
        }
    }
}
