//! Requested and periodic leader elections (Kafka's ElectLeaders and the auto leader
//! rebalance): preferred elections move leadership to the first replica, unclean ones revive a
//! leaderless partition from outside its ISR.

use crate::controller::brokers::check_epoch;
use crate::controller::staged::Staged;
use crate::image::NO_LEADER;
use crate::record::MetadataRecord;
use crate::rpc::ControllerError;

type ElectionResult = ((String, i32), Result<(), ControllerError>);

/// ElectLeaders for `partitions` (`None`: every partition; then partitions that need no
/// election are left out of the answer, as Kafka does).
pub fn elect_leaders(
    staged: &mut Staged<'_>,
    preferred: bool,
    partitions: Option<Vec<(String, i32)>>,
) -> Vec<ElectionResult> {
    let all = partitions.is_none();
    let targets = partitions.unwrap_or_else(|| staged.select(|_| true));
    let mut results = Vec::with_capacity(targets.len());
    for (topic, partition) in targets {
        let result = if preferred {
            elect_preferred(staged, &topic, partition)
        } else {
            elect_unclean(staged, &topic, partition)
        };
        if all && result == Err(ControllerError::ElectionNotNeeded) {
            continue;
        }
        results.push(((topic, partition), result));
    }
    results
}

/// Moves leadership to the preferred replica if it is active and in the ISR.
pub fn elect_preferred(
    staged: &mut Staged<'_>,
    topic: &str,
    partition: i32,
) -> Result<(), ControllerError> {
    let current = staged
        .partition(topic, partition)
        .cloned()
        .ok_or_else(|| ControllerError::UnknownTopicOrPartition(format!("{topic}-{partition}")))?;
    let preferred = current
        .preferred_leader()
        .ok_or(ControllerError::PreferredLeaderNotAvailable)?;
    if current.leader == preferred {
        return Err(ControllerError::ElectionNotNeeded);
    }
    if !current.isr.contains(&preferred) || !staged.is_active(preferred) {
        return Err(ControllerError::PreferredLeaderNotAvailable);
    }
    let mut proposed = current;
    proposed.leader = preferred;
    staged.change(topic, partition, proposed);
    Ok(())
}

/// Elects a leader for a leaderless partition: from the active ISR members if there are any,
/// else from any active replica (the ISR restarts with it).
fn elect_unclean(
    staged: &mut Staged<'_>,
    topic: &str,
    partition: i32,
) -> Result<(), ControllerError> {
    let current = staged
        .partition(topic, partition)
        .cloned()
        .ok_or_else(|| ControllerError::UnknownTopicOrPartition(format!("{topic}-{partition}")))?;
    if current.leader != NO_LEADER {
        return Err(ControllerError::ElectionNotNeeded);
    }
    let mut proposed = current;
    let clean = proposed
        .replicas
        .iter()
        .copied()
        .find(|r| proposed.isr.contains(r) && staged.is_active(*r));
    let leader = clean
        .or_else(|| {
            proposed
                .replicas
                .iter()
                .copied()
                .find(|r| staged.is_active(*r))
        })
        .ok_or(ControllerError::EligibleLeadersNotAvailable)?;
    if clean.is_none() {
        proposed.isr = vec![leader];
    }
    proposed.leader = leader;
    staged.change(topic, partition, proposed);
    Ok(())
}

/// The auto leader rebalance: every partition whose preferred replica is active, in the ISR and
/// not leading gets it back as leader.
pub fn rebalance(staged: &mut Staged<'_>) {
    let candidates = staged.select(|s| s.preferred_leader().is_some_and(|p| p != s.leader));
    for (topic, partition) in candidates {
        // Partitions whose preferred replica cannot lead yet are simply tried again next time.
        let _ = elect_preferred(staged, &topic, partition);
    }
}

/// RaiseLeaderEpoch: the current leader (at `leader_epoch`) gets a leader epoch of at least
/// `at_least`, same leader, replicas and ISR; the partition epoch moves with it so followers
/// re-read the state. Already there: nothing is written.
pub fn raise_leader_epoch(
    staged: &mut Staged<'_>,
    broker: i32,
    broker_epoch: i64,
    (topic, partition): (&str, i32),
    leader_epoch: i32,
    at_least: i32,
) -> Result<(), ControllerError> {
    check_epoch(staged, broker, broker_epoch)?;
    let current = staged
        .partition(topic, partition)
        .cloned()
        .ok_or_else(|| ControllerError::UnknownTopicOrPartition(format!("{topic}-{partition}")))?;
    if current.leader != broker || current.leader_epoch != leader_epoch {
        return Err(ControllerError::FencedLeaderEpoch(format!(
            "{topic}-{partition}: broker {broker} at leader epoch {leader_epoch} is not the \
             leader (leader {} at epoch {})",
            current.leader, current.leader_epoch
        )));
    }
    if current.leader_epoch >= at_least {
        return Ok(());
    }
    let mut state = current;
    state.leader_epoch = at_least;
    state.partition_epoch += 1;
    staged.push(MetadataRecord::ChangePartition {
        topic: topic.to_string(),
        partition,
        state,
    });
    Ok(())
}
