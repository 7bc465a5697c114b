//! The log manager (Kafka's `LogManager`): owns the log dirs (locked against a second broker),
//! loads and recovers partitions, creates and deletes them, writes the dir-level checkpoints and
//! the clean-shutdown marker, and runs the flush, roll and retention policies when asked.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};

use crate::checkpoint::{
    CLEAN_SHUTDOWN_MARKER, CLEANER_CHECKPOINT, LEADER_EPOCH_CHECKPOINT, LOG_START_CHECKPOINT,
    RECOVERY_POINT_CHECKPOINT, REPLICATION_CHECKPOINT, read_offsets, sync_dir, write_offsets,
};
use crate::dir_failure::{DirHealth, is_dir_failure};
use crate::dir_move::{DirMove, FUTURE_SUFFIX};
use crate::epoch_cache::EpochCache;
use crate::log::{LogState, PartitionLog};
use crate::producer_state::ProducerStateManager;
use crate::recovery::{Checkpointed, load_partition};
use crate::segment::LogSegment;
use crate::{CleanStats, LogConfig, LogError, TopicPartition};

const LOCK_FILE: &str = ".lock";

struct LogDir {
    path: PathBuf,
    /// Holds the advisory lock for the manager's lifetime (None: the dir failed at start).
    _lock: Option<File>,
    health: Arc<DirHealth>,
}

struct Entry {
    dir: usize,
    log: Arc<PartitionLog>,
}

/// Owns the log dirs: loads/recovers partitions, creates and deletes them, checkpoints, retention.
/// The directory of the cluster metadata log (Kafka's `__cluster_metadata-0`), which shares the
/// first log dir but belongs to the metadata quorum, not to the log manager.
pub const METADATA_LOG_DIR: &str = "__cluster_metadata-0";

pub struct LogManager {
    dirs: Vec<LogDir>,
    logs: RwLock<BTreeMap<TopicPartition, Entry>>,
    recovered: bool,
    /// Serializes checkpoint writers (they replace the same files).
    checkpoint_lock: Mutex<()>,
    /// Whether a dir failed while opening: its partitions are unknown, so existing partitions
    /// must not be created afresh on the other dirs (see [`LogManager::dir_failed_at_open`]).
    failed_at_open: bool,
    /// Replica moves between log dirs in progress (AlterReplicaLogDirs), by partition.
    pub(crate) moves: Mutex<BTreeMap<TopicPartition, Arc<DirMove>>>,
}

/// One log dir as DescribeLogDirs reports it.
#[derive(Debug, Clone)]
pub struct LogDirDescription {
    pub path: PathBuf,
    pub offline: bool,
    pub replicas: Vec<ReplicaDescription>,
}

/// One replica (current or future) in a log dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaDescription {
    pub tp: TopicPartition,
    /// Bytes of its segment files (Kafka's `Log.size`).
    pub size: u64,
    /// 0 for a current replica; for a future one, the current log end minus the future's.
    pub offset_lag: i64,
    pub is_future: bool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn dir_error(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError::LogDir {
        path: path.to_path_buf(),
        source,
    }
}

/// A unique-enough hex suffix for `-delete` and `-future` directories.
pub(crate) fn unique_hex() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{nanos:016x}{:08x}{n:08x}", std::process::id())
}

fn read_checkpoint_or_warn(dir: &Path, name: &str) -> (BTreeMap<TopicPartition, i64>, bool) {
    match read_offsets(&dir.join(name)) {
        Ok(m) => (m, true),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "ignoring unreadable checkpoint: {e}");
            (BTreeMap::new(), false)
        }
    }
}

impl LogManager {
    /// Opens (creating if needed) and locks every log dir, then loads every partition in it,
    /// recovering unless the dir was shut down cleanly.
    pub fn open(
        dirs: &[PathBuf],
        config_for: &dyn Fn(&str) -> LogConfig,
    ) -> Result<LogManager, LogError> {
        if dirs.is_empty() {
            return Err(LogError::LogDir {
                path: PathBuf::new(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "no log dirs configured"),
            });
        }
        let now = now_ms();
        let mut opened = Vec::new();
        let mut logs = BTreeMap::new();
        let mut recovered_any = false;
        for (idx, path) in dirs.iter().enumerate() {
            match open_dir(idx, path, config_for, now, &mut logs) {
                Ok((dir, recovered)) => {
                    recovered_any |= recovered;
                    opened.push(dir);
                }
                // Another process holds the dir, or two dirs hold one partition: refuse to start,
                // as Kafka does; any other failure takes just this dir offline.
                Err(e) if !is_dir_failure(&e) || is_lock_busy(&e) => return Err(e),
                Err(e) => {
                    logs.retain(|_, entry: &mut Entry| entry.dir != idx);
                    let health = Arc::new(DirHealth::new(path, false));
                    health.fail(&e);
                    opened.push(LogDir {
                        path: path.clone(),
                        _lock: None,
                        health,
                    });
                }
            }
        }
        if opened.iter().all(|d| d.health.is_offline()) {
            return Err(LogError::LogDir {
                path: dirs[0].clone(),
                source: io::Error::other("every log dir is offline"),
            });
        }
        let failed_at_open = opened.iter().any(|d| d.health.is_offline());
        Ok(LogManager {
            dirs: opened,
            logs: RwLock::new(logs),
            recovered: recovered_any,
            checkpoint_lock: Mutex::new(()),
            failed_at_open,
            moves: Mutex::new(BTreeMap::new()),
        })
    }

    /// True if the last open() had to run a recovery scan.
    pub fn recovered_on_open(&self) -> bool {
        self.recovered
    }

    pub fn dirs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.path.clone()).collect()
    }

    /// Whether a log dir was offline from the start. Its partitions' logs may be there, so a
    /// partition that already existed must not get a fresh empty log on another dir (Kafka
    /// refuses to create a log that is not new while a dir is offline).
    pub fn dir_failed_at_open(&self) -> bool {
        self.failed_at_open
    }

    /// The log dirs that have failed (Kafka's offline log dirs).
    pub fn offline_dirs(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .filter(|d| d.health.is_offline())
            .map(|d| d.path.clone())
            .collect()
    }

    /// Takes a log dir offline as an I/O error on it would (for operators and tests); false if
    /// `path` is not one of the log dirs.
    pub fn fail_dir(&self, path: &Path, cause: &str) -> bool {
        match self.dir_index(path) {
            Some(i) => {
                self.dirs[i].health.fail(&cause);
                true
            }
            None => false,
        }
    }

    /// Position of `path` among the log dirs (compared as given and canonicalized).
    pub(crate) fn dir_index(&self, path: &Path) -> Option<usize> {
        let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let wanted = canonical(path);
        self.dirs
            .iter()
            .position(|d| d.path == path || canonical(&d.path) == wanted)
    }

    pub(crate) fn dir_health(&self, idx: usize) -> Arc<DirHealth> {
        Arc::clone(&self.dirs[idx].health)
    }

    pub(crate) fn dir_path(&self, idx: usize) -> PathBuf {
        self.dirs[idx].path.clone()
    }

    pub(crate) fn dir_index_of(&self, tp: &TopicPartition) -> Option<usize> {
        self.logs.read().get(tp).map(|e| e.dir)
    }

    pub(crate) fn set_dir_index(&self, tp: &TopicPartition, idx: usize) {
        if let Some(e) = self.logs.write().get_mut(tp) {
            e.dir = idx;
        }
    }

    /// The log dir holding `tp`'s current log.
    pub fn dir_of(&self, tp: &TopicPartition) -> Option<PathBuf> {
        let logs = self.logs.read();
        logs.get(tp).map(|e| self.dirs[e.dir].path.clone())
    }

    /// Every log dir with its replicas (current and future) and their sizes, as DescribeLogDirs
    /// reports them; an offline dir lists none.
    pub fn describe(&self) -> Vec<LogDirDescription> {
        let mut out: Vec<LogDirDescription> = self
            .dirs
            .iter()
            .map(|d| LogDirDescription {
                path: d.path.clone(),
                offline: d.health.is_offline(),
                replicas: Vec::new(),
            })
            .collect();
        let entries: Vec<(usize, Arc<PartitionLog>)> = self
            .logs
            .read()
            .values()
            .map(|e| (e.dir, Arc::clone(&e.log)))
            .collect();
        let moves: Vec<Arc<DirMove>> = self.moves.lock().values().cloned().collect();
        for (dir, log) in entries {
            if out[dir].offline {
                continue;
            }
            out[dir].replicas.push(ReplicaDescription {
                tp: log.topic_partition().clone(),
                size: log.size_bytes(),
                offset_lag: 0,
                is_future: false,
            });
        }
        for mv in moves {
            let Some(log) = self.get(mv.topic_partition()) else {
                continue;
            };
            if out[mv.dest()].offline {
                continue;
            }
            let (size, end) = mv.progress();
            out[mv.dest()].replicas.push(ReplicaDescription {
                tp: mv.topic_partition().clone(),
                size,
                offset_lag: (log.log_end_offset() - end).max(0),
                is_future: true,
            });
        }
        out
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<PartitionLog>> {
        self.logs.read().get(tp).map(|e| Arc::clone(&e.log))
    }

    pub fn all(&self) -> Vec<Arc<PartitionLog>> {
        self.logs
            .read()
            .values()
            .map(|e| Arc::clone(&e.log))
            .collect()
    }

    /// The logs of the online dirs.
    fn online(&self) -> Vec<Arc<PartitionLog>> {
        self.logs
            .read()
            .values()
            .filter(|e| !self.dirs[e.dir].health.is_offline())
            .map(|e| Arc::clone(&e.log))
            .collect()
    }

    /// Returns the partition's log, creating it on the dir with the fewest partitions.
    pub fn get_or_create(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
    ) -> Result<Arc<PartitionLog>, LogError> {
        if let Some(log) = self.get(tp) {
            return Ok(log);
        }
        let mut logs = self.logs.write();
        if let Some(e) = logs.get(tp) {
            return Ok(Arc::clone(&e.log));
        }
        if tp.partition < 0
            || tp.topic.is_empty()
            || tp.topic.contains(['/', '\0'])
            || tp.topic == "."
            || tp.topic == ".."
        {
            return Err(LogError::InvalidRecord(format!(
                "invalid partition name {tp}"
            )));
        }
        let mut counts = vec![0usize; self.dirs.len()];
        for e in logs.values() {
            counts[e.dir] += 1;
        }
        let Some(idx) = (0..self.dirs.len())
            .filter(|&i| !self.dirs[i].health.is_offline())
            .min_by_key(|&i| counts[i])
        else {
            return Err(LogError::LogDirOffline(self.dirs[0].path.clone()));
        };
        let root = &self.dirs[idx].path;
        let health = &self.dirs[idx].health;
        let pdir = root.join(tp.dir_name());
        match std::fs::create_dir(&pdir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(LogError::AlreadyExists(tp.clone()));
            }
            Err(e) => return health.check(Err(dir_error(root)(e))),
        }
        let segment = health.check(LogSegment::create(&pdir, 0).map_err(LogError::Io))?;
        health.check(
            sync_dir(&pdir)
                .and_then(|()| sync_dir(root))
                .map_err(LogError::Io),
        )?;
        let mut segments = BTreeMap::new();
        segments.insert(0, segment);
        let state = LogState {
            segments,
            log_start_offset: 0,
            high_watermark: 0,
            recovery_point: 0,
            epochs: EpochCache::load(pdir.join(LEADER_EPOCH_CHECKPOINT))?,
            topic_id: None,
            generation: 0,
            first_unflushed_ms: None,
            deleted: false,
            producers: ProducerStateManager::new(&pdir),
            cleaner_checkpoint: None,
            remote_log_start: None,
            highest_remote_offset: -1,
            remote_producer_state_pending: None,
        };
        let log = Arc::new(PartitionLog::from_state(
            tp.clone(),
            pdir,
            Arc::clone(health),
            config,
            state,
        ));
        logs.insert(
            tp.clone(),
            Entry {
                dir: idx,
                log: Arc::clone(&log),
            },
        );
        tracing::info!(partition = %tp, dir = %root.display(), "created log");
        Ok(log)
    }

    /// Deletes a partition: renames its dir to `<name>.<hex>-delete` (so a crash midway finishes
    /// the job at the next open), then removes it.
    pub fn delete(&self, tp: &TopicPartition) -> Result<(), LogError> {
        let Some(entry) = self.logs.write().remove(tp) else {
            return Ok(());
        };
        entry.log.mark_deleted();
        if let Some(mv) = self.moves.lock().remove(tp) {
            mv.cancel();
        }
        let root = &self.dirs[entry.dir].path;
        if self.dirs[entry.dir].health.is_offline() {
            // Its files are out of reach; the dir is replaced as a whole (see docs/operations.md).
            tracing::info!(partition = %tp, "deleted log of an offline log dir");
            return Ok(());
        }
        let from = entry.log.dir();
        let to = root.join(format!("{}.{}-delete", tp.dir_name(), unique_hex()));
        std::fs::rename(&from, &to)?;
        sync_dir(root)?;
        std::fs::remove_dir_all(&to)?;
        tracing::info!(partition = %tp, "deleted log");
        Ok(())
    }

    /// Writes the three dir-level checkpoint files of every dir.
    pub fn checkpoint(&self) -> Result<(), LogError> {
        let _guard = self.checkpoint_lock.lock();
        let mut per_dir: Vec<[BTreeMap<TopicPartition, i64>; 3]> =
            (0..self.dirs.len()).map(|_| Default::default()).collect();
        for (tp, e) in self.logs.read().iter() {
            let st = e.log.state.lock();
            let maps = &mut per_dir[e.dir];
            maps[0].insert(tp.clone(), st.recovery_point);
            maps[1].insert(tp.clone(), st.high_watermark);
            maps[2].insert(tp.clone(), st.log_start_offset);
        }
        for (dir, maps) in self.dirs.iter().zip(&per_dir) {
            if dir.health.is_offline() {
                continue;
            }
            for (name, map) in [
                RECOVERY_POINT_CHECKPOINT,
                REPLICATION_CHECKPOINT,
                LOG_START_CHECKPOINT,
            ]
            .into_iter()
            .zip(maps)
            {
                if let Err(e) = write_offsets(&dir.path.join(name), map) {
                    // A checkpoint that cannot be written fails its dir, not the others.
                    let e = dir_error(&dir.path)(e);
                    if !is_dir_failure(&e) {
                        return Err(e);
                    }
                    dir.health.fail(&e);
                    break;
                }
            }
        }
        Ok(())
    }

    /// flush.ms policy, plus flushing segments rolled since the last flush.
    pub fn flush_due(&self, now_ms: i64) -> Result<(), LogError> {
        for log in self.online() {
            absorb_dir_failure(log.flush_if_due(now_ms))?;
        }
        Ok(())
    }

    /// segment.ms for partitions that receive no appends.
    pub fn roll_due(&self, now_ms: i64) -> Result<(), LogError> {
        for log in self.online() {
            match absorb_dir_failure(log.roll_if_due(now_ms)) {
                Err(LogError::Deleted(_)) | Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Deletes closed segments beyond retention.ms / retention.bytes. Returns segments deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        let mut deleted = 0;
        for log in self.online() {
            deleted += absorb_dir_failure(log.guard(log.enforce_retention(now_ms)))?.unwrap_or(0);
        }
        Ok(deleted)
    }

    /// Compacts every log with cleanup.policy=compact that is due (Kafka's log cleaner thread),
    /// then records progress in each dir's `cleaner-offset-checkpoint`. A log that fails to clean
    /// is skipped with a warning, as Kafka marks it uncleanable; the others still run.
    pub fn clean(&self, now_ms: i64) -> Result<CleanStats, LogError> {
        let mut total = CleanStats::default();
        for log in self.online() {
            if !log.config().cleanup_compact {
                continue;
            }
            match log.guard(log.clean(now_ms)) {
                Ok(stats) => total.add(&stats),
                Err(LogError::Deleted(_)) => {}
                Err(e) => {
                    tracing::warn!(partition = %log.topic_partition(), "log cleaning failed: {e}");
                }
            }
        }
        if total.logs_cleaned > 0 {
            self.write_cleaner_checkpoints()?;
        }
        Ok(total)
    }

    fn write_cleaner_checkpoints(&self) -> Result<(), LogError> {
        let _guard = self.checkpoint_lock.lock();
        let mut per_dir: Vec<BTreeMap<TopicPartition, i64>> =
            vec![BTreeMap::new(); self.dirs.len()];
        for (tp, e) in self.logs.read().iter() {
            if let Some(cp) = e.log.cleaner_checkpoint() {
                per_dir[e.dir].insert(tp.clone(), cp);
            }
        }
        for (dir, map) in self.dirs.iter().zip(&per_dir) {
            if dir.health.is_offline() {
                continue;
            }
            let written = write_offsets(&dir.path.join(CLEANER_CHECKPOINT), map)
                .map_err(dir_error(&dir.path));
            absorb_dir_failure(dir.health.check(written))?;
        }
        Ok(())
    }

    /// Drops idempotent producer state silent for producer.id.expiration.ms (Kafka runs this every
    /// producer.id.expiration.check.interval.ms). Returns the number of producers dropped.
    pub fn expire_producers(&self, now_ms: i64) -> usize {
        self.all()
            .iter()
            .map(|log| log.expire_producers(now_ms))
            .sum()
    }

    /// Flushes everything, writes checkpoints and the clean-shutdown marker (online dirs only:
    /// an offline dir gets no marker, so it is recovered if it comes back).
    pub fn shutdown(&self) -> Result<(), LogError> {
        for mv in std::mem::take(&mut *self.moves.lock()).into_values() {
            mv.cancel();
        }
        close_all(&self.online())?;
        self.checkpoint()?;
        self.write_cleaner_checkpoints()?;
        for dir in self.dirs.iter().filter(|d| !d.health.is_offline()) {
            let marker = dir.path.join(CLEAN_SHUTDOWN_MARKER);
            File::create(&marker)
                .and_then(|f| f.sync_all())
                .and_then(|()| sync_dir(&dir.path))
                .map_err(dir_error(&dir.path))?;
        }
        tracing::info!("log manager shut down cleanly");
        Ok(())
    }
}

/// Threads closing logs at shutdown. Closing is a few fsyncs per partition; done one at a time
/// they add up to tens of seconds for thousands of partitions (a SIGTERM must end well inside a
/// pod's grace period), while in flight together the disk and journal batch them.
const CLOSE_THREADS: usize = 8;

/// Closes every log, [`CLOSE_THREADS`] at a time; the first error is returned once all are done.
fn close_all(logs: &[Arc<PartitionLog>]) -> Result<(), LogError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let first_error: Mutex<Option<LogError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..CLOSE_THREADS.min(logs.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(log) = logs.get(i) else { return };
                    if let Err(e) = log.close() {
                        first_error.lock().get_or_insert(e);
                    }
                }
            });
        }
    });
    match first_error.into_inner() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Turns an error that took a dir offline into "nothing done": the dir's failure is recorded in
/// its health and the periodic jobs go on with the other dirs.
fn absorb_dir_failure<T>(result: Result<T, LogError>) -> Result<Option<T>, LogError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_dir_failure(&e) || matches!(e, LogError::LogDirOffline(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_lock_busy(e: &LogError) -> bool {
    matches!(e, LogError::LogDir { source, .. } if source.kind() == io::ErrorKind::ResourceBusy)
}

/// Opens, locks and loads one log dir (see [`LogManager::open`]); returns it and whether it ran
/// recovery.
fn open_dir(
    idx: usize,
    path: &Path,
    config_for: &dyn Fn(&str) -> LogConfig,
    now: i64,
    logs: &mut BTreeMap<TopicPartition, Entry>,
) -> Result<(LogDir, bool), LogError> {
    let health = Arc::new(DirHealth::new(path, false));
    let err = dir_error(path);
    std::fs::create_dir_all(path).map_err(dir_error(path))?;
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path.join(LOCK_FILE))
        .map_err(dir_error(path))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "log dir is locked by another process",
            )));
        }
        Err(TryLockError::Error(e)) => return Err(err(e)),
    }
    let marker = path.join(CLEAN_SHUTDOWN_MARKER);
    let mut clean = marker.exists();
    let (recovery_points, ok1) = read_checkpoint_or_warn(path, RECOVERY_POINT_CHECKPOINT);
    let (high_watermarks, _) = read_checkpoint_or_warn(path, REPLICATION_CHECKPOINT);
    let (log_starts, _) = read_checkpoint_or_warn(path, LOG_START_CHECKPOINT);
    let (cleaner_offsets, _) = read_checkpoint_or_warn(path, CLEANER_CHECKPOINT);
    clean &= ok1;

    let mut partitions = Vec::new();
    for entry in std::fs::read_dir(path).map_err(dir_error(path))? {
        let entry = entry.map_err(dir_error(path))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_dir = entry.file_type().map_err(dir_error(path))?.is_dir();
        if is_dir && name.ends_with("-delete") {
            tracing::info!(dir = %path.display(), name, "removing leftover deleted partition");
            std::fs::remove_dir_all(entry.path()).map_err(dir_error(path))?;
        } else if is_dir && name.ends_with(FUTURE_SUFFIX) {
            // A move between log dirs that a restart interrupted: the current replica is
            // complete where it was, so the partial copy goes (Kafka would resume it).
            tracing::warn!(dir = %path.display(), name,
                    "removing an unfinished replica move; request it again to move the replica");
            std::fs::remove_dir_all(entry.path()).map_err(dir_error(path))?;
        } else if !is_dir && name.ends_with(".tmp") {
            std::fs::remove_file(entry.path()).map_err(dir_error(path))?;
        } else if is_dir && name == METADATA_LOG_DIR {
            // The Raft metadata log lives here (Kafka's layout) but is not a partition
            // log: the metadata quorum owns it.
            continue;
        } else if is_dir {
            match TopicPartition::from_dir_name(name) {
                Some(tp) => partitions.push((tp, entry.path())),
                None => {
                    tracing::warn!(dir = %path.display(), name, "ignoring unknown directory")
                }
            }
        }
    }
    let mut dir_recovered = 0usize;
    for (tp, pdir) in partitions {
        if logs.contains_key(&tp) {
            return Err(LogError::AlreadyExists(tp));
        }
        let config = config_for(&tp.topic);
        let checkpointed = Checkpointed {
            recovery_point: recovery_points.get(&tp).copied(),
            high_watermark: high_watermarks.get(&tp).copied(),
            log_start_offset: log_starts.get(&tp).copied(),
            cleaner_checkpoint: cleaner_offsets.get(&tp).copied(),
        };
        let loaded = load_partition(&pdir, &tp, &config, checkpointed, clean, now)?;
        if loaded.recovered {
            dir_recovered += 1;
        }
        let log =
            PartitionLog::from_state(tp.clone(), pdir, Arc::clone(&health), config, loaded.state);
        logs.insert(
            tp,
            Entry {
                dir: idx,
                log: Arc::new(log),
            },
        );
    }
    let count = logs.values().filter(|e| e.dir == idx).count();
    if clean {
        tracing::info!(dir = %path.display(), partitions = count,
                "log dir was shut down cleanly; skipped recovery");
    } else if count == 0 {
        // A new (or emptied) dir has no clean-shutdown marker but nothing to recover:
        // saying "recovery" there alarms for nothing.
        tracing::info!(dir = %path.display(), "log dir holds no partition logs yet");
    } else {
        tracing::info!(dir = %path.display(), partitions = count, recovered = dir_recovered,
                "log dir was not shut down cleanly; ran recovery");
    }
    match std::fs::remove_file(&marker) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(err(e)),
        _ => sync_dir(path).map_err(dir_error(path))?,
    }
    Ok((
        LogDir {
            path: path.to_path_buf(),
            _lock: Some(lock),
            health,
        },
        dir_recovered > 0 || (!clean && count > 0),
    ))
}
