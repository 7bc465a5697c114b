//! The admin work of the scale step and after a scale-up: a scale-down moves partitions off the
//! leaving brokers (AlterPartitionReassignments, each move issued once) before their zones
//! shrink, and waits for the quorum step to remove any of them that is a controller voter, and new brokers get replicas once every broker is ready. The moves are inherently
//! sequential over passes, so each pass issues what is due and reports progress as a
//! condition; an admin failure keeps the brokers rather than failing the reconcile.

use std::collections::BTreeMap;

use crate::admin::{AdminError, KafkaAdmin, TlsConfig};
use crate::cluster::identity::{self, ClusterRef};
use crate::cluster::plan::{Drain, ScalePlan};
use crate::cluster::reach::{admin_of, answered};
use crate::cluster::scale::{partitions_on, plan_rebalance, plan_scale_down_step};
use crate::cluster::status::AdminReach;
use crate::conditions::Cond;
use crate::context::{AdminFactory, Context};

/// What the scale step decided for each zone.
pub struct ScaleDecision {
    /// Brokers each zone's StatefulSet gets.
    pub replicas: Vec<i32>,
    /// Its `ScaleDownBlocked` condition, if any.
    pub conditions: Vec<Cond>,
    /// Partitions move or a scale is held back.
    pub busy: bool,
}

/// Carries out the scale `plan`: per-zone replica counts to apply. Until the leaving brokers
/// hold no partition, partitions are reassigned (moves still in progress are listed and left
/// to finish) and the zones keep their size. When the admin API fails, the zones keep their
/// brokers and `ScaleDownBlocked` says why (`AdminUnavailable`): the rest of the reconcile
/// goes on.
pub async fn scale<F: AdminFactory>(
    c: &ClusterRef<'_>,
    plan: ScalePlan,
    admin_tls: Option<&TlsConfig>,
    ctx: &Context<F>,
    reach: &mut AdminReach,
) -> ScaleDecision {
    let drain = match plan {
        ScalePlan::Resize(desired) => {
            return ScaleDecision {
                replicas: desired,
                conditions: Vec::new(),
                busy: false,
            };
        }
        ScalePlan::Drain(drain) => drain,
    };
    let Drain {
        desired,
        held,
        leaving,
        leaving_voters,
        ..
    } = &drain;
    match scale_down_step(c, admin_tls, ctx, reach, &drain).await {
        // Partitions are off them, but the quorum step has not removed every leaving voter
        // yet: a voter's broker must not stop before it left the voter set.
        Ok(None) if !leaving_voters.is_empty() => ScaleDecision {
            replicas: held.clone(),
            conditions: vec![Cond::new(
                "ScaleDownBlocked",
                false,
                "RemovingVoters",
                format!(
                    "brokers {leaving:?} hold no partitions; {leaving_voters:?} are still \
                     controller voters, removed from the quorum one at a time first"
                ),
            )],
            busy: true,
        },
        Err(e) => ScaleDecision {
            replicas: held.clone(),
            conditions: vec![Cond::new(
                "ScaleDownBlocked",
                true,
                "AdminUnavailable",
                format!(
                    "cannot remove brokers {leaving:?} while the Kafka admin API fails (they \
                     are kept): {e}"
                ),
            )],
            busy: true,
        },
        Ok(None) => ScaleDecision {
            replicas: desired.clone(),
            conditions: vec![Cond::new(
                "ScaleDownBlocked",
                false,
                "PartitionsMoved",
                format!("brokers {leaving:?} hold no partitions"),
            )],
            busy: false,
        },
        Ok(Some(Err(refused))) => ScaleDecision {
            replicas: held.clone(),
            conditions: vec![Cond::new(
                "ScaleDownBlocked",
                true,
                "ScaleDownRefused",
                format!("cannot remove brokers {leaving:?}: {refused}"),
            )],
            busy: true,
        },
        Ok(Some(Ok(message))) => ScaleDecision {
            replicas: held.clone(),
            conditions: vec![Cond::new(
                "ScaleDownBlocked",
                false,
                "MovingPartitions",
                message,
            )],
            busy: true,
        },
    }
}

/// The admin side of a scale-down: `None` when the leaving brokers hold no partition; else the
/// planner's refusal, or the progress message after issuing this pass's moves. Every call's
/// outcome goes into `reach`.
async fn scale_down_step<F: AdminFactory>(
    c: &ClusterRef<'_>,
    admin_tls: Option<&TlsConfig>,
    ctx: &Context<F>,
    reach: &mut AdminReach,
    drain: &Drain,
) -> Result<Option<Result<String, String>>, AdminError> {
    let Drain {
        leaving,
        remaining,
        racks,
        voters,
        ..
    } = drain;
    let admin = admin_of(c, ctx, admin_tls);
    let partitions = admin.all_partitions().await;
    reach.record(&answered(&partitions));
    let partitions = partitions?;
    if partitions_on(&partitions, leaving).is_empty() {
        return Ok(None);
    }
    let ongoing = admin.ongoing_reassignments().await;
    reach.record(&answered(&ongoing));
    let step = match plan_scale_down_step(&partitions, &ongoing?, remaining, racks, voters) {
        Err(refused) => return Ok(Some(Err(refused.to_string()))),
        Ok(step) => step,
    };
    if !step.issue.is_empty() {
        let issued = admin.reassign_partitions(&step.issue).await;
        reach.record(&answered(&issued));
        issued?;
    }
    let still = partitions_on(&partitions, leaving).len();
    Ok(Some(Ok(format!(
        "{still} partitions still have a replica on brokers {leaving:?}: {} moves in progress, \
         {} issued now",
        step.in_progress.len(),
        step.issue.len()
    ))))
}

/// After a scale-up, once every broker is ready: when a broker holds no replica at all, spreads
/// replicas onto it. Also the admin probe of every ready pass (its reading of the partitions
/// goes into `reach`, which `Ready` needs). A failed move is a `Degraded` condition, not a
/// failed reconcile, so the rest of the status still gets written.
pub async fn rebalance_new_brokers<F: AdminFactory>(
    c: &ClusterRef<'_>,
    admin_tls: Option<&TlsConfig>,
    ctx: &Context<F>,
    reach: &mut AdminReach,
) -> Option<Cond> {
    let brokers = identity::desired_node_ids(c.spec);
    let admin = admin_of(c, ctx, admin_tls);
    let partitions = admin.all_partitions().await;
    reach.record(&answered(&partitions));
    let partitions = partitions.ok()?;
    let slots: usize = partitions.values().map(Vec::len).sum();
    let empty = brokers
        .iter()
        .filter(|b| !partitions.values().any(|r| r.contains(b)))
        .count();
    if empty == 0 || slots < brokers.len() {
        return None;
    }
    let mut racks = BTreeMap::new();
    for (i, zone) in c.spec.zones.iter().enumerate() {
        for id in identity::zone_node_ids(c.spec, i) {
            racks.insert(id, zone.clone());
        }
    }
    let plan = plan_rebalance(&partitions, &brokers, &racks);
    if plan.is_empty() {
        return None;
    }
    match admin.reassign_partitions(&plan).await {
        Ok(()) => {
            tracing::info!(
                cluster = c.name,
                partitions = plan.len(),
                "rebalancing onto new brokers"
            );
            None
        }
        Err(e) => Some(Cond::new(
            "Degraded",
            true,
            "RebalanceFailed",
            e.to_string(),
        )),
    }
}
