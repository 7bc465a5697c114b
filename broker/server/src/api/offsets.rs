//! OffsetCommit, OffsetFetch and OffsetDelete: committed consumer positions, stored by the group
//! coordinator in `__consumer_offsets`. The committed metadata string and leader epoch round-trip
//! exactly.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::Decodable;

use super::{RequestContext, str_bytes};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::group::coordinator::no_error;
use crate::group::coordinator::{CommitPartition, CommitRequest, Committed};
use crate::group::partitions;

/// How long an offset commit waits for the offsets partition's ISR (Kafka's
/// `offsets.commit.timeout.ms` default).
const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// First OffsetFetch version that asks for several groups at once (KIP-709).
const BATCHED_FETCH_VERSION: i16 = 8;

pub async fn commit(
    broker: &Arc<Broker>,
    req: OffsetCommitRequest,
    _ctx: &RequestContext,
) -> OffsetCommitResponse {
    let mut layout: Vec<(TopicName, Vec<i32>)> = Vec::new();
    let mut partitions = Vec::new();
    for t in req.topics {
        layout.push((
            t.name.clone(),
            t.partitions.iter().map(|p| p.partition_index).collect(),
        ));
        for p in t.partitions {
            partitions.push(CommitPartition {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.map(|m| m.to_string()),
            });
        }
    }
    let commit = CommitRequest {
        group_id: req.group_id.0.to_string(),
        generation: req.generation_id_or_member_epoch,
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|s| s.to_string()),
        partitions,
    };
    let group = commit.group_id.clone();
    let errors = match partitions::check(&broker.replicas, &broker.coordinated, &group) {
        Err(e) => vec![e.error; commit.partitions.len()],
        Ok(()) => {
            let b = broker.clone();
            let (mut errors, pending) = tokio::task::spawn_blocking(move || {
                b.groups
                    .commit_pending(&b.offsets_log(), commit, Instant::now(), now_ms())
            })
            .await
            .unwrap_or_default();
            // Answered, and visible to OffsetFetch, only once the commit is on the offsets
            // partition's ISR (Kafka's acks=all append of the coordinator), so the group's next
            // coordinator has it and nobody reads an offset a failover would lose.
            if let Some(pending) = pending {
                match partitions::wait_durable(&broker.replicas, &group, COMMIT_TIMEOUT).await {
                    Ok(()) => broker.groups.apply_commit(pending),
                    Err(e) => {
                        for slot in errors.iter_mut().filter(|e| **e == no_error()) {
                            *slot = e.error;
                        }
                    }
                }
            }
            errors
        }
    };
    let mut errors = errors.into_iter();
    let topics = layout
        .into_iter()
        .map(|(name, parts)| {
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|p| {
                            let e = errors
                                .next()
                                .unwrap_or(ResponseError::CoordinatorNotAvailable);
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(e.code())
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

fn unpack(c: Option<Committed>) -> (i64, i32, String) {
    match c {
        Some(c) => (c.offset, c.leader_epoch, c.metadata),
        // Kafka's "no offset": -1, no epoch, empty metadata.
        None => (-1, -1, String::new()),
    }
}

pub async fn fetch(
    broker: &Arc<Broker>,
    req: OffsetFetchRequest,
    ctx: &RequestContext,
) -> OffsetFetchResponse {
    if ctx.api_version >= BATCHED_FETCH_VERSION {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                if let Err(e) =
                    partitions::check(&broker.replicas, &broker.coordinated, g.group_id.0.as_str())
                {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(e.code());
                }
                let wanted = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let topics = broker
                    .groups
                    .fetch_offsets(g.group_id.0.as_str(), wanted)
                    .into_iter()
                    .map(|(topic, parts)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(str_bytes(topic)))
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|(p, c)| {
                                        let (offset, epoch, metadata) = unpack(c);
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(offset)
                                            .with_committed_leader_epoch(epoch)
                                            .with_metadata(Some(str_bytes(metadata)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    if let Err(e) = partitions::check(
        &broker.replicas,
        &broker.coordinated,
        req.group_id.0.as_str(),
    ) {
        return OffsetFetchResponse::default().with_error_code(e.code());
    }
    let with_epoch = ctx.api_version >= 5;
    let topics = broker
        .groups
        .fetch_offsets(req.group_id.0.as_str(), wanted)
        .into_iter()
        .map(|(topic, parts)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str_bytes(topic)))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, c)| {
                            let (offset, epoch, metadata) = unpack(c);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(if with_epoch { epoch } else { -1 })
                                .with_metadata(Some(str_bytes(metadata)))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

/// Topics named by the members' consumer-protocol subscriptions (undecodable ones name none).
fn subscribed_topics(subscriptions: &[Bytes]) -> HashSet<String> {
    let mut topics = HashSet::new();
    for raw in subscriptions {
        if raw.len() < 2 {
            continue;
        }
        let version = i16::from_be_bytes([raw[0], raw[1]]);
        let mut body = raw.slice(2..);
        if let Ok(sub) = ConsumerProtocolSubscription::decode(&mut body, version) {
            topics.extend(sub.topics.iter().map(|t| t.to_string()));
        }
    }
    topics
}

pub async fn delete(
    broker: &Arc<Broker>,
    req: OffsetDeleteRequest,
    _ctx: &RequestContext,
) -> OffsetDeleteResponse {
    let layout: Vec<(TopicName, Vec<i32>)> = req
        .topics
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let flat: Vec<(String, i32)> = layout
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (t.0.to_string(), *p)))
        .collect();
    let b = broker.clone();
    let group = req.group_id.0.to_string();
    if let Err(e) = partitions::check(&broker.replicas, &broker.coordinated, &group) {
        return OffsetDeleteResponse::default().with_error_code(e.code());
    }
    let result = tokio::task::spawn_blocking(move || {
        b.groups
            .delete_offsets(&b.offsets_log(), &group, &flat, subscribed_topics)
    })
    .await
    .unwrap_or(Err(ResponseError::CoordinatorNotAvailable));
    match result {
        Err(e) => OffsetDeleteResponse::default().with_error_code(e.code()),
        Ok(errors) => {
            let mut errors = errors.into_iter();
            let topics = layout
                .into_iter()
                .map(|(name, parts)| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(name)
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|p| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(
                                            errors.next().map(|e| e.code()).unwrap_or(0),
                                        )
                                })
                                .collect(),
                        )
                })
                .collect();
            OffsetDeleteResponse::default().with_topics(topics)
        }
    }
}
