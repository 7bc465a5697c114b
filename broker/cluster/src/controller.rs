//! The active controller's decisions: turns `ControllerRequest`s and the passage of time into
//! metadata records, against the current image. Pure apart from the heartbeat clock it keeps in
//! memory (like Kafka's KRaft controller, heartbeats are not logged; fencing is).

mod acls;
pub(crate) mod brokers;
mod credentials;
mod elections;
mod reassignment;
pub(crate) mod staged;
mod topics;

pub use topics::MAX_PARTITIONS_PER_TOPIC;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::image::{Image, NO_LEADER, PartitionState};
use crate::record::MetadataRecord;
use crate::rpc::{ControllerError, ControllerRequest, ControllerResponse};

use staged::Staged;
pub use staged::UNCLEAN_LEADER_ELECTION;

/// Knobs of the controller, from the broker config.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    /// `broker.session.timeout.ms`: a broker silent this long is fenced.
    pub session_timeout: Duration,
    /// Default of the topic key `unclean.leader.election.enable`.
    pub unclean_leader_election: bool,
    /// `auto.leader.rebalance.enable`.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`.
    pub imbalance_check_interval: Duration,
    /// Producer ids handed out per AllocateProducerIds.
    pub producer_id_block: i64,
    /// The id this controller writes as the cluster's when the metadata log has none yet: its
    /// node's configured or formatted `cluster.id`, or a new one.
    pub cluster_id: String,
    /// SCRAM credentials to create with the cluster id (`--add-scram`): written once, when the
    /// metadata log is new, as `kafka-storage format --add-scram` does.
    pub bootstrap_scram: Vec<(String, i8, crate::image::StoredScram)>,
}

/// What the controller decided for one request: records to commit (in order, atomically from the
/// caller's point of view) and the answer to send once they are committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub records: Vec<MetadataRecord>,
    pub response: ControllerResponse,
}

pub struct Controller {
    settings: ControllerSettings,
    last_heartbeat: HashMap<i32, Instant>,
    last_rebalance_check: Option<Instant>,
}

impl Controller {
    pub fn new(settings: ControllerSettings) -> Controller {
        Controller {
            settings,
            last_heartbeat: HashMap::new(),
            last_rebalance_check: None,
        }
    }

    /// This node just became the active controller: every registered broker gets a full session
    /// from `now` before it can be fenced (the previous controller's clock is lost).
    pub fn activate(&mut self, image: &Image, now: Instant) {
        if image.cluster_id.is_some() && !self.settings.bootstrap_scram.is_empty() {
            tracing::info!(
                credentials = self.settings.bootstrap_scram.len(),
                "--add-scram ignored: the metadata log already exists (credentials are created \
                 only with a new cluster; use AlterUserScramCredentials)"
            );
        }
        self.last_heartbeat = image.brokers.keys().map(|id| (*id, now)).collect();
        self.last_rebalance_check = Some(now);
    }

    /// Decides one request against `image` (the image with every earlier decision applied).
    pub fn handle(
        &mut self,
        image: &Image,
        request: ControllerRequest,
        now: Instant,
    ) -> Result<Decision, ControllerError> {
        let mut staged = Staged::new(image, &self.settings);
        let response = match request {
            ControllerRequest::RegisterBroker {
                id,
                incarnation,
                rack,
                endpoints,
            } => {
                let epoch = brokers::register(&mut staged, id, incarnation, rack, endpoints);
                self.last_heartbeat.insert(id, now);
                ControllerResponse::Registered { epoch }
            }
            ControllerRequest::Heartbeat {
                id,
                epoch,
                metadata_offset,
                want_shutdown,
                offline_partitions,
            } => {
                let (fenced, should_shutdown) =
                    brokers::heartbeat(&mut staged, id, epoch, metadata_offset, want_shutdown)?;
                brokers::replicas_offline(&mut staged, id, &offline_partitions);
                self.last_heartbeat.insert(id, now);
                ControllerResponse::Heartbeat {
                    fenced,
                    should_shutdown,
                    metadata_offset: image.offset,
                }
            }
            ControllerRequest::AlterPartition {
                broker,
                broker_epoch,
                topic,
                partition,
                leader_epoch,
                partition_epoch,
                isr,
            } => ControllerResponse::AlterPartition(reassignment::alter_partition(
                &mut staged,
                reassignment::AlterIsr {
                    broker,
                    broker_epoch,
                    topic: &topic,
                    partition,
                    leader_epoch,
                    partition_epoch,
                    isr,
                },
            )?),
            ControllerRequest::RaiseLeaderEpoch {
                broker,
                broker_epoch,
                topic,
                partition,
                leader_epoch,
                at_least,
            } => {
                elections::raise_leader_epoch(
                    &mut staged,
                    broker,
                    broker_epoch,
                    (&topic, partition),
                    leader_epoch,
                    at_least,
                )?;
                ControllerResponse::Done
            }
            ControllerRequest::AlterPartitions {
                broker,
                broker_epoch,
                changes,
            } => ControllerResponse::AlterPartitions(
                changes
                    .into_iter()
                    .map(|c| {
                        reassignment::alter_partition(
                            &mut staged,
                            reassignment::AlterIsr {
                                broker,
                                broker_epoch,
                                topic: &c.topic,
                                partition: c.partition,
                                leader_epoch: c.leader_epoch,
                                partition_epoch: c.partition_epoch,
                                isr: c.isr,
                            },
                        )
                    })
                    .collect(),
            ),
            ControllerRequest::CreateTopics {
                topics,
                validate_only,
            } => ControllerResponse::CreateTopics(topics::create_topics(
                &mut staged,
                topics,
                validate_only,
            )),
            ControllerRequest::DeleteTopics { names } => {
                ControllerResponse::DeleteTopics(topics::delete_topics(&mut staged, names))
            }
            ControllerRequest::CreatePartitions {
                topic,
                count,
                assignments,
                validate_only,
            } => {
                topics::create_partitions(&mut staged, &topic, count, assignments, validate_only)?;
                ControllerResponse::Done
            }
            ControllerRequest::SetTopicConfigs { topic, configs } => {
                if image.topic(&topic).is_none() {
                    return Err(ControllerError::UnknownTopicOrPartition(topic));
                }
                staged.push(MetadataRecord::SetTopicConfigs { topic, configs });
                ControllerResponse::Done
            }
            ControllerRequest::ReserveProducerIds {
                broker,
                broker_epoch,
                below,
            } => {
                brokers::check_epoch(&staged, broker, broker_epoch)?;
                if below > image.producer_ids_reserved_below {
                    staged.push(MetadataRecord::ReserveProducerIds { below });
                }
                ControllerResponse::Done
            }
            ControllerRequest::AllocateProducerIds {
                broker,
                broker_epoch,
            } => {
                brokers::check_epoch(&staged, broker, broker_epoch)?;
                let first = image.next_producer_id;
                let count = self.settings.producer_id_block;
                staged.push(MetadataRecord::AllocateProducerIds {
                    broker,
                    first,
                    count,
                });
                ControllerResponse::ProducerIds { first, count }
            }
            ControllerRequest::ElectLeaders {
                preferred,
                partitions,
            } => ControllerResponse::ElectLeaders(elections::elect_leaders(
                &mut staged,
                preferred,
                partitions,
            )),
            ControllerRequest::AlterReassignments { changes } => {
                ControllerResponse::AlterReassignments(
                    changes
                        .into_iter()
                        .map(|(topic, partition, target)| {
                            let result =
                                reassignment::alter(&mut staged, &topic, partition, target);
                            ((topic, partition), result)
                        })
                        .collect(),
                )
            }
            ControllerRequest::DescribeQuorum | ControllerRequest::ChangeVoters { .. } => {
                // The quorum layer answers these from Raft's state before they reach here.
                return Err(ControllerError::InvalidRequest(
                    "quorum requests are answered by the Raft leader".into(),
                ));
            }
            ControllerRequest::ListReassignments { partitions } => {
                ControllerResponse::Reassignments(reassignment::list(image, partitions))
            }
            ControllerRequest::AlterScramCredentials {
                deletions,
                upsertions,
            } => ControllerResponse::AlterScramCredentials(credentials::alter(
                &mut staged,
                image,
                deletions,
                upsertions,
            )),
            ControllerRequest::CreateAcls { bindings } => {
                ControllerResponse::CreateAcls(acls::create(&mut staged, image, bindings))
            }
            ControllerRequest::DeleteAcls { filters } => {
                ControllerResponse::DeleteAcls(acls::delete(&mut staged, image, filters))
            }
            ControllerRequest::RemoteLogSegments(update) => {
                crate::remote::update(&mut staged, update)?;
                ControllerResponse::Done
            }
            ControllerRequest::RemoteTopicPurged { topic_id } => {
                if image.remote_purge.contains_key(&topic_id) {
                    staged.push(MetadataRecord::RemoteTopicPurged { topic_id });
                }
                ControllerResponse::Done
            }
            ControllerRequest::AlterClientQuotas { entries } => {
                for (entity, ops) in entries {
                    let entity = crate::quota::normalize(entity);
                    for (key, value) in ops {
                        staged.push(MetadataRecord::SetClientQuota {
                            entity: entity.clone(),
                            key,
                            value,
                        });
                    }
                }
                ControllerResponse::Done
            }
        };
        Ok(Decision {
            records: staged.records,
            response,
        })
    }

    /// Periodic work (call every ~100 ms): fence brokers whose session expired, elect leaders
    /// for leaderless partitions, finish reassignments whose new replicas are in sync, and move
    /// leadership back to preferred replicas when `auto_leader_rebalance` is on.
    pub fn tick(&mut self, image: &Image, now: Instant) -> Vec<MetadataRecord> {
        if image.cluster_id.is_none() {
            // Alone in its batch (with the bootstrap credentials that belong to a new log) so that
            // nothing else waits on it; the next tick sees it applied.
            let mut records = vec![MetadataRecord::SetClusterId {
                id: self.settings.cluster_id.clone(),
            }];
            records.extend(credentials::bootstrap(&self.settings.bootstrap_scram));
            return records;
        }
        let mut staged = Staged::new(image, &self.settings);
        let mut expired = Vec::new();
        for broker in image.brokers.values() {
            // A broker this controller has never heard of gets a full session from now.
            let last = *self.last_heartbeat.entry(broker.id).or_insert(now);
            if !broker.fenced && now.saturating_duration_since(last) > self.settings.session_timeout
            {
                expired.push(broker.id);
            }
        }
        if !expired.is_empty() {
            tracing::info!(brokers = ?expired, "fencing brokers whose session expired");
            brokers::fence(&mut staged, &expired);
        }
        for (topic, partition) in staged.select(|s| s.leader == NO_LEADER) {
            staged.elect_if_leaderless(&topic, partition);
        }
        for (topic, partition) in staged.select(PartitionState::is_reassigning) {
            reassignment::complete_if_ready(&mut staged, &topic, partition);
        }
        let last_check = *self.last_rebalance_check.get_or_insert(now);
        if now.saturating_duration_since(last_check) >= self.settings.imbalance_check_interval {
            self.last_rebalance_check = Some(now);
            if self.settings.auto_leader_rebalance {
                elections::rebalance(&mut staged);
            }
        }
        staged.records
    }
}
