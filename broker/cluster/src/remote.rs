//! Tiered storage metadata (KIP-405's RemoteLogMetadataManager state), kept in the metadata log
//! instead of Kafka's `__remote_log_metadata` topic: every node folds the same remote segment
//! list per partition, so a new leader continues copying where the old one stopped, followers
//! know which local segments are safely remote, and a deleted topic's remote data is remembered
//! until some broker has purged it from the store.
//!
//! Segments move through Kafka's states: COPY_SEGMENT_STARTED is logged before the upload (so a
//! crashed upload leaves a record naming its objects, which the next leader deletes),
//! COPY_SEGMENT_FINISHED after it, DELETE_SEGMENT_STARTED before removing objects and
//! DELETE_SEGMENT_FINISHED (which drops the entry) after.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::controller::staged::Staged;
use crate::image::Image;
use crate::record::MetadataRecord;
use crate::rpc::ControllerError;

/// Kafka's RemoteLogSegmentState.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RemoteSegmentState {
    CopyStarted,
    CopyFinished,
    DeleteStarted,
    DeleteFinished,
}

/// Kafka's RemoteLogSegmentMetadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteSegment {
    /// The object names' unique part: a re-upload of the same offsets gets a new id.
    pub id: Uuid,
    pub base_offset: i64,
    /// Last offset in the segment (inclusive).
    pub end_offset: i64,
    pub max_timestamp: i64,
    pub size_bytes: u64,
    /// Broker that copied it, and the leader epoch it led in.
    pub broker: i32,
    pub leader_epoch: i32,
    /// Leader epoch start offsets within the segment (KIP-405's segmentLeaderEpochs).
    pub segment_leader_epochs: Vec<(i32, i64)>,
    pub state: RemoteSegmentState,
    /// Wall time of the last state change (ms).
    pub event_ms: i64,
}

/// One partition's remote tier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemotePartition {
    /// By segment id; `segments()` sorts them by offset.
    pub segments: BTreeMap<Uuid, RemoteSegment>,
    /// The partition's log start set by remote retention or DeleteRecords (-1: none yet).
    pub log_start: i64,
}

impl RemotePartition {
    /// Copied segments, by base offset.
    pub fn copied(&self) -> Vec<&RemoteSegment> {
        let mut v: Vec<&RemoteSegment> = self
            .segments
            .values()
            .filter(|s| s.state == RemoteSegmentState::CopyFinished)
            .collect();
        v.sort_by_key(|s| s.base_offset);
        v
    }

    /// The last offset held remotely (-1 when nothing is): local segments at or below it may go.
    pub fn highest_copied_offset(&self) -> i64 {
        self.segments
            .values()
            .filter(|s| s.state == RemoteSegmentState::CopyFinished)
            .map(|s| s.end_offset)
            .max()
            .unwrap_or(-1)
    }

    /// The first offset readable from the remote tier, if any segment is there.
    pub fn start_offset(&self) -> Option<i64> {
        let first = self
            .segments
            .values()
            .filter(|s| s.state == RemoteSegmentState::CopyFinished)
            .map(|s| s.base_offset)
            .min()?;
        Some(first.max(self.log_start))
    }

    /// The leader epochs of the copied segments (epoch, start offset), oldest first, as their
    /// leader-epoch checkpoints would give them: only entries that raise both epoch and offset
    /// (overlapping segments repeat epochs).
    pub fn leader_epochs(&self) -> Vec<(i32, i64)> {
        let mut out: Vec<(i32, i64)> = Vec::new();
        for segment in self.copied() {
            for &(epoch, start) in &segment.segment_leader_epochs {
                if out.last().is_none_or(|&(e, o)| epoch > e && start > o) {
                    out.push((epoch, start));
                }
            }
        }
        out
    }

    /// The copied segment holding `offset`.
    pub fn segment_for(&self, offset: i64) -> Option<&RemoteSegment> {
        self.segments.values().find(|s| {
            s.state == RemoteSegmentState::CopyFinished
                && s.base_offset <= offset
                && offset <= s.end_offset
        })
    }
}

/// A topic's remote tier, by partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteTopic {
    pub name: String,
    pub id: Uuid,
    /// Shared per partition: a record about one partition copies only that partition's
    /// segments when the image is cloned for a change, not the whole topic's.
    pub partitions: BTreeMap<i32, std::sync::Arc<RemotePartition>>,
}

impl Image {
    pub fn remote_partition(&self, topic: &str, partition: i32) -> Option<&RemotePartition> {
        self.remote
            .get(topic)?
            .partitions
            .get(&partition)
            .map(std::sync::Arc::as_ref)
    }

    pub(crate) fn apply_remote(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::RemoteLogSegment {
                topic,
                partition,
                segment,
            } => {
                let Some(id) = self.topics.get(topic).map(|t| t.id) else {
                    return;
                };
                let t = std::sync::Arc::make_mut(self.remote.entry(topic.clone()).or_insert_with(
                    || {
                        std::sync::Arc::new(RemoteTopic {
                            name: topic.clone(),
                            id,
                            partitions: BTreeMap::new(),
                        })
                    },
                ));
                let p =
                    std::sync::Arc::make_mut(t.partitions.entry(*partition).or_insert_with(|| {
                        std::sync::Arc::new(RemotePartition {
                            segments: BTreeMap::new(),
                            log_start: -1,
                        })
                    }));
                if segment.state == RemoteSegmentState::DeleteFinished {
                    p.segments.remove(&segment.id);
                } else {
                    p.segments.insert(segment.id, segment.clone());
                }
            }
            MetadataRecord::RemoteLogStart {
                topic,
                partition,
                offset,
            } => {
                if let Some(t) = self.remote.get_mut(topic)
                    && let Some(p) = std::sync::Arc::make_mut(t).partitions.get_mut(partition)
                {
                    let p = std::sync::Arc::make_mut(p);
                    p.log_start = p.log_start.max(*offset);
                }
            }
            MetadataRecord::RemoteTopicPurged { topic_id } => {
                self.remote_purge.remove(topic_id);
            }
            _ => {}
        }
    }

    /// A deleted topic's remote data stays listed for purging until a broker reports it gone.
    pub(crate) fn remote_topic_deleted(&mut self, name: &str) {
        if let Some(t) = self.remote.remove(name)
            && t.partitions.values().any(|p| !p.segments.is_empty())
        {
            self.remote_purge.insert(t.id, t);
        }
    }
}

/// A partition leader's change of its remote tier, as sent to the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteLogUpdate {
    pub broker: i32,
    pub broker_epoch: i64,
    pub topic: String,
    pub partition: i32,
    pub leader_epoch: i32,
    /// Segments in their new states.
    pub segments: Vec<RemoteSegment>,
    /// The partition's new log start (remote retention, DeleteRecords).
    pub log_start: Option<i64>,
}

/// The controller's check of a leader's remote metadata update: only the partition's current
/// leader, in its current epoch, may change the remote tier (a deposed leader's late upload must
/// not be recorded over its successor's).
pub(crate) fn update(staged: &mut Staged<'_>, u: RemoteLogUpdate) -> Result<(), ControllerError> {
    crate::controller::brokers::check_epoch(staged, u.broker, u.broker_epoch)?;
    let (topic, partition) = (u.topic, u.partition);
    let state = staged
        .partition(&topic, partition)
        .ok_or_else(|| ControllerError::UnknownTopicOrPartition(format!("{topic}-{partition}")))?;
    if state.leader != u.broker || state.leader_epoch != u.leader_epoch {
        return Err(ControllerError::FencedLeaderEpoch(format!(
            "{topic}-{partition}: broker {} epoch {} does not lead (leader {} epoch {})",
            u.broker, u.leader_epoch, state.leader, state.leader_epoch
        )));
    }
    for segment in u.segments {
        staged.push(MetadataRecord::RemoteLogSegment {
            topic: topic.clone(),
            partition,
            segment,
        });
    }
    if let Some(offset) = u.log_start {
        staged.push(MetadataRecord::RemoteLogStart {
            topic,
            partition,
            offset,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::PartitionState;

    fn segment(base: i64, end: i64, state: RemoteSegmentState) -> RemoteSegment {
        RemoteSegment {
            id: Uuid::new_v4(),
            base_offset: base,
            end_offset: end,
            max_timestamp: 0,
            size_bytes: 100,
            broker: 1,
            leader_epoch: 0,
            segment_leader_epochs: vec![(0, base)],
            state,
            event_ms: 0,
        }
    }

    fn image_with_topic() -> Image {
        let mut image = Image::default();
        image.apply(
            1,
            &MetadataRecord::CreateTopic {
                name: "t".into(),
                id: Uuid::new_v4(),
                configs: BTreeMap::new(),
                partitions: vec![PartitionState::new(vec![1])],
            },
        );
        image
    }

    #[test]
    fn segments_fold_through_their_states_and_deleted_topics_wait_for_purge() {
        let mut image = image_with_topic();
        let mut a = segment(0, 99, RemoteSegmentState::CopyStarted);
        let rec = |s: &RemoteSegment| MetadataRecord::RemoteLogSegment {
            topic: "t".into(),
            partition: 0,
            segment: s.clone(),
        };
        image.apply(2, &rec(&a));
        let p = image.remote_partition("t", 0).unwrap();
        assert_eq!(p.highest_copied_offset(), -1);
        assert_eq!(p.start_offset(), None);
        a.state = RemoteSegmentState::CopyFinished;
        image.apply(3, &rec(&a));
        let b = segment(100, 199, RemoteSegmentState::CopyFinished);
        image.apply(4, &rec(&b));
        let p = image.remote_partition("t", 0).unwrap();
        assert_eq!(p.highest_copied_offset(), 199);
        assert_eq!(p.start_offset(), Some(0));
        assert_eq!(p.segment_for(150).unwrap().id, b.id);
        image.apply(
            5,
            &MetadataRecord::RemoteLogStart {
                topic: "t".into(),
                partition: 0,
                offset: 50,
            },
        );
        assert_eq!(
            image.remote_partition("t", 0).unwrap().start_offset(),
            Some(50)
        );
        a.state = RemoteSegmentState::DeleteFinished;
        image.apply(6, &rec(&a));
        let p = image.remote_partition("t", 0).unwrap();
        assert_eq!(p.copied().len(), 1);
        assert_eq!(p.start_offset(), Some(100));

        let id = image.topic("t").unwrap().id;
        image.apply(7, &MetadataRecord::DeleteTopic { name: "t".into() });
        assert!(image.remote.is_empty());
        assert!(image.remote_purge.contains_key(&id));
        image.apply(8, &MetadataRecord::RemoteTopicPurged { topic_id: id });
        assert!(image.remote_purge.is_empty());
    }
}
