//! `strait-operator`: runs the Cluster, Topic and User controllers under leader election, with
//! `/healthz` and `/metrics` on `--metrics-address`, until SIGTERM or Ctrl-C.
//!
//! Environment: `WATCH_NAMESPACES` (comma-separated; empty watches all), `POD_NAME` and
//! `POD_NAMESPACE` (identity and Lease namespace), `METRICS_ADDRESS` (default `0.0.0.0:8080`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use strait_operator::context::{Context, WireAdminFactory};
use strait_operator::leader::{Elector, RENEW_INTERVAL};
use strait_operator::metrics::Metrics;
use strait_operator::{http, run};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("strait-operator: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(operate()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn operate() -> anyhow::Result<()> {
    let metrics_address: SocketAddr = std::env::var("METRICS_ADDRESS")
        .unwrap_or_else(|_| "0.0.0.0:8080".to_owned())
        .parse()?;
    let pod = std::env::var("POD_NAME").unwrap_or_else(|_| "strait-operator-local".to_owned());
    let pod_namespace = std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "default".to_owned());
    let namespaces: Vec<String> = std::env::var("WATCH_NAMESPACES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();

    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics = Metrics::new()?;
    let listener = http::bind(metrics_address).await?;
    let server = tokio::spawn(http::serve(listener, metrics.clone(), stop_rx.clone()));
    let signals = tokio::spawn({
        let stop_tx = stop_tx.clone();
        async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
        }
    });

    let client = kube::Client::try_default().await?;
    let elector = Elector::new(client.clone(), &pod_namespace, "strait-operator", &pod);
    // Wait for the lease; bounded by the shutdown signal.
    let mut stop = stop_rx.clone();
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        match elector.try_hold().await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RENEW_INTERVAL) => {}
            _ = stop.changed() => {}
        }
    }
    tracing::info!(pod, "leading");

    // Renew; on loss stop everything (another replica takes over).
    let renew = tokio::spawn({
        let elector = elector.clone();
        let stop_tx = stop_tx.clone();
        let mut stop = stop_rx.clone();
        async move {
            let mut failures = 0u32;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(RENEW_INTERVAL) => {}
                    _ = stop.changed() => return false,
                }
                match elector.try_hold().await {
                    Ok(true) => failures = 0,
                    Ok(false) => {
                        tracing::error!("lost the leader lease");
                        let _ = stop_tx.send(true);
                        return true;
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %e, failures, "lease renewal failed");
                        // Two failed renewals approach the lease duration: step down.
                        if failures >= 2 {
                            let _ = stop_tx.send(true);
                            return true;
                        }
                    }
                }
            }
        }
    });

    let ctx = Context::new(client, metrics, WireAdminFactory);
    let mut all = Vec::new();
    if namespaces.is_empty() {
        all.extend(run::controllers(ctx.clone(), None, &stop_rx));
    } else {
        for ns in &namespaces {
            all.extend(run::controllers(ctx.clone(), Some(ns), &stop_rx));
        }
    }
    futures::future::join_all(all).await;
    let _ = stop_tx.send(true);
    let lost = renew.await.unwrap_or(false);
    // The controllers and the renewals have stopped: hand the lease over now rather than let a
    // waiting replica sit out its duration.
    if !lost {
        match tokio::time::timeout(Duration::from_secs(5), elector.release()).await {
            Ok(Ok(true)) => tracing::info!("released the leader lease"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot release the leader lease"),
            Err(_) => tracing::warn!("releasing the leader lease timed out"),
        }
    }
    signals.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    if lost {
        anyhow::bail!("stepped down: leader lease lost");
    }
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
