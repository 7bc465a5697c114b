//! End offsets (high watermarks) of a topic's partitions: ListOffsets with timestamp `-1`, sent
//! to each partition's leader as Metadata names it (a follower answers NOT_LEADER_OR_FOLLOWER).

use std::collections::BTreeMap;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, MetadataRequest};

use super::{AdminError, UNKNOWN_TOPIC_OR_PARTITION, WireAdmin, topic_name};

/// Metadata version (as the topics module sends).
const METADATA_V: i16 = 12;
/// ListOffsets versions this client sends: v1 answers one offset per partition; v7 is Kafka
/// 3.0's.
const LIST_OFFSETS_VERSIONS: std::ops::RangeInclusive<i16> = 1..=7;
/// ListOffsets' timestamp asking for the high watermark.
const LATEST: i64 = -1;
/// Kafka's `LEADER_NOT_AVAILABLE`.
const LEADER_NOT_AVAILABLE: i16 = 5;

/// The high watermark of each of `topic`'s partitions; empty when the topic does not exist.
pub(super) async fn end_offsets(
    admin: &WireAdmin,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, AdminError> {
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic))),
        ]));
    let metadata = admin
        .request(METADATA_V, &request, topic, &[UNKNOWN_TOPIC_OR_PARTITION])
        .await?;
    let Some(described) = metadata
        .topics
        .iter()
        .find(|t| t.error_code != UNKNOWN_TOPIC_OR_PARTITION)
    else {
        return Ok(BTreeMap::new());
    };
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in &described.partitions {
        if p.leader_id.0 < 0 {
            return Err(AdminError::Kafka {
                operation: "Metadata".to_owned(),
                resource: format!("{topic}-{}", p.partition_index),
                code: LEADER_NOT_AVAILABLE,
                message: Some("the partition has no leader".to_owned()),
            });
        }
        by_leader
            .entry(p.leader_id.0)
            .or_default()
            .push(p.partition_index);
    }
    let mut out = BTreeMap::new();
    for (leader, partitions) in by_leader {
        let mut connection = admin
            .client
            .connect_node(leader)
            .await
            .map_err(|e| AdminError::from_client(e, topic))?;
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|&p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(p)
                                    .with_current_leader_epoch(-1)
                                    .with_timestamp(LATEST)
                            })
                            .collect(),
                    ),
            ]);
        let response = connection
            .call_negotiated(LIST_OFFSETS_VERSIONS, &request)
            .await
            .map_err(|e| AdminError::from_client(e, topic))?;
        for p in response.topics.iter().flat_map(|t| &t.partitions) {
            if p.error_code != 0 {
                return Err(AdminError::Kafka {
                    operation: "ListOffsets".to_owned(),
                    resource: format!("{topic}-{}", p.partition_index),
                    code: p.error_code,
                    message: None,
                });
            }
            out.insert(p.partition_index, p.offset);
        }
    }
    Ok(out)
}
