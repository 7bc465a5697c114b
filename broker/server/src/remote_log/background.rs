//! Where the remote log manager's passes run: a small runtime of its own whose threads have a
//! lower CPU priority (nice 10) than the broker's. Copying a segment reads it back, checksums
//! it and writes it to the store, which on a busy machine takes CPU from the produce path; at a
//! lower priority uploads use what produce and fetch leave, so produce keeps its throughput
//! (Kafka's promise for tiered storage) and the copy lag catches up when load falls. Consumer
//! reads from the remote tier stay on the main runtime: they are in a client's request path.

use std::future::Future;
use std::sync::Mutex;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Nice value of the copy threads (0 is the broker's, 19 the lowest).
const NICE: i32 = 10;

/// A runtime on its own OS thread (a runtime may not be dropped inside another one), stopped
/// when this is dropped.
pub struct Background {
    handle: Handle,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Background {
    /// Starts `workers` threads at a lower priority: at least one, at most one per CPU (the
    /// passes are bounded by the manager's own semaphore; file and network waits do not hold a
    /// worker thread).
    pub fn start(workers: usize) -> std::io::Result<Background> {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.clamp(1, cpus))
            .thread_name("strait-remote-copy")
            .on_thread_start(lower_priority)
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("strait-remote-copy".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                // Passes in flight are dropped: each one is recorded step by step, so the next
                // leader (or this broker after a restart) cleans up and resumes.
                runtime.shutdown_background();
            })?;
        Ok(Background {
            handle,
            stop: Mutex::new(Some(stop)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Runs `task` on the low-priority runtime.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.handle.spawn(task);
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

/// Lowers the calling thread's priority: on Linux `setpriority(PRIO_PROCESS, tid)` applies to
/// one thread. Failing is harmless (the copy then competes at normal priority).
fn lower_priority() {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), NICE) {
        tracing::debug!(error = %e, "cannot lower the remote copy thread's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_run_at_a_lower_priority_and_the_runtime_stops_on_drop() {
        let background = Background::start(1).expect("start");
        let (tx, rx) = std::sync::mpsc::channel();
        background.spawn(async move {
            let tid = rustix::thread::gettid();
            let _ = tx.send(rustix::process::getpriority_process(Some(tid)));
        });
        let nice = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the task ran")
            .expect("getpriority");
        assert_eq!(nice, NICE);
        drop(background);
    }
}
