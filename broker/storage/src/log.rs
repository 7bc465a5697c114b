//! One partition's log (Kafka's `UnifiedLog`/`LocalLog`): ordered segments, offsets, high
//! watermark, recovery point and leader epochs behind one lock. Appends are serialized; reads and
//! timestamp searches only snapshot file handles under the lock and do their I/O outside it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::IoSlice;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard, RwLock};

use crate::batch::{self, BatchHeader, HEADER_LEN};
use crate::checkpoint::{PARTITION_METADATA, write_partition_metadata};
use crate::epoch_cache::{EpochCache, epoch_for_offset};
use crate::producer_state::{PendingUpdate, ProducerBatch, ProducerStateManager};
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
                if h.base_offset >= from && h.has_producer_id() {
                    replay.push(h);
                }
                pos += u64::from(h.size);
            }
        }
        self.producers.replay_headers(&replay);
        self.producers.expire(now_ms, expiration_ms);
        Ok(())
    }
}

/// One batch on its way to the active segment: the header bytes as they go to disk (patched by a
/// leader, verbatim from a follower), the rest of the batch from the request, and the parsed header
/// with its final offsets and the timestamp the indexes use.
struct Outgoing<'a> {
    head: &'a [u8; HEADER_LEN],
    body: &'a [u8],
    header: BatchHeader,
}

/// How an append changes producer state once its data is written.
enum ProducerChange {
    /// A leader's produce, checked by [`ProducerStateManager::prepare`].
    Validated(PendingUpdate),
    /// A follower's copy of the leader's batches, applied without checks.
    Replay(Vec<BatchHeader>),
}

/// The outcome of [`PartitionLog::write_batches`].
struct Written {
    first_offset: i64,
    last_offset: i64,
    log_start_offset: i64,
    record_count: u64,
    bytes: u64,
    max_timestamp: i64,
}

impl Written {
    /// Totals of two consecutive writes of one append.
    fn followed_by(self, next: Written) -> Written {
        Written {
            first_offset: self.first_offset,
            last_offset: next.last_offset,
            log_start_offset: next.log_start_offset,
            record_count: self.record_count + next.record_count,
            bytes: self.bytes + next.bytes,
            max_timestamp: self.max_timestamp.max(next.max_timestamp),
        }
    }

    fn info(self, log_append_time: i64) -> AppendInfo {
        AppendInfo {
            first_offset: self.first_offset,
            last_offset: self.last_offset,
            log_append_time,
            log_start_offset: self.log_start_offset,
            record_count: self.record_count,
            bytes: self.bytes,
            max_timestamp: self.max_timestamp,
            duplicate: false,
        }
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

        let st = self.live()?;
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
        let first_offset = st.log_end_offset();
        let mut outgoing = Vec::with_capacity(valid.len());
        let mut producer_batches = Vec::new();
        let mut next = first_offset;
        for (h, v) in headers.iter_mut().zip(valid) {
            let placed = BatchHeader {
                base_offset: next,
                max_timestamp: batch_timestamp(&v.header),
                ..v.header
            };
            producer_batches.extend(ProducerBatch::from_header(&placed, placed.max_timestamp));
            batch::set_offset_and_epoch(h, next, leader_epoch);
            outgoing.push(Outgoing {
                head: h,
                body: &batches[v.start + HEADER_LEN..v.start + v.header.size as usize],
                header: placed,
            });
            next = placed.next_offset();
        }
        let producers = ProducerChange::Validated(st.producers.prepare(&producer_batches)?);
        let written = self.write_batches(
            st,
            &config,
            &outgoing,
            &[(leader_epoch, first_offset)],
            producers,
            now_ms,
        )?;
        Ok(written.info(if log_append_time { now_ms } else { -1 }))
    }

    /// Appends batches fetched from the leader exactly as they are (Kafka's `appendAsFollower`):
    /// offsets, leader epochs and timestamps were assigned by the leader, and the bytes are written
    /// verbatim after the same CRC and framing checks as a produce.
    ///
    /// The first batch must not start below the log end and offsets must grow from batch to batch
    /// ([`LogError::UnexpectedOffset`], nothing written). A gap is accepted, as in Kafka: a compacted
    /// leader has them between batches. max.message.bytes is not applied (the leader's config
    /// decided). The batches are written one segment at a time, rolling where the leader did, so
    /// an I/O error can leave a prefix of them written (the next fetch resumes at the log end). Leader epochs enter the epoch cache before the data is written; producer state is
    /// replayed without checks, as on load, so this replica can lead with correct idempotence
    /// state. The high watermark does not move.
    pub fn append_as_follower(&self, batches: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        let config = self.config();
        let valid = batch::validate_all(batches, u32::MAX)?;
        // Written segment by segment, so only each batch must fit in one.
        if let Some(v) = valid
            .iter()
            .find(|v| u64::from(v.header.size) > config.effective_segment_bytes())
        {
            return Err(LogError::RecordTooLarge {
                size: v.header.size as usize,
                max: config.effective_segment_bytes() as u32,
            });
        }
        let mut outgoing = Vec::with_capacity(valid.len());
        for v in &valid {
            let bytes = &batches[v.start..v.start + v.header.size as usize];
            let head: &[u8; HEADER_LEN] = bytes[..HEADER_LEN]
                .try_into()
                .map_err(|_| LogError::CorruptMessage("truncated batch header".into()))?;
            outgoing.push(Outgoing {
                head,
                body: &bytes[HEADER_LEN..],
                header: v.header,
            });
        }
        let mut expected = self.live()?.log_end_offset();
        for o in &outgoing {
            if o.header.base_offset < expected {
                return Err(LogError::UnexpectedOffset {
                    expected,
                    got: o.header.base_offset,
                });
            }
            expected = o.header.next_offset();
        }
        // Written segment by segment, rolling where the leader's own appends (one batch per
        // partition per produce request, as clients send them) rolled, so that the follower's
        // segments match the leader's.
        let mut total: Option<Written> = None;
        let mut rest = &outgoing[..];
        while let Some(first) = rest.first() {
            let st = self.live()?;
            let leo = st.log_end_offset();
            if first.header.base_offset < leo {
                return Err(LogError::UnexpectedOffset {
                    expected: leo,
                    got: first.header.base_offset,
                });
            }
            let n = batches_for_one_segment(st.active(), &config, rest, now_ms);
            let (chunk, later) = rest.split_at(n);
            let epochs: Vec<(i32, i64)> = chunk
                .iter()
                .map(|o| (batch::leader_epoch_of(o.head), o.header.base_offset))
                .collect();
            let replay = chunk.iter().map(|o| o.header).collect();
            let written = self.write_batches(
                st,
                &config,
                chunk,
                &epochs,
                ProducerChange::Replay(replay),
                now_ms,
            )?;
            total = Some(match total {
                None => written,
                Some(t) => t.followed_by(written),
            });
            rest = later;
        }
        match total {
            Some(t) => Ok(t.info(-1)),
            None => Err(LogError::InvalidRecord("no record batches".into())),
        }
    }

    /// The tail shared by leader and follower appends: roll, leader epoch entries (durable before
    /// the data they describe), one vectored write, index entries, producer state, flush policy.
    /// `outgoing` is non-empty, in offset order; the lock is released before any flush.
    fn write_batches(
        &self,
        mut st: MutexGuard<'_, LogState>,
        config: &LogConfig,
        outgoing: &[Outgoing<'_>],
        epoch_starts: &[(i32, i64)],
        producers: ProducerChange,
        now_ms: i64,
    ) -> Result<Written, LogError> {
        let (Some(first), Some(last)) = (outgoing.first(), outgoing.last()) else {
            return Err(LogError::InvalidRecord("no record batches".into()));
        };
        let (first_offset, last_offset) = (first.header.base_offset, last.header.last_offset());
        let total: u64 = outgoing.iter().map(|o| u64::from(o.header.size)).sum();
        let active = st.active();
        // An empty segment never rolls, but one a follower's gap put out of relative-offset reach
        // must be replaced.
        let unreachable =
            active.is_empty() && last_offset - active.base_offset > i64::from(i32::MAX);
        if unreachable || active.should_roll(config, total, last_offset, now_ms) {
            self.roll_locked(&mut st, first_offset)?;
        }
        if let Some(entries) = st.epochs.with_assigned(epoch_starts) {
            st.epochs.install(entries)?;
        }
        let mut slices = Vec::with_capacity(outgoing.len() * 2);
        for o in outgoing {
            slices.push(IoSlice::new(o.head));
            slices.push(IoSlice::new(o.body));
        }
        let segment = st.active_mut();
        let mut position = segment.size;
        segment.write(&mut slices, total)?;
        let mut max_timestamp = -1;
        let mut record_count = 0u64;
        for o in outgoing {
            segment.on_batch(position, &o.header, config.index_interval_bytes, now_ms);
            position += u64::from(o.header.size);
            max_timestamp = max_timestamp.max(o.header.max_timestamp);
            record_count += o.header.record_count as u64;
        }
        match producers {
            ProducerChange::Validated(update) => st.producers.commit(update),
            ProducerChange::Replay(headers) => st.producers.replay_headers(&headers),
        }
        if st.first_unflushed_ms.is_none() {
            st.first_unflushed_ms = Some(now_ms);
        }
        let next = last_offset + 1;
        let written = Written {
            first_offset,
            last_offset,
            log_start_offset: st.log_start_offset,
            record_count,
            bytes: total,
            max_timestamp,
        };
        let flush = config
            .flush_messages
            .is_some_and(|n| (next - st.recovery_point) as u64 >= n);
        drop(st);
        if flush {
            self.flush_to(next)?;
        }
        Ok(written)
    }

    /// Seals the active segment and starts a new one at `base` (the first offset of the append
    /// that rolls; at least the log end). An empty active segment is only replaced, when `base`
    /// lies beyond it.
    fn roll_locked(&self, st: &mut LogState, base: i64) -> Result<(), LogError> {
        let leo = st.log_end_offset();
        let base = base.max(leo);
        let active = st.active_mut();
        if active.is_empty() {
            if active.base_offset == base {
                return Ok(());
            }
            let segment = LogSegment::create(&self.dir, base)?;
            let replaced: Vec<LogSegment> =
                st.segments.pop_last().into_iter().map(|(_, s)| s).collect();
            st.segments.insert(base, segment);
            st.generation += 1;
            self.delete_segment_files(&replaced);
            return Ok(());
        }
        active.seal();
        active.write_indexes(false)?;
        let segment = LogSegment::create(&self.dir, base)?;
        st.segments.insert(base, segment);
        tracing::debug!(partition = %self.tp, base_offset = base, "rolled new log segment");
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
            self.roll_locked(&mut st, leo)?;
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

    /// Moves the high watermark up to `hw` (clamped to the log end), never down; returns whether
    /// it moved. The check and the move are one step under the log's lock, so a leader's
    /// concurrent advances (an append and a follower fetch each computing a target from what they
    /// saw) cannot let a stale, lower target undo a higher one.
    pub fn raise_high_watermark(&self, hw: i64) -> bool {
        let mut st = self.state.lock();
        let target = hw.min(st.log_end_offset());
        if target > st.high_watermark {
            st.high_watermark = target;
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
    fn reset_locked(&self, st: &mut LogState, offset: i64) -> Result<Vec<LogSegment>, LogError> {
        let fresh = match st.segments.get_mut(&offset) {
            Some(seg) => {
                seg.truncate_to(offset)?;
                seg.write_indexes(false)?;
                None
            }
            None => Some(LogSegment::create(&self.dir, offset)?),
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

/// How many of `batches` (at least one) go into one segment: the active one, or the one the first
/// batch rolls to, as far as size and relative offsets allow. The write rolls (or not) exactly as
/// this assumes, since the rest of its roll rules do not depend on how many batches follow.
fn batches_for_one_segment(
    active: &LogSegment,
    config: &LogConfig,
    batches: &[Outgoing<'_>],
    now_ms: i64,
) -> usize {
    let Some(first) = batches.first() else {
        return 0;
    };
    let first_size = u64::from(first.header.size);
    let last = first.header.last_offset();
    let rolls = if active.is_empty() {
        last - active.base_offset > i64::from(i32::MAX)
    } else {
        active.should_roll(config, first_size, last, now_ms)
    };
    let (base, mut size) = if rolls {
        (first.header.base_offset, 0)
    } else {
        (active.base_offset, active.size)
    };
    size += first_size;
    let mut n = 1;
    for o in &batches[1..] {
        size += u64::from(o.header.size);
        if size > config.effective_segment_bytes()
            || o.header.last_offset() - base > i64::from(i32::MAX)
        {
            break;
        }
        n += 1;
    }
    n
}

fn read_batch(file: &File, position: u64, size: u32) -> Result<Vec<u8>, LogError> {
    let mut out = vec![0u8; size as usize];
    file.read_exact_at(&mut out, position)?;
    Ok(out)
}
