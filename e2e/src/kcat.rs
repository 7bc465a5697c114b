//! Runs kcat (Debian's kafkacat, linked against Debian's librdkafka with OpenSSL) with a deadline.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::wait_for;

/// The installed kcat, under either of its names.
pub fn kcat_binary() -> Option<PathBuf> {
    ["/usr/bin/kcat", "/usr/bin/kafkacat", "/usr/local/bin/kcat"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Runs kcat with `args` and `stdin`, killing it if it does not finish within `timeout`. Panics
/// (failing the test) when kcat is missing or times out.
pub fn kcat<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
    args: &[S],
    stdin: &[u8],
    timeout: Duration,
) -> Output {
    let binary = kcat_binary().expect("kcat is installed (run e2e/setup.sh)");
    let mut child = Command::new(binary)
        .args(args)
        // `cargo test` puts the build's own librdkafka (rdkafka-sys, built without OpenSSL) on
        // the library path; kcat must load the system one it was built against.
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kcat");
    let mut pipe = child.stdin.take().expect("kcat stdin");
    pipe.write_all(stdin).expect("write kcat stdin");
    drop(pipe);
    let pid = child.id();
    let finished = wait_for(timeout, "kcat to finish", || {
        child.try_wait().ok().flatten()
    });
    if finished.is_err() {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("collect kcat output");
    assert!(
        finished.is_ok(),
        "kcat {args:?} (pid {pid}) timed out: {output:?}"
    );
    output
}
