//! One partition's log (Kafka's `UnifiedLog`/`LocalLog`): ordered segments, offsets, high
//! watermark, recovery point and leader epochs behind one lock. Appends are serialized; reads and
//! timestamp searches only snapshot file handles under the lock and do their I/O outside it.
//!
//! This file holds the state, reads and searches; `append` the leader's and the follower's
//! appends (and segment rolls), `truncate` every way the log loses a prefix or a suffix
//! (DeleteRecords, retention's start advance, follower truncation), `flush` durability (flush,
//! recovery point, close), `txn` the transaction API (markers, last stable offset, aborted
//! transactions, producers). All are `impl PartitionLog` blocks over the one lock.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::checkpoint::{PARTITION_METADATA, write_partition_metadata};
use crate::dir_failure::DirHealth;
use crate::epoch_cache::{EpochCache, epoch_for_offset};
use crate::producer_state::{ProducerStateManager, Replayed};
use crate::reader::{HEADER_CHUNK, SegmentReader, Step};
use crate::records::first_record_matching;
use crate::region::FileRegion;
use crate::segment::LogSegment;
use crate::transaction::read_marker;
use crate::{LogConfig, LogError, TopicPartition};

mod append;
mod flush;
mod tiered;
mod truncate;
mod txn;

pub use tiered::ClosedSegment;

pub struct AppendInfo {
    /// For a duplicate, the offsets the original batches got.
    pub first_offset: i64,
    pub last_offset: i64,
    /// -1 unless LogAppendTime.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    pub record_count: u64,
    pub bytes: u64,
    pub max_timestamp: i64,
    /// The request repeated batches already in the log (an idempotent producer's retry): nothing
    /// was written.
    pub duplicate: bool,
}

pub struct ReadResult {
    /// Whole batches, in order.
    pub regions: Vec<FileRegion>,
    pub bytes: u64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimestampLookup {
    pub offset: i64,
    pub timestamp: i64,
    pub leader_epoch: Option<i32>,
}

/// Everything guarded by the partition lock.
#[derive(Debug)]
pub(crate) struct LogState {
    /// By base offset; never empty, the last one is active.
    pub segments: BTreeMap<i64, LogSegment>,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub recovery_point: i64,
    pub epochs: EpochCache,
    pub topic_id: Option<String>,
    /// Bumped whenever data is removed, so a flush that raced with it does not move the
    /// recovery point over data that is no longer there.
    pub generation: u64,
    /// Wall time of the oldest append not yet fsynced.
    pub first_unflushed_ms: Option<i64>,
    pub deleted: bool,
    pub producers: ProducerStateManager,
    /// First offset the cleaner has not compacted yet (`cleaner-offset-checkpoint`).
    pub cleaner_checkpoint: Option<i64>,
    /// Tiered storage, set by the server from the metadata image: the partition's log start when
    /// it lies in the remote tier below the local segments (`log_start_offset` is then the local
    /// log start, Kafka's localLogStartOffset).
    pub remote_log_start: Option<i64>,
    /// Last offset copied to the remote tier (-1: none): local retention may delete local
    /// segments only at or below it.
    pub highest_remote_offset: i64,
    /// A replica that started its log at the remote tier's tail (KIP-405 follower bootstrap)
    /// still lacks the producer state of the data below it: the offset it started at, until the
    /// server installs the remote producer snapshot taken there.
    pub remote_producer_state_pending: Option<i64>,
}

impl LogState {
    pub fn active(&self) -> &LogSegment {
        match self.segments.last_key_value() {
            Some((_, s)) => s,
            None => unreachable!("a log always has an active segment"),
        }
    }

    pub fn active_mut(&mut self) -> &mut LogSegment {
        match self.segments.last_entry() {
            Some(e) => e.into_mut(),
            None => unreachable!("a log always has an active segment"),
        }
    }

    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    /// Kafka's logStartOffset: the remote tier's start when it lies below the local segments.
    pub fn global_log_start(&self) -> i64 {
        match self.remote_log_start {
            Some(remote) => remote.min(self.log_start_offset),
            None => self.log_start_offset,
        }
    }

    /// Reloads producer state: drops snapshots above the log end, loads the newest one left and
    /// replays the batches after it (Kafka's `loadProducerState`): headers, plus the bodies of
    /// control batches for their markers.
    pub fn rebuild_producer_state(
        &mut self,
        now_ms: i64,
        expiration_ms: i64,
    ) -> Result<(), LogError> {
        self.reload_producers(now_ms, expiration_ms, &BTreeSet::new())
    }

    /// [`Self::rebuild_producer_state`] that also rewrites the transaction index of the segments
    /// based at `rebuild_txn` (Kafka rebuilds it while recovering a segment, with the producer
    /// state as of the segment's start). The replay then starts from a snapshot at or below the
    /// first of them, so that every transaction ongoing there is known.
    pub fn reload_producers(
        &mut self,
        now_ms: i64,
        expiration_ms: i64,
        rebuild_txn: &BTreeSet<i64>,
    ) -> Result<(), LogError> {
        let leo = self.log_end_offset();
        self.producers.delete_snapshots_after(leo)?;
        let limit = rebuild_txn.first().map_or(leo, |&base| base.min(leo));
        let from = self
            .producers
            .load_latest_snapshot(limit, now_ms, expiration_ms)?
            .unwrap_or(i64::MIN);
        for seg in self.segments.values_mut() {
            if rebuild_txn.contains(&seg.base_offset) {
                seg.txn_index.clear();
                seg.indexes_dirty = true;
            }
        }
        for seg in self.segments.values_mut().filter(|s| s.next_offset > from) {
            let rebuild = rebuild_txn.contains(&seg.base_offset);
            let start = if seg.base_offset <= from {
                u64::from(seg.offset_index.lookup(from))
            } else {
                0
            };
            let file = Arc::clone(&seg.file);
            let mut reader = SegmentReader::new(&file, seg.size, HEADER_CHUNK);
            let mut pos = start;
            loop {
                let h = match reader.header_at(pos)? {
                    Step::End => break,
                    Step::Invalid(why) => return Err(LogError::CorruptMessage(why)),
                    Step::Batch(h) => h,
                };
                if h.base_offset >= from && h.has_producer_id() {
                    // Control batches are rare and small: their one record is read for the marker.
                    let marker = if h.is_control() {
                        match reader.get(pos, h.size as usize)? {
                            Some(bytes) => read_marker(bytes, &h)?,
                            None => {
                                return Err(LogError::CorruptMessage(format!(
                                    "control batch at position {pos} is cut short"
                                )));
                            }
                        }
                    } else {
                        None
                    };
                    let completed =
                        Replayed::new(&h, marker).and_then(|r| self.producers.replay(&r));
                    if let Some(aborted) = completed.and_then(|c| c.aborted_entry())
                        && rebuild
                    {
                        seg.append_aborted(aborted);
                    }
                }
                pos += u64::from(h.size);
            }
        }
        for seg in self.segments.values_mut() {
            if rebuild_txn.contains(&seg.base_offset) {
                seg.write_indexes(false)?;
            }
        }
        self.producers.expire(now_ms, expiration_ms);
        self.producers.on_high_watermark(self.high_watermark);
        Ok(())
    }

    /// Kafka's `firstUnstableOffset`, never below the log start.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers
            .first_unstable_offset()
            .map(|o| o.max(self.log_start_offset))
    }

    /// Kafka's `lastStableOffset`: the first unstable offset, capped by the high watermark.
    pub fn last_stable_offset(&self) -> i64 {
        match self.first_unstable_offset() {
            Some(o) if o < self.high_watermark => o,
            _ => self.high_watermark,
        }
    }

    /// Moves the high watermark; transactions whose marker it passes become stable.
    pub fn set_hw(&mut self, hw: i64) {
        self.high_watermark = hw;
        self.producers.on_high_watermark(hw);
    }
}

/// Where a partition log lives.
#[derive(Debug, Clone)]
pub(crate) struct Location {
    pub dir: PathBuf,
    pub health: Arc<DirHealth>,
}

/// What a read or search needs from one segment, taken under the lock.
struct SegmentSnapshot {
    file: Arc<File>,
    size: u64,
    start: u64,
}

/// One partition's log. All methods take &self (internal locking).
pub struct PartitionLog {
    tp: TopicPartition,
    /// The partition's directory and the health of the log dir holding it; both change only when
    /// the log moves to another log dir (AlterReplicaLogDirs), under the state lock.
    location: RwLock<Location>,
    config: RwLock<LogConfig>,
    pub(crate) state: Mutex<LogState>,
    /// One cleaner pass at a time per log.
    pub(crate) clean_lock: Mutex<()>,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("tp", &self.tp)
            .field("dir", &self.location.read().dir)
            .finish_non_exhaustive()
    }
}

impl PartitionLog {
    pub(crate) fn from_state(
        tp: TopicPartition,
        dir: PathBuf,
        health: Arc<DirHealth>,
        config: LogConfig,
        state: LogState,
    ) -> PartitionLog {
        PartitionLog {
            tp,
            location: RwLock::new(Location { dir, health }),
            config: RwLock::new(config),
            state: Mutex::new(state),
            clean_lock: Mutex::new(()),
        }
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    pub fn dir(&self) -> PathBuf {
        self.location.read().dir.clone()
    }

    pub(crate) fn location(&self) -> Location {
        self.location.read().clone()
    }

    /// Re-points the log at its new directory after a move (state lock held by the caller).
    pub(crate) fn set_location(&self, location: Location) {
        *self.location.write() = location;
    }

    /// Whether the log dir holding this log has failed.
    pub fn is_offline(&self) -> bool {
        self.location.read().health.is_offline()
    }

    /// Passes `result` through, taking the log dir offline on an I/O error (Kafka's
    /// `LogDirFailureChannel`).
    pub(crate) fn guard<T>(&self, result: Result<T, LogError>) -> Result<T, LogError> {
        let health = Arc::clone(&self.location.read().health);
        health.check(result)
    }

    pub fn config(&self) -> LogConfig {
        self.config.read().clone()
    }

    pub fn update_config(&self, config: LogConfig) {
        *self.config.write() = config;
    }

    fn live(&self) -> Result<parking_lot::MutexGuard<'_, LogState>, LogError> {
        let st = self.state.lock();
        if st.deleted {
            return Err(LogError::Deleted(self.tp.clone()));
        }
        let location = self.location.read();
        if location.health.is_offline() {
            return Err(location.health.offline_error());
        }
        Ok(st)
    }

    /// Number of idempotent producers with state in this partition.
    pub fn producer_count(&self) -> usize {
        self.state.lock().producers.len()
    }

    /// The highest producer id with state here (a linked mirror topic's come from the source).
    pub fn max_producer_id(&self) -> Option<i64> {
        self.state.lock().producers.max_producer_id()
    }

    /// (epoch, last sequence, last offset) of a producer, if it has state here.
    pub fn producer_state(&self, producer_id: i64) -> Option<(i16, i32, i64)> {
        self.state
            .lock()
            .producers
            .get(producer_id)
            .map(|e| (e.epoch, e.last_seq(), e.last_offset()))
    }

    /// Drops producers silent for producer.id.expiration.ms; returns how many.
    pub fn expire_producers(&self, now_ms: i64) -> usize {
        let expiration = self.config.read().producer_id_expiration_ms;
        let mut st = self.state.lock();
        if st.deleted {
            return 0;
        }
        st.producers.expire(now_ms, expiration)
    }

    /// Rolls the active segment if it is older than segment.ms (for partitions without appends).
    pub(crate) fn roll_if_due(&self, now_ms: i64) -> Result<(), LogError> {
        let config = self.config();
        let mut st = self.live()?;
        let leo = st.log_end_offset();
        if st.active().should_roll(&config, 0, leo, now_ms) {
            self.guard(self.roll_locked(&mut st, leo))?;
        }
        Ok(())
    }

    /// Whole batches from the one containing `offset`, below `upper_bound`, within `max_bytes`
    /// (the first batch whole when `min_one`, KIP-74).
    pub fn read(
        &self,
        offset: i64,
        max_bytes: u64,
        upper_bound: i64,
        min_one: bool,
    ) -> Result<ReadResult, LogError> {
        self.guard(self.read_unguarded(offset, max_bytes, upper_bound, min_one))
    }

    fn read_unguarded(
        &self,
        offset: i64,
        max_bytes: u64,
        upper_bound: i64,
        min_one: bool,
    ) -> Result<ReadResult, LogError> {
        let st = self.live()?;
        let (log_start, log_end, hw) = (
            st.global_log_start(),
            st.log_end_offset(),
            st.high_watermark,
        );
        if offset < log_start || offset > log_end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            });
        }
        if offset < st.log_start_offset {
            return Err(LogError::OffsetMovedToTieredStorage {
                offset,
                local_log_start: st.log_start_offset,
            });
        }
        let mut result = ReadResult {
            regions: Vec::new(),
            bytes: 0,
            log_start_offset: log_start,
            log_end_offset: log_end,
            high_watermark: hw,
        };
        let limit = upper_bound.min(log_end);
        if offset >= limit {
            return Ok(result);
        }
        let first = st
            .segments
            .range(..=offset)
            .next_back()
            .map(|(b, _)| *b)
            .unwrap_or(i64::MIN);
        let snapshots: Vec<SegmentSnapshot> = st
            .segments
            .range(first..)
            .take_while(|(base, _)| **base < limit)
            .map(|(_, s)| SegmentSnapshot {
                file: Arc::clone(&s.file),
                size: s.size,
                start: if s.base_offset <= offset {
                    u64::from(s.offset_index.lookup(offset))
                } else {
                    0
                },
            })
            .collect();
        drop(st);

        'segments: for snap in snapshots {
            let mut reader = SegmentReader::new(&snap.file, snap.size, HEADER_CHUNK);
            let mut pos = snap.start;
            loop {
                let header = match reader.header_at(pos)? {
                    Step::End => break,
                    Step::Invalid(why) if result.regions.is_empty() => {
                        return Err(LogError::CorruptMessage(format!("{}: {why}", self.tp)));
                    }
                    Step::Invalid(_) => break 'segments,
                    Step::Batch(h) => h,
                };
                let size = u64::from(header.size);
                if header.last_offset() < offset {
                    pos += size;
                    continue;
                }
                if header.last_offset() >= upper_bound {
                    break 'segments;
                }
                if result.bytes + size > max_bytes && !(result.bytes == 0 && min_one) {
                    break 'segments;
                }
                match result.regions.last_mut() {
                    Some(r)
                        if Arc::ptr_eq(&r.file, &snap.file)
                            && r.position + u64::from(r.len) == pos
                            && u64::from(r.len) + size <= u64::from(u32::MAX) =>
                    {
                        r.len += header.size;
                    }
                    _ => result.regions.push(FileRegion {
                        file: Arc::clone(&snap.file),
                        position: pos,
                        len: header.size,
                    }),
                }
                result.bytes += size;
                pos += size;
            }
        }
        Ok(result)
    }

    /// The partition's log start (Kafka's logStartOffset): in the remote tier when tiering has
    /// deleted local segments.
    pub fn log_start_offset(&self) -> i64 {
        self.state.lock().global_log_start()
    }

    /// The first offset held on local disk (Kafka's localLogStartOffset; KIP-1005's -4).
    pub fn local_log_start_offset(&self) -> i64 {
        self.state.lock().log_start_offset
    }

    /// What a follower tells its leader in a fetch, read under one lock: the log end (its fetch
    /// offset), the latest leader epoch (`last_fetched_epoch`, -1 when none) and the log start.
    pub fn fetch_position(&self) -> (i64, i32, i64) {
        let st = self.state.lock();
        (
            st.log_end_offset(),
            st.epochs.latest_epoch().unwrap_or(-1),
            st.log_start_offset,
        )
    }

    pub fn log_end_offset(&self) -> i64 {
        self.state.lock().log_end_offset()
    }

    pub fn high_watermark(&self) -> i64 {
        self.state.lock().high_watermark
    }

    /// Clamped to [log start, log end].
    pub fn set_high_watermark(&self, hw: i64) {
        let mut st = self.state.lock();
        let leo = st.log_end_offset();
        let hw = hw.clamp(st.log_start_offset, leo);
        st.set_hw(hw);
    }

    /// Moves the high watermark up to `hw` (clamped to the log end), never down; returns whether
    /// it moved. The check and the move are one step under the log's lock, so a leader's
    /// concurrent advances (an append and a follower fetch each computing a target from what they
    /// saw) cannot let a stale, lower target undo a higher one.
    pub fn raise_high_watermark(&self, hw: i64) -> bool {
        let mut st = self.state.lock();
        let target = hw.min(st.log_end_offset());
        if target > st.high_watermark {
            st.set_hw(target);
            true
        } else {
            false
        }
    }

    /// The first record whose timestamp is >= `ts` (exact record offset), found with the time
    /// index and a scan, decompressing the one batch that holds it.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<TimestampLookup>, LogError> {
        let st = self.live()?;
        let log_start = st.log_start_offset;
        let snapshots: Vec<SegmentSnapshot> = st
            .segments
            .values()
            .filter(|s| s.next_offset > log_start && s.max_timestamp >= ts)
            .map(|s| {
                let from = s
                    .time_index
                    .lookup_below(ts)
                    .map_or(log_start, |(_, off)| (off + 1).max(log_start));
                SegmentSnapshot {
                    file: Arc::clone(&s.file),
                    size: s.size,
                    start: u64::from(s.offset_index.lookup(from)),
                }
            })
            .collect();
        let epochs = st.epochs.entries().to_vec();
        drop(st);
        for snap in snapshots {
            let mut reader = SegmentReader::new(&snap.file, snap.size, HEADER_CHUNK);
            let mut pos = snap.start;
            loop {
                let header = match reader.header_at(pos)? {
                    Step::End => break,
                    Step::Invalid(why) => {
                        return Err(LogError::CorruptMessage(format!("{}: {why}", self.tp)));
                    }
                    Step::Batch(h) => h,
                };
                if header.last_offset() >= log_start && header.max_timestamp >= ts {
                    let batch = read_batch(&snap.file, pos, header.size)?;
                    let found = first_record_matching(batch, &header, |off, t| {
                        off >= log_start && t >= ts
                    })?;
                    if let Some((offset, timestamp)) = found {
                        return Ok(Some(TimestampLookup {
                            offset,
                            timestamp,
                            leader_epoch: epoch_for_offset(&epochs, offset),
                        }));
                    }
                }
                pos += u64::from(header.size);
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp (ListOffsets MAX_TIMESTAMP, KIP-734); None if empty.
    pub fn max_timestamp_offset(&self) -> Result<Option<TimestampLookup>, LogError> {
        let st = self.live()?;
        let log_start = st.log_start_offset;
        let mut best: Option<&LogSegment> = None;
        for s in st.segments.values() {
            if s.next_offset > log_start
                && s.max_timestamp >= 0
                && best.is_none_or(|b| s.max_timestamp > b.max_timestamp)
            {
                best = Some(s);
            }
        }
        let Some(segment) = best else {
            return Ok(None);
        };
        let (max_ts, batch_last) = (segment.max_timestamp, segment.max_timestamp_offset);
        let Some((pos, header)) = segment.find_batch(batch_last)? else {
            return Ok(None);
        };
        let file = Arc::clone(&segment.file);
        let epochs = st.epochs.entries().to_vec();
        drop(st);
        let batch = read_batch(&file, pos, header.size)?;
        let offset = first_record_matching(batch, &header, |_, t| t == max_ts)?
            .map_or(header.last_offset(), |(off, _)| off);
        let offset = offset.max(log_start);
        Ok(Some(TimestampLookup {
            offset,
            timestamp: max_ts,
            leader_epoch: epoch_for_offset(&epochs, offset),
        }))
    }

    pub(crate) fn mark_deleted(&self) {
        self.state.lock().deleted = true;
    }

    pub fn recovery_point(&self) -> i64 {
        self.state.lock().recovery_point
    }

    pub fn size_bytes(&self) -> u64 {
        self.state.lock().segments.values().map(|s| s.size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.state.lock().segments.len()
    }

    pub fn topic_id(&self) -> Option<String> {
        self.state.lock().topic_id.clone()
    }

    /// Records the topic id in `partition.metadata`.
    pub fn set_topic_id(&self, id: &str) -> Result<(), LogError> {
        let mut st = self.live()?;
        if st.topic_id.as_deref() == Some(id) {
            return Ok(());
        }
        self.guard(
            write_partition_metadata(&self.dir().join(PARTITION_METADATA), id)
                .map_err(LogError::Io),
        )?;
        st.topic_id = Some(id.to_owned());
        Ok(())
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.state.lock().epochs.latest_epoch()
    }

    /// Kafka's `endOffsetFor` (OffsetForLeaderEpoch): (epoch, end offset) or None if unknown.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let st = self.state.lock();
        let leo = st.log_end_offset();
        st.epochs.end_offset_for(epoch, leo)
    }

    /// (epoch, start offset) entries of the leader epoch cache.
    pub fn epoch_entries(&self) -> Vec<(i32, i64)> {
        self.state.lock().epochs.entries().to_vec()
    }
}

fn read_batch(file: &File, position: u64, size: u32) -> Result<Vec<u8>, LogError> {
    let mut out = vec![0u8; size as usize];
    file.read_exact_at(&mut out, position)?;
    Ok(out)
}
