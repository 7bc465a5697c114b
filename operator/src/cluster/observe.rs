//! The observe stage of a Cluster reconcile: the reads the plan decides from, made before
//! anything is written, into one [`Observed`]. (The certificate, clean-up and claim steps read
//! the objects they rewrite right before writing them; see `issue` and `apply`.)

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, ObjectList};

use crate::cluster::identity::{ClusterRef, Replication};
use crate::cluster::{roll, status, storage, tls};
use crate::context::{AdminFactory, Context};
use crate::error::Error;
use crate::names;

/// What the Kubernetes API holds of a Cluster at the start of a pass.
pub struct Observed {
    /// Every StatefulSet with the Cluster's labels, zones removed from `spec.zones` included.
    pub zone_sets: ObjectList<StatefulSet>,
    /// The pods with the Cluster's labels. Listed before anything is applied: the nodes of the
    /// broker pods go into the certificates of nodeport TLS listeners, and the roll and the
    /// clean-up use the same list (a pod that leaves is thus kept in mind one reconcile
    /// longer, never shorter).
    pub pods: Vec<Pod>,
    /// Each zone's StatefulSet by zone index, unless it is gone or being deleted.
    pub live: BTreeMap<usize, StatefulSet>,
    /// Each zone's StatefulSet as the storage plan sees it.
    pub zone_states: Vec<storage::ZoneState>,
    /// Brokers each zone has: its StatefulSet's `spec.replicas`, or, for a zone whose
    /// StatefulSet is gone or going (recreated for a new claim template, see `storage`), the
    /// brokers its orphaned pods are, so that nothing takes it for an empty zone.
    pub current: Vec<Option<i32>>,
    /// Ready brokers, counted the same way.
    pub ready: i32,
    /// Zone StatefulSets still on the `RollingUpdate` strategy (see `roll`).
    pub migrate: Vec<String>,
    /// How the brokers replicate: brokers of an earlier version keep replicating in plaintext
    /// (see `tls::replication_of`); orphaned pods tell for a zone whose StatefulSet is being
    /// recreated.
    pub replication: Replication,
    /// Why pods cannot be created (asked only while brokers are missing).
    pub pod_failures: Vec<String>,
}

impl Observed {
    /// The broker counts the status reports.
    pub fn brokers(&self) -> status::BrokerCount {
        status::BrokerCount {
            existing: self.current.iter().map(|r| r.unwrap_or(0)).sum(),
            ready: self.ready,
        }
    }
}

/// Reads what Cluster `c` has; `step` names the read under way, for a failure.
pub async fn observe<F: AdminFactory>(
    c: &ClusterRef<'_>,
    ctx: &Context<F>,
    step: &mut &'static str,
) -> Result<Observed, Error> {
    *step = "reading the zone StatefulSets";
    let sts_api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), c.namespace);
    let selector = ListParams::default().labels(&names::selector_string(c.name));
    let zone_sets = sts_api.list(&selector).await?;
    *step = "reading the brokers";
    let pods: Vec<Pod> = Api::<Pod>::namespaced(ctx.client.clone(), c.namespace)
        .list(&selector)
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
    let mut orphan_replication = Replication::MutualTls;
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
                orphan_replication = pods
                    .iter()
                    .filter(|p| roll::broker_pod(c.name, p).is_some_and(|b| b.zone == i))
                    .map(tls::pod_replication)
                    .fold(orphan_replication, tls::weakest);
                zone_states.push(if terminating.is_some() {
                    storage::ZoneState::Terminating
                } else {
                    storage::ZoneState::Absent
                });
            }
        }
    }
    let pod_failures = if ready < c.spec.replicas {
        let events = failed_create_events(c, ctx).await;
        status::creation_failures(
            &live.values().cloned().collect::<Vec<_>>(),
            &events,
            Timestamp::now(),
        )
    } else {
        Vec::new()
    };
    let replication = tls::weakest(orphan_replication, tls::replication_of(live.values()));
    Ok(Observed {
        zone_sets,
        pods,
        live,
        zone_states,
        current,
        ready,
        migrate,
        replication,
        pod_failures,
    })
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
