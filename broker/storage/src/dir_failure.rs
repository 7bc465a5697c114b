//! Log dir failure (Kafka's `LogDirFailureChannel`): the health of one log dir, shared by every
//! partition log in it. An I/O error on a partition's files marks the whole dir offline; from then
//! on its logs refuse every operation with [`LogError::LogDirOffline`], while the other dirs keep
//! working. The server polls the offline set to report it (metrics, controller, DescribeLogDirs).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::LogError;

/// Whether one log dir is still usable.
#[derive(Debug)]
pub struct DirHealth {
    path: PathBuf,
    offline: AtomicBool,
}

impl DirHealth {
    pub(crate) fn new(path: &Path, offline: bool) -> DirHealth {
        DirHealth {
            path: path.to_path_buf(),
            offline: AtomicBool::new(offline),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }

    /// Marks the dir offline; logs the cause the first time.
    pub(crate) fn fail(&self, cause: &dyn std::fmt::Display) {
        if !self.offline.swap(true, Ordering::AcqRel) {
            tracing::error!(dir = %self.path.display(), "log dir failed, taking it offline: {cause}");
        }
    }

    /// The error an operation on a log in this dir gets once it is offline.
    pub(crate) fn offline_error(&self) -> LogError {
        LogError::LogDirOffline(self.path.clone())
    }

    /// Passes `result` through, marking the dir offline if it failed with an I/O error that
    /// means the disk is gone ([`is_dir_failure`]).
    pub(crate) fn check<T>(&self, result: Result<T, LogError>) -> Result<T, LogError> {
        if let Err(e) = &result
            && is_dir_failure(e)
        {
            self.fail(e);
        }
        result
    }
}

/// Whether `e` takes its log dir offline: an I/O error, except a full disk or quota (a full disk
/// stays online and refuses appends until space is freed; Kafka takes it offline, see
/// docs/operations.md).
pub(crate) fn is_dir_failure(e: &LogError) -> bool {
    let io = match e {
        LogError::Io(io) => io,
        LogError::LogDir { source, .. } => source,
        _ => return false,
    };
    !is_disk_full(io)
}

fn is_disk_full(e: &std::io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || matches!(e.raw_os_error(), Some(ENOSPC | EDQUOT))
}
