//! A real `strait-broker` child process: free port, temporary data directory, stderr captured
//! to a file per start, readiness detection, SIGKILL / SIGTERM / restart, killed on drop.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::error::{HarnessError, Result};
use crate::wait::{wait_for, wait_until};

/// How long a broker may take to log `broker ready` and accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful shutdown may take before the harness gives up.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How many trailing stderr bytes go into error messages.
const STDERR_TAIL_BYTES: usize = 4000;

/// Finds the broker binary: `$STRAIT_BROKER_BIN`, else next to the running executable (binaries in
/// `target/release/`) or one level up (tests in `target/release/deps/`).
pub fn broker_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("STRAIT_BROKER_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(HarnessError::BrokerBinaryMissing(path))
        };
    }
    let exe = std::env::current_exe().map_err(|e| HarnessError::io("current_exe", e))?;
    let dir = exe
        .parent()
        .ok_or_else(|| HarnessError::Unexpected(format!("{} has no parent", exe.display())))?;
    let candidates = [
        dir.join("strait-broker"),
        dir.join("..").join("strait-broker"),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| HarnessError::BrokerBinaryMissing(candidates[1].clone()))
}

/// Picks a free loopback port by binding port 0 and releasing it. A port is never handed out
/// twice in one test process: released ports are often the kernel's next pick, and a node given
/// the same port for two listeners (or two nodes sharing one) fails to start.
pub fn free_port() -> Result<u16> {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    // Rejected picks stay bound until the end, so the kernel cannot offer them again.
    let mut held = Vec::new();
    for _ in 0..1000 {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| HarnessError::io("bind 127.0.0.1:0", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| HarnessError::io("local_addr", e))?
            .port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
        if handed_out.insert(port) {
            return Ok(port);
        }
        held.push(listener);
    }
    Err(HarnessError::Unexpected(
        "no loopback port that this process has not used already".into(),
    ))
}

/// How to start a broker. `Default` gives a fresh temporary data directory and no config file.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    /// `--override key=value` pairs; they replace the harness defaults of the same key.
    pub overrides: Vec<(String, String)>,
    /// Data directory (`log.dirs`); a temporary one when `None`.
    pub log_dir: Option<PathBuf>,
    /// Passed as `--config FILE` when set.
    pub config_file: Option<PathBuf>,
    /// Port to listen on; a free one when `None`.
    pub port: Option<u16>,
}

impl BrokerOptions {
    /// Options with the given overrides and everything else defaulted.
    pub fn with_overrides(overrides: &[(&str, &str)]) -> Self {
        BrokerOptions {
            overrides: overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..BrokerOptions::default()
        }
    }
}

/// A running (or stopped) broker process owned by a test.
#[derive(Debug)]
pub struct Broker {
    child: Option<Child>,
    binary: PathBuf,
    port: u16,
    log_dir: PathBuf,
    options: BrokerOptions,
    /// Holds the stderr files and, unless a log dir was given, the data directory.
    work: TempDir,
    starts: usize,
    stderr_path: PathBuf,
}

impl Broker {
    /// Starts a broker with these `--override`s, on a free port and a temporary data directory,
    /// and waits until it is ready.
    pub fn start(overrides: &[(&str, &str)]) -> Result<Broker> {
        Broker::start_with(BrokerOptions::with_overrides(overrides))
    }

    /// Starts a broker as described by `options` and waits until it is ready.
    pub fn start_with(options: BrokerOptions) -> Result<Broker> {
        let binary = broker_binary()?;
        let work = tempfile::Builder::new()
            .prefix("strait-e2e-")
            .tempdir()
            .map_err(|e| HarnessError::io("create temp dir", e))?;
        let log_dir = match &options.log_dir {
            Some(dir) => dir.clone(),
            None => work.path().join("data"),
        };
        let port = match options.port {
            Some(port) => port,
            None => free_port()?,
        };
        let mut broker = Broker {
            child: None,
            binary,
            port,
            log_dir,
            options,
            stderr_path: work.path().join("stderr-0.log"),
            work,
            starts: 0,
        };
        broker.spawn_and_wait()?;
        Ok(broker)
    }

    /// The listener port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The listener address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The data directory (`log.dirs`).
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// The file holding the current (or last) run's stderr.
    pub fn stderr_path(&self) -> &Path {
        &self.stderr_path
    }

    /// The current (or last) run's stderr so far, without ANSI colour codes.
    pub fn stderr(&self) -> String {
        std::fs::read(&self.stderr_path)
            .map(|b| strip_ansi(&String::from_utf8_lossy(&b)))
            .unwrap_or_default()
    }

    /// The last `STDERR_TAIL_BYTES` of the current run's stderr, for error messages.
    pub fn stderr_tail(&self) -> String {
        tail(&self.stderr(), STDERR_TAIL_BYTES)
    }

    /// The `broker ready` line of the current run, once logged.
    pub fn ready_line(&self) -> Option<String> {
        self.stderr()
            .lines()
            .find(|l| l.contains("broker ready"))
            .map(str::to_string)
    }

    /// Process id of the running child.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the child process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Fails with the exit status and stderr if the process is no longer running.
    pub fn assert_alive(&mut self) -> Result<()> {
        let status = match self.child.as_mut() {
            Some(child) => child
                .try_wait()
                .map_err(|e| HarnessError::io("try_wait broker", e))?,
            None => return Err(HarnessError::Unexpected("broker is not started".into())),
        };
        match status {
            None => Ok(()),
            Some(status) => Err(HarnessError::BrokerExited {
                status,
                stderr_tail: self.stderr_tail(),
            }),
        }
    }

    /// SIGKILLs the broker and reaps it.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .map_err(|e| HarnessError::io("kill broker", e))?;
            child
                .wait()
                .map_err(|e| HarnessError::io("wait broker", e))?;
        }
        Ok(())
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit; returns its exit status.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        self.signal_and_wait("-TERM")
    }

    /// Sends SIGINT and waits (bounded) for the process to exit; returns its exit status.
    pub fn interrupt(&mut self) -> Result<ExitStatus> {
        self.signal_and_wait("-INT")
    }

    fn signal_and_wait(&mut self, signal: &str) -> Result<ExitStatus> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| HarnessError::Unexpected("broker is not running".into()))?;
        // `kill(1)` avoids `unsafe` libc calls; the pid is our own child, not yet reaped.
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .map_err(|e| HarnessError::io("run kill", e))?;
        if !status.success() {
            return Err(HarnessError::Unexpected(format!(
                "kill {signal} {} failed: {status}",
                child.id()
            )));
        }
        let waited = wait_for(STOP_TIMEOUT, "broker to exit after signal", || {
            child.try_wait().ok().flatten()
        });
        match waited {
            Ok(status) => Ok(status),
            Err(e) => {
                // Leave no orphan behind; report the timeout.
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// Starts the broker again on the same port and data directory (killing it first if it
    /// still runs) and waits until it is ready. Stderr of the new run goes to a new file.
    pub fn restart(&mut self) -> Result<()> {
        self.kill()?;
        self.spawn_and_wait()
    }

    /// The command line arguments of a start.
    fn args(&self) -> Vec<String> {
        let mut settings: Vec<(String, String)> = vec![
            (
                "listeners".into(),
                format!("PLAINTEXT://127.0.0.1:{}", self.port),
            ),
            ("log.dirs".into(), self.log_dir.display().to_string()),
            // The default metrics port (9404) would collide between parallel brokers.
            ("metrics.listener".into(), String::new()),
        ];
        for (key, value) in &self.options.overrides {
            match settings.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value.clone(),
                None => settings.push((key.clone(), value.clone())),
            }
        }
        let mut args = Vec::new();
        if let Some(config) = &self.options.config_file {
            args.push("--config".to_string());
            args.push(config.display().to_string());
        }
        for (key, value) in settings {
            args.push("--override".to_string());
            args.push(format!("{key}={value}"));
        }
        args
    }

    fn spawn_and_wait(&mut self) -> Result<()> {
        self.stderr_path = self.work.path().join(format!("stderr-{}.log", self.starts));
        self.starts += 1;
        let stderr = File::create(&self.stderr_path)
            .map_err(|e| HarnessError::io("create stderr file", e))?;
        let child = Command::new(&self.binary)
            .args(self.args())
            .current_dir(self.work.path())
            .env(
                "RUST_LOG",
                std::env::var("STRAIT_E2E_RUST_LOG").unwrap_or("info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| HarnessError::io(format!("spawn {}", self.binary.display()), e))?;
        self.child = Some(child);
        let addr = self.addr();
        let mut exited = None;
        let ready = wait_until(READY_TIMEOUT, "broker ready", || {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                exited = Some(status);
                return true;
            }
            self.ready_line().is_some()
                && TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
        });
        if let Some(status) = exited {
            self.child = None;
            return Err(HarnessError::BrokerExited {
                status,
                stderr_tail: self.stderr_tail(),
            });
        }
        if let Err(e) = ready {
            let tail = self.stderr_tail();
            self.kill()?;
            return Err(HarnessError::Unexpected(format!(
                "{e}; stderr tail:\n{tail}"
            )));
        }
        Ok(())
    }
}

/// The last `bytes` bytes of `text` (fewer when that would split a character).
pub(crate) fn tail(text: &str, bytes: usize) -> String {
    let mut start = text.len().saturating_sub(bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

/// Removes ANSI escape sequences (`ESC [ ... letter`), so log lines can be matched as text even
/// when the broker colours its output.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::strip_ansi;

    #[test]
    fn strips_colour_codes() {
        let line = "\u{1b}[2mclean_start\u{1b}[0m\u{1b}[2m=\u{1b}[0mfalse done";
        assert_eq!(strip_ansi(line), "clean_start=false done");
    }
}
