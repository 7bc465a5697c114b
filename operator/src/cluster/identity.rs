//! Who a Cluster is, for everything that builds or names its objects: the `ClusterRef` each
//! builder and plan takes (name, namespace, owner reference, spec, how it replicates) and the
//! node-id arithmetic of its zones. A leaf among the cluster modules, so that the builders,
//! planners and certificate code can all depend on it without an import cycle.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use strait_crds::cluster::REPLICATION_PORT;
use strait_crds::{Cluster, ClusterSpec};

use crate::names;

/// How the brokers of a Cluster talk to each other, and the operator to them, on the
/// replication listener, and the nodes to the metadata quorum on the CONTROLLER listener.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Replication {
    /// `REPLICATION:SSL` and `CONTROLLER:SSL`, client certificates required (every Cluster made
    /// by this version).
    #[default]
    MutualTls,
    /// `REPLICATION:SSL` but `CONTROLLER:PLAINTEXT`: a Cluster whose brokers an operator version
    /// before TLS controllers started (switching the quorum's protocol one broker at a time
    /// would split it).
    MutualTlsPlaintextQuorum,
    /// `REPLICATION:PLAINTEXT` and `CONTROLLER:PLAINTEXT`: a Cluster whose brokers an earlier
    /// operator version started.
    Plaintext,
}

impl Replication {
    /// Whether the replication listener (and the operator's admin client) uses mutual TLS.
    pub fn replication_tls(self) -> bool {
        self != Replication::Plaintext
    }

    /// Whether the CONTROLLER listener (the quorum's gRPC) uses mutual TLS.
    pub fn controller_tls(self) -> bool {
        self == Replication::MutualTls
    }
}

/// Identity of a Cluster the builders need.
#[derive(Clone, Debug)]
pub struct ClusterRef<'a> {
    /// Name.
    pub name: &'a str,
    /// Namespace.
    pub namespace: &'a str,
    /// Owner reference every child carries (so deleting the Cluster deletes them).
    pub owner: Option<OwnerReference>,
    /// Spec.
    pub spec: &'a ClusterSpec,
    /// How its brokers replicate (decided by the controller from the StatefulSets, see
    /// `tls::replication_of`; mutual TLS unless told otherwise).
    pub replication: Replication,
}

impl<'a> ClusterRef<'a> {
    /// From a Cluster object; `None` without name or namespace.
    pub fn of(cluster: &'a Cluster) -> Option<Self> {
        Some(ClusterRef {
            name: cluster.metadata.name.as_deref()?,
            namespace: cluster.metadata.namespace.as_deref()?,
            owner: cluster.controller_owner_ref(&()),
            spec: &cluster.spec,
            replication: Replication::default(),
        })
    }

    pub(crate) fn meta(&self, name: String) -> ObjectMeta {
        self.meta_labelled(name, names::labels(self.name))
    }

    pub(crate) fn meta_labelled(
        &self,
        name: String,
        labels: BTreeMap<String, String>,
    ) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.to_owned()),
            labels: Some(labels),
            owner_references: self.owner.clone().map(|o| vec![o]),
            ..ObjectMeta::default()
        }
    }
}

/// Node ids of the brokers of zone `index`: the StatefulSet ordinals starting at
/// `index * NODE_IDS_PER_ZONE`.
pub fn zone_node_ids(spec: &ClusterSpec, index: usize) -> Vec<i32> {
    let start = ordinal_start(index);
    (0..spec.replicas_in_zone(index))
        .map(|i| start + i)
        .collect()
}

/// First ordinal (node id) of zone `index`.
pub fn ordinal_start(index: usize) -> i32 {
    i32::try_from(index)
        .unwrap_or(0)
        .saturating_mul(strait_crds::cluster::NODE_IDS_PER_ZONE)
}

/// Every desired node id, all zones.
pub fn desired_node_ids(spec: &ClusterSpec) -> Vec<i32> {
    (0..spec.zones.len())
        .flat_map(|i| zone_node_ids(spec, i))
        .collect()
}

/// Node ids of `replicas[i]` brokers in zone `i` (the sizes the StatefulSets get).
pub fn held_node_ids(replicas: &[i32]) -> Vec<i32> {
    replicas
        .iter()
        .enumerate()
        .flat_map(|(i, r)| (0..*r).map(move |k| ordinal_start(i) + k))
        .collect()
}

/// The admin bootstrap address of a Cluster: its bootstrap Service on the replication port.
pub fn admin_bootstrap(name: &str, namespace: &str) -> String {
    format!(
        "{}.{namespace}.svc:{REPLICATION_PORT}",
        names::bootstrap_service(name, None)
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use strait_crds::cluster::{Listener, ListenerType, Storage};

    /// A minimal spec with one internal listener `plain` on 9092.
    pub(crate) fn spec(replicas: i32, zones: &[&str]) -> ClusterSpec {
        ClusterSpec {
            image: None,
            version: None,
            replicas,
            zones: zones.iter().map(|z| (*z).to_owned()).collect(),
            rack_topology_key: None,
            storage: Storage {
                size: "10Gi".into(),
                storage_class: None,
                delete_claim: false,
            },
            resources: None,
            config: BTreeMap::new(),
            listeners: vec![Listener {
                name: "plain".into(),
                port: 9092,
                kind: ListenerType::Internal,
                tls: false,
                authentication: None,
            }],
            authorization: None,
            tiered_storage: None,
            metrics: None,
            template: None,
        }
    }

    pub(crate) fn cref(spec: &ClusterSpec) -> ClusterRef<'_> {
        ClusterRef {
            name: "kafka",
            namespace: "ns",
            owner: None,
            spec,
            replication: Replication::MutualTls,
        }
    }
}
