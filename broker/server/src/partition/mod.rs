//! A partition this broker hosts: its log, its replication state, and the signals that wake
//! waiting requests — fetches long-polling for data (`appended`) and acks=all produces waiting
//! for the high watermark (`high_watermark`). The leader advances the high watermark here, from
//! the ISR members' progress; a follower takes it from its leader's fetch responses. `replica`
//! holds the replication bookkeeping (role, ISR, followers' progress).

pub mod read_replica;
pub mod replica;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use strait_storage::PartitionLog;
use tokio::sync::{Notify, watch};

use self::replica::ReplicaState;

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
        if let Some(hw) = self.wanted_high_watermark() {
            self.raise_high_watermark(hw);
        }
        self.log.high_watermark()
    }

    /// Leader: the high watermark the ISR members' progress allows now (`None` when this broker
    /// does not lead or a member's progress is unknown).
    fn wanted_high_watermark(&self) -> Option<i64> {
        let leader_end = self.log.log_end_offset();
        let replica = self.replica();
        if !replica.is_leader() {
            return None;
        }
        replica.isr_high_watermark(leader_end)
    }

    /// Raises the high watermark to `hw` and wakes its waiters if it moved. Advances race (an
    /// append and follower fetches each compute a target from what they saw): a stale, lower
    /// target must never undo a higher one, or an acks=all produce already covered waits for the
    /// next follower fetch — a parked one times out only after `replica.fetch.wait.max.ms`.
    fn raise_high_watermark(&self, hw: i64) {
        if self.log.raise_high_watermark(hw) {
            self.publish_high_watermark();
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

    /// Leader: a follower fetched at `fetch_offset` with its log starting at `log_start`; its
    /// progress may move the high watermark.
    pub fn record_follower_fetch(
        &self,
        follower: i32,
        fetch_offset: i64,
        log_start: i64,
        now: Instant,
    ) {
        let leader_end = self.log.log_end_offset();
        // One lock for the record and the target: this runs for every partition of every
        // follower fetch, thousands of times per round on a broker with many partitions.
        let wanted = {
            let mut replica = self.replica();
            replica.record_fetch(follower, fetch_offset, leader_end, now);
            replica.record_log_start(follower, log_start);
            if replica.is_leader() {
                replica.isr_high_watermark(leader_end)
            } else {
                None
            }
        };
        if let Some(hw) = wanted {
            self.raise_high_watermark(hw);
        }
    }

    /// Leader, KIP-392: the follower a consumer in `client_rack` fetching at `fetch_offset`
    /// should read from instead (`None`: read here). `rack_of` gives a live broker's rack, or
    /// `None` when the broker cannot serve the client (fenced, or no endpoint on its listener).
    pub fn preferred_read_replica(
        &self,
        client_rack: &str,
        leader_rack: Option<&str>,
        fetch_offset: i64,
        rack_of: impl Fn(i32) -> Option<Option<String>>,
        now: Instant,
    ) -> Option<i32> {
        let candidates = self.replica().read_candidates(fetch_offset, now);
        let candidates: Vec<read_replica::Candidate> = candidates
            .into_iter()
            .filter_map(|(id, log_end, since_caught_up)| {
                Some(read_replica::Candidate {
                    id,
                    rack: rack_of(id)?,
                    log_end,
                    since_caught_up,
                })
            })
            .collect();
        read_replica::rack_aware(client_rack, leader_rack, &candidates)
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

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use strait_storage::{LogConfig, LogManager, TopicPartition};

    use super::*;

    /// One batch of `n` small records.
    fn batch(n: i64) -> Vec<u8> {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: -1,
                timestamp: 0,
                key: None,
                value: Some(bytes::Bytes::from_static(b"v")),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode");
        buf.to_vec()
    }

    /// Node 1 leading partition 0 of `t` (in `dir`) at epoch 0 with follower 2 in the ISR, its
    /// log holding `records` records.
    fn leader_with(dir: &std::path::Path, records: i64) -> (Partition, Instant) {
        let logs =
            LogManager::open(&[dir.to_path_buf()], &|_: &str| LogConfig::default()).expect("logs");
        let tp = TopicPartition {
            topic: "t".into(),
            partition: 0,
        };
        let log = logs.get_or_create(&tp, LogConfig::default()).expect("log");
        let p = Partition::new(0, log, ReplicaState::follower_of(1, -1));
        let now = Instant::now();
        p.replica()
            .become_leader(0, 0, vec![1, 2], vec![1, 2], 0, now);
        p.log.append(&batch(records), 0, 0).expect("append");
        (p, now)
    }

    #[test]
    fn a_stale_advance_never_lowers_the_high_watermark_a_produce_waits_on() {
        let dir = tempfile::tempdir().expect("dir");
        let (p, now) = leader_with(dir.path(), 10);

        // An advance computes its target from what it sees: follower 2 has 4 of the 10 records.
        p.record_follower_fetch(2, 4, 0, now);
        assert_eq!(p.log.high_watermark(), 4);
        let stale = p.wanted_high_watermark().expect("leader");
        // Meanwhile the follower fetches again and the high watermark covers everything.
        let hw = p.watch_high_watermark();
        p.record_follower_fetch(2, 10, 0, now);
        assert_eq!(p.log.high_watermark(), 10);
        // The stale advance lands last: it must not take the high watermark back to 4, where an
        // acks=all produce of offset 9 would wait for a follower fetch that is not coming.
        p.raise_high_watermark(stale);
        assert_eq!(p.log.high_watermark(), 10);
        assert_eq!(*hw.borrow(), 10);
    }

    #[tokio::test]
    async fn a_waiting_produce_is_released_by_the_follower_fetch_that_covers_it() {
        let dir = tempfile::tempdir().expect("dir");
        let (p, now) = leader_with(dir.path(), 3);
        let p = Arc::new(p);
        p.record_follower_fetch(2, 0, 0, now);
        let waiter = {
            let p = p.clone();
            tokio::spawn(async move {
                p.wait_for_high_watermark(3, 0, Duration::from_secs(30))
                    .await
            })
        };
        tokio::task::yield_now().await;
        p.record_follower_fetch(2, 3, 0, now);
        let done = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert_eq!(
            done.expect("released without waiting for a timeout")
                .expect("task"),
            Replicated::Yes
        );
    }
}
