//! The Topic controller: finalizer, then plan and apply through the Kafka admin API, and
//! status on every pass (the conditions `Ready` and `Reconciling`, the topic id, observed
//! partitions and config), also when the cluster fails; periodic drift correction. Deletion
//! goes through [`deletion::finish`].

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use strait_crds::Topic;

use crate::admin::KafkaAdmin;
use crate::apply::{event, patch_status};
use crate::context::{AdminFactory, Context};
use crate::error::Error;
use crate::finalizer::{Event as Finalizer, finalizer};
use crate::reconcile::instrumented;
use crate::target_cluster::{self, deletion};
use crate::topic::plan::plan;
use crate::topic::status::{Pass, Synced, status};

/// Finalizer that deletes the Kafka topic before the resource goes.
pub const FINALIZER: &str = "strait.dev/topic";
/// Drift-correction period.
const RESYNC: Duration = Duration::from_secs(300);

/// Reconciles one Topic.
pub async fn reconcile<F: AdminFactory>(
    topic: Arc<Topic>,
    ctx: Arc<Context<F>>,
) -> Result<Action, Error> {
    let pass = reconcile_pass(topic.clone(), &ctx);
    instrumented(topic.as_ref(), &ctx, pass).await
}

/// One pass: the finalizer first, then the sync or the cleanup.
async fn reconcile_pass<F: AdminFactory>(
    topic: Arc<Topic>,
    ctx: &Context<F>,
) -> Result<Action, Error> {
    let namespace = topic
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<Topic> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, topic, |event| async {
        match event {
            Finalizer::Apply(t) => apply_topic(&t, &api, ctx).await,
            Finalizer::Cleanup(t) => cleanup(&t, ctx).await,
        }
    })
    .await
}

/// One pass: resolve the cluster, sync the topic, write the status whatever happened.
async fn apply_topic<F: AdminFactory>(
    topic: &Topic,
    api: &Api<Topic>,
    ctx: &Context<F>,
) -> Result<Action, Error> {
    let namespace = topic
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let kafka_name = topic
        .kafka_name()
        .ok_or(Error::MissingField("metadata.name"))?
        .to_owned();
    let name = topic.name_any();
    let previous = topic.status.clone().unwrap_or_default();
    let write = |pass| {
        let s = status(
            &previous,
            topic.metadata.generation,
            &kafka_name,
            pass,
            Timestamp::now(),
        );
        patch_status(api, &name, s)
    };
    let bootstrap = match target_cluster::bootstrap(&topic.spec.cluster, &namespace) {
        Ok(b) => b,
        Err(problem) => {
            write(Pass::Invalid(&problem)).await?;
            return Ok(Action::await_change());
        }
    };
    match sync(topic, ctx, &namespace, &bootstrap, &kafka_name).await {
        Ok(synced) => {
            write(Pass::Synced(&synced)).await?;
            Ok(Action::requeue(RESYNC))
        }
        Err(error) => {
            let [ready, _] = target_cluster::failed(&error);
            event(&ctx.recorder, topic, true, ready.reason, ready.message).await;
            write(Pass::Failed(&error)).await?;
            Err(error)
        }
    }
}

/// Makes the topic match the spec as far as Kafka allows, and describes it afterwards.
async fn sync<F: AdminFactory>(
    topic: &Topic,
    ctx: &Context<F>,
    namespace: &str,
    bootstrap: &str,
    kafka_name: &str,
) -> Result<Synced, Error> {
    let admin = target_cluster::admin(ctx, &topic.spec.cluster, namespace, bootstrap).await?;
    let observed = admin.describe_topic(kafka_name).await?;
    let plan = plan(&topic.spec, observed.as_ref());
    if plan.create {
        let rf = i16::try_from(topic.spec.replicas).unwrap_or(i16::MAX);
        admin
            .create_topic(kafka_name, topic.spec.partitions, rf, &topic.spec.config)
            .await?;
        let note = format!("created topic {kafka_name}");
        event(&ctx.recorder, topic, false, "Created", note).await;
    }
    if let Some(count) = plan.grow_partitions {
        admin.create_partitions(kafka_name, count).await?;
        let note = format!("{kafka_name} now has {count} partitions");
        event(&ctx.recorder, topic, false, "PartitionsAdded", note).await;
    }
    admin
        .alter_topic_config(kafka_name, &plan.config_changes)
        .await?;
    for (reason, message) in &plan.refused {
        event(&ctx.recorder, topic, true, reason, message.clone()).await;
    }
    Ok(Synced {
        refused: plan.refused,
        observed: admin.describe_topic(kafka_name).await?,
    })
}

/// Deletes the Kafka topic unless retained or gone with its Cluster (see [`deletion`]).
async fn cleanup<F: AdminFactory>(topic: &Topic, ctx: &Context<F>) -> Result<Action, Error> {
    let Some(kafka_name) = topic.kafka_name() else {
        return Ok(Action::await_change());
    };
    let deleting = deletion::Deleting {
        obj: topic,
        reference: &topic.spec.cluster,
        policy: topic.spec.deletion_policy,
        conditions: topic.status.as_ref().map_or(&[], |s| &s.conditions),
        what: format!("topic {kafka_name}"),
    };
    deletion::finish(ctx, deleting, |admin| async move {
        Ok(admin.delete_topic(kafka_name).await?)
    })
    .await
}
