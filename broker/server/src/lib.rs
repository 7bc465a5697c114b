//! Strait broker: a Kafka-protocol server over the Strait log engine.
//!
//! Layers, outside in: `net` (framing, listeners, connections) hands request frames to `api`
//! (one module per Kafka API, translating protocol messages), which works on `broker` (shared
//! state: one of each owner) — `replica_manager` (the hosted partitions, the one leader append;
//! `partition` below it) over `strait_storage` (the logs), `group` (the group coordinator), `txn` (the transaction coordinator and its markers), and
//! `node` (this node's part in the cluster: joining the metadata quorum, registration and
//! heartbeats, applying the metadata image to the replica manager, the replica fetchers and the
//! ISR task; a single node is a quorum of one voter). `remote_log` is tiered storage (copies
//! to and reads from the object store, remote retention). `migrate`
//! adopts the topic catalogue of older single-node data dirs. `tasks` runs background
//! maintenance; `run` wires it all together.

pub mod api;
pub mod broker;
pub mod clock;
pub mod dev;
pub mod errors;
pub mod fetch_session;
pub mod frame;
pub mod group;
pub mod identity;
pub mod internal_topic;
pub mod metrics;
pub mod migrate;
pub mod net;
pub mod node;
pub mod oauth_keys;
pub mod partition;
pub mod quota;
pub mod record_codec;
pub mod remote_log;
pub mod replica_manager;
pub mod tasks;
pub mod telemetry;
pub mod tls;
pub mod txn;
pub mod zero_copy;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use strait_config::BrokerConfig;
use tokio::sync::watch;
use tracing::info;

use crate::broker::Broker;

/// How long a single node waits to become ready before it serves anyway (it normally takes a
/// few milliseconds: elect itself, register, unfence, lead its partitions).
const LONE_VOTER_READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// After this long without a cluster id from the quorum, say what the start is waiting for.
const CLUSTER_ID_NOTICE: std::time::Duration = std::time::Duration::from_secs(3);

/// Waits until `broker.readiness()` holds, up to `timeout`; the last reason otherwise.
async fn wait_until_ready(broker: &Broker, timeout: std::time::Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let why = match broker.readiness() {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(why);
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A broker opened and taking part in its metadata quorum (cluster tasks running; a single node
/// already ready), not yet serving its Kafka listeners.
pub struct Started {
    pub broker: Arc<Broker>,
    /// Registration/heartbeats, the image applier, the replica fetchers and the ISR task; they
    /// end when the `shutdown` given to [`start`] turns true.
    pub cluster_tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Checks the data dirs' identity, joins (or, alone, forms) the metadata quorum, opens the logs,
/// adopts an earlier single node's topic catalogue, and starts the cluster tasks.
pub async fn start(
    config: BrokerConfig,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Started> {
    for key in config.explicit.keys() {
        if let Some(why) = strait_config::deprecation(key) {
            tracing::warn!(key = %key, "deprecated broker config accepted with no effect: {why}");
        }
    }
    // OAUTHBEARER's key set before anything else: a broker that cannot verify tokens must not
    // start serving (nor join the quorum).
    let oauth_keys = match &config.sasl.oauth {
        Some(settings) => Some(Arc::new(oauth_keys::OAuthKeys::load(settings)?)),
        None => None,
    };
    // The identity first: a data dir of another node or cluster must stop the start before the
    // metadata log is opened in it.
    let (dirs, node_id, configured_id) = (
        identity_dirs(&config),
        config.node_id,
        config.cluster_id.clone(),
    );
    let local_id = tokio::task::spawn_blocking(move || {
        identity::read(&dirs, node_id, configured_id.as_deref())
    })
    .await
    .context("start-up task failed")?
    .context("cannot open the log dirs")?;
    let legacy = migrate::legacy_catalogue(&config.log_dirs[0])?;
    let candidate = local_id.clone().unwrap_or_else(identity::random_kafka_id);
    let node = node::ClusterNode::start(&config, &candidate).await?;
    let cluster_id = match agree_cluster_id(&node, local_id.as_deref(), shutdown.clone()).await {
        Ok(id) => id,
        Err(e) => {
            node.stop().await;
            return Err(e);
        }
    };
    let formatted = {
        let (dirs, node_id, id) = (identity_dirs(&config), config.node_id, cluster_id.clone());
        let preset = BTreeMap::from([node.metadata_directory()]);
        tokio::task::spawn_blocking(move || identity::format_new_dirs(&dirs, node_id, &id, &preset))
            .await
    };
    if let Err(e) = formatted
        .context("start-up task failed")
        .and_then(|r| r.context("cannot format the log dirs"))
    {
        node.stop().await;
        return Err(e);
    }
    let opened = {
        let node = node.clone();
        tokio::task::spawn_blocking(move || Broker::open(config, cluster_id, node, oauth_keys))
            .await
    };
    let broker = match opened {
        Ok(Ok(broker)) => Arc::new(broker),
        Ok(Err(e)) => {
            node.stop().await;
            return Err(anyhow::Error::new(e).context("cannot open the log dirs"));
        }
        Err(e) => {
            node.stop().await;
            return Err(anyhow::Error::new(e).context("start-up task failed"));
        }
    };
    // Before the applier runs: it deletes logs of topics the image does not name.
    if let Err(e) = migrate::adopt(&broker, &node, legacy).await {
        node.stop().await;
        return Err(e);
    }
    let cluster_tasks = node.spawn_tasks(&broker.replicas, broker.clone(), shutdown);
    if node.is_lone_voter() {
        // Nobody else can make it ready: serve once registered and leading every partition, so
        // that a single node is usable the moment it says it is ready.
        let waited = wait_until_ready(&broker, LONE_VOTER_READY_TIMEOUT).await;
        if let Err(why) = waited {
            tracing::warn!(%why, "not ready yet; serving anyway");
        }
    }
    Ok(Started {
        broker,
        cluster_tasks,
    })
}

/// The dirs that carry `meta.properties`: the log dirs, and `metadata.log.dir` when it is
/// another dir (its directory id names this node in the metadata quorum, as in Kafka).
fn identity_dirs(config: &BrokerConfig) -> Vec<std::path::PathBuf> {
    let mut dirs = config.log_dirs.clone();
    if let Some(dir) = &config.metadata_log_dir
        && !dirs.contains(dir)
    {
        dirs.push(dir.clone());
    }
    dirs
}

/// The cluster id every node of this cluster reports: the one in the metadata log, written by
/// the first active controller. Waits for it (a new node of a cluster whose quorum has not
/// formed yet cannot know it) and refuses when the log dirs or `cluster.id` name another.
async fn agree_cluster_id(
    node: &node::ClusterNode,
    local: Option<&str>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<String> {
    let mut image = node.watch_image();
    let notice_at = tokio::time::Instant::now() + CLUSTER_ID_NOTICE;
    let mut told = false;
    let quorum = loop {
        if let Some(id) = image.borrow_and_update().cluster_id.clone() {
            break id;
        }
        tokio::select! {
            changed = image.changed() => changed.context("the metadata quorum stopped")?,
            _ = shutdown.wait_for(|stop| *stop) => anyhow::bail!("stopped before the metadata quorum answered"),
            _ = tokio::time::sleep_until(notice_at), if !told => {
                told = true;
                tracing::info!("waiting for the metadata quorum to form (it names the cluster id)");
            }
        }
    };
    identity::check_against_quorum(local, &quorum)?;
    Ok(quorum)
}

/// Starts the broker ([`start`]), binds the listeners and serves until `shutdown` turns true; then
/// drains connections and shuts the logs down cleanly (flush, checkpoints, clean-shutdown marker).
pub async fn run(config: BrokerConfig, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let (stop_tx, stopping) = watch::channel(false);
    // A SIGTERM first hands this broker's leaderships over (controlled shutdown), then stops
    // serving; `stopping` is what the rest of the broker sees. Watching from before the start
    // lets a SIGTERM also end a start that waits for a quorum that never forms.
    let started_node: Arc<std::sync::OnceLock<Arc<node::ClusterNode>>> = Arc::default();
    let drain = {
        let started_node = started_node.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            while !*shutdown.borrow_and_update() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
            if let Some(node) = started_node.get() {
                node.controlled_shutdown().await;
            }
            let _ = stop_tx.send(true);
        })
    };
    let Started {
        broker,
        cluster_tasks,
    } = match start(config, stopping.clone()).await {
        Ok(started) => started,
        // Asked to stop while still starting (e.g. waiting for the quorum): nothing was served,
        // nothing is lost, and the stop was what the operator wanted.
        Err(e) if *stopping.borrow() => {
            info!(reason = %format!("{e:#}"), "stopped during start-up");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let node = broker.node().clone();
    let _ = started_node.set(node.clone());
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
    let remote_log = tokio::spawn(remote_log::run(broker.clone(), shutdown.clone()));
    net::server::serve(broker.clone(), listeners, shutdown).await;
    let _ = maintenance.await;
    let _ = remote_log.await;
    let _ = drain.await;
    for task in cluster_tasks {
        let _ = task.await;
    }
    node.stop().await;
    if let Some(h) = http {
        let _ = h.await;
    }
    let b = broker.clone();
    tokio::task::spawn_blocking(move || b.replicas.logs.shutdown())
        .await
        .context("shutdown task failed")?
        .context("clean shutdown of the logs failed")?;
    info!("broker stopped cleanly");
    Ok(())
}
