//! Per-partition replication state as this broker sees it: its role (leader or follower) at a
//! leader epoch, the assigned replicas and ISR from the metadata image, and on the leader each
//! follower's progress, from which the high watermark advances (Kafka's `Partition`/`Replica`).
//!
//! Pure bookkeeping: no I/O. The leader's high watermark is the smallest log end offset among the
//! members of the *maximal* ISR (itself included): the committed ISR plus any member an
//! unconfirmed AlterPartition proposed to add (KIP-497). The controller may already have
//! committed that expansion — and, when it completes a reassignment, made the new member leader —
//! before this leader hears back; counting the member keeps the high watermark below what it has,
//! so no acknowledged record can be missing from a leader the controller elects. A follower
//! counts as caught up at the time of a fetch whose offset reached the leader's log end as of
//! that fetch or the previous one (Kafka's `lastCaughtUpTimeMs`), which is what
//! `replica.lag.time.max.ms` is measured against.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;

/// What this broker is for the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    /// Following `leader` (`-1`: the partition has no leader right now).
    Follower {
        leader: i32,
    },
}

/// One follower's progress as the leader sees it.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// The follower's log end offset: its last fetch offset (`-1` before its first fetch in
    /// this leader epoch).
    pub log_end: i64,
    /// The follower's log start offset, from its fetches (`-1`: not known yet).
    pub log_start: i64,
    pub last_caught_up: Instant,
    last_fetch: Instant,
    leader_end_at_last_fetch: i64,
}

/// An ISR change sent to the controller and not confirmed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingIsr {
    pub isr: Vec<i32>,
    /// It got no definite answer and should be sent again.
    pub resend: bool,
}

#[derive(Debug, Clone)]
pub struct ReplicaState {
    pub node_id: i32,
    pub role: Role,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Leader only: the followers' progress.
    pub followers: HashMap<i32, Progress>,
    /// Leader only: offset where this leader's epoch starts (its log end when it took over);
    /// a follower joins the ISR only once it has reached it.
    pub epoch_start_offset: i64,
    /// Leader only: an AlterPartition not yet confirmed (sent, lost, or answered with a state
    /// this broker has not applied yet). No other ISR change until it resolves; its members
    /// count for the high watermark.
    pub pending: Option<PendingIsr>,
    /// Follower only: a new leader epoch began; the log must be reconciled with the leader's
    /// (OffsetForLeaderEpoch, KIP-101) before fetching.
    pub truncate_pending: bool,
    /// Leader only: this leader wrote a batch of its own in this epoch, so the log's latest
    /// epoch is its own (a failed-over mirror topic's check, see `ReplicaManager`).
    pub own_write_in_epoch: bool,
    /// Leader only: the leader epoch to ask the controller for, because the log holds mirrored
    /// batches stamped at or above the current one.
    pub raise_epoch_to: Option<i32>,
}

impl ReplicaState {
    /// A single-node partition: this broker leads and is the whole ISR.
    pub fn single(node_id: i32, leader_epoch: i32) -> ReplicaState {
        ReplicaState {
            node_id,
            role: Role::Leader,
            leader_epoch,
            partition_epoch: 0,
            replicas: vec![node_id],
            isr: vec![node_id],
            followers: HashMap::new(),
            epoch_start_offset: 0,
            pending: None,
            truncate_pending: false,
            own_write_in_epoch: false,
            raise_epoch_to: None,
        }
    }

    /// A partition just opened in a cluster, before the image gives it a role.
    pub fn follower_of(node_id: i32, leader: i32) -> ReplicaState {
        ReplicaState {
            role: Role::Follower { leader },
            leader_epoch: -1,
            partition_epoch: -1,
            replicas: Vec::new(),
            isr: Vec::new(),
            ..ReplicaState::single(node_id, -1)
        }
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// Kafka's checks of a request addressed to the partition leader (Fetch, ListOffsets,
    /// OffsetForLeaderEpoch; KIP-320): this broker must lead, and the client's
    /// `current_leader_epoch` (-1: not given) must be the current one.
    pub fn check_leader(&self, current_leader_epoch: i32) -> Result<(), ResponseError> {
        if !self.is_leader() {
            Err(ResponseError::NotLeaderOrFollower)
        } else if current_leader_epoch > self.leader_epoch {
            Err(ResponseError::UnknownLeaderEpoch)
        } else if current_leader_epoch >= 0 && current_leader_epoch < self.leader_epoch {
            Err(ResponseError::FencedLeaderEpoch)
        } else {
            Ok(())
        }
    }

    /// Kafka's checks of a consumer fetch that a follower may serve too (KIP-392, Fetch v11+):
    /// this broker hosts a replica, and the client's `current_leader_epoch` (-1: not given) is
    /// the one it knows.
    pub fn check_replica(&self, current_leader_epoch: i32) -> Result<(), ResponseError> {
        if current_leader_epoch > self.leader_epoch {
            Err(ResponseError::UnknownLeaderEpoch)
        } else if current_leader_epoch >= 0 && current_leader_epoch < self.leader_epoch {
            Err(ResponseError::FencedLeaderEpoch)
        } else {
            Ok(())
        }
    }

    /// Leader: the in-sync followers whose log holds `fetch_offset`, as (id, log end, time since
    /// it last caught up) — what Kafka's `findPreferredReadReplica` offers the selector. Out of
    /// the ISR a follower may lag without bound, and its consumers with it.
    pub fn read_candidates(&self, fetch_offset: i64, now: Instant) -> Vec<(i32, i64, Duration)> {
        if !self.is_leader() {
            return Vec::new();
        }
        self.isr
            .iter()
            .filter(|id| **id != self.node_id)
            .filter_map(|id| {
                let p = self.followers.get(id)?;
                (p.log_end >= fetch_offset && p.log_start <= fetch_offset).then(|| {
                    (
                        *id,
                        p.log_end,
                        now.saturating_duration_since(p.last_caught_up),
                    )
                })
            })
            .collect()
    }

    pub fn leader_id(&self) -> i32 {
        match self.role {
            Role::Leader => self.node_id,
            Role::Follower { leader } => leader,
        }
    }

    /// Becomes leader at `leader_epoch` with the image's replicas and ISR. Followers' progress
    /// from an earlier epoch is unknown until they fetch again.
    pub fn become_leader(
        &mut self,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        log_end: i64,
        now: Instant,
    ) {
        let new_epoch = self.role != Role::Leader || self.leader_epoch != leader_epoch;
        if new_epoch || partition_epoch != self.partition_epoch {
            // The image now says what the controller decided; nothing is pending any more.
            self.pending = None;
        }
        self.role = Role::Leader;
        self.leader_epoch = leader_epoch;
        self.partition_epoch = partition_epoch;
        if new_epoch {
            self.epoch_start_offset = log_end;
            self.followers.clear();
            self.own_write_in_epoch = false;
            self.raise_epoch_to = None;
        }
        for r in &replicas {
            if *r != self.node_id {
                self.followers.entry(*r).or_insert(Progress {
                    log_end: -1,
                    log_start: -1,
                    last_caught_up: now,
                    last_fetch: now,
                    leader_end_at_last_fetch: -1,
                });
            }
        }
        self.followers.retain(|id, _| replicas.contains(id));
        self.replicas = replicas;
        self.isr = isr;
    }

    pub fn become_follower(
        &mut self,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
    ) {
        if self.role != (Role::Follower { leader }) || self.leader_epoch != leader_epoch {
            self.truncate_pending = true;
        }
        self.role = Role::Follower { leader };
        self.leader_epoch = leader_epoch;
        self.partition_epoch = partition_epoch;
        self.replicas = replicas;
        self.isr = isr;
        self.followers.clear();
        self.pending = None;
    }

    /// Records a follower fetch at `fetch_offset` (everything below it is on the follower) when
    /// the leader's log ends at `leader_end`.
    pub fn record_fetch(
        &mut self,
        follower: i32,
        fetch_offset: i64,
        leader_end: i64,
        now: Instant,
    ) {
        let Some(p) = self.followers.get_mut(&follower) else {
            return;
        };
        if fetch_offset >= leader_end {
            p.last_caught_up = now;
        } else if p.leader_end_at_last_fetch >= 0 && fetch_offset >= p.leader_end_at_last_fetch {
            p.last_caught_up = p.last_caught_up.max(p.last_fetch);
        }
        p.log_end = fetch_offset;
        p.last_fetch = now;
        p.leader_end_at_last_fetch = leader_end;
    }

    /// Records the log start offset a follower's fetch carried (Fetch v5+).
    pub fn record_log_start(&mut self, follower: i32, log_start: i64) {
        if let Some(p) = self.followers.get_mut(&follower) {
            p.log_start = log_start;
        }
    }

    /// The committed ISR plus the members a pending AlterPartition would add.
    pub fn maximal_isr(&self) -> impl Iterator<Item = i32> + '_ {
        let pending = self.pending.iter().flat_map(|p| &p.isr);
        self.isr
            .iter()
            .chain(pending.filter(|m| !self.isr.contains(m)))
            .copied()
    }

    /// The high watermark the maximal ISR allows: the smallest log end among its members, `None`
    /// when a member has not fetched yet in this epoch.
    pub fn isr_high_watermark(&self, leader_end: i64) -> Option<i64> {
        let mut hw = leader_end;
        for member in self.maximal_isr() {
            if member == self.node_id {
                continue;
            }
            let end = self.followers.get(&member).map_or(-1, |p| p.log_end);
            if end < 0 {
                return None;
            }
            hw = hw.min(end);
        }
        Some(hw)
    }

    /// The ISR this leader wants now: members that fell behind for longer than `max_lag` leave,
    /// followers that reached the high watermark and this epoch's start join. `None`: no change.
    pub fn wanted_isr(
        &self,
        high_watermark: i64,
        max_lag: Duration,
        now: Instant,
    ) -> Option<Vec<i32>> {
        if !self.is_leader() || self.pending.is_some() {
            return None;
        }
        let mut isr: Vec<i32> =
            self.isr
                .iter()
                .copied()
                .filter(|m| {
                    *m == self.node_id
                        || self.followers.get(m).is_some_and(|p| {
                            now.saturating_duration_since(p.last_caught_up) <= max_lag
                        })
                })
                .collect();
        for r in &self.replicas {
            if isr.contains(r) {
                continue;
            }
            if let Some(p) = self.followers.get(r)
                && p.log_end >= high_watermark
                && p.log_end >= self.epoch_start_offset
                && now.saturating_duration_since(p.last_caught_up) <= max_lag
            {
                isr.push(*r);
            }
        }
        if !isr.contains(&self.node_id) {
            isr.push(self.node_id);
        }
        let mut sorted_new = isr.clone();
        sorted_new.sort_unstable();
        let mut sorted_old = self.isr.clone();
        sorted_old.sort_unstable();
        (sorted_new != sorted_old).then_some(isr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(now: Instant) -> ReplicaState {
        let mut s = ReplicaState::single(1, 0);
        s.become_leader(1, 1, vec![1, 2, 3], vec![1, 2, 3], 10, now);
        s
    }

    #[test]
    fn high_watermark_waits_for_every_isr_member() {
        let now = Instant::now();
        let mut s = leader(now);
        assert_eq!(s.isr_high_watermark(20), None);
        s.record_fetch(2, 20, 20, now);
        assert_eq!(s.isr_high_watermark(20), None);
        s.record_fetch(3, 15, 20, now);
        assert_eq!(s.isr_high_watermark(20), Some(15));
    }

    #[test]
    fn lagging_follower_leaves_and_caught_up_one_returns() {
        let t0 = Instant::now();
        let mut s = leader(t0);
        s.record_fetch(2, 10, 10, t0);
        s.record_fetch(3, 10, 10, t0);
        let lag = Duration::from_secs(1);
        let t1 = t0 + Duration::from_secs(2);
        s.record_fetch(2, 30, 30, t1);
        assert_eq!(s.wanted_isr(10, lag, t1), Some(vec![1, 2]));
        s.isr = vec![1, 2];
        // 3 comes back but is below the high watermark: not yet.
        s.record_fetch(3, 20, 30, t1);
        assert_eq!(s.wanted_isr(30, lag, t1), None);
        s.record_fetch(3, 30, 30, t1);
        assert_eq!(s.wanted_isr(30, lag, t1), Some(vec![1, 2, 3]));
    }

    #[test]
    fn a_pending_expansion_holds_the_high_watermark_until_it_resolves() {
        let now = Instant::now();
        let mut s = ReplicaState::single(1, 0);
        s.become_leader(1, 1, vec![1, 2, 3, 4], vec![1, 2, 3], 10, now);
        for r in [2, 3, 4] {
            s.record_fetch(r, 10, 10, now);
        }
        let wanted = s.wanted_isr(10, Duration::from_secs(10), now).unwrap();
        assert_eq!(wanted, vec![1, 2, 3, 4]);
        s.pending = Some(PendingIsr {
            isr: wanted,
            resend: false,
        });
        // The controller may have made 4 leader already: it stops fetching from us at 10.
        s.record_fetch(2, 30, 30, now);
        s.record_fetch(3, 30, 30, now);
        assert_eq!(s.isr_high_watermark(30), Some(10));
        assert_eq!(s.wanted_isr(10, Duration::from_secs(10), now), None);
        // The image brings the decision: the pending proposal is resolved.
        s.become_leader(1, 2, vec![1, 2, 3], vec![1, 2, 3], 30, now);
        assert!(s.pending.is_none());
        assert_eq!(s.isr_high_watermark(30), Some(30));
    }

    #[test]
    fn read_candidates_are_in_sync_followers_holding_the_offset() {
        let now = Instant::now();
        let mut s = ReplicaState::single(1, 0);
        s.become_leader(1, 1, vec![1, 2, 3, 4], vec![1, 2, 3], 0, now);
        s.record_fetch(2, 50, 50, now);
        s.record_log_start(2, 0);
        s.record_fetch(3, 30, 50, now);
        s.record_log_start(3, 0);
        // 4 holds everything but is out of the ISR.
        s.record_fetch(4, 50, 50, now);
        let ids = |c: Vec<(i32, i64, Duration)>| c.into_iter().map(|c| c.0).collect::<Vec<_>>();
        assert_eq!(ids(s.read_candidates(40, now)), vec![2]);
        assert_eq!(ids(s.read_candidates(30, now)), vec![2, 3]);
        // Below a follower's log start it cannot serve.
        s.record_log_start(3, 31);
        assert_eq!(ids(s.read_candidates(30, now)), vec![2]);
        s.become_follower(2, 2, 2, vec![1, 2, 3], vec![1, 2, 3]);
        assert!(s.read_candidates(30, now).is_empty());
    }

    #[test]
    fn a_replica_read_checks_only_the_epoch() {
        let mut s = ReplicaState::single(1, 0);
        s.become_follower(2, 5, 5, vec![1, 2], vec![1, 2]);
        assert!(s.check_replica(5).is_ok());
        assert!(s.check_replica(-1).is_ok());
        assert_eq!(s.check_replica(6), Err(ResponseError::UnknownLeaderEpoch));
        assert_eq!(s.check_replica(4), Err(ResponseError::FencedLeaderEpoch));
        assert_eq!(s.check_leader(5), Err(ResponseError::NotLeaderOrFollower));
    }

    #[test]
    fn follower_behind_the_epoch_start_does_not_join() {
        let now = Instant::now();
        let mut s = ReplicaState::single(1, 0);
        s.become_leader(1, 1, vec![1, 2], vec![1], 50, now);
        s.record_fetch(2, 40, 50, now);
        assert_eq!(s.wanted_isr(40, Duration::from_secs(10), now), None);
    }
}
