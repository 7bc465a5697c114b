//! The layout of a Cluster's KRaft metadata quorum, as pure functions: which brokers should be
//! controller voters (one, three or five), which seeded the quorum and which join it later
//! ([`Controllers`]), and the `controller.quorum.voters` and `controller.quorum.bootstrap.servers`
//! values naming them.
//!
//! Voters are the lowest ordinals of the zones, taken round-robin over zones (every zone's first
//! broker, then every zone's second, ...), so three zones hold one voter each and losing a zone
//! never loses the majority. Scale-down removes the highest ordinals first, so it never removes
//! a voter while the voter count stays the same.

use strait_crds::ClusterSpec;
use strait_crds::cluster::NODE_IDS_PER_ZONE;

use crate::cluster::identity::ordinal_start;
use crate::names;

/// Port of the CONTROLLER listener on voters (Kafka's usual controller port).
pub const CONTROLLER_PORT: i32 = 9093;
/// Kafka listener name of the controller listener.
pub const CONTROLLER_LISTENER: &str = "CONTROLLER";
/// Voters of a cluster with five or more brokers.
pub const MAX_VOTERS: usize = 5;
/// Voters of a cluster with three or more brokers before KIP-853 (the quorum could not change
/// then): what an existing cluster without recorded seed voters formed with.
pub const STATIC_MAX_VOTERS: usize = 3;

/// How many voters `brokers` brokers get: an odd count, five from five brokers up, three from
/// three, otherwise one (two voters would need both up, tolerating no more failures than one).
pub fn voter_count(brokers: i32) -> usize {
    match brokers {
        b if b >= 5 => MAX_VOTERS,
        3 | 4 => 3,
        _ => 1,
    }
}

/// The voters' node ids, in pick order, for `zone_sizes[i]` brokers in zone `i` (node ids
/// `i * NODE_IDS_PER_ZONE + k`). Empty when there is no broker.
pub fn choose_voters(zone_sizes: &[i32]) -> Vec<i32> {
    let brokers: i32 = zone_sizes.iter().map(|n| (*n).max(0)).sum();
    pick(zone_sizes, voter_count(brokers))
}

/// The voters an operator version before KIP-853 gave `zone_sizes` (at most three): the seed
/// voters of a running cluster whose status records none.
pub fn static_voters(zone_sizes: &[i32]) -> Vec<i32> {
    let brokers: i32 = zone_sizes.iter().map(|n| (*n).max(0)).sum();
    pick(zone_sizes, voter_count(brokers).min(STATIC_MAX_VOTERS))
}

/// The first `wanted` node ids taken round-robin over the zones.
fn pick(zone_sizes: &[i32], wanted: usize) -> Vec<i32> {
    let deepest = zone_sizes.iter().copied().max().unwrap_or(0);
    let mut voters = Vec::with_capacity(wanted);
    for ordinal in 0..deepest {
        for (zone, size) in zone_sizes.iter().enumerate() {
            if voters.len() == wanted {
                return voters;
            }
            if ordinal < *size {
                voters.push(ordinal_start(zone).saturating_add(ordinal));
            }
        }
    }
    voters
}

/// Which nodes run the controller role, and how they find the quorum. `seeds` formed the
/// quorum: `controller.quorum.voters` names them (shared `server.properties`, so it never
/// changes while they run). `joining` are the other wanted voters: they start with
/// `controller.quorum.bootstrap.servers` alone, join as observers and are promoted by
/// AddRaftVoter (see `voters`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Controllers {
    /// The seed voters (ids in `controller.quorum.voters`).
    pub seeds: Vec<i32>,
    /// Controllers that are no seeds.
    pub joining: Vec<i32>,
    /// Every controller of the cluster, seeds first (for one zone's view, [`Self::in_zone`],
    /// also those of other zones): the bootstrap servers of joining ones.
    all: Vec<i32>,
}

impl Controllers {
    /// The controllers for `seeds` and the wanted voters `desired`.
    pub fn new(seeds: &[i32], desired: &[i32]) -> Controllers {
        let joining: Vec<i32> = desired
            .iter()
            .filter(|id| !seeds.contains(id))
            .copied()
            .collect();
        Controllers {
            all: seeds.iter().chain(&joining).copied().collect(),
            seeds: seeds.to_vec(),
            joining,
        }
    }

    /// A quorum that only has its seeds (a new cluster, or one that never grew).
    pub fn seeded(seeds: &[i32]) -> Controllers {
        Controllers::new(seeds, seeds)
    }

    /// Every node with the controller role, seeds first.
    pub fn all(&self) -> Vec<i32> {
        self.all.clone()
    }

    /// The controllers every node can ask for the quorum (`controller.quorum.bootstrap.servers`).
    pub fn contacts(&self) -> Vec<i32> {
        self.all.clone()
    }

    /// Whether controllers other than the seeds exist anywhere in the cluster: then the seeds
    /// are told them too (see `config::seed_overrides`).
    pub fn has_grown(&self) -> bool {
        self.all.len() > self.seeds.len()
    }

    /// The view of zone `index`'s pod template: the seeds as they are (their branch changes
    /// only when the quorum grows beyond them or shrinks back), the joining controllers of this
    /// zone only.
    pub fn in_zone(&self, index: usize) -> Controllers {
        Controllers {
            seeds: self.seeds.clone(),
            joining: self
                .joining
                .iter()
                .filter(|id| zone_of(**id) == index)
                .copied()
                .collect(),
            all: self.all.clone(),
        }
    }
}

/// `controller.quorum.bootstrap.servers`: `<pod>.<headless>.<namespace>.svc:9093,...` of `ids`.
pub fn bootstrap_servers(cluster: &str, namespace: &str, ids: &[i32]) -> String {
    let headless = names::headless_service(cluster);
    ids.iter()
        .map(|id| {
            let pod = names::pod(cluster, zone_of(*id), *id);
            format!("{pod}.{headless}.{namespace}.svc:{CONTROLLER_PORT}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The voters of the brokers a spec asks for.
pub fn desired_voters(spec: &ClusterSpec) -> Vec<i32> {
    choose_voters(&desired_zone_sizes(spec))
}

/// Brokers per zone as the spec asks for them.
pub fn desired_zone_sizes(spec: &ClusterSpec) -> Vec<i32> {
    (0..spec.zones.len())
        .map(|i| spec.replicas_in_zone(i))
        .collect()
}

/// Zone index of a node id.
pub fn zone_of(node_id: i32) -> usize {
    usize::try_from(node_id / NODE_IDS_PER_ZONE).unwrap_or(0)
}

/// `controller.quorum.voters`: `ID@<pod>.<headless>.<namespace>.svc:9093,...`, on the same stable
/// per-pod DNS names the brokers advertise.
pub fn quorum_voters(cluster: &str, namespace: &str, voters: &[i32]) -> String {
    let headless = names::headless_service(cluster);
    voters
        .iter()
        .map(|id| {
            let pod = names::pod(cluster, zone_of(*id), *id);
            format!("{id}@{pod}.{headless}.{namespace}.svc:{CONTROLLER_PORT}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::identity::tests::spec;

    fn voters_of(replicas: i32, zones: &[&str]) -> Vec<i32> {
        desired_voters(&spec(replicas, zones))
    }

    #[test]
    fn one_broker_is_the_single_voter() {
        assert_eq!(voters_of(1, &["a"]), [0]);
        assert_eq!(voters_of(1, &["a", "b", "c"]), [0]);
        // Two voters would need both up: two brokers keep one.
        assert_eq!(voters_of(2, &["a", "b"]), [0]);
        assert!(choose_voters(&[0, 0]).is_empty());
        assert!(choose_voters(&[]).is_empty());
    }

    #[test]
    fn three_zones_get_one_voter_each() {
        assert_eq!(voters_of(3, &["a", "b", "c"]), [0, 1000, 2000]);
        assert_eq!(voters_of(4, &["a", "b", "c"]), [0, 1000, 2000]);
        // Five brokers up: five voters, still round-robin.
        assert_eq!(voters_of(6, &["a", "b", "c"]), [0, 1000, 2000, 1, 1001]);
        assert_eq!(
            voters_of(5, &["a", "b", "c", "d", "e"]),
            [0, 1000, 2000, 3000, 4000]
        );
    }

    #[test]
    fn fewer_zones_take_the_next_ordinal_round_robin() {
        assert_eq!(voters_of(3, &["a"]), [0, 1, 2]);
        assert_eq!(voters_of(6, &["a"]), [0, 1, 2, 3, 4]);
        assert_eq!(voters_of(3, &["a", "b"]), [0, 1000, 1]);
        assert_eq!(voters_of(6, &["a", "b"]), [0, 1000, 1, 1001, 2]);
        // Zone b has a single broker: the third voter comes from zone a.
        assert_eq!(choose_voters(&[3, 1]), [0, 1000, 1]);
        assert_eq!(choose_voters(&[1, 1, 0, 5]), [0, 1000, 3000, 3001, 3002]);
    }

    #[test]
    fn voter_counts_are_odd_and_stable_between_steps() {
        for zones in [
            &["a"][..],
            &["a", "b"],
            &["a", "b", "c"],
            &["a", "b", "c", "d"],
        ] {
            let at_three = voters_of(3, zones);
            assert_eq!(voters_of(4, zones), at_three, "{zones:?}");
            let at_five = voters_of(5, zones);
            assert_eq!(at_five.len(), 5);
            // Growing keeps every voter: only additions.
            assert!(at_three.iter().all(|v| at_five.contains(v)), "{zones:?}");
            for replicas in 5..=12 {
                assert_eq!(
                    voters_of(replicas, zones),
                    at_five,
                    "{zones:?} x {replicas}"
                );
                // Every voter is a broker that stays when scaling down to five.
                let remaining = crate::cluster::identity::desired_node_ids(&spec(5, zones));
                assert!(at_five.iter().all(|v| remaining.contains(v)));
            }
        }
        assert_eq!(voter_count(2), 1);
        assert_eq!(voter_count(4), 3);
        assert_eq!(voter_count(9), 5);
    }

    #[test]
    fn static_voters_are_what_clusters_formed_with_before_kip_853() {
        assert_eq!(static_voters(&[2, 2, 2]), [0, 1000, 2000]);
        assert_eq!(static_voters(&[6]), [0, 1, 2]);
        assert_eq!(static_voters(&[2, 0]), [0]);
    }

    #[test]
    fn controllers_are_the_seeds_and_the_joining_voters() {
        let c = Controllers::new(&[0], &[0, 1000, 2000]);
        assert_eq!(c.joining, [1000, 2000]);
        assert_eq!(c.all(), [0, 1000, 2000]);
        assert_eq!(c.in_zone(1).joining, [1000]);
        assert_eq!(c.in_zone(1).contacts(), [0, 1000, 2000]);
        assert!(c.in_zone(0).joining.is_empty());
        // A seed no longer wanted stays a controller (it is in controller.quorum.voters).
        let c = Controllers::new(&[0, 1000, 2000], &[0]);
        assert!(c.joining.is_empty());
        assert_eq!(c.all(), [0, 1000, 2000]);
        assert_eq!(
            bootstrap_servers("kafka", "ns", &[0, 1000]),
            "kafka-z0-0.kafka-brokers.ns.svc:9093,kafka-z1-1000.kafka-brokers.ns.svc:9093"
        );
    }

    #[test]
    fn losing_one_zone_keeps_the_majority_with_three_zones() {
        let voters = voters_of(9, &["a", "b", "c"]);
        for zone in 0..3 {
            let left = voters.iter().filter(|v| zone_of(**v) != zone).count();
            assert!(left * 2 > voters.len(), "zone {zone}: {voters:?}");
        }
    }

    #[test]
    fn voters_use_stable_pod_dns_names() {
        assert_eq!(
            quorum_voters("kafka", "ns", &[0, 1000, 2000]),
            "0@kafka-z0-0.kafka-brokers.ns.svc:9093,\
             1000@kafka-z1-1000.kafka-brokers.ns.svc:9093,\
             2000@kafka-z2-2000.kafka-brokers.ns.svc:9093"
        );
        assert_eq!(quorum_voters("kafka", "ns", &[]), "");
    }
}
