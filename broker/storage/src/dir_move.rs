//! Moving a replica to another log dir while it serves (Kafka's future replica, for
//! AlterReplicaLogDirs): the log is copied into `<topic>-<p>.<hex>-future` in the destination,
//! closed data first and then the appends that arrived meanwhile, round after round, until little
//! is left; the rest is copied under the log's lock and the same `PartitionLog` is re-pointed at
//! the new files, so its holders (replica manager, fetches) keep their `Arc` and no append is lost
//! or written twice. The caller runs [`LogManager::run_move`] on a blocking thread.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use crate::checkpoint::{LEADER_EPOCH_CHECKPOINT, sync_dir};
use crate::dir_failure::DirHealth;
use crate::log::{Location, PartitionLog};
use crate::segment::file_name;
use crate::{LogError, LogManager, TopicPartition};

/// Suffix of a future replica's directory (Kafka's `-future`).
pub(crate) const FUTURE_SUFFIX: &str = "-future";

/// Copy rounds end, and the swap copies the rest under the lock, once at most this much is
/// left: appends wait for it, so it stays a few milliseconds of disk time.
const CATCH_UP_BYTES: u64 = 1 << 20;
/// A log appended to faster than it can be copied is swapped after this many rounds anyway.
const MAX_ROUNDS: u32 = 50;
const COPY_CHUNK: usize = 1 << 20;

/// One replica move in progress; its progress is what DescribeLogDirs shows for the future
/// replica.
#[derive(Debug)]
pub struct DirMove {
    tp: TopicPartition,
    dest: usize,
    dest_root: PathBuf,
    future_dir: PathBuf,
    cancelled: AtomicBool,
    copied_bytes: AtomicU64,
    /// The log end offset the copy has reached.
    copied_end: AtomicI64,
}

impl DirMove {
    pub(crate) fn new(tp: &TopicPartition, dest: usize, dest_root: &Path, hex: &str) -> DirMove {
        let future_dir = dest_root.join(format!("{}.{hex}{FUTURE_SUFFIX}", tp.dir_name()));
        DirMove {
            tp: tp.clone(),
            dest,
            dest_root: dest_root.to_path_buf(),
            future_dir,
            cancelled: AtomicBool::new(false),
            copied_bytes: AtomicU64::new(0),
            copied_end: AtomicI64::new(0),
        }
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    pub(crate) fn dest(&self) -> usize {
        self.dest
    }

    /// The log dir the replica moves to.
    pub fn dest_root(&self) -> &Path {
        &self.dest_root
    }

    /// (bytes copied, log end offset reached).
    pub(crate) fn progress(&self) -> (u64, i64) {
        (
            self.copied_bytes.load(Ordering::Acquire),
            self.copied_end.load(Ordering::Acquire),
        )
    }

    /// Stops the copy at its next step (a newer move, a deleted partition, shutdown).
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
}

/// A segment's copy in the future dir.
struct Copied {
    file: File,
    len: u64,
    synced: bool,
}

/// How a move ended.
#[derive(Debug, PartialEq, Eq)]
pub enum MoveOutcome {
    /// The log now lives in the destination dir.
    Done,
    /// Cancelled (a newer move of the partition, deletion or shutdown); the copy was removed.
    Cancelled,
}

/// Where a failed step failed: the source dir and the destination dir fail separately.
enum Side {
    Source,
    Dest,
}

type Step<T> = Result<T, (Side, LogError)>;

fn dest<T>(r: io::Result<T>) -> Step<T> {
    r.map_err(|e| (Side::Dest, LogError::Io(e)))
}

impl LogManager {
    /// Starts moving `tp`'s log to log dir `dest` (AlterReplicaLogDirs). Returns the move to run
    /// with [`LogManager::run_move`], or None when the log is already there or already on its way
    /// there. A move to another dir in progress is cancelled, as Kafka replaces a future replica.
    pub fn start_move(
        &self,
        tp: &TopicPartition,
        dest: &Path,
    ) -> Result<Option<Arc<DirMove>>, LogError> {
        let Some(idx) = self.dir_index(dest) else {
            return Err(LogError::LogDirNotFound(dest.to_path_buf()));
        };
        if self.dir_health(idx).is_offline() {
            return Err(LogError::LogDirNotFound(dest.to_path_buf()));
        }
        let Some(current) = self.dir_index_of(tp) else {
            return Err(LogError::Deleted(tp.clone()));
        };
        let mut moves = self.moves.lock();
        if let Some(mv) = moves.get(tp) {
            if mv.dest == idx {
                return Ok(None);
            }
            mv.cancel();
            moves.remove(tp);
        }
        if current == idx {
            return Ok(None);
        }
        let mv = Arc::new(DirMove::new(
            tp,
            idx,
            &self.dir_path(idx),
            &crate::manager::unique_hex(),
        ));
        moves.insert(tp.clone(), Arc::clone(&mv));
        Ok(Some(mv))
    }

    /// Runs a move to its end on the calling (blocking) thread: copies, swaps, deletes the old
    /// copy. An I/O error takes the dir it happened in offline (source or destination) and
    /// leaves the log where it was.
    pub fn run_move(&self, mv: &Arc<DirMove>) -> Result<MoveOutcome, LogError> {
        let result = match self.get(&mv.tp) {
            Some(log) => self.copy_and_swap(&log, mv),
            None => Ok(MoveOutcome::Cancelled),
        };
        {
            let mut moves = self.moves.lock();
            if moves.get(&mv.tp).is_some_and(|m| Arc::ptr_eq(m, mv)) {
                moves.remove(&mv.tp);
            }
        }
        if !matches!(result, Ok(MoveOutcome::Done)) {
            match std::fs::remove_dir_all(&mv.future_dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    tracing::warn!(dir = %mv.future_dir.display(), "could not remove an unfinished replica copy: {e}");
                }
                _ => {}
            }
        }
        result
    }

    fn copy_and_swap(
        &self,
        log: &Arc<PartitionLog>,
        mv: &Arc<DirMove>,
    ) -> Result<MoveOutcome, LogError> {
        let dest_health = self.dir_health(mv.dest);
        let source = log.location();
        let outcome = copy_and_swap(log, mv, &dest_health);
        let old_dir = match outcome {
            Ok(Some(old)) => old,
            Ok(None) => return Ok(MoveOutcome::Cancelled),
            Err((side, e)) => {
                let health = match side {
                    Side::Source => &source.health,
                    Side::Dest => &dest_health,
                };
                return health.check(Err(e));
            }
        };
        self.set_dir_index(&mv.tp, mv.dest);
        let old_root = old_dir.parent().map(Path::to_path_buf).unwrap_or_default();
        let doomed = old_root.join(format!(
            "{}.{}-delete",
            mv.tp.dir_name(),
            crate::manager::unique_hex()
        ));
        let removed = std::fs::rename(&old_dir, &doomed)
            .and_then(|()| sync_dir(&old_root))
            .and_then(|()| std::fs::remove_dir_all(&doomed));
        if let Err(e) = removed {
            tracing::warn!(partition = %mv.tp, dir = %old_dir.display(), "moved replica, but could not delete the old copy: {e}");
            source.health.check::<()>(Err(LogError::Io(e))).ok();
        }
        tracing::info!(partition = %mv.tp, from = %old_root.display(), to = %mv.dest_root.display(), "moved replica to another log dir");
        Ok(MoveOutcome::Done)
    }
}

/// The copy rounds and the swap; returns the old directory, or None if cancelled.
fn copy_and_swap(
    log: &PartitionLog,
    mv: &DirMove,
    dest_health: &Arc<DirHealth>,
) -> Step<Option<PathBuf>> {
    // The cleaner replaces segment files; it waits until the move is done.
    let _no_cleaning = log.clean_lock.lock();
    match std::fs::remove_dir_all(&mv.future_dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err((Side::Dest, e.into())),
        _ => {}
    }
    dest(std::fs::create_dir(&mv.future_dir))?;
    let mut copied: BTreeMap<i64, Copied> = BTreeMap::new();
    let mut generation = None;
    let mut rounds = 0;
    loop {
        if mv.is_cancelled() {
            return Ok(None);
        }
        let (gen_now, segments, leo) = {
            let st = log.state.lock();
            if st.deleted {
                return Ok(None);
            }
            if log.is_offline() {
                return Err((Side::Source, LogError::LogDirOffline(log.dir())));
            }
            let segments: Vec<(i64, Arc<File>, u64)> = st
                .segments
                .values()
                .map(|s| (s.base_offset, Arc::clone(&s.file), s.size))
                .collect();
            (st.generation, segments, st.log_end_offset())
        };
        if generation != Some(gen_now) {
            // Data was removed (retention, truncation): start over from what is there now.
            for base in std::mem::take(&mut copied).into_keys() {
                let _ = std::fs::remove_file(mv.future_dir.join(file_name(base, "log")));
            }
            generation = Some(gen_now);
        }
        let pending: u64 = segments
            .iter()
            .map(|(base, _, size)| size.saturating_sub(copied.get(base).map_or(0, |c| c.len)))
            .sum();
        if pending <= CATCH_UP_BYTES || rounds >= MAX_ROUNDS {
            match swap(log, mv, dest_health, gen_now, &mut copied)? {
                Some(old) => return Ok(Some(old)),
                None => continue,
            }
        }
        for (base, file, size) in &segments {
            copy_segment(&mv.future_dir, *base, file, *size, &mut copied)?;
        }
        // Closed segments are final: make their copies durable outside the lock.
        for (base, _, _) in segments.iter().rev().skip(1) {
            if let Some(c) = copied.get_mut(base)
                && !c.synced
            {
                dest(c.file.sync_data())?;
                c.synced = true;
            }
        }
        mv.copied_end.store(leo, Ordering::Release);
        mv.copied_bytes
            .store(copied.values().map(|c| c.len).sum(), Ordering::Release);
        rounds += 1;
    }
}

/// Appends bytes `[copied, size)` of a segment to its copy.
fn copy_segment(
    future_dir: &Path,
    base: i64,
    src: &File,
    size: u64,
    copied: &mut BTreeMap<i64, Copied>,
) -> Step<()> {
    let c = match copied.entry(base) {
        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::btree_map::Entry::Vacant(e) => {
            let file = dest(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(future_dir.join(file_name(base, "log"))),
            )?;
            e.insert(Copied {
                file,
                len: 0,
                synced: false,
            })
        }
    };
    let mut buf = vec![0u8; COPY_CHUNK.min(size.saturating_sub(c.len) as usize)];
    while c.len < size {
        let n = ((size - c.len) as usize).min(buf.len());
        src.read_exact_at(&mut buf[..n], c.len)
            .map_err(|e| (Side::Source, LogError::Io(e)))?;
        dest(c.file.write_all_at(&buf[..n], c.len))?;
        c.len += n as u64;
        c.synced = false;
    }
    Ok(())
}

/// Under the log's lock: copies what is left, makes the copy durable, renames the future dir to
/// the partition's name in the destination and re-points the log there. None when data was
/// removed since the last round (copy again).
fn swap(
    log: &PartitionLog,
    mv: &DirMove,
    dest_health: &Arc<DirHealth>,
    generation: u64,
    copied: &mut BTreeMap<i64, Copied>,
) -> Step<Option<PathBuf>> {
    let mut st = log.state.lock();
    if st.deleted {
        return Err((Side::Source, LogError::Deleted(mv.tp.clone())));
    }
    if st.generation != generation {
        return Ok(None);
    }
    let old_dir = log.dir();
    for seg in st.segments.values() {
        copy_segment(&mv.future_dir, seg.base_offset, &seg.file, seg.size, copied)?;
    }
    for c in copied.values_mut().filter(|c| !c.synced) {
        dest(c.file.sync_data())?;
        c.synced = true;
    }
    // Everything else of the partition (epochs, producer snapshots, partition.metadata) is small.
    for entry in std::fs::read_dir(&old_dir).map_err(|e| (Side::Source, e.into()))? {
        let entry = entry.map_err(|e| (Side::Source, e.into()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let segment_file = [".log", ".index", ".timeindex", ".txnindex"]
            .iter()
            .any(|ext| name.ends_with(ext));
        if segment_file || !entry.path().is_file() {
            continue;
        }
        dest(std::fs::copy(entry.path(), mv.future_dir.join(name)))?;
    }
    let final_dir = mv.dest_root.join(mv.tp.dir_name());
    if final_dir.exists() {
        return Err((
            Side::Dest,
            LogError::Io(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists", final_dir.display()),
            )),
        ));
    }
    dest(sync_dir(&mv.future_dir))?;
    dest(std::fs::rename(&mv.future_dir, &final_dir))?;
    dest(sync_dir(&mv.dest_root))?;
    // From here on the log lives in the destination: re-point it (no step below may leave it
    // half-moved, so errors are logged and take the destination dir offline).
    for seg in st.segments.values_mut() {
        let Some(c) = copied.remove(&seg.base_offset) else {
            continue;
        };
        seg.relocate(&final_dir, c.file);
        if let Err(e) = seg.write_indexes(false) {
            dest_health.check::<()>(Err(LogError::Io(e))).ok();
        }
    }
    // Copies of segments that are gone would load as stray segments at the next start.
    for base in std::mem::take(copied).into_keys() {
        let _ = std::fs::remove_file(final_dir.join(file_name(base, "log")));
    }
    if let Err(e) = st.epochs.relocate(final_dir.join(LEADER_EPOCH_CHECKPOINT)) {
        dest_health.check::<()>(Err(e)).ok();
    }
    st.producers.relocate(&final_dir);
    st.generation += 1;
    mv.copied_end.store(st.log_end_offset(), Ordering::Release);
    log.set_location(Location {
        dir: final_dir,
        health: Arc::clone(dest_health),
    });
    Ok(Some(old_dir))
}
