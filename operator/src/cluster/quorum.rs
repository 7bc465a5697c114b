//! The layout of a Cluster's KRaft metadata quorum, as pure functions: which brokers are
//! controller voters and the `controller.quorum.voters` value naming them.
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
/// Voters of a cluster with three or more brokers.
pub const MAX_VOTERS: usize = 3;

/// How many voters `brokers` brokers get: three from three brokers up, otherwise one (two
/// voters would need both up, tolerating no more failures than one).
pub fn voter_count(brokers: i32) -> usize {
    if brokers >= 3 { MAX_VOTERS } else { 1 }
}

/// The voters' node ids, in pick order, for `zone_sizes[i]` brokers in zone `i` (node ids
/// `i * NODE_IDS_PER_ZONE + k`). Empty when there is no broker.
pub fn choose_voters(zone_sizes: &[i32]) -> Vec<i32> {
    let brokers: i32 = zone_sizes.iter().map(|n| (*n).max(0)).sum();
    if brokers == 0 {
        return Vec::new();
    }
    let wanted = voter_count(brokers);
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
        assert_eq!(voters_of(6, &["a", "b", "c"]), [0, 1000, 2000]);
        // More zones than voters: the first three zones.
        assert_eq!(voters_of(5, &["a", "b", "c", "d", "e"]), [0, 1000, 2000]);
    }

    #[test]
    fn fewer_zones_take_the_next_ordinal_round_robin() {
        assert_eq!(voters_of(3, &["a"]), [0, 1, 2]);
        assert_eq!(voters_of(6, &["a"]), [0, 1, 2]);
        assert_eq!(voters_of(3, &["a", "b"]), [0, 1000, 1]);
        assert_eq!(voters_of(6, &["a", "b"]), [0, 1000, 1]);
        // Zone b has a single broker: the third voter comes from zone a.
        assert_eq!(choose_voters(&[3, 1]), [0, 1000, 1]);
        assert_eq!(choose_voters(&[1, 1, 0, 5]), [0, 1000, 3000]);
    }

    #[test]
    fn voters_are_stable_from_three_brokers_up() {
        for zones in [
            &["a"][..],
            &["a", "b"],
            &["a", "b", "c"],
            &["a", "b", "c", "d"],
        ] {
            let at_three = voters_of(3, zones);
            for replicas in 3..=12 {
                assert_eq!(
                    voters_of(replicas, zones),
                    at_three,
                    "{zones:?} x {replicas}"
                );
                // Every voter is a broker that stays when scaling down to three.
                let remaining = crate::cluster::identity::desired_node_ids(&spec(3, zones));
                assert!(at_three.iter().all(|v| remaining.contains(v)));
            }
        }
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
