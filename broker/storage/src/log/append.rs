//! Appends: a leader's (offsets, epochs and timestamps assigned here, producer state checked) and
//! a follower's (batches taken verbatim), both written to the active segment in as few writes as
//! the segment rolls allow. Transaction markers ending a transaction index their aborts in the
//! segment they land in.

use std::io::IoSlice;

use parking_lot::MutexGuard;

use crate::batch::{self, BatchHeader, HEADER_LEN};
use crate::producer_state::{PendingUpdate, ProducerBatch, Replayed};
use crate::records::{check_keys, check_timestamps};
use crate::segment::LogSegment;
use crate::transaction::read_marker;
use crate::{LogConfig, LogError, TimestampType};

use super::*;

/// One batch on its way to the active segment: the header bytes as they go to disk (patched by a
/// leader, verbatim from a follower), the rest of the batch from the request, and the parsed header
/// with its final offsets and the timestamp the indexes use.
pub(super) struct Outgoing<'a> {
    pub head: &'a [u8; HEADER_LEN],
    pub body: &'a [u8],
    pub header: BatchHeader,
}

/// Who appends as leader: a client's sequences are checked; a coordinator's batches have none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Client,
    Coordinator,
}

/// How an append changes producer state once its data is written.
pub(super) enum ProducerChange {
    /// A leader's produce or marker, checked by [`ProducerStateManager::prepare`] or
    /// [`ProducerStateManager::prepare_marker`].
    Validated(PendingUpdate),
    /// A follower's copy of the leader's batches (markers included), applied without checks.
    Replay(Vec<Replayed>),
}

/// The outcome of [`PartitionLog::write_batches`].
pub(super) struct Written {
    first_offset: i64,
    last_offset: i64,
    log_start_offset: i64,
    record_count: u64,
    bytes: u64,
    max_timestamp: i64,
}

impl Written {
    /// Totals of two consecutive writes of one append.
    pub(super) fn followed_by(self, next: Written) -> Written {
        Written {
            first_offset: self.first_offset,
            last_offset: next.last_offset,
            log_start_offset: next.log_start_offset,
            record_count: self.record_count + next.record_count,
            bytes: self.bytes + next.bytes,
            max_timestamp: self.max_timestamp.max(next.max_timestamp),
        }
    }

    pub(super) fn info(self, log_append_time: i64) -> AppendInfo {
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

impl PartitionLog {
    /// Appends a produce request's batches (all validated first: all-or-nothing), assigning
    /// offsets from the log end and patching base offset and leader epoch in place.
    ///
    /// Batches with a producer id go through the idempotence checks (epoch, sequence). Leading
    /// batches that repeat cached ones are not written again; when every batch does, the result
    /// has `duplicate` set and the original offsets. A transactional batch starts its producer's
    /// transaction unless one is ongoing; a non-transactional one during it is refused
    /// ([`LogError::InvalidTxnState`]), and so are control batches ([`LogError::InvalidRecord`]).
    pub fn append(
        &self,
        batches: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.guard(self.append_from(batches, leader_epoch, now_ms, Origin::Client))
    }

    /// A coordinator's own append (Kafka's `AppendOrigin.COORDINATOR`): a transactional offset
    /// commit carries its producer's id and epoch but no sequence numbers, so the producer epoch
    /// is checked and the transaction tracked, and neither sequences nor retries are.
    pub fn append_from_coordinator(
        &self,
        batches: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.guard(self.append_from(batches, leader_epoch, now_ms, Origin::Coordinator))
    }

    fn append_from(
        &self,
        batches: &[u8],
        leader_epoch: i32,
        now_ms: i64,
        origin: Origin,
    ) -> Result<AppendInfo, LogError> {
        let config = self.config();
        let valid = batch::validate_all(batches, config.max_message_bytes)?;
        for v in &valid {
            // Markers come only from transaction coordinators, through `append_marker`.
            if v.header.is_control() {
                return Err(LogError::InvalidRecord(
                    "control batches cannot be produced by clients".into(),
                ));
            }
            if v.header.is_transactional() && !v.header.has_producer_id() {
                return Err(LogError::InvalidRecord(
                    "transactional batch without a producer id".into(),
                ));
            }
        }
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
        let bounds = (
            config.timestamp_before_max_ms,
            config.timestamp_after_max_ms,
        );
        if config.timestamp_type == TimestampType::CreateTime && bounds != (None, None) {
            for v in &valid {
                let bytes = &batches[v.start..v.start + v.header.size as usize];
                check_timestamps(bytes, &v.header, bounds, now_ms, &self.tp)?;
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
        for v in valid.iter().filter(|_| origin == Origin::Client) {
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
                log_start_offset: st.global_log_start(),
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
        let producers = ProducerChange::Validated(
            st.producers
                .prepare(&producer_batches, origin == Origin::Client)?,
        );
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
        self.guard(self.append_as_follower_unguarded(batches, now_ms))
    }

    fn append_as_follower_unguarded(
        &self,
        batches: &[u8],
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
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
        let mut replayed = Vec::with_capacity(valid.len());
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
            let marker = if v.header.is_control() && v.header.has_producer_id() {
                read_marker(bytes, &v.header)?
            } else {
                None
            };
            replayed.push(Replayed::new(&v.header, marker));
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
        let mut rest_replayed = &replayed[..];
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
            let (chunk_replayed, later_replayed) = rest_replayed.split_at(n);
            let epochs: Vec<(i32, i64)> = chunk
                .iter()
                .map(|o| (batch::leader_epoch_of(o.head), o.header.base_offset))
                .collect();
            let replay = chunk_replayed.iter().flatten().copied().collect();
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
            rest_replayed = later_replayed;
        }
        match total {
            Some(t) => Ok(t.info(-1)),
            None => Err(LogError::InvalidRecord("no record batches".into())),
        }
    }

    /// The tail shared by leader and follower appends: roll, leader epoch entries (durable before
    /// the data they describe), one vectored write, index entries, producer state (and the
    /// transaction index entries of aborts), flush policy. `outgoing` is non-empty, in offset
    /// order; the lock is released before any flush.
    pub(super) fn write_batches(
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
        // Batch by batch, so an ended transaction's last stable offset counts exactly the
        // transactions ongoing at its marker; its abort is indexed where the marker was written.
        let completed: Vec<_> = match producers {
            ProducerChange::Validated(update) => st.producers.commit(update).into_iter().collect(),
            ProducerChange::Replay(batches) => batches
                .iter()
                .filter_map(|r| st.producers.replay(r))
                .collect(),
        };
        let segment = st.active_mut();
        for txn in completed.iter().filter_map(|c| c.aborted_entry()) {
            segment.append_aborted(txn);
        }
        if st.first_unflushed_ms.is_none() {
            st.first_unflushed_ms = Some(now_ms);
        }
        let next = last_offset + 1;
        let written = Written {
            first_offset,
            last_offset,
            log_start_offset: st.global_log_start(),
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
    pub(super) fn roll_locked(&self, st: &mut LogState, base: i64) -> Result<(), LogError> {
        let leo = st.log_end_offset();
        let base = base.max(leo);
        let active = st.active_mut();
        if active.is_empty() {
            if active.base_offset == base {
                return Ok(());
            }
            let segment = LogSegment::create(&self.dir(), base)?;
            let replaced: Vec<LogSegment> =
                st.segments.pop_last().into_iter().map(|(_, s)| s).collect();
            st.segments.insert(base, segment);
            st.generation += 1;
            self.delete_segment_files(&replaced);
            return Ok(());
        }
        active.seal();
        active.write_indexes(false)?;
        let segment = LogSegment::create(&self.dir(), base)?;
        st.segments.insert(base, segment);
        tracing::debug!(partition = %self.tp, base_offset = base, "rolled new log segment");
        st.producers.take_snapshot(leo)
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
