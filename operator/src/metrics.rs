//! The operator's Prometheus metrics: reconciles, errors and durations per kind.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

/// Metric families of the operator, registered in their own registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    errors: IntCounterVec,
    duration: HistogramVec,
}

impl Metrics {
    /// Creates and registers the families.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "strait_operator_reconciles_total",
                "Reconciles run, by kind.",
            ),
            &["kind"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "strait_operator_reconcile_errors_total",
                "Reconciles that failed, by kind and error.",
            ),
            &["kind", "error"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "strait_operator_reconcile_duration_seconds",
                "Time per reconcile, by kind.",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["kind"],
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Metrics {
            registry,
            reconciles,
            errors,
            duration,
        })
    }

    /// Counts one reconcile of `kind` that took `took`.
    pub fn reconciled(&self, kind: &str, took: Duration) {
        self.reconciles.with_label_values(&[kind]).inc();
        self.duration
            .with_label_values(&[kind])
            .observe(took.as_secs_f64());
    }

    /// Counts one failed reconcile.
    pub fn failed(&self, kind: &str, error: &str) {
        self.errors.with_label_values(&[kind, error]).inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_in_the_exposition() {
        let m = Metrics::new().expect("metrics");
        m.reconciled("Cluster", Duration::from_millis(20));
        m.failed("Topic", "kafka");
        let text = m.render();
        assert!(
            text.contains("strait_operator_reconciles_total{kind=\"Cluster\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "strait_operator_reconcile_errors_total{error=\"kafka\",kind=\"Topic\"} 1"
            )
        );
        assert!(
            text.contains("strait_operator_reconcile_duration_seconds_count{kind=\"Cluster\"} 1")
        );
    }

    /// The shipped operator dashboard and alert rules must only use metrics the operator
    /// actually exports (no cluster runs here to evaluate them, so check the names).
    #[test]
    fn dashboards_and_alerts_use_exported_names() {
        let m = Metrics::new().expect("metrics");
        m.reconciled("Cluster", Duration::from_millis(1));
        m.failed("Cluster", "kafka");
        let text = m.render();
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboards/");
        let mut checked = 0;
        for file in ["strait-operator.json", "alerts.yaml"] {
            let body = std::fs::read_to_string(format!("{root}{file}")).expect("dashboard file");
            for (i, _) in body.match_indices("strait_operator_") {
                let name: String = body[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    text.contains(&format!("{name}{{")) || text.contains(&format!("{name} ")),
                    "{file} uses {name}, which the operator does not export"
                );
                checked += 1;
            }
        }
        assert!(checked >= 3, "no operator metrics found in the dashboards");
    }
}
