//! `strait-mirror --config mm2.properties`: runs the mirror engine (MirrorMaker 2 compatible or
//! linked flows) with a Prometheus `/metrics` endpoint; `--failover` instead fails over the
//! linked flows' mirror topics and exits. Exit code 2 for an unusable configuration, 1 when a
//! failover did not complete.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use strait_mirror::config::MirrorConfig;
use strait_mirror::metrics::{self, Metrics};

/// Mirror topics, offsets and groups between Kafka-compatible clusters (MM2 compatible).
#[derive(Parser, Debug)]
#[command(name = "strait-mirror", version)]
struct Args {
    /// The MirrorMaker 2 properties file.
    #[arg(long)]
    config: PathBuf,
    /// Where `/metrics` is served.
    #[arg(long, default_value = "0.0.0.0:9404")]
    metrics_addr: SocketAddr,
    /// Fail over every linked flow (remove `strait.mirror.source` from its mirror topics on the
    /// target after a last group offset copy) and exit.
    #[arg(long)]
    failover: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let config = match MirrorConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("strait-mirror: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    for key in &config.unknown_keys {
        tracing::warn!(key, "configuration key not used by strait-mirror; ignored");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("strait-mirror: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.failover {
        if !config.flows.iter().any(|f| f.linked()) {
            eprintln!(
                "strait-mirror: invalid configuration: --failover: no enabled flow has mirror.mode = linked"
            );
            return ExitCode::from(2);
        }
        let report = runtime.block_on(strait_mirror::failover::run(&config));
        println!(
            "failover: {} topics failed over, {} failed",
            report.failed_over.len(),
            report.failures.len()
        );
        if report.failures.is_empty() {
            return ExitCode::SUCCESS;
        }
        for (flow, what, error) in &report.failures {
            eprintln!("strait-mirror: failover of {flow}: {what}: {error}");
        }
        eprintln!("strait-mirror: failover incomplete; run it again once the target is reachable");
        return ExitCode::FAILURE;
    }
    match runtime.block_on(run(config, args.metrics_addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strait-mirror: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: MirrorConfig, metrics_addr: SocketAddr) -> anyhow::Result<()> {
    let metrics = Metrics::new()?;
    let listener = metrics::bind(metrics_addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(metrics::serve(listener, metrics.clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("stopping: committing progress");
        let _ = stop_tx.send(true);
    });
    let flows: Vec<String> = config.flows.iter().map(|f| f.name()).collect();
    tracing::info!(metrics = %bound, flows = ?flows, "strait-mirror started");
    strait_mirror::engine::run(config, metrics, stop_rx).await?;
    Ok(())
}
