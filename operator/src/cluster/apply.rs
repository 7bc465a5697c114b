//! The apply stage of a Cluster reconcile: carries a [`Plan`] out in one fixed order, through
//! the operator's apply helpers (server-side apply with its field manager):
//! ServiceAccount → ConfigMap → Services → broker certificates → StatefulSets → PDB → rolling
//! restart → clean-up → ServiceMonitor → claims → asking the cluster. The order is what
//! depends on what: the applied Services return the allocated node ports and load balancer
//! addresses that go into the certificates and the brokers' start commands, the certificates
//! exist before the StatefulSets that mount them, and the roll and the clean-up look at the
//! StatefulSets as applied. Steps whose failure need not stop the rest (clean-up, the
//! ServiceMonitor, claim growth, the rebalance) record a condition instead of failing.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{
    Api, DeleteParams, ListParams, ObjectList, Patch, Preconditions, PropagationPolicy,
};
use kube::{Resource, ResourceExt};
use strait_crds::Cluster;

use crate::admin::{KafkaAdmin, TlsConfig};
use crate::apply::{apply, apply_dynamic, event, patch_params, post_params};
use crate::cluster::build::{monitoring, statefulset};
use crate::cluster::identity::ClusterRef;
use crate::cluster::issue::{self, Credentials};
use crate::cluster::observe::Observed;
use crate::cluster::plan::Plan;
use crate::cluster::reach::{admin_of, answered};
use crate::cluster::roll::{self, RollPlan, RollStep, ZoneSet};
use crate::cluster::status::{self, AdminReach, Pass};
use crate::cluster::{drain, external, prune, storage, tls};
use crate::conditions::Cond;
use crate::context::{AdminFactory, Context};
use crate::error::Error;
use crate::names;

/// Applies `plan` for Cluster `c` (`cluster` for Events), recording in `pass` what each step
/// did; `credentials` are the CA and the admin client's TLS settings (mutual TLS replication).
pub async fn apply_plan<F: AdminFactory>(
    c: &ClusterRef<'_>,
    cluster: &Cluster,
    observed: &Observed,
    plan: &Plan,
    credentials: &Credentials,
    ctx: &Context<F>,
    pass: &mut Pass,
) -> Result<(), Error> {
    let admin_tls = credentials.admin_tls.as_ref();
    pass.step = "applying the ServiceAccount";
    apply(&ctx.client, &plan.service_account).await?;
    pass.step = "applying the ConfigMap";
    apply(&ctx.client, &plan.config_map).await?;
    pass.config_hash = Some(plan.config_hash.clone());
    pass.step = "applying the Services";
    apply(&ctx.client, &plan.headless).await?;
    // The applied Services come back with their allocated nodePorts and load balancer ingress:
    // the external addresses the brokers advertise and status reports.
    let mut bootstrap = BTreeMap::new();
    for svc in &plan.bootstrap {
        let applied = apply(&ctx.client, svc).await?;
        bootstrap.insert(applied.name_any(), applied);
    }
    let mut per_broker = BTreeMap::new();
    for svc in &plan.per_broker {
        let applied = apply(&ctx.client, svc).await?;
        per_broker.insert(applied.name_any(), applied);
    }
    let external = external::addresses(c, &plan.held, &per_broker);
    pass.outcome.external_pending = external.pending.clone();
    let host_ips = host_ips(c.name, &observed.pods);
    pass.listeners = Some(status::listener_status(c, &bootstrap, &host_ips));
    pass.step = "issuing the broker certificates";
    let cert_generations = if plan.broker_certificates {
        let known = tls::KnownAddresses {
            external: &external,
            bootstrap: &bootstrap,
            host_ips: &host_ips,
        };
        let made;
        let ca = match &credentials.ca {
            Some(ca) => ca,
            None => {
                made = issue::ensure_ca(c, ctx).await?;
                &made
            }
        };
        issue::ensure_broker_certificates(c, ca, &plan.held, &known, ctx).await?
    } else {
        BTreeMap::new()
    };
    if crate::cluster::config::needs_clients_ca(c.spec) {
        // The truststore of `tls` listeners, mounted by the brokers.
        issue::ensure_clients_ca(c, ctx).await?;
    }
    pass.step = "applying the StatefulSets";
    let sts_api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), c.namespace);
    for name in &plan.migrate {
        // Before the new template lands, so that it cannot roll every zone at once.
        let patch = roll::strategy_migration_patch();
        sts_api
            .patch(name, &patch_params(), &Patch::Merge(&patch))
            .await?;
    }
    let mut sets = BTreeMap::new();
    let built = statefulset::statefulsets(
        c,
        &plan.replicas,
        &plan.controllers,
        &plan.config_hash,
        &cert_generations,
        &external,
    );
    for (i, mut sts) in built.into_iter().enumerate() {
        if plan.templates.recreate == Some(i) {
            let uid = observed.live.get(&i).and_then(|s| s.metadata.uid.clone());
            recreate_statefulset(c, cluster, &sts_api, &sts.name_any(), uid, ctx).await?;
            continue;
        }
        if observed.zone_states.get(i) == Some(&storage::ZoneState::Terminating) {
            continue;
        }
        // Never a claim template change in place: the API server refuses it (see `storage`).
        storage::set_template(&mut sts, &plan.templates.templates[i]);
        let applied = apply(&ctx.client, &sts).await?;
        sets.insert(i, roll::zone_set(&applied));
    }
    pass.outcome.recreating = storage::recreation_message(c.name, &plan.templates);
    pass.step = "applying the PodDisruptionBudget";
    apply(&ctx.client, &plan.pdb).await?;
    pass.step = "rolling restart";
    let (roll, rolling_cond) = roll_brokers(
        c,
        cluster,
        &observed.pods,
        &sets,
        &plan.voters,
        plan.hold_voters.as_deref(),
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
    match prune_unused(c, &observed.pods, &sets, &desired_services, ctx).await {
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
    if let Some(sm) = &plan.service_monitor
        && let Err(e) =
            apply_dynamic(&ctx.client, sm, &monitoring::service_monitor_resource()).await
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
    problems.extend(plan.templates.problems.iter().cloned());
    pass.outcome.storage = Some(storage::condition(&problems, &grown, &c.spec.storage));

    // Serving means the admin API answers too: asked once every broker is ready.
    pass.step = "asking the cluster";
    if status::brokers_ready(&pass.observed, &pass.outcome) {
        pass.outcome.degraded.extend(
            drain::rebalance_new_brokers(c, admin_tls, ctx, &mut pass.observed.admin).await,
        );
        // Every pass, not once: the status follows the id the metadata quorum holds (clusters
        // formatted before the shared id reported one per broker until their upgrade).
        let id = admin_of(c, ctx, admin_tls).cluster_id().await;
        pass.observed.admin.record(&answered(&id));
        match id {
            Ok(Some(id)) => pass.cluster_id = Some(id),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the cluster id"),
        }
    }
    Ok(())
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

/// The rolling-restart step: given the broker pods, asks [`roll::next_restart`] which one may
/// restart now and evicts it (an eviction is a delete that honours the PodDisruptionBudget, so a concurrent node
/// drain cannot take a second broker down); while `hold_voters` says a voter change is under
/// way, only non-voters restart. Returns the plan and the `Rolling` condition.
#[allow(clippy::too_many_arguments)]
async fn roll_brokers<F: AdminFactory>(
    c: &ClusterRef<'_>,
    cluster: &Cluster,
    listed: &[Pod],
    sets: &BTreeMap<usize, ZoneSet>,
    voters: &[i32],
    hold_voters: Option<&str>,
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
    if let (RollStep::Restart { node_id, .. }, Some(step)) = (&plan.step, hold_voters)
        && voters.contains(node_id)
    {
        // Non-voters went first: what is left waits for the voter set to settle.
        plan.step = RollStep::Wait(roll::RollWait::QuorumChanging {
            step: step.to_owned(),
        });
    }
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
pub async fn delete_listed<K>(
    api: &Api<K>,
    listed: &ObjectList<K>,
    name: &str,
) -> Result<bool, Error>
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

/// The IPs of the nodes running broker pods of `cluster`.
fn host_ips(cluster: &str, pods: &[Pod]) -> BTreeSet<String> {
    pods.iter()
        .filter(|p| roll::broker_pod(cluster, p).is_some())
        .filter_map(|p| p.status.as_ref()?.host_ip.clone())
        .filter(|ip| !ip.is_empty())
        .collect()
}
