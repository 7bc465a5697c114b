//! Changes to `spec.zones`, as a pure decision. Each zone's StatefulSet is named by the zone's
//! position (`<cluster>-z<index>`) and selects its pods by zone label (a selector is immutable),
//! and its brokers' node ids and racks follow from both. So a StatefulSet whose zone is no
//! longer at its position, because the zone was removed (or the list reordered or renamed),
//! cannot be reused for another zone, and its brokers cannot just be left running outside the
//! spec (they would leak, still holding partitions and claims).
//!
//! The decision: such a StatefulSet that still has brokers refuses the change and nothing is
//! applied; the user scales that zone's brokers away first. Brokers are spread round-robin over
//! `spec.zones`, so lowering `spec.replicas` empties the last zones first, through the ordinary
//! scale-down (partitions moved off, leaving controller voters removed from the quorum first).
//! Such a StatefulSet with no broker left is deleted. (The alternative, treating the zone's
//! brokers as leaving brokers of a scale-down, would have to keep the old zone's StatefulSet
//! alive under a spec that no longer names it, and with it the voter its first broker usually
//! is.)

use strait_crds::ClusterSpec;

/// A zone StatefulSet of the Cluster as it exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingZoneSet {
    /// Its name, `<cluster>-z<index>`.
    pub name: String,
    /// The index in its name.
    pub index: usize,
    /// The zone its pods select (`None` when the selector lacks the label).
    pub zone: Option<String>,
    /// Brokers it has or still wants: the larger of `spec.replicas` and `status.replicas`.
    pub brokers: i32,
}

/// What to do about StatefulSets whose zone left its position in `spec.zones`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZoneCheck {
    /// StatefulSets to delete (no broker left).
    pub delete: Vec<String>,
    /// Whether a deleted one's index is still in use: its replacement is applied once the
    /// deletion is through, on a later reconcile.
    pub wait: bool,
    /// Why the spec is refused (StatefulSets still with brokers).
    pub refused: Vec<String>,
}

/// The index in a zone StatefulSet's name, for Cluster `cluster`.
pub fn index_of(cluster: &str, statefulset: &str) -> Option<usize> {
    let digits = statefulset.strip_prefix(&format!("{cluster}-z"))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Checks the Cluster's zone StatefulSets `existing` against `spec.zones`.
pub fn check(spec: &ClusterSpec, existing: &[ExistingZoneSet]) -> ZoneCheck {
    let mut out = ZoneCheck::default();
    for set in existing {
        let wanted = spec.zones.get(set.index);
        // Without the label the zone cannot be told; such a set is left to the apply.
        let Some(zone) = &set.zone else { continue };
        if wanted == Some(zone) {
            continue;
        }
        if set.brokers > 0 {
            let position = match spec.zones.iter().position(|z| z == zone) {
                Some(now) => format!("moved to position {now} of spec.zones"),
                None => "removed from spec.zones".to_owned(),
            };
            out.refused.push(format!(
                "zone `{zone}` ({}, position {}) was {position} but still has {} broker(s): \
                 restore spec.zones and scale its brokers away first (lower spec.replicas; \
                 brokers are spread round-robin, so the last zones empty first), then remove \
                 the zone from the end of the list",
                set.name, set.index, set.brokers
            ));
        } else {
            out.delete.push(set.name.clone());
            out.wait |= wanted.is_some();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::identity::tests::spec;

    fn set(index: usize, zone: &str, brokers: i32) -> ExistingZoneSet {
        ExistingZoneSet {
            name: crate::names::statefulset("kafka", index),
            index,
            zone: Some(zone.to_owned()),
            brokers,
        }
    }

    #[test]
    fn unchanged_zones_pass() {
        let s = spec(3, &["a", "b", "c"]);
        let existing = [set(0, "a", 1), set(1, "b", 1), set(2, "c", 1)];
        assert_eq!(check(&s, &existing), ZoneCheck::default());
        // A StatefulSet not yet created, or one without the label, is no concern here.
        assert_eq!(check(&s, &existing[..1]), ZoneCheck::default());
        let unlabelled = ExistingZoneSet {
            zone: None,
            ..set(5, "x", 3)
        };
        assert_eq!(check(&s, &[unlabelled]), ZoneCheck::default());
    }

    #[test]
    fn a_removed_zone_with_brokers_is_refused_an_empty_one_deleted() {
        let s = spec(2, &["a", "b"]);
        let refused = check(&s, &[set(0, "a", 1), set(1, "b", 1), set(2, "c", 1)]);
        assert!(refused.delete.is_empty());
        assert_eq!(refused.refused.len(), 1);
        assert!(
            refused.refused[0].starts_with(
                "zone `c` (kafka-z2, position 2) was removed from spec.zones but still has 1 \
                 broker(s): restore spec.zones and scale its brokers away first"
            ),
            "{:?}",
            refused.refused
        );
        let empty = check(&s, &[set(0, "a", 1), set(1, "b", 1), set(2, "c", 0)]);
        assert_eq!(
            empty,
            ZoneCheck {
                delete: vec!["kafka-z2".into()],
                wait: false,
                refused: Vec::new(),
            }
        );
    }

    #[test]
    fn a_zone_removed_from_the_middle_shifts_the_others_and_is_refused() {
        // [a, b, c] → [a, c]: kafka-z1 (b) would have to become zone c.
        let s = spec(2, &["a", "c"]);
        let out = check(&s, &[set(0, "a", 1), set(1, "b", 1), set(2, "c", 1)]);
        assert_eq!(out.refused.len(), 2, "{:?}", out.refused);
        assert!(out.refused[0].contains("zone `b` (kafka-z1, position 1) was removed"));
        assert!(out.refused[1].contains("zone `c` (kafka-z2, position 2) was moved to position 1"));
        // Empty ones are deleted; kafka-z1's index is reused, so the reconcile waits for it.
        let out = check(&s, &[set(0, "a", 2), set(1, "b", 0), set(2, "c", 0)]);
        assert_eq!(out.delete, ["kafka-z1", "kafka-z2"]);
        assert!(out.wait);
        assert!(out.refused.is_empty());
    }

    #[test]
    fn only_this_clusters_zone_statefulsets_have_an_index() {
        assert_eq!(index_of("kafka", "kafka-z12"), Some(12));
        assert_eq!(index_of("kafka", "kafka-z"), None);
        assert_eq!(index_of("kafka", "kafka-z1-x"), None);
        assert_eq!(index_of("kafka", "other-z1"), None);
    }
}
