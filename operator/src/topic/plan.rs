//! What to do to make a Kafka topic match its `Topic` spec, as a pure function of the spec and
//! what the cluster reports: create, add partitions, change configs, or report what cannot be
//! done (partition decrease, replication-factor change).

use std::collections::BTreeMap;

use strait_client::link::MIRROR_SOURCE_CONFIG;
use strait_crds::TopicSpec;

use crate::admin::TopicDescription;

/// The actions and refusals for one reconcile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicPlan {
    /// Create the topic with the spec's partitions, replicas and config.
    pub create: bool,
    /// Grow to this many partitions.
    pub grow_partitions: Option<i32>,
    /// Config keys to set (`Some`) or remove (`None`).
    pub config_changes: BTreeMap<String, Option<String>>,
    /// Differences the operator will not resolve: `(reason, message)`.
    pub refused: Vec<(&'static str, String)>,
}

/// Plans the changes. Only keys the spec names, or that were set on the topic directly, are
/// compared: removing a key from the spec removes it from the topic, except
/// `strait.mirror.source`: removing it fails a linked mirror topic over (it becomes writable and
/// stops following its source), which only the `Mirror`'s failover may do, so a `Topic` that
/// omits it leaves it alone, and one that changes it on an existing topic is refused.
pub fn plan(spec: &TopicSpec, observed: Option<&TopicDescription>) -> TopicPlan {
    let Some(observed) = observed else {
        return TopicPlan {
            create: true,
            ..TopicPlan::default()
        };
    };
    let mut out = TopicPlan::default();
    let have = i32::try_from(observed.partitions.len()).unwrap_or(i32::MAX);
    if spec.partitions > have {
        out.grow_partitions = Some(spec.partitions);
    } else if spec.partitions < have {
        out.refused.push((
            "PartitionDecreaseRefused",
            format!(
                "the topic has {have} partitions; Kafka cannot reduce them to {}",
                spec.partitions
            ),
        ));
    }
    let rf = observed.replication_factor();
    if rf != spec.replicas {
        out.refused.push((
            "ReplicationFactorDiffers",
            format!(
                "the topic has replication factor {rf}, the spec asks for {}; change it with a partition reassignment",
                spec.replicas
            ),
        ));
    }
    for (k, v) in &spec.config {
        let have = observed.config.get(k);
        if k == MIRROR_SOURCE_CONFIG && have != Some(v) {
            out.refused.push((
                "MirrorSourceImmutable",
                format!(
                    "{MIRROR_SOURCE_CONFIG} is set only when a topic is created (the topic has {:?}, the spec asks for {v:?}); fail a mirror topic over with its Mirror's spec.failover",
                    have.map_or("", String::as_str)
                ),
            ));
        } else if have != Some(v) {
            out.config_changes.insert(k.clone(), Some(v.clone()));
        }
    }
    for k in observed.config.keys() {
        if !spec.config.contains_key(k) && k != MIRROR_SOURCE_CONFIG {
            out.config_changes.insert(k.clone(), None);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use strait_crds::{ClusterReference, DeletionPolicy};

    fn spec(partitions: i32, replicas: i32, config: &[(&str, &str)]) -> TopicSpec {
        TopicSpec {
            cluster: ClusterReference {
                name: Some("kafka".into()),
                ..ClusterReference::default()
            },
            topic_name: None,
            partitions,
            replicas,
            config: config
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            deletion_policy: DeletionPolicy::Delete,
        }
    }

    fn observed(partitions: i32, rf: i32, config: &[(&str, &str)]) -> TopicDescription {
        TopicDescription {
            topic_id: "id".into(),
            partitions: (0..partitions).map(|p| (p, (0..rf).collect())).collect(),
            config: config
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    #[test]
    fn missing_topic_is_created() {
        assert!(plan(&spec(3, 1, &[]), None).create);
    }

    #[test]
    fn partitions_grow_but_never_shrink() {
        let p = plan(&spec(6, 1, &[]), Some(&observed(3, 1, &[])));
        assert_eq!(p.grow_partitions, Some(6));
        assert!(p.refused.is_empty());
        let p = plan(&spec(2, 1, &[]), Some(&observed(3, 1, &[])));
        assert_eq!(p.grow_partitions, None);
        assert_eq!(p.refused[0].0, "PartitionDecreaseRefused");
    }

    #[test]
    fn replication_factor_change_is_reported() {
        let p = plan(&spec(3, 3, &[]), Some(&observed(3, 1, &[])));
        assert_eq!(p.refused.len(), 1);
        assert_eq!(p.refused[0].0, "ReplicationFactorDiffers");
    }

    #[test]
    fn configs_set_changed_and_removed_keys() {
        let p = plan(
            &spec(
                3,
                1,
                &[("retention.ms", "1000"), ("cleanup.policy", "compact")],
            ),
            Some(&observed(
                3,
                1,
                &[
                    ("retention.ms", "5"),
                    ("cleanup.policy", "compact"),
                    ("segment.bytes", "1024"),
                ],
            )),
        );
        assert_eq!(
            p.config_changes,
            BTreeMap::from([
                ("retention.ms".to_owned(), Some("1000".to_owned())),
                ("segment.bytes".to_owned(), None),
            ])
        );
        assert_eq!(
            plan(&spec(3, 1, &[]), Some(&observed(3, 1, &[]))),
            TopicPlan::default()
        );
    }

    #[test]
    fn a_topic_never_fails_a_mirror_topic_over() {
        let linked = observed(3, 1, &[("strait.mirror.source", "east:orders")]);
        // Omitting the key keeps it: removing it would make the mirror writable.
        let p = plan(&spec(3, 1, &[("retention.ms", "1")]), Some(&linked));
        assert_eq!(
            p.config_changes,
            BTreeMap::from([("retention.ms".to_owned(), Some("1".to_owned()))])
        );
        assert!(p.refused.is_empty());
        // Naming the same source is a no-op; naming another, or none, is refused.
        let same = spec(3, 1, &[("strait.mirror.source", "east:orders")]);
        assert_eq!(plan(&same, Some(&linked)), TopicPlan::default());
        for other in ["west:orders", ""] {
            let p = plan(
                &spec(3, 1, &[("strait.mirror.source", other)]),
                Some(&linked),
            );
            assert!(p.config_changes.is_empty());
            assert_eq!(p.refused[0].0, "MirrorSourceImmutable");
        }
        // A failed-over topic keeps its empty marker too.
        let failed_over = observed(3, 1, &[("strait.mirror.source", "")]);
        assert_eq!(
            plan(&spec(3, 1, &[]), Some(&failed_over)),
            TopicPlan::default()
        );
        // At creation the key goes through with the rest of the spec.
        assert!(plan(&same, None).create);
    }
}
