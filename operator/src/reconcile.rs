//! What every controller's reconcile shares, so that Cluster, Topic and User passes are timed,
//! counted, traced and backed off the same way (kube-rs controller-rs's instrumentation): the
//! wrapper [`instrumented`] around one pass, and [`error_policy`], which records the failure
//! and picks the backoff.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Resource;
use kube::runtime::controller::Action;
use tracing::Instrument;

use crate::context::{AdminFactory, Context};
use crate::error::Error;

/// Backoff after a failed reconcile.
pub const ERROR_REQUEUE: Duration = Duration::from_secs(30);

/// Runs one reconcile `pass` of `object` inside a `reconcile` tracing span naming it, and
/// counts it with its duration (`strait_operator_reconciles_total`,
/// `strait_operator_reconcile_duration_seconds`), failed or not.
pub async fn instrumented<K, F, Fut>(
    object: &K,
    ctx: &Context<F>,
    pass: Fut,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()>,
    F: AdminFactory,
    Fut: Future<Output = Result<Action, Error>>,
{
    let kind = K::kind(&());
    let meta = object.meta();
    let span = tracing::info_span!(
        "reconcile",
        kind = %kind,
        name = meta.name.as_deref().unwrap_or_default(),
        namespace = meta.namespace.as_deref().unwrap_or_default(),
    );
    let start = Instant::now();
    let result = pass.instrument(span).await;
    ctx.metrics.reconciled(&kind, start.elapsed());
    result
}

/// The error policy of every controller: records the failure by kind and error
/// (`strait_operator_reconcile_errors_total`) and retries after [`ERROR_REQUEUE`].
pub fn error_policy<K, F>(object: Arc<K>, error: &Error, ctx: Arc<Context<F>>) -> Action
where
    K: Resource<DynamicType = ()>,
    F: AdminFactory,
{
    let kind = K::kind(&());
    ctx.metrics.failed(&kind, error.metric_label());
    let meta = object.meta();
    tracing::warn!(
        %kind,
        name = meta.name.as_deref().unwrap_or_default(),
        namespace = meta.namespace.as_deref().unwrap_or_default(),
        %error,
        "reconcile failed"
    );
    Action::requeue(ERROR_REQUEUE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::WireAdminFactory;
    use crate::metrics::Metrics;
    use strait_crds::Topic;

    /// A context whose client is never called.
    fn context() -> Arc<Context<WireAdminFactory>> {
        let (service, _handle) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        let metrics = Metrics::new().unwrap_or_else(|e| panic!("metrics: {e}"));
        Context::new(
            kube::Client::new(service, "default"),
            metrics,
            WireAdminFactory,
        )
    }

    fn topic() -> Arc<Topic> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "strait.dev/v1alpha1", "kind": "Topic",
                "metadata": {"name": "orders", "namespace": "ns"},
                "spec": {"cluster": {"name": "kafka"}, "partitions": 1, "replicas": 1}
            }))
            .unwrap_or_else(|e| panic!("topic: {e}")),
        )
    }

    #[tokio::test]
    async fn a_pass_is_counted_and_a_failure_recorded_by_the_error_policy() {
        let ctx = context();
        let t = topic();
        let result = instrumented(t.as_ref(), &ctx, async {
            Err(Error::MissingField("metadata.namespace"))
        })
        .await;
        let error = result.expect_err("the pass fails");
        assert_eq!(
            error_policy(t, &error, ctx.clone()),
            Action::requeue(ERROR_REQUEUE)
        );
        let text = ctx.metrics.render();
        assert!(
            text.contains("strait_operator_reconciles_total{kind=\"Topic\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "strait_operator_reconcile_errors_total{error=\"missing_field\",kind=\"Topic\"} 1"
            ),
            "{text}"
        );
    }
}
