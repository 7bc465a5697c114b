//! Client quota enforcement (Kafka's ClientQuotaManager): per quota entity, a rate sampled over
//! `quota.window.num` windows of `quota.window.size.seconds` (Kafka's defaults, 11 × 1 s). A
//! request that takes the rate over the quota is answered with `throttle_time_ms` and its
//! connection is muted for that time (KIP-219), so a client is slowed to its quota whether or not
//! it honours the field. The throttle is Kafka's: (rate - quota) / quota × the sampled time.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use strait_cluster::image::Image;
use strait_cluster::quota::{self as model};

/// Sensors unused this long are dropped (Kafka expires them after an hour).
const IDLE_EXPIRY: Duration = Duration::from_secs(3600);

/// What a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `producer_byte_rate`: bytes of Produce requests per second.
    Produce,
    /// `consumer_byte_rate`: bytes of Fetch responses per second.
    Fetch,
    /// `request_percentage`: handling time, in percent of one thread.
    Request,
    /// `controller_mutation_rate`: partitions created or deleted per second.
    ControllerMutation,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Produce => model::PRODUCER_BYTE_RATE,
            Kind::Fetch => model::CONSUMER_BYTE_RATE,
            Kind::Request => model::REQUEST_PERCENTAGE,
            Kind::ControllerMutation => model::CONTROLLER_MUTATION_RATE,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Produce => "produce",
            Kind::Fetch => "fetch",
            Kind::Request => "request",
            Kind::ControllerMutation => "controller_mutation",
        }
    }
}

#[derive(Debug)]
struct Sensor {
    /// (window start, amount recorded in it), oldest first.
    samples: VecDeque<(Instant, f64)>,
    last_used: Instant,
}

impl Sensor {
    fn rate(&mut self, now: Instant, window: Duration, windows: u32) -> (f64, Duration) {
        let span = window * windows;
        while self
            .samples
            .front()
            .is_some_and(|(start, _)| now.saturating_duration_since(*start) >= span)
        {
            self.samples.pop_front();
        }
        let total: f64 = self.samples.iter().map(|(_, v)| v).sum();
        // The elapsed time counts at least one full window, so a client's first request is not
        // measured against its first millisecond. (Kafka counts `windows - 1`, which lets a new
        // client send ten seconds' worth at once and then stalls it for as long; one window
        // keeps the rate within a window of the quota from the start.)
        let oldest = self.samples.front().map_or(now, |(s, _)| *s);
        let elapsed = now.saturating_duration_since(oldest).max(window);
        (total / elapsed.as_secs_f64(), elapsed)
    }

    fn record(&mut self, amount: f64, now: Instant, window: Duration) {
        match self.samples.back_mut() {
            Some((start, total)) if now.saturating_duration_since(*start) < window => {
                *total += amount;
            }
            _ => self.samples.push_back((now, amount)),
        }
        self.last_used = now;
    }
}

/// The rates of every quota entity with traffic on this broker.
#[derive(Debug)]
pub struct Quotas {
    sensors: Mutex<HashMap<(Kind, String), Sensor>>,
    window: Duration,
    windows: u32,
}

impl Default for Quotas {
    /// Kafka's defaults: 11 samples of 1 s.
    fn default() -> Self {
        Quotas::new(11, Duration::from_secs(1))
    }
}

/// What one recording decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle(pub Duration);

impl Throttle {
    pub const NONE: Throttle = Throttle(Duration::ZERO);

    pub fn ms(self) -> i32 {
        i32::try_from(self.0.as_millis()).unwrap_or(i32::MAX)
    }

    pub fn is_throttled(self) -> bool {
        !self.0.is_zero()
    }
}

impl Quotas {
    /// `quota.window.num` samples of `quota.window.size.seconds`.
    pub fn new(windows: u32, window: Duration) -> Quotas {
        Quotas {
            sensors: Mutex::default(),
            window: window.max(Duration::from_millis(1)),
            windows: windows.max(1),
        }
    }

    /// Adds `amount` to the rate of the quota that applies to `user`/`client_id` for `kind` and
    /// returns how long the client must wait (zero when under quota or without a quota).
    pub fn record(
        &self,
        image: &Image,
        kind: Kind,
        user: &str,
        client_id: &str,
        amount: f64,
    ) -> Throttle {
        let Some((entity, bound)) =
            model::resolve_with_key(&image.quotas, user, client_id, kind.key())
        else {
            return Throttle::NONE;
        };
        self.measure(kind, entity, bound, Some(amount), Instant::now())
    }

    /// The wait a client over its quota must still serve, without recording anything.
    pub fn pending(&self, image: &Image, kind: Kind, user: &str, client_id: &str) -> Throttle {
        let Some((entity, bound)) =
            model::resolve_with_key(&image.quotas, user, client_id, kind.key())
        else {
            return Throttle::NONE;
        };
        self.measure(kind, entity, bound, None, Instant::now())
    }

    fn measure(
        &self,
        kind: Kind,
        entity: String,
        bound: f64,
        amount: Option<f64>,
        now: Instant,
    ) -> Throttle {
        let mut sensors = self.sensors.lock().expect("quota sensors");
        if sensors.len() > 10_000 {
            sensors.retain(|_, s| now.saturating_duration_since(s.last_used) < IDLE_EXPIRY);
        }
        let sensor = sensors.entry((kind, entity)).or_insert_with(|| Sensor {
            samples: VecDeque::new(),
            last_used: now,
        });
        if let Some(amount) = amount {
            sensor.record(amount, now, self.window);
        }
        let (rate, elapsed) = sensor.rate(now, self.window, self.windows);
        let longest = self.window * self.windows;
        if bound <= 0.0 {
            // A zero quota blocks: the longest wait.
            return Throttle(longest);
        }
        if rate <= bound {
            return Throttle::NONE;
        }
        let wait = elapsed.mul_f64((rate - bound) / bound);
        Throttle(wait.min(longest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_keeps_the_sampled_rate_at_the_quota() {
        let q = Quotas::default();
        let start = Instant::now();
        // 1000 units/s allowed; 3000 recorded at once: 3000/s over the one-window minimum, so
        // the wait is (3000 - 1000) / 1000 × 1 s.
        let t = q.measure(Kind::Produce, "e".into(), 1000.0, Some(3_000.0), start);
        assert_eq!(t, Throttle(Duration::from_secs(2)));
        // Under the quota: nothing.
        let t = q.measure(Kind::Produce, "f".into(), 1000.0, Some(500.0), start);
        assert_eq!(t, Throttle::NONE);
        // Once the samples age out of the span, the entity is free again.
        let later = start + Duration::from_secs(12);
        assert_eq!(
            q.measure(Kind::Produce, "e".into(), 1000.0, None, later),
            Throttle::NONE
        );
    }
}
