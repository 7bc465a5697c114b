//! Heartbeats of one flow: MM2 `Heartbeat` records (source alias, target alias, timestamp)
//! written to the target's `heartbeats` topic every `emit.heartbeats.interval.seconds`, so that
//! MM2 tooling (and a downstream flow mirroring `heartbeats`) sees the flow is alive.

use std::sync::Arc;

use crate::copy::FlowContext;
use crate::formats::Heartbeat;
use crate::internal::{InternalWriter, now_ms};
use crate::policy::HEARTBEATS_TOPIC;

/// The heartbeat task of a flow, until shutdown.
pub async fn run(flow: Arc<FlowContext>) {
    let config = &flow.config;
    let mut writer = InternalWriter::new(flow.target.clone(), HEARTBEATS_TOPIC.to_owned());
    let mut shutdown = flow.shutdown.clone();
    loop {
        if !flow.leads() {
            tokio::select! {
                _ = tokio::time::sleep(config.emit_heartbeats_interval) => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        let heartbeat = Heartbeat {
            source: config.source.clone(),
            target: config.target.clone(),
            timestamp: now_ms(),
        };
        match writer.write(&[(heartbeat.key(), heartbeat.value())]).await {
            Ok(()) => flow
                .metrics
                .heartbeats_emitted
                .with_label_values(&[&config.source, &config.target])
                .inc(),
            Err(e) => tracing::warn!(error = %e, "heartbeat not written"),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.emit_heartbeats_interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}
