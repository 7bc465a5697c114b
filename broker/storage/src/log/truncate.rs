//! Losing a prefix (DeleteRecords, retention moving the log start) or a suffix (a follower
//! truncating to its leader's epoch end): the segment files go only after the state no longer
//! names them.

use crate::LogError;
use crate::segment::LogSegment;

use super::*;

impl PartitionLog {
    /// DeleteRecords: moves log start to `offset` (<= high watermark) and deletes segments that
    /// end below it. Returns the new log start offset.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let mut st = self.live()?;
        if offset > st.high_watermark || offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: st.log_start_offset,
                log_end: st.high_watermark,
            });
        }
        if offset <= st.log_start_offset {
            // Below the local log start only the remote tier moves; the server records it in the
            // metadata log and the remote log manager deletes the remote segments it passes.
            return Ok(match st.remote_log_start {
                Some(remote) if offset > remote => {
                    st.remote_log_start = Some(offset);
                    offset
                }
                _ => st.global_log_start(),
            });
        }
        st.remote_log_start = None;
        let removed = self.advance_log_start_locked(&mut st, offset, 0)?;
        let start = st.log_start_offset;
        drop(st);
        self.delete_segment_files(&removed);
        Ok(start)
    }

    /// Sets log start to at least `offset`, dropping the first `extra` closed segments plus any
    /// closed segment lying wholly below the new start; returns the dropped segments.
    pub(crate) fn advance_log_start_locked(
        &self,
        st: &mut LogState,
        offset: i64,
        extra: usize,
    ) -> Result<Vec<LogSegment>, LogError> {
        let mut removed = Vec::new();
        let mut new_start = offset.max(st.log_start_offset);
        while st.segments.len() > 1 {
            let mut keys = st.segments.keys();
            let (Some(_), Some(&second)) = (keys.next(), keys.next()) else {
                break;
            };
            if removed.len() >= extra && second > new_start {
                break;
            }
            if let Some((_, seg)) = st.segments.pop_first() {
                removed.push(seg);
            }
            new_start = new_start.max(second);
        }
        if new_start > st.log_start_offset {
            st.log_start_offset = new_start;
            let hw = st.high_watermark.max(new_start);
            st.set_hw(hw);
            st.recovery_point = st.recovery_point.max(new_start);
            // Epochs of data still in the remote tier stay: OffsetForLeaderEpoch answers for
            // the whole log (KIP-405), not the local part.
            let floor = st.global_log_start();
            st.epochs.truncate_from_start(floor)?;
        }
        if !removed.is_empty() {
            st.generation += 1;
            // Kafka deletes a segment's producer snapshot with it.
            let first_base = st.segments.first_key_value().map_or(0, |(b, _)| *b);
            st.producers.delete_snapshots_before(first_base)?;
        }
        if let Some(cp) = st.cleaner_checkpoint
            && cp < st.log_start_offset
        {
            st.cleaner_checkpoint = Some(st.log_start_offset);
        }
        Ok(removed)
    }

    pub(crate) fn delete_segment_files(&self, removed: &[LogSegment]) {
        for seg in removed {
            if let Err(e) = seg.delete_files() {
                tracing::warn!(partition = %self.tp, segment = %seg.log_path().display(), "could not delete segment: {e}");
            } else {
                tracing::info!(partition = %self.tp, base_offset = seg.base_offset, "deleted log segment");
            }
        }
    }

    /// Drops everything at or after `offset` (whole batches: the log end may land below it).
    pub fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        self.guard(self.truncate_to_unguarded(offset))
    }

    fn truncate_to_unguarded(&self, offset: i64) -> Result<(), LogError> {
        let mut st = self.live()?;
        if offset >= st.log_end_offset() {
            return Ok(());
        }
        st.generation += 1;
        let mut removed = Vec::new();
        let first_base = st.segments.first_key_value().map_or(0, |(b, _)| *b);
        let offset = offset.max(0);
        if offset < first_base {
            removed = self.reset_locked(&mut st, offset)?;
        } else {
            while let Some(entry) = st.segments.last_entry() {
                if *entry.key() <= offset {
                    break;
                }
                removed.push(entry.remove());
            }
            let active = st.active_mut();
            active.truncate_to(offset)?;
            active.write_indexes(false)?;
        }
        let leo = st.log_end_offset();
        st.log_start_offset = st.log_start_offset.min(leo);
        st.high_watermark = st.high_watermark.min(leo);
        st.recovery_point = st.recovery_point.min(leo);
        st.epochs.truncate_from_end(leo)?;
        st.cleaner_checkpoint = st.cleaner_checkpoint.map(|cp| cp.min(leo));
        // Fenced or sequenced state from the removed batches must go: reload and replay. Nothing
        // expires here (no clock); the periodic expiry catches up.
        st.rebuild_producer_state(0, i64::MAX)?;
        // Deleted under the lock: a roll right after could recreate a file of the same name.
        self.delete_segment_files(&removed);
        drop(st);
        tracing::info!(partition = %self.tp, offset, "truncated log");
        Ok(())
    }

    /// Kafka's `truncateFullyAndStartAt`: drops all data and restarts the log empty at `offset`,
    /// which may lie beyond the log end (a follower whose fetch offset fell below the leader's
    /// log start). Epochs and producer state go with the data.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), LogError> {
        self.guard(self.truncate_fully_unguarded(offset))
    }

    fn truncate_fully_unguarded(&self, offset: i64) -> Result<(), LogError> {
        let mut st = self.live()?;
        let offset = offset.max(0);
        st.generation += 1;
        let removed = self.reset_locked(&mut st, offset)?;
        st.high_watermark = offset;
        st.recovery_point = offset;
        st.first_unflushed_ms = None;
        st.cleaner_checkpoint = st.cleaner_checkpoint.map(|_| offset);
        // Every snapshot describes removed data, even those below the new start.
        st.producers.delete_snapshots_before(i64::MAX)?;
        st.rebuild_producer_state(0, i64::MAX)?;
        self.delete_segment_files(&removed);
        drop(st);
        tracing::info!(partition = %self.tp, offset, "truncated the whole log");
        Ok(())
    }

    /// Replaces every segment by one empty segment at `offset` (reusing, emptied, a segment that
    /// already starts there, so no file is clobbered) and clears the epochs; returns the segments
    /// whose files are to be deleted. The log never lacks an active segment, even on error.
    pub(super) fn reset_locked(
        &self,
        st: &mut LogState,
        offset: i64,
    ) -> Result<Vec<LogSegment>, LogError> {
        let fresh = match st.segments.get_mut(&offset) {
            Some(seg) => {
                seg.truncate_to(offset)?;
                seg.write_indexes(false)?;
                None
            }
            None => Some(LogSegment::create(&self.dir(), offset)?),
        };
        let mut removed = Vec::new();
        for (base, seg) in std::mem::take(&mut st.segments) {
            if base == offset && fresh.is_none() {
                st.segments.insert(base, seg);
            } else {
                removed.push(seg);
            }
        }
        if let Some(seg) = fresh {
            st.segments.insert(offset, seg);
        }
        st.log_start_offset = offset;
        st.epochs.clear()?;
        Ok(removed)
    }
}
