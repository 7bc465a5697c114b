//! The broker's shared state: one of each owner the request handlers call — the config, the
//! hosted partitions (`replica_manager`), the group coordinator, the metrics, and this node's
//! part in the metadata quorum (whose image says which topics exist). Topics change only through
//! the controller; the cluster applier installs what the image gives this broker and reports the
//! partitions' roles here, for the group coordinator.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use kafka_protocol::ResponseError;
use strait_config::{BrokerConfig, effective_topic_config};
use strait_storage::LogManager;

use crate::errors::ApiError;
use crate::fetch_session::FetchSessionCache;
use crate::group::coordinator::Limits;
use crate::group::partitions::{self as coordination, Coordinated};
use crate::group::store::OffsetsTopicLog;
use crate::group::{Coordinator, OFFSETS_TOPIC};
use crate::metrics::Metrics;
use crate::node::ClusterNode;
use crate::node::applier::RoleListener;
use crate::replica_manager::{Partition, ReplicaManager, log_config};

/// Kafka's limit on topic names (so that `<topic>-<partition>` directory names stay legal).
const MAX_TOPIC_NAME_LEN: usize = 249;
/// Upper bound on partitions per topic (the controller enforces it; checked here too so that
/// requests beyond it are answered without a controller round trip).
pub use strait_cluster::controller::MAX_PARTITIONS_PER_TOPIC;

pub struct Broker {
    pub config: Arc<BrokerConfig>,
    /// The hosted partitions and the one leader append path.
    pub replicas: Arc<ReplicaManager>,
    /// The consumer group coordinator: the groups of the offsets partitions this broker leads
    /// (`coordinated`).
    pub groups: Coordinator,
    pub coordinated: Coordinated,
    /// The transaction coordinator: the transactions of the `__transaction_state` partitions
    /// this broker leads.
    pub txns: Arc<crate::txn::TxnCoordinator>,
    /// Connections to other brokers for transaction markers and KIP-890 verification.
    pub txn_channels: crate::txn::markers::Channels,
    pub metrics: Metrics,
    /// Incremental fetch sessions (KIP-227).
    pub fetch_sessions: FetchSessionCache,
    producer_ids: Mutex<std::ops::Range<i64>>,
    pub cluster_id: String,
    /// Whether the log manager trusted a clean shutdown (no recovery scan).
    pub clean_start: bool,
    /// The rates of client quotas (quota values are in the metadata image).
    pub quotas: crate::quota::Quotas,
    /// Set when `authorizer.class.name` names the StandardAuthorizer: ACLs are enforced.
    pub authorizer: Option<strait_cluster::acl::AuthorizerSettings>,
    /// OAUTHBEARER's key set, when a SASL listener enables the mechanism.
    pub oauth_keys: Option<Arc<crate::oauth_keys::OAuthKeys>>,
    /// Tiered storage's remote log manager, when tiering is available on this broker.
    pub remote: Option<Arc<crate::remote_log::RemoteLogManager>>,
    /// This node's part in the metadata quorum (a voter, or a follower of it): the cluster
    /// membership, the metadata image and the controller client. A single node is a quorum of
    /// one voter, so there is no other metadata path.
    node: Arc<ClusterNode>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("log dirs: {0}")]
    Log(#[from] strait_storage::LogError),
    #[error("tiered storage: {0}")]
    RemoteStorage(String),
}

impl Broker {
    /// Opens the log dirs (already formatted with `cluster_id`) and recovers the logs. Topics are
    /// installed by the cluster applier from `node`'s metadata image; logs already open take
    /// their topic's configuration from the image as it is now (the applier keeps it current).
    pub fn open(
        config: BrokerConfig,
        cluster_id: String,
        node: Arc<ClusterNode>,
        oauth_keys: Option<Arc<crate::oauth_keys::OAuthKeys>>,
    ) -> Result<Broker, StartError> {
        let dirs: Vec<PathBuf> = config.log_dirs.clone();
        let image = node.image();
        let logs = LogManager::open(&dirs, &|topic: &str| {
            let overrides = image
                .topic(topic)
                .map(|t| t.configs.clone())
                .unwrap_or_default();
            log_config(&effective_topic_config(&overrides, &config), &config)
        })?;
        let clean_start = !logs.recovered_on_open();
        let groups = Coordinator::new(Limits {
            initial_rebalance_delay: std::time::Duration::from_millis(
                config.group_initial_rebalance_delay_ms,
            ),
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            max_size: usize::try_from(config.group_max_size).unwrap_or(usize::MAX),
            offset_metadata_max_bytes: config.offset_metadata_max_bytes,
            offsets_retention_ms: config.offsets_retention_ms,
            consumer: crate::group::consumer::Settings {
                session_timeout: std::time::Duration::from_millis(
                    config.group_consumer_session_timeout_ms,
                ),
                heartbeat_interval: std::time::Duration::from_millis(
                    config.group_consumer_heartbeat_interval_ms,
                ),
            },
        });
        let config = Arc::new(config);
        let replicas = Arc::new(ReplicaManager::new(
            config.clone(),
            logs,
            node.watch_image(),
        ));
        let fetch_sessions =
            FetchSessionCache::new(config.max_incremental_fetch_session_cache_slots);
        let authorizer =
            config
                .authorizer
                .as_ref()
                .map(|a| strait_cluster::acl::AuthorizerSettings {
                    super_users: a.super_users.clone(),
                    allow_if_no_acl: a.allow_everyone_if_no_acl_found,
                });
        let remote = crate::remote_log::RemoteLogManager::from_config(&config)
            .map_err(|e| StartError::RemoteStorage(format!("{e:#}")))?
            .map(Arc::new);
        let broker = Broker {
            remote,
            quotas: crate::quota::Quotas::new(
                config.quota_window_num,
                std::time::Duration::from_secs(config.quota_window_size_seconds),
            ),
            authorizer,
            oauth_keys,
            config,
            replicas,
            groups,
            coordinated: Default::default(),
            txns: Default::default(),
            txn_channels: Default::default(),
            metrics: Metrics::new(),
            fetch_sessions,
            producer_ids: Mutex::new(0..0),
            cluster_id,
            clean_start,
            node,
        };
        if !broker.clean_start {
            broker.metrics.recovery_runs.inc();
        }
        Ok(broker)
    }

    /// Whether this broker is fully caught up: in the ISR of every partition it hosts, with no
    /// offline partition in the cluster. `Err` says why not.
    pub fn readiness(&self) -> Result<(), String> {
        self.node.readiness(&self.replicas)
    }

    /// The metrics page, its state gauges refreshed from this broker.
    pub fn render_metrics(&self) -> String {
        self.metrics.render(
            &self.cluster_id,
            &self.config,
            &self.replicas,
            &self.groups,
            &self.txns,
        )
    }

    /// The group coordinator's durable side over this broker's `__consumer_offsets`.
    pub fn offsets_log(&self) -> OffsetsTopicLog<'_> {
        OffsetsTopicLog(&self.replicas)
    }

    /// A fresh producer id for InitProducerId, from a block the controller reserved durably for
    /// this broker (cluster-wide unique; a crash can only skip ids, never hand one out twice).
    pub async fn next_producer_id(&self) -> Result<i64, ApiError> {
        if let Some(id) = self.take_producer_id() {
            return Ok(id);
        }
        let answer = self
            .node
            .call(
                strait_cluster::rpc::ControllerRequest::AllocateProducerIds {
                    broker: self.config.node_id,
                    broker_epoch: self.node.broker_epoch(),
                },
            )
            .await;
        match answer {
            Ok(strait_cluster::rpc::ControllerResponse::ProducerIds { first, count }) => {
                let mut ids = self.producer_ids.lock().unwrap_or_else(|p| p.into_inner());
                // Another request may have refilled the block meanwhile; the newer block wins
                // and the rest of the older one is skipped, never reused.
                *ids = first..first + count;
                let id = ids.start;
                ids.start += 1;
                Ok(id)
            }
            Ok(other) => Err(ApiError::unexpected_answer(&other)),
            Err(e) => Err(ApiError::new(
                ResponseError::CoordinatorNotAvailable,
                format!("cannot allocate producer ids: {e}"),
            )),
        }
    }

    fn take_producer_id(&self) -> Option<i64> {
        let reserved_below = self.node.image().producer_ids_reserved_below;
        let mut ids = self.producer_ids.lock().unwrap_or_else(|p| p.into_inner());
        // Ids a linked mirror topic holds for another cluster's producers: the block is dropped,
        // the controller's next one starts above them.
        if ids.start < reserved_below {
            *ids = 0..0;
        }
        if ids.is_empty() {
            return None;
        }
        let id = ids.start;
        ids.start += 1;
        Some(id)
    }

    /// Whether this broker coordinates `group` now (NOT_COORDINATOR or
    /// COORDINATOR_LOAD_IN_PROGRESS otherwise): see `group::partitions::check`.
    pub fn check_coordinator(&self, group: &str) -> Result<(), crate::errors::ApiError> {
        crate::group::partitions::check(&self.replicas, &self.coordinated, self.node(), group)
    }

    /// This node's part in the metadata quorum.
    pub fn node(&self) -> &Arc<ClusterNode> {
        &self.node
    }

    /// `user`'s SCRAM credential for `mechanism`, from the metadata image.
    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: strait_auth::scram::ScramMechanism,
    ) -> Option<strait_auth::scram::ScramCredential> {
        let image = self.node.image();
        let stored = image.scram.get(user)?.get(&mechanism.kafka_type())?;
        Some(strait_auth::scram::ScramCredential {
            salt: stored.salt.clone(),
            stored_key: stored.stored_key.clone(),
            server_key: stored.server_key.clone(),
            iterations: stored.iterations,
        })
    }

    /// PLAIN without a user list of its own checks the password against the user's SCRAM
    /// credentials (either mechanism), as Strait keeps no plaintext passwords.
    pub fn plain_against_scram(&self, user: &str, password: &str) -> bool {
        use strait_auth::scram::{ScramCredential, ScramMechanism};
        let mut known = false;
        let mut ok = false;
        for m in ScramMechanism::ALL {
            if let Some(c) = self.scram_credential(user, m) {
                known = true;
                ok |= c.verify_password(m, password);
            }
        }
        if !known {
            // The same slow hash for an unknown user, so timing does not tell which users exist.
            static DUMMY: std::sync::OnceLock<Option<ScramCredential>> = std::sync::OnceLock::new();
            let m = ScramMechanism::Sha512;
            if let Some(c) = DUMMY.get_or_init(|| {
                ScramCredential::from_password(m, "", b"strait-dummy-salt", m.min_iterations()).ok()
            }) {
                let _ = c.verify_password(m, password);
            }
        }
        ok
    }

    /// A topic's config overrides, from the metadata image (the topic may have no replica here).
    pub fn topic_configs(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.node.image().topic(name).map(|t| t.configs.clone())
    }

    /// Kafka's tiered-storage checks of a topic's new overrides (`old`: before the change, `None`
    /// on creation), against whether this broker has tiering at all.
    pub fn validate_tiered(
        &self,
        old: Option<&BTreeMap<String, String>>,
        new: &BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        strait_config::validate_tiered_topic_config(old, new, self.remote.is_some())
            .map_err(|why| ApiError::new(ResponseError::InvalidConfig, why))
    }
}

/// The group and transaction coordinators follow the roles of their topics' partitions: each
/// loads what the partitions it leads hold and unloads those it stopped leading.
impl RoleListener for Broker {
    fn role_applied(&self, topic: &str, partitions: i32, partition: &Partition) {
        if topic == OFFSETS_TOPIC {
            coordination::sync_role(&self.groups, &self.coordinated, partitions, partition);
        } else if topic == crate::txn::TXN_TOPIC {
            crate::txn::partitions::sync_role(&self.txns, partitions, partition);
        }
    }

    fn topic_removed(&self, topic: &str, partitions: i32) {
        if topic == OFFSETS_TOPIC {
            coordination::unload_all(&self.groups, &self.coordinated, partitions);
        } else if topic == crate::txn::TXN_TOPIC {
            crate::txn::partitions::unload_all(&self.txns, partitions);
        }
    }
}

/// Kafka's topic name rules.
pub fn validate_topic_name(name: &str) -> Result<(), ApiError> {
    let invalid = |why: String| ApiError::new(ResponseError::InvalidTopicException, why);
    if name.is_empty() {
        return Err(invalid("Topic name is illegal, it can't be empty".into()));
    }
    if name == "." || name == ".." {
        return Err(invalid("Topic name cannot be \".\" or \"..\"".into()));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(invalid(format!(
            "Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LEN} characters, topic name: {name}"
        )));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(invalid(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        for bad in ["", ".", "..", "a b", "é", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
