//! The Topic controller: finalizer, then plan and apply through the Kafka admin API, and
//! status with the topic id, observed partitions and config; periodic drift correction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use strait_crds::{DeletionPolicy, Topic, TopicStatus};

use crate::admin::KafkaAdmin;
use crate::apply::{event, patch_status};
use crate::conditions::{Cond, merge};
use crate::context::{AdminFactory, Context};
use crate::error::Error;
use crate::target_cluster;
use crate::topic::plan::plan;

/// Finalizer that deletes the Kafka topic before the resource goes.
pub const FINALIZER: &str = "strait.dev/topic";
/// Drift-correction period.
const RESYNC: Duration = Duration::from_secs(300);

/// Reconciles one Topic.
pub async fn reconcile<F: AdminFactory>(
    topic: Arc<Topic>,
    ctx: Arc<Context<F>>,
) -> Result<Action, Error> {
    let start = Instant::now();
    let namespace = topic
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<Topic> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, topic, |event| async {
        match event {
            Finalizer::Apply(t) => apply_topic(&t, &api, &ctx).await,
            Finalizer::Cleanup(t) => cleanup(&t, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(e.to_string()));
    ctx.metrics.reconciled("Topic", start.elapsed());
    if let Err(e) = &result {
        ctx.metrics.failed("Topic", e.metric_label());
    }
    result
}

async fn apply_topic<F: AdminFactory>(
    topic: &Topic,
    api: &Api<Topic>,
    ctx: &Context<F>,
) -> Result<Action, Error> {
    let name = topic.name_any();
    let namespace = topic
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let kafka_name = topic
        .kafka_name()
        .ok_or(Error::MissingField("metadata.name"))?
        .to_owned();
    let previous = topic.status.clone().unwrap_or_default();
    let generation = topic.metadata.generation;
    let bootstrap = match target_cluster::bootstrap(&topic.spec.cluster, &namespace) {
        Ok(b) => b,
        Err(problem) => {
            let status = TopicStatus {
                conditions: merge(
                    &previous.conditions,
                    &[Cond::new("Ready", false, "InvalidSpec", problem)],
                    generation,
                    Timestamp::now(),
                ),
                observed_generation: generation,
                ..previous
            };
            patch_status(api, &name, status).await?;
            return Ok(Action::await_change());
        }
    };
    let admin = target_cluster::admin(ctx, &topic.spec.cluster, &namespace, &bootstrap).await?;
    let observed = admin.describe_topic(&kafka_name).await?;
    let plan = plan(&topic.spec, observed.as_ref());
    if plan.create {
        let rf = i16::try_from(topic.spec.replicas).unwrap_or(i16::MAX);
        admin
            .create_topic(&kafka_name, topic.spec.partitions, rf, &topic.spec.config)
            .await?;
        event(
            &ctx.recorder,
            topic,
            false,
            "Created",
            format!("created topic {kafka_name}"),
        )
        .await;
    }
    if let Some(count) = plan.grow_partitions {
        admin.create_partitions(&kafka_name, count).await?;
        event(
            &ctx.recorder,
            topic,
            false,
            "PartitionsAdded",
            format!("{kafka_name} now has {count} partitions"),
        )
        .await;
    }
    admin
        .alter_topic_config(&kafka_name, &plan.config_changes)
        .await?;
    let mut conditions: Vec<Cond> = Vec::new();
    for (reason, message) in &plan.refused {
        event(&ctx.recorder, topic, true, reason, message.clone()).await;
    }
    if plan.refused.is_empty() {
        conditions.push(Cond::new(
            "Ready",
            true,
            "TopicReady",
            format!("topic {kafka_name} matches the spec"),
        ));
    } else {
        let (reason, _) = plan.refused[0];
        let message = plan
            .refused
            .iter()
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        conditions.push(Cond::new("Ready", false, reason, message));
    }
    let now = admin.describe_topic(&kafka_name).await?;
    let status = TopicStatus {
        conditions: merge(
            &previous.conditions,
            &conditions,
            generation,
            Timestamp::now(),
        ),
        observed_generation: generation,
        topic_name: Some(kafka_name),
        topic_id: now.as_ref().map(|d| d.topic_id.clone()),
        partitions: now
            .as_ref()
            .and_then(|d| i32::try_from(d.partitions.len()).ok()),
        replicas: now.as_ref().map(|d| d.replication_factor()),
        config: now.map(|d| d.config).unwrap_or_default(),
    };
    patch_status(api, &name, status).await?;
    Ok(Action::requeue(RESYNC))
}

async fn cleanup<F: AdminFactory>(topic: &Topic, ctx: &Context<F>) -> Result<Action, Error> {
    let namespace = topic
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    if topic.spec.deletion_policy == DeletionPolicy::Retain {
        return Ok(Action::await_change());
    }
    let Some(kafka_name) = topic.kafka_name() else {
        return Ok(Action::await_change());
    };
    // A reference that never resolved cannot have created a topic.
    let Ok(bootstrap) = target_cluster::bootstrap(&topic.spec.cluster, &namespace) else {
        return Ok(Action::await_change());
    };
    target_cluster::admin(ctx, &topic.spec.cluster, &namespace, &bootstrap)
        .await?
        .delete_topic(kafka_name)
        .await?;
    event(
        &ctx.recorder,
        topic,
        false,
        "Deleted",
        format!("deleted topic {kafka_name}"),
    )
    .await;
    Ok(Action::await_change())
}

/// Backoff after a failed reconcile.
pub fn error_policy<F: AdminFactory>(
    _topic: Arc<Topic>,
    error: &Error,
    _ctx: Arc<Context<F>>,
) -> Action {
    tracing::warn!(%error, "topic reconcile failed");
    Action::requeue(Duration::from_secs(30))
}
