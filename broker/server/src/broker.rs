//! The broker's shared state: the config, the log manager, the metadata node (quorum member or
//! follower, whose image says which topics exist) and the table of the partitions hosted here,
//! each with its log and the signal that wakes long-polling fetches. Topics change only through
//! the controller; the cluster applier installs what the image gives this broker.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use kafka_protocol::ResponseError;
use strait_config::{BrokerConfig, effective_topic_config};
use strait_storage::{LogConfig, LogManager, TimestampType};
use uuid::Uuid;

use crate::cluster::ClusterNode;
use crate::errors::ApiError;
use crate::group::Coordinator;
use crate::group::coordinator::Limits;

/// Kafka's limit on topic names (so that `<topic>-<partition>` directory names stay legal).
const MAX_TOPIC_NAME_LEN: usize = 249;
/// Upper bound on partitions per topic (the controller enforces it; checked here too so that
/// requests beyond it are answered without a controller round trip).
pub use strait_cluster::controller::MAX_PARTITIONS_PER_TOPIC;

/// A topic as the metadata image describes it, as far as the broker's table needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Topic-level config overrides (Kafka key names); defaults come from the broker config.
    pub configs: BTreeMap<String, String>,
}

pub use crate::partition::Partition;

pub struct Topic {
    pub meta: TopicMeta,
    /// The partitions hosted here, by index. A single node hosts all of them; in a cluster only
    /// those this broker is a replica of (`meta.partitions` is the topic's partition count).
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        self.partitions
            .binary_search_by_key(&index, |p| p.index)
            .ok()
            .map(|i| &self.partitions[i])
    }
}

#[derive(Default)]
struct Topics {
    by_name: HashMap<String, Arc<Topic>>,
    by_id: HashMap<Uuid, String>,
}

pub struct Broker {
    pub config: BrokerConfig,
    /// The consumer group coordinator: the groups of the offsets partitions this broker leads
    /// (`coordinated`).
    pub groups: Coordinator,
    pub coordinated: crate::group::partitions::Coordinated,
    pub metrics: crate::metrics::Metrics,
    producer_ids: Mutex<std::ops::Range<i64>>,
    pub cluster_id: String,
    pub logs: LogManager,
    /// Whether the log manager trusted a clean shutdown (no recovery scan).
    pub clean_start: bool,
    topics: RwLock<Topics>,
    /// This node's part in the metadata quorum (a voter, or a follower of it): the cluster
    /// membership, the metadata image and the controller client. A single node is a quorum of
    /// one voter, so there is no other metadata path.
    node: Arc<ClusterNode>,
}

pub fn log_config(overrides: &BTreeMap<String, String>, config: &BrokerConfig) -> LogConfig {
    let eff = effective_topic_config(overrides, config);
    LogConfig {
        segment_bytes: eff.segment_bytes,
        segment_ms: eff.segment_ms,
        segment_index_bytes: eff.segment_index_bytes,
        index_interval_bytes: eff.index_interval_bytes,
        retention_ms: eff.retention_ms,
        retention_bytes: eff.retention_bytes,
        flush_messages: eff.flush_messages,
        flush_ms: eff.flush_ms,
        max_message_bytes: eff.max_message_bytes,
        timestamp_type: if eff.timestamp_type_log_append {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
        producer_id_expiration_ms: config.producer_id_expiration_ms,
        cleanup_compact: eff.cleanup_policy.iter().any(|p| p == "compact"),
        cleanup_delete: eff.cleanup_policy.iter().any(|p| p == "delete"),
        min_cleanable_dirty_ratio: eff.min_cleanable_dirty_ratio,
        min_compaction_lag_ms: eff.min_compaction_lag_ms,
        max_compaction_lag_ms: eff.max_compaction_lag_ms,
        delete_retention_ms: eff.delete_retention_ms,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("log dirs: {0}")]
    Log(#[from] strait_storage::LogError),
}

impl Broker {
    /// Opens the log dirs (already formatted with `cluster_id`) and recovers the logs. Topics are
    /// installed by the cluster applier from `node`'s metadata image; logs already open take
    /// their topic's configuration from the image as it is now (the applier keeps it current).
    pub fn open(
        config: BrokerConfig,
        cluster_id: String,
        node: Arc<ClusterNode>,
    ) -> Result<Broker, StartError> {
        let dirs: Vec<PathBuf> = config.log_dirs.clone();
        let image = node.image();
        let logs = LogManager::open(&dirs, &|topic: &str| {
            let overrides = image
                .topic(topic)
                .map(|t| t.configs.clone())
                .unwrap_or_default();
            log_config(&overrides, &config)
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
        let broker = Broker {
            config,
            groups,
            coordinated: Default::default(),
            metrics: crate::metrics::Metrics::new(),
            producer_ids: Mutex::new(0..0),
            cluster_id,
            logs,
            clean_start,
            topics: RwLock::new(Topics::default()),
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
        self.node.readiness(self)
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
        let mut ids = self.producer_ids.lock().unwrap_or_else(|p| p.into_inner());
        if ids.is_empty() {
            return None;
        }
        let id = ids.start;
        ids.start += 1;
        Some(id)
    }

    /// This node's part in the metadata quorum.
    pub fn node(&self) -> &Arc<ClusterNode> {
        &self.node
    }

    /// The error for a topic this broker does not host: in a cluster, a topic that exists on
    /// other brokers gets NOT_LEADER_OR_FOLLOWER so the client refreshes its metadata.
    pub fn missing_topic_error(&self, name: &str) -> ApiError {
        match self.node.image().topic(name) {
            Some(_) => ApiError::new(
                ResponseError::NotLeaderOrFollower,
                format!("This broker hosts no replica of topic {name}"),
            ),
            None => unknown_topic(name),
        }
    }

    pub fn missing_topic_error_by_id(&self, id: &Uuid) -> ApiError {
        match self.node.image().topic_by_id(id) {
            Some(_) => ApiError::new(
                ResponseError::NotLeaderOrFollower,
                format!("This broker hosts no replica of topic {id}"),
            ),
            None => ApiError::new(ResponseError::UnknownTopicId, "unknown topic id"),
        }
    }

    /// The error for a partition of a hosted topic that is not here.
    pub fn missing_partition_error(&self, topic: &Topic, index: i32) -> ApiError {
        if (0..topic.meta.partitions).contains(&index) {
            return ApiError::new(
                ResponseError::NotLeaderOrFollower,
                format!(
                    "This broker hosts no replica of {}-{index}",
                    topic.meta.name
                ),
            );
        }
        ApiError::new(
            ResponseError::UnknownTopicOrPartition,
            format!(
                "Partition {index} of topic {} does not exist",
                topic.meta.name
            ),
        )
    }

    /// Partition `index` of topic `name` (already looked up as `topic`) if hosted here, else
    /// the error code the request gets (see `missing_topic_error`/`missing_partition_error`).
    pub fn hosted_partition(
        &self,
        name: &str,
        topic: Option<&Arc<Topic>>,
        index: i32,
    ) -> Result<Arc<Partition>, ResponseError> {
        match topic {
            None => Err(self.missing_topic_error(name).error),
            Some(topic) => topic
                .partition(index)
                .cloned()
                .ok_or_else(|| self.missing_partition_error(topic, index).error),
        }
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.read_topics().by_name.get(name).cloned()
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<Arc<Topic>> {
        let topics = self.read_topics();
        topics
            .by_id
            .get(id)
            .and_then(|name| topics.by_name.get(name))
            .cloned()
    }

    pub fn all_topics(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self.read_topics().by_name.values().cloned().collect();
        all.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        all
    }

    fn read_topics(&self) -> std::sync::RwLockReadGuard<'_, Topics> {
        // Writers replace whole map entries, so a poisoned lock still holds a consistent table.
        self.topics.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A topic's config overrides, from the metadata image (the topic may have no replica here).
    pub fn topic_configs(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.node.image().topic(name).map(|t| t.configs.clone())
    }

    /// Puts a topic (as the metadata image describes it) into the table.
    pub(crate) fn install_topic(&self, topic: Topic) -> Arc<Topic> {
        let topic = Arc::new(topic);
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        topics.by_id.insert(topic.meta.id, topic.meta.name.clone());
        topics
            .by_name
            .insert(topic.meta.name.clone(), topic.clone());
        topic
    }

    /// Removes a topic from the table (its logs are the caller's business).
    pub(crate) fn uninstall_topic(&self, name: &str) -> Option<Arc<Topic>> {
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        let topic = topics.by_name.remove(name)?;
        topics.by_id.remove(&topic.meta.id);
        Some(topic)
    }
}

pub fn unknown_topic(name: &str) -> ApiError {
    ApiError::new(
        ResponseError::UnknownTopicOrPartition,
        format!("This server does not host this topic: {name}"),
    )
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
