//! The file side of Kafka's index files (`.index`, `.timeindex`, `.txnindex`): fixed-size
//! big-endian entries kept in memory and written to the file incrementally (only entries not yet
//! there), with the file trimmed to what memory holds after a truncation. All three share it.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// What of an in-memory index is already in its file.
#[derive(Debug)]
pub(crate) struct IndexFile {
    /// Entries already written.
    persisted: usize,
    /// Entries the file holds (`usize::MAX` = unknown, forces a trim on the next write).
    file_entries: usize,
}

impl IndexFile {
    pub(crate) fn new() -> Self {
        IndexFile {
            persisted: 0,
            file_entries: usize::MAX,
        }
    }

    /// State after loading `entries` entries from the file.
    pub(crate) fn loaded(entries: usize) -> Self {
        IndexFile {
            persisted: entries,
            file_entries: entries,
        }
    }

    /// The in-memory index was cut to `keep` entries.
    pub(crate) fn truncated(&mut self, keep: usize) {
        self.persisted = self.persisted.min(keep);
    }

    /// Whether the file already holds exactly `len` entries (nothing to write).
    pub(crate) fn is_current(&self, len: usize) -> bool {
        self.persisted == len && self.file_entries == len
    }

    /// Writes entries not yet in the file (each `entry_len` bytes, produced by `encode`) and trims
    /// the file to `entries.len()` entries.
    pub(crate) fn write<E>(
        &mut self,
        path: &Path,
        entries: &[E],
        entry_len: usize,
        encode: impl Fn(&E, &mut Vec<u8>),
        sync: bool,
    ) -> io::Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if self.persisted < entries.len() {
            let mut buf = Vec::with_capacity((entries.len() - self.persisted) * entry_len);
            for e in &entries[self.persisted..] {
                encode(e, &mut buf);
            }
            file.write_all_at(&buf, (self.persisted * entry_len) as u64)?;
        }
        if self.file_entries != entries.len() {
            file.set_len((entries.len() * entry_len) as u64)?;
        }
        if sync {
            file.sync_all()?;
        }
        self.persisted = entries.len();
        self.file_entries = entries.len();
        Ok(())
    }
}

/// The raw bytes of an index file, `None` when it does not exist or its size is not a whole
/// number of entries (the caller then rebuilds the index from the log).
pub(crate) fn read(path: &Path, entry_len: usize) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) if b.len() % entry_len == 0 => Ok(Some(b)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
