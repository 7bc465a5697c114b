//! The leader's ISR maintenance (Kafka's `maybeShrinkIsr`/`maybeExpandIsr`): followers that have
//! not caught up for `replica.lag.time.max.ms` leave the ISR, followers that reached the high
//! watermark (and this leader epoch's start) rejoin it. Changes go to the controller as
//! AlterPartition (KIP-497) and take effect when it accepts them; one change per partition at a
//! time. Until a change is confirmed, its members count for the high watermark (the maximal ISR,
//! see `replica`); a change that got no definite answer is sent again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strait_cluster::rpc::{ControllerError, ControllerRequest, ControllerResponse};
use tokio::sync::watch;
use tracing::{info, warn};

use super::ClusterNode;
use crate::partition::replica::PendingIsr;
use crate::replica_manager::{Partition, ReplicaManager};

pub async fn run(
    replicas: Arc<ReplicaManager>,
    node: Arc<ClusterNode>,
    mut shutdown: watch::Receiver<bool>,
) {
    let period =
        (node.settings.replica_lag / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => return,
        }
        for topic in replicas.all_topics() {
            for partition in &topic.partitions {
                check(&node, &topic.meta.name, partition).await;
            }
        }
    }
}

async fn check(node: &ClusterNode, topic: &str, partition: &Arc<Partition>) {
    // A shrink can let the high watermark move (the laggard no longer holds it back).
    partition.advance_high_watermark();
    let hw = partition.log.high_watermark();
    let (wanted, leader_epoch, partition_epoch) = {
        let mut replica = partition.replica();
        let wanted = match &replica.pending {
            Some(pending) if pending.resend && replica.is_leader() => pending.isr.clone(),
            Some(_) => return,
            None => {
                let Some(wanted) =
                    replica.wanted_isr(hw, node.settings.replica_lag, Instant::now())
                else {
                    return;
                };
                wanted
            }
        };
        replica.pending = Some(PendingIsr {
            isr: wanted.clone(),
            resend: false,
        });
        (wanted, replica.leader_epoch, replica.partition_epoch)
    };
    info!(topic, partition = partition.index, isr = ?wanted, "asking the controller to change the ISR");
    let answer = node
        .call(ControllerRequest::AlterPartition {
            broker: node.node_id,
            broker_epoch: node.broker_epoch(),
            topic: topic.to_string(),
            partition: partition.index,
            leader_epoch,
            partition_epoch,
            isr: wanted,
        })
        .await;
    {
        let mut replica = partition.replica();
        let sent_epochs = (leader_epoch, partition_epoch);
        // The image may have resolved the proposal while it was in flight.
        let still_pending = replica.pending.is_some()
            && (replica.leader_epoch, replica.partition_epoch) == sent_epochs;
        match answer {
            Ok(ControllerResponse::AlterPartition(state)) => {
                if still_pending && state.leader_epoch == replica.leader_epoch {
                    // Take the accepted state now; the image brings the same state shortly.
                    replica.isr = state.isr.clone();
                    replica.partition_epoch = state.partition_epoch;
                    replica.pending = None;
                }
                // Otherwise leadership moved with this change (a reassignment completed): the
                // proposal stays in the maximal ISR until the image makes this broker a follower.
            }
            Ok(other) => warn!(?other, "unexpected answer to AlterPartition"),
            Err(e) => {
                warn!(topic, partition = partition.index, error = %e, "ISR change not made");
                if still_pending {
                    match e {
                        // No definite answer: the change may or may not have been committed.
                        ControllerError::Unavailable(_) | ControllerError::NotController { .. } => {
                            if let Some(pending) = &mut replica.pending {
                                pending.resend = true;
                            }
                        }
                        // The controller's state moved past ours (perhaps through an earlier
                        // attempt of this very proposal): the image will tell.
                        ControllerError::FencedLeaderEpoch(_)
                        | ControllerError::InvalidUpdateVersion(_) => {}
                        // Refused outright: nothing changed.
                        _ => replica.pending = None,
                    }
                }
            }
        }
    }
    partition.advance_high_watermark();
    partition.publish_high_watermark();
}
