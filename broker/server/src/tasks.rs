//! Background maintenance, on Kafka's schedules: retention every
//! `log.retention.check.interval.ms`, time-based flush and roll checks every second, the
//! recovery-point / high-watermark / log-start checkpoints every few seconds (so a crash rescans
//! only a little), the group coordinator's timeouts every 100 ms, offset expiry every
//! `offsets.retention.check.interval.ms`, the log cleaner (compaction) every
//! `log.cleaner.backoff.ms`, producer-id expiry every
//! `producer.id.expiration.check.interval.ms`, the transaction coordinator's completion of
//! prepared transactions every 100 ms, its abort of timed-out transactions every
//! `transaction.abort.timed.out.transaction.cleanup.interval.ms` and its removal of expired
//! transactional ids every `transaction.remove.expired.transaction.cleanup.interval.ms`, and
//! OAUTHBEARER's key set file is read again every `sasl.oauthbearer.jwks.endpoint.refresh.ms`.
//! Each pass runs on the blocking pool; errors are logged, never fatal.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::broker::Broker;
use crate::clock::now_ms;

const TICK: Duration = Duration::from_secs(1);
/// Kafka checkpoints high watermarks every 5 s (replica.high.watermark.checkpoint.interval.ms).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);
/// Resolution of group session and rebalance timeouts.
const GROUP_TICK: Duration = Duration::from_millis(100);

pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let retention_every =
        Duration::from_millis(broker.config.log_retention_check_interval_ms.max(1));
    let mut tick = tokio::time::interval(TICK);
    let mut retention = tokio::time::interval(retention_every);
    let mut checkpoint = tokio::time::interval(CHECKPOINT_EVERY);
    let mut group_tick = tokio::time::interval(GROUP_TICK);
    let mut offsets_expiry = tokio::time::interval(Duration::from_millis(
        broker.config.offsets_retention_check_interval_ms.max(1),
    ));
    let mut cleaner = tokio::time::interval(Duration::from_millis(
        broker.config.log_cleaner_backoff_ms.max(10),
    ));
    let txn = &broker.config.transactions;
    let mut txn_timeouts = tokio::time::interval(Duration::from_millis(
        txn.abort_timed_out_interval_ms.max(1),
    ));
    let mut txn_expiry =
        tokio::time::interval(Duration::from_millis(txn.remove_expired_interval_ms.max(1)));
    let mut producer_expiry = tokio::time::interval(Duration::from_millis(
        broker
            .config
            .producer_id_expiration_check_interval_ms
            .max(1),
    ));
    // The first refresh is one period after the load at start.
    let oauth_every = broker
        .oauth_keys
        .as_ref()
        .map_or(Duration::from_secs(3600), |k| k.refresh_interval());
    let mut oauth_refresh =
        tokio::time::interval_at(tokio::time::Instant::now() + oauth_every, oauth_every);
    for i in [
        &mut tick,
        &mut oauth_refresh,
        &mut retention,
        &mut checkpoint,
        &mut group_tick,
        &mut offsets_expiry,
        &mut cleaner,
        &mut producer_expiry,
        &mut txn_timeouts,
        &mut txn_expiry,
    ] {
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let mut offline = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {
                watch_log_dirs(&broker, &mut offline);
                blocking(&broker, "flush/roll", |b| {
                    let now = now_ms();
                    b.replicas.logs.flush_due(now)?;
                    b.replicas.logs.roll_due(now)?;
                    Ok(())
                }).await;
            }
            _ = retention.tick() => {
                blocking(&broker, "retention", |b| {
                    let deleted = b.replicas.logs.enforce_retention(now_ms())?;
                    if deleted > 0 {
                        info!(segments = deleted, "retention deleted segments");
                    }
                    Ok(())
                }).await;
            }
            _ = checkpoint.tick() => {
                blocking(&broker, "checkpoint", |b| b.replicas.logs.checkpoint()).await;
            }
            _ = group_tick.tick() => {
                blocking(&broker, "group timeouts", |b| {
                    b.groups.tick(&b.offsets_log(), std::time::Instant::now(), now_ms());
                    Ok(())
                }).await;
                broker.txns.complete_prepared(&broker);
            }
            // Transaction writes wait for their partition's ISR: they run on their own tasks
            // so the other passes keep their schedule.
            _ = txn_timeouts.tick() => {
                let b = broker.clone();
                tokio::spawn(async move { b.txns.clone().abort_timed_out(&b).await });
            }
            _ = txn_expiry.tick() => {
                let b = broker.clone();
                tokio::spawn(async move { b.txns.expire(&b).await });
            }
            _ = cleaner.tick() => {
                blocking(&broker, "log cleaner", |b| {
                    let stats = b.replicas.logs.clean(now_ms())?;
                    if stats.logs_cleaned > 0 {
                        b.metrics.cleaner_runs.inc();
                        b.metrics
                            .cleaner_segments_rewritten
                            .inc_by(stats.segments_rewritten as u64);
                        info!(
                            logs = stats.logs_cleaned,
                            rewritten = stats.segments_rewritten,
                            deleted = stats.segments_deleted,
                            "compacted logs"
                        );
                    }
                    Ok(())
                }).await;
            }
            _ = producer_expiry.tick() => {
                blocking(&broker, "producer expiry", |b| {
                    b.replicas.logs.expire_producers(now_ms());
                    Ok(())
                }).await;
            }
            _ = oauth_refresh.tick(), if broker.oauth_keys.is_some() => {
                blocking(&broker, "OAUTHBEARER key set refresh", |b| {
                    if let Some(keys) = &b.oauth_keys {
                        keys.refresh();
                    }
                    Ok(())
                }).await;
            }
            _ = offsets_expiry.tick() => {
                blocking(&broker, "offset expiry", |b| {
                    let expired = b.groups.expire_offsets(&b.offsets_log(), now_ms());
                    if expired > 0 {
                        info!(offsets = expired, "expired committed offsets");
                    }
                    Ok(())
                }).await;
            }
        }
    }
}

/// Reports log dirs that went offline since the last look; halts the broker once every dir is
/// offline, as Kafka does (it has nothing left to serve, and a restart is what brings a replaced
/// disk back).
fn watch_log_dirs(broker: &Broker, known: &mut Vec<std::path::PathBuf>) {
    let now = broker.replicas.logs.offline_dirs();
    if now.len() == known.len() {
        return;
    }
    for dir in now.iter().filter(|d| !known.contains(d)) {
        tracing::error!(dir = %dir.display(),
            "log dir is offline: its partitions answer KAFKA_STORAGE_ERROR until the disk is replaced and the broker restarted");
    }
    if now.len() == broker.replicas.logs.dirs().len() {
        tracing::error!("every log dir is offline; shutting down the broker");
        std::process::exit(1);
    }
    let offline = broker
        .replicas
        .logs
        .all()
        .into_iter()
        .filter(|log| log.is_offline())
        .map(|log| {
            let tp = log.topic_partition();
            (tp.topic.clone(), tp.partition)
        })
        .collect();
    broker.node().set_offline_partitions(offline);
    // Replica fetchers rebuild their partition lists without the offline replicas.
    broker.replicas.bump_generation();
    *known = now;
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
