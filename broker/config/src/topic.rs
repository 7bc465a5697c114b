//! Kafka's topic-level configs (as of Kafka 3.9's `LogConfig`): definitions, broker synonyms,
//! validation of overrides and the effective typed values the log engine uses.

use std::collections::BTreeMap;

use crate::broker::BrokerConfig;
use crate::error::ConfigError;
use crate::schema::{ConfigDef, ConfigType, LONG_MAX, Validator, Value};

const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;

/// A broker key that supplies a topic config's value when the topic has no override; numeric
/// values are multiplied by `factor` (hours and minutes to milliseconds).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Synonym {
    pub name: &'static str,
    pub factor: i64,
}

/// A topic config and its broker synonyms, in Kafka's order of precedence.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TopicDef {
    pub def: ConfigDef,
    pub synonyms: &'static [Synonym],
}

const fn syn(name: &'static str) -> Synonym {
    Synonym { name, factor: 1 }
}

const fn topic(
    name: &'static str,
    ty: ConfigType,
    default: &'static str,
    validator: Validator,
    doc: &'static str,
    synonyms: &'static [Synonym],
) -> TopicDef {
    TopicDef {
        def: ConfigDef {
            name,
            ty,
            default: Some(default),
            validator,
            doc,
        },
        synonyms,
    }
}

pub(crate) const CLEANUP_POLICIES: &[&str] = &["compact", "delete"];
pub(crate) const COMPRESSION_TYPES: &[&str] =
    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
pub(crate) const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];

use ConfigType::{Boolean, Double, Int, List, Long, String as Str};
use Validator::{
    Any, AtLeast, Between, DoubleBetween, GzipLevel, ListOf, OneOf, ThrottledReplicas,
};

/// Every topic config, sorted by name (the order DescribeConfigs returns them in).
#[rustfmt::skip]
pub(crate) static TOPIC_DEFS: &[TopicDef] = &[
    topic("cleanup.policy", List, "delete", ListOf(CLEANUP_POLICIES),
        "Retention policy for old segments: delete, compact, or both.",
        &[syn("log.cleanup.policy")]),
    topic("compression.gzip.level", Int, "-1", GzipLevel,
        "Compression level used when compression.type is gzip.",
        &[syn("compression.gzip.level")]),
    topic("compression.lz4.level", Int, "9", Between(1, 17),
        "Compression level used when compression.type is lz4.",
        &[syn("compression.lz4.level")]),
    topic("compression.type", Str, "producer", OneOf(COMPRESSION_TYPES),
        "Final compression of the topic's data; producer keeps the producer's codec.",
        &[syn("compression.type")]),
    topic("compression.zstd.level", Int, "3", Between(-131_072, 22),
        "Compression level used when compression.type is zstd.",
        &[syn("compression.zstd.level")]),
    topic("delete.retention.ms", Long, "86400000", AtLeast(0),
        "How long delete tombstones are kept for compacted topics.",
        &[syn("log.cleaner.delete.retention.ms")]),
    topic("file.delete.delay.ms", Long, "60000", AtLeast(0),
        "Time to wait before deleting a file from the filesystem.",
        &[syn("log.segment.delete.delay.ms")]),
    topic("flush.messages", Long, LONG_MAX, AtLeast(1),
        "Number of messages after which the log is fsynced.",
        &[syn("log.flush.interval.messages")]),
    topic("flush.ms", Long, LONG_MAX, AtLeast(0),
        "Time after which the log is fsynced.",
        &[syn("log.flush.interval.ms"), syn("log.flush.scheduler.interval.ms")]),
    topic("follower.replication.throttled.replicas", List, "", ThrottledReplicas,
        "Replicas throttled on the follower side: partition:broker pairs or *.",
        &[]),
    topic("index.interval.bytes", Int, "4096", AtLeast(0),
        "Bytes of log between two offset index entries.",
        &[syn("log.index.interval.bytes")]),
    topic("leader.replication.throttled.replicas", List, "", ThrottledReplicas,
        "Replicas throttled on the leader side: partition:broker pairs or *.",
        &[]),
    topic("local.retention.bytes", Long, "-2", AtLeast(-2),
        "Local log size kept before deletion when tiered storage is on; -2 means retention.bytes.",
        &[syn("log.local.retention.bytes")]),
    topic("local.retention.ms", Long, "-2", AtLeast(-2),
        "Local log age kept before deletion when tiered storage is on; -2 means retention.ms.",
        &[syn("log.local.retention.ms")]),
    topic("max.compaction.lag.ms", Long, LONG_MAX, AtLeast(1),
        "Maximum time a message stays ineligible for compaction.",
        &[syn("log.cleaner.max.compaction.lag.ms")]),
    topic("max.message.bytes", Int, "1048588", AtLeast(0),
        "Largest record batch size allowed.",
        &[syn("message.max.bytes")]),
    topic("message.downconversion.enable", Boolean, "true", Any,
        "Whether old fetch versions may be served by down-converting batches.",
        &[syn("log.message.downconversion.enable")]),
    topic("message.format.version", Str, "3.0-IV1", Any,
        "Deprecated, no effect: batches are always written as magic v2.",
        &[syn("log.message.format.version")]),
    topic("message.timestamp.after.max.ms", Long, LONG_MAX, AtLeast(0),
        "How far a CreateTime timestamp may be ahead of the broker's clock.",
        &[syn("log.message.timestamp.after.max.ms")]),
    topic("message.timestamp.before.max.ms", Long, LONG_MAX, AtLeast(0),
        "How far a CreateTime timestamp may be behind the broker's clock.",
        &[syn("log.message.timestamp.before.max.ms")]),
    topic("message.timestamp.difference.max.ms", Long, LONG_MAX, AtLeast(0),
        "Deprecated: maximum difference between a CreateTime timestamp and the broker's clock.",
        &[syn("log.message.timestamp.difference.max.ms")]),
    topic("message.timestamp.type", Str, "CreateTime", OneOf(TIMESTAMP_TYPES),
        "Whether batch timestamps are the producer's (CreateTime) or the broker's (LogAppendTime).",
        &[syn("log.message.timestamp.type")]),
    topic("min.cleanable.dirty.ratio", Double, "0.5", DoubleBetween(0.0, 1.0),
        "Minimum dirty ratio of the log before it is compacted.",
        &[syn("log.cleaner.min.cleanable.ratio")]),
    topic("min.compaction.lag.ms", Long, "0", AtLeast(0),
        "Minimum time a message stays uncompacted.",
        &[syn("log.cleaner.min.compaction.lag.ms")]),
    topic("min.insync.replicas", Int, "1", AtLeast(1),
        "Minimum in-sync replicas for an acks=all write to succeed.",
        &[syn("min.insync.replicas")]),
    topic("preallocate", Boolean, "false", Any,
        "Whether new segment files are preallocated on disk.",
        &[syn("log.preallocate")]),
    topic("remote.log.copy.disable", Boolean, "false", Any,
        "Stop copying segments to remote storage while still reading from it.",
        &[]),
    topic("remote.log.delete.on.disable", Boolean, "false", Any,
        "Delete remote data when tiered storage is turned off for the topic.",
        &[]),
    topic("remote.storage.enable", Boolean, "false", Any,
        "Whether the topic uses tiered storage.",
        &[]),
    topic("retention.bytes", Long, "-1", Any,
        "Maximum partition size before old segments are deleted; -1 means unlimited.",
        &[syn("log.retention.bytes")]),
    topic("retention.ms", Long, "604800000", AtLeast(-1),
        "Maximum age of a segment before it is deleted; -1 means unlimited.",
        &[syn("log.retention.ms"),
          Synonym { name: "log.retention.minutes", factor: MINUTE_MS },
          Synonym { name: "log.retention.hours", factor: HOUR_MS }]),
    topic("segment.bytes", Int, "1073741824", AtLeast(14),
        "Segment file size.",
        &[syn("log.segment.bytes")]),
    topic("segment.index.bytes", Int, "10485760", AtLeast(4),
        "Size of the offset index of a segment.",
        &[syn("log.index.size.max.bytes")]),
    topic("segment.jitter.ms", Long, "0", AtLeast(0),
        "Maximum random jitter subtracted from segment.ms.",
        &[syn("log.roll.jitter.ms"),
          Synonym { name: "log.roll.jitter.hours", factor: HOUR_MS }]),
    topic("segment.ms", Long, "604800000", AtLeast(1),
        "Time after which a segment is rolled even if not full.",
        &[syn("log.roll.ms"), Synonym { name: "log.roll.hours", factor: HOUR_MS }]),
    topic("strait.mirror.source", Str, "", Any,
        "Set on a linked mirror topic (the source it copies); such a topic refuses producers. Removing it fails the topic over.",
        &[]),
    topic("unclean.leader.election.enable", Boolean, "false", Any,
        "Whether replicas outside the ISR may become leader, at the risk of data loss.",
        &[syn("unclean.leader.election.enable")]),
];

/// The catalogue of topic configs.
pub struct TopicConfigs;

impl TopicConfigs {
    /// Every topic config name, sorted.
    pub fn names() -> impl Iterator<Item = &'static str> {
        TOPIC_DEFS.iter().map(|t| t.def.name)
    }

    /// Whether `name` is a topic config.
    pub fn is_known(name: &str) -> bool {
        topic_def(name).is_some()
    }

    /// The Kafka type of a topic config.
    pub fn config_type(name: &str) -> Option<ConfigType> {
        topic_def(name).map(|t| t.def.ty)
    }

    /// The topic-level default (used when neither the topic nor the broker sets it).
    pub fn default_value(name: &str) -> Option<&'static str> {
        topic_def(name).and_then(|t| t.def.default)
    }

    /// The broker keys that supply this config's value, in precedence order.
    pub fn broker_synonyms(name: &str) -> Vec<&'static str> {
        topic_def(name)
            .map(|t| t.synonyms.iter().map(|s| s.name).collect())
            .unwrap_or_default()
    }
}

pub(crate) fn topic_def(name: &str) -> Option<&'static TopicDef> {
    TOPIC_DEFS
        .binary_search_by(|t| t.def.name.cmp(name))
        .ok()
        .map(|i| &TOPIC_DEFS[i])
}

/// Validates topic overrides as Kafka does on CreateTopics/AlterConfigs: unknown names, values
/// of the wrong type or out of range, and the cross-checks of Kafka's `LogConfig.validateValues`
/// (evaluated against the topic-level defaults for keys not overridden).
pub fn validate_topic_configs(overrides: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    let mut parsed: BTreeMap<&str, Value> = BTreeMap::new();
    for (name, raw) in overrides {
        let def = topic_def(name).ok_or_else(|| ConfigError::Unknown { key: name.clone() })?;
        let value = def
            .def
            .check(raw)
            .map_err(|r| ConfigError::invalid(name, r.kafka_message(name)))?;
        parsed.insert(def.def.name, value);
    }
    let long = |name: &str| -> i64 {
        parsed
            .get(name)
            .and_then(Value::as_i64)
            .or_else(|| TopicConfigs::default_value(name).and_then(|d| d.parse().ok()))
            .unwrap_or(0)
    };
    let min_lag = long("min.compaction.lag.ms");
    let max_lag = long("max.compaction.lag.ms");
    if min_lag > max_lag {
        return Err(ConfigError::invalid(
            "min.compaction.lag.ms",
            format!(
                "conflict topic config setting min.compaction.lag.ms ({min_lag}) > \
                 max.compaction.lag.ms ({max_lag})"
            ),
        ));
    }
    let remote = parsed
        .get("remote.storage.enable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if remote {
        let compacted = match parsed.get("cleanup.policy") {
            Some(Value::List(items)) => items.iter().any(|p| p == "compact"),
            _ => false,
        };
        if compacted {
            return Err(ConfigError::invalid(
                "cleanup.policy",
                "Remote log storage only supports topics with cleanup.policy=delete",
            ));
        }
        check_local_retention(long("retention.ms"), long("local.retention.ms"), "ms")?;
        check_local_retention(
            long("retention.bytes"),
            long("local.retention.bytes"),
            "bytes",
        )?;
    }
    Ok(())
}

/// Kafka's rule: with tiered storage, local retention may not exceed total retention.
fn check_local_retention(total: i64, local: i64, unit: &str) -> Result<(), ConfigError> {
    let local_key = format!("local.retention.{unit}");
    let total_key = format!("retention.{unit}");
    if total != -1 && local != -2 {
        if local == -1 {
            return Err(ConfigError::invalid(
                &local_key,
                format!(
                    "Invalid value -1 for configuration {local_key}: Value must not be -1 as \
                     {total_key} value is set as {total}."
                ),
            ));
        }
        if local > total {
            return Err(ConfigError::invalid(
                &local_key,
                format!(
                    "Invalid value {local} for configuration {local_key}: Value must not be \
                     more than {total_key} property value: {total}"
                ),
            ));
        }
    }
    Ok(())
}

/// Where a topic config's effective value came from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Origin {
    /// The topic's own override.
    Topic,
    /// An explicitly set broker key.
    Broker(&'static str),
    /// A broker key's default, or the topic default when no broker key has one.
    Default,
}

/// The effective value of a topic config: the topic override if valid, else the first
/// explicitly set broker synonym, else the first broker synonym with a default, else the
/// topic-level default. Numeric broker values are converted to the topic's unit.
pub(crate) fn resolve(
    def: &TopicDef,
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
) -> (Value, Origin) {
    if let Some(value) = overrides
        .get(def.def.name)
        .and_then(|raw| def.def.check(raw).ok())
    {
        return (value, Origin::Topic);
    }
    let from_broker = |syn: &Synonym, raw: &str| -> Option<Value> {
        let value = crate::broker_keys::broker_def(syn.name)?.check(raw).ok()?;
        let value = match value {
            Value::Int(n) => Value::Int(n.saturating_mul(syn.factor)),
            other => other,
        };
        // Kafka reports any negative broker retention time as -1 (unlimited).
        Some(match value {
            Value::Int(n) if def.def.name == "retention.ms" && n < 0 => Value::Int(-1),
            other => other,
        })
    };
    for syn in def.synonyms {
        if let Some(value) = broker
            .explicit
            .get(syn.name)
            .and_then(|raw| from_broker(syn, raw))
        {
            return (value, Origin::Broker(syn.name));
        }
    }
    for syn in def.synonyms {
        let default = crate::broker_keys::broker_def(syn.name).and_then(|d| d.default);
        if let Some(value) = default.and_then(|raw| from_broker(syn, raw)) {
            return (value, Origin::Default);
        }
    }
    let value = def
        .def
        .default
        .and_then(|raw| def.def.check(raw).ok())
        .unwrap_or(Value::Str(String::new()));
    (value, Origin::Default)
}

/// The typed topic settings the log engine needs.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveTopicConfig {
    pub segment_bytes: u64,
    /// `None` when rolling by time is effectively off (`Long.MAX_VALUE`).
    pub segment_ms: Option<u64>,
    pub segment_index_bytes: u64,
    pub index_interval_bytes: u64,
    /// `None` means unlimited (-1).
    pub retention_ms: Option<i64>,
    /// `None` means unlimited (negative).
    pub retention_bytes: Option<i64>,
    /// `None` means never flush by count (`Long.MAX_VALUE`).
    pub flush_messages: Option<u64>,
    /// `None` means never flush by time (`Long.MAX_VALUE`).
    pub flush_ms: Option<u64>,
    pub max_message_bytes: u32,
    pub timestamp_type_log_append: bool,
    pub cleanup_policy: Vec<String>,
    pub min_insync_replicas: i32,
    pub compression_type: String,
    pub remote_storage_enable: bool,
    /// Resolved like Kafka's `LogConfig.localRetentionMs`: -2 becomes retention.ms; -1 unlimited.
    pub local_retention_ms: i64,
    /// Resolved like Kafka's `LogConfig.localRetentionBytes`: -2 becomes retention.bytes.
    pub local_retention_bytes: i64,
    pub min_cleanable_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub delete_retention_ms: i64,
    /// `message.timestamp.before.max.ms` / `after.max.ms`; None when unbounded (Long.MAX).
    pub timestamp_before_max_ms: Option<u64>,
    pub timestamp_after_max_ms: Option<u64>,
    /// `strait.mirror.source`: the source a linked mirror topic copies; `None` for an ordinary
    /// (or failed-over) topic.
    pub mirror_source: Option<String>,
    /// `strait.mirror.source` kept with an empty value: a linked mirror topic that was failed
    /// over, whose log still holds the source's epochs (see [`mirror_source_change`]).
    pub mirror_failed_over: bool,
}

/// The effective typed topic config: overrides over broker keys over defaults. Overrides are
/// expected to be validated already; an invalid one is ignored rather than trusted.
pub fn effective_topic_config(
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
) -> EffectiveTopicConfig {
    let get = |name: &str| -> Value {
        match topic_def(name) {
            Some(def) => resolve(def, overrides, broker).0,
            None => Value::Str(String::new()),
        }
    };
    let long = |name: &str| get(name).as_i64().unwrap_or(0);
    let unsigned = |name: &str| u64::try_from(long(name)).unwrap_or(0);
    let unless_max = |name: &str| match long(name) {
        i64::MAX => None,
        n => u64::try_from(n).ok(),
    };
    let non_negative = |name: &str| match long(name) {
        n if n < 0 => None,
        n => Some(n),
    };
    let string = |name: &str| get(name).canonical();
    let retention_ms = long("retention.ms");
    let retention_bytes = long("retention.bytes");
    let local_or = |name: &str, total: i64| match long(name) {
        -2 => total,
        n => n,
    };
    EffectiveTopicConfig {
        segment_bytes: unsigned("segment.bytes"),
        segment_ms: unless_max("segment.ms"),
        segment_index_bytes: unsigned("segment.index.bytes"),
        index_interval_bytes: unsigned("index.interval.bytes"),
        retention_ms: non_negative("retention.ms"),
        retention_bytes: non_negative("retention.bytes"),
        flush_messages: unless_max("flush.messages"),
        flush_ms: unless_max("flush.ms"),
        max_message_bytes: u32::try_from(long("max.message.bytes")).unwrap_or(0),
        timestamp_type_log_append: string("message.timestamp.type") == "LogAppendTime",
        cleanup_policy: match get("cleanup.policy") {
            Value::List(items) => items,
            _ => vec!["delete".to_string()],
        },
        min_insync_replicas: i32::try_from(long("min.insync.replicas")).unwrap_or(1),
        compression_type: string("compression.type"),
        remote_storage_enable: get("remote.storage.enable").as_bool().unwrap_or(false),
        local_retention_ms: local_or("local.retention.ms", retention_ms),
        local_retention_bytes: local_or("local.retention.bytes", retention_bytes),
        min_cleanable_dirty_ratio: match get("min.cleanable.dirty.ratio") {
            Value::Double(d) => d,
            _ => 0.5,
        },
        min_compaction_lag_ms: long("min.compaction.lag.ms"),
        max_compaction_lag_ms: long("max.compaction.lag.ms"),
        delete_retention_ms: long("delete.retention.ms"),
        timestamp_before_max_ms: unless_max("message.timestamp.before.max.ms"),
        timestamp_after_max_ms: unless_max("message.timestamp.after.max.ms"),
        mirror_source: Some(string(MIRROR_SOURCE)).filter(|s| !s.is_empty()),
        mirror_failed_over: overrides
            .get(MIRROR_SOURCE)
            .is_some_and(|v| v.trim().is_empty()),
    }
}

/// The topic key that makes a topic a linked mirror topic (see [`mirror_source_change`]).
pub const MIRROR_SOURCE: &str = "strait.mirror.source";

/// Applies Strait's rules for `strait.mirror.source` to an alteration of an existing topic's
/// overrides from `old` to `new`, returning the overrides to store. A mirror topic's log must
/// start empty, so the key can only be given a source when the topic is created. Removing it
/// (DELETE, SET "", or a full AlterConfigs without it) is the failover, stored as the key with
/// an empty value: the broker keeps knowing the log holds batches stamped with another
/// cluster's leader epochs, and a failed-over topic cannot be linked again.
pub fn mirror_source_change(
    old: &BTreeMap<String, String>,
    mut new: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let was = old.get(MIRROR_SOURCE).map(String::as_str);
    let wanted = new.get(MIRROR_SOURCE).map(|v| v.trim()).unwrap_or("");
    match (was, wanted.is_empty()) {
        // The failover, or a topic failed over before: the marker stays.
        (Some(_), true) => {
            new.insert(MIRROR_SOURCE.to_string(), String::new());
        }
        (None, true) => {
            new.remove(MIRROR_SOURCE);
        }
        (Some(was), false) if was == wanted => {}
        (None | Some(""), false) => {
            return Err(ConfigError::invalid(
                MIRROR_SOURCE,
                "a topic becomes a linked mirror topic only when it is created (its log must start empty); a failed-over topic cannot be linked again",
            ));
        }
        (Some(_), false) => {
            return Err(ConfigError::invalid(
                MIRROR_SOURCE,
                "the source of a linked mirror topic cannot be changed; fail it over (remove the key) instead",
            ));
        }
    }
    Ok(new)
}

#[cfg(test)]
mod tests;
