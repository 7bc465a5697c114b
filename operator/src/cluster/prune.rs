//! Which objects of a Cluster to delete once nothing uses them, as pure functions of what the
//! API server listed: the Services of external listeners (a per-broker Service is a paid cloud
//! load balancer or a node port) left by a scale-down or by a listener removed or made
//! `internal`, and, with `storage.deleteClaim`, the data claims of removed brokers.
//!
//! A broker advertises its per-broker Service's address until it stops, so an object of broker
//! N goes only once N's pod is gone and its zone's StatefulSet has observed a spec without N
//! (it will not be recreated). A Service whose listener went while its broker stays goes once
//! that broker's pod runs the current revision (a template without the listener); a listener's
//! bootstrap Service once every broker does. Objects are recognised exactly: this cluster's
//! label, the operator's label, the name the builders give them and, for Services, an owner
//! reference to this Cluster; anything else (another cluster's, a user's) is never selected.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::cluster::identity::ordinal_start;
use crate::cluster::quorum::zone_of;
use crate::cluster::roll::{BrokerPod, ZoneSet};
use crate::names;

/// The brokers as the controller saw them after applying the StatefulSets.
#[derive(Clone, Copy, Debug)]
pub struct Brokers<'a> {
    /// The broker pods listed (any phase, terminating ones included).
    pub pods: &'a [BrokerPod],
    /// Each zone's StatefulSet as applied, by zone index.
    pub sets: &'a BTreeMap<usize, ZoneSet>,
}

impl Brokers<'_> {
    /// The zone's StatefulSet has observed its latest spec (its revision is known).
    fn observed(&self, zone: usize) -> Option<&str> {
        self.sets.get(&zone)?.update_revision.as_deref()
    }

    /// Broker `node_id` is within its zone's StatefulSet as applied.
    fn held(&self, node_id: i32) -> bool {
        let zone = zone_of(node_id);
        let start = ordinal_start(zone);
        self.sets
            .get(&zone)
            .is_some_and(|s| node_id >= start && node_id - start < s.replicas)
    }

    fn pods_of(&self, node_id: i32) -> impl Iterator<Item = &BrokerPod> {
        self.pods.iter().filter(move |p| p.node_id == node_id)
    }

    /// Broker `node_id` has been removed: no pod of it exists, and its zone's StatefulSet has
    /// observed a spec without it, so none will be created.
    pub fn removed(&self, node_id: i32) -> bool {
        self.observed(zone_of(node_id)).is_some()
            && !self.held(node_id)
            && self.pods_of(node_id).next().is_none()
    }

    /// A pod runs its zone's current revision (the template just applied).
    fn current(&self, pod: &BrokerPod) -> bool {
        matches!(
            (self.observed(pod.zone), pod.revision.as_deref()),
            (Some(want), Some(have)) if want == have
        )
    }

    /// Broker `node_id` no longer runs a template older than the one just applied: removed, or
    /// kept with every pod of it on the current revision.
    pub fn current_or_removed(&self, node_id: i32) -> bool {
        if self.removed(node_id) {
            return true;
        }
        let mut pods = self.pods_of(node_id).peekable();
        self.held(node_id) && pods.peek().is_some() && pods.all(|p| self.current(p))
    }

    /// Every broker pod runs its zone's current revision and every StatefulSet has observed
    /// its spec.
    pub fn all_current(&self) -> bool {
        self.sets.values().all(|s| s.update_revision.is_some())
            && self.pods.iter().all(|p| self.current(p))
    }
}

fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

/// This cluster's, created by the operator, not already being deleted.
fn ours(meta: &ObjectMeta, cluster: &str) -> bool {
    label(meta, names::CLUSTER_LABEL) == Some(cluster)
        && meta.deletion_timestamp.is_none()
        && meta.name.is_some()
}

/// The Services of external listeners to delete: those listed (by
/// [`names::listener_services_selector`]) that the builders no longer produce (`desired`
/// holds the names of the bootstrap and per-broker Services just applied) and that no broker
/// can still be using (see the module docs). `owner_uid` is the Cluster's uid: a Service
/// without an owner reference to it is never deleted.
pub fn services_to_delete(
    cluster: &str,
    owner_uid: &str,
    listed: &[Service],
    desired: &BTreeSet<String>,
    brokers: &Brokers,
) -> Vec<String> {
    let mut out = Vec::new();
    for svc in listed {
        let meta = &svc.metadata;
        let Some(name) = meta.name.as_deref() else {
            continue;
        };
        let owned = meta
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.uid == owner_uid);
        if !ours(meta, cluster)
            || label(meta, names::MANAGED_BY_LABEL) != Some(names::MANAGER)
            || !owned
            || desired.contains(name)
        {
            continue;
        }
        let Some(listener) = label(meta, names::LISTENER_LABEL) else {
            continue;
        };
        let unused = match label(meta, names::NODE_ID_LABEL) {
            None => {
                name == names::bootstrap_service(cluster, Some(listener)) && brokers.all_current()
            }
            Some(id) => id.parse::<i32>().is_ok_and(|id| {
                name == names::broker_service(cluster, listener, id)
                    && brokers.current_or_removed(id)
            }),
        };
        if unused {
            out.push(name.to_owned());
        }
    }
    out.sort();
    out
}

/// `(zone index, node id)` of a data claim named `data-<cluster>-z<zone>-<node id>` (exactly
/// as [`names::claim`] writes it, the node id in that zone's range).
fn claim_broker(cluster: &str, name: &str) -> Option<(usize, i32)> {
    let rest = name
        .strip_prefix(names::DATA_VOLUME)?
        .strip_prefix('-')?
        .strip_prefix(cluster)?
        .strip_prefix("-z")?;
    let (zone, id) = rest.split_once('-')?;
    let (zone, id) = (zone.parse::<usize>().ok()?, id.parse::<i32>().ok()?);
    (zone_of(id) == zone && names::claim(cluster, zone, id) == name).then_some((zone, id))
}

/// The data claims of removed brokers to delete: none unless `delete_claim`
/// (`spec.storage.deleteClaim`); else the claims listed (by the cluster's selector labels)
/// whose broker has been removed ([`Brokers::removed`]). The StatefulSets' claim retention
/// policy asks Kubernetes for the same, but it works through the pods it condemns (each becomes
/// the owner of its claim before it is deleted): a broker whose pod was already gone when its
/// StatefulSet shrank can keep its claim.
pub fn claims_to_delete(
    cluster: &str,
    delete_claim: bool,
    listed: &[PersistentVolumeClaim],
    brokers: &Brokers,
) -> Vec<String> {
    if !delete_claim {
        return Vec::new();
    }
    let mut out: Vec<String> = listed
        .iter()
        .filter(|c| ours(&c.metadata, cluster))
        .filter_map(|c| {
            let name = c.metadata.name.as_deref()?;
            let (_, id) = claim_broker(cluster, name)?;
            brokers.removed(id).then(|| name.to_owned())
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

    const UID: &str = "cluster-uid";

    fn pod(node_id: i32, revision: &str) -> BrokerPod {
        let zone = zone_of(node_id);
        BrokerPod {
            name: names::pod("kafka", zone, node_id),
            node_id,
            zone,
            ready: true,
            terminating: false,
            revision: Some(revision.to_owned()),
        }
    }

    /// Zone StatefulSets with `replicas[i]` brokers at revision `rev` (`None`: not observed).
    fn sets(replicas: &[i32], rev: Option<&str>) -> BTreeMap<usize, ZoneSet> {
        replicas
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (
                    i,
                    ZoneSet {
                        replicas: *r,
                        update_revision: rev.map(str::to_owned),
                    },
                )
            })
            .collect()
    }

    fn owner(uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "strait.dev/v1alpha1".into(),
            kind: "Cluster".into(),
            name: "kafka".into(),
            uid: uid.into(),
            controller: Some(true),
            ..OwnerReference::default()
        }
    }

    fn svc(name: &str, labels: BTreeMap<String, String>, uid: &str) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels),
                owner_references: Some(vec![owner(uid)]),
                ..ObjectMeta::default()
            },
            ..Service::default()
        }
    }

    fn per_broker(listener: &str, id: i32) -> Service {
        svc(
            &names::broker_service("kafka", listener, id),
            names::listener_service_labels("kafka", listener, Some(id)),
            UID,
        )
    }

    fn bootstrap(listener: &str) -> Service {
        svc(
            &names::bootstrap_service("kafka", Some(listener)),
            names::listener_service_labels("kafka", listener, None),
            UID,
        )
    }

    fn names_of(services: &[Service]) -> BTreeSet<String> {
        services
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect()
    }

    #[test]
    fn a_removed_brokers_service_goes_once_its_pod_is_gone() {
        // 4 → 3 brokers: zone 0 went from 2 to 1, broker 1 leaves.
        let listed = vec![
            per_broker("ext", 0),
            per_broker("ext", 1),
            per_broker("ext", 1000),
        ];
        let desired = names_of(&[per_broker("ext", 0), per_broker("ext", 1000)]);
        let shrunk = sets(&[1, 1], Some("r"));
        // The pod is still there (terminating, or not yet deleted): its address must stay.
        let pods = vec![pod(0, "r"), pod(1, "r"), pod(1000, "r")];
        let brokers = Brokers {
            pods: &pods,
            sets: &shrunk,
        };
        assert!(services_to_delete("kafka", UID, &listed, &desired, &brokers).is_empty());
        // Gone.
        let pods = vec![pod(0, "r"), pod(1000, "r")];
        let brokers = Brokers {
            pods: &pods,
            sets: &shrunk,
        };
        assert_eq!(
            services_to_delete("kafka", UID, &listed, &desired, &brokers),
            ["kafka-ext-1"]
        );
        // Gone, but the StatefulSet has not observed the smaller spec: it might recreate it.
        let unobserved = sets(&[1, 1], None);
        let brokers = Brokers {
            pods: &pods,
            sets: &unobserved,
        };
        assert!(services_to_delete("kafka", UID, &listed, &desired, &brokers).is_empty());
        // Still held (partitions moving off it): its pod missing for a moment changes nothing.
        let held = sets(&[2, 1], Some("r"));
        let brokers = Brokers {
            pods: &pods,
            sets: &held,
        };
        assert!(services_to_delete("kafka", UID, &listed, &desired, &brokers).is_empty());
    }

    #[test]
    fn a_removed_listeners_services_go_once_brokers_run_without_it() {
        // Listener `ext` became internal (or was removed): nothing of it is desired any more.
        let listed = vec![
            per_broker("ext", 0),
            per_broker("ext", 1000),
            bootstrap("ext"),
        ];
        let desired = BTreeSet::new();
        let applied = sets(&[1, 1], Some("new"));
        // Broker 0 has restarted on the new template, 1000 not yet.
        let pods = vec![pod(0, "new"), pod(1000, "old")];
        let brokers = Brokers {
            pods: &pods,
            sets: &applied,
        };
        assert_eq!(
            services_to_delete("kafka", UID, &listed, &desired, &brokers),
            ["kafka-ext-0"]
        );
        // All restarted: the rest, bootstrap included.
        let pods = vec![pod(0, "new"), pod(1000, "new")];
        let brokers = Brokers {
            pods: &pods,
            sets: &applied,
        };
        assert_eq!(
            services_to_delete("kafka", UID, &listed, &desired, &brokers),
            ["kafka-ext-0", "kafka-ext-1000", "kafka-ext-bootstrap"]
        );
        // Revisions unknown (the StatefulSets have not observed the new template): nothing.
        let unobserved = sets(&[1, 1], None);
        let brokers = Brokers {
            pods: &pods,
            sets: &unobserved,
        };
        assert!(services_to_delete("kafka", UID, &listed, &desired, &brokers).is_empty());
    }

    #[test]
    fn only_this_clusters_operator_owned_services_are_selected() {
        let gone_sets = sets(&[1], Some("r"));
        let pods = vec![pod(0, "r")];
        let brokers = Brokers {
            pods: &pods,
            sets: &gone_sets,
        };
        let desired = BTreeSet::new();
        let mut other_cluster = per_broker("ext", 5);
        other_cluster
            .metadata
            .labels
            .as_mut()
            .map(|l| l.insert(names::CLUSTER_LABEL.into(), "other".into()));
        let foreign_owner = svc(
            "kafka-ext-6",
            names::listener_service_labels("kafka", "ext", Some(6)),
            "someone-else",
        );
        let mut users = names::listener_service_labels("kafka", "ext", Some(7));
        users.insert(names::MANAGED_BY_LABEL.into(), "Helm".into());
        let user_managed = svc("kafka-ext-7", users, UID);
        // Labels naming another broker than the name does.
        let mismatched = svc(
            "kafka-ext-8",
            names::listener_service_labels("kafka", "ext", Some(9)),
            UID,
        );
        let mut deleting = per_broker("ext", 10);
        deleting.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        let no_owner = Service {
            metadata: ObjectMeta {
                owner_references: None,
                ..per_broker("ext", 11).metadata
            },
            ..Service::default()
        };
        let listed = vec![
            other_cluster,
            foreign_owner,
            user_managed,
            mismatched,
            deleting,
            no_owner,
            per_broker("ext", 12),
        ];
        assert_eq!(
            services_to_delete("kafka", UID, &listed, &desired, &brokers),
            ["kafka-ext-12"]
        );
    }

    fn claim(name: &str, cluster_label: &str) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(names::selector_labels(cluster_label)),
                ..ObjectMeta::default()
            },
            ..PersistentVolumeClaim::default()
        }
    }

    #[test]
    fn removed_brokers_claims_go_only_with_delete_claim() {
        let listed = vec![
            claim("data-kafka-z0-0", "kafka"),
            claim("data-kafka-z0-1", "kafka"),
            claim("data-kafka-z1-1000", "kafka"),
            claim("data-kafka-z1-1001", "kafka"),
            // Not ours: another cluster's, or a name the StatefulSets never give.
            claim("data-kafka-z0-2", "other"),
            claim("data-kafka-z0-1001", "kafka"),
            claim("data-kafka-z0-01", "kafka"),
            claim("logs-kafka-z0-1", "kafka"),
        ];
        let shrunk = sets(&[1, 1], Some("r"));
        let pods = vec![pod(0, "r"), pod(1000, "r"), pod(1001, "r")];
        let brokers = Brokers {
            pods: &pods,
            sets: &shrunk,
        };
        // 1001's pod is still terminating.
        assert_eq!(
            claims_to_delete("kafka", true, &listed, &brokers),
            ["data-kafka-z0-1"]
        );
        assert!(claims_to_delete("kafka", false, &listed, &brokers).is_empty());
        // Kept brokers' claims stay even while their pod is away (a restart).
        let pods = vec![];
        let brokers = Brokers {
            pods: &pods,
            sets: &shrunk,
        };
        assert_eq!(
            claims_to_delete("kafka", true, &listed, &brokers),
            ["data-kafka-z0-1", "data-kafka-z1-1001"]
        );
    }

    #[test]
    fn claim_names_parse_exactly() {
        assert_eq!(claim_broker("kafka", "data-kafka-z1-1002"), Some((1, 1002)));
        assert_eq!(claim_broker("kafka", "data-kafka-z1-2"), None);
        assert_eq!(claim_broker("kafka", "data-kafka-z-1-2"), None);
        // Cluster `kafka-z0` is a different cluster from `kafka`.
        assert_eq!(claim_broker("kafka", "data-kafka-z0-z0-1"), None);
        assert_eq!(claim_broker("kafka-z0", "data-kafka-z0-z0-1"), Some((0, 1)));
    }
}
