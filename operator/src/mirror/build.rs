//! The objects a validated Mirror runs as, built as pure functions: the ConfigMap with
//! `mm2.properties`, the Deployment of `strait-mirror` processes (the configuration's hash on
//! the pod template so that a change rolls them, credentials only from Secrets; 0 replicas
//! once failing over), the failover Job of a linked Mirror (`strait-mirror --failover` on the
//! same configuration), and the optional PodMonitor. All are owned by the Mirror, so deleting
//! it removes them.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource, KeyToPath,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SecretKeySelector, SecretVolumeSource,
    TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use strait_crds::Mirror;

use crate::cluster::build::statefulset::DEFAULT_IMAGE;
use crate::cluster::config::config_hash;
use crate::mirror::config::{
    CA_FILE, CONFIG_DIR, CONFIG_FILE, METRICS_PORT, Role, TLS_DIR, mm2_properties,
};
use crate::mirror::failover::{BACKOFF_LIMIT, Plan, job_name};
use crate::mirror::validate::{Endpoint, Validated};
use crate::names;

/// Label with the owning Mirror's name.
pub const MIRROR_LABEL: &str = "strait.dev/mirror";
/// User and group id of `strait-mirror` in the broker image (operator/images/broker.Dockerfile).
const MIRROR_UID: i64 = 65532;

/// The objects of one Mirror.
#[derive(Clone, Debug)]
pub struct Built {
    /// The rendered `mm2.properties`.
    pub properties: String,
    /// Its SHA-256 (hex), on the pod template.
    pub config_hash: String,
    /// ConfigMap `<mirror>-mirror-config`.
    pub config_map: ConfigMap,
    /// Deployment `<mirror>-mirror`.
    pub deployment: Deployment,
    /// Job `<mirror>-failover`, while failing over (created once, never changed).
    pub failover_job: Option<Job>,
    /// PodMonitor `<mirror>-mirror`, when asked for.
    pub pod_monitor: Option<DynamicObject>,
}

/// Name of a Mirror's Deployment (and PodMonitor).
pub fn deployment_name(mirror: &str) -> String {
    format!("{mirror}-mirror")
}

/// Name of a Mirror's ConfigMap.
pub fn config_map_name(mirror: &str) -> String {
    format!("{mirror}-mirror-config")
}

/// Labels selecting a Mirror's pods.
pub fn selector_labels(mirror: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            "strait-mirror".to_owned(),
        ),
        ("app.kubernetes.io/instance".to_owned(), mirror.to_owned()),
        (names::COMPONENT_LABEL.to_owned(), "mirror".to_owned()),
        (MIRROR_LABEL.to_owned(), mirror.to_owned()),
    ])
}

/// Labels of the failover Job's pod: the Mirror's, another component (so that neither the
/// Deployment's selector nor the PodMonitor's picks it).
pub fn failover_labels(mirror: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(mirror);
    labels.insert(
        names::COMPONENT_LABEL.to_owned(),
        "mirror-failover".to_owned(),
    );
    labels
}

/// The prometheus-operator PodMonitor kind.
pub fn pod_monitor_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "monitoring.coreos.com",
        "v1",
        "PodMonitor",
    ))
}

/// Builds the objects of `mirror` (named `name` in `namespace`) as `validated`, with the
/// failover `plan` of this pass.
pub fn build(
    mirror: &Mirror,
    name: &str,
    namespace: &str,
    validated: &Validated,
    plan: &Plan,
) -> Built {
    let properties = mm2_properties(mirror, validated);
    let hash = config_hash(&properties);
    let meta = |object: String, mut labels: BTreeMap<String, String>| {
        labels.insert(
            names::MANAGED_BY_LABEL.to_owned(),
            names::MANAGER.to_owned(),
        );
        ObjectMeta {
            name: Some(object),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            owner_references: mirror.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        }
    };
    let config_map = ConfigMap {
        metadata: meta(config_map_name(name), selector_labels(name)),
        data: Some(BTreeMap::from([(
            CONFIG_FILE.to_owned(),
            properties.clone(),
        )])),
        ..ConfigMap::default()
    };
    let pod = PodParts::new(mirror, name, validated);
    let replicas = if plan.mirrors() {
        mirror.spec.replicas
    } else {
        0
    };
    let deployment = deployment(
        name,
        meta(deployment_name(name), selector_labels(name)),
        &pod,
        replicas,
        &hash,
    );
    let failover_job = (*plan == Plan::FailOver)
        .then(|| failover_job(meta(job_name(name), failover_labels(name)), &pod));
    let pod_monitor = pod_monitor(
        mirror,
        name,
        meta(deployment_name(name), selector_labels(name)),
        namespace,
    );
    Built {
        properties,
        config_hash: hash,
        config_map,
        deployment,
        failover_job,
        pod_monitor,
    }
}

/// What the mirror's pods share, the Deployment's and the failover Job's: the image, the
/// configuration and CA volumes and their mounts, the passwords' environment from their
/// Secrets, the resources and the non-root security context.
struct PodParts {
    image: String,
    env: Option<Vec<EnvVar>>,
    volumes: Vec<Volume>,
    mounts: Vec<VolumeMount>,
    resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,
}

impl PodParts {
    fn new(mirror: &Mirror, name: &str, v: &Validated) -> Self {
        let spec = &mirror.spec;
        let ends = [(Role::Source, &v.source), (Role::Target, &v.target)];
        let env: Vec<EnvVar> = ends
            .iter()
            .filter_map(|(role, e)| {
                let sasl = e.sasl.as_ref()?;
                Some(EnvVar {
                    name: role.password_env().to_owned(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: sasl.password_secret.name.clone(),
                            key: sasl.password_secret.key.clone(),
                            optional: Some(false),
                        }),
                        ..EnvVarSource::default()
                    }),
                    ..EnvVar::default()
                })
            })
            .collect();
        let mut volumes = vec![Volume {
            name: "config".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map_name(name),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        }];
        let mut mounts = vec![VolumeMount {
            name: "config".to_owned(),
            mount_path: CONFIG_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        }];
        for (role, e) in ends {
            if let Some(volume) = ca_volume(role, e) {
                mounts.push(VolumeMount {
                    name: volume.name.clone(),
                    mount_path: format!("{TLS_DIR}/{}", role.name()),
                    read_only: Some(true),
                    ..VolumeMount::default()
                });
                volumes.push(volume);
            }
        }
        PodParts {
            image: spec
                .image
                .clone()
                .unwrap_or_else(|| DEFAULT_IMAGE.to_owned()),
            env: (!env.is_empty()).then_some(env),
            volumes,
            mounts,
            resources: spec.resources.clone(),
        }
    }

    /// A container of `strait-mirror` on the rendered configuration, with `args` after it.
    fn container(&self, name: &str, args: &[String]) -> Container {
        let mut command = vec![
            "strait-mirror".to_owned(),
            "--config".to_owned(),
            format!("{CONFIG_DIR}/{CONFIG_FILE}"),
        ];
        command.extend_from_slice(args);
        Container {
            name: name.to_owned(),
            image: Some(self.image.clone()),
            command: Some(command),
            env: self.env.clone(),
            volume_mounts: Some(self.mounts.clone()),
            resources: self.resources.clone(),
            ..Container::default()
        }
    }

    fn pod_spec(&self, container: Container) -> PodSpec {
        PodSpec {
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(MIRROR_UID),
                run_as_group: Some(MIRROR_UID),
                ..PodSecurityContext::default()
            }),
            containers: vec![container],
            volumes: Some(self.volumes.clone()),
            ..PodSpec::default()
        }
    }
}

fn deployment(
    name: &str,
    metadata: ObjectMeta,
    pod: &PodParts,
    replicas: i32,
    hash: &str,
) -> Deployment {
    let container = Container {
        ports: Some(vec![ContainerPort {
            name: Some("metrics".to_owned()),
            container_port: METRICS_PORT,
            ..ContainerPort::default()
        }]),
        // Up once it serves metrics; the engine's own health is in its metrics and logs.
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String("metrics".to_owned()),
                ..TCPSocketAction::default()
            }),
            period_seconds: Some(10),
            ..Probe::default()
        }),
        ..pod.container(
            "mirror",
            &[
                "--metrics-addr".to_owned(),
                format!("0.0.0.0:{METRICS_PORT}"),
            ],
        )
    };
    let selector = selector_labels(name);
    Deployment {
        metadata,
        spec: DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(selector),
                    annotations: Some(BTreeMap::from([(
                        names::CONFIG_HASH_ANNOTATION.to_owned(),
                        hash.to_owned(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod.pod_spec(container)),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}

/// The Job running `strait-mirror --failover` once on the same configuration, volumes and
/// credentials as the Deployment; a failed attempt's log tail is its termination message,
/// which the status reports.
fn failover_job(metadata: ObjectMeta, pod: &PodParts) -> Job {
    let labels = metadata.labels.clone();
    let container = Container {
        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
        ..pod.container("failover", &["--failover".to_owned()])
    };
    Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(BACKOFF_LIMIT),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels,
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_owned()),
                    ..pod.pod_spec(container)
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

/// The Secret volume with `e`'s CA certificate as `ca.crt`, when it uses TLS.
fn ca_volume(role: Role, e: &Endpoint) -> Option<Volume> {
    let ca = e.tls_ca.as_ref()?;
    Some(Volume {
        name: format!("{}-ca", role.name()),
        secret: Some(SecretVolumeSource {
            secret_name: Some(ca.name.clone()),
            items: Some(vec![KeyToPath {
                key: ca.key.clone(),
                path: CA_FILE.to_owned(),
                ..KeyToPath::default()
            }]),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    })
}

/// The PodMonitor scraping every mirror pod's metrics port, when `spec.podMonitor.enabled`.
fn pod_monitor(
    mirror: &Mirror,
    name: &str,
    mut metadata: ObjectMeta,
    namespace: &str,
) -> Option<DynamicObject> {
    let pm = mirror.spec.pod_monitor.as_ref().filter(|p| p.enabled)?;
    let mut labels = metadata.labels.take().unwrap_or_default();
    labels.extend(pm.labels.clone());
    metadata.labels = Some(labels);
    let mut endpoint = serde_json::json!({"port": "metrics", "path": "/metrics"});
    if let Some(interval) = &pm.interval {
        endpoint["interval"] = serde_json::Value::String(interval.clone());
    }
    let mut obj =
        DynamicObject::new(&deployment_name(name), &pod_monitor_resource()).within(namespace);
    obj.metadata = metadata;
    obj.data = serde_json::json!({
        "spec": {
            "selector": {"matchLabels": selector_labels(name)},
            "podMetricsEndpoints": [endpoint],
        }
    });
    Some(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::validate::tests::{cluster, mirror, plain};
    use crate::mirror::validate::validate;
    use serde_json::{Value, json};

    fn built(spec: Value) -> Built {
        built_with(spec, &Plan::Mirror)
    }

    fn built_with(spec: Value, plan: &Plan) -> Built {
        let m = mirror(spec);
        let east = cluster("east", plain(), true);
        let west = cluster("west", plain(), true);
        let v = validate(&m, "ns", Some(&east), Some(&west)).unwrap_or_else(|r| panic!("{r:?}"));
        build(&m, "dr", "ns", &v, plan)
    }

    #[test]
    fn the_deployment_runs_strait_mirror_on_the_rendered_config() {
        let b = built(json!({
            "source": {"bootstrapServers": "a:9093",
                       "tls": {"caCert": {"name": "east-ca", "key": "root.pem"}},
                       "sasl": {"mechanism": "PLAIN", "username": "u",
                                "passwordSecret": {"name": "east-pw", "key": "pw"}}},
            "target": {"clusterRef": {"name": "west"}},
            "replicas": 3,
            "podMonitor": {"enabled": true, "interval": "15s", "labels": {"release": "prom"}}
        }));
        let d = serde_json::to_value(&b.deployment).unwrap_or(Value::Null);
        assert_eq!(d["metadata"]["name"], "dr-mirror");
        assert_eq!(d["metadata"]["ownerReferences"][0]["kind"], "Mirror");
        assert_eq!(d["spec"]["replicas"], 3);
        let pod = &d["spec"]["template"];
        assert_eq!(
            pod["metadata"]["annotations"]["strait.dev/config-hash"],
            b.config_hash.as_str()
        );
        let c = &pod["spec"]["containers"][0];
        assert_eq!(
            c["command"],
            json!([
                "strait-mirror",
                "--config",
                "/etc/strait-mirror/mm2.properties",
                "--metrics-addr",
                "0.0.0.0:9404"
            ])
        );
        assert_eq!(
            c["ports"][0],
            json!({"name": "metrics", "containerPort": 9404})
        );
        assert_eq!(
            c["env"],
            json!([{"name": "STRAIT_MIRROR_SOURCE_PASSWORD", "valueFrom": {"secretKeyRef":
                    {"name": "east-pw", "key": "pw", "optional": false}}}])
        );
        assert_eq!(
            pod["spec"]["volumes"][1],
            json!({"name": "source-ca", "secret": {"secretName": "east-ca",
                   "items": [{"key": "root.pem", "path": "ca.crt"}]}})
        );
        assert_eq!(
            c["volumeMounts"][1]["mountPath"],
            "/etc/strait-mirror-tls/source"
        );
        // The password is never in the ConfigMap.
        let cm = serde_json::to_value(&b.config_map).unwrap_or(Value::Null);
        assert_eq!(cm["metadata"]["name"], "dr-mirror-config");
        assert_eq!(cm["data"]["mm2.properties"], b.properties.as_str());
        assert!(
            b.properties
                .contains("${env:STRAIT_MIRROR_SOURCE_PASSWORD}")
        );
        let pm = b.pod_monitor.unwrap_or_else(|| panic!("a PodMonitor"));
        assert_eq!(pm.data["spec"]["podMetricsEndpoints"][0]["interval"], "15s");
        assert_eq!(
            pm.data["spec"]["selector"]["matchLabels"]["strait.dev/mirror"],
            "dr"
        );
        assert_eq!(pm.metadata.labels.unwrap_or_default()["release"], "prom");
    }

    #[test]
    fn a_spec_change_changes_the_hash_and_nothing_else_does() {
        let spec = json!({"source": {"clusterRef": {"name": "east"}},
                          "target": {"clusterRef": {"name": "west"}}});
        let (a, b) = (built(spec.clone()), built(spec.clone()));
        assert_eq!(a.config_hash, b.config_hash);
        let mut changed = spec;
        changed["topics"] = json!(["orders"]);
        assert_ne!(built(changed).config_hash, a.config_hash);
        assert!(a.pod_monitor.is_none());
        assert!(a.failover_job.is_none());
    }

    #[test]
    fn failing_over_stops_the_deployment_and_runs_the_failover_job_like_its_pods() {
        let spec = json!({
            "source": {"bootstrapServers": "a:9093",
                       "tls": {"caCert": {"name": "east-ca", "key": "root.pem"}},
                       "sasl": {"mechanism": "PLAIN", "username": "u",
                                "passwordSecret": {"name": "east-pw", "key": "pw"}}},
            "target": {"clusterRef": {"name": "west"}},
            "mode": "linked",
            "failover": true,
            "replicas": 3,
            "image": "registry.example/strait:1",
            "resources": {"limits": {"memory": "1Gi"}}
        });
        let mirroring = built_with(spec.clone(), &Plan::Mirror);
        assert!(mirroring.failover_job.is_none());
        assert_eq!(mirroring.deployment.spec.replicas, Some(3));
        let b = built_with(spec.clone(), &Plan::FailOver);
        // Only the replicas change: the same configuration keeps the same pod template.
        assert_eq!(b.deployment.spec.replicas, Some(0));
        assert_eq!(b.config_hash, mirroring.config_hash);
        assert_eq!(
            b.deployment.spec.template,
            mirroring.deployment.spec.template
        );
        let job = b
            .failover_job
            .clone()
            .unwrap_or_else(|| panic!("a failover Job"));
        let j = serde_json::to_value(&job).unwrap_or(Value::Null);
        assert_eq!(j["metadata"]["name"], "dr-failover");
        assert_eq!(j["metadata"]["namespace"], "ns");
        assert_eq!(j["metadata"]["ownerReferences"][0]["kind"], "Mirror");
        assert_eq!(j["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(j["spec"]["backoffLimit"], BACKOFF_LIMIT);
        let pod = &j["spec"]["template"];
        assert_eq!(
            pod["metadata"]["labels"]["app.kubernetes.io/component"],
            "mirror-failover"
        );
        assert_eq!(pod["metadata"]["labels"]["strait.dev/mirror"], "dr");
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        let c = &pod["spec"]["containers"][0];
        assert_eq!(
            c["command"],
            json!([
                "strait-mirror",
                "--config",
                "/etc/strait-mirror/mm2.properties",
                "--failover"
            ])
        );
        assert_eq!(c["image"], "registry.example/strait:1");
        assert_eq!(c["terminationMessagePolicy"], "FallbackToLogsOnError");
        assert!(c.get("ports").is_none() && c.get("readinessProbe").is_none());
        // Same configuration, CA volume, Secret env, resources and user as the mirror pods.
        let d = serde_json::to_value(&b.deployment).unwrap_or(Value::Null);
        let dpod = &d["spec"]["template"]["spec"];
        let dc = &dpod["containers"][0];
        for key in ["env", "volumeMounts", "resources", "image"] {
            assert_eq!(c[key], dc[key], "{key}");
        }
        assert_eq!(pod["spec"]["volumes"], dpod["volumes"]);
        assert_eq!(pod["spec"]["securityContext"], dpod["securityContext"]);
        assert_eq!(
            pod["spec"]["volumes"][0],
            json!({"name": "config", "configMap": {"name": "dr-mirror-config"}})
        );
        assert_eq!(c["env"][0]["valueFrom"]["secretKeyRef"]["name"], "east-pw");
        // The Job's pods are not the Deployment's nor the PodMonitor's.
        let selector = &d["spec"]["selector"]["matchLabels"];
        assert_ne!(&pod["metadata"]["labels"], selector);
        // Failed over: still stopped, no Job to create.
        let done = built_with(spec, &Plan::FailedOver { at: None });
        assert_eq!(done.deployment.spec.replicas, Some(0));
        assert!(done.failover_job.is_none());
    }
}
