//! Pure validation of a Cluster spec beyond what the CRD schema enforces: keys the operator
//! owns (those of `authorization` and `tieredStorage` included), listeners clashing with the
//! controller quorum's, a `tieredStorage` the brokers cannot use, and storage that may only grow.
//! Listener `authentication` (SCRAM-SHA-512, and `tls` client certificates) and `authorization`
//! (Kafka's StandardAuthorizer) are served and accepted.

use strait_crds::ClusterSpec;
use strait_crds::cluster::REPLICATION_PORT;

use crate::cluster::quorum::{CONTROLLER_LISTENER, CONTROLLER_PORT};
use crate::cluster::tiered;

/// Broker keys the operator sets itself; a Cluster may not override them.
pub const RESERVED_KEYS: [&str; 14] = [
    "node.id",
    "broker.id",
    "broker.rack",
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "inter.broker.listener.name",
    "log.dir",
    "log.dirs",
    "metrics.listener",
    "process.roles",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "controller.listener.names",
];

/// Authorizer keys the operator sets from `authorization`: the authorizer, its super users (which
/// always hold the operator's and the brokers' certificate principals), and the certificate
/// principal mapping those principals are written for (Kafka's `DEFAULT`).
pub const AUTHORIZATION_KEYS: [&str; 3] = [
    "authorizer.class.name",
    "super.users",
    "ssl.principal.mapping.rules",
];

/// One problem of a spec that stops a reconcile; its text is what the `Ready` condition and
/// the `InvalidSpec` Event show.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A broker key the operator sets itself (see [`RESERVED_KEYS`]).
    #[error("config key `{0}` is set by the operator")]
    ReservedKey(String),
    /// A listener named like the controller quorum's.
    #[error("listener name `{0}` is reserved for the controller quorum")]
    ReservedListenerName(String),
    /// A listener on the controller quorum's port.
    #[error("listener `{0}`: port {CONTROLLER_PORT} is reserved for the controller quorum")]
    ReservedListenerPort(String),
    /// An authorizer key (see [`AUTHORIZATION_KEYS`]).
    #[error(
        "config key `{0}` is set by the operator from `authorization` (super users go in \
         `authorization.superUsers`)"
    )]
    AuthorizationKey(String),
    /// A tiered-storage key (see [`tiered::KEYS`]).
    #[error("config key `{0}` is set by the operator from `tieredStorage`")]
    TieredStorageKey(String),
    /// A `tieredStorage` the brokers cannot use (see [`tiered::problems`]).
    #[error("{0}")]
    TieredStorage(String),
    /// A metrics port taken by the quorum or by replication.
    #[error("metrics port {0} is reserved for the controller quorum or inter-broker traffic")]
    ReservedMetricsPort(i32),
    /// `replicas` below 1.
    #[error("replicas must be at least 1")]
    NoReplicas,
    /// No zone.
    #[error("at least one zone is needed")]
    NoZones,
    /// A storage size that is not a Kubernetes quantity.
    #[error("storage size `{0}` is not a quantity")]
    StorageSize(String),
}

/// Every problem of a spec, in the order they are checked; shown joined by `; `.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct InvalidSpec(pub Vec<SpecError>);

/// The spec as the operator can serve it, or every reason it cannot.
pub fn validate(spec: &ClusterSpec) -> Result<(), InvalidSpec> {
    let mut problems = Vec::new();
    for key in spec.config.keys() {
        if RESERVED_KEYS.contains(&key.as_str()) {
            problems.push(SpecError::ReservedKey(key.clone()));
        }
        if AUTHORIZATION_KEYS.contains(&key.as_str()) {
            problems.push(SpecError::AuthorizationKey(key.clone()));
        }
        if tiered::KEYS.contains(&key.as_str()) {
            problems.push(SpecError::TieredStorageKey(key.clone()));
        }
    }
    for l in &spec.listeners {
        if l.name.eq_ignore_ascii_case(CONTROLLER_LISTENER) {
            problems.push(SpecError::ReservedListenerName(l.name.clone()));
        }
        if l.port == CONTROLLER_PORT {
            problems.push(SpecError::ReservedListenerPort(l.name.clone()));
        }
    }
    if let Some(t) = &spec.tiered_storage {
        problems.extend(
            tiered::problems(t, &spec.config)
                .into_iter()
                .map(SpecError::TieredStorage),
        );
    }
    let metrics = spec.metrics_port();
    if metrics == CONTROLLER_PORT || metrics == REPLICATION_PORT {
        problems.push(SpecError::ReservedMetricsPort(metrics));
    }
    if spec.replicas < 1 {
        problems.push(SpecError::NoReplicas);
    }
    if spec.zones.is_empty() {
        problems.push(SpecError::NoZones);
    }
    if parse_quantity(&spec.storage.size).is_none() {
        problems.push(SpecError::StorageSize(spec.storage.size.clone()));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(InvalidSpec(problems))
    }
}

/// Bytes of a Kubernetes quantity such as `10Gi` or `500M`; `None` when it does not parse.
pub fn parse_quantity(q: &str) -> Option<u128> {
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let factor: u128 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        _ => return None,
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut bytes = whole.checked_mul(factor)?;
    if !frac.is_empty() {
        let digits = u32::try_from(frac.len()).ok()?;
        let scale = 10u128.checked_pow(digits)?;
        let frac: u128 = frac.parse().ok()?;
        bytes = bytes.checked_add(frac.checked_mul(factor)? / scale)?;
    }
    Some(bytes)
}

/// Whether a claim of `current` size must grow to `wanted`; an error when it would shrink.
pub fn storage_change(current: &str, wanted: &str) -> Result<bool, String> {
    match (parse_quantity(current), parse_quantity(wanted)) {
        (Some(c), Some(w)) if w > c => Ok(true),
        (Some(c), Some(w)) if w < c => {
            Err(format!("storage cannot shrink from {current} to {wanted}"))
        }
        (Some(_), Some(_)) => Ok(false),
        _ => Err(format!(
            "cannot compare storage sizes {current} and {wanted}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::identity::tests::spec;

    /// The messages [`super::validate`] reports, as the `Ready` condition shows them.
    fn validate(spec: &ClusterSpec) -> Vec<String> {
        match super::validate(spec) {
            Ok(()) => Vec::new(),
            Err(InvalidSpec(problems)) => problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn the_problems_are_joined_into_one_message() {
        let mut s = spec(0, &[]);
        s.config.insert("node.id".into(), "7".into());
        let invalid = super::validate(&s).expect_err("invalid");
        assert_eq!(
            invalid.to_string(),
            "config key `node.id` is set by the operator; replicas must be at least 1; \
             at least one zone is needed"
        );
    }

    #[test]
    fn reserved_keys_are_refused() {
        let mut s = spec(3, &["a"]);
        s.config.insert("node.id".into(), "7".into());
        s.config.insert("num.partitions".into(), "3".into());
        assert_eq!(
            validate(&s),
            ["config key `node.id` is set by the operator"]
        );
        assert!(validate(&spec(3, &["a"])).is_empty());
        let mut s = spec(3, &["a"]);
        s.config
            .insert("controller.listener.names".into(), "X".into());
        assert_eq!(
            validate(&s),
            ["config key `controller.listener.names` is set by the operator"]
        );
    }

    #[test]
    fn scram_listeners_are_accepted_with_and_without_tls() {
        // The broker serves SCRAM-SHA-512 on SASL_PLAINTEXT and SASL_SSL listeners.
        let mut s = spec(3, &["a"]);
        for tls in [true, false] {
            s.listeners[0].tls = tls;
            s.listeners[0].authentication = Some(strait_crds::cluster::ListenerAuthentication {
                kind: strait_crds::cluster::ListenerAuthenticationType::ScramSha512,
                jwks: None,
                valid_audience: None,
                valid_issuer_uri: None,
            });
            assert_eq!(validate(&s), Vec::<String>::new());
        }
    }

    #[test]
    fn authorization_and_tiered_storage_are_accepted() {
        let mut s = spec(3, &["a"]);
        s.authorization = Some(
            serde_json::from_value(serde_json::json!({"type": "simple", "superUsers": ["admin"]}))
                .unwrap(),
        );
        assert_eq!(validate(&s), Vec::<String>::new());
        s.tiered_storage = Some(
            serde_json::from_value(
                serde_json::json!({"s3": {"bucket": "tier", "region": "eu-west-1"}}),
            )
            .unwrap(),
        );
        assert_eq!(validate(&s), Vec::<String>::new());
        // Neither store: the reason, as the `Ready` condition shows it.
        s.tiered_storage = Some(serde_json::from_value(serde_json::json!({})).unwrap());
        assert_eq!(
            validate(&s),
            ["`tieredStorage`: set exactly one of `s3` and `filesystem`"]
        );
    }

    #[test]
    fn store_keys_come_from_tiered_storage_only() {
        // Set by hand they would fight the rendered store (or turn tiering on into the data
        // volume); the tuning keys stay the user's.
        for key in tiered::KEYS {
            let mut s = spec(3, &["a"]);
            s.config.insert(key.into(), "x".into());
            assert_eq!(
                validate(&s),
                [format!(
                    "config key `{key}` is set by the operator from `tieredStorage`"
                )]
            );
        }
        let mut s = spec(3, &["a"]);
        s.config
            .insert("remote.log.manager.task.interval.ms".into(), "5000".into());
        s.config
            .insert("rsm.config.fetch.chunk.cache.size".into(), "1000".into());
        s.config
            .insert("log.local.retention.ms".into(), "1000".into());
        assert_eq!(validate(&s), Vec::<String>::new());
    }

    #[test]
    fn the_tiered_example_cluster_is_accepted() {
        let example: strait_crds::Cluster =
            serde_saphyr::from_str(include_str!("../../../docs/examples/cluster-tiered.yaml"))
                .unwrap_or_else(|e| panic!("docs/examples/cluster-tiered.yaml: {e}"));
        assert!(example.spec.tiered_storage.is_some());
        assert_eq!(validate(&example.spec), Vec::<String>::new());
    }

    #[test]
    fn authorizer_keys_come_from_authorization_only() {
        // Set by hand they would drop the operator's and the brokers' super users (or change
        // the principals their certificates give), with or without `authorization`.
        for key in AUTHORIZATION_KEYS {
            let mut s = spec(3, &["a"]);
            s.config.insert(key.into(), "x".into());
            assert_eq!(
                validate(&s),
                [format!(
                    "config key `{key}` is set by the operator from `authorization` (super \
                     users go in `authorization.superUsers`)"
                )]
            );
        }
        let mut s = spec(3, &["a"]);
        s.config
            .insert("allow.everyone.if.no.acl.found".into(), "true".into());
        assert_eq!(validate(&s), Vec::<String>::new());
    }

    #[test]
    fn the_example_cluster_is_accepted() {
        let example: strait_crds::Cluster =
            serde_saphyr::from_str(include_str!("../../../docs/examples/cluster.yaml"))
                .unwrap_or_else(|e| panic!("docs/examples/cluster.yaml: {e}"));
        assert!(
            example.spec.listeners.iter().any(|l| l.tls),
            "it shows a TLS listener"
        );
        assert_eq!(validate(&example.spec), Vec::<String>::new());
    }

    #[test]
    fn listeners_may_not_take_the_controller_name_or_port() {
        let mut s = spec(3, &["a"]);
        s.listeners[0].name = "controller".into();
        s.listeners[0].port = 9093;
        assert_eq!(
            validate(&s),
            [
                "listener name `controller` is reserved for the controller quorum",
                "listener `controller`: port 9093 is reserved for the controller quorum"
            ]
        );
    }

    #[test]
    fn metrics_port_may_not_take_a_quorum_or_replication_port() {
        for port in [9091, 9093] {
            let mut s = spec(3, &["a"]);
            s.metrics = Some(strait_crds::cluster::Metrics {
                enabled: true,
                port: Some(port),
                service_monitor: None,
            });
            assert_eq!(
                validate(&s),
                [format!(
                    "metrics port {port} is reserved for the controller quorum or inter-broker traffic"
                )]
            );
        }
    }

    #[test]
    fn quantities_parse() {
        assert_eq!(parse_quantity("10Gi"), Some(10 << 30));
        assert_eq!(parse_quantity("1.5Ki"), Some(1536));
        assert_eq!(parse_quantity("500M"), Some(500_000_000));
        assert_eq!(parse_quantity("12"), Some(12));
        assert_eq!(parse_quantity("1Xi"), None);
        assert_eq!(parse_quantity("Gi"), None);
    }

    #[test]
    fn storage_grows_but_never_shrinks() {
        assert_eq!(storage_change("10Gi", "20Gi"), Ok(true));
        assert_eq!(storage_change("10Gi", "10240Mi"), Ok(false));
        assert!(storage_change("20Gi", "10Gi").is_err());
    }
}
