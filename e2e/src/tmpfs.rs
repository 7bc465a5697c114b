//! A tmpfs mounted for one test: a small disk that fills up (ENOSPC) or that can be pulled out
//! from under a running broker (`umount -l`), unmounted when the test ends however it ends.
//! It can also be filled to the last byte and freed again. Mounting needs root (or
//! CAP_SYS_ADMIN); tests skip with the reason when it is refused.

use std::path::{Path, PathBuf};
use std::process::Command;

const ENOSPC: i32 = 28;

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

    /// The disk fills up: writes a file of zeros named `name` in the mount until the file system
    /// refuses more (ENOSPC); removing that file frees the space again. Returns its path.
    pub fn fill(&self, name: &str) -> Result<PathBuf, String> {
        use std::io::Write;
        let path = self.dir.join(name);
        let mut file =
            std::fs::File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) => return Ok(path),
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(ENOSPC) => return Ok(path),
                Err(e) => return Err(format!("write {}: {e}", path.display())),
            }
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
        // Quietly: after `pull` it is no longer mounted.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .stderr(std::process::Stdio::null())
            .status();
    }
}
