//! What a leader of a linked mirror topic asks the controller for, so that this cluster's own
//! writes never collide with the source's. The log holds batches stamped with the source's
//! leader epochs and producer ids:
//!
//! - after the failover, the leader's own appends are refused (retriably) until the controller
//!   gave it a leader epoch above the mirrored ones (`RaiseLeaderEpoch`);
//! - while linked, producer ids the link appends bring are reserved (`ReserveProducerIds`)
//!   before the append is acknowledged, so no broker here hands one out to a producer that
//!   would then inherit a source producer's epoch and sequences.
//!
//! The leader append path marks a wanted raise (`ReplicaState::raise_epoch_to`) and the ISR
//! loop sends it; Produce awaits a reservation itself (`reserve_producer_ids`).

use std::sync::Arc;

use strait_cluster::rpc::{ControllerError, ControllerRequest};
use tracing::{info, warn};

use super::ClusterNode;
use crate::replica_manager::ReplicaManager;

/// One raise this broker asks for.
struct Raise {
    topic: String,
    partition: i32,
    leader_epoch: i32,
    at_least: i32,
}

/// Takes every partition's wanted raise (each is asked for again by the next refused append if
/// this attempt fails).
fn wanted(replicas: &ReplicaManager) -> Vec<Raise> {
    let mut raises = Vec::new();
    for topic in replicas.all_topics() {
        for partition in &topic.partitions {
            let mut replica = partition.replica();
            if let Some(at_least) = replica.raise_epoch_to.take()
                && replica.is_leader()
            {
                raises.push(Raise {
                    topic: topic.meta.name.clone(),
                    partition: partition.index,
                    leader_epoch: replica.leader_epoch,
                    at_least,
                });
            }
        }
    }
    raises
}

/// Reserves the producer ids below `below` cluster-wide (see the module doc).
pub async fn reserve_producer_ids(node: &ClusterNode, below: i64) -> Result<(), ControllerError> {
    node.call(ControllerRequest::ReserveProducerIds {
        broker: node.node_id,
        broker_epoch: node.broker_epoch(),
        below,
    })
    .await?;
    info!(below, "producer ids of mirrored producers reserved");
    Ok(())
}

/// Sends the wanted raises, one request each: they are rare (once per partition after a
/// failover) and each is decided alone.
pub(super) async fn send_wanted(replicas: &ReplicaManager, node: &Arc<ClusterNode>) {
    for raise in wanted(replicas) {
        info!(
            topic = %raise.topic,
            partition = raise.partition,
            from = raise.leader_epoch,
            to = raise.at_least,
            "raising the leader epoch above the mirrored batches'"
        );
        let request = ControllerRequest::RaiseLeaderEpoch {
            broker: node.node_id,
            broker_epoch: node.broker_epoch(),
            topic: raise.topic.clone(),
            partition: raise.partition,
            leader_epoch: raise.leader_epoch,
            at_least: raise.at_least,
        };
        if let Err(e) = node.call(request).await {
            warn!(topic = %raise.topic, partition = raise.partition, error = %e, "leader epoch raise not made");
        }
    }
}
