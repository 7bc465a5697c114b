//! The typed broker config, built from layered `key=value` sources (embedded defaults, then a
//! `server.properties` file, then `--override`s) with Kafka's key names and validators.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::broker_keys::{BROKER_DEFS, broker_def, is_ignored};
use crate::error::ConfigError;
use crate::kraft::{
    KraftInputs, KraftSettings, inter_broker_listener, kraft_settings, parse_bootstrap_servers,
    parse_voters,
};
use crate::listener::{
    Listener, check_distinct_ports, parse_listeners, parse_security_protocol_map, split_host_port,
};
use crate::principal::PrincipalMapper;
use crate::properties::parse_properties_from;
use crate::remote_log::{RSM_CONFIG_PREFIX, RemoteLogSettings};
use crate::sasl::{Globals, SaslSettings, listener_sasl_key, sasl_settings, split_mechanisms};
use crate::schema::{Value, split_list};
use crate::ssl::{Lookup, SslSettings, listener_ssl_key, ssl_settings};

/// The transaction coordinator's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionSettings {
    pub state_log_num_partitions: i32,
    pub state_log_replication_factor: i16,
    pub state_log_min_isr: i32,
    pub state_log_segment_bytes: i32,
    pub max_timeout_ms: i32,
    pub id_expiration_ms: i64,
    pub abort_timed_out_interval_ms: u64,
    pub remove_expired_interval_ms: u64,
    pub partition_verification: bool,
}

/// Typed broker config. Build it with [`BrokerConfig::from_pairs`] or [`BrokerConfig::load`].
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// `node.id` (legacy alias `broker.id`); default 1.
    pub node_id: i32,
    /// `listeners`; default `PLAINTEXT://127.0.0.1:9092`.
    pub listeners: Vec<Listener>,
    /// `advertised.listeners`; default: `listeners` minus the controller listeners.
    pub advertised_listeners: Vec<Listener>,
    /// `listener.security.protocol.map`, names and protocols upper-cased.
    pub listener_security_protocol_map: BTreeMap<String, String>,
    /// `log.dirs` (comma list), else `log.dir`; default `./strait-data`.
    pub log_dirs: Vec<PathBuf>,
    pub broker_rack: Option<String>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub min_insync_replicas: i32,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub log_segment_bytes: u64,
    /// `log.roll.ms`, else `log.roll.hours` (168) in ms; always `Some` when built by this crate.
    pub log_roll_ms: Option<u64>,
    /// `log.retention.ms` > `.minutes` > `.hours` (168), in ms; `None` means unlimited.
    pub log_retention_ms: Option<i64>,
    /// `log.retention.bytes`; `None` means unlimited (negative).
    pub log_retention_bytes: Option<i64>,
    pub log_retention_check_interval_ms: u64,
    pub log_index_interval_bytes: u64,
    pub log_index_size_max_bytes: u64,
    pub message_max_bytes: u32,
    pub socket_request_max_bytes: u32,
    /// `None` means never flush by count (Kafka's default `Long.MAX_VALUE`).
    pub log_flush_interval_messages: Option<u64>,
    /// `None` when not set: the scheduler interval applies.
    pub log_flush_interval_ms: Option<u64>,
    pub log_flush_scheduler_interval_ms: u64,
    /// `CreateTime` or `LogAppendTime`.
    pub log_message_timestamp_type: String,
    /// `delete`, `compact`, or both comma-separated.
    pub log_cleanup_policy: String,
    pub compression_type: String,
    /// `metrics.listener` as `host:port`; `None` when set to "" (metrics disabled).
    pub metrics_listener: Option<String>,
    pub cluster_id: Option<String>,
    pub offsets_topic_num_partitions: i32,
    pub offsets_topic_replication_factor: i16,
    pub offsets_topic_segment_bytes: i32,
    /// `offsets.retention.minutes` in milliseconds.
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: u64,
    pub offset_metadata_max_bytes: usize,
    pub group_initial_rebalance_delay_ms: u64,
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    pub group_max_size: i32,
    pub group_consumer_heartbeat_interval_ms: u64,
    pub group_consumer_session_timeout_ms: u64,
    pub producer_id_expiration_ms: i64,
    /// The transaction coordinator's settings (Kafka's `transaction.*` keys).
    pub transactions: TransactionSettings,
    pub producer_id_expiration_check_interval_ms: u64,
    /// `quota.window.num` (11).
    pub quota_window_num: u32,
    /// `quota.window.size.seconds` (1).
    pub quota_window_size_seconds: u64,
    pub log_cleaner_backoff_ms: u64,
    /// `process.roles`: each `broker` or `controller`, no duplicates.
    pub process_roles: Vec<String>,
    /// `controller.quorum.voters`, unparsed.
    pub controller_quorum_voters: String,
    /// `controller.listener.names`, upper-cased.
    pub controller_listener_names: Vec<String>,
    /// `controller.quorum.bootstrap.servers` as (host, port); default empty.
    pub controller_quorum_bootstrap_servers: Vec<(String, u16)>,
    /// The validated KRaft view; `None` in single-node mode (empty `process.roles`).
    pub kraft: Option<KraftSettings>,
    pub unclean_leader_election_enable: bool,
    /// `replica.lag.time.max.ms` (30000).
    pub replica_lag_time_max_ms: u64,
    /// `replica.selector.class` is Kafka's RackAwareReplicaSelector: a leader sends a consumer
    /// that names its `client.rack` to an in-sync replica in that rack (KIP-392).
    pub rack_aware_replica_selector: bool,
    /// `replica.fetch.max.bytes` (1048576), per partition.
    pub replica_fetch_max_bytes: u64,
    /// `replica.fetch.min.bytes` (1).
    pub replica_fetch_min_bytes: u64,
    /// `replica.fetch.wait.max.ms` (500); at most `replica.lag.time.max.ms`.
    pub replica_fetch_wait_max_ms: u64,
    /// `replica.fetch.backoff.ms` (1000).
    pub replica_fetch_backoff_ms: u64,
    /// `replica.fetch.response.max.bytes` (10485760).
    pub replica_fetch_response_max_bytes: u64,
    /// `num.replica.fetchers` (1): fetchers per followed broker.
    pub num_replica_fetchers: usize,
    /// `max.incremental.fetch.session.cache.slots` (1000): fetch sessions kept (KIP-227).
    pub max_incremental_fetch_session_cache_slots: usize,
    /// `broker.heartbeat.interval.ms` (2000).
    pub broker_heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms` (9000).
    pub broker_session_timeout_ms: u64,
    /// `auto.leader.rebalance.enable` (true).
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds` (300).
    pub leader_imbalance_check_interval_seconds: u64,
    /// `controlled.shutdown.enable` (true).
    pub controlled_shutdown_enable: bool,
    /// `metadata.log.dir`; `None` means the first of `log_dirs`.
    pub metadata_log_dir: Option<PathBuf>,
    /// `controller.quorum.election.timeout.ms` (1000).
    pub controller_quorum_election_timeout_ms: u64,
    /// `controller.quorum.fetch.timeout.ms` (2000).
    pub controller_quorum_fetch_timeout_ms: u64,
    /// `metadata.log.max.record.bytes.between.snapshots` (20971520).
    pub metadata_log_max_record_bytes_between_snapshots: u64,
    /// `metadata.max.idle.interval.ms` (500; 0 disables the no-op records).
    pub metadata_max_idle_interval_ms: u64,
    /// TLS settings of each SSL (and SASL_SSL) listener, by upper-cased listener name.
    pub ssl: BTreeMap<String, SslSettings>,
    /// SASL settings of the SASL_PLAINTEXT and SASL_SSL listeners.
    pub sasl: SaslSettings,
    /// `ssl.principal.mapping.rules`: a client certificate's subject to a principal name.
    pub ssl_principal_mapper: PrincipalMapper,
    /// `authorizer.class.name=...StandardAuthorizer`: ACLs are enforced with these settings.
    pub authorizer: Option<AuthorizerConfig>,
    /// Tiered storage: `remote.log.*` keys and the `rsm.config.*` store settings.
    pub remote_log: RemoteLogSettings,
    /// SCRAM credentials to create with a new metadata log (`strait-broker --add-scram`, like
    /// `kafka-storage format --add-scram`); not a config key.
    pub bootstrap_scram: Vec<strait_auth::add_scram::AddScram>,
    /// Resolved by [`BrokerConfig::inter_broker_listener`].
    inter_broker_listener: Listener,
    /// Every known key set explicitly (file or override), mapped to the value that won, trimmed.
    pub explicit: BTreeMap<String, String>,
}

/// The validated values of every known key (explicit or default), for typed extraction.
struct Resolved {
    values: BTreeMap<&'static str, Value>,
}

impl Resolved {
    fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    fn int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_i64)
    }

    /// An integer key with a default; a missing value can only come from a table bug, so it is
    /// reported rather than papered over.
    fn required_int(&self, key: &str) -> Result<i64, ConfigError> {
        self.int(key)
            .ok_or_else(|| ConfigError::invalid(key, "missing value"))
    }

    fn boolean(&self, key: &str) -> Result<bool, ConfigError> {
        self.get(key)
            .and_then(Value::as_bool)
            .ok_or_else(|| ConfigError::invalid(key, "missing value"))
    }

    fn string(&self, key: &str) -> Option<String> {
        self.get(key).map(Value::canonical)
    }

    fn non_empty_string(&self, key: &str) -> Option<String> {
        self.string(key).filter(|s| !s.is_empty())
    }
}

fn convert<T: TryFrom<i64>>(key: &str, n: i64) -> Result<T, ConfigError> {
    T::try_from(n).map_err(|_| ConfigError::invalid(key, format!("value {n} is out of range")))
}

impl BrokerConfig {
    /// Builds the config from `pairs` in order of precedence (later wins). Returns the config
    /// and one warning per unknown key. Keys of Kafka internals Strait has no use for (thread
    /// counts, socket buffers, `zookeeper.*`, ...) are accepted silently.
    pub fn from_pairs(
        pairs: &[(String, String)],
    ) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
        let mut explicit = BTreeMap::new();
        let mut warnings = Vec::new();
        let mut warned = BTreeSet::new();
        let mut listener_ssl: BTreeMap<String, BTreeMap<&'static str, String>> = BTreeMap::new();
        let mut listener_sasl: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut rsm_config = BTreeMap::new();
        for (key, value) in pairs {
            let key = key.trim();
            if broker_def(key).is_some() {
                explicit.insert(key.to_string(), value.trim().to_string());
            } else if let Some((listener, ssl_key)) = listener_ssl_key(key) {
                listener_ssl
                    .entry(listener)
                    .or_default()
                    .insert(ssl_key, value.trim().to_string());
            } else if let Some((listener, sasl_key)) = listener_sasl_key(key) {
                listener_sasl
                    .entry(listener)
                    .or_default()
                    .insert(sasl_key, value.trim().to_string());
            } else if key.len() > RSM_CONFIG_PREFIX.len() && key.starts_with(RSM_CONFIG_PREFIX) {
                // Handed to the remote store whole (Kafka passes the prefix to its RSM plugin).
                rsm_config.insert(key.to_string(), value.trim().to_string());
            } else if !is_ignored(key) && warned.insert(key) {
                warnings.push(format!("unknown config key '{key}' ignored"));
            }
        }

        let mut values = BTreeMap::new();
        for def in BROKER_DEFS {
            let raw = match explicit.get(def.name) {
                Some(raw) => raw.as_str(),
                None => match def.default {
                    Some(default) => default,
                    None => continue,
                },
            };
            let value = def.check(raw).map_err(|r| {
                ConfigError::invalid(
                    def.name,
                    format!("invalid value '{}': {}", r.value, r.detail),
                )
            })?;
            values.insert(def.name, value);
        }
        let r = Resolved { values };
        let is_set = |key: &str| explicit.contains_key(key);

        // broker.id has no default, so it is present only when set explicitly.
        let node_id = match r.int("broker.id") {
            Some(broker) if is_set("node.id") => {
                let node = r.required_int("node.id")?;
                if node != broker {
                    return Err(ConfigError::invalid(
                        "broker.id",
                        format!("must equal node.id ({node}) when both are set, got {broker}"),
                    ));
                }
                node
            }
            Some(broker) => broker,
            None => r.required_int("node.id")?,
        };
        let node_id = convert("node.id", node_id)?;

        let mut protocol_map = parse_security_protocol_map(
            "listener.security.protocol.map",
            &r.string("listener.security.protocol.map")
                .unwrap_or_default(),
        )?;
        let controller_listener_names: Vec<String> =
            split_list(&r.string("controller.listener.names").unwrap_or_default())
                .into_iter()
                .filter(|n| !n.is_empty())
                .map(|n| n.to_ascii_uppercase())
                .collect();
        // Kafka maps controller listeners missing from the map to PLAINTEXT, so the usual
        // `listeners=PLAINTEXT://...,CONTROLLER://...` works without a map entry.
        for name in &controller_listener_names {
            protocol_map
                .entry(name.clone())
                .or_insert_with(|| "PLAINTEXT".to_string());
        }
        let listeners = parse_listeners(
            "listeners",
            &r.string("listeners").unwrap_or_default(),
            &protocol_map,
        )?;
        if listeners.is_empty() {
            return Err(ConfigError::invalid(
                "listeners",
                "must name at least one listener",
            ));
        }
        check_distinct_ports("listeners", &listeners)?;
        let advertised_listeners =
            advertised_listeners(&r, &listeners, &protocol_map, &controller_listener_names)?;
        let ssl = ssl_listeners(
            &r,
            &listeners,
            &protocol_map,
            &controller_listener_names,
            &listener_ssl,
            &mut warnings,
        )?;

        let log_dirs = log_dirs(&r, is_set("log.dirs"))?;

        let roll_ms = match r.int("log.roll.ms") {
            Some(ms) => ms,
            None => r.required_int("log.roll.hours")?.saturating_mul(3_600_000),
        };
        let (retention_key, retention_ms) = retention_ms(&r)?;
        if retention_ms == 0 {
            return Err(ConfigError::invalid(
                retention_key,
                "log.retention.ms must be unlimited (-1) or, equal or greater than 1",
            ));
        }

        let process_roles = match r.get("process.roles") {
            Some(Value::List(roles)) => roles.clone(),
            _ => Vec::new(),
        };
        let distinct: BTreeSet<&String> = process_roles.iter().collect();
        if distinct.len() != process_roles.len() {
            return Err(ConfigError::invalid(
                "process.roles",
                "Duplicate role names found in process.roles",
            ));
        }

        let controller_quorum_bootstrap_servers = parse_bootstrap_servers(
            &r.string("controller.quorum.bootstrap.servers")
                .unwrap_or_default(),
        )?;
        let kraft = kraft_settings(KraftInputs {
            node_id,
            process_roles: &process_roles,
            voters: parse_voters(&r.string("controller.quorum.voters").unwrap_or_default())?,
            bootstrap_servers: controller_quorum_bootstrap_servers.clone(),
            controller_listener_names: &controller_listener_names,
            listeners: &listeners,
            advertised_listeners: &advertised_listeners,
        })?;
        let inter_broker_listener = inter_broker_listener(
            r.non_empty_string("inter.broker.listener.name").as_deref(),
            &advertised_listeners,
            &listeners,
            &controller_listener_names,
            kraft.as_ref().map(|k| k.roles.broker),
        )?;
        // Brokers connecting to each other over SSL verify each other: as clients they need the
        // CAs the peer's certificate chains to (Kafka uses the inter-broker listener's
        // truststore). A single node has no inter-broker traffic.
        if kraft.as_ref().is_some_and(|k| k.roles.broker)
            && let Some(tls) = ssl.get(&inter_broker_listener.name)
            && tls.trust.is_none()
        {
            return Err(ConfigError::invalid(
                "ssl.truststore.location",
                format!(
                    "inter-broker listener {} uses SSL: brokers verify each other's certificates, \
                     so set ssl.truststore.type=PEM and ssl.truststore.location (or \
                     listener.name.{}.ssl.truststore.location) to the CA that signed them",
                    inter_broker_listener.name,
                    inter_broker_listener.name.to_ascii_lowercase()
                ),
            ));
        }
        let multi_node = kraft.as_ref().is_some_and(|k| k.roles.broker);
        let sasl = sasl_settings(
            &listeners,
            &listener_sasl,
            Globals {
                mechanisms: split_mechanisms(
                    &r.string("sasl.enabled.mechanisms").unwrap_or_default(),
                ),
                inter_broker_mechanism: r
                    .string("sasl.mechanism.inter.broker.protocol")
                    .unwrap_or_default(),
                max_reauth_ms: convert(
                    "connections.max.reauth.ms",
                    r.required_int("connections.max.reauth.ms")?,
                )?,
                failed_authentication_delay_ms: convert(
                    "connection.failed.authentication.delay.ms",
                    r.required_int("connection.failed.authentication.delay.ms")?,
                )?,
                oauth: oauth_globals(&r)?,
            },
            // Only brokers of a cluster dial each other.
            multi_node.then_some(&inter_broker_listener),
            &mut warnings,
        )?;
        let authorizer = authorizer(&r)?;
        let ssl_principal_mapper = PrincipalMapper::parse(
            &r.string("ssl.principal.mapping.rules")
                .unwrap_or_else(|| "DEFAULT".into()),
        )?;
        let replica_lag_time_max_ms = convert(
            "replica.lag.time.max.ms",
            r.required_int("replica.lag.time.max.ms")?,
        )?;
        let replica_fetch_wait_max_ms: u64 = convert(
            "replica.fetch.wait.max.ms",
            r.required_int("replica.fetch.wait.max.ms")?,
        )?;
        if replica_fetch_wait_max_ms > replica_lag_time_max_ms {
            return Err(ConfigError::invalid(
                "replica.fetch.wait.max.ms",
                "should always be less than or equal to replica.lag.time.max.ms to prevent \
                 frequent changes in ISR",
            ));
        }

        let metrics_listener = match r.non_empty_string("metrics.listener") {
            None => None,
            Some(address) => {
                let (host, _) = split_host_port(&address).map_err(|why| {
                    ConfigError::invalid("metrics.listener", format!("'{address}': {why}"))
                })?;
                if host.is_empty() {
                    return Err(ConfigError::invalid(
                        "metrics.listener",
                        format!("'{address}': missing host"),
                    ));
                }
                Some(address)
            }
        };

        let flush_messages = r.required_int("log.flush.interval.messages")?;
        let remote_log =
            remote_log_settings(&r, is_set("remote.log.storage.system.enable"), rsm_config)?;
        let config = BrokerConfig {
            node_id,
            listeners,
            advertised_listeners,
            listener_security_protocol_map: protocol_map,
            log_dirs,
            broker_rack: r.non_empty_string("broker.rack"),
            rack_aware_replica_selector: r.non_empty_string("replica.selector.class").is_some(),
            num_partitions: convert("num.partitions", r.required_int("num.partitions")?)?,
            default_replication_factor: convert(
                "default.replication.factor",
                r.required_int("default.replication.factor")?,
            )?,
            min_insync_replicas: convert(
                "min.insync.replicas",
                r.required_int("min.insync.replicas")?,
            )?,
            auto_create_topics_enable: r.boolean("auto.create.topics.enable")?,
            delete_topic_enable: r.boolean("delete.topic.enable")?,
            log_segment_bytes: convert("log.segment.bytes", r.required_int("log.segment.bytes")?)?,
            log_roll_ms: Some(convert("log.roll.ms", roll_ms)?),
            log_retention_ms: (retention_ms >= 0).then_some(retention_ms),
            log_retention_bytes: Some(r.required_int("log.retention.bytes")?).filter(|b| *b >= 0),
            log_retention_check_interval_ms: convert(
                "log.retention.check.interval.ms",
                r.required_int("log.retention.check.interval.ms")?,
            )?,
            log_index_interval_bytes: convert(
                "log.index.interval.bytes",
                r.required_int("log.index.interval.bytes")?,
            )?,
            log_index_size_max_bytes: convert(
                "log.index.size.max.bytes",
                r.required_int("log.index.size.max.bytes")?,
            )?,
            message_max_bytes: convert("message.max.bytes", r.required_int("message.max.bytes")?)?,
            socket_request_max_bytes: convert(
                "socket.request.max.bytes",
                r.required_int("socket.request.max.bytes")?,
            )?,
            log_flush_interval_messages: match flush_messages {
                i64::MAX => None,
                n => Some(convert("log.flush.interval.messages", n)?),
            },
            log_flush_interval_ms: r
                .int("log.flush.interval.ms")
                .map(|n| convert("log.flush.interval.ms", n))
                .transpose()?,
            log_flush_scheduler_interval_ms: convert(
                "log.flush.scheduler.interval.ms",
                r.required_int("log.flush.scheduler.interval.ms")?,
            )?,
            log_message_timestamp_type: r.string("log.message.timestamp.type").unwrap_or_default(),
            log_cleanup_policy: r.string("log.cleanup.policy").unwrap_or_default(),
            compression_type: r.string("compression.type").unwrap_or_default(),
            metrics_listener,
            cluster_id: r.non_empty_string("cluster.id"),
            offsets_topic_num_partitions: convert(
                "offsets.topic.num.partitions",
                r.required_int("offsets.topic.num.partitions")?,
            )?,
            // A single node (no process.roles) is the whole cluster: Kafka's default of 3 would
            // leave it without consumer groups for good, so its default is 1 (what Kafka's own
            // single-node configs set).
            offsets_topic_replication_factor: if process_roles.is_empty()
                && !is_set("offsets.topic.replication.factor")
            {
                1
            } else {
                convert(
                    "offsets.topic.replication.factor",
                    r.required_int("offsets.topic.replication.factor")?,
                )?
            },
            offsets_topic_segment_bytes: convert(
                "offsets.topic.segment.bytes",
                r.required_int("offsets.topic.segment.bytes")?,
            )?,
            offsets_retention_ms: r.required_int("offsets.retention.minutes")? * 60_000,
            offsets_retention_check_interval_ms: convert(
                "offsets.retention.check.interval.ms",
                r.required_int("offsets.retention.check.interval.ms")?,
            )?,
            offset_metadata_max_bytes: convert(
                "offset.metadata.max.bytes",
                r.required_int("offset.metadata.max.bytes")?,
            )?,
            group_initial_rebalance_delay_ms: convert(
                "group.initial.rebalance.delay.ms",
                r.required_int("group.initial.rebalance.delay.ms")?,
            )?,
            group_min_session_timeout_ms: convert(
                "group.min.session.timeout.ms",
                r.required_int("group.min.session.timeout.ms")?,
            )?,
            group_max_session_timeout_ms: convert(
                "group.max.session.timeout.ms",
                r.required_int("group.max.session.timeout.ms")?,
            )?,
            group_max_size: convert("group.max.size", r.required_int("group.max.size")?)?,
            group_consumer_heartbeat_interval_ms: convert(
                "group.consumer.heartbeat.interval.ms",
                r.required_int("group.consumer.heartbeat.interval.ms")?,
            )?,
            group_consumer_session_timeout_ms: convert(
                "group.consumer.session.timeout.ms",
                r.required_int("group.consumer.session.timeout.ms")?,
            )?,
            producer_id_expiration_ms: r.required_int("producer.id.expiration.ms")?,
            transactions: TransactionSettings {
                state_log_num_partitions: convert(
                    "transaction.state.log.num.partitions",
                    r.required_int("transaction.state.log.num.partitions")?,
                )?,
                // As for the offsets topic, a single node's defaults are 1 (Kafka's 3 and 2
                // would leave it without transactions for good).
                state_log_replication_factor: if process_roles.is_empty()
                    && !is_set("transaction.state.log.replication.factor")
                {
                    1
                } else {
                    convert(
                        "transaction.state.log.replication.factor",
                        r.required_int("transaction.state.log.replication.factor")?,
                    )?
                },
                state_log_min_isr: if process_roles.is_empty()
                    && !is_set("transaction.state.log.min.isr")
                {
                    1
                } else {
                    convert(
                        "transaction.state.log.min.isr",
                        r.required_int("transaction.state.log.min.isr")?,
                    )?
                },
                state_log_segment_bytes: convert(
                    "transaction.state.log.segment.bytes",
                    r.required_int("transaction.state.log.segment.bytes")?,
                )?,
                max_timeout_ms: convert(
                    "transaction.max.timeout.ms",
                    r.required_int("transaction.max.timeout.ms")?,
                )?,
                id_expiration_ms: r.required_int("transactional.id.expiration.ms")?,
                abort_timed_out_interval_ms: convert(
                    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                    r.required_int("transaction.abort.timed.out.transaction.cleanup.interval.ms")?,
                )?,
                remove_expired_interval_ms: convert(
                    "transaction.remove.expired.transaction.cleanup.interval.ms",
                    r.required_int("transaction.remove.expired.transaction.cleanup.interval.ms")?,
                )?,
                partition_verification: r.boolean("transaction.partition.verification.enable")?,
            },
            producer_id_expiration_check_interval_ms: convert(
                "producer.id.expiration.check.interval.ms",
                r.required_int("producer.id.expiration.check.interval.ms")?,
            )?,
            quota_window_num: convert("quota.window.num", r.required_int("quota.window.num")?)?,
            quota_window_size_seconds: convert(
                "quota.window.size.seconds",
                r.required_int("quota.window.size.seconds")?,
            )?,
            log_cleaner_backoff_ms: convert(
                "log.cleaner.backoff.ms",
                r.required_int("log.cleaner.backoff.ms")?,
            )?,
            process_roles,
            controller_quorum_voters: r.string("controller.quorum.voters").unwrap_or_default(),
            controller_listener_names,
            controller_quorum_bootstrap_servers,
            kraft,
            unclean_leader_election_enable: r.boolean("unclean.leader.election.enable")?,
            replica_lag_time_max_ms,
            replica_fetch_max_bytes: convert(
                "replica.fetch.max.bytes",
                r.required_int("replica.fetch.max.bytes")?,
            )?,
            replica_fetch_min_bytes: convert(
                "replica.fetch.min.bytes",
                r.required_int("replica.fetch.min.bytes")?,
            )?,
            replica_fetch_wait_max_ms,
            replica_fetch_backoff_ms: convert(
                "replica.fetch.backoff.ms",
                r.required_int("replica.fetch.backoff.ms")?,
            )?,
            replica_fetch_response_max_bytes: convert(
                "replica.fetch.response.max.bytes",
                r.required_int("replica.fetch.response.max.bytes")?,
            )?,
            num_replica_fetchers: convert(
                "num.replica.fetchers",
                r.required_int("num.replica.fetchers")?,
            )?,
            max_incremental_fetch_session_cache_slots: convert(
                "max.incremental.fetch.session.cache.slots",
                r.required_int("max.incremental.fetch.session.cache.slots")?,
            )?,
            broker_heartbeat_interval_ms: convert(
                "broker.heartbeat.interval.ms",
                r.required_int("broker.heartbeat.interval.ms")?,
            )?,
            broker_session_timeout_ms: convert(
                "broker.session.timeout.ms",
                r.required_int("broker.session.timeout.ms")?,
            )?,
            auto_leader_rebalance_enable: r.boolean("auto.leader.rebalance.enable")?,
            leader_imbalance_check_interval_seconds: convert(
                "leader.imbalance.check.interval.seconds",
                r.required_int("leader.imbalance.check.interval.seconds")?,
            )?,
            controlled_shutdown_enable: r.boolean("controlled.shutdown.enable")?,
            metadata_log_dir: r.non_empty_string("metadata.log.dir").map(PathBuf::from),
            controller_quorum_election_timeout_ms: convert(
                "controller.quorum.election.timeout.ms",
                r.required_int("controller.quorum.election.timeout.ms")?,
            )?,
            controller_quorum_fetch_timeout_ms: convert(
                "controller.quorum.fetch.timeout.ms",
                r.required_int("controller.quorum.fetch.timeout.ms")?,
            )?,
            metadata_log_max_record_bytes_between_snapshots: convert(
                "metadata.log.max.record.bytes.between.snapshots",
                r.required_int("metadata.log.max.record.bytes.between.snapshots")?,
            )?,
            metadata_max_idle_interval_ms: convert(
                "metadata.max.idle.interval.ms",
                r.required_int("metadata.max.idle.interval.ms")?,
            )?,
            inter_broker_listener,
            ssl,
            sasl,
            ssl_principal_mapper,
            authorizer,
            remote_log,
            bootstrap_scram: Vec::new(),
            explicit,
        };
        Ok((config, warnings))
    }

    /// Reads `file` (if any), then applies `overrides` (`key=value` strings from `--override`,
    /// later ones winning), and builds the config.
    pub fn load(
        file: Option<&Path>,
        overrides: &[String],
    ) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
        let mut pairs = Vec::new();
        if let Some(path) = file {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            pairs.extend(parse_properties_from(&shown, &text)?);
        }
        for (i, item) in overrides.iter().enumerate() {
            let (key, value) = item
                .split_once('=')
                .filter(|(k, _)| !k.trim().is_empty())
                .ok_or_else(|| ConfigError::Syntax {
                    path: "--override".to_string(),
                    line: i + 1,
                    reason: format!("expected key=value, got '{item}'"),
                })?;
            pairs.push((key.trim().to_string(), value.trim().to_string()));
        }
        BrokerConfig::from_pairs(&pairs)
    }

    /// The listener other brokers reach this one on: `inter.broker.listener.name` when set, else
    /// the advertised PLAINTEXT listener, else the first advertised non-controller listener.
    pub fn inter_broker_listener(&self) -> &Listener {
        &self.inter_broker_listener
    }

    /// The string value of a known broker key: the explicit value if set, else its default
    /// (`None` for keys whose default is unset, and for unknown keys).
    pub fn raw_value(&self, key: &str) -> Option<String> {
        let def = broker_def(key)?;
        match self.explicit.get(def.name) {
            Some(value) => Some(value.clone()),
            None => def.default.map(str::to_string),
        }
    }
}

/// The `remote.log.*` keys; a rate of Long.MAX_VALUE means no cap.
fn remote_log_settings(
    r: &Resolved,
    system_enable_set: bool,
    rsm_config: BTreeMap<String, String>,
) -> Result<RemoteLogSettings, ConfigError> {
    let rate = |key: &str| -> Result<Option<u64>, ConfigError> {
        match r.required_int(key)? {
            i64::MAX => Ok(None),
            n => convert(key, n).map(Some),
        }
    };
    Ok(RemoteLogSettings {
        system_enable: if system_enable_set {
            Some(r.boolean("remote.log.storage.system.enable")?)
        } else {
            None
        },
        task_interval_ms: convert(
            "remote.log.manager.task.interval.ms",
            r.required_int("remote.log.manager.task.interval.ms")?,
        )?,
        thread_pool_size: convert(
            "remote.log.manager.thread.pool.size",
            r.required_int("remote.log.manager.thread.pool.size")?,
        )?,
        reader_threads: convert(
            "remote.log.reader.threads",
            r.required_int("remote.log.reader.threads")?,
        )?,
        copy_max_bytes_per_second: rate("remote.log.manager.copy.max.bytes.per.second")?,
        fetch_max_bytes_per_second: rate("remote.log.manager.fetch.max.bytes.per.second")?,
        storage_manager_class_name: r.non_empty_string("remote.log.storage.manager.class.name"),
        metadata_manager_class_name: r.non_empty_string("remote.log.metadata.manager.class.name"),
        rsm_config,
    })
}

/// Kafka's authorizer for ACLs kept in the KRaft metadata log.
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// What the authorizer needs from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// `super.users`, `User:<name>` principals.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_everyone_if_no_acl_found: bool,
}

/// The `sasl.oauthbearer.*` keys; checked further only when a listener enables OAUTHBEARER.
fn oauth_globals(r: &Resolved) -> Result<crate::sasl::OAuthGlobals, ConfigError> {
    let defaults = strait_auth::oauth::Validation::default();
    Ok(crate::sasl::OAuthGlobals {
        jwks_url: r.non_empty_string("sasl.oauthbearer.jwks.endpoint.url"),
        refresh_ms: convert(
            "sasl.oauthbearer.jwks.endpoint.refresh.ms",
            r.required_int("sasl.oauthbearer.jwks.endpoint.refresh.ms")?,
        )?,
        validation: strait_auth::oauth::Validation {
            expected_audience: match r.get("sasl.oauthbearer.expected.audience") {
                Some(Value::List(audiences)) => audiences.clone(),
                _ => Vec::new(),
            },
            expected_issuer: r.non_empty_string("sasl.oauthbearer.expected.issuer"),
            sub_claim: r
                .string("sasl.oauthbearer.sub.claim.name")
                .unwrap_or(defaults.sub_claim),
            scope_claim: r
                .string("sasl.oauthbearer.scope.claim.name")
                .unwrap_or(defaults.scope_claim),
            clock_skew_seconds: convert(
                "sasl.oauthbearer.clock.skew.seconds",
                r.required_int("sasl.oauthbearer.clock.skew.seconds")?,
            )?,
        },
    })
}

fn authorizer(r: &Resolved) -> Result<Option<AuthorizerConfig>, ConfigError> {
    let class = r.string("authorizer.class.name").unwrap_or_default();
    match class.trim() {
        "" => Ok(None),
        STANDARD_AUTHORIZER => {
            let super_users: Vec<String> = r
                .string("super.users")
                .unwrap_or_default()
                .split(';')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            if let Some(bad) = super_users.iter().find(|p| !p.contains(':')) {
                return Err(ConfigError::invalid(
                    "super.users",
                    format!("{bad:?} is not a principal like User:admin"),
                ));
            }
            Ok(Some(AuthorizerConfig {
                super_users,
                allow_everyone_if_no_acl_found: r.boolean("allow.everyone.if.no.acl.found")?,
            }))
        }
        other => Err(ConfigError::invalid(
            "authorizer.class.name",
            format!(
                "{other} is not served; Strait's authorizer is Kafka's \
                 {STANDARD_AUTHORIZER} (ACLs in the metadata log)"
            ),
        )),
    }
}

/// The TLS settings of every SSL and SASL_SSL listener, and of an SSL controller listener this
/// node only dials (a broker-only node).
fn ssl_listeners(
    r: &Resolved,
    listeners: &[Listener],
    protocol_map: &BTreeMap<String, String>,
    controller_names: &[String],
    listener_ssl: &BTreeMap<String, BTreeMap<&'static str, String>>,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<String, SslSettings>, ConfigError> {
    for (name, keys) in listener_ssl {
        if !listeners.iter().any(|l| &l.name == name) {
            for key in keys.keys() {
                warnings.push(format!(
                    "config key 'listener.name.{}.{key}' names no listener; ignored",
                    name.to_ascii_lowercase()
                ));
            }
        }
        for (key, value) in keys {
            let def = broker_def(key).expect("listener_ssl_key returns known keys");
            def.check(value).map_err(|rej| {
                ConfigError::invalid(
                    &format!("listener.name.{}.{key}", name.to_ascii_lowercase()),
                    format!("invalid value '{}': {}", rej.value, rej.detail),
                )
            })?;
        }
    }
    let global = |key: &str| r.string(key);
    let mut ssl = BTreeMap::new();
    let resolve = |name: &String| {
        ssl_settings(&Lookup {
            listener: name,
            overrides: listener_ssl.get(name),
            global: &global,
        })
    };
    for l in listeners {
        // The metadata quorum speaks gRPC, secured by mutual TLS; SASL is Kafka-protocol only.
        if controller_names.contains(&l.name) && l.security_protocol.starts_with("SASL_") {
            return Err(ConfigError::invalid(
                "listener.security.protocol.map",
                format!(
                    "controller listener {} uses {}: the metadata quorum authenticates with \
                     mutual TLS (map it to SSL with ssl.client.auth=required), not SASL",
                    l.name, l.security_protocol
                ),
            ));
        }
        match l.security_protocol.as_str() {
            "PLAINTEXT" | "SASL_PLAINTEXT" => {}
            "SSL" | "SASL_SSL" => {
                ssl.insert(l.name.clone(), resolve(&l.name)?);
            }
            other => {
                return Err(ConfigError::invalid(
                    "listeners",
                    format!("listener {} uses unknown security protocol {other}", l.name),
                ));
            }
        }
    }
    for name in controller_names {
        if protocol_map.get(name).map(String::as_str) != Some("SSL") {
            continue;
        }
        if !ssl.contains_key(name) {
            ssl.insert(name.clone(), resolve(name)?);
        }
        // Controllers verify each other and are verified by brokers; the quorum's gRPC client
        // always checks host names.
        let settings = &ssl[name];
        let prefixed = format!("listener.name.{}.", name.to_ascii_lowercase());
        if settings.trust.is_none() {
            return Err(ConfigError::invalid(
                "ssl.truststore.location",
                format!(
                    "controller listener {name} uses SSL: nodes verify the controllers' \
                     certificates, so set {prefixed}ssl.truststore.type=PEM and \
                     {prefixed}ssl.truststore.location"
                ),
            ));
        }
        if !settings.verify_hostname {
            return Err(ConfigError::invalid(
                &format!("{prefixed}ssl.endpoint.identification.algorithm"),
                "the controller quorum always checks host names; leave it at https",
            ));
        }
    }
    Ok(ssl)
}

/// `advertised.listeners`, or `listeners` without the controller listeners (Kafka's rule); the
/// result may not use the non-routable wildcard addresses, and its names must be listeners.
fn advertised_listeners(
    r: &Resolved,
    listeners: &[Listener],
    map: &BTreeMap<String, String>,
    controller_names: &[String],
) -> Result<Vec<Listener>, ConfigError> {
    const KEY: &str = "advertised.listeners";
    let (advertised, explicit) = match r.non_empty_string(KEY) {
        Some(value) => (parse_listeners(KEY, &value, map)?, true),
        None => (
            listeners
                .iter()
                .filter(|l| !controller_names.contains(&l.name))
                .cloned()
                .collect::<Vec<_>>(),
            false,
        ),
    };
    if let Some(l) = advertised
        .iter()
        .find(|l| l.host == "0.0.0.0" || l.host == "::")
    {
        let reason = if explicit {
            format!(
                "advertised.listeners cannot use the nonroutable meta-address {}. Use a \
                 routable IP address.",
                l.host
            )
        } else {
            format!(
                "not set, so listeners are advertised, but listener {l} uses the nonroutable \
                 meta-address {}; set advertised.listeners to a routable address",
                l.host
            )
        };
        return Err(ConfigError::invalid(KEY, reason));
    }
    let names: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
    if let Some(l) = advertised
        .iter()
        .find(|l| !names.contains(&l.name.as_str()))
    {
        return Err(ConfigError::invalid(
            KEY,
            format!(
                "advertised.listeners listener names must be equal to or a subset of the ones \
                 defined in listeners. Found {}. The valid options based on the current \
                 configuration are {}",
                l.name,
                names.join(",")
            ),
        ));
    }
    Ok(advertised)
}

/// `log.dirs` when set, else `log.dir`; at least one directory, no duplicates.
fn log_dirs(r: &Resolved, dirs_set: bool) -> Result<Vec<PathBuf>, ConfigError> {
    let key = if dirs_set { "log.dirs" } else { "log.dir" };
    let dirs: Vec<String> = split_list(&r.string(key).unwrap_or_default())
        .into_iter()
        .filter(|d| !d.is_empty())
        .collect();
    if dirs.is_empty() {
        return Err(ConfigError::invalid(
            key,
            "must name at least one directory",
        ));
    }
    let distinct: BTreeSet<&String> = dirs.iter().collect();
    if distinct.len() != dirs.len() {
        return Err(ConfigError::invalid(
            key,
            "each log directory must be listed only once",
        ));
    }
    Ok(dirs.into_iter().map(PathBuf::from).collect())
}

/// Kafka's `logRetentionTimeMillis`: ms, else minutes, else hours; negative means -1.
/// Returns the key that decided, for error messages.
fn retention_ms(r: &Resolved) -> Result<(&'static str, i64), ConfigError> {
    let (key, ms) = if let Some(ms) = r.int("log.retention.ms") {
        ("log.retention.ms", ms)
    } else if let Some(minutes) = r.int("log.retention.minutes") {
        ("log.retention.minutes", minutes.saturating_mul(60_000))
    } else {
        let hours = r.required_int("log.retention.hours")?;
        ("log.retention.hours", hours.saturating_mul(3_600_000))
    };
    Ok((key, if ms < 0 { -1 } else { ms }))
}

#[cfg(test)]
mod tests;
