//! Sparse time index of a segment (Kafka's `TimeIndex`): 12-byte entries of (timestamp i64 BE,
//! relative offset i32 BE) with strictly increasing timestamps, kept in memory and written to the
//! `.timeindex` file incrementally on flush, roll and close.

use std::io;
use std::path::Path;

use crate::index_file::{self, IndexFile};

const ENTRY: usize = 12;

#[derive(Debug)]
pub(crate) struct TimeIndex {
    base_offset: i64,
    /// (timestamp, relative offset).
    entries: Vec<(i64, u32)>,
    file: IndexFile,
}

impl TimeIndex {
    pub fn new(base_offset: i64) -> TimeIndex {
        TimeIndex {
            base_offset,
            entries: Vec::new(),
            file: IndexFile::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Kafka's `maybeAppend`: only a timestamp larger than every indexed one gets an entry.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) {
        let rel = offset - self.base_offset;
        if timestamp < 0 || !(0..=i64::from(i32::MAX)).contains(&rel) {
            return;
        }
        if let Some(&(last_ts, last_rel)) = self.entries.last()
            && (timestamp <= last_ts || (rel as u32) < last_rel)
        {
            return;
        }
        self.entries.push((timestamp, rel as u32));
    }

    /// The last entry whose timestamp is strictly below `timestamp`: every record up to its offset
    /// is older than `timestamp`, so a search may start after it.
    pub fn lookup_below(&self, timestamp: i64) -> Option<(i64, i64)> {
        let n = self.entries.partition_point(|&(ts, _)| ts < timestamp);
        (n > 0).then(|| {
            let (ts, rel) = self.entries[n - 1];
            (ts, self.base_offset + i64::from(rel))
        })
    }

    pub fn last(&self) -> Option<(i64, i64)> {
        self.entries
            .last()
            .map(|&(ts, rel)| (ts, self.base_offset + i64::from(rel)))
    }

    /// Drops entries for offsets >= `offset`.
    pub fn truncate_to_offset(&mut self, offset: i64) {
        let keep = self
            .entries
            .partition_point(|&(_, rel)| self.base_offset + i64::from(rel) < offset);
        self.entries.truncate(keep);
        self.file.truncated(keep);
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.file.truncated(0);
    }

    pub fn write(&mut self, path: &Path, sync: bool) -> io::Result<()> {
        self.file.write(
            path,
            &self.entries,
            ENTRY,
            |&(ts, rel), buf| {
                buf.extend_from_slice(&ts.to_be_bytes());
                buf.extend_from_slice(&rel.to_be_bytes());
            },
            sync,
        )
    }

    /// Loads a time index file, or None when missing or insane (caller rebuilds).
    pub fn load(path: &Path, base_offset: i64, next_offset: i64) -> io::Result<Option<TimeIndex>> {
        let Some(bytes) = index_file::read(path, ENTRY)? else {
            return Ok(None);
        };
        let mut index = TimeIndex::new(base_offset);
        for chunk in bytes.chunks_exact(ENTRY) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&chunk[..8]);
            let ts = i64::from_be_bytes(ts);
            let rel = i32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]);
            if rel < 0 || base_offset + i64::from(rel) >= next_offset.max(base_offset + 1) {
                return Ok(None);
            }
            let before = index.entries.len();
            index.maybe_append(ts, base_offset + i64::from(rel));
            if index.entries.len() == before {
                return Ok(None);
            }
        }
        index.file = IndexFile::loaded(index.entries.len());
        Ok(Some(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_lookup_write_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.timeindex");
        let mut idx = TimeIndex::new(10);
        idx.maybe_append(1000, 12);
        idx.maybe_append(1000, 13); // not larger: ignored
        idx.maybe_append(2000, 15);
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.lookup_below(1000), None);
        assert_eq!(idx.lookup_below(1001), Some((1000, 12)));
        assert_eq!(idx.lookup_below(9999), Some((2000, 15)));
        idx.write(&path, false).expect("write");
        let raw = std::fs::read(&path).expect("read");
        assert_eq!(raw.len(), 24);
        assert_eq!(&raw[..12], &[0, 0, 0, 0, 0, 0, 0x03, 0xe8, 0, 0, 0, 2]);
        let loaded = TimeIndex::load(&path, 10, 16).expect("load").expect("sane");
        assert_eq!(loaded.entries, idx.entries);
        assert!(TimeIndex::load(&path, 10, 14).expect("load").is_none());
        idx.truncate_to_offset(15);
        assert_eq!(idx.last(), Some((1000, 12)));
    }
}
