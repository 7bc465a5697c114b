//! A multi-broker Strait cluster of real processes (KRaft-style combined broker+controller nodes
//! and broker-only nodes): free ports or a network-namespace lab, a data directory per node kept
//! across restarts, faults by signal (SIGKILL, SIGSTOP/SIGCONT, SIGTERM), readiness through each
//! node's `GET /ready`, and the cluster's view through raw Metadata / reassignment requests.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::add_raft_voter_request;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::elect_leaders_request;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse, ApiKey, BrokerId, DescribeClusterRequest,
    DescribeClusterResponse, DescribeQuorumRequest, DescribeQuorumResponse, ElectLeadersRequest,
    ElectLeadersResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, MetadataRequest,
    MetadataResponse, ProduceResponse, RemoveRaftVoterRequest, RemoveRaftVoterResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;
use tempfile::TempDir;

use crate::broker::{broker_binary, free_port};
use crate::error::{HarnessError, Result};
use crate::http;
use crate::netns::NetLab;
use crate::wait::{wait_for, wait_until};
use crate::wire::{WireClient, produce_request, produce_result, record_batch};

/// How long a node may take to become ready after a (re)start.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a controlled shutdown (SIGTERM) may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of one HTTP probe or admin call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Trailing stderr bytes quoted in errors.
const STDERR_TAIL_BYTES: usize = 3000;
/// Fixed ports inside a lab, where every node has its own address.
const LAB_PORTS: (u16, u16, u16) = (9092, 9093, 9404);
const LAB_REPLICATION_PORT: u16 = 9091;

/// One node of a cluster spec.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// `node.id`.
    pub id: u32,
    /// `broker.rack`, if any.
    pub rack: Option<String>,
    /// Whether the node is a controller (quorum voter) as well as a broker.
    pub controller: bool,
    /// A node told only `controller.quorum.bootstrap.servers` (the controllers' addresses, no
    /// ids) instead of `controller.quorum.voters`: a broker-only node, or a controller that joins
    /// the quorum as an observer (KIP-853) and is not one of the seed voters.
    pub bootstrap_only: bool,
    /// Further `log.dirs` after the node's own data directory (JBOD): directories the test owns,
    /// such as a tmpfs mount point. The metadata log stays in the node's own directory.
    pub extra_log_dirs: Vec<PathBuf>,
    /// A seed voter also given `controller.quorum.bootstrap.servers` naming every controller
    /// of the cluster (as the operator renders it once the quorum has grown).
    pub knows_all_controllers: bool,
}

impl NodeSpec {
    /// A combined broker+controller node.
    pub fn combined(id: u32, rack: &str) -> NodeSpec {
        NodeSpec {
            id,
            rack: Some(rack.to_string()),
            controller: true,
            bootstrap_only: false,
            extra_log_dirs: Vec::new(),
            knows_all_controllers: false,
        }
    }

    /// A broker-only node.
    pub fn broker(id: u32, rack: &str) -> NodeSpec {
        NodeSpec {
            id,
            rack: Some(rack.to_string()),
            controller: false,
            bootstrap_only: false,
            extra_log_dirs: Vec::new(),
            knows_all_controllers: false,
        }
    }

    /// A broker-only node that finds the quorum through `controller.quorum.bootstrap.servers`.
    pub fn bootstrapped_broker(id: u32, rack: &str) -> NodeSpec {
        NodeSpec {
            bootstrap_only: true,
            ..NodeSpec::broker(id, rack)
        }
    }

    /// This node with `dirs` as further log dirs (see [`NodeSpec::extra_log_dirs`]).
    pub fn with_log_dirs(self, dirs: Vec<PathBuf>) -> NodeSpec {
        NodeSpec {
            extra_log_dirs: dirs,
            ..self
        }
    }

    /// A combined node that joins a running quorum through `controller.quorum.bootstrap.servers`
    /// as an observer, to be promoted with AddRaftVoter.
    pub fn joining_controller(id: u32, rack: &str) -> NodeSpec {
        NodeSpec {
            bootstrap_only: true,
            ..NodeSpec::combined(id, rack)
        }
    }
}

/// What to start.
#[derive(Debug, Clone, Default)]
pub struct ClusterSpec {
    pub nodes: Vec<NodeSpec>,
    /// `--override`s given to every node; they replace the harness's settings of the same key.
    pub overrides: Vec<(String, String)>,
    /// When set, brokers replicate over a separate `REPLICATION` listener with this security
    /// protocol (its `ssl.*` keys come through `overrides`); clients keep the PLAINTEXT one.
    pub replication_protocol: Option<String>,
    /// Security protocol of the CONTROLLER listener (PLAINTEXT when `None`); its `ssl.*` keys
    /// come through `overrides`.
    pub controller_protocol: Option<String>,
    /// Further command-line arguments of every node (e.g. `--add-scram ...`).
    pub extra_args: Vec<String>,
}

impl ClusterSpec {
    /// Combined nodes `1..=racks.len()`, node `i` in `racks[i-1]`, with the fast failure-detection
    /// timeouts tests want.
    pub fn combined(racks: &[&str]) -> ClusterSpec {
        ClusterSpec {
            nodes: racks
                .iter()
                .enumerate()
                .map(|(i, rack)| NodeSpec::combined(i as u32 + 1, rack))
                .collect(),
            overrides: fast_overrides(),
            replication_protocol: None,
            controller_protocol: None,
            extra_args: Vec::new(),
        }
    }
}

/// Session, heartbeat and replica-lag timeouts short enough for tests to see faults in seconds.
pub fn fast_overrides() -> Vec<(String, String)> {
    [
        ("broker.session.timeout.ms", "3000"),
        ("broker.heartbeat.interval.ms", "500"),
        ("replica.lag.time.max.ms", "3000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// One partition as a Metadata response describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    pub error_code: i16,
    /// Leader node id, -1 when none.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline: Vec<i32>,
}

/// The metadata quorum as DescribeQuorum reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumView {
    pub leader: i32,
    pub epoch: i32,
    pub high_watermark: i64,
    /// (voter id, log end offset) by voter id.
    pub voters: BTreeMap<i32, i64>,
    pub observers: Vec<i32>,
    /// Directory id of every voter and observer that reported one (v2).
    pub directory_ids: BTreeMap<i32, uuid::Uuid>,
    /// Controller endpoint `host:port` of every voter (v2 `nodes`).
    pub endpoints: BTreeMap<i32, String>,
}

/// One node's Metadata response, reduced to what tests compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataView {
    /// The cluster id the node reports.
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    /// Node id -> (host, port, rack).
    pub brokers: BTreeMap<i32, (String, i32, Option<String>)>,
    /// Topic -> (error code, partitions sorted by index).
    pub topics: BTreeMap<String, (i16, Vec<PartitionInfo>)>,
}

/// An ongoing reassignment as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// A node process and everything needed to start it again identically.
#[derive(Debug)]
pub struct Node {
    spec: NodeSpec,
    host: String,
    broker_port: u16,
    controller_port: Option<u16>,
    replication_port: Option<u16>,
    metrics_port: u16,
    log_dir: PathBuf,
    exec_prefix: Vec<String>,
    child: Option<Child>,
    paused: bool,
    starts: usize,
    stderr_path: PathBuf,
}

impl Node {
    /// The node's spec.
    pub fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    /// `host:port` of the PLAINTEXT listener.
    pub fn bootstrap(&self) -> String {
        format!("{}:{}", self.host, self.broker_port)
    }

    /// The PLAINTEXT listener address.
    pub fn addr(&self) -> Result<SocketAddr> {
        parse_addr(&self.host, self.broker_port)
    }

    /// Port of the CONTROLLER listener, on controllers.
    pub fn controller_port(&self) -> Option<u16> {
        self.controller_port
    }

    /// The metrics listener address (`/metrics`, `/ready`).
    pub fn metrics_addr(&self) -> Result<SocketAddr> {
        parse_addr(&self.host, self.metrics_port)
    }

    /// The node's own data directory (the first of its `log.dirs`), kept across restarts.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// Every `log.dirs` entry of this node: its own directory, then the spec's extra ones.
    pub fn log_dirs(&self) -> Vec<PathBuf> {
        std::iter::once(self.log_dir.clone())
            .chain(self.spec.extra_log_dirs.iter().cloned())
            .collect()
    }

    /// Process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process runs (paused counts as running).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Whether the process is stopped by SIGSTOP.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The current (or last) run's stderr, lossily decoded.
    pub fn stderr(&self) -> String {
        std::fs::read(&self.stderr_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The end of the current run's stderr, for error messages.
    pub fn stderr_tail(&self) -> String {
        crate::broker::tail(&self.stderr(), STDERR_TAIL_BYTES)
    }

    /// `GET /ready` status, `None` when the listener does not answer.
    pub fn ready_status(&self) -> Option<u16> {
        let addr = self.metrics_addr().ok()?;
        http::get(addr, "/ready", Duration::from_secs(2))
            .ok()
            .map(|r| r.status)
    }

    fn signal(&self, signal: &str) -> Result<()> {
        let pid = self.pid().ok_or_else(|| {
            HarnessError::Unexpected(format!("node {} is not running", self.spec.id))
        })?;
        // kill(1) instead of libc: no `unsafe`; the pid is our own unreaped child.
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .map_err(|e| HarnessError::io("run kill", e))?;
        if status.success() {
            Ok(())
        } else {
            Err(HarnessError::Unexpected(format!(
                "kill {signal} {pid} failed: {status}"
            )))
        }
    }

    fn exited_error(&mut self) -> Option<HarnessError> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(HarnessError::BrokerExited {
            status,
            stderr_tail: format!("(node {})\n{}", self.spec.id, self.stderr_tail()),
        })
    }
}

fn parse_addr(host: &str, port: u16) -> Result<SocketAddr> {
    format!("{host}:{port}")
        .parse()
        .map_err(|e| HarnessError::Unexpected(format!("bad address {host}:{port}: {e}")))
}

/// A running cluster; every process is SIGKILLed on drop.
#[derive(Debug)]
pub struct Cluster {
    binary: PathBuf,
    overrides: Vec<(String, String)>,
    replication_protocol: Option<String>,
    controller_protocol: Option<String>,
    extra_args: Vec<String>,
    voters: String,
    nodes: Vec<Node>,
    lab: Option<Arc<NetLab>>,
    work: TempDir,
}

impl Cluster {
    /// Starts every node of `spec` on loopback ports and waits until all are ready.
    pub fn start(spec: ClusterSpec) -> Result<Cluster> {
        Cluster::launch(spec, None)
    }

    /// Starts every node of `spec` inside `lab` (node `N` in its own namespace at
    /// `NetLab::addr(N)`) and waits until all are ready. Call it from a thread that entered the
    /// lab's client namespace, or the nodes are unreachable.
    pub fn start_in_lab(spec: ClusterSpec, lab: Arc<NetLab>) -> Result<Cluster> {
        Cluster::launch(spec, Some(lab))
    }

    fn launch(spec: ClusterSpec, lab: Option<Arc<NetLab>>) -> Result<Cluster> {
        if let Some(lab) = &lab
            && !lab.in_clients()
        {
            return Err(outside_lab());
        }
        let work = tempfile::Builder::new()
            .prefix("strait-cluster-")
            .tempdir()
            .map_err(|e| HarnessError::io("create temp dir", e))?;
        let mut cluster = Cluster {
            binary: broker_binary()?,
            overrides: spec.overrides,
            replication_protocol: spec.replication_protocol,
            controller_protocol: spec.controller_protocol,
            extra_args: spec.extra_args,
            voters: String::new(),
            nodes: Vec::new(),
            lab,
            work,
        };
        for node in spec.nodes {
            let node = cluster.make_node(node)?;
            cluster.nodes.push(node);
        }
        cluster.voters = cluster
            .nodes
            .iter()
            .filter(|n| !n.spec.bootstrap_only)
            .filter_map(|n| {
                n.controller_port
                    .map(|p| format!("{}@{}:{p}", n.spec.id, n.host))
            })
            .collect::<Vec<_>>()
            .join(",");
        if cluster.voters.is_empty() {
            return Err(HarnessError::Unexpected(
                "a cluster needs a controller".into(),
            ));
        }
        let ids: Vec<u32> = cluster.nodes.iter().map(|n| n.spec.id).collect();
        for &id in &ids {
            cluster.spawn(id)?;
        }
        for &id in &ids {
            cluster.wait_ready(id, READY_TIMEOUT)?;
        }
        Ok(cluster)
    }

    fn make_node(&self, spec: NodeSpec) -> Result<Node> {
        if self.nodes.iter().any(|n| n.spec.id == spec.id) {
            return Err(HarnessError::Unexpected(format!(
                "duplicate node id {}",
                spec.id
            )));
        }
        let (host, broker_port, controller_port, metrics_port, exec_prefix) = match &self.lab {
            Some(lab) => (
                NetLab::addr(spec.id).to_string(),
                LAB_PORTS.0,
                spec.controller.then_some(LAB_PORTS.1),
                LAB_PORTS.2,
                lab.exec_prefix(spec.id),
            ),
            None => (
                "127.0.0.1".to_string(),
                free_port()?,
                if spec.controller {
                    Some(free_port()?)
                } else {
                    None
                },
                free_port()?,
                Vec::new(),
            ),
        };
        let replication_port = match (&self.replication_protocol, &self.lab) {
            (None, _) => None,
            (Some(_), Some(_)) => Some(LAB_REPLICATION_PORT),
            (Some(_), None) => Some(free_port()?),
        };
        let log_dir = self.work.path().join(format!("node-{}", spec.id));
        Ok(Node {
            replication_port,
            stderr_path: self
                .work
                .path()
                .join(format!("node-{}-stderr-0.log", spec.id)),
            spec,
            host,
            broker_port,
            controller_port,
            metrics_port,
            log_dir,
            exec_prefix,
            child: None,
            paused: false,
            starts: 0,
        })
    }

    fn args(&self, node: &Node) -> Vec<String> {
        let roles = if node.spec.controller {
            "broker,controller"
        } else {
            "broker"
        };
        let mut listeners = format!("PLAINTEXT://{}:{}", node.host, node.broker_port);
        let mut advertised = listeners.clone();
        let mut protocols = format!(
            "CONTROLLER:{},PLAINTEXT:PLAINTEXT",
            self.controller_protocol.as_deref().unwrap_or("PLAINTEXT")
        );
        let mut inter_broker = "PLAINTEXT";
        if let (Some(port), Some(protocol)) = (node.replication_port, &self.replication_protocol) {
            let replication = format!(",REPLICATION://{}:{port}", node.host);
            listeners.push_str(&replication);
            advertised.push_str(&replication);
            protocols.push_str(&format!(",REPLICATION:{protocol}"));
            inter_broker = "REPLICATION";
        }
        if let Some(port) = node.controller_port {
            listeners.push_str(&format!(",CONTROLLER://{}:{port}", node.host));
        }
        let quorum = if node.spec.bootstrap_only {
            let addresses: Vec<&str> = self
                .voters
                .split(',')
                .filter_map(|v| v.split_once('@').map(|(_, addr)| addr))
                .collect();
            (
                "controller.quorum.bootstrap.servers".to_string(),
                addresses.join(","),
            )
        } else {
            ("controller.quorum.voters".into(), self.voters.clone())
        };
        let mut settings: Vec<(String, String)> = Vec::new();
        if node.spec.knows_all_controllers && !node.spec.bootstrap_only {
            let controllers: Vec<String> = self
                .nodes
                .iter()
                .filter_map(|n| Some(format!("{}:{}", n.host, n.controller_port?)))
                .collect();
            settings.push((
                "controller.quorum.bootstrap.servers".into(),
                controllers.join(","),
            ));
        }
        settings.extend([
            ("process.roles".into(), roles.into()),
            ("node.id".into(), node.spec.id.to_string()),
            quorum,
            ("listeners".into(), listeners),
            ("advertised.listeners".into(), advertised),
            ("controller.listener.names".into(), "CONTROLLER".into()),
            // As in Kafka's KRaft quickstart: the controller listener's protocol is explicit.
            ("listener.security.protocol.map".into(), protocols),
            ("inter.broker.listener.name".into(), inter_broker.into()),
            (
                "log.dirs".into(),
                node.log_dirs()
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "metrics.listener".into(),
                format!("{}:{}", node.host, node.metrics_port),
            ),
        ]);
        if let Some(rack) = &node.spec.rack {
            settings.push(("broker.rack".into(), rack.clone()));
        }
        for (key, value) in &self.overrides {
            match settings.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value.clone(),
                None => settings.push((key.clone(), value.clone())),
            }
        }
        settings
            .into_iter()
            .flat_map(|(k, v)| ["--override".to_string(), format!("{k}={v}")])
            .chain(self.extra_args.iter().cloned())
            .collect()
    }

    fn index(&self, id: u32) -> Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.spec.id == id)
            .ok_or_else(|| HarnessError::Unexpected(format!("no node {id}")))
    }

    fn spawn(&mut self, id: u32) -> Result<()> {
        let i = self.index(id)?;
        let args = self.args(&self.nodes[i]);
        let node = &mut self.nodes[i];
        node.stderr_path = self
            .work
            .path()
            .join(format!("node-{id}-stderr-{}.log", node.starts));
        node.starts += 1;
        let stderr = File::create(&node.stderr_path)
            .map_err(|e| HarnessError::io("create stderr file", e))?;
        let mut command = match node.exec_prefix.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        let child = command
            .args(args)
            .current_dir(self.work.path())
            .env(
                "RUST_LOG",
                std::env::var("STRAIT_E2E_RUST_LOG").unwrap_or("info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| HarnessError::io(format!("spawn {}", self.binary.display()), e))?;
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    /// Every node, in spec order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node `id`.
    pub fn node(&self, id: u32) -> Result<&Node> {
        Ok(&self.nodes[self.index(id)?])
    }

    /// Ids of every node.
    pub fn ids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.spec.id).collect()
    }

    /// Comma-separated PLAINTEXT listeners of every node, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(Node::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// In a lab, fails unless the calling thread is in the lab's client namespace.
    fn check_namespace(&self) -> Result<()> {
        match &self.lab {
            Some(lab) if !lab.in_clients() => Err(outside_lab()),
            _ => Ok(()),
        }
    }

    /// Comma-separated PLAINTEXT listeners of the running, unpaused nodes: librdkafka reports a
    /// dead bootstrap broker as a consumer error, which a read must not trip over.
    pub fn live_bootstrap(&mut self) -> String {
        let live = self.live_ids();
        self.nodes
            .iter()
            .filter(|n| live.contains(&n.spec.id))
            .map(Node::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until node `id` answers `/ready` with 200, failing early if its process exits.
    pub fn wait_ready(&mut self, id: u32, timeout: Duration) -> Result<()> {
        self.check_namespace()?;
        let i = self.index(id)?;
        let node = &mut self.nodes[i];
        let mut exited = None;
        let ready = wait_until(timeout, &format!("node {id} /ready = 200"), || {
            if let Some(e) = node.exited_error() {
                exited = Some(e);
                return true;
            }
            node.ready_status() == Some(200)
        });
        if let Some(e) = exited {
            return Err(e);
        }
        ready.map_err(|e| {
            HarnessError::Unexpected(format!(
                "{e} (last status {:?}); node {id} stderr tail:\n{}",
                node.ready_status(),
                node.stderr_tail()
            ))
        })
    }

    /// Waits until every running node is ready.
    pub fn wait_all_ready(&mut self, timeout: Duration) -> Result<()> {
        for id in self.ids() {
            if self.nodes[self.index(id)?].child.is_some() {
                self.wait_ready(id, timeout)?;
            }
        }
        Ok(())
    }

    /// SIGKILLs node `id` and reaps it.
    pub fn kill(&mut self, id: u32) -> Result<()> {
        let i = self.index(id)?;
        let node = &mut self.nodes[i];
        if let Some(mut child) = node.child.take() {
            child.kill().map_err(|e| HarnessError::io("kill node", e))?;
            child.wait().map_err(|e| HarnessError::io("wait node", e))?;
        }
        node.paused = false;
        Ok(())
    }

    /// SIGSTOPs node `id`.
    pub fn pause(&mut self, id: u32) -> Result<()> {
        let i = self.index(id)?;
        self.nodes[i].signal("-STOP")?;
        self.nodes[i].paused = true;
        Ok(())
    }

    /// SIGCONTs node `id`.
    pub fn resume(&mut self, id: u32) -> Result<()> {
        let i = self.index(id)?;
        self.nodes[i].signal("-CONT")?;
        self.nodes[i].paused = false;
        Ok(())
    }

    /// SIGTERMs node `id` (controlled shutdown) and waits, bounded, for it to exit.
    pub fn terminate(&mut self, id: u32) -> Result<ExitStatus> {
        let i = self.index(id)?;
        self.nodes[i].signal("-TERM")?;
        let node = &mut self.nodes[i];
        let mut child = node
            .child
            .take()
            .ok_or_else(|| HarnessError::Unexpected(format!("node {id} is not running")))?;
        match wait_for(
            STOP_TIMEOUT,
            &format!("node {id} to exit after SIGTERM"),
            || child.try_wait().ok().flatten(),
        ) {
            Ok(status) => Ok(status),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(HarnessError::Unexpected(format!(
                    "{e}; node {id} stderr tail:\n{}",
                    node.stderr_tail()
                )))
            }
        }
    }

    /// Gives seed voter `id` `controller.quorum.bootstrap.servers` naming every controller from
    /// its next start on (see [`NodeSpec::knows_all_controllers`]).
    pub fn tell_all_controllers(&mut self, id: u32) -> Result<()> {
        let i = self.index(id)?;
        self.nodes[i].spec.knows_all_controllers = true;
        Ok(())
    }

    /// Starts node `id` again with the same ports and data directory (SIGKILLing it first if it
    /// still runs). Does not wait: see [`Cluster::wait_ready`].
    pub fn restart(&mut self, id: u32) -> Result<()> {
        self.kill(id)?;
        self.spawn(id)
    }

    /// Adds a broker-only node or a joining controller ([`NodeSpec::joining_controller`]),
    /// starts it and waits until it is ready.
    pub fn add_node(&mut self, spec: NodeSpec) -> Result<()> {
        if spec.controller && !spec.bootstrap_only {
            return Err(HarnessError::Unexpected(
                "a controller joins a running cluster through bootstrap servers only".into(),
            ));
        }
        let id = spec.id;
        let node = self.make_node(spec)?;
        self.nodes.push(node);
        self.spawn(id)?;
        self.wait_ready(id, READY_TIMEOUT)
    }

    /// A wire connection to node `id` and its supported version range of `api`, capped at `max`.
    fn connect(&self, id: u32, api: ApiKey, max: i16) -> Result<(WireClient, i16)> {
        self.check_namespace()?;
        let mut client = WireClient::connect(self.node(id)?.addr()?)?;
        let versions = client.api_versions()?;
        let (lo, hi) = versions
            .get(&(api as i16))
            .copied()
            .ok_or_else(|| HarnessError::Protocol(format!("node {id} does not support {api:?}")))?;
        if lo > max {
            return Err(HarnessError::Protocol(format!(
                "node {id} supports {api:?} only from v{lo}"
            )));
        }
        Ok((client, hi.min(max)))
    }

    /// Node `id`'s Metadata response for `topics` (all topics when `None`).
    pub fn metadata_from(&self, id: u32, topics: Option<&[&str]>) -> Result<MetadataView> {
        let (mut client, version) = self.connect(id, ApiKey::Metadata, 12)?;
        let request = MetadataRequest::default().with_topics(topics.map(|names| {
            names
                .iter()
                .map(|t| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.to_string()))))
                })
                .collect()
        }));
        let response: MetadataResponse = client.call(ApiKey::Metadata, version, &request)?;
        let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
        let brokers = response
            .brokers
            .iter()
            .map(|b| {
                (
                    b.node_id.0,
                    (
                        b.host.to_string(),
                        b.port,
                        b.rack.as_ref().map(|r| r.to_string()),
                    ),
                )
            })
            .collect();
        let topics = response
            .topics
            .iter()
            .filter_map(|t| {
                let name = t.name.as_ref()?.0.to_string();
                let mut partitions: Vec<PartitionInfo> = t
                    .partitions
                    .iter()
                    .map(|p| PartitionInfo {
                        partition: p.partition_index,
                        error_code: p.error_code,
                        leader: p.leader_id.0,
                        leader_epoch: p.leader_epoch,
                        replicas: ids(&p.replica_nodes),
                        isr: ids(&p.isr_nodes),
                        offline: ids(&p.offline_replicas),
                    })
                    .collect();
                partitions.sort_by_key(|p| p.partition);
                Some((name, (t.error_code, partitions)))
            })
            .collect();
        Ok(MetadataView {
            cluster_id: response.cluster_id.as_ref().map(|id| id.to_string()),
            controller_id: response.controller_id.0,
            brokers,
            topics,
        })
    }

    /// The cluster id node `via` answers to DescribeCluster.
    pub fn described_cluster_id(&self, via: u32) -> Result<String> {
        let (mut client, version) = self.connect(via, ApiKey::DescribeCluster, 1)?;
        let response: DescribeClusterResponse = client.call(
            ApiKey::DescribeCluster,
            version,
            &DescribeClusterRequest::default(),
        )?;
        if response.error_code != 0 {
            return Err(HarnessError::Protocol(format!(
                "DescribeCluster from node {via}: error {}",
                response.error_code
            )));
        }
        Ok(response.cluster_id.to_string())
    }

    /// The metadata quorum's leader (the active controller) by DescribeQuorum through node `via`.
    pub fn quorum_leader(&self, via: u32) -> Result<i32> {
        self.quorum(via).map(|q| q.leader)
    }

    /// DescribeQuorum through node `via`.
    pub fn quorum(&self, via: u32) -> Result<QuorumView> {
        let (mut client, version) = self.connect(via, ApiKey::DescribeQuorum, 2)?;
        let request = DescribeQuorumRequest::default().with_topics(vec![
            TopicData::default()
                .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
                .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
        ]);
        let response: DescribeQuorumResponse =
            client.call(ApiKey::DescribeQuorum, version, &request)?;
        let partition = response
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| HarnessError::Protocol("DescribeQuorum without a partition".into()))?;
        if response.error_code != 0 || partition.error_code != 0 {
            return Err(HarnessError::Unexpected(format!(
                "DescribeQuorum: errors {} / {}",
                response.error_code, partition.error_code
            )));
        }
        Ok(QuorumView {
            leader: partition.leader_id.0,
            epoch: partition.leader_epoch,
            high_watermark: partition.high_watermark,
            voters: partition
                .current_voters
                .iter()
                .map(|v| (v.replica_id.0, v.log_end_offset))
                .collect(),
            observers: partition.observers.iter().map(|v| v.replica_id.0).collect(),
            directory_ids: partition
                .current_voters
                .iter()
                .chain(&partition.observers)
                .filter(|v| !v.replica_directory_id.is_nil())
                .map(|v| (v.replica_id.0, v.replica_directory_id))
                .collect(),
            endpoints: response
                .nodes
                .iter()
                .filter_map(|n| {
                    let l = n.listeners.first()?;
                    Some((n.node_id.0, format!("{}:{}", l.host, l.port)))
                })
                .collect(),
        })
    }

    /// Node `id`'s metadata log directory id, from the `meta.properties` of its log dir (Kafka's
    /// URL-safe base64 form, as `kafka-metadata-quorum.sh add-controller` reads it).
    pub fn directory_id(&self, id: u32) -> Result<uuid::Uuid> {
        use base64::Engine;
        let path = self.node(id)?.log_dir.join("meta.properties");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| HarnessError::io(format!("read {}", path.display()), e))?;
        let value = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("directory.id="))
            .ok_or_else(|| {
                HarnessError::Unexpected(format!("{}: no directory.id", path.display()))
            })?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value.trim())
            .map_err(|e| HarnessError::Unexpected(format!("directory.id {value}: {e}")))?;
        let bytes: [u8; 16] = bytes
            .try_into()
            .map_err(|_| HarnessError::Unexpected(format!("directory.id {value}: not 16 bytes")))?;
        Ok(uuid::Uuid::from_bytes(bytes))
    }

    /// AddRaftVoter through node `via`: makes node `id` (with `directory_id`) a voter on its
    /// CONTROLLER listener. Returns the response's error code and message.
    pub fn add_raft_voter(
        &self,
        via: u32,
        id: u32,
        directory_id: uuid::Uuid,
    ) -> Result<(i16, Option<String>)> {
        let node = self.node(id)?;
        let port = node.controller_port.ok_or_else(|| {
            HarnessError::Unexpected(format!("node {id} has no controller listener"))
        })?;
        self.add_raft_voter_at(via, id as i32, directory_id, (&node.host, port), 30_000)
    }

    /// AddRaftVoter through node `via` for any id and CONTROLLER endpoint (a node that may not
    /// exist), waiting at most `timeout_ms` for it to catch up.
    pub fn add_raft_voter_at(
        &self,
        via: u32,
        id: i32,
        directory_id: uuid::Uuid,
        (host, port): (&str, u16),
        timeout_ms: i32,
    ) -> Result<(i16, Option<String>)> {
        let (mut client, version) = self.connect(via, ApiKey::AddRaftVoter, 0)?;
        let request = AddRaftVoterRequest::default()
            .with_cluster_id(None)
            .with_timeout_ms(timeout_ms)
            .with_voter_id(id)
            .with_voter_directory_id(directory_id)
            .with_listeners(vec![
                add_raft_voter_request::Listener::default()
                    .with_name(StrBytes::from_static_str("CONTROLLER"))
                    .with_host(StrBytes::from_string(host.to_string()))
                    .with_port(port),
            ]);
        client.set_read_timeout(Duration::from_secs(40))?;
        let response: AddRaftVoterResponse =
            client.call(ApiKey::AddRaftVoter, version, &request)?;
        Ok((
            response.error_code,
            response.error_message.map(|m| m.to_string()),
        ))
    }

    /// RemoveRaftVoter through node `via`. Returns the response's error code and message.
    pub fn remove_raft_voter(
        &self,
        via: u32,
        id: u32,
        directory_id: uuid::Uuid,
    ) -> Result<(i16, Option<String>)> {
        let (mut client, version) = self.connect(via, ApiKey::RemoveRaftVoter, 0)?;
        let request = RemoveRaftVoterRequest::default()
            .with_cluster_id(None)
            .with_voter_id(id as i32)
            .with_voter_directory_id(directory_id);
        client.set_read_timeout(Duration::from_secs(40))?;
        let response: RemoveRaftVoterResponse =
            client.call(ApiKey::RemoveRaftVoter, version, &request)?;
        Ok((
            response.error_code,
            response.error_message.map(|m| m.to_string()),
        ))
    }

    /// FindCoordinator (group) through node `via`: the coordinator's node id, or the error code
    /// the node answered with.
    pub fn group_coordinator(
        &self,
        via: u32,
        group: &str,
    ) -> Result<std::result::Result<i32, i16>> {
        let (mut client, version) = self.connect(via, ApiKey::FindCoordinator, 3)?;
        let request = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(group.to_string()))
            .with_key_type(0);
        let response: FindCoordinatorResponse =
            client.call(ApiKey::FindCoordinator, version, &request)?;
        Ok(if response.error_code == 0 {
            Ok(response.node_id.0)
        } else {
            Err(response.error_code)
        })
    }

    /// Ids of nodes that run and are not paused, in spec order.
    pub fn live_ids(&mut self) -> Vec<u32> {
        self.nodes
            .iter_mut()
            .filter_map(|n| (n.is_running() && !n.paused).then_some(n.spec.id))
            .collect()
    }

    /// The partitions of `topic` as node `id` describes them; an error if it does not know it.
    pub fn partition_info_from(&self, id: u32, topic: &str) -> Result<Vec<PartitionInfo>> {
        let view = self.metadata_from(id, Some(&[topic]))?;
        match view.topics.get(topic) {
            Some((0, partitions)) => Ok(partitions.clone()),
            Some((code, _)) => Err(HarnessError::Unexpected(format!(
                "node {id}: metadata of {topic}: error {code}"
            ))),
            None => Err(HarnessError::Unexpected(format!(
                "node {id}: {topic} missing from metadata"
            ))),
        }
    }

    /// The partitions of `topic` as the first live, unpaused node that answers describes them.
    pub fn partition_info(&mut self, topic: &str) -> Result<Vec<PartitionInfo>> {
        let mut last = HarnessError::Unexpected("no live node".into());
        for id in self.live_ids() {
            match self.partition_info_from(id, topic) {
                Ok(info) => return Ok(info),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Waits until partition `partition` of `topic` satisfies `pred` (as seen by a live node) and
    /// returns it.
    pub fn wait_for_leader(
        &mut self,
        topic: &str,
        partition: i32,
        timeout: Duration,
        pred: impl Fn(&PartitionInfo) -> bool,
    ) -> Result<PartitionInfo> {
        let mut last = None;
        let found = wait_for(
            timeout,
            &format!("{topic}-{partition} to reach the expected state"),
            || {
                let info = self.partition_info(topic).ok()?;
                let p = info.into_iter().find(|p| p.partition == partition)?;
                if pred(&p) {
                    Some(p)
                } else {
                    last = Some(p);
                    None
                }
            },
        );
        found.map_err(|e| HarnessError::Unexpected(format!("{e}; last seen {last:?}")))
    }

    fn admin(&self) -> Result<(AdminClient<DefaultClientContext>, tokio::runtime::Runtime)> {
        self.check_namespace()?;
        let client = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .map_err(|e| HarnessError::kafka("create admin client", e))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| HarnessError::io("build runtime", e))?;
        Ok((client, runtime))
    }

    /// CreateTopics through librdkafka's admin API; `Ok(Err(code))` when the broker refused.
    pub fn try_create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication: TopicReplication<'_>,
        configs: &[(&str, &str)],
    ) -> Result<std::result::Result<(), RDKafkaErrorCode>> {
        let (client, runtime) = self.admin()?;
        let mut topic = NewTopic::new(name, partitions, replication);
        for (key, value) in configs {
            topic = topic.set(key, value);
        }
        let options = AdminOptions::new().operation_timeout(Some(CALL_TIMEOUT));
        let results = runtime
            .block_on(client.create_topics([&topic], &options))
            .map_err(|e| HarnessError::kafka(format!("create topic {name}"), e))?;
        for result in results {
            if let Err((_, code)) = result {
                return Ok(Err(code));
            }
        }
        Ok(Ok(()))
    }

    /// Creates `name` with `partitions` x `replication_factor` and waits until every partition has
    /// a leader and a full ISR.
    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        configs: &[(&str, &str)],
    ) -> Result<Vec<PartitionInfo>> {
        self.try_create_topic(
            name,
            partitions,
            TopicReplication::Fixed(replication_factor),
            configs,
        )?
        .map_err(|code| HarnessError::Unexpected(format!("create topic {name}: {code:?}")))?;
        self.wait_topic_settled(name, partitions)
    }

    /// Creates `name` with an explicit replica list per partition (first replica = preferred
    /// leader) and waits until it is settled.
    pub fn create_topic_assigned(
        &mut self,
        name: &str,
        assignment: &[&[i32]],
        configs: &[(&str, &str)],
    ) -> Result<Vec<PartitionInfo>> {
        let partitions = assignment.len() as i32;
        self.try_create_topic(
            name,
            partitions,
            TopicReplication::Variable(assignment),
            configs,
        )?
        .map_err(|code| HarnessError::Unexpected(format!("create topic {name}: {code:?}")))?;
        self.wait_topic_settled(name, partitions)
    }

    /// Waits until `topic` has `partitions` partitions, each with a leader and ISR = replicas.
    pub fn wait_topic_settled(
        &mut self,
        topic: &str,
        partitions: i32,
    ) -> Result<Vec<PartitionInfo>> {
        let mut last = None;
        wait_for(
            READY_TIMEOUT,
            &format!("{topic} to have leaders and full ISRs"),
            || {
                let info = self.partition_info(topic).ok()?;
                let settled = info.len() == partitions as usize
                    && info.iter().all(|p| {
                        p.leader >= 0
                            && p.replicas.contains(&p.leader)
                            && same_set(&p.isr, &p.replicas)
                    });
                if settled {
                    Some(info)
                } else {
                    last = Some(info);
                    None
                }
            },
        )
        .map_err(|e| HarnessError::Unexpected(format!("{e}; last seen {last:?}")))
    }

    /// AlterPartitionReassignments: move `topic`-`partition` to `replicas`, through node `via`.
    /// ElectLeaders (preferred) for one partition through node `via`: the partition's error code
    /// (0: the preferred replica now leads).
    pub fn elect_preferred(&self, via: u32, topic: &str, partition: i32) -> Result<i16> {
        let (mut client, version) = self.connect(via, ApiKey::ElectLeaders, 2)?;
        let request = ElectLeadersRequest::default()
            .with_election_type(0)
            .with_timeout_ms(30_000)
            .with_topic_partitions(Some(vec![
                elect_leaders_request::TopicPartitions::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![partition]),
            ]));
        let response: ElectLeadersResponse =
            client.call(ApiKey::ElectLeaders, version, &request)?;
        if response.error_code != 0 {
            return Ok(response.error_code);
        }
        response
            .replica_election_results
            .iter()
            .flat_map(|t| &t.partition_result)
            .find(|p| p.partition_id == partition)
            .map(|p| p.error_code)
            .ok_or_else(|| HarnessError::Protocol("ElectLeaders answered no partition".into()))
    }

    pub fn reassign(&self, via: u32, topic: &str, partition: i32, replicas: &[i32]) -> Result<()> {
        let (mut client, version) = self.connect(via, ApiKey::AlterPartitionReassignments, 0)?;
        let request = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![
                ReassignableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![
                        ReassignablePartition::default()
                            .with_partition_index(partition)
                            .with_replicas(Some(replicas.iter().map(|&r| BrokerId(r)).collect())),
                    ]),
            ]);
        let response: AlterPartitionReassignmentsResponse =
            client.call(ApiKey::AlterPartitionReassignments, version, &request)?;
        if response.error_code != 0 {
            return Err(HarnessError::Unexpected(format!(
                "AlterPartitionReassignments: error {} {:?}",
                response.error_code, response.error_message
            )));
        }
        for p in response.responses.iter().flat_map(|t| &t.partitions) {
            if p.error_code != 0 {
                return Err(HarnessError::Unexpected(format!(
                    "AlterPartitionReassignments partition {}: error {} {:?}",
                    p.partition_index, p.error_code, p.error_message
                )));
            }
        }
        Ok(())
    }

    /// ListPartitionReassignments (all partitions), through node `via`.
    pub fn list_reassignments(&self, via: u32) -> Result<Vec<Reassignment>> {
        let (mut client, version) = self.connect(via, ApiKey::ListPartitionReassignments, 0)?;
        let request = ListPartitionReassignmentsRequest::default().with_timeout_ms(30_000);
        let response: ListPartitionReassignmentsResponse =
            client.call(ApiKey::ListPartitionReassignments, version, &request)?;
        if response.error_code != 0 {
            return Err(HarnessError::Unexpected(format!(
                "ListPartitionReassignments: error {} {:?}",
                response.error_code, response.error_message
            )));
        }
        let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
        Ok(response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| Reassignment {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    replicas: ids(&p.replicas),
                    adding: ids(&p.adding_replicas),
                    removing: ids(&p.removing_replicas),
                })
            })
            .collect())
    }

    /// One raw Produce of `values` to node `id` with `acks` and a broker-side `timeout_ms`:
    /// `(error_code, base_offset)`. Bypasses client retries so a test sees the broker's answer.
    pub fn produce_raw(
        &self,
        id: u32,
        topic: &str,
        partition: i32,
        acks: i16,
        timeout_ms: i32,
        values: &[&[u8]],
    ) -> Result<(i16, i64)> {
        let (mut client, version) = self.connect(id, ApiKey::Produce, 9)?;
        let request = produce_request(topic, partition, acks, record_batch(values)?)
            .with_timeout_ms(timeout_ms);
        let response: ProduceResponse = client.call(ApiKey::Produce, version, &request)?;
        produce_result(&response)
    }

    /// One raw acks=1 Produce at the highest version node `id` supports up to `max_version`,
    /// returning the whole response (leader hints included).
    pub fn produce_response(
        &self,
        id: u32,
        topic: &str,
        partition: i32,
        max_version: i16,
        values: &[&[u8]],
    ) -> Result<(i16, ProduceResponse)> {
        let (mut client, version) = self.connect(id, ApiKey::Produce, max_version)?;
        let request = produce_request(topic, partition, 1, record_batch(values)?);
        let response: ProduceResponse = client.call(ApiKey::Produce, version, &request)?;
        Ok((version, response))
    }

    /// Whether node `id`'s PLAINTEXT listener accepts connections.
    pub fn accepts(&self, id: u32) -> bool {
        self.check_namespace().is_ok()
            && self
                .node(id)
                .and_then(Node::addr)
                .is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
    }
}

fn outside_lab() -> HarnessError {
    HarnessError::Unexpected(
        "a lab cluster is driven only from the lab's client namespace (NetLab::run_in_clients)"
            .into(),
    )
}

/// Whether `a` and `b` hold the same ids, ignoring order.
pub fn same_set(a: &[i32], b: &[i32]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
