//! Topic decisions (Kafka's `ReplicationControlManager` topic side): create with placement or an
//! explicit assignment, delete, add partitions.

use std::collections::{BTreeSet, HashSet};

use uuid::Uuid;

use crate::controller::staged::Staged;
use crate::image::{NO_LEADER, PartitionState};
use crate::placement::{self, PlacementError};
use crate::record::MetadataRecord;
use crate::rpc::{ControllerError, CreatedTopic, NewTopic};

/// Upper bound on partitions per topic. Kafka has no hard limit, but one request for two billion
/// partitions must fail cleanly; 10,000 is far beyond what one topic is ever given.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

fn placement_error(e: PlacementError) -> ControllerError {
    match e {
        PlacementError::InvalidPartitions => ControllerError::InvalidPartitions(e.to_string()),
        PlacementError::ReplicationFactorTooSmall
        | PlacementError::ReplicationFactorTooLarge { .. } => {
            ControllerError::InvalidReplicationFactor(e.to_string())
        }
        PlacementError::PartialRackInformation
        | PlacementError::DuplicateBroker(_)
        | PlacementError::InvalidAssignment(_) => {
            ControllerError::InvalidReplicaAssignment(e.to_string())
        }
    }
}

/// Brokers new replicas may be placed on: active ones (unfenced, not shutting down), with racks.
fn active_brokers(staged: &Staged<'_>) -> Vec<(i32, Option<String>)> {
    staged
        .brokers()
        .into_iter()
        .filter(|b| !b.fenced && !b.in_controlled_shutdown)
        .map(|b| (b.id, b.rack.clone()))
        .collect()
}

fn registered(staged: &Staged<'_>) -> BTreeSet<i32> {
    staged.brokers().into_iter().map(|b| b.id).collect()
}

/// Initial states of new partitions: the active replicas form the ISR, the first of them leads.
fn initial_states(
    staged: &Staged<'_>,
    assignment: Vec<Vec<i32>>,
    first_index: usize,
) -> Result<Vec<PartitionState>, ControllerError> {
    assignment
        .into_iter()
        .enumerate()
        .map(|(i, replicas)| {
            let mut state = PartitionState::new(replicas);
            state.isr.retain(|r| staged.is_active(*r));
            state.leader = state.isr.first().copied().unwrap_or(NO_LEADER);
            if state.leader == NO_LEADER {
                return Err(ControllerError::InvalidReplicaAssignment(format!(
                    "all brokers specified for partition {} are fenced or in controlled shutdown",
                    first_index + i
                )));
            }
            Ok(state)
        })
        .collect()
}

/// The replica lists of `count` new partitions numbered from `start`, from an explicit
/// assignment or from placement with `replication_factor`.
fn assign(
    staged: &Staged<'_>,
    topic: &str,
    explicit: Option<Vec<Vec<i32>>>,
    count: i32,
    replication_factor: i16,
    start: i32,
) -> Result<Vec<Vec<i32>>, ControllerError> {
    let total = match &explicit {
        Some(a) => i64::from(start) + a.len() as i64,
        None => i64::from(start) + i64::from(count),
    };
    // Every partition is a record in the metadata log and a log on some broker: a request for
    // billions (a typo, or a hostile client) must fail, not exhaust the controller's memory.
    if total > i64::from(MAX_PARTITIONS_PER_TOPIC) {
        return Err(ControllerError::InvalidPartitions(format!(
            "Number of partitions must be at most {MAX_PARTITIONS_PER_TOPIC}, got {total}."
        )));
    }
    if let Some(assignment) = explicit {
        placement::validate_assignment(&assignment, &registered(staged))
            .map_err(placement_error)?;
        return Ok(assignment);
    }
    if count < 1 {
        return Err(ControllerError::InvalidPartitions(
            "number of partitions must be larger than 0".into(),
        ));
    }
    let active = active_brokers(staged);
    if replication_factor < 1 {
        return Err(ControllerError::InvalidReplicationFactor(
            "replication factor must be larger than 0".into(),
        ));
    }
    if usize::try_from(replication_factor).is_ok_and(|rf| rf > active.len()) {
        return Err(ControllerError::InvalidReplicationFactor(format!(
            "unable to replicate the partition {replication_factor} time(s): the target \
             replication factor of {replication_factor} cannot be reached because only {} \
             broker(s) are registered",
            active.len()
        )));
    }
    placement::assign_replicas(
        &active,
        count,
        replication_factor,
        start,
        placement::topic_seed(topic),
    )
    .map_err(placement_error)
}

/// CreateTopics: one result per requested topic, in request order.
pub fn create_topics(
    staged: &mut Staged<'_>,
    topics: Vec<NewTopic>,
    validate_only: bool,
) -> Vec<Result<CreatedTopic, ControllerError>> {
    let mut seen = HashSet::new();
    let mut results = Vec::with_capacity(topics.len());
    for topic in topics {
        let result = create_one(staged, &mut seen, topic, validate_only);
        results.push(result);
    }
    results
}

fn create_one(
    staged: &mut Staged<'_>,
    seen: &mut HashSet<String>,
    topic: NewTopic,
    validate_only: bool,
) -> Result<CreatedTopic, ControllerError> {
    if !seen.insert(topic.name.clone()) {
        return Err(ControllerError::InvalidRequest(format!(
            "topic '{}' is listed more than once",
            topic.name
        )));
    }
    if staged.image.topic(&topic.name).is_some() {
        return Err(ControllerError::TopicExists(topic.name));
    }
    // Metric names fold '.' into '_', so Kafka refuses topics that differ only there.
    let folded = topic.name.replace('.', "_");
    if let Some(other) = staged
        .image
        .topics
        .values()
        .find(|t| t.name.replace('.', "_") == folded)
    {
        return Err(ControllerError::InvalidTopic(format!(
            "Topic '{}' collides with existing topic: {}",
            topic.name, other.name
        )));
    }
    let assignment = assign(
        staged,
        &topic.name,
        topic.assignments,
        topic.partitions,
        topic.replication_factor,
        0,
    )?;
    let partitions = initial_states(staged, assignment, 0)?;
    let id = Uuid::new_v4();
    if !validate_only {
        staged.push(MetadataRecord::CreateTopic {
            name: topic.name.clone(),
            id,
            configs: topic.configs,
            partitions: partitions.clone(),
        });
    }
    Ok(CreatedTopic {
        name: topic.name,
        id,
        partitions,
    })
}

/// DeleteTopics: the deleted topic's id, per name in request order.
pub fn delete_topics(
    staged: &mut Staged<'_>,
    names: Vec<String>,
) -> Vec<Result<Uuid, ControllerError>> {
    let mut seen = HashSet::new();
    names
        .into_iter()
        .map(|name| {
            if !seen.insert(name.clone()) {
                return Err(ControllerError::InvalidRequest(format!(
                    "topic '{name}' is listed more than once"
                )));
            }
            let id = staged
                .image
                .topic(&name)
                .map(|t| t.id)
                .ok_or_else(|| ControllerError::UnknownTopicOrPartition(name.clone()))?;
            staged.push(MetadataRecord::DeleteTopic { name });
            Ok(id)
        })
        .collect()
}

/// CreatePartitions: grows `topic` to `count` partitions, Kafka-style: new partitions continue
/// the placement pattern from the current count, with the replication factor of partition 0.
pub fn create_partitions(
    staged: &mut Staged<'_>,
    topic: &str,
    count: i32,
    assignments: Option<Vec<Vec<i32>>>,
    validate_only: bool,
) -> Result<(), ControllerError> {
    let image_topic = staged
        .image
        .topic(topic)
        .ok_or_else(|| ControllerError::UnknownTopicOrPartition(topic.to_string()))?;
    let current = i32::try_from(image_topic.partitions.len()).unwrap_or(i32::MAX);
    if count < current {
        return Err(ControllerError::InvalidPartitions(format!(
            "topic currently has {current} partitions, which is higher than the requested {count}"
        )));
    }
    if count == current {
        return Err(ControllerError::InvalidPartitions(format!(
            "topic already has {current} partitions"
        )));
    }
    let replication_factor = image_topic
        .partitions
        .first()
        .map(|p| p.replicas.len() - p.removing.len().min(p.replicas.len()))
        .unwrap_or(1);
    let to_add = count - current;
    if let Some(a) = &assignments {
        if usize::try_from(to_add).ok() != Some(a.len()) {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "{} replica assignments given for {to_add} new partitions",
                a.len()
            )));
        }
        if let Some(bad) = a.iter().position(|r| r.len() != replication_factor) {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "inconsistent replication factor: the topic has {replication_factor}, new \
                 partition {} has {}",
                current + bad as i32,
                a[bad].len()
            )));
        }
    }
    let rf = i16::try_from(replication_factor).unwrap_or(i16::MAX);
    let assignment = assign(staged, topic, assignments, to_add, rf, current)?;
    let partitions = initial_states(staged, assignment, current as usize)?;
    if !validate_only {
        staged.push(MetadataRecord::AddPartitions {
            topic: topic.to_string(),
            partitions,
        });
    }
    Ok(())
}
