//! Committed offsets, after Kafka's `OffsetMetadataManager`: OffsetCommit (validated against
//! the group's membership, then appended), OffsetFetch, OffsetDelete, and the expiry of offsets
//! of groups that stayed empty past `offsets.retention.minutes`.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::state::Group;
use super::{Coordinator, GroupState, OffsetsLog, Record, no_error};
use crate::group::records::{OffsetValue, RecordKey};

/// One partition of an OffsetCommit.
pub struct CommitPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

pub struct CommitRequest {
    /// Set for TxnOffsetCommit: the transactional producer (id, epoch) whose transaction the
    /// offsets belong to.
    pub producer: Option<(i64, i16)>,
    pub group_id: String,
    pub generation: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub partitions: Vec<CommitPartition>,
}

/// OffsetFetch's answer: per topic, per partition, the committed offset if any.
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<Committed>)>)>;

/// A committed offset as OffsetFetch reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// Offsets appended to the offsets topic but not yet visible: in a cluster a commit becomes
/// visible (to OffsetFetch, lag, expiry) only once the offsets partition's high watermark
/// covers it, as in Kafka, so no client can read an offset that a coordinator failover loses.
#[derive(Debug)]
#[must_use = "apply it once durable, or drop it"]
pub struct PendingCommit {
    group: String,
    /// A transactional commit's producer: applying it only stages the offsets for the marker.
    producer_id: Option<i64>,
    incarnation: u64,
    seq: u64,
    offsets: Vec<((String, i32), OffsetValue)>,
}

impl Coordinator {
    /// OffsetCommit, visible at once: returns one error per partition, in request order.
    pub fn commit(
        &self,
        log: &dyn OffsetsLog,
        req: CommitRequest,
        now: Instant,
        now_ms: i64,
    ) -> Vec<ResponseError> {
        let (errors, pending) = self.commit_pending(log, req, now, now_ms);
        if let Some(p) = pending {
            self.apply_commit(p);
        }
        errors
    }

    /// Makes a commit from [`Coordinator::commit_pending`] visible, unless a newer commit of
    /// the same partition already is or the group it was made in is gone.
    pub fn apply_commit(&self, pending: PendingCommit) {
        let mut groups = self.lock();
        let Some(group) = groups
            .get_mut(&pending.group)
            .filter(|g| g.incarnation == pending.incarnation)
        else {
            return;
        };
        if let Some(pid) = pending.producer_id {
            group
                .pending_txn
                .entry(pid)
                .or_default()
                .extend(pending.offsets);
            return;
        }
        for (key, value) in pending.offsets {
            if group
                .offset_seqs
                .get(&key)
                .is_none_or(|seq| *seq < pending.seq)
            {
                group.offset_seqs.insert(key.clone(), pending.seq);
                group.offsets.insert(key, value);
            }
        }
    }

    /// OffsetCommit's first half: validates and appends to the offsets log, returning one error
    /// per partition in request order and the accepted offsets, which stay invisible until
    /// [`Coordinator::apply_commit`].
    pub fn commit_pending(
        &self,
        log: &dyn OffsetsLog,
        req: CommitRequest,
        now: Instant,
        now_ms: i64,
    ) -> (Vec<ResponseError>, Option<PendingCommit>) {
        let all = |e: ResponseError| (vec![e; req.partitions.len()], None);
        if req.group_id.is_empty() {
            return all(ResponseError::InvalidGroupId);
        }
        let mut groups = self.lock();
        if !groups.contains_key(&req.group_id) {
            if req.generation >= 0 {
                return all(ResponseError::IllegalGeneration);
            }
            groups.insert(req.group_id.clone(), Group::new(now_ms));
        }
        let Some(group) = groups.get_mut(&req.group_id) else {
            return all(ResponseError::CoordinatorNotAvailable);
        };
        // KIP-447: a transactional commit without member information is not checked against
        // the group's membership.
        let simple = if req.producer.is_some() {
            req.generation < 0 && req.member_id.is_empty()
        } else {
            req.generation < 0
                && group.state == GroupState::Empty
                && !group.is_active_consumer_group()
        };
        if let Some(cg) = group
            .consumer
            .as_ref()
            .filter(|c| !c.is_empty())
            .filter(|_| !simple)
        {
            // KIP-848: the generation field carries the member epoch.
            match cg.member_epoch(&req.member_id) {
                None => return all(ResponseError::UnknownMemberId),
                Some(epoch) if epoch != req.generation => {
                    return all(ResponseError::StaleMemberEpoch);
                }
                Some(_) => {}
            }
        } else if !simple {
            if group.state == GroupState::CompletingRebalance {
                return all(ResponseError::RebalanceInProgress);
            }
            if let Some(inst) = &req.group_instance_id {
                match group.member_by_instance(inst) {
                    Some(id) if id == req.member_id => {}
                    Some(_) => return all(ResponseError::FencedInstanceId),
                    None => return all(ResponseError::UnknownMemberId),
                }
            }
            let Some(member) = group.members.get_mut(&req.member_id) else {
                return all(ResponseError::UnknownMemberId);
            };
            if req.generation != group.generation {
                return all(ResponseError::IllegalGeneration);
            }
            member.last_heartbeat = now;
        }
        let mut results = Vec::with_capacity(req.partitions.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for p in &req.partitions {
            let metadata = p.metadata.clone().unwrap_or_default();
            let error = if !log.partition_exists(&p.topic, p.partition) {
                ResponseError::UnknownTopicOrPartition
            } else if metadata.len() > self.limits.offset_metadata_max_bytes {
                ResponseError::OffsetMetadataTooLarge
            } else {
                let value = OffsetValue {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata,
                    commit_timestamp: now_ms,
                };
                records.push((
                    RecordKey::Offset {
                        group: req.group_id.clone(),
                        topic: p.topic.clone(),
                        partition: p.partition,
                    },
                    Some(Record::Offset(value.clone())),
                ));
                accepted.push(((p.topic.clone(), p.partition), value, results.len()));
                no_error()
            };
            results.push(error);
        }
        let mut pending = None;
        if !records.is_empty() {
            let appended = match req.producer {
                Some((pid, epoch)) => log.append_transactional(&req.group_id, pid, epoch, records),
                None => log.append(&req.group_id, records),
            };
            match appended {
                Ok(()) => {
                    // Taken under the groups lock, like the append, so seq order is log order.
                    pending = Some(PendingCommit {
                        group: req.group_id.clone(),
                        producer_id: req.producer.map(|(pid, _)| pid),
                        incarnation: group.incarnation,
                        seq: self.next_seq(),
                        offsets: accepted.into_iter().map(|(k, v, _)| (k, v)).collect(),
                    });
                }
                Err(e) => {
                    for (_, _, index) in accepted {
                        results[index] = e.error;
                    }
                }
            }
        }
        (results, pending)
    }

    /// A transaction's marker reached the offsets topic: the producer's staged offsets become
    /// committed (`commit`) or are dropped, in every group it committed to.
    pub fn complete_txn(&self, producer_id: i64, commit: bool) {
        let mut groups = self.lock();
        for group in groups.values_mut() {
            let Some(staged) = group.pending_txn.remove(&producer_id) else {
                continue;
            };
            if commit {
                let seq = self.next_seq();
                for (key, value) in staged {
                    group.offset_seqs.insert(key.clone(), seq);
                    group.offsets.insert(key, value);
                }
            }
        }
    }

    /// Replay of a transactional offset commit read back from the log: staged until its marker.
    pub fn load_txn_offset(
        &self,
        producer_id: i64,
        group: String,
        topic: String,
        partition: i32,
        value: OffsetValue,
        now_ms: i64,
    ) {
        self.lock()
            .entry(group)
            .or_insert_with(|| Group::new(now_ms))
            .pending_txn
            .entry(producer_id)
            .or_default()
            .insert((topic, partition), value);
    }

    /// KIP-447: whether `group` has a transactional commit of `topic`-`partition` still waiting
    /// for its marker (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT then).
    pub fn has_unstable_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        self.lock()
            .get(group)
            .is_some_and(|g| g.pending_txn.values().any(|o| o.contains_key(&key)))
    }

    /// OffsetFetch: `None` topics means every committed offset of the group.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> FetchedOffsets {
        let groups = self.lock();
        let offsets = groups.get(group_id).map(|g| &g.offsets);
        let committed = |topic: &str, p: i32| {
            offsets
                .and_then(|o| o.get(&(topic.to_string(), p)))
                .map(|v| Committed {
                    offset: v.offset,
                    leader_epoch: v.leader_epoch,
                    metadata: v.metadata.clone(),
                })
        };
        match wanted {
            Some(topics) => topics
                .into_iter()
                .map(|(t, ps)| {
                    let parts = ps.iter().map(|p| (*p, committed(&t, *p))).collect();
                    (t, parts)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<Committed>)>> = BTreeMap::new();
                if let Some(o) = offsets {
                    for ((t, p), _) in o.iter() {
                        by_topic
                            .entry(t.clone())
                            .or_default()
                            .push((*p, committed(t, *p)));
                    }
                }
                by_topic.into_iter().collect()
            }
        }
    }

    /// OffsetDelete: per partition; offsets of topics the live members subscribe to are kept.
    pub fn delete_offsets(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        partitions: &[(String, i32)],
        subscribed: impl Fn(&[Bytes]) -> HashSet<String>,
    ) -> Result<Vec<ResponseError>, ResponseError> {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Err(ResponseError::GroupIdNotFound);
        };
        let protocol = group.protocol.clone().unwrap_or_default();
        let subscriptions: Vec<Bytes> = group
            .members
            .values()
            .map(|m| m.metadata_for(&protocol))
            .collect();
        let in_use = match &group.consumer {
            Some(cg) => cg.subscribed_topics().into_iter().collect(),
            None if group.members.is_empty() => HashSet::new(),
            None => subscribed(&subscriptions),
        };
        let mut results = Vec::with_capacity(partitions.len());
        let mut records = Vec::new();
        let mut targets = Vec::new();
        for (topic, partition) in partitions {
            if in_use.contains(topic) {
                results.push(ResponseError::GroupSubscribedToTopic);
                continue;
            }
            results.push(no_error());
            if group.offsets.contains_key(&(topic.clone(), *partition)) {
                records.push((
                    RecordKey::Offset {
                        group: group_id.to_string(),
                        topic: topic.clone(),
                        partition: *partition,
                    },
                    None,
                ));
                targets.push((topic.clone(), *partition));
            }
        }
        if !records.is_empty() {
            log.append(group_id, records).map_err(|e| e.error)?;
            for t in targets {
                group.offsets.remove(&t);
            }
        }
        Ok(results)
    }

    /// Deletes offsets of groups that have been empty longer than `offsets.retention.minutes`
    /// (Kafka 2.1+ semantics: the clock starts when the group becomes empty, or at the commit for
    /// groups that only store offsets). Returns how many offsets expired.
    pub fn expire_offsets(&self, log: &dyn OffsetsLog, now_ms: i64) -> usize {
        let retention = self.limits.offsets_retention_ms;
        let mut groups = self.lock();
        let mut expired_total = 0;
        let mut dead = Vec::new();
        for (group_id, group) in groups.iter_mut() {
            if group.state != GroupState::Empty {
                continue;
            }
            let since = group.state_timestamp_ms;
            let expired: Vec<(String, i32)> = group
                .offsets
                .iter()
                .filter(|(_, v)| now_ms - v.commit_timestamp.max(since) > retention)
                .map(|(k, _)| k.clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            let records = expired
                .iter()
                .map(|(topic, partition)| {
                    (
                        RecordKey::Offset {
                            group: group_id.clone(),
                            topic: topic.clone(),
                            partition: *partition,
                        },
                        None,
                    )
                })
                .collect();
            if log.append(group_id, records).is_ok() {
                for k in &expired {
                    group.offsets.remove(k);
                }
                expired_total += expired.len();
                if group.offsets.is_empty() && group.members.is_empty() {
                    dead.push(group_id.clone());
                }
            }
        }
        for g in dead {
            let tombstone = vec![(RecordKey::Group { group: g.clone() }, None)];
            if log.append(&g, tombstone).is_ok() {
                groups.remove(&g);
            }
        }
        expired_total
    }
}
