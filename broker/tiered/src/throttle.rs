//! A byte-rate cap shared by concurrent tasks: a token bucket holding up to one second of
//! bytes. A caller takes what it needs and, when that drives the bucket negative, sleeps until
//! the debt is repaid, so a request larger than the bucket still passes at the capped rate.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Caps bytes per second; `None` rate never waits.
#[derive(Debug)]
pub struct Throttle {
    rate: Option<u64>,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// May go negative: bytes already granted ahead of the rate.
    tokens: f64,
    last: Instant,
}

impl Throttle {
    pub fn new(bytes_per_sec: Option<u64>) -> Throttle {
        let rate = bytes_per_sec.filter(|r| *r > 0);
        Throttle {
            rate,
            state: Mutex::new(Bucket {
                tokens: rate.unwrap_or(0) as f64,
                last: Instant::now(),
            }),
        }
    }

    /// How long a caller taking `bytes` now must wait (and books them).
    fn reserve(&self, bytes: u64) -> Duration {
        let Some(rate) = self.rate else {
            return Duration::ZERO;
        };
        let rate = rate as f64;
        let mut b = match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.last = now;
        b.tokens = (b.tokens + elapsed * rate).min(rate);
        b.tokens -= bytes as f64;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / rate)
        }
    }

    /// Waits until `bytes` may go.
    pub async fn acquire(&self, bytes: u64) {
        let wait = self.reserve(bytes);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unlimited_never_waits() {
        let t = Throttle::new(None);
        let start = Instant::now();
        for _ in 0..1000 {
            t.acquire(u64::MAX / 2).await;
        }
        assert!(start.elapsed() < Duration::from_millis(100));
    }

    #[tokio::test]
    async fn caps_the_rate() {
        // 1 MB/s with a 1 MB burst: 3 MB take about 2 s.
        let t = Throttle::new(Some(1_000_000));
        let start = Instant::now();
        for _ in 0..30 {
            t.acquire(100_000).await;
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1900), "{took:?}");
        assert!(took < Duration::from_millis(3000), "{took:?}");
    }

    #[tokio::test]
    async fn a_request_larger_than_the_bucket_passes_at_the_rate() {
        let t = Throttle::new(Some(1_000_000));
        let start = Instant::now();
        t.acquire(1_500_000).await; // 1 MB burst + 0.5 s of debt
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(450), "{took:?}");
        assert!(took < Duration::from_millis(1000), "{took:?}");
    }

    #[tokio::test]
    async fn shared_between_tasks() {
        let t = std::sync::Arc::new(Throttle::new(Some(2_000_000)));
        t.acquire(2_000_000).await; // drain the burst
        let start = Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let t = t.clone();
                tokio::spawn(async move { t.acquire(500_000).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(900), "{took:?}");
        assert!(took < Duration::from_millis(1500), "{took:?}");
    }
}
