//! DescribeConfigs views of the broker and of topics: values, sources and synonyms, computed the
//! way Kafka's `ConfigHelper` does.

use std::collections::BTreeMap;

use crate::broker::BrokerConfig;
use crate::broker_keys::{BROKER_DEFS, broker_def, broker_synonym_chain};
use crate::schema::ConfigType;
use crate::topic::{Origin, TOPIC_DEFS, resolve};

/// Where a config value comes from, with Kafka's wire ids.
#[repr(i8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigSource {
    Unknown = 0,
    DynamicTopic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
}

impl ConfigSource {
    /// The id sent in DescribeConfigs responses.
    pub fn id(self) -> i8 {
        self as i8
    }
}

/// One synonym of a described config: another key (or the same key at another level) that
/// supplies its value, highest precedence first.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSynonym {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// One described config.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub is_default: bool,
    pub sensitive: bool,
    pub config_type: ConfigType,
    pub documentation: Option<String>,
    pub synonyms: Vec<ConfigSynonym>,
}

/// Broker keys set explicitly (static), then those with defaults, in chain order.
fn broker_synonyms(chain: &[&'static str], broker: &BrokerConfig) -> Vec<ConfigSynonym> {
    let explicit = chain.iter().filter_map(|name| {
        broker.explicit.get(*name).map(|value| ConfigSynonym {
            name: name.to_string(),
            value: Some(value.clone()),
            source: ConfigSource::StaticBroker,
        })
    });
    let defaults = chain.iter().filter_map(|name| {
        broker_def(name)
            .and_then(|d| d.default)
            .map(|value| ConfigSynonym {
                name: name.to_string(),
                value: Some(value.to_string()),
                source: ConfigSource::Default,
            })
    });
    explicit.chain(defaults).collect()
}

impl BrokerConfig {
    /// DescribeConfigs for the broker resource: every broker key Strait knows, sorted by name,
    /// with its value, source (STATIC_BROKER_CONFIG when set, else DEFAULT_CONFIG) and synonyms.
    /// All entries are read-only: Strait has no dynamic broker configs.
    pub fn describe(&self) -> Vec<ConfigEntry> {
        BROKER_DEFS
            .iter()
            .map(|def| {
                let chain = broker_synonym_chain(def.name);
                // Kafka drops the synonyms that rank above the described key itself.
                let synonyms: Vec<ConfigSynonym> = broker_synonyms(&chain, self)
                    .into_iter()
                    .skip_while(|s| s.name != def.name)
                    .collect();
                let source = synonyms.first().map_or(ConfigSource::Default, |s| s.source);
                let mut value = match def.name {
                    "node.id" | "broker.id" => Some(self.node_id.to_string()),
                    name => self.raw_value(name),
                };
                // Kafka never returns a password's value, not even through a synonym.
                let sensitive = def.ty == ConfigType::Password;
                let mut synonyms = synonyms;
                if sensitive {
                    value = None;
                    synonyms.iter_mut().for_each(|s| s.value = None);
                }
                ConfigEntry {
                    name: def.name.to_string(),
                    value,
                    source,
                    read_only: true,
                    is_default: source == ConfigSource::Default,
                    sensitive,
                    config_type: def.ty,
                    documentation: Some(def.doc.to_string()),
                    synonyms,
                }
            })
            .collect()
    }
}

/// DescribeConfigs for a topic: every topic config, sorted by name. The source is
/// DYNAMIC_TOPIC_CONFIG for an override, STATIC_BROKER_CONFIG when an explicitly set broker
/// synonym supplies the value, DEFAULT_CONFIG otherwise. Synonyms list the override first, then
/// explicitly set broker keys, then broker keys with defaults (Kafka's order).
pub fn describe_topic(
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
) -> Vec<ConfigEntry> {
    TOPIC_DEFS
        .iter()
        .map(|t| {
            let (value, origin) = resolve(t, overrides, broker);
            let mut synonyms = Vec::new();
            if origin == Origin::Topic {
                synonyms.push(ConfigSynonym {
                    name: t.def.name.to_string(),
                    value: overrides.get(t.def.name).map(|v| v.trim().to_string()),
                    source: ConfigSource::DynamicTopic,
                });
            }
            let chain: Vec<&'static str> = t.synonyms.iter().map(|s| s.name).collect();
            synonyms.extend(broker_synonyms(&chain, broker));
            let source = synonyms.first().map_or(ConfigSource::Default, |s| s.source);
            ConfigEntry {
                name: t.def.name.to_string(),
                value: Some(value.canonical()),
                source,
                read_only: false,
                is_default: source == ConfigSource::Default,
                sensitive: false,
                config_type: t.def.ty,
                documentation: Some(t.def.doc.to_string()),
                synonyms,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
