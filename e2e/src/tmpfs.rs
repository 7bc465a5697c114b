//! A tmpfs mounted for one test: a small disk that fills up (ENOSPC) or that can be pulled out
//! from under a running broker (`umount -l`), unmounted when the test ends however it ends.
//! Mounting needs root (or CAP_SYS_ADMIN); tests skip with the reason when it is refused.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Mount {
    dir: PathBuf,
}

impl Mount {
    /// Mounts a tmpfs of `size` (`mount -o size=`, e.g. `"2m"`) on `dir`; `Err` with the
    /// reason when not permitted.
    pub fn tmpfs(dir: &Path, size: &str) -> Result<Mount, String> {
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if output.status.success() {
            Ok(Mount {
                dir: dir.to_path_buf(),
            })
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
        }
    }

    /// The disk goes away: a lazy unmount detaches it under the broker's open files.
    pub fn pull(&self) -> Result<(), String> {
        let status = Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status()
            .map_err(|e| format!("cannot run umount: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("umount -l {} failed: {status}", self.dir.display()))
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
