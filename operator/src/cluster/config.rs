//! Renders a Cluster's broker configuration: the shared `server.properties` (Kafka key names,
//! including the KRaft quorum, tiered storage, the replication listener's mutual TLS, SASL mechanisms of
//! authenticated listeners and the ACL authorizer with its super users), the per-broker
//! `--override` arguments (node id, rack, advertised listeners with each broker's external
//! addresses, the keystore of the replication and each TLS listener, and the process roles
//! decided from the pod ordinal at start), plus the hash that triggers a rolling restart when
//! the configuration changes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use strait_crds::ClusterSpec;
use strait_crds::cluster::{
    AuthorizationType, Listener, ListenerAuthenticationType, ListenerType, REPLICATION_PORT,
};

use crate::cluster::certs;
use crate::cluster::external::{self, ExternalAddresses};
use crate::cluster::quorum::{self, CONTROLLER_LISTENER, CONTROLLER_PORT};
use crate::cluster::tiered;
use crate::cluster::tls::{self, Replication};
use crate::names;

/// Kafka listener name of the inter-broker listener.
pub const REPLICATION_LISTENER: &str = "REPLICATION";
/// Kafka's authorizer of ACLs kept in the KRaft metadata log.
/// Kafka's rack-aware replica selector (KIP-392), which the broker implements.
pub const RACK_AWARE_REPLICA_SELECTOR: &str =
    "org.apache.kafka.common.replica.RackAwareReplicaSelector";
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// Kafka's SASL mechanism of a listener's authentication; `None` for certificates.
fn sasl_mechanism(kind: ListenerAuthenticationType) -> Option<&'static str> {
    match kind {
        ListenerAuthenticationType::ScramSha512 => Some("SCRAM-SHA-512"),
        ListenerAuthenticationType::Tls => None,
        ListenerAuthenticationType::Oauth => Some("OAUTHBEARER"),
    }
}

/// The listener with `oauth` authentication (the CRD allows one: the broker's
/// `sasl.oauthbearer.*` keys are global).
pub fn oauth_listener(spec: &ClusterSpec) -> Option<&Listener> {
    spec.listeners.iter().find(|l| {
        l.authentication
            .as_ref()
            .is_some_and(|a| a.kind == ListenerAuthenticationType::Oauth)
    })
}

/// Whether `listener` authenticates clients with SASL.
fn is_sasl(listener: &Listener) -> bool {
    listener
        .authentication
        .as_ref()
        .and_then(|a| sasl_mechanism(a.kind))
        .is_some()
}

/// Whether `listener` requires client certificates from the clients CA.
pub fn is_mutual_tls(listener: &Listener) -> bool {
    listener
        .authentication
        .as_ref()
        .is_some_and(|a| a.kind == ListenerAuthenticationType::Tls)
}

/// Whether any listener of `spec` requires client certificates: then the brokers mount the
/// clients CA certificate (see [`names::CLIENTS_CA_DIR`]).
pub fn needs_clients_ca(spec: &ClusterSpec) -> bool {
    spec.listeners.iter().any(is_mutual_tls)
}

/// The keystore file of the pod (its own entry of the mounted broker certificates Secret).
fn keystore_location() -> String {
    format!("{}/{}", names::TLS_DIR, tls::keystore_key("${HOSTNAME}"))
}

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
/// is the broker-only set, which voters override at start. With [`Replication::MutualTls`] the
/// replication listener is SSL with the pod's PEM keystore (its location comes per pod, see
/// [`broker_overrides`]), the CA certificate as truststore and client certificates required.
pub fn server_properties(
    cluster: &str,
    namespace: &str,
    spec: &ClusterSpec,
    voters: &[i32],
    replication: Replication,
) -> String {
    let mut keys: BTreeMap<String, String> = spec.config.clone();
    let rf = spec.replicas.clamp(1, 3);
    keys.entry("default.replication.factor".into())
        .or_insert_with(|| rf.to_string());
    keys.entry("offsets.topic.replication.factor".into())
        .or_insert_with(|| rf.to_string());
    keys.entry("min.insync.replicas".into())
        .or_insert_with(|| (rf - 1).max(1).to_string());
    // Every broker's rack is its zone, so consumers that set `client.rack` can read from a
    // replica in their own zone (KIP-392) and keep fetch traffic off billed cross-zone links. A
    // Cluster may turn it off with an empty value.
    keys.entry("replica.selector.class".into())
        .or_insert_with(|| RACK_AWARE_REPLICA_SELECTOR.into());
    let replication_protocol = if replication.replication_tls() {
        "SSL"
    } else {
        "PLAINTEXT"
    };
    let mut protocols = vec![format!("{REPLICATION_LISTENER}:{replication_protocol}")];
    for l in &spec.listeners {
        protocols.push(format!(
            "{}:{}",
            listener_name(&l.name),
            security_protocol(l.tls, is_sasl(l))
        ));
    }
    let controller_protocol = if replication.controller_tls() {
        "SSL"
    } else {
        "PLAINTEXT"
    };
    protocols.push(format!("{CONTROLLER_LISTENER}:{controller_protocol}"));
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
    // The store (or tiering off without `tieredStorage`); credentials come as env vars.
    keys.extend(tiered::broker_keys(spec));
    keys.insert(
        "metrics.listener".into(),
        format!("0.0.0.0:{}", spec.metrics_port()),
    );
    if replication.replication_tls() {
        // Brokers verify each other (and the operator) against the cluster CA only.
        let p = tls::listener_prefix(REPLICATION_LISTENER);
        keys.insert(format!("{p}ssl.keystore.type"), "PEM".into());
        keys.insert(format!("{p}ssl.truststore.type"), "PEM".into());
        keys.insert(
            format!("{p}ssl.truststore.location"),
            format!("{}/{}", names::TLS_DIR, tls::TRUSTSTORE_KEY),
        );
        keys.insert(format!("{p}ssl.client.auth"), "required".into());
    }
    if replication.controller_tls() {
        // The quorum's gRPC (Raft between voters, every node's controller calls and metadata
        // fetches) with the same certificates: every node resolves these keys, voters or not.
        let p = tls::listener_prefix(CONTROLLER_LISTENER);
        keys.insert(format!("{p}ssl.keystore.type"), "PEM".into());
        keys.insert(format!("{p}ssl.truststore.type"), "PEM".into());
        keys.insert(
            format!("{p}ssl.truststore.location"),
            format!("{}/{}", names::TLS_DIR, tls::TRUSTSTORE_KEY),
        );
        keys.insert(format!("{p}ssl.client.auth"), "required".into());
    }
    // TLS listeners read a PEM keystore: each broker's own file (see `broker_overrides`).
    for l in tls::tls_listeners(spec) {
        keys.insert(
            format!("{}ssl.keystore.type", tls::listener_prefix(&l.name)),
            "PEM".into(),
        );
    }
    for l in &spec.listeners {
        let p = tls::listener_prefix(&l.name);
        if let Some(mechanism) = l
            .authentication
            .as_ref()
            .and_then(|a| sasl_mechanism(a.kind))
        {
            keys.insert(format!("{p}sasl.enabled.mechanisms"), mechanism.into());
        }
        if is_mutual_tls(l) {
            // Clients show a certificate of the clients CA (a `tls` User's); the principal is
            // its subject, `User:CN=<user>`.
            keys.insert(format!("{p}ssl.client.auth"), "required".into());
            keys.insert(format!("{p}ssl.truststore.type"), "PEM".into());
            keys.insert(
                format!("{p}ssl.truststore.location"),
                format!("{}/{}", names::CLIENTS_CA_DIR, tls::TRUSTSTORE_KEY),
            );
        }
    }
    if let Some(auth) = oauth_listener(spec).and_then(|l| l.authentication.as_ref()) {
        // KIP-768 validation against the mounted key set (see `names::OAUTH_DIR`).
        keys.insert(
            "sasl.oauthbearer.jwks.endpoint.url".into(),
            format!("file://{}/{}", names::OAUTH_DIR, names::JWKS_FILE),
        );
        for (key, value) in [
            ("sasl.oauthbearer.expected.audience", &auth.valid_audience),
            ("sasl.oauthbearer.expected.issuer", &auth.valid_issuer_uri),
        ] {
            match value {
                Some(v) => keys.insert(key.into(), v.clone()),
                None => keys.remove(key),
            };
        }
    }
    if let Some(auth) = &spec.authorization {
        match auth.kind {
            AuthorizationType::Simple => {
                keys.insert("authorizer.class.name".into(), STANDARD_AUTHORIZER.into());
            }
        }
        keys.insert(
            "super.users".into(),
            super_users(cluster, &auth.super_users, replication).join(";"),
        );
    }
    let mut out =
        String::from("# Rendered by strait-operator; per-broker keys come as --override.\n");
    for (k, v) in &keys {
        let _ = writeln!(out, "{k}={}", escape(v));
    }
    out
}

/// `super.users` with ACLs: the principals the replication listener's mutual TLS gives the
/// operator's admin client and the brokers (so neither loses its rights when ACLs are
/// enforced), then the user's. Plaintext replication identifies nobody, so then only the user's
/// (the Cluster controller refuses `authorization` for such a Cluster).
pub fn super_users(cluster: &str, users: &[String], replication: Replication) -> Vec<String> {
    let mut out = Vec::new();
    if replication.replication_tls() {
        out.push(certs::principal(certs::OPERATOR_COMMON_NAME));
        out.push(certs::principal(&certs::broker_common_name(cluster)));
    }
    for u in users {
        let principal = format!("User:{u}");
        if !out.contains(&principal) {
            out.push(principal);
        }
    }
    out
}

/// Escapes a value for the properties format (backslashes and line breaks).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// Whether a spec has a `nodeport` or `loadbalancer` listener.
pub fn has_external(spec: &ClusterSpec) -> bool {
    spec.listeners
        .iter()
        .any(|l| l.kind != ListenerType::Internal)
}

/// Whether a spec has a `nodeport` listener (whose brokers advertise their node's IP).
pub fn has_nodeport(spec: &ClusterSpec) -> bool {
    spec.listeners
        .iter()
        .any(|l| l.kind == ListenerType::Nodeport)
}

/// `advertised.listeners` of broker `node_id` (`None`: any broker, with no external address
/// known): the replication and internal listeners on the pod's stable DNS name, external ones on
/// the broker's known external address, else (pending) on its per-broker Service's in-cluster
/// name.
pub fn advertised_listeners(
    cluster: &str,
    namespace: &str,
    spec: &ClusterSpec,
    external: &ExternalAddresses,
    node_id: Option<i32>,
) -> String {
    let headless = names::headless_service(cluster);
    let host = format!("${{HOSTNAME}}.{headless}.{namespace}.svc");
    let mut advertised = vec![format!(
        "{REPLICATION_LISTENER}://{host}:{REPLICATION_PORT}"
    )];
    for l in &spec.listeners {
        let name = listener_name(&l.name);
        let address = match l.kind {
            ListenerType::Internal => format!("{host}:{}", l.port),
            ListenerType::Nodeport | ListenerType::Loadbalancer => {
                match node_id.and_then(|id| external.get(&l.name, id)) {
                    Some(address) => address.render(),
                    None => format!(
                        "{cluster}-{}-${{HOSTNAME##*-}}.{namespace}.svc:{}",
                        l.name, l.port
                    ),
                }
            }
        };
        advertised.push(format!("{name}://{address}"));
    }
    advertised.join(",")
}

/// The `--override` arguments every broker in zone `zone` shares, as a shell fragment: node id
/// from the pod ordinal (`${HOSTNAME##*-}`), rack, the keystore (the pod's own `<pod>.pem` in
/// the mounted certificates Secret) of the replication listener with mutual TLS and of each
/// TLS listener, and, without external listeners, the advertised listeners on stable DNS names
/// (with them, the start command picks the advertised listeners per ordinal).
pub fn broker_overrides(
    cluster: &str,
    namespace: &str,
    spec: &ClusterSpec,
    zone: &str,
    replication: Replication,
) -> Vec<String> {
    let mut out = vec![
        "--override".into(),
        "node.id=${HOSTNAME##*-}".into(),
        "--override".into(),
        format!("broker.rack={zone}"),
    ];
    let replication_tls = replication
        .replication_tls()
        .then_some(REPLICATION_LISTENER);
    let controller_tls = replication.controller_tls().then_some(CONTROLLER_LISTENER);
    for listener in replication_tls
        .into_iter()
        .chain(controller_tls)
        .chain(tls::tls_listeners(spec).map(|l| l.name.as_str()))
    {
        out.push("--override".into());
        out.push(format!(
            "{}ssl.keystore.location={}",
            tls::listener_prefix(listener),
            keystore_location()
        ));
    }
    if !has_external(spec) {
        out.push("--override".into());
        out.push(format!(
            "advertised.listeners={}",
            advertised_listeners(
                cluster,
                namespace,
                spec,
                &ExternalAddresses::default(),
                None
            )
        ));
    }
    out
}

/// The `--override` arguments of a controller that is no seed voter (see
/// [`quorum::Controllers`]): the controller role, no `controller.quorum.voters` (the shared
/// file names the seeds, and a controller given voters must be one), and
/// `controller.quorum.bootstrap.servers` naming every controller, so that it finds the leader,
/// joins as an observer and waits for AddRaftVoter.
pub fn joining_overrides(
    cluster: &str,
    namespace: &str,
    spec: &ClusterSpec,
    controllers: &quorum::Controllers,
) -> Vec<String> {
    let mut out = role_overrides(spec, true);
    out.extend(["--override".into(), "controller.quorum.voters=".into()]);
    out.extend(bootstrap_override(cluster, namespace, controllers));
    out
}

/// `--override controller.quorum.bootstrap.servers=` naming every controller.
fn bootstrap_override(
    cluster: &str,
    namespace: &str,
    controllers: &quorum::Controllers,
) -> [String; 2] {
    [
        "--override".into(),
        format!(
            "controller.quorum.bootstrap.servers={}",
            quorum::bootstrap_servers(cluster, namespace, &controllers.contacts())
        ),
    ]
}

/// The `--override` arguments of a seed voter: the controller role, and once the quorum has
/// grown beyond its seeds, `controller.quorum.bootstrap.servers` naming every controller. A seed
/// that lost its disk then joins the grown quorum instead of seeding a second one from
/// `controller.quorum.voters` (an empty log asks the bootstrap servers for a running quorum
/// before it seeds). Growing the quorum so rolls the seeds once, after the voter change (voters
/// never restart during one).
pub fn seed_overrides(
    cluster: &str,
    namespace: &str,
    spec: &ClusterSpec,
    controllers: &quorum::Controllers,
) -> Vec<String> {
    let mut out = role_overrides(spec, true);
    if controllers.has_grown() {
        out.extend(bootstrap_override(cluster, namespace, controllers));
    }
    out
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

/// The broker start command (`sh -c`). One pod template serves a whole zone, so what differs
/// per broker comes from the ordinal (the node id) at start: a `case` on `${HOSTNAME##*-}` sets
/// the positional parameters to the seed voter, joining controller or broker-only overrides
/// (`controllers` should list this zone's joining controllers only, so that a quorum growing
/// elsewhere leaves this zone's template alone), and with external listeners a second `case`
/// appends each broker's advertised listeners (its external addresses in `external`, which
/// should hold this zone's brokers only); both follow the shared overrides.
pub fn start_command(
    cluster: &str,
    namespace: &str,
    spec: &ClusterSpec,
    zone: &str,
    controllers: &quorum::Controllers,
    external: &ExternalAddresses,
    replication: Replication,
) -> String {
    let words = |args: &[String]| {
        args.iter()
            .map(|a| shell_word(a))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut cmd = String::from("case \"${HOSTNAME##*-}\" in ");
    let ids = |ids: &[i32]| ids.iter().map(i32::to_string).collect::<Vec<_>>().join("|");
    if !controllers.seeds.is_empty() {
        let _ = write!(
            cmd,
            "{}) set -- {} ;; ",
            ids(&controllers.seeds),
            words(&seed_overrides(cluster, namespace, spec, controllers))
        );
    }
    if !controllers.joining.is_empty() {
        let _ = write!(
            cmd,
            "{}) set -- {} ;; ",
            ids(&controllers.joining),
            words(&joining_overrides(cluster, namespace, spec, controllers))
        );
    }
    let _ = write!(
        cmd,
        "*) set -- {} ;; esac; ",
        words(&role_overrides(spec, false))
    );
    if has_external(spec) {
        if has_nodeport(spec) {
            // status.hostIP is a bare IPv6 literal on IPv6 nodes; listeners want it bracketed.
            cmd.push_str("case \"${HOST_IP}\" in *:*) HOST_IP=\"[${HOST_IP}]\" ;; esac; ");
        }
        let advertised = |node_id| {
            words(&[
                "--override".to_owned(),
                format!(
                    "advertised.listeners={}",
                    advertised_listeners(cluster, namespace, spec, external, node_id)
                ),
            ])
        };
        cmd.push_str("case \"${HOSTNAME##*-}\" in ");
        for id in external.node_ids() {
            let _ = write!(cmd, "{id}) set -- \"$@\" {} ;; ", advertised(Some(id)));
        }
        let _ = write!(cmd, "*) set -- \"$@\" {} ;; esac; ", advertised(None));
    }
    let _ = write!(
        cmd,
        "exec strait-broker --config {} {} \"$@\"",
        shell_word(&format!("{}/server.properties", names::CONFIG_DIR)),
        words(&broker_overrides(
            cluster,
            namespace,
            spec,
            zone,
            replication
        )),
    );
    cmd
}

/// Expansions the rendered arguments use on purpose; everything else is literal.
const EXPANSIONS: [&str; 3] = ["${HOSTNAME##*-}", "${HOSTNAME}", external::HOST_IP];

/// One shell word for `value`: literal text single-quoted, the [`EXPANSIONS`] double-quoted so
/// that they expand (to the pod name, its ordinal or its node's IP, never to code).
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
    use crate::cluster::identity::tests::spec;
    use crate::cluster::quorum::{Controllers, desired_voters};

    fn none() -> ExternalAddresses {
        ExternalAddresses::default()
    }

    fn properties(s: &ClusterSpec) -> String {
        server_properties("kafka", "ns", s, &desired_voters(s), Replication::Plaintext)
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
        assert!(p.contains(
            "\nreplica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector\n"
        ));
        s.config
            .insert("replica.selector.class".into(), String::new());
        assert!(
            properties(&s).contains("\nreplica.selector.class=\n"),
            "a Cluster may turn it off"
        );
    }

    #[test]
    fn properties_name_the_quorum() {
        let p = properties(&spec(4, &["a", "b", "c"]));
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
        let o = broker_overrides(
            "kafka",
            "ns",
            &spec(3, &["a"]),
            "eu-1a",
            Replication::Plaintext,
        );
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
        let s = spec(4, &["a", "b", "c"]);
        let cmd = start_command(
            "kafka",
            "ns",
            &s,
            "b",
            &Controllers::seeded(&desired_voters(&s)),
            &none(),
            Replication::Plaintext,
        );
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
    /// The keystore locations pod `hostname` (zone a, one voter) passes at start.
    fn keystore_locations(
        hostname: &str,
        s: &ClusterSpec,
        replication: Replication,
    ) -> Vec<String> {
        let command = start_command(
            "kafka",
            "ns",
            s,
            "a",
            &Controllers::seeded(&[0]),
            &none(),
            replication,
        );
        run_as(hostname, &command)
            .into_iter()
            .filter(|a| a.contains("ssl.keystore.location"))
            .collect()
    }

    fn run_as(hostname: &str, cmd: &str) -> Vec<String> {
        run_on(hostname, "", cmd)
    }

    /// [`run_as`] on a node whose IP (the downward API's `status.hostIP`) is `host_ip`.
    fn run_on(hostname: &str, host_ip: &str, cmd: &str) -> Vec<String> {
        let script = cmd.replace("exec strait-broker", "printf '%s\\n'");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("HOSTNAME", hostname)
            .env("HOST_IP", host_ip)
            .output()
            .unwrap_or_else(|e| panic!("sh: {e}"));
        assert!(out.status.success(), "{script}: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn joining_controllers_start_with_the_bootstrap_servers_alone() {
        // Seeded by broker 0; 1000 and 2000 join (zone b's template names 1000 only).
        let s = spec(3, &["a", "b", "c"]);
        let controllers = Controllers::new(&[0], &desired_voters(&s)).in_zone(1);
        let command = start_command(
            "kafka",
            "ns",
            &s,
            "b",
            &controllers,
            &none(),
            Replication::MutualTls,
        );
        let joining = run_as("kafka-z1-1000", &command);
        assert_eq!(
            joining[joining.len() - 8..],
            [
                "--override",
                "process.roles=broker,controller",
                "--override",
                "listeners=REPLICATION://0.0.0.0:9091,PLAIN://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093",
                "--override",
                "controller.quorum.voters=",
                "--override",
                "controller.quorum.bootstrap.servers=kafka-z0-0.kafka-brokers.ns.svc:9093,\
                 kafka-z1-1000.kafka-brokers.ns.svc:9093,kafka-z2-2000.kafka-brokers.ns.svc:9093",
            ]
        );
        // The seed keeps its voters (the shared file) and is told every controller, so that on
        // a lost disk it joins the grown quorum rather than seeding a second one; a broker of
        // the zone stays broker-only.
        let seed = run_as("kafka-z0-0", &command);
        assert!(seed.contains(&"process.roles=broker,controller".to_owned()));
        assert_eq!(
            seed.iter()
                .filter(|a| a.starts_with("controller.quorum"))
                .collect::<Vec<_>>(),
            [
                "controller.quorum.bootstrap.servers=kafka-z0-0.kafka-brokers.ns.svc:9093,\
                 kafka-z1-1000.kafka-brokers.ns.svc:9093,kafka-z2-2000.kafka-brokers.ns.svc:9093"
            ]
        );
        let broker = run_as("kafka-z1-1001", &command);
        assert!(broker.contains(&"process.roles=broker".to_owned()));
        assert!(!broker.iter().any(|a| a.starts_with("controller.quorum")));
        // Without joining controllers the command is what a static quorum had.
        let seeded = Controllers::seeded(&[0, 1000, 2000]);
        assert_eq!(
            start_command(
                "kafka",
                "ns",
                &s,
                "b",
                &seeded,
                &none(),
                Replication::MutualTls
            ),
            start_command(
                "kafka",
                "ns",
                &s,
                "b",
                &Controllers::new(&[0, 1000, 2000], &[0, 1000, 2000]).in_zone(1),
                &none(),
                Replication::MutualTls
            )
        );
    }

    #[test]
    fn start_command_expands_to_voter_and_broker_arguments() {
        let s = spec(4, &["a", "b", "c"]);
        let voters = desired_voters(&s);
        let voter = run_as(
            "kafka-z1-1000",
            &start_command(
                "kafka",
                "ns",
                &s,
                "b",
                &Controllers::seeded(&voters),
                &none(),
                Replication::Plaintext,
            ),
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
            &start_command(
                "kafka",
                "ns",
                &s,
                "b",
                &Controllers::seeded(&voters),
                &none(),
                Replication::Plaintext,
            ),
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
            &start_command(
                "kafka",
                "ns",
                &s,
                "b",
                &Controllers::seeded(&voters),
                &none(),
                Replication::Plaintext,
            ),
        );
        assert_eq!(far[9], "process.roles=broker");
    }

    #[test]
    fn start_command_keeps_user_values_literal() {
        let s = spec(1, &["a"]);
        let zone = "it's $(touch /tmp/x) `id` \"q\" ${HOME} \\";
        let args = run_as(
            "kafka-z0-0",
            &start_command(
                "kafka",
                "ns",
                &s,
                zone,
                &Controllers::seeded(&[0]),
                &none(),
                Replication::Plaintext,
            ),
        );
        assert_eq!(args[5], format!("broker.rack={zone}"));
        assert_eq!(shell_word(""), "''");
    }

    fn external_spec() -> ClusterSpec {
        let mut s = spec(4, &["a", "b"]);
        for (name, port, kind) in [
            ("lb", 9094, ListenerType::Loadbalancer),
            ("np", 9095, ListenerType::Nodeport),
        ] {
            s.listeners.push(strait_crds::cluster::Listener {
                name: name.into(),
                port,
                kind,
                tls: false,
                authentication: None,
            });
        }
        s
    }

    /// Zone a (node ids 0, 1) of [`external_spec`]: broker 0's load balancer has an ingress and
    /// both NodePorts are allocated; broker 1's load balancer is pending.
    fn zone_a_addresses() -> ExternalAddresses {
        use crate::cluster::external::ExternalAddress;
        ExternalAddresses {
            known: BTreeMap::from([
                (
                    ("lb".to_owned(), 0),
                    ExternalAddress::Host("lb0.example.com".into(), 9094),
                ),
                (("np".to_owned(), 0), ExternalAddress::NodePort(31000)),
                (("np".to_owned(), 1), ExternalAddress::NodePort(31001)),
            ]),
            pending: vec!["kafka-lb-1".into()],
        }
    }

    #[test]
    fn external_listeners_advertise_each_brokers_external_address() {
        let s = external_spec();
        // The shared overrides no longer carry the advertised listeners.
        let o = broker_overrides("kafka", "ns", &s, "a", Replication::Plaintext);
        assert_eq!(o.len(), 4);
        let a = zone_a_addresses();
        assert_eq!(
            advertised_listeners("kafka", "ns", &s, &a, Some(0)),
            "REPLICATION://${HOSTNAME}.kafka-brokers.ns.svc:9091,\
             PLAIN://${HOSTNAME}.kafka-brokers.ns.svc:9092,\
             LB://lb0.example.com:9094,NP://${HOST_IP}:31000"
        );
        // Pending: the per-broker Service's in-cluster name.
        assert_eq!(
            advertised_listeners("kafka", "ns", &s, &a, Some(1)),
            "REPLICATION://${HOSTNAME}.kafka-brokers.ns.svc:9091,\
             PLAIN://${HOSTNAME}.kafka-brokers.ns.svc:9092,\
             LB://kafka-lb-${HOSTNAME##*-}.ns.svc:9094,NP://${HOST_IP}:31001"
        );
        assert!(advertised_listeners("kafka", "ns", &s, &a, None).ends_with(
            ",LB://kafka-lb-${HOSTNAME##*-}.ns.svc:9094,NP://kafka-np-${HOSTNAME##*-}.ns.svc:9095"
        ));
    }

    #[test]
    fn start_command_picks_the_external_address_from_the_ordinal() {
        let s = external_spec();
        let voters = desired_voters(&s);
        let cmd = start_command(
            "kafka",
            "ns",
            &s,
            "a",
            &Controllers::seeded(&voters),
            &zone_a_addresses(),
            Replication::Plaintext,
        );
        let advertised = |args: &[String]| {
            args.iter()
                .find(|a| a.starts_with("advertised.listeners="))
                .cloned()
                .unwrap_or_default()
        };
        let b0 = run_on("kafka-z0-0", "10.0.0.7", &cmd);
        assert_eq!(
            advertised(&b0),
            "advertised.listeners=REPLICATION://kafka-z0-0.kafka-brokers.ns.svc:9091,\
             PLAIN://kafka-z0-0.kafka-brokers.ns.svc:9092,\
             LB://lb0.example.com:9094,NP://10.0.0.7:31000"
        );
        assert!(b0.contains(&"process.roles=broker,controller".to_owned()));
        assert_eq!(b0[3], "node.id=0");
        assert_eq!(b0.iter().filter(|a| *a == "--override").count(), 5);
        let b1 = run_on("kafka-z0-1", "fd00::7", &cmd);
        assert_eq!(
            advertised(&b1),
            "advertised.listeners=REPLICATION://kafka-z0-1.kafka-brokers.ns.svc:9091,\
             PLAIN://kafka-z0-1.kafka-brokers.ns.svc:9092,\
             LB://kafka-lb-1.ns.svc:9094,NP://[fd00::7]:31001"
        );
        // A broker with nothing known (a new one): in-cluster names throughout.
        let b2 = run_on("kafka-z0-2", "10.0.0.9", &cmd);
        assert!(
            advertised(&b2).ends_with(",LB://kafka-lb-2.ns.svc:9094,NP://kafka-np-2.ns.svc:9095"),
            "{b2:?}"
        );
        // The node's IP cannot inject code either.
        let odd = run_on("kafka-z0-0", "$(id) `id`", &cmd);
        assert!(
            advertised(&odd).ends_with(",NP://$(id) `id`:31000"),
            "{odd:?}"
        );
    }

    #[test]
    fn tls_listeners_get_a_pem_keystore_per_broker() {
        let mut s = spec(3, &["a"]);
        s.listeners.push(strait_crds::cluster::Listener {
            name: "secure".into(),
            port: 9094,
            kind: ListenerType::Internal,
            tls: true,
            authentication: None,
        });
        let p = properties(&s);
        assert!(
            p.contains(
                "\nlistener.security.protocol.map=REPLICATION:PLAINTEXT,PLAIN:PLAINTEXT,\
                 SECURE:SSL,CONTROLLER:PLAINTEXT\n"
            ),
            "{p}"
        );
        assert!(p.contains("\nlistener.name.secure.ssl.keystore.type=PEM\n"));
        // Only the TLS listener, never a key password, never inline key material.
        assert!(!p.contains("listener.name.plain."));
        assert!(!p.contains("ssl.key.password"));
        assert!(!p.contains("ssl.keystore.key"));
        let locations = keystore_locations("kafka-z0-2", &s, Replication::Plaintext);
        assert_eq!(
            locations,
            ["listener.name.secure.ssl.keystore.location=/etc/strait-tls/kafka-z0-2.pem"]
        );
        // Without TLS listeners, nothing of it.
        let plain = properties(&spec(3, &["a"]));
        assert!(!plain.contains("ssl."));
        assert!(
            !broker_overrides("kafka", "ns", &spec(3, &["a"]), "a", Replication::Plaintext)
                .iter()
                .any(|a| a.contains("ssl."))
        );
    }

    #[test]
    fn replication_with_mutual_tls_requires_client_certificates() {
        let s = spec(3, &["a"]);
        let p = server_properties("kafka", "ns", &s, &[0], Replication::MutualTls);
        assert!(
            p.contains(
                "\nlistener.security.protocol.map=REPLICATION:SSL,PLAIN:PLAINTEXT,CONTROLLER:SSL\n"
            ),
            "{p}"
        );
        assert!(p.contains("\ninter.broker.listener.name=REPLICATION\n"));
        let replication: Vec<&str> = p
            .lines()
            .filter(|l| l.starts_with("listener.name.replication."))
            .collect();
        assert_eq!(
            replication,
            [
                "listener.name.replication.ssl.client.auth=required",
                "listener.name.replication.ssl.keystore.type=PEM",
                "listener.name.replication.ssl.truststore.location=/etc/strait-tls/ca.crt",
                "listener.name.replication.ssl.truststore.type=PEM",
            ]
        );
        // The controller listener too (the quorum's gRPC, same certificates), the user's
        // plaintext listener untouched.
        let controller: Vec<&str> = p
            .lines()
            .filter(|l| l.starts_with("listener.name.controller."))
            .collect();
        assert_eq!(
            controller,
            [
                "listener.name.controller.ssl.client.auth=required",
                "listener.name.controller.ssl.keystore.type=PEM",
                "listener.name.controller.ssl.truststore.location=/etc/strait-tls/ca.crt",
                "listener.name.controller.ssl.truststore.type=PEM",
            ]
        );
        assert!(!p.contains("listener.name.plain."));
        // A Cluster whose quorum an earlier version started keeps it plaintext (sticky).
        let older = server_properties(
            "kafka",
            "ns",
            &s,
            &[0],
            Replication::MutualTlsPlaintextQuorum,
        );
        assert!(
            older.contains(
                "\nlistener.security.protocol.map=REPLICATION:SSL,PLAIN:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
            ),
            "{older}"
        );
        assert!(!older.contains("listener.name.controller."));
        assert!(older.contains("listener.name.replication.ssl.client.auth=required"));
        assert!(!p.contains("ssl.key.password"));
        // Each pod reads its own keystore, for the replication listener and TLS listeners alike.
        let mut s = s;
        s.listeners.push(strait_crds::cluster::Listener {
            name: "secure".into(),
            port: 9094,
            kind: ListenerType::Internal,
            tls: true,
            authentication: None,
        });
        let locations = keystore_locations("kafka-z0-1", &s, Replication::MutualTls);
        assert_eq!(
            locations,
            [
                "listener.name.replication.ssl.keystore.location=/etc/strait-tls/kafka-z0-1.pem",
                "listener.name.controller.ssl.keystore.location=/etc/strait-tls/kafka-z0-1.pem",
                "listener.name.secure.ssl.keystore.location=/etc/strait-tls/kafka-z0-1.pem"
            ]
        );
        assert_eq!(
            keystore_locations("kafka-z0-1", &s, Replication::MutualTlsPlaintextQuorum).len(),
            2
        );
        // Changing how a cluster replicates changes its configuration hash (its brokers roll).
        assert_ne!(
            config_hash(&p),
            config_hash(&server_properties(
                "kafka",
                "ns",
                &spec(3, &["a"]),
                &[0],
                Replication::Plaintext
            ))
        );
    }

    #[test]
    fn scram_listeners_name_their_mechanism() {
        let mut s = spec(3, &["a"]);
        let scram = Some(strait_crds::cluster::ListenerAuthentication {
            kind: ListenerAuthenticationType::ScramSha512,
            jwks: None,
            valid_audience: None,
            valid_issuer_uri: None,
        });
        s.listeners[0].authentication = scram.clone();
        s.listeners.push(strait_crds::cluster::Listener {
            name: "secure".into(),
            port: 9094,
            kind: ListenerType::Internal,
            tls: true,
            authentication: scram,
        });
        let p = server_properties("kafka", "ns", &s, &[0], Replication::MutualTls);
        assert!(
            p.contains(
                "\nlistener.security.protocol.map=REPLICATION:SSL,PLAIN:SASL_PLAINTEXT,\
                 SECURE:SASL_SSL,CONTROLLER:SSL\n"
            ),
            "{p}"
        );
        assert!(p.contains("\nlistener.name.plain.sasl.enabled.mechanisms=SCRAM-SHA-512\n"));
        assert!(p.contains("\nlistener.name.secure.sasl.enabled.mechanisms=SCRAM-SHA-512\n"));
        assert!(p.contains("\nlistener.name.secure.ssl.keystore.type=PEM\n"));
        // Not on the replication listener, whose clients authenticate with certificates.
        assert!(!p.contains("listener.name.replication.sasl"));
        assert!(!p.contains("authorizer.class.name"));
        assert!(!p.contains("super.users"));
    }

    #[test]
    fn tls_authentication_requires_certificates_of_the_clients_ca() {
        let mut s = spec(3, &["a"]);
        assert!(!needs_clients_ca(&s));
        s.listeners.push(strait_crds::cluster::Listener {
            name: "mtls".into(),
            port: 9094,
            kind: ListenerType::Internal,
            tls: true,
            authentication: Some(strait_crds::cluster::ListenerAuthentication {
                kind: ListenerAuthenticationType::Tls,
                jwks: None,
                valid_audience: None,
                valid_issuer_uri: None,
            }),
        });
        assert!(needs_clients_ca(&s));
        let p = server_properties("kafka", "ns", &s, &[0], Replication::MutualTls);
        assert!(
            p.contains(
                "\nlistener.security.protocol.map=REPLICATION:SSL,PLAIN:PLAINTEXT,MTLS:SSL,\
                 CONTROLLER:SSL\n"
            ),
            "{p}"
        );
        assert!(p.contains("\nlistener.name.mtls.ssl.client.auth=required\n"));
        assert!(p.contains("\nlistener.name.mtls.ssl.truststore.type=PEM\n"));
        assert!(p.contains(
            "\nlistener.name.mtls.ssl.truststore.location=/etc/strait-clients-ca/ca.crt\n"
        ));
        assert!(p.contains("\nlistener.name.mtls.ssl.keystore.type=PEM\n"));
        assert!(!p.contains("listener.name.mtls.sasl"), "{p}");
        // The replication listener keeps the cluster CA.
        assert!(p.contains(
            "\nlistener.name.replication.ssl.truststore.location=/etc/strait-tls/ca.crt\n"
        ));
    }

    #[test]
    fn oauth_listeners_validate_tokens_against_the_mounted_key_set() {
        let mut s = spec(3, &["a"]);
        s.config
            .insert("sasl.oauthbearer.expected.issuer".into(), "stale".into());
        s.listeners[0] = serde_json::from_value(serde_json::json!({
            "name": "plain", "port": 9092, "type": "internal",
            "authentication": {"type": "oauth",
                               "jwks": {"configMapKeyRef": {"name": "idp", "key": "keys.json"}},
                               "validAudience": "kafka"}
        }))
        .unwrap_or_else(|e| panic!("listener: {e}"));
        let p = server_properties("kafka", "ns", &s, &[0], Replication::MutualTls);
        for line in [
            "listener.security.protocol.map=REPLICATION:SSL,PLAIN:SASL_PLAINTEXT,CONTROLLER:SSL",
            "listener.name.plain.sasl.enabled.mechanisms=OAUTHBEARER",
            "sasl.oauthbearer.jwks.endpoint.url=file:///etc/strait-oauth/jwks.json",
            "sasl.oauthbearer.expected.audience=kafka",
        ] {
            assert!(p.contains(&format!("\n{line}\n")), "{line}\n{p}");
        }
        // The spec's issuer is the only one: a stale one in `config` does not stay.
        assert!(!p.contains("sasl.oauthbearer.expected.issuer"), "{p}");
    }

    #[test]
    fn simple_authorization_keeps_the_operator_and_brokers_super_users() {
        let mut s = spec(3, &["a"]);
        s.authorization = Some(strait_crds::cluster::Authorization {
            kind: AuthorizationType::Simple,
            super_users: vec!["admin".into(), "CN=strait-operator,O=strait.dev".into()],
        });
        let p = server_properties("kafka", "ns", &s, &[0], Replication::MutualTls);
        assert!(
            p.contains(
                "\nauthorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n"
            ),
            "{p}"
        );
        // The operator's client certificate and the brokers' certificates, then the user's
        // (each once).
        assert!(
            p.contains(
                "\nsuper.users=User:CN=strait-operator,O=strait.dev;\
                 User:CN=kafka-broker,O=strait.dev;User:admin\n"
            ),
            "{p}"
        );
        // Plaintext replication identifies nobody: only the user's super users.
        let p = server_properties("kafka", "ns", &s, &[0], Replication::Plaintext);
        assert!(
            p.contains("\nsuper.users=User:admin;User:CN=strait-operator,O=strait.dev\n"),
            "{p}"
        );
        s.authorization = Some(strait_crds::cluster::Authorization {
            kind: AuthorizationType::Simple,
            super_users: Vec::new(),
        });
        let p = server_properties("kafka", "ns", &s, &[0], Replication::MutualTls);
        assert!(p.contains(
            "\nsuper.users=User:CN=strait-operator,O=strait.dev;User:CN=kafka-broker,O=strait.dev\n"
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
