//! The broker's side of a multi-node (KRaft-style) cluster. Started when `process.roles` is set.
//!
//! - this module: the node itself — starting the metadata quorum (controller role) or following
//!   it (broker-only), registering with the active controller, heartbeating, controlled shutdown
//!   and the readiness answer;
//! - `membership`: a controller's own entry in the quorum's voter set (joining as an observer,
//!   reporting its endpoint and directory id) and the voter list its controller client uses;
//! - `applier`: makes the local partitions match the metadata image (create/delete logs, become
//!   leader or follower at the image's leader epoch);
//! - `fetcher`: follower fetches from partition leaders (Fetch with the replica id) with
//!   OffsetForLeaderEpoch truncation, over `strait_client` connections;
//! - `isr`: the leader's ISR shrink/expand through AlterPartition.
//!
//! The tasks work on the hosted partitions (`replica_manager`), never on the broker above them.

pub mod applier;
pub mod fetcher;
pub mod isr;
mod membership;
pub mod mirror_claims;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context;
use strait_cluster::controller::ControllerSettings;
use strait_cluster::image::{Endpoint, Image, NO_LEADER};
use strait_cluster::quorum::{ControllerClient, MetadataFollower, Quorum, QuorumConfig, QuorumTls};
use strait_cluster::rpc::{ControllerError, ControllerRequest, ControllerResponse};
use strait_config::{BrokerConfig, KraftSettings, ProcessRoles};
use tokio::sync::{Mutex, Notify, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};
use uuid::Uuid;

use crate::replica_manager::ReplicaManager;

/// Timeout of one controller RPC, retries included.
const CONTROLLER_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a SIGTERMed broker waits for the controller to move its leaderships away.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Cluster settings taken from the broker config once.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub heartbeat_interval: Duration,
    /// `broker.session.timeout.ms`: after this long without an answered heartbeat the controller
    /// has fenced this broker, whatever the last answer said.
    pub session_timeout: Duration,
    pub replica_lag: Duration,
    pub fetch_max_bytes: i32,
    pub fetch_response_max_bytes: i32,
    pub fetch_wait: Duration,
    pub fetch_backoff: Duration,
    /// `num.replica.fetchers`: fetchers (connections) per followed leader.
    pub replica_fetchers: usize,
    /// Listener name other brokers are reached on.
    pub inter_broker_listener: String,
    /// Set when that listener is SSL.
    pub inter_broker_tls: Option<strait_client::ClientTls>,
    /// Set when that listener is SASL: this broker's own login there.
    pub inter_broker_sasl: Option<strait_client::SaslLogin>,
    pub controlled_shutdown: bool,
}

/// A partition leader's id, epoch and endpoint.
#[derive(Debug, Clone)]
pub struct LeaderHint {
    pub id: i32,
    pub epoch: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

pub struct ClusterNode {
    pub node_id: i32,
    /// This node is the quorum's only voter (a single node): nothing outside it decides.
    lone_voter: bool,
    pub settings: ClusterSettings,
    client: ControllerClient,
    image: watch::Receiver<Arc<Image>>,
    /// Offset of the last image the applier has applied.
    applied: watch::Sender<u64>,
    quorum: Mutex<Option<Quorum>>,
    follower: std::sync::Mutex<Option<MetadataFollower>>,
    /// -1 until registered.
    broker_epoch: AtomicI64,
    fenced: AtomicBool,
    /// When the controller last answered a heartbeat, and its metadata offset then.
    last_heartbeat: std::sync::Mutex<Option<(std::time::Instant, u64)>>,
    incarnation: Uuid,
    rack: Option<String>,
    endpoints: Vec<Endpoint>,
    /// Set when a controlled shutdown starts; heartbeats then ask for it.
    shutting_down: AtomicBool,
    shutdown_granted: AtomicBool,
    heartbeat_now: Notify,
    /// This broker's replicas in failed log dirs, reported in every heartbeat so that the
    /// controller moves their leaderships and ISR membership elsewhere.
    offline_partitions: std::sync::Mutex<Vec<(String, i32)>>,
    /// The metadata log dir and its directory id (Kafka's base64 form).
    metadata_directory: (PathBuf, String),
    /// A controller's upkeep of its own voter-set entry (see `membership`).
    membership: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// Plaintext, or TLS when the (first) controller listener is SSL: the same settings serve this
/// node's controller listener and its connections to the controllers, as in Kafka.
fn quorum_tls(config: &BrokerConfig) -> anyhow::Result<QuorumTls> {
    let Some((name, settings)) = config
        .controller_listener_names
        .first()
        .and_then(|name| config.ssl.get(name).map(|s| (name, s)))
    else {
        return Ok(QuorumTls::default());
    };
    let (identity, ca) = crate::tls::pem_material(name, settings)?;
    let require = settings.client_auth == strait_config::ClientAuth::Required;
    Ok(QuorumTls::new(&identity, &ca, require))
}

/// The quorum this node takes part in: as `process.roles` and the controller keys say, or, when
/// `process.roles` is empty (the embedded default and every single-node config), Kafka's combined
/// mode with this node as the only voter, so that one node runs the same metadata path as a
/// cluster. That quorum listens on a free loopback port (no controller listener to configure).
fn quorum_settings(config: &BrokerConfig) -> KraftSettings {
    match &config.kraft {
        Some(kraft) => kraft.clone(),
        None => KraftSettings {
            roles: ProcessRoles {
                broker: true,
                controller: true,
            },
            voters: BTreeMap::from([(config.node_id, ("127.0.0.1".to_string(), 0))]),
            bootstrap_servers: Vec::new(),
            controller_listener: None,
        },
    }
}

/// Where this node reaches the quorum: `controller.quorum.voters` (id -> `host:port`), or for a
/// broker-only node given only `controller.quorum.bootstrap.servers`, those addresses under
/// placeholder ids (-1, -2, ...). Voters' leader hints name real ids, which a placeholder never
/// matches, so the controller client and the metadata follower then simply try the next address
/// until they reach the leader.
/// With both keys, the bootstrap servers that are no voters are added under placeholder ids
/// too: a seed voter that withheld seeding (see `strait_cluster::quorum`) reaches the grown
/// quorum through them.
fn quorum_contacts(kraft: &strait_config::KraftSettings) -> BTreeMap<i32, String> {
    let mut contacts: BTreeMap<i32, String> = kraft
        .voters
        .iter()
        .map(|(id, (host, port))| (*id, format!("{host}:{port}")))
        .collect();
    let extra: Vec<String> = bootstrap_addresses(kraft)
        .into_iter()
        .filter(|b| !contacts.values().any(|v| v.eq_ignore_ascii_case(b)))
        .collect();
    for (i, addr) in extra.into_iter().enumerate() {
        contacts.insert(-(i as i32) - 1, addr);
    }
    contacts
}

/// `controller.quorum.bootstrap.servers` as `host:port` strings.
fn bootstrap_addresses(kraft: &strait_config::KraftSettings) -> Vec<String> {
    kraft
        .bootstrap_servers
        .iter()
        .map(|(host, port)| format!("{host}:{port}"))
        .collect()
}

impl ClusterNode {
    /// Starts the metadata quorum member (controller role) or the metadata follower.
    /// `cluster_id` is the id this node writes into the metadata log should it become the first
    /// active controller of a log that has none.
    pub async fn start(
        config: &BrokerConfig,
        cluster_id: &str,
    ) -> anyhow::Result<Arc<ClusterNode>> {
        let kraft = quorum_settings(config);
        let mut voters = quorum_contacts(&kraft);
        let quorum_tls = quorum_tls(config)?;
        let metadata_dir = config
            .metadata_log_dir
            .clone()
            .unwrap_or_else(|| config.log_dirs[0].clone());
        // The directory id names this node's copy of the metadata log in the voter set; a new
        // dir gets its id now and keeps it when `meta.properties` is written.
        let directory_id = match crate::identity::directory_id(&metadata_dir)? {
            Some(id) => id,
            None => crate::identity::random_kafka_id(),
        };
        let directory_uuid = crate::identity::directory_uuid(&directory_id).with_context(|| {
            format!(
                "{}: directory.id {directory_id} is not a Kafka directory id",
                metadata_dir.display()
            )
        })?;
        let mut own_address = None;
        let (quorum, follower, image) = if kraft.roles.controller {
            let bind = match &kraft.controller_listener {
                Some(listener) => format!("{}:{}", listener.host, listener.port)
                    .parse()
                    .with_context(|| format!("controller listener {}", listener.address()))?,
                // A lone voter's quorum is reached by this process only.
                None if config.kraft.is_none() => SocketAddr::from(([127, 0, 0, 1], 0)),
                None => anyhow::bail!(
                    "a controller needs a listener named in controller.listener.names"
                ),
            };
            let dir = metadata_dir.join(strait_storage::METADATA_LOG_DIR);
            // Without `controller.quorum.voters` this controller joins an existing quorum as an
            // observer; the bootstrap servers are only whom to ask.
            let seed: BTreeMap<i32, String> = voters
                .iter()
                .filter(|(id, _)| **id >= 0)
                .map(|(id, a)| (*id, a.clone()))
                .collect();
            let quorum = Quorum::start(QuorumConfig {
                node_id: config.node_id,
                voters: seed,
                bootstrap: bootstrap_addresses(&kraft),
                directory_id: directory_uuid,
                bind,
                dir,
                settings: ControllerSettings {
                    session_timeout: Duration::from_millis(config.broker_session_timeout_ms),
                    unclean_leader_election: config.unclean_leader_election_enable,
                    auto_leader_rebalance: config.auto_leader_rebalance_enable,
                    imbalance_check_interval: Duration::from_secs(
                        config.leader_imbalance_check_interval_seconds,
                    ),
                    producer_id_block: 1000,
                    cluster_id: cluster_id.to_string(),
                    bootstrap_scram: config
                        .bootstrap_scram
                        .iter()
                        .map(|a| {
                            let c = &a.credential;
                            let stored = strait_cluster::image::StoredScram {
                                salt: c.salt.clone(),
                                stored_key: c.stored_key.clone(),
                                server_key: c.server_key.clone(),
                                iterations: c.iterations,
                            };
                            (a.name.clone(), a.mechanism.kafka_type(), stored)
                        })
                        .collect(),
                },
                snapshot_every: 1000,
                tls: quorum_tls.clone(),
            })
            .await
            .context("cannot start the metadata quorum")?;
            if bind.port() == 0 {
                voters.insert(config.node_id, quorum.local_addr().to_string());
            } else {
                own_address = Some(membership::own_address(config, &kraft, bind));
            }
            let image = quorum.image();
            (Some(quorum), None, image)
        } else {
            let (image, follower) = MetadataFollower::start(voters.clone(), quorum_tls.clone());
            (None, Some(follower), image)
        };
        // The log's voter set, not the seed, says whether this node is alone: a node seeded
        // alone may have been joined by others since.
        let lone_voter = kraft.roles.controller
            && kraft.voters.len() == 1
            && quorum.as_ref().is_some_and(|q| {
                let (members, _) = q.membership();
                !q.seeding_withheld() && (members.is_empty() || members == [config.node_id])
            });
        let client = ControllerClient::new(voters, quorum_tls);
        let membership = match (&quorum, own_address, &follower) {
            (Some(q), Some(address), _) => Some(tokio::spawn(membership::upkeep(
                config.node_id,
                directory_uuid,
                address,
                q.metrics(),
                client.clone(),
            ))),
            (None, _, Some(f)) => Some(tokio::spawn(membership::follow_voters(
                f.voters(),
                client.clone(),
            ))),
            _ => None,
        };
        let inter_broker = config.inter_broker_listener().name.clone();
        // Only a broker fetches from other brokers.
        let peer_ssl = config.ssl.get(&inter_broker).filter(|_| kraft.roles.broker);
        let inter_broker_tls = match peer_ssl {
            Some(settings) => Some(crate::tls::connector(&inter_broker, settings)?),
            None => None,
        };
        let inter_broker_sasl = config
            .sasl
            .client_login(&inter_broker)
            .filter(|_| kraft.roles.broker)
            .map(|(mechanism, username, password)| strait_client::SaslLogin {
                mechanism,
                username,
                password,
            });
        let endpoints = config
            .advertised_listeners
            .iter()
            .map(|l| Endpoint {
                name: l.name.clone(),
                host: l.host.clone(),
                port: l.port,
                security_protocol: l.security_protocol.clone(),
            })
            .collect();
        Ok(Arc::new(ClusterNode {
            node_id: config.node_id,
            lone_voter,
            settings: ClusterSettings {
                heartbeat_interval: Duration::from_millis(config.broker_heartbeat_interval_ms),
                session_timeout: Duration::from_millis(config.broker_session_timeout_ms),
                replica_lag: Duration::from_millis(config.replica_lag_time_max_ms),
                fetch_max_bytes: i32::try_from(config.replica_fetch_max_bytes).unwrap_or(i32::MAX),
                fetch_response_max_bytes: i32::try_from(config.replica_fetch_response_max_bytes)
                    .unwrap_or(i32::MAX),
                fetch_wait: Duration::from_millis(config.replica_fetch_wait_max_ms),
                fetch_backoff: Duration::from_millis(config.replica_fetch_backoff_ms),
                replica_fetchers: config.num_replica_fetchers.max(1),
                inter_broker_listener: inter_broker,
                inter_broker_tls,
                inter_broker_sasl,
                controlled_shutdown: config.controlled_shutdown_enable,
            },
            client,
            image,
            applied: watch::Sender::new(0),
            quorum: Mutex::new(quorum),
            follower: std::sync::Mutex::new(follower),
            broker_epoch: AtomicI64::new(-1),
            fenced: AtomicBool::new(true),
            last_heartbeat: std::sync::Mutex::new(None),
            incarnation: Uuid::new_v4(),
            rack: config.broker_rack.clone(),
            endpoints,
            shutting_down: AtomicBool::new(false),
            shutdown_granted: AtomicBool::new(false),
            heartbeat_now: Notify::new(),
            offline_partitions: std::sync::Mutex::new(Vec::new()),
            metadata_directory: (metadata_dir, directory_id),
            membership: std::sync::Mutex::new(membership),
        }))
    }

    /// The metadata log dir and the directory id its `meta.properties` must name.
    pub fn metadata_directory(&self) -> (PathBuf, String) {
        self.metadata_directory.clone()
    }

    /// Whether this node is the quorum's only voter.
    pub fn is_lone_voter(&self) -> bool {
        self.lone_voter
    }

    /// Commits `records` through this node's quorum member (it must lead the quorum), for
    /// metadata decided outside the controller's requests (adopting an older data dir).
    pub async fn propose(
        &self,
        records: Vec<strait_cluster::record::MetadataRecord>,
    ) -> anyhow::Result<u64> {
        let quorum = self.quorum.lock().await;
        let quorum = quorum
            .as_ref()
            .context("this node is not a voter of the metadata quorum")?;
        Ok(quorum.propose(records).await?)
    }

    /// The latest metadata image this node has applied.
    pub fn image(&self) -> Arc<Image> {
        self.image.borrow().clone()
    }

    pub fn watch_image(&self) -> watch::Receiver<Arc<Image>> {
        self.image.clone()
    }

    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::SeqCst)
    }

    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::SeqCst)
    }

    /// Sends a request to the active controller, wherever it is.
    pub async fn call(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerResponse, ControllerError> {
        self.client.call(request, CONTROLLER_CALL_TIMEOUT).await
    }

    /// Waits until the local image satisfies `done` (a change this broker asked the controller
    /// for has reached it) and this broker's applier has applied that image (so its partitions
    /// match: a produce right after a CreateTopics finds the partition), up to `timeout`.
    /// Returns whether both happened.
    pub async fn wait_for_image(&self, timeout: Duration, done: impl Fn(&Image) -> bool) -> bool {
        let mut rx = self.image.clone();
        let mut applied = self.applied.subscribe();
        tokio::time::timeout(timeout, async {
            let offset = loop {
                {
                    let image = rx.borrow_and_update();
                    if done(&image) {
                        break image.offset;
                    }
                }
                if rx.changed().await.is_err() {
                    return false;
                }
            };
            applied.wait_for(|a| *a >= offset).await.is_ok()
        })
        .await
        .unwrap_or(false)
    }

    /// The applier has made this broker's partitions match the image at `offset`.
    pub fn mark_applied(&self, offset: u64) {
        self.applied.send_if_modified(|a| {
            let newer = offset > *a;
            if newer {
                *a = offset;
            }
            newer
        });
    }

    /// Starts registration/heartbeats, the image applier, the replica fetchers and the ISR task.
    /// `roles` hears of the partitions' roles the applier sets.
    pub fn spawn_tasks(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        roles: Arc<dyn applier::RoleListener>,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<JoinHandle<()>> {
        vec![
            tokio::spawn(self.clone().heartbeats(shutdown.clone())),
            tokio::spawn(applier::run(
                replicas.clone(),
                roles,
                self.clone(),
                shutdown.clone(),
            )),
            tokio::spawn(fetcher::run(
                replicas.clone(),
                self.clone(),
                shutdown.clone(),
            )),
            tokio::spawn(isr::run(replicas.clone(), self.clone(), shutdown)),
        ]
    }

    /// Sets the replicas in failed log dirs; a change is reported at once.
    pub fn set_offline_partitions(&self, partitions: Vec<(String, i32)>) {
        let mut slot = self
            .offline_partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if *slot != partitions {
            *slot = partitions;
            self.heartbeat_now.notify_one();
        }
    }

    fn offline_partitions(&self) -> Vec<(String, i32)> {
        self.offline_partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Registers, then heartbeats every `broker.heartbeat.interval.ms` until shutdown.
    async fn heartbeats(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let epoch = self.broker_epoch();
            let request = if epoch < 0 {
                ControllerRequest::RegisterBroker {
                    id: self.node_id,
                    incarnation: self.incarnation,
                    rack: self.rack.clone(),
                    endpoints: self.endpoints.clone(),
                }
            } else {
                ControllerRequest::Heartbeat {
                    id: self.node_id,
                    epoch,
                    metadata_offset: self.image.borrow().offset,
                    want_shutdown: self.shutting_down.load(Ordering::SeqCst),
                    offline_partitions: self.offline_partitions(),
                }
            };
            match self
                .client
                .call(request, self.settings.heartbeat_interval * 2)
                .await
            {
                Ok(ControllerResponse::Registered { epoch }) => {
                    info!(
                        node_id = self.node_id,
                        epoch, "registered with the controller"
                    );
                    self.broker_epoch.store(epoch, Ordering::SeqCst);
                    // Heartbeat right away: unfencing waits for the first one.
                    continue;
                }
                Ok(ControllerResponse::Heartbeat {
                    fenced,
                    should_shutdown,
                    metadata_offset,
                }) => {
                    *self
                        .last_heartbeat
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) =
                        Some((std::time::Instant::now(), metadata_offset));
                    let was = self.fenced.swap(fenced, Ordering::SeqCst);
                    if was != fenced {
                        info!(node_id = self.node_id, fenced, "broker fencing changed");
                    }
                    if should_shutdown {
                        self.shutdown_granted.store(true, Ordering::SeqCst);
                    }
                }
                Ok(other) => warn!(?other, "unexpected controller answer to a heartbeat"),
                Err(ControllerError::StaleBrokerEpoch { .. }) => {
                    warn!(
                        node_id = self.node_id,
                        "controller does not know this broker epoch; registering again"
                    );
                    self.broker_epoch.store(-1, Ordering::SeqCst);
                    self.fenced.store(true, Ordering::SeqCst);
                    continue;
                }
                Err(e) => warn!(error = %e, "heartbeat failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.heartbeat_interval) => {}
                _ = self.heartbeat_now.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Kafka's controlled shutdown: ask the controller to move this broker's leaderships away
    /// and wait (bounded) until it says the broker may go. Gives up, so that a SIGTERM always
    /// ends, when no other broker is alive to take the leaderships, when no controller has
    /// answered for a broker session timeout (the controller fences this broker by then anyway),
    /// or after [`CONTROLLED_SHUTDOWN_TIMEOUT`].
    pub async fn controlled_shutdown(&self) {
        if !self.settings.controlled_shutdown || self.broker_epoch() < 0 {
            return;
        }
        if !self.image().live_brokers().any(|b| b.id != self.node_id) {
            info!("no other live broker to hand leaderships to; skipping controlled shutdown");
            return;
        }
        self.shutting_down.store(true, Ordering::SeqCst);
        let started = tokio::time::Instant::now();
        let deadline = started + CONTROLLED_SHUTDOWN_TIMEOUT;
        let mut last_answer = started;
        while !self.shutdown_granted.load(Ordering::SeqCst) {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                warn!("controlled shutdown not acknowledged in time; shutting down anyway");
                return;
            }
            if now.duration_since(last_answer) >= self.settings.session_timeout {
                warn!(
                    waited_ms = now.duration_since(started).as_millis() as u64,
                    "no active controller answered for a broker session timeout; shutting down \
                     without handing leaderships over"
                );
                return;
            }
            let request = ControllerRequest::Heartbeat {
                id: self.node_id,
                epoch: self.broker_epoch(),
                metadata_offset: self.image.borrow().offset,
                want_shutdown: true,
                offline_partitions: self.offline_partitions(),
            };
            let left = deadline.min(last_answer + self.settings.session_timeout) - now;
            let answer = self
                .client
                .call(request, left.min(Duration::from_secs(5)))
                .await;
            match answer {
                Ok(ControllerResponse::Heartbeat {
                    should_shutdown: true,
                    ..
                }) => break,
                Ok(_) => last_answer = tokio::time::Instant::now(),
                Err(e) => {
                    warn!(error = %e, "controlled shutdown request failed");
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        info!("controlled shutdown complete: leaderships handed over");
    }

    /// Stops the quorum member or the metadata follower.
    pub async fn stop(&self) {
        let upkeep = self
            .membership
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(upkeep) = upkeep {
            upkeep.abort();
            let _ = upkeep.await;
        }
        if let Some(quorum) = self.quorum.lock().await.take() {
            quorum.shutdown().await;
        }
        let follower = self
            .follower
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(follower) = follower {
            follower.stop().await;
        }
    }

    /// Where a partition's leader is, for NOT_LEADER_OR_FOLLOWER answers: clients that read it
    /// (KIP-951) go to the new leader without a metadata round trip.
    pub fn leader_hint(&self, topic: &str, partition: i32, listener: &str) -> Option<LeaderHint> {
        let image = self.image();
        let state = image.partition(topic, partition)?;
        let broker = image.brokers.get(&state.leader).filter(|b| !b.fenced)?;
        let endpoint = broker
            .endpoint(listener)
            .or_else(|| broker.endpoints.first())?;
        Some(LeaderHint {
            id: state.leader,
            epoch: state.leader_epoch,
            host: endpoint.host.clone(),
            port: endpoint.port,
            rack: broker.rack.clone(),
        })
    }

    /// The id Metadata responses give as the controller. Kafka clients send admin requests
    /// there, and in KRaft mode brokers forward them, so any live broker will do: this one.
    pub fn controller_id_for_clients(&self) -> i32 {
        self.node_id
    }

    /// Ready when registered, unfenced (by the last heartbeat answer, answered within the
    /// session timeout), with a metadata image as new as the controller's at that answer, in the
    /// ISR of every partition hosted here, and no partition in the cluster is without a leader.
    pub fn readiness(&self, replicas: &ReplicaManager) -> Result<(), String> {
        if self.broker_epoch() < 0 {
            return Err("not registered with the controller yet".into());
        }
        if self.is_fenced() {
            return Err("fenced by the controller".into());
        }
        // Cut off from the controller (a network partition), the last answer is stale and so is
        // the image: the controller fenced this broker by now.
        let last = *self
            .last_heartbeat
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((at, _)) = last
            && at.elapsed() > self.settings.session_timeout
        {
            return Err(format!(
                "no heartbeat answered for {} ms: presumed fenced",
                at.elapsed().as_millis()
            ));
        }
        let image = self.image();
        if let Some((_, controller_offset)) = last
            && image.offset < controller_offset
        {
            return Err(format!(
                "metadata image at offset {} behind the controller's {controller_offset}",
                image.offset
            ));
        }
        for (topic, partition, state) in image.partitions() {
            if state.leader == NO_LEADER {
                return Err(format!("partition {topic}-{partition} is offline"));
            }
            if state.replicas.contains(&self.node_id) && !state.isr.contains(&self.node_id) {
                return Err(format!("not in the ISR of {topic}-{partition}"));
            }
        }
        // The image may be ahead of the local logs for a moment.
        for topic in replicas.all_topics() {
            if image.topic(&topic.meta.name).is_none() && !topic.meta.name.starts_with("__") {
                return Err(format!("topic {} not reconciled yet", topic.meta.name));
            }
        }
        Ok(())
    }
}
