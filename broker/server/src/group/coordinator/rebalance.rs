//! The classic group protocol's rebalance, after Kafka's classic `GroupMetadataManager`: members
//! join (JoinGroup), the group picks a protocol and a leader, the leader's assignment is made
//! durable and handed out (SyncGroup). A membership change starts the next rebalance.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::state::{Group, Member};
use super::{Coordinator, GroupState, OffsetsLog, Record};
use crate::errors::ApiError;
use crate::group::records::RecordKey;

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
    pub(super) fn error(e: ResponseError, member_id: &str) -> Self {
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
    pub(super) fn error(e: ResponseError) -> Self {
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

fn new_member_id(client_id: &str) -> String {
    format!("{client_id}-{}", Uuid::new_v4())
}

impl Coordinator {
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
        // An empty KIP-848 group becomes a classic one: its records go, or a reload would bring
        // it back beside the classic members.
        if let Some(cg) = group.consumer.take() {
            let tombstones = cg.tombstones();
            if !tombstones.is_empty()
                && let Err(e) = log.append(&group_id, super::consumer_records(tombstones))
            {
                group.consumer = Some(cg);
                return Reply::Now(JoinOutcome::error(e.error, &member_id));
            }
        }
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

    pub(super) fn prepare_rebalance(&self, group: &mut Group, now: Instant, now_ms: i64) {
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
    pub(super) fn try_complete_join(
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
