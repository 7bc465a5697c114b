//! Tests of topic override validation and effective topic configs.

use std::collections::BTreeMap;

use super::*;

fn map(items: &[(&str, &str)]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn broker(items: &[(&str, &str)]) -> BrokerConfig {
    let pairs: Vec<(String, String)> = items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match BrokerConfig::from_pairs(&pairs) {
        Ok((c, _)) => c,
        Err(e) => panic!("{e}"),
    }
}

fn invalid(items: &[(&str, &str)]) -> (String, String) {
    match validate_topic_configs(&map(items)) {
        Err(ConfigError::InvalidValue { key, reason }) => (key, reason),
        other => panic!("{items:?}: expected InvalidValue, got {other:?}"),
    }
}

#[test]
fn accepts_valid_overrides() {
    let ok = map(&[
        ("cleanup.policy", "delete"),
        ("compression.type", "lz4"),
        ("retention.ms", "-1"),
        ("retention.bytes", "-1"),
        ("segment.bytes", "14"),
        ("segment.ms", "1"),
        ("min.insync.replicas", "2"),
        ("max.message.bytes", "0"),
        ("min.cleanable.dirty.ratio", "0.25"),
        ("preallocate", "TRUE"),
        ("message.timestamp.type", "LogAppendTime"),
        ("leader.replication.throttled.replicas", "0:1, 1:2"),
        ("follower.replication.throttled.replicas", "*"),
        ("remote.storage.enable", "true"),
        ("local.retention.ms", "1000"),
        ("compression.gzip.level", "-1"),
        ("compression.zstd.level", "-5"),
        ("flush.messages", "9223372036854775807"),
        ("unclean.leader.election.enable", "false"),
    ]);
    assert_eq!(validate_topic_configs(&ok), Ok(()));
    assert_eq!(validate_topic_configs(&BTreeMap::new()), Ok(()));
    let compacted = map(&[
        ("cleanup.policy", "compact, delete"),
        ("segment.jitter.ms", "0"),
    ]);
    assert_eq!(validate_topic_configs(&compacted), Ok(()));
    // Kafka 3.9 accepts an empty policy (neither delete nor compact).
    assert_eq!(
        validate_topic_configs(&map(&[("cleanup.policy", "")])),
        Ok(())
    );
}

#[test]
fn unknown_names_are_unknown() {
    assert_eq!(
        validate_topic_configs(&map(&[("retention.mss", "1")])),
        Err(ConfigError::Unknown {
            key: "retention.mss".into()
        })
    );
    // Broker keys are not topic configs.
    assert!(matches!(
        validate_topic_configs(&map(&[("log.retention.ms", "1")])),
        Err(ConfigError::Unknown { .. })
    ));
}

#[test]
fn rejects_with_kafka_messages() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "segment.bytes",
            "-5",
            "Invalid value -5 for configuration segment.bytes: Value must be at least 14",
        ),
        (
            "segment.bytes",
            "2147483648",
            "Invalid value 2147483648 for configuration segment.bytes: Not a number of type INT",
        ),
        (
            "retention.ms",
            "-2",
            "Invalid value -2 for configuration retention.ms: Value must be at least -1",
        ),
        (
            "retention.ms",
            "1h",
            "Invalid value 1h for configuration retention.ms: Not a number of type LONG",
        ),
        (
            "cleanup.policy",
            "compact,nope",
            "Invalid value nope for configuration cleanup.policy: String must be one of: compact, delete",
        ),
        (
            "compression.type",
            "brotli",
            "Invalid value brotli for configuration compression.type: String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer",
        ),
        (
            "min.cleanable.dirty.ratio",
            "1.5",
            "Invalid value 1.5 for configuration min.cleanable.dirty.ratio: Value must be no more than 1",
        ),
        (
            "min.cleanable.dirty.ratio",
            "x",
            "Not a number of type DOUBLE",
        ),
        (
            "preallocate",
            "yes",
            "Invalid value yes for configuration preallocate: Expected value to be either true or false",
        ),
        ("min.insync.replicas", "0", "Value must be at least 1"),
        ("segment.ms", "0", "Value must be at least 1"),
        ("segment.index.bytes", "3", "Value must be at least 4"),
        ("local.retention.bytes", "-3", "Value must be at least -2"),
        (
            "compression.lz4.level",
            "18",
            "Value must be no more than 17",
        ),
        (
            "compression.gzip.level",
            "0",
            "Value must be between 1 and 9 or equal to -1",
        ),
        (
            "message.timestamp.type",
            "createtime",
            "String must be one of: CreateTime, LogAppendTime",
        ),
        (
            "leader.replication.throttled.replicas",
            "1-2",
            "must be the literal '*'",
        ),
        (
            "follower.replication.throttled.replicas",
            "*,1:2",
            "must be the literal '*'",
        ),
    ];
    for (key, value, message) in cases {
        let (got_key, reason) = invalid(&[(key, value)]);
        assert_eq!(got_key, *key);
        assert!(
            reason.contains(message),
            "{key}={value}: '{reason}' lacks '{message}'"
        );
    }
}

#[test]
fn cross_checks_follow_kafka() {
    let (key, reason) = invalid(&[
        ("min.compaction.lag.ms", "10"),
        ("max.compaction.lag.ms", "5"),
    ]);
    assert_eq!(key, "min.compaction.lag.ms");
    assert!(
        reason.contains("(10) > max.compaction.lag.ms (5)"),
        "{reason}"
    );

    let (key, _) = invalid(&[
        ("remote.storage.enable", "true"),
        ("cleanup.policy", "compact"),
    ]);
    assert_eq!(key, "cleanup.policy");
    // Without tiered storage, compaction is fine.
    assert_eq!(
        validate_topic_configs(&map(&[("cleanup.policy", "compact")])),
        Ok(())
    );

    let (key, reason) = invalid(&[
        ("remote.storage.enable", "true"),
        ("retention.ms", "1000"),
        ("local.retention.ms", "2000"),
    ]);
    assert_eq!(key, "local.retention.ms");
    assert!(
        reason.contains("must not be more than retention.ms property value: 1000"),
        "{reason}"
    );

    let (key, reason) = invalid(&[
        ("remote.storage.enable", "true"),
        ("retention.bytes", "1000"),
        ("local.retention.bytes", "-1"),
    ]);
    assert_eq!(key, "local.retention.bytes");
    assert!(reason.contains("must not be -1"), "{reason}");
    // Local retention beyond total retention only matters with tiered storage.
    assert_eq!(
        validate_topic_configs(&map(&[
            ("retention.ms", "1000"),
            ("local.retention.ms", "2000")
        ])),
        Ok(())
    );
}

#[test]
fn effective_defaults() {
    let e = effective_topic_config(&BTreeMap::new(), &broker(&[]));
    assert_eq!(
        e,
        EffectiveTopicConfig {
            segment_bytes: 1 << 30,
            segment_ms: Some(604_800_000),
            segment_index_bytes: 10_485_760,
            index_interval_bytes: 4096,
            retention_ms: Some(604_800_000),
            retention_bytes: None,
            flush_messages: None,
            flush_ms: None,
            max_message_bytes: 1_048_588,
            timestamp_type_log_append: false,
            cleanup_policy: vec!["delete".into()],
            min_insync_replicas: 1,
            compression_type: "producer".into(),
            remote_storage_enable: false,
            local_retention_ms: 604_800_000,
            local_retention_bytes: -1,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 86_400_000,
            timestamp_before_max_ms: None,
            timestamp_after_max_ms: None,
            mirror_source: None,
            mirror_failed_over: false,
        }
    );
}

#[test]
fn mirror_source_marks_a_linked_mirror_topic_until_removed() {
    let e = effective_topic_config(
        &map(&[("strait.mirror.source", "east:orders")]),
        &broker(&[]),
    );
    assert_eq!(e.mirror_source.as_deref(), Some("east:orders"));
    assert!(!e.mirror_failed_over);
    // SET to "" is a failover as much as DELETE is.
    let e = effective_topic_config(&map(&[("strait.mirror.source", "")]), &broker(&[]));
    assert_eq!(e.mirror_source, None);
    assert!(e.mirror_failed_over);
}

#[test]
fn effective_compaction_settings_follow_overrides() {
    let e = effective_topic_config(
        &map(&[
            ("min.cleanable.dirty.ratio", "0.01"),
            ("min.compaction.lag.ms", "5"),
            ("delete.retention.ms", "100"),
        ]),
        &broker(&[]),
    );
    assert_eq!(e.min_cleanable_dirty_ratio, 0.01);
    assert_eq!(e.min_compaction_lag_ms, 5);
    assert_eq!(e.delete_retention_ms, 100);
}

#[test]
fn effective_uses_broker_keys_then_overrides() {
    let b = broker(&[
        ("log.segment.bytes", "1000"),
        ("log.roll.hours", "1"),
        ("log.retention.minutes", "5"),
        ("log.retention.bytes", "777"),
        ("log.flush.scheduler.interval.ms", "3000"),
        ("log.flush.interval.messages", "50"),
        ("message.max.bytes", "2000"),
        ("log.message.timestamp.type", "LogAppendTime"),
        ("log.cleanup.policy", "compact"),
        ("min.insync.replicas", "2"),
        ("compression.type", "gzip"),
        ("log.index.size.max.bytes", "4096"),
        ("log.index.interval.bytes", "100"),
        ("log.local.retention.ms", "60000"),
    ]);
    let e = effective_topic_config(&BTreeMap::new(), &b);
    assert_eq!(e.segment_bytes, 1000);
    assert_eq!(e.segment_ms, Some(3_600_000));
    assert_eq!(e.retention_ms, Some(300_000));
    assert_eq!(e.retention_bytes, Some(777));
    assert_eq!(e.flush_ms, Some(3000));
    assert_eq!(e.flush_messages, Some(50));
    assert_eq!(e.max_message_bytes, 2000);
    assert!(e.timestamp_type_log_append);
    assert_eq!(e.cleanup_policy, vec!["compact"]);
    assert_eq!(e.min_insync_replicas, 2);
    assert_eq!(e.compression_type, "gzip");
    assert_eq!(e.segment_index_bytes, 4096);
    assert_eq!(e.index_interval_bytes, 100);
    assert_eq!(e.local_retention_ms, 60_000);

    let overrides = map(&[
        ("segment.bytes", "2000"),
        ("segment.ms", "10"),
        ("retention.ms", "-1"),
        ("retention.bytes", "-1"),
        ("flush.ms", "9223372036854775807"),
        ("cleanup.policy", "compact,delete"),
        ("message.timestamp.type", "CreateTime"),
        ("remote.storage.enable", "true"),
        ("local.retention.ms", "-2"),
        ("local.retention.bytes", "100"),
    ]);
    let e = effective_topic_config(&overrides, &b);
    assert_eq!(e.segment_bytes, 2000);
    assert_eq!(e.segment_ms, Some(10));
    assert_eq!(e.retention_ms, None);
    assert_eq!(e.retention_bytes, None);
    assert_eq!(e.flush_ms, None);
    assert_eq!(e.cleanup_policy, vec!["compact", "delete"]);
    assert!(!e.timestamp_type_log_append);
    assert!(e.remote_storage_enable);
    assert_eq!(e.local_retention_ms, -1);
    assert_eq!(e.local_retention_bytes, 100);
}

#[test]
fn flush_ms_prefers_interval_over_scheduler() {
    let b = broker(&[
        ("log.flush.scheduler.interval.ms", "3000"),
        ("log.flush.interval.ms", "10"),
    ]);
    assert_eq!(
        effective_topic_config(&BTreeMap::new(), &b).flush_ms,
        Some(10)
    );
}

#[test]
fn invalid_override_is_not_trusted() {
    let e = effective_topic_config(&map(&[("segment.bytes", "-5")]), &broker(&[]));
    assert_eq!(e.segment_bytes, 1 << 30);
}

#[test]
fn catalogue_queries() {
    assert!(TopicConfigs::is_known("retention.ms"));
    assert!(!TopicConfigs::is_known("log.retention.ms"));
    assert_eq!(
        TopicConfigs::config_type("cleanup.policy"),
        Some(ConfigType::List)
    );
    assert_eq!(
        TopicConfigs::default_value("segment.bytes"),
        Some("1073741824")
    );
    assert_eq!(
        TopicConfigs::broker_synonyms("retention.ms"),
        vec![
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours"
        ]
    );
    assert!(TopicConfigs::names().any(|n| n == "message.downconversion.enable"));
}

#[test]
fn mirror_source_is_set_at_creation_and_removed_only_by_failover() {
    let none = BTreeMap::new();
    let linked = map(&[("strait.mirror.source", "east:orders")]);
    let failed_over = map(&[("strait.mirror.source", "")]);
    let other = map(&[("retention.ms", "5")]);
    // Unrelated changes keep what the topic is.
    assert_eq!(
        mirror_source_change(&none, other.clone()),
        Ok(other.clone())
    );
    let mut linked_other = other.clone();
    linked_other.insert("strait.mirror.source".into(), "east:orders".into());
    assert_eq!(
        mirror_source_change(&linked, linked_other.clone()),
        Ok(linked_other)
    );
    // Removing it, by DELETE or SET "", leaves the failed-over marker.
    assert_eq!(
        mirror_source_change(&linked, none.clone()),
        Ok(failed_over.clone())
    );
    assert_eq!(
        mirror_source_change(&linked, failed_over.clone()),
        Ok(failed_over.clone())
    );
    assert_eq!(
        mirror_source_change(&failed_over, none.clone()),
        Ok(failed_over.clone())
    );
    // Existing or failed-over topics are never linked; a link is never redirected.
    for (old, new) in [
        (&none, &linked),
        (&failed_over, &linked),
        (&linked, &map(&[("strait.mirror.source", "west:orders")])),
    ] {
        let err = mirror_source_change(old, new.clone()).unwrap_err();
        assert!(err.to_string().contains("strait.mirror.source"), "{err}");
    }
}
