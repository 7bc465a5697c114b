//! A partition this broker hosts: its log, its replication state, and the signals that wake
//! waiting requests — fetches long-polling for data (`appended`) and acks=all produces waiting
//! for the high watermark (`high_watermark`). The leader advances the high watermark here, from
//! the ISR members' progress; a follower takes it from its leader's fetch responses.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use strait_storage::PartitionLog;
use tokio::sync::{Notify, watch};

use crate::cluster::replica::ReplicaState;

/// How a wait for the high watermark ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replicated {
    Yes,
    /// This broker stopped leading (or a new leader epoch began): the records may be lost.
    LostLeadership,
    TimedOut,
}

pub struct Partition {
    pub index: i32,
    pub log: Arc<PartitionLog>,
    /// Notified after every append and high-watermark move, so fetches waiting for `min_bytes`
    /// wake up.
    pub appended: Notify,
    /// The high watermark, published for acks=all produces waiting on it.
    high_watermark: watch::Sender<i64>,
    replica: Mutex<ReplicaState>,
}

impl Partition {
    pub fn new(index: i32, log: Arc<PartitionLog>, replica: ReplicaState) -> Partition {
        let hw = log.high_watermark();
        Partition {
            index,
            log,
            appended: Notify::new(),
            high_watermark: watch::Sender::new(hw),
            replica: Mutex::new(replica),
        }
    }

    /// The replication state, locked. Never held across an await or disk I/O.
    pub fn replica(&self) -> MutexGuard<'_, ReplicaState> {
        self.replica.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Leader: moves the high watermark up to what the ISR allows (never down). Returns the
    /// high watermark after the call.
    pub fn advance_high_watermark(&self) -> i64 {
        let leader_end = self.log.log_end_offset();
        let wanted = {
            let replica = self.replica();
            if !replica.is_leader() {
                return self.log.high_watermark();
            }
            replica.isr_high_watermark(leader_end)
        };
        let current = self.log.high_watermark();
        match wanted {
            Some(hw) if hw > current => {
                self.log.set_high_watermark(hw);
                self.publish_high_watermark();
                self.log.high_watermark()
            }
            _ => current,
        }
    }

    /// Follower: the leader's high watermark, bounded by what this replica has.
    pub fn follow_high_watermark(&self, leader_hw: i64) {
        let hw = leader_hw.min(self.log.log_end_offset());
        if hw != self.log.high_watermark() {
            self.log.set_high_watermark(hw);
            self.publish_high_watermark();
        }
    }

    /// Wakes everything waiting on the high watermark or new data.
    pub fn publish_high_watermark(&self) {
        self.high_watermark.send_replace(self.log.high_watermark());
        self.appended.notify_waiters();
    }

    /// Leader: a follower fetched at `fetch_offset`; its progress may move the high watermark.
    pub fn record_follower_fetch(&self, follower: i32, fetch_offset: i64, now: Instant) {
        let leader_end = self.log.log_end_offset();
        self.replica()
            .record_fetch(follower, fetch_offset, leader_end, now);
        self.advance_high_watermark();
    }

    /// Watches the high watermark (acks=all waits until it passes its last offset).
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Leader: waits until the high watermark reaches `target` (acks=all, offset commits), while
    /// this broker still leads at `leader_epoch`, for at most `timeout`.
    pub async fn wait_for_high_watermark(
        &self,
        target: i64,
        leader_epoch: i32,
        timeout: Duration,
    ) -> Replicated {
        let mut hw = self.watch_high_watermark();
        let lost = || {
            let replica = self.replica();
            !replica.is_leader() || replica.leader_epoch != leader_epoch
        };
        let waited = tokio::time::timeout(timeout, async {
            loop {
                if *hw.borrow_and_update() >= target || lost() {
                    return;
                }
                // Leadership changes publish the high watermark too, so this wakes for both.
                if hw.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        if lost() {
            Replicated::LostLeadership
        } else if waited.is_err() && self.log.high_watermark() < target {
            Replicated::TimedOut
        } else {
            Replicated::Yes
        }
    }
}
