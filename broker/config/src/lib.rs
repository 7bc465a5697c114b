//! Strait's configuration model: Kafka's broker and topic config keys with their types,
//! defaults and validators; `.properties` parsing; the layered broker config; topic override
//! validation, effective values and IncrementalAlterConfigs; and DescribeConfigs views.

mod alter;
mod broker;
mod broker_keys;
mod describe;
mod error;
mod kraft;
mod listener;
mod principal;
mod properties;
mod remote_log;
mod sasl;
mod schema;
mod ssl;
mod topic;

pub use alter::{OP_APPEND, OP_DELETE, OP_SET, OP_SUBTRACT, apply_incremental};
pub use broker::{AuthorizerConfig, BrokerConfig, STANDARD_AUTHORIZER, TransactionSettings};
pub use broker_keys::{RACK_AWARE_REPLICA_SELECTOR, deprecation};
pub use describe::{ConfigEntry, ConfigSource, ConfigSynonym, describe_topic};
pub use error::ConfigError;
pub use kraft::{KraftSettings, ProcessRoles, parse_bootstrap_servers, parse_voters};
pub use listener::{Listener, join_host_port, parse_listeners, parse_security_protocol_map};
pub use principal::PrincipalMapper;
pub use properties::parse_properties;
pub use remote_log::{
    RSM_CONFIG_PREFIX, RemoteLogSettings, TIERED_DISABLED_IN_BROKER, validate_tiered_topic_config,
};
pub use sasl::{OAuthSettings, SUPPORTED_MECHANISMS, SaslListener, SaslSettings};
pub use schema::ConfigType;
pub use ssl::{ClientAuth, KeySource, SslSettings, TlsVersion, TrustSource};
pub use topic::{
    EffectiveTopicConfig, MIRROR_SOURCE, TopicConfigs, effective_topic_config,
    mirror_source_change, validate_topic_configs,
};
