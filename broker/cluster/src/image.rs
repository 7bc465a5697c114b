//! The cluster metadata image: what every broker knows about the cluster, folded from the
//! metadata log. Brokers answer Metadata from it, decide which partitions they lead or follow
//! from it, and the controller decides the next records from it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::record::MetadataRecord;

/// Kafka's "no leader" id.
pub const NO_LEADER: i32 = -1;

/// A listener a broker serves clients (or other brokers) on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Listener name, upper-case (`PLAINTEXT`, `INTERNAL`, ...).
    pub name: String,
    pub host: String,
    pub port: u16,
    pub security_protocol: String,
}

/// A broker as registered with the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub id: i32,
    /// Metadata log index of the registration: a restarted broker gets a new epoch, so requests
    /// from its previous incarnation are recognised as stale.
    pub epoch: i64,
    /// Random per process start; tells a restart from a duplicate registration.
    pub incarnation: Uuid,
    pub rack: Option<String>,
    /// Advertised listeners.
    pub endpoints: Vec<Endpoint>,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
    /// The broker's replicas in failed log dirs, as its heartbeats last reported them: offline
    /// replicas in Metadata (Kafka's offline directories of the registration).
    #[serde(default)]
    pub offline_replicas: BTreeSet<(String, i32)>,
}

impl BrokerRegistration {
    /// The endpoint of listener `name`, if the broker has one.
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }
}

/// One partition's replication state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Assigned replicas, preferred leader first. During a reassignment: the union of the old
    /// and the target replicas.
    pub replicas: Vec<i32>,
    /// In-sync replicas (always a subset of `replicas`, contains the leader if there is one).
    pub isr: Vec<i32>,
    /// `NO_LEADER` when no eligible replica is alive.
    pub leader: i32,
    /// Bumped on every leader change; fences requests of earlier leaders (KIP-101, KIP-320).
    pub leader_epoch: i32,
    /// Bumped on every change of this state; an AlterPartition based on an older state is stale.
    pub partition_epoch: i32,
    /// Replicas being added by an ongoing reassignment.
    pub adding: Vec<i32>,
    /// Replicas being removed by an ongoing reassignment.
    pub removing: Vec<i32>,
}

impl PartitionState {
    /// A new partition: every replica in sync, the first one leads, epochs at zero.
    pub fn new(replicas: Vec<i32>) -> PartitionState {
        let leader = replicas.first().copied().unwrap_or(NO_LEADER);
        PartitionState {
            isr: replicas.clone(),
            replicas,
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
        }
    }

    /// The replica Kafka calls preferred: the first assigned one.
    pub fn preferred_leader(&self) -> Option<i32> {
        self.replicas.first().copied()
    }

    pub fn is_reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }
}

/// A topic and its partitions (index = partition id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    /// Topic-level config overrides (Kafka key names).
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<PartitionState>,
}

/// The whole cluster metadata at one metadata log index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// Index of the last applied metadata log entry (0: nothing applied).
    pub offset: u64,
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// Shared with earlier images: a new image per applied entry copies only the topics the
    /// entry changed, so a cluster with many partitions does not copy them all on every change.
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    /// The next producer id the controller hands out.
    pub next_producer_id: i64,
    /// Producer ids below this are another cluster's, in linked mirror topics
    /// (`MetadataRecord::ReserveProducerIds`): never handed out here.
    #[serde(default)]
    pub producer_ids_reserved_below: i64,
    /// The cluster id every node reports (`None` until the first controller wrote it; metadata
    /// logs from before it existed gain one on their next controller activation).
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// SCRAM credentials: user -> Kafka mechanism type id -> credential.
    #[serde(default)]
    pub scram: BTreeMap<String, BTreeMap<i8, StoredScram>>,
    /// ACL bindings by id (StandardAuthorizer's).
    #[serde(default)]
    pub acls: BTreeMap<Uuid, crate::acl::AclBinding>,
    /// Client quotas by entity key (see `quota::entity_key`).
    #[serde(default)]
    pub quotas: BTreeMap<String, crate::quota::ClientQuota>,
    /// Tiered storage: each topic's remote segments (see `remote`).
    #[serde(default)]
    pub remote: BTreeMap<String, Arc<crate::remote::RemoteTopic>>,
    /// Remote tiers of deleted topics, by topic id, until a broker has purged them.
    #[serde(default)]
    pub remote_purge: BTreeMap<Uuid, Arc<crate::remote::RemoteTopic>>,
}

/// A SCRAM credential as Kafka stores it (RFC 5802's StoredKey and ServerKey with the salt and
/// iteration count they were derived with): enough to verify a client, useless to impersonate one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredScram {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

impl std::fmt::Debug for StoredScram {
    // Keys stay out of logs: a stored key is what an offline dictionary attack starts from.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredScram")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl Image {
    /// Folds one record into the image. Records naming things that no longer exist (a partition
    /// change for a deleted topic) are ignored: the controller decided them against an image in
    /// which they existed, and a later record removed the thing.
    pub fn apply(&mut self, offset: u64, record: &MetadataRecord) {
        self.offset = self.offset.max(offset);
        match record {
            MetadataRecord::RegisterBroker(registration) => {
                self.brokers.insert(registration.id, registration.clone());
            }
            MetadataRecord::FenceBroker { id, epoch } => {
                if let Some(b) = self.broker_at(*id, *epoch) {
                    b.fenced = true;
                }
            }
            MetadataRecord::UnfenceBroker { id, epoch } => {
                if let Some(b) = self.broker_at(*id, *epoch) {
                    b.fenced = false;
                    b.in_controlled_shutdown = false;
                }
            }
            MetadataRecord::BeginControlledShutdown { id, epoch } => {
                if let Some(b) = self.broker_at(*id, *epoch) {
                    b.in_controlled_shutdown = true;
                }
            }
            MetadataRecord::BrokerReplicasOffline {
                id,
                epoch,
                partitions,
            } => {
                if let Some(b) = self.broker_at(*id, *epoch) {
                    b.offline_replicas = partitions.iter().cloned().collect();
                }
            }
            MetadataRecord::CreateTopic {
                name,
                id,
                configs,
                partitions,
            } => {
                self.topics.insert(
                    name.clone(),
                    Arc::new(TopicImage {
                        name: name.clone(),
                        id: *id,
                        configs: configs.clone(),
                        partitions: partitions.clone(),
                    }),
                );
            }
            MetadataRecord::DeleteTopic { name } => {
                self.topics.remove(name);
                self.remote_topic_deleted(name);
            }
            MetadataRecord::AddPartitions { topic, partitions } => {
                if let Some(t) = self.topics.get_mut(topic) {
                    Arc::make_mut(t)
                        .partitions
                        .extend(partitions.iter().cloned());
                }
            }
            MetadataRecord::SetTopicConfigs { topic, configs } => {
                if let Some(t) = self.topics.get_mut(topic) {
                    Arc::make_mut(t).configs = configs.clone();
                }
            }
            MetadataRecord::ChangePartition {
                topic,
                partition,
                state,
            } => {
                if let Some(p) = self.topics.get_mut(topic).and_then(|t| {
                    Arc::make_mut(t)
                        .partitions
                        .get_mut(usize::try_from(*partition).ok()?)
                }) {
                    *p = state.clone();
                }
            }
            MetadataRecord::AllocateProducerIds { first, count, .. } => {
                self.next_producer_id = self.next_producer_id.max(first + count);
            }
            MetadataRecord::ReserveProducerIds { below } => {
                self.producer_ids_reserved_below = self.producer_ids_reserved_below.max(*below);
                self.next_producer_id = self.next_producer_id.max(*below);
            }
            MetadataRecord::SetScramCredential {
                user,
                mechanism,
                credential,
            } => {
                self.scram
                    .entry(user.clone())
                    .or_default()
                    .insert(*mechanism, credential.clone());
            }
            MetadataRecord::RemoveScramCredential { user, mechanism } => {
                if let Some(mechanisms) = self.scram.get_mut(user) {
                    mechanisms.remove(mechanism);
                    if mechanisms.is_empty() {
                        self.scram.remove(user);
                    }
                }
            }
            MetadataRecord::CreateAcl { id, binding } => {
                self.acls.insert(*id, binding.clone());
            }
            MetadataRecord::RemoveAcl { id } => {
                self.acls.remove(id);
            }
            MetadataRecord::SetClientQuota { entity, key, value } => {
                let name = crate::quota::entity_key(entity);
                match value {
                    Some(v) => {
                        self.quotas
                            .entry(name)
                            .or_insert_with(|| crate::quota::ClientQuota {
                                entity: entity.clone(),
                                values: BTreeMap::new(),
                            })
                            .values
                            .insert(key.clone(), *v);
                    }
                    None => {
                        if let Some(q) = self.quotas.get_mut(&name) {
                            q.values.remove(key);
                            if q.values.is_empty() {
                                self.quotas.remove(&name);
                            }
                        }
                    }
                }
            }
            MetadataRecord::RemoteLogSegment { .. }
            | MetadataRecord::RemoteLogStart { .. }
            | MetadataRecord::RemoteTopicPurged { .. } => self.apply_remote(record),
            MetadataRecord::SetClusterId { id } => {
                // First wins: an id once reported must never change under the clients.
                if self.cluster_id.is_none() {
                    self.cluster_id = Some(id.clone());
                }
            }
        }
    }

    fn broker_at(&mut self, id: i32, epoch: i64) -> Option<&mut BrokerRegistration> {
        self.brokers.get_mut(&id).filter(|b| b.epoch == epoch)
    }

    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name).map(|t| &**t)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicImage> {
        self.topics.values().find(|t| t.id == *id).map(|t| &**t)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.topics
            .get(topic)?
            .partitions
            .get(usize::try_from(partition).ok()?)
    }

    /// Brokers that are registered and not fenced: the ones that may lead and be in an ISR.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    pub fn is_live(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// Replicas of a partition on brokers that are fenced or unknown, or in a log dir that
    /// failed (Kafka's offline replicas).
    pub fn offline_replicas(
        &self,
        topic: &str,
        partition: i32,
        state: &PartitionState,
    ) -> Vec<i32> {
        state
            .replicas
            .iter()
            .copied()
            .filter(|r| match self.brokers.get(r) {
                Some(b) => {
                    b.fenced
                        || b.offline_replicas
                            .iter()
                            .any(|(t, p)| t == topic && *p == partition)
                }
                None => true,
            })
            .collect()
    }

    /// Every (topic, partition, state), in name then index order.
    pub fn partitions(&self) -> impl Iterator<Item = (&str, i32, &PartitionState)> {
        self.topics.values().flat_map(|t| {
            t.partitions
                .iter()
                .enumerate()
                .map(move |(i, p)| (t.name.as_str(), i as i32, p))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(id: i32, epoch: i64) -> BrokerRegistration {
        BrokerRegistration {
            id,
            epoch,
            incarnation: Uuid::nil(),
            rack: None,
            endpoints: vec![],
            fenced: true,
            in_controlled_shutdown: false,
            offline_replicas: BTreeSet::new(),
        }
    }

    #[test]
    fn fencing_a_stale_epoch_is_ignored() {
        let mut image = Image::default();
        image.apply(1, &MetadataRecord::RegisterBroker(broker(1, 1)));
        image.apply(2, &MetadataRecord::UnfenceBroker { id: 1, epoch: 1 });
        assert!(image.is_live(1));
        image.apply(3, &MetadataRecord::RegisterBroker(broker(1, 3)));
        image.apply(4, &MetadataRecord::UnfenceBroker { id: 1, epoch: 3 });
        // A fence decided against the first incarnation must not fence the second.
        image.apply(5, &MetadataRecord::FenceBroker { id: 1, epoch: 1 });
        assert!(image.is_live(1));
        assert_eq!(image.offset, 5);
    }

    #[test]
    fn partition_changes_for_deleted_topics_are_ignored() {
        let mut image = Image::default();
        image.apply(
            1,
            &MetadataRecord::CreateTopic {
                name: "t".into(),
                id: Uuid::nil(),
                configs: BTreeMap::new(),
                partitions: vec![PartitionState::new(vec![1, 2, 3])],
            },
        );
        image.apply(2, &MetadataRecord::DeleteTopic { name: "t".into() });
        image.apply(
            3,
            &MetadataRecord::ChangePartition {
                topic: "t".into(),
                partition: 0,
                state: PartitionState::new(vec![2]),
            },
        );
        assert!(image.topics.is_empty());
    }
}
