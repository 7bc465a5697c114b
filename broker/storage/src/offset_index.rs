//! Sparse offset index of a segment (Kafka's `OffsetIndex`): 8-byte entries of
//! (relative offset i32 BE, file position i32 BE), kept in memory and written to the `.index` file
//! incrementally on flush, roll and close.

use std::io;
use std::path::Path;

use crate::index_file::{self, IndexFile};

const ENTRY: usize = 8;

#[derive(Debug)]
pub(crate) struct OffsetIndex {
    base_offset: i64,
    /// (relative offset, position), both strictly increasing.
    entries: Vec<(u32, u32)>,
    file: IndexFile,
}

impl OffsetIndex {
    pub fn new(base_offset: i64) -> OffsetIndex {
        OffsetIndex {
            base_offset,
            entries: Vec::new(),
            file: IndexFile::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds an entry; ignored unless both offset and position grow (index stays sorted).
    pub fn append(&mut self, offset: i64, position: u32) {
        let rel = offset - self.base_offset;
        if !(0..=i64::from(i32::MAX)).contains(&rel) {
            return;
        }
        if let Some(&(last_rel, last_pos)) = self.entries.last()
            && (rel as u32 <= last_rel || position <= last_pos)
        {
            return;
        }
        self.entries.push((rel as u32, position));
    }

    /// Position of the last indexed batch whose offset is <= `offset` (0 if none): a scan from
    /// there finds the batch holding `offset`.
    pub fn lookup(&self, offset: i64) -> u32 {
        let rel = offset - self.base_offset;
        if rel < 0 {
            return 0;
        }
        let n = self.entries.partition_point(|&(r, _)| i64::from(r) <= rel);
        if n == 0 { 0 } else { self.entries[n - 1].1 }
    }

    pub fn last(&self) -> Option<(i64, u32)> {
        self.entries
            .last()
            .map(|&(r, p)| (self.base_offset + i64::from(r), p))
    }

    /// Drops entries at or beyond `position` (the log was truncated there).
    pub fn truncate_to_position(&mut self, position: u64) {
        let keep = self
            .entries
            .partition_point(|&(_, p)| u64::from(p) < position);
        self.entries.truncate(keep);
        self.file.truncated(keep);
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.file.truncated(0);
    }

    /// Writes the entries not yet in the file and trims the file to the entries held.
    pub fn write(&mut self, path: &Path, sync: bool) -> io::Result<()> {
        self.file.write(
            path,
            &self.entries,
            ENTRY,
            |&(rel, pos), buf| {
                buf.extend_from_slice(&rel.to_be_bytes());
                buf.extend_from_slice(&pos.to_be_bytes());
            },
            sync,
        )
    }

    /// Loads an index file, or None when it is missing or fails Kafka's sanity checks (sizes,
    /// ordering, positions inside the log), in which case the caller rebuilds it.
    pub fn load(path: &Path, base_offset: i64, log_size: u64) -> io::Result<Option<OffsetIndex>> {
        let Some(bytes) = index_file::read(path, ENTRY)? else {
            return Ok(None);
        };
        let mut index = OffsetIndex::new(base_offset);
        for chunk in bytes.chunks_exact(ENTRY) {
            let rel = i32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let pos = i32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            if rel < 0 || pos < 0 || pos as u64 >= log_size {
                return Ok(None);
            }
            let before = index.entries.len();
            index.append(base_offset + i64::from(rel), pos as u32);
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
    fn lookup_write_load_truncate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.index");
        let mut idx = OffsetIndex::new(100);
        assert_eq!(idx.lookup(150), 0);
        idx.append(110, 4000);
        idx.append(120, 8000);
        idx.append(119, 9000); // not increasing: ignored
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.lookup(105), 0);
        assert_eq!(idx.lookup(110), 4000);
        assert_eq!(idx.lookup(119), 4000);
        assert_eq!(idx.lookup(500), 8000);
        idx.write(&path, false).expect("write");
        assert_eq!(std::fs::metadata(&path).expect("len").len(), 16);
        let raw = std::fs::read(&path).expect("read");
        assert_eq!(&raw[..8], &[0, 0, 0, 10, 0, 0, 0x0f, 0xa0]);
        let loaded = OffsetIndex::load(&path, 100, 10_000)
            .expect("load")
            .expect("sane");
        assert_eq!(loaded.entries, idx.entries);
        assert!(OffsetIndex::load(&path, 100, 5000).expect("load").is_none());
        idx.truncate_to_position(8000);
        idx.write(&path, true).expect("write");
        assert_eq!(std::fs::metadata(&path).expect("len").len(), 8);
    }
}
