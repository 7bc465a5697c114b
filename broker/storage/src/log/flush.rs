//! Durability: fsync up to an offset (the recovery point moves only over what is on disk), the
//! time- and count-based flush policy, and closing the log.

use std::fs::File;
use std::sync::Arc;

use crate::LogError;

use super::*;

impl PartitionLog {
    /// fsyncs all data, advances the recovery point to the log end and writes the indexes.
    pub fn flush(&self) -> Result<(), LogError> {
        self.flush_to(i64::MAX)
    }

    /// fsyncs the segments holding offsets below `target` outside the lock, then advances the
    /// recovery point unless data was removed meanwhile.
    pub(crate) fn flush_to(&self, target: i64) -> Result<(), LogError> {
        self.guard(self.flush_to_unguarded(target))
    }

    fn flush_to_unguarded(&self, target: i64) -> Result<(), LogError> {
        let mut files = Vec::new();
        let mut index_paths = Vec::new();
        let mut closed = Vec::new();
        let (generation, target) = {
            let mut st = self.state.lock();
            if st.deleted || self.is_offline() {
                return Ok(());
            }
            let target = target.min(st.log_end_offset());
            let rp = st.recovery_point;
            if target <= rp {
                return Ok(());
            }
            let active_base = st.active().base_offset;
            for seg in st.segments.values_mut() {
                if seg.next_offset > rp && seg.base_offset < target {
                    files.push(Arc::clone(&seg.file));
                    seg.write_indexes(false)?;
                    if seg.base_offset != active_base {
                        index_paths.push(seg.index_path());
                        index_paths.push(seg.time_index_path());
                        index_paths.push(seg.txn_index_path());
                        closed.push(seg.base_offset);
                    }
                }
            }
            (st.generation, target)
        };
        for file in files {
            file.sync_data()?;
        }
        for path in index_paths {
            match File::open(&path).and_then(|f| f.sync_all()) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        let mut st = self.state.lock();
        if st.generation == generation {
            // Closed segments take no new index entries, so their synced files are final.
            for base in closed {
                if let Some(seg) = st.segments.get_mut(&base) {
                    seg.indexes_dirty = false;
                }
            }
            if target > st.recovery_point {
                st.recovery_point = target;
                if target >= st.log_end_offset() {
                    st.first_unflushed_ms = None;
                }
            }
        }
        Ok(())
    }

    /// flush.ms, plus segments rolled since the last flush (Kafka flushes those on roll).
    pub(crate) fn flush_if_due(&self, now_ms: i64) -> Result<(), LogError> {
        let flush_ms = self.config.read().flush_ms;
        let target = {
            let st = self.state.lock();
            if st.deleted {
                return Ok(());
            }
            let age_due = match (flush_ms, st.first_unflushed_ms) {
                (Some(ms), Some(t)) => now_ms.saturating_sub(t) >= ms.min(i64::MAX as u64) as i64,
                _ => false,
            };
            let active_base = st.active().base_offset;
            if age_due {
                Some(st.log_end_offset())
            } else if st.recovery_point < active_base {
                Some(active_base)
            } else {
                None
            }
        };
        match target {
            Some(t) => self.flush_to(t),
            None => Ok(()),
        }
    }

    /// Clean close: flush, index the active segment's largest timestamp, sync every index.
    pub(crate) fn close(&self) -> Result<(), LogError> {
        if self.is_offline() {
            return Ok(());
        }
        self.flush()?;
        let mut st = self.state.lock();
        if st.deleted {
            return Ok(());
        }
        st.active_mut().seal();
        for seg in st.segments.values_mut() {
            if seg.indexes_dirty {
                seg.write_indexes(true)?;
            }
        }
        let leo = st.log_end_offset();
        st.producers.take_snapshot(leo)
    }
}
