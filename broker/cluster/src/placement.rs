//! Replica placement: Kafka's `AdminUtils.assignReplicasToBrokers` (rack-unaware round robin and
//! the rack-alternating, rack-aware variant) and the validation of explicit assignments.
//!
//! Kafka draws the start index and the replica shift at random; here they come from `seed`
//! (callers hash the topic name) so that a placement is reproducible and testable.

use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Why replicas cannot be placed (or an explicit assignment is refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("number of partitions must be larger than 0")]
    InvalidPartitions,
    #[error("replication factor must be larger than 0")]
    ReplicationFactorTooSmall,
    #[error("replication factor: {replication_factor} larger than available brokers: {brokers}")]
    ReplicationFactorTooLarge {
        replication_factor: i16,
        brokers: usize,
    },
    #[error("not all brokers have rack information for replica rack aware assignment")]
    PartialRackInformation,
    #[error("duplicate broker id {0} in the broker list")]
    DuplicateBroker(i32),
    #[error("invalid replica assignment: {0}")]
    InvalidAssignment(String),
}

/// Assigns `partitions` partitions of `replication_factor` replicas each to `brokers`
/// (id, rack), numbering them from `start_partition` (the current partition count when adding
/// partitions, so new ones continue the existing pattern). Replica lists start with the
/// preferred leader.
///
/// Without racks this is Kafka's round robin with a replica shift that grows every full turn
/// over the brokers; with racks on every broker, replicas of a partition land on distinct racks
/// as far as the number of racks allows. A mix of brokers with and without a rack is refused.
pub fn assign_replicas(
    brokers: &[(i32, Option<String>)],
    partitions: i32,
    replication_factor: i16,
    start_partition: i32,
    seed: u64,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    let n = brokers.len().max(1) as u64;
    let mixed = splitmix64(seed);
    let start_index = (seed % n) as usize;
    let replica_shift = (mixed % n) as usize;
    assign_with(
        brokers,
        partitions,
        replication_factor,
        start_partition,
        start_index,
        replica_shift,
    )
}

/// `assign_replicas` with Kafka's start index and initial replica shift given explicitly
/// (Kafka's `fixedStartIndex` sets both to the same value).
pub fn assign_with(
    brokers: &[(i32, Option<String>)],
    partitions: i32,
    replication_factor: i16,
    start_partition: i32,
    start_index: usize,
    replica_shift: usize,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    if partitions <= 0 {
        return Err(PlacementError::InvalidPartitions);
    }
    if replication_factor <= 0 {
        return Err(PlacementError::ReplicationFactorTooSmall);
    }
    let rf = replication_factor as usize;
    if rf > brokers.len() {
        return Err(PlacementError::ReplicationFactorTooLarge {
            replication_factor,
            brokers: brokers.len(),
        });
    }
    let mut seen = HashSet::new();
    for (id, _) in brokers {
        if !seen.insert(*id) {
            return Err(PlacementError::DuplicateBroker(*id));
        }
    }
    let with_rack = brokers.iter().filter(|(_, r)| r.is_some()).count();
    let start_partition = start_partition.max(0) as usize;
    let partitions = partitions as usize;
    if with_rack == 0 {
        let mut ids: Vec<i32> = brokers.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        Ok(rack_unaware(
            &ids,
            partitions,
            rf,
            start_partition,
            start_index,
            replica_shift,
        ))
    } else if with_rack < brokers.len() {
        Err(PlacementError::PartialRackInformation)
    } else {
        let racks: BTreeMap<i32, &str> = brokers
            .iter()
            .filter_map(|(id, r)| r.as_deref().map(|r| (*id, r)))
            .collect();
        Ok(rack_aware(
            &racks,
            partitions,
            rf,
            start_partition,
            start_index,
            replica_shift,
        ))
    }
}

/// Checks an explicit assignment (partition index order): every partition has replicas, the
/// same number of them, no broker twice, and only registered brokers. Returns the replication
/// factor.
pub fn validate_assignment(
    assignment: &[Vec<i32>],
    registered: &BTreeSet<i32>,
) -> Result<usize, PlacementError> {
    let Some(first) = assignment.first() else {
        return Err(PlacementError::InvalidAssignment(
            "the assignment has no partitions".into(),
        ));
    };
    let rf = first.len();
    for (partition, replicas) in assignment.iter().enumerate() {
        if replicas.is_empty() {
            return Err(PlacementError::InvalidAssignment(format!(
                "partition {partition} has no replicas"
            )));
        }
        if replicas.len() != rf {
            return Err(PlacementError::InvalidAssignment(format!(
                "inconsistent replication factor: partition 0 has {rf} replicas, partition \
                 {partition} has {}",
                replicas.len()
            )));
        }
        validate_replicas(replicas, registered).map_err(|e| match e {
            PlacementError::InvalidAssignment(m) => {
                PlacementError::InvalidAssignment(format!("partition {partition}: {m}"))
            }
            other => other,
        })?;
    }
    Ok(rf)
}

/// Checks one partition's replica list: non-empty, no duplicates, registered brokers only.
pub fn validate_replicas(
    replicas: &[i32],
    registered: &BTreeSet<i32>,
) -> Result<(), PlacementError> {
    if replicas.is_empty() {
        return Err(PlacementError::InvalidAssignment(
            "empty replica list".into(),
        ));
    }
    let mut seen = HashSet::new();
    for r in replicas {
        if !seen.insert(*r) {
            return Err(PlacementError::InvalidAssignment(format!(
                "broker {r} is listed twice"
            )));
        }
        if !registered.contains(r) {
            return Err(PlacementError::InvalidAssignment(format!(
                "broker {r} is not registered"
            )));
        }
    }
    Ok(())
}

/// Kafka's `replicaIndex`: the position of the `replica`-th follower after the first replica.
fn replica_index(first: usize, shift: usize, replica: usize, n: usize) -> usize {
    let shift = 1 + (shift + replica) % (n - 1);
    (first + shift) % n
}

fn rack_unaware(
    brokers: &[i32],
    partitions: usize,
    rf: usize,
    start_partition: usize,
    start_index: usize,
    replica_shift: usize,
) -> Vec<Vec<i32>> {
    let n = brokers.len();
    let start_index = start_index % n;
    let mut out = Vec::with_capacity(partitions);
    for current in start_partition..start_partition + partitions {
        // Kafka bumps the shift after every full turn over the brokers; counting the turns
        // from partition 0 (Kafka restarts at `start_partition`) makes added partitions
        // continue the pattern exactly as if they had been placed with the first ones.
        let shift = replica_shift + current / n;
        let first = (current + start_index) % n;
        let mut replicas = Vec::with_capacity(rf);
        replicas.push(brokers[first]);
        for j in 0..rf - 1 {
            replicas.push(brokers[replica_index(first, shift, j, n)]);
        }
        out.push(replicas);
    }
    out
}

/// Kafka's `getRackAlternatedBrokerList`: racks in name order, brokers of each rack in id order,
/// taking one broker per rack in turn.
pub fn rack_alternated_brokers(racks: &BTreeMap<i32, &str>) -> Vec<i32> {
    let mut by_rack: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (id, rack) in racks {
        by_rack.entry(rack).or_default().push(*id);
    }
    let mut iters: Vec<std::vec::IntoIter<i32>> =
        by_rack.into_values().map(Vec::into_iter).collect();
    let mut out = Vec::with_capacity(racks.len());
    while out.len() < racks.len() {
        for it in iters.iter_mut() {
            if let Some(id) = it.next() {
                out.push(id);
            }
        }
    }
    out
}

fn rack_aware(
    racks: &BTreeMap<i32, &str>,
    partitions: usize,
    rf: usize,
    start_partition: usize,
    start_index: usize,
    replica_shift: usize,
) -> Vec<Vec<i32>> {
    let num_racks = racks.values().collect::<HashSet<_>>().len();
    let arranged = rack_alternated_brokers(racks);
    let n = arranged.len();
    let start_index = start_index % n;
    let mut out = Vec::with_capacity(partitions);
    for current in start_partition..start_partition + partitions {
        // Kafka bumps the shift after every full turn over the brokers; counting the turns
        // from partition 0 (Kafka restarts at `start_partition`) makes added partitions
        // continue the pattern exactly as if they had been placed with the first ones.
        let shift = replica_shift + current / n;
        let first = (current + start_index) % n;
        let leader = arranged[first];
        let mut replicas = vec![leader];
        let mut racks_used: HashSet<&str> = HashSet::from([racks[&leader]]);
        let mut brokers_used: HashSet<i32> = HashSet::from([leader]);
        let mut k = 0;
        for _ in 0..rf - 1 {
            // Bounded: within n consecutive k the index visits every broker (the shift walks
            // 1..n-1), so an acceptable one is always found.
            for _ in 0..n * n {
                let broker = arranged[replica_index(first, shift * num_racks, k, n)];
                let rack = racks[&broker];
                k += 1;
                // Skip a broker on a rack that already holds a replica while some rack holds
                // none, and a broker holding a replica while some broker holds none.
                if (!racks_used.contains(rack) || racks_used.len() == num_racks)
                    && (!brokers_used.contains(&broker) || brokers_used.len() == n)
                {
                    replicas.push(broker);
                    racks_used.insert(rack);
                    brokers_used.insert(broker);
                    break;
                }
            }
        }
        out.push(replicas);
    }
    out
}

/// A well-mixed second value from the seed, for the replica shift.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stable hash of a topic name (FNV-1a), the `seed` callers pass to `assign_replicas`.
pub fn topic_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(ids: &[i32]) -> Vec<(i32, Option<String>)> {
        ids.iter().map(|id| (*id, None)).collect()
    }

    fn racked(pairs: &[(i32, &str)]) -> Vec<(i32, Option<String>)> {
        pairs
            .iter()
            .map(|(id, r)| (*id, Some((*r).to_string())))
            .collect()
    }

    #[test]
    fn rack_unaware_matches_kafkas_known_assignment() {
        // AdminTest.testManualReplicaAssignment: 5 brokers, 10 partitions, RF 3, fixed start 0.
        let got = assign_with(&plain(&[0, 1, 2, 3, 4]), 10, 3, 0, 0, 0).unwrap();
        let expected = vec![
            vec![0, 1, 2],
            vec![1, 2, 3],
            vec![2, 3, 4],
            vec![3, 4, 0],
            vec![4, 0, 1],
            vec![0, 2, 3],
            vec![1, 3, 4],
            vec![2, 4, 0],
            vec![3, 0, 1],
            vec![4, 1, 2],
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn broker_order_does_not_matter_without_racks() {
        let a = assign_with(&plain(&[4, 2, 0, 3, 1]), 10, 3, 0, 0, 0).unwrap();
        let b = assign_with(&plain(&[0, 1, 2, 3, 4]), 10, 3, 0, 0, 0).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn adding_partitions_continues_the_pattern() {
        let all = assign_with(&plain(&[0, 1, 2, 3, 4]), 10, 3, 0, 0, 0).unwrap();
        let tail = assign_with(&plain(&[0, 1, 2, 3, 4]), 4, 3, 6, 0, 0).unwrap();
        assert_eq!(tail, all[6..10].to_vec());
    }

    #[test]
    fn rack_alternated_list_and_assignment_match_kafka() {
        // AdminRackAwareTest.testGetRackAlternatedBrokerListAndAssignReplicasToBrokers.
        let pairs = [
            (0, "rack1"),
            (1, "rack3"),
            (2, "rack3"),
            (3, "rack2"),
            (4, "rack2"),
            (5, "rack1"),
        ];
        let map: BTreeMap<i32, &str> = pairs.iter().copied().collect();
        assert_eq!(rack_alternated_brokers(&map), vec![0, 3, 1, 5, 4, 2]);
        let mut without5 = map.clone();
        without5.remove(&5);
        assert_eq!(rack_alternated_brokers(&without5), vec![0, 3, 1, 4, 2]);
        let got = assign_with(&racked(&pairs), 7, 3, 0, 0, 0).unwrap();
        let expected = vec![
            vec![0, 3, 1],
            vec![3, 1, 5],
            vec![1, 5, 4],
            vec![5, 4, 2],
            vec![4, 2, 0],
            vec![2, 0, 3],
            vec![0, 4, 2],
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn six_brokers_three_racks_put_one_replica_of_each_partition_per_rack() {
        let pairs = [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")];
        let rack: BTreeMap<i32, &str> = pairs.iter().copied().collect();
        for seed in 0..50u64 {
            let got = assign_replicas(&racked(&pairs), 24, 3, 0, seed).unwrap();
            assert_eq!(got.len(), 24);
            for replicas in &got {
                let racks: BTreeSet<&str> = replicas.iter().map(|b| rack[b]).collect();
                assert_eq!(racks.len(), 3, "seed {seed}: {replicas:?}");
            }
        }
    }

    #[test]
    fn replicas_spread_over_distinct_racks_when_racks_allow() {
        // 3 racks of uneven size, RF 3: always 3 racks; RF 4: all racks and distinct brokers.
        let pairs = [(1, "a"), (2, "a"), (3, "a"), (4, "b"), (5, "c")];
        let rack: BTreeMap<i32, &str> = pairs.iter().copied().collect();
        for seed in 0..20u64 {
            for replicas in assign_replicas(&racked(&pairs), 10, 3, 0, seed).unwrap() {
                let racks: BTreeSet<&str> = replicas.iter().map(|b| rack[b]).collect();
                assert_eq!(racks.len(), 3);
            }
            for replicas in assign_replicas(&racked(&pairs), 10, 4, 0, seed).unwrap() {
                let racks: BTreeSet<&str> = replicas.iter().map(|b| rack[b]).collect();
                let brokers: BTreeSet<i32> = replicas.iter().copied().collect();
                assert_eq!(racks.len(), 3);
                assert_eq!(brokers.len(), 4);
            }
        }
    }

    #[test]
    fn leaders_and_replicas_are_balanced() {
        for (brokers, label) in [
            (plain(&[1, 2, 3, 4, 5, 6]), "no racks"),
            (
                racked(&[(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]),
                "racks",
            ),
        ] {
            let got = assign_replicas(&brokers, 60, 3, 0, topic_seed("orders")).unwrap();
            let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
            let mut replicas: BTreeMap<i32, usize> = BTreeMap::new();
            for r in &got {
                *leaders.entry(r[0]).or_default() += 1;
                for b in r {
                    *replicas.entry(*b).or_default() += 1;
                }
                assert_eq!(r.iter().collect::<BTreeSet<_>>().len(), 3, "{label}");
            }
            assert!(leaders.values().all(|c| *c == 10), "{label}: {leaders:?}");
            assert!(replicas.values().all(|c| *c == 30), "{label}: {replicas:?}");
        }
    }

    #[test]
    fn the_seed_makes_placement_deterministic() {
        let brokers = plain(&[1, 2, 3, 4]);
        let a = assign_replicas(&brokers, 8, 2, 0, 42).unwrap();
        assert_eq!(a, assign_replicas(&brokers, 8, 2, 0, 42).unwrap());
        let starts: BTreeSet<i32> = (0..16u64)
            .map(|s| assign_replicas(&brokers, 1, 2, 0, s).unwrap()[0][0])
            .collect();
        assert!(starts.len() > 1, "the seed moves the start index");
    }

    #[test]
    fn bad_arguments_are_refused() {
        let mixed = vec![(1, Some("a".to_string())), (2, None), (3, Some("b".into()))];
        assert_eq!(
            assign_replicas(&mixed, 3, 2, 0, 0),
            Err(PlacementError::PartialRackInformation)
        );
        assert!(
            PlacementError::PartialRackInformation.to_string().contains(
                "Not all brokers have rack information"
                    .to_lowercase()
                    .as_str()
            )
        );
        let brokers = plain(&[1, 2, 3]);
        assert_eq!(
            assign_replicas(&brokers, 3, 4, 0, 0),
            Err(PlacementError::ReplicationFactorTooLarge {
                replication_factor: 4,
                brokers: 3
            })
        );
        assert_eq!(
            assign_replicas(&brokers, 3, 0, 0, 0),
            Err(PlacementError::ReplicationFactorTooSmall)
        );
        assert_eq!(
            assign_replicas(&brokers, 0, 1, 0, 0),
            Err(PlacementError::InvalidPartitions)
        );
        assert_eq!(
            assign_replicas(&[], 1, 1, 0, 0),
            Err(PlacementError::ReplicationFactorTooLarge {
                replication_factor: 1,
                brokers: 0
            })
        );
        assert_eq!(
            assign_replicas(&plain(&[1, 1]), 1, 1, 0, 0),
            Err(PlacementError::DuplicateBroker(1))
        );
        // RF 1 on one broker works (no division by n - 1).
        assert_eq!(
            assign_replicas(&plain(&[7]), 2, 1, 0, 9).unwrap(),
            vec![vec![7], vec![7]]
        );
    }

    #[test]
    fn explicit_assignments_are_validated() {
        let registered: BTreeSet<i32> = [1, 2, 3].into();
        assert_eq!(
            validate_assignment(&[vec![1, 2], vec![2, 3]], &registered),
            Ok(2)
        );
        for bad in [
            vec![],
            vec![vec![]],
            vec![vec![1, 1]],
            vec![vec![1, 2], vec![3]],
            vec![vec![1, 4]],
        ] {
            assert!(
                matches!(
                    validate_assignment(&bad, &registered),
                    Err(PlacementError::InvalidAssignment(_))
                ),
                "{bad:?}"
            );
        }
    }
}
