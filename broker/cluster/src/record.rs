//! Metadata records: the entries of the replicated metadata log. Each record is a complete,
//! already-decided change (the controller did the deciding), so applying one is a pure, total
//! function of the image and the record: every node folds the same log into the same image.
//!
//! Records are state-based where that keeps them idempotent: a partition change carries the whole
//! new partition state rather than a delta.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::acl::AclBinding;
use crate::image::{BrokerRegistration, PartitionState, StoredScram};

/// One entry of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A broker (re-)registered. Replaces any earlier registration of the same id; the broker
    /// starts fenced until its first heartbeat shows it caught up with the metadata log.
    RegisterBroker(BrokerRegistration),
    /// The broker stopped heartbeating (or was told to shut down): it leads nothing and is in no
    /// ISR any more (the same change carries the partition records that move those away).
    FenceBroker { id: i32, epoch: i64 },
    /// The broker heartbeats and has caught up with the metadata log.
    UnfenceBroker { id: i32, epoch: i64 },
    /// The broker asked for a controlled shutdown; it is leaving its leaderships.
    BeginControlledShutdown { id: i32, epoch: i64 },
    /// The broker's replicas in failed log dirs changed (its heartbeat reported them): the
    /// complete set, replacing the previous one.
    BrokerReplicasOffline {
        id: i32,
        epoch: i64,
        partitions: Vec<(String, i32)>,
    },
    /// A topic with its partitions' initial states.
    CreateTopic {
        name: String,
        id: Uuid,
        configs: BTreeMap<String, String>,
        partitions: Vec<PartitionState>,
    },
    /// The topic and all its partitions are gone.
    DeleteTopic { name: String },
    /// New partitions appended to a topic (indexes continue from the current count).
    AddPartitions {
        topic: String,
        partitions: Vec<PartitionState>,
    },
    /// The topic's full set of configuration overrides (replace semantics).
    SetTopicConfigs {
        topic: String,
        configs: BTreeMap<String, String>,
    },
    /// The new state of one partition: leader election, ISR change, reassignment step.
    ChangePartition {
        topic: String,
        partition: i32,
        state: PartitionState,
    },
    /// Producer ids `[first, first + count)` now belong to `broker`.
    AllocateProducerIds { broker: i32, first: i64, count: i64 },
    /// Producer ids below `below` are used by producers of another cluster whose batches a
    /// linked mirror topic holds: no broker hands them out (blocks start above, and a block
    /// already held is dropped where it is below).
    ReserveProducerIds { below: i64 },
    /// The cluster's id, written once by the first active controller (its own configured or
    /// formatted id, or a new one): every node adopts it, and a node whose log dirs name another
    /// cluster refuses to start. Later records of this kind are ignored.
    SetClusterId { id: String },
    /// A user's SCRAM credential for one mechanism (Kafka's UserScramCredentialRecord; the
    /// mechanism is Kafka's type id, 1 = SHA-256, 2 = SHA-512): salted keys, never a password.
    /// Replaces the user's earlier credential for that mechanism.
    SetScramCredential {
        user: String,
        mechanism: i8,
        credential: StoredScram,
    },
    /// Kafka's RemoveUserScramCredentialRecord.
    RemoveScramCredential { user: String, mechanism: i8 },
    /// Kafka's AccessControlEntryRecord: an ACL binding under its id.
    CreateAcl { id: Uuid, binding: AclBinding },
    /// Kafka's RemoveAccessControlEntryRecord.
    RemoveAcl { id: Uuid },
    /// Kafka's ClientQuotaRecord: one quota key of one entity set (`Some`) or removed.
    SetClientQuota {
        entity: crate::quota::Entity,
        key: String,
        value: Option<crate::quota::QuotaValue>,
    },
    /// Kafka's RemoteLogSegmentMetadata(Update)Record, state-based: the segment's whole metadata
    /// in its new state (DELETE_SEGMENT_FINISHED removes it).
    RemoteLogSegment {
        topic: String,
        partition: i32,
        segment: crate::remote::RemoteSegment,
    },
    /// The partition's log start moved into (or past) the remote tier.
    RemoteLogStart {
        topic: String,
        partition: i32,
        offset: i64,
    },
    /// A deleted topic's remote objects are gone.
    RemoteTopicPurged { topic_id: Uuid },
}
