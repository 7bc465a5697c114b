//! Strait broker: a Kafka-protocol server over the Strait log engine.
//!
//! Layers, outside in: `net` (framing, listeners, connections) hands request frames to `api`
//! (one module per Kafka API, translating protocol messages), which works on `broker` (shared
//! state and topic lifecycle) backed by `strait_storage` (the logs) and `metadata` (the topic
//! catalogue). `tasks` runs background maintenance; `run` wires it all together.

pub mod api;
pub mod broker;
pub mod cluster;
pub mod dev;
pub mod errors;
pub mod group;
pub mod identity;
pub mod metadata;
pub mod metrics;
pub mod net;
pub mod partition;
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
    let kraft = config.kraft.is_some();
    let broker = tokio::task::spawn_blocking(move || Broker::open(config))
        .await
        .context("start-up task failed")?
        .context("cannot open the log dirs")?;
    let broker = Arc::new(broker);
    let node = if kraft {
        let node = cluster::ClusterNode::start(&broker.config).await?;
        let _ = broker.cluster.set(node.clone());
        Some(node)
    } else {
        None
    };
    // In a cluster a SIGTERM first hands this broker's leaderships over (controlled shutdown),
    // then stops serving; `stopping` is what the rest of the broker sees.
    let (stop_tx, stopping) = watch::channel(false);
    let drain = {
        let node = node.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            while !*shutdown.borrow_and_update() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
            if let Some(node) = node {
                node.controlled_shutdown().await;
            }
            let _ = stop_tx.send(true);
        })
    };
    let shutdown = stopping;
    let listeners = net::server::bind(&broker).await?;
    let addresses: Vec<String> = broker
        .config
        .listeners
        .iter()
        .filter(|l| !broker.config.controller_listener_names.contains(&l.name))
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
    let cluster_tasks = node
        .as_ref()
        .map(|n| n.spawn_tasks(&broker, shutdown.clone()))
        .unwrap_or_default();
    net::server::serve(broker.clone(), listeners, shutdown).await;
    let _ = maintenance.await;
    let _ = drain.await;
    for task in cluster_tasks {
        let _ = task.await;
    }
    if let Some(node) = &node {
        node.stop().await;
    }
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
