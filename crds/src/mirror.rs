//! The `Mirror` resource: cross-cluster replication into a Strait `Cluster` by `strait-mirror`
//! (MirrorMaker 2 compatible), run by the operator as a Deployment from a rendered
//! `mm2.properties`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cluster::ServiceMonitorSpec;
use crate::common::SecretKeyRef;

/// Cross-cluster replication of topics (and consumer group offsets) from a source cluster into
/// a Strait `Cluster`.
// Every string a rule reads is bounded (see `crate::cel_cost`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "strait.dev",
    version = "v1alpha1",
    kind = "Mirror",
    namespaced,
    status = "MirrorStatus",
    shortname = "smr",
    shortname = "straitmirror",
    category = "strait",
    doc = "Cross-cluster replication into a Strait Cluster, run by strait-mirror (MirrorMaker 2 compatible).",
    derive = "PartialEq",
    printcolumn(
        name = "Source",
        type_ = "string",
        json_path = ".status.sourceAlias",
        description = "Source cluster alias"
    ),
    printcolumn(
        name = "Target",
        type_ = "string",
        json_path = ".spec.target.clusterRef.name",
        description = "Target Cluster resource"
    ),
    printcolumn(
        name = "Mode",
        type_ = "string",
        json_path = ".spec.mode",
        description = "mm2 or linked"
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
#[serde(rename_all = "camelCase")]
pub struct MirrorSpec {
    /// Where records come from: a Strait `Cluster` or any Kafka-compatible cluster.
    pub source: MirrorSource,
    /// Alias of the source cluster in `mm2.properties` and in mirrored topic names
    /// (`<sourceAlias>.<topic>` with the default replication policy); no dots, as it prefixes
    /// property keys. Defaults to the source
    /// Cluster's name, or `source` for bootstrap servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
    )]
    pub source_alias: Option<String>,
    /// The Strait `Cluster` records are written to.
    pub target: MirrorTarget,
    /// Alias of the target cluster; defaults to the target Cluster's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
    )]
    pub target_alias: Option<String>,
    /// `mm2` (MirrorMaker 2 compatible, the default: any source, translated offsets) or
    /// `linked` (offset-preserving, read-only mirror topics on the Strait target, consumer group
    /// offsets copied 1:1; rendered as `mirror.mode=linked`).
    #[serde(default)]
    pub mode: MirrorMode,
    /// Regular expressions (full match) of the source topics to mirror; empty: every topic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub topics: Vec<String>,
    /// Regular expressions of source topics never mirrored; empty: MirrorMaker 2's default
    /// (`.*[-.]internal`, `.*\.replica`, `__.*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub topics_exclude: Vec<String>,
    /// Regular expressions of consumer groups whose offsets are checkpointed; empty: every
    /// group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub groups: Vec<String>,
    /// Regular expressions of consumer groups left out; empty: MirrorMaker 2's default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub groups_exclude: Vec<String>,
    /// How mirrored topics are named: `default` (`<sourceAlias><separator><topic>`) or
    /// `identity` (the source name).
    #[serde(default)]
    pub replication_policy: ReplicationPolicy,
    /// Separator of the default replication policy (MirrorMaker 2's default: `.`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 8), regex(pattern = r"^[A-Za-z0-9._-]{1,8}$"))]
    pub separator: Option<String>,
    /// Replication factor of the topics created on the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 32767))]
    pub replication_factor: Option<i32>,
    /// Copy topic configurations to the mirrored topics (MirrorMaker 2's default: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_topic_configs: Option<bool>,
    /// Write translated offsets into the target's consumer groups while they are inactive
    /// (MirrorMaker 2's default: false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_group_offsets: Option<bool>,
    /// How often new topics and partitions of the source are looked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub refresh_topics_interval_seconds: Option<i32>,
    /// How often consumer group checkpoints are emitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub emit_checkpoints_interval_seconds: Option<i32>,
    /// Mirror processes; they share the partitions through a consumer group on the source.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 16))]
    pub replicas: i32,
    /// Image with the `strait-mirror` binary; defaults to the Strait broker image of the
    /// operator's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub image: Option<String>,
    /// CPU and memory of each mirror process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Fail over to the target (linked mode only; refused with mm2): the operator scales the
    /// mirror Deployment to 0 and runs `strait-mirror --failover` once as the Job
    /// `<mirror>-failover`, which makes the mirror topics writable. Progress is in
    /// `status.failover`. Once completed it is permanent: setting this back to false does not
    /// resume mirroring (fail back with a new Mirror in the other direction). Set back to false
    /// before it completes, the Job is deleted and mirroring resumes.
    #[serde(default)]
    pub failover: bool,
    /// Extra `mm2.properties` keys and values. Keys the operator renders from the fields above
    /// (cluster addresses, security, topic and group selection, policy) are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 128))]
    pub config: BTreeMap<String, String>,
    /// A prometheus-operator PodMonitor for the mirror's metrics port (9404).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_monitor: Option<ServiceMonitorSpec>,
}

fn one() -> i32 {
    1
}

/// The source: exactly one of a Strait `Cluster` in the same namespace and bootstrap servers;
/// `tls` only with bootstrap servers (a Cluster's listener says whether it uses TLS).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.clusterRef) != has(self.bootstrapServers)").message("set exactly one of clusterRef and bootstrapServers"))]
#[x_kube(validation = Rule::new("!has(self.clusterRef) || !has(self.tls)").message("tls is only for bootstrapServers; a Cluster's listener decides TLS and its CA"))]
#[serde(rename_all = "camelCase")]
pub struct MirrorSource {
    /// A Strait `Cluster` in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ref: Option<MirrorClusterRef>,
    /// Bootstrap servers (`host:port,host:port`) of any Kafka-compatible cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 2048),
        regex(pattern = r"^[^,:\s]+:[0-9]{1,5}(,[^,:\s]+:[0-9]{1,5})*$")
    )]
    pub bootstrap_servers: Option<String>,
    /// Connect over TLS, trusting the CA certificate (PEM) in this Secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<MirrorTls>,
    /// SASL credentials (also for a Cluster listener with `scram-sha-512` authentication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<MirrorSasl>,
}

/// The target: a Strait `Cluster` in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MirrorTarget {
    /// The Cluster.
    pub cluster_ref: MirrorClusterRef,
    /// SASL credentials for a listener with `scram-sha-512` authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<MirrorSasl>,
}

/// A Strait `Cluster` in the same namespace and the listener the mirror connects to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MirrorClusterRef {
    /// Name of the Cluster resource.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Name of one of its listeners; defaults to the first internal listener without
    /// authentication, else the first internal one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 15))]
    pub listener: Option<String>,
}

/// TLS to a cluster given by bootstrap servers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MirrorTls {
    /// The CA certificate (PEM) that signed the brokers' certificates.
    pub ca_cert: SecretKeyRef,
}

/// SASL credentials; the password stays in its Secret (passed to the mirror as an environment
/// variable, never written into the ConfigMap).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MirrorSasl {
    /// SASL mechanism.
    pub mechanism: SaslMechanism,
    /// User name.
    #[schemars(length(min = 1, max = 253))]
    pub username: String,
    /// Secret key holding the password.
    pub password_secret: SecretKeyRef,
}

/// SASL mechanisms the mirror logs in with (Kafka's names).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SaslMechanism {
    /// PLAIN.
    #[serde(rename = "PLAIN")]
    Plain,
    /// SCRAM-SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// SCRAM-SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// Kafka's name of the mechanism (`sasl.mechanism`).
    pub fn kafka_name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// How records are mirrored.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MirrorMode {
    /// MirrorMaker 2 compatible: any source, translated offsets.
    #[default]
    Mm2,
    /// Offset-preserving mirror topics on a Strait target.
    Linked,
}

/// How mirrored topics are named (MirrorMaker 2's replication policies).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReplicationPolicy {
    /// `DefaultReplicationPolicy`: `<sourceAlias><separator><topic>`.
    #[default]
    Default,
    /// `IdentityReplicationPolicy`: the source topic's name.
    Identity,
}

/// Observed state of a Mirror.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MirrorStatus {
    /// `Ready`, `Reconciling` and `Failed`, with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The source alias in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_alias: Option<String>,
    /// Hash of the rendered `mm2.properties` the Deployment runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// Mirrored topics and their lag, as the operator last measured it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<MirroredTopic>,
    /// When the lag was last measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// The failover, once asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailoverStatus>,
}

/// One mirrored topic.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MirroredTopic {
    /// Source topic.
    pub name: String,
    /// Topic on the target.
    pub target_topic: String,
    /// Records on the source not yet on the target: the sum over partitions of the source's
    /// high watermark minus the target's.
    pub lag_records: i64,
}

/// The state of a failover.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverStatus {
    /// Whether `spec.failover` asks for it.
    pub requested: bool,
    /// When it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// `Refused` (not linked mode), `Pending` (Job not created yet), `InProgress` (the Job
    /// runs), `Completed` (permanent), `Failed` (the Job failed for good) or `Withdrawn`
    /// (`spec.failover` set back to false before it completed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// What the state means: the Job, its failed attempts, why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Mirror {
    /// The source alias: `spec.sourceAlias`, else the source Cluster's name, else `source`.
    pub fn source_alias(&self) -> &str {
        self.spec
            .source_alias
            .as_deref()
            .or(self
                .spec
                .source
                .cluster_ref
                .as_ref()
                .map(|c| c.name.as_str()))
            .unwrap_or("source")
    }

    /// The target alias: `spec.targetAlias`, else the target Cluster's name.
    pub fn target_alias(&self) -> &str {
        self.spec
            .target_alias
            .as_deref()
            .unwrap_or(&self.spec.target.cluster_ref.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use serde_json::{Value, json};

    /// The `spec.source` node of the generated CRD's schema.
    fn source_schema() -> Value {
        let crd = serde_json::to_value(Mirror::crd()).unwrap_or(Value::Null);
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["source"]
            .clone()
    }

    /// The messages of the rules on `spec.source` that `source` breaks, each rule evaluated
    /// by a CEL interpreter with `self` bound to `source`, as the API server does.
    fn refusals(source: &Value) -> Vec<String> {
        let schema = source_schema();
        let rules = schema["x-kubernetes-validations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(rules.len() >= 2, "rules on spec.source: {rules:?}");
        let mut out = Vec::new();
        for rule in rules {
            let text = rule["rule"].as_str().unwrap_or_default();
            let program = cel::Program::compile(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let mut context = cel::Context::default();
            let value = cel::to_value(source).unwrap_or_else(|e| panic!("{source}: {e}"));
            context.add_variable_from_value("self", value);
            match program.execute(&context) {
                Ok(cel::Value::Bool(true)) => {}
                Ok(cel::Value::Bool(false)) => {
                    out.push(rule["message"].as_str().unwrap_or_default().to_owned());
                }
                other => panic!("{text} on {source}: {other:?}"),
            }
        }
        out
    }

    #[test]
    fn exactly_one_source_is_accepted_by_the_crd_rules() {
        let cluster = json!({"clusterRef": {"name": "east"}});
        let servers = json!({"bootstrapServers": "kafka-0.example:9092"});
        let servers_tls = json!({
            "bootstrapServers": "kafka-0.example:9093",
            "tls": {"caCert": {"name": "east-ca", "key": "ca.crt"}},
            "sasl": {"mechanism": "SCRAM-SHA-512", "username": "mirror",
                     "passwordSecret": {"name": "east-mirror", "key": "password"}}
        });
        assert_eq!(refusals(&cluster), Vec::<String>::new());
        assert_eq!(refusals(&servers), Vec::<String>::new());
        assert_eq!(refusals(&servers_tls), Vec::<String>::new());
        let both = json!({"clusterRef": {"name": "east"}, "bootstrapServers": "a:9092"});
        assert_eq!(
            refusals(&both),
            ["set exactly one of clusterRef and bootstrapServers"]
        );
        assert_eq!(
            refusals(&json!({})),
            ["set exactly one of clusterRef and bootstrapServers"]
        );
        let cluster_tls = json!({"clusterRef": {"name": "east"},
                                 "tls": {"caCert": {"name": "x", "key": "ca.crt"}}});
        assert_eq!(
            refusals(&cluster_tls),
            ["tls is only for bootstrapServers; a Cluster's listener decides TLS and its CA"]
        );
    }

    #[test]
    fn aliases_default_to_the_cluster_names() {
        let m: Mirror = serde_json::from_value(json!({
            "apiVersion": "strait.dev/v1alpha1", "kind": "Mirror",
            "metadata": {"name": "dr", "namespace": "ns"},
            "spec": {"source": {"clusterRef": {"name": "east"}},
                     "target": {"clusterRef": {"name": "west"}}}
        }))
        .unwrap_or_else(|e| panic!("mirror: {e}"));
        assert_eq!((m.source_alias(), m.target_alias()), ("east", "west"));
        assert_eq!((m.spec.replicas, m.spec.mode), (1, MirrorMode::Mm2));
        let m: Mirror = serde_json::from_value(json!({
            "apiVersion": "strait.dev/v1alpha1", "kind": "Mirror",
            "metadata": {"name": "dr", "namespace": "ns"},
            "spec": {"source": {"bootstrapServers": "a:9092"}, "targetAlias": "dc2",
                     "target": {"clusterRef": {"name": "west"}}}
        }))
        .unwrap_or_else(|e| panic!("mirror: {e}"));
        assert_eq!((m.source_alias(), m.target_alias()), ("source", "dc2"));
    }
}
