//! The transaction index of a segment (Kafka's `TransactionIndex`, `<base>.txnindex`): one entry
//! per transaction aborted by a marker in that segment, read by `read_committed` fetches to tell
//! consumers which producers' records to drop. Entries are Kafka's 34-byte `AbortedTxn`
//! (version i16 = 0, producerId i64, firstOffset i64, lastOffset i64, lastStableOffset i64, big
//! endian), in marker (last offset) order. Like the other indexes, entries live in memory and reach
//! the file on flush, roll and close; recovery rebuilds the index of every segment it rescans.

use std::io;
use std::path::Path;

use crate::index_file::{self, IndexFile};

/// Bytes of one entry on disk.
pub(crate) const ENTRY: usize = 34;
const VERSION: i16 = 0;

/// A transaction aborted in this partition, as a `read_committed` fetch reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// Offset of the transaction's first batch in this partition.
    pub first_offset: i64,
    /// Offset of the ABORT marker.
    pub last_offset: i64,
    /// The last stable offset once the marker was written: no transaction aborted later starts
    /// below it, which lets a search stop early.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.first_offset.to_be_bytes());
        out.extend_from_slice(&self.last_offset.to_be_bytes());
        out.extend_from_slice(&self.last_stable_offset.to_be_bytes());
    }

    /// `b` holds exactly one entry.
    fn decode(b: &[u8]) -> Result<AbortedTxn, String> {
        let i64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            i64::from_be_bytes(a)
        };
        let version = i16::from_be_bytes([b[0], b[1]]);
        if version != VERSION {
            return Err(format!("unsupported entry version {version}"));
        }
        Ok(AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        })
    }
}

#[derive(Debug)]
pub(crate) struct TxnIndex {
    /// In last-offset order.
    entries: Vec<AbortedTxn>,
    file: IndexFile,
}

impl TxnIndex {
    pub fn new() -> TxnIndex {
        TxnIndex {
            entries: Vec::new(),
            file: IndexFile::new(),
        }
    }

    /// Loads a segment's index, checking what Kafka's `sanityCheck` does and a little more: whole
    /// entries of version 0, markers inside the segment's offsets `[base, next_offset)` in
    /// increasing order, transactions that do not end before they start. `Err(reason)` when the
    /// file is missing (segments get one when created) or fails a check: the index is rebuilt.
    pub fn load(path: &Path, base: i64, next_offset: i64) -> io::Result<Result<TxnIndex, String>> {
        let Some(bytes) = index_file::read(path, ENTRY)? else {
            return Ok(Err(
                "transaction index missing or not a whole number of entries".into(),
            ));
        };
        let mut entries = Vec::with_capacity(bytes.len() / ENTRY);
        let mut prev_last = base - 1;
        for raw in bytes.chunks_exact(ENTRY) {
            let e = match AbortedTxn::decode(raw) {
                Ok(e) => e,
                Err(why) => return Ok(Err(why)),
            };
            if e.last_offset <= prev_last || e.last_offset >= next_offset {
                return Ok(Err(format!(
                    "entry with last offset {} out of order or outside [{base}, {next_offset})",
                    e.last_offset
                )));
            }
            if e.first_offset > e.last_offset {
                return Ok(Err(format!(
                    "entry starts at {} after it ends at {}",
                    e.first_offset, e.last_offset
                )));
            }
            prev_last = e.last_offset;
            entries.push(e);
        }
        let file = IndexFile::loaded(entries.len());
        Ok(Ok(TxnIndex { entries, file }))
    }

    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// Adds the entry of a marker written after every marker already indexed.
    pub fn append(&mut self, txn: AbortedTxn) {
        debug_assert!(
            self.entries
                .last()
                .is_none_or(|l| l.last_offset < txn.last_offset)
        );
        self.entries.push(txn);
    }

    /// Drops the entries of markers at or after `offset` (the log was cut there).
    pub fn truncate_to(&mut self, offset: i64) {
        let keep = self.entries.partition_point(|e| e.last_offset < offset);
        self.entries.truncate(keep);
        self.file.truncated(keep);
    }

    pub fn clear(&mut self) {
        self.truncate_to(i64::MIN);
    }

    /// Kafka's `collectAbortedTxns`: appends to `out` the entries with last offset >= `from` and
    /// first offset < `upper`; true when the search is complete (an entry's last stable offset
    /// reaches `upper`, so no later segment holds a match).
    pub fn collect(&self, from: i64, upper: i64, out: &mut Vec<AbortedTxn>) -> bool {
        for e in &self.entries {
            if e.last_offset >= from && e.first_offset < upper {
                out.push(*e);
            }
            if e.last_stable_offset >= upper {
                return true;
            }
        }
        false
    }

    /// Writes entries not yet in the file (creating it, empty if need be).
    pub fn write(&mut self, path: &Path, sync: bool) -> io::Result<()> {
        if !sync && self.file.is_current(self.entries.len()) {
            return Ok(());
        }
        self.file
            .write(path, &self.entries, ENTRY, AbortedTxn::encode, sync)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn kafka_layout_round_trip_and_checks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("00000000000000000010.txnindex");
        let mut idx = TxnIndex::new();
        idx.write(&path, false).expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"");
        idx.append(txn(7, 5, 12, 13));
        idx.append(txn(8, 11, 15, 11));
        idx.write(&path, true).expect("write");
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(bytes.len(), 2 * ENTRY);
        let mut want = vec![0u8, 0];
        for v in [7i64, 5, 12, 13] {
            want.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(&bytes[..ENTRY], &want[..]);

        let loaded = TxnIndex::load(&path, 10, 16).expect("io").expect("valid");
        assert_eq!(loaded.entries(), idx.entries());
        // Markers beyond the segment's end, torn entries, bad versions, missing files.
        assert!(TxnIndex::load(&path, 10, 15).expect("io").is_err());
        assert!(TxnIndex::load(&path, 13, 16).expect("io").is_err());
        std::fs::write(&path, &bytes[..ENTRY + 3]).expect("write");
        assert!(TxnIndex::load(&path, 10, 16).expect("io").is_err());
        let mut bad = bytes.clone();
        bad[1] = 1;
        std::fs::write(&path, &bad).expect("write");
        assert!(TxnIndex::load(&path, 10, 16).expect("io").is_err());
        std::fs::remove_file(&path).expect("remove");
        assert!(TxnIndex::load(&path, 10, 16).expect("io").is_err());

        // Truncation trims the file on the next write.
        std::fs::write(&path, &bytes).expect("write");
        idx.truncate_to(15);
        idx.write(&path, false).expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), &bytes[..ENTRY]);
    }

    #[test]
    fn collect_stops_at_the_last_stable_offset() {
        let mut idx = TxnIndex::new();
        idx.append(txn(1, 0, 4, 2));
        idx.append(txn(2, 2, 6, 7));
        idx.append(txn(3, 7, 9, 10));
        let mut out = Vec::new();
        assert!(idx.collect(5, 7, &mut out));
        assert_eq!(out, vec![txn(2, 2, 6, 7)]);
        out.clear();
        assert!(!idx.collect(0, 100, &mut out));
        assert_eq!(out.len(), 3);
        out.clear();
        assert!(idx.collect(0, 2, &mut out));
        assert_eq!(out, vec![txn(1, 0, 4, 2)]);
    }
}
