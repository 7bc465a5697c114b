//! Deadline-bounded polling: the only way tests wait for something to happen.

use std::time::{Duration, Instant};

use crate::error::{HarnessError, Result};

/// How often a condition is re-checked; short enough not to slow tests down.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `cond` until it returns true, failing with `Timeout(what)` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
    wait_for(timeout, what, || cond().then_some(()))
}

/// Polls `probe` until it yields a value, failing with `Timeout(what)` after `timeout`.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(HarnessError::Timeout(what.to_string()));
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}
