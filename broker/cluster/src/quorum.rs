//! The replicated metadata log: openraft over tonic gRPC.
//!
//! Every controller runs a [`Quorum`]: an openraft node
//! whose log entries are [`MetadataBatch`]es (one controller decision, applied atomically) and
//! whose state machine is the metadata [`Image`]. The same gRPC service carries Raft's RPCs, the
//! controller RPCs brokers send ([`ControllerClient`]) and the metadata long poll of broker-only
//! nodes ([`MetadataFollower`]). Only the Raft leader runs the [`Controller`](crate::controller::Controller)
//! (see `active`).
//!
//! On disk (`QuorumConfig::dir`): `raft-log` (entries, fsynced per append), `vote.json`
//! (fsynced), `committed.json`, and `snapshot` (the serialised image with its Raft metadata).
//! A snapshot is taken every `snapshot_every` entries and the log is purged up to it.
//!
//! The voter set lives in the Raft log (openraft membership entries, see `membership`):
//! `controller.quorum.voters` only seeds it when the log is empty; a controller started without
//! voters waits, uninitialised, to be added as a learner (observer) and then as a voter. An
//! empty log given `controller.quorum.bootstrap.servers` as well first makes sure no quorum runs
//! already (see `seed`): a seed voter that lost its disk must not start a second one.

mod active;
mod client;
mod codec;
mod durable;
mod follower;
mod log_store;
mod membership;
mod network;
mod proto;
mod seed;
mod service;
mod state_machine;
#[cfg(test)]
mod storage_tests;
mod tls;

use std::collections::BTreeMap;
use std::io::{self, Cursor};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InitializeError, RaftError};
use openraft::{Config, Raft, RaftMetrics, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use uuid::Uuid;

pub use client::ControllerClient;
pub use follower::MetadataFollower;
pub use membership::{Step as VoterStep, VoterNode, plan as plan_voter_change};
pub use tls::QuorumTls;

use crate::controller::ControllerSettings;
use crate::image::Image;
use crate::record::MetadataRecord;
use crate::rpc::ControllerError;
use active::ActiveController;
use durable::Reserve;
use log_store::LogStore;
use network::Network;
use proto::{MAX_MESSAGE_BYTES, QuorumServer};
use service::QuorumService;
use state_machine::StateMachine;

/// openraft's node id: a Kafka `node.id` (never negative for a voter).
pub type NodeId = u64;

/// One metadata log entry: the records of one controller decision, applied atomically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataBatch {
    pub records: Vec<MetadataRecord>,
}

openraft::declare_raft_types!(
    /// The quorum's openraft types: entries carry [`MetadataBatch`]es, snapshots are the
    /// serialised [`Image`] in memory.
    pub TypeConfig:
        D = MetadataBatch,
        R = (),
        NodeId = NodeId,
        Node = VoterNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// Raft heartbeat interval.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);
/// A follower that hears no leader for a random time in this range starts an election.
pub const ELECTION_TIMEOUT: (Duration, Duration) =
    (Duration::from_millis(500), Duration::from_millis(1000));
/// How often the active controller's periodic work runs.
pub const TICK_INTERVAL: Duration = Duration::from_millis(100);

/// openraft's metrics of a quorum member.
pub type QuorumMetrics = RaftMetrics<NodeId, VoterNode>;

/// The voter ids and every member's record (voters and observers) in `metrics`.
pub fn membership_of(metrics: &QuorumMetrics) -> (Vec<i32>, BTreeMap<i32, VoterNode>) {
    let membership = metrics.membership_config.membership();
    let voters = membership.voter_ids().filter_map(node_to_i32).collect();
    let nodes = membership
        .nodes()
        .filter_map(|(id, node)| Some((node_to_i32(*id)?, node.clone())))
        .collect();
    (voters, nodes)
}

fn node_to_i32(id: NodeId) -> Option<i32> {
    i32::try_from(id).ok()
}

/// What a voter needs to run the quorum.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// Kafka `node.id` of this controller.
    pub node_id: i32,
    /// `controller.quorum.voters`: id -> `host:port` of each voter's controller listener. Seeds
    /// the voter set of an empty log; empty for a controller that joins an existing quorum as an
    /// observer (`controller.quorum.bootstrap.servers`).
    pub voters: BTreeMap<i32, String>,
    /// `controller.quorum.bootstrap.servers` (`host:port`) besides the voters: an empty log
    /// seeds the voters only if these show no running quorum (see `seed`).
    pub bootstrap: Vec<String>,
    /// This node's metadata log directory id, recorded with its entry in the voter set.
    pub directory_id: Uuid,
    /// Address the quorum gRPC service listens on (this controller's CONTROLLER listener). Port 0
    /// picks a free port, allowed only for a quorum of this voter alone (nobody else has to
    /// reach it): its address in `voters` is then replaced by the one bound.
    pub bind: SocketAddr,
    /// Metadata log directory; created if missing.
    pub dir: PathBuf,
    pub settings: ControllerSettings,
    /// Log entries between snapshots; the log is purged up to each snapshot.
    pub snapshot_every: u64,
    /// Plaintext or TLS, for the server and for connections to the other voters.
    pub tls: QuorumTls,
}

#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("invalid quorum configuration: {0}")]
    Config(String),
    #[error("metadata log directory {dir}: {source}")]
    Storage { dir: PathBuf, source: io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("raft: {0}")]
    Raft(String),
    #[error("this voter is not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<i32> },
    #[error("the metadata quorum is unavailable: {0}")]
    Unavailable(String),
}

/// A running voter of the metadata quorum: Raft, its gRPC server and the active controller.
pub struct Quorum {
    node_id: i32,
    /// Where the gRPC service listens (the bound port when `bind` asked for a free one).
    local_addr: SocketAddr,
    raft: Raft<TypeConfig>,
    image: watch::Receiver<Arc<Image>>,
    active: Arc<ActiveController>,
    stopping: watch::Sender<bool>,
    server: JoinHandle<()>,
    ticker: JoinHandle<()>,
    /// The log was empty and seeding was withheld: this node waits to join a running quorum.
    withheld: bool,
}

fn validate(config: &QuorumConfig) -> Result<(NodeId, BTreeMap<NodeId, VoterNode>), QuorumError> {
    let node_id = NodeId::try_from(config.node_id)
        .map_err(|_| QuorumError::Config(format!("node.id {} is negative", config.node_id)))?;
    if !config.voters.is_empty() && !config.voters.contains_key(&config.node_id) {
        return Err(QuorumError::Config(format!(
            "node.id {} is not among controller.quorum.voters",
            config.node_id
        )));
    }
    if config.bind.port() == 0 && config.voters.len() != 1 {
        return Err(QuorumError::Config(
            "only a single-voter quorum may listen on a free port".into(),
        ));
    }
    if config.snapshot_every == 0 {
        return Err(QuorumError::Config(
            "snapshot_every must be positive".into(),
        ));
    }
    let mut members = BTreeMap::new();
    for (id, addr) in &config.voters {
        let id = NodeId::try_from(*id)
            .map_err(|_| QuorumError::Config(format!("voter id {id} is negative")))?;
        // Only this node's own directory id is known here; the others report theirs once they
        // run (see `ClusterNode`'s membership upkeep).
        let dir = (id == node_id).then_some(config.directory_id);
        members.insert(id, VoterNode::new(addr, dir));
    }
    Ok((node_id, members))
}

fn raft_config(snapshot_every: u64) -> Result<Config, QuorumError> {
    Config {
        cluster_name: "strait-metadata".into(),
        heartbeat_interval: HEARTBEAT_INTERVAL.as_millis() as u64,
        election_timeout_min: ELECTION_TIMEOUT.0.as_millis() as u64,
        election_timeout_max: ELECTION_TIMEOUT.1.as_millis() as u64,
        // Per snapshot chunk; chunks travel as JSON (a byte array grows about 3.5 times).
        install_snapshot_timeout: 2_000,
        snapshot_max_chunk_size: 256 * 1024,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_every),
        // Lagging voters get the snapshot instead of old entries.
        max_in_snapshot_log_to_keep: 0,
        // An AppendEntries must be decoded and appended within openraft's deadline (the
        // heartbeat interval). Entries can carry hundreds of records (a batch of ISR changes, a
        // CreateTopics of many partitions): 300 of them (openraft's default) made a voter that
        // fell behind time out on every attempt and never catch up.
        max_payload_entries: 32,
        purge_batch_size: 1,
        ..Config::default()
    }
    .validate()
    .map_err(|e| QuorumError::Config(e.to_string()))
}

impl Quorum {
    /// Opens the metadata log in `config.dir`, starts Raft and the gRPC server on `config.bind`,
    /// and, when the log is empty, initialises the cluster with every voter. Every voter does
    /// this at its first start: openraft allows initialisation with the same membership by any
    /// number of voters, all of them write the same first entry. Without seed voters the node
    /// stays uninitialised until a leader adds it as a learner.
    pub async fn start(config: QuorumConfig) -> Result<Quorum, QuorumError> {
        let (node_id, mut members) = validate(&config)?;
        let storage_error = |source| QuorumError::Storage {
            dir: config.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&config.dir).map_err(storage_error)?;
        let (image_tx, image_rx) = watch::channel(Arc::new(Image::default()));
        let reserve = Arc::new(Reserve::open(&config.dir, durable::RESERVE_BYTES));
        let log_store = LogStore::open(&config.dir, reserve.clone()).map_err(storage_error)?;
        let state_machine =
            StateMachine::open(&config.dir, Arc::new(image_tx), reserve).map_err(storage_error)?;
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| QuorumError::Bind {
                addr: config.bind,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| QuorumError::Bind {
            addr: config.bind,
            source,
        })?;
        if config.bind.port() == 0 {
            members.insert(
                node_id,
                VoterNode::new(local_addr.to_string(), Some(config.directory_id)),
            );
        }
        let alone = members.len() == 1;

        let raft_config = Arc::new(raft_config(config.snapshot_every)?);
        // Built before anything runs, so a TLS problem stops the start with its cause.
        let server = match config.tls.server_config() {
            Some(tls) => tonic::transport::Server::builder()
                .tls_config(tls)
                .map_err(|e| QuorumError::Config(format!("controller listener TLS: {e}")))?,
            None => tonic::transport::Server::builder(),
        };
        let network = Network(config.tls.clone());
        let raft = Raft::new(node_id, raft_config, network, log_store, state_machine)
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))?;
        let active = Arc::new(ActiveController::new(
            node_id,
            raft.clone(),
            image_rx.clone(),
            config.settings.clone(),
        ));
        let (stopping, stopping_rx) = watch::channel(false);
        let service = QuorumService {
            raft: raft.clone(),
            image: image_rx.clone(),
            active: active.clone(),
            stopping: stopping_rx.clone(),
            node_id,
            directory_id: config.directory_id,
            warned: Default::default(),
        };
        let server = tokio::spawn(serve(server, listener, service, stopping_rx.clone()));
        let ticker = tokio::spawn(tick_loop(active.clone(), raft.clone(), stopping_rx));

        let mut quorum = Quorum {
            node_id: config.node_id,
            local_addr,
            raft,
            image: image_rx,
            active,
            stopping,
            server,
            ticker,
            withheld: false,
        };
        match quorum
            .initialize(members, &config.bootstrap, &config.tls)
            .await
        {
            Ok(seeded) => quorum.withheld = !seeded,
            Err(e) => {
                quorum.shutdown().await;
                return Err(e);
            }
        }
        // Callers read the voter set right after the start (is this node alone?): let the
        // metrics show the membership the log holds.
        if quorum.raft.is_initialized().await.unwrap_or(false) {
            let mut metrics = quorum.raft.metrics();
            let shown =
                metrics.wait_for(|m| m.membership_config.membership().nodes().next().is_some());
            let _ = tokio::time::timeout(Duration::from_secs(2), shown).await;
        }
        if alone && !quorum.withheld {
            // A lone voter needs no election timeout to learn that nobody else leads: elect now,
            // so that a single node serves within moments of starting.
            if let Err(e) = quorum.raft.trigger().elect().await {
                quorum.shutdown().await;
                return Err(QuorumError::Raft(e.to_string()));
            }
        }
        Ok(quorum)
    }

    /// The address the quorum's gRPC service listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Seeds an empty log with `members` unless [`seed::decide`] finds a running quorum through
    /// `bootstrap`; false when seeding was withheld.
    async fn initialize(
        &self,
        members: BTreeMap<NodeId, VoterNode>,
        bootstrap: &[String],
        tls: &QuorumTls,
    ) -> Result<bool, QuorumError> {
        if members.is_empty() {
            return Ok(true);
        }
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))?;
        if initialized {
            return Ok(true);
        }
        let node_id = NodeId::try_from(self.node_id).unwrap_or(NodeId::MAX);
        if let seed::Seeding::Join(why) = seed::decide(node_id, &members, bootstrap, tls).await {
            tracing::warn!(
                node = self.node_id,
                "the metadata log is empty but {why}: this node joins that quorum as an \
                 observer instead of seeding a second one from controller.quorum.voters \
                 (a lost disk? the voter is replaced once the quorum lists it as an observer)"
            );
            return Ok(false);
        }
        match self.raft.initialize(members).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(true),
            Err(e) => Err(QuorumError::Raft(e.to_string())),
        }
    }

    /// Whether this node found its log empty and a running quorum, and so did not seed it: it
    /// waits to be added (see `seed`).
    pub fn seeding_withheld(&self) -> bool {
        self.withheld
    }

    /// The metadata image, updated after every applied entry (and installed snapshot).
    pub fn image(&self) -> watch::Receiver<Arc<Image>> {
        self.image.clone()
    }

    /// The current Raft leader (the active controller), as far as this voter knows.
    pub fn leader(&self) -> Option<i32> {
        self.raft
            .metrics()
            .borrow()
            .current_leader
            .and_then(node_to_i32)
    }

    /// This voter's node id.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The voter set and every member's record (voters and observers) as this node's log has
    /// them; empty before an observer is added.
    pub fn membership(&self) -> (Vec<i32>, BTreeMap<i32, VoterNode>) {
        membership_of(&self.raft.metrics().borrow())
    }

    /// openraft's metrics of this voter (state, term, last applied, snapshot, purged).
    pub fn metrics(&self) -> watch::Receiver<QuorumMetrics> {
        self.raft.metrics()
    }

    /// Commits `records` as one log entry, on the leader only, serialised with the controller's
    /// decisions. Returns the log index once the entry is applied on this voter.
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Result<u64, QuorumError> {
        self.active.propose(records).await.map_err(|e| match e {
            ControllerError::NotController { leader } => QuorumError::NotLeader { leader },
            other => QuorumError::Unavailable(other.to_string()),
        })
    }

    /// Stops Raft, the periodic controller work and the gRPC server.
    pub async fn shutdown(self) {
        self.stopping.send_replace(true);
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not stop cleanly");
        }
        let _ = self.ticker.await;
        let mut server = self.server;
        // In-flight calls get a moment to finish; a peer holding a connection cannot keep the
        // server (and its port) alive.
        if tokio::time::timeout(Duration::from_secs(3), &mut server)
            .await
            .is_err()
        {
            server.abort();
            let _ = server.await;
        }
    }
}

async fn serve(
    mut server: tonic::transport::Server,
    listener: tokio::net::TcpListener,
    service: QuorumService,
    mut stopping: watch::Receiver<bool>,
) {
    let service = QuorumServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let stop = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    if let Err(e) = server
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, stop)
        .await
    {
        tracing::error!(error = %e, "the metadata quorum's gRPC server failed");
    }
}

/// Runs the active controller's periodic work, and activates it as soon as this voter becomes
/// leader (leadership changes show in openraft's metrics).
async fn tick_loop(
    active: Arc<ActiveController>,
    raft: Raft<TypeConfig>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut metrics = raft.metrics();
    let mut interval = tokio::time::interval(TICK_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_leader = false;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            changed = metrics.changed() => {
                if changed.is_err() {
                    return;
                }
                let leader = active.is_leader();
                let became_leader = leader && !was_leader;
                was_leader = leader;
                if !became_leader {
                    continue;
                }
            }
            _ = stopping.wait_for(|stop| *stop) => return,
        }
        active.tick().await;
    }
}
