//! The Cluster controller: read → validate → build → apply (fixed order) → status. Scale-downs
//! first move partitions off the leaving brokers through the Kafka admin API and are refused,
//! with a condition, when the remaining brokers cannot hold them; a scale that would change the
//! controller quorum's voters of a running cluster is refused too. Brokers restart for a new
//! configuration one at a time across zones, only while every broker is Ready (`roll`). Once no
//! broker uses them, external listeners' Services of removed brokers or listeners, and with
//! `storage.deleteClaim` removed brokers' claims, are deleted (`prune`). A zone removed from
//! `spec.zones` whose StatefulSet still has brokers refuses the change; an empty one is deleted
//! (`zones`). The cluster CA is created once and the brokers' certificates (re)issued as `tls`
//! decides, before the StatefulSets that mount them: every Cluster replicates over mutual TLS
//! (and the operator's admin client connects with its own client certificate) except one whose
//! brokers an earlier, plaintext-replicating operator version started, which keeps plaintext
//! replication with a `ReplicationTLS=False` condition; TLS listeners need the certificates too.
//! Claims grow in place and a StatefulSet whose claim template must change is recreated with
//! its pods orphaned (`storage`). The status is computed from what the pass observed and did
//! (`status`) and written on every pass, a failed one included.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, Preconditions, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::{Resource, api::ObjectList};
use strait_crds::cluster::{ListenerStatus, ListenerType, REPLICATION_PORT};
use strait_crds::{Cluster, ClusterStatus};

use crate::admin::{self, AdminError, KafkaAdmin, TlsConfig};
use crate::apply::{apply, apply_dynamic, event, patch_params, patch_status, post_params};
use crate::cluster::build;
use crate::cluster::identity::{self, ClusterRef};
use crate::cluster::roll::{self, RollPlan, RollStep, ZoneSet};
use crate::cluster::scale::{
    check_quorum_change, partitions_on, plan_rebalance, plan_scale_down_step,
};
use crate::cluster::status::AdminReach;
use crate::cluster::{
    certs, config, external, prune, quorum, status, storage, tls, validate, zones,
};
use crate::conditions::{Cond, keep_unset, merge};
use crate::context::{AdminFactory, Context};
use crate::error::Error;
use crate::names;

/// Requeue while brokers start or partitions move.
const BUSY_REQUEUE: Duration = Duration::from_secs(15);
/// Requeue during a rolling restart (StatefulSet status changes usually wake us up earlier).
const ROLL_REQUEUE: Duration = Duration::from_secs(10);
/// Requeue for drift correction when all is well.
const IDLE_REQUEUE: Duration = Duration::from_secs(300);

/// The admin bootstrap address of a Cluster: its bootstrap Service on the replication port.
pub fn admin_bootstrap(name: &str, namespace: &str) -> String {
    format!(
        "{}.{namespace}.svc:{REPLICATION_PORT}",
        names::bootstrap_service(name, None)
    )
}

/// The admin client of Cluster `c` (its replication listener, over TLS with `tls`).
fn admin_of<F: AdminFactory>(
    c: &ClusterRef<'_>,
    ctx: &Context<F>,
    tls: Option<&TlsConfig>,
) -> F::Admin {
    ctx.admins.admin(&admin_bootstrap(c.name, c.namespace), tls)
}

/// The `ReplicationTLS` condition of a Cluster replicating as `replication`.
pub fn replication_condition(replication: tls::Replication) -> Cond {
    match replication {
        tls::Replication::MutualTls => Cond::new(
            "ReplicationTLS",
            true,
            "MutualTLS",
            "brokers replicate, and the operator connects, over mutual TLS with certificates \
             of the cluster CA",
        ),
        tls::Replication::Plaintext => Cond::new(
            "ReplicationTLS",
            false,
            "PlaintextBrokers",
            "the brokers were started by an operator version that replicated in plaintext; \
             switching the inter-broker listener to TLS in one rolling restart would split the \
             cluster, so replication stays plaintext (no automatic migration yet)",
        ),
    }
}

/// Client bootstrap addresses per listener, for status: external listeners' external addresses
/// once known (see [`external::bootstrap_servers`]; `bootstrap` holds the bootstrap Services as
/// applied, `host_ips` the nodes of the broker pods), else the bootstrap Service's in-cluster
/// name; TLS listeners name the Secret with the CA certificate to trust.
pub fn listener_status(
    cluster: &ClusterRef,
    bootstrap: &BTreeMap<String, Service>,
    host_ips: &BTreeSet<String>,
) -> Vec<ListenerStatus> {
    cluster
        .spec
        .listeners
        .iter()
        .map(|l| {
            let service = match l.kind {
                ListenerType::Internal => names::bootstrap_service(cluster.name, None),
                _ => names::bootstrap_service(cluster.name, Some(&l.name)),
            };
            let bootstrap_servers =
                external::bootstrap_servers(l, bootstrap.get(&service), host_ips)
                    .unwrap_or_else(|| format!("{service}.{}.svc:{}", cluster.namespace, l.port));
            ListenerStatus {
                name: l.name.clone(),
                bootstrap_servers,
                ca_secret: l.tls.then(|| names::cluster_ca_cert(cluster.name)),
            }
        })
        .collect()
}

/// What the scale step decided for each zone.
struct ScaleDecision {
    replicas: Vec<i32>,
    conditions: Vec<Cond>,
    busy: bool,
}

/// How far [`converge`] went.
enum Flow {
    /// Every step ran.
    Done,
    /// A zone removed from `spec.zones` still has brokers (why): nothing was applied.
    ZoneRemovalRefused(String),
    /// An empty removed zone's StatefulSet is being deleted; the StatefulSet of the zone now at
    /// its position is applied once it is gone.
    ZoneDeletionPending,
}

/// What one reconcile observed and did, filled in step by step; the status is computed from
/// it (see [`status`]), also when a step failed.
#[derive(Default)]
struct Pass {
    /// The step under way (names a failure).
    step: &'static str,
    observed: status::Observed,
    outcome: status::Outcome,
    listeners: Option<Vec<ListenerStatus>>,
    config_hash: Option<String>,
    cluster_id: Option<String>,
    /// Brokers the StatefulSets hold as applied.
    held: i32,
}

/// Reconciles one Cluster.
pub async fn reconcile<F: AdminFactory>(
    cluster: Arc<Cluster>,
    ctx: Arc<Context<F>>,
) -> Result<Action, Error> {
    let start = Instant::now();
    let result = reconcile_inner(&cluster, &ctx).await;
    ctx.metrics.reconciled("Cluster", start.elapsed());
    if let Err(e) = &result {
        ctx.metrics.failed("Cluster", e.metric_label());
    }
    result
}

async fn reconcile_inner<F: AdminFactory>(
    cluster: &Cluster,
    ctx: &Context<F>,
) -> Result<Action, Error> {
    let mut c = ClusterRef::of(cluster).ok_or(Error::MissingField("metadata.name/namespace"))?;
    let api: Api<Cluster> = Api::namespaced(ctx.client.clone(), c.namespace);
    let previous = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;

    let problems = validate::validate(c.spec);
    if !problems.is_empty() {
        let message = problems.join("; ");
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
        patch_status(&api, c.name, status).await?;
        return Ok(Action::await_change());
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
        Err(e) => {
            tracing::warn!(cluster = c.name, step = pass.step, error = %e, "reconcile step failed");
            pass.outcome.failure = Some(format!("{}: {e}", pass.step));
        }
    }

    // Status, from what was observed and done: on every pass, a failed one included.
    let conditions = status::conditions(&pass.observed, &pass.outcome);
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
    let mut written = merge(
        &previous.conditions,
        &conditions,
        generation,
        Timestamp::now(),
    );
    if result.is_err() {
        // What the failed pass did not get to stays as last observed.
        written = keep_unset(&previous.conditions, written);
    }
    let brokers = pass.observed.brokers;
    let status = ClusterStatus {
        conditions: written,
        observed_generation: generation,
        replicas: brokers.map_or(previous.replicas, |b| b.existing.max(pass.held)),
        ready_replicas: brokers.map_or(previous.ready_replicas, |b| b.ready),
        selector: Some(names::selector_string(c.name)),
        listeners: pass
            .listeners
            .take()
            .unwrap_or_else(|| previous.listeners.clone()),
        cluster_id: pass.cluster_id.take(),
        config_hash: pass.config_hash.take().or(previous.config_hash.clone()),
    };
    let written = patch_status(&api, c.name, status).await;
    if let Err(e) = result {
        if let Err(w) = written {
            tracing::warn!(cluster = c.name, error = %w, "cannot write the status");
        }
        return Err(e);
    }
    written?;
    let ready = brokers.map_or(0, |b| b.ready);
    tracing::debug!(cluster = %cluster.name_any(), ready, desired = c.spec.replicas, "reconciled");
    let roll_pending = pass.outcome.roll.as_ref().is_some_and(|r| r.pending);
    Ok(Action::requeue(
        if is_ready && pass.outcome.external_pending.is_empty() && pass.outcome.recreating.is_none()
        {
            IDLE_REQUEUE
        } else if roll_pending {
            ROLL_REQUEUE
        } else {
            BUSY_REQUEUE
        },
    ))
}

/// The steps after validation, in order: read (zone StatefulSets, pods), certificates, scale,
/// apply (fixed order), roll, clean-up, storage, admin. Each records in `pass` what it saw and
/// did; a step whose failure need not stop the others records a condition instead of failing
/// (the scale step's admin calls, clean-up, the ServiceMonitor, claim growth, the rebalance).
async fn converge<F: AdminFactory>(
    c: &mut ClusterRef<'_>,
    cluster: &Cluster,
    ctx: &Context<F>,
    pass: &mut Pass,
) -> Result<Flow, Error> {
    pass.step = "reading the zone StatefulSets";
    let sts_api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), c.namespace);
    // Zones that left their position in spec.zones: refuse while they have brokers, else delete
    // their StatefulSets (see `zones`).
    let zone_sets = sts_api
        .list(&ListParams::default().labels(&names::selector_string(c.name)))
        .await?;
    let zone_check = zones::check(c.spec, &existing_zone_sets(c, &zone_sets.items));
    if !zone_check.refused.is_empty() {
        return Ok(Flow::ZoneRemovalRefused(zone_check.refused.join("; ")));
    }
    pass.step = "deleting the StatefulSet of a removed zone";
    for name in &zone_check.delete {
        if delete_listed(&sts_api, &zone_sets, name).await? {
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
    if zone_check.wait {
        return Ok(Flow::ZoneDeletionPending);
    }

    // Read: the broker pods and each zone's StatefulSet. A zone whose StatefulSet is gone or
    // going (recreated for a new claim template, see `storage`) counts the brokers its
    // orphaned pods are, so that nothing takes it for an empty zone.
    pass.step = "reading the brokers";
    // Listed before anything is applied: the nodes of the broker pods go into the
    // certificates of nodeport TLS listeners, and the roll and the clean-up below use the same
    // list (a pod that leaves is thus kept in mind one reconcile longer, never shorter).
    let pods: Vec<Pod> = Api::<Pod>::namespaced(ctx.client.clone(), c.namespace)
        .list(&ListParams::default().labels(&names::selector_string(c.name)))
        .await?
        .items;
    let broker_pods: Vec<roll::BrokerPod> = pods
        .iter()
        .filter_map(|p| roll::broker_pod(c.name, p))
        .collect();
    let mut current = Vec::new();
    let mut ready = 0;
    let mut migrate = Vec::new();
    let mut live = BTreeMap::new();
    let mut zone_states = Vec::new();
    let mut orphans_plaintext = false;
    for i in 0..c.spec.zones.len() {
        let name = names::statefulset(c.name, i);
        match sts_api.get_opt(&name).await? {
            Some(s) if s.metadata.deletion_timestamp.is_none() => {
                if roll::needs_strategy_migration(&s) {
                    migrate.push(name);
                }
                current.push(s.spec.replicas);
                ready += s
                    .status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0);
                zone_states.push(storage::ZoneState::Live(storage::ClaimTemplate::of(&s)));
                live.insert(i, s);
            }
            terminating => {
                let orphans = storage::orphaned_brokers(&broker_pods, i);
                current.push(orphans.brokers);
                ready += orphans.ready;
                orphans_plaintext |= pods
                    .iter()
                    .filter(|p| roll::broker_pod(c.name, p).is_some_and(|b| b.zone == i))
                    .any(tls::plaintext_pod);
                zone_states.push(if terminating.is_some() {
                    storage::ZoneState::Terminating
                } else {
                    storage::ZoneState::Absent
                });
            }
        }
    }
    let existing: i32 = current.iter().map(|r| r.unwrap_or(0)).sum();
    pass.observed.brokers = Some(status::BrokerCount { existing, ready });
    if ready < c.spec.replicas {
        let events = failed_create_events(c, ctx).await;
        pass.observed.pod_failures = status::creation_failures(
            &live.values().cloned().collect::<Vec<_>>(),
            &events,
            Timestamp::now(),
        );
    }
    // Brokers of an earlier version keep replicating in plaintext (see `tls::replication_of`);
    // orphaned pods tell for a zone whose StatefulSet is being recreated.
    c.replication = if orphans_plaintext {
        tls::Replication::Plaintext
    } else {
        tls::replication_of(live.values())
    };
    pass.outcome.replication = Some(replication_condition(c.replication));

    // With mutual TLS the operator needs the CA and its own certificate before it talks to the
    // brokers (the scale step below may).
    pass.step = "ensuring the cluster CA and the operator's certificate";
    let (ca, admin_tls) = if c.replication == tls::Replication::MutualTls {
        let ca = ensure_ca(c, ctx).await?;
        let tls = ensure_operator_certificate(c, &ca, ctx).await?;
        (Some(ca), Some(tls))
    } else {
        (None, None)
    };
    let admin_tls = admin_tls.as_ref();
    let decision = decide_scale(c, &current, admin_tls, ctx, &mut pass.observed.admin).await;
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
    let templates = storage::plan_templates(&zone_states, &c.spec.storage);

    // Build and apply, in dependency order. The voters follow the brokers actually kept, which
    // have the same voters as the spec unless a quorum change was refused.
    let voters = quorum::choose_voters(&decision.replicas);
    let properties = config::server_properties(c.name, c.namespace, c.spec, &voters, c.replication);
    let hash = config::config_hash(&properties);
    pass.step = "applying the ServiceAccount";
    apply(&ctx.client, &build::rbac::service_account(c)).await?;
    pass.step = "applying the ConfigMap";
    apply(&ctx.client, &build::configmap::config_map(c, &voters)).await?;
    pass.config_hash = Some(hash.clone());
    pass.step = "applying the Services";
    apply(&ctx.client, &build::services::headless_service(c)).await?;
    // The applied Services come back with their allocated nodePorts and load balancer ingress:
    // the external addresses the brokers advertise and status reports.
    let mut bootstrap = BTreeMap::new();
    for svc in build::services::bootstrap_services(c) {
        let applied = apply(&ctx.client, &svc).await?;
        bootstrap.insert(applied.name_any(), applied);
    }
    let mut per_broker = BTreeMap::new();
    for svc in build::services::broker_services(c, &decision.replicas) {
        let applied = apply(&ctx.client, &svc).await?;
        per_broker.insert(applied.name_any(), applied);
    }
    let held = identity::held_node_ids(&decision.replicas);
    let external = external::addresses(c, &held, &per_broker);
    pass.outcome.external_pending = external.pending.clone();
    let host_ips = host_ips(c.name, &pods);
    pass.listeners = Some(listener_status(c, &bootstrap, &host_ips));
    pass.step = "issuing the broker certificates";
    let cert_generations = if tls::needs_certificates(c.spec, c.replication) {
        let known = tls::KnownAddresses {
            external: &external,
            bootstrap: &bootstrap,
            host_ips: &host_ips,
        };
        let ca = match ca {
            Some(ca) => ca,
            None => ensure_ca(c, ctx).await?,
        };
        ensure_broker_certificates(c, &ca, &held, &known, ctx).await?
    } else {
        BTreeMap::new()
    };
    pass.step = "applying the StatefulSets";
    for name in &migrate {
        // Before the new template lands, so that it cannot roll every zone at once.
        let patch = roll::strategy_migration_patch();
        sts_api
            .patch(name, &patch_params(), &Patch::Merge(&patch))
            .await?;
    }
    let mut sets = BTreeMap::new();
    let built = build::statefulset::statefulsets(
        c,
        &decision.replicas,
        &voters,
        &hash,
        &cert_generations,
        &external,
    );
    for (i, mut sts) in built.into_iter().enumerate() {
        if templates.recreate == Some(i) {
            let uid = live.get(&i).and_then(|s| s.metadata.uid.clone());
            recreate_statefulset(c, cluster, &sts_api, &sts.name_any(), uid, ctx).await?;
            continue;
        }
        if zone_states.get(i) == Some(&storage::ZoneState::Terminating) {
            continue;
        }
        // Never a claim template change in place: the API server refuses it (see `storage`).
        storage::set_template(&mut sts, &templates.templates[i]);
        let applied = apply(&ctx.client, &sts).await?;
        sets.insert(i, roll::zone_set(&applied));
    }
    pass.outcome.recreating = storage::recreation_message(c.name, &templates);
    pass.step = "applying the PodDisruptionBudget";
    apply(&ctx.client, &build::pdb::pod_disruption_budget(c)).await?;
    pass.step = "rolling restart";
    let (roll, rolling_cond) = roll_brokers(
        c,
        cluster,
        &pods,
        &sets,
        &voters,
        admin_tls,
        ctx,
        &mut pass.observed.admin,
    )
    .await?;
    pass.outcome.roll = Some(status::RollOutcome {
        condition: rolling_cond,
        rolling: roll.rolling(),
        pending: roll.rolling() || matches!(roll.step, RollStep::Wait(_)),
    });
    pass.step = "deleting unused objects";
    let desired_services: BTreeSet<String> =
        bootstrap.keys().chain(per_broker.keys()).cloned().collect();
    match prune_unused(c, &pods, &sets, &desired_services, ctx).await {
        Ok(deleted) if !deleted.is_empty() => {
            tracing::info!(cluster = c.name, ?deleted, "deleted unused objects");
            event(
                &ctx.recorder,
                cluster,
                false,
                "DeletedUnused",
                format!("deleted {}", deleted.join(", ")),
            )
            .await;
        }
        Ok(_) => {}
        // Clean-up is not on the brokers' path: a failure is reported, the reconcile goes on.
        Err(e) => {
            tracing::warn!(cluster = c.name, error = %e, "cannot delete unused objects");
            pass.outcome.degraded.push(Cond::new(
                "Degraded",
                true,
                "CleanupFailed",
                format!("cannot delete unused objects: {e}"),
            ));
        }
    }
    pass.step = "applying the ServiceMonitor";
    if let Some(sm) = build::monitoring::service_monitor(c)
        && let Err(e) = apply_dynamic(
            &ctx.client,
            &sm,
            &build::monitoring::service_monitor_resource(),
        )
        .await
    {
        pass.outcome.degraded.push(Cond::new(
            "Degraded",
            true,
            "ServiceMonitorFailed",
            e.to_string(),
        ));
    }
    pass.step = "growing the data claims";
    let (grown, mut problems) = grow_claims(c, ctx).await?;
    problems.extend(templates.problems.iter().cloned());
    pass.outcome.storage = Some(storage::condition(&problems, &grown, &c.spec.storage));

    // Serving means the admin API answers too: asked once every broker is ready.
    pass.step = "asking the cluster";
    if status::brokers_ready(&pass.observed, &pass.outcome) {
        pass.outcome
            .degraded
            .extend(rebalance_new_brokers(c, admin_tls, ctx, &mut pass.observed.admin).await);
        if pass.cluster_id.is_none() {
            let id = admin_of(c, ctx, admin_tls).cluster_id().await;
            pass.observed.admin.record(&answered(&id));
            match id {
                Ok(id) => pass.cluster_id = id,
                Err(e) => tracing::warn!(error = %e, "cannot read the cluster id"),
            }
        }
    }
    Ok(Flow::Done)
}

/// The result of an admin call as reachability: a Kafka error code is an answer.
fn answered<T>(result: &Result<T, AdminError>) -> Result<(), &AdminError> {
    match result {
        Ok(_) | Err(AdminError::Kafka { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The recent `FailedCreate` Events of the namespace's StatefulSets (why pods cannot be made);
/// best effort: none when they cannot be listed.
async fn failed_create_events<F: AdminFactory>(c: &ClusterRef<'_>, ctx: &Context<F>) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(ctx.client.clone(), c.namespace);
    let params =
        ListParams::default().fields("involvedObject.kind=StatefulSet,reason=FailedCreate");
    match api.list(&params).await {
        Ok(list) => list.items,
        Err(e) => {
            tracing::debug!(cluster = c.name, error = %e, "cannot list FailedCreate events");
            Vec::new()
        }
    }
}

/// Deletes zone StatefulSet `name` (only if it still has `uid`) orphaning its pods, which keep
/// running; the next reconcile recreates it with its new claim template and it adopts them.
async fn recreate_statefulset<F: AdminFactory>(
    c: &ClusterRef<'_>,
    cluster: &Cluster,
    api: &Api<StatefulSet>,
    name: &str,
    uid: Option<String>,
    ctx: &Context<F>,
) -> Result<(), Error> {
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => {
            tracing::info!(
                cluster = c.name,
                statefulset = name,
                "recreating for a new claim template"
            );
            event(
                &ctx.recorder,
                cluster,
                false,
                "RecreatingStatefulSet",
                format!(
                    "deleted StatefulSet {name} orphaning its pods, to recreate it with the new \
                     volume claim template (size {}, StorageClass {})",
                    c.spec.storage.size,
                    c.spec.storage.storage_class.as_deref().unwrap_or("default")
                ),
            )
            .await;
            Ok(())
        }
        // Gone or replaced since it was read: the next reconcile sees what is there.
        Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The cluster CA: creates the CA Secret when missing (an existing one is only read) and
/// applies the CA certificate Secret for clients.
async fn ensure_ca<F: AdminFactory>(
    c: &ClusterRef<'_>,
    ctx: &Context<F>,
) -> Result<certs::Ca, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), c.namespace);
    let now = SystemTime::now();
    let ca_name = names::cluster_ca(c.name);
    let ca = match api.get_opt(&ca_name).await? {
        Some(secret) => certs::Ca {
            cert_pem: secret_text(&secret, &ca_name, certs::CA_CERT_KEY)?,
            key_pem: secret_text(&secret, &ca_name, certs::CA_KEY_KEY)?,
        },
        None => {
            let ca = certs::generate_ca(c.name, c.namespace, now)?;
            // Create, never apply: should another writer have made one meanwhile, this fails
            // (and the next reconcile reads theirs) rather than replacing a CA in use.
            api.create(
                &post_params(),
                &build::certificates::cluster_ca_secret(c, &ca),
            )
            .await?;
            tracing::info!(cluster = c.name, secret = ca_name, "created the cluster CA");
            ca
        }
    };
    apply(
        &ctx.client,
        &build::certificates::cluster_ca_cert_secret(c, &ca),
    )
    .await?;
    Ok(ca)
}

/// The operator's client certificate for the replication listener of `c`, kept in the
/// operator certificates Secret: issued when missing, unreadable, signed by another CA or
/// expiring (the rules of the brokers' certificates, with no names). Returns the admin
/// client's TLS settings: that certificate, trusting only the cluster CA.
async fn ensure_operator_certificate<F: AdminFactory>(
    c: &ClusterRef<'_>,
    ca: &certs::Ca,
    ctx: &Context<F>,
) -> Result<TlsConfig, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), c.namespace);
    let now = SystemTime::now();
    let signer = certs::Signer::new(ca)?;
    let name = names::operator_certs(c.name);
    let stored = api
        .get_opt(&name)
        .await?
        .and_then(|s| secret_text(&s, &name, certs::OPERATOR_KEYSTORE_KEY).ok());
    let existing = stored.as_deref().map(|pem| signer.inspect(pem));
    let keystore =
        match tls::reissue_reason(existing.as_ref(), &tls::Sans::new(), certs::unix_secs(now)) {
            None => stored.unwrap_or_default(),
            Some(reason) => {
                tracing::info!(
                    cluster = c.name,
                    ?reason,
                    "issuing the operator's client certificate"
                );
                let keystore = signer.issue_operator(now)?;
                apply(
                    &ctx.client,
                    &build::certificates::operator_certs_secret(c, ca, keystore.clone()),
                )
                .await?;
                keystore
            }
        };
    Ok(admin::tls_config(&ca.cert_pem, &keystore)?)
}

/// The brokers' certificates (brokers `node_ids`, the StatefulSets' as applied): issues the
/// certificates [`tls::plan`] asks for into the broker certificates Secret, with the CA
/// certificate as the brokers' truststore. Returns each zone's certificate generation for the
/// pod templates.
async fn ensure_broker_certificates<F: AdminFactory>(
    c: &ClusterRef<'_>,
    ca: &certs::Ca,
    node_ids: &[i32],
    known: &tls::KnownAddresses<'_>,
    ctx: &Context<F>,
) -> Result<BTreeMap<usize, u64>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), c.namespace);
    let now = SystemTime::now();
    let signer = certs::Signer::new(ca)?;
    let stored = api.get_opt(&names::broker_certs(c.name)).await?;
    let previous: BTreeMap<String, String> = stored
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.0.clone()).ok()?)))
        .collect();
    let existing = node_ids
        .iter()
        .filter_map(|id| {
            let pod = names::pod(c.name, quorum::zone_of(*id), *id);
            let inspected = previous
                .get(&tls::keystore_key(&pod))
                .map(|pem| signer.inspect(pem))?;
            Some((pod, inspected))
        })
        .collect();
    let desired = node_ids
        .iter()
        .map(|id| (*id, tls::broker_sans(c, *id, known)))
        .collect();
    let plan = tls::plan(
        c.name,
        &desired,
        &existing,
        tls::has_nodeport_tls(c.spec),
        certs::unix_secs(now),
    );
    let mut keystores = BTreeMap::new();
    for id in node_ids {
        let pod = names::pod(c.name, quorum::zone_of(*id), *id);
        let key = tls::keystore_key(&pod);
        let pem = match plan.issue.get(&pod) {
            Some((sans, reason)) => {
                tracing::info!(
                    cluster = c.name,
                    pod,
                    ?reason,
                    "issuing a broker certificate"
                );
                signer.issue(&certs::broker_common_name(c.name), sans, now)?
            }
            None => previous.get(&key).cloned().unwrap_or_default(),
        };
        keystores.insert(key, pem);
    }
    let annotations = stored
        .as_ref()
        .and_then(|s| s.metadata.annotations.clone())
        .unwrap_or_default();
    let generations = tls::next_generations(&tls::generations(&annotations), &plan.replaced_zones);
    apply(
        &ctx.client,
        &build::certificates::broker_certs_secret(c, ca, keystores, &generations),
    )
    .await?;
    Ok(generations)
}

/// The UTF-8 text under `key` in `secret` (named `name`).
fn secret_text(secret: &Secret, name: &str, key: &str) -> Result<String, Error> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| Error::Secret {
            secret: name.to_owned(),
            problem: format!("has no key {key}"),
        })?;
    String::from_utf8(bytes.0.clone()).map_err(|_| Error::Secret {
        secret: name.to_owned(),
        problem: format!("key {key} is not UTF-8"),
    })
}

/// The zone StatefulSets of `c` among `listed`: named `<cluster>-z<index>` and owned by this
/// Cluster (without its uid none can be proven ours).
fn existing_zone_sets(c: &ClusterRef<'_>, listed: &[StatefulSet]) -> Vec<zones::ExistingZoneSet> {
    let Some(owner) = &c.owner else {
        return Vec::new();
    };
    listed
        .iter()
        .filter(|s| {
            s.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == owner.uid)
        })
        .filter_map(|s| {
            let name = s.metadata.name.clone()?;
            let index = zones::index_of(c.name, &name)?;
            let zone = s
                .spec
                .selector
                .match_labels
                .as_ref()
                .and_then(|l| l.get(names::ZONE_LABEL).cloned());
            let wanted = s.spec.replicas.unwrap_or(0);
            let have = s.status.as_ref().map_or(0, |s| s.replicas);
            Some(zones::ExistingZoneSet {
                name,
                index,
                zone,
                brokers: wanted.max(have),
            })
        })
        .collect()
}

/// The IPs of the nodes running broker pods of `cluster`.
fn host_ips(cluster: &str, pods: &[Pod]) -> BTreeSet<String> {
    pods.iter()
        .filter(|p| roll::broker_pod(cluster, p).is_some())
        .filter_map(|p| p.status.as_ref()?.host_ip.clone())
        .filter(|ip| !ip.is_empty())
        .collect()
}

/// The rolling-restart step: given the broker pods, asks [`roll::next_restart`] which one may
/// restart now and evicts it (an eviction is a delete that honours the PodDisruptionBudget, so a concurrent node
/// drain cannot take a second broker down). Returns the plan and the `Rolling` condition.
#[allow(clippy::too_many_arguments)]
async fn roll_brokers<F: AdminFactory>(
    c: &ClusterRef<'_>,
    cluster: &Cluster,
    listed: &[Pod],
    sets: &BTreeMap<usize, ZoneSet>,
    voters: &[i32],
    admin_tls: Option<&TlsConfig>,
    ctx: &Context<F>,
    reach: &mut AdminReach,
) -> Result<(RollPlan, Cond), Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), c.namespace);
    let pods: Vec<roll::BrokerPod> = listed
        .iter()
        .filter_map(|p| roll::broker_pod(c.name, p))
        .collect();
    // Voters restart after every other broker and the active controller last (one controller
    // failover per roll). Which voter leads matters only once a voter is next, so only then is
    // the cluster asked (DescribeQuorum); when it cannot say, voters go by ordinal.
    let mut plan = roll::next_restart(&pods, sets, voters, None);
    if let RollStep::Restart { node_id, .. } = plan.step
        && voters.contains(&node_id)
    {
        let admin = admin_of(c, ctx, admin_tls);
        let active = admin.active_controller().await;
        reach.record(&answered(&active));
        match active {
            Ok(Some(active)) => plan = roll::next_restart(&pods, sets, voters, Some(active)),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot tell the active controller"),
        }
    }
    let left = plan.outdated.len();
    let cond = match &plan.step {
        RollStep::Restart { pod, node_id } => {
            let uid = listed
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(pod))
                .and_then(|p| p.metadata.uid.clone());
            let eviction = eviction(pod, c.namespace, uid);
            let created: Result<serde_json::Value, kube::Error> = api
                .create_subresource("eviction", pod, &post_params(), &eviction)
                .await;
            match created {
                Ok(_) => {
                    let message = format!(
                        "restarting broker {node_id} ({pod}) for the new configuration; \
                         {left} broker(s) on an old revision"
                    );
                    tracing::info!(cluster = c.name, pod, node_id, left, "rolling restart");
                    event(
                        &ctx.recorder,
                        cluster,
                        false,
                        "RollingRestart",
                        message.clone(),
                    )
                    .await;
                    Cond::new("Rolling", true, "RestartingBroker", message)
                }
                // 429: the PodDisruptionBudget allows no disruption now (another broker is
                // down); 404/409: the pod went or changed since the list. Wait for the next turn.
                Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409 | 429) => {
                    Cond::new(
                        "Rolling",
                        true,
                        "WaitingForBrokers",
                        format!(
                            "{left} broker(s) to restart; eviction of {pod} refused: {}",
                            status.message
                        ),
                    )
                }
                Err(e) => return Err(e.into()),
            }
        }
        RollStep::Wait(why) if plan.rolling() => Cond::new(
            "Rolling",
            true,
            "WaitingForBrokers",
            format!(
                "{left} broker(s) to restart ({:?}); waiting: {why}",
                plan.outdated
            ),
        ),
        RollStep::Wait(_) | RollStep::Done => Cond::new("Rolling", false, "UpToDate", ""),
    };
    Ok((plan, cond))
}

/// Per-zone replica counts to apply. A zone shrinks only once no partition has a replica on its
/// leaving brokers; until then partitions are reassigned (each move issued once: moves still in
/// progress are listed and left to finish) and the zone keeps its size. A running
/// cluster keeps its size when the new size would change the controller voters. When the admin
/// API fails, the zones keep their brokers and `ScaleDownBlocked` says why (`AdminUnavailable`):
/// the rest of the reconcile goes on.
async fn decide_scale<F: AdminFactory>(
    c: &ClusterRef<'_>,
    current: &[Option<i32>],
    admin_tls: Option<&TlsConfig>,
    ctx: &Context<F>,
    reach: &mut AdminReach,
) -> ScaleDecision {
    let desired = quorum::desired_zone_sizes(c.spec);
    let now: Vec<i32> = (0..desired.len())
        .map(|i| current.get(i).copied().flatten().unwrap_or(0))
        .collect();
    if let Err(refused) = check_quorum_change(&now, &desired) {
        return ScaleDecision {
            replicas: now,
            conditions: vec![Cond::new(
                "ScaleDownBlocked",
                true,
                "QuorumChangeRefused",
                format!("cannot scale to {} brokers: {refused}", c.spec.replicas),
            )],
            busy: true,
        };
    }
    let mut leaving = Vec::new();
    let mut remaining = Vec::new();
    let mut racks = BTreeMap::new();
    for (i, zone) in c.spec.zones.iter().enumerate() {
        let start = identity::ordinal_start(i);
        let have = current.get(i).copied().flatten().unwrap_or(0);
        for k in 0..have.max(desired[i]) {
            racks.insert(start + k, zone.clone());
            if k < desired[i] {
                remaining.push(start + k);
            } else {
                leaving.push(start + k);
            }
        }
    }
    if leaving.is_empty() {
        return ScaleDecision {
            replicas: desired,
            conditions: Vec::new(),
            busy: false,
        };
    }
    let held: Vec<i32> = desired
        .iter()
        .zip(current)
        .map(|(d, c)| (*d).max(c.unwrap_or(0)))
        .collect();
    let voters = quorum::choose_voters(&now);
    match scale_down_step(
        c, admin_tls, ctx, reach, &leaving, &remaining, &racks, &voters,
    )
    .await
    {
        Err(e) => ScaleDecision {
            replicas: held,
            conditions: vec![Cond::new(
                "ScaleDownBlocked",
                true,
                "AdminUnavailable",
                format!(
                    "cannot remove brokers {leaving:?} while the Kafka admin API fails (they \
                     are kept): {e}"
                ),
            )],
            busy: true,
        },
        Ok(None) => ScaleDecision {
            replicas: desired,
            conditions: vec![Cond::new(
                "ScaleDownBlocked",
                false,
                "PartitionsMoved",
                format!("brokers {leaving:?} hold no partitions"),
            )],
            busy: false,
        },
        Ok(Some(Err(refused))) => ScaleDecision {
            replicas: held,
            conditions: vec![Cond::new(
                "ScaleDownBlocked",
                true,
                "ScaleDownRefused",
                format!("cannot remove brokers {leaving:?}: {refused}"),
            )],
            busy: true,
        },
        Ok(Some(Ok(message))) => ScaleDecision {
            replicas: held,
            conditions: vec![Cond::new(
                "ScaleDownBlocked",
                false,
                "MovingPartitions",
                message,
            )],
            busy: true,
        },
    }
}

/// The admin side of a scale-down: `None` when the leaving brokers hold no partition; else the
/// planner's refusal, or the progress message after issuing this pass's moves. Every call's
/// outcome goes into `reach`.
#[allow(clippy::too_many_arguments)]
async fn scale_down_step<F: AdminFactory>(
    c: &ClusterRef<'_>,
    admin_tls: Option<&TlsConfig>,
    ctx: &Context<F>,
    reach: &mut AdminReach,
    leaving: &[i32],
    remaining: &[i32],
    racks: &BTreeMap<i32, String>,
    voters: &[i32],
) -> Result<Option<Result<String, String>>, AdminError> {
    let admin = admin_of(c, ctx, admin_tls);
    let partitions = admin.all_partitions().await;
    reach.record(&answered(&partitions));
    let partitions = partitions?;
    if partitions_on(&partitions, leaving).is_empty() {
        return Ok(None);
    }
    let ongoing = admin.ongoing_reassignments().await;
    reach.record(&answered(&ongoing));
    let step = match plan_scale_down_step(&partitions, &ongoing?, remaining, racks, voters) {
        Err(refused) => return Ok(Some(Err(refused.to_string()))),
        Ok(step) => step,
    };
    if !step.issue.is_empty() {
        let issued = admin.reassign_partitions(&step.issue).await;
        reach.record(&answered(&issued));
        issued?;
    }
    let still = partitions_on(&partitions, leaving).len();
    Ok(Some(Ok(format!(
        "{still} partitions still have a replica on brokers {leaving:?}: {} moves in progress, \
         {} issued now",
        step.in_progress.len(),
        step.issue.len()
    ))))
}

/// After a scale-up, once every broker is ready: when a broker holds no replica at all, spreads
/// replicas onto it. Also the admin probe of every ready pass (its reading of the partitions
/// goes into `reach`, which `Ready` needs). A failed move is a `Degraded` condition, not a
/// failed reconcile, so the rest of the status still gets written.
async fn rebalance_new_brokers<F: AdminFactory>(
    c: &ClusterRef<'_>,
    admin_tls: Option<&TlsConfig>,
    ctx: &Context<F>,
    reach: &mut AdminReach,
) -> Option<Cond> {
    let brokers = identity::desired_node_ids(c.spec);
    let admin = admin_of(c, ctx, admin_tls);
    let partitions = admin.all_partitions().await;
    reach.record(&answered(&partitions));
    let partitions = partitions.ok()?;
    let slots: usize = partitions.values().map(Vec::len).sum();
    let empty = brokers
        .iter()
        .filter(|b| !partitions.values().any(|r| r.contains(b)))
        .count();
    if empty == 0 || slots < brokers.len() {
        return None;
    }
    let mut racks = BTreeMap::new();
    for (i, zone) in c.spec.zones.iter().enumerate() {
        for id in identity::zone_node_ids(c.spec, i) {
            racks.insert(id, zone.clone());
        }
    }
    let plan = plan_rebalance(&partitions, &brokers, &racks);
    if plan.is_empty() {
        return None;
    }
    match admin.reassign_partitions(&plan).await {
        Ok(()) => {
            tracing::info!(
                cluster = c.name,
                partitions = plan.len(),
                "rebalancing onto new brokers"
            );
            None
        }
        Err(e) => Some(Cond::new(
            "Degraded",
            true,
            "RebalanceFailed",
            e.to_string(),
        )),
    }
}

/// Deletes what no broker uses any more, as [`prune`] selects it from fresh lists: the
/// external listeners' Services that the builders no longer produce (`desired` names those just
/// applied), and with `storage.deleteClaim` the claims of removed brokers. Runs after the
/// StatefulSets were applied and the pods listed (`pods`, `sets`), so a leaving broker keeps
/// its address until its pod is gone. Returns `Kind name` of each object deleted.
async fn prune_unused<F: AdminFactory>(
    c: &ClusterRef<'_>,
    pods: &[Pod],
    sets: &BTreeMap<usize, ZoneSet>,
    desired: &BTreeSet<String>,
    ctx: &Context<F>,
) -> Result<Vec<String>, Error> {
    let broker_pods: Vec<roll::BrokerPod> = pods
        .iter()
        .filter_map(|p| roll::broker_pod(c.name, p))
        .collect();
    let brokers = prune::Brokers {
        pods: &broker_pods,
        sets,
    };
    let mut deleted = Vec::new();
    // Without the Cluster's uid no Service can be proven ours.
    if let Some(owner) = &c.owner {
        let api: Api<Service> = Api::namespaced(ctx.client.clone(), c.namespace);
        let listed = api
            .list(&ListParams::default().labels(&names::listener_services_selector(c.name)))
            .await?;
        for name in prune::services_to_delete(c.name, &owner.uid, &listed.items, desired, &brokers)
        {
            if delete_listed(&api, &listed, &name).await? {
                deleted.push(format!("Service {name}"));
            }
        }
    }
    if c.spec.storage.delete_claim {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), c.namespace);
        let listed = api
            .list(&ListParams::default().labels(&names::selector_string(c.name)))
            .await?;
        for name in prune::claims_to_delete(c.name, true, &listed.items, &brokers) {
            if delete_listed(&api, &listed, &name).await? {
                deleted.push(format!("PersistentVolumeClaim {name}"));
            }
        }
    }
    Ok(deleted)
}

/// Deletes `name` only if it is still the object listed (uid precondition); `false` when it is
/// already gone or was replaced since.
async fn delete_listed<K>(api: &Api<K>, listed: &ObjectList<K>, name: &str) -> Result<bool, Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let uid = listed
        .items
        .iter()
        .find(|o| o.meta().name.as_deref() == Some(name))
        .and_then(|o| o.meta().uid.clone());
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Grows the brokers' claims to `spec.storage.size` in place (a PVC patch) where their
/// StorageClass allows expansion: read from the StorageClass when the operator may (it needs
/// cluster-wide read access), else the API server's refusal of the patch tells. Returns the
/// claims grown and what cannot be done (see [`storage::plan_claims`]).
async fn grow_claims<F: AdminFactory>(
    c: &ClusterRef<'_>,
    ctx: &Context<F>,
) -> Result<(Vec<String>, Vec<storage::Problem>), Error> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), c.namespace);
    let claims = api
        .list(&ListParams::default().labels(&names::selector_string(c.name)))
        .await?
        .items;
    let classes: Api<StorageClass> = Api::all(ctx.client.clone());
    let mut expandable = BTreeMap::new();
    for class in storage::classes_to_check(&claims, &c.spec.storage) {
        match classes.get_opt(&class).await {
            Ok(Some(sc)) => {
                expandable.insert(class, sc.allow_volume_expansion == Some(true));
            }
            // Unknown: the claim's patch is tried and the API server's answer tells.
            Ok(None) => {}
            Err(e) => tracing::debug!(class, error = %e, "cannot read the StorageClass"),
        }
    }
    let plan = storage::plan_claims(&claims, &c.spec.storage, &expandable);
    let mut problems = plan.problems;
    let mut grown = Vec::new();
    let patch =
        serde_json::json!({"spec": {"resources": {"requests": {"storage": c.spec.storage.size}}}});
    for name in plan.grow {
        match api
            .patch(&name, &patch_params(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => grown.push(name),
            Err(kube::Error::Api(status)) => {
                problems.push(storage::patch_problem(
                    &name,
                    Some(status.code),
                    status.message,
                ));
            }
            Err(e) => problems.push(storage::patch_problem(&name, None, e.to_string())),
        }
    }
    Ok((grown, problems))
}

/// The policy/v1 Eviction of `pod`, only if it still has `uid` (never a pod recreated since it
/// was listed). Built here because kube's `Api::evict` sends `delete_options` in snake case,
/// which the API server ignores, dropping the precondition.
fn eviction(pod: &str, namespace: &str, uid: Option<String>) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod, "namespace": namespace},
        "deleteOptions": {"preconditions": {"uid": uid}},
    })
}

/// Backoff after a failed reconcile.
pub fn error_policy<F: AdminFactory>(
    _cluster: Arc<Cluster>,
    error: &Error,
    _ctx: Arc<Context<F>>,
) -> Action {
    tracing::warn!(%error, "cluster reconcile failed");
    Action::requeue(Duration::from_secs(30))
}
