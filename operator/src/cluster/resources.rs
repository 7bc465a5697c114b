//! Builds the desired Kubernetes objects of a Cluster, as pure functions of the resource: the
//! ConfigMap, Services, one StatefulSet per zone, the PodDisruptionBudget, the ServiceAccount,
//! the optional ServiceMonitor and, with TLS listeners, the certificate Secrets (from keys made
//! in `certs`). Nothing here talks to the API server.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetOrdinals, StatefulSetPersistentVolumeClaimRetentionPolicy,
    StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, Secret, SecretKeySelector,
    SecretVolumeSource, Service, ServiceAccount, ServicePort, ServiceSpec, TCPSocketAction, Volume,
    VolumeMount, VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use strait_crds::cluster::{ListenerType, REPLICATION_PORT};
use strait_crds::{Cluster, ClusterSpec};

use crate::cluster::certs::{self, Ca};
use crate::cluster::config;
use crate::cluster::external::ExternalAddresses;
use crate::cluster::quorum::{CONTROLLER_PORT, zone_of};
use crate::cluster::tls::{self, Replication};
use crate::names;

/// Image used when `spec.image` is unset.
pub const DEFAULT_IMAGE: &str = concat!(
    "ghcr.io/strait-dev/strait-broker:",
    env!("CARGO_PKG_VERSION")
);

/// Seconds a broker gets between SIGTERM and SIGKILL: enough for Kafka's controlled shutdown.
pub const TERMINATION_GRACE_SECONDS: i64 = 120;

/// User and group id of the broker process (see operator/images/broker.Dockerfile).
pub const BROKER_UID: i64 = 65532;

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
    /// [`tls::replication_of`]; mutual TLS unless told otherwise).
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

    fn meta(&self, name: String) -> ObjectMeta {
        self.meta_labelled(name, names::labels(self.name))
    }

    fn meta_labelled(&self, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.to_owned()),
            labels: Some(labels),
            owner_references: self.owner.clone().map(|o| vec![o]),
            ..ObjectMeta::default()
        }
    }
}

/// The ConfigMap holding `server.properties`, naming `voters` as the controller quorum.
pub fn config_map(c: &ClusterRef, voters: &[i32]) -> ConfigMap {
    ConfigMap {
        metadata: c.meta(names::config_map(c.name)),
        data: Some(BTreeMap::from([(
            "server.properties".to_owned(),
            config::server_properties(c.name, c.namespace, c.spec, voters, c.replication),
        )])),
        ..ConfigMap::default()
    }
}

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port,
        target_port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }
}

/// Headless Service: stable per-broker DNS names, published before brokers are ready so that
/// brokers can find each other while starting; it carries the controller quorum's port too.
pub fn headless_service(c: &ClusterRef) -> Service {
    let mut ports = vec![
        port("replication", REPLICATION_PORT),
        port("controller", CONTROLLER_PORT),
        port("metrics", c.spec.metrics_port()),
    ];
    ports.extend(c.spec.listeners.iter().map(|l| port(&l.name, l.port)));
    Service {
        metadata: c.meta(names::headless_service(c.name)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            publish_not_ready_addresses: Some(true),
            selector: Some(names::selector_labels(c.name)),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Bootstrap Services: one ClusterIP Service for the replication port and the internal
/// listeners, and one per external listener of its type (NodePort or LoadBalancer).
pub fn bootstrap_services(c: &ClusterRef) -> Vec<Service> {
    let mut internal = vec![port("replication", REPLICATION_PORT)];
    internal.extend(
        c.spec
            .listeners
            .iter()
            .filter(|l| l.kind == ListenerType::Internal)
            .map(|l| port(&l.name, l.port)),
    );
    let mut out = vec![Service {
        metadata: c.meta(names::bootstrap_service(c.name, None)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(names::selector_labels(c.name)),
            ports: Some(internal),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }];
    for l in c
        .spec
        .listeners
        .iter()
        .filter(|l| l.kind != ListenerType::Internal)
    {
        out.push(Service {
            metadata: c.meta_labelled(
                names::bootstrap_service(c.name, Some(&l.name)),
                names::listener_service_labels(c.name, &l.name, None),
            ),
            spec: Some(ServiceSpec {
                type_: Some(service_type(l.kind).to_owned()),
                selector: Some(names::selector_labels(c.name)),
                ports: Some(vec![port(&l.name, l.port)]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        });
    }
    out
}

fn service_type(kind: ListenerType) -> &'static str {
    match kind {
        ListenerType::Internal => "ClusterIP",
        ListenerType::Nodeport => "NodePort",
        ListenerType::Loadbalancer => "LoadBalancer",
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

/// Per-broker Services of the external listeners: one per listener and broker of the
/// StatefulSets (`replicas[i]` brokers in zone `i`, so brokers held while partitions move off
/// them keep theirs).
pub fn broker_services(c: &ClusterRef, replicas: &[i32]) -> Vec<Service> {
    let mut out = Vec::new();
    for l in c
        .spec
        .listeners
        .iter()
        .filter(|l| l.kind != ListenerType::Internal)
    {
        for node_id in held_node_ids(replicas) {
            let mut selector = names::selector_labels(c.name);
            selector.insert(
                "statefulset.kubernetes.io/pod-name".to_owned(),
                names::pod(c.name, zone_of(node_id), node_id),
            );
            out.push(Service {
                metadata: c.meta_labelled(
                    names::broker_service(c.name, &l.name, node_id),
                    names::listener_service_labels(c.name, &l.name, Some(node_id)),
                ),
                spec: Some(ServiceSpec {
                    type_: Some(service_type(l.kind).to_owned()),
                    selector: Some(selector),
                    ports: Some(vec![port(&l.name, l.port)]),
                    ..ServiceSpec::default()
                }),
                ..Service::default()
            });
        }
    }
    out
}

/// The StatefulSets, one per zone, with `replicas[i]` brokers in zone `i` (the controller may
/// hold a zone at its current size while partitions move off leaving brokers); `voters` are the
/// node ids that run the controller role, `external` the brokers' known external addresses,
/// `cert_generations` each zone's broker certificate generation (with TLS listeners).
pub fn statefulsets(
    c: &ClusterRef,
    replicas: &[i32],
    voters: &[i32],
    config_hash: &str,
    cert_generations: &BTreeMap<usize, u64>,
    external: &ExternalAddresses,
) -> Vec<StatefulSet> {
    c.spec
        .zones
        .iter()
        .enumerate()
        .map(|(i, zone)| {
            statefulset(
                c,
                i,
                zone,
                replicas.get(i).copied().unwrap_or(0),
                voters,
                config_hash,
                cert_generations.get(&i).copied().unwrap_or(0),
                &external.in_zone(i),
            )
        })
        .collect()
}

/// The StatefulSet of the zone at `index`; `external` holds the external addresses of (at
/// least) this zone's brokers, rendered into the start command. With TLS listeners the pods
/// mount the broker certificates Secret and carry `cert_generation`, so that replaced
/// certificates restart the zone's brokers like a new configuration does.
#[allow(clippy::too_many_arguments)]
pub fn statefulset(
    c: &ClusterRef,
    index: usize,
    zone: &str,
    replicas: i32,
    voters: &[i32],
    config_hash: &str,
    cert_generation: u64,
    external: &ExternalAddresses,
) -> StatefulSet {
    let spec = c.spec;
    let mut selector = names::selector_labels(c.name);
    selector.insert(names::ZONE_LABEL.to_owned(), zone.to_owned());
    let template = spec.template.clone().unwrap_or_default();
    let mut pod_labels = template.labels.clone();
    pod_labels.extend(selector.clone());
    let mut annotations = template.annotations.clone();
    annotations.insert(
        names::CONFIG_HASH_ANNOTATION.to_owned(),
        config_hash.to_owned(),
    );
    let tls = tls::needs_certificates(spec, c.replication);
    if tls {
        annotations.insert(
            names::CERT_GENERATION_ANNOTATION.to_owned(),
            cert_generation.to_string(),
        );
    }
    if c.replication == Replication::MutualTls {
        // How the controller tells these brokers from an earlier version's plaintext ones.
        annotations.insert(
            tls::REPLICATION_ANNOTATION.to_owned(),
            tls::REPLICATION_MUTUAL_TLS.to_owned(),
        );
    }
    let metrics_port = spec.metrics_port();
    if spec.metrics.as_ref().is_none_or(|m| m.enabled) {
        annotations.insert("prometheus.io/scrape".to_owned(), "true".to_owned());
        annotations.insert("prometheus.io/port".to_owned(), metrics_port.to_string());
    }
    let mut ports = vec![
        container_port("replication", REPLICATION_PORT),
        container_port("controller", CONTROLLER_PORT),
        container_port("metrics", metrics_port),
    ];
    ports.extend(
        spec.listeners
            .iter()
            .map(|l| container_port(&l.name, l.port)),
    );
    let container = Container {
        name: "broker".to_owned(),
        image: Some(
            spec.image
                .clone()
                .unwrap_or_else(|| DEFAULT_IMAGE.to_owned()),
        ),
        command: Some(vec!["/bin/sh".to_owned(), "-c".to_owned()]),
        args: Some(vec![config::start_command(
            c.name,
            c.namespace,
            spec,
            zone,
            voters,
            external,
            c.replication,
        )]),
        env: Some(env(c, zone)),
        ports: Some(ports),
        resources: spec.resources.clone(),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/ready".to_owned()),
                port: IntOrString::Int(metrics_port),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(5),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        liveness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(REPLICATION_PORT),
                ..TCPSocketAction::default()
            }),
            initial_delay_seconds: Some(30),
            period_seconds: Some(10),
            failure_threshold: Some(6),
            ..Probe::default()
        }),
        volume_mounts: Some(volume_mounts(tls)),
        ..Container::default()
    };
    let retention = if spec.storage.delete_claim {
        "Delete"
    } else {
        "Retain"
    };
    StatefulSet {
        metadata: c.meta(names::statefulset(c.name, index)),
        spec: StatefulSetSpec {
            replicas: Some(replicas),
            ordinals: Some(StatefulSetOrdinals {
                start: Some(ordinal_start(index)),
            }),
            service_name: Some(names::headless_service(c.name)),
            // Brokers start together. Kubernetes never restarts a broker for a template change
            // (each zone's StatefulSet would roll on its own, one pod per zone at once); the
            // operator restarts them one at a time across zones (see `cluster::roll`).
            pod_management_policy: Some("Parallel".to_owned()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_owned()),
                rolling_update: None,
            }),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(retention.to_owned()),
                    when_scaled: Some(retention.to_owned()),
                },
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(names::service_account(c.name)),
                    automount_service_account_token: Some(false),
                    // The broker image runs as uid 65532; fsGroup makes the volume writable.
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(BROKER_UID),
                        run_as_group: Some(BROKER_UID),
                        fs_group: Some(BROKER_UID),
                        ..PodSecurityContext::default()
                    }),
                    // Room for the controlled shutdown SIGTERM starts (leaderships move away).
                    termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
                    containers: vec![container],
                    volumes: Some(volumes(c, tls)),
                    affinity: Some(affinity(c, zone, template.affinity.clone())),
                    tolerations: (!template.tolerations.is_empty())
                        .then(|| template.tolerations.clone()),
                    node_selector: (!template.node_selector.is_empty())
                        .then(|| template.node_selector.clone()),
                    priority_class_name: template.priority_class_name.clone(),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(names::DATA_VOLUME.to_owned()),
                    labels: Some(names::selector_labels(c.name)),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
                    storage_class_name: spec.storage.storage_class.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_owned(),
                            Quantity(spec.storage.size.clone()),
                        )])),
                        ..VolumeResourceRequirements::default()
                    }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            }]),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    }
}

/// Name of the pods' volume with the broker certificates.
const TLS_VOLUME: &str = "tls";

/// The broker container's mounts: data, configuration, and with `tls` the certificates.
fn volume_mounts(tls: bool) -> Vec<VolumeMount> {
    let mut mounts = vec![
        VolumeMount {
            name: names::DATA_VOLUME.to_owned(),
            mount_path: names::DATA_DIR.to_owned(),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "config".to_owned(),
            mount_path: names::CONFIG_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
    ];
    if tls {
        mounts.push(VolumeMount {
            name: TLS_VOLUME.to_owned(),
            mount_path: names::TLS_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    mounts
}

/// The pod's volumes besides the data claim: the configuration, and with `tls` the broker
/// certificates Secret (readable by the broker's group only, which `fsGroup` makes its own).
fn volumes(c: &ClusterRef, tls: bool) -> Vec<Volume> {
    let mut volumes = vec![Volume {
        name: "config".to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: names::config_map(c.name),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }];
    if tls {
        volumes.push(Volume {
            name: TLS_VOLUME.to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names::broker_certs(c.name)),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    volumes
}

fn secret_object(c: &ClusterRef, name: String, data: BTreeMap<String, String>) -> Secret {
    Secret {
        metadata: c.meta(name),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    }
}

/// The cluster CA Secret: certificate and private key. Created once, then only read.
pub fn cluster_ca_secret(c: &ClusterRef, ca: &Ca) -> Secret {
    secret_object(
        c,
        names::cluster_ca(c.name),
        BTreeMap::from([
            (certs::CA_CERT_KEY.to_owned(), ca.cert_pem.clone()),
            (certs::CA_KEY_KEY.to_owned(), ca.key_pem.clone()),
        ]),
    )
}

/// The Secret with only the CA certificate, for clients to trust.
pub fn cluster_ca_cert_secret(c: &ClusterRef, ca: &Ca) -> Secret {
    secret_object(
        c,
        names::cluster_ca_cert(c.name),
        BTreeMap::from([(certs::CA_CERT_KEY.to_owned(), ca.cert_pem.clone())]),
    )
}

/// The broker certificates Secret: `keystores` by key (`<pod>.pem`) and the CA certificate
/// (`ca.crt`, the brokers' truststore), annotated with each zone's certificate generation. One
/// Secret for all brokers because a zone's pods share one pod template, so they can only mount
/// the same Secret.
pub fn broker_certs_secret(
    c: &ClusterRef,
    ca: &Ca,
    mut keystores: BTreeMap<String, String>,
    generations: &BTreeMap<usize, u64>,
) -> Secret {
    keystores.insert(tls::TRUSTSTORE_KEY.to_owned(), ca.cert_pem.clone());
    let mut secret = secret_object(c, names::broker_certs(c.name), keystores);
    secret.metadata.annotations = Some(tls::generation_annotations(generations));
    secret
}

/// The operator's own Secret for a Cluster: its client keystore (`operator.pem`: key,
/// certificate, CA certificate) for the replication listener's mutual TLS, and the CA
/// certificate to trust (`ca.crt`).
pub fn operator_certs_secret(c: &ClusterRef, ca: &Ca, keystore: String) -> Secret {
    secret_object(
        c,
        names::operator_certs(c.name),
        BTreeMap::from([
            (certs::OPERATOR_KEYSTORE_KEY.to_owned(), keystore),
            (certs::CA_CERT_KEY.to_owned(), ca.cert_pem.clone()),
        ]),
    )
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.chars().take(15).collect()),
        container_port: port,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

fn env(c: &ClusterRef, zone: &str) -> Vec<EnvVar> {
    let mut env = vec![
        plain("STRAIT_ZONE", zone),
        from_pod("POD_NAME", "metadata.name"),
    ];
    if config::has_nodeport(c.spec) {
        // NodePort listeners advertise the node the pod runs on.
        env.push(from_pod("HOST_IP", "status.hostIP"));
    }
    if let Some(tiered) = &c.spec.tiered_storage {
        // object_store's S3 builder reads these names.
        env.push(plain("STRAIT_TIERED_STORAGE_BUCKET", &tiered.bucket));
        if let Some(endpoint) = &tiered.endpoint {
            env.push(plain("AWS_ENDPOINT", endpoint));
        }
        if let Some(region) = &tiered.region {
            env.push(plain("AWS_REGION", region));
        }
        if let Some(creds) = &tiered.credentials_secret {
            env.push(secret("AWS_ACCESS_KEY_ID", &creds.access_key_id));
            env.push(secret("AWS_SECRET_ACCESS_KEY", &creds.secret_access_key));
        }
    }
    env
}

fn plain(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    }
}

/// An env var from the pod's own fields (the downward API).
fn from_pod(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn secret(name: &str, key: &strait_crds::SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: key.name.clone(),
                key: key.key.clone(),
                ..SecretKeySelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// Zone node affinity (required), plus anti-affinity spreading brokers of the cluster over
/// nodes (preferred, so a small test cluster still schedules), merged with the user's affinity.
fn affinity(c: &ClusterRef, zone: &str, user: Option<Affinity>) -> Affinity {
    let mut affinity = user.unwrap_or_default();
    let zone_term = NodeSelectorRequirement {
        key: c.spec.zone_key().to_owned(),
        operator: "In".to_owned(),
        values: Some(vec![zone.to_owned()]),
    };
    let mut node = affinity.node_affinity.take().unwrap_or_default();
    let mut required = node
        .required_during_scheduling_ignored_during_execution
        .take()
        .unwrap_or(NodeSelector {
            node_selector_terms: vec![NodeSelectorTerm::default()],
        });
    if required.node_selector_terms.is_empty() {
        required
            .node_selector_terms
            .push(NodeSelectorTerm::default());
    }
    // Terms are ORed: the zone requirement goes into each of them.
    for term in &mut required.node_selector_terms {
        term.match_expressions
            .get_or_insert_with(Vec::new)
            .push(zone_term.clone());
    }
    node.required_during_scheduling_ignored_during_execution = Some(required);
    affinity.node_affinity = Some(NodeAffinity { ..node });
    let mut anti = affinity.pod_anti_affinity.take().unwrap_or_default();
    anti.preferred_during_scheduling_ignored_during_execution
        .get_or_insert_with(Vec::new)
        .push(WeightedPodAffinityTerm {
            weight: 100,
            pod_affinity_term: PodAffinityTerm {
                label_selector: Some(LabelSelector {
                    match_labels: Some(names::selector_labels(c.name)),
                    ..LabelSelector::default()
                }),
                topology_key: "kubernetes.io/hostname".to_owned(),
                ..PodAffinityTerm::default()
            },
        });
    affinity.pod_anti_affinity = Some(anti);
    affinity
}

/// PodDisruptionBudget: at most one broker down at a time, across zones.
pub fn pod_disruption_budget(c: &ClusterRef) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: c.meta(c.name.to_owned()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(names::selector_labels(c.name)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// ServiceAccount of the brokers; they need no API access, so no Role is bound and no token
/// is mounted.
pub fn service_account(c: &ClusterRef) -> ServiceAccount {
    ServiceAccount {
        metadata: c.meta(names::service_account(c.name)),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// The prometheus-operator ServiceMonitor kind.
pub fn service_monitor_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "monitoring.coreos.com",
        "v1",
        "ServiceMonitor",
    ))
}

/// ServiceMonitor scraping every broker through the headless Service, when asked for.
pub fn service_monitor(c: &ClusterRef) -> Option<DynamicObject> {
    let metrics = c.spec.metrics.as_ref().filter(|m| m.enabled)?;
    let sm = metrics.service_monitor.as_ref().filter(|s| s.enabled)?;
    let mut meta = c.meta(c.name.to_owned());
    let mut labels = meta.labels.take().unwrap_or_default();
    labels.extend(sm.labels.clone());
    meta.labels = Some(labels);
    let mut endpoint = serde_json::json!({"port": "metrics", "path": "/metrics"});
    if let Some(interval) = &sm.interval {
        endpoint["interval"] = serde_json::Value::String(interval.clone());
    }
    let mut obj = DynamicObject::new(c.name, &service_monitor_resource()).within(c.namespace);
    obj.metadata = meta;
    obj.data = serde_json::json!({
        "spec": {
            "selector": {"matchLabels": names::labels(c.name)},
            "endpoints": [endpoint],
        }
    });
    Some(obj)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use strait_crds::cluster::{Listener, Metrics, ServiceMonitorSpec, Storage};

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
            replication: crate::cluster::tls::Replication::MutualTls,
        }
    }

    #[test]
    fn one_statefulset_per_zone_with_affinity_rack_and_disjoint_node_ids() {
        let s = spec(5, &["a", "b", "c"]);
        let c = cref(&s);
        let sets = statefulsets(
            &c,
            &[2, 2, 1],
            &[0, 1000, 2000],
            "h",
            &BTreeMap::new(),
            &ExternalAddresses::default(),
        );
        assert_eq!(sets.len(), 3);
        let mut all_ids = Vec::new();
        for (i, (set, zone)) in sets.iter().zip(["a", "b", "c"]).enumerate() {
            assert_eq!(
                set.metadata.name.as_deref(),
                Some(format!("kafka-z{i}").as_str())
            );
            let st = &set.spec;
            let start = st.ordinals.as_ref().and_then(|o| o.start).expect("start");
            assert_eq!(start, i32::try_from(i).expect("i") * 1000);
            all_ids.extend((0..st.replicas.unwrap_or(0)).map(|k| start + k));
            let pod = st.template.spec.as_ref().expect("pod");
            let node = pod
                .affinity
                .as_ref()
                .and_then(|a| a.node_affinity.as_ref())
                .expect("node affinity");
            let terms = &node
                .required_during_scheduling_ignored_during_execution
                .as_ref()
                .expect("required")
                .node_selector_terms;
            let expr = &terms[0].match_expressions.as_ref().expect("exprs")[0];
            assert_eq!(expr.key, "topology.kubernetes.io/zone");
            assert_eq!(expr.values.as_deref(), Some(&[zone.to_owned()][..]));
            assert!(
                pod.affinity
                    .as_ref()
                    .and_then(|a| a.pod_anti_affinity.as_ref())
                    .is_some()
            );
            let args = pod.containers[0].args.as_ref().expect("args");
            assert!(
                args[0].contains(&format!("broker.rack={zone}")),
                "{}",
                args[0]
            );
            let labels = st
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.as_ref())
                .expect("labels");
            assert_eq!(
                labels.get(names::ZONE_LABEL).map(String::as_str),
                Some(zone)
            );
            let ann = st
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.as_ref())
                .expect("ann");
            assert_eq!(
                ann.get(names::CONFIG_HASH_ANNOTATION).map(String::as_str),
                Some("h")
            );
            let probe = pod.containers[0]
                .readiness_probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .expect("probe");
            assert_eq!(probe.path.as_deref(), Some("/ready"));
            assert_eq!(probe.port, IntOrString::Int(9404));
            // The operator, not the StatefulSet controller, restarts brokers (one at a time
            // across zones).
            let strategy = st.update_strategy.as_ref().expect("update strategy");
            assert_eq!(strategy.type_.as_deref(), Some("OnDelete"));
            assert!(strategy.rolling_update.is_none());
        }
        all_ids.sort_unstable();
        assert_eq!(all_ids, [0, 1, 1000, 1001, 2000]);
        assert_eq!(desired_node_ids(&s), [0, 1, 1000, 1001, 2000]);
    }

    #[test]
    fn pods_serve_the_quorum_and_leave_time_for_controlled_shutdown() {
        let s = spec(4, &["a", "b"]);
        let c = cref(&s);
        let voters = crate::cluster::quorum::desired_voters(&s);
        assert_eq!(voters, [0, 1000, 1]);
        let sets = statefulsets(
            &c,
            &[2, 2],
            &voters,
            "h",
            &BTreeMap::new(),
            &ExternalAddresses::default(),
        );
        for set in &sets {
            let pod = set.spec.template.spec.as_ref().expect("pod");
            assert!(pod.termination_grace_period_seconds >= Some(60));
            let container = &pod.containers[0];
            let ports: Vec<(Option<&str>, i32)> = container
                .ports
                .iter()
                .flatten()
                .map(|p| (p.name.as_deref(), p.container_port))
                .collect();
            assert!(ports.contains(&(Some("controller"), 9093)), "{ports:?}");
            let args = container.args.as_ref().expect("args");
            assert!(
                args[0].starts_with("case \"${HOSTNAME##*-}\" in 0|1000|1) "),
                "{}",
                args[0]
            );
        }
        let headless = headless_service(&c);
        let ports: Vec<(Option<&str>, i32)> = headless
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .iter()
            .copied()
            .flatten()
            .map(|p| (p.name.as_deref(), p.port))
            .collect();
        assert_eq!(
            ports,
            [
                (Some("replication"), 9091),
                (Some("controller"), 9093),
                (Some("metrics"), 9404),
                (Some("plain"), 9092)
            ]
        );
        // Clients never reach the controller port.
        let boot = bootstrap_services(&c);
        assert!(
            boot[0]
                .spec
                .as_ref()
                .and_then(|s| s.ports.as_ref())
                .is_some_and(|p| p.iter().all(|p| p.port != 9093))
        );
    }

    #[test]
    fn user_affinity_terms_each_get_the_zone() {
        let mut s = spec(1, &["a"]);
        s.template = Some(strait_crds::cluster::PodTemplate {
            affinity: Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: vec![
                            NodeSelectorTerm::default(),
                            NodeSelectorTerm::default(),
                        ],
                    }),
                    ..NodeAffinity::default()
                }),
                ..Affinity::default()
            }),
            ..strait_crds::cluster::PodTemplate::default()
        });
        let set = statefulset(
            &cref(&s),
            0,
            "a",
            1,
            &[0],
            "h",
            0,
            &ExternalAddresses::default(),
        );
        let pod = set.spec.template.spec.expect("pod");
        let terms = pod
            .affinity
            .and_then(|a| a.node_affinity)
            .and_then(|n| n.required_during_scheduling_ignored_during_execution)
            .expect("req")
            .node_selector_terms;
        assert_eq!(terms.len(), 2);
        assert!(
            terms
                .iter()
                .all(|t| t.match_expressions.as_ref().is_some_and(|e| e.len() == 1))
        );
    }

    #[test]
    fn services_per_listener_type() {
        let mut s = spec(3, &["a", "b"]);
        s.listeners.push(Listener {
            name: "ext".into(),
            port: 9094,
            kind: ListenerType::Loadbalancer,
            tls: true,
            authentication: None,
        });
        let c = cref(&s);
        let headless = headless_service(&c);
        let hs = headless.spec.as_ref().expect("spec");
        assert_eq!(hs.cluster_ip.as_deref(), Some("None"));
        assert_eq!(hs.publish_not_ready_addresses, Some(true));
        let boot = bootstrap_services(&c);
        let names: Vec<_> = boot
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect();
        assert_eq!(names, ["kafka-bootstrap", "kafka-ext-bootstrap"]);
        assert_eq!(
            boot[1].spec.as_ref().and_then(|s| s.type_.as_deref()),
            Some("LoadBalancer")
        );
        let internal_ports: Vec<i32> = boot[0]
            .spec
            .as_ref()
            .and_then(|s| s.ports.clone())
            .unwrap_or_default()
            .iter()
            .map(|p| p.port)
            .collect();
        assert_eq!(internal_ports, [9091, 9092]);
        let per_broker = broker_services(&c, &[2, 1]);
        let names: Vec<_> = per_broker
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect();
        assert_eq!(names, ["kafka-ext-0", "kafka-ext-1", "kafka-ext-1000"]);
        let sel = per_broker[2]
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .expect("selector");
        assert_eq!(
            sel.get("statefulset.kubernetes.io/pod-name")
                .map(String::as_str),
            Some("kafka-z1-1000")
        );
        // Labels that let the operator find them again, exactly, to delete them once unused.
        let label = |svc: &Service, key: &str| {
            svc.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(key).cloned())
        };
        assert_eq!(
            label(&per_broker[2], names::LISTENER_LABEL).as_deref(),
            Some("ext")
        );
        assert_eq!(
            label(&per_broker[2], names::NODE_ID_LABEL).as_deref(),
            Some("1000")
        );
        assert_eq!(
            label(&boot[1], names::LISTENER_LABEL).as_deref(),
            Some("ext")
        );
        assert_eq!(label(&boot[1], names::NODE_ID_LABEL), None);
        assert_eq!(label(&boot[0], names::LISTENER_LABEL), None);
        assert_eq!(label(&headless, names::LISTENER_LABEL), None);
        assert!(broker_services(&cref(&spec(3, &["a"])), &[3]).is_empty());
        // Brokers held while partitions move off them keep their Service.
        let held: Vec<_> = broker_services(&c, &[3, 1])
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect();
        assert_eq!(
            held,
            [
                "kafka-ext-0",
                "kafka-ext-1",
                "kafka-ext-2",
                "kafka-ext-1000"
            ]
        );
    }

    #[test]
    fn tls_listeners_mount_the_certificates_and_carry_their_generation() {
        let plain = spec(3, &["a", "b"]);
        let mut s = spec(3, &["a", "b"]);
        s.listeners[0].tls = true;
        let generations = BTreeMap::from([(1, 4)]);
        // A Cluster still replicating in plaintext (an earlier version's brokers).
        let pod_of = |s: &ClusterSpec| {
            let c = ClusterRef {
                replication: Replication::Plaintext,
                ..cref(s)
            };
            statefulsets(
                &c,
                &[2, 1],
                &[0],
                "h",
                &generations,
                &ExternalAddresses::default(),
            )
            .into_iter()
            .map(|set| set.spec.template)
            .collect::<Vec<_>>()
        };
        let annotation = |t: &PodTemplateSpec| {
            t.metadata
                .as_ref()
                .and_then(|m| m.annotations.as_ref())
                .and_then(|a| a.get(names::CERT_GENERATION_ANNOTATION).cloned())
        };
        let tls_pods = pod_of(&s);
        assert_eq!(annotation(&tls_pods[0]).as_deref(), Some("0"));
        assert_eq!(annotation(&tls_pods[1]).as_deref(), Some("4"));
        let pod = tls_pods[1].spec.as_ref().expect("pod");
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "tls")
            .and_then(|v| v.secret.as_ref())
            .expect("tls volume");
        assert_eq!(volume.secret_name.as_deref(), Some("kafka-broker-certs"));
        assert_eq!(volume.default_mode, Some(0o440));
        let mount = pod.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == "tls")
            .expect("tls mount");
        assert_eq!(mount.mount_path, "/etc/strait-tls");
        assert_eq!(mount.read_only, Some(true));
        // The keystore location the broker is given lies in that mount.
        assert!(
            pod.containers[0].args.as_ref().expect("args")[0]
                .contains("ssl.keystore.location=/etc/strait-tls/"),
        );
        // Plaintext clusters replicating in plaintext keep their pod template as it was (no
        // restart on upgrade).
        for t in pod_of(&plain) {
            assert_eq!(annotation(&t), None);
            let pod = t.spec.expect("pod");
            assert!(pod.volumes.iter().flatten().all(|v| v.name != "tls"));
            assert!(
                pod.containers[0]
                    .volume_mounts
                    .iter()
                    .flatten()
                    .all(|m| m.name != "tls")
            );
        }
    }

    #[test]
    fn mutual_tls_replication_mounts_the_certificates_of_plaintext_clusters_too() {
        let s = spec(3, &["a", "b"]);
        let legacy = ClusterRef {
            replication: Replication::Plaintext,
            ..cref(&s)
        };
        let sets = |c: &ClusterRef| {
            statefulsets(
                c,
                &[2, 1],
                &[0],
                "h",
                &BTreeMap::from([(0, 1)]),
                &ExternalAddresses::default(),
            )
        };
        let tls_sets = sets(&cref(&s));
        for set in &tls_sets {
            let t = &set.spec.template;
            let annotations = t
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.clone())
                .unwrap_or_default();
            assert_eq!(
                annotations
                    .get(tls::REPLICATION_ANNOTATION)
                    .map(String::as_str),
                Some("mutual-tls")
            );
            assert!(annotations.contains_key(names::CERT_GENERATION_ANNOTATION));
            let pod = t.spec.as_ref().expect("pod");
            assert!(pod.volumes.iter().flatten().any(|v| v.name == "tls"));
            let args = &pod.containers[0].args.as_ref().expect("args")[0];
            assert!(
                args.contains("listener.name.replication.ssl.keystore.location=/etc/strait-tls/")
            );
        }
        // What the controller reads back: these StatefulSets replicate over mutual TLS; one of
        // an earlier version (no annotation) among them makes the cluster plaintext.
        assert_eq!(tls::replication_of(&tls_sets), Replication::MutualTls);
        let legacy_sets = sets(&legacy);
        assert_eq!(tls::replication_of(&legacy_sets), Replication::Plaintext);
        assert_eq!(
            tls::replication_of([&tls_sets[0], &legacy_sets[1]]),
            Replication::Plaintext
        );
        for set in &legacy_sets {
            let pod = set.spec.template.spec.as_ref().expect("pod");
            assert!(pod.volumes.iter().flatten().all(|v| v.name != "tls"));
            assert!(!pod.containers[0].args.as_ref().expect("args")[0].contains("ssl."));
        }
        let props =
            |c: &ClusterRef| config_map(c, &[0]).data.expect("data")["server.properties"].clone();
        assert!(props(&cref(&s)).contains("REPLICATION:SSL"));
        assert!(props(&legacy).contains("REPLICATION:PLAINTEXT"));
    }

    #[test]
    fn certificate_secrets() {
        let s = spec(3, &["a"]);
        let ca = Ca {
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
        };
        let full = cluster_ca_secret(&cref(&s), &ca);
        assert_eq!(full.metadata.name.as_deref(), Some("kafka-cluster-ca"));
        let keys: Vec<&String> = full.data.iter().flatten().map(|(k, _)| k).collect();
        assert_eq!(keys, ["ca.crt", "ca.key"]);
        let public = cluster_ca_cert_secret(&cref(&s), &ca);
        assert_eq!(
            public.metadata.name.as_deref(),
            Some("kafka-cluster-ca-cert")
        );
        assert_eq!(
            public.data,
            Some(BTreeMap::from([(
                "ca.crt".to_owned(),
                ByteString(b"CERT".to_vec())
            )]))
        );
        let brokers = broker_certs_secret(
            &cref(&s),
            &ca,
            BTreeMap::from([("kafka-z0-0.pem".to_owned(), "PEM".to_owned())]),
            &BTreeMap::from([(0, 2)]),
        );
        assert_eq!(brokers.metadata.name.as_deref(), Some("kafka-broker-certs"));
        // Each broker's keystore, and the CA certificate as the brokers' truststore.
        assert_eq!(
            brokers.data,
            Some(BTreeMap::from([
                ("ca.crt".to_owned(), ByteString(b"CERT".to_vec())),
                ("kafka-z0-0.pem".to_owned(), ByteString(b"PEM".to_vec())),
            ]))
        );
        let operator = operator_certs_secret(&cref(&s), &ca, "KEYSTORE".into());
        assert_eq!(
            operator.metadata.name.as_deref(),
            Some("kafka-operator-certs")
        );
        assert_eq!(
            operator.data,
            Some(BTreeMap::from([
                ("ca.crt".to_owned(), ByteString(b"CERT".to_vec())),
                ("operator.pem".to_owned(), ByteString(b"KEYSTORE".to_vec())),
            ]))
        );
        assert!(operator.metadata.owner_references.is_some() == cref(&s).owner.is_some());
        assert_eq!(
            brokers
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("strait.dev/certificate-generation-z0"))
                .map(String::as_str),
            Some("2")
        );
    }

    #[test]
    fn pdb_allows_one_broker_down() {
        let s = spec(3, &["a"]);
        let pdb = pod_disruption_budget(&cref(&s));
        let spec = pdb.spec.expect("spec");
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(
            spec.selector.and_then(|s| s.match_labels),
            Some(names::selector_labels("kafka"))
        );
    }

    #[test]
    fn config_map_and_service_account() {
        let s = spec(3, &["a"]);
        let cm = config_map(&cref(&s), &[0, 1, 2]);
        let props = &cm.data.expect("data")["server.properties"];
        assert!(props.contains("listeners="));
        assert!(props.contains("controller.quorum.voters=0@kafka-z0-0.kafka-brokers.ns.svc:9093,"));
        assert_eq!(
            service_account(&cref(&s)).automount_service_account_token,
            Some(false)
        );
    }

    #[test]
    fn service_monitor_only_when_enabled() {
        let mut s = spec(3, &["a"]);
        assert!(service_monitor(&cref(&s)).is_none());
        s.metrics = Some(Metrics {
            enabled: true,
            port: None,
            service_monitor: Some(ServiceMonitorSpec {
                enabled: true,
                interval: Some("15s".into()),
                labels: BTreeMap::from([("release".into(), "prom".into())]),
            }),
        });
        let sm = service_monitor(&cref(&s)).expect("service monitor");
        assert_eq!(
            sm.types.as_ref().map(|t| t.kind.as_str()),
            Some("ServiceMonitor")
        );
        assert_eq!(sm.data["spec"]["endpoints"][0]["interval"], "15s");
        assert_eq!(sm.metadata.labels.expect("labels")["release"], "prom");
    }

    #[test]
    fn claims_follow_storage_spec() {
        let mut s = spec(1, &["a"]);
        s.storage.delete_claim = true;
        s.storage.storage_class = Some("fast".into());
        let set = statefulset(
            &cref(&s),
            0,
            "a",
            1,
            &[0],
            "h",
            0,
            &ExternalAddresses::default(),
        )
        .spec;
        let claim = &set.volume_claim_templates.expect("claims")[0];
        let cs = claim.spec.as_ref().expect("spec");
        assert_eq!(cs.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(
            cs.resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .expect("req")["storage"],
            Quantity("10Gi".into())
        );
        assert_eq!(
            set.persistent_volume_claim_retention_policy
                .and_then(|p| p.when_scaled)
                .as_deref(),
            Some("Delete")
        );
    }
}
