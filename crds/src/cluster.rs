//! The `Cluster` resource: a set of Strait brokers spread over zones, with listeners, storage,
//! broker configuration (Kafka key names), authorization, tiered storage and metrics.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::SecretKeyRef;

/// Largest number of brokers in one zone: each zone owns a block of this many node ids.
pub const NODE_IDS_PER_ZONE: i32 = 1000;
/// The topology key used when `spec.rackTopologyKey` is unset.
pub const DEFAULT_ZONE_KEY: &str = "topology.kubernetes.io/zone";
/// The port of the inter-broker (replication) listener, reserved in every Cluster.
pub const REPLICATION_PORT: i32 = 9091;
/// The port of the broker's metrics and health listener when `spec.metrics.port` is unset.
pub const DEFAULT_METRICS_PORT: i32 = 9404;

/// A Strait cluster: brokers run as one StatefulSet per zone, each broker's `broker.rack` is its
/// zone, and node ids stay unique across zones.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "strait.dev",
    version = "v1alpha1",
    kind = "Cluster",
    namespaced,
    status = "ClusterStatus",
    shortname = "sc",
    shortname = "straitcluster",
    category = "strait",
    doc = "A Strait (Kafka-compatible) cluster: brokers spread over zones, listeners, storage and broker configuration.",
    derive = "PartialEq",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Brokers wanted"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "Brokers ready"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Ready condition"
    ),
    printcolumn(
        name = "Bootstrap",
        type_ = "string",
        json_path = ".status.listeners[0].bootstrapServers",
        priority = 1,
        description = "Bootstrap servers of the first listener"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.replicas <= 999 * size(self.zones)").message("at most 999 brokers per zone"))]
#[x_kube(validation = Rule::new("self.zones.all(z, self.zones.exists_one(y, y == z))").message("zones must be unique"))]
#[x_kube(validation = Rule::new("self.listeners.all(l, l.port != 9091)").message("port 9091 is reserved for inter-broker traffic"))]
#[x_kube(validation = Rule::new("self.listeners.all(l, l.name != 'replication' && l.name != 'metrics')").message("listener names replication and metrics are reserved"))]
#[x_kube(validation = Rule::new("self.listeners.all(l, l.name != 'controller')").message("listener name controller is reserved for the KRaft controller quorum (Kafka listener CONTROLLER)"))]
#[x_kube(validation = Rule::new("self.listeners.all(l, l.port != 9093)").message("port 9093 is reserved for the KRaft controller quorum"))]
#[x_kube(validation = Rule::new("!has(self.metrics) || !has(self.metrics.port) || (self.metrics.port != 9091 && self.metrics.port != 9093)").message("the metrics port must not be 9091 (inter-broker) or 9093 (controller quorum)"))]
#[x_kube(validation = Rule::new("self.listeners.all(l, self.listeners.exists_one(m, m.name == l.name))").message("listener names must be unique"))]
#[x_kube(validation = Rule::new("self.listeners.all(l, self.listeners.exists_one(m, m.port == l.port))").message("listener ports must be unique"))]
#[x_kube(validation = Rule::new("!has(self.metrics) || !has(self.metrics.port) || self.listeners.all(l, l.port != self.metrics.port)").message("the metrics port must differ from every listener port"))]
#[x_kube(validation = Rule::new("!has(self.authorization) || self.listeners.exists(l, has(l.authentication))").message("authorization needs at least one listener with authentication"))]
#[x_kube(validation = Rule::new("self.listeners.filter(l, has(l.authentication) && l.authentication.type == 'oauth').size() <= 1").message("at most one listener with oauth authentication (the broker's sasl.oauthbearer.* keys are global)"))]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Broker container image; defaults to the operator's own release of the broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Strait version, recorded in status and labels; informational when `image` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Number of brokers, spread round-robin over `zones`.
    #[schemars(range(min = 1))]
    pub replicas: i32,
    /// Zones (values of the rack topology key, at most 63 characters) to spread brokers over;
    /// one StatefulSet each.
    // Both bounds keep the uniqueness rule within the API server's CEL cost budget
    // (`crate::cel_cost` checks it).
    #[schemars(
        length(min = 1, max = 8),
        inner(
            length(min = 1, max = 63),
            regex(pattern = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
        )
    )]
    pub zones: Vec<String>,
    /// Node label whose value is the zone (default `topology.kubernetes.io/zone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub rack_topology_key: Option<String>,
    /// Persistent storage of each broker.
    pub storage: Storage,
    /// CPU and memory of each broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Broker configuration with Kafka's key names (for example `num.partitions`,
    /// `default.replication.factor`, `log.retention.ms`). Values are strings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Client listeners. Inter-broker traffic uses a separate internal listener.
    #[schemars(length(min = 1, max = 8))]
    pub listeners: Vec<Listener>,
    /// Authorization of clients (simple ACLs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    /// Tiered storage in an S3-compatible object store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiered_storage: Option<TieredStorage>,
    /// Prometheus metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    /// Overrides for the broker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodTemplate>,
}

/// Storage of each broker: one PersistentVolumeClaim per broker.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// Volume size, for example `100Gi`. Increasing it grows the claims (the storage class must
    /// allow expansion); decreasing it is refused.
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"))]
    pub size: String,
    /// Storage class of the claims; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Delete the claims when the cluster is deleted or scaled down.
    #[serde(default)]
    pub delete_claim: bool,
}

/// A client listener.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new("!has(self.authentication) || self.authentication.type != 'tls' || self.tls").message("tls authentication needs tls: true"))]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// Listener name (upper-cased as the Kafka listener name); at most 15 characters, as it
    /// also names Service and container ports. `replication`, `metrics` and `controller` are
    /// reserved.
    #[schemars(length(min = 1, max = 15), regex(pattern = r"^[a-z][a-z0-9]{0,14}$"))]
    pub name: String,
    /// Container port; 9091 (inter-broker) and 9093 (controller quorum) are reserved.
    #[schemars(range(min = 1024, max = 65535))]
    pub port: i32,
    /// How clients reach the listener.
    #[serde(rename = "type")]
    pub kind: ListenerType,
    /// Serve TLS on this listener, with a certificate per broker signed by the cluster CA
    /// (Secret `<cluster>-cluster-ca-cert`, key `ca.crt`).
    #[serde(default)]
    pub tls: bool,
    /// Client authentication on this listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<ListenerAuthentication>,
}

/// How clients reach a listener.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListenerType {
    /// Inside the Kubernetes cluster, through the headless and bootstrap Services.
    Internal,
    /// Through a NodePort Service per broker and one for bootstrap; each broker advertises its
    /// node's IP and its Service's nodePort.
    Nodeport,
    /// Through a LoadBalancer Service per broker and one for bootstrap; each broker advertises
    /// its load balancer's ingress host name (else IP) and the listener port.
    Loadbalancer,
}

/// Authentication of a listener.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new("self.type == 'oauth' ? has(self.jwks) : (!has(self.jwks) && !has(self.validAudience) && !has(self.validIssuerUri))").message("oauth needs jwks; jwks, validAudience and validIssuerUri are only for oauth"))]
#[serde(rename_all = "camelCase")]
pub struct ListenerAuthentication {
    /// Mechanism.
    #[serde(rename = "type")]
    pub kind: ListenerAuthenticationType,
    /// `oauth`: the JSON Web Key Set tokens are verified against, from a ConfigMap or Secret key
    /// (mounted as a file, re-read by the broker; copy the identity provider's `jwks_uri` there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<JwksSource>,
    /// `oauth`: the audience a token's `aud` must contain (Kafka's
    /// `sasl.oauthbearer.expected.audience`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub valid_audience: Option<String>,
    /// `oauth`: the issuer a token's `iss` must equal (Kafka's
    /// `sasl.oauthbearer.expected.issuer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub valid_issuer_uri: Option<String>,
}

/// Where a JSON Web Key Set comes from: exactly one of a ConfigMap key and a Secret key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.configMapKeyRef) != has(self.secretKeyRef)").message("set exactly one of configMapKeyRef and secretKeyRef"))]
#[serde(rename_all = "camelCase")]
pub struct JwksSource {
    /// A key of a ConfigMap in the Cluster's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<SecretKeyRef>,
    /// A key of a Secret in the Cluster's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
}

/// How clients of a listener authenticate.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ListenerAuthenticationType {
    /// SASL SCRAM-SHA-512 (the credentials of `scram-sha-512` Users).
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    /// Client certificates signed by the Cluster's clients CA (those of `tls` Users), required;
    /// needs `tls: true`.
    #[serde(rename = "tls")]
    Tls,
    /// SASL OAUTHBEARER: JWTs validated by the broker against `jwks` (principal
    /// `User:<sub>`).
    #[serde(rename = "oauth")]
    Oauth,
}

/// Simple ACL authorization.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    /// Authorizer.
    #[serde(rename = "type")]
    pub kind: AuthorizationType,
    /// Users allowed everything (Kafka's `super.users`, without the `User:` prefix).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub super_users: Vec<String>,
}

/// The authorizer.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthorizationType {
    /// ACLs stored in the cluster metadata.
    Simple,
}

/// Tiered storage (KIP-405): where closed segments go, and the topic defaults of local
/// retention. Exactly one of `s3` and `filesystem`. Topics opt in with
/// `remote.storage.enable=true`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.s3) != has(self.filesystem)").message("set exactly one of s3 and filesystem"))]
#[serde(rename_all = "camelCase")]
pub struct TieredStorage {
    /// An S3-compatible bucket (AWS S3, MinIO, Ceph RGW, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Storage>,
    /// A directory (for tests, or a shared file system): a PersistentVolumeClaim mounted on
    /// every broker, or a path inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FilesystemStorage>,
    /// Put before every object name (`rsm.config.key.prefix`), for example `prod/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub key_prefix: Option<String>,
    /// Default `local.retention.ms` of topics (broker key `log.local.retention.ms`): how long
    /// tiered data stays on local disk too; -2 means `retention.ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -2))]
    pub default_local_retention_ms: Option<i64>,
    /// Default `local.retention.bytes` of topics (broker key `log.local.retention.bytes`): how
    /// much of each partition stays on local disk too; -2 means `retention.bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -2))]
    pub default_local_retention_bytes: Option<i64>,
}

/// An S3-compatible bucket.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Storage {
    /// Bucket name.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"))]
    pub bucket: String,
    /// Endpoint URL; AWS S3 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub endpoint: Option<String>,
    /// Region (`us-east-1` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9-]+$"))]
    pub region: Option<String>,
    /// Path-style URLs (`https://host/bucket/key`), which MinIO, Ceph and most S3-compatible
    /// servers want; virtual-hosted style (`https://bucket.host/key`) when false.
    #[serde(default)]
    pub path_style: bool,
    /// The access key id and secret access key, from Secret keys (given to the brokers as
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`). Unset: the pod's own AWS credentials
    /// (IRSA, instance profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<ObjectStoreCredentials>,
}

/// Object store credentials in a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStoreCredentials {
    /// Access key id.
    pub access_key_id: SecretKeyRef,
    /// Secret access key.
    pub secret_access_key: SecretKeyRef,
}

/// A directory as the remote tier.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilesystemStorage {
    /// Absolute path of the directory in the broker container; with `claimName`, where the
    /// claim is mounted. Not under the data volume (`/var/lib/strait`).
    #[schemars(length(min = 2, max = 1024), regex(pattern = r"^/[^\s]*$"))]
    pub path: String,
    /// A PersistentVolumeClaim (ReadWriteMany, since every broker mounts it) in the Cluster's
    /// namespace. Without it the directory lives in the container and goes with the pod: for
    /// tests only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub claim_name: Option<String>,
}

/// Prometheus metrics of the brokers (their metrics listener also serves `/ready`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// Expose metrics (a named port and scrape annotations). The listener always runs, since
    /// readiness probes use it.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Port of the metrics and health listener (default 9404).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024, max = 65535))]
    pub port: Option<i32>,
    /// Create a prometheus-operator ServiceMonitor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_monitor: Option<ServiceMonitorSpec>,
}

/// The ServiceMonitor the operator creates.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    /// Create it.
    #[serde(default)]
    pub enabled: bool,
    /// Scrape interval, for example `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub interval: Option<String>,
    /// Extra labels, so that a Prometheus selector picks it up.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

fn default_true() -> bool {
    true
}

/// Overrides for the broker pods.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    /// Extra pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Extra pod labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Tolerations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity, merged with the operator's zone node affinity and broker anti-affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Priority class name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Node selector.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
}

/// Observed state of a Cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// With reasons and messages: `Ready` (brokers ready and the admin API answering),
    /// `Reconciling`, `Degraded`, `ScaleDownBlocked`, `Rolling` (a restart for a new
    /// configuration), `QuorumReconfiguring` (a controller voter change under way),
    /// `ReplicationTLS` (mutual TLS between brokers, or plaintext kept) and
    /// `StorageChangeBlocked` (a storage change Kubernetes cannot make: a shrink, a class change,
    /// a StorageClass without volume expansion).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Brokers that exist (the scale subresource reads this).
    #[serde(default)]
    pub replicas: i32,
    /// Brokers ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the broker pods (for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Bootstrap addresses per listener.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerStatus>,
    /// The Kafka cluster id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Hash of the rendered broker configuration the pods run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// The KRaft metadata quorum as the operator keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<QuorumStatus>,
}

/// The controller quorum of a Cluster (KIP-853 voter changes).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuorumStatus {
    /// Node ids of the voters the quorum formed with (`controller.quorum.voters` of the
    /// rendered configuration; other controllers join with the bootstrap servers and are
    /// promoted by AddRaftVoter). Kept so that the rendering stays stable while voters change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seed_voters: Vec<i32>,
    /// The voters as the quorum last reported them (DescribeQuorum).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub voters: Vec<i32>,
    /// The voters the operator is moving the quorum to (one AddRaftVoter or RemoveRaftVoter
    /// per step).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub desired_voters: Vec<i32>,
}

/// Where clients connect to one listener.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    /// Listener name.
    pub name: String,
    /// `host:port,...` for clients: for nodeport and loadbalancer listeners the external
    /// addresses (node IPs with the bootstrap nodePort, or the bootstrap load balancer) once
    /// known, until then the bootstrap Service's in-cluster name.
    pub bootstrap_servers: String,
    /// For a TLS listener: the Secret holding the cluster CA certificate (key `ca.crt`) that
    /// signs the brokers' certificates, for clients to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<String>,
}

impl ClusterSpec {
    /// The node label that names a broker's zone.
    pub fn zone_key(&self) -> &str {
        self.rack_topology_key
            .as_deref()
            .unwrap_or(DEFAULT_ZONE_KEY)
    }

    /// The port of the metrics and health listener.
    pub fn metrics_port(&self) -> i32 {
        self.metrics
            .as_ref()
            .and_then(|m| m.port)
            .unwrap_or(DEFAULT_METRICS_PORT)
    }

    /// Brokers in zone `index` when `replicas` are spread round-robin over the zones.
    pub fn replicas_in_zone(&self, index: usize) -> i32 {
        let zones = self.zones.len();
        if zones == 0 || index >= zones {
            return 0;
        }
        let replicas = usize::try_from(self.replicas.max(0)).unwrap_or(0);
        let n = replicas / zones + usize::from(index < replicas % zones);
        i32::try_from(n).unwrap_or(i32::MAX)
    }
}
