//! `strait-broker`: starts a Strait broker. With no arguments it is a single-node broker on
//! 127.0.0.1:9092 with data in `./strait-data`; otherwise it takes a Kafka-style
//! `server.properties` file and `--override key=value` settings, using Kafka's key names.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use strait_broker::telemetry::Telemetry;
use strait_config::BrokerConfig;
use tracing::{error, warn};

#[derive(Parser, Debug)]
#[command(
    name = "strait-broker",
    version,
    about = "Strait: a Kafka-compatible event streaming broker",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// A server.properties file (Kafka's format and key names).
    #[arg(long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The same file given positionally, as kafka-server-start.sh takes it.
    #[arg(value_name = "SERVER_PROPERTIES", conflicts_with = "config")]
    positional_config: Option<PathBuf>,
    /// Set one config key, overriding the file (repeatable), e.g. --override log.dirs=/data.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// A SCRAM credential to create with a new cluster (repeatable), in the syntax of
    /// `kafka-storage format --add-scram`, e.g. 'SCRAM-SHA-512=[name=admin,password=secret]'.
    /// Applied once, when the metadata log is created; ignored (logged) afterwards.
    #[arg(long = "add-scram", value_name = "MECHANISM=[name=...,password=...]")]
    add_scram: Vec<String>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Runs a local cluster: N brokers on 127.0.0.1 in racks a, b, c (the first three also form
    /// the metadata quorum). Ctrl-C stops it.
    Dev {
        /// Number of brokers.
        #[arg(long, default_value_t = 3)]
        brokers: u16,
        /// Kafka port of node 1; node i listens on base+2(i-1), its controller one above,
        /// its /metrics and /ready on base+1000+(i-1).
        #[arg(long, default_value_t = 9092)]
        base_port: u16,
        /// Where the nodes keep their data (node-1, node-2, ...).
        #[arg(long, default_value = "strait-dev")]
        data_dir: PathBuf,
        /// Extra `key=value` setting for every node (repeatable).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
}

fn main() -> ExitCode {
    // tonic's TLS (the controller quorum) uses rustls's process-wide provider; make it the one
    // the Kafka listeners name explicitly, whatever other crates enable.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    if let Some(Command::Dev {
        brokers,
        base_port,
        data_dir,
        overrides,
    }) = cli.command
    {
        let options = strait_broker::dev::DevOptions {
            brokers,
            base_port,
            data_dir,
            overrides,
        };
        return match strait_broker::dev::run(&options, wait_for_ctrl_c) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("strait-broker dev: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let (telemetry, telemetry_problem) = Telemetry::init(std::io::stderr().is_terminal());
    if let Some(problem) = telemetry_problem {
        warn!("{problem}");
    } else if telemetry.exporting() {
        tracing::info!("exporting request spans over OTLP");
    }
    let file = cli.config.or(cli.positional_config);
    let (mut config, warnings) = match BrokerConfig::load(file.as_deref(), &cli.overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("strait-broker: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    for arg in &cli.add_scram {
        match strait_auth::add_scram::parse(arg) {
            Ok(credential) => config.bootstrap_scram.push(credential),
            Err(e) => {
                eprintln!("strait-broker: --add-scram: {e}");
                return ExitCode::from(2);
            }
        }
    }
    for w in warnings {
        warn!("{w}");
    }
    // Every segment holds open files; like Kafka's start scripts, use all the descriptors the
    // hard limit allows rather than failing at the soft default of 1024.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) if n < 10_000 => warn!(limit = n, "open file limit is low; raise `ulimit -n`"),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot raise the open file limit"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("strait-broker: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = tx.send(true);
        });
        strait_broker::run(config, rx).await
    });
    // Flush spans before exiting; the exporter blocks, so the runtime is gone by now.
    drop(runtime);
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("strait-broker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot install the SIGTERM handler");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

/// Blocks until SIGINT or SIGTERM (the dev launcher has no async runtime of its own).
fn wait_for_ctrl_c() {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(wait_for_signal()),
        Err(e) => eprintln!("strait-broker dev: cannot wait for signals: {e}"),
    }
}
