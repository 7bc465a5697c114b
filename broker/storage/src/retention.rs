//! Retention (Kafka's `deleteOldSegments`): deletes the oldest closed segments beyond
//! retention.ms (by each segment's largest timestamp) or retention.bytes, never the active segment
//! and never data above the high watermark, and advances the log start offset. Only logs whose
//! cleanup.policy includes `delete`. A tiered log keeps local.retention.* here instead, over
//! copied segments only (`log/tiered.rs`).

use std::time::UNIX_EPOCH;

use crate::LogError;
use crate::log::{LogState, PartitionLog};
use crate::segment::LogSegment;

/// Kafka's `largestTimestamp`: the largest record timestamp, or the file's mtime without one.
fn largest_timestamp(segment: &LogSegment) -> i64 {
    if segment.max_timestamp >= 0 {
        return segment.max_timestamp;
    }
    segment
        .file
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

/// How many leading segments retention allows to delete.
pub(crate) fn deletable_prefix(
    st: &LogState,
    retention_ms: Option<i64>,
    retention_bytes: Option<i64>,
    now_ms: i64,
) -> usize {
    let closed: Vec<&LogSegment> = st
        .segments
        .values()
        .take(st.segments.len().saturating_sub(1))
        .collect();
    let below_hw = |s: &LogSegment| s.next_offset <= st.high_watermark;
    let mut count = 0;
    if let Some(ms) = retention_ms.filter(|ms| *ms >= 0) {
        while count < closed.len()
            && below_hw(closed[count])
            && now_ms.saturating_sub(largest_timestamp(closed[count])) > ms
        {
            count += 1;
        }
    }
    if let Some(limit) = retention_bytes.filter(|b| *b >= 0) {
        let total: u64 = st.segments.values().map(|s| s.size).sum();
        let deleted: u64 = closed[..count].iter().map(|s| s.size).sum();
        let mut excess = (total - deleted) as i64 - limit;
        while count < closed.len()
            && below_hw(closed[count])
            && excess - closed[count].size as i64 >= 0
        {
            excess -= closed[count].size as i64;
            count += 1;
        }
    }
    count
}

impl PartitionLog {
    /// Applies retention.ms / retention.bytes; returns the number of segments deleted.
    pub(crate) fn enforce_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        let config = self.config();
        if config.remote_storage_enable {
            return self.enforce_local_retention(now_ms);
        }
        if !config.cleanup_delete {
            return Ok(0);
        }
        let mut st = self.state.lock();
        if st.deleted {
            return Ok(0);
        }
        let count = deletable_prefix(&st, config.retention_ms, config.retention_bytes, now_ms);
        let start = st.log_start_offset;
        let removed = self.advance_log_start_locked(&mut st, start, count)?;
        drop(st);
        self.delete_segment_files(&removed);
        Ok(removed.len())
    }
}
