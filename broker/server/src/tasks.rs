//! Background maintenance, on Kafka's schedules: retention every
//! `log.retention.check.interval.ms`, time-based flush and roll checks every second, and the
//! recovery-point / high-watermark / log-start checkpoints every few seconds, so that a crash
//! rescans only a little. Each pass runs on the blocking pool; errors are logged, never fatal.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::api::now_ms;
use crate::broker::Broker;

const TICK: Duration = Duration::from_secs(1);
/// Kafka checkpoints high watermarks every 5 s (replica.high.watermark.checkpoint.interval.ms).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let retention_every =
        Duration::from_millis(broker.config.log_retention_check_interval_ms.max(1));
    let mut tick = tokio::time::interval(TICK);
    let mut retention = tokio::time::interval(retention_every);
    let mut checkpoint = tokio::time::interval(CHECKPOINT_EVERY);
    for i in [&mut tick, &mut retention, &mut checkpoint] {
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {
                blocking(&broker, "flush/roll", |b| {
                    let now = now_ms();
                    b.logs.flush_due(now)?;
                    b.logs.roll_due(now)?;
                    Ok(())
                }).await;
            }
            _ = retention.tick() => {
                blocking(&broker, "retention", |b| {
                    let deleted = b.logs.enforce_retention(now_ms())?;
                    if deleted > 0 {
                        info!(segments = deleted, "retention deleted segments");
                    }
                    Ok(())
                }).await;
            }
            _ = checkpoint.tick() => {
                blocking(&broker, "checkpoint", |b| b.logs.checkpoint()).await;
            }
        }
    }
}

async fn blocking(
    broker: &Arc<Broker>,
    what: &'static str,
    f: impl FnOnce(&Broker) -> Result<(), strait_storage::LogError> + Send + 'static,
) {
    let b = broker.clone();
    match tokio::task::spawn_blocking(move || f(&b)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(task = what, error = %e, "maintenance pass failed"),
        Err(e) => warn!(task = what, error = %e, "maintenance pass panicked"),
    }
}
