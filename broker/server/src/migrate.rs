//! Adopts the data dir of an earlier Strait single node, which kept its topics in a JSON catalogue
//! (`__strait_metadata.json` in the first log dir) instead of the metadata quorum. On the first
//! start of a single node (a quorum of one voter) every catalogued topic is written into the
//! metadata log with its id, partition count and configs, this node its only replica, and the
//! producer ids handed out so far are reserved; the file is then renamed so that this runs once.
//! A fresh metadata log beside topic logs and no catalogue (a data dir copied without it) adopts
//! the logs found on disk instead of letting the applier delete them as strays.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use strait_cluster::image::{NO_LEADER, PartitionState};
use strait_cluster::record::MetadataRecord;
use strait_storage::TopicPartition;
use tracing::{info, warn};
use uuid::Uuid;

use crate::broker::Broker;
use crate::node::ClusterNode;

/// The catalogue file of the earlier single-node format.
const LEGACY_FILE: &str = "__strait_metadata.json";
/// What the catalogue is renamed to once adopted (kept for inspection, never read again).
const ADOPTED_FILE: &str = "__strait_metadata.json.adopted";
/// The only catalogue format version there was.
const LEGACY_VERSION: u32 = 1;
/// How long adoption waits for this node to lead its quorum.
const LEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// One topic to adopt.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LegacyTopic {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

/// The earlier single-node catalogue, as read from its file.
#[derive(Debug, Deserialize)]
pub struct LegacyCatalogue {
    #[serde(skip)]
    path: PathBuf,
    version: u32,
    topics: BTreeMap<String, LegacyTopic>,
    /// First producer id the old node had not handed out yet.
    #[serde(default)]
    next_producer_id: i64,
}

/// The catalogue in `dir`, if there is one. A file that cannot be read or understood stops the
/// start: adopting less than it holds would delete the logs of the topics left out.
pub fn legacy_catalogue(dir: &Path) -> anyhow::Result<Option<LegacyCatalogue>> {
    let path = dir.join(LEGACY_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut catalogue: LegacyCatalogue = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a Strait topic catalogue", path.display()))?;
    anyhow::ensure!(
        catalogue.version == LEGACY_VERSION,
        "{}: unsupported catalogue version {}",
        path.display(),
        catalogue.version
    );
    catalogue.path = path;
    Ok(Some(catalogue))
}

/// The records that put `topics` into the metadata log: this node the only replica and in the
/// ISR, no leader yet (the controller elects it when the node unfences, at the next leader
/// epoch after the one its log last wrote, `epoch_of`), plus the producer ids already used.
pub fn adoption_records(
    node_id: i32,
    topics: &[LegacyTopic],
    next_producer_id: i64,
    epoch_of: impl Fn(&str, i32) -> i32,
) -> Vec<MetadataRecord> {
    let mut records: Vec<MetadataRecord> = topics
        .iter()
        .map(|t| MetadataRecord::CreateTopic {
            name: t.name.clone(),
            id: t.id,
            configs: t.configs.clone(),
            partitions: (0..t.partitions)
                .map(|p| PartitionState {
                    replicas: vec![node_id],
                    isr: vec![node_id],
                    leader: NO_LEADER,
                    leader_epoch: epoch_of(&t.name, p),
                    partition_epoch: 0,
                    adding: Vec::new(),
                    removing: Vec::new(),
                })
                .collect(),
        })
        .collect();
    if next_producer_id > 0 {
        records.push(MetadataRecord::AllocateProducerIds {
            broker: node_id,
            first: 0,
            count: next_producer_id,
        });
    }
    records
}

/// The topics whose logs are on disk, as the earlier single node adopted a data dir without a
/// catalogue: partitions up to the highest index found, the id the logs carry.
fn topics_on_disk(broker: &Broker) -> Vec<LegacyTopic> {
    let mut found: BTreeMap<String, LegacyTopic> = BTreeMap::new();
    for log in broker.replicas.logs.all() {
        let tp = log.topic_partition();
        let topic = found
            .entry(tp.topic.clone())
            .or_insert_with(|| LegacyTopic {
                name: tp.topic.clone(),
                id: Uuid::nil(),
                partitions: 0,
                configs: BTreeMap::new(),
            });
        topic.partitions = topic.partitions.max(tp.partition + 1);
        if topic.id.is_nil()
            && let Some(id) = log.topic_id().and_then(|s| Uuid::parse_str(&s).ok())
        {
            topic.id = id;
        }
    }
    found
        .into_values()
        .map(|mut t| {
            if t.id.is_nil() {
                t.id = Uuid::new_v4();
            }
            t
        })
        .collect()
}

/// Waits until this node leads its quorum and has applied everything committed before (an empty
/// proposal is answered only then), so that the image it reads next is complete.
async fn lead(node: &ClusterNode) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + LEAD_TIMEOUT;
    loop {
        match node.propose(Vec::new()).await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(e.context("this single node does not lead its metadata quorum"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Adopts `legacy` (or, with none, logs found beside a fresh metadata log) into the metadata log
/// of this lone voter; must run before the applier, which deletes logs the image does not name.
/// On any other node a legacy catalogue stops the start: it must first start alone once.
pub async fn adopt(
    broker: &Broker,
    node: &ClusterNode,
    legacy: Option<LegacyCatalogue>,
) -> anyhow::Result<()> {
    if !node.is_lone_voter() {
        if let Some(legacy) = legacy {
            anyhow::bail!(
                "{} holds the topic catalogue of an earlier single-node Strait; start this data \
                 dir once as a single node (no process.roles) to move it into the metadata log \
                 before it joins a cluster",
                legacy.path.display()
            );
        }
        return Ok(());
    }
    lead(node).await?;
    let image = node.image();
    let (topics, next_producer_id) = match &legacy {
        Some(l) => (l.topics.values().cloned().collect(), l.next_producer_id),
        None if image.brokers.is_empty() && image.topics.is_empty() => (topics_on_disk(broker), 0),
        None => return Ok(()),
    };
    let topics: Vec<LegacyTopic> = topics
        .into_iter()
        .filter(|t| image.topic(&t.name).is_none())
        .collect();
    let next_producer_id = if next_producer_id > image.next_producer_id {
        next_producer_id
    } else {
        0
    };
    let records = adoption_records(node.node_id, &topics, next_producer_id, |topic, p| {
        broker
            .replicas
            .logs
            .get(&TopicPartition {
                topic: topic.to_string(),
                partition: p,
            })
            .and_then(|log| log.latest_epoch())
            .unwrap_or(0)
    });
    if !records.is_empty() {
        node.propose(records)
            .await
            .context("cannot write the adopted topics into the metadata log")?;
        for t in &topics {
            info!(topic = %t.name, partitions = t.partitions, "adopted topic into the metadata log");
        }
    }
    if let Some(legacy) = legacy {
        let adopted = legacy.path.with_file_name(ADOPTED_FILE);
        if let Err(e) = std::fs::rename(&legacy.path, &adopted) {
            // Harmless: the next start finds every topic in the image already.
            warn!(error = %e, file = %legacy.path.display(), "cannot rename the adopted catalogue");
        } else {
            info!(file = %adopted.display(), "topic catalogue moved into the metadata log");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_of_the_earlier_format_is_read_and_bad_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(legacy_catalogue(dir.path()).unwrap().is_none());
        let id = Uuid::new_v4();
        std::fs::write(
            dir.path().join(LEGACY_FILE),
            format!(
                r#"{{"version":1,"topics":{{"orders":{{"name":"orders","id":"{id}",
                "partitions":3,"replication_factor":1,"configs":{{"retention.ms":"1000"}}}}}},
                "next_producer_id":2000}}"#
            ),
        )
        .unwrap();
        let c = legacy_catalogue(dir.path()).unwrap().unwrap();
        assert_eq!(c.next_producer_id, 2000);
        assert_eq!(c.topics["orders"].id, id);
        assert_eq!(c.topics["orders"].partitions, 3);
        std::fs::write(dir.path().join(LEGACY_FILE), b"{not json").unwrap();
        assert!(legacy_catalogue(dir.path()).is_err());
        std::fs::write(
            dir.path().join(LEGACY_FILE),
            br#"{"version":7,"topics":{}}"#,
        )
        .unwrap();
        assert!(legacy_catalogue(dir.path()).is_err());
    }

    #[test]
    fn adopted_partitions_keep_their_ids_and_epochs_and_producer_ids_stay_reserved() {
        let topic = LegacyTopic {
            name: "orders".into(),
            id: Uuid::new_v4(),
            partitions: 2,
            configs: BTreeMap::from([("cleanup.policy".into(), "compact".into())]),
        };
        let records = adoption_records(1, std::slice::from_ref(&topic), 3000, |_, p| p + 4);
        assert_eq!(records.len(), 2);
        match &records[0] {
            MetadataRecord::CreateTopic {
                name,
                id,
                configs,
                partitions,
            } => {
                assert_eq!(
                    (name, id, configs),
                    (&topic.name, &topic.id, &topic.configs)
                );
                assert_eq!(partitions.len(), 2);
                assert_eq!(partitions[1].replicas, vec![1]);
                assert_eq!(partitions[1].isr, vec![1]);
                assert_eq!(partitions[1].leader, NO_LEADER);
                assert_eq!(partitions[1].leader_epoch, 5);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            records[1],
            MetadataRecord::AllocateProducerIds {
                broker: 1,
                first: 0,
                count: 3000
            }
        );
        assert!(adoption_records(1, &[], 0, |_, _| 0).is_empty());
    }
}
