//! Checks a Mirror against what the reads found (its source and target Clusters) and resolves
//! how the mirror process reaches each cluster, as a pure function: either a [`Validated`]
//! mirror the builders render, or a [`Refusal`] with the reason the status reports.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use regex::Regex;
use strait_crds::cluster::{Cluster, ListenerAuthenticationType, ListenerType};
use strait_crds::mirror::{
    MirrorClusterRef, MirrorMode, MirrorSasl, ReplicationPolicy, SaslMechanism,
};
use strait_crds::{Mirror, SecretKeyRef};

use crate::cluster::certs::CA_CERT_KEY;
use crate::names;

/// A spec the operator will not run, or cannot run yet: the `Ready` condition's reason and
/// message, and whether waiting can cure it (a Cluster not yet there or not yet ready).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// CamelCase reason.
    pub reason: &'static str,
    /// What is wrong and what to do.
    pub message: String,
    /// Whether the pass is retried without a spec change.
    pub transient: bool,
}

impl Refusal {
    fn spec(reason: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            reason,
            message: message.into(),
            transient: false,
        }
    }

    fn waiting(reason: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            reason,
            message: message.into(),
            transient: true,
        }
    }
}

/// How the mirror process reaches one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The cluster's alias in `mm2.properties`.
    pub alias: String,
    /// `host:port,...`.
    pub bootstrap: String,
    /// The Secret key with the CA certificate (PEM) to trust; `None`: plaintext.
    pub tls_ca: Option<SecretKeyRef>,
    /// SASL credentials; `None`: no SASL.
    pub sasl: Option<MirrorSasl>,
    /// The Strait Cluster, when the endpoint is one (the operator reaches it for lag).
    pub cluster: Option<String>,
}

/// Topic or group selection: include and exclude regular expressions, matched whole (as
/// MirrorMaker 2's `topics`/`topics.exclude` are).
#[derive(Clone, Debug)]
pub struct Selection {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

/// MirrorMaker 2's default `topics.exclude`.
pub const DEFAULT_TOPICS_EXCLUDE: [&str; 3] = [r".*[\-\.]internal", r".*\.replica", r"__.*"];

impl Selection {
    /// Compiles the patterns (anchored at both ends); `include` empty means every name.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, String> {
        let compile = |patterns: &[String]| -> Result<Vec<Regex>, String> {
            patterns
                .iter()
                .map(|p| {
                    if p.contains(',') {
                        return Err(format!(
                            "pattern {p:?} contains a comma, which mm2.properties lists use as separator"
                        ));
                    }
                    Regex::new(&format!("^(?:{p})$"))
                        .map_err(|e| format!("pattern {p:?} does not compile: {e}"))
                })
                .collect()
        };
        Ok(Selection {
            include: compile(include)?,
            exclude: compile(exclude)?,
        })
    }

    /// Whether `name` is selected.
    pub fn selects(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(name)))
            && !self.exclude.iter().any(|r| r.is_match(name))
    }
}

/// A Mirror the operator runs.
#[derive(Clone, Debug)]
pub struct Validated {
    /// The source cluster.
    pub source: Endpoint,
    /// The target Strait Cluster.
    pub target: Endpoint,
    /// Which source topics are mirrored (spec's, else MirrorMaker 2's default exclusions).
    pub topics: Selection,
    /// The replication policy.
    pub policy: ReplicationPolicy,
    /// Its separator.
    pub separator: String,
}

impl Validated {
    /// The name of `topic`'s mirror on the target under the replication policy.
    pub fn target_topic(&self, topic: &str) -> String {
        match self.policy {
            ReplicationPolicy::Default => {
                format!("{}{}{topic}", self.source.alias, self.separator)
            }
            ReplicationPolicy::Identity => topic.to_owned(),
        }
    }

    /// Whether source `topic` is mirrored: selected, not internal (MirrorMaker 2's
    /// `isInternalTopic`: `__*`, `.*`, `*.internal`, `*-internal`, whatever the exclusions), and
    /// not itself a mirror of the target (its cycle detection under the default policy).
    pub fn mirrors(&self, topic: &str) -> bool {
        let internal = topic.starts_with("__")
            || topic.starts_with('.')
            || topic.ends_with(".internal")
            || topic.ends_with("-internal");
        let from_target = format!("{}{}", self.target.alias, self.separator);
        self.topics.selects(topic)
            && !internal
            && !(self.policy == ReplicationPolicy::Default && topic.starts_with(&from_target))
    }
}

/// `mm2.properties` keys the operator renders from the spec: `spec.config` may not set them,
/// with or without a cluster alias or `source->target.` prefix.
const OWNED_KEYS: [&str; 18] = [
    "clusters",
    "mirror.mode",
    "enabled",
    "topics",
    "topics.exclude",
    "topics.blacklist",
    "groups",
    "groups.exclude",
    "groups.blacklist",
    "replication.policy.class",
    "replication.policy.separator",
    "replication.factor",
    "refresh.topics.interval.seconds",
    "sync.topic.configs.enabled",
    "emit.checkpoints.interval.seconds",
    "sync.group.offsets.enabled",
    "bootstrap.servers",
    "security.protocol",
];

/// Prefixes of owned keys (security and the config providers that resolve credentials).
const OWNED_PREFIXES: [&str; 3] = ["ssl.", "sasl.", "config.providers"];

/// Whether `key` of `spec.config` is one the operator renders.
pub fn is_owned_key(key: &str, aliases: [&str; 2]) -> bool {
    let base = match key.split_once("->") {
        // `a->b.rest`: the flow-scoped form of `rest`.
        Some((_, flow)) => flow.split_once('.').map_or("", |(_, rest)| rest),
        None => aliases
            .iter()
            .find_map(|a| key.strip_prefix(a).and_then(|k| k.strip_prefix('.')))
            .unwrap_or(key),
    };
    OWNED_KEYS.contains(&base) || OWNED_PREFIXES.iter().any(|p| base.starts_with(p))
}

/// Whether a Cluster's `Ready` condition is true.
fn ready(cluster: &Cluster) -> bool {
    cluster
        .status
        .as_ref()
        .map_or(&[] as &[Condition], |s| &s.conditions)
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Validates `mirror` in `namespace` with the Clusters found for its source (`None` for
/// bootstrap servers, or when not found) and target.
pub fn validate(
    mirror: &Mirror,
    namespace: &str,
    source_cluster: Option<&Cluster>,
    target_cluster: Option<&Cluster>,
) -> Result<Validated, Refusal> {
    let spec = &mirror.spec;
    if spec.failover && spec.mode != MirrorMode::Linked {
        return Err(Refusal::spec(
            "FailoverNotSupported",
            "failover is only for mode linked, whose mirror topics keep the source's offsets; \
             with mm2, move consumers to the target with their translated (checkpointed) offsets",
        ));
    }
    let (source_alias, target_alias) = (mirror.source_alias(), mirror.target_alias());
    if source_alias == target_alias {
        return Err(Refusal::spec(
            "AliasesNotDistinct",
            format!(
                "source and target both have alias {source_alias}; set sourceAlias or targetAlias"
            ),
        ));
    }
    let owned: Vec<&String> = spec
        .config
        .keys()
        .filter(|k| is_owned_key(k, [source_alias, target_alias]))
        .collect();
    if !owned.is_empty() {
        return Err(Refusal::spec(
            "ConfigKeyReserved",
            format!(
                "config keys {owned:?} are rendered by the operator from the Mirror's fields; \
                 set those fields instead"
            ),
        ));
    }
    let exclude: Vec<String> = if spec.topics_exclude.is_empty() {
        DEFAULT_TOPICS_EXCLUDE.map(str::to_owned).to_vec()
    } else {
        spec.topics_exclude.clone()
    };
    let topics = Selection::new(&spec.topics, &exclude)
        .map_err(|m| Refusal::spec("InvalidPattern", format!("topics: {m}")))?;
    Selection::new(&spec.groups, &spec.groups_exclude)
        .map_err(|m| Refusal::spec("InvalidPattern", format!("groups: {m}")))?;

    let target_ref = &spec.target.cluster_ref;
    let target_cluster = target_cluster.ok_or_else(|| {
        Refusal::waiting(
            "TargetNotFound",
            format!(
                "target Cluster {} not found in namespace {namespace}",
                target_ref.name
            ),
        )
    })?;
    if !ready(target_cluster) {
        return Err(Refusal::waiting(
            "TargetNotReady",
            format!(
                "target Cluster {} is not Ready; mirroring starts once it is",
                target_ref.name
            ),
        ));
    }
    let target = cluster_endpoint(
        target_cluster,
        target_ref,
        namespace,
        target_alias,
        spec.target.sasl.as_ref(),
        "target",
    )?;
    let source = match (&spec.source.cluster_ref, &spec.source.bootstrap_servers) {
        (Some(source_ref), None) => {
            let cluster = source_cluster.ok_or_else(|| {
                Refusal::waiting(
                    "SourceNotFound",
                    format!(
                        "source Cluster {} not found in namespace {namespace}",
                        source_ref.name
                    ),
                )
            })?;
            if source_ref.name == target_ref.name {
                return Err(Refusal::spec(
                    "SameCluster",
                    format!(
                        "source and target are both Cluster {}; a mirror copies between two clusters",
                        source_ref.name
                    ),
                ));
            }
            cluster_endpoint(
                cluster,
                source_ref,
                namespace,
                source_alias,
                spec.source.sasl.as_ref(),
                "source",
            )?
        }
        (None, Some(servers)) => Endpoint {
            alias: source_alias.to_owned(),
            bootstrap: servers.clone(),
            tls_ca: spec.source.tls.as_ref().map(|t| t.ca_cert.clone()),
            sasl: spec.source.sasl.clone(),
            cluster: None,
        },
        // The CRD's rule refuses both and neither; an API server without it may not.
        _ => {
            return Err(Refusal::spec(
                "InvalidSpec",
                "set exactly one of source.clusterRef and source.bootstrapServers",
            ));
        }
    };
    Ok(Validated {
        source,
        target,
        topics,
        policy: spec.replication_policy,
        separator: spec.separator.clone().unwrap_or_else(|| ".".to_owned()),
    })
}

/// How a mirror process reaches Strait Cluster `cluster` (the `role` end of the mirror): the
/// named listener, else the first internal listener without authentication, else the first
/// internal one; its bootstrap address as the Cluster's status reports it (the internal
/// bootstrap Service otherwise), the cluster CA when the listener uses TLS, and the Mirror's
/// SASL credentials when it asks for SCRAM.
fn cluster_endpoint(
    cluster: &Cluster,
    reference: &MirrorClusterRef,
    namespace: &str,
    alias: &str,
    sasl: Option<&MirrorSasl>,
    role: &str,
) -> Result<Endpoint, Refusal> {
    let listeners = &cluster.spec.listeners;
    let internal = || {
        listeners
            .iter()
            .filter(|l| l.kind == ListenerType::Internal)
    };
    let listener = match &reference.listener {
        Some(name) => listeners.iter().find(|l| &l.name == name).ok_or_else(|| {
            Refusal::spec(
                "ListenerNotFound",
                format!(
                    "{role} Cluster {} has no listener {name}",
                    reference.name
                ),
            )
        })?,
        None => internal()
            .find(|l| l.authentication.is_none())
            .or_else(|| internal().next())
            .ok_or_else(|| {
                Refusal::spec(
                    "ListenerNotFound",
                    format!(
                        "{role} Cluster {} has no internal listener; name one in {role}.clusterRef.listener",
                        reference.name
                    ),
                )
            })?,
    };
    let sasl = match listener.authentication.as_ref().map(|a| a.kind) {
        None => None,
        Some(ListenerAuthenticationType::ScramSha512) => match sasl {
            Some(s) if s.mechanism == SaslMechanism::ScramSha512 => Some(s.clone()),
            _ => {
                return Err(Refusal::spec(
                    "CredentialsMissing",
                    format!(
                        "listener {} of {role} Cluster {} asks for SCRAM-SHA-512: set {role}.sasl \
                         with mechanism SCRAM-SHA-512 (a User's credentials)",
                        listener.name, reference.name
                    ),
                ));
            }
        },
        Some(other) => {
            return Err(Refusal::spec(
                "ListenerNotSupported",
                format!(
                    "listener {} of {role} Cluster {} uses {other:?} authentication, which \
                     strait-mirror does not speak; use a listener without authentication or with \
                     scram-sha-512",
                    listener.name, reference.name
                ),
            ));
        }
    };
    let reported = cluster
        .status
        .as_ref()
        .and_then(|s| s.listeners.iter().find(|l| l.name == listener.name));
    let bootstrap = match (reported, listener.kind) {
        (Some(l), _) => l.bootstrap_servers.clone(),
        (None, ListenerType::Internal) => format!(
            "{}.{namespace}.svc:{}",
            names::bootstrap_service(&reference.name, None),
            listener.port
        ),
        (None, _) => {
            return Err(Refusal::waiting(
                "ListenerNotReady",
                format!(
                    "{role} Cluster {} reports no address for listener {} yet",
                    reference.name, listener.name
                ),
            ));
        }
    };
    let tls_ca = listener.tls.then(|| SecretKeyRef {
        name: reported
            .and_then(|l| l.ca_secret.clone())
            .unwrap_or_else(|| names::cluster_ca_cert(&reference.name)),
        key: CA_CERT_KEY.to_owned(),
    });
    Ok(Endpoint {
        alias: alias.to_owned(),
        bootstrap,
        tls_ca,
        sasl,
        cluster: Some(reference.name.clone()),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{Value, json};

    pub(crate) fn mirror(spec: Value) -> Mirror {
        serde_json::from_value(json!({
            "apiVersion": "strait.dev/v1alpha1", "kind": "Mirror",
            "metadata": {"name": "dr", "namespace": "ns", "uid": "m-1", "generation": 1},
            "spec": spec
        }))
        .unwrap_or_else(|e| panic!("mirror: {e}"))
    }

    pub(crate) fn cluster(name: &str, listeners: Value, ready: bool) -> Cluster {
        serde_json::from_value(json!({
            "apiVersion": "strait.dev/v1alpha1", "kind": "Cluster",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("c-{name}")},
            "spec": {"replicas": 3, "zones": ["a"], "storage": {"size": "1Gi"},
                     "listeners": listeners},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                        "reason": "x", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap_or_else(|e| panic!("cluster: {e}"))
    }

    pub(crate) fn plain() -> Value {
        json!([{"name": "plain", "port": 9092, "type": "internal"}])
    }

    fn basic() -> Value {
        json!({"source": {"clusterRef": {"name": "east"}}, "target": {"clusterRef": {"name": "west"}}})
    }

    fn refusal(spec: Value, source: Option<&Cluster>, target: Option<&Cluster>) -> &'static str {
        match validate(&mirror(spec), "ns", source, target) {
            Ok(_) => "accepted",
            Err(r) => r.reason,
        }
    }

    #[test]
    fn cluster_refs_resolve_to_internal_listeners() {
        let east = cluster("east", plain(), true);
        let listeners = json!([
            {"name": "scram", "port": 9094, "type": "internal", "tls": true,
             "authentication": {"type": "scram-sha-512"}},
            {"name": "tls", "port": 9093, "type": "internal", "tls": true}
        ]);
        let west = cluster("west", listeners, true);
        let v = validate(&mirror(basic()), "ns", Some(&east), Some(&west))
            .unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(v.source.bootstrap, "east-bootstrap.ns.svc:9092");
        assert_eq!(
            (v.source.tls_ca.as_ref(), v.source.sasl.as_ref()),
            (None, None)
        );
        // The first listener without authentication, over TLS with the cluster CA.
        assert_eq!(v.target.bootstrap, "west-bootstrap.ns.svc:9093");
        assert_eq!(
            v.target.tls_ca,
            Some(SecretKeyRef {
                name: "west-cluster-ca-cert".into(),
                key: "ca.crt".into()
            })
        );
        assert_eq!(
            (v.source.alias.as_str(), v.target.alias.as_str()),
            ("east", "west")
        );
        // A SCRAM listener named explicitly needs credentials.
        let mut spec = basic();
        spec["target"]["clusterRef"]["listener"] = json!("scram");
        assert_eq!(
            refusal(spec.clone(), Some(&east), Some(&west)),
            "CredentialsMissing"
        );
        spec["target"]["sasl"] = json!({"mechanism": "SCRAM-SHA-512", "username": "mirror",
                                        "passwordSecret": {"name": "mirror", "key": "password"}});
        let v = validate(&mirror(spec), "ns", Some(&east), Some(&west))
            .unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(v.target.bootstrap, "west-bootstrap.ns.svc:9094");
        assert!(v.target.sasl.is_some() && v.target.tls_ca.is_some());
    }

    #[test]
    fn refusals_name_their_reason() {
        let east = cluster("east", plain(), true);
        let west = cluster("west", plain(), true);
        let (s, t) = (Some(&east), Some(&west));
        let with = |k: &str, v: Value| {
            let mut spec = basic();
            spec[k] = v;
            spec
        };
        assert_eq!(refusal(basic(), s, t), "accepted");
        assert_eq!(refusal(with("mode", json!("linked")), s, t), "accepted");
        assert_eq!(
            refusal(with("failover", json!(true)), s, t),
            "FailoverNotSupported"
        );
        let mut linked_failover = with("mode", json!("linked"));
        linked_failover["failover"] = json!(true);
        assert_eq!(refusal(linked_failover, s, t), "accepted");
        assert_eq!(
            refusal(with("targetAlias", json!("east")), s, t),
            "AliasesNotDistinct"
        );
        assert_eq!(
            refusal(with("topics", json!(["orders("])), s, t),
            "InvalidPattern"
        );
        assert_eq!(
            refusal(with("groups", json!(["a{1,2}"])), s, t),
            "InvalidPattern"
        );
        for key in [
            "topics",
            "east.bootstrap.servers",
            "west.sasl.jaas.config",
            "east->west.topics.exclude",
            "config.providers",
            "ssl.truststore.location",
            "mirror.mode",
            "east->west.mirror.mode",
        ] {
            assert_eq!(
                refusal(with("config", json!({key: "x"})), s, t),
                "ConfigKeyReserved",
                "{key}"
            );
        }
        assert_eq!(
            refusal(
                with(
                    "config",
                    json!({"offset-syncs.topic.location": "target",
                                           "east.consumer.fetch.max.bytes": "1"})
                ),
                s,
                t
            ),
            "accepted"
        );
        assert_eq!(refusal(basic(), s, None), "TargetNotFound");
        let unready = cluster("west", plain(), false);
        assert_eq!(refusal(basic(), s, Some(&unready)), "TargetNotReady");
        assert_eq!(refusal(basic(), None, t), "SourceNotFound");
        let mtls = cluster(
            "east",
            json!([{"name": "m", "port": 9093, "type": "internal", "tls": true,
                    "authentication": {"type": "tls"}}]),
            true,
        );
        assert_eq!(refusal(basic(), Some(&mtls), t), "ListenerNotSupported");
        let mut spec = basic();
        spec["source"]["clusterRef"]["listener"] = json!("nope");
        assert_eq!(refusal(spec, s, t), "ListenerNotFound");
    }

    #[test]
    fn selection_matches_whole_names_and_skips_the_targets_mirrors() {
        let east = cluster("east", plain(), true);
        let west = cluster("west", plain(), true);
        let spec = json!({"source": {"clusterRef": {"name": "east"}},
                          "target": {"clusterRef": {"name": "west"}},
                          "topics": ["orders.*", "payments"]});
        let v = validate(&mirror(spec), "ns", Some(&east), Some(&west))
            .unwrap_or_else(|r| panic!("{r:?}"));
        assert!(v.mirrors("orders") && v.mirrors("orders-eu") && v.mirrors("payments"));
        assert!(!v.mirrors("payments-eu") && !v.mirrors("my-orders"));
        // MirrorMaker 2's default exclusions and cycle detection.
        assert!(!v.mirrors("orders.internal") && !v.mirrors("__consumer_offsets"));
        assert_eq!(v.target_topic("orders"), "east.orders");
        let all = Validated {
            topics: Selection::new(&[], &[]).unwrap_or_else(|e| panic!("{e}")),
            ..v
        };
        assert!(all.mirrors("anything") && !all.mirrors("west.orders"));
        // Internal topics stay out even when the exclusions are replaced.
        assert!(
            !all.mirrors("__consumer_offsets") && !all.mirrors("mm2-offset-syncs.west.internal")
        );
        let identity = Validated {
            policy: ReplicationPolicy::Identity,
            ..all
        };
        assert_eq!(identity.target_topic("orders"), "orders");
        assert!(identity.mirrors("west.orders"));
    }
}
