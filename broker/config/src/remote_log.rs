//! Tiered storage (KIP-405) settings: the broker's `remote.log.*` keys and the remote storage
//! manager's `rsm.config.*` keys as typed values, and Kafka 3.9's cross-checks of a topic's
//! tiered-storage overrides (`LogConfig.validateTopicLogConfigValues`).

use std::collections::BTreeMap;

use crate::schema::Value;
use crate::topic::TopicConfigs;

/// Kafka's prefix for settings handed to the remote storage manager (`remote.log.storage.manager.impl.prefix`).
pub const RSM_CONFIG_PREFIX: &str = "rsm.config.";

/// The broker's tiered-storage settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RemoteLogSettings {
    /// `remote.log.storage.system.enable`; `None` when not set (Kafka's default is false; the
    /// broker decides what an unset key means for its embedded default).
    pub system_enable: Option<bool>,
    /// `remote.log.manager.task.interval.ms` (30000).
    pub task_interval_ms: u64,
    /// `remote.log.manager.thread.pool.size` (10): concurrent segment uploads.
    pub thread_pool_size: usize,
    /// `remote.log.reader.threads` (10): concurrent remote reads.
    pub reader_threads: usize,
    /// `remote.log.manager.copy.max.bytes.per.second`; `None` is unlimited (Long.MAX_VALUE).
    pub copy_max_bytes_per_second: Option<u64>,
    /// `remote.log.manager.fetch.max.bytes.per.second`; `None` is unlimited (Long.MAX_VALUE).
    pub fetch_max_bytes_per_second: Option<u64>,
    /// `remote.log.storage.manager.class.name` / `remote.log.metadata.manager.class.name`:
    /// accepted so Kafka configs carry over; Strait's store is built in, so they are only logged.
    pub storage_manager_class_name: Option<String>,
    pub metadata_manager_class_name: Option<String>,
    /// Every `rsm.config.*` key as set (full key names, values trimmed).
    pub rsm_config: BTreeMap<String, String>,
}

impl RemoteLogSettings {
    /// The key/value map the remote store is built from (`strait_tiered::RemoteStorageConfig::
    /// from_props`): the explicitly set `remote.log.*` keys plus every `rsm.config.*` key, under
    /// their Kafka names.
    pub fn store_props(&self) -> BTreeMap<String, String> {
        let mut props = self.rsm_config.clone();
        let mut put = |k: &str, v: String| {
            props.insert(k.to_string(), v);
        };
        if let Some(enable) = self.system_enable {
            put("remote.log.storage.system.enable", enable.to_string());
        }
        put(
            "remote.log.manager.task.interval.ms",
            self.task_interval_ms.to_string(),
        );
        put(
            "remote.log.manager.thread.pool.size",
            self.thread_pool_size.to_string(),
        );
        put("remote.log.reader.threads", self.reader_threads.to_string());
        if let Some(rate) = self.copy_max_bytes_per_second {
            put(
                "remote.log.manager.copy.max.bytes.per.second",
                rate.to_string(),
            );
        }
        if let Some(rate) = self.fetch_max_bytes_per_second {
            put(
                "remote.log.manager.fetch.max.bytes.per.second",
                rate.to_string(),
            );
        }
        props
    }
}

/// Kafka's message when a topic asks for tiered storage on a broker without it.
pub const TIERED_DISABLED_IN_BROKER: &str = "Tiered Storage functionality is disabled in the broker. \
     Topic cannot be configured with remote log storage.";

const TURN_OFF_WITHOUT_DELETE: &str = "It is invalid to disable remote storage without deleting \
     remote data. If you want to keep the remote data and turn to read only, please set \
     `remote.storage.enable=true,remote.log.copy.disable=true`. If you want to disable remote \
     storage and delete all remote data, please set \
     `remote.storage.enable=false,remote.log.copy.disable=true,remote.log.delete.on.disable=true`.";

/// The value of topic key `name` in `overrides`, else its topic-level default, parsed.
fn topic_value(overrides: &BTreeMap<String, String>, name: &str) -> Option<Value> {
    let def = crate::topic::topic_def(name)?;
    overrides
        .get(name)
        .and_then(|raw| def.def.check(raw).ok())
        .or_else(|| TopicConfigs::default_value(name).and_then(|raw| def.def.check(raw).ok()))
}

fn topic_bool(overrides: &BTreeMap<String, String>, name: &str) -> bool {
    topic_value(overrides, name)
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

fn topic_long(overrides: &BTreeMap<String, String>, name: &str) -> i64 {
    topic_value(overrides, name)
        .and_then(|v| v.as_i64())
        .unwrap_or(0)
}

/// Kafka 3.9's tiered-storage checks of a topic's overrides (`LogConfig.
/// validateTopicLogConfigValues`), on the config map alone: `old` is the topic's overrides before
/// the change (`None` on creation), `new` after it; keys not in `new` take their topic-level
/// defaults. With `remote.storage.enable=true`: the broker must have tiered storage
/// (`broker_remote_enabled`), `cleanup.policy` must not contain `compact`, `local.retention.ms`
/// / `.bytes` must not exceed `retention.ms` / `.bytes` (-2 means "same as retention", a total of
/// -1 allows anything), and with `remote.log.copy.disable=true` local and total retention must be
/// identical (or local -2). Turning it from true to false needs both
/// `remote.log.copy.disable=true` and `remote.log.delete.on.disable=true`. Values are expected to
/// be validated one by one already; an unparsable one counts as its default.
pub fn validate_tiered_topic_config(
    old: Option<&BTreeMap<String, String>>,
    new: &BTreeMap<String, String>,
    broker_remote_enabled: bool,
) -> Result<(), String> {
    let enabled = topic_bool(new, "remote.storage.enable");
    if !enabled {
        let was_enabled = old.is_some_and(|o| topic_bool(o, "remote.storage.enable"));
        if was_enabled
            && !(topic_bool(new, "remote.log.delete.on.disable")
                && topic_bool(new, "remote.log.copy.disable"))
        {
            return Err(TURN_OFF_WITHOUT_DELETE.to_string());
        }
        return Ok(());
    }
    if !broker_remote_enabled {
        return Err(TIERED_DISABLED_IN_BROKER.to_string());
    }
    let compacted = match topic_value(new, "cleanup.policy") {
        Some(Value::List(items)) => items.iter().any(|p| p.eq_ignore_ascii_case("compact")),
        _ => false,
    };
    if compacted {
        return Err("Remote log storage is unsupported for the compacted topics".to_string());
    }
    for unit in ["bytes", "ms"] {
        let total_key = format!("retention.{unit}");
        let local_key = format!("local.retention.{unit}");
        let total = topic_long(new, &total_key);
        let local = topic_long(new, &local_key);
        if total > -1 && local != -2 {
            if local == -1 {
                return Err(format!(
                    "Invalid value -1 for configuration {local_key}: Value must not be -1 as \
                     {total_key} value is set as {total}."
                ));
            }
            if local > total {
                return Err(format!(
                    "Invalid value {local} for configuration {local_key}: Value must not be more \
                     than {total_key} property value: {total}"
                ));
            }
        }
    }
    if topic_bool(new, "remote.log.copy.disable") {
        for unit in ["bytes", "ms"] {
            let total = topic_long(new, &format!("retention.{unit}"));
            let local = topic_long(new, &format!("local.retention.{unit}"));
            if local != -2 && local != total {
                return Err(format!(
                    "When `remote.log.copy.disable` is set to true, the `local.retention.{unit}` \
                     and `retention.{unit}` must be set to the identical value because there will \
                     be no more logs copied to the remote storage."
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
