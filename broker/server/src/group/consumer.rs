//! KIP-848 consumer groups (`group.protocol=consumer`): the broker owns the assignment. Every
//! membership or subscription change bumps the group epoch and recomputes the target assignment
//! with a server-side assignor; each member then converges on its target through its heartbeats:
//! first it is told to revoke what it must give up (its epoch stays), and once it has reported
//! them released it receives its new partitions and the new epoch. A partition is never given to
//! a member while another member still owns it, so no partition is ever consumed twice at once.
//!
//! Membership is kept in memory: after a broker restart members are unknown, get
//! UNKNOWN_MEMBER_ID and rejoin with epoch 0 (committed offsets are durable as for classic groups).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::assignor::{self, Assignment, TopicsView, Tp};

/// Member epoch of a member leaving the group for good.
pub const LEAVE_EPOCH: i32 = -1;
/// Member epoch of a static member leaving temporarily (it keeps its assignment).
pub const STATIC_LEAVE_EPOCH: i32 = -2;

pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// What the member owns now, when it reports it (`None` = unchanged since last time).
    pub owned: Option<BTreeSet<Tp>>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    /// Sent when it changed since the member last heard it.
    pub assignment: Option<BTreeSet<Tp>>,
}

#[derive(Debug, Clone)]
pub struct MemberView {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed: Vec<String>,
    pub assigned: BTreeSet<Tp>,
    pub target: BTreeSet<Tp>,
}

struct Member {
    epoch: i32,
    previous_epoch: i32,
    instance_id: Option<String>,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    rebalance_timeout: Duration,
    subscribed: Vec<String>,
    assignor: Option<String>,
    /// Partitions the member may consume now.
    assigned: BTreeSet<Tp>,
    /// Partitions it was told to give up and has not yet reported released.
    revoking: BTreeSet<Tp>,
    revoke_deadline: Option<Instant>,
    last_heartbeat: Instant,
    /// (epoch, assignment) last sent, to send the assignment only when it changes.
    last_sent: Option<(i32, BTreeSet<Tp>)>,
}

#[derive(Default)]
pub struct ConsumerGroup {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    members: BTreeMap<String, Member>,
    target: Assignment,
}

/// Config the state machine needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
}

impl ConsumerGroup {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn has_member(&self, id: &str) -> bool {
        self.members.contains_key(id)
    }

    pub fn member_epoch(&self, id: &str) -> Option<i32> {
        self.members.get(id).map(|m| m.epoch)
    }

    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter().cloned())
            .collect()
    }

    /// KIP-848's group states.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.group_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || !m.revoking.is_empty())
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    pub fn assignor_name(&self) -> String {
        self.members
            .values()
            .find_map(|m| m.assignor.clone())
            .unwrap_or_else(|| assignor::UNIFORM.to_string())
    }

    pub fn members(&self) -> Vec<MemberView> {
        self.members
            .iter()
            .map(|(id, m)| MemberView {
                member_id: id.clone(),
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                member_epoch: m.epoch,
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed: m.subscribed.clone(),
                assigned: m.assigned.clone(),
                target: self.target.get(id).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// Handles one ConsumerGroupHeartbeat.
    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        topics: &TopicsView,
        now: Instant,
    ) -> Result<HeartbeatReply, (ResponseError, String)> {
        if hb.subscribed_topic_regex.is_some() {
            return Err((
                ResponseError::InvalidRequest,
                "Regular-expression subscriptions are not supported yet; subscribe to topic names"
                    .into(),
            ));
        }
        if let Some(a) = &hb.server_assignor
            && a != assignor::UNIFORM
            && a != assignor::RANGE
        {
            return Err((
                ResponseError::UnsupportedAssignor,
                format!("Assignor {a} is not supported; use uniform or range"),
            ));
        }
        match hb.member_epoch {
            LEAVE_EPOCH | STATIC_LEAVE_EPOCH => {
                let epoch = hb.member_epoch;
                let id = hb.member_id.clone();
                if self.members.remove(&id).is_none() {
                    return Err((
                        ResponseError::UnknownMemberId,
                        format!("Member {id} is not in the group"),
                    ));
                }
                self.bump(topics);
                Ok(HeartbeatReply {
                    member_id: id,
                    member_epoch: epoch,
                    assignment: None,
                })
            }
            0 => self.join(hb, topics, now),
            epoch => {
                let id = hb.member_id.clone();
                let Some(member) = self.members.get_mut(&id) else {
                    return Err((
                        ResponseError::UnknownMemberId,
                        format!("Member {id} is not in the group"),
                    ));
                };
                let lost_reply = epoch == member.previous_epoch
                    && hb
                        .owned
                        .as_ref()
                        .is_none_or(|o| o.is_subset(&member.assigned));
                if epoch != member.epoch && !lost_reply {
                    return Err((
                        ResponseError::FencedMemberEpoch,
                        format!(
                            "Member epoch {epoch} is not the current epoch {}",
                            member.epoch
                        ),
                    ));
                }
                member.last_heartbeat = now;
                let mut changed = false;
                if let Some(names) = hb.subscribed_topic_names
                    && names != member.subscribed
                {
                    member.subscribed = names;
                    changed = true;
                }
                if hb.server_assignor.is_some() && hb.server_assignor != member.assignor {
                    member.assignor = hb.server_assignor;
                    changed = true;
                }
                if let Some(owned) = &hb.owned {
                    member.revoking.retain(|tp| owned.contains(tp));
                }
                if changed {
                    self.bump(topics);
                }
                Ok(self.reconcile(&id, now))
            }
        }
    }

    fn join(
        &mut self,
        hb: Heartbeat,
        topics: &TopicsView,
        now: Instant,
    ) -> Result<HeartbeatReply, (ResponseError, String)> {
        let Some(subscribed) = hb.subscribed_topic_names else {
            return Err((
                ResponseError::InvalidRequest,
                "SubscribedTopicNames must be set when joining".into(),
            ));
        };
        if hb.rebalance_timeout_ms <= 0 {
            return Err((
                ResponseError::InvalidRequest,
                "RebalanceTimeoutMs must be positive when joining".into(),
            ));
        }
        let id = if hb.member_id.is_empty() {
            Uuid::new_v4().to_string()
        } else {
            hb.member_id.clone()
        };
        // A static member replacing its previous incarnation takes over its identity.
        if let Some(instance) = &hb.instance_id {
            let old: Vec<String> = self
                .members
                .iter()
                .filter(|(mid, m)| m.instance_id.as_deref() == Some(instance) && **mid != id)
                .map(|(mid, _)| mid.clone())
                .collect();
            for o in old {
                self.members.remove(&o);
            }
        }
        // Epoch 0 with a known id means the member lost its state: it starts over.
        self.members.insert(
            id.clone(),
            Member {
                epoch: 0,
                previous_epoch: -1,
                instance_id: hb.instance_id,
                rack_id: hb.rack_id,
                client_id: hb.client_id,
                client_host: hb.client_host,
                rebalance_timeout: Duration::from_millis(hb.rebalance_timeout_ms as u64),
                subscribed,
                assignor: hb.server_assignor,
                assigned: BTreeSet::new(),
                revoking: BTreeSet::new(),
                revoke_deadline: None,
                last_heartbeat: now,
                last_sent: None,
            },
        );
        self.bump(topics);
        let mut reply = self.reconcile(&id, now);
        // A joining member always learns its (possibly empty) assignment.
        if reply.assignment.is_none() {
            reply.assignment = self.members.get(&id).map(|m| m.assigned.clone());
        }
        Ok(reply)
    }

    /// New group epoch and target assignment.
    fn bump(&mut self, topics: &TopicsView) {
        self.group_epoch += 1;
        let subscriptions: BTreeMap<String, Vec<String>> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.subscribed.clone()))
            .collect();
        let assignor = self.assignor_name();
        self.target = assignor::assign(&assignor, &subscriptions, topics, &self.target);
        self.assignment_epoch = self.group_epoch;
    }

    /// Recomputes the target when topics appear or grow, without a membership change.
    pub fn refresh_topics(&mut self, topics: &TopicsView) {
        let wanted: BTreeSet<Tp> = self
            .subscribed_topics()
            .iter()
            .filter_map(|t| topics.get(t))
            .flat_map(|(id, n)| (0..*n).map(move |p| (*id, p)))
            .collect();
        let targeted: BTreeSet<Tp> = self.target.values().flatten().copied().collect();
        if !self.members.is_empty() && wanted != targeted {
            self.bump(topics);
        }
    }

    /// Moves a member one step towards its target (KIP-848's CurrentAssignmentBuilder).
    fn reconcile(&mut self, id: &str, now: Instant) -> HeartbeatReply {
        let target = self.target.get(id).cloned().unwrap_or_default();
        let owned_by_others: BTreeSet<Tp> = self
            .members
            .iter()
            .filter(|(mid, _)| mid.as_str() != id)
            .flat_map(|(_, m)| m.assigned.iter().chain(m.revoking.iter()).copied())
            .collect();
        let assignment_epoch = self.assignment_epoch;
        let Some(member) = self.members.get_mut(id) else {
            return HeartbeatReply {
                member_id: id.to_string(),
                member_epoch: -1,
                assignment: None,
            };
        };
        if member.revoking.is_empty() {
            member.revoke_deadline = None;
            let to_revoke: BTreeSet<Tp> = member.assigned.difference(&target).copied().collect();
            if !to_revoke.is_empty() {
                // Step 1: give up what moves elsewhere; the epoch stays until that is done.
                member.assigned.retain(|tp| !to_revoke.contains(tp));
                member.revoking = to_revoke;
                member.revoke_deadline = Some(now + member.rebalance_timeout);
            } else {
                // Step 2: take what is free now; the rest follows as others release it.
                let free: Vec<Tp> = target
                    .difference(&member.assigned)
                    .filter(|tp| !owned_by_others.contains(tp))
                    .copied()
                    .collect();
                member.assigned.extend(free);
                if member.epoch != assignment_epoch {
                    member.previous_epoch = member.epoch;
                    member.epoch = assignment_epoch;
                }
            }
        }
        let current = (member.epoch, member.assigned.clone());
        let assignment = if member.last_sent.as_ref() != Some(&current) {
            member.last_sent = Some(current.clone());
            Some(current.1)
        } else {
            None
        };
        HeartbeatReply {
            member_id: id.to_string(),
            member_epoch: member.epoch,
            assignment,
        }
    }

    /// Removes members whose session expired or who did not revoke in time. Returns how many.
    pub fn expire(&mut self, topics: &TopicsView, settings: &Settings, now: Instant) -> usize {
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| {
                now.duration_since(m.last_heartbeat) > settings.session_timeout
                    || m.revoke_deadline.is_some_and(|d| now >= d)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.members.remove(id);
        }
        if !gone.is_empty() {
            self.bump(topics);
        }
        gone.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(5),
        }
    }

    fn hb(
        member: &str,
        epoch: i32,
        topics: Option<&[&str]>,
        owned: Option<&BTreeSet<Tp>>,
    ) -> Heartbeat {
        Heartbeat {
            member_id: member.into(),
            member_epoch: epoch,
            instance_id: None,
            rack_id: None,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: topics.map(|t| t.iter().map(|s| s.to_string()).collect()),
            subscribed_topic_regex: None,
            server_assignor: None,
            owned: owned.cloned(),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
        }
    }

    #[test]
    fn second_member_gets_partitions_only_after_the_first_revokes() {
        let topics: TopicsView = [("t".to_string(), (Uuid::new_v4(), 4))].into();
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let a = g
            .heartbeat(hb("a", 0, Some(&["t"]), None), &topics, now)
            .unwrap();
        assert_eq!(a.member_epoch, 1);
        let a_all = a.assignment.clone().unwrap();
        assert_eq!(a_all.len(), 4);
        // b joins: its target is half, but a still owns everything, so b gets nothing yet.
        let b = g
            .heartbeat(hb("b", 0, Some(&["t"]), None), &topics, now)
            .unwrap();
        assert_eq!(b.assignment, Some(BTreeSet::new()));
        assert_eq!(b.member_epoch, 2);
        assert_eq!(g.state(), "Reconciling");
        // a is told to revoke two partitions; its epoch stays 1.
        let a2 = g
            .heartbeat(hb("a", 1, None, Some(&a_all)), &topics, now)
            .unwrap();
        assert_eq!(a2.member_epoch, 1);
        let a_kept = a2.assignment.clone().unwrap();
        assert_eq!(a_kept.len(), 2);
        // Until a reports the release, b still gets nothing.
        let b2 = g
            .heartbeat(hb("b", 2, None, Some(&BTreeSet::new())), &topics, now)
            .unwrap();
        assert_eq!(b2.assignment, None);
        // a releases: it moves to epoch 2; then b receives the other two partitions.
        let a3 = g
            .heartbeat(hb("a", 1, None, Some(&a_kept)), &topics, now)
            .unwrap();
        assert_eq!(a3.member_epoch, 2);
        let b3 = g
            .heartbeat(hb("b", 2, None, Some(&BTreeSet::new())), &topics, now)
            .unwrap();
        let b_got = b3.assignment.unwrap();
        assert_eq!(b_got.len(), 2);
        assert!(b_got.is_disjoint(&a_kept));
        assert_eq!(g.state(), "Stable");
    }

    #[test]
    fn fencing_leaving_and_expiry() {
        let topics: TopicsView = [("t".to_string(), (Uuid::new_v4(), 2))].into();
        let (s, now) = (settings(), Instant::now());
        let mut g = ConsumerGroup::default();
        let a = g
            .heartbeat(hb("", 0, Some(&["t"]), None), &topics, now)
            .unwrap();
        assert!(!a.member_id.is_empty());
        assert_eq!(
            g.heartbeat(hb(&a.member_id, 7, None, None), &topics, now)
                .unwrap_err()
                .0,
            ResponseError::FencedMemberEpoch
        );
        assert_eq!(
            g.heartbeat(hb("nobody", 1, None, None), &topics, now)
                .unwrap_err()
                .0,
            ResponseError::UnknownMemberId
        );
        let left = g
            .heartbeat(hb(&a.member_id, LEAVE_EPOCH, None, None), &topics, now)
            .unwrap();
        assert_eq!(left.member_epoch, LEAVE_EPOCH);
        assert!(g.is_empty());
        let b = g
            .heartbeat(hb("b", 0, Some(&["t"]), None), &topics, now)
            .unwrap();
        assert_eq!(b.assignment.map(|x| x.len()), Some(2));
        assert_eq!(g.expire(&topics, &s, now + Duration::from_secs(46)), 1);
        assert_eq!(g.state(), "Empty");
    }
}
