//! A real S3-compatible object store for tests: an `s3s-fs` process (installed by
//! `e2e/setup.sh`) serving a temporary directory on a loopback port, where each sub-directory is
//! a bucket. It can be stopped and started again on the same port (an outage), and is killed by
//! PID when dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::error::{HarnessError, Result};
use crate::wait::wait_until;

pub const ACCESS_KEY: &str = "strait-test-access";
pub const SECRET_KEY: &str = "strait-test-secret";

/// Where `s3s-fs` is: on PATH, or where `cargo install` puts it.
pub fn s3s_fs_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("s3s-fs"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
        Some(home.join("bin").join("s3s-fs")).filter(|p| p.is_file())
    })
}

pub struct S3Server {
    child: Option<Child>,
    binary: PathBuf,
    root: PathBuf,
    port: u16,
}

impl S3Server {
    /// Starts s3s-fs over `root` with a bucket named `bucket`, and waits until it accepts
    /// connections.
    pub fn start(root: &Path, bucket: &str) -> Result<S3Server> {
        let binary = s3s_fs_binary().ok_or_else(|| {
            HarnessError::Unexpected("s3s-fs not installed (run e2e/setup.sh)".into())
        })?;
        std::fs::create_dir_all(root.join(bucket))
            .map_err(|e| HarnessError::io("create bucket dir", e))?;
        let mut server = S3Server {
            child: None,
            binary,
            root: root.to_path_buf(),
            port: crate::free_port()?,
        };
        server.restart()?;
        Ok(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The bucket's directory: the objects as files.
    pub fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.join(bucket)
    }

    /// Kills the server (an outage); its data stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and waits until it listens.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let child = Command::new(&self.binary)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| HarnessError::io("start s3s-fs", e))?;
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        wait_until(Duration::from_secs(20), "s3s-fs listening", || {
            TcpStream::connect(&addr).is_ok()
        })
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
