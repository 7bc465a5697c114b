//! Leader epoch raises for failed-over linked mirror topics. Such a log ends with batches stamped
//! with the source cluster's leader epochs, which may be at or above this leader's; its own
//! appends are refused (retriably) until the controller gave it a higher epoch
//! (`RaiseLeaderEpoch`). The leader append path marks what it needs
//! (`ReplicaState::raise_epoch_to`); the ISR loop sends it here.

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
