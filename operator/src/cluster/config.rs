//! Renders a Cluster's broker configuration: the shared `server.properties` (Kafka key names)
//! and the per-broker `--override` arguments (node id, rack, advertised listeners), plus the
//! hash that triggers a rolling restart when the configuration changes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use strait_crds::ClusterSpec;
use strait_crds::cluster::{ListenerType, REPLICATION_PORT};

use crate::names;

/// Kafka listener name of the inter-broker listener.
pub const REPLICATION_LISTENER: &str = "REPLICATION";

/// Kafka listener name of a Cluster listener.
pub fn listener_name(name: &str) -> String {
    name.to_ascii_uppercase()
}

fn security_protocol(tls: bool, sasl: bool) -> &'static str {
    match (tls, sasl) {
        (false, false) => "PLAINTEXT",
        (true, false) => "SSL",
        (false, true) => "SASL_PLAINTEXT",
        (true, true) => "SASL_SSL",
    }
}

/// The shared `server.properties`: the user's keys, then the operator's (which win).
pub fn server_properties(spec: &ClusterSpec) -> String {
    let mut keys: BTreeMap<String, String> = spec.config.clone();
    let rf = spec.replicas.clamp(1, 3);
    keys.entry("default.replication.factor".into())
        .or_insert_with(|| rf.to_string());
    keys.entry("offsets.topic.replication.factor".into())
        .or_insert_with(|| rf.to_string());
    keys.entry("min.insync.replicas".into())
        .or_insert_with(|| (rf - 1).max(1).to_string());
    let mut listeners = vec![format!(
        "{REPLICATION_LISTENER}://0.0.0.0:{REPLICATION_PORT}"
    )];
    let mut protocols = vec![format!("{REPLICATION_LISTENER}:PLAINTEXT")];
    for l in &spec.listeners {
        let name = listener_name(&l.name);
        listeners.push(format!("{name}://0.0.0.0:{}", l.port));
        protocols.push(format!(
            "{name}:{}",
            security_protocol(l.tls, l.authentication.is_some())
        ));
    }
    keys.insert("listeners".into(), listeners.join(","));
    keys.insert("listener.security.protocol.map".into(), protocols.join(","));
    keys.insert(
        "inter.broker.listener.name".into(),
        REPLICATION_LISTENER.into(),
    );
    keys.insert("log.dirs".into(), format!("{}/data", names::DATA_DIR));
    keys.insert(
        "metrics.listener".into(),
        format!("0.0.0.0:{}", spec.metrics_port()),
    );
    if let Some(auth) = &spec.authorization {
        let users: Vec<String> = auth
            .super_users
            .iter()
            .map(|u| format!("User:{u}"))
            .collect();
        if !users.is_empty() {
            keys.insert("super.users".into(), users.join(";"));
        }
    }
    let mut out =
        String::from("# Rendered by strait-operator; per-broker keys come as --override.\n");
    for (k, v) in &keys {
        let _ = writeln!(out, "{k}={}", escape(v));
    }
    out
}

/// Escapes a value for the properties format (backslashes and line breaks).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// The `--override` arguments of a broker in zone `zone`, as a shell fragment: node id from the
/// pod ordinal (`${HOSTNAME##*-}`), rack, and advertised listeners on stable DNS names.
pub fn broker_overrides(
    cluster: &str,
    namespace: &str,
    spec: &ClusterSpec,
    zone: &str,
) -> Vec<String> {
    let headless = names::headless_service(cluster);
    let host = format!("${{HOSTNAME}}.{headless}.{namespace}.svc");
    let mut advertised = vec![format!(
        "{REPLICATION_LISTENER}://{host}:{REPLICATION_PORT}"
    )];
    for l in &spec.listeners {
        let name = listener_name(&l.name);
        let address = match l.kind {
            ListenerType::Internal => format!("{host}:{}", l.port),
            // External clients reach each broker through its own Service.
            ListenerType::Nodeport | ListenerType::Loadbalancer => format!(
                "{cluster}-{}-${{HOSTNAME##*-}}.{namespace}.svc:{}",
                l.name, l.port
            ),
        };
        advertised.push(format!("{name}://{address}"));
    }
    vec![
        "--override".into(),
        "node.id=${HOSTNAME##*-}".into(),
        "--override".into(),
        format!("broker.rack={zone}"),
        "--override".into(),
        format!("advertised.listeners={}", advertised.join(",")),
    ]
}

/// The broker start command (`sh -c`, so that the ordinal expands).
pub fn start_command(cluster: &str, namespace: &str, spec: &ClusterSpec, zone: &str) -> String {
    let mut cmd = format!(
        "exec strait-broker --config {}/server.properties",
        names::CONFIG_DIR
    );
    let overrides = broker_overrides(cluster, namespace, spec, zone);
    for pair in overrides.chunks(2) {
        if let [flag, value] = pair {
            let _ = write!(cmd, " {flag} \"{value}\"");
        }
    }
    cmd
}

/// SHA-256 (hex) of the configuration, put on the pod template so that a change rolls brokers.
pub fn config_hash(properties: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, properties.as_bytes());
    digest.as_ref().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::resources::tests::spec;

    #[test]
    fn properties_use_kafka_keys_and_operator_keys_win() {
        let mut s = spec(5, &["a", "b", "c"]);
        s.config.insert("num.partitions".into(), "6".into());
        s.config.insert("min.insync.replicas".into(), "1".into());
        let p = server_properties(&s);
        assert!(p.contains("\nnum.partitions=6\n"), "{p}");
        assert!(p.contains("\nmin.insync.replicas=1\n"));
        assert!(p.contains("\ndefault.replication.factor=3\n"));
        assert!(p.contains("\nlisteners=REPLICATION://0.0.0.0:9091,PLAIN://0.0.0.0:9092\n"));
        assert!(
            p.contains("\nlistener.security.protocol.map=REPLICATION:PLAINTEXT,PLAIN:PLAINTEXT\n")
        );
        assert!(p.contains("\ninter.broker.listener.name=REPLICATION\n"));
        assert!(p.contains("\nlog.dirs=/var/lib/strait/data\n"));
        assert!(p.contains("\nmetrics.listener=0.0.0.0:9404\n"));
    }

    #[test]
    fn small_clusters_get_small_replication_defaults() {
        let p = server_properties(&spec(1, &["a"]));
        assert!(p.contains("\ndefault.replication.factor=1\n"));
        assert!(p.contains("\nmin.insync.replicas=1\n"));
    }

    #[test]
    fn overrides_carry_node_id_rack_and_advertised_names() {
        let o = broker_overrides("kafka", "ns", &spec(3, &["a"]), "eu-1a");
        assert_eq!(o[1], "node.id=${HOSTNAME##*-}");
        assert_eq!(o[3], "broker.rack=eu-1a");
        assert_eq!(
            o[5],
            "advertised.listeners=REPLICATION://${HOSTNAME}.kafka-brokers.ns.svc:9091,PLAIN://${HOSTNAME}.kafka-brokers.ns.svc:9092"
        );
        let cmd = start_command("kafka", "ns", &spec(3, &["a"]), "eu-1a");
        assert!(cmd.starts_with(
            "exec strait-broker --config /etc/strait/server.properties --override \"node.id="
        ));
    }

    #[test]
    fn hash_changes_with_config() {
        let a = config_hash("a=1\n");
        assert_eq!(a.len(), 64);
        assert_eq!(a, config_hash("a=1\n"));
        assert_ne!(a, config_hash("a=2\n"));
    }
}
