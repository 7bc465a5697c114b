//! Topic sync of one flow: which source topics are mirrored (filters, replication policy, cycle
//! check), creating their remote topics on the target with the source's partition count,
//! adding partitions when the source grows, and copying topic configs minus MM2's exclusions.
//! Also creates MM2's internal topics (offset syncs, checkpoints, heartbeats).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::Regex;

use crate::config::FlowConfig;
use crate::policy::HEARTBEATS_TOPIC;
use crate::wire::{Cluster, MIRROR_SOURCE_CONFIG, WireError};

/// MM2's `DefaultConfigPropertyFilter` exclusions: settings that belong to the cluster, not the
/// topic's data.
static EXCLUDED_CONFIGS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:follower\.replication\.throttled\.replicas|leader\.replication\.throttled\.replicas|message\.timestamp\.difference\.max\.ms|message\.timestamp\.type|unclean\.leader\.election\.enable|min\.insync\.replicas)$",
    )
    .expect("static pattern")
});

/// Whether a topic setting is copied to the remote topic. A source that is itself a linked
/// mirror topic does not pass its `strait.mirror.source` on: the mirror sets it itself, and
/// only on topics it creates.
pub fn config_is_synced(name: &str) -> bool {
    !EXCLUDED_CONFIGS.is_match(name) && name != MIRROR_SOURCE_CONFIG
}

/// The `strait.mirror.source` value of `topic` mirrored from cluster `source`.
pub fn mirror_source_value(source: &str, topic: &str) -> String {
    format!("{source}:{topic}")
}

/// Whether target topic `remote`, marked `marker`, is a mirror topic of `flow`: the marker
/// names the flow's source and a topic the flow's policy names `remote`.
pub fn marker_belongs(flow: &FlowConfig, remote: &str, marker: &str) -> Option<String> {
    let (alias, topic) = marker.split_once(':')?;
    (alias == flow.source && flow.policy.format_remote_topic(&flow.source, topic) == remote)
        .then(|| topic.to_owned())
}

/// One pass of topic sync of a linked flow: every selected topic has a mirror topic on the
/// target (created with the source's partitions, settings and `strait.mirror.source`),
/// partitions added as the source grows, settings kept in sync. A target topic of that name
/// without `strait.mirror.source` (a user's topic, or one failed over) is not touched and
/// not mirrored into; it is reported once (`warned` remembers which). Returns the topics
/// mirrored into, partition counts capped at the mirror topic's.
pub async fn sync_linked_topics(
    flow: &FlowConfig,
    source: &Cluster,
    target: &Cluster,
    warned: &mut BTreeSet<String>,
) -> Result<Vec<MirroredTopic>, WireError> {
    let (source_topics, _) = source.topics().await?;
    let (target_topics, target_brokers) = target.topics().await?;
    let selected = select(flow, &source_topics);
    let existing: Vec<String> = selected
        .iter()
        .filter(|m| target_topics.contains_key(&m.remote))
        .map(|m| m.remote.clone())
        .collect();
    let markers = target
        .topic_config_values(&existing, MIRROR_SOURCE_CONFIG)
        .await?;
    let mut ready = Vec::new();
    for mirrored in selected {
        let exists = target_topics.contains_key(&mirrored.remote);
        if exists {
            match markers.get(&mirrored.remote) {
                Some(_) => {
                    warned.remove(&mirrored.remote);
                }
                None => {
                    if warned.insert(mirrored.remote.clone()) {
                        tracing::warn!(topic = %mirrored.topic, remote = %mirrored.remote, "target topic exists without strait.mirror.source (not a mirror topic, or failed over): not mirrored into");
                    }
                    continue;
                }
            }
        }
        let result = async {
            let mut configs = if flow.sync_topic_configs {
                let mut configs = source.topic_configs(&mirrored.topic).await?;
                configs.retain(|k, _| config_is_synced(k));
                configs
            } else {
                BTreeMap::new()
            };
            match target_topics.get(&mirrored.remote) {
                None => {
                    let factor = feasible_factor(flow.replication_factor, target_brokers);
                    configs.insert(
                        MIRROR_SOURCE_CONFIG.to_owned(),
                        mirror_source_value(&flow.source, &mirrored.topic),
                    );
                    tracing::info!(topic = %mirrored.topic, remote = %mirrored.remote, partitions = mirrored.partitions, factor, "creating mirror topic");
                    target
                        .create_topic(&mirrored.remote, mirrored.partitions, factor, &configs)
                        .await?;
                }
                Some(&remote_partitions) => {
                    if remote_partitions < mirrored.partitions {
                        tracing::info!(remote = %mirrored.remote, from = remote_partitions, to = mirrored.partitions, "adding partitions to mirror topic");
                        target
                            .create_partitions(&mirrored.remote, mirrored.partitions)
                            .await?;
                    }
                    if flow.sync_topic_configs {
                        let current = target.topic_configs(&mirrored.remote).await?;
                        let changed: BTreeMap<String, String> = configs
                            .into_iter()
                            .filter(|(k, v)| current.get(k) != Some(v))
                            .collect();
                        if !changed.is_empty() {
                            tracing::info!(remote = %mirrored.remote, keys = ?changed.keys().collect::<Vec<_>>(), "syncing topic configs");
                            target.set_topic_configs(&mirrored.remote, &changed).await?;
                        }
                    }
                }
            }
            Ok::<(), WireError>(())
        }
        .await;
        match result {
            Ok(()) => ready.push(mirrored),
            Err(e) => {
                tracing::warn!(topic = %mirrored.topic, remote = %mirrored.remote, error = %e, "topic sync failed");
                if let Some(&remote_partitions) = target_topics.get(&mirrored.remote) {
                    ready.push(MirroredTopic {
                        partitions: remote_partitions.min(mirrored.partitions),
                        ..mirrored
                    });
                }
            }
        }
    }
    Ok(ready)
}

/// One mirrored topic: source name, remote name, source partition count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirroredTopic {
    pub topic: String,
    pub remote: String,
    pub partitions: i32,
}

/// The source topics `flow` mirrors, with their remote names.
pub fn select(flow: &FlowConfig, source_topics: &BTreeMap<String, i32>) -> Vec<MirroredTopic> {
    source_topics
        .iter()
        .filter(|(topic, _)| flow.mirrors_topic(topic))
        .map(|(topic, partitions)| MirroredTopic {
            topic: topic.clone(),
            remote: flow.policy.format_remote_topic(&flow.source, topic),
            partitions: *partitions,
        })
        .collect()
}

/// A replication factor the cluster can honour: `wanted`, or the broker count when fewer
/// brokers exist (a single-node test cluster), -1 left to the broker's default.
pub fn feasible_factor(wanted: i16, brokers: usize) -> i16 {
    let brokers = i16::try_from(brokers).unwrap_or(i16::MAX).max(1);
    if wanted > brokers {
        tracing::warn!(
            wanted,
            brokers,
            "replication factor above the broker count; using the broker count"
        );
        brokers
    } else {
        wanted
    }
}

/// One pass of topic sync: every selected topic exists on the target with at least the
/// source's partitions, and (when enabled) the source's settings. Returns the mirrored topics
/// whose remote topic is ready, partition counts capped at the remote's.
pub async fn sync_topics(
    flow: &FlowConfig,
    source: &Cluster,
    target: &Cluster,
) -> Result<Vec<MirroredTopic>, WireError> {
    let (source_topics, _) = source.topics().await?;
    let (target_topics, target_brokers) = target.topics().await?;
    let selected = select(flow, &source_topics);
    let mut ready = Vec::new();
    for mirrored in selected {
        // One topic's failure does not hold up the others; it is retried next pass, and its
        // copiers keep running on the partitions the remote topic already has.
        match sync_topic(
            flow,
            source,
            target,
            &target_topics,
            target_brokers,
            &mirrored,
        )
        .await
        {
            Ok(()) => ready.push(mirrored),
            Err(e) => {
                tracing::warn!(topic = %mirrored.topic, remote = %mirrored.remote, error = %e, "topic sync failed");
                if let Some(&remote_partitions) = target_topics.get(&mirrored.remote) {
                    ready.push(MirroredTopic {
                        partitions: remote_partitions.min(mirrored.partitions),
                        ..mirrored
                    });
                }
            }
        }
    }
    Ok(ready)
}

async fn sync_topic(
    flow: &FlowConfig,
    source: &Cluster,
    target: &Cluster,
    target_topics: &BTreeMap<String, i32>,
    target_brokers: usize,
    mirrored: &MirroredTopic,
) -> Result<(), WireError> {
    {
        let configs = if flow.sync_topic_configs {
            let mut configs = source.topic_configs(&mirrored.topic).await?;
            configs.retain(|k, _| config_is_synced(k));
            Some(configs)
        } else {
            None
        };
        match target_topics.get(&mirrored.remote) {
            None => {
                let factor = feasible_factor(flow.replication_factor, target_brokers);
                tracing::info!(topic = %mirrored.topic, remote = %mirrored.remote, partitions = mirrored.partitions, factor, "creating remote topic");
                target
                    .create_topic(
                        &mirrored.remote,
                        mirrored.partitions,
                        factor,
                        configs.as_ref().unwrap_or(&BTreeMap::new()),
                    )
                    .await?;
            }
            Some(&remote_partitions) => {
                if remote_partitions < mirrored.partitions {
                    tracing::info!(remote = %mirrored.remote, from = remote_partitions, to = mirrored.partitions, "adding partitions to remote topic");
                    target
                        .create_partitions(&mirrored.remote, mirrored.partitions)
                        .await?;
                }
                if let Some(configs) = configs {
                    let current = target.topic_configs(&mirrored.remote).await?;
                    let changed: BTreeMap<String, String> = configs
                        .into_iter()
                        .filter(|(k, v)| current.get(k) != Some(v))
                        .collect();
                    if !changed.is_empty() {
                        tracing::info!(remote = %mirrored.remote, keys = ?changed.keys().collect::<Vec<_>>(), "syncing topic configs");
                        target.set_topic_configs(&mirrored.remote, &changed).await?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Creates MM2's internal topics of `flow` unless they exist: offset syncs on the source,
/// checkpoints and heartbeats on the target (one partition each, compacted, as MM2 makes them).
/// A linked flow uses only heartbeats.
pub async fn ensure_internal_topics(
    flow: &FlowConfig,
    source: &Cluster,
    target: &Cluster,
) -> Result<(), WireError> {
    let compact: BTreeMap<String, String> =
        [("cleanup.policy".to_owned(), "compact".to_owned())].into();
    let linked = flow.linked();
    if !linked {
        let (source_topics, source_brokers) = source.topics().await?;
        let syncs = flow.offset_syncs_topic();
        if !source_topics.contains_key(&syncs) {
            let factor = feasible_factor(flow.offset_syncs_replication_factor, source_brokers);
            source.create_topic(&syncs, 1, factor, &compact).await?;
        }
    }
    let (target_topics, target_brokers) = target.topics().await?;
    let checkpoints = flow.checkpoints_topic();
    if !linked && flow.emit_checkpoints_enabled && !target_topics.contains_key(&checkpoints) {
        let factor = feasible_factor(flow.checkpoints_replication_factor, target_brokers);
        target
            .create_topic(&checkpoints, 1, factor, &compact)
            .await?;
    }
    if flow.emit_heartbeats_enabled && !target_topics.contains_key(HEARTBEATS_TOPIC) {
        let factor = feasible_factor(flow.heartbeats_replication_factor, target_brokers);
        target
            .create_topic(HEARTBEATS_TOPIC, 1, factor, &compact)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MirrorConfig;

    #[test]
    fn selection_and_config_filter() {
        let config = MirrorConfig::parse(
            "clusters=A,B\nA.bootstrap.servers=x:1\nB.bootstrap.servers=y:1\nA->B.enabled=true\ntopics=.*\ntopics.exclude=skip.*\n",
        )
        .unwrap();
        let flow = &config.flows[0];
        let topics: BTreeMap<String, i32> = [
            ("orders", 3),
            ("skip-me", 1),
            ("B.orders", 2),
            ("C.orders", 2),
            ("heartbeats", 1),
            ("mm2-offset-syncs.B.internal", 1),
            ("__consumer_offsets", 50),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let selected = select(flow, &topics);
        let names: Vec<(&str, &str)> = selected
            .iter()
            .map(|m| (m.topic.as_str(), m.remote.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("C.orders", "A.C.orders"),
                ("heartbeats", "A.heartbeats"),
                ("orders", "A.orders"),
            ]
        );
        assert_eq!(selected[2].partitions, 3);
        assert!(config_is_synced("retention.ms"));
        assert!(config_is_synced("cleanup.policy"));
        assert!(!config_is_synced("min.insync.replicas"));
        assert!(!config_is_synced("message.timestamp.type"));
        assert!(!config_is_synced("leader.replication.throttled.replicas"));
        assert!(!config_is_synced("strait.mirror.source"));
        assert_eq!(feasible_factor(3, 1), 1);
        assert_eq!(feasible_factor(2, 3), 2);
        assert_eq!(feasible_factor(-1, 1), -1);
    }

    #[test]
    fn markers_belong_to_their_flow() {
        let text = "clusters=A,B,C\nA.bootstrap.servers=x:1\nB.bootstrap.servers=y:1\nC.bootstrap.servers=z:1\nA->B.enabled=true\nmirror.mode=linked\n";
        let config = MirrorConfig::parse(text).unwrap();
        let default = &config.flows[0];
        assert_eq!(mirror_source_value("A", "orders"), "A:orders");
        assert_eq!(
            marker_belongs(default, "A.orders", "A:orders").as_deref(),
            Some("orders")
        );
        assert_eq!(
            marker_belongs(default, "orders", "A:orders"),
            None,
            "name not the policy's"
        );
        assert_eq!(
            marker_belongs(default, "C.orders", "C:orders"),
            None,
            "another source"
        );
        assert_eq!(marker_belongs(default, "A.orders", "garbage"), None);
        let identity = MirrorConfig::parse(&format!(
            "{text}replication.policy.class=IdentityReplicationPolicy\n"
        ))
        .unwrap();
        let identity = &identity.flows[0];
        assert_eq!(
            marker_belongs(identity, "orders", "A:orders").as_deref(),
            Some("orders")
        );
    }
}
