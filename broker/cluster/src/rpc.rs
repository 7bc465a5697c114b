//! The controller RPCs brokers send to the quorum leader (the active controller): registration,
//! heartbeats, ISR changes, and the admin operations Kafka clients may send to any broker. They
//! travel serialised over the quorum's gRPC service; the types here are what both ends agree on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::acl::{AclBinding, AclFilter};
use crate::image::{Endpoint, PartitionState, StoredScram};

/// One partition's proposed ISR in an `AlterPartitions` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsrChange {
    pub topic: String,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// A broker process starts (or restarts): it gets a new broker epoch and starts fenced.
    RegisterBroker {
        id: i32,
        incarnation: Uuid,
        rack: Option<String>,
        endpoints: Vec<Endpoint>,
    },
    /// Sent every `broker.heartbeat.interval.ms`. `metadata_offset` is the last metadata log
    /// index the broker has applied: it is unfenced once that reaches the controller's view at
    /// registration. `want_shutdown` starts a controlled shutdown. `offline_partitions` are the
    /// broker's replicas in failed log dirs (Kafka sends its offline dir ids; Strait's metadata
    /// has no dir assignments, so the broker names the partitions).
    Heartbeat {
        id: i32,
        epoch: i64,
        metadata_offset: u64,
        want_shutdown: bool,
        #[serde(default)]
        offline_partitions: Vec<(String, i32)>,
    },
    /// A partition leader asks to change the ISR (KIP-497 AlterPartition). Rejected when the
    /// leader or partition epoch it is based on is stale.
    AlterPartition {
        broker: i32,
        broker_epoch: i64,
        topic: String,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    /// Many ISR changes of one leader in one request and one metadata commit, as Kafka's
    /// AlterPartition carries many partitions: after a restart a leader of thousands of
    /// partitions re-admits their followers in a few commits instead of one commit each. Each
    /// change is decided as `AlterPartition` would decide it alone.
    AlterPartitions {
        broker: i32,
        broker_epoch: i64,
        changes: Vec<IsrChange>,
    },
    /// A partition leader at `leader_epoch` asks for a leader epoch of at least `at_least`,
    /// without a leader change. A failed-over linked mirror topic holds batches stamped with the
    /// source's epochs; the leader's own appends must be stamped above them, since the epochs in
    /// a log only grow (follower truncation relies on it).
    RaiseLeaderEpoch {
        broker: i32,
        broker_epoch: i64,
        topic: String,
        partition: i32,
        leader_epoch: i32,
        at_least: i32,
    },
    /// A leader of a linked mirror topic saw producer ids of the source up to `below - 1`: no
    /// broker of this cluster may hand them out, or a producer here would inherit a source
    /// producer's sequence state after a failover.
    ReserveProducerIds {
        broker: i32,
        broker_epoch: i64,
        below: i64,
    },
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
    },
    DeleteTopics {
        names: Vec<String>,
    },
    /// Grow `topic` to `count` partitions; `assignments` gives the new partitions' replicas.
    CreatePartitions {
        topic: String,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    },
    /// Replace the topic's config overrides (already validated by the broker).
    SetTopicConfigs {
        topic: String,
        configs: BTreeMap<String, String>,
    },
    /// A block of producer ids for the broker's InitProducerId answers.
    AllocateProducerIds {
        broker: i32,
        broker_epoch: i64,
    },
    /// Kafka's ElectLeaders: `preferred` (else unclean) for the given partitions (`None`: all).
    ElectLeaders {
        preferred: bool,
        partitions: Option<Vec<(String, i32)>>,
    },
    /// Kafka's AlterPartitionReassignments: target replicas, `None` cancels.
    AlterReassignments {
        changes: Vec<(String, i32, Option<Vec<i32>>)>,
    },
    /// Kafka's ListPartitionReassignments (`None`: every ongoing one).
    ListReassignments {
        partitions: Option<Vec<(String, i32)>>,
    },
    /// Kafka's DescribeQuorum: answered by the Raft leader from its replication state, not by
    /// the controller's decisions.
    DescribeQuorum,
    /// Kafka's AddRaftVoter / RemoveRaftVoter / UpdateRaftVoter, and an observer asking to be
    /// added as a learner (KIP-853): one membership change, carried out by the Raft leader.
    /// `timeout_ms` bounds the wait for a new voter to catch up.
    ChangeVoters {
        change: VoterChange,
        timeout_ms: u64,
    },
    /// Kafka's AlterUserScramCredentials, checked by the broker (mechanism, iterations, one
    /// change per user): the deletions and upsertions of one request, committed together.
    AlterScramCredentials {
        deletions: Vec<(String, i8)>,
        upsertions: Vec<(String, i8, StoredScram)>,
    },
    /// Kafka's CreateAcls: bindings to add (one that exists already is a success).
    CreateAcls {
        bindings: Vec<AclBinding>,
    },
    /// Kafka's DeleteAcls: every binding matching each filter is removed.
    DeleteAcls {
        filters: Vec<AclFilter>,
    },
    /// Kafka's AlterClientQuotas, checked by the broker: per entity, keys to set or remove.
    AlterClientQuotas {
        entries: Vec<(crate::quota::Entity, crate::quota::QuotaOps)>,
    },
    /// A partition leader's change of its remote tier (KIP-405 segment states, and the log
    /// start after remote retention or DeleteRecords); refused unless it still leads.
    RemoteLogSegments(crate::remote::RemoteLogUpdate),
    /// Every object of a deleted topic's remote tier is gone from the store.
    RemoteTopicPurged {
        topic_id: Uuid,
    },
}

/// One change of the quorum's voter set. Directory ids are the nodes' metadata log directory
/// ids; the nil id matches any (a voter seeded by `controller.quorum.voters` reports its own only
/// once it runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VoterChange {
    /// Make the node a voter (an observer first if it is not one yet), once it caught up.
    Add {
        id: i32,
        directory_id: Uuid,
        address: String,
    },
    /// Take the node out of the voter set (or an observer out of the membership).
    Remove { id: i32, directory_id: Uuid },
    /// A voter's new controller endpoint (or its directory id, learned).
    Update {
        id: i32,
        directory_id: Uuid,
        address: String,
    },
    /// A controller that is not a voter asks to follow the Raft log as an observer.
    Join {
        id: i32,
        directory_id: Uuid,
        address: String,
    },
}

/// The metadata quorum as its leader sees it (DescribeQuorum). Offsets are Raft log indexes,
/// exclusive like Kafka's log end offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumStatus {
    pub leader: i32,
    /// The Raft term: KRaft's leader epoch.
    pub epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<VoterStatus>,
    /// Raft learners: controllers that follow the log without voting.
    #[serde(default)]
    pub observers: Vec<VoterStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterStatus {
    pub id: i32,
    /// `-1` when the leader has not heard from the voter in this term.
    pub log_end: i64,
    /// The voter's quorum address, `host:port`.
    pub address: String,
    /// Its metadata log directory id, when known.
    #[serde(default)]
    pub directory_id: Option<Uuid>,
}

/// A topic to create. `replication_factor`/`partitions` of -1 mean the broker defaults, already
/// substituted by the broker before sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Manual assignment, partition index order; overrides the two counts when present.
    pub assignments: Option<Vec<Vec<i32>>>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerResponse {
    Registered {
        epoch: i64,
    },
    Heartbeat {
        fenced: bool,
        /// Controlled shutdown finished: the broker leads nothing and may exit.
        should_shutdown: bool,
        /// The controller's metadata offset when it answered: a broker whose image is older is
        /// not caught up (its view of ISRs and leaders may be stale) and does not report ready.
        #[serde(default)]
        metadata_offset: u64,
    },
    /// The partition's state after the change.
    AlterPartition(PartitionState),
    /// Per change of an `AlterPartitions`, in request order.
    AlterPartitions(Vec<Result<PartitionState, ControllerError>>),
    /// Per topic, in request order.
    CreateTopics(Vec<Result<CreatedTopic, ControllerError>>),
    DeleteTopics(Vec<Result<Uuid, ControllerError>>),
    Done,
    ProducerIds {
        first: i64,
        count: i64,
    },
    /// Per partition: Ok when a new leader was elected.
    ElectLeaders(Vec<((String, i32), Result<(), ControllerError>)>),
    AlterReassignments(Vec<((String, i32), Result<(), ControllerError>)>),
    Reassignments(Vec<OngoingReassignment>),
    Quorum(QuorumStatus),
    /// Per user named in an `AlterScramCredentials`, in request order.
    AlterScramCredentials(Vec<(String, Result<(), ControllerError>)>),
    /// Per binding of a `CreateAcls`, in request order.
    CreateAcls(Vec<Result<(), ControllerError>>),
    /// Per filter of a `DeleteAcls`: the bindings it removed.
    DeleteAcls(Vec<Result<Vec<AclBinding>, ControllerError>>),
}

/// An ongoing reassignment: (topic, partition, replicas, adding, removing).
pub type OngoingReassignment = (String, i32, Vec<i32>, Vec<i32>, Vec<i32>);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedTopic {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<PartitionState>,
}

/// Why the controller refused; each maps to one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ControllerError {
    #[error("this node is not the active controller (leader: {leader:?})")]
    NotController { leader: Option<i32> },
    #[error("no active controller can be reached: {0}")]
    Unavailable(String),
    #[error("broker {id} epoch {epoch} is stale or unknown")]
    StaleBrokerEpoch { id: i32, epoch: i64 },
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("unknown topic or partition: {0}")]
    UnknownTopicOrPartition(String),
    #[error("{0}")]
    InvalidTopic(String),
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    #[error("fenced leader epoch: {0}")]
    FencedLeaderEpoch(String),
    #[error("stale partition epoch: {0}")]
    InvalidUpdateVersion(String),
    #[error("ineligible replica: {0}")]
    IneligibleReplica(String),
    #[error("election not needed")]
    ElectionNotNeeded,
    #[error("preferred leader not available")]
    PreferredLeaderNotAvailable,
    #[error("no eligible leader available")]
    EligibleLeadersNotAvailable,
    #[error("no reassignment in progress")]
    NoReassignmentInProgress,
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    RequestTimedOut(String),
    #[error("{0}")]
    DuplicateVoter(String),
    #[error("{0}")]
    VoterNotFound(String),
}

impl ControllerError {
    /// Kafka's error code for this refusal.
    pub fn code(&self) -> i16 {
        match self {
            ControllerError::NotController { .. } => 41,
            ControllerError::Unavailable(_) => 41,
            ControllerError::StaleBrokerEpoch { .. } => 77,
            ControllerError::TopicExists(_) => 36,
            ControllerError::UnknownTopicOrPartition(_) => 3,
            ControllerError::InvalidTopic(_) => 17,
            ControllerError::InvalidReplicationFactor(_) => 38,
            ControllerError::InvalidPartitions(_) => 37,
            ControllerError::InvalidReplicaAssignment(_) => 39,
            ControllerError::FencedLeaderEpoch(_) => 74,
            ControllerError::InvalidUpdateVersion(_) => 108,
            ControllerError::IneligibleReplica(_) => 107,
            ControllerError::ElectionNotNeeded => 84,
            ControllerError::PreferredLeaderNotAvailable => 80,
            ControllerError::EligibleLeadersNotAvailable => 83,
            ControllerError::NoReassignmentInProgress => 85,
            ControllerError::InvalidRequest(_) => 42,
            ControllerError::ResourceNotFound(_) => 91,
            ControllerError::RequestTimedOut(_) => 7,
            ControllerError::DuplicateVoter(_) => 126,
            ControllerError::VoterNotFound(_) => 127,
        }
    }
}
