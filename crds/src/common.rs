//! Types shared by several resources: references to a cluster and to Secret keys, SCRAM
//! client credentials, deletion policy.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A key inside a Secret in the resource's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Which Kafka cluster a Topic or User belongs to: a Strait `Cluster` in the same namespace,
/// or any Kafka-compatible cluster by its bootstrap servers.
// Every string below is bounded: the `cluster == oldSelf.cluster` rules compare the whole object,
// and the API server's CEL cost estimate takes unbounded strings as 3 MiB long.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.name) != has(self.bootstrapServers)").message("set exactly one of name and bootstrapServers"))]
#[serde(rename_all = "camelCase")]
pub struct ClusterReference {
    /// Name of a `Cluster` resource in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub name: Option<String>,
    /// Bootstrap servers (`host:port,host:port`) of any Kafka-compatible cluster, at most 2048
    /// characters (seven entries with 253-character host names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 2048),
        regex(pattern = r"^[^,:\s]+:[0-9]{1,5}(,[^,:\s]+:[0-9]{1,5})*$")
    )]
    pub bootstrap_servers: Option<String>,
    /// Credentials the operator uses for the admin API of that cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<ClientAuthentication>,
}

/// SASL credentials the operator authenticates with.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientAuthentication {
    /// SASL mechanism.
    #[serde(rename = "type")]
    pub kind: ScramMechanism,
    /// SASL user name; at most 253 characters, as a `User` is named by its resource name.
    #[schemars(length(min = 1, max = 253))]
    pub username: String,
    /// Secret key holding the password.
    pub password_secret: SecretKeyRef,
}

/// The SCRAM mechanism (Kafka's `SCRAM-SHA-512`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ScramMechanism {
    /// SCRAM-SHA-512.
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
}

/// What happens to the Kafka object when its Kubernetes resource is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeletionPolicy {
    /// Delete it from the cluster.
    #[default]
    Delete,
    /// Leave it in the cluster.
    Retain,
}
