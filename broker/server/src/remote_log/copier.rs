//! Copying closed segments to the remote tier, by the partition's leader only, in offset order,
//! never above the high watermark (nor the last stable offset: an open transaction's batches may
//! still be aborted) and never twice: what is copied is read from the metadata image, and each
//! copy is recorded as started before its first byte goes up. A copy left STARTED by a crash or
//! a lost leadership is deleted from the store and marked deleted before new copies begin.

use std::sync::Arc;

use bytes::Bytes;
use strait_cluster::remote::{RemotePartition, RemoteSegment, RemoteSegmentState};
use strait_storage::ClosedSegment;
use strait_tiered::SegmentFiles;
use uuid::Uuid;

use super::{RemoteLogManager, pass_failed, record, segment_key, with_state};
use crate::broker::Broker;
use crate::replica_manager::{Partition, Topic};

/// Topic key that stops copying while remote data stays readable.
const COPY_DISABLE: &str = "remote.log.copy.disable";

/// The hosted partitions this broker leads whose topic is tiered (or was, and still has remote
/// data to expire or delete).
pub fn led_tiered_partitions(broker: &Broker) -> Vec<(Arc<Topic>, Arc<Partition>)> {
    let image = broker.node().image();
    let me = broker.config.node_id;
    let mut out = Vec::new();
    for topic in broker.replicas.all_topics() {
        let has_remote = image.remote.contains_key(&topic.meta.name);
        if !topic.config.remote_storage_enable && !has_remote {
            continue;
        }
        for p in &topic.partitions {
            let leads = image
                .partition(&topic.meta.name, p.index)
                .is_some_and(|s| s.leader == me);
            if leads && p.replica().is_leader() {
                out.push((topic.clone(), p.clone()));
            }
        }
    }
    out
}

/// One pass over a partition: clean up unfinished copies, copy what is ready, expire.
pub async fn pass(broker: &Broker, rlm: &RemoteLogManager, topic: &Topic, partition: &Partition) {
    let name = topic.meta.name.as_str();
    let index = partition.index;
    let image = broker.node().image();
    let Some(state) = image.partition(name, index).cloned() else {
        return;
    };
    let remote = image
        .remote_partition(name, index)
        .cloned()
        .unwrap_or(RemotePartition {
            log_start: -1,
            ..RemotePartition::default()
        });
    if let Err(e) = clean_unfinished(broker, rlm, topic, index, state.leader_epoch, &remote).await {
        pass_failed(name, index, "cleaning up unfinished copies", &e);
        return;
    }
    let copy_disabled = topic
        .meta
        .configs
        .get(COPY_DISABLE)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if topic.config.remote_storage_enable && !copy_disabled {
        copy_ready(broker, rlm, topic, partition, state.leader_epoch, &remote).await;
    }
    super::expiry::expire(broker, rlm, topic, partition, state.leader_epoch).await;
}

/// Deletes the objects of copies (and deletions) that did not finish, and records them deleted.
async fn clean_unfinished(
    broker: &Broker,
    rlm: &RemoteLogManager,
    topic: &Topic,
    index: i32,
    leader_epoch: i32,
    remote: &RemotePartition,
) -> anyhow::Result<()> {
    let name = topic.meta.name.as_str();
    let stale: Vec<RemoteSegment> = remote
        .segments
        .values()
        .filter(|s| {
            matches!(
                s.state,
                RemoteSegmentState::CopyStarted | RemoteSegmentState::DeleteStarted
            )
        })
        .cloned()
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    // A copy this broker started in an earlier leadership, or another broker's: nothing of this
    // broker is copying it now (one pass per partition at a time).
    let started: Vec<RemoteSegment> = stale
        .iter()
        .filter(|s| s.state == RemoteSegmentState::CopyStarted)
        .cloned()
        .collect();
    if !started.is_empty() {
        record(
            broker,
            name,
            index,
            leader_epoch,
            with_state(&started, RemoteSegmentState::DeleteStarted),
            None,
        )
        .await?;
    }
    for s in &stale {
        rlm.store
            .delete_segment(&segment_key(name, topic.meta.id, index, s))
            .await?;
    }
    record(
        broker,
        name,
        index,
        leader_epoch,
        with_state(&stale, RemoteSegmentState::DeleteFinished),
        None,
    )
    .await?;
    tracing::info!(
        topic = name,
        partition = index,
        segments = stale.len(),
        "tiered storage: deleted unfinished remote segments"
    );
    Ok(())
}

/// Copies the closed segments above the highest copied offset, oldest first, stopping at the
/// first failure (the next pass retries it: local segments stay until copied).
async fn copy_ready(
    broker: &Broker,
    rlm: &RemoteLogManager,
    topic: &Topic,
    partition: &Partition,
    leader_epoch: i32,
    remote: &RemotePartition,
) {
    let name = topic.meta.name.as_str();
    let index = partition.index;
    let log = &partition.log;
    let upper = log.high_watermark().min(log.last_stable_offset());
    let mut after = remote.highest_copied_offset();
    // Offsets below the log start (DeleteRecords, or retention before tiering was turned on)
    // are not copied.
    let candidates: Vec<ClosedSegment> = log.closed_segments(after, upper);
    for seg in candidates {
        if seg.next_offset - 1 <= after {
            continue;
        }
        let segment = RemoteSegment {
            id: Uuid::new_v4(),
            base_offset: seg.base_offset,
            end_offset: seg.next_offset - 1,
            max_timestamp: seg.max_timestamp,
            size_bytes: seg.size,
            broker: broker.config.node_id,
            leader_epoch,
            segment_leader_epochs: seg.epochs.clone(),
            state: RemoteSegmentState::CopyStarted,
            event_ms: crate::clock::now_ms(),
        };
        if let Err(e) = record(
            broker,
            name,
            index,
            leader_epoch,
            vec![segment.clone()],
            None,
        )
        .await
        {
            pass_failed(name, index, "recording a copy", &e);
            return;
        }
        let key = segment_key(name, topic.meta.id, index, &segment);
        let files = match segment_files(&seg) {
            Ok(f) => f,
            Err(e) => {
                // The segment went (retention, truncation) between listing and reading.
                pass_failed(name, index, "reading a segment's state files", &e);
                return;
            }
        };
        let copied = rlm.store.copy_segment(&key, &files).await;
        let metrics = &broker.metrics.remote;
        match copied {
            Ok(bytes) => {
                metrics.copy_bytes.with_label_values(&[name]).inc_by(bytes);
                metrics.copy_requests.with_label_values(&[name]).inc();
            }
            Err(e) => {
                metrics.copy_errors.with_label_values(&[name]).inc();
                metrics.copy_requests.with_label_values(&[name]).inc();
                // The STARTED record stays; the next pass deletes what went up and copies again.
                pass_failed(name, index, "copying a segment", &e);
                return;
            }
        }
        let finished = with_state(&[segment], RemoteSegmentState::CopyFinished);
        if let Err(e) = record(broker, name, index, leader_epoch, finished, None).await {
            pass_failed(name, index, "recording a finished copy", &e);
            return;
        }
        tracing::debug!(
            topic = name,
            partition = index,
            base_offset = seg.base_offset,
            bytes = seg.size,
            "tiered storage: copied segment"
        );
        after = seg.next_offset - 1;
    }
}

/// The files and state KIP-405 uploads with a segment.
fn segment_files(seg: &ClosedSegment) -> std::io::Result<SegmentFiles> {
    let producer_snapshot = match &seg.producer_snapshot {
        Some(path) => match std::fs::read(path) {
            Ok(b) => Some(Bytes::from(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    Ok(SegmentFiles {
        log: seg.log.clone(),
        offset_index: seg.offset_index.clone(),
        time_index: seg.time_index.clone(),
        txn_index: seg.txn_index.clone(),
        producer_snapshot,
        leader_epoch_checkpoint: Bytes::from(seg.leader_epoch_checkpoint()),
    })
}
