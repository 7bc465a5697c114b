//! One partition's log (Kafka's `UnifiedLog`/`LocalLog`): ordered segments, offsets, high
//! watermark, recovery point and leader epochs behind one lock. Appends are serialized; reads and
//! timestamp searches only snapshot file handles under the lock and do their I/O outside it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::IoSlice;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::batch::{self, BatchHeader, HEADER_LEN};
use crate::checkpoint::{PARTITION_METADATA, write_partition_metadata};
use crate::epoch_cache::{EpochCache, epoch_for_offset};
use crate::producer_state::{ProducerBatch, ProducerStateManager};
use crate::reader::{HEADER_CHUNK, SegmentReader, Step};
use crate::records::{check_keys, first_record_matching};
use crate::region::FileRegion;
use crate::segment::LogSegment;
use crate::{LogConfig, LogError, TimestampType, TopicPartition};

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

    /// Reloads producer state: drops snapshots above the log end, loads the newest one left and
    /// replays the batch headers after it (Kafka's `loadProducerState`).
    pub fn rebuild_producer_state(
        &mut self,
        now_ms: i64,
        expiration_ms: i64,
    ) -> Result<(), LogError> {
        let leo = self.log_end_offset();
        self.producers.delete_snapshots_after(leo)?;
        let from = self
            .producers
            .load_latest_snapshot(leo, now_ms, expiration_ms)?
            .unwrap_or(i64::MIN);
        let mut replay = Vec::new();
        for seg in self.segments.values().filter(|s| s.next_offset > from) {
            let start = if seg.base_offset <= from {
                u64::from(seg.offset_index.lookup(from))
            } else {
                0
            };
            let mut reader = SegmentReader::new(&seg.file, seg.size, HEADER_CHUNK);
            let mut pos = start;
            loop {
                let h = match reader.header_at(pos)? {
                    Step::End => break,
                    Step::Invalid(why) => return Err(LogError::CorruptMessage(why)),
                    Step::Batch(h) => h,
                };
                if h.base_offset >= from
                    && let Some(b) = ProducerBatch::from_header(&h, h.max_timestamp)
                {
                    replay.push(b);
                }
                pos += u64::from(h.size);
            }
        }
        for b in &replay {
            self.producers.replay(b);
        }
        self.producers.expire(now_ms, expiration_ms);
        Ok(())
    }
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
    dir: PathBuf,
    config: RwLock<LogConfig>,
    pub(crate) state: Mutex<LogState>,
    /// One cleaner pass at a time per log.
    pub(crate) clean_lock: Mutex<()>,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("tp", &self.tp)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl PartitionLog {
    pub(crate) fn from_state(
        tp: TopicPartition,
        dir: PathBuf,
        config: LogConfig,
        state: LogState,
    ) -> PartitionLog {
        PartitionLog {
            tp,
            dir,
            config: RwLock::new(config),
            state: Mutex::new(state),
            clean_lock: Mutex::new(()),
        }
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.clone()
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
        Ok(st)
    }

    /// Appends a produce request's batches (all validated first: all-or-nothing), assigning
    /// offsets from the log end and patching base offset and leader epoch in place.
    ///
    /// Batches with a producer id go through the idempotence checks (epoch, sequence). Leading
    /// batches that repeat cached ones are not written again; when every batch does, the result
    /// has `duplicate` set and the original offsets.
    pub fn append(
        &self,
        batches: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let config = self.config();
        let valid = batch::validate_all(batches, config.max_message_bytes)?;
        let total = batches.len() as u64;
        if total > config.effective_segment_bytes() {
            return Err(LogError::RecordTooLarge {
                size: batches.len(),
                max: config.effective_segment_bytes() as u32,
            });
        }
        if config.cleanup_compact {
            for (i, v) in valid.iter().enumerate() {
                let bytes = &batches[v.start..v.start + v.header.size as usize];
                check_keys(bytes, &v.header, i, &self.tp)?;
            }
        }
        let log_append_time = config.timestamp_type == TimestampType::LogAppendTime;
        let batch_timestamp = |h: &BatchHeader| {
            if log_append_time {
                now_ms
            } else {
                h.max_timestamp
            }
        };
        // Header copies are patched; the records themselves are written straight from `batches`.
        let mut headers: Vec<[u8; HEADER_LEN]> = Vec::with_capacity(valid.len());
        for v in &valid {
            let mut h = [0u8; HEADER_LEN];
            h.copy_from_slice(&batches[v.start..v.start + HEADER_LEN]);
            if log_append_time {
                let body = &batches[v.start + HEADER_LEN..v.start + v.header.size as usize];
                batch::set_log_append_time(&mut h, body, now_ms);
            }
            headers.push(h);
        }

        let mut st = self.live()?;
        // Retried batches at the front are answered from the producer state, not written again.
        let mut skip = 0;
        let mut duplicate: Option<(i64, i64)> = None;
        for v in &valid {
            let Some((first, last)) = ProducerBatch::from_header(&v.header, 0)
                .and_then(|b| st.producers.duplicate_of(&b))
            else {
                break;
            };
            duplicate = Some((duplicate.map_or(first, |d| d.0), last));
            skip += 1;
        }
        if let (true, Some((first, last))) = (skip == valid.len(), duplicate) {
            return Ok(AppendInfo {
                first_offset: first,
                last_offset: last,
                log_append_time: -1,
                log_start_offset: st.log_start_offset,
                record_count: 0,
                bytes: 0,
                max_timestamp: -1,
                duplicate: true,
            });
        }
        let valid = &valid[skip..];
        let headers = &mut headers[skip..];
        let total: u64 = valid.iter().map(|v| u64::from(v.header.size)).sum();
        let first_offset = st.log_end_offset();
        let mut producer_batches = Vec::new();
        let mut next = first_offset;
        for v in valid {
            let placed = BatchHeader {
                base_offset: next,
                ..v.header
            };
            producer_batches.extend(ProducerBatch::from_header(
                &placed,
                batch_timestamp(&placed),
            ));
            next = placed.next_offset();
        }
        let producer_update = st.producers.prepare(&producer_batches)?;
        if st.active().should_roll(&config, total, next - 1, now_ms) {
            self.roll_locked(&mut st)?;
        }
        // The epoch entry is made durable before the data it describes.
        if let Some(entries) = st.epochs.with_assigned(leader_epoch, first_offset) {
            st.epochs.install(entries)?;
        }
        let mut next = first_offset;
        for (h, v) in headers.iter_mut().zip(valid) {
            batch::set_offset_and_epoch(h, next, leader_epoch);
            next += i64::from(v.header.last_offset_delta) + 1;
        }
        let mut slices = Vec::with_capacity(valid.len() * 2);
        for (h, v) in headers.iter().zip(valid) {
            slices.push(IoSlice::new(h));
            slices.push(IoSlice::new(
                &batches[v.start + HEADER_LEN..v.start + v.header.size as usize],
            ));
        }
        let segment = st.active_mut();
        let mut position = segment.size;
        segment.write(&mut slices, total)?;

        let mut next = first_offset;
        let mut max_timestamp = -1;
        let mut record_count = 0u64;
        for v in valid {
            let header = BatchHeader {
                base_offset: next,
                max_timestamp: batch_timestamp(&v.header),
                ..v.header
            };
            segment.on_batch(position, &header, config.index_interval_bytes, now_ms);
            position += u64::from(header.size);
            next = header.next_offset();
            max_timestamp = max_timestamp.max(header.max_timestamp);
            record_count += v.header.record_count as u64;
        }
        st.producers.commit(producer_update);
        if st.first_unflushed_ms.is_none() {
            st.first_unflushed_ms = Some(now_ms);
        }
        let info = AppendInfo {
            first_offset,
            last_offset: next - 1,
            log_append_time: if log_append_time { now_ms } else { -1 },
            log_start_offset: st.log_start_offset,
            record_count,
            bytes: total,
            max_timestamp,
            duplicate: false,
        };
        let flush = config
            .flush_messages
            .is_some_and(|n| (next - st.recovery_point) as u64 >= n);
        drop(st);
        if flush {
            self.flush_to(next)?;
        }
        Ok(info)
    }

    /// Seals the active segment and starts a new one at the log end.
    fn roll_locked(&self, st: &mut LogState) -> Result<(), LogError> {
        let leo = st.log_end_offset();
        let active = st.active_mut();
        if active.is_empty() {
            return Ok(());
        }
        active.seal();
        active.write_indexes(false)?;
        let segment = LogSegment::create(&self.dir, leo)?;
        st.segments.insert(leo, segment);
        tracing::debug!(partition = %self.tp, base_offset = leo, "rolled new log segment");
        st.producers.take_snapshot(leo)
    }

    /// Number of idempotent producers with state in this partition.
    pub fn producer_count(&self) -> usize {
        self.state.lock().producers.len()
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
            self.roll_locked(&mut st)?;
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
        let st = self.live()?;
        let (log_start, log_end, hw) =
            (st.log_start_offset, st.log_end_offset(), st.high_watermark);
        if offset < log_start || offset > log_end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
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

    pub fn log_start_offset(&self) -> i64 {
        self.state.lock().log_start_offset
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
        st.high_watermark = hw.clamp(st.log_start_offset, leo);
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
            return Ok(st.log_start_offset);
        }
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
            st.high_watermark = st.high_watermark.max(new_start);
            st.recovery_point = st.recovery_point.max(new_start);
            st.epochs.truncate_from_start(new_start)?;
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
        let mut st = self.live()?;
        if offset >= st.log_end_offset() {
            return Ok(());
        }
        st.generation += 1;
        let mut removed = Vec::new();
        let first_base = st.segments.first_key_value().map_or(0, |(b, _)| *b);
        let offset = offset.max(0);
        if offset < first_base {
            removed.extend(std::mem::take(&mut st.segments).into_values());
            let segment = LogSegment::create(&self.dir, offset)?;
            st.segments.insert(offset, segment);
            st.log_start_offset = offset;
            st.epochs.clear()?;
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

    /// fsyncs all data, advances the recovery point to the log end and writes the indexes.
    pub fn flush(&self) -> Result<(), LogError> {
        self.flush_to(i64::MAX)
    }

    /// fsyncs the segments holding offsets below `target` outside the lock, then advances the
    /// recovery point unless data was removed meanwhile.
    pub(crate) fn flush_to(&self, target: i64) -> Result<(), LogError> {
        let mut files = Vec::new();
        let mut index_paths = Vec::new();
        let mut closed = Vec::new();
        let (generation, target) = {
            let mut st = self.state.lock();
            if st.deleted {
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
        write_partition_metadata(&self.dir.join(PARTITION_METADATA), id)?;
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
