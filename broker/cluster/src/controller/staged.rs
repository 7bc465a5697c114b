//! The image as a decision in progress sees it: the committed image plus the records decided so
//! far in this decision, and Kafka's partition-change rules (`PartitionChangeBuilder`): who may
//! lead, how a leader is elected, and which epochs a change bumps.

use std::collections::BTreeMap;

use crate::controller::ControllerSettings;
use crate::image::{BrokerRegistration, Image, NO_LEADER, PartitionState};
use crate::record::MetadataRecord;

/// Topic config key that allows electing a replica outside the ISR.
pub const UNCLEAN_LEADER_ELECTION: &str = "unclean.leader.election.enable";

/// The committed image overlaid with the broker and partition changes decided so far, so that
/// later steps of one decision build on earlier ones.
pub struct Staged<'a> {
    pub image: &'a Image,
    settings: &'a ControllerSettings,
    brokers: BTreeMap<i32, BrokerRegistration>,
    partitions: BTreeMap<String, BTreeMap<i32, PartitionState>>,
    pub records: Vec<MetadataRecord>,
}

impl<'a> Staged<'a> {
    pub fn new(image: &'a Image, settings: &'a ControllerSettings) -> Staged<'a> {
        Staged {
            image,
            settings,
            brokers: BTreeMap::new(),
            partitions: BTreeMap::new(),
            records: Vec::new(),
        }
    }

    /// Adds a record to the decision and to this view of the image.
    pub fn push(&mut self, record: MetadataRecord) {
        match &record {
            MetadataRecord::RegisterBroker(registration) => {
                self.brokers.insert(registration.id, registration.clone());
            }
            MetadataRecord::FenceBroker { id, epoch } => {
                if let Some(mut b) = self.broker_at(*id, *epoch) {
                    b.fenced = true;
                    self.brokers.insert(*id, b);
                }
            }
            MetadataRecord::UnfenceBroker { id, epoch } => {
                if let Some(mut b) = self.broker_at(*id, *epoch) {
                    b.fenced = false;
                    b.in_controlled_shutdown = false;
                    self.brokers.insert(*id, b);
                }
            }
            MetadataRecord::BeginControlledShutdown { id, epoch } => {
                if let Some(mut b) = self.broker_at(*id, *epoch) {
                    b.in_controlled_shutdown = true;
                    self.brokers.insert(*id, b);
                }
            }
            MetadataRecord::BrokerReplicasOffline {
                id,
                epoch,
                partitions,
            } => {
                if let Some(mut b) = self.broker_at(*id, *epoch) {
                    b.offline_replicas = partitions.iter().cloned().collect();
                    self.brokers.insert(*id, b);
                }
            }
            MetadataRecord::ChangePartition {
                topic,
                partition,
                state,
            } => {
                self.partitions
                    .entry(topic.clone())
                    .or_default()
                    .insert(*partition, state.clone());
            }
            // Topic-level records are only decided by requests that track their own effects.
            MetadataRecord::CreateTopic { .. }
            | MetadataRecord::DeleteTopic { .. }
            | MetadataRecord::AddPartitions { .. }
            | MetadataRecord::SetTopicConfigs { .. }
            | MetadataRecord::AllocateProducerIds { .. }
            | MetadataRecord::ReserveProducerIds { .. }
            | MetadataRecord::SetClusterId { .. }
            | MetadataRecord::SetScramCredential { .. }
            | MetadataRecord::RemoveScramCredential { .. }
            | MetadataRecord::CreateAcl { .. }
            | MetadataRecord::RemoveAcl { .. }
            | MetadataRecord::SetClientQuota { .. }
            | MetadataRecord::RemoteLogSegment { .. }
            | MetadataRecord::RemoteLogStart { .. }
            | MetadataRecord::RemoteTopicPurged { .. } => {}
        }
        self.records.push(record);
    }

    fn broker_at(&self, id: i32, epoch: i64) -> Option<BrokerRegistration> {
        self.broker(id).filter(|b| b.epoch == epoch).cloned()
    }

    pub fn broker(&self, id: i32) -> Option<&BrokerRegistration> {
        self.brokers
            .get(&id)
            .or_else(|| self.image.brokers.get(&id))
    }

    /// Every registered broker, as of this decision.
    pub fn brokers(&self) -> Vec<&BrokerRegistration> {
        let mut ids: Vec<i32> = self.image.brokers.keys().copied().collect();
        ids.extend(self.brokers.keys().copied());
        ids.sort_unstable();
        ids.dedup();
        ids.iter().filter_map(|id| self.broker(*id)).collect()
    }

    /// Not fenced: may stay in an ISR.
    pub fn is_live(&self, id: i32) -> bool {
        self.broker(id).is_some_and(|b| !b.fenced)
    }

    /// Live and not shutting down (Kafka's "active"): may become leader or join an ISR.
    pub fn is_active(&self, id: i32) -> bool {
        self.broker(id)
            .is_some_and(|b| !b.fenced && !b.in_controlled_shutdown)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.partitions
            .get(topic)
            .and_then(|t| t.get(&partition))
            .or_else(|| self.image.partition(topic, partition))
    }

    /// The (topic, partition) of every partition whose state (as of this decision) matches
    /// `pred`, in name then index order.
    pub fn select(&self, pred: impl Fn(&PartitionState) -> bool) -> Vec<(String, i32)> {
        self.image
            .partitions()
            .filter(|(t, p, s)| {
                let s = self
                    .partitions
                    .get(*t)
                    .and_then(|ps| ps.get(p))
                    .unwrap_or(s);
                pred(s)
            })
            .map(|(t, p, _)| (t.to_string(), p))
            .collect()
    }

    /// Whether `topic` may elect a leader outside its ISR: the topic override, else the default.
    pub fn unclean_allowed(&self, topic: &str) -> bool {
        self.image
            .topic(topic)
            .and_then(|t| t.configs.get(UNCLEAN_LEADER_ELECTION))
            .map(|v| v.trim().eq_ignore_ascii_case("true"))
            .unwrap_or(self.settings.unclean_leader_election)
    }

    /// Fixes the leader of a proposed state by Kafka's rules: the current leader stays while it
    /// is in the ISR and active; otherwise the first active ISR member in replica order; a
    /// leader in controlled shutdown keeps leading while nobody else can; then, where the topic
    /// allows it, any active replica (which becomes the whole ISR); else no leader, the ISR
    /// keeping its last member.
    pub fn elect(&self, topic: &str, state: &mut PartitionState) {
        if state.leader != NO_LEADER
            && state.isr.contains(&state.leader)
            && self.is_active(state.leader)
        {
            return;
        }
        if let Some(leader) = state
            .replicas
            .iter()
            .copied()
            .find(|r| state.isr.contains(r) && self.is_active(*r))
        {
            state.leader = leader;
            return;
        }
        if state.leader != NO_LEADER
            && state.isr.contains(&state.leader)
            && self.is_live(state.leader)
        {
            return;
        }
        if self.unclean_allowed(topic)
            && let Some(leader) = state.replicas.iter().copied().find(|r| self.is_active(*r))
        {
            state.leader = leader;
            state.isr = vec![leader];
            return;
        }
        state.leader = NO_LEADER;
    }

    /// Stages `proposed` (replicas/ISR/leader/reassignment already decided, epochs as in the
    /// current state) as the partition's next state: a leader change bumps the leader epoch,
    /// any change bumps the partition epoch. Returns the new state, or `None` if nothing
    /// changed (then no record is written).
    pub fn change(
        &mut self,
        topic: &str,
        partition: i32,
        mut proposed: PartitionState,
    ) -> Option<PartitionState> {
        let current = self.partition(topic, partition)?.clone();
        let same = proposed.replicas == current.replicas
            && proposed.isr == current.isr
            && proposed.leader == current.leader
            && proposed.adding == current.adding
            && proposed.removing == current.removing;
        if same {
            return None;
        }
        proposed.leader_epoch = if proposed.leader != current.leader {
            current.leader_epoch + 1
        } else {
            current.leader_epoch
        };
        proposed.partition_epoch = current.partition_epoch + 1;
        self.push(MetadataRecord::ChangePartition {
            topic: topic.to_string(),
            partition,
            state: proposed.clone(),
        });
        Some(proposed)
    }

    /// Removes `brokers` (in order) from the partition's ISR, except that the ISR keeps its
    /// last member, then re-elects the leader if it can no longer lead. Used when brokers are
    /// fenced or re-register.
    pub fn drop_from_isr(&mut self, topic: &str, partition: i32, brokers: &[i32]) {
        let Some(current) = self.partition(topic, partition) else {
            return;
        };
        let mut proposed = current.clone();
        for b in brokers {
            if proposed.isr.contains(b) && proposed.isr.len() > 1 {
                proposed.isr.retain(|r| r != b);
            }
        }
        self.elect(topic, &mut proposed);
        self.change(topic, partition, proposed);
    }

    /// Elects a leader where the partition has none and someone may now lead.
    pub fn elect_if_leaderless(&mut self, topic: &str, partition: i32) {
        let Some(current) = self.partition(topic, partition) else {
            return;
        };
        if current.leader != NO_LEADER {
            return;
        }
        let mut proposed = current.clone();
        self.elect(topic, &mut proposed);
        self.change(topic, partition, proposed);
    }
}
