//! The Mirror controller: dereference (the source and target Clusters, the failover Job) →
//! validate (pure) → plan the failover and build (pure) → apply (ConfigMap, Deployment,
//! PodMonitor with server-side apply; the failover Job created once, never patched, or deleted
//! when the failover is withdrawn) → measure the lag through the admin clients while
//! mirroring → status, written on every pass. No finalizer: the objects are owned by the Mirror
//! and go with it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::controller::Action;
use strait_client::ClientTls;
use strait_crds::mirror::MirrorMode;
use strait_crds::{Cluster, ClusterReference, Mirror};

use crate::admin::TlsConfig;
use crate::apply::{apply, apply_dynamic, event, patch_status, post_params};
use crate::cluster::identity::admin_bootstrap;
use crate::context::{AdminFactory, Context};
use crate::error::Error;
use crate::mirror::build::{Built, build, failover_labels, pod_monitor_resource};
use crate::mirror::failover::{JobState, Plan, job_name, job_state, last_failure, plan};
use crate::mirror::lag::measure;
use crate::mirror::status::{Applied, Pass, status};
use crate::mirror::validate::{Endpoint, Validated, validate};
use crate::reconcile::instrumented;
use crate::target_cluster;

/// How often a running mirror's lag is measured again (and a waiting one checked again).
pub const RESYNC: Duration = Duration::from_secs(60);
/// How often a failover under way is looked at again, besides the owned Job's events.
pub const FAILOVER_RESYNC: Duration = Duration::from_secs(10);

/// Reconciles one Mirror.
pub async fn reconcile<F: AdminFactory>(
    mirror: Arc<Mirror>,
    ctx: Arc<Context<F>>,
) -> Result<Action, Error> {
    let pass = reconcile_pass(&mirror, &ctx);
    instrumented(mirror.as_ref(), &ctx, pass).await
}

async fn reconcile_pass<F: AdminFactory>(
    mirror: &Mirror,
    ctx: &Context<F>,
) -> Result<Action, Error> {
    let namespace = mirror
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = mirror.name_any();
    let api: Api<Mirror> = Api::namespaced(ctx.client.clone(), &namespace);
    let previous = mirror.status.clone().unwrap_or_default();
    let write = |pass| {
        let s = status(
            &previous,
            mirror.metadata.generation,
            mirror.source_alias(),
            mirror.spec.failover,
            pass,
            Timestamp::now(),
        );
        patch_status(&api, &name, s)
    };

    // Dereference.
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let (source, target) = match dereference(mirror, &clusters).await {
        Ok(found) => found,
        Err(error) => {
            write(Pass::Failed(&error)).await?;
            return Err(error);
        }
    };
    let job = match failover_job(ctx, mirror, &namespace, &name).await {
        Ok(job) => job,
        Err(error) => {
            write(Pass::Failed(&error)).await?;
            return Err(error);
        }
    };

    // Validate.
    let validated = match validate(mirror, &namespace, source.as_ref(), target.as_ref()) {
        Ok(v) => v,
        Err(refusal) => {
            let ready = previous.conditions.iter().find(|c| c.type_ == "Ready");
            if ready.is_none_or(|c| c.reason != refusal.reason) {
                event(
                    &ctx.recorder,
                    mirror,
                    true,
                    refusal.reason,
                    refusal.message.clone(),
                )
                .await;
            }
            write(Pass::Refused(&refusal)).await?;
            return Ok(if refusal.transient {
                Action::requeue(RESYNC)
            } else {
                Action::await_change()
            });
        }
    };

    // Plan the failover, build and apply.
    let plan = plan(mirror.spec.failover, previous.failover.as_ref(), &job);
    let built = build(mirror, &name, &namespace, &validated, &plan);
    let applied = match apply_all(ctx, &built).await {
        Ok(a) => a,
        Err(error) => {
            write(Pass::Failed(&error)).await?;
            return Err(error);
        }
    };
    let (ready, warning) = applied;
    let job = match apply_failover(ctx, &built, &plan, &namespace, &name, job).await {
        Ok(job) => job,
        Err(error) => {
            write(Pass::Failed(&error)).await?;
            return Err(error);
        }
    };

    // Observe the lag while mirroring (once failing over the source may well be gone); a
    // cluster the operator cannot reach is reported, not fatal.
    let lag = if plan.mirrors() {
        lag(ctx, &namespace, &validated).await
    } else {
        Err("mirroring stopped for the failover".to_owned())
    };
    let requeue = match (&plan, &job) {
        (Plan::FailOver, JobState::Absent | JobState::Running { .. }) => FAILOVER_RESYNC,
        _ => RESYNC,
    };
    let pass = Applied {
        config_hash: built.config_hash.clone(),
        replicas: built.deployment.spec.replicas.unwrap_or(0),
        ready,
        lag,
        warning,
        plan,
        job,
    };
    write(Pass::Applied(&pass)).await?;
    Ok(Action::requeue(requeue))
}

/// The failover Job's state, read when the Mirror is linked or has a failover recorded (an mm2
/// Mirror never has one): the Job and, when an attempt failed, its pods' last message.
async fn failover_job<F: AdminFactory>(
    ctx: &Context<F>,
    mirror: &Mirror,
    namespace: &str,
    name: &str,
) -> Result<JobState, Error> {
    let recorded = mirror.status.as_ref().is_some_and(|s| s.failover.is_some());
    if mirror.spec.mode != MirrorMode::Linked && !recorded {
        return Ok(JobState::Absent);
    }
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(job) = jobs.get_opt(&job_name(name)).await? else {
        return Ok(JobState::Absent);
    };
    let failed = job.status.as_ref().and_then(|s| s.failed).unwrap_or(0);
    let message = if failed > 0 {
        let selector = failover_labels(name)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
        let pods = pods.list(&ListParams::default().labels(&selector)).await?;
        last_failure(&pods.items)
    } else {
        None
    };
    Ok(job_state(Some(&job), message.as_deref()))
}

/// The failover Job step: created when the plan fails over and there is none (a Job's pod
/// template cannot be changed, so an existing one is never re-applied), deleted with its pods
/// when the failover is withdrawn. The Job's state afterwards.
async fn apply_failover<F: AdminFactory>(
    ctx: &Context<F>,
    built: &Built,
    plan: &Plan,
    namespace: &str,
    name: &str,
    job: JobState,
) -> Result<JobState, Error> {
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    let running = JobState::Running {
        active: 0,
        failed: 0,
        last_failure: None,
    };
    match (plan, &built.failover_job, &job) {
        (Plan::FailOver, Some(new), JobState::Absent) => {
            match jobs.create(&post_params(), new).await {
                Ok(_) => Ok(running),
                // Created by a pass that raced this one: it is there, running.
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(running),
                Err(e) => Err(e.into()),
            }
        }
        (Plan::Withdraw, _, _) => {
            match jobs
                .delete(&job_name(name), &DeleteParams::background())
                .await
            {
                Ok(_) => Ok(JobState::Absent),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(JobState::Absent),
                Err(e) => Err(e.into()),
            }
        }
        _ => Ok(job),
    }
}

/// The source Cluster (when the source is one) and the target Cluster, `None` when absent.
async fn dereference(
    mirror: &Mirror,
    clusters: &Api<Cluster>,
) -> Result<(Option<Cluster>, Option<Cluster>), Error> {
    let source = match &mirror.spec.source.cluster_ref {
        Some(r) => clusters.get_opt(&r.name).await?,
        None => None,
    };
    let target = clusters
        .get_opt(&mirror.spec.target.cluster_ref.name)
        .await?;
    Ok((source, target))
}

/// Applies the ConfigMap, then the Deployment (so that new pods find the new configuration),
/// then the PodMonitor; returns the ready mirror processes the Deployment reports and the
/// PodMonitor's failure (its CRD may not be installed), which does not stop the mirror.
async fn apply_all<F: AdminFactory>(
    ctx: &Context<F>,
    built: &Built,
) -> Result<(i32, Option<String>), Error> {
    apply(&ctx.client, &built.config_map).await?;
    let deployment = apply(&ctx.client, &built.deployment).await?;
    let ready = deployment
        .status
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let mut warning = None;
    if let Some(pm) = &built.pod_monitor
        && let Err(e) = apply_dynamic(&ctx.client, pm, &pod_monitor_resource()).await
    {
        warning = Some(format!("PodMonitor not applied: {e}"));
    }
    Ok((ready, warning))
}

/// The lag of every mirrored topic, or why it could not be measured.
async fn lag<F: AdminFactory>(
    ctx: &Context<F>,
    namespace: &str,
    validated: &Validated,
) -> Result<Vec<strait_crds::mirror::MirroredTopic>, String> {
    let source = admin(ctx, namespace, &validated.source)
        .await
        .map_err(|e| format!("source: {e}"))?;
    let target = admin(ctx, namespace, &validated.target)
        .await
        .map_err(|e| format!("target: {e}"))?;
    measure(&source, &target, validated)
        .await
        .map_err(|e| e.to_string())
}

/// The operator's admin client for an endpoint: a Strait Cluster exactly as the Topic
/// controller reaches it (its replication listener, with the operator's certificate when it
/// uses mutual TLS); other clusters at their bootstrap servers, trusting the Mirror's CA.
async fn admin<F: AdminFactory>(
    ctx: &Context<F>,
    namespace: &str,
    endpoint: &Endpoint,
) -> Result<F::Admin, Error> {
    if let Some(cluster) = &endpoint.cluster {
        let reference = ClusterReference {
            name: Some(cluster.clone()),
            ..ClusterReference::default()
        };
        let bootstrap = admin_bootstrap(cluster, namespace);
        return target_cluster::admin(ctx, &reference, namespace, &bootstrap).await;
    }
    if endpoint.sasl.is_some() {
        return Err(Error::Admin(crate::admin::AdminError::Authentication(
            "the operator's admin client does not log in with SASL yet".to_owned(),
        )));
    }
    let tls: Option<TlsConfig> = match &endpoint.tls_ca {
        None => None,
        Some(ca) => {
            let secrets: Api<k8s_openapi::api::core::v1::Secret> =
                Api::namespaced(ctx.client.clone(), namespace);
            let secret = secrets.get(&ca.name).await?;
            let pem = secret
                .data
                .as_ref()
                .and_then(|d| d.get(&ca.key))
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
                .ok_or_else(|| Error::Secret {
                    secret: ca.name.clone(),
                    problem: format!("has no UTF-8 key {}", ca.key),
                })?;
            let tls = ClientTls::from_pem(&pem, None).map_err(|e| Error::Secret {
                secret: ca.name.clone(),
                problem: format!("key {}: {e}", ca.key),
            })?;
            Some(tls.config().clone())
        }
    };
    Ok(ctx.admins.admin(&endpoint.bootstrap, tls.as_ref()))
}
