//! A `strait-mirror` process for tests: started from a properties file with its stderr in a
//! file (directly, or inside a network-namespace lab through a command prefix), SIGKILLed on
//! drop, so a failing test leaves no mirror behind. Also the at-least-once check of a mirrored
//! partition against its source.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use std::time::Duration;

use crate::broker::broker_binary;
use crate::error::{HarnessError, Result};
use crate::{ConsumedMessage, read_range, wait_for, watermarks};

/// The value of the last record of each of `topic`'s first `partitions` partitions (`None`
/// for an empty one), or `None` when one could not be read.
pub fn last_values(bootstrap: &str, topic: &str, partitions: i32) -> Option<Vec<Option<Vec<u8>>>> {
    (0..partitions)
        .map(|p| {
            let (_, high) = watermarks(bootstrap, topic, p).ok()?;
            if high == 0 {
                return Some(None);
            }
            let last = read_range(bootstrap, topic, p, high - 1, high, Duration::from_secs(10));
            Some(last.ok()?.first()?.value.clone())
        })
        .collect()
}

/// Waits (up to `timeout`) until every partition of the copy `(target, remote)` ends with the
/// record its partition of `(source, topic)` ends with. With distinct values and copies in
/// order, the mirror then copied through to the source's end; offsets would not tell, as
/// re-copies count there too. The error carries the mirror's log.
pub fn wait_caught_up(
    (source, topic): (&str, &str),
    (target, remote): (&str, &str),
    partitions: i32,
    mirror: &MirrorProcess,
    timeout: Duration,
) -> Result<()> {
    let ends = wait_for(timeout, "the source's last records", || {
        last_values(source, topic, partitions)
    })?;
    wait_for(timeout, "the target to end where the source ends", || {
        last_values(target, remote, partitions)
            .is_some_and(|copied| copied == ends)
            .then_some(())
    })
    .map_err(|e| HarnessError::Unexpected(format!("{e}\nmirror log:\n{}", mirror.log())))
}

/// Checks an at-least-once copy of partition `partition`: the first occurrence of each value
/// on the target, in order, must be exactly the source's values (nothing lost, order kept);
/// every later occurrence is a re-copy. Returns how many re-copies there are. Values must be
/// distinct on the source.
pub fn assert_copied_in_order(
    partition: i32,
    sent: &[ConsumedMessage],
    copied: &[ConsumedMessage],
) -> usize {
    let value = |m: &ConsumedMessage| m.value.clone().unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<Vec<u8>> = copied
        .iter()
        .map(value)
        .filter(|v| seen.insert(v.clone()))
        .collect();
    let sent: Vec<Vec<u8>> = sent.iter().map(value).collect();
    assert_eq!(
        firsts.len(),
        sent.len(),
        "partition {partition}: records lost"
    );
    assert!(
        firsts == sent,
        "partition {partition}: order or content differs"
    );
    copied.len() - firsts.len()
}

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
        // Without a port asked for, an ephemeral one on loopback: mirrors of tests running at
        // once must not all try the default 0.0.0.0:9404.
        let addr = metrics.map_or_else(|| "127.0.0.1:0".to_owned(), |a| a.to_string());
        command.arg("--metrics-addr").arg(addr);
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
