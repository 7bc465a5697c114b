//! ISR changes from partition leaders (KIP-497 AlterPartition) and partition reassignments
//! (KIP-455): a reassignment first widens the replica set to old ∪ target, then, once every
//! added replica has joined the ISR, narrows it to the target.

use std::collections::BTreeSet;

use crate::controller::brokers::check_epoch;
use crate::controller::staged::Staged;
use crate::image::{Image, NO_LEADER, PartitionState};
use crate::placement;
use crate::rpc::{ControllerError, OngoingReassignment};

/// An AlterPartition request, as the leader sent it.
pub struct AlterIsr<'r> {
    pub broker: i32,
    pub broker_epoch: i64,
    pub topic: &'r str,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

fn unknown(topic: &str, partition: i32) -> ControllerError {
    ControllerError::UnknownTopicOrPartition(format!("{topic}-{partition}"))
}

/// AlterPartition: validates the leader's proposed ISR against the current state and applies
/// it; completes the partition's reassignment when that made it ready. Returns the new state.
pub fn alter_partition(
    staged: &mut Staged<'_>,
    req: AlterIsr<'_>,
) -> Result<PartitionState, ControllerError> {
    check_epoch(staged, req.broker, req.broker_epoch)?;
    let (topic, partition) = (req.topic, req.partition);
    let current = staged
        .partition(topic, partition)
        .cloned()
        .ok_or_else(|| unknown(topic, partition))?;
    if current.leader != req.broker || req.leader_epoch != current.leader_epoch {
        return Err(ControllerError::FencedLeaderEpoch(format!(
            "{topic}-{partition}: broker {} at leader epoch {} is not the leader (leader {} at \
             epoch {})",
            req.broker, req.leader_epoch, current.leader, current.leader_epoch
        )));
    }
    if req.partition_epoch != current.partition_epoch {
        return Err(ControllerError::InvalidUpdateVersion(format!(
            "{topic}-{partition}: partition epoch {} is not the current {}",
            req.partition_epoch, current.partition_epoch
        )));
    }
    let distinct: BTreeSet<i32> = req.isr.iter().copied().collect();
    if distinct.len() != req.isr.len() {
        return Err(ControllerError::InvalidRequest(format!(
            "{topic}-{partition}: the new ISR {:?} lists a replica twice",
            req.isr
        )));
    }
    if !req.isr.contains(&current.leader) {
        return Err(ControllerError::InvalidRequest(format!(
            "{topic}-{partition}: the new ISR {:?} does not contain the leader {}",
            req.isr, current.leader
        )));
    }
    if let Some(r) = req.isr.iter().find(|r| !current.replicas.contains(r)) {
        return Err(ControllerError::InvalidRequest(format!(
            "{topic}-{partition}: broker {r} in the new ISR is not a replica"
        )));
    }
    if let Some(r) = req
        .isr
        .iter()
        .find(|r| !current.isr.contains(r) && !staged.is_active(**r))
    {
        return Err(ControllerError::IneligibleReplica(format!(
            "{topic}-{partition}: broker {r} is fenced or shutting down and cannot join the ISR"
        )));
    }
    let mut proposed = current.clone();
    proposed.isr = req.isr;
    staged.change(topic, partition, proposed);
    complete_if_ready(staged, topic, partition);
    staged
        .partition(topic, partition)
        .cloned()
        .ok_or_else(|| unknown(topic, partition))
}

/// AlterPartitionReassignments for one partition: `Some(target)` starts (or replaces) a
/// reassignment, `None` cancels the ongoing one.
pub fn alter(
    staged: &mut Staged<'_>,
    topic: &str,
    partition: i32,
    target: Option<Vec<i32>>,
) -> Result<(), ControllerError> {
    let current = staged
        .partition(topic, partition)
        .cloned()
        .ok_or_else(|| unknown(topic, partition))?;
    // What the replicas were before any ongoing reassignment started adding to them.
    let original: Vec<i32> = current
        .replicas
        .iter()
        .copied()
        .filter(|r| !current.adding.contains(r))
        .collect();
    let mut proposed = current.clone();
    match target {
        None => {
            if !current.is_reassigning() {
                return Err(ControllerError::NoReassignmentInProgress);
            }
            proposed.replicas = original;
            proposed.adding.clear();
            proposed.removing.clear();
        }
        Some(target) => {
            let registered: BTreeSet<i32> = staged.brokers().into_iter().map(|b| b.id).collect();
            placement::validate_replicas(&target, &registered)
                .map_err(|e| ControllerError::InvalidReplicaAssignment(e.to_string()))?;
            // Target first, so its first replica is the preferred leader; then the leaving ones.
            proposed.replicas = target.clone();
            proposed
                .replicas
                .extend(original.iter().copied().filter(|r| !target.contains(r)));
            proposed.adding = target
                .iter()
                .copied()
                .filter(|r| !original.contains(r))
                .collect();
            proposed.removing = original
                .iter()
                .copied()
                .filter(|r| !target.contains(r))
                .collect();
        }
    }
    narrow_isr(&mut proposed);
    staged.elect(topic, &mut proposed);
    staged.change(topic, partition, proposed);
    complete_if_ready(staged, topic, partition);
    Ok(())
}

/// Keeps only ISR members that are still replicas; an ISR left empty (everyone in sync was
/// being added) falls back to the replicas, as Kafka's reassignment revert does.
fn narrow_isr(state: &mut PartitionState) {
    let replicas = state.replicas.clone();
    state.isr.retain(|r| replicas.contains(r));
    if state.isr.is_empty() {
        state.isr = replicas;
    }
}

/// Finishes the partition's reassignment once every added replica is in the ISR (and someone
/// outside the leaving set is): replicas become the target, the leaving ones leave the ISR,
/// and a leaving leader hands over to the first active member of the new ISR.
pub fn complete_if_ready(staged: &mut Staged<'_>, topic: &str, partition: i32) {
    let Some(current) = staged.partition(topic, partition).cloned() else {
        return;
    };
    if !current.is_reassigning() || !current.adding.iter().all(|r| current.isr.contains(r)) {
        return;
    }
    let mut proposed = current.clone();
    proposed.replicas.retain(|r| !current.removing.contains(r));
    proposed.isr.retain(|r| !current.removing.contains(r));
    if proposed.isr.is_empty() {
        return;
    }
    let leader_stays = current.leader == NO_LEADER || proposed.isr.contains(&current.leader);
    if !leader_stays && !proposed.isr.iter().any(|r| staged.is_active(*r)) {
        // Finishing now would leave the partition leaderless (or force an unclean election):
        // wait for a target replica that can lead.
        return;
    }
    proposed.adding.clear();
    proposed.removing.clear();
    staged.elect(topic, &mut proposed);
    staged.change(topic, partition, proposed);
}

/// ListPartitionReassignments: (topic, partition, replicas, adding, removing) of the ongoing
/// reassignments among `partitions` (`None`: all of them).
pub fn list(image: &Image, partitions: Option<Vec<(String, i32)>>) -> Vec<OngoingReassignment> {
    let row = |topic: &str, partition: i32, s: &PartitionState| {
        (
            topic.to_string(),
            partition,
            s.replicas.clone(),
            s.adding.clone(),
            s.removing.clone(),
        )
    };
    match partitions {
        None => image
            .partitions()
            .filter(|(_, _, s)| s.is_reassigning())
            .map(|(t, p, s)| row(t, p, s))
            .collect(),
        Some(wanted) => wanted
            .iter()
            .filter_map(|(t, p)| {
                image
                    .partition(t, *p)
                    .filter(|s| s.is_reassigning())
                    .map(|s| row(t, *p, s))
            })
            .collect(),
    }
}
