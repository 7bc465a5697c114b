//! The per-group state that the coordinator's one lock guards: a classic group's members and
//! rebalance progress, its committed offsets, and the KIP-848 group when it runs that protocol.
//! Every concern of the coordinator works on these same structs, so a call sees one consistent
//! group.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::GroupState;
use super::rebalance::{JoinOutcome, SyncOutcome};
use crate::group::consumer::ConsumerGroup;
use crate::group::records::{GroupValue, MemberValue, OffsetValue};

/// A classic group member, with the JoinGroup/SyncGroup it is waiting on, if any.
pub(super) struct Member {
    pub(super) instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) session_timeout: Duration,
    pub(super) rebalance_timeout: Duration,
    pub(super) protocols: Vec<(String, Bytes)>,
    pub(super) assignment: Bytes,
    pub(super) join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    pub(super) sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
    /// Order of joining, so the first member can lead and the leader choice is stable.
    pub(super) joined_seq: u64,
    pub(super) last_heartbeat: Instant,
}

impl Member {
    pub(super) fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    pub(super) fn awaiting(&self) -> bool {
        self.join_waiter.is_some() || self.sync_waiter.is_some()
    }

    pub(super) fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

static NEXT_INCARNATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One group: classic membership and rebalance progress, committed offsets, and the KIP-848
/// group when it runs that protocol.
pub(super) struct Group {
    pub(super) state: GroupState,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol: Option<String>,
    pub(super) generation: i32,
    pub(super) leader: Option<String>,
    pub(super) members: HashMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, valid until the deadline.
    pub(super) pending: HashMap<String, Instant>,
    pub(super) rebalance_deadline: Option<Instant>,
    pub(super) initial_delay_until: Option<Instant>,
    pub(super) sync_deadline: Option<Instant>,
    pub(super) offsets: BTreeMap<(String, i32), OffsetValue>,
    /// Append order of the commit each offset came from, so commits that become durable out of
    /// order still leave the newest one visible. Offsets replayed from the log have none.
    pub(super) offset_seqs: HashMap<(String, i32), u64>,
    /// Transactional offset commits (TxnOffsetCommit) by producer id, waiting for their
    /// transaction's marker: visible once it commits, dropped if it aborts.
    pub(super) pending_txn: HashMap<i64, BTreeMap<(String, i32), OffsetValue>>,
    /// Unique per in-memory group: a commit pending while its group is deleted and created
    /// again must not land in the new one.
    pub(super) incarnation: u64,
    /// Wall-clock ms of the last state change (Kafka's currentStateTimestamp), for expiry.
    pub(super) state_timestamp_ms: i64,
    /// Set when the group runs the KIP-848 protocol (a group id is one kind at a time).
    pub(super) consumer: Option<ConsumerGroup>,
}

impl Group {
    pub(super) fn new(now_ms: i64) -> Self {
        Group {
            state: GroupState::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: HashMap::new(),
            pending: HashMap::new(),
            rebalance_deadline: None,
            initial_delay_until: None,
            sync_deadline: None,
            offsets: BTreeMap::new(),
            offset_seqs: HashMap::new(),
            pending_txn: HashMap::new(),
            incarnation: NEXT_INCARNATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            state_timestamp_ms: now_ms,
            consumer: None,
        }
    }

    /// A KIP-848 group with members: classic calls are refused while it has any.
    pub(super) fn is_active_consumer_group(&self) -> bool {
        self.consumer.as_ref().is_some_and(|c| !c.is_empty())
    }

    pub(super) fn member_by_instance(&self, instance: &str) -> Option<String> {
        self.members
            .iter()
            .find(|(_, m)| m.instance_id.as_deref() == Some(instance))
            .map(|(id, _)| id.clone())
    }

    /// Protocols every member supports, in no particular order.
    pub(super) fn candidate_protocols(&self) -> Option<HashSet<String>> {
        let mut iter = self.members.values();
        let first = iter.next()?;
        let mut set: HashSet<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in iter {
            let names: HashSet<&String> = m.protocols.iter().map(|(n, _)| n).collect();
            set.retain(|n| names.contains(n));
        }
        Some(set)
    }

    /// Kafka's vote: each member votes for its most preferred candidate; most votes wins, ties
    /// go to the protocol that sorts first (deterministic).
    pub(super) fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols()?;
        let mut votes: BTreeMap<&String, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                *votes.entry(name).or_default() += 1;
            }
        }
        let max = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|(_, v)| *v == max)
            .map(|(n, _)| n.clone())
    }

    pub(super) fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    pub(super) fn to_value(&self) -> GroupValue {
        let mut members: Vec<(&String, &Member)> = self.members.iter().collect();
        members.sort_by_key(|(_, m)| m.joined_seq);
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp_ms,
            members: members
                .into_iter()
                .map(|(id, m)| MemberValue {
                    member_id: id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}
