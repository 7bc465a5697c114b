//! Small durable-file helpers for the quorum's on-disk state: whole-file replacement that
//! survives a crash at any point (write a temporary file, fsync it, rename it over the old one,
//! fsync the directory), and the [`Reserve`] of disk space that keeps the metadata log writable
//! on a full disk.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bytes the [`Reserve`] holds back: room for thousands of metadata entries, a snapshot of a
/// small cluster, or a rewrite of the log after a purge.
pub const RESERVE_BYTES: usize = 256 * 1024;
/// The ballast file's name in the metadata log directory.
const RESERVE_FILE: &str = "space-reserve";
/// How often a given-up reserve is taken back at most (each try writes it whole).
const RESTORE_EVERY: Duration = Duration::from_secs(5);

/// Disk space held back for the metadata log: a ballast file in its directory, given up the
/// moment a metadata write finds the disk full, so that the quorum can still commit — among
/// others the topic deletions that free the disk — where partition logs already answer
/// KAFKA_STORAGE_ERROR. openraft stops a node for good on any storage error, so without it a
/// full disk would take the metadata quorum down with it. Taken back (best effort) once there is
/// room again.
#[derive(Debug)]
pub struct Reserve {
    path: PathBuf,
    size: usize,
    /// When it was given up (or last failed to be taken back); `None` while held.
    released: Mutex<Option<Instant>>,
}

impl Reserve {
    /// Holds `size` bytes in `dir` (already there from an earlier run, or written now); on a disk
    /// already full it starts given up.
    pub fn open(dir: &Path, size: usize) -> Reserve {
        let reserve = Reserve {
            path: dir.join(RESERVE_FILE),
            size,
            released: Mutex::new(None),
        };
        let held = fs::metadata(&reserve.path).is_ok_and(|m| m.len() == size as u64);
        if !held && !reserve.take_back() {
            *reserve.state() = Some(Instant::now());
        }
        reserve
    }

    /// Runs `write`; when it fails because the disk is full and the reserve is still held, gives
    /// the reserve up and runs `write` once more. `write` must leave nothing half-written behind
    /// when it fails.
    pub fn write<T>(&self, mut write: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        self.maybe_take_back();
        match write() {
            Err(e) if is_disk_full(&e) && self.give_up() => {
                tracing::error!(
                    file = %self.path.display(),
                    "disk full: releasing the metadata log's space reserve; free disk space                      (delete topics or records, lower retention) before it runs out too"
                );
                write()
            }
            other => other,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // The state is one timestamp: a panic elsewhere cannot leave it inconsistent.
        self.released.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Deletes the ballast; whether it was held.
    fn give_up(&self) -> bool {
        let mut state = self.state();
        if state.is_some() {
            return false;
        }
        *state = Some(Instant::now());
        let _ = fs::remove_file(&self.path);
        true
    }

    fn maybe_take_back(&self) {
        let due = self
            .state()
            .is_some_and(|since| since.elapsed() >= RESTORE_EVERY);
        if due {
            let held = self.take_back();
            *self.state() = if held { None } else { Some(Instant::now()) };
            if held {
                tracing::info!(file = %self.path.display(), "metadata log space reserve restored");
            }
        }
    }

    /// Writes the ballast whole (real blocks, not a sparse file); whether it now exists.
    fn take_back(&self) -> bool {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let written = replace_file(dir, RESERVE_FILE, &vec![0u8; self.size], false);
        written.is_ok()
    }
}

/// Whether `e` says the disk (or the quota) is full.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// Replaces `dir/name` with `data`. With `sync`, the new content is on disk when this returns;
/// without, a crash may leave the old content (never a mix of both).
pub fn replace_file(dir: &Path, name: &str, data: &[u8], sync: bool) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let written = write_then_rename(dir, name, &tmp, data, sync);
    if written.is_err() {
        // A partial temporary file would hold on to the space a retry needs.
        let _ = fs::remove_file(&tmp);
    }
    written
}

fn write_then_rename(
    dir: &Path,
    name: &str,
    tmp: &Path,
    data: &[u8],
    sync: bool,
) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)?;
    file.write_all(data)?;
    if sync {
        file.sync_all()?;
    }
    drop(file);
    fs::rename(tmp, dir.join(name))?;
    if sync {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Makes renames and creations inside `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads `dir/name`, `None` when it does not exist.
pub fn read_optional(dir: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    match fs::read(dir.join(name)) {
        Ok(data) => Ok(Some(data)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A small reserve for tests of the stores.
#[cfg(test)]
pub fn test_reserve(dir: &Path) -> std::sync::Arc<Reserve> {
    std::sync::Arc::new(Reserve::open(dir, 4096))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_releases_the_reserve_once_and_the_write_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        let reserve = Reserve::open(dir.path(), 4096);
        assert_eq!(
            fs::metadata(dir.path().join(RESERVE_FILE)).unwrap().len(),
            4096
        );
        let mut calls = 0;
        let result = reserve.write(|| {
            calls += 1;
            if calls == 1 {
                Err(io::Error::from(io::ErrorKind::StorageFull))
            } else {
                Ok(calls)
            }
        });
        assert_eq!(result.unwrap(), 2);
        assert!(!dir.path().join(RESERVE_FILE).exists());
        // Given up already: a second full disk is the caller's error.
        let again: io::Result<()> = reserve.write(|| Err(io::ErrorKind::StorageFull.into()));
        assert!(again.is_err_and(|e| is_disk_full(&e)));
        // Other errors are never retried.
        let mut other = 0;
        let _ = reserve.write(|| -> io::Result<()> {
            other += 1;
            Err(io::ErrorKind::PermissionDenied.into())
        });
        assert_eq!(other, 1);
    }

    #[test]
    fn a_failed_replacement_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should go makes the rename fail after the write.
        fs::create_dir(dir.path().join("target")).unwrap();
        fs::write(dir.path().join("target").join("x"), b"x").unwrap();
        assert!(replace_file(dir.path(), "target", b"data", true).is_err());
        assert!(!dir.path().join("target.tmp").exists());
    }
}
