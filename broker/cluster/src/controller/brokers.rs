//! Broker lifecycle decisions (Kafka's `ClusterControlManager` with the replication side of
//! fencing): registration, heartbeats that unfence, fencing, and controlled shutdown.

use uuid::Uuid;

use crate::controller::staged::Staged;
use crate::image::{BrokerRegistration, Endpoint};
use crate::record::MetadataRecord;
use crate::rpc::ControllerError;

/// Refuses requests from an unknown broker or an earlier incarnation of it.
pub fn check_epoch(staged: &Staged<'_>, id: i32, epoch: i64) -> Result<(), ControllerError> {
    match staged.broker(id) {
        Some(b) if b.epoch == epoch => Ok(()),
        _ => Err(ControllerError::StaleBrokerEpoch { id, epoch }),
    }
}

/// Registers a broker (fenced until it has caught up) and returns its new epoch: the index the
/// registration lands at, unique and increasing because decisions are serialised. A previous
/// incarnation of the same id is dead: it leaves ISRs and leaderships as if fenced.
pub fn register(
    staged: &mut Staged<'_>,
    id: i32,
    incarnation: Uuid,
    rack: Option<String>,
    endpoints: Vec<Endpoint>,
) -> i64 {
    let epoch = i64::try_from(staged.image.offset)
        .unwrap_or(i64::MAX - 1)
        .saturating_add(1);
    let had_previous = staged.broker(id).is_some();
    // The registration goes first so that a broker which has applied index `epoch` has seen it.
    staged.push(MetadataRecord::RegisterBroker(BrokerRegistration {
        id,
        epoch,
        incarnation,
        rack,
        endpoints,
        fenced: true,
        in_controlled_shutdown: false,
        offline_replicas: Default::default(),
    }));
    if had_previous {
        leave_partitions(staged, &[id]);
    }
    epoch
}

/// Fences `ids` (those not fenced yet) and takes them out of every ISR and leadership.
pub fn fence(staged: &mut Staged<'_>, ids: &[i32]) {
    for id in ids {
        if let Some(b) = staged.broker(*id).filter(|b| !b.fenced) {
            let epoch = b.epoch;
            staged.push(MetadataRecord::FenceBroker { id: *id, epoch });
        }
    }
    leave_partitions(staged, ids);
}

/// Removes dead brokers from ISRs (keeping each ISR's last member) and re-elects leaders.
fn leave_partitions(staged: &mut Staged<'_>, ids: &[i32]) {
    let affected =
        staged.select(|s| ids.contains(&s.leader) || s.isr.iter().any(|r| ids.contains(r)));
    for (topic, partition) in affected {
        staged.drop_from_isr(&topic, partition, ids);
    }
}

/// A heartbeat: unfences a caught-up broker, or runs its controlled shutdown. Returns the
/// broker's (fenced, should_shutdown) after this decision.
pub fn heartbeat(
    staged: &mut Staged<'_>,
    id: i32,
    epoch: i64,
    metadata_offset: u64,
    want_shutdown: bool,
) -> Result<(bool, bool), ControllerError> {
    check_epoch(staged, id, epoch)?;
    let Some(broker) = staged.broker(id).cloned() else {
        return Err(ControllerError::StaleBrokerEpoch { id, epoch });
    };
    if !want_shutdown && !broker.in_controlled_shutdown {
        let caught_up = u64::try_from(epoch).is_ok_and(|e| metadata_offset >= e);
        if broker.fenced && caught_up {
            staged.push(MetadataRecord::UnfenceBroker { id, epoch });
            let leaderless =
                staged.select(|s| s.leader == crate::image::NO_LEADER && s.replicas.contains(&id));
            for (topic, partition) in leaderless {
                staged.elect_if_leaderless(&topic, partition);
            }
            return Ok((false, false));
        }
        return Ok((broker.fenced, false));
    }
    let done = controlled_shutdown(staged, &broker);
    let fenced = staged.broker(id).is_none_or(|b| b.fenced);
    Ok((fenced, done))
}

/// A broker's replicas in failed log dirs (Kafka's `handleDirectoriesOffline`): each leaves its
/// ISR, and its leadership goes to another active ISR member, or to nobody when it was the last
/// one (the partition is offline until a replica with its data returns).
/// The set is recorded in the broker's registration whenever it changes, so that Metadata lists
/// those replicas as offline.
pub fn replicas_offline(staged: &mut Staged<'_>, id: i32, partitions: &[(String, i32)]) {
    if let Some(broker) = staged.broker(id) {
        let reported: std::collections::BTreeSet<(String, i32)> =
            partitions.iter().cloned().collect();
        if reported != broker.offline_replicas {
            let epoch = broker.epoch;
            staged.push(MetadataRecord::BrokerReplicasOffline {
                id,
                epoch,
                partitions: reported.into_iter().collect(),
            });
        }
    }
    for (topic, partition) in partitions {
        let Some(current) = staged.partition(topic, *partition).cloned() else {
            continue;
        };
        if current.leader != id && !(current.isr.contains(&id) && current.isr.len() > 1) {
            continue;
        }
        let mut proposed = current.clone();
        if proposed.isr.len() > 1 {
            proposed.isr.retain(|r| *r != id);
        }
        if proposed.leader == id {
            proposed.leader = proposed
                .replicas
                .iter()
                .copied()
                .find(|r| *r != id && proposed.isr.contains(r) && staged.is_active(*r))
                .unwrap_or(crate::image::NO_LEADER);
        }
        staged.change(topic, *partition, proposed);
    }
}

/// Kafka's controlled shutdown step: hands every leadership of `broker` to another active ISR
/// member and leaves ISRs that have other members. Once nothing is left to hand over (no move
/// was needed in this step) the broker may exit: it is fenced now, and partitions nobody else
/// can lead lose their leader as they would when it stops.
fn controlled_shutdown(staged: &mut Staged<'_>, broker: &BrokerRegistration) -> bool {
    let id = broker.id;
    if !broker.in_controlled_shutdown {
        staged.push(MetadataRecord::BeginControlledShutdown {
            id,
            epoch: broker.epoch,
        });
    }
    if broker.fenced {
        return true;
    }
    let mut moved = false;
    for (topic, partition) in staged.select(|s| s.isr.contains(&id) || s.leader == id) {
        let Some(current) = staged.partition(&topic, partition).cloned() else {
            continue;
        };
        let mut proposed = current.clone();
        let successor = proposed
            .replicas
            .iter()
            .copied()
            .find(|r| *r != id && proposed.isr.contains(r) && staged.is_active(*r));
        if proposed.leader == id {
            let Some(successor) = successor else {
                // Nobody else can lead: keep leading until the broker goes.
                continue;
            };
            proposed.leader = successor;
            moved = true;
        }
        if proposed.isr.len() > 1 {
            proposed.isr.retain(|r| *r != id);
        }
        staged.elect(&topic, &mut proposed);
        staged.change(&topic, partition, proposed);
    }
    if moved {
        return false;
    }
    fence(staged, &[id]);
    true
}
