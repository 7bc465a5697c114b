//! The leader's ISR maintenance (Kafka's `maybeShrinkIsr`/`maybeExpandIsr`): followers that have
//! not caught up for `replica.lag.time.max.ms` leave the ISR, followers that reached the high
//! watermark (and this leader epoch's start) rejoin it. Changes go to the controller as
//! AlterPartition (KIP-497) and take effect when it accepts them; one change per partition at a
//! time, all the partitions' changes of a pass in one request (as Kafka's AlterPartition carries
//! many partitions), so they cost one metadata commit rather than one each. Until a change is
//! confirmed, its members count for the high watermark (the maximal ISR,
//! see `replica`); a change that got no definite answer is sent again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use strait_cluster::image::PartitionState;
use strait_cluster::rpc::{ControllerError, ControllerRequest, ControllerResponse, IsrChange};
use tokio::sync::watch;
use tracing::{info, warn};

use super::ClusterNode;
use crate::partition::replica::PendingIsr;
use crate::replica_manager::{Partition, ReplicaManager};

/// How a controller that does not know a request says so (the quorum codec's decode error).
const UNDECODABLE: &str = "decoding a quorum message";
/// ISR changes sent in one AlterPartitions request (one metadata commit). Bounded so the entry
/// stays small enough for a voter to take within a Raft heartbeat interval.
const CHANGES_PER_REQUEST: usize = 200;
/// Single-partition AlterPartition requests in flight at once, when the controller does not take
/// batches (an older version during a rolling upgrade).
const SINGLE_CHANGES_IN_FLIGHT: usize = 64;

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
        let mut proposals = Vec::new();
        for topic in replicas.all_topics() {
            for partition in &topic.partitions {
                if let Some(p) = propose(&node, &topic.meta.name, partition) {
                    proposals.push(p);
                }
            }
        }
        // Each commit of the metadata log waits for a quorum's fsync: one per change, a restart
        // of a broker leading 10,000 partitions re-admitted about 40 followers a second.
        for batch in proposals.chunks(CHANGES_PER_REQUEST) {
            send(&node, batch).await;
        }
        super::mirror_claims::send_wanted(&replicas, &node).await;
    }
}

/// An ISR change this leader asks for (already marked pending on the partition).
struct Proposal {
    topic: String,
    partition: Arc<Partition>,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: Vec<i32>,
}

/// The ISR change `partition` needs now, if any, marked pending (its members count for the high
/// watermark until the controller answers).
fn propose(node: &ClusterNode, topic: &str, partition: &Arc<Partition>) -> Option<Proposal> {
    // A shrink can let the high watermark move (the laggard no longer holds it back).
    partition.advance_high_watermark();
    let hw = partition.log.high_watermark();
    let mut replica = partition.replica();
    let wanted = match &replica.pending {
        Some(pending) if pending.resend && replica.is_leader() => pending.isr.clone(),
        Some(_) => return None,
        None => replica.wanted_isr(hw, node.settings.replica_lag, Instant::now())?,
    };
    replica.pending = Some(PendingIsr {
        isr: wanted.clone(),
        resend: false,
    });
    info!(topic, partition = partition.index, isr = ?wanted, "asking the controller to change the ISR");
    Some(Proposal {
        topic: topic.to_string(),
        partition: partition.clone(),
        leader_epoch: replica.leader_epoch,
        partition_epoch: replica.partition_epoch,
        isr: wanted,
    })
}

/// Sends `batch` as one AlterPartitions and settles each answer; one AlterPartition per change
/// when the controller cannot take the batch.
async fn send(node: &ClusterNode, batch: &[Proposal]) {
    let request = ControllerRequest::AlterPartitions {
        broker: node.node_id,
        broker_epoch: node.broker_epoch(),
        changes: batch
            .iter()
            .map(|p| IsrChange {
                topic: p.topic.clone(),
                partition: p.partition.index,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                isr: p.isr.clone(),
            })
            .collect(),
    };
    match node.call(request).await {
        Ok(ControllerResponse::AlterPartitions(answers)) if answers.len() == batch.len() => {
            for (proposal, answer) in batch.iter().zip(answers) {
                settle(proposal, answer);
            }
        }
        Ok(other) => {
            warn!(?other, "unexpected answer to AlterPartitions");
            for proposal in batch {
                settle(
                    proposal,
                    Err(ControllerError::Unavailable("unexpected answer".into())),
                );
            }
        }
        // An older controller (during a rolling upgrade) cannot decode AlterPartitions: one
        // change at a time is what it takes. Any other failure is retried next pass.
        Err(ControllerError::Unavailable(message)) if message.contains(UNDECODABLE) => {
            futures::stream::iter(batch)
                .for_each_concurrent(SINGLE_CHANGES_IN_FLIGHT, |proposal| async move {
                    let answer = node
                        .call(ControllerRequest::AlterPartition {
                            broker: node.node_id,
                            broker_epoch: node.broker_epoch(),
                            topic: proposal.topic.clone(),
                            partition: proposal.partition.index,
                            leader_epoch: proposal.leader_epoch,
                            partition_epoch: proposal.partition_epoch,
                            isr: proposal.isr.clone(),
                        })
                        .await;
                    let answer = match answer {
                        Ok(ControllerResponse::AlterPartition(state)) => Ok(state),
                        Ok(other) => Err(ControllerError::Unavailable(format!(
                            "unexpected answer to AlterPartition: {other:?}"
                        ))),
                        Err(e) => Err(e),
                    };
                    settle(proposal, answer);
                })
                .await;
        }
        Err(e) => {
            for proposal in batch {
                settle(proposal, Err(e.clone()));
            }
        }
    }
}

/// Takes the controller's answer to one proposal.
fn settle(proposal: &Proposal, answer: Result<PartitionState, ControllerError>) {
    let partition = &proposal.partition;
    {
        let mut replica = partition.replica();
        let sent_epochs = (proposal.leader_epoch, proposal.partition_epoch);
        // The image may have resolved the proposal while it was in flight.
        let still_pending = replica.pending.is_some()
            && (replica.leader_epoch, replica.partition_epoch) == sent_epochs;
        match answer {
            Ok(state) => {
                if still_pending && state.leader_epoch == replica.leader_epoch {
                    // Take the accepted state now; the image brings the same state shortly.
                    replica.isr = state.isr.clone();
                    replica.partition_epoch = state.partition_epoch;
                    replica.pending = None;
                }
                // Otherwise leadership moved with this change (a reassignment completed): the
                // proposal stays in the maximal ISR until the image makes this broker a follower.
            }
            Err(e) => {
                warn!(topic = %proposal.topic, partition = partition.index, error = %e, "ISR change not made");
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
