//! The group coordinator, after Kafka's `GroupCoordinator`: one [`Coordinator`] holds every group
//! this broker coordinates behind one lock, and the API handlers call only it. Its methods are
//! split by concern over the shared per-group `state`: `rebalance` (classic JoinGroup and
//! SyncGroup), `liveness` (Heartbeat, LeaveGroup, timeouts), `consumer_groups` (the KIP-848
//! entry points), `offsets` (committed offsets, like Kafka's `OffsetMetadataManager`), `replay`
//! (loading from `__consumer_offsets`) and `admin` (list, describe, delete). Every change that
//! must survive a restart is written through [`OffsetsLog`] before it is acknowledged.
//!
//! Waiting is explicit: a JoinGroup or SyncGroup that must wait for other members gets a
//! `oneshot` receiver; the coordinator completes it when the rebalance moves on. Timeouts
//! (session, rebalance, initial delay) are driven by [`Coordinator::tick`], called by a
//! background task, so the logic stays synchronous and testable with an explicit clock.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use kafka_protocol::ResponseError;

use super::assignor::TopicsView;
use super::consumer::Settings;
use super::consumer_records::{ConsumerKey, ConsumerValue};
use super::records::{GroupValue, OffsetValue, RecordKey};
use crate::errors::ApiError;

mod admin;
mod consumer_groups;
mod liveness;
mod offsets;
mod rebalance;
mod replay;
mod state;
#[cfg(test)]
mod tests;

pub use admin::{GroupOffsetsView, GroupSummary, MemberSummary};
pub use consumer_groups::ConsumerGroupView;
pub use offsets::{CommitPartition, CommitRequest, Committed, FetchedOffsets, PendingCommit};
pub use rebalance::{JoinOutcome, JoinRequest, Reply, SyncOutcome, SyncRequest};

use state::Group;

/// Where the coordinator makes its state durable (the `__consumer_offsets` topic in the broker).
pub trait OffsetsLog {
    /// Appends records (key, value; `None` = tombstone) for one group, durably, in order.
    fn append(
        &self,
        group: &str,
        records: Vec<(RecordKey, Option<Record>)>,
    ) -> Result<(), ApiError>;
    /// Appends one producer's transactional offset commits (TxnOffsetCommit): a transactional
    /// batch of `producer_id` at `epoch`, made visible or dropped by the transaction's marker.
    fn append_transactional(
        &self,
        group: &str,
        producer_id: i64,
        epoch: i16,
        records: Vec<(RecordKey, Option<Record>)>,
    ) -> Result<(), ApiError> {
        let _ = (producer_id, epoch);
        self.append(group, records)
    }
    /// Whether `topic` has partition `partition` (commits to unknown partitions are refused).
    fn partition_exists(&self, topic: &str, partition: i32) -> bool;
    /// The named topics that exist, with ids and partition counts (for server-side assignment).
    fn topics(&self, names: &BTreeSet<String>) -> TopicsView;
    /// Every topic, for resolving regex subscriptions.
    fn all_topics(&self) -> TopicsView;
}

/// A value written to the offsets topic.
#[derive(Debug, Clone)]
pub enum Record {
    Offset(OffsetValue),
    Group(GroupValue),
    Consumer(ConsumerValue),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// Group-level limits from the broker config.
#[derive(Debug, Clone)]
pub struct Limits {
    pub initial_rebalance_delay: Duration,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub max_size: usize,
    pub offset_metadata_max_bytes: usize,
    pub offsets_retention_ms: i64,
    /// KIP-848 consumer groups.
    pub consumer: Settings,
}

/// Every group this broker coordinates, behind one lock: the API handlers' one entry point.
pub struct Coordinator {
    limits: Limits,
    groups: Mutex<HashMap<String, Group>>,
    seq: std::sync::atomic::AtomicU64,
}

impl Coordinator {
    pub fn new(limits: Limits) -> Self {
        Coordinator {
            limits,
            groups: Mutex::new(HashMap::new()),
            seq: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
        // State changes are completed before any call that could panic, so a poisoned map is
        // still consistent enough to keep serving.
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// KIP-848 group records as the offsets log takes them.
fn consumer_records(
    records: Vec<(ConsumerKey, Option<ConsumerValue>)>,
) -> Vec<(RecordKey, Option<Record>)> {
    records
        .into_iter()
        .map(|(k, v)| (RecordKey::Consumer(k), v.map(Record::Consumer)))
        .collect()
}

/// `ResponseError` has no "none"; code 0 is this sentinel.
pub fn no_error() -> ResponseError {
    ResponseError::Unknown(0)
}
