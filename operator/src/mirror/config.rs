//! Renders a validated Mirror as `mm2.properties` (MirrorMaker 2's keys, Java properties
//! syntax, always in the same order so that its hash changes only with the spec). Credentials
//! never appear in it: a SASL password is a `${env:...}` reference (Kafka's
//! `EnvVarConfigProvider`) to an environment variable the Deployment fills from its Secret, and
//! a CA certificate is a path where the Deployment mounts its Secret.

use std::fmt::Write;

use strait_crds::Mirror;
use strait_crds::mirror::{MirrorMode, MirrorSasl, ReplicationPolicy, SaslMechanism};

use crate::mirror::validate::{Endpoint, Validated};

/// Where the ConfigMap with `mm2.properties` is mounted.
pub const CONFIG_DIR: &str = "/etc/strait-mirror";
/// File name of the rendered configuration.
pub const CONFIG_FILE: &str = "mm2.properties";
/// Where a cluster's CA certificate is mounted: `<dir>/<role>/ca.crt` (outside
/// [`CONFIG_DIR`], a read-only ConfigMap volume in which no mount point can be made).
pub const TLS_DIR: &str = "/etc/strait-mirror-tls";
/// File name of a mounted CA certificate.
pub const CA_FILE: &str = "ca.crt";
/// The metrics (Prometheus) port of `strait-mirror`.
pub const METRICS_PORT: i32 = 9404;

/// Which end of the mirror an endpoint is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The source cluster.
    Source,
    /// The target cluster.
    Target,
}

impl Role {
    /// `source` or `target`: volume and directory names.
    pub fn name(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Target => "target",
        }
    }

    /// The environment variable holding this end's SASL password.
    pub fn password_env(self) -> &'static str {
        match self {
            Role::Source => "STRAIT_MIRROR_SOURCE_PASSWORD",
            Role::Target => "STRAIT_MIRROR_TARGET_PASSWORD",
        }
    }

    /// Where this end's CA certificate is mounted.
    pub fn ca_path(self) -> String {
        format!("{TLS_DIR}/{}/{CA_FILE}", self.name())
    }
}

/// `mm2.properties` for `mirror` as `validated`.
pub fn mm2_properties(mirror: &Mirror, v: &Validated) -> String {
    let spec = &mirror.spec;
    let (src, tgt) = (&v.source.alias, &v.target.alias);
    let mut p = Properties::default();
    p.comment("Rendered by strait-operator from Mirror; do not edit.");
    p.set("clusters", format!("{src}, {tgt}"));
    let secrets = v.source.sasl.is_some() || v.target.sasl.is_some();
    if secrets {
        p.set("config.providers", "env");
        p.set(
            "config.providers.env.class",
            "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
        );
    }
    cluster(&mut p, &v.source, Role::Source);
    cluster(&mut p, &v.target, Role::Target);
    p.set(&format!("{src}->{tgt}.enabled"), "true");
    p.set(&format!("{tgt}->{src}.enabled"), "false");
    // Linked: offset-preserving mirror topics; the engine then copies group offsets 1:1 by
    // default. mm2 is the engine's default and stays unwritten.
    if spec.mode == MirrorMode::Linked {
        p.set("mirror.mode", "linked");
    }
    let list = |l: &[String]| l.join(", ");
    p.set(
        "topics",
        if spec.topics.is_empty() {
            ".*".to_owned()
        } else {
            list(&spec.topics)
        },
    );
    if !spec.topics_exclude.is_empty() {
        p.set("topics.exclude", list(&spec.topics_exclude));
    }
    p.set(
        "groups",
        if spec.groups.is_empty() {
            ".*".to_owned()
        } else {
            list(&spec.groups)
        },
    );
    if !spec.groups_exclude.is_empty() {
        p.set("groups.exclude", list(&spec.groups_exclude));
    }
    p.set(
        "replication.policy.class",
        match v.policy {
            ReplicationPolicy::Default => {
                "org.apache.kafka.connect.mirror.DefaultReplicationPolicy"
            }
            ReplicationPolicy::Identity => {
                "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
            }
        },
    );
    p.set("replication.policy.separator", &v.separator);
    let mut optional = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            p.set(key, value);
        }
    };
    optional(
        "replication.factor",
        spec.replication_factor.map(|n| n.to_string()),
    );
    optional(
        "refresh.topics.interval.seconds",
        spec.refresh_topics_interval_seconds.map(|n| n.to_string()),
    );
    optional(
        "sync.topic.configs.enabled",
        spec.sync_topic_configs.map(|b| b.to_string()),
    );
    optional(
        "emit.checkpoints.interval.seconds",
        spec.emit_checkpoints_interval_seconds
            .map(|n| n.to_string()),
    );
    optional(
        "sync.group.offsets.enabled",
        spec.sync_group_offsets.map(|b| b.to_string()),
    );
    if !spec.config.is_empty() {
        p.comment("spec.config");
        for (k, value) in &spec.config {
            p.set(k, value);
        }
    }
    p.text
}

/// A cluster's connection keys, `<alias>.` prefixed.
fn cluster(p: &mut Properties, e: &Endpoint, role: Role) {
    let a = &e.alias;
    p.set(&format!("{a}.bootstrap.servers"), &e.bootstrap);
    let protocol = match (e.tls_ca.is_some(), e.sasl.is_some()) {
        (false, false) => "PLAINTEXT",
        (true, false) => "SSL",
        (false, true) => "SASL_PLAINTEXT",
        (true, true) => "SASL_SSL",
    };
    p.set(&format!("{a}.security.protocol"), protocol);
    if e.tls_ca.is_some() {
        p.set(&format!("{a}.ssl.truststore.type"), "PEM");
        p.set(&format!("{a}.ssl.truststore.location"), role.ca_path());
    }
    if let Some(sasl) = &e.sasl {
        p.set(&format!("{a}.sasl.mechanism"), sasl.mechanism.kafka_name());
        p.set(&format!("{a}.sasl.jaas.config"), jaas(sasl, role));
    }
}

/// The JAAS line of `sasl`, its password a reference to the role's environment variable.
fn jaas(sasl: &MirrorSasl, role: Role) -> String {
    let module = match sasl.mechanism {
        SaslMechanism::Plain => "org.apache.kafka.common.security.plain.PlainLoginModule",
        SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
            "org.apache.kafka.common.security.scram.ScramLoginModule"
        }
    };
    let quoted = sasl.username.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "{module} required username=\"{quoted}\" password=\"${{env:{}}}\";",
        role.password_env()
    )
}

/// Java properties text, one `key=value` line per call.
#[derive(Default)]
struct Properties {
    text: String,
}

impl Properties {
    fn set(&mut self, key: &str, value: impl AsRef<str>) {
        let _ = writeln!(
            self.text,
            "{}={}",
            escape(key, true),
            escape(value.as_ref(), false)
        );
    }

    fn comment(&mut self, text: &str) {
        let _ = writeln!(self.text, "# {text}");
    }
}

/// Escapes a key or value for Java's `Properties.load`: backslashes (regular expressions have
/// many), line breaks, a leading space of a value, and in keys the separators `=`, `:` and
/// spaces.
fn escape(s: &str, key: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '=' | ':' | ' ' | '#' | '!' if key => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == 0 => out.push_str("\\ "),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::validate::tests::{cluster, mirror, plain};
    use crate::mirror::validate::validate;
    use serde_json::json;

    fn render(spec: serde_json::Value) -> String {
        let m = mirror(spec);
        let east = cluster("east", plain(), true);
        let west = cluster(
            "west",
            json!([{"name": "scram", "port": 9094, "type": "internal", "tls": true,
                    "authentication": {"type": "scram-sha-512"}}]),
            true,
        );
        let v = validate(&m, "ns", Some(&east), Some(&west)).unwrap_or_else(|r| panic!("{r:?}"));
        mm2_properties(&m, &v)
    }

    #[test]
    fn properties_use_mm2_keys_and_keep_secrets_out() {
        let p = render(json!({
            "source": {"clusterRef": {"name": "east"}},
            "target": {"clusterRef": {"name": "west"},
                       "sasl": {"mechanism": "SCRAM-SHA-512", "username": "mir\"ror",
                                "passwordSecret": {"name": "creds", "key": "password"}}},
            "topics": ["orders\\..*", "payments"],
            "groupsExclude": ["test-.*"],
            "replicationFactor": 3,
            "syncGroupOffsets": true,
            "config": {"offset-syncs.topic.location": "target"}
        }));
        let expected = "\
# Rendered by strait-operator from Mirror; do not edit.
clusters=east, west
config.providers=env
config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider
east.bootstrap.servers=east-bootstrap.ns.svc:9092
east.security.protocol=PLAINTEXT
west.bootstrap.servers=west-bootstrap.ns.svc:9094
west.security.protocol=SASL_SSL
west.ssl.truststore.type=PEM
west.ssl.truststore.location=/etc/strait-mirror-tls/target/ca.crt
west.sasl.mechanism=SCRAM-SHA-512
west.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"mir\\\\\"ror\" password=\"${env:STRAIT_MIRROR_TARGET_PASSWORD}\";
east->west.enabled=true
west->east.enabled=false
topics=orders\\\\..*, payments
groups=.*
groups.exclude=test-.*
replication.policy.class=org.apache.kafka.connect.mirror.DefaultReplicationPolicy
replication.policy.separator=.
replication.factor=3
sync.group.offsets.enabled=true
# spec.config
offset-syncs.topic.location=target
";
        assert_eq!(p, expected);
    }

    #[test]
    fn rendering_is_deterministic_and_follows_the_spec() {
        let spec = json!({"source": {"bootstrapServers": "a:9092,b:9092",
                                     "tls": {"caCert": {"name": "ca", "key": "ca.pem"}}},
                          "target": {"clusterRef": {"name": "west"}, "sasl": {
                              "mechanism": "SCRAM-SHA-512", "username": "u",
                              "passwordSecret": {"name": "s", "key": "p"}}},
                          "replicationPolicy": "identity"});
        let p = render(spec.clone());
        assert_eq!(p, render(spec));
        assert!(p.contains("\nclusters=source, west\n"), "{p}");
        assert!(
            p.contains("\nsource.bootstrap.servers=a:9092,b:9092\nsource.security.protocol=SSL\n")
        );
        assert!(
            p.contains("\nsource.ssl.truststore.location=/etc/strait-mirror-tls/source/ca.crt\n")
        );
        assert!(p.contains("IdentityReplicationPolicy\n"));
        assert!(p.contains("\ntopics=.*\n"));
        // MirrorMaker 2's own default applies when the spec names no exclusions.
        assert!(!p.contains("topics.exclude"));
    }

    #[test]
    fn linked_mode_is_rendered_after_the_flows_and_nothing_else_changes() {
        let spec = json!({"source": {"clusterRef": {"name": "east"}},
                          "target": {"clusterRef": {"name": "west"}, "sasl": {
                              "mechanism": "SCRAM-SHA-512", "username": "u",
                              "passwordSecret": {"name": "s", "key": "p"}}},
                          "topics": ["orders"]});
        let mm2 = render(spec.clone());
        assert!(!mm2.contains("mirror.mode"), "{mm2}");
        let mut linked = spec;
        linked["mode"] = json!("linked");
        let linked = render(linked);
        assert_eq!(
            linked,
            mm2.replace(
                "west->east.enabled=false\n",
                "west->east.enabled=false\nmirror.mode=linked\n"
            )
        );
        assert!(linked.contains("\nwest->east.enabled=false\nmirror.mode=linked\ntopics=orders\n"));
    }

    #[test]
    fn keys_and_values_are_escaped_for_java_properties() {
        assert_eq!(escape("a b=c:d", true), "a\\ b\\=c\\:d");
        assert_eq!(escape(" x\\y\n", false), "\\ x\\\\y\\n");
        assert_eq!(escape("a=b c", false), "a=b c");
    }
}
