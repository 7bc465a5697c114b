//! One StatefulSet per zone: the broker pods (start command, probes, affinity to the zone,
//! certificates mounted when needed, the configuration hash that rolls them) and their claims.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetOrdinals, StatefulSetPersistentVolumeClaimRetentionPolicy,
    StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    KeyToPath, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SecretVolumeSource, TCPSocketAction,
    Volume, VolumeMount, VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use strait_crds::cluster::REPLICATION_PORT;

use crate::cluster::config;
use crate::cluster::external::ExternalAddresses;
use crate::cluster::identity::{ClusterRef, ordinal_start};
use crate::cluster::quorum::{CONTROLLER_PORT, Controllers};
use crate::cluster::tiered;
use crate::cluster::tls;
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

/// The StatefulSets, one per zone, with `replicas[i]` brokers in zone `i` (the controller may
/// hold a zone at its current size while partitions move off leaving brokers); `controllers`
/// are the node ids that run the controller role (seed voters and joining ones), `external` the brokers' known external addresses,
/// `cert_generations` each zone's broker certificate generation (with TLS listeners).
pub fn statefulsets(
    c: &ClusterRef,
    replicas: &[i32],
    controllers: &Controllers,
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
                &controllers.in_zone(i),
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
    controllers: &Controllers,
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
    if c.replication.replication_tls() {
        // How the controller tells these brokers from an earlier version's plaintext ones.
        annotations.insert(
            tls::REPLICATION_ANNOTATION.to_owned(),
            tls::REPLICATION_MUTUAL_TLS.to_owned(),
        );
    }
    if c.replication.controller_tls() {
        // And from a version whose quorum is plaintext.
        annotations.insert(
            tls::CONTROLLER_ANNOTATION.to_owned(),
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
            controllers,
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
        volume_mounts: Some(
            volume_mounts(
                tls,
                config::needs_clients_ca(c.spec),
                jwks_volume(c.spec).is_some(),
            )
            .into_iter()
            .chain(tiered::volume_mount(c.spec))
            .collect(),
        ),
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

/// Name of the pods' volume with the clients CA certificate.
const CLIENTS_CA_VOLUME: &str = "clients-ca";
/// Name of the pods' volume with the JSON Web Key Set of an `oauth` listener.
const OAUTH_VOLUME: &str = "oauth-jwks";

/// The volume with the `oauth` listener's key set (its ConfigMap or Secret key as
/// [`names::JWKS_FILE`]), if there is such a listener.
fn jwks_volume(spec: &strait_crds::ClusterSpec) -> Option<Volume> {
    let jwks = config::oauth_listener(spec)?
        .authentication
        .as_ref()?
        .jwks
        .as_ref()?;
    let item = |key: &str| {
        vec![KeyToPath {
            key: key.to_owned(),
            path: names::JWKS_FILE.to_owned(),
            ..KeyToPath::default()
        }]
    };
    let mut volume = Volume {
        name: OAUTH_VOLUME.to_owned(),
        ..Volume::default()
    };
    if let Some(r) = &jwks.config_map_key_ref {
        volume.config_map = Some(ConfigMapVolumeSource {
            name: r.name.clone(),
            items: Some(item(&r.key)),
            ..ConfigMapVolumeSource::default()
        });
    } else if let Some(r) = &jwks.secret_key_ref {
        volume.secret = Some(SecretVolumeSource {
            secret_name: Some(r.name.clone()),
            items: Some(item(&r.key)),
            ..SecretVolumeSource::default()
        });
    } else {
        return None;
    }
    Some(volume)
}

/// The broker container's mounts: data, configuration, with `tls` the certificates and with
/// `clients_ca` the clients CA certificate, with `oauth` the JSON Web Key Set.
fn volume_mounts(tls: bool, clients_ca: bool, oauth: bool) -> Vec<VolumeMount> {
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
    if clients_ca {
        mounts.push(VolumeMount {
            name: CLIENTS_CA_VOLUME.to_owned(),
            mount_path: names::CLIENTS_CA_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    if oauth {
        mounts.push(VolumeMount {
            name: OAUTH_VOLUME.to_owned(),
            mount_path: names::OAUTH_DIR.to_owned(),
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
    volumes.extend(jwks_volume(c.spec));
    volumes.extend(tiered::volume(c.spec));
    if config::needs_clients_ca(c.spec) {
        volumes.push(Volume {
            name: CLIENTS_CA_VOLUME.to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names::clients_ca_cert(c.name)),
                default_mode: Some(0o444),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    volumes
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
    // The object store's credentials, kept out of the rendered configuration.
    env.extend(tiered::env(c.spec));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::build::configmap::config_map;
    use crate::cluster::build::services::{bootstrap_services, headless_service};
    use crate::cluster::identity::Replication;
    use crate::cluster::identity::desired_node_ids;
    use crate::cluster::identity::tests::{cref, spec};
    use strait_crds::ClusterSpec;

    #[test]
    fn one_statefulset_per_zone_with_affinity_rack_and_disjoint_node_ids() {
        let s = spec(5, &["a", "b", "c"]);
        let c = cref(&s);
        let sets = statefulsets(
            &c,
            &[2, 2, 1],
            &Controllers::seeded(&[0, 1000, 2000]),
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
            &Controllers::seeded(&voters),
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
            &Controllers::seeded(&[0]),
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
                &Controllers::seeded(&[0]),
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
                &Controllers::seeded(&[0]),
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
        // A cluster whose quorum was started plaintext keeps its CONTROLLER listener plaintext:
        // its templates lack the controller marker, which new clusters carry.
        let quorum_plaintext = ClusterRef {
            replication: Replication::MutualTlsPlaintextQuorum,
            ..cref(&s)
        };
        let older = sets(&quorum_plaintext);
        assert_eq!(
            tls::replication_of(&older),
            Replication::MutualTlsPlaintextQuorum
        );
        assert_eq!(
            tls::replication_of([&tls_sets[0], &older[1]]),
            Replication::MutualTlsPlaintextQuorum
        );
        let args = |sets: &[StatefulSet]| {
            sets[0].spec.template.spec.as_ref().expect("pod").containers[0]
                .args
                .as_ref()
                .expect("args")[0]
                .clone()
        };
        assert!(args(&tls_sets).contains("listener.name.controller.ssl.keystore.location="));
        assert!(!args(&older).contains("listener.name.controller."));
        assert!(args(&older).contains("listener.name.replication.ssl.keystore.location="));
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
    fn claims_follow_storage_spec() {
        let mut s = spec(1, &["a"]);
        s.storage.delete_claim = true;
        s.storage.storage_class = Some("fast".into());
        let set = statefulset(
            &cref(&s),
            0,
            "a",
            1,
            &Controllers::seeded(&[0]),
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
