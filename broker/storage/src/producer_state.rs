//! Idempotent and transactional producer state (Kafka's `ProducerStateManager`): per producer id,
//! the epoch and the metadata of its last five batches, used to reject fenced epochs and sequence
//! gaps and to answer retried batches with their original offsets, plus the coordinator epoch of
//! its last transaction marker and its ongoing transaction. The ongoing transactions, and those
//! ended by a marker the high watermark has not passed yet, are kept ordered by first offset: the
//! oldest is the partition's first unstable offset. Persisted as Kafka-format `.snapshot` files.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use crate::batch::{BatchHeader, increment_sequence};
use crate::checkpoint::write_atomic;
use crate::segment::{file_name, remove_if_exists};
use crate::transaction::TxnMarker;
use crate::{AbortedTxn, ControlType, LogError};

/// Kafka's `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`.
const BATCHES_TO_RETAIN: usize = 5;
const SNAPSHOT_VERSION: i16 = 1;
const SNAPSHOT_EXT: &str = "snapshot";
/// version (2) + crc (4) + count (4).
const SNAPSHOT_HEADER: usize = 10;
/// producerId, epoch, lastSequence, lastOffset, offsetDelta, timestamp, coordinatorEpoch,
/// currentTxnFirstOffset.
const SNAPSHOT_ENTRY: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;
/// How many snapshots survive each new one.
const SNAPSHOTS_KEPT: usize = 2;

/// One appended batch of a producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first, at most [`BATCHES_TO_RETAIN`]; empty after a marker bumped the epoch.
    pub batches: VecDeque<BatchMetadata>,
    pub last_timestamp: i64,
    /// Of the last transaction marker, -1 before any: markers from older coordinators are fenced.
    pub coordinator_epoch: i32,
    /// First offset of the producer's ongoing transaction in this partition.
    pub current_txn_first_offset: Option<i64>,
}

impl ProducerEntry {
    fn new(epoch: i16, timestamp: i64) -> ProducerEntry {
        ProducerEntry {
            epoch,
            batches: VecDeque::new(),
            last_timestamp: timestamp,
            coordinator_epoch: -1,
            current_txn_first_offset: None,
        }
    }

    /// Kafka's `maybeUpdateProducerEpoch`: the cached batches belong to the old epoch.
    fn set_epoch(&mut self, epoch: i16) {
        if epoch != self.epoch {
            self.batches.clear();
            self.epoch = epoch;
        }
    }

    fn last(&self) -> Option<&BatchMetadata> {
        self.batches.back()
    }

    pub fn last_seq(&self) -> i32 {
        self.last().map_or(-1, |b| b.last_seq)
    }

    pub fn last_offset(&self) -> i64 {
        self.last().map_or(-1, |b| b.last_offset)
    }

    fn push(&mut self, epoch: i16, batch: BatchMetadata) {
        self.set_epoch(epoch);
        if self.batches.len() == BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
        self.last_timestamp = self.last_timestamp.max(batch.timestamp);
    }

    /// The transaction side of Kafka's `appendDataBatch`: a transactional batch starts a
    /// transaction unless one is ongoing. `Err(detail)` for a non-transactional batch amid one.
    fn track_txn(&mut self, b: &ProducerBatch) -> Result<(), String> {
        match (self.current_txn_first_offset, b.transactional) {
            (Some(first), false) => Err(format!(
                "non-transactional batch at offset {} while its transaction from offset {first} \
                 is ongoing",
                b.first_offset
            )),
            (None, true) => {
                self.current_txn_first_offset = Some(b.first_offset);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Kafka's `appendEndTxnMarker` once checked: ends the ongoing transaction (if any), takes
    /// the marker's epoch (never a lower one: replayed data is not checked) and coordinator epoch.
    fn end_txn(&mut self, producer_id: i64, m: &MarkerBatch) -> Option<TxnEnd> {
        let ended = self.current_txn_first_offset.take().map(|first| TxnEnd {
            producer_id,
            first_offset: first,
            last_offset: m.offset,
            aborted: m.marker.control == ControlType::Abort,
        });
        if m.epoch > self.epoch {
            self.set_epoch(m.epoch);
        }
        self.coordinator_epoch = m.marker.coordinator_epoch;
        self.last_timestamp = self.last_timestamp.max(m.timestamp);
        ended
    }

    fn find_duplicate(&self, epoch: i16, first_seq: i32, last_seq: i32) -> Option<&BatchMetadata> {
        if epoch != self.epoch {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
    }
}

/// A batch of an append, with the offsets it will get.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
    pub transactional: bool,
}

impl ProducerBatch {
    /// None for batches without a producer id.
    pub fn from_header(h: &BatchHeader, timestamp: i64) -> Option<ProducerBatch> {
        h.has_producer_id().then(|| ProducerBatch {
            producer_id: h.producer_id,
            epoch: h.producer_epoch,
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
            timestamp,
            transactional: h.is_transactional(),
        })
    }

    fn metadata(&self) -> BatchMetadata {
        BatchMetadata {
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            first_offset: self.first_offset,
            last_offset: self.last_offset,
            timestamp: self.timestamp,
        }
    }
}

/// A COMMIT/ABORT marker batch of a producer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MarkerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub offset: i64,
    pub timestamp: i64,
    pub marker: TxnMarker,
}

/// A batch read back from the log (loading, or a follower copying its leader), as it touches
/// producer state.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Replayed {
    Data(ProducerBatch),
    Marker(MarkerBatch),
}

impl Replayed {
    /// None for batches without a producer id and for control batches without a marker (emptied
    /// by the cleaner, or another control type): as in Kafka, those change nothing.
    pub fn new(h: &BatchHeader, marker: Option<TxnMarker>) -> Option<Replayed> {
        if !h.has_producer_id() {
            return None;
        }
        if h.is_control() {
            return marker.map(|marker| {
                Replayed::Marker(MarkerBatch {
                    producer_id: h.producer_id,
                    epoch: h.producer_epoch,
                    offset: h.base_offset,
                    timestamp: h.max_timestamp,
                    marker,
                })
            });
        }
        ProducerBatch::from_header(h, h.max_timestamp).map(Replayed::Data)
    }
}

/// A transaction a marker ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TxnEnd {
    producer_id: i64,
    first_offset: i64,
    last_offset: i64,
    aborted: bool,
}

/// A transaction ended by a marker (Kafka's `CompletedTxn`), with the last stable offset right
/// after it (Kafka's `lastStableOffset(completedTxn)`): the first offset of the oldest transaction
/// still ongoing, else the offset after the marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub aborted: bool,
    pub last_stable_offset: i64,
}

impl CompletedTxn {
    /// The transaction index entry, for an aborted transaction.
    pub fn aborted_entry(&self) -> Option<AbortedTxn> {
        self.aborted.then_some(AbortedTxn {
            producer_id: self.producer_id,
            first_offset: self.first_offset,
            last_offset: self.last_offset,
            last_stable_offset: self.last_stable_offset,
        })
    }
}

/// Validated changes of one append, applied with [`ProducerStateManager::commit`] once the data is
/// written.
#[derive(Debug, Default)]
pub(crate) struct PendingUpdate {
    entries: BTreeMap<i64, ProducerEntry>,
    /// The transaction a marker ends.
    ended: Option<TxnEnd>,
}

/// Kafka's `inSequence`.
fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    i64::from(next_seq) == i64::from(last_seq) + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

#[derive(Debug)]
pub(crate) struct ProducerStateManager {
    dir: PathBuf,
    producers: BTreeMap<i64, ProducerEntry>,
    /// First offset -> producer id of every ongoing transaction (Kafka's `ongoingTxns`).
    ongoing: BTreeMap<i64, i64>,
    /// First offset -> (producer id, marker offset) of transactions whose marker the high
    /// watermark has not passed yet (Kafka's `unreplicatedTxns`): still unstable, so that a
    /// `read_committed` reader does not get their records before it can get their marker.
    unreplicated: BTreeMap<i64, (i64, i64)>,
}

impl ProducerStateManager {
    pub fn new(dir: &Path) -> ProducerStateManager {
        ProducerStateManager {
            dir: dir.to_path_buf(),
            producers: BTreeMap::new(),
            ongoing: BTreeMap::new(),
            unreplicated: BTreeMap::new(),
        }
    }

    /// Keeps snapshots in `dir` from now on (a replica moved between log dirs; its snapshots were
    /// copied there).
    pub(crate) fn relocate(&mut self, dir: &Path) {
        self.dir = dir.to_path_buf();
    }

    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(&pid, e)| (pid, e))
    }

    /// (first offset, producer id) of every ongoing transaction, oldest first.
    pub fn ongoing(&self) -> impl Iterator<Item = (i64, i64)> {
        self.ongoing.iter().map(|(&first, &pid)| (first, pid))
    }

    /// Kafka's `firstUnstableOffset`: the first offset of the oldest transaction that is ongoing
    /// or whose marker is not below the high watermark yet.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        let ongoing = self.ongoing.keys().next().copied();
        let unreplicated = self.unreplicated.keys().next().copied();
        match (ongoing, unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Kafka's `onHighWatermarkUpdated`: ended transactions whose marker lies below `hw` are
    /// stable.
    pub fn on_high_watermark(&mut self, hw: i64) {
        if !self.unreplicated.is_empty() {
            self.unreplicated.retain(|_, &mut (_, last)| last >= hw);
        }
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// The highest producer id with state here.
    pub fn max_producer_id(&self) -> Option<i64> {
        self.producers.keys().next_back().copied()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// The original (first, last) offsets when `b` repeats one of the cached batches.
    pub fn duplicate_of(&self, b: &ProducerBatch) -> Option<(i64, i64)> {
        self.producers
            .get(&b.producer_id)
            .and_then(|e| e.find_duplicate(b.epoch, b.first_seq, b.last_seq))
            .map(|m| (m.first_offset, m.last_offset))
    }

    /// Validates the batches of one append in order (each seeing the ones before it) and returns
    /// the resulting entries; nothing changes until [`Self::commit`].
    /// Without `check_sequences` (a coordinator's batches, which carry none) only epochs and
    /// transactions are checked.
    pub fn prepare(
        &self,
        batches: &[ProducerBatch],
        check_sequences: bool,
    ) -> Result<PendingUpdate, LogError> {
        let mut update = PendingUpdate::default();
        for b in batches {
            if check_sequences && self.duplicate_of(b).is_some() {
                return Err(LogError::OutOfOrderSequence {
                    producer_id: b.producer_id,
                    detail: format!(
                        "batch with sequences {}..{} repeats an earlier batch after new ones",
                        b.first_seq, b.last_seq
                    ),
                });
            }
            let current = update
                .entries
                .get(&b.producer_id)
                .or_else(|| self.producers.get(&b.producer_id));
            match current {
                _ if !check_sequences => {
                    if let Some(e) = current.filter(|e| b.epoch < e.epoch) {
                        return Err(LogError::InvalidProducerEpoch {
                            producer_id: b.producer_id,
                            epoch: b.epoch,
                            current: e.epoch,
                        });
                    }
                }
                None => {
                    if b.first_seq != 0 {
                        return Err(LogError::UnknownProducerId {
                            producer_id: b.producer_id,
                            sequence: b.first_seq,
                        });
                    }
                }
                Some(e) if b.epoch < e.epoch => {
                    return Err(LogError::InvalidProducerEpoch {
                        producer_id: b.producer_id,
                        epoch: b.epoch,
                        current: e.epoch,
                    });
                }
                Some(e) if b.epoch > e.epoch => {
                    if b.first_seq != 0 {
                        return Err(LogError::OutOfOrderSequence {
                            producer_id: b.producer_id,
                            detail: format!(
                                "new epoch {} must start at sequence 0, got {}",
                                b.epoch, b.first_seq
                            ),
                        });
                    }
                }
                Some(e) => {
                    let last = e.last_seq();
                    if !in_sequence(last, b.first_seq) {
                        return Err(LogError::OutOfOrderSequence {
                            producer_id: b.producer_id,
                            detail: format!(
                                "expected sequence {}, got {}",
                                increment_sequence(last, 1),
                                b.first_seq
                            ),
                        });
                    }
                }
            }
            let mut entry = current
                .cloned()
                .unwrap_or_else(|| ProducerEntry::new(b.epoch, b.timestamp));
            entry.push(b.epoch, b.metadata());
            entry
                .track_txn(b)
                .map_err(|detail| LogError::InvalidTxnState {
                    producer_id: b.producer_id,
                    detail,
                })?;
            update.entries.insert(b.producer_id, entry);
        }
        Ok(update)
    }

    /// Validates a leader's marker (Kafka's `appendEndTxnMarker` for a coordinator's write): its
    /// producer epoch must not be older than the producer's, nor its coordinator epoch older than
    /// the last marker's. A producer without state gets an entry, as in Kafka.
    pub fn prepare_marker(&self, m: &MarkerBatch) -> Result<PendingUpdate, LogError> {
        let mut entry = self
            .producers
            .get(&m.producer_id)
            .cloned()
            .unwrap_or_else(|| ProducerEntry::new(m.epoch, m.timestamp));
        if m.epoch < entry.epoch {
            return Err(LogError::InvalidProducerEpoch {
                producer_id: m.producer_id,
                epoch: m.epoch,
                current: entry.epoch,
            });
        }
        if m.marker.coordinator_epoch < entry.coordinator_epoch {
            return Err(LogError::TransactionCoordinatorFenced {
                producer_id: m.producer_id,
                coordinator_epoch: m.marker.coordinator_epoch,
                current: entry.coordinator_epoch,
            });
        }
        let ended = entry.end_txn(m.producer_id, m);
        let mut update = PendingUpdate {
            ended,
            ..PendingUpdate::default()
        };
        update.entries.insert(m.producer_id, entry);
        Ok(update)
    }

    /// Applies a validated update; returns the transaction it ended, if any.
    pub fn commit(&mut self, update: PendingUpdate) -> Option<CompletedTxn> {
        for (pid, entry) in update.entries {
            if let Some(first) = entry.current_txn_first_offset {
                self.ongoing.insert(first, pid);
            }
            self.producers.insert(pid, entry);
        }
        update.ended.map(|end| self.complete(end))
    }

    /// Kafka's `completeTxn`: the transaction is no longer ongoing but stays unstable until the
    /// high watermark passes its marker.
    fn complete(&mut self, end: TxnEnd) -> CompletedTxn {
        if self.ongoing.get(&end.first_offset) == Some(&end.producer_id) {
            self.ongoing.remove(&end.first_offset);
        }
        // A producer has one transaction at a time, so every one left is another producer's.
        let last_stable_offset = self
            .ongoing
            .keys()
            .next()
            .copied()
            .unwrap_or(end.last_offset + 1);
        self.unreplicated
            .insert(end.first_offset, (end.producer_id, end.last_offset));
        CompletedTxn {
            producer_id: end.producer_id,
            first_offset: end.first_offset,
            last_offset: end.last_offset,
            aborted: end.aborted,
            last_stable_offset,
        }
    }

    /// Applies a batch read back from the log (loading, or a follower copying its leader's
    /// batches): no checks, as Kafka does for data a leader already accepted; data of fenced
    /// epochs is ignored. Returns the transaction a marker ended.
    pub fn replay(&mut self, r: &Replayed) -> Option<CompletedTxn> {
        match r {
            Replayed::Data(b) => {
                let entry = self
                    .producers
                    .entry(b.producer_id)
                    .or_insert_with(|| ProducerEntry::new(b.epoch, b.timestamp));
                if b.epoch >= entry.epoch {
                    entry.push(b.epoch, b.metadata());
                    let before = entry.current_txn_first_offset;
                    // A leader never accepts what this refuses; the transaction carries on.
                    let _ = entry.track_txn(b);
                    if before.is_none()
                        && let Some(first) = entry.current_txn_first_offset
                    {
                        self.ongoing.insert(first, b.producer_id);
                    }
                }
                None
            }
            Replayed::Marker(m) => {
                let end = self
                    .producers
                    .entry(m.producer_id)
                    .or_insert_with(|| ProducerEntry::new(m.epoch, m.timestamp))
                    .end_txn(m.producer_id, m)?;
                Some(self.complete(end))
            }
        }
    }

    /// Drops producers silent for at least `expiration_ms`, except those with an ongoing
    /// transaction (Kafka's `isProducerExpired`); returns how many.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// Writes `<offset>.snapshot` (state of every batch below `offset`) and keeps only the newest
    /// [`SNAPSHOTS_KEPT`] snapshots.
    pub fn take_snapshot(&self, offset: i64) -> Result<(), LogError> {
        let path = self.dir.join(file_name(offset, SNAPSHOT_EXT));
        write_atomic(&path, &encode_snapshot(&self.producers))?;
        let offsets = list_snapshots(&self.dir)?;
        let excess = offsets.len().saturating_sub(SNAPSHOTS_KEPT);
        for &old in offsets.iter().take(excess) {
            remove_if_exists(&self.dir.join(file_name(old, SNAPSHOT_EXT)))?;
        }
        Ok(())
    }

    /// Writes `bytes`, a snapshot taken elsewhere (the remote tier's), as `<offset>.snapshot`,
    /// replacing the snapshots at or above `offset`; refused if it does not decode.
    pub fn install_snapshot(&self, offset: i64, bytes: &[u8]) -> Result<(), LogError> {
        let path = self.dir.join(file_name(offset, SNAPSHOT_EXT));
        // Not an I/O error: a bad object from the store must not take the log dir offline.
        decode_snapshot(bytes).map_err(|detail| LogError::CorruptFile {
            path: path.clone(),
            detail,
        })?;
        self.delete_snapshots_after(offset - 1)?;
        write_atomic(&path, bytes)?;
        Ok(())
    }

    /// Deletes snapshots above `offset` (the log was truncated there).
    pub fn delete_snapshots_after(&self, offset: i64) -> Result<(), LogError> {
        for s in list_snapshots(&self.dir)? {
            if s > offset {
                remove_if_exists(&self.dir.join(file_name(s, SNAPSHOT_EXT)))?;
            }
        }
        Ok(())
    }

    /// Deletes snapshots below `offset` (the segments they were taken for are gone).
    pub fn delete_snapshots_before(&self, offset: i64) -> Result<(), LogError> {
        for s in list_snapshots(&self.dir)? {
            if s < offset {
                remove_if_exists(&self.dir.join(file_name(s, SNAPSHOT_EXT)))?;
            }
        }
        Ok(())
    }

    /// Replaces the state with the newest readable snapshot at or below `max_offset` (dropping
    /// expired producers) and returns its offset; corrupt snapshots are deleted. None = no usable
    /// snapshot, the state is empty.
    pub fn load_latest_snapshot(
        &mut self,
        max_offset: i64,
        now_ms: i64,
        expiration_ms: i64,
    ) -> Result<Option<i64>, LogError> {
        self.producers.clear();
        self.ongoing.clear();
        self.unreplicated.clear();
        for offset in list_snapshots(&self.dir)?.into_iter().rev() {
            if offset > max_offset {
                continue;
            }
            let path = self.dir.join(file_name(offset, SNAPSHOT_EXT));
            let bytes = std::fs::read(&path)?;
            match decode_snapshot(&bytes) {
                Ok(producers) => {
                    self.ongoing = producers
                        .iter()
                        .filter_map(|(&pid, e)| e.current_txn_first_offset.map(|f| (f, pid)))
                        .collect();
                    self.producers = producers;
                    self.expire(now_ms, expiration_ms);
                    return Ok(Some(offset));
                }
                Err(why) => {
                    tracing::warn!(file = %path.display(), "deleting corrupt producer snapshot: {why}");
                    remove_if_exists(&path)?;
                }
            }
        }
        Ok(None)
    }
}

/// Offsets of the `.snapshot` files in `dir`, ascending.
pub(crate) fn list_snapshots(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".snapshot")) else {
            continue;
        };
        if stem.len() == 20
            && stem.bytes().all(|b| b.is_ascii_digit())
            && let Ok(offset) = stem.parse::<i64>()
        {
            out.push(offset);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Kafka's ProducerSnapshot v1: version i16, crc u32 (CRC-32C of the rest), count i32, entries.
/// Like Kafka, only each producer's last batch is stored (last sequence and offset -1 for a
/// producer whose batches a marker's epoch bump cleared).
pub(crate) fn encode_snapshot(producers: &BTreeMap<i64, ProducerEntry>) -> Vec<u8> {
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER + producers.len() * SNAPSHOT_ENTRY);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(producers.len() as i32).to_be_bytes());
    for (pid, e) in producers {
        let (last_seq, last_offset, delta) = match e.last() {
            Some(b) => (
                b.last_seq,
                b.last_offset,
                (b.last_offset - b.first_offset).clamp(0, i64::from(i32::MAX)) as i32,
            ),
            None => (-1, -1, 0),
        };
        out.extend_from_slice(&pid.to_be_bytes());
        out.extend_from_slice(&e.epoch.to_be_bytes());
        out.extend_from_slice(&last_seq.to_be_bytes());
        out.extend_from_slice(&last_offset.to_be_bytes());
        out.extend_from_slice(&delta.to_be_bytes());
        out.extend_from_slice(&e.last_timestamp.to_be_bytes());
        out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
        out.extend_from_slice(&e.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
    }
    let crc = crc32c::crc32c(&out[6..]);
    out[2..6].copy_from_slice(&crc.to_be_bytes());
    out
}

pub(crate) fn decode_snapshot(bytes: &[u8]) -> Result<BTreeMap<i64, ProducerEntry>, String> {
    if bytes.len() < SNAPSHOT_HEADER {
        return Err(format!("{} bytes is too short", bytes.len()));
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    if version != SNAPSHOT_VERSION {
        return Err(format!("unsupported version {version}"));
    }
    let crc = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
    if crc32c::crc32c(&bytes[6..]) != crc {
        return Err("CRC mismatch".into());
    }
    let count = i32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
    let body = &bytes[SNAPSHOT_HEADER..];
    if count < 0 || body.len() != count as usize * SNAPSHOT_ENTRY {
        return Err(format!("{count} entries do not match {} bytes", body.len()));
    }
    let mut out = BTreeMap::new();
    for e in body.chunks_exact(SNAPSHOT_ENTRY) {
        let mut r = Fields(e);
        let pid = r.i64();
        let epoch = r.i16();
        let last_seq = r.i32();
        let last_offset = r.i64();
        let delta = r.i32();
        let timestamp = r.i64();
        let coordinator_epoch = r.i32();
        let txn_first_offset = r.i64();
        let mut batches = VecDeque::new();
        if last_offset >= 0 {
            batches.push_back(BatchMetadata {
                first_seq: last_seq.saturating_sub(delta).max(0),
                last_seq,
                first_offset: last_offset - i64::from(delta),
                last_offset,
                timestamp,
            });
        }
        out.insert(
            pid,
            ProducerEntry {
                epoch,
                batches,
                last_timestamp: timestamp,
                coordinator_epoch,
                current_txn_first_offset: (txn_first_offset >= 0).then_some(txn_first_offset),
            },
        );
    }
    Ok(out)
}

/// Big-endian reads from a slice whose length was checked by the caller.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.0[..N]);
        self.0 = &self.0[N..];
        a
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take())
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take())
    }
    fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pb(pid: i64, epoch: i16, first_seq: i32, n: i32, first_offset: i64) -> ProducerBatch {
        ProducerBatch {
            producer_id: pid,
            epoch,
            first_seq,
            last_seq: increment_sequence(first_seq, n - 1),
            first_offset,
            last_offset: first_offset + i64::from(n) - 1,
            timestamp: 1000 + first_offset,
            transactional: false,
        }
    }

    #[test]
    fn snapshot_round_trip_in_kafka_layout() {
        let mut m = ProducerStateManager::new(Path::new("."));
        let u = m
            .prepare(&[pb(7, 2, 0, 3, 10), pb(9, 0, 0, 1, 13)], true)
            .expect("valid");
        m.commit(u);
        let u = m.prepare(&[pb(7, 2, 3, 2, 14)], true).expect("valid");
        m.commit(u);
        let bytes = encode_snapshot(&m.producers);
        assert_eq!(bytes.len(), SNAPSHOT_HEADER + 2 * SNAPSHOT_ENTRY);
        assert_eq!(&bytes[0..2], &1i16.to_be_bytes());
        assert_eq!(&bytes[6..10], &2i32.to_be_bytes());
        // First entry: producer 7, epoch 2, last seq 4, last offset 15, delta 1, ts, -1, -1.
        let e = &bytes[SNAPSHOT_HEADER..SNAPSHOT_HEADER + SNAPSHOT_ENTRY];
        assert_eq!(&e[0..8], &7i64.to_be_bytes());
        assert_eq!(&e[8..10], &2i16.to_be_bytes());
        assert_eq!(&e[10..14], &4i32.to_be_bytes());
        assert_eq!(&e[14..22], &15i64.to_be_bytes());
        assert_eq!(&e[22..26], &1i32.to_be_bytes());
        assert_eq!(&e[26..34], &1014i64.to_be_bytes());
        assert_eq!(&e[34..38], &(-1i32).to_be_bytes());
        assert_eq!(&e[38..46], &(-1i64).to_be_bytes());
        let back = decode_snapshot(&bytes).expect("decode");
        let p7 = &back[&7];
        assert_eq!((p7.epoch, p7.last_seq(), p7.last_offset()), (2, 4, 15));
        assert_eq!(p7.batches[0].first_seq, 3);
        assert_eq!(p7.batches[0].first_offset, 14);
        assert_eq!(back[&9].last_offset(), 13);

        let mut bad = bytes.clone();
        bad[20] ^= 1;
        assert!(decode_snapshot(&bad).is_err());
        assert!(decode_snapshot(&bytes[..bytes.len() - 1]).is_err());
        let mut v2 = bytes;
        v2[1] = 2;
        assert!(decode_snapshot(&v2).is_err());
    }

    fn txn_pb(pid: i64, epoch: i16, first_seq: i32, n: i32, first_offset: i64) -> ProducerBatch {
        ProducerBatch {
            transactional: true,
            ..pb(pid, epoch, first_seq, n, first_offset)
        }
    }

    fn marker(pid: i64, epoch: i16, offset: i64, control: ControlType, coord: i32) -> MarkerBatch {
        MarkerBatch {
            producer_id: pid,
            epoch,
            offset,
            timestamp: 5000,
            marker: TxnMarker {
                control,
                coordinator_epoch: coord,
            },
        }
    }

    #[test]
    fn transactions_start_end_and_order_the_unstable_offsets() {
        let mut m = ProducerStateManager::new(Path::new("."));
        let u = m.prepare(&[txn_pb(1, 0, 0, 2, 10)], true).expect("start");
        assert_eq!(m.commit(u), None);
        let u = m.prepare(&[txn_pb(2, 0, 0, 1, 12)], true).expect("start");
        m.commit(u);
        // More data of an ongoing transaction keeps its first offset.
        let u = m.prepare(&[txn_pb(1, 0, 2, 1, 13)], true).expect("more");
        m.commit(u);
        assert_eq!(m.ongoing().collect::<Vec<_>>(), vec![(10, 1), (12, 2)]);
        assert_eq!(m.first_unstable_offset(), Some(10));
        assert!(matches!(
            m.prepare(&[pb(1, 0, 3, 1, 14)], true),
            Err(LogError::InvalidTxnState { producer_id: 1, .. })
        ));

        let u = m
            .prepare_marker(&marker(1, 0, 14, ControlType::Abort, 3))
            .expect("abort");
        let done = m.commit(u).expect("ended");
        // Producer 2's transaction is still open: the index entry's LSO is its first offset.
        assert_eq!(
            done.aborted_entry(),
            Some(AbortedTxn {
                producer_id: 1,
                first_offset: 10,
                last_offset: 14,
                last_stable_offset: 12
            })
        );
        assert_eq!(m.ongoing().collect::<Vec<_>>(), vec![(12, 2)]);
        // Not replicated yet: still the first unstable offset.
        assert_eq!(m.first_unstable_offset(), Some(10));
        m.on_high_watermark(14);
        assert_eq!(m.first_unstable_offset(), Some(10));
        m.on_high_watermark(15);
        assert_eq!(m.first_unstable_offset(), Some(12));
        assert_eq!(m.get(1).expect("p1").coordinator_epoch, 3);

        // Fencing: older producer epoch, older coordinator epoch.
        assert!(matches!(
            m.prepare_marker(&marker(2, -1, 15, ControlType::Commit, 0)),
            Err(LogError::InvalidProducerEpoch { .. })
        ));
        let u = m
            .prepare_marker(&marker(2, 1, 15, ControlType::Commit, 4))
            .expect("commit with a bumped epoch");
        let done = m.commit(u).expect("ended");
        assert!(done.aborted_entry().is_none());
        assert_eq!(done.last_stable_offset, 16);
        let p2 = m.get(2).expect("p2");
        assert_eq!((p2.epoch, p2.last_seq(), p2.coordinator_epoch), (1, -1, 4));
        assert!(matches!(
            m.prepare_marker(&marker(2, 1, 16, ControlType::Commit, 3)),
            Err(LogError::TransactionCoordinatorFenced {
                producer_id: 2,
                coordinator_epoch: 3,
                current: 4
            })
        ));
        // A marker without a transaction ends nothing but is accepted; unknown producers too.
        let u = m
            .prepare_marker(&marker(3, 0, 16, ControlType::Abort, 0))
            .expect("marker for an unknown producer");
        assert_eq!(m.commit(u), None);
        assert_eq!(m.len(), 3);
        // After the bump the producer restarts at sequence 0.
        assert!(m.prepare(&[txn_pb(2, 1, 0, 1, 17)], true).is_ok());
        assert!(m.prepare(&[txn_pb(2, 1, 5, 1, 17)], true).is_err());

        // Ongoing transactions keep their producer from expiring.
        let u = m.prepare(&[txn_pb(4, 0, 0, 1, 20)], true).expect("start");
        m.commit(u);
        assert_eq!(m.expire(1_000_000, 10), 3);
        assert!(m.get(4).is_some());
    }

    #[test]
    fn snapshots_carry_transactions_and_coordinator_epochs() {
        let mut m = ProducerStateManager::new(Path::new("."));
        let u = m.prepare(&[txn_pb(1, 0, 0, 2, 10)], true).expect("start");
        m.commit(u);
        let u = m
            .prepare_marker(&marker(2, 3, 12, ControlType::Commit, 7))
            .expect("marker");
        m.commit(u);
        let bytes = encode_snapshot(&m.producers);
        assert_eq!(bytes.len(), SNAPSHOT_HEADER + 2 * SNAPSHOT_ENTRY);
        let e1 = &bytes[SNAPSHOT_HEADER..SNAPSHOT_HEADER + SNAPSHOT_ENTRY];
        assert_eq!(&e1[34..38], &(-1i32).to_be_bytes());
        assert_eq!(&e1[38..46], &10i64.to_be_bytes());
        // A producer known only from a marker: no batch (-1 sequence and offset).
        let e2 = &bytes[SNAPSHOT_HEADER + SNAPSHOT_ENTRY..];
        assert_eq!(&e2[10..14], &(-1i32).to_be_bytes());
        assert_eq!(&e2[14..22], &(-1i64).to_be_bytes());
        assert_eq!(&e2[34..38], &7i32.to_be_bytes());
        assert_eq!(&e2[38..46], &(-1i64).to_be_bytes());
        let back = decode_snapshot(&bytes).expect("decode");
        assert_eq!(back, m.producers);
    }

    #[test]
    fn keeps_five_batches_and_detects_duplicates() {
        let mut m = ProducerStateManager::new(Path::new("."));
        for i in 0..7 {
            let u = m
                .prepare(&[pb(1, 0, i * 2, 2, i64::from(i) * 2)], true)
                .expect("valid");
            m.commit(u);
        }
        assert_eq!(m.producers[&1].batches.len(), 5);
        assert_eq!(m.duplicate_of(&pb(1, 0, 4, 2, 99)), Some((4, 5)));
        assert_eq!(m.duplicate_of(&pb(1, 0, 2, 2, 99)), None);
        assert_eq!(m.duplicate_of(&pb(1, 1, 4, 2, 99)), None);
    }

    #[test]
    fn sequence_rules() {
        let mut m = ProducerStateManager::new(Path::new("."));
        assert!(matches!(
            m.prepare(&[pb(1, 0, 5, 1, 0)], true),
            Err(LogError::UnknownProducerId { .. })
        ));
        let u = m.prepare(&[pb(1, 3, 0, 2, 0)], true).expect("new producer");
        m.commit(u);
        assert!(matches!(
            m.prepare(&[pb(1, 2, 2, 1, 2)], true),
            Err(LogError::InvalidProducerEpoch { .. })
        ));
        assert!(matches!(
            m.prepare(&[pb(1, 3, 3, 1, 2)], true),
            Err(LogError::OutOfOrderSequence { .. })
        ));
        assert!(matches!(
            m.prepare(&[pb(1, 4, 1, 1, 2)], true),
            Err(LogError::OutOfOrderSequence { .. })
        ));
        // Batches of one request see each other.
        assert!(
            m.prepare(&[pb(1, 3, 2, 1, 2), pb(1, 3, 3, 1, 3)], true)
                .is_ok()
        );
        assert!(
            m.prepare(&[pb(1, 3, 2, 1, 2), pb(1, 3, 4, 1, 3)], true)
                .is_err()
        );
        // Wrap-around from i32::MAX to 0.
        let u = m.prepare(&[pb(2, 0, 0, 1, 10)], true).expect("valid");
        m.commit(u);
        m.producers.get_mut(&2).expect("p2").batches[0].last_seq = i32::MAX;
        assert!(m.prepare(&[pb(2, 0, 0, 1, 11)], true).is_ok());
        assert_eq!(m.expire(1011 + 100, 100), 2);
    }
}
