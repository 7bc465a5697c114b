//! Log compaction (Kafka's `LogCleaner`): picks the cleanable closed segments of a compacted log,
//! maps every key of the dirty part to its latest offset, rewrites the segments keeping only the
//! latest record per key (tombstones until delete.retention.ms), and swaps the results in with
//! Kafka's crash-safe `.cleaned` -> `.swap` -> `.log` sequence. Offsets never change.
//!
//! Transactions, as in Kafka: nothing at or after the first unstable offset is cleaned (an open
//! transaction's outcome is unknown); records of aborted transactions (found through the
//! transaction indexes) neither supersede other records nor survive cleaning.
//!
//! COMMIT/ABORT markers go as in Kafka's KIP-534 (`CleanedTransactionMetadata` and the
//! delete-horizon batch flag): a pass that reads a marker and read no data batch of the
//! transaction it ends (kept, emptied or dropped alike) rewrites it with the delete-horizon flag and
//! `now + delete.retention.ms` as its base timestamp (record timestamps are unchanged); a later
//! pass removes it once `now` has reached that horizon and the transaction still has no data.
//! Judging by what the pass *read*, not by what it writes, keeps an interrupted swap safe: a marker
//! only goes once the removal of its data is already on disk. On top of Kafka's rule a marker also
//! stays while it is the last record of a live producer (a replay keeps that producer's epoch and
//! coordinator epoch) and while a producer snapshot at or below it exists (a replay from such a
//! snapshot, which may hold the transaction as ongoing, needs the marker to end it). The ABORT
//! entry of a removed marker leaves its segment's `.txnindex` with it (rewritten through
//! `.txnindex.cleaned` -> `.txnindex.swap` alongside the log); every other entry stays. Tombstones
//! keep their own rule (delete.retention.ms after the segment's last modification).

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::batch::{
    BatchHeader, COMPRESSION_MASK, DELETE_HORIZON_BIT, build_batch, leader_epoch_of,
};
use crate::checkpoint::sync_dir;
use crate::compression::compress;
use crate::log::{LogState, PartitionLog};
use crate::producer_state::list_snapshots;
use crate::reader::{BATCH_CHUNK, SegmentReader, Step};
use crate::records::{RawRecord, batch_records, encode_record, parse_records};
use crate::segment::{LogSegment, TXN_INDEX_EXT, file_name, parse_log_file_name, remove_if_exists};
use crate::transaction::read_marker;
use crate::txn_index::TxnIndex;
use crate::{AbortedTxn, LogConfig, LogError};

const CLEANED: &str = "log.cleaned";
const SWAP: &str = "log.swap";
const TXN_CLEANED: &str = "txnindex.cleaned";
const TXN_SWAP: &str = "txnindex.swap";

/// What a cleaning pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// Logs that were compacted.
    pub logs_cleaned: usize,
    /// Segments replaced by a cleaned copy.
    pub segments_rewritten: usize,
    /// Segments removed because nothing in them survived.
    pub segments_deleted: usize,
    pub records_removed: u64,
    /// Transaction markers given their delete horizon (their transaction has no data left).
    pub markers_stamped: u64,
    /// Transaction markers removed (their delete horizon had passed).
    pub markers_removed: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

impl CleanStats {
    pub(crate) fn add(&mut self, other: &CleanStats) {
        self.logs_cleaned += other.logs_cleaned;
        self.segments_rewritten += other.segments_rewritten;
        self.segments_deleted += other.segments_deleted;
        self.records_removed += other.records_removed;
        self.markers_stamped += other.markers_stamped;
        self.markers_removed += other.markers_removed;
        self.bytes_read += other.bytes_read;
        self.bytes_written += other.bytes_written;
    }
}

/// A cleanable segment as seen when the pass was planned.
struct Planned {
    base: i64,
    file: Arc<File>,
    size: u64,
    next_offset: i64,
    modified: SystemTime,
    /// The segment's `.txnindex` entries (ABORT markers in it).
    txn_entries: Vec<AbortedTxn>,
}

/// What a live producer's state rests on, for the batches that must outlive cleaning.
struct ProducerLast {
    epoch: i16,
    /// Last offset of its last data batch, -1 when none is known in its current epoch.
    data_offset: i64,
}

/// What becomes of a COMMIT/ABORT marker.
enum MarkerFate {
    Keep,
    /// Rewritten with the delete-horizon flag and this horizon.
    Stamp(i64),
    Remove,
}

struct Plan {
    first_dirty: i64,
    /// First offset not cleaned (the base of the first uncleanable segment).
    end: i64,
    segments: Vec<Planned>,
    generation: u64,
    /// Live producers: the batch holding a producer's last data offset is kept even if emptied,
    /// and so is a marker after it in the producer's epoch.
    producers: HashMap<i64, ProducerLast>,
    /// Producer id -> (first offset, marker offset) of its aborted transactions that may have
    /// batches in the cleaned range.
    aborted: HashMap<i64, Vec<(i64, i64)>>,
    now_ms: i64,
    delete_retention_ms: i64,
    /// Offset of the oldest producer snapshot (i64::MAX when none): markers at or above it stay.
    oldest_snapshot: i64,
}

impl Plan {
    /// A data batch of an aborted transaction.
    fn is_aborted(&self, h: &BatchHeader) -> bool {
        h.is_transactional()
            && !h.is_control()
            && self.aborted.get(&h.producer_id).is_some_and(|txns| {
                txns.iter()
                    .any(|&(first, last)| (first..=last).contains(&h.base_offset))
            })
    }

    /// A data batch kept, emptied if need be, so that its producer's state survives.
    fn is_last_data_of_producer(&self, h: &BatchHeader) -> bool {
        h.has_producer_id()
            && self
                .producers
                .get(&h.producer_id)
                .is_some_and(|p| p.data_offset == h.last_offset())
    }

    /// A marker that is the last record of a live producer (Kafka's `isBatchLastRecordOfProducer`
    /// for a marker): a replay of the log takes the producer's epoch and coordinator epoch from it.
    fn is_last_marker_of_producer(&self, h: &BatchHeader) -> bool {
        self.producers
            .get(&h.producer_id)
            .is_some_and(|p| p.epoch == h.producer_epoch && p.data_offset < h.base_offset)
    }

    /// Kafka's marker retention: `txn_data_read` = this pass read a data batch of the transaction
    /// the marker ends. A marker is never judged at or after the end of the cleaned range, which
    /// is at most the first unstable offset.
    fn marker_fate(&self, h: &BatchHeader, txn_data_read: bool) -> MarkerFate {
        if txn_data_read || h.base_offset >= self.end {
            return MarkerFate::Keep;
        }
        match h.delete_horizon_ms() {
            None => MarkerFate::Stamp(self.now_ms.saturating_add(self.delete_retention_ms)),
            Some(horizon)
                if self.now_ms >= horizon
                    && !self.is_last_marker_of_producer(h)
                    && h.base_offset < self.oldest_snapshot =>
            {
                MarkerFate::Remove
            }
            Some(_) => MarkerFate::Keep,
        }
    }
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Kafka's cleanable range and dirty ratio check (`LogCleanerManager.grabFilthiestCompactedLog`).
fn plan(
    st: &LogState,
    dir: &Path,
    config: &LogConfig,
    now_ms: i64,
) -> Result<Option<Plan>, LogError> {
    let active_base = st.active().base_offset;
    // Kafka's firstUncleanableOffset also stops at the first unstable offset.
    let unstable = st.first_unstable_offset().unwrap_or(i64::MAX);
    let mut cleanable = Vec::new();
    let mut end = active_base;
    for seg in st.segments.values() {
        let too_new = config.min_compaction_lag_ms > 0
            && seg.max_timestamp > now_ms.saturating_sub(config.min_compaction_lag_ms);
        if seg.base_offset >= active_base
            || seg.next_offset > st.high_watermark
            || seg.next_offset > unstable
            || too_new
        {
            end = seg.base_offset;
            break;
        }
        cleanable.push(seg);
    }
    let first_dirty = st
        .cleaner_checkpoint
        .unwrap_or(st.log_start_offset)
        .max(st.log_start_offset);
    let (mut clean_bytes, mut dirty_bytes) = (0u64, 0u64);
    let mut first_dirty_ts = None;
    for seg in &cleanable {
        if seg.next_offset <= first_dirty {
            clean_bytes += seg.size;
        } else {
            dirty_bytes += seg.size;
            first_dirty_ts = first_dirty_ts.or(seg.roll_timestamp);
        }
    }
    if dirty_bytes == 0 {
        return Ok(None);
    }
    let ratio = dirty_bytes as f64 / (clean_bytes + dirty_bytes) as f64;
    let overdue = config.max_compaction_lag_ms < i64::MAX
        && first_dirty_ts
            .is_some_and(|ts| now_ms.saturating_sub(ts) > config.max_compaction_lag_ms);
    if ratio < config.min_cleanable_dirty_ratio && !overdue {
        return Ok(None);
    }
    let mut segments = Vec::with_capacity(cleanable.len());
    for seg in cleanable {
        segments.push(Planned {
            base: seg.base_offset,
            file: Arc::clone(&seg.file),
            size: seg.size,
            next_offset: seg.next_offset,
            modified: seg.file.metadata()?.modified()?,
            txn_entries: seg.txn_index.entries().to_vec(),
        });
    }
    // Every transaction with data below `end` has ended (`end` is at most the first unstable
    // offset); an aborted one is indexed with its marker, which may lie in any later segment.
    let mut aborted: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
    for seg in st.segments.values() {
        for t in seg.txn_index.entries() {
            if t.first_offset < end {
                aborted
                    .entry(t.producer_id)
                    .or_default()
                    .push((t.first_offset, t.last_offset));
            }
        }
    }
    let producers = st
        .producers
        .iter()
        .map(|(pid, e)| {
            let last = ProducerLast {
                epoch: e.epoch,
                data_offset: e.last_offset(),
            };
            (pid, last)
        })
        .collect();
    // Snapshots are only ever added above the log end and removed from below, so one read now
    // is on the safe side for the whole pass.
    let oldest_snapshot = list_snapshots(dir)?.first().copied().unwrap_or(i64::MAX);
    Ok(Some(Plan {
        first_dirty,
        end,
        segments,
        generation: st.generation,
        producers,
        aborted,
        now_ms,
        delete_retention_ms: config.delete_retention_ms,
        oldest_snapshot,
    }))
}

/// Calls `f(position, header, batch bytes)` for every batch of a planned segment.
fn for_each_batch(
    seg: &Planned,
    mut f: impl FnMut(&BatchHeader, &[u8]) -> Result<(), LogError>,
) -> Result<(), LogError> {
    let mut reader = SegmentReader::new(&seg.file, seg.size, BATCH_CHUNK);
    let mut pos = 0u64;
    loop {
        let header = match reader.header_at(pos)? {
            Step::End => return Ok(()),
            Step::Invalid(why) => return Err(LogError::CorruptMessage(why)),
            Step::Batch(h) => h,
        };
        let Some(bytes) = reader.get(pos, header.size as usize)? else {
            return Err(LogError::CorruptMessage(format!(
                "batch at position {pos} is cut short"
            )));
        };
        f(&header, bytes)?;
        pos += u64::from(header.size);
    }
}

/// Key -> latest offset over the dirty range.
fn build_offset_map(plan: &Plan) -> Result<HashMap<Vec<u8>, i64>, LogError> {
    let mut map = HashMap::new();
    for seg in plan
        .segments
        .iter()
        .filter(|s| s.next_offset > plan.first_dirty)
    {
        for_each_batch(seg, |h, bytes| {
            // An aborted record must not make a committed one of the same key go.
            if h.is_control() || h.last_offset() < plan.first_dirty || plan.is_aborted(h) {
                return Ok(());
            }
            let data = batch_records(bytes, h)?;
            for r in parse_records(&data, h.record_count)? {
                let offset = h.base_offset + r.offset_delta;
                if let Some(key) = r.key
                    && offset >= plan.first_dirty
                {
                    map.insert(key.to_vec(), offset);
                }
            }
            Ok(())
        })?;
    }
    Ok(map)
}

/// The marker (any batch) rewritten with the delete-horizon flag and `horizon` as its base
/// timestamp (Kafka's `MemoryRecordsBuilder` with a `deleteHorizonMs`): record timestamp deltas are
/// rebased so every record keeps its timestamp, and the max timestamp stays.
fn stamp_delete_horizon(h: &BatchHeader, bytes: &[u8], horizon: i64) -> Result<Vec<u8>, LogError> {
    let data = batch_records(bytes, h)?;
    let records = parse_records(&data, h.record_count)?;
    let mut body = Vec::new();
    for r in &records {
        let timestamp = h.base_timestamp.wrapping_add(r.timestamp_delta);
        encode_record(&mut body, r, timestamp.wrapping_sub(horizon));
    }
    let body = compress(h.compression(), &body)?;
    Ok(build_batch(
        h,
        leader_epoch_of(bytes),
        horizon,
        h.max_timestamp,
        h.attributes | DELETE_HORIZON_BIT,
        h.record_count,
        &body,
    ))
}

/// The batch re-encoded with only `kept` records, or the whole batch when all are kept.
fn rewrite_batch(
    h: &BatchHeader,
    bytes: &[u8],
    records: &[RawRecord<'_>],
    kept: &[usize],
) -> Result<Vec<u8>, LogError> {
    let epoch = leader_epoch_of(bytes);
    if kept.is_empty() {
        // Kafka keeps the last batch of a producer as an empty header so its state survives.
        let attributes = h.attributes & !COMPRESSION_MASK;
        return Ok(build_batch(
            h,
            epoch,
            h.base_timestamp,
            h.max_timestamp,
            attributes,
            0,
            &[],
        ));
    }
    // Offsets stay relative to the original base offset, and lastOffsetDelta is kept, as Kafka
    // does for v2: the producer's sequence range and last offset must not change.
    let log_append_time = h.is_log_append_time();
    let timestamp = |r: &RawRecord<'_>| h.base_timestamp.wrapping_add(r.timestamp_delta);
    let base_ts = if log_append_time {
        h.base_timestamp
    } else {
        timestamp(&records[kept[0]])
    };
    let mut max_ts = if log_append_time { h.max_timestamp } else { -1 };
    let mut body = Vec::new();
    for &i in kept {
        let r = &records[i];
        if !log_append_time {
            max_ts = max_ts.max(timestamp(r));
        }
        encode_record(&mut body, r, timestamp(r).wrapping_sub(base_ts));
    }
    let body = compress(h.compression(), &body)?;
    Ok(build_batch(
        h,
        epoch,
        base_ts,
        max_ts,
        h.attributes,
        kept.len() as i32,
        &body,
    ))
}

/// What became of one segment.
enum Outcome {
    Unchanged,
    /// A `.cleaned` file was written.
    Cleaned {
        /// A `.txnindex.cleaned` was written too (an ABORT marker went).
        txn_index: bool,
    },
}

/// Writes `<base>.log.cleaned` for one segment when cleaning changes it, and
/// `<base>.txnindex.cleaned` when an indexed ABORT marker goes. `txn_data_read` holds the producers
/// of which this pass has read a data batch since their last marker (segments come in offset
/// order): a producer has one transaction at a time, so that batch is of the transaction its next
/// marker ends.
fn clean_segment(
    dir: &Path,
    seg: &Planned,
    plan: &Plan,
    map: &HashMap<Vec<u8>, i64>,
    drop_tombstones: bool,
    txn_data_read: &mut HashSet<i64>,
    stats: &mut CleanStats,
) -> Result<Outcome, LogError> {
    let path = dir.join(file_name(seg.base, CLEANED));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    let mut out = BufWriter::new(file);
    let mut changed = false;
    let mut written = 0u64;
    let mut removed = 0u64;
    let (mut stamped, mut markers_removed) = (0u64, 0u64);
    // (producer id, offset) of the markers removed.
    let mut gone = HashSet::new();
    for_each_batch(seg, |h, bytes| {
        if h.is_control() {
            // Other control records (and ones that do not parse) are kept as they are.
            let marker = if h.has_producer_id() {
                read_marker(bytes, h).ok().flatten()
            } else {
                None
            };
            let fate = match marker {
                Some(_) => plan.marker_fate(h, txn_data_read.remove(&h.producer_id)),
                None => MarkerFate::Keep,
            };
            match fate {
                MarkerFate::Keep => {
                    out.write_all(bytes)?;
                    written += bytes.len() as u64;
                }
                MarkerFate::Stamp(horizon) => {
                    let batch = stamp_delete_horizon(h, bytes, horizon)?;
                    out.write_all(&batch)?;
                    written += batch.len() as u64;
                    stamped += 1;
                    changed = true;
                }
                MarkerFate::Remove => {
                    gone.insert((h.producer_id, h.base_offset));
                    markers_removed += 1;
                    changed = true;
                }
            }
            return Ok(());
        }
        if h.is_transactional() && h.has_producer_id() {
            txn_data_read.insert(h.producer_id);
        }
        let data = batch_records(bytes, h)?;
        let records = parse_records(&data, h.record_count)?;
        let aborted = plan.is_aborted(h);
        let kept: Vec<usize> = (0..records.len())
            .filter(|&i| {
                if aborted {
                    return false;
                }
                let r = &records[i];
                let Some(key) = r.key else { return false };
                let offset = h.base_offset + r.offset_delta;
                let superseded = map.get(key).is_some_and(|&latest| latest > offset);
                let expired_tombstone = r.value.is_none() && drop_tombstones;
                !(superseded || expired_tombstone)
            })
            .collect();
        removed += (records.len() - kept.len()) as u64;
        if kept.len() == records.len() {
            out.write_all(bytes)?;
            written += bytes.len() as u64;
            return Ok(());
        }
        changed = true;
        if kept.is_empty() && !plan.is_last_data_of_producer(h) {
            return Ok(());
        }
        let batch = rewrite_batch(h, bytes, &records, &kept)?;
        out.write_all(&batch)?;
        written += batch.len() as u64;
        Ok(())
    })?;
    stats.bytes_read += seg.size;
    if !changed {
        drop(out);
        remove_if_exists(&path)?;
        return Ok(Outcome::Unchanged);
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    // Tombstone retention is measured from the segment's last modification: keep it.
    file.set_modified(seg.modified)?;
    file.sync_all()?;
    // The entry of a removed ABORT marker goes with it; every other one stays with its marker.
    let txn_path = dir.join(file_name(seg.base, TXN_CLEANED));
    let txn_index = seg
        .txn_entries
        .iter()
        .any(|e| gone.contains(&(e.producer_id, e.last_offset)));
    if txn_index {
        let mut index = TxnIndex::new();
        for e in &seg.txn_entries {
            if !gone.contains(&(e.producer_id, e.last_offset)) {
                index.append(*e);
            }
        }
        index.write(&txn_path, true)?;
    } else {
        remove_if_exists(&txn_path)?;
    }
    stats.bytes_written += written;
    stats.records_removed += removed;
    stats.markers_stamped += stamped;
    stats.markers_removed += markers_removed;
    Ok(Outcome::Cleaned { txn_index })
}

/// Finishes every `<base>.log.swap` in `dir` (also run by recovery): the swap file replaces the
/// segment of the same base offset, or, when empty, the segment is deleted (except the first,
/// which stays as an empty segment so the log keeps its start). The replaced segment's offset and
/// time indexes are deleted first so they are rebuilt; its `<base>.txnindex.swap`, if any, replaces
/// its `.txnindex` before the log is replaced, so a crash in between leaves the `.log.swap` to
/// finish the pair (a `.txnindex.swap` without a `.log.swap` is a leftover of a pass that never
/// committed, deleted by recovery). Returns (base, replaced) per swap.
pub(crate) fn complete_swaps(dir: &Path) -> io::Result<Vec<(i64, bool)>> {
    let mut swaps = Vec::new();
    let mut first_log = i64::MAX;
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".swap") {
            if let Some(base) = parse_log_file_name(stem) {
                swaps.push(base);
                first_log = first_log.min(base);
            }
        } else if let Some(base) = parse_log_file_name(name) {
            first_log = first_log.min(base);
        }
    }
    swaps.sort_unstable();
    let mut done = Vec::with_capacity(swaps.len());
    for base in swaps {
        for ext in ["index", "timeindex"] {
            remove_if_exists(&dir.join(file_name(base, ext)))?;
        }
        let swap = dir.join(file_name(base, SWAP));
        let log = dir.join(file_name(base, "log"));
        let txn_swap = dir.join(file_name(base, TXN_SWAP));
        let txn_index = dir.join(file_name(base, TXN_INDEX_EXT));
        let empty = std::fs::metadata(&swap)?.len() == 0;
        if empty && base != first_log {
            // Nothing survived, no marker either: no abort is left to index.
            remove_if_exists(&txn_index)?;
            remove_if_exists(&txn_swap)?;
            remove_if_exists(&log)?;
            remove_if_exists(&swap)?;
            done.push((base, false));
        } else {
            if txn_swap.exists() {
                std::fs::rename(&txn_swap, &txn_index)?;
            }
            std::fs::rename(&swap, &log)?;
            done.push((base, true));
        }
    }
    if !done.is_empty() {
        sync_dir(dir)?;
    }
    Ok(done)
}

impl PartitionLog {
    /// Compacts this log if it is compacted (cleanup.policy=compact) and dirty enough (or dirty
    /// data is older than max.compaction.lag.ms). Readers holding regions of replaced segments
    /// keep reading the old files.
    pub fn clean(&self, now_ms: i64) -> Result<CleanStats, LogError> {
        let _one_at_a_time = self.clean_lock.lock();
        let config = self.config();
        let mut stats = CleanStats::default();
        if !config.cleanup_compact {
            return Ok(stats);
        }
        let dir = self.dir();
        let plan = {
            let st = self.state.lock();
            if st.deleted {
                return Ok(stats);
            }
            match plan(&st, &dir, &config, now_ms)? {
                Some(p) => p,
                None => return Ok(stats),
            }
        };
        let map = build_offset_map(&plan)?;
        // (base, whether a new transaction index goes with it).
        let mut cleaned = Vec::new();
        let result = (|| {
            let mut txn_data_read = HashSet::new();
            for seg in &plan.segments {
                let drop_tombstones =
                    now_ms.saturating_sub(millis(seg.modified)) > config.delete_retention_ms;
                let outcome = clean_segment(
                    &dir,
                    seg,
                    &plan,
                    &map,
                    drop_tombstones,
                    &mut txn_data_read,
                    &mut stats,
                )?;
                if let Outcome::Cleaned { txn_index } = outcome {
                    cleaned.push((seg.base, txn_index));
                }
            }
            Ok::<(), LogError>(())
        })();
        let discard = || {
            for seg in &plan.segments {
                for ext in [CLEANED, TXN_CLEANED] {
                    if let Err(e) = remove_if_exists(&dir.join(file_name(seg.base, ext))) {
                        tracing::warn!(partition = %self.topic_partition(), "cannot remove cleaned file: {e}");
                    }
                }
            }
        };
        if let Err(e) = result {
            discard();
            return Err(e);
        }

        let mut st = self.state.lock();
        let unchanged = !st.deleted
            && st.generation == plan.generation
            && plan.segments.iter().all(|p| {
                st.segments
                    .get(&p.base)
                    .is_some_and(|s| Arc::ptr_eq(&s.file, &p.file))
            });
        if !unchanged {
            // Retention or truncation removed data meanwhile: this pass is void.
            drop(st);
            discard();
            return Ok(CleanStats::default());
        }
        if !cleaned.is_empty() {
            for &(base, txn_index) in &cleaned {
                // The index first: a `.txnindex.swap` only counts once its `.log.swap` exists.
                if txn_index {
                    std::fs::rename(
                        dir.join(file_name(base, TXN_CLEANED)),
                        dir.join(file_name(base, TXN_SWAP)),
                    )?;
                }
                std::fs::rename(
                    dir.join(file_name(base, CLEANED)),
                    dir.join(file_name(base, SWAP)),
                )?;
            }
            // The renames to .swap are the commit point: recovery completes them from here on.
            sync_dir(&dir)?;
            for (base, replaced) in complete_swaps(&dir)? {
                if replaced {
                    let mut segment = LogSegment::open(&dir, base)?;
                    if let Some(problem) = segment.rebuild(&config, now_ms)? {
                        return Err(LogError::CorruptMessage(problem));
                    }
                    let new_txn_index = cleaned.iter().any(|&(b, t)| b == base && t);
                    if new_txn_index {
                        // Read back what was swapped in, so memory and file agree.
                        let path = segment.txn_index_path();
                        segment.txn_index = TxnIndex::load(&path, base, segment.next_offset)?
                            .map_err(|why| {
                                LogError::CorruptMessage(format!(
                                    "cleaned transaction index {}: {why}",
                                    path.display()
                                ))
                            })?;
                    } else if let Some(old) = st.segments.get_mut(&base) {
                        // Same aborts: the file was left in place.
                        segment.txn_index = std::mem::replace(&mut old.txn_index, TxnIndex::new());
                    }
                    segment.seal();
                    segment.write_indexes(true)?;
                    st.segments.insert(base, segment);
                    stats.segments_rewritten += 1;
                } else {
                    st.segments.remove(&base);
                    stats.segments_deleted += 1;
                }
            }
        }
        st.cleaner_checkpoint = Some(plan.end);
        stats.logs_cleaned = 1;
        drop(st);
        tracing::info!(partition = %self.topic_partition(), end = plan.end,
            rewritten = stats.segments_rewritten, deleted = stats.segments_deleted,
            removed = stats.records_removed, markers_stamped = stats.markers_stamped,
            markers_removed = stats.markers_removed, "compacted log");
        Ok(stats)
    }

    pub(crate) fn cleaner_checkpoint(&self) -> Option<i64> {
        self.state.lock().cleaner_checkpoint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_swaps_delete_all_but_the_first_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for base in [0i64, 10, 20] {
            std::fs::write(d.join(file_name(base, "log")), b"old").expect("log");
            std::fs::write(d.join(file_name(base, "index")), b"").expect("index");
        }
        std::fs::write(d.join(file_name(0, SWAP)), b"").expect("swap");
        std::fs::write(d.join(file_name(10, SWAP)), b"").expect("swap");
        std::fs::write(d.join(file_name(20, SWAP)), b"new").expect("swap");
        let done = complete_swaps(d).expect("complete");
        assert_eq!(done, vec![(0, true), (10, false), (20, true)]);
        assert_eq!(std::fs::read(d.join(file_name(0, "log"))).expect("0"), b"");
        assert!(!d.join(file_name(10, "log")).exists());
        assert_eq!(
            std::fs::read(d.join(file_name(20, "log"))).expect("20"),
            b"new"
        );
        assert!(!d.join(file_name(20, "index")).exists());
        assert!(!d.join(file_name(10, "index")).exists());
        assert!(complete_swaps(d).expect("again").is_empty());
    }

    #[test]
    fn a_txnindex_swap_goes_with_its_log_swap_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for base in [0i64, 10, 20] {
            std::fs::write(d.join(file_name(base, "log")), b"old").expect("log");
            std::fs::write(d.join(file_name(base, TXN_INDEX_EXT)), b"old index").expect("index");
            std::fs::write(d.join(file_name(base, TXN_SWAP)), b"new index").expect("swap");
        }
        // 0 is rewritten, 10 emptied; 20 never reached its commit point (no .log.swap).
        std::fs::write(d.join(file_name(0, SWAP)), b"new").expect("swap");
        std::fs::write(d.join(file_name(10, SWAP)), b"").expect("swap");
        let done = complete_swaps(d).expect("complete");
        assert_eq!(done, vec![(0, true), (10, false)]);
        let read = |base: i64, ext: &str| std::fs::read(d.join(file_name(base, ext))).ok();
        assert_eq!(read(0, TXN_INDEX_EXT).as_deref(), Some(&b"new index"[..]));
        assert_eq!(read(0, TXN_SWAP), None);
        assert_eq!((read(10, TXN_INDEX_EXT), read(10, TXN_SWAP)), (None, None));
        // Recovery deletes the uncommitted one as a leftover; the segment keeps its index.
        assert_eq!(read(20, TXN_INDEX_EXT).as_deref(), Some(&b"old index"[..]));
        assert_eq!(read(20, TXN_SWAP).as_deref(), Some(&b"new index"[..]));
    }
}
