//! Scale planning, as pure functions: which partition replicas move off the leaving brokers and
//! where, keeping replicas in distinct brokers and preferring the leaving broker's rack (zone),
//! or a refusal when the remaining brokers cannot hold every replica or a wanted controller voter
//! would go (voters the spec no longer wants are removed from the quorum first, see
//! `reconfigure`); what to issue while earlier moves are still running; and the rebalance onto new brokers
//! after a scale-up.

use std::collections::{BTreeMap, BTreeSet};

use crate::admin::OngoingReassignment;

/// `(topic, partition)`.
pub type PartitionKey = (String, i32);

/// Why a scale-down cannot go ahead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScaleDownRefused {
    /// A partition has more replicas than brokers would remain.
    #[error(
        "partition {topic}-{partition} has {replicas} replicas but only {remaining} brokers would remain"
    )]
    ReplicationFactorTooHigh {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Its replication factor.
        replicas: usize,
        /// Brokers left after the scale-down.
        remaining: usize,
    },
    /// No broker would remain.
    #[error("no broker would remain")]
    NoBrokersLeft,
    /// Controller voters would leave.
    #[error("brokers {voters:?} are controller quorum voters and cannot be removed")]
    RemovesVoters {
        /// The leaving voters.
        voters: Vec<i32>,
    },
}

/// The new replica list of every partition that has a replica on a leaving broker. `racks`
/// maps node id to zone; a replacement is taken from the leaving broker's zone when one is
/// free, otherwise from the least loaded remaining broker. The leader position is kept.
/// Refused when one of the controller `voters` is not among the `remaining` brokers.
pub fn plan_scale_down(
    partitions: &BTreeMap<PartitionKey, Vec<i32>>,
    remaining: &[i32],
    racks: &BTreeMap<i32, String>,
    voters: &[i32],
) -> Result<BTreeMap<PartitionKey, Vec<i32>>, ScaleDownRefused> {
    let remaining_set: BTreeSet<i32> = remaining.iter().copied().collect();
    if remaining_set.is_empty() {
        return Err(ScaleDownRefused::NoBrokersLeft);
    }
    let leaving_voters: Vec<i32> = voters
        .iter()
        .filter(|v| !remaining_set.contains(v))
        .copied()
        .collect();
    if !leaving_voters.is_empty() {
        return Err(ScaleDownRefused::RemovesVoters {
            voters: leaving_voters,
        });
    }
    for ((topic, partition), replicas) in partitions {
        if replicas.len() > remaining_set.len() {
            return Err(ScaleDownRefused::ReplicationFactorTooHigh {
                topic: topic.clone(),
                partition: *partition,
                replicas: replicas.len(),
                remaining: remaining_set.len(),
            });
        }
    }
    let mut load: BTreeMap<i32, usize> = remaining_set.iter().map(|b| (*b, 0)).collect();
    for replicas in partitions.values() {
        for b in replicas {
            if let Some(n) = load.get_mut(b) {
                *n += 1;
            }
        }
    }
    let mut moves = BTreeMap::new();
    for (key, replicas) in partitions {
        if replicas.iter().all(|b| remaining_set.contains(b)) {
            continue;
        }
        let mut new = replicas.clone();
        for slot in 0..new.len() {
            let leaving = new[slot];
            if remaining_set.contains(&leaving) {
                continue;
            }
            let rack = racks.get(&leaving);
            let candidate = load
                .iter()
                .filter(|(b, _)| !new.contains(b))
                // Same rack first, then least loaded, then lowest id: deterministic.
                .min_by_key(|(b, n)| (racks.get(b) != rack || rack.is_none(), **n, **b))
                .map(|(b, _)| *b);
            // The replication-factor check above guarantees a free broker.
            let Some(target) = candidate else {
                return Err(ScaleDownRefused::NoBrokersLeft);
            };
            new[slot] = target;
            if let Some(n) = load.get_mut(&target) {
                *n += 1;
            }
        }
        moves.insert(key.clone(), new);
    }
    Ok(moves)
}

/// One reconcile's share of a scale-down.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScaleDownStep {
    /// Reassignments to issue now: partitions with a replica on a leaving broker and no move
    /// in progress.
    pub issue: BTreeMap<PartitionKey, Vec<i32>>,
    /// Moves in progress that involve a leaving broker; they are left to finish, not re-issued.
    pub in_progress: Vec<PartitionKey>,
}

/// The scale-down step given the moves already `ongoing` (ListPartitionReassignments). While a
/// move runs, a partition's replica list is the union of old and new replicas, so planning from
/// it again would pick yet another broker for the leaving one (growing the replica count) and
/// re-issue the move every reconcile. Instead each ongoing move counts as done (its target
/// replicas), only partitions without a move in progress get a new one, and the refusal checks
/// (replication factor, voters) look at the targets.
pub fn plan_scale_down_step(
    partitions: &BTreeMap<PartitionKey, Vec<i32>>,
    ongoing: &BTreeMap<PartitionKey, OngoingReassignment>,
    remaining: &[i32],
    racks: &BTreeMap<i32, String>,
    voters: &[i32],
) -> Result<ScaleDownStep, ScaleDownRefused> {
    let mut settled = partitions.clone();
    for (key, moving) in ongoing {
        settled.insert(key.clone(), moving.target());
    }
    let plan = plan_scale_down(&settled, remaining, racks, voters)?;
    Ok(ScaleDownStep {
        issue: plan
            .into_iter()
            .filter(|(key, _)| !ongoing.contains_key(key))
            .collect(),
        in_progress: ongoing
            .iter()
            .filter(|(_, m)| m.replicas.iter().any(|b| !remaining.contains(b)))
            .map(|(key, _)| key.clone())
            .collect(),
    })
}

/// After a scale-up: moves replicas from the most to the least loaded brokers (new brokers start
/// empty) until no move would narrow a gap of two or more, never putting two replicas of a
/// partition on one broker, preferring a broker in the same rack, and moving followers before
/// leaders. Empty when the load is already even.
pub fn plan_rebalance(
    partitions: &BTreeMap<PartitionKey, Vec<i32>>,
    brokers: &[i32],
    racks: &BTreeMap<i32, String>,
) -> BTreeMap<PartitionKey, Vec<i32>> {
    let mut load: BTreeMap<i32, usize> = brokers.iter().map(|b| (*b, 0)).collect();
    let mut current = partitions.clone();
    let mut slots = 0;
    for replicas in current.values() {
        slots += replicas.len();
        for b in replicas {
            if let Some(n) = load.get_mut(b) {
                *n += 1;
            }
        }
    }
    // Each move lowers the sum of squared loads, so the passes end; the bound is a backstop.
    for _ in 0..=slots {
        let mut moved = false;
        for replicas in current.values_mut() {
            for slot in (0..replicas.len()).rev() {
                let from = replicas[slot];
                let Some(&from_load) = load.get(&from) else {
                    continue;
                };
                let rack = racks.get(&from);
                let target = load
                    .iter()
                    .filter(|(b, n)| !replicas.contains(b) && **n + 2 <= from_load)
                    .min_by_key(|(b, n)| (**n, racks.get(b) != rack, **b))
                    .map(|(b, _)| *b);
                let Some(to) = target else { continue };
                replicas[slot] = to;
                if let Some(n) = load.get_mut(&from) {
                    *n -= 1;
                }
                if let Some(n) = load.get_mut(&to) {
                    *n += 1;
                }
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    current
        .into_iter()
        .filter(|(k, r)| partitions.get(k) != Some(r))
        .collect()
}

/// Partitions that still have a replica on one of `leaving`.
pub fn partitions_on(
    partitions: &BTreeMap<PartitionKey, Vec<i32>>,
    leaving: &[i32],
) -> Vec<PartitionKey> {
    partitions
        .iter()
        .filter(|(_, r)| r.iter().any(|b| leaving.contains(b)))
        .map(|(k, _)| k.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::quorum::choose_voters;

    fn key(t: &str, p: i32) -> PartitionKey {
        (t.to_owned(), p)
    }

    fn racks() -> BTreeMap<i32, String> {
        BTreeMap::from([
            (0, "a".into()),
            (1, "a".into()),
            (1000, "b".into()),
            (1001, "b".into()),
            (2000, "c".into()),
        ])
    }

    #[test]
    fn replicas_move_to_the_same_zone_first() {
        let partitions = BTreeMap::from([
            (key("t", 0), vec![1, 1000, 2000]),
            (key("t", 1), vec![1001, 0, 2000]),
            (key("t", 2), vec![0, 1000, 2000]),
        ]);
        let plan = plan_scale_down(&partitions, &[0, 1000, 2000], &racks(), &[0, 1000, 2000])
            .expect("plan");
        assert_eq!(plan.len(), 2);
        // Broker 1 (zone a) is replaced by 0 (zone a), broker 1001 (zone b) by 1000.
        assert_eq!(plan[&key("t", 0)], [0, 1000, 2000]);
        assert_eq!(plan[&key("t", 1)], [1000, 0, 2000]);
    }

    #[test]
    fn falls_back_to_least_loaded_other_zone() {
        let partitions = BTreeMap::from([(key("t", 0), vec![0, 1]), (key("u", 0), vec![1000])]);
        let plan = plan_scale_down(&partitions, &[0, 1000, 2000], &racks(), &[0, 1000, 2000])
            .expect("plan");
        // 1's zone-mate 0 already holds t-0; 2000 is less loaded than 1000.
        assert_eq!(plan[&key("t", 0)], [0, 2000]);
        assert!(!plan.contains_key(&key("u", 0)));
    }

    #[test]
    fn refused_when_replication_factor_exceeds_remaining_brokers() {
        let partitions = BTreeMap::from([(key("t", 0), vec![0, 1000, 2000])]);
        let err = plan_scale_down(&partitions, &[0, 1000], &racks(), &[0, 1000]).unwrap_err();
        assert_eq!(
            err,
            ScaleDownRefused::ReplicationFactorTooHigh {
                topic: "t".into(),
                partition: 0,
                replicas: 3,
                remaining: 2
            }
        );
        assert_eq!(
            plan_scale_down(&partitions, &[], &racks(), &[]),
            Err(ScaleDownRefused::NoBrokersLeft)
        );
    }

    #[test]
    fn rebalance_fills_new_brokers_without_duplicates() {
        // Three brokers each hold all 6 partitions (rf 3); 1 and 1001 are new and empty.
        let partitions: BTreeMap<_, _> =
            (0..6).map(|p| (key("t", p), vec![0, 1000, 2000])).collect();
        let brokers = [0, 1, 1000, 1001, 2000];
        let plan = plan_rebalance(&partitions, &brokers, &racks());
        let mut after = partitions.clone();
        after.extend(plan.clone());
        let mut load: BTreeMap<i32, usize> = BTreeMap::new();
        for replicas in after.values() {
            let distinct: BTreeSet<_> = replicas.iter().collect();
            assert_eq!(distinct.len(), replicas.len(), "{replicas:?}");
            for b in replicas {
                *load.entry(*b).or_default() += 1;
            }
        }
        // 18 replicas over 5 brokers: every broker ends with 3 or 4.
        assert!(load.values().all(|n| (3..=4).contains(n)), "{load:?}");
        assert_eq!(load.len(), 5);
        assert!(!plan.is_empty());
        assert!(
            plan_rebalance(&after, &brokers, &racks()).is_empty(),
            "balanced stays put"
        );
    }

    #[test]
    fn nothing_moves_when_no_replica_leaves() {
        let partitions = BTreeMap::from([(key("t", 0), vec![0, 1000])]);
        assert!(
            plan_scale_down(&partitions, &[0, 1000], &racks(), &[0, 1000])
                .expect("plan")
                .is_empty()
        );
        assert_eq!(partitions_on(&partitions, &[1000]), [key("t", 0)]);
        assert!(partitions_on(&partitions, &[1]).is_empty());
    }

    #[test]
    fn scale_down_never_removes_a_wanted_voter() {
        let partitions = BTreeMap::from([(key("t", 0), vec![0, 1000])]);
        // 1000 is a wanted voter: refused even though its partitions would fit elsewhere.
        assert_eq!(
            plan_scale_down(&partitions, &[0, 1, 2000], &racks(), &[0, 1000, 2000]),
            Err(ScaleDownRefused::RemovesVoters { voters: vec![1000] })
        );
        // Scaling 6 -> 3 over three zones removes ordinals 1, 1001, 2001, none of the three
        // voters wanted then (voters 1 and 1001 of the five leave the quorum first).
        let voters = choose_voters(&[1, 1, 1]);
        assert!(choose_voters(&[2, 2, 2]).starts_with(&voters));
        assert!(plan_scale_down(&partitions, &[0, 1000, 2000], &racks(), &voters).is_ok());
    }

    fn moving(replicas: &[i32], adding: &[i32], removing: &[i32]) -> OngoingReassignment {
        OngoingReassignment {
            replicas: replicas.to_vec(),
            adding: adding.to_vec(),
            removing: removing.to_vec(),
        }
    }

    #[test]
    fn moves_in_progress_are_not_reissued() {
        // t-0 is moving 1 -> 0: Metadata shows the union of old and new replicas.
        let partitions = BTreeMap::from([
            (key("t", 0), vec![0, 1000, 2000, 1]),
            (key("t", 1), vec![1001, 0, 2000]),
        ]);
        let ongoing = BTreeMap::from([(key("t", 0), moving(&[0, 1000, 2000, 1], &[0], &[1]))]);
        let remaining = [0, 1000, 2000];
        let step = plan_scale_down_step(&partitions, &ongoing, &remaining, &racks(), &remaining)
            .expect("not refused: t-0 keeps three replicas once moved");
        // Only t-1 gets a new move; t-0 is left to finish.
        assert_eq!(
            step.issue,
            BTreeMap::from([(key("t", 1), vec![1000, 0, 2000])])
        );
        assert_eq!(step.in_progress, [key("t", 0)]);
        // Without the list, the union would count four replicas on three brokers: refused.
        assert!(matches!(
            plan_scale_down(&partitions, &remaining, &racks(), &remaining),
            Err(ScaleDownRefused::ReplicationFactorTooHigh { replicas: 4, .. })
        ));
        // Once every move is in flight nothing is issued.
        let all = BTreeMap::from([
            (key("t", 0), moving(&[0, 1000, 2000, 1], &[0], &[1])),
            (
                key("t", 1),
                moving(&[1000, 0, 2000, 1001], &[1000], &[1001]),
            ),
        ]);
        let step = plan_scale_down_step(&partitions, &all, &remaining, &racks(), &remaining)
            .expect("step");
        assert!(step.issue.is_empty());
        assert_eq!(step.in_progress.len(), 2);
    }

    #[test]
    fn unrelated_moves_do_not_count_as_progress() {
        let partitions = BTreeMap::from([(key("t", 0), vec![1, 1000])]);
        // A move between remaining brokers only (someone else's).
        let ongoing = BTreeMap::from([(key("u", 0), moving(&[0, 2000, 1000], &[0], &[1000]))]);
        let step = plan_scale_down_step(
            &partitions,
            &ongoing,
            &[0, 1000, 2000],
            &racks(),
            &[0, 1000, 2000],
        )
        .expect("step");
        assert!(step.in_progress.is_empty());
        assert_eq!(step.issue, BTreeMap::from([(key("t", 0), vec![0, 1000])]));
        assert_eq!(moving(&[0, 2000, 1000], &[0], &[1000]).target(), [0, 2000]);
    }
}
