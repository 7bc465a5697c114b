//! The durable Raft log of the metadata quorum (openraft's `RaftLogStorage`).
//!
//! On disk, in the quorum directory:
//! - `raft-log`: frames of `[len u32 LE][crc32c u32 LE][JSON]`, a header frame (the last purged
//!   log id) then one frame per entry. Appends are fsynced before openraft is told they are
//!   flushed; a torn tail (a crash mid-append, never acknowledged) is cut off at start-up. Purge
//!   and truncation rewrite the file through a temporary file and a rename, which keeps the
//!   header and the entries consistent at every instant. The metadata log is small and
//!   compacted by snapshots, so the rewrite costs little.
//! - `vote.json`: the vote, fsynced (Raft's safety depends on it).
//! - `committed.json`: the last committed log id, written atomically but not fsynced: it only
//!   lets a restart re-apply committed entries before a leader confirms them, so losing the
//!   latest value costs nothing.
//!
//! The whole log is also kept in memory (it is bounded by the snapshot policy). File I/O is
//! synchronous: entries are small and fsync latency is what Raft must wait for anyway.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, StorageError, StorageIOError, Vote};
use serde::{Deserialize, Serialize};

use super::durable::{Reserve, read_optional, replace_file, sync_dir};
use super::{NodeId, TypeConfig};

const LOG_FILE: &str = "raft-log";
const VOTE_FILE: &str = "vote.json";
const COMMITTED_FILE: &str = "committed.json";
/// Bytes before each frame's JSON: length and CRC-32C.
const FRAME_HEADER: usize = 8;

#[derive(Serialize, Deserialize)]
enum Frame {
    Header { last_purged: Option<LogId<NodeId>> },
    Entry(Entry<TypeConfig>),
}

struct Inner {
    dir: PathBuf,
    /// Every write here goes through it: a full disk must not stop the quorum.
    reserve: Arc<Reserve>,
    /// Append handle on `raft-log`.
    file: File,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

/// The log store; clones share the same log (openraft reads through a clone).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

/// A panic happened while the log was locked: its memory may disagree with the disk.
struct Poisoned;

impl From<Poisoned> for StorageError<NodeId> {
    fn from(_: Poisoned) -> Self {
        StorageIOError::read_logs(&io::Error::other("metadata log lock poisoned")).into()
    }
}

fn encode_frame(buf: &mut Vec<u8>, frame: &Frame) -> io::Result<()> {
    let json = serde_json::to_vec(frame)?;
    let len = u32::try_from(json.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "log entry over 4 GiB"))?;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc32c::crc32c(&json).to_le_bytes());
    buf.extend_from_slice(&json);
    Ok(())
}

/// Decodes the frames of `data`; returns them with the length of the valid prefix (shorter than
/// `data` when the tail is torn).
fn decode_frames(data: &[u8]) -> io::Result<(Vec<Frame>, usize)> {
    let mut frames = Vec::new();
    let mut pos = 0;
    while let Some(header) = data.get(pos..pos + FRAME_HEADER) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let Some(json) = data.get(pos + FRAME_HEADER..pos + FRAME_HEADER + len) else {
            break;
        };
        if crc32c::crc32c(json) != crc {
            break;
        }
        // A frame with a valid CRC that does not decode is not a torn write: refuse to start
        // rather than silently drop committed metadata.
        frames.push(serde_json::from_slice(json).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("metadata log frame at byte {pos}: {e}"),
            )
        })?);
        pos += FRAME_HEADER + len;
    }
    Ok((frames, pos))
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, cutting off a torn tail.
    pub fn open(dir: &Path, reserve: Arc<Reserve>) -> io::Result<LogStore> {
        let path = dir.join(LOG_FILE);
        let data = read_optional(dir, LOG_FILE)?.unwrap_or_default();
        let (frames, valid) = decode_frames(&data)?;
        if valid < data.len() {
            tracing::warn!(
                path = %path.display(),
                valid,
                len = data.len(),
                "cutting off the torn tail of the metadata log"
            );
            let file = OpenOptions::new().write(true).open(&path)?;
            file.set_len(valid as u64)?;
            file.sync_all()?;
        }
        let mut entries = BTreeMap::new();
        let mut last_purged = None;
        for frame in frames {
            match frame {
                Frame::Header { last_purged: p } => last_purged = p,
                Frame::Entry(entry) => {
                    entries.insert(entry.log_id.index, entry);
                }
            }
        }
        let file = open_append(&path)?;
        sync_dir(dir)?;
        let vote = match read_optional(dir, VOTE_FILE)? {
            Some(data) => Some(serde_json::from_slice(&data)?),
            None => None,
        };
        // A damaged committed marker only costs the early re-apply; see the module doc.
        let committed = read_optional(dir, COMMITTED_FILE)?
            .and_then(|data| serde_json::from_slice(&data).ok())
            .flatten();
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                reserve,
                file,
                entries,
                last_purged,
                vote,
                committed,
            })),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, Poisoned> {
        self.inner.lock().map_err(|_| Poisoned)
    }
}

impl Inner {
    /// Rewrites `raft-log` from memory: header then every entry, atomically.
    fn rewrite(&mut self) -> io::Result<()> {
        let mut buf = Vec::new();
        encode_frame(
            &mut buf,
            &Frame::Header {
                last_purged: self.last_purged,
            },
        )?;
        for entry in self.entries.values() {
            encode_frame(&mut buf, &Frame::Entry(entry.clone()))?;
        }
        self.reserve
            .write(|| replace_file(&self.dir, LOG_FILE, &buf, true))?;
        self.file = open_append(&self.dir.join(LOG_FILE))?;
        Ok(())
    }

    fn append(&mut self, entries: Vec<Entry<TypeConfig>>) -> io::Result<()> {
        let mut buf = Vec::new();
        for entry in &entries {
            encode_frame(&mut buf, &Frame::Entry(entry.clone()))?;
        }
        let file = &mut self.file;
        self.reserve.write(|| {
            let len = file.metadata()?.len();
            let written = file.write_all(&buf).and_then(|()| file.sync_data());
            if written.is_err() {
                // No torn frame may stay for the retry (or the next append) to follow.
                let _ = file.set_len(len);
            }
            written
        })?;
        for entry in entries {
            self.entries.insert(entry.log_id.index, entry);
        }
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let inner = self.lock()?;
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.lock()?;
        let last = inner.entries.values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last.or(inner.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.lock()?;
        let data = serde_json::to_vec(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        inner
            .reserve
            .write(|| replace_file(&inner.dir, VOTE_FILE, &data, true))
            .map_err(|e| StorageIOError::write_vote(&e))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock()?.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.lock()?;
        let data = serde_json::to_vec(&committed).map_err(|e| StorageIOError::write(&e))?;
        inner
            .reserve
            .write(|| replace_file(&inner.dir, COMMITTED_FILE, &data, false))
            .map_err(|e| StorageIOError::write(&e))?;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock()?.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.lock()?;
        let result = inner.append(entries.into_iter().collect());
        let error = result
            .as_ref()
            .err()
            .map(|e| io::Error::new(e.kind(), e.to_string()));
        callback.log_io_completed(result);
        match error {
            Some(e) => Err(StorageIOError::write_logs(&e).into()),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.lock()?;
        inner.entries.split_off(&log_id.index);
        inner
            .rewrite()
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.lock()?;
        let kept = inner.entries.split_off(&(log_id.index + 1));
        inner.entries = kept;
        inner.last_purged = Some(log_id);
        inner
            .rewrite()
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::quorum::MetadataBatch;
    use crate::quorum::durable::test_reserve;

    fn entry(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Normal(MetadataBatch { records: vec![] }),
        }
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_earlier_frames_kept() -> io::Result<()> {
        let mut buf = Vec::new();
        encode_frame(&mut buf, &Frame::Header { last_purged: None })?;
        encode_frame(&mut buf, &Frame::Entry(entry(1)))?;
        let whole = buf.len();
        encode_frame(&mut buf, &Frame::Entry(entry(2)))?;
        // A crash in the middle of the second append.
        let torn = &buf[..buf.len() - 3];
        let (frames, valid) = decode_frames(torn)?;
        assert_eq!(frames.len(), 2);
        assert_eq!(valid, whole);
        // A flipped byte in the last frame's JSON fails its CRC and is cut off too.
        let mut flipped = buf.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 0x55;
        let (frames, valid) = decode_frames(&flipped)?;
        assert_eq!((frames.len(), valid), (2, whole));
        Ok(())
    }

    #[test]
    fn reopening_recovers_the_log_after_a_torn_append() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut buf = Vec::new();
        encode_frame(&mut buf, &Frame::Header { last_purged: None })?;
        for i in 1..=3 {
            encode_frame(&mut buf, &Frame::Entry(entry(i)))?;
        }
        buf.extend_from_slice(&[7, 0, 0]);
        std::fs::write(dir.path().join(LOG_FILE), &buf)?;
        let store = LogStore::open(dir.path(), test_reserve(dir.path()))?;
        let indexes: Vec<u64> = store
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?
            .entries
            .keys()
            .copied()
            .collect();
        assert_eq!(indexes, vec![1, 2, 3]);
        // The torn bytes are gone from disk, so the next append starts on a frame boundary.
        assert_eq!(
            std::fs::metadata(dir.path().join(LOG_FILE))?.len(),
            buf.len() as u64 - 3
        );
        Ok(())
    }
}
