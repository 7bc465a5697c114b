//! What a leader of a linked mirror topic asks the controller for, so that this cluster's own
//! writes never collide with the source's. The log holds batches stamped with the source's
//! leader epochs and producer ids:
//!
//! - after the failover, the leader's own appends are refused (retriably) until the controller
//!   gave it a leader epoch above the mirrored ones (`RaiseLeaderEpoch`);
//! - while linked, producer ids the link appends bring are reserved (`ReserveProducerIds`), so
//!   no broker here hands one out to a producer that would then inherit a source producer's
//!   epoch and sequences.
//!
//! The append paths mark what a partition needs (`ReplicaState::raise_epoch_to`,
//! `reserve_producer_ids_below`); the ISR loop sends it here.

use std::sync::Arc;

use strait_cluster::rpc::ControllerRequest;
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

/// Takes every partition's wanted raise, and the highest producer id reservation any wants (each
/// is asked for again by the next append if this attempt fails).
fn wanted(replicas: &ReplicaManager) -> (Vec<Raise>, Option<i64>) {
    let mut raises = Vec::new();
    let mut reserve: Option<i64> = None;
    for topic in replicas.all_topics() {
        for partition in &topic.partitions {
            let mut replica = partition.replica();
            if let Some(below) = replica.reserve_producer_ids_below.take() {
                reserve = reserve.max(Some(below));
            }
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
    (raises, reserve)
}

/// Sends the wanted claims, each raise alone: they are rare (once per partition after a
/// failover) and each is decided alone.
pub(super) async fn send_wanted(replicas: &ReplicaManager, node: &Arc<ClusterNode>) {
    let (raises, reserve) = wanted(replicas);
    if let Some(below) = reserve {
        let request = ControllerRequest::ReserveProducerIds {
            broker: node.node_id,
            broker_epoch: node.broker_epoch(),
            below,
        };
        match node.call(request).await {
            Ok(_) => info!(below, "producer ids of mirrored producers reserved"),
            Err(e) => warn!(below, error = %e, "producer ids of mirrored producers not reserved"),
        }
    }
    for raise in raises {
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
