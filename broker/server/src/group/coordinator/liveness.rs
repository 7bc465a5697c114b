//! How classic members stay in a group or leave it: Heartbeat, LeaveGroup, and the timeouts
//! (expired sessions, rebalance and sync deadlines, the initial delay) that [`Coordinator::tick`]
//! drives from a background task; a lost member starts a rebalance.

use std::time::Instant;

use kafka_protocol::ResponseError;

use super::rebalance::{JoinOutcome, SyncOutcome};
use super::state::Group;
use super::{Coordinator, GroupState, OffsetsLog, no_error};

impl Coordinator {
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
                let all = cg.regex_refresh_due(now);
                let topics = if all {
                    log.all_topics()
                } else {
                    log.topics(&cg.subscribed_topics())
                };
                cg.expire(&topics, &self.limits.consumer, now);
                cg.refresh_topics(&topics, all);
                let changes = cg.changes(group_id);
                if !changes.is_empty() {
                    match log.append(group_id, super::consumer_records(changes.clone())) {
                        Ok(()) => cg.written(&changes),
                        // Still marked: the next tick writes them.
                        Err(e) => tracing::warn!(group = %group_id, error = %e.message,
                            "cannot persist consumer group state"),
                    }
                }
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
