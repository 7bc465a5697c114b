//! The log's side of tiered storage (KIP-405): which closed segments are ready to copy, the
//! remote tier's bounds the server sets from the metadata image, and local retention, which
//! deletes only segments already copied (the whole log's retention is applied to the remote tier
//! by the server's remote log manager).

use std::path::PathBuf;

use crate::LogError;

use super::*;

/// A closed segment and the state files KIP-405 copies with it.
#[derive(Debug, Clone)]
pub struct ClosedSegment {
    pub base_offset: i64,
    /// Last offset + 1.
    pub next_offset: i64,
    pub max_timestamp: i64,
    pub size: u64,
    pub log: PathBuf,
    pub offset_index: PathBuf,
    pub time_index: PathBuf,
    pub txn_index: Option<PathBuf>,
    /// The producer snapshot taken when the segment was rolled (`<next_offset>.snapshot`).
    pub producer_snapshot: Option<PathBuf>,
    /// Leader epochs starting within the segment (the first clamped to its base offset).
    pub epochs: Vec<(i32, i64)>,
}

impl ClosedSegment {
    /// Kafka's `leader-epoch-checkpoint` text for the epochs up to this segment's end, as KIP-405
    /// uploads it with each segment.
    pub fn leader_epoch_checkpoint(&self) -> String {
        let mut out = format!("0\n{}\n", self.epochs.len());
        for (epoch, offset) in &self.epochs {
            out.push_str(&format!("{epoch} {offset}\n"));
        }
        out
    }
}

impl PartitionLog {
    /// Closed segments wholly below `upper` (the high watermark or last stable offset, so nothing
    /// a new leader could truncate is copied) that end after `after` (the highest copied
    /// offset), oldest first. A segment holding `after` is included: replicas roll segments at
    /// different offsets, so after a leader change the new leader's segment may straddle what its
    /// predecessor copied, and skipping it would leave a gap that local retention then deletes.
    /// Remote segments may therefore overlap (as in Kafka); both hold the same bytes.
    pub fn closed_segments(&self, after: i64, upper: i64) -> Vec<ClosedSegment> {
        let st = self.state.lock();
        if st.deleted {
            return Vec::new();
        }
        let dir = self.dir();
        let entries = st.epochs.entries().to_vec();
        let closed = st.segments.len().saturating_sub(1);
        st.segments
            .values()
            .take(closed)
            .filter(|s| s.next_offset - 1 > after && s.next_offset <= upper && s.size > 0)
            .map(|s| {
                let mut epochs: Vec<(i32, i64)> = Vec::new();
                for &(epoch, start) in &entries {
                    if start >= s.next_offset {
                        break;
                    }
                    if start <= s.base_offset {
                        epochs.clear();
                        epochs.push((epoch, s.base_offset));
                    } else {
                        epochs.push((epoch, start));
                    }
                }
                let snapshot = dir.join(format!("{:020}.snapshot", s.next_offset));
                let txn = s.txn_index_path();
                ClosedSegment {
                    base_offset: s.base_offset,
                    next_offset: s.next_offset,
                    max_timestamp: s.max_timestamp,
                    size: s.size,
                    log: s.log_path(),
                    offset_index: s.index_path(),
                    time_index: s.time_index_path(),
                    txn_index: txn.exists().then_some(txn),
                    producer_snapshot: snapshot.exists().then_some(snapshot),
                    epochs,
                }
            })
            .collect()
    }

    /// The remote tier as the metadata image describes it: where the partition's log starts in
    /// it (None: nothing below the local segments), the last offset it holds (-1: none) and the
    /// leader epochs of its segments (epoch, start offset). Those epochs fill the epoch cache
    /// below the local segments, so that OffsetForLeaderEpoch answers across tiers, also on a
    /// replica that started its log at the remote tier's tail (KIP-405 follower bootstrap).
    pub fn set_remote_bounds(
        &self,
        start: Option<i64>,
        highest_copied: i64,
        epochs: &[(i32, i64)],
    ) -> Result<(), LogError> {
        let mut st = self.state.lock();
        // Kept as given: the log start is the lower of it and the local start, whichever the
        // local log does later (local retention, a follower starting over at the leader's tail).
        st.remote_log_start = start;
        st.highest_remote_offset = highest_copied;
        if st.deleted || start.is_none() {
            return Ok(());
        }
        let floor = st.global_log_start();
        let merged = crate::epoch_cache::with_prefix(st.epochs.entries(), epochs, floor);
        if let Some(entries) = merged {
            let result = st.epochs.install(entries);
            drop(st);
            return self.guard(result);
        }
        Ok(())
    }

    /// KIP-405 follower bootstrap: drops all local data and starts the log at `offset` (the
    /// remote tier's tail), remembering that the producer state of the data below it is still to
    /// come from the remote tier ([`Self::install_remote_producer_snapshot`]).
    pub fn start_at_remote_tail(&self, offset: i64) -> Result<(), LogError> {
        self.truncate_fully_and_start_at(offset)?;
        self.state.lock().remote_producer_state_pending = Some(offset);
        Ok(())
    }

    /// The offset this log started at the remote tail while its producer state below is still
    /// missing.
    pub fn remote_producer_state_pending(&self) -> Option<i64> {
        let st = self.state.lock();
        st.remote_producer_state_pending.filter(|_| !st.deleted)
    }

    /// Installs the remote tier's producer snapshot taken at `offset` (empty: the segment had
    /// none, no producer state) and replays this log's batches since onto it. Ignored, and false,
    /// unless the log still waits for that very offset (it may have been truncated again).
    pub fn install_remote_producer_snapshot(
        &self,
        offset: i64,
        snapshot: &[u8],
    ) -> Result<bool, LogError> {
        let mut st = self.live()?;
        if st.remote_producer_state_pending != Some(offset) {
            return Ok(false);
        }
        if offset < st.log_start_offset {
            st.remote_producer_state_pending = None;
            return Ok(false);
        }
        let result = (|| {
            if !snapshot.is_empty() {
                st.producers.install_snapshot(offset, snapshot)?;
            }
            st.rebuild_producer_state(0, i64::MAX)
        })();
        if result.is_ok() {
            st.remote_producer_state_pending = None;
        }
        drop(st);
        self.guard(result).map(|()| true)
    }

    /// The last offset the remote tier holds, as last set (-1: none).
    pub fn highest_remote_offset(&self) -> i64 {
        self.state.lock().highest_remote_offset
    }

    /// Bytes on local disk and bytes of closed segments not yet copied (the copy lag).
    pub fn copy_lag(&self) -> (u64, u64) {
        let st = self.state.lock();
        let closed = st.segments.len().saturating_sub(1);
        st.segments
            .values()
            .take(closed)
            .filter(|s| s.next_offset - 1 > st.highest_remote_offset)
            .fold((0u64, 0u64), |(b, n), s| (b + s.size, n + 1))
    }

    /// Bytes of local segments (the active one included) holding offsets not copied yet: with the
    /// remote tier's size, the whole log's size for retention.bytes.
    pub fn uncopied_bytes(&self) -> u64 {
        let st = self.state.lock();
        st.segments
            .values()
            .filter(|s| s.next_offset - 1 > st.highest_remote_offset)
            .map(|s| s.size)
            .sum()
    }

    /// Local retention of a tiered log: the leading closed segments already copied whose data
    /// local.retention.ms / local.retention.bytes no longer keep locally. The log start moves into
    /// the remote tier; nothing is lost.
    pub(crate) fn enforce_local_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        let config = self.config();
        let mut st = self.state.lock();
        if st.deleted || st.highest_remote_offset < 0 {
            return Ok(0);
        }
        let copied = st
            .segments
            .values()
            .take(st.segments.len().saturating_sub(1))
            .take_while(|s| s.next_offset - 1 <= st.highest_remote_offset)
            .count();
        let count = crate::retention::deletable_prefix(
            &st,
            config.local_retention_ms,
            config.local_retention_bytes,
            now_ms,
        )
        .min(copied);
        if count == 0 {
            return Ok(0);
        }
        let start = st.log_start_offset;
        st.remote_log_start = Some(st.remote_log_start.map_or(start, |r| r.min(start)));
        let removed = self.advance_log_start_locked(&mut st, start, count)?;
        drop(st);
        self.delete_segment_files(&removed);
        Ok(removed.len())
    }
}
