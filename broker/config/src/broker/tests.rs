//! Tests of the layered broker config: defaults, precedence, validation and warnings.

use std::io::Write;
use std::path::PathBuf;

use super::BrokerConfig;
use crate::error::ConfigError;
use crate::listener::Listener;

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn build(items: &[(&str, &str)]) -> (BrokerConfig, Vec<String>) {
    match BrokerConfig::from_pairs(&pairs(items)) {
        Ok(built) => built,
        Err(e) => panic!("{items:?} rejected: {e}"),
    }
}

fn rejection(items: &[(&str, &str)]) -> (String, String) {
    match BrokerConfig::from_pairs(&pairs(items)) {
        Err(ConfigError::InvalidValue { key, reason }) => (key, reason),
        other => panic!("{items:?}: expected InvalidValue, got {other:?}"),
    }
}

#[test]
fn embedded_defaults() {
    let (c, warnings) = build(&[]);
    assert!(warnings.is_empty());
    assert_eq!(c.node_id, 1);
    let plaintext = Listener {
        name: "PLAINTEXT".into(),
        host: "127.0.0.1".into(),
        port: 9092,
        security_protocol: "PLAINTEXT".into(),
    };
    assert_eq!(c.listeners, vec![plaintext.clone()]);
    assert_eq!(c.advertised_listeners, vec![plaintext]);
    assert_eq!(c.listener_security_protocol_map.len(), 4);
    assert_eq!(c.log_dirs, vec![PathBuf::from("./strait-data")]);
    assert_eq!(c.broker_rack, None);
    assert_eq!(c.num_partitions, 1);
    assert_eq!(c.default_replication_factor, 1);
    assert_eq!(c.min_insync_replicas, 1);
    assert!(c.auto_create_topics_enable);
    assert!(c.delete_topic_enable);
    assert_eq!(c.log_segment_bytes, 1 << 30);
    assert_eq!(c.log_roll_ms, Some(168 * 3_600_000));
    assert_eq!(c.log_retention_ms, Some(168 * 3_600_000));
    assert_eq!(c.log_retention_bytes, None);
    assert_eq!(c.log_retention_check_interval_ms, 300_000);
    assert_eq!(c.log_index_interval_bytes, 4096);
    assert_eq!(c.log_index_size_max_bytes, 10_485_760);
    assert_eq!(c.message_max_bytes, 1_048_588);
    assert_eq!(c.socket_request_max_bytes, 104_857_600);
    assert_eq!(c.log_flush_interval_messages, None);
    assert_eq!(c.log_flush_interval_ms, None);
    assert_eq!(c.log_flush_scheduler_interval_ms, i64::MAX as u64);
    assert_eq!(c.log_message_timestamp_type, "CreateTime");
    assert_eq!(c.log_cleanup_policy, "delete");
    assert_eq!(c.compression_type, "producer");
    assert_eq!(c.metrics_listener.as_deref(), Some("127.0.0.1:9404"));
    assert_eq!(c.cluster_id, None);
    assert_eq!(c.offsets_topic_num_partitions, 50);
    assert!(c.process_roles.is_empty());
    assert_eq!(c.controller_quorum_voters, "");
    assert!(c.controller_listener_names.is_empty());
    assert!(c.explicit.is_empty());
}

#[test]
fn typed_values_are_read() {
    let (c, _) = build(&[
        ("node.id", "7"),
        ("broker.rack", "zone-a"),
        (
            "replica.selector.class",
            "org.apache.kafka.common.replica.RackAwareReplicaSelector",
        ),
        ("log.dirs", "/d1, /d2"),
        ("log.segment.bytes", "1048576"),
        ("log.roll.ms", "60000"),
        ("log.retention.bytes", "5000"),
        ("log.flush.interval.messages", "10"),
        ("log.flush.interval.ms", "250"),
        ("log.message.timestamp.type", "LogAppendTime"),
        ("log.cleanup.policy", "compact, delete"),
        ("compression.type", "zstd"),
        ("auto.create.topics.enable", "FALSE"),
        ("metrics.listener", ""),
        ("cluster.id", "abc"),
        ("process.roles", "broker,controller"),
        ("controller.quorum.voters", "7@h:9093"),
        ("controller.listener.names", "controller"),
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        ),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        ),
    ]);
    assert_eq!(c.node_id, 7);
    assert_eq!(c.broker_rack.as_deref(), Some("zone-a"));
    assert!(c.rack_aware_replica_selector);
    assert_eq!(c.log_dirs, vec![PathBuf::from("/d1"), PathBuf::from("/d2")]);
    assert_eq!(c.log_segment_bytes, 1_048_576);
    assert_eq!(c.log_roll_ms, Some(60_000));
    assert_eq!(c.log_retention_bytes, Some(5000));
    assert_eq!(c.log_flush_interval_messages, Some(10));
    assert_eq!(c.log_flush_interval_ms, Some(250));
    assert_eq!(c.log_message_timestamp_type, "LogAppendTime");
    assert_eq!(c.log_cleanup_policy, "compact,delete");
    assert_eq!(c.compression_type, "zstd");
    assert!(!c.auto_create_topics_enable);
    assert_eq!(c.metrics_listener, None);
    assert_eq!(c.cluster_id.as_deref(), Some("abc"));
    assert_eq!(c.process_roles, vec!["broker", "controller"]);
    assert_eq!(c.controller_quorum_voters, "7@h:9093");
    assert_eq!(c.controller_listener_names, vec!["CONTROLLER"]);
    assert_eq!(c.listeners.len(), 2);
    // Controller listeners are not advertised by default.
    let advertised: Vec<&str> = c
        .advertised_listeners
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(advertised, vec!["PLAINTEXT"]);
    assert_eq!(
        c.explicit.get("log.cleanup.policy").map(String::as_str),
        Some("compact, delete")
    );
}

#[test]
fn later_pairs_win() {
    let (c, _) = build(&[("num.partitions", "3"), ("num.partitions", "9")]);
    assert_eq!(c.num_partitions, 9);
    assert_eq!(
        c.explicit.get("num.partitions").map(String::as_str),
        Some("9")
    );
}

fn temp_file(contents: &str) -> tempfile::NamedTempFile {
    let mut file = match tempfile::NamedTempFile::new() {
        Ok(f) => f,
        Err(e) => panic!("temp file: {e}"),
    };
    if let Err(e) = file.write_all(contents.as_bytes()) {
        panic!("write: {e}");
    }
    file
}

fn load(file: Option<&std::path::Path>, overrides: &[&str]) -> Result<BrokerConfig, ConfigError> {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    BrokerConfig::load(file, &overrides).map(|(c, _)| c)
}

#[test]
fn defaults_then_file_then_overrides() {
    let file = temp_file("num.partitions=3\nlog.retention.hours=24\nbroker.rack=file\n");
    let c = match load(Some(file.path()), &[]) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        (c.num_partitions, c.log_retention_ms),
        (3, Some(24 * 3_600_000))
    );
    assert_eq!(c.min_insync_replicas, 1);

    let c = match load(
        Some(file.path()),
        &["num.partitions=5", "broker.rack = cli ", "num.partitions=6"],
    ) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.num_partitions, 6);
    assert_eq!(c.broker_rack.as_deref(), Some("cli"));
    assert_eq!(c.log_retention_ms, Some(24 * 3_600_000));

    let c = match load(None, &["delete.topic.enable=false"]) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert!(!c.delete_topic_enable);
}

#[test]
fn override_values_may_contain_equals_signs() {
    let c = match load(None, &["cluster.id=a=b"]) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.cluster_id.as_deref(), Some("a=b"));
}

#[test]
fn malformed_override_is_an_error() {
    let err = load(None, &["num.partitions=2", "oops"]);
    assert!(
        matches!(&err, Err(ConfigError::Syntax { path, line: 2, reason }) if path == "--override" && reason.contains("oops")),
        "{err:?}"
    );
    assert!(matches!(
        load(None, &["=3"]),
        Err(ConfigError::Syntax { line: 1, .. })
    ));
}

#[test]
fn file_errors_name_the_file() {
    let missing = std::path::Path::new("/nonexistent/strait/server.properties");
    assert!(matches!(
        load(Some(missing), &[]),
        Err(ConfigError::Read { path, .. }) if path == missing.display().to_string()
    ));
    let file = temp_file("a=1\nb=\\uZZZZ\n");
    let err = load(Some(file.path()), &[]);
    assert!(
        matches!(&err, Err(ConfigError::Syntax { path, line: 2, .. }) if *path == file.path().display().to_string()),
        "{err:?}"
    );
}

#[test]
fn invalid_values_name_their_key() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "log.segment.bytes",
            "abc",
            "invalid value 'abc': Not a number of type INT",
        ),
        ("log.segment.bytes", "13", "Value must be at least 14"),
        ("num.partitions", "0", "Value must be at least 1"),
        ("num.partitions", "99999999999", "Not a number"),
        ("default.replication.factor", "0", "at least 1"),
        ("default.replication.factor", "40000", "no more than 32767"),
        ("min.insync.replicas", "0", "at least 1"),
        ("auto.create.topics.enable", "yes", "either true or false"),
        ("delete.topic.enable", "1", "either true or false"),
        ("compression.type", "brotli", "String must be one of"),
        (
            "log.cleanup.policy",
            "delete,forever",
            "invalid value 'forever'",
        ),
        ("log.message.timestamp.type", "Now", "String must be one of"),
        ("node.id", "-3", "at least 0"),
        ("log.retention.check.interval.ms", "0", "at least 1"),
        ("log.index.size.max.bytes", "3", "at least 4"),
        ("log.index.interval.bytes", "-1", "at least 0"),
        ("message.max.bytes", "-1", "at least 0"),
        ("socket.request.max.bytes", "0", "at least 1"),
        ("log.flush.interval.messages", "0", "at least 1"),
        ("log.flush.interval.ms", "-1", "at least 0"),
        ("log.roll.hours", "0", "at least 1"),
        ("log.roll.ms", "0", "at least 1"),
        ("log.retention.ms", "0", "unlimited (-1)"),
        ("log.retention.hours", "x", "Not a number"),
        ("log.cleaner.min.cleanable.ratio", "2", "no more than 1"),
        ("log.cleaner.min.cleanable.ratio", "NaN", "Not a number"),
        ("compression.gzip.level", "0", "between 1 and 9"),
        ("offsets.topic.num.partitions", "0", "at least 1"),
        ("process.roles", "broker,broker", "Duplicate role"),
        ("process.roles", "observer", "String must be one of"),
        (
            "replica.selector.class",
            "com.example.MySelector",
            "String must be one of",
        ),
        ("metrics.listener", "nohost", "host:port"),
        ("metrics.listener", ":9404", "missing host"),
        ("metrics.listener", "h:70000", "out of range"),
        ("log.dirs", " ", "at least one directory"),
        ("log.dir", "", "at least one directory"),
        ("log.dirs", "/a,/a", "only once"),
        ("listeners", "", "at least one listener"),
        ("listeners", "PLAINTEXT://h:99999", "out of range"),
        (
            "listeners",
            "PLAINTEXT://a:1,PLAINTEXT://b:2",
            "different name",
        ),
        (
            "listeners",
            "PLAINTEXT://:9092,SSL://h:9092",
            "different port",
        ),
        ("listeners", "FOO://h:1", "no security protocol"),
        ("listener.security.protocol.map", "PLAINTEXT:TLS", "TLS"),
        (
            "advertised.listeners",
            "PLAINTEXT://0.0.0.0:9092",
            "nonroutable",
        ),
        ("advertised.listeners", "SSL://h:9093", "subset"),
        ("inter.broker.listener.name", "NOPE", "advertised.listeners"),
    ];
    for (key, value, fragment) in cases {
        let (got_key, reason) = rejection(&[(key, value)]);
        assert_eq!(got_key, *key, "{key}={value}: {reason}");
        assert!(
            reason.contains(fragment),
            "{key}={value}: '{reason}' lacks '{fragment}'"
        );
        let display = ConfigError::InvalidValue {
            key: got_key,
            reason,
        }
        .to_string();
        assert!(
            display.starts_with(&format!("invalid value for {key}: ")),
            "{display}"
        );
    }
}

#[test]
fn wildcard_listener_needs_advertised_listeners() {
    let (key, reason) = rejection(&[("listeners", "PLAINTEXT://0.0.0.0:9092")]);
    assert_eq!(key, "advertised.listeners");
    assert!(reason.contains("0.0.0.0"), "{reason}");
    let (c, _) = build(&[
        ("listeners", "PLAINTEXT://0.0.0.0:9092"),
        ("advertised.listeners", "PLAINTEXT://broker-0.example:9092"),
    ]);
    assert_eq!(c.listeners[0].host, "0.0.0.0");
    assert_eq!(c.advertised_listeners[0].host, "broker-0.example");
}

#[test]
fn broker_id_is_an_alias_of_node_id() {
    assert_eq!(build(&[("broker.id", "4")]).0.node_id, 4);
    assert_eq!(build(&[("broker.id", "4"), ("node.id", "4")]).0.node_id, 4);
    let (key, reason) = rejection(&[("broker.id", "4"), ("node.id", "5")]);
    assert_eq!(key, "broker.id");
    assert!(reason.contains("node.id (5)"), "{reason}");
}

#[test]
fn unknown_keys_warn_once_and_kafka_internals_are_silent() {
    let (c, warnings) = build(&[
        ("no.such.key", "1"),
        ("num.network.threads", "3"),
        ("socket.send.buffer.bytes", "102400"),
        ("zookeeper.connect", "localhost:2181"),
        ("no.such.key", "2"),
        ("other.unknown", "x"),
    ]);
    assert_eq!(
        warnings,
        vec![
            "unknown config key 'no.such.key' ignored".to_string(),
            "unknown config key 'other.unknown' ignored".to_string(),
        ]
    );
    assert!(c.explicit.is_empty());
}

#[test]
fn retention_ms_beats_minutes_beats_hours() {
    let hour = 3_600_000;
    assert_eq!(
        build(&[("log.retention.hours", "2")]).0.log_retention_ms,
        Some(2 * hour)
    );
    assert_eq!(
        build(&[("log.retention.hours", "2"), ("log.retention.minutes", "3")])
            .0
            .log_retention_ms,
        Some(180_000)
    );
    // Kafka's order does not depend on which source set which key.
    assert_eq!(
        build(&[
            ("log.retention.ms", "1234"),
            ("log.retention.minutes", "3"),
            ("log.retention.hours", "2"),
        ])
        .0
        .log_retention_ms,
        Some(1234)
    );
    assert_eq!(
        build(&[("log.retention.ms", "-1")]).0.log_retention_ms,
        None
    );
    assert_eq!(
        build(&[("log.retention.minutes", "-1")]).0.log_retention_ms,
        None
    );
    assert_eq!(
        build(&[("log.retention.hours", "-1")]).0.log_retention_ms,
        None
    );
    let (key, _) = rejection(&[("log.retention.minutes", "0"), ("log.retention.hours", "5")]);
    assert_eq!(key, "log.retention.minutes");
}

#[test]
fn roll_ms_beats_hours() {
    assert_eq!(
        build(&[("log.roll.hours", "1")]).0.log_roll_ms,
        Some(3_600_000)
    );
    assert_eq!(
        build(&[("log.roll.hours", "1"), ("log.roll.ms", "5")])
            .0
            .log_roll_ms,
        Some(5)
    );
}

#[test]
fn log_dirs_beats_log_dir() {
    assert_eq!(
        build(&[("log.dir", "/x")]).0.log_dirs,
        vec![PathBuf::from("/x")]
    );
    assert_eq!(
        build(&[("log.dir", "/x"), ("log.dirs", "/y")]).0.log_dirs,
        vec![PathBuf::from("/y")]
    );
}

#[test]
fn raw_value_reports_explicit_or_default() {
    let (c, _) = build(&[("num.partitions", " 4 ")]);
    assert_eq!(c.raw_value("num.partitions").as_deref(), Some("4"));
    assert_eq!(c.raw_value("log.retention.hours").as_deref(), Some("168"));
    assert_eq!(c.raw_value("log.retention.ms"), None);
    assert_eq!(c.raw_value("no.such.key"), None);
}

#[test]
fn an_ssl_listener_without_a_keystore_is_refused() {
    let (key, reason) = rejection(&[("listeners", "SSL://h:9093")]);
    assert_eq!(key, "ssl.keystore.location");
    assert!(reason.contains("has no keystore"), "{reason}");
}

#[test]
fn ssl_listeners_resolve_per_listener_keys() {
    use crate::ssl::{ClientAuth, KeySource};
    let (c, warnings) = build(&[
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,EXTERNAL://127.0.0.1:9094",
        ),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,EXTERNAL:SSL",
        ),
        ("ssl.keystore.type", "PEM"),
        (
            "listener.name.external.ssl.keystore.location",
            "/tls/keystore.pem",
        ),
        ("listener.name.other.ssl.keystore.location", "/x.pem"),
        ("ssl.keystore.password", "hunter2"),
    ]);
    let ssl = &c.ssl["EXTERNAL"];
    assert_eq!(ssl.key, KeySource::File("/tls/keystore.pem".into()));
    assert_eq!(ssl.client_auth, ClientAuth::None);
    assert_eq!(c.ssl.len(), 1, "PLAINTEXT has no TLS settings");
    assert_eq!(
        warnings,
        vec!["config key 'listener.name.other.ssl.keystore.location' names no listener; ignored"]
    );
    // Passwords are never described with their value.
    let described = c.describe();
    let password = described
        .iter()
        .find(|e| e.name == "ssl.keystore.password")
        .unwrap();
    assert!(password.sensitive && password.value.is_none());
    assert!(password.synonyms.iter().all(|s| s.value.is_none()));

    let (key, reason) = rejection(&[
        ("listeners", "EXTERNAL://127.0.0.1:9094"),
        ("listener.security.protocol.map", "EXTERNAL:SSL"),
        ("listener.name.external.ssl.client.auth", "sometimes"),
    ]);
    assert_eq!(key, "listener.name.external.ssl.client.auth");
    assert!(reason.contains("sometimes"), "{reason}");
}

#[test]
fn ssl_between_nodes_needs_a_truststore_on_both_listeners() {
    let ssl_inter_broker = [
        ("process.roles", "broker,controller"),
        ("controller.quorum.voters", "1@127.0.0.1:9093"),
        ("controller.listener.names", "CONTROLLER"),
        (
            "listeners",
            "EXTERNAL://127.0.0.1:9094,CONTROLLER://127.0.0.1:9093",
        ),
        ("listener.security.protocol.map", "EXTERNAL:SSL"),
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", "/k.pem"),
    ];
    let (key, reason) = rejection(&ssl_inter_broker);
    assert_eq!(key, "ssl.truststore.location");
    assert!(reason.contains("verify each other"), "{reason}");
    let mut with_truststore = ssl_inter_broker.to_vec();
    with_truststore.extend([
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.location", "/ca.pem"),
        (
            "listener.name.external.ssl.endpoint.identification.algorithm",
            "",
        ),
    ]);
    let (c, _) = build(&with_truststore);
    assert_eq!(c.inter_broker_listener().name, "EXTERNAL");
    assert!(!c.ssl["EXTERNAL"].verify_hostname);
    let (key, reason) = rejection(&[
        ("process.roles", "broker,controller"),
        ("controller.quorum.voters", "1@127.0.0.1:9093"),
        ("controller.listener.names", "CONTROLLER"),
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        ),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:SSL",
        ),
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", "/k.pem"),
    ]);
    assert_eq!(key, "ssl.truststore.location");
    assert!(
        reason.contains("controller listener CONTROLLER"),
        "{reason}"
    );
    // A broker-only node dials SSL controllers with the controller listener's settings.
    let (c, _) = build(&[
        ("process.roles", "broker"),
        ("node.id", "4"),
        ("controller.quorum.voters", "1@127.0.0.1:9093"),
        ("controller.listener.names", "CONTROLLER"),
        ("listeners", "PLAINTEXT://127.0.0.1:9092"),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:SSL",
        ),
        ("listener.name.controller.ssl.keystore.type", "PEM"),
        ("listener.name.controller.ssl.keystore.location", "/k.pem"),
        ("listener.name.controller.ssl.truststore.type", "PEM"),
        (
            "listener.name.controller.ssl.truststore.location",
            "/ca.pem",
        ),
    ]);
    assert!(c.ssl.contains_key("CONTROLLER") && !c.ssl.contains_key("PLAINTEXT"));
}

#[test]
fn sasl_listeners_take_kafka_keys() {
    let jaas = r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";"#;
    let (c, warnings) = build(&[
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:9092"),
        (
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms",
            "SCRAM-SHA-512,plain",
        ),
        ("listener.name.sasl_plaintext.plain.sasl.jaas.config", jaas),
        ("connections.max.reauth.ms", "60000"),
    ]);
    assert!(warnings.is_empty(), "{warnings:?}");
    let l = &c.sasl.listeners["SASL_PLAINTEXT"];
    assert_eq!(l.mechanisms, ["SCRAM-SHA-512", "PLAIN"]);
    assert_eq!(l.plain_users().unwrap()["alice"], "alice-secret");
    assert_eq!(c.sasl.max_reauth_ms, 60_000);
    assert_eq!(c.sasl.failed_authentication_delay_ms, 100);
    assert!(c.ssl.is_empty());
}

#[test]
fn sasl_listeners_refuse_what_cannot_authenticate() {
    // Kafka's default mechanism is Kerberos, which Strait does not serve.
    let (key, reason) = rejection(&[("listeners", "SASL_PLAINTEXT://127.0.0.1:9092")]);
    assert_eq!(key, "sasl.enabled.mechanisms");
    assert!(
        reason.contains("GSSAPI") && reason.contains("Kerberos"),
        "{reason}"
    );
    let (key, reason) = rejection(&[
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:9092"),
        (
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms",
            "SCRAM-SHA-1",
        ),
    ]);
    assert_eq!(key, "listener.name.sasl_plaintext.sasl.enabled.mechanisms");
    assert!(reason.contains("SCRAM-SHA-1"), "{reason}");
    let (key, reason) = rejection(&[
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:9092"),
        ("sasl.enabled.mechanisms", "PLAIN"),
        (
            "listener.name.sasl_plaintext.plain.sasl.jaas.config",
            "PlainLoginModule required user_a=\"x\"",
        ),
    ]);
    assert_eq!(key, "listener.name.sasl_plaintext.plain.sasl.jaas.config");
    assert!(!reason.is_empty());
    // SASL_SSL is TLS first: it needs a key like SSL.
    let (key, _) = rejection(&[
        ("listeners", "SASL_SSL://127.0.0.1:9093"),
        ("sasl.enabled.mechanisms", "PLAIN"),
    ]);
    assert!(key.contains("ssl.keystore"), "{key}");
}

const JWKS_URL: &str = "sasl.oauthbearer.jwks.endpoint.url";
const VALIDATOR: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler";

#[test]
fn oauthbearer_takes_kip768_keys() {
    let (c, warnings) = build(&[
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:9092"),
        ("sasl.enabled.mechanisms", "OAUTHBEARER,SCRAM-SHA-512"),
        (JWKS_URL, "file:///etc/strait/jwks.json"),
        ("sasl.oauthbearer.expected.audience", "kafka, strait"),
        (
            "sasl.oauthbearer.expected.issuer",
            "https://idp.example.com",
        ),
        ("sasl.oauthbearer.sub.claim.name", "client_id"),
        ("sasl.oauthbearer.scope.claim.name", "scp"),
        ("sasl.oauthbearer.clock.skew.seconds", "5"),
        ("sasl.oauthbearer.jwks.endpoint.refresh.ms", "60000"),
        // Tune an HTTP fetch Strait does not make: accepted silently.
        ("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", "100"),
        (
            "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
            "10000",
        ),
        (
            "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class",
            VALIDATOR,
        ),
        (
            "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required ;",
        ),
    ]);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        c.sasl.listeners["SASL_PLAINTEXT"].mechanisms,
        ["OAUTHBEARER", "SCRAM-SHA-512"]
    );
    let oauth = c.sasl.oauth.expect("OAUTHBEARER settings");
    assert_eq!(oauth.jwks_path, PathBuf::from("/etc/strait/jwks.json"));
    assert_eq!(oauth.refresh_ms, 60_000);
    let v = &oauth.validation;
    assert_eq!(v.expected_audience, ["kafka", "strait"]);
    assert_eq!(
        v.expected_issuer.as_deref(),
        Some("https://idp.example.com")
    );
    assert_eq!(
        (v.sub_claim.as_str(), v.scope_claim.as_str()),
        ("client_id", "scp")
    );
    assert_eq!(v.clock_skew_seconds, 5);
}

#[test]
fn oauthbearer_defaults_and_settings_only_when_enabled() {
    let (c, warnings) = build(&[
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:9092"),
        ("sasl.enabled.mechanisms", "OAUTHBEARER"),
        (JWKS_URL, "/etc/jwks.json"),
    ]);
    assert!(warnings.is_empty(), "{warnings:?}");
    let oauth = c.sasl.oauth.expect("OAUTHBEARER settings");
    assert_eq!(oauth.jwks_path, PathBuf::from("/etc/jwks.json"));
    assert_eq!(oauth.refresh_ms, 3_600_000);
    assert_eq!(oauth.validation, strait_auth::oauth::Validation::default());
    // No listener enables OAUTHBEARER: its keys are not needed, nor checked.
    let (c, _) = build(&[
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:9092"),
        ("sasl.enabled.mechanisms", "PLAIN"),
        (JWKS_URL, "https://idp.example.com/keys"),
    ]);
    assert_eq!(c.sasl.oauth, None);
    // The callback key on a listener that does not enable OAUTHBEARER is a warning.
    let (c, warnings) = build(&[
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:9092"),
        ("sasl.enabled.mechanisms", "PLAIN"),
        (
            "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class",
            VALIDATOR,
        ),
    ]);
    assert_eq!(c.sasl.oauth, None);
    assert!(
        warnings.len() == 1 && warnings[0].contains("does not enable"),
        "{warnings:?}"
    );
}

#[test]
fn oauthbearer_refuses_what_it_cannot_validate() {
    let base = [
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:9092"),
        (
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms",
            "OAUTHBEARER",
        ),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut items = base.to_vec();
        items.extend_from_slice(extra);
        rejection(&items)
    };
    // No key set to verify tokens against.
    let (key, reason) = with(&[]);
    assert_eq!(key, JWKS_URL);
    assert!(
        reason.contains("SASL_PLAINTEXT") && reason.contains(JWKS_URL),
        "{reason}"
    );
    // HTTP(S) is not fetched (yet).
    let (key, reason) = with(&[(JWKS_URL, "https://idp.example.com/.well-known/jwks.json")]);
    assert_eq!(key, JWKS_URL);
    assert!(reason.contains("only file URLs"), "{reason}");
    let (key, reason) = with(&[(JWKS_URL, "file://idp/jwks.json")]);
    assert_eq!(key, JWKS_URL);
    assert!(reason.contains("host idp"), "{reason}");
    // Kafka's unsecured validator, or any other callback handler, is refused.
    let callback = "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class";
    let (key, reason) = with(&[
        (JWKS_URL, "/etc/jwks.json"),
        (
            callback,
            "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler",
        ),
    ]);
    assert_eq!(key, callback);
    assert!(
        reason.contains("validates OAUTHBEARER JWTs itself") && reason.contains(VALIDATOR),
        "{reason}"
    );
    let (key, _) = with(&[
        (JWKS_URL, "/etc/jwks.json"),
        ("sasl.oauthbearer.sub.claim.name", " "),
    ]);
    assert_eq!(key, "sasl.oauthbearer.sub.claim.name");
    let (key, _) = with(&[
        (JWKS_URL, "/etc/jwks.json"),
        ("sasl.oauthbearer.jwks.endpoint.refresh.ms", "0"),
    ]);
    assert_eq!(key, "sasl.oauthbearer.jwks.endpoint.refresh.ms");
    let (key, _) = with(&[
        (JWKS_URL, "/etc/jwks.json"),
        ("sasl.oauthbearer.clock.skew.seconds", "-1"),
    ]);
    assert_eq!(key, "sasl.oauthbearer.clock.skew.seconds");
    // Kafka's pre-3.4 name of the validator class carries over too.
    let mut items = base.to_vec();
    items.push((JWKS_URL, "/etc/jwks.json"));
    items.push((
        callback,
        "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
    ));
    let (c, warnings) = build(&items);
    assert!(
        warnings.is_empty() && c.sasl.oauth.is_some(),
        "{warnings:?}"
    );
}
