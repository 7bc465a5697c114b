//! The Cluster controller, as the pipeline a pass goes through: validate the spec (`validate`)
//! → observe the cluster (`observe`) → plan (`plan`, pure) → apply in a fixed order (`apply`)
//! → status (`status`, a pure function of what the pass observed and did, written on every
//! pass, a failed one included). Three steps cannot be planned up front and sit between
//! plan and apply, each named: a zone removed from `spec.zones` is refused or its empty
//! StatefulSet deleted (`zones`); the cluster CA and the operator's client certificate are
//! ensured before the operator talks to the brokers (`issue`); and the scale step moves
//! partitions off leaving brokers through the Kafka admin API before their zones may shrink
//! (`drain`), which decides the sizes the objects are planned for. Rolling restarts, claim
//! changes and clean-up are apply steps (`roll`, `storage`, `prune`). `authorization` is
//! refused after the observation when the brokers replicate in plaintext (nothing applied).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use strait_crds::{Cluster, ClusterStatus};

use crate::apply::{event, patch_status};
use crate::cluster::apply::{apply_plan, delete_listed};
use crate::cluster::identity::{ClusterRef, Replication};
use crate::cluster::observe::{Observed, observe};
use crate::cluster::status::{self, Pass};
use crate::cluster::validate::{InvalidSpec, validate};
use crate::cluster::voters::VoterStep;
use crate::cluster::{drain, issue, plan, reconfigure};
use crate::conditions::{Cond, merge};
use crate::context::{AdminFactory, Context};
use crate::error::Error;
use crate::reconcile::instrumented;

/// Requeue while brokers start or partitions move.
const BUSY_REQUEUE: Duration = Duration::from_secs(15);
/// Requeue during a rolling restart (StatefulSet status changes usually wake us up earlier).
const ROLL_REQUEUE: Duration = Duration::from_secs(10);
/// Requeue for drift correction when all is well.
const IDLE_REQUEUE: Duration = Duration::from_secs(300);

/// How far [`converge`] went.
enum Flow {
    /// Every step ran.
    Done,
    /// A zone removed from `spec.zones` still has brokers (why): nothing was applied.
    ZoneRemovalRefused(String),
    /// An empty removed zone's StatefulSet is being deleted; the StatefulSet of the zone now at
    /// its position is applied once it is gone.
    ZoneDeletionPending,
    /// `authorization` on brokers replicating in plaintext: nothing was applied (see
    /// [`AUTHORIZATION_NEEDS_MUTUAL_TLS`]).
    AuthorizationRefused,
}

/// Why `authorization` is refused for a Cluster replicating in plaintext.
pub const AUTHORIZATION_NEEDS_MUTUAL_TLS: &str = "`authorization` needs the brokers to replicate \
     over mutual TLS: over plaintext replication the brokers and the operator are all \
     User:ANONYMOUS, which ACLs would cut off from replicating and from the admin API (and \
     making it a super user would make every anonymous client one); these brokers were started \
     by an operator version that replicated in plaintext (no automatic migration yet)";

/// Reconciles one Cluster.
pub async fn reconcile<F: AdminFactory>(
    cluster: Arc<Cluster>,
    ctx: Arc<Context<F>>,
) -> Result<Action, Error> {
    instrumented(cluster.as_ref(), &ctx, reconcile_cluster(&cluster, &ctx)).await
}

/// One pass: validate, then converge (observe → plan → apply), then the status.
async fn reconcile_cluster<F: AdminFactory>(
    cluster: &Cluster,
    ctx: &Context<F>,
) -> Result<Action, Error> {
    let mut c = ClusterRef::of(cluster).ok_or(Error::MissingField("metadata.name/namespace"))?;
    let api: Api<Cluster> = Api::namespaced(ctx.client.clone(), c.namespace);
    let previous = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;

    if let Err(invalid) = validate(c.spec) {
        return refuse_invalid(cluster, &api, c.name, &previous, invalid, ctx).await;
    }

    let mut pass = Pass {
        observed: status::Observed {
            desired: c.spec.replicas,
            ..status::Observed::default()
        },
        cluster_id: previous.cluster_id.clone(),
        ..Pass::default()
    };
    let result = converge(&mut c, cluster, ctx, &mut pass).await;
    match &result {
        Ok(Flow::Done) => {}
        Ok(Flow::ZoneRemovalRefused(message)) => {
            event(
                &ctx.recorder,
                cluster,
                true,
                "ZoneRemovalRefused",
                message.clone(),
            )
            .await;
            let status = ClusterStatus {
                conditions: merge(
                    &previous.conditions,
                    &[
                        Cond::new("Ready", false, "ZoneRemovalRefused", message.clone()),
                        Cond::new(
                            "ScaleDownBlocked",
                            true,
                            "ZoneRemovalRefused",
                            message.clone(),
                        ),
                    ],
                    generation,
                    Timestamp::now(),
                ),
                observed_generation: generation,
                ..previous.clone()
            };
            patch_status(&api, c.name, status).await?;
            return Ok(Action::requeue(BUSY_REQUEUE));
        }
        Ok(Flow::ZoneDeletionPending) => return Ok(Action::requeue(BUSY_REQUEUE)),
        Ok(Flow::AuthorizationRefused) => {
            let message = AUTHORIZATION_NEEDS_MUTUAL_TLS.to_owned();
            event(
                &ctx.recorder,
                cluster,
                true,
                "AuthorizationNeedsMutualTLS",
                message.clone(),
            )
            .await;
            let status = ClusterStatus {
                conditions: merge(
                    &previous.conditions,
                    &[Cond::new(
                        "Ready",
                        false,
                        "AuthorizationNeedsMutualTLS",
                        message,
                    )],
                    generation,
                    Timestamp::now(),
                ),
                observed_generation: generation,
                ..previous.clone()
            };
            patch_status(&api, c.name, status).await?;
            return Ok(Action::await_change());
        }
        Err(e) => {
            tracing::warn!(cluster = c.name, step = pass.step, error = %e, "reconcile step failed");
            pass.outcome.failure = Some(format!("{}: {e}", pass.step));
        }
    }

    // Status, from what was observed and done: on every pass, a failed one included.
    let is_ready = status::ready(&pass.observed, &pass.outcome);
    let was_ready = previous
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if is_ready && !was_ready {
        event(
            &ctx.recorder,
            cluster,
            false,
            "Ready",
            format!("{} brokers ready", c.spec.replicas),
        )
        .await;
    }
    let ready = pass.observed.brokers.map_or(0, |b| b.ready);
    let settled = is_ready
        && pass.outcome.external_pending.is_empty()
        && pass.outcome.recreating.is_none()
        && !pass.outcome.quorum_changing;
    let roll_pending = pass.outcome.roll.as_ref().is_some_and(|r| r.pending);
    let status = status::cluster_status(
        &previous,
        pass,
        c.name,
        generation,
        result.is_err(),
        Timestamp::now(),
    );
    let written = patch_status(&api, c.name, status).await;
    if let Err(e) = result {
        if let Err(w) = written {
            tracing::warn!(cluster = c.name, error = %w, "cannot write the status");
        }
        return Err(e);
    }
    written?;
    tracing::debug!(
        cluster = c.name,
        ready,
        desired = c.spec.replicas,
        "reconciled"
    );
    Ok(Action::requeue(if settled {
        IDLE_REQUEUE
    } else if roll_pending {
        ROLL_REQUEUE
    } else {
        BUSY_REQUEUE
    }))
}

/// An invalid spec: an `InvalidSpec` Event and `Ready=False` with every problem, nothing
/// applied, and no retry until the spec changes.
async fn refuse_invalid<F: AdminFactory>(
    cluster: &Cluster,
    api: &Api<Cluster>,
    name: &str,
    previous: &ClusterStatus,
    invalid: InvalidSpec,
    ctx: &Context<F>,
) -> Result<Action, Error> {
    let message = invalid.to_string();
    let generation = cluster.metadata.generation;
    event(&ctx.recorder, cluster, true, "InvalidSpec", message.clone()).await;
    let status = ClusterStatus {
        conditions: merge(
            &previous.conditions,
            &[Cond::new("Ready", false, "InvalidSpec", message)],
            generation,
            Timestamp::now(),
        ),
        observed_generation: generation,
        ..previous.clone()
    };
    patch_status(api, name, status).await?;
    Ok(Action::await_change())
}

/// The stages after validation, in order: observe; plan the removed zones (refuse, or delete
/// the empty ones); ensure the CA and the operator's certificate; the scale step; plan the
/// objects; apply them. Each records in `pass` what it saw and did.
async fn converge<F: AdminFactory>(
    c: &mut ClusterRef<'_>,
    cluster: &Cluster,
    ctx: &Context<F>,
    pass: &mut Pass,
) -> Result<Flow, Error> {
    let observed = observe(c, ctx, &mut pass.step).await?;

    // Zones that left their position in spec.zones: refuse while they have brokers, else delete
    // their StatefulSets.
    let zone_check = plan::zones(c, &observed);
    if !zone_check.refused.is_empty() {
        return Ok(Flow::ZoneRemovalRefused(zone_check.refused.join("; ")));
    }
    pass.step = "deleting the StatefulSet of a removed zone";
    delete_removed_zones(c, cluster, &observed, &zone_check.delete, ctx).await?;
    if zone_check.wait {
        return Ok(Flow::ZoneDeletionPending);
    }

    record_observation(&observed, pass);
    c.replication = observed.replication;
    if c.spec.authorization.is_some() && c.replication == Replication::Plaintext {
        return Ok(Flow::AuthorizationRefused);
    }

    // With mutual TLS the operator needs the CA and its own certificate before it talks to the
    // brokers (the scale step below may).
    pass.step = "ensuring the cluster CA and the operator's certificate";
    let credentials = issue::ensure_credentials(c, ctx).await?;
    let admin_tls = credentials.admin_tls.as_ref();

    // One voter change per pass (KIP-853), before the scale step: a leaving broker goes only
    // once it is no voter, and the roll restarts no voter while the set changes.
    pass.step = "changing the controller quorum";
    let current: Vec<i32> = observed.current.iter().map(|r| r.unwrap_or(0)).collect();
    let quorum = reconfigure::step(
        c,
        cluster.status.as_ref().and_then(|s| s.quorum.as_ref()),
        &current,
        admin_tls,
        ctx,
        &mut pass.observed.admin,
    )
    .await;
    if let Some(cond) = quorum.condition.as_ref().filter(|c| c.status)
        && matches!(
            quorum.step,
            Some(
                VoterStep::Add { .. } | VoterStep::Remove { .. } | VoterStep::RemoveReplaced { .. }
            )
        )
    {
        event(
            &ctx.recorder,
            cluster,
            false,
            cond.reason,
            cond.message.clone(),
        )
        .await;
    }
    pass.outcome.quorum = quorum.condition.clone();
    pass.outcome.quorum_changing = quorum.changing();
    pass.quorum = Some(quorum.status());

    let scale = plan::scale(c, &observed.current, &quorum);
    let decision = drain::scale(c, scale, admin_tls, ctx, &mut pass.observed.admin).await;
    for cond in decision
        .conditions
        .iter()
        .filter(|c| c.kind == "ScaleDownBlocked" && c.status)
    {
        event(
            &ctx.recorder,
            cluster,
            true,
            cond.reason,
            cond.message.clone(),
        )
        .await;
    }
    pass.outcome.scale = Some(status::ScaleOutcome {
        conditions: decision.conditions.clone(),
        busy: decision.busy,
    });
    pass.held = decision.replicas.iter().sum();

    let plan = plan::plan(c, &observed, decision.replicas, &quorum);
    apply_plan(c, cluster, &observed, &plan, &credentials, ctx, pass).await?;
    Ok(Flow::Done)
}

/// What the status needs of the observation: broker counts, pod failures, replication.
fn record_observation(observed: &Observed, pass: &mut Pass) {
    pass.observed.brokers = Some(observed.brokers());
    pass.observed.pod_failures = observed.pod_failures.clone();
    pass.outcome.replication = Some(status::replication_condition(observed.replication));
}

/// Deletes the StatefulSets `names` of empty zones removed from `spec.zones`.
async fn delete_removed_zones<F: AdminFactory>(
    c: &ClusterRef<'_>,
    cluster: &Cluster,
    observed: &Observed,
    names: &[String],
    ctx: &Context<F>,
) -> Result<(), Error> {
    let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), c.namespace);
    for name in names {
        if delete_listed(&api, &observed.zone_sets, name).await? {
            tracing::info!(
                cluster = c.name,
                statefulset = name,
                "deleted an empty removed zone"
            );
            event(
                &ctx.recorder,
                cluster,
                false,
                "DeletedUnused",
                format!("deleted StatefulSet {name} of a zone no longer in spec.zones"),
            )
            .await;
        }
    }
    Ok(())
}
