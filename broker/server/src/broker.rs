//! The broker's shared state and its topic lifecycle: the config, the log manager, the topic
//! catalogue and, per partition, the log plus the signal that wakes long-polling fetches. Admin
//! operations (create, delete, add partitions, change configs) live here because they must change
//! the catalogue and the logs together; request handlers only translate to and from the protocol.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use kafka_protocol::ResponseError;
use strait_config::{BrokerConfig, effective_topic_config, validate_topic_configs};
use strait_storage::{LogConfig, LogManager, PartitionLog, TimestampType, TopicPartition};
use tracing::{info, warn};
use uuid::Uuid;

use crate::cluster::replica::ReplicaState;
use crate::errors::ApiError;
use crate::group::Coordinator;
use crate::group::coordinator::Limits;
use crate::identity;
use crate::metadata::{MetadataStore, TopicMeta};

/// Kafka's limit on topic names (so that `<topic>-<partition>` directory names stay legal).
const MAX_TOPIC_NAME_LEN: usize = 249;
/// Upper bound on partitions per topic. Kafka has no hard limit, but one request for two billion
/// partitions must fail cleanly instead of exhausting file descriptors and disk; 10,000 is far
/// beyond what one topic on one broker is ever given.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

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
    /// The consumer group coordinator: every group on a single node, the groups of the offsets
    /// partitions this broker leads in a cluster (`coordinated`).
    pub groups: Coordinator,
    pub coordinated: crate::group::partitions::Coordinated,
    pub metrics: crate::metrics::Metrics,
    producer_ids: Mutex<std::ops::Range<i64>>,
    pub cluster_id: String,
    pub logs: LogManager,
    /// Whether the log manager trusted a clean shutdown (no recovery scan).
    pub clean_start: bool,
    metadata: MetadataStore,
    topics: RwLock<Topics>,
    /// Serialises admin operations so check-then-act on the catalogue is atomic.
    admin: Mutex<()>,
    /// Set once at start-up in KRaft mode (`process.roles` set): the cluster membership, the
    /// metadata image and the controller client. `None` on a single node.
    pub cluster: std::sync::OnceLock<Arc<crate::cluster::ClusterNode>>,
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
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error(transparent)]
    Metadata(#[from] crate::metadata::MetadataError),
    #[error("log dirs: {0}")]
    Log(#[from] strait_storage::LogError),
}

impl Broker {
    /// Opens (or formats) the log dirs, recovers the logs and loads the topic catalogue.
    pub fn open(config: BrokerConfig) -> Result<Broker, StartError> {
        let dirs: Vec<PathBuf> = config.log_dirs.clone();
        let cluster_id =
            identity::load_or_format(&dirs, config.node_id, config.cluster_id.as_deref())?;
        let (metadata, catalogue_existed) = MetadataStore::open(&dirs[0])?;
        let known: HashMap<String, TopicMeta> = metadata
            .topics()
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect();
        let logs = LogManager::open(&dirs, &|topic: &str| {
            let overrides = known
                .get(topic)
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
            metadata,
            topics: RwLock::new(Topics::default()),
            admin: Mutex::new(()),
            cluster: std::sync::OnceLock::new(),
        };
        if !broker.clean_start {
            broker.metrics.recovery_runs.inc();
        }
        broker.load_topics(catalogue_existed)?;
        crate::group::store::load(&broker)?;
        Ok(broker)
    }

    /// Builds the in-memory topic table from the catalogue, creating logs the catalogue names but
    /// the disk lacks (a crash between the two writes of a create) and deleting logs of topics the
    /// catalogue no longer has (a crash during a delete). A data dir without a catalogue (copied
    /// from elsewhere) is adopted rather than wiped.
    fn load_topics(&self, catalogue_existed: bool) -> Result<(), StartError> {
        // In a cluster the metadata image owns every topic (`__consumer_offsets` included); the
        // cluster applier reconciles them once the image arrives.
        let local_only = |_: &str| self.config.kraft.is_none();
        let mut on_disk: BTreeMap<String, Vec<Arc<PartitionLog>>> = BTreeMap::new();
        for log in self.logs.all() {
            if !local_only(&log.topic_partition().topic) {
                continue;
            }
            on_disk
                .entry(log.topic_partition().topic.clone())
                .or_default()
                .push(log);
        }
        let mut catalogue: BTreeMap<String, TopicMeta> = self
            .metadata
            .topics()
            .into_iter()
            .filter(|t| local_only(&t.name))
            .map(|t| (t.name.clone(), t))
            .collect();
        for (name, logs) in &on_disk {
            if catalogue.contains_key(name) {
                continue;
            }
            if catalogue_existed {
                warn!(topic = %name, "deleting logs of a topic that is not in the catalogue");
                for log in logs {
                    self.logs.delete(log.topic_partition())?;
                }
            } else {
                let partitions = logs
                    .iter()
                    .map(|l| l.topic_partition().partition + 1)
                    .max()
                    .unwrap_or(1);
                let id = logs
                    .iter()
                    .find_map(|l| l.topic_id())
                    .and_then(|s| Uuid::parse_str(&s).ok())
                    .unwrap_or_else(Uuid::new_v4);
                warn!(topic = %name, partitions, "adopting logs found without a catalogue");
                let meta = TopicMeta {
                    name: name.clone(),
                    id,
                    partitions,
                    replication_factor: 1,
                    configs: BTreeMap::new(),
                };
                self.metadata.put_topic(meta.clone())?;
                catalogue.insert(name.clone(), meta);
            }
        }
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        for meta in catalogue.into_values() {
            let partitions = self.open_partitions(&meta, 0)?;
            topics.by_id.insert(meta.id, meta.name.clone());
            topics
                .by_name
                .insert(meta.name.clone(), Arc::new(Topic { meta, partitions }));
        }
        info!(topics = topics.by_name.len(), "topic catalogue loaded");
        Ok(())
    }

    fn open_partitions(
        &self,
        meta: &TopicMeta,
        from: i32,
    ) -> Result<Vec<Arc<Partition>>, strait_storage::LogError> {
        let config = log_config(&meta.configs, &self.config);
        let id = meta.id.to_string();
        (from..meta.partitions)
            .map(|index| {
                let tp = TopicPartition {
                    topic: meta.name.clone(),
                    partition: index,
                };
                let log = self.logs.get_or_create(&tp, config.clone())?;
                if log.topic_id().as_deref() != Some(id.as_str()) {
                    log.set_topic_id(&id)?;
                }
                // The only in-sync replica is this one, so everything it has is committed: the
                // high watermark is the log end (the checkpoint may lag it after a crash).
                log.set_high_watermark(log.log_end_offset());
                Ok(Arc::new(Partition::new(
                    index,
                    log,
                    ReplicaState::single(self.config.node_id, 0),
                )))
            })
            .collect()
    }

    /// Whether this broker is fully caught up: in the ISR of every partition it hosts, with no
    /// offline partition in the cluster. A single node leads every partition and is its whole
    /// ISR, so once the logs are open (this object exists) it is ready. `Err` says why not.
    pub fn readiness(&self) -> Result<(), String> {
        match self.cluster() {
            Some(node) => node.readiness(self),
            None => Ok(()),
        }
    }

    /// A fresh producer id for InitProducerId, from a durably reserved block.
    pub fn next_producer_id(&self) -> Result<i64, ApiError> {
        const BLOCK: i64 = 1000;
        let mut ids = self.producer_ids.lock().unwrap_or_else(|p| p.into_inner());
        if ids.is_empty()
            && let Some(node) = self.cluster()
        {
            // Cluster-wide unique ids come in blocks from the controller.
            let answer = tokio::runtime::Handle::current().block_on(node.call(
                strait_cluster::rpc::ControllerRequest::AllocateProducerIds {
                    broker: self.config.node_id,
                    broker_epoch: node.broker_epoch(),
                },
            ));
            match answer {
                Ok(strait_cluster::rpc::ControllerResponse::ProducerIds { first, count }) => {
                    *ids = first..first + count;
                }
                Ok(other) => {
                    return Err(ApiError::new(
                        ResponseError::UnknownServerError,
                        format!("unexpected controller answer {other:?}"),
                    ));
                }
                Err(e) => {
                    return Err(ApiError::new(
                        ResponseError::CoordinatorNotAvailable,
                        format!("cannot allocate producer ids: {e}"),
                    ));
                }
            }
        }
        if ids.is_empty() {
            let start = self
                .metadata
                .allocate_producer_ids(BLOCK)
                .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
            *ids = start..start + BLOCK;
        }
        let id = ids.start;
        ids.start += 1;
        Ok(id)
    }

    /// The cluster node in KRaft mode.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::ClusterNode>> {
        self.cluster.get()
    }

    /// The error for a topic this broker does not host: in a cluster, a topic that exists on
    /// other brokers gets NOT_LEADER_OR_FOLLOWER so the client refreshes its metadata.
    pub fn missing_topic_error(&self, name: &str) -> ApiError {
        match self.cluster() {
            Some(c) if c.image().topic(name).is_some() => ApiError::new(
                ResponseError::NotLeaderOrFollower,
                format!("This broker hosts no replica of topic {name}"),
            ),
            _ => unknown_topic(name),
        }
    }

    pub fn missing_topic_error_by_id(&self, id: &Uuid) -> ApiError {
        match self.cluster() {
            Some(c) if c.image().topic_by_id(id).is_some() => ApiError::new(
                ResponseError::NotLeaderOrFollower,
                format!("This broker hosts no replica of topic {id}"),
            ),
            _ => ApiError::new(ResponseError::UnknownTopicId, "unknown topic id"),
        }
    }

    /// The error for a partition of a hosted topic that is not here.
    pub fn missing_partition_error(&self, topic: &Topic, index: i32) -> ApiError {
        if self.cluster().is_some() && (0..topic.meta.partitions).contains(&index) {
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

    fn admin_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.admin.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates a topic. `partitions`/`replication_factor` of -1 take the broker defaults.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, ApiError> {
        validate_topic_name(name)?;
        let partitions = if partitions == -1 {
            self.config.num_partitions
        } else {
            partitions
        };
        let replication_factor = if replication_factor == -1 {
            self.config.default_replication_factor
        } else {
            replication_factor
        };
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!(
                    "Number of partitions must be between 1 and {MAX_PARTITIONS_PER_TOPIC}, got {partitions}."
                ),
            ));
        }
        if replication_factor < 1 {
            return Err(ApiError::new(
                ResponseError::InvalidReplicationFactor,
                "Replication factor must be larger than 0.",
            ));
        }
        let brokers = 1;
        if replication_factor > brokers {
            return Err(ApiError::new(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {brokers} broker(s) are registered."
                ),
            ));
        }
        validate_topic_configs(&configs)?;
        let _guard = self.admin_lock();
        {
            let topics = self.read_topics();
            if topics.by_name.contains_key(name) {
                return Err(ApiError::new(
                    ResponseError::TopicAlreadyExists,
                    format!("Topic '{name}' already exists."),
                ));
            }
            let folded = fold_topic_name(name);
            if let Some(other) = topics.by_name.keys().find(|t| fold_topic_name(t) == folded) {
                return Err(ApiError::new(
                    ResponseError::InvalidTopicException,
                    format!("Topic '{name}' collides with existing topic: {other}"),
                ));
            }
        }
        let meta = TopicMeta {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            replication_factor,
            configs,
        };
        if validate_only {
            return Ok(Arc::new(Topic {
                meta,
                partitions: Vec::new(),
            }));
        }
        self.metadata
            .put_topic(meta.clone())
            .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
        let partitions = match self.open_partitions(&meta, 0) {
            Ok(p) => p,
            Err(e) => {
                // Leave nothing half-created: the catalogue entry goes, and so do any new logs.
                let _ = self.metadata.remove_topic(name);
                for index in 0..meta.partitions {
                    let _ = self.logs.delete(&TopicPartition {
                        topic: name.to_string(),
                        partition: index,
                    });
                }
                return Err(e.into());
            }
        };
        let topic = Arc::new(Topic { meta, partitions });
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        topics.by_id.insert(topic.meta.id, name.to_string());
        topics.by_name.insert(name.to_string(), topic.clone());
        info!(topic = %name, partitions = topic.meta.partitions, "created topic");
        Ok(topic)
    }

    pub fn delete_topic(&self, name: &str) -> Result<TopicMeta, ApiError> {
        if !self.config.delete_topic_enable {
            return Err(ApiError::new(
                ResponseError::TopicDeletionDisabled,
                "Topic deletion is disabled (delete.topic.enable=false).",
            ));
        }
        let _guard = self.admin_lock();
        let Some(topic) = self.topic(name) else {
            return Err(unknown_topic(name));
        };
        self.metadata
            .remove_topic(name)
            .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
        {
            let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
            topics.by_name.remove(name);
            topics.by_id.remove(&topic.meta.id);
        }
        for p in &topic.partitions {
            // Waiting fetches re-check and find the topic gone.
            p.appended.notify_waiters();
            if let Err(e) = self.logs.delete(p.log.topic_partition()) {
                // The catalogue no longer has the topic, so the next start removes the stray log.
                warn!(topic = %name, partition = p.index, error = %e, "could not delete log");
            }
        }
        info!(topic = %name, "deleted topic");
        Ok(topic.meta.clone())
    }

    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let _guard = self.admin_lock();
        let Some(topic) = self.topic(name) else {
            return Err(unknown_topic(name));
        };
        let current = topic.meta.partitions;
        if count < current {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!(
                    "Topic currently has {current} partitions, which is higher than the requested {count}."
                ),
            ));
        }
        if count == current {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!("Topic already has {current} partitions."),
            ));
        }
        if count > MAX_PARTITIONS_PER_TOPIC {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!(
                    "Number of partitions must be at most {MAX_PARTITIONS_PER_TOPIC}, got {count}."
                ),
            ));
        }
        if validate_only {
            return Ok(());
        }
        let mut meta = topic.meta.clone();
        meta.partitions = count;
        self.metadata
            .put_topic(meta.clone())
            .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
        let mut partitions = topic.partitions.clone();
        partitions.extend(self.open_partitions(&meta, current)?);
        self.replace_topic(Topic { meta, partitions });
        info!(topic = %name, from = current, to = count, "added partitions");
        Ok(())
    }

    /// A topic's config overrides: from the metadata image in a cluster (the topic may have no
    /// replica here), else from the local catalogue.
    pub fn topic_configs(&self, name: &str) -> Option<BTreeMap<String, String>> {
        match self.cluster() {
            Some(c) => c.image().topic(name).map(|t| t.configs.clone()),
            None => self.topic(name).map(|t| t.meta.configs.clone()),
        }
    }

    /// Replaces a topic's config overrides (already validated by the caller's rules). In a
    /// cluster the controller does it; call from a blocking context (`block_in_place`).
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        validate_topic_configs(&configs)?;
        if let Some(node) = self.cluster() {
            if validate_only {
                return Ok(());
            }
            return tokio::runtime::Handle::current().block_on(
                crate::api::cluster_admin::set_topic_configs(node, name, configs),
            );
        }
        let _guard = self.admin_lock();
        let Some(topic) = self.topic(name) else {
            return Err(unknown_topic(name));
        };
        if validate_only {
            return Ok(());
        }
        let mut meta = topic.meta.clone();
        meta.configs = configs;
        self.metadata
            .put_topic(meta.clone())
            .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
        let log_config = log_config(&meta.configs, &self.config);
        for p in &topic.partitions {
            p.log.update_config(log_config.clone());
        }
        self.replace_topic(Topic {
            meta,
            partitions: topic.partitions.clone(),
        });
        info!(topic = %name, "updated topic configs");
        Ok(())
    }

    /// Cluster mode: puts a topic (as the metadata image describes it) into the table.
    pub(crate) fn install_topic(&self, topic: Topic) -> Arc<Topic> {
        let topic = Arc::new(topic);
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        topics.by_id.insert(topic.meta.id, topic.meta.name.clone());
        topics
            .by_name
            .insert(topic.meta.name.clone(), topic.clone());
        topic
    }

    /// Cluster mode: removes a topic from the table (its logs are the caller's business).
    pub(crate) fn uninstall_topic(&self, name: &str) -> Option<Arc<Topic>> {
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        let topic = topics.by_name.remove(name)?;
        topics.by_id.remove(&topic.meta.id);
        Some(topic)
    }

    fn replace_topic(&self, topic: Topic) {
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        topics
            .by_name
            .insert(topic.meta.name.clone(), Arc::new(topic));
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

/// Metric names fold '.' into '_', so Kafka forbids topics that differ only there.
fn fold_topic_name(name: &str) -> String {
    name.replace('.', "_")
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
