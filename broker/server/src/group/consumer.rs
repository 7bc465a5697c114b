//! KIP-848 consumer groups (`group.protocol=consumer`): the broker owns the assignment. Every
//! membership or subscription change bumps the group epoch and recomputes the target assignment
//! with a server-side assignor; each member then converges on its target through its heartbeats:
//! first it is told to revoke what it must give up (its epoch stays), and once it has reported
//! them released it receives its new partitions and the new epoch. A partition is never given to
//! a member while another member still owns it, so no partition is ever consumed twice at once.
//!
//! Members subscribe by topic names, by a regular expression (`SubscribedTopicRegex`, matched
//! against whole topic names with RE2 syntax, internal topics excluded), or both; a regex is
//! resolved against the cluster's topics on every membership change and periodic refresh, so
//! topics created later join the subscription.
//!
//! The group is durable as Kafka 4.0 keeps it (`group::consumer_records`): every state change
//! marks what it touched, and [`ConsumerGroup::changes`] turns the marked parts into the
//! records that differ from what was last written ([`ConsumerGroup::written`] once they are), so
//! a heartbeat that changes nothing writes nothing and a failed write is tried again. [`ConsumerGroup::load`] rebuilds the group from those records, so after a coordinator
//! failover or a restart members keep their ids, epochs and assignments.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::assignor::{self, Assignment, TopicsView, Tp};
use super::consumer_records::{
    ConsumerKey, ConsumerValue, CurrentAssignment, MemberMetadata, STATE_STABLE, STATE_UNRELEASED,
    STATE_UNREVOKED,
};

/// How often the periodic refresh resolves regexes again (membership changes always do): every
/// resolution reads every topic's name.
pub const REGEX_REFRESH: Duration = Duration::from_secs(5);

/// Topics a regular expression never matches (Kafka's internal topics).
const INTERNAL_TOPICS: [&str; 3] = [
    "__consumer_offsets",
    "__transaction_state",
    "__share_group_state",
];

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
    pub regex: Option<String>,
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
    /// `SubscribedTopicRegex`, when the member subscribes by pattern.
    regex: Option<String>,
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
    /// Each regular expression in use, with the topics it matched when last resolved and the
    /// resolution's version (bumped when the match changes).
    resolved: BTreeMap<String, (BTreeSet<String>, i64)>,
    /// The records last written (or loaded), to write only what changed.
    written: BTreeMap<ConsumerKey, ConsumerValue>,
    /// Members whose records may have changed since the last `take_changes`.
    dirty: BTreeSet<String>,
    /// Every member's target (and the group epochs) may have changed.
    dirty_all: bool,
    /// When the periodic refresh last resolved the regexes.
    regex_refreshed: Option<Instant>,
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

    /// The topics the members subscribe to, by name or through their regex's last resolution.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| self.subscription(m))
            .collect()
    }

    /// Whether a member subscribes by regex (its resolution needs every topic's name).
    pub fn uses_regex(&self) -> bool {
        self.members.values().any(|m| m.regex.is_some())
    }

    /// Whether the periodic refresh should resolve the regexes now (at most every
    /// [`REGEX_REFRESH`]); if so, it counts as done.
    pub fn regex_refresh_due(&mut self, now: Instant) -> bool {
        if !self.uses_regex()
            || self
                .regex_refreshed
                .is_some_and(|t| now.saturating_duration_since(t) < REGEX_REFRESH)
        {
            return false;
        }
        self.regex_refreshed = Some(now);
        true
    }

    fn subscription(&self, m: &Member) -> Vec<String> {
        let mut topics = m.subscribed.clone();
        if let Some((matched, _)) = m.regex.as_ref().and_then(|r| self.resolved.get(r)) {
            for t in matched {
                if !topics.contains(t) {
                    topics.push(t.clone());
                }
            }
        }
        topics
    }

    /// Resolves every regex in use against `topics` (all of the cluster's when a regex is in
    /// use); forgets regexes nobody uses. Returns whether any resolution changed.
    fn resolve_regexes(&mut self, topics: &TopicsView) -> bool {
        let in_use: BTreeSet<String> = self
            .members
            .values()
            .filter_map(|m| m.regex.clone())
            .collect();
        let before = self.resolved.len();
        self.resolved.retain(|r, _| in_use.contains(r));
        let mut changed = self.resolved.len() != before;
        for r in in_use {
            let Ok(re) = compile(&r) else { continue };
            let matched: BTreeSet<String> = topics
                .keys()
                .filter(|t| !INTERNAL_TOPICS.contains(&t.as_str()) && re.is_match(t))
                .cloned()
                .collect();
            match self.resolved.get_mut(&r) {
                Some((old, _)) if *old == matched => {}
                Some((old, version)) => {
                    *old = matched;
                    *version += 1;
                    changed = true;
                }
                None => {
                    self.resolved.insert(r, (matched, 1));
                    changed = true;
                }
            }
        }
        changed
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
                regex: m.regex.clone(),
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
        if let Some(r) = hb
            .subscribed_topic_regex
            .as_deref()
            .filter(|r| !r.is_empty())
            && let Err(e) = compile(r)
        {
            return Err((
                ResponseError::InvalidRegularExpression,
                format!("SubscribedTopicRegex {r:?} is not a valid RE2 expression: {e}"),
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
                self.dirty.insert(id.clone());
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
                self.dirty.insert(id.clone());
                let mut changed = false;
                if let Some(names) = hb.subscribed_topic_names
                    && names != member.subscribed
                {
                    member.subscribed = names;
                    changed = true;
                }
                // An empty regex clears it (librdkafka sends one alongside topic names).
                if let Some(r) = hb.subscribed_topic_regex {
                    let r = (!r.is_empty()).then_some(r);
                    if r != member.regex {
                        member.regex = r;
                        changed = true;
                    }
                }
                if hb.server_assignor.is_some() && hb.server_assignor != member.assignor {
                    member.assignor = hb.server_assignor;
                    changed = true;
                }
                if let Some(owned) = &hb.owned {
                    member.revoking.retain(|tp| owned.contains(tp));
                }
                if changed {
                    self.resolve_regexes(topics);
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
        let regex = hb.subscribed_topic_regex.filter(|r| !r.is_empty());
        let subscribed = match (hb.subscribed_topic_names, &regex) {
            (Some(names), _) => names,
            (None, Some(_)) => Vec::new(),
            (None, None) => {
                return Err((
                    ResponseError::InvalidRequest,
                    "SubscribedTopicNames or SubscribedTopicRegex must be set when joining".into(),
                ));
            }
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
                self.dirty.insert(o);
            }
        }
        self.dirty.insert(id.clone());
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
                regex,
                assignor: hb.server_assignor,
                assigned: BTreeSet::new(),
                revoking: BTreeSet::new(),
                revoke_deadline: None,
                last_heartbeat: now,
                last_sent: None,
            },
        );
        self.resolve_regexes(topics);
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
        self.dirty_all = true;
        let subscriptions: BTreeMap<String, Vec<String>> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), self.subscription(m)))
            .collect();
        let assignor = self.assignor_name();
        self.target = assignor::assign(&assignor, &subscriptions, topics, &self.target);
        self.assignment_epoch = self.group_epoch;
    }

    /// Recomputes the target when topics appear or grow (or, with `all_topics` — `topics` then
    /// holds every topic — a regex matches other topics), without a membership change.
    pub fn refresh_topics(&mut self, topics: &TopicsView, all_topics: bool) {
        if all_topics && self.resolve_regexes(topics) && !self.members.is_empty() {
            self.bump(topics);
            return;
        }
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
            self.dirty.insert(id.clone());
        }
        if !gone.is_empty() {
            self.bump(topics);
        }
        gone.len()
    }
}

/// A regex as Kafka applies it: RE2 syntax, matching the whole topic name.
fn compile(r: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{r})$"))
        .size_limit(1 << 20)
        .build()
}

impl ConsumerGroup {
    /// The records of `group` whose content changed since they were last written (`None`:
    /// tombstone), in key order (group metadata, members, target, current assignments,
    /// regexes). They must be written, and then passed to [`Self::written`], for the group to
    /// survive a failover.
    pub fn changes(&self, group: &str) -> Vec<(ConsumerKey, Option<ConsumerValue>)> {
        if !self.dirty_all && self.dirty.is_empty() {
            return Vec::new();
        }
        let mut now: BTreeMap<ConsumerKey, ConsumerValue> = BTreeMap::new();
        let members: Vec<String> = if self.dirty_all {
            self.members.keys().cloned().collect()
        } else {
            self.dirty.iter().cloned().collect()
        };
        let g = group.to_string();
        if self.dirty_all {
            now.insert(
                ConsumerKey::Metadata { group: g.clone() },
                ConsumerValue::Metadata {
                    epoch: self.group_epoch,
                },
            );
            now.insert(
                ConsumerKey::TargetMetadata { group: g.clone() },
                ConsumerValue::TargetMetadata {
                    assignment_epoch: self.assignment_epoch,
                },
            );
            for (r, (topics, version)) in &self.resolved {
                now.insert(
                    ConsumerKey::Regex {
                        group: g.clone(),
                        regex: r.clone(),
                    },
                    ConsumerValue::Regex {
                        topics: topics.clone(),
                        version: *version,
                        timestamp: -1,
                    },
                );
            }
        }
        for id in &members {
            let Some(m) = self.members.get(id) else {
                continue;
            };
            let target = self.target.get(id).cloned().unwrap_or_default();
            let state = if !m.revoking.is_empty() {
                STATE_UNREVOKED
            } else if m.epoch != self.assignment_epoch || !target.is_subset(&m.assigned) {
                STATE_UNRELEASED
            } else {
                STATE_STABLE
            };
            let key = |kind: fn(String, String) -> ConsumerKey| kind(g.clone(), id.clone());
            now.insert(
                key(|group, member| ConsumerKey::Member { group, member }),
                ConsumerValue::Member(MemberMetadata {
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed.clone(),
                    subscribed_topic_regex: m.regex.clone(),
                    rebalance_timeout_ms: i32::try_from(m.rebalance_timeout.as_millis())
                        .unwrap_or(i32::MAX),
                    server_assignor: m.assignor.clone(),
                }),
            );
            now.insert(
                key(|group, member| ConsumerKey::TargetMember { group, member }),
                ConsumerValue::TargetMember(target),
            );
            now.insert(
                key(|group, member| ConsumerKey::CurrentAssignment { group, member }),
                ConsumerValue::CurrentAssignment(CurrentAssignment {
                    member_epoch: m.epoch,
                    previous_member_epoch: m.previous_epoch,
                    state,
                    assigned: m.assigned.clone(),
                    pending_revocation: m.revoking.clone(),
                }),
            );
        }
        // What was written for the parts looked at but exists no more gets a tombstone.
        let looked_at = |k: &ConsumerKey| match k {
            ConsumerKey::Metadata { .. }
            | ConsumerKey::TargetMetadata { .. }
            | ConsumerKey::Regex { .. } => self.dirty_all,
            ConsumerKey::Member { member, .. }
            | ConsumerKey::TargetMember { member, .. }
            | ConsumerKey::CurrentAssignment { member, .. } => {
                self.dirty_all || self.dirty.contains(member)
            }
        };
        let gone: Vec<ConsumerKey> = self
            .written
            .keys()
            .filter(|k| looked_at(k) && !now.contains_key(k))
            .cloned()
            .collect();
        let mut out: Vec<(ConsumerKey, Option<ConsumerValue>)> = now
            .into_iter()
            .filter(|(k, v)| self.written.get(k) != Some(v))
            .map(|(k, v)| (k, Some(v)))
            .collect();
        out.extend(gone.into_iter().map(|k| (k, None)));
        // Replay treats each key on its own, so key order is enough.
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Records that `changes` (from [`Self::changes`]) were written.
    pub fn written(&mut self, changes: &[(ConsumerKey, Option<ConsumerValue>)]) {
        for (k, v) in changes {
            match v {
                Some(v) => self.written.insert(k.clone(), v.clone()),
                None => self.written.remove(k),
            };
        }
        self.dirty.clear();
        self.dirty_all = false;
    }

    /// Tombstones for everything written: the group is being deleted. The group metadata's
    /// comes last, so a replay stopped midway still knows the group.
    pub fn tombstones(&self) -> Vec<(ConsumerKey, Option<ConsumerValue>)> {
        let mut out: Vec<(ConsumerKey, Option<ConsumerValue>)> = self
            .written
            .keys()
            .filter(|k| !matches!(k, ConsumerKey::Metadata { .. }))
            .map(|k| (k.clone(), None))
            .collect();
        out.extend(
            self.written
                .keys()
                .filter(|k| matches!(k, ConsumerKey::Metadata { .. }))
                .map(|k| (k.clone(), None)),
        );
        out
    }

    /// Rebuilds state from one `__consumer_offsets` record, in log order (later records win).
    /// Restored members must heartbeat within their session timeout from `now`, as in Kafka.
    pub fn load(&mut self, key: &ConsumerKey, value: Option<ConsumerValue>, now: Instant) {
        match &value {
            Some(v) => {
                self.written.insert(key.clone(), v.clone());
            }
            None => {
                self.written.remove(key);
            }
        }
        match (key, value) {
            (ConsumerKey::Metadata { .. }, Some(ConsumerValue::Metadata { epoch })) => {
                self.group_epoch = epoch;
            }
            (
                ConsumerKey::TargetMetadata { .. },
                Some(ConsumerValue::TargetMetadata { assignment_epoch }),
            ) => self.assignment_epoch = assignment_epoch,
            (ConsumerKey::Member { member, .. }, Some(ConsumerValue::Member(m))) => {
                let e = self.member_entry(member, now);
                e.instance_id = m.instance_id;
                e.rack_id = m.rack_id;
                e.client_id = m.client_id;
                e.client_host = m.client_host;
                e.subscribed = m.subscribed_topic_names;
                e.regex = m.subscribed_topic_regex;
                e.rebalance_timeout = Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64);
                e.assignor = m.server_assignor;
            }
            (ConsumerKey::Member { member, .. }, None) => {
                self.members.remove(member);
                self.target.remove(member);
            }
            (ConsumerKey::TargetMember { member, .. }, Some(ConsumerValue::TargetMember(t))) => {
                self.target.insert(member.clone(), t);
            }
            (ConsumerKey::TargetMember { member, .. }, None) => {
                self.target.remove(member);
            }
            (
                ConsumerKey::CurrentAssignment { member, .. },
                Some(ConsumerValue::CurrentAssignment(a)),
            ) => {
                let e = self.member_entry(member, now);
                e.epoch = a.member_epoch;
                e.previous_epoch = a.previous_member_epoch;
                e.assigned = a.assigned;
                e.revoking = a.pending_revocation;
                e.revoke_deadline = (!e.revoking.is_empty()).then(|| now + e.rebalance_timeout);
            }
            (
                ConsumerKey::Regex { regex, .. },
                Some(ConsumerValue::Regex {
                    topics, version, ..
                }),
            ) => {
                self.resolved.insert(regex.clone(), (topics, version));
            }
            (ConsumerKey::Regex { regex, .. }, None) => {
                self.resolved.remove(regex);
            }
            _ => {}
        }
    }

    fn member_entry(&mut self, id: &str, now: Instant) -> &mut Member {
        self.members
            .entry(id.to_string())
            .or_insert_with(|| Member {
                epoch: 0,
                previous_epoch: -1,
                instance_id: None,
                rack_id: None,
                client_id: String::new(),
                client_host: String::new(),
                rebalance_timeout: Duration::from_secs(300),
                subscribed: Vec::new(),
                regex: None,
                assignor: None,
                assigned: BTreeSet::new(),
                revoking: BTreeSet::new(),
                revoke_deadline: None,
                last_heartbeat: now,
                // The member learns its assignment again from the next heartbeat.
                last_sent: None,
            })
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

    /// Writes a group's changes as the coordinator does, keeping them in log order.
    fn persist(
        g: &mut ConsumerGroup,
        log: &mut Vec<(ConsumerKey, Option<ConsumerValue>)>,
    ) -> usize {
        let changes = g.changes("g");
        g.written(&changes);
        let n = changes.len();
        log.extend(changes);
        n
    }

    #[test]
    fn records_rebuild_members_epochs_and_assignments() {
        let topics: TopicsView = [("t".to_string(), (Uuid::new_v4(), 4))].into();
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let mut log = Vec::new();
        let a = g
            .heartbeat(hb("a", 0, Some(&["t"]), None), &topics, now)
            .unwrap();
        persist(&mut g, &mut log);
        let a_all = a.assignment.unwrap();
        g.heartbeat(hb("b", 0, Some(&["t"]), None), &topics, now)
            .unwrap();
        persist(&mut g, &mut log);
        // a is told to revoke half: a state in the middle of a reconciliation.
        let a2 = g
            .heartbeat(hb("a", 1, None, Some(&a_all)), &topics, now)
            .unwrap();
        persist(&mut g, &mut log);
        // A heartbeat that changes nothing writes nothing.
        g.heartbeat(hb("b", 2, None, Some(&BTreeSet::new())), &topics, now)
            .unwrap();
        assert_eq!(persist(&mut g, &mut log), 0);

        let mut loaded = ConsumerGroup::default();
        for (k, v) in &log {
            loaded.load(k, v.clone(), now);
        }
        assert_eq!(loaded.group_epoch, g.group_epoch);
        assert_eq!(loaded.assignment_epoch, g.assignment_epoch);
        assert_eq!(loaded.state(), g.state());
        let view = |g: &ConsumerGroup| {
            g.members()
                .into_iter()
                .map(|m| (m.member_id, m.member_epoch, m.assigned, m.target))
                .collect::<Vec<_>>()
        };
        assert_eq!(view(&loaded), view(&g));
        // Nothing to write right after loading.
        assert!(loaded.changes("g").is_empty());
        // The members go on with the epochs they had: a finishes its revocation.
        let kept = a2.assignment.unwrap();
        let a3 = loaded
            .heartbeat(hb("a", 1, None, Some(&kept)), &topics, now)
            .unwrap();
        assert_eq!(a3.member_epoch, 2);
        let b3 = loaded
            .heartbeat(hb("b", 2, None, Some(&BTreeSet::new())), &topics, now)
            .unwrap();
        assert_eq!(b3.assignment.map(|x| x.len()), Some(2));
    }

    #[test]
    fn a_leaving_member_and_a_deleted_group_leave_tombstones() {
        let topics: TopicsView = [("t".to_string(), (Uuid::new_v4(), 2))].into();
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let mut log = Vec::new();
        g.heartbeat(hb("a", 0, Some(&["t"]), None), &topics, now)
            .unwrap();
        g.heartbeat(hb("b", 0, Some(&["t"]), None), &topics, now)
            .unwrap();
        persist(&mut g, &mut log);
        log.clear();
        g.heartbeat(hb("b", LEAVE_EPOCH, None, None), &topics, now)
            .unwrap();
        persist(&mut g, &mut log);
        let gone: Vec<&ConsumerKey> = log
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            gone.len(),
            3,
            "member, target and current assignment of b: {gone:?}"
        );
        assert!(gone.iter().all(|k| matches!(k,
            ConsumerKey::Member { member, .. }
            | ConsumerKey::TargetMember { member, .. }
            | ConsumerKey::CurrentAssignment { member, .. } if member == "b")));
        let all = g.tombstones();
        assert!(matches!(
            all.last(),
            Some((ConsumerKey::Metadata { .. }, None))
        ));
        assert!(all.iter().all(|(_, v)| v.is_none()));
    }

    #[test]
    fn regex_subscriptions_follow_the_topics() {
        let mut topics: TopicsView = [
            ("fx-a".to_string(), (Uuid::new_v4(), 2)),
            ("fx-b".to_string(), (Uuid::new_v4(), 1)),
            ("other".to_string(), (Uuid::new_v4(), 5)),
            ("__consumer_offsets".to_string(), (Uuid::new_v4(), 50)),
        ]
        .into();
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let mut join = hb("a", 0, None, None);
        join.subscribed_topic_regex = Some("fx-.*".into());
        let a = g.heartbeat(join, &topics, now).unwrap();
        assert_eq!(
            a.assignment.map(|x| x.len()),
            Some(3),
            "fx-a and fx-b, whole names only"
        );
        assert_eq!(
            g.subscribed_topics(),
            ["fx-a".to_string(), "fx-b".to_string()].into()
        );
        let mut bad = hb("c", 0, None, None);
        bad.subscribed_topic_regex = Some("fx-(".into());
        assert_eq!(
            g.heartbeat(bad, &topics, now).unwrap_err().0,
            ResponseError::InvalidRegularExpression
        );
        // A topic created later joins the subscription at the next refresh.
        let epoch = g.group_epoch;
        topics.insert("fx-c".into(), (Uuid::new_v4(), 2));
        g.refresh_topics(&topics, true);
        assert_eq!(g.group_epoch, epoch + 1);
        let a = g.heartbeat(hb("a", 1, None, None), &topics, now).unwrap();
        assert_eq!(a.assignment.map(|x| x.len()), Some(5));
        let mut log = Vec::new();
        persist(&mut g, &mut log);
        assert!(log.iter().any(|(k, v)| matches!((k, v),
            (ConsumerKey::Regex { regex, .. }, Some(ConsumerValue::Regex { topics, .. }))
                if regex == "fx-.*" && topics.len() == 3)));
    }
}
