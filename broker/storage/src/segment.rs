//! One log segment (Kafka's `LogSegment`): the `.log` file of batches plus its in-memory offset,
//! time and transaction indexes, the append path's single write, index maintenance, truncation and
//! the per-segment scans used at load time.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{BatchHeader, crc_matches};
use crate::offset_index::OffsetIndex;
use crate::reader::{BATCH_CHUNK, HEADER_CHUNK, SegmentReader, Step};
use crate::time_index::TimeIndex;
use crate::txn_index::TxnIndex;
use crate::{AbortedTxn, LogConfig};

pub(crate) const TXN_INDEX_EXT: &str = "txnindex";

pub(crate) fn file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// Parses `<20 digits>.log` into a base offset.
pub(crate) fn parse_log_file_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

#[derive(Debug)]
pub(crate) struct LogSegment {
    pub base_offset: i64,
    pub file: Arc<File>,
    dir: PathBuf,
    /// Bytes of valid batches; the file is never read beyond this.
    pub size: u64,
    /// Last offset + 1 (the base offset while empty).
    pub next_offset: i64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    /// Transactions aborted by markers in this segment.
    pub txn_index: TxnIndex,
    bytes_since_index: u64,
    /// Largest batch max timestamp (-1 if none) and the last offset of that batch.
    pub max_timestamp: i64,
    pub max_timestamp_offset: i64,
    /// What segment.ms is measured from: the first batch's timestamp.
    pub roll_timestamp: Option<i64>,
    /// A failed write may have left bytes past `size`; trim before the next write.
    needs_trim: bool,
    /// Index entries changed since they were last written and synced.
    pub indexes_dirty: bool,
}

impl LogSegment {
    fn with_file(dir: &Path, base_offset: i64, file: File, size: u64) -> LogSegment {
        LogSegment {
            base_offset,
            file: Arc::new(file),
            dir: dir.to_path_buf(),
            size,
            next_offset: base_offset,
            offset_index: OffsetIndex::new(base_offset),
            time_index: TimeIndex::new(base_offset),
            txn_index: TxnIndex::new(),
            bytes_since_index: 0,
            max_timestamp: -1,
            max_timestamp_offset: -1,
            roll_timestamp: None,
            needs_trim: false,
            indexes_dirty: true,
        }
    }

    /// Creates an empty segment with empty index files, replacing any files of the same names.
    pub fn create(dir: &Path, base_offset: i64) -> io::Result<LogSegment> {
        let path = dir.join(file_name(base_offset, "log"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        let mut segment = LogSegment::with_file(dir, base_offset, file, 0);
        // Empty index files from the start, as Kafka has (replacing any stale ones). Kafka creates
        // the `.txnindex` only with its first entry; here it always exists, so that a missing one
        // shows it was lost and recovery rebuilds it.
        segment.write_indexes(false)?;
        Ok(segment)
    }

    /// Opens an existing segment; its state is filled in by [`Self::load_tail`] or [`Self::rebuild`].
    pub fn open(dir: &Path, base_offset: i64) -> io::Result<LogSegment> {
        let path = dir.join(file_name(base_offset, "log"));
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(LogSegment::with_file(dir, base_offset, file, size))
    }

    /// Re-points the segment at a copy of its files in `dir` (a replica moved between log dirs);
    /// `file` holds the same `size` bytes. The index files are written there by the caller.
    pub(crate) fn relocate(&mut self, dir: &Path, file: File) {
        self.dir = dir.to_path_buf();
        self.file = Arc::new(file);
        self.needs_trim = false;
        self.indexes_dirty = true;
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(file_name(self.base_offset, "log"))
    }

    pub fn index_path(&self) -> PathBuf {
        self.dir.join(file_name(self.base_offset, "index"))
    }

    pub fn time_index_path(&self) -> PathBuf {
        self.dir.join(file_name(self.base_offset, "timeindex"))
    }

    pub fn txn_index_path(&self) -> PathBuf {
        self.dir.join(file_name(self.base_offset, TXN_INDEX_EXT))
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Kafka's `shouldRoll`: size, age, full indexes, or relative offsets that would overflow.
    pub fn should_roll(
        &self,
        config: &LogConfig,
        incoming: u64,
        last_offset: i64,
        now_ms: i64,
    ) -> bool {
        if self.is_empty() {
            return false;
        }
        let too_big = self.size + incoming > config.effective_segment_bytes();
        let too_old = match (config.segment_ms, self.roll_timestamp) {
            (Some(ms), Some(ts)) => now_ms.saturating_sub(ts) > ms.min(i64::MAX as u64) as i64,
            _ => false,
        };
        let index_full = self.offset_index.len() >= config.offset_index_entries()
            || self.time_index.len() >= config.time_index_entries();
        let overflow = last_offset - self.base_offset > i64::from(i32::MAX);
        too_big || too_old || index_full || overflow
    }

    /// Writes `slices` (`total` bytes) at the end of the segment in as few syscalls as the kernel
    /// allows. On error the file is cut back so no partial batch stays, and `size` is unchanged.
    pub fn write(&mut self, slices: &mut [IoSlice<'_>], total: u64) -> io::Result<()> {
        if self.needs_trim {
            self.file.set_len(self.size)?;
            self.needs_trim = false;
        }
        let result = write_all_vectored(&self.file, self.size, slices);
        if let Err(e) = result {
            if self.file.set_len(self.size).is_err() {
                self.needs_trim = true;
            }
            return Err(e);
        }
        self.size += total;
        Ok(())
    }

    /// Index bookkeeping for a batch written at `position` (Kafka's per-batch rule: an offset index
    /// entry once more than `index_interval` bytes went by, a time index entry with it when the
    /// largest timestamp grew).
    pub fn on_batch(
        &mut self,
        position: u64,
        header: &BatchHeader,
        index_interval: u64,
        now_ms: i64,
    ) {
        let last = header.last_offset();
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.max_timestamp_offset = last;
        }
        if self.bytes_since_index > index_interval {
            self.offset_index.append(last, position as u32);
            self.time_index
                .maybe_append(self.max_timestamp, self.max_timestamp_offset);
            self.bytes_since_index = 0;
            self.indexes_dirty = true;
        }
        self.bytes_since_index += u64::from(header.size);
        self.next_offset = last + 1;
        if self.roll_timestamp.is_none() {
            self.roll_timestamp = Some(if header.max_timestamp >= 0 {
                header.max_timestamp
            } else {
                now_ms
            });
        }
    }

    /// Indexes a transaction aborted by a marker just written to this segment.
    pub fn append_aborted(&mut self, txn: AbortedTxn) {
        self.txn_index.append(txn);
        self.indexes_dirty = true;
    }

    /// The segment stops being active: index its largest timestamp (Kafka's
    /// `onBecomeInactiveSegment`).
    pub fn seal(&mut self) {
        let before = self.time_index.len();
        self.time_index
            .maybe_append(self.max_timestamp, self.max_timestamp_offset);
        if self.time_index.len() != before {
            self.indexes_dirty = true;
        }
    }

    pub fn write_indexes(&mut self, sync: bool) -> io::Result<()> {
        let (index, time_index) = (self.index_path(), self.time_index_path());
        self.offset_index.write(&index, sync)?;
        self.time_index.write(&time_index, sync)?;
        let txn_index = self.txn_index_path();
        self.txn_index.write(&txn_index, sync)?;
        if sync {
            self.indexes_dirty = false;
        }
        Ok(())
    }

    /// Deletes the segment's files (open handles keep serving in-flight reads).
    pub fn delete_files(&self) -> io::Result<()> {
        for path in [
            self.log_path(),
            self.index_path(),
            self.time_index_path(),
            self.txn_index_path(),
        ] {
            remove_if_exists(&path)?;
        }
        Ok(())
    }

    /// Position and header of the first batch whose last offset is >= `offset`.
    pub fn find_batch(&self, offset: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        let mut reader = SegmentReader::new(&self.file, self.size, HEADER_CHUNK);
        let mut pos = u64::from(self.offset_index.lookup(offset));
        loop {
            match reader.header_at(pos)? {
                Step::End => return Ok(None),
                Step::Invalid(why) => return Err(io::Error::new(io::ErrorKind::InvalidData, why)),
                Step::Batch(h) => {
                    if h.last_offset() >= offset {
                        return Ok(Some((pos, h)));
                    }
                    pos += u64::from(h.size);
                }
            }
        }
    }

    /// Removes every batch whose last offset is >= `offset` (whole batches, as Kafka does).
    /// Returns the bytes removed.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<u64> {
        let Some((pos, header)) = self.find_batch(offset)? else {
            return Ok(0);
        };
        let removed = self.size - pos;
        self.file.set_len(pos)?;
        self.size = pos;
        self.offset_index.truncate_to_position(pos);
        self.time_index.truncate_to_offset(header.base_offset);
        self.indexes_dirty = true;
        if let Err(why) = self.recompute_tail()? {
            return Err(io::Error::new(io::ErrorKind::InvalidData, why));
        }
        // Aborts whose markers were cut off are undone.
        self.txn_index.truncate_to(self.next_offset);
        Ok(removed)
    }

    /// Derives next offset, largest timestamp and roll timestamp from the indexes plus a header
    /// scan after the last offset index entry (Kafka trusts a cleanly closed segment's indexes the
    /// same way). Returns `Err(reason)` when the scanned tail is not well framed.
    pub fn recompute_tail(&mut self) -> io::Result<Result<(), String>> {
        let mut reader = SegmentReader::new(&self.file, self.size, HEADER_CHUNK);
        self.roll_timestamp = None;
        self.next_offset = self.base_offset;
        match reader.header_at(0)? {
            Step::Batch(h) => {
                self.roll_timestamp = (h.max_timestamp >= 0).then_some(h.max_timestamp);
                self.next_offset = h.next_offset();
            }
            Step::End => {}
            Step::Invalid(why) => return Ok(Err(why)),
        }
        let (mut max_ts, mut max_off) = self.time_index.last().unwrap_or((-1, -1));
        let mut pos = 0;
        if let Some((off, p)) = self.offset_index.last() {
            pos = u64::from(p);
            self.next_offset = self.next_offset.max(off + 1);
        }
        let mut since = 0;
        loop {
            match reader.header_at(pos)? {
                Step::End => break,
                Step::Invalid(why) => return Ok(Err(why)),
                Step::Batch(h) => {
                    if h.max_timestamp > max_ts {
                        max_ts = h.max_timestamp;
                        max_off = h.last_offset();
                    }
                    self.next_offset = self.next_offset.max(h.next_offset());
                    pos += u64::from(h.size);
                    since += u64::from(h.size);
                }
            }
        }
        self.max_timestamp = max_ts;
        self.max_timestamp_offset = max_off;
        self.bytes_since_index = since;
        Ok(Ok(()))
    }

    /// Rescans the whole segment, validating framing, magic, CRC and offset order, rebuilding both
    /// indexes; cuts the file at the first invalid batch. Returns a description of what was cut.
    pub fn rebuild(&mut self, config: &LogConfig, now_ms: i64) -> io::Result<Option<String>> {
        self.offset_index.clear();
        self.time_index.clear();
        self.indexes_dirty = true;
        self.bytes_since_index = 0;
        self.max_timestamp = -1;
        self.max_timestamp_offset = -1;
        self.roll_timestamp = None;
        self.next_offset = self.base_offset;
        let file_size = self.file.metadata()?.len();
        let file = Arc::clone(&self.file);
        let mut reader = SegmentReader::new(&file, file_size, BATCH_CHUNK);
        let mut pos = 0u64;
        let problem = loop {
            let header = match reader.header_at(pos)? {
                Step::End => break None,
                Step::Invalid(why) => break Some(why),
                Step::Batch(h) => h,
            };
            if header.base_offset < self.next_offset {
                break Some(format!(
                    "batch at position {pos} has base offset {} below {}",
                    header.base_offset, self.next_offset
                ));
            }
            if header.last_offset_delta < 0 {
                break Some(format!(
                    "batch at position {pos} has a negative lastOffsetDelta"
                ));
            }
            let Some(bytes) = reader.get(pos, header.size as usize)? else {
                break Some(format!("batch at position {pos} is cut short"));
            };
            if !crc_matches(bytes, &header) {
                break Some(format!("CRC mismatch in batch at position {pos}"));
            }
            self.on_batch(pos, &header, config.index_interval_bytes, now_ms);
            pos += u64::from(header.size);
        };
        self.size = pos;
        match problem {
            None => Ok(None),
            Some(why) => {
                self.file.set_len(pos)?;
                Ok(Some(format!(
                    "{why}; truncated {} bytes of {}",
                    file_size - pos,
                    self.log_path().display()
                )))
            }
        }
    }
}

fn write_all_vectored(
    file: &File,
    position: u64,
    mut slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    let mut f = file;
    f.seek(SeekFrom::Start(position))?;
    while !slices.is_empty() {
        match f.write_vectored(slices) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub(crate) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(file_name(42, "log"), "00000000000000000042.log");
        assert_eq!(parse_log_file_name("00000000000000000042.log"), Some(42));
        assert_eq!(parse_log_file_name("0042.log"), None);
        assert_eq!(parse_log_file_name("00000000000000000042.index"), None);
    }
}
