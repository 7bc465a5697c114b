//! The partitions this broker hosts, as Kafka's `ReplicaManager`: the table the metadata applier
//! fills from the image, each topic with its effective config parsed once, and the only way to
//! append as a partition's leader. Produce and the group coordinator's offsets (and later
//! transactions) all append through [`ReplicaManager::append_as_leader`], so leadership, the
//! `min.insync.replicas` check, the high-watermark advance and the wake-ups happen in one order.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use kafka_protocol::ResponseError;
use strait_cluster::image::Image;
use strait_config::{BrokerConfig, EffectiveTopicConfig};
use strait_storage::{AppendInfo, LogConfig, LogError, LogManager, TimestampType};
use tokio::sync::watch;
use uuid::Uuid;

use crate::errors::ApiError;
pub use crate::partition::Partition;

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

pub struct Topic {
    pub meta: TopicMeta,
    /// `meta.configs` over the broker's defaults. The applier installs a new `Topic` whenever the
    /// image changes its configs, so this is never stale and the request path never re-parses.
    pub config: EffectiveTopicConfig,
    /// The partitions hosted here, by index: those this broker is a replica of
    /// (`meta.partitions` is the topic's partition count).
    pub partitions: Vec<Arc<Partition>>,
    /// Partition index -> position in `partitions` (`u32::MAX`: not hosted). Every request
    /// looks partitions up, thousands per follower fetch; a search through `partitions` would
    /// touch one `Partition` per step.
    by_index: Vec<u32>,
}

impl Topic {
    pub fn new(
        meta: TopicMeta,
        config: EffectiveTopicConfig,
        partitions: Vec<Arc<Partition>>,
    ) -> Topic {
        let size = partitions
            .iter()
            .map(|p| p.index.max(0) as usize + 1)
            .max()
            .unwrap_or(0);
        let mut by_index = vec![u32::MAX; size];
        for (at, p) in partitions.iter().enumerate() {
            if let Ok(index) = usize::try_from(p.index) {
                by_index[index] = at as u32;
            }
        }
        Topic {
            meta,
            config,
            partitions,
            by_index,
        }
    }

    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        let at = *self.by_index.get(usize::try_from(index).ok()?)?;
        self.partitions.get(at as usize)
    }
}

/// The log engine's settings for a topic with effective config `eff`.
pub fn log_config(eff: &EffectiveTopicConfig, config: &BrokerConfig) -> LogConfig {
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
        timestamp_before_max_ms: eff.timestamp_before_max_ms,
        timestamp_after_max_ms: eff.timestamp_after_max_ms,
        remote_storage_enable: eff.remote_storage_enable
            && config.remote_log.system_enable != Some(false),
        local_retention_ms: Some(eff.local_retention_ms).filter(|n| *n >= 0),
        local_retention_bytes: Some(eff.local_retention_bytes).filter(|n| *n >= 0),
    }
}

/// What a leader append waits for, as Kafka's `acks`: 0 and 1 need only the leader; -1 (all)
/// needs `min.insync.replicas` in-sync replicas before the append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequiredAcks {
    Leader,
    All,
}

/// A leader append that reached the log.
pub struct LeaderAppend {
    pub partition: Arc<Partition>,
    /// The epoch the records were stamped with; an acks=all wait fails if it changes.
    pub leader_epoch: i32,
    pub info: AppendInfo,
}

/// Why a leader append did not happen; each caller answers it with its own protocol code.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("Partition {partition} of {topic} is not hosted here")]
    NotHosted { topic: String, partition: i32 },
    #[error("This broker is not the leader of {topic}-{partition} (leader: {leader})")]
    NotLeader {
        topic: String,
        partition: i32,
        leader: i32,
    },
    #[error("Produce request has no record batches")]
    NoRecords,
    #[error(
        "The size of the current ISR {isr} is insufficient to satisfy the min.isr requirement of {min_isr} for partition {topic}-{partition}"
    )]
    NotEnoughReplicas {
        topic: String,
        partition: i32,
        isr: i32,
        min_isr: i32,
    },
    /// A failed-over linked mirror topic whose log holds batches stamped with an epoch at or
    /// above this leader's: its own appends wait until the controller raised the epoch.
    #[error(
        "{topic}-{partition} holds mirrored batches of leader epoch {latest}, not below this leader's epoch {leader_epoch}; the leader epoch is being raised, retry"
    )]
    EpochRaisePending {
        topic: String,
        partition: i32,
        latest: i32,
        leader_epoch: i32,
    },
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Who writes through the leader append path: the leader itself (its own stamp: client produce,
/// coordinators, markers) or a mirror link (the source's batches as they are).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Writer {
    Own,
    Link,
}

/// Kafka's producer id block size, the unit in which mirrored producer ids are reserved.
const PRODUCER_ID_BLOCK: i64 = 1000;

#[derive(Default)]
struct Topics {
    by_name: HashMap<String, Arc<Topic>>,
    by_id: HashMap<Uuid, String>,
}

pub struct ReplicaManager {
    /// The broker-level defaults under every topic's overrides.
    config: Arc<BrokerConfig>,
    pub logs: LogManager,
    topics: RwLock<Topics>,
    /// The metadata image, to tell a topic that exists elsewhere from one that does not.
    image: watch::Receiver<Arc<Image>>,
    /// Bumped after anything that may change which partitions this broker follows and at which
    /// leader epoch (a metadata pass, a topic installed or removed), so replica fetchers rebuild
    /// their partition lists only then instead of scanning every partition on every fetch.
    generation: AtomicU64,
    /// The topics that existed when this broker registered (complete once `.1`): their
    /// partitions may have logs in a log dir that failed at start; later topics are new here.
    topics_at_start: std::sync::Mutex<(std::collections::HashSet<Uuid>, bool)>,
}

impl ReplicaManager {
    pub fn new(
        config: Arc<BrokerConfig>,
        logs: LogManager,
        image: watch::Receiver<Arc<Image>>,
    ) -> ReplicaManager {
        ReplicaManager {
            config,
            logs,
            topics: RwLock::new(Topics::default()),
            image,
            generation: AtomicU64::new(0),
            topics_at_start: std::sync::Mutex::new(Default::default()),
        }
    }

    /// Whether a log for a partition of topic `id` may be created: always, unless a log dir
    /// failed at start and the topic existed then (its log may sit in that dir; Kafka too
    /// refuses to create a log that is not new while a dir is offline).
    pub fn may_create_log(&self, id: &Uuid) -> bool {
        if !self.logs.dir_failed_at_open() {
            return true;
        }
        let (ids, complete) = &*self
            .topics_at_start
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *complete && !ids.contains(id)
    }

    /// Adds the topics of an image applied before this broker's view reached its registration;
    /// the first image that reaches it (`current`) completes the set.
    pub(crate) fn note_topics_at_start(&self, ids: impl Iterator<Item = Uuid>, current: bool) {
        let mut at_start = self
            .topics_at_start
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !at_start.1 {
            at_start.0.extend(ids);
            at_start.1 = current;
        }
    }

    /// See `generation`: read it before reading the partitions' roles.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn bump_generation(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The broker-level defaults of topic configs.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Appends `records` to partition `index` of `topic` as its leader: leader check,
    /// `min.insync.replicas` (acks=all), append at the leader epoch, high-watermark advance (at
    /// once when the leader is alone in the ISR), then wakes the fetches waiting for data.
    pub fn append_as_leader(
        &self,
        topic: &Topic,
        index: i32,
        records: &[u8],
        acks: RequiredAcks,
        now_ms: i64,
    ) -> Result<LeaderAppend, AppendError> {
        self.append_records(topic, index, records, acks, now_ms, false)
    }

    /// A coordinator's append of its own records (TxnOffsetCommit's transactional batch, which
    /// carries no sequence numbers): see `PartitionLog::append_from_coordinator`.
    pub fn append_as_coordinator(
        &self,
        topic: &Topic,
        index: i32,
        records: &[u8],
        acks: RequiredAcks,
        now_ms: i64,
    ) -> Result<LeaderAppend, AppendError> {
        self.append_records(topic, index, records, acks, now_ms, true)
    }

    fn append_records(
        &self,
        topic: &Topic,
        index: i32,
        records: &[u8],
        acks: RequiredAcks,
        now_ms: i64,
        from_coordinator: bool,
    ) -> Result<LeaderAppend, AppendError> {
        if records.is_empty() {
            return Err(AppendError::NoRecords);
        }
        self.leader_append(topic, index, acks, Writer::Own, |log, epoch| {
            if from_coordinator {
                log.append_from_coordinator(records, epoch, now_ms)
            } else {
                log.append(records, epoch, now_ms)
            }
        })
    }

    /// A linked mirror topic's append (see `crate::api::produce`): the source's batches taken
    /// verbatim, offsets and epochs kept, as a follower takes its leader's; the first must not
    /// start below the log end (`LogError::UnexpectedOffset` says where it ends).
    pub fn append_from_link(
        &self,
        topic: &Topic,
        index: i32,
        records: &[u8],
        acks: RequiredAcks,
        now_ms: i64,
    ) -> Result<LeaderAppend, AppendError> {
        if records.is_empty() {
            return Err(AppendError::NoRecords);
        }
        self.leader_append(topic, index, acks, Writer::Link, |log, _| {
            log.append_as_follower(records, now_ms)
        })
    }

    /// After a link append: the producer ids the partition's log holds that this cluster may
    /// still hand out, as the exclusive bound to reserve (`ReserveProducerIds`). The source's ids
    /// must never be given to a producer here: after a failover it would inherit that source
    /// producer's epoch and sequences.
    pub fn unreserved_producer_ids(&self, partition: &Partition) -> Option<i64> {
        let reserved = self.image.borrow().producer_ids_reserved_below;
        let max = partition.log.max_producer_id()?;
        // Rounded up to Kafka's block size, so that a source handing out ids one by one costs a
        // metadata record per thousand, not per producer.
        (max >= reserved).then(|| (max / PRODUCER_ID_BLOCK + 1) * PRODUCER_ID_BLOCK)
    }

    /// Writes a transaction marker (COMMIT or ABORT control batch) for a producer as the
    /// partition's leader: WriteTxnMarkers' append, always with acks=all's ISR check.
    #[allow(clippy::too_many_arguments)]
    pub fn append_marker_as_leader(
        &self,
        topic: &Topic,
        index: i32,
        producer_id: i64,
        producer_epoch: i16,
        marker: strait_storage::ControlType,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<LeaderAppend, AppendError> {
        self.leader_append(
            topic,
            index,
            RequiredAcks::All,
            Writer::Own,
            |log, epoch| {
                log.append_marker(
                    producer_id,
                    producer_epoch,
                    marker,
                    coordinator_epoch,
                    epoch,
                    now_ms,
                )
            },
        )
    }

    /// The one leader append path: leadership and ISR checked and the epoch read under one lock,
    /// the log written at that epoch, the high watermark advanced and waiting fetches woken.
    fn leader_append(
        &self,
        topic: &Topic,
        index: i32,
        acks: RequiredAcks,
        writer: Writer,
        write: impl FnOnce(&strait_storage::PartitionLog, i32) -> Result<AppendInfo, LogError>,
    ) -> Result<LeaderAppend, AppendError> {
        let Some(partition) = topic.partition(index) else {
            return Err(AppendError::NotHosted {
                topic: topic.meta.name.clone(),
                partition: index,
            });
        };
        // Read before the replica lock: the log's locks are never taken under it.
        let mirrored_epoch = (writer == Writer::Own && topic.config.mirror_failed_over)
            .then(|| partition.log.latest_epoch())
            .flatten();
        // Epoch and ISR under one lock, so the check and the stamp agree.
        let (leader_epoch, isr) = {
            let mut replica = partition.replica();
            if !replica.is_leader() {
                return Err(AppendError::NotLeader {
                    topic: topic.meta.name.clone(),
                    partition: index,
                    leader: replica.leader_id(),
                });
            }
            if let Some(latest) = mirrored_epoch
                && latest >= replica.leader_epoch
                && !replica.own_write_in_epoch
            {
                // Epochs in a log only grow, and a batch's epoch says which leader wrote it (KIP-101
                // truncation): writing at ours below or beside the source's would let a
                // follower keep a divergent tail. The ISR loop asks the controller for more.
                replica.raise_epoch_to = Some(latest + 1);
                return Err(AppendError::EpochRaisePending {
                    topic: topic.meta.name.clone(),
                    partition: index,
                    latest,
                    leader_epoch: replica.leader_epoch,
                });
            }
            (replica.leader_epoch, replica.isr.len() as i32)
        };
        if acks == RequiredAcks::All {
            let min_isr = topic.config.min_insync_replicas;
            if isr < min_isr {
                return Err(AppendError::NotEnoughReplicas {
                    topic: topic.meta.name.clone(),
                    partition: index,
                    isr,
                    min_isr,
                });
            }
        }
        let info = write(&partition.log, leader_epoch)?;
        if writer == Writer::Own {
            let mut replica = partition.replica();
            if replica.leader_epoch == leader_epoch {
                replica.own_write_in_epoch = true;
            }
        }
        partition.advance_high_watermark();
        partition.appended.notify_waiters();
        Ok(LeaderAppend {
            partition: partition.clone(),
            leader_epoch,
            info,
        })
    }

    /// The error for a topic this broker does not host: a topic that exists on other brokers gets
    /// NOT_LEADER_OR_FOLLOWER so the client refreshes its metadata.
    pub fn missing_topic_error(&self, name: &str) -> ApiError {
        let image = self.image.borrow().clone();
        match image.topic(name) {
            Some(_) => ApiError::new(
                ResponseError::NotLeaderOrFollower,
                format!("This broker hosts no replica of topic {name}"),
            ),
            None => unknown_topic(name),
        }
    }

    pub fn missing_topic_error_by_id(&self, id: &Uuid) -> ApiError {
        let image = self.image.borrow().clone();
        match image.topic_by_id(id) {
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

    fn read_topics(&self) -> RwLockReadGuard<'_, Topics> {
        // Writers replace whole map entries, so a poisoned lock still holds a consistent table.
        self.topics.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts a topic (as the metadata image describes it) into the table.
    pub(crate) fn install_topic(&self, topic: Topic) -> Arc<Topic> {
        let topic = Arc::new(topic);
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        topics.by_id.insert(topic.meta.id, topic.meta.name.clone());
        topics
            .by_name
            .insert(topic.meta.name.clone(), topic.clone());
        drop(topics);
        self.bump_generation();
        topic
    }

    /// Removes a topic from the table (its logs are the caller's business).
    pub(crate) fn uninstall_topic(&self, name: &str) -> Option<Arc<Topic>> {
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        let topic = topics.by_name.remove(name)?;
        topics.by_id.remove(&topic.meta.id);
        drop(topics);
        self.bump_generation();
        Some(topic)
    }
}

pub fn unknown_topic(name: &str) -> ApiError {
    ApiError::new(
        ResponseError::UnknownTopicOrPartition,
        format!("This server does not host this topic: {name}"),
    )
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType as RecordTimestampType,
    };
    use strait_config::effective_topic_config;
    use strait_storage::TopicPartition;

    use super::*;
    use crate::partition::replica::ReplicaState;

    /// One batch of one small record.
    fn batch() -> Vec<u8> {
        let record = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: RecordTimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 0,
            key: None,
            value: Some(bytes::Bytes::from_static(b"v")),
            headers: Default::default(),
        };
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &[record], &options).expect("encode");
        buf.to_vec()
    }

    /// Node 1 hosting partition 0 of topic `t` (`min.insync.replicas=2`), leading it at epoch 3
    /// with ISR `isr` when `leader`, else following node 2.
    fn hosting(dir: &std::path::Path, leader: bool, isr: Vec<i32>) -> (ReplicaManager, Arc<Topic>) {
        let config = Arc::new(BrokerConfig::from_pairs(&[]).expect("defaults").0);
        let logs =
            LogManager::open(&[dir.to_path_buf()], &|_: &str| LogConfig::default()).expect("logs");
        let log = logs
            .get_or_create(
                &TopicPartition {
                    topic: "t".into(),
                    partition: 0,
                },
                LogConfig::default(),
            )
            .expect("log");
        let (_, image) = watch::channel(Arc::new(Image::default()));
        let replicas = ReplicaManager::new(config.clone(), logs, image);
        let partition = Partition::new(0, log, ReplicaState::follower_of(1, 2));
        if leader {
            partition
                .replica()
                .become_leader(3, 0, vec![1, 2], isr, 0, std::time::Instant::now());
        }
        let meta = TopicMeta {
            name: "t".into(),
            id: Uuid::new_v4(),
            partitions: 1,
            replication_factor: 2,
            configs: BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]),
        };
        let topic = replicas.install_topic(Topic::new(
            meta.clone(),
            effective_topic_config(&meta.configs, &config),
            vec![Arc::new(partition)],
        ));
        (replicas, topic)
    }

    #[test]
    fn a_follower_appends_nothing_as_leader() {
        let dir = tempfile::tempdir().expect("dir");
        let (replicas, topic) = hosting(dir.path(), false, vec![1, 2]);
        let refused = replicas.append_as_leader(&topic, 0, &batch(), RequiredAcks::Leader, 0);
        assert!(matches!(
            refused,
            Err(AppendError::NotLeader { leader: 2, .. })
        ));
        assert_eq!(topic.partitions[0].log.log_end_offset(), 0);
        let missing = replicas.append_as_leader(&topic, 1, &batch(), RequiredAcks::Leader, 0);
        assert!(matches!(missing, Err(AppendError::NotHosted { .. })));
    }

    #[test]
    fn acks_all_needs_min_insync_replicas_before_appending() {
        let dir = tempfile::tempdir().expect("dir");
        let (replicas, topic) = hosting(dir.path(), true, vec![1]);
        let refused = replicas.append_as_leader(&topic, 0, &batch(), RequiredAcks::All, 0);
        assert!(matches!(
            refused,
            Err(AppendError::NotEnoughReplicas {
                isr: 1,
                min_isr: 2,
                ..
            })
        ));
        assert_eq!(topic.partitions[0].log.log_end_offset(), 0);
        // Leader acks need no quorum; alone in the ISR the append is committed at once.
        let appended = replicas
            .append_as_leader(&topic, 0, &batch(), RequiredAcks::Leader, 0)
            .expect("append");
        assert_eq!(appended.leader_epoch, 3);
        assert_eq!(appended.info.last_offset, 0);
        assert_eq!(appended.partition.log.high_watermark(), 1);
        let empty = replicas.append_as_leader(&topic, 0, &[], RequiredAcks::Leader, 0);
        assert!(matches!(empty, Err(AppendError::NoRecords)));
    }
}
