//! Counters of remote traffic the broker exports as metrics (Kafka's RemoteLogManager
//! `RemoteCopyBytesPerSec`, `RemoteFetchRequestsPerSec`, ... are rates of these).

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub bytes_copied: AtomicU64,
    pub copy_requests: AtomicU64,
    pub copy_errors: AtomicU64,
    pub bytes_fetched: AtomicU64,
    pub fetch_requests: AtomicU64,
    pub fetch_errors: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
}

/// A point-in-time copy of the store's counters (all monotonic since the store was built).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Bytes uploaded by finished `copy_segment` calls.
    pub bytes_copied: u64,
    /// `copy_segment` calls.
    pub copy_requests: u64,
    /// `copy_segment` calls that failed.
    pub copy_errors: u64,
    /// Bytes read from the store (cache misses of log chunks and indexes).
    pub bytes_fetched: u64,
    /// `read` and `offset_for_timestamp` calls.
    pub fetch_requests: u64,
    /// Those that failed.
    pub fetch_errors: u64,
    /// Log chunks and indexes served from memory.
    pub cache_hits: u64,
    /// Log chunks and indexes fetched from the store.
    pub cache_misses: u64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            bytes_copied: get(&self.bytes_copied),
            copy_requests: get(&self.copy_requests),
            copy_errors: get(&self.copy_errors),
            bytes_fetched: get(&self.bytes_fetched),
            fetch_requests: get(&self.fetch_requests),
            fetch_errors: get(&self.fetch_errors),
            cache_hits: get(&self.cache_hits),
            cache_misses: get(&self.cache_misses),
        }
    }
}
