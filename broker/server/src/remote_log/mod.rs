//! Tiered storage in the broker (Kafka's RemoteLogManager, KIP-405). The leader of a partition
//! whose topic sets `remote.storage.enable` copies each closed segment below the high watermark
//! to the object store (`copier`), records every step in the metadata log (COPY_SEGMENT_STARTED
//! before, COPY_SEGMENT_FINISHED after) so a new leader continues where the old one stopped and
//! deletes what a crashed upload left, applies the whole log's retention to the remote tier
//! (`expiry`), serves reads below the local log start from the store (`reader`), and gives a
//! replica that started its log at the remote tail the producer state below it (`bootstrap`).
//! Local retention, which deletes only copied segments, is the log engine's.
//!
//! The store itself (`strait_tiered`) knows nothing of the broker; the metadata is the cluster
//! layer's (`strait_cluster::remote`).

mod background;
mod bootstrap;
mod copier;
mod expiry;
pub mod metrics;
pub mod reader;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strait_cluster::remote::{RemoteLogUpdate, RemoteSegment, RemoteSegmentState};
use strait_cluster::rpc::{ControllerError, ControllerRequest};
use strait_config::BrokerConfig;
use strait_tiered::{Backend, RemoteStorageConfig, RemoteStore, SegmentKey};
use tokio::sync::{Semaphore, watch};
use tracing::{info, warn};
use uuid::Uuid;

use crate::broker::Broker;

/// The remote log manager of one broker: the store, and the bounds on concurrent work.
pub struct RemoteLogManager {
    pub store: RemoteStore,
    interval: Duration,
    /// `remote.log.manager.thread.pool.size`: partitions copied or expired at the same time.
    pool: Arc<Semaphore>,
    /// `remote.log.reader.threads`: remote reads at the same time.
    readers: Arc<Semaphore>,
    /// Partitions with a pass in flight on this broker.
    busy: Mutex<HashSet<(String, i32)>>,
    /// Where passes run: threads at a lower CPU priority, so copies never slow produce.
    background: background::Background,
}

impl RemoteLogManager {
    /// The manager when tiering is available on this broker: `remote.log.storage.system.enable`
    /// true, or unset (the embedded default: a local-directory store under the first log dir's
    /// parent, so a laptop user can turn tiering on for a topic with no object store).
    pub fn from_config(config: &BrokerConfig) -> anyhow::Result<Option<RemoteLogManager>> {
        let settings = &config.remote_log;
        if settings.system_enable == Some(false) {
            return Ok(None);
        }
        let default_root = default_store_root(config);
        let store_config = RemoteStorageConfig::from_props(&settings.store_props(), &default_root)?;
        let store = RemoteStore::new(&store_config)?;
        if let Some(class) = &settings.storage_manager_class_name {
            info!(
                class,
                "remote.log.storage.manager.class.name is ignored: Strait's remote storage manager is built in (rsm.config.* configures it)"
            );
        }
        info!(store = %describe(&store_config.backend), "tiered storage available");
        Ok(Some(RemoteLogManager {
            store,
            interval: Duration::from_millis(settings.task_interval_ms.max(10)),
            pool: Arc::new(Semaphore::new(settings.thread_pool_size.max(1))),
            readers: Arc::new(Semaphore::new(settings.reader_threads.max(1))),
            busy: Mutex::new(HashSet::new()),
            background: background::Background::start(settings.thread_pool_size).map_err(|e| {
                anyhow::anyhow!("cannot start the remote log manager's threads: {e}")
            })?,
        }))
    }

    /// Marks a partition busy; false when a pass is already running for it.
    fn claim(&self, topic: &str, partition: i32) -> bool {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((topic.to_string(), partition))
    }

    fn release(&self, topic: &str, partition: i32) {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(topic.to_string(), partition));
    }
}

/// The store for a log line, without credentials.
fn describe(backend: &Backend) -> String {
    match backend {
        Backend::Filesystem { root } => format!("directory {}", root.display()),
        Backend::S3 {
            bucket, endpoint, ..
        } => format!(
            "s3 bucket {bucket} at {}",
            endpoint.as_deref().unwrap_or("AWS")
        ),
    }
}

/// Where the embedded default keeps remote segments: beside the log dirs, never inside one (a
/// log dir holds only partition directories).
pub fn default_store_root(config: &BrokerConfig) -> std::path::PathBuf {
    let first = config
        .log_dirs
        .first()
        .cloned()
        .unwrap_or_else(|| std::path::PathBuf::from("strait-data"));
    let name = first
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "strait-data".into());
    first
        .parent()
        .map_or_else(|| std::path::PathBuf::from("."), |p| p.to_path_buf())
        .join(format!("{name}-remote"))
}

/// The object names of one remote segment.
pub fn segment_key(topic: &str, topic_id: Uuid, partition: i32, s: &RemoteSegment) -> SegmentKey {
    SegmentKey {
        topic: topic.to_string(),
        topic_id,
        partition,
        base_offset: s.base_offset,
        segment_id: s.id,
    }
}

/// Records remote tier changes of a partition this broker leads at `leader_epoch`.
async fn record(
    broker: &Broker,
    topic: &str,
    partition: i32,
    leader_epoch: i32,
    segments: Vec<RemoteSegment>,
    log_start: Option<i64>,
) -> Result<(), ControllerError> {
    let node = broker.node();
    node.call(ControllerRequest::RemoteLogSegments(RemoteLogUpdate {
        broker: broker.config.node_id,
        broker_epoch: node.broker_epoch(),
        topic: topic.to_string(),
        partition,
        leader_epoch,
        segments,
        log_start,
    }))
    .await
    .map(|_| ())
}

/// Records a partition's new log start (DeleteRecords) for its remote tier.
pub async fn record_log_start(
    broker: &Broker,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<(), ControllerError> {
    let epoch = broker
        .node()
        .image()
        .partition(topic, partition)
        .map_or(-1, |s| s.leader_epoch);
    record(broker, topic, partition, epoch, Vec::new(), Some(offset)).await
}

/// Moves segments to `state`, stamped now.
fn with_state(segments: &[RemoteSegment], state: RemoteSegmentState) -> Vec<RemoteSegment> {
    let now = crate::clock::now_ms();
    segments
        .iter()
        .map(|s| RemoteSegment {
            state,
            event_ms: now,
            ..s.clone()
        })
        .collect()
}

/// The manager's loop: every `remote.log.manager.task.interval.ms`, a pass over the partitions
/// this broker leads (bounded by the pool), and the purge of deleted topics' remote data.
pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let Some(rlm) = broker.remote.clone() else {
        return;
    };
    let mut tick = tokio::time::interval(rlm.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
        }
        let led = copier::led_tiered_partitions(&broker);
        for (topic, partition) in &led {
            if !rlm.claim(&topic.meta.name, partition.index) {
                continue;
            }
            let (b, r) = (broker.clone(), rlm.clone());
            let (topic, partition) = (topic.clone(), partition.clone());
            let permit = rlm.pool.clone().acquire_owned().await;
            rlm.background.spawn(async move {
                let _permit = permit;
                let name = topic.meta.name.clone();
                let index = partition.index;
                copier::pass(&b, &r, &topic, &partition).await;
                r.release(&name, index);
            });
        }
        for (topic, partition, start) in bootstrap::awaiting(&broker) {
            bootstrap::install(&broker, &rlm, &topic, &partition, start).await;
        }
        expiry::purge_deleted_topics(&broker, &rlm).await;
        metrics::refresh(&broker, &led);
    }
}

/// Logs a store or controller failure of a pass; the pass is retried on the next tick.
fn pass_failed(topic: &str, partition: i32, what: &str, error: &dyn std::fmt::Display) {
    warn!(topic, partition, error = %error, "tiered storage: {what} failed; retrying on the next pass");
}
