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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::{Resource, api::ObjectList};
use strait_crds::cluster::{ListenerStatus, ListenerType, REPLICATION_PORT};
use strait_crds::{Cluster, ClusterStatus};

use crate::admin::{self, KafkaAdmin, TlsConfig};
use crate::apply::{apply, apply_dynamic, event, patch_status};
use crate::cluster::resources::{self, ClusterRef};
use crate::cluster::roll::{self, RollPlan, RollStep, ZoneSet};
use crate::cluster::scale::{
    check_quorum_change, partitions_on, plan_rebalance, plan_scale_down_step,
};
use crate::cluster::{certs, config, external, prune, quorum, tls, validate, zones};
use crate::conditions::{Cond, merge};
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

    // Read: the StatefulSets as they are.
    let sts_api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), c.namespace);
    // Zones that left their position in spec.zones: refuse while they have brokers, else delete
    // their StatefulSets (see `zones`).
    let zone_sets = sts_api
        .list(&ListParams::default().labels(&names::selector_string(c.name)))
        .await?;
    let zone_check = zones::check(c.spec, &existing_zone_sets(&c, &zone_sets.items));
    if !zone_check.refused.is_empty() {
        let message = zone_check.refused.join("; ");
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
                    Cond::new("ScaleDownBlocked", true, "ZoneRemovalRefused", message),
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
        // Its replacement for the zone now at that position is applied once it is gone.
        return Ok(Action::requeue(BUSY_REQUEUE));
    }
    let mut current = Vec::new();
    let mut ready = 0;
    let mut migrate = Vec::new();
    let mut found = Vec::new();
    for i in 0..c.spec.zones.len() {
        let existing = sts_api.get_opt(&names::statefulset(c.name, i)).await?;
        if existing
            .as_ref()
            .is_some_and(roll::needs_strategy_migration)
        {
            migrate.push(names::statefulset(c.name, i));
        }
        current.push(existing.as_ref().and_then(|s| s.spec.replicas));
        ready += existing
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        found.extend(existing);
    }
    // Brokers of an earlier version keep replicating in plaintext (see `tls::replication_of`).
    c.replication = tls::replication_of(&found);
    // With mutual TLS the operator needs the CA and its own certificate before it talks to the
    // brokers (the scale step below may).
    let (ca, admin_tls) = if c.replication == tls::Replication::MutualTls {
        let ca = ensure_ca(&c, ctx).await?;
        let tls = ensure_operator_certificate(&c, &ca, ctx).await?;
        (Some(ca), Some(tls))
    } else {
        (None, None)
    };
    let admin_tls = admin_tls.as_ref();
    let decision = decide_scale(&c, &current, admin_tls, ctx).await?;
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

    // Build and apply, in dependency order. The voters follow the brokers actually kept, which
    // have the same voters as the spec unless a quorum change was refused.
    let voters = quorum::choose_voters(&decision.replicas);
    let properties = config::server_properties(c.name, c.namespace, c.spec, &voters, c.replication);
    let hash = config::config_hash(&properties);
    apply(&ctx.client, &resources::service_account(&c)).await?;
    apply(&ctx.client, &resources::config_map(&c, &voters)).await?;
    apply(&ctx.client, &resources::headless_service(&c)).await?;
    // The applied Services come back with their allocated nodePorts and load balancer ingress:
    // the external addresses the brokers advertise and status reports.
    let mut bootstrap = BTreeMap::new();
    for svc in resources::bootstrap_services(&c) {
        let applied = apply(&ctx.client, &svc).await?;
        bootstrap.insert(applied.name_any(), applied);
    }
    let mut per_broker = BTreeMap::new();
    for svc in resources::broker_services(&c, &decision.replicas) {
        let applied = apply(&ctx.client, &svc).await?;
        per_broker.insert(applied.name_any(), applied);
    }
    let held = resources::held_node_ids(&decision.replicas);
    let external = external::addresses(&c, &held, &per_broker);
    // Listed before the StatefulSets are applied: the nodes of the broker pods go into the
    // certificates of nodeport TLS listeners, and the roll and the clean-up below use the same
    // list (a pod that leaves is thus kept in mind one reconcile longer, never shorter).
    let pods: Vec<Pod> = Api::<Pod>::namespaced(ctx.client.clone(), c.namespace)
        .list(&ListParams::default().labels(&names::selector_string(c.name)))
        .await?
        .items;
    let host_ips = host_ips(c.name, &pods);
    let cert_generations = if tls::needs_certificates(c.spec, c.replication) {
        let known = tls::KnownAddresses {
            external: &external,
            bootstrap: &bootstrap,
            host_ips: &host_ips,
        };
        let ca = match ca {
            Some(ca) => ca,
            None => ensure_ca(&c, ctx).await?,
        };
        ensure_broker_certificates(&c, &ca, &held, &known, ctx).await?
    } else {
        BTreeMap::new()
    };
    for name in &migrate {
        // Before the new template lands, so that it cannot roll every zone at once.
        let params = PatchParams {
            field_manager: Some(names::MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let patch = roll::strategy_migration_patch();
        sts_api.patch(name, &params, &Patch::Merge(&patch)).await?;
    }
    let mut sets = BTreeMap::new();
    for (i, sts) in resources::statefulsets(
        &c,
        &decision.replicas,
        &voters,
        &hash,
        &cert_generations,
        &external,
    )
    .iter()
    .enumerate()
    {
        let applied = apply(&ctx.client, sts).await?;
        sets.insert(i, roll::zone_set(&applied));
    }
    apply(&ctx.client, &resources::pod_disruption_budget(&c)).await?;
    let (roll, rolling_cond) =
        roll_brokers(&c, cluster, &pods, &sets, &voters, admin_tls, ctx).await?;
    let roll_pending = roll.rolling() || matches!(roll.step, RollStep::Wait(_));
    let mut conditions = decision.conditions;
    conditions.push(rolling_cond.clone());
    conditions.push(replication_condition(c.replication));
    let desired_services: BTreeSet<String> =
        bootstrap.keys().chain(per_broker.keys()).cloned().collect();
    match prune_unused(&c, &pods, &sets, &desired_services, ctx).await {
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
            conditions.push(Cond::new(
                "Degraded",
                true,
                "CleanupFailed",
                format!("cannot delete unused objects: {e}"),
            ));
        }
    }
    if let Some(sm) = resources::service_monitor(&c)
        && let Err(e) =
            apply_dynamic(&ctx.client, &sm, &resources::service_monitor_resource()).await
    {
        conditions.push(Cond::new(
            "Degraded",
            true,
            "ServiceMonitorFailed",
            e.to_string(),
        ));
    }
    if let Some(problem) = grow_claims(&c, ctx).await? {
        conditions.push(Cond::new("Degraded", true, "StorageShrinkRefused", problem));
    }

    // Status.
    let desired = c.spec.replicas;
    let existing: i32 = current.iter().map(|r| r.unwrap_or(0)).sum();
    let is_ready = ready >= desired && !decision.busy && existing == desired && !roll_pending;
    let mut cluster_id = previous.cluster_id.clone();
    if is_ready {
        conditions.extend(rebalance_new_brokers(&c, admin_tls, ctx).await);
        if cluster_id.is_none() {
            let admin = admin_of(&c, ctx, admin_tls);
            match admin.cluster_id().await {
                Ok(id) => cluster_id = id,
                Err(e) => tracing::warn!(error = %e, "cannot read the cluster id"),
            }
        }
    }
    conditions.push(if is_ready {
        Cond::new(
            "Ready",
            true,
            "AllBrokersReady",
            format!("{ready}/{desired} brokers ready"),
        )
    } else if conditions
        .iter()
        .any(|c| c.kind == "ScaleDownBlocked" && c.status)
    {
        Cond::new(
            "Ready",
            false,
            "ScaleDownRefused",
            format!("{ready}/{desired} brokers ready; scale-down refused"),
        )
    } else if roll.rolling() {
        Cond::new(
            "Ready",
            false,
            "Rolling",
            format!("{ready}/{desired} brokers ready; {}", rolling_cond.message),
        )
    } else {
        Cond::new(
            "Ready",
            false,
            "BrokersNotReady",
            format!("{ready}/{desired} brokers ready"),
        )
    });
    // Brokers serve every listener meanwhile (external ones on in-cluster names), so pending
    // external addresses keep the reconcile going without making the cluster unready.
    let addresses_pending = !external.pending.is_empty();
    conditions.push(match (is_ready, addresses_pending) {
        (_, true) => Cond::new(
            "Reconciling",
            true,
            "ExternalAddressesPending",
            format!(
                "no external address yet for {} (brokers advertise the in-cluster name meanwhile \
                 and restart one at a time once it is known)",
                external.pending.join(", ")
            ),
        ),
        (true, false) => Cond::new("Reconciling", false, "Idle", ""),
        (false, false) => Cond::new("Reconciling", true, "InProgress", ""),
    });
    if !conditions.iter().any(|c| c.kind == "ScaleDownBlocked") {
        conditions.push(Cond::new("ScaleDownBlocked", false, "NotBlocked", ""));
    }
    if !conditions.iter().any(|c| c.kind == "Degraded") {
        conditions.push(Cond::new("Degraded", false, "Healthy", ""));
    }
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
            format!("{desired} brokers ready"),
        )
        .await;
    }
    let status = ClusterStatus {
        conditions: merge(
            &previous.conditions,
            &conditions,
            generation,
            Timestamp::now(),
        ),
        observed_generation: generation,
        replicas: existing.max(decision.replicas.iter().sum()),
        ready_replicas: ready,
        selector: Some(names::selector_string(c.name)),
        listeners: listener_status(&c, &bootstrap, &host_ips),
        cluster_id,
        config_hash: Some(hash),
    };
    patch_status(&api, c.name, status).await?;
    tracing::debug!(cluster = %cluster.name_any(), ready, desired, "reconciled");
    Ok(Action::requeue(if is_ready && !addresses_pending {
        IDLE_REQUEUE
    } else if roll_pending {
        ROLL_REQUEUE
    } else {
        BUSY_REQUEUE
    }))
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
                &PostParams::default(),
                &resources::cluster_ca_secret(c, &ca),
            )
            .await?;
            tracing::info!(cluster = c.name, secret = ca_name, "created the cluster CA");
            ca
        }
    };
    apply(&ctx.client, &resources::cluster_ca_cert_secret(c, &ca)).await?;
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
                    &resources::operator_certs_secret(c, ca, keystore.clone()),
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
        &resources::broker_certs_secret(c, ca, keystores, &generations),
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
async fn roll_brokers<F: AdminFactory>(
    c: &ClusterRef<'_>,
    cluster: &Cluster,
    listed: &[Pod],
    sets: &BTreeMap<usize, ZoneSet>,
    voters: &[i32],
    admin_tls: Option<&TlsConfig>,
    ctx: &Context<F>,
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
        match admin.active_controller().await {
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
                .create_subresource("eviction", pod, &PostParams::default(), &eviction)
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
/// cluster keeps its size when the new size would change the controller voters.
async fn decide_scale<F: AdminFactory>(
    c: &ClusterRef<'_>,
    current: &[Option<i32>],
    admin_tls: Option<&TlsConfig>,
    ctx: &Context<F>,
) -> Result<ScaleDecision, Error> {
    let desired = quorum::desired_zone_sizes(c.spec);
    let now: Vec<i32> = (0..desired.len())
        .map(|i| current.get(i).copied().flatten().unwrap_or(0))
        .collect();
    if let Err(refused) = check_quorum_change(&now, &desired) {
        return Ok(ScaleDecision {
            replicas: now,
            conditions: vec![Cond::new(
                "ScaleDownBlocked",
                true,
                "QuorumChangeRefused",
                format!("cannot scale to {} brokers: {refused}", c.spec.replicas),
            )],
            busy: true,
        });
    }
    let mut leaving = Vec::new();
    let mut remaining = Vec::new();
    let mut racks = BTreeMap::new();
    for (i, zone) in c.spec.zones.iter().enumerate() {
        let start = resources::ordinal_start(i);
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
        return Ok(ScaleDecision {
            replicas: desired,
            conditions: Vec::new(),
            busy: false,
        });
    }
    let held: Vec<i32> = desired
        .iter()
        .zip(current)
        .map(|(d, c)| (*d).max(c.unwrap_or(0)))
        .collect();
    let admin = admin_of(c, ctx, admin_tls);
    let partitions = admin.all_partitions().await?;
    if partitions_on(&partitions, &leaving).is_empty() {
        return Ok(ScaleDecision {
            replicas: desired,
            conditions: vec![Cond::new(
                "ScaleDownBlocked",
                false,
                "PartitionsMoved",
                format!("brokers {leaving:?} hold no partitions"),
            )],
            busy: false,
        });
    }
    let voters = quorum::choose_voters(&now);
    let ongoing = admin.ongoing_reassignments().await?;
    match plan_scale_down_step(&partitions, &ongoing, &remaining, &racks, &voters) {
        Err(refused) => Ok(ScaleDecision {
            replicas: held,
            conditions: vec![Cond::new(
                "ScaleDownBlocked",
                true,
                "ScaleDownRefused",
                format!("cannot remove brokers {leaving:?}: {refused}"),
            )],
            busy: true,
        }),
        Ok(step) => {
            if !step.issue.is_empty() {
                admin.reassign_partitions(&step.issue).await?;
            }
            let still = partitions_on(&partitions, &leaving).len();
            Ok(ScaleDecision {
                replicas: held,
                conditions: vec![Cond::new(
                    "ScaleDownBlocked",
                    false,
                    "MovingPartitions",
                    format!(
                        "{still} partitions still have a replica on brokers {leaving:?}: {} \
                         moves in progress, {} issued now",
                        step.in_progress.len(),
                        step.issue.len()
                    ),
                )],
                busy: true,
            })
        }
    }
}

/// After a scale-up, once every broker is ready: when a broker holds no replica at all, spreads
/// replicas onto it. Failures are reported as a condition, not as a failed reconcile, so the
/// rest of the status still gets written.
async fn rebalance_new_brokers<F: AdminFactory>(
    c: &ClusterRef<'_>,
    admin_tls: Option<&TlsConfig>,
    ctx: &Context<F>,
) -> Option<Cond> {
    let brokers = resources::desired_node_ids(c.spec);
    let admin = admin_of(c, ctx, admin_tls);
    let partitions = match admin.all_partitions().await {
        Ok(p) => p,
        Err(e) => {
            return Some(Cond::new(
                "Degraded",
                true,
                "AdminUnavailable",
                e.to_string(),
            ));
        }
    };
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
        for id in resources::zone_node_ids(c.spec, i) {
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

/// Grows the brokers' claims when `spec.storage.size` grew; returns a problem when it shrank.
async fn grow_claims<F: AdminFactory>(
    c: &ClusterRef<'_>,
    ctx: &Context<F>,
) -> Result<Option<String>, Error> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), c.namespace);
    let claims = api
        .list(&ListParams::default().labels(&names::selector_string(c.name)))
        .await?;
    let wanted = &c.spec.storage.size;
    for claim in claims {
        let current = claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone());
        let Some(current) = current else { continue };
        match validate::storage_change(&current, wanted) {
            Ok(true) => {
                let patch =
                    serde_json::json!({"spec": {"resources": {"requests": {"storage": wanted}}}});
                api.patch(
                    &claim.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
            }
            Ok(false) => {}
            Err(problem) => return Ok(Some(problem)),
        }
    }
    Ok(None)
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
