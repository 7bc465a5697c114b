//! Renders a Cluster's broker configuration: the shared `server.properties` (Kafka key names,
//! including the KRaft quorum), the per-broker `--override` arguments (node id, rack, advertised
//! listeners, and the process roles decided from the pod ordinal at start), plus the hash that
//! triggers a rolling restart when the configuration changes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use strait_crds::ClusterSpec;
use strait_crds::cluster::{ListenerType, REPLICATION_PORT};

use crate::cluster::quorum::{self, CONTROLLER_LISTENER, CONTROLLER_PORT};
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

/// The `listeners` value: the replication and Cluster listeners, plus the CONTROLLER listener on
/// voters (a broker-only node must not have it).
pub fn listeners(spec: &ClusterSpec, voter: bool) -> String {
    let mut listeners = vec![format!(
        "{REPLICATION_LISTENER}://0.0.0.0:{REPLICATION_PORT}"
    )];
    for l in &spec.listeners {
        listeners.push(format!("{}://0.0.0.0:{}", listener_name(&l.name), l.port));
    }
    if voter {
        listeners.push(format!("{CONTROLLER_LISTENER}://0.0.0.0:{CONTROLLER_PORT}"));
    }
    listeners.join(",")
}

/// The shared `server.properties`: the user's keys, then the operator's (which win). `voters`
/// are the node ids of the controller quorum (see [`quorum::choose_voters`]); `listeners` here
/// is the broker-only set, which voters override at start.
pub fn server_properties(
    cluster: &str,
    namespace: &str,
    spec: &ClusterSpec,
    voters: &[i32],
) -> String {
    let mut keys: BTreeMap<String, String> = spec.config.clone();
    let rf = spec.replicas.clamp(1, 3);
    keys.entry("default.replication.factor".into())
        .or_insert_with(|| rf.to_string());
    keys.entry("offsets.topic.replication.factor".into())
        .or_insert_with(|| rf.to_string());
    keys.entry("min.insync.replicas".into())
        .or_insert_with(|| (rf - 1).max(1).to_string());
    let mut protocols = vec![format!("{REPLICATION_LISTENER}:PLAINTEXT")];
    for l in &spec.listeners {
        protocols.push(format!(
            "{}:{}",
            listener_name(&l.name),
            security_protocol(l.tls, l.authentication.is_some())
        ));
    }
    protocols.push(format!("{CONTROLLER_LISTENER}:PLAINTEXT"));
    keys.insert("listeners".into(), listeners(spec, false));
    keys.insert("listener.security.protocol.map".into(), protocols.join(","));
    keys.insert(
        "controller.listener.names".into(),
        CONTROLLER_LISTENER.into(),
    );
    keys.insert(
        "controller.quorum.voters".into(),
        quorum::quorum_voters(cluster, namespace, voters),
    );
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

/// The `--override` arguments that differ between a voter and a broker-only node.
pub fn role_overrides(spec: &ClusterSpec, voter: bool) -> Vec<String> {
    let roles = if voter { "broker,controller" } else { "broker" };
    vec![
        "--override".into(),
        format!("process.roles={roles}"),
        "--override".into(),
        format!("listeners={}", listeners(spec, voter)),
    ]
}

/// The broker start command (`sh -c`). One pod template serves a whole zone, so the role comes
/// from the ordinal (the node id) at start: a `case` on `${HOSTNAME##*-}` sets the positional
/// parameters to the voter or broker-only overrides, which follow the shared ones.
pub fn start_command(
    cluster: &str,
    namespace: &str,
    spec: &ClusterSpec,
    zone: &str,
    voters: &[i32],
) -> String {
    let words = |args: &[String]| {
        args.iter()
            .map(|a| shell_word(a))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut cmd = String::from("case \"${HOSTNAME##*-}\" in ");
    if !voters.is_empty() {
        let ids: Vec<String> = voters.iter().map(i32::to_string).collect();
        let _ = write!(
            cmd,
            "{}) set -- {} ;; ",
            ids.join("|"),
            words(&role_overrides(spec, true))
        );
    }
    let _ = write!(
        cmd,
        "*) set -- {} ;; esac; exec strait-broker --config {} {} \"$@\"",
        words(&role_overrides(spec, false)),
        shell_word(&format!("{}/server.properties", names::CONFIG_DIR)),
        words(&broker_overrides(cluster, namespace, spec, zone)),
    );
    cmd
}

/// Expansions the rendered arguments use on purpose; everything else is literal.
const EXPANSIONS: [&str; 2] = ["${HOSTNAME##*-}", "${HOSTNAME}"];

/// One shell word for `value`: literal text single-quoted, the [`EXPANSIONS`] double-quoted so
/// that they expand (to the pod name or its ordinal, never to code).
fn shell_word(value: &str) -> String {
    let mut out = String::new();
    let mut literal = String::new();
    let mut rest = value;
    let flush = |literal: &mut String, out: &mut String| {
        if !literal.is_empty() {
            let _ = write!(out, "'{}'", literal.replace('\'', "'\\''"));
            literal.clear();
        }
    };
    while let Some(c) = rest.chars().next() {
        if let Some(e) = EXPANSIONS.iter().find(|e| rest.starts_with(**e)) {
            flush(&mut literal, &mut out);
            let _ = write!(out, "\"{e}\"");
            rest = &rest[e.len()..];
        } else {
            literal.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    flush(&mut literal, &mut out);
    if out.is_empty() {
        out.push_str("''");
    }
    out
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
    use crate::cluster::quorum::desired_voters;
    use crate::cluster::resources::tests::spec;

    fn properties(s: &ClusterSpec) -> String {
        server_properties("kafka", "ns", s, &desired_voters(s))
    }

    #[test]
    fn properties_use_kafka_keys_and_operator_keys_win() {
        let mut s = spec(5, &["a", "b", "c"]);
        s.config.insert("num.partitions".into(), "6".into());
        s.config.insert("min.insync.replicas".into(), "1".into());
        let p = properties(&s);
        assert!(p.contains("\nnum.partitions=6\n"), "{p}");
        assert!(p.contains("\nmin.insync.replicas=1\n"));
        assert!(p.contains("\ndefault.replication.factor=3\n"));
        assert!(p.contains("\nlisteners=REPLICATION://0.0.0.0:9091,PLAIN://0.0.0.0:9092\n"));
        assert!(p.contains(
            "\nlistener.security.protocol.map=REPLICATION:PLAINTEXT,PLAIN:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
        ));
        assert!(p.contains("\ninter.broker.listener.name=REPLICATION\n"));
        assert!(p.contains("\nlog.dirs=/var/lib/strait/data\n"));
        assert!(p.contains("\nmetrics.listener=0.0.0.0:9404\n"));
    }

    #[test]
    fn properties_name_the_quorum() {
        let p = properties(&spec(6, &["a", "b", "c"]));
        assert!(
            p.contains("\ncontroller.listener.names=CONTROLLER\n"),
            "{p}"
        );
        assert!(p.contains(
            "\ncontroller.quorum.voters=0@kafka-z0-0.kafka-brokers.ns.svc:9093,\
             1000@kafka-z1-1000.kafka-brokers.ns.svc:9093,\
             2000@kafka-z2-2000.kafka-brokers.ns.svc:9093\n"
        ));
        // Roles and the controller listener are per pod, decided at start.
        assert!(!p.contains("process.roles"));
        assert!(!p.contains("CONTROLLER://"));
        let single = properties(&spec(1, &["a"]));
        assert!(
            single.contains("\ncontroller.quorum.voters=0@kafka-z0-0.kafka-brokers.ns.svc:9093\n")
        );
    }

    #[test]
    fn small_clusters_get_small_replication_defaults() {
        let p = properties(&spec(1, &["a"]));
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
        assert!(!o[5].contains("CONTROLLER"), "never advertised");
    }

    #[test]
    fn role_overrides_put_the_controller_listener_on_voters_only() {
        let s = spec(3, &["a"]);
        assert_eq!(
            role_overrides(&s, true),
            [
                "--override",
                "process.roles=broker,controller",
                "--override",
                "listeners=REPLICATION://0.0.0.0:9091,PLAIN://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093"
            ]
        );
        assert_eq!(
            role_overrides(&s, false),
            [
                "--override",
                "process.roles=broker",
                "--override",
                "listeners=REPLICATION://0.0.0.0:9091,PLAIN://0.0.0.0:9092"
            ]
        );
    }

    #[test]
    fn start_command_picks_the_role_from_the_ordinal() {
        let s = spec(6, &["a", "b", "c"]);
        let cmd = start_command("kafka", "ns", &s, "b", &desired_voters(&s));
        assert_eq!(
            cmd,
            "case \"${HOSTNAME##*-}\" in \
             0|1000|2000) set -- '--override' 'process.roles=broker,controller' '--override' \
             'listeners=REPLICATION://0.0.0.0:9091,PLAIN://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093' ;; \
             *) set -- '--override' 'process.roles=broker' '--override' \
             'listeners=REPLICATION://0.0.0.0:9091,PLAIN://0.0.0.0:9092' ;; \
             esac; exec strait-broker --config '/etc/strait/server.properties' \
             '--override' 'node.id='\"${HOSTNAME##*-}\" '--override' 'broker.rack=b' \
             '--override' 'advertised.listeners=REPLICATION://'\"${HOSTNAME}\"'.kafka-brokers.ns.svc:9091,PLAIN://'\"${HOSTNAME}\"'.kafka-brokers.ns.svc:9092' \
             \"$@\""
        );
    }

    /// Runs `cmd` under `sh` as pod `hostname`, with `exec strait-broker` replaced by a printer
    /// of its arguments, one per line.
    fn run_as(hostname: &str, cmd: &str) -> Vec<String> {
        let script = cmd.replace("exec strait-broker", "printf '%s\\n'");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("HOSTNAME", hostname)
            .output()
            .unwrap_or_else(|e| panic!("sh: {e}"));
        assert!(out.status.success(), "{script}: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn start_command_expands_to_voter_and_broker_arguments() {
        let s = spec(6, &["a", "b", "c"]);
        let voters = desired_voters(&s);
        let voter = run_as(
            "kafka-z1-1000",
            &start_command("kafka", "ns", &s, "b", &voters),
        );
        assert_eq!(
            voter,
            [
                "--config",
                "/etc/strait/server.properties",
                "--override",
                "node.id=1000",
                "--override",
                "broker.rack=b",
                "--override",
                "advertised.listeners=REPLICATION://kafka-z1-1000.kafka-brokers.ns.svc:9091,PLAIN://kafka-z1-1000.kafka-brokers.ns.svc:9092",
                "--override",
                "process.roles=broker,controller",
                "--override",
                "listeners=REPLICATION://0.0.0.0:9091,PLAIN://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093",
            ]
        );
        let broker = run_as(
            "kafka-z1-1001",
            &start_command("kafka", "ns", &s, "b", &voters),
        );
        assert_eq!(broker[3], "node.id=1001");
        assert_eq!(
            broker[8..],
            [
                "--override",
                "process.roles=broker",
                "--override",
                "listeners=REPLICATION://0.0.0.0:9091,PLAIN://0.0.0.0:9092"
            ]
        );
        // 10000 is not voter 1000 (whole-word case patterns).
        let far = run_as(
            "kafka-z10-10000",
            &start_command("kafka", "ns", &s, "b", &voters),
        );
        assert_eq!(far[9], "process.roles=broker");
    }

    #[test]
    fn start_command_keeps_user_values_literal() {
        let s = spec(1, &["a"]);
        let zone = "it's $(touch /tmp/x) `id` \"q\" ${HOME} \\";
        let args = run_as("kafka-z0-0", &start_command("kafka", "ns", &s, zone, &[0]));
        assert_eq!(args[5], format!("broker.rack={zone}"));
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn hash_changes_with_config() {
        let a = config_hash("a=1\n");
        assert_eq!(a.len(), 64);
        assert_eq!(a, config_hash("a=1\n"));
        assert_ne!(a, config_hash("a=2\n"));
    }
}
