//! The classic group protocol's state machine, after Kafka's `GroupCoordinator`: members join
//! (JoinGroup), the leader assigns (SyncGroup), members heartbeat until a membership change starts
//! the next rebalance; committed offsets live beside the group. Every change that must survive a
//! restart is written through [`OffsetsLog`] before it is acknowledged.
//!
//! Waiting is explicit: a JoinGroup or SyncGroup that must wait for other members gets a
//! `oneshot` receiver; the coordinator completes it when the rebalance moves on. Timeouts
//! (session, rebalance, initial delay) are driven by [`Coordinator::tick`], called by a
//! background task, so the logic stays synchronous and testable with an explicit clock.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::assignor::TopicsView;
use super::consumer::{ConsumerGroup, Heartbeat, HeartbeatReply, MemberView, Settings};
use super::records::{GroupValue, MemberValue, OffsetValue, RecordKey};
use crate::errors::ApiError;

/// Where the coordinator makes its state durable (the `__consumer_offsets` topic in the broker).
pub trait OffsetsLog {
    /// Appends records (key, value; `None` = tombstone) for one group, durably, in order.
    fn append(
        &self,
        group: &str,
        records: Vec<(RecordKey, Option<Record>)>,
    ) -> Result<(), ApiError>;
    /// Whether `topic` has partition `partition` (commits to unknown partitions are refused).
    fn partition_exists(&self, topic: &str, partition: i32) -> bool;
    /// The named topics that exist, with ids and partition counts (for server-side assignment).
    fn topics(&self, names: &BTreeSet<String>) -> TopicsView;
}

/// A value written to the offsets topic.
#[derive(Debug, Clone)]
pub enum Record {
    Offset(OffsetValue),
    Group(GroupValue),
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

/// What a JoinGroup gets back (immediately or when the rebalance completes).
#[derive(Debug, Clone, Default)]
pub struct JoinOutcome {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only for the leader: every member with its metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinOutcome {
    fn error(e: ResponseError, member_id: &str) -> Self {
        JoinOutcome {
            error: e.code(),
            generation: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    fn error(e: ResponseError) -> Self {
        SyncOutcome {
            error: e.code(),
            ..Default::default()
        }
    }
}

pub enum Reply<T> {
    Now(T),
    Wait(oneshot::Receiver<T>),
}

pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member must first get its id (MEMBER_ID_REQUIRED).
    pub require_known_member_id: bool,
}

pub struct SyncRequest {
    pub group_id: String,
    pub generation: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// One partition of an OffsetCommit.
pub struct CommitPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

pub struct CommitRequest {
    pub group_id: String,
    pub generation: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub partitions: Vec<CommitPartition>,
}

/// For metrics: group id, member count, committed (topic, partition, offset).
pub type GroupOffsetsView = (String, usize, Vec<(String, i32, i64)>);

/// ConsumerGroupDescribe's view: group epoch, assignment epoch, state, assignor, members.
pub type ConsumerGroupView = (i32, i32, &'static str, String, Vec<MemberView>);

/// OffsetFetch's answer: per topic, per partition, the committed offset if any.
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<Committed>)>)>;

/// A committed offset as OffsetFetch reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

pub struct MemberSummary {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

pub struct GroupSummary {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberSummary>,
}

struct Member {
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
    /// Order of joining, so the first member can lead and the leader choice is stable.
    joined_seq: u64,
    last_heartbeat: Instant,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn awaiting(&self) -> bool {
        self.join_waiter.is_some() || self.sync_waiter.is_some()
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

static NEXT_INCARNATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Offsets appended to the offsets topic but not yet visible: in a cluster a commit becomes
/// visible (to OffsetFetch, lag, expiry) only once the offsets partition's high watermark
/// covers it, as in Kafka, so no client can read an offset that a coordinator failover loses.
#[derive(Debug)]
#[must_use = "apply it once durable, or drop it"]
pub struct PendingCommit {
    group: String,
    incarnation: u64,
    seq: u64,
    offsets: Vec<((String, i32), OffsetValue)>,
}

struct Group {
    state: GroupState,
    protocol_type: Option<String>,
    protocol: Option<String>,
    generation: i32,
    leader: Option<String>,
    members: HashMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, valid until the deadline.
    pending: HashMap<String, Instant>,
    rebalance_deadline: Option<Instant>,
    initial_delay_until: Option<Instant>,
    sync_deadline: Option<Instant>,
    offsets: BTreeMap<(String, i32), OffsetValue>,
    /// Append order of the commit each offset came from, so commits that become durable out of
    /// order still leave the newest one visible. Offsets replayed from the log have none.
    offset_seqs: HashMap<(String, i32), u64>,
    /// Unique per in-memory group: a commit pending while its group is deleted and created
    /// again must not land in the new one.
    incarnation: u64,
    /// Wall-clock ms of the last state change (Kafka's currentStateTimestamp), for expiry.
    state_timestamp_ms: i64,
    /// Set when the group runs the KIP-848 protocol (a group id is one kind at a time).
    consumer: Option<ConsumerGroup>,
}

impl Group {
    fn new(now_ms: i64) -> Self {
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
            incarnation: NEXT_INCARNATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            state_timestamp_ms: now_ms,
            consumer: None,
        }
    }

    /// A KIP-848 group with members: classic calls are refused while it has any.
    fn is_active_consumer_group(&self) -> bool {
        self.consumer.as_ref().is_some_and(|c| !c.is_empty())
    }

    fn member_by_instance(&self, instance: &str) -> Option<String> {
        self.members
            .iter()
            .find(|(_, m)| m.instance_id.as_deref() == Some(instance))
            .map(|(id, _)| id.clone())
    }

    /// Protocols every member supports, in no particular order.
    fn candidate_protocols(&self) -> Option<HashSet<String>> {
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
    fn select_protocol(&self) -> Option<String> {
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

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    fn to_value(&self) -> GroupValue {
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

pub struct Coordinator {
    limits: Limits,
    groups: Mutex<HashMap<String, Group>>,
    seq: std::sync::atomic::AtomicU64,
}

fn new_member_id(client_id: &str) -> String {
    format!("{client_id}-{}", Uuid::new_v4())
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

    /// Forgets every group stored in offsets partition `partition` (of `partitions`): this
    /// broker stopped leading it, so another coordinator owns those groups now. Waiting members
    /// are dropped and retry against the new coordinator. Returns how many groups went.
    pub fn unload_partition(&self, partition: i32, partitions: i32) -> usize {
        let mut groups = self.lock();
        let before = groups.len();
        groups.retain(|id, _| super::records::partition_for(id, partitions) != partition);
        before - groups.len()
    }

    /// Rebuilds state from `__consumer_offsets` records, in log order (later records win).
    pub fn load_record(&self, key: RecordKey, value: Option<Record>, now: Instant, now_ms: i64) {
        let mut groups = self.lock();
        match (key, value) {
            (
                RecordKey::Offset {
                    group,
                    topic,
                    partition,
                },
                Some(Record::Offset(v)),
            ) => {
                groups
                    .entry(group)
                    .or_insert_with(|| Group::new(now_ms))
                    .offsets
                    .insert((topic, partition), v);
            }
            (
                RecordKey::Offset {
                    group,
                    topic,
                    partition,
                },
                None,
            ) => {
                if let Some(g) = groups.get_mut(&group) {
                    g.offsets.remove(&(topic, partition));
                }
            }
            (RecordKey::Group { group }, Some(Record::Group(v))) => {
                let g = groups.entry(group).or_insert_with(|| Group::new(now_ms));
                g.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
                g.protocol = v.protocol;
                g.generation = v.generation;
                g.leader = v.leader;
                g.state_timestamp_ms = if v.current_state_timestamp > 0 {
                    v.current_state_timestamp
                } else {
                    now_ms
                };
                g.members.clear();
                let protocol = g.protocol.clone().unwrap_or_default();
                for m in v.members {
                    // Restored members must heartbeat within their session timeout, as in Kafka.
                    g.members.insert(
                        m.member_id,
                        Member {
                            instance_id: m.group_instance_id,
                            client_id: m.client_id,
                            client_host: m.client_host,
                            session_timeout: Duration::from_millis(
                                m.session_timeout_ms.max(0) as u64
                            ),
                            rebalance_timeout: Duration::from_millis(
                                m.rebalance_timeout_ms.max(0) as u64
                            ),
                            protocols: vec![(protocol.clone(), m.subscription)],
                            assignment: m.assignment,
                            join_waiter: None,
                            sync_waiter: None,
                            joined_seq: self.next_seq(),
                            last_heartbeat: now,
                        },
                    );
                }
                g.state = if g.members.is_empty() {
                    GroupState::Empty
                } else {
                    GroupState::Stable
                };
            }
            (RecordKey::Group { group }, None) => {
                // A group tombstone deletes the group; offsets were tombstoned before it.
                if groups.get(&group).is_some_and(|g| g.offsets.is_empty()) {
                    groups.remove(&group);
                } else if let Some(g) = groups.get_mut(&group) {
                    g.members.clear();
                    g.state = GroupState::Empty;
                }
            }
            _ => {}
        }
    }

    pub fn join(
        &self,
        log: &dyn OffsetsLog,
        req: JoinRequest,
        now: Instant,
        now_ms: i64,
    ) -> Reply<JoinOutcome> {
        let member_id = req.member_id.clone();
        let group_id = req.group_id.clone();
        if group_id.is_empty() {
            return Reply::Now(JoinOutcome::error(
                ResponseError::InvalidGroupId,
                &member_id,
            ));
        }
        if req.session_timeout_ms < self.limits.min_session_timeout_ms
            || req.session_timeout_ms > self.limits.max_session_timeout_ms
        {
            return Reply::Now(JoinOutcome::error(
                ResponseError::InvalidSessionTimeout,
                &member_id,
            ));
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Reply::Now(JoinOutcome::error(
                ResponseError::InconsistentGroupProtocol,
                &member_id,
            ));
        }
        let mut groups = self.lock();
        if !member_id.is_empty() && !groups.contains_key(&req.group_id) {
            return Reply::Now(JoinOutcome::error(
                ResponseError::UnknownMemberId,
                &member_id,
            ));
        }
        let group = groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group::new(now_ms));
        if group.is_active_consumer_group() {
            return Reply::Now(JoinOutcome::error(
                ResponseError::InconsistentGroupProtocol,
                &member_id,
            ));
        }
        group.consumer = None;
        // A new member must speak the group's protocol type and share a protocol with everyone.
        if group.state != GroupState::Empty || !group.members.is_empty() {
            let type_ok = group.protocol_type.as_deref() == Some(req.protocol_type.as_str());
            let shares = group
                .candidate_protocols()
                .is_none_or(|c| req.protocols.iter().any(|(n, _)| c.contains(n)));
            let only_member = group.members.len() == 1 && group.members.contains_key(&member_id);
            if !only_member && (!type_ok || !shares) {
                return Reply::Now(JoinOutcome::error(
                    ResponseError::InconsistentGroupProtocol,
                    &member_id,
                ));
            }
        }
        let rebalance_timeout =
            Duration::from_millis(req.rebalance_timeout_ms.max(req.session_timeout_ms) as u64);
        let session_timeout = Duration::from_millis(req.session_timeout_ms as u64);

        if member_id.is_empty() {
            if let Some(instance) = &req.group_instance_id {
                if let Some(old_id) = group.member_by_instance(instance) {
                    return self.rejoin_static(log, group, &group_id, old_id, req, now, now_ms);
                }
            } else if req.require_known_member_id {
                let new_id = new_member_id(&req.client_id);
                group.pending.insert(new_id.clone(), now + session_timeout);
                return Reply::Now(JoinOutcome::error(ResponseError::MemberIdRequired, &new_id));
            }
            if group.members.len() >= self.limits.max_size {
                return Reply::Now(JoinOutcome::error(ResponseError::GroupMaxSizeReached, ""));
            }
            let new_id = new_member_id(&req.client_id);
            return self.add_and_wait(
                log,
                group,
                &group_id,
                new_id,
                req,
                rebalance_timeout,
                session_timeout,
                now,
                now_ms,
            );
        }

        if group.pending.remove(&member_id).is_some() {
            if group.members.len() >= self.limits.max_size {
                return Reply::Now(JoinOutcome::error(
                    ResponseError::GroupMaxSizeReached,
                    &member_id,
                ));
            }
            return self.add_and_wait(
                log,
                group,
                &group_id,
                member_id,
                req,
                rebalance_timeout,
                session_timeout,
                now,
                now_ms,
            );
        }
        let Some(member) = group.members.get_mut(&member_id) else {
            return Reply::Now(JoinOutcome::error(
                ResponseError::UnknownMemberId,
                &member_id,
            ));
        };
        if req.group_instance_id.is_some() && member.instance_id != req.group_instance_id {
            return Reply::Now(JoinOutcome::error(
                ResponseError::FencedInstanceId,
                &member_id,
            ));
        }
        member.last_heartbeat = now;
        member.session_timeout = session_timeout;
        member.rebalance_timeout = rebalance_timeout;
        member.client_id = req.client_id.clone();
        let unchanged = member.same_protocols(&req.protocols);
        member.protocols = req.protocols;
        let is_leader = group.leader.as_deref() == Some(member_id.as_str());
        match group.state {
            GroupState::PreparingRebalance => {
                let (tx, rx) = oneshot::channel();
                member.join_waiter = Some(tx);
                self.try_complete_join(log, &req.group_id, group, now, now_ms);
                Reply::Wait(rx)
            }
            GroupState::CompletingRebalance | GroupState::Stable if unchanged && !is_leader => {
                // Nothing changed: answer with the current generation, as Kafka does.
                Reply::Now(current_generation(group, &member_id, false))
            }
            GroupState::CompletingRebalance if unchanged => {
                Reply::Now(current_generation(group, &member_id, true))
            }
            _ => {
                let (tx, rx) = oneshot::channel();
                member.join_waiter = Some(tx);
                self.prepare_rebalance(group, now, now_ms);
                self.try_complete_join(log, &req.group_id, group, now, now_ms);
                Reply::Wait(rx)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_and_wait(
        &self,
        log: &dyn OffsetsLog,
        group: &mut Group,
        group_id: &str,
        member_id: String,
        req: JoinRequest,
        rebalance_timeout: Duration,
        session_timeout: Duration,
        now: Instant,
        now_ms: i64,
    ) -> Reply<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if group.members.is_empty() {
            group.protocol_type = Some(req.protocol_type.clone());
        }
        group.members.insert(
            member_id,
            Member {
                instance_id: req.group_instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout,
                rebalance_timeout,
                protocols: req.protocols,
                assignment: Bytes::new(),
                join_waiter: Some(tx),
                sync_waiter: None,
                joined_seq: self.next_seq(),
                last_heartbeat: now,
            },
        );
        if group.state == GroupState::PreparingRebalance {
            // Kafka's InitialDelayedJoin: each new member of a fresh group extends the wait, up
            // to the rebalance timeout, so a starting fleet lands in one generation.
            if let (Some(until), Some(deadline)) =
                (group.initial_delay_until, group.rebalance_deadline)
                && until > now
            {
                group.initial_delay_until =
                    Some((now + self.limits.initial_rebalance_delay).min(deadline));
            }
        } else {
            self.prepare_rebalance(group, now, now_ms);
        }
        self.try_complete_join(log, group_id, group, now, now_ms);
        Reply::Wait(rx)
    }

    #[allow(clippy::too_many_arguments)]
    fn rejoin_static(
        &self,
        log: &dyn OffsetsLog,
        group: &mut Group,
        group_id: &str,
        old_id: String,
        req: JoinRequest,
        now: Instant,
        now_ms: i64,
    ) -> Reply<JoinOutcome> {
        let Some(mut member) = group.members.remove(&old_id) else {
            return Reply::Now(JoinOutcome::error(ResponseError::UnknownMemberId, ""));
        };
        // The old incarnation is fenced: its pending calls fail.
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(JoinOutcome::error(ResponseError::FencedInstanceId, &old_id));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(SyncOutcome::error(ResponseError::FencedInstanceId));
        }
        let new_id = new_member_id(&req.client_id);
        let unchanged = member.same_protocols(&req.protocols);
        member.protocols = req.protocols;
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.last_heartbeat = now;
        let was_leader = group.leader.as_deref() == Some(old_id.as_str());
        if was_leader {
            group.leader = Some(new_id.clone());
        }
        group.members.insert(new_id.clone(), member);
        if group.state == GroupState::Stable && unchanged && !was_leader {
            // KIP-345: a static member coming back with the same subscription keeps its
            // assignment without a rebalance; only the new member id must be made durable.
            if let Err(e) = self.persist_group(log, group_id, group) {
                return Reply::Now(JoinOutcome::error(e.error, &new_id));
            }
            return Reply::Now(current_generation(group, &new_id, false));
        }
        let (tx, rx) = oneshot::channel();
        if let Some(m) = group.members.get_mut(&new_id) {
            m.join_waiter = Some(tx);
        }
        if group.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(group, now, now_ms);
        }
        self.try_complete_join(log, group_id, group, now, now_ms);
        Reply::Wait(rx)
    }

    fn prepare_rebalance(&self, group: &mut Group, now: Instant, now_ms: i64) {
        // Pending SyncGroups of the old generation must rejoin.
        for m in group.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncOutcome::error(ResponseError::RebalanceInProgress));
            }
        }
        let from_empty = group.state == GroupState::Empty;
        group.state = GroupState::PreparingRebalance;
        group.state_timestamp_ms = now_ms;
        group.sync_deadline = None;
        let deadline = now + group.max_rebalance_timeout();
        group.rebalance_deadline = Some(deadline);
        group.initial_delay_until =
            from_empty.then(|| (now + self.limits.initial_rebalance_delay).min(deadline));
    }

    /// Completes the join phase when every member has rejoined (and a fresh group's initial delay
    /// has passed), or when the rebalance timeout forces it.
    fn try_complete_join(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        group: &mut Group,
        now: Instant,
        now_ms: i64,
    ) {
        if group.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = group.members.values().all(|m| m.join_waiter.is_some());
        let delay_over = group.initial_delay_until.is_none_or(|t| now >= t);
        let timed_out = group.rebalance_deadline.is_some_and(|t| now >= t);
        if !(timed_out || (all_joined && delay_over)) {
            return;
        }
        // Members that did not rejoin in time are out (Kafka's max.poll.interval.ms behaviour).
        let gone: Vec<String> = group
            .members
            .iter()
            .filter(|(_, m)| m.join_waiter.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            group.members.remove(&id);
        }
        group.generation = group.generation.wrapping_add(1);
        group.state_timestamp_ms = now_ms;
        group.rebalance_deadline = None;
        group.initial_delay_until = None;
        if group.members.is_empty() {
            group.state = GroupState::Empty;
            group.protocol = None;
            group.leader = None;
            let _ = self.persist_group(log, group_id, group);
            return;
        }
        group.protocol = group.select_protocol();
        let leader_present = group
            .leader
            .as_ref()
            .is_some_and(|l| group.members.contains_key(l));
        if !leader_present {
            group.leader = group
                .members
                .iter()
                .min_by_key(|(_, m)| m.joined_seq)
                .map(|(id, _)| id.clone());
        }
        group.state = GroupState::CompletingRebalance;
        group.sync_deadline = Some(now + group.max_rebalance_timeout());
        let protocol = group.protocol.clone().unwrap_or_default();
        let leader = group.leader.clone().unwrap_or_default();
        let mut roster: Vec<(u64, String, Option<String>, Bytes)> = group
            .members
            .iter()
            .map(|(id, m)| {
                (
                    m.joined_seq,
                    id.clone(),
                    m.instance_id.clone(),
                    m.metadata_for(&protocol),
                )
            })
            .collect();
        roster.sort_by_key(|(seq, ..)| *seq);
        let roster: Vec<(String, Option<String>, Bytes)> = roster
            .into_iter()
            .map(|(_, id, inst, md)| (id, inst, md))
            .collect();
        for (id, m) in group.members.iter_mut() {
            m.assignment = Bytes::new();
            m.last_heartbeat = now;
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinOutcome {
                    error: 0,
                    generation: group.generation,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol.clone(),
                    leader: leader.clone(),
                    member_id: id.clone(),
                    members: if *id == leader {
                        roster.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
    }

    pub fn sync(
        &self,
        log: &dyn OffsetsLog,
        req: SyncRequest,
        now: Instant,
        now_ms: i64,
    ) -> Reply<SyncOutcome> {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(&req.group_id) else {
            return Reply::Now(SyncOutcome::error(ResponseError::UnknownMemberId));
        };
        let Some(member) = group.members.get_mut(&req.member_id) else {
            return Reply::Now(SyncOutcome::error(ResponseError::UnknownMemberId));
        };
        if req.group_instance_id.is_some() && member.instance_id != req.group_instance_id {
            return Reply::Now(SyncOutcome::error(ResponseError::FencedInstanceId));
        }
        if req.generation != group.generation {
            return Reply::Now(SyncOutcome::error(ResponseError::IllegalGeneration));
        }
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != group.protocol_type.as_ref())
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|n| Some(n) != group.protocol.as_ref())
        {
            return Reply::Now(SyncOutcome::error(ResponseError::InconsistentGroupProtocol));
        }
        member.last_heartbeat = now;
        match group.state {
            GroupState::Empty => Reply::Now(SyncOutcome::error(ResponseError::UnknownMemberId)),
            GroupState::PreparingRebalance => {
                Reply::Now(SyncOutcome::error(ResponseError::RebalanceInProgress))
            }
            GroupState::Stable => Reply::Now(SyncOutcome {
                error: 0,
                protocol_type: group.protocol_type.clone(),
                protocol_name: group.protocol.clone(),
                assignment: member.assignment.clone(),
            }),
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                member.sync_waiter = Some(tx);
                if group.leader.as_deref() == Some(req.member_id.as_str()) {
                    let assigned: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    for (id, m) in group.members.iter_mut() {
                        m.assignment = assigned.get(id).cloned().unwrap_or_default();
                    }
                    match self.persist_group(log, &req.group_id, group) {
                        Ok(()) => {
                            group.state = GroupState::Stable;
                            group.state_timestamp_ms = now_ms;
                            group.sync_deadline = None;
                            for m in group.members.values_mut() {
                                if let Some(w) = m.sync_waiter.take() {
                                    let _ = w.send(SyncOutcome {
                                        error: 0,
                                        protocol_type: group.protocol_type.clone(),
                                        protocol_name: group.protocol.clone(),
                                        assignment: m.assignment.clone(),
                                    });
                                }
                            }
                        }
                        Err(e) => {
                            // Could not make the assignment durable: everyone starts over.
                            for m in group.members.values_mut() {
                                m.assignment = Bytes::new();
                                if let Some(w) = m.sync_waiter.take() {
                                    let _ = w.send(SyncOutcome::error(e.error));
                                }
                            }
                            self.prepare_rebalance(group, now, now_ms);
                        }
                    }
                }
                Reply::Wait(rx)
            }
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
    ) -> ResponseError {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return ResponseError::UnknownMemberId;
        };
        let state = group.state;
        let current = group.generation;
        let Some(member) = group.members.get_mut(member_id) else {
            return ResponseError::UnknownMemberId;
        };
        if instance_id.is_some() && member.instance_id.as_deref() != instance_id {
            return ResponseError::FencedInstanceId;
        }
        match state {
            GroupState::Empty => ResponseError::UnknownMemberId,
            GroupState::PreparingRebalance => {
                member.last_heartbeat = now;
                ResponseError::RebalanceInProgress
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                if generation != current {
                    return ResponseError::IllegalGeneration;
                }
                member.last_heartbeat = now;
                no_error()
            }
        }
    }

    /// LeaveGroup: returns the error per (member id, instance id) in request order.
    pub fn leave(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        leaving: &[(String, Option<String>)],
        now: Instant,
        now_ms: i64,
    ) -> Result<Vec<ResponseError>, ResponseError> {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        let mut results = Vec::with_capacity(leaving.len());
        let mut removed = false;
        for (member_id, instance) in leaving {
            let target = match instance {
                Some(inst) => match group.member_by_instance(inst) {
                    Some(id) if member_id.is_empty() || *member_id == id => Ok(id),
                    Some(_) => Err(ResponseError::FencedInstanceId),
                    None => Err(ResponseError::UnknownMemberId),
                },
                None if group.pending.remove(member_id).is_some() => {
                    results.push(no_error());
                    continue;
                }
                None if group.members.contains_key(member_id) => Ok(member_id.clone()),
                None => Err(ResponseError::UnknownMemberId),
            };
            match target {
                Ok(id) => {
                    remove_member(group, &id, ResponseError::UnknownMemberId);
                    removed = true;
                    results.push(no_error());
                }
                Err(e) => results.push(e),
            }
        }
        if removed {
            self.after_membership_loss(log, group_id, group, now, now_ms);
        }
        Ok(results)
    }

    fn after_membership_loss(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        group: &mut Group,
        now: Instant,
        now_ms: i64,
    ) {
        match group.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(group, now, now_ms);
                self.try_complete_join(log, group_id, group, now, now_ms);
            }
            GroupState::PreparingRebalance => {
                self.try_complete_join(log, group_id, group, now, now_ms)
            }
            GroupState::Empty => {}
        }
    }

    /// Timeouts: expired sessions, rebalance and sync deadlines, the initial delay, stale
    /// pending member ids. Called periodically.
    pub fn tick(&self, log: &dyn OffsetsLog, now: Instant, now_ms: i64) {
        let mut groups = self.lock();
        for (group_id, group) in groups.iter_mut() {
            if let Some(cg) = group.consumer.as_mut() {
                let topics = log.topics(&cg.subscribed_topics());
                cg.expire(&topics, &self.limits.consumer, now);
                cg.refresh_topics(&topics);
                continue;
            }
            group.pending.retain(|_, deadline| *deadline > now);
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| {
                    !m.awaiting() && now.duration_since(m.last_heartbeat) > m.session_timeout
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in &expired {
                remove_member(group, id, ResponseError::UnknownMemberId);
            }
            if !expired.is_empty() {
                self.after_membership_loss(log, group_id, group, now, now_ms);
            }
            match group.state {
                GroupState::PreparingRebalance => {
                    self.try_complete_join(log, group_id, group, now, now_ms)
                }
                GroupState::CompletingRebalance
                    if group.sync_deadline.is_some_and(|t| now >= t) =>
                {
                    // The leader never sent the assignment: drop members that did not sync.
                    let lagging: Vec<String> = group
                        .members
                        .iter()
                        .filter(|(_, m)| m.sync_waiter.is_none())
                        .map(|(id, _)| id.clone())
                        .collect();
                    for id in &lagging {
                        remove_member(group, id, ResponseError::RebalanceInProgress);
                    }
                    self.prepare_rebalance(group, now, now_ms);
                    self.try_complete_join(log, group_id, group, now, now_ms);
                }
                _ => {}
            }
        }
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
        let simple = req.generation < 0
            && group.state == GroupState::Empty
            && !group.is_active_consumer_group();
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
            match log.append(&req.group_id, records) {
                Ok(()) => {
                    // Taken under the groups lock, like the append, so seq order is log order.
                    pending = Some(PendingCommit {
                        group: req.group_id.clone(),
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

    /// ListGroups: (group id, protocol type, state name, group type).
    pub fn list(&self) -> Vec<(String, String, &'static str, &'static str)> {
        let groups = self.lock();
        let mut out: Vec<_> = groups
            .iter()
            .map(|(id, g)| match &g.consumer {
                Some(c) => (id.clone(), "consumer".to_string(), c.state(), "consumer"),
                None => (
                    id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state.name(),
                    "classic",
                ),
            })
            .collect();
        out.sort();
        out
    }

    /// For metrics: per group, its member count and committed offsets (topic, partition, offset).
    pub fn lag_view(&self) -> Vec<GroupOffsetsView> {
        let groups = self.lock();
        groups
            .iter()
            .map(|(id, g)| {
                let members =
                    g.members.len() + g.consumer.as_ref().map(|c| c.members().len()).unwrap_or(0);
                let offsets = g
                    .offsets
                    .iter()
                    .map(|((t, p), v)| (t.clone(), *p, v.offset))
                    .collect();
                (id.clone(), members, offsets)
            })
            .collect()
    }

    /// Whether the group runs the KIP-848 protocol (classic DescribeGroups does not describe it).
    pub fn is_consumer_group(&self, group_id: &str) -> bool {
        self.lock()
            .get(group_id)
            .is_some_and(|g| g.consumer.is_some())
    }

    /// ConsumerGroupHeartbeat.
    pub fn consumer_heartbeat(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        hb: Heartbeat,
        now: Instant,
        now_ms: i64,
    ) -> Result<HeartbeatReply, (ResponseError, String)> {
        if group_id.is_empty() {
            return Err((
                ResponseError::InvalidGroupId,
                "The group id must not be empty".into(),
            ));
        }
        let mut groups = self.lock();
        let group = groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(now_ms));
        if !group.members.is_empty() {
            return Err((
                ResponseError::InconsistentGroupProtocol,
                format!(
                    "Group {group_id} is a classic group with members; it cannot use the consumer protocol"
                ),
            ));
        }
        let cg = group.consumer.get_or_insert_with(ConsumerGroup::default);
        let mut wanted = cg.subscribed_topics();
        if let Some(names) = &hb.subscribed_topic_names {
            wanted.extend(names.iter().cloned());
        }
        let topics = log.topics(&wanted);
        cg.heartbeat(hb, &topics, now)
    }

    /// ConsumerGroupDescribe: (group epoch, assignment epoch, state, assignor, members).
    pub fn consumer_describe(&self, group_id: &str) -> Option<ConsumerGroupView> {
        let groups = self.lock();
        let cg = groups.get(group_id)?.consumer.as_ref()?;
        Some((
            cg.group_epoch,
            cg.assignment_epoch,
            cg.state(),
            cg.assignor_name(),
            cg.members(),
        ))
    }

    pub fn heartbeat_interval(&self) -> Duration {
        self.limits.consumer.heartbeat_interval
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupSummary> {
        let groups = self.lock();
        let g = groups.get(group_id)?;
        let protocol = g.protocol.clone().unwrap_or_default();
        let stable = g.state == GroupState::Stable;
        let mut members: Vec<(&String, &Member)> = g.members.iter().collect();
        members.sort_by_key(|(_, m)| m.joined_seq);
        Some(GroupSummary {
            group_id: group_id.to_string(),
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: members
                .into_iter()
                .map(|(id, m)| MemberSummary {
                    member_id: id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        })
    }

    /// DeleteGroups: only empty groups; offsets and metadata are tombstoned.
    pub fn delete_group(&self, log: &dyn OffsetsLog, group_id: &str) -> ResponseError {
        let mut groups = self.lock();
        let Some(group) = groups.get(group_id) else {
            return ResponseError::GroupIdNotFound;
        };
        if group.state != GroupState::Empty
            || !group.members.is_empty()
            || group.is_active_consumer_group()
        {
            return ResponseError::NonEmptyGroup;
        }
        let mut records: Vec<(RecordKey, Option<Record>)> = group
            .offsets
            .keys()
            .map(|(topic, partition)| {
                (
                    RecordKey::Offset {
                        group: group_id.to_string(),
                        topic: topic.clone(),
                        partition: *partition,
                    },
                    None,
                )
            })
            .collect();
        records.push((
            RecordKey::Group {
                group: group_id.to_string(),
            },
            None,
        ));
        match log.append(group_id, records) {
            Ok(()) => {
                groups.remove(group_id);
                no_error()
            }
            Err(e) => e.error,
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

    fn persist_group(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        group: &Group,
    ) -> Result<(), ApiError> {
        log.append(
            group_id,
            vec![(
                RecordKey::Group {
                    group: group_id.to_string(),
                },
                Some(Record::Group(group.to_value())),
            )],
        )
    }
}

fn remove_member(group: &mut Group, id: &str, error: ResponseError) {
    if let Some(mut m) = group.members.remove(id) {
        if let Some(w) = m.join_waiter.take() {
            let _ = w.send(JoinOutcome::error(error, id));
        }
        if let Some(w) = m.sync_waiter.take() {
            let _ = w.send(SyncOutcome::error(error));
        }
    }
    if group.leader.as_deref() == Some(id) {
        group.leader = None;
    }
}

fn current_generation(group: &Group, member_id: &str, with_members: bool) -> JoinOutcome {
    let protocol = group.protocol.clone().unwrap_or_default();
    let members = if with_members {
        let mut roster: Vec<(&String, &Member)> = group.members.iter().collect();
        roster.sort_by_key(|(_, m)| m.joined_seq);
        roster
            .into_iter()
            .map(|(id, m)| (id.clone(), m.instance_id.clone(), m.metadata_for(&protocol)))
            .collect()
    } else {
        Vec::new()
    };
    JoinOutcome {
        error: 0,
        generation: group.generation,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol.clone(),
        leader: group.leader.clone().unwrap_or_default(),
        member_id: member_id.to_string(),
        members,
    }
}

/// `ResponseError` has no "none"; code 0 is this sentinel.
pub fn no_error() -> ResponseError {
    ResponseError::Unknown(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Records what would be written to `__consumer_offsets`; every topic has 4 partitions.
    #[derive(Default)]
    struct MemLog {
        written: RefCell<Vec<(RecordKey, Option<Record>)>>,
        fail: std::cell::Cell<bool>,
    }

    impl OffsetsLog for MemLog {
        fn append(
            &self,
            _group: &str,
            records: Vec<(RecordKey, Option<Record>)>,
        ) -> Result<(), ApiError> {
            if self.fail.get() {
                return Err(ApiError::new(
                    ResponseError::CoordinatorNotAvailable,
                    "disk full",
                ));
            }
            self.written.borrow_mut().extend(records);
            Ok(())
        }
        fn partition_exists(&self, topic: &str, partition: i32) -> bool {
            topic != "missing" && (0..4).contains(&partition)
        }
        fn topics(&self, names: &BTreeSet<String>) -> TopicsView {
            names
                .iter()
                .filter(|n| n.as_str() != "missing")
                .map(|n| (n.clone(), (Uuid::from_u128(n.len() as u128), 4)))
                .collect()
        }
    }

    fn coordinator() -> Coordinator {
        Coordinator::new(Limits {
            initial_rebalance_delay: Duration::ZERO,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            max_size: 10,
            offset_metadata_max_bytes: 16,
            offsets_retention_ms: 60_000,
            consumer: Settings {
                session_timeout: Duration::from_secs(45),
                heartbeat_interval: Duration::from_secs(5),
            },
        })
    }

    fn join_req(member: &str, instance: Option<&str>, protocols: &[&str]) -> JoinRequest {
        JoinRequest {
            group_id: "g".into(),
            member_id: member.into(),
            group_instance_id: instance.map(String::from),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from_static(b"md")))
                .collect(),
            require_known_member_id: false,
        }
    }

    /// A simple (group-less) commit of `offset` to `t` partition 0 of group `g`.
    fn simple_commit(offset: i64) -> CommitRequest {
        CommitRequest {
            group_id: "g".into(),
            generation: -1,
            member_id: String::new(),
            group_instance_id: None,
            partitions: vec![CommitPartition {
                topic: "t".into(),
                partition: 0,
                offset,
                leader_epoch: -1,
                metadata: None,
            }],
        }
    }

    fn fetched_offset(c: &Coordinator) -> Option<i64> {
        let fetched = c.fetch_offsets("g", Some(vec![("t".into(), vec![0])]));
        fetched[0].1[0].1.as_ref().map(|c| c.offset)
    }

    #[test]
    fn a_pending_commit_is_invisible_until_applied_and_never_beats_a_newer_one() {
        let c = coordinator();
        let log = MemLog::default();
        let t0 = Instant::now();
        let (errors, first) = c.commit_pending(&log, simple_commit(10), t0, 0);
        assert_eq!(errors, vec![no_error()]);
        assert_eq!(log.written.borrow().len(), 1, "appended at once");
        assert_eq!(fetched_offset(&c), None, "not visible before it is durable");

        // A second commit is appended after the first but becomes durable first.
        let (_, second) = c.commit_pending(&log, simple_commit(20), t0, 0);
        c.apply_commit(second.unwrap());
        assert_eq!(fetched_offset(&c), Some(20));
        c.apply_commit(first.unwrap());
        assert_eq!(
            fetched_offset(&c),
            Some(20),
            "the older commit does not win"
        );

        // A commit pending while its group is deleted does not bring the group back.
        let (_, orphan) = c.commit_pending(&log, simple_commit(30), t0, 0);
        assert_eq!(c.delete_group(&log, "g"), no_error());
        c.apply_commit(orphan.unwrap());
        assert_eq!(fetched_offset(&c), None);
        assert!(c.describe("g").is_none(), "the group stays deleted");

        // A failed append leaves nothing pending.
        log.fail.set(true);
        let (errors, none) = c.commit_pending(&log, simple_commit(40), t0, 0);
        assert_eq!(errors, vec![ResponseError::CoordinatorNotAvailable]);
        assert!(none.is_none());
    }

    fn now_join(c: &Coordinator, log: &MemLog, req: JoinRequest, now: Instant) -> JoinOutcome {
        match c.join(log, req, now, 0) {
            Reply::Now(o) => o,
            Reply::Wait(mut rx) => rx.try_recv().expect("join should have completed"),
        }
    }

    fn sync_req(member: &str, generation: i32, assignments: Vec<(String, Bytes)>) -> SyncRequest {
        SyncRequest {
            group_id: "g".into(),
            generation,
            member_id: member.into(),
            group_instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments,
        }
    }

    #[test]
    fn single_member_joins_syncs_and_commits() {
        let (c, log, t0) = (coordinator(), MemLog::default(), Instant::now());
        let j = now_join(&c, &log, join_req("", None, &["range"]), t0);
        assert_eq!(j.error, 0);
        assert_eq!(j.generation, 1);
        assert_eq!(j.leader, j.member_id);
        assert_eq!(j.members.len(), 1);
        let asg = vec![(j.member_id.clone(), Bytes::from_static(b"p0"))];
        let s = match c.sync(&log, sync_req(&j.member_id, 1, asg), t0, 0) {
            Reply::Wait(mut rx) => rx.try_recv().unwrap(),
            Reply::Now(o) => o,
        };
        assert_eq!((s.error, &s.assignment[..]), (0, &b"p0"[..]));
        assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
        assert_eq!(c.heartbeat("g", 1, &j.member_id, None, t0), no_error());
        let errors = c.commit(
            &log,
            CommitRequest {
                group_id: "g".into(),
                generation: 1,
                member_id: j.member_id.clone(),
                group_instance_id: None,
                partitions: vec![CommitPartition {
                    topic: "t".into(),
                    partition: 0,
                    offset: 42,
                    leader_epoch: 3,
                    metadata: Some("meta".into()),
                }],
            },
            t0,
            5,
        );
        assert_eq!(errors, vec![no_error()]);
        let fetched = c.fetch_offsets("g", Some(vec![("t".into(), vec![0, 1])]));
        assert_eq!(
            fetched[0].1,
            vec![
                (
                    0,
                    Some(Committed {
                        offset: 42,
                        leader_epoch: 3,
                        metadata: "meta".into()
                    })
                ),
                (1, None)
            ]
        );
        // Group metadata then the offset were written.
        let written = log.written.borrow();
        assert!(matches!(
            written.first(),
            Some((RecordKey::Group { .. }, Some(Record::Group(_))))
        ));
        assert!(matches!(
            written.last(),
            Some((
                RecordKey::Offset { partition: 0, .. },
                Some(Record::Offset(_))
            ))
        ));
    }

    #[test]
    fn member_id_required_then_join() {
        let (c, log, t0) = (coordinator(), MemLog::default(), Instant::now());
        let mut req = join_req("", None, &["range"]);
        req.require_known_member_id = true;
        let first = now_join(&c, &log, req, t0);
        assert_eq!(first.error, ResponseError::MemberIdRequired.code());
        assert!(first.member_id.starts_with("client-"));
        let mut again = join_req(&first.member_id, None, &["range"]);
        again.require_known_member_id = true;
        let j = now_join(&c, &log, again, t0);
        assert_eq!((j.error, j.generation), (0, 1));
        assert_eq!(j.member_id, first.member_id);
    }

    #[test]
    fn second_member_triggers_rebalance_and_stale_generation_is_rejected() {
        let (c, log, t0) = (coordinator(), MemLog::default(), Instant::now());
        let a = now_join(&c, &log, join_req("", None, &["range", "roundrobin"]), t0);
        let _ = c.sync(&log, sync_req(&a.member_id, 1, vec![]), t0, 0);
        // B joins: A learns through its heartbeat and rejoins.
        let b_wait = match c.join(&log, join_req("", None, &["roundrobin"]), t0, 0) {
            Reply::Wait(rx) => rx,
            Reply::Now(o) => panic!("B should wait, got {o:?}"),
        };
        assert_eq!(
            c.heartbeat("g", 1, &a.member_id, None, t0),
            ResponseError::RebalanceInProgress
        );
        let a2 = now_join(
            &c,
            &log,
            join_req(&a.member_id, None, &["range", "roundrobin"]),
            t0,
        );
        let mut b_wait = b_wait;
        let b = b_wait.try_recv().unwrap();
        assert_eq!((a2.generation, b.generation), (2, 2));
        // Only the protocol both support can be chosen.
        assert_eq!(a2.protocol_name.as_deref(), Some("roundrobin"));
        assert_eq!(a2.leader, a.member_id, "the old leader keeps leading");
        assert_eq!(a2.members.len(), 2);
        assert!(b.members.is_empty(), "only the leader gets the roster");
        // A SyncGroup for the old generation is refused.
        match c.sync(&log, sync_req(&b.member_id, 1, vec![]), t0, 0) {
            Reply::Now(o) => assert_eq!(o.error, ResponseError::IllegalGeneration.code()),
            Reply::Wait(_) => panic!("stale sync must not wait"),
        }
        // So is a commit from an unknown member and one from the old generation.
        let commit = |member: &str, generation| {
            c.commit(
                &log,
                CommitRequest {
                    group_id: "g".into(),
                    generation,
                    member_id: member.into(),
                    group_instance_id: None,
                    partitions: vec![CommitPartition {
                        topic: "t".into(),
                        partition: 1,
                        offset: 1,
                        leader_epoch: -1,
                        metadata: None,
                    }],
                },
                t0,
                0,
            )
        };
        // The group is CompletingRebalance until the leader syncs.
        assert_eq!(
            commit(&b.member_id, 2),
            vec![ResponseError::RebalanceInProgress]
        );
        let _ = c.sync(&log, sync_req(&a.member_id, 2, vec![]), t0, 0);
        assert_eq!(commit("ghost", 2), vec![ResponseError::UnknownMemberId]);
        assert_eq!(
            commit(&b.member_id, 1),
            vec![ResponseError::IllegalGeneration]
        );
        assert_eq!(commit(&b.member_id, 2), vec![no_error()]);
    }

    #[test]
    fn inconsistent_protocol_and_unknown_topics_get_kafka_errors() {
        let (c, log, t0) = (coordinator(), MemLog::default(), Instant::now());
        let a = now_join(&c, &log, join_req("", None, &["range"]), t0);
        let mut other = join_req("", None, &["range"]);
        other.protocol_type = "connect".into();
        assert_eq!(
            now_join(&c, &log, other, t0).error,
            ResponseError::InconsistentGroupProtocol.code()
        );
        assert_eq!(
            now_join(&c, &log, join_req("", None, &["sticky"]), t0).error,
            ResponseError::InconsistentGroupProtocol.code()
        );
        let mut bad_session = join_req("", None, &["range"]);
        bad_session.session_timeout_ms = 10;
        assert_eq!(
            now_join(&c, &log, bad_session, t0).error,
            ResponseError::InvalidSessionTimeout.code()
        );
        let _ = c.sync(&log, sync_req(&a.member_id, 1, vec![]), t0, 0);
        let errors = c.commit(
            &log,
            CommitRequest {
                group_id: "g".into(),
                generation: 1,
                member_id: a.member_id.clone(),
                group_instance_id: None,
                partitions: vec![
                    CommitPartition {
                        topic: "missing".into(),
                        partition: 0,
                        offset: 1,
                        leader_epoch: -1,
                        metadata: None,
                    },
                    CommitPartition {
                        topic: "t".into(),
                        partition: 9,
                        offset: 1,
                        leader_epoch: -1,
                        metadata: None,
                    },
                    CommitPartition {
                        topic: "t".into(),
                        partition: 0,
                        offset: 1,
                        leader_epoch: -1,
                        metadata: Some("x".repeat(17)),
                    },
                    CommitPartition {
                        topic: "t".into(),
                        partition: 1,
                        offset: 7,
                        leader_epoch: -1,
                        metadata: None,
                    },
                ],
            },
            t0,
            0,
        );
        assert_eq!(
            errors,
            vec![
                ResponseError::UnknownTopicOrPartition,
                ResponseError::UnknownTopicOrPartition,
                ResponseError::OffsetMetadataTooLarge,
                no_error()
            ]
        );
        // The group is still usable.
        assert_eq!(c.heartbeat("g", 1, &a.member_id, None, t0), no_error());
    }

    #[test]
    fn expired_session_removes_member_and_group_becomes_empty() {
        let (c, log, t0) = (coordinator(), MemLog::default(), Instant::now());
        let a = now_join(&c, &log, join_req("", None, &["range"]), t0);
        let _ = c.sync(&log, sync_req(&a.member_id, 1, vec![]), t0, 0);
        c.tick(&log, t0 + Duration::from_secs(5), 0);
        assert_eq!(c.describe("g").unwrap().members.len(), 1);
        c.tick(&log, t0 + Duration::from_secs(11), 0);
        let g = c.describe("g").unwrap();
        assert_eq!((g.state, g.members.len()), (GroupState::Empty, 0));
        assert_eq!(
            c.heartbeat("g", 1, &a.member_id, None, t0),
            ResponseError::UnknownMemberId
        );
    }

    #[test]
    fn member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout() {
        let (c, log, t0) = (coordinator(), MemLog::default(), Instant::now());
        let a = now_join(&c, &log, join_req("", None, &["range"]), t0);
        let _ = c.sync(&log, sync_req(&a.member_id, 1, vec![]), t0, 0);
        let mut b = match c.join(&log, join_req("", None, &["range"]), t0, 0) {
            Reply::Wait(rx) => rx,
            Reply::Now(o) => panic!("{o:?}"),
        };
        // A keeps heartbeating but never rejoins (stuck in processing, like max.poll.interval.ms).
        for s in [8, 16, 24] {
            let at = t0 + Duration::from_secs(s);
            assert_eq!(
                c.heartbeat("g", 1, &a.member_id, None, at),
                ResponseError::RebalanceInProgress
            );
            c.tick(&log, at, 0);
        }
        c.tick(&log, t0 + Duration::from_secs(29), 0);
        assert!(b.try_recv().is_err());
        c.tick(&log, t0 + Duration::from_secs(31), 0);
        let b = b.try_recv().unwrap();
        assert_eq!((b.error, b.generation), (0, 2));
        assert_eq!(b.leader, b.member_id);
        assert_eq!(c.describe("g").unwrap().members.len(), 1);
    }

    #[test]
    fn static_member_rejoins_without_rebalance_and_old_id_is_fenced() {
        let (c, log, t0) = (coordinator(), MemLog::default(), Instant::now());
        let a = now_join(&c, &log, join_req("", Some("i-a"), &["range"]), t0);
        let b = match c.join(&log, join_req("", Some("i-b"), &["range"]), t0, 0) {
            Reply::Wait(rx) => rx,
            Reply::Now(o) => panic!("{o:?}"),
        };
        let a2 = now_join(
            &c,
            &log,
            join_req(&a.member_id, Some("i-a"), &["range"]),
            t0,
        );
        let mut b = b;
        let b1 = b.try_recv().unwrap();
        let asg = vec![
            (a2.member_id.clone(), Bytes::from_static(b"A")),
            (b1.member_id.clone(), Bytes::from_static(b"B")),
        ];
        let _ = c.sync(&log, sync_req(&a2.member_id, 2, asg), t0, 0);
        // B restarts with the same instance id: same generation, same assignment, no rebalance.
        let b2 = now_join(&c, &log, join_req("", Some("i-b"), &["range"]), t0);
        assert_eq!((b2.error, b2.generation), (0, 2));
        assert_ne!(b2.member_id, b1.member_id);
        assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
        let s = match c.sync(&log, sync_req(&b2.member_id, 2, vec![]), t0, 0) {
            Reply::Now(o) => o,
            Reply::Wait(_) => panic!("stable group answers at once"),
        };
        assert_eq!(&s.assignment[..], b"B");
        assert_eq!(
            c.heartbeat("g", 2, &b1.member_id, None, t0),
            ResponseError::UnknownMemberId
        );
        assert_eq!(
            c.heartbeat("g", 2, &b2.member_id, Some("i-x"), t0),
            ResponseError::FencedInstanceId
        );
    }

    #[test]
    fn leave_empties_group_and_delete_requires_empty() {
        let (c, log, t0) = (coordinator(), MemLog::default(), Instant::now());
        let a = now_join(&c, &log, join_req("", None, &["range"]), t0);
        assert_eq!(c.delete_group(&log, "g"), ResponseError::NonEmptyGroup);
        assert_eq!(
            c.leave(&log, "g", &[(a.member_id.clone(), None)], t0, 0),
            Ok(vec![no_error()])
        );
        assert_eq!(c.describe("g").unwrap().state, GroupState::Empty);
        assert_eq!(c.delete_group(&log, "g"), no_error());
        assert!(c.describe("g").is_none());
        assert_eq!(c.delete_group(&log, "g"), ResponseError::GroupIdNotFound);
        assert!(matches!(
            log.written.borrow().last(),
            Some((RecordKey::Group { .. }, None))
        ));
    }

    #[test]
    fn failed_persistence_is_reported_not_acknowledged() {
        let (c, log, t0) = (coordinator(), MemLog::default(), Instant::now());
        log.fail.set(true);
        let errors = c.commit(&log, simple_commit(5), t0, 0);
        assert_eq!(errors, vec![ResponseError::CoordinatorNotAvailable]);
        assert_eq!(fetched_offset(&c), None);
    }

    #[test]
    fn state_reloads_from_records_and_offsets_expire_when_empty() {
        let (c, log, t0) = (coordinator(), MemLog::default(), Instant::now());
        let a = now_join(&c, &log, join_req("", None, &["range"]), t0);
        let _ = c.sync(
            &log,
            sync_req(
                &a.member_id,
                1,
                vec![(a.member_id.clone(), Bytes::from_static(b"X"))],
            ),
            t0,
            0,
        );
        let _ = c.commit(
            &log,
            CommitRequest {
                group_id: "g".into(),
                generation: 1,
                member_id: a.member_id.clone(),
                group_instance_id: None,
                partitions: vec![CommitPartition {
                    topic: "t".into(),
                    partition: 2,
                    offset: 9,
                    leader_epoch: 1,
                    metadata: Some("m".into()),
                }],
            },
            t0,
            1_000,
        );
        let restored = coordinator();
        for (k, v) in log.written.borrow().iter().cloned() {
            restored.load_record(k, v, t0, 1_000);
        }
        let g = restored.describe("g").unwrap();
        assert_eq!((g.state, g.members.len()), (GroupState::Stable, 1));
        assert_eq!(&g.members[0].assignment[..], b"X");
        assert_eq!(
            restored.heartbeat("g", 1, &a.member_id, None, t0),
            no_error()
        );
        assert_eq!(
            restored.fetch_offsets("g", None)[0].1,
            vec![(
                2,
                Some(Committed {
                    offset: 9,
                    leader_epoch: 1,
                    metadata: "m".into()
                })
            )]
        );
        // Not expired while the group has members, expired once it has been empty long enough.
        assert_eq!(restored.expire_offsets(&log, 1_000_000), 0);
        let _ = restored.leave(&log, "g", &[(a.member_id.clone(), None)], t0, 2_000);
        assert_eq!(restored.expire_offsets(&log, 2_000 + 59_000), 0);
        assert_eq!(restored.expire_offsets(&log, 2_000 + 61_000), 1);
        assert!(
            restored.describe("g").is_none(),
            "an empty group without offsets is deleted"
        );
    }
}
