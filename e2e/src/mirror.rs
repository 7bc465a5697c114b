//! A `strait-mirror` process for tests: started from a properties file with its stderr in a
//! file (directly, or inside a network-namespace lab through a command prefix), SIGKILLed on
//! drop, so a failing test leaves no mirror behind.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use crate::broker::broker_binary;
use crate::error::{HarnessError, Result};

/// `target/release/strait-mirror`, next to the broker binary.
pub fn mirror_binary() -> Result<PathBuf> {
    let path = broker_binary()?.with_file_name("strait-mirror");
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::Unexpected(format!(
            "{} missing: cargo build --release --bin strait-mirror",
            path.display()
        )))
    }
}

/// A running `strait-mirror --config <file>`.
pub struct MirrorProcess {
    child: Child,
    stderr: PathBuf,
    metrics: Option<SocketAddr>,
}

impl MirrorProcess {
    /// Starts the mirror on `config`, serving metrics on `metrics_port` when given, appending
    /// its log (RUST_LOG=info) to `stderr`.
    pub fn start(config: &Path, metrics_port: Option<u16>, stderr: &Path) -> Result<MirrorProcess> {
        let metrics = metrics_port.map(|port| SocketAddr::from(([127, 0, 0, 1], port)));
        MirrorProcess::start_in(&[], config, metrics, stderr)
    }

    /// Like [`MirrorProcess::start`], run through `prefix` (a command that execs the mirror, such
    /// as [`crate::netns::NetLab::exec_prefix`]'s `ip netns exec <ns>`, so the pid stays the
    /// mirror's), serving metrics on `metrics` (an address of that namespace) when given.
    pub fn start_in(
        prefix: &[String],
        config: &Path,
        metrics: Option<SocketAddr>,
        stderr: &Path,
    ) -> Result<MirrorProcess> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr)
            .map_err(|e| HarnessError::io("open the mirror's stderr file", e))?;
        let binary = mirror_binary()?;
        let mut command = match prefix.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(&binary);
                c
            }
            None => Command::new(&binary),
        };
        command.arg("--config").arg(config);
        if let Some(addr) = metrics {
            command.arg("--metrics-addr").arg(addr.to_string());
        }
        let child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| HarnessError::io("spawn strait-mirror", e))?;
        Ok(MirrorProcess {
            child,
            stderr: stderr.to_owned(),
            metrics,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where it serves `/metrics`, when started with a port.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
    }

    /// Its exit status once it exited (reaped here), `None` while it runs.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for MirrorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
