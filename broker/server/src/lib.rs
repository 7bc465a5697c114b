//! Strait broker: a Kafka-protocol server over the Strait log engine.
//!
//! Layers, outside in: `net` (framing, listeners, connections) hands request frames to `api`
//! (one module per Kafka API, translating protocol messages), which works on `broker` (shared
//! state and topic lifecycle) backed by `strait_storage` (the logs) and `metadata` (the topic
//! catalogue). `tasks` runs background maintenance; `run` wires it all together.

pub mod api;
pub mod broker;
pub mod errors;
pub mod group;
pub mod identity;
pub mod metadata;
pub mod metrics;
pub mod net;
pub mod tasks;
pub mod telemetry;

use std::sync::Arc;

use anyhow::Context;
use strait_config::BrokerConfig;
use tokio::sync::watch;
use tracing::info;

use crate::broker::Broker;

/// Opens the data, binds the listeners and serves until `shutdown` turns true; then drains
/// connections and shuts the logs down cleanly (flush, checkpoints, clean-shutdown marker).
pub async fn run(config: BrokerConfig, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let broker = tokio::task::spawn_blocking(move || Broker::open(config))
        .await
        .context("start-up task failed")?
        .context("cannot open the log dirs")?;
    let broker = Arc::new(broker);
    let listeners = net::server::bind(&broker).await?;
    let addresses: Vec<String> = broker
        .config
        .listeners
        .iter()
        .zip(&listeners)
        .map(|(l, b)| {
            let port = b.listener.local_addr().map(|a| a.port()).unwrap_or(l.port);
            format!("{}://{}:{}", l.name, l.host, port)
        })
        .collect();
    let metrics_listener = match &broker.config.metrics_listener {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on metrics.listener {addr}: {e}"))?,
        ),
        None => None,
    };
    let metrics_address = metrics_listener
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.to_string())
        .unwrap_or_else(|| "disabled".into());
    info!(
        node_id = broker.config.node_id,
        cluster_id = %broker.cluster_id,
        listeners = %addresses.join(","),
        clean_start = broker.clean_start,
        metrics = %metrics_address,
        "broker ready"
    );
    let http = metrics_listener
        .map(|l| tokio::spawn(net::http::serve(broker.clone(), l, shutdown.clone())));
    let maintenance = tokio::spawn(tasks::run(broker.clone(), shutdown.clone()));
    net::server::serve(broker.clone(), listeners, shutdown).await;
    let _ = maintenance.await;
    if let Some(h) = http {
        let _ = h.await;
    }
    let b = broker.clone();
    tokio::task::spawn_blocking(move || b.logs.shutdown())
        .await
        .context("shutdown task failed")?
        .context("clean shutdown of the logs failed")?;
    info!("broker stopped cleanly");
    Ok(())
}
