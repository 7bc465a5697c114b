//! The whole log's retention on the remote tier (Kafka's RLMExpirationTask): remote segments
//! older than retention.ms, beyond retention.bytes (counting the local segments not yet
//! copied), wholly below the log start (DeleteRecords), or all of them when the topic turned
//! tiering off with `remote.log.delete.on.disable`. The log start moves first (so no reader is
//! sent to a segment being deleted), then the segments are marked DELETE_SEGMENT_STARTED,
//! their objects removed, and marked DELETE_SEGMENT_FINISHED. A deleted topic's remote data is
//! purged by one broker (the lowest live id), which then records it gone.

use strait_cluster::remote::{RemoteSegment, RemoteSegmentState};
use strait_cluster::rpc::ControllerRequest;

use super::{RemoteLogManager, pass_failed, record, segment_key, with_state};
use crate::broker::Broker;
use crate::replica_manager::{Partition, Topic};

const DELETE_ON_DISABLE: &str = "remote.log.delete.on.disable";

/// The copied segments retention removes, oldest first (a prefix of `copied`).
pub fn expired(
    copied: &[RemoteSegment],
    log_start: i64,
    retention_ms: Option<i64>,
    retention_bytes: Option<i64>,
    local_only_bytes: u64,
    delete_all: bool,
    now_ms: i64,
) -> usize {
    if delete_all {
        return copied.len();
    }
    let mut count = 0;
    while count < copied.len() && copied[count].end_offset < log_start {
        count += 1;
    }
    if let Some(ms) = retention_ms {
        while count < copied.len() && now_ms.saturating_sub(copied[count].max_timestamp) > ms {
            count += 1;
        }
    }
    if let Some(limit) = retention_bytes {
        let mut total: i64 = copied[count..]
            .iter()
            .map(|s| s.size_bytes as i64)
            .sum::<i64>()
            + local_only_bytes as i64;
        while count < copied.len() && total - copied[count].size_bytes as i64 >= limit {
            total -= copied[count].size_bytes as i64;
            count += 1;
        }
    }
    count
}

pub async fn expire(
    broker: &Broker,
    rlm: &RemoteLogManager,
    topic: &Topic,
    partition: &Partition,
    leader_epoch: i32,
) {
    let name = topic.meta.name.as_str();
    let index = partition.index;
    let image = broker.node().image();
    let Some(remote) = image.remote_partition(name, index) else {
        return;
    };
    let copied: Vec<RemoteSegment> = remote.copied().into_iter().cloned().collect();
    if copied.is_empty() {
        return;
    }
    let delete_all = !topic.config.remote_storage_enable
        && topic
            .meta
            .configs
            .get(DELETE_ON_DISABLE)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let cleanup_delete = topic.config.cleanup_policy.iter().any(|p| p == "delete");
    let local_only_bytes = partition.log.uncopied_bytes();
    let count = expired(
        &copied,
        remote.log_start,
        topic.config.retention_ms.filter(|_| cleanup_delete),
        topic.config.retention_bytes.filter(|_| cleanup_delete),
        local_only_bytes,
        delete_all,
        crate::clock::now_ms(),
    );
    if count == 0 {
        return;
    }
    let gone = &copied[..count];
    // The new log start: the first remaining remote segment, else the local log's start.
    let new_start = copied
        .get(count)
        .map_or(partition.log.local_log_start_offset(), |s| s.base_offset)
        .max(remote.log_start);
    let started = with_state(gone, RemoteSegmentState::DeleteStarted);
    if let Err(e) = record(broker, name, index, leader_epoch, started, Some(new_start)).await {
        pass_failed(name, index, "recording remote retention", &e);
        return;
    }
    let metrics = &broker.metrics.remote;
    for s in gone {
        metrics.delete_requests.with_label_values(&[name]).inc();
        if let Err(e) = rlm
            .store
            .delete_segment(&segment_key(name, topic.meta.id, index, s))
            .await
        {
            metrics.delete_errors.with_label_values(&[name]).inc();
            // Left DELETE_STARTED: the next pass's clean-up deletes it again.
            pass_failed(name, index, "deleting a remote segment", &e);
            return;
        }
    }
    let finished = with_state(gone, RemoteSegmentState::DeleteFinished);
    if let Err(e) = record(broker, name, index, leader_epoch, finished, None).await {
        pass_failed(name, index, "recording deleted remote segments", &e);
        return;
    }
    tracing::info!(
        topic = name,
        partition = index,
        segments = count,
        log_start = new_start,
        "tiered storage: retention deleted remote segments"
    );
}

/// Deletes the remote data of deleted topics, on the lowest live broker only.
pub async fn purge_deleted_topics(broker: &Broker, rlm: &RemoteLogManager) {
    let image = broker.node().image();
    if image.remote_purge.is_empty() {
        return;
    }
    let lowest = image.live_brokers().map(|b| b.id).min();
    if lowest != Some(broker.config.node_id) {
        return;
    }
    for (id, t) in &image.remote_purge {
        let mut failed = false;
        for partition in t.partitions.keys() {
            match rlm.store.delete_partition(&t.name, *id, *partition).await {
                Ok(objects) => {
                    tracing::info!(topic = %t.name, partition, objects, "tiered storage: deleted a deleted topic's remote data")
                }
                Err(e) => {
                    failed = true;
                    pass_failed(&t.name, *partition, "purging a deleted topic", &e);
                }
            }
        }
        if !failed {
            let done = broker
                .node()
                .call(ControllerRequest::RemoteTopicPurged { topic_id: *id })
                .await;
            if let Err(e) = done {
                pass_failed(&t.name, -1, "recording a purged topic", &e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base: i64, end: i64, ts: i64, size: u64) -> RemoteSegment {
        RemoteSegment {
            id: uuid::Uuid::new_v4(),
            base_offset: base,
            end_offset: end,
            max_timestamp: ts,
            size_bytes: size,
            broker: 1,
            leader_epoch: 0,
            segment_leader_epochs: vec![],
            state: RemoteSegmentState::CopyFinished,
            event_ms: 0,
        }
    }

    #[test]
    fn retention_deletes_a_prefix_by_start_time_and_size() {
        let copied = vec![
            seg(0, 9, 100, 10),
            seg(10, 19, 200, 10),
            seg(20, 29, 300, 10),
        ];
        // Nothing expires with unlimited retention.
        assert_eq!(expired(&copied, -1, None, None, 0, false, 1000), 0);
        // DeleteRecords moved the start to 15: only the first segment lies wholly below.
        assert_eq!(expired(&copied, 15, None, None, 0, false, 1000), 1);
        // retention.ms 750 at 1000: max timestamps 100 and 200 are older than 250.
        assert_eq!(expired(&copied, -1, Some(750), None, 0, false, 1000), 2);
        // 30 remote + 5 local bytes: a segment goes only while what stays is still >= the limit.
        assert_eq!(expired(&copied, -1, None, Some(20), 5, false, 1000), 1);
        assert_eq!(expired(&copied, -1, None, Some(15), 5, false, 1000), 2);
        // Turned off with remote.log.delete.on.disable: everything.
        assert_eq!(expired(&copied, -1, None, None, 0, true, 1000), 3);
    }
}
