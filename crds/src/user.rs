//! The `User` resource: a Kafka user (SCRAM-SHA-512 credentials, ACLs and quotas) managed
//! through the Kafka admin API, in the shape of Strimzi's `KafkaUser`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ClusterReference, DeletionPolicy, SecretKeyRef};

/// A Kafka user. The user name is `metadata.name`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "strait.dev",
    version = "v1alpha1",
    kind = "User",
    namespaced,
    status = "UserStatus",
    shortname = "su",
    shortname = "straituser",
    category = "strait",
    doc = "A Kafka user: SCRAM-SHA-512 credentials, ACLs and quotas.",
    derive = "PartialEq",
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".spec.cluster.name",
        description = "Cluster resource"
    ),
    printcolumn(
        name = "Authentication",
        type_ = "string",
        json_path = ".spec.authentication.type",
        description = "Mechanism"
    ),
    printcolumn(
        name = "Secret",
        type_ = "string",
        json_path = ".status.secret",
        description = "Secret with the credentials"
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
#[x_kube(validation = Rule::new("self.cluster == oldSelf.cluster").message("cluster is immutable"))]
#[serde(rename_all = "camelCase")]
pub struct UserSpec {
    /// The cluster the user lives in.
    pub cluster: ClusterReference,
    /// How the user authenticates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<UserAuthentication>,
    /// What the user may do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<UserAuthorization>,
    /// Client quotas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<Quotas>,
    /// Remove the user's credentials, ACLs and quotas from the cluster when this resource is
    /// deleted (`delete`, the default), or keep them (`retain`).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// How a user authenticates: SCRAM credentials (a generated password written into a Secret
/// named like the user, or a password taken from an existing Secret), or a client certificate
/// (`tls`) with subject `CN=<user name>` signed by the Cluster's clients CA, written into a
/// Secret named like the user (`user.crt`, `user.key`, `ca.crt`, as Strimzi does).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new("self.type == 'scram-sha-512' || !has(self.password)").message("password is only for scram-sha-512"))]
#[serde(rename_all = "camelCase")]
pub struct UserAuthentication {
    /// Mechanism.
    #[serde(rename = "type")]
    pub kind: UserAuthenticationType,
    /// Take the password from this Secret key instead of generating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordSource>,
}

/// How a user authenticates.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum UserAuthenticationType {
    /// SCRAM-SHA-512 credentials; the principal is `User:<user name>`.
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    /// A client certificate from the Cluster's clients CA; the principal is
    /// `User:CN=<user name>`.
    #[serde(rename = "tls")]
    Tls,
}

/// Where a password comes from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSource {
    /// A Secret key.
    pub value_from: PasswordValueFrom,
}

/// A Secret key holding a password.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordValueFrom {
    /// The Secret key.
    pub secret_key_ref: SecretKeyRef,
}

/// Simple ACL authorization of the user.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserAuthorization {
    /// Authorizer.
    #[serde(rename = "type")]
    pub kind: crate::cluster::AuthorizationType,
    /// ACL rules.
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub acls: Vec<AclRule>,
}

/// One ACL rule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new("self.resource.type == 'cluster' || has(self.resource.name)").message("resource.name is required except for the cluster resource"))]
#[serde(rename_all = "camelCase")]
pub struct AclRule {
    /// The resource the rule covers.
    pub resource: AclResource,
    /// Operations allowed or denied.
    #[schemars(length(min = 1, max = 16))]
    pub operations: Vec<AclOperation>,
    /// Allow or deny.
    #[serde(rename = "type", default)]
    pub kind: AclType,
    /// Client host the rule applies to (`*` for any).
    #[serde(default = "any_host")]
    pub host: String,
}

fn any_host() -> String {
    "*".to_owned()
}

/// The resource of an ACL rule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AclResource {
    /// Resource type.
    #[serde(rename = "type")]
    pub kind: AclResourceType,
    /// Resource name (or prefix); not used for `cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249))]
    pub name: Option<String>,
    /// How `name` matches.
    #[serde(default)]
    pub pattern_type: AclPatternType,
}

/// ACL resource types.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AclResourceType {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
    /// The cluster.
    Cluster,
    /// A transactional id.
    TransactionalId,
}

/// How an ACL resource name matches.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AclPatternType {
    /// Exactly the name (`*` for all).
    #[default]
    Literal,
    /// Every name starting with it.
    Prefix,
}

/// ACL operations (Kafka's names).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum AclOperation {
    /// Any operation.
    All,
    /// Read.
    Read,
    /// Write.
    Write,
    /// Create.
    Create,
    /// Delete.
    Delete,
    /// Alter.
    Alter,
    /// Describe.
    Describe,
    /// ClusterAction.
    ClusterAction,
    /// DescribeConfigs.
    DescribeConfigs,
    /// AlterConfigs.
    AlterConfigs,
    /// IdempotentWrite.
    IdempotentWrite,
}

/// Allow or deny.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AclType {
    /// Allow.
    #[default]
    Allow,
    /// Deny.
    Deny,
}

/// Client quotas (Kafka's `producer_byte_rate`, `consumer_byte_rate`, `request_percentage`,
/// `controller_mutation_rate`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Quotas {
    /// Bytes per second a producer may send per broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub producer_byte_rate: Option<i64>,
    /// Bytes per second a consumer may fetch per broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub consumer_byte_rate: Option<i64>,
    /// Percentage of request handler time per broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub request_percentage: Option<i32>,
    /// Partition mutations per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub controller_mutation_rate: Option<f64>,
}

/// Observed state of a User.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserStatus {
    /// `Ready` and problems.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The Kafka user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The Secret holding the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}
