//! Tests of the DescribeConfigs views: sources, values and synonyms.

use std::collections::BTreeMap;

use super::*;

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

fn entry<'a>(entries: &'a [ConfigEntry], name: &str) -> &'a ConfigEntry {
    match entries.iter().find(|e| e.name == name) {
        Some(e) => e,
        None => panic!("{name} not described"),
    }
}

fn synonyms(e: &ConfigEntry) -> Vec<(&str, Option<&str>, ConfigSource)> {
    e.synonyms
        .iter()
        .map(|s| (s.name.as_str(), s.value.as_deref(), s.source))
        .collect()
}

#[test]
fn topic_override_is_dynamic_topic_config() {
    let overrides: BTreeMap<String, String> =
        [("retention.ms".to_string(), "1000".to_string())].into();
    let entries = describe_topic(&overrides, &broker(&[("log.retention.hours", "24")]));
    let e = entry(&entries, "retention.ms");
    assert_eq!(e.value.as_deref(), Some("1000"));
    assert_eq!(e.source, ConfigSource::DynamicTopic);
    assert!(!e.is_default && !e.read_only && !e.sensitive);
    assert_eq!(e.config_type, ConfigType::Long);
    assert!(e.documentation.is_some());
    assert_eq!(
        synonyms(e),
        vec![
            ("retention.ms", Some("1000"), ConfigSource::DynamicTopic),
            (
                "log.retention.hours",
                Some("24"),
                ConfigSource::StaticBroker
            ),
            ("log.retention.hours", Some("168"), ConfigSource::Default),
        ]
    );
}

#[test]
fn explicit_broker_synonym_is_static_broker_config() {
    let b = broker(&[
        ("log.retention.hours", "24"),
        ("log.retention.minutes", "30"),
    ]);
    let entries = describe_topic(&BTreeMap::new(), &b);
    let e = entry(&entries, "retention.ms");
    assert_eq!(e.value.as_deref(), Some("1800000"));
    assert_eq!(e.source, ConfigSource::StaticBroker);
    assert!(!e.is_default);
    assert_eq!(
        synonyms(e),
        vec![
            (
                "log.retention.minutes",
                Some("30"),
                ConfigSource::StaticBroker
            ),
            (
                "log.retention.hours",
                Some("24"),
                ConfigSource::StaticBroker
            ),
            ("log.retention.hours", Some("168"), ConfigSource::Default),
        ]
    );
    let e = entry(&entries, "cleanup.policy");
    assert_eq!(e.source, ConfigSource::Default);
}

#[test]
fn defaults_are_default_config() {
    let entries = describe_topic(&BTreeMap::new(), &broker(&[]));
    assert_eq!(entries.len(), crate::topic::TOPIC_DEFS.len());
    let e = entry(&entries, "retention.ms");
    assert_eq!(e.value.as_deref(), Some("604800000"));
    assert_eq!(e.source, ConfigSource::Default);
    assert!(e.is_default);
    assert_eq!(
        synonyms(e),
        vec![("log.retention.hours", Some("168"), ConfigSource::Default)]
    );

    let e = entry(&entries, "flush.ms");
    assert_eq!(e.value.as_deref(), Some("9223372036854775807"));
    assert_eq!(
        synonyms(e),
        vec![(
            "log.flush.scheduler.interval.ms",
            Some("9223372036854775807"),
            ConfigSource::Default
        )]
    );

    // No broker synonym: no synonyms at all, topic default value.
    let e = entry(&entries, "remote.storage.enable");
    assert_eq!(e.value.as_deref(), Some("false"));
    assert_eq!(e.source, ConfigSource::Default);
    assert!(e.synonyms.is_empty());

    assert_eq!(
        entry(&entries, "min.cleanable.dirty.ratio")
            .value
            .as_deref(),
        Some("0.5")
    );
    assert_eq!(
        entry(&entries, "cleanup.policy").value.as_deref(),
        Some("delete")
    );
}

#[test]
fn topic_values_are_canonical() {
    let overrides: BTreeMap<String, String> = [
        (
            "cleanup.policy".to_string(),
            " compact , delete ".to_string(),
        ),
        ("preallocate".to_string(), "TRUE".to_string()),
    ]
    .into();
    let entries = describe_topic(
        &overrides,
        &broker(&[("log.cleaner.min.cleanable.ratio", "1")]),
    );
    assert_eq!(
        entry(&entries, "cleanup.policy").value.as_deref(),
        Some("compact,delete")
    );
    assert_eq!(
        entry(&entries, "preallocate").value.as_deref(),
        Some("true")
    );
    let ratio = entry(&entries, "min.cleanable.dirty.ratio");
    assert_eq!(ratio.value.as_deref(), Some("1.0"));
    assert_eq!(ratio.source, ConfigSource::StaticBroker);
}

#[test]
fn broker_describe_sources_and_synonyms() {
    let b = broker(&[("num.partitions", "3"), ("log.retention.minutes", "30")]);
    let entries = b.describe();
    assert_eq!(entries.len(), BROKER_DEFS.len());
    assert!(entries.iter().all(|e| e.read_only));

    let e = entry(&entries, "num.partitions");
    assert_eq!(
        (e.value.as_deref(), e.source, e.is_default),
        (Some("3"), ConfigSource::StaticBroker, false)
    );
    assert_eq!(
        synonyms(e),
        vec![
            ("num.partitions", Some("3"), ConfigSource::StaticBroker),
            ("num.partitions", Some("1"), ConfigSource::Default),
        ]
    );

    let e = entry(&entries, "min.insync.replicas");
    assert_eq!(
        (e.value.as_deref(), e.source, e.is_default),
        (Some("1"), ConfigSource::Default, true)
    );

    // Kafka drops the synonyms ranked above the described key.
    let e = entry(&entries, "log.retention.minutes");
    assert_eq!(e.source, ConfigSource::StaticBroker);
    assert_eq!(
        synonyms(e),
        vec![
            (
                "log.retention.minutes",
                Some("30"),
                ConfigSource::StaticBroker
            ),
            ("log.retention.hours", Some("168"), ConfigSource::Default),
        ]
    );
    let e = entry(&entries, "log.retention.ms");
    assert_eq!(
        (e.value.as_deref(), e.source),
        (None, ConfigSource::Default)
    );
    assert!(e.synonyms.is_empty());
    let e = entry(&entries, "log.retention.hours");
    assert_eq!(
        synonyms(e),
        vec![("log.retention.hours", Some("168"), ConfigSource::Default)]
    );

    assert_eq!(entry(&entries, "node.id").value.as_deref(), Some("1"));
    assert_eq!(entry(&entries, "broker.id").value.as_deref(), Some("1"));
}

#[test]
fn wire_ids() {
    assert_eq!(ConfigSource::DynamicTopic.id(), 1);
    assert_eq!(ConfigSource::StaticBroker.id(), 4);
    assert_eq!(ConfigSource::Default.id(), 5);
    assert_eq!(ConfigType::List.id(), 7);
    assert_eq!(ConfigType::Password.id(), 9);
}
