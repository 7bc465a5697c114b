//! Tests of the KRaft view: voter and bootstrap syntax, Kafka's role/voter/listener rules, the
//! inter-broker listener choice, and single-node mode left alone.

use std::collections::BTreeMap;

use crate::broker::BrokerConfig;
use crate::describe::ConfigSource;
use crate::error::ConfigError;
use crate::kraft::{ProcessRoles, parse_bootstrap_servers, parse_voters};
use crate::listener::Listener;

const VOTERS: &str = "1@127.0.0.1:19093,2@127.0.0.1:29093,3@127.0.0.1:39093";

/// The valid combined node 1 of a three-node cluster, with `changes` applied on top.
fn combined(changes: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut items: Vec<(String, String)> = [
        ("process.roles", "broker,controller"),
        ("node.id", "1"),
        ("controller.quorum.voters", VOTERS),
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
        ),
        ("controller.listener.names", "CONTROLLER"),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        ),
        ("broker.rack", "a"),
        ("log.dirs", "/tmp/x"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in changes {
        items.retain(|(key, _)| key != k);
        items.push((k.to_string(), v.to_string()));
    }
    items
}

fn build(items: &[(String, String)]) -> BrokerConfig {
    match BrokerConfig::from_pairs(items) {
        Ok((c, _)) => c,
        Err(e) => panic!("{items:?} rejected: {e}"),
    }
}

fn rejection(items: &[(String, String)]) -> (String, String) {
    match BrokerConfig::from_pairs(items) {
        Err(ConfigError::InvalidValue { key, reason }) => (key, reason),
        other => panic!("{items:?}: expected InvalidValue, got {other:?}"),
    }
}

fn listener(name: &str, port: u16) -> Listener {
    Listener {
        name: name.into(),
        host: "127.0.0.1".into(),
        port,
        security_protocol: "PLAINTEXT".into(),
    }
}

#[test]
fn valid_three_node_combined_config() {
    let c = build(&combined(&[]));
    let k = c.kraft.clone().expect("kraft settings");
    assert_eq!(
        k.roles,
        ProcessRoles {
            broker: true,
            controller: true
        }
    );
    let expected: BTreeMap<i32, (String, u16)> = [(1, 19093), (2, 29093), (3, 39093)]
        .into_iter()
        .map(|(id, port)| (id, ("127.0.0.1".to_string(), port)))
        .collect();
    assert_eq!(k.voters, expected);
    assert!(k.bootstrap_servers.is_empty());
    assert_eq!(k.controller_listener, Some(listener("CONTROLLER", 19093)));
    assert_eq!(c.advertised_listeners, vec![listener("PLAINTEXT", 19092)]);
    assert_eq!(c.inter_broker_listener(), &listener("PLAINTEXT", 19092));
    assert_eq!(c.broker_rack.as_deref(), Some("a"));
    // The other two nodes of the same cluster.
    for (id, broker, controller) in [("2", 29092, 29093), ("3", 39092, 39093)] {
        let listeners =
            format!("PLAINTEXT://127.0.0.1:{broker},CONTROLLER://127.0.0.1:{controller}");
        let c = build(&combined(&[("node.id", id), ("listeners", &listeners)]));
        let k = c.kraft.expect("kraft");
        assert_eq!(k.controller_listener.map(|l| l.port), Some(controller));
    }
}

#[test]
fn cluster_keys_have_kafka_defaults() {
    let (c, warnings) = BrokerConfig::from_pairs(&[]).expect("defaults");
    assert!(warnings.is_empty());
    assert_eq!(c.kraft, None);
    assert_eq!(c.replica_lag_time_max_ms, 30_000);
    assert_eq!(c.replica_fetch_max_bytes, 1_048_576);
    assert_eq!(c.replica_fetch_min_bytes, 1);
    assert_eq!(c.replica_fetch_wait_max_ms, 500);
    assert_eq!(c.replica_fetch_backoff_ms, 1000);
    assert_eq!(c.replica_fetch_response_max_bytes, 10_485_760);
    assert_eq!(c.broker_heartbeat_interval_ms, 2000);
    assert_eq!(c.broker_session_timeout_ms, 9000);
    assert!(c.auto_leader_rebalance_enable);
    assert_eq!(c.leader_imbalance_check_interval_seconds, 300);
    assert!(c.controlled_shutdown_enable);
    assert_eq!(c.metadata_log_dir, None);
    assert!(c.controller_quorum_bootstrap_servers.is_empty());
    assert_eq!(c.controller_quorum_election_timeout_ms, 1000);
    assert_eq!(c.controller_quorum_fetch_timeout_ms, 2000);
    assert_eq!(
        c.metadata_log_max_record_bytes_between_snapshots,
        20_971_520
    );
    assert_eq!(c.metadata_max_idle_interval_ms, 500);
    assert!(!c.unclean_leader_election_enable);
    assert_eq!(c.inter_broker_listener().name, "PLAINTEXT");
    // DescribeConfigs lists the new keys like every other one.
    let described = c.describe();
    let lag = described
        .iter()
        .find(|e| e.name == "replica.lag.time.max.ms")
        .expect("described");
    assert_eq!(lag.value.as_deref(), Some("30000"));
    assert_eq!(lag.source, ConfigSource::Default);
    assert!(
        described
            .iter()
            .any(|e| e.name == "metadata.log.dir" && e.value.is_none())
    );

    let c = build(&combined(&[
        ("replica.lag.time.max.ms", "10000"),
        ("replica.fetch.max.bytes", "2048"),
        ("replica.fetch.min.bytes", "0"),
        ("replica.fetch.wait.max.ms", "100"),
        ("replica.fetch.backoff.ms", "50"),
        ("replica.fetch.response.max.bytes", "4096"),
        ("broker.heartbeat.interval.ms", "500"),
        ("broker.session.timeout.ms", "3000"),
        ("auto.leader.rebalance.enable", "false"),
        ("leader.imbalance.check.interval.seconds", "10"),
        ("controlled.shutdown.enable", "false"),
        ("metadata.log.dir", "/meta"),
        ("controller.quorum.election.timeout.ms", "300"),
        ("controller.quorum.fetch.timeout.ms", "600"),
        ("metadata.log.max.record.bytes.between.snapshots", "1000"),
        ("metadata.max.idle.interval.ms", "0"),
        ("unclean.leader.election.enable", "true"),
    ]));
    assert_eq!(
        (
            c.replica_lag_time_max_ms,
            c.replica_fetch_max_bytes,
            c.replica_fetch_min_bytes,
            c.replica_fetch_wait_max_ms,
            c.replica_fetch_backoff_ms,
            c.replica_fetch_response_max_bytes
        ),
        (10_000, 2048, 0, 100, 50, 4096)
    );
    assert_eq!(
        (c.broker_heartbeat_interval_ms, c.broker_session_timeout_ms),
        (500, 3000)
    );
    assert!(!c.auto_leader_rebalance_enable && !c.controlled_shutdown_enable);
    assert_eq!(c.leader_imbalance_check_interval_seconds, 10);
    assert_eq!(c.metadata_log_dir, Some("/meta".into()));
    assert_eq!(
        (
            c.controller_quorum_election_timeout_ms,
            c.controller_quorum_fetch_timeout_ms
        ),
        (300, 600)
    );
    assert_eq!(c.metadata_log_max_record_bytes_between_snapshots, 1000);
    assert_eq!(c.metadata_max_idle_interval_ms, 0);
    assert!(c.unclean_leader_election_enable);
    let fetch = c.describe();
    let fetch = fetch
        .iter()
        .find(|e| e.name == "replica.fetch.max.bytes")
        .expect("described");
    assert_eq!(fetch.value.as_deref(), Some("2048"));
    assert_eq!(fetch.source, ConfigSource::StaticBroker);
}

#[test]
fn cluster_key_validators() {
    let cases: &[(&str, &str, &str)] = &[
        ("replica.lag.time.max.ms", "0", "at least 1"),
        ("replica.fetch.max.bytes", "-1", "at least 0"),
        ("replica.fetch.response.max.bytes", "-1", "at least 0"),
        ("replica.fetch.backoff.ms", "-1", "at least 0"),
        (
            "replica.fetch.wait.max.ms",
            "40000",
            "replica.lag.time.max.ms",
        ),
        ("broker.heartbeat.interval.ms", "0", "at least 1"),
        ("broker.session.timeout.ms", "x", "Not a number"),
        (
            "auto.leader.rebalance.enable",
            "maybe",
            "either true or false",
        ),
        ("leader.imbalance.check.interval.seconds", "0", "at least 1"),
        ("controlled.shutdown.enable", "1", "either true or false"),
        ("controller.quorum.election.timeout.ms", "0", "at least 1"),
        ("controller.quorum.fetch.timeout.ms", "0", "at least 1"),
        (
            "metadata.log.max.record.bytes.between.snapshots",
            "0",
            "at least 1",
        ),
        ("metadata.max.idle.interval.ms", "-1", "at least 0"),
        ("controller.quorum.bootstrap.servers", "h", "'h'"),
    ];
    for (key, value, fragment) in cases {
        let (got, reason) = rejection(&[(key.to_string(), value.to_string())]);
        assert_eq!(got, *key, "{key}={value}: {reason}");
        assert!(reason.contains(fragment), "{key}={value}: '{reason}'");
    }
}

#[test]
fn voter_syntax_errors_name_the_entry() {
    let cases: &[(&str, &str)] = &[
        ("1@h:9093,2h:9093", "'2h:9093'"),
        ("1@2@h:9093", "'1@2@h:9093'"),
        ("x@h:9093", "node id 'x'"),
        ("-1@h:9093", "node id '-1'"),
        ("1@h", "'1@h'"),
        ("1@h:port", "not a number"),
        ("1@h:70000", "out of range"),
        ("1@:9093", "missing host"),
        ("1@0.0.0.0:9093", "not routable"),
        ("1@h:0", "port 0"),
        ("1@a:1,1@b:2", "listed twice"),
    ];
    for (value, fragment) in cases {
        match parse_voters(value) {
            Err(ConfigError::InvalidValue { key, reason }) => {
                assert_eq!(key, "controller.quorum.voters");
                assert!(reason.contains(fragment), "{value}: '{reason}'");
            }
            other => panic!("{value}: {other:?}"),
        }
        // Checked at load in single-node mode too, like Kafka's validator.
        let (key, _) = rejection(&[("controller.quorum.voters".into(), value.to_string())]);
        assert_eq!(key, "controller.quorum.voters");
    }
    let parsed = parse_voters(" 3@[::1]:9093 , 1@ctl-1.example:9094").expect("valid");
    assert_eq!(parsed[&3], ("::1".to_string(), 9093));
    assert_eq!(parsed[&1], ("ctl-1.example".to_string(), 9094));
    assert!(parse_voters("").expect("empty").is_empty());
    assert_eq!(
        parse_bootstrap_servers("a:1, [::1]:2").expect("valid"),
        vec![("a".to_string(), 1), ("::1".to_string(), 2)]
    );
}

#[test]
fn roles_need_voters_or_bootstrap_servers() {
    let (key, reason) = rejection(&combined(&[("controller.quorum.voters", "")]));
    assert_eq!(key, "controller.quorum.voters");
    assert!(
        reason.contains("controller.quorum.bootstrap.servers"),
        "{reason}"
    );
    // A broker-only node may find the quorum through bootstrap servers alone.
    let c = build(&combined(&[
        ("process.roles", "broker"),
        ("node.id", "4"),
        ("controller.quorum.voters", ""),
        ("controller.quorum.bootstrap.servers", "127.0.0.1:19093"),
        ("listeners", "PLAINTEXT://127.0.0.1:49092"),
    ]));
    let k = c.kraft.expect("kraft");
    assert!(k.voters.is_empty());
    assert_eq!(k.bootstrap_servers, vec![("127.0.0.1".to_string(), 19093)]);
    assert_eq!(
        c.controller_quorum_bootstrap_servers,
        vec![("127.0.0.1".to_string(), 19093)]
    );
}

#[test]
fn a_controller_must_be_a_voter_with_its_listener() {
    let (key, reason) = rejection(&combined(&[("node.id", "4")]));
    assert_eq!(key, "controller.quorum.voters");
    assert!(reason.contains("node id 4 must be included"), "{reason}");
    // With bootstrap servers alone a controller starts as an observer (KIP-853).
    let c = build(&combined(&[
        ("controller.quorum.voters", ""),
        ("controller.quorum.bootstrap.servers", "127.0.0.1:19093"),
    ]));
    let k = c.kraft.expect("kraft");
    assert!(k.roles.controller && k.voters.is_empty());
    assert!(k.controller_listener.is_some());
    let (key, reason) = rejection(&combined(&[("controller.listener.names", "")]));
    assert_eq!(key, "controller.listener.names");
    assert!(reason.contains("at least one value"), "{reason}");
    let (key, reason) = rejection(&combined(&[("listeners", "PLAINTEXT://127.0.0.1:19092")]));
    assert_eq!(key, "controller.listener.names");
    assert!(reason.contains("CONTROLLER is not a listener"), "{reason}");
    // The voter entry of this node must point at its controller listener.
    let (key, reason) = rejection(&combined(&[(
        "listeners",
        "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19094",
    )]));
    assert_eq!(key, "controller.quorum.voters");
    assert!(reason.contains("1@127.0.0.1:19093"), "{reason}");
    assert!(reason.contains("CONTROLLER://127.0.0.1:19094"), "{reason}");
    // A controller-only node.
    let c = build(&combined(&[
        ("process.roles", "controller"),
        ("listeners", "CONTROLLER://127.0.0.1:19093"),
    ]));
    let k = c.kraft.expect("kraft");
    assert_eq!(
        k.roles,
        ProcessRoles {
            broker: false,
            controller: true
        }
    );
    assert_eq!(k.controller_listener, Some(listener("CONTROLLER", 19093)));
}

#[test]
fn a_broker_only_node_is_not_a_voter() {
    let broker_only = |changes: &[(&str, &str)]| {
        let mut all = vec![
            ("process.roles", "broker"),
            ("node.id", "4"),
            ("listeners", "PLAINTEXT://127.0.0.1:49092"),
        ];
        all.extend_from_slice(changes);
        combined(&all)
    };
    let c = build(&broker_only(&[]));
    let k = c.kraft.expect("kraft");
    assert_eq!(
        k.roles,
        ProcessRoles {
            broker: true,
            controller: false
        }
    );
    assert_eq!(k.controller_listener, None);
    assert_eq!(k.voters.len(), 3);
    let (key, reason) = rejection(&broker_only(&[("node.id", "2")]));
    assert_eq!(key, "controller.quorum.voters");
    assert!(reason.contains("must not be included"), "{reason}");
    let (key, reason) = rejection(&broker_only(&[(
        "listeners",
        "PLAINTEXT://127.0.0.1:49092,CONTROLLER://127.0.0.1:49093",
    )]));
    assert_eq!(key, "controller.listener.names");
    assert!(reason.contains("just the broker role"), "{reason}");
    let (key, _) = rejection(&broker_only(&[("controller.listener.names", "")]));
    assert_eq!(key, "controller.listener.names");
}

#[test]
fn controller_listeners_are_not_advertised() {
    let (key, reason) = rejection(&combined(&[(
        "advertised.listeners",
        "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
    )]));
    assert_eq!(key, "advertised.listeners");
    assert!(reason.contains("CONTROLLER"), "{reason}");
}

#[test]
fn inter_broker_listener_resolution() {
    let two =
        "PLAINTEXT://127.0.0.1:19092,REPLICATION://127.0.0.1:19095,CONTROLLER://127.0.0.1:19093";
    let map = "PLAINTEXT:PLAINTEXT,REPLICATION:PLAINTEXT,CONTROLLER:PLAINTEXT";
    let c = build(&combined(&[
        ("listeners", two),
        ("listener.security.protocol.map", map),
        ("inter.broker.listener.name", "replication"),
    ]));
    assert_eq!(c.inter_broker_listener(), &listener("REPLICATION", 19095));
    // Unset: PLAINTEXT wins over listener order.
    let c = build(&combined(&[
        (
            "listeners",
            "REPLICATION://127.0.0.1:19095,PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
        ),
        ("listener.security.protocol.map", map),
    ]));
    assert_eq!(c.inter_broker_listener().name, "PLAINTEXT");
    // Without PLAINTEXT: the first advertised non-controller listener.
    let c = build(&combined(&[
        (
            "listeners",
            "INTERNAL://127.0.0.1:19096,EXTERNAL://127.0.0.1:19097,CONTROLLER://127.0.0.1:19093",
        ),
        (
            "listener.security.protocol.map",
            "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        ),
    ]));
    assert_eq!(c.inter_broker_listener(), &listener("INTERNAL", 19096));
    let (key, reason) = rejection(&combined(&[("inter.broker.listener.name", "CONTROLLER")]));
    assert_eq!(key, "inter.broker.listener.name");
    assert!(reason.contains("advertised.listeners"), "{reason}");
    // A KRaft broker must advertise something besides its controller listener.
    let (key, _) = rejection(&combined(&[("listeners", "CONTROLLER://127.0.0.1:19093")]));
    assert_eq!(key, "advertised.listeners");
}

#[test]
fn single_node_mode_is_unchanged() {
    // Controller-ish keys without process.roles are carried but not checked against each other.
    let (c, _) = BrokerConfig::from_pairs(&[
        ("node.id".to_string(), "9".to_string()),
        ("controller.quorum.voters".to_string(), VOTERS.to_string()),
        (
            "controller.listener.names".to_string(),
            "CONTROLLER".to_string(),
        ),
    ])
    .expect("single node");
    assert_eq!(c.kraft, None);
    assert_eq!(c.controller_quorum_voters, VOTERS);
    assert_eq!(c.inter_broker_listener(), &listener("PLAINTEXT", 9092));
}

#[test]
fn a_sasl_inter_broker_listener_needs_the_brokers_own_login() {
    let sasl = [
        (
            "listeners",
            "SASL_PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
        ),
        (
            "listener.security.protocol.map",
            "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        ),
        ("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
        ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512"),
    ];
    match BrokerConfig::from_pairs(&combined(&sasl)) {
        Err(ConfigError::InvalidValue { key, reason }) => {
            assert_eq!(
                key,
                "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"
            );
            assert!(reason.contains("username and password"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut with_login = sasl.to_vec();
    with_login.push((
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config",
        r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="b-secret";"#,
    ));
    let c = build(&combined(&with_login));
    assert_eq!(
        c.sasl.client_login("SASL_PLAINTEXT"),
        Some(("SCRAM-SHA-512".into(), "broker".into(), "b-secret".into()))
    );
    // The quorum is gRPC over (m)TLS: a SASL controller listener is refused.
    let mut sasl_controller = with_login.clone();
    sasl_controller.retain(|(k, _)| *k != "listener.security.protocol.map");
    sasl_controller.push((
        "listener.security.protocol.map",
        "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
    ));
    match BrokerConfig::from_pairs(&combined(&sasl_controller)) {
        Err(ConfigError::InvalidValue { key, reason }) => {
            assert_eq!(key, "listener.security.protocol.map");
            assert!(reason.contains("mutual TLS"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn brokers_do_not_log_in_to_each_other_with_oauthbearer() {
    let sasl = [
        (
            "listeners",
            "SASL_PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
        ),
        (
            "listener.security.protocol.map",
            "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        ),
        ("sasl.enabled.mechanisms", "OAUTHBEARER,SCRAM-SHA-512"),
        ("sasl.oauthbearer.jwks.endpoint.url", "/etc/jwks.json"),
        ("sasl.mechanism.inter.broker.protocol", "OAUTHBEARER"),
    ];
    match BrokerConfig::from_pairs(&combined(&sasl)) {
        Err(ConfigError::InvalidValue { key, reason }) => {
            assert_eq!(key, "sasl.mechanism.inter.broker.protocol");
            assert!(reason.contains("clients only"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
