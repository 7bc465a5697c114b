//! The `Topic` resource: a Kafka topic managed through the Kafka admin API, in a Strait
//! `Cluster` or any Kafka-compatible cluster.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ClusterReference, DeletionPolicy};

/// A Kafka topic. Partitions can grow but never shrink; the replication factor of an existing
/// topic is not changed (a condition reports the difference).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "strait.dev",
    version = "v1alpha1",
    kind = "Topic",
    namespaced,
    status = "TopicStatus",
    shortname = "st",
    shortname = "straittopic",
    category = "strait",
    doc = "A Kafka topic managed through the Kafka admin API.",
    derive = "PartialEq",
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".spec.cluster.name",
        description = "Cluster resource"
    ),
    printcolumn(
        name = "Partitions",
        type_ = "integer",
        json_path = ".spec.partitions",
        description = "Partitions wanted"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Replication factor"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Ready condition"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("has(self.topicName) == has(oldSelf.topicName) && (!has(self.topicName) || self.topicName == oldSelf.topicName)").message("topicName is immutable"))]
#[x_kube(validation = Rule::new("self.cluster == oldSelf.cluster").message("cluster is immutable"))]
#[serde(rename_all = "camelCase")]
pub struct TopicSpec {
    /// The cluster the topic lives in.
    pub cluster: ClusterReference,
    /// Kafka topic name; defaults to `metadata.name`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 249),
        regex(pattern = r"^[a-zA-Z0-9._-]{1,249}$")
    )]
    pub topic_name: Option<String>,
    /// Number of partitions; may grow, never shrink.
    #[schemars(range(min = 1, max = 100000))]
    pub partitions: i32,
    /// Replication factor.
    #[schemars(range(min = 1, max = 32767))]
    pub replicas: i32,
    /// Topic configuration with Kafka's key names (`retention.ms`, `cleanup.policy`, ...).
    /// Values are strings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Delete the Kafka topic when this resource is deleted (`delete`, the default), or keep it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// Observed state of a Topic.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    /// `Ready`, `PartitionDecreaseRefused`, `ReplicationFactorDiffers`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The Kafka topic name in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    /// The Kafka topic id (UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    /// Partitions the cluster reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    /// Replication factor the cluster reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Topic configs the operator set, as the cluster reports them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

impl Topic {
    /// The Kafka topic name: `spec.topicName`, else the resource name.
    pub fn kafka_name(&self) -> Option<&str> {
        self.spec
            .topic_name
            .as_deref()
            .or(self.metadata.name.as_deref())
    }
}
