//! The Raft state machine of the metadata quorum (openraft's `RaftStateMachine`): folds committed
//! entries into the [`Image`] and publishes each new image on a watch channel.
//!
//! The image lives in memory; durability comes from the log plus snapshots. A snapshot is the
//! serialised image; it is kept in `snapshot` (a JSON line of Raft metadata: last included log id
//! and membership, then the image as JSON) and replaced atomically, fsynced, before openraft may purge the log it covers.
//! At start-up the state machine is the last snapshot; openraft re-applies the committed log
//! after it.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use tokio::sync::watch;

use super::durable::{Reserve, read_optional, replace_file};
use super::{NodeId, TypeConfig, VoterNode};
use crate::image::Image;

const SNAPSHOT_FILE: &str = "snapshot";

type Meta = SnapshotMeta<NodeId, VoterNode>;

/// The current snapshot: its metadata and the serialised image openraft streams to followers.
struct CurrentSnapshot {
    meta: Meta,
    data: Vec<u8>,
}

struct Inner {
    dir: PathBuf,
    reserve: Arc<Reserve>,
    image: Image,
    last_applied: Option<LogId<NodeId>>,
    last_membership: StoredMembership<NodeId, VoterNode>,
    snapshot: Option<CurrentSnapshot>,
    /// Makes snapshot ids unique within a process (ids only need to tell snapshots apart).
    snapshot_seq: u64,
}

/// The state machine; clones (the snapshot builder) share the same state.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
    image_tx: Arc<watch::Sender<Arc<Image>>>,
}

/// A panic happened while the state machine was locked: the image may be half-applied.
struct Poisoned;

impl From<Poisoned> for StorageError<NodeId> {
    fn from(_: Poisoned) -> Self {
        StorageIOError::read_state_machine(&io::Error::other("state machine lock poisoned")).into()
    }
}

impl StateMachine {
    /// Loads the last snapshot of `dir` (if any) and publishes its image on `image_tx`.
    pub fn open(
        dir: &Path,
        image_tx: Arc<watch::Sender<Arc<Image>>>,
        reserve: Arc<Reserve>,
    ) -> io::Result<StateMachine> {
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            reserve,
            image: Image::default(),
            last_applied: None,
            last_membership: StoredMembership::default(),
            snapshot: None,
            snapshot_seq: 0,
        };
        if let Some(data) = read_optional(dir, SNAPSHOT_FILE)? {
            let newline = data.iter().position(|b| *b == b'\n').ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "snapshot file without metadata line",
                )
            })?;
            let meta: Meta = serde_json::from_slice(&data[..newline])?;
            let image: Image = serde_json::from_slice(&data[newline + 1..])?;
            inner.install(meta, image)?;
        }
        image_tx.send_replace(Arc::new(inner.image.clone()));
        Ok(StateMachine {
            inner: Arc::new(Mutex::new(inner)),
            image_tx,
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, Poisoned> {
        self.inner.lock().map_err(|_| Poisoned)
    }
}

impl Inner {
    /// Makes `image` (at `meta`) the state and the current snapshot.
    fn install(&mut self, meta: Meta, mut image: Image) -> io::Result<()> {
        image.offset = meta.last_log_id.map_or(0, |id| id.index);
        let data = serde_json::to_vec(&image)?;
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        self.image = image;
        self.snapshot = Some(CurrentSnapshot { meta, data });
        Ok(())
    }

    /// Writes the current snapshot to `snapshot`, durably.
    fn persist_snapshot(&self) -> io::Result<()> {
        let Some(snapshot) = &self.snapshot else {
            return Ok(());
        };
        // Compact JSON has no raw newline, so the first one ends the metadata.
        let mut file = serde_json::to_vec(&snapshot.meta)?;
        file.push(b'\n');
        file.extend_from_slice(&snapshot.data);
        self.reserve
            .write(|| replace_file(&self.dir, SNAPSHOT_FILE, &file, true))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let mut inner = self.lock()?;
        inner.snapshot_seq += 1;
        let snapshot_id = match inner.last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, inner.snapshot_seq),
            None => format!("0-0-{}", inner.snapshot_seq),
        };
        let meta = Meta {
            last_log_id: inner.last_applied,
            last_membership: inner.last_membership.clone(),
            snapshot_id,
        };
        let data = serde_json::to_vec(&inner.image)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        inner.snapshot = Some(CurrentSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        });
        inner
            .persist_snapshot()
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, VoterNode>), StorageError<NodeId>>
    {
        let inner = self.lock()?;
        Ok((inner.last_applied, inner.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.lock()?;
        let mut replies = Vec::new();
        for entry in entries {
            let index = entry.log_id.index;
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => {
                    for record in &batch.records {
                        inner.image.apply(index, record);
                    }
                }
                EntryPayload::Membership(membership) => {
                    inner.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                }
            }
            // Blank and membership entries advance the offset too: it is the last applied index.
            inner.image.offset = index;
            inner.last_applied = Some(entry.log_id);
            replies.push(());
        }
        self.image_tx.send_replace(Arc::new(inner.image.clone()));
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let image: Image = serde_json::from_slice(snapshot.get_ref())
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let mut inner = self.lock()?;
        let installed = inner.install(meta.clone(), image);
        installed
            .and_then(|()| inner.persist_snapshot())
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.image_tx.send_replace(Arc::new(inner.image.clone()));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let inner = self.lock()?;
        Ok(inner.snapshot.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        }))
    }
}
