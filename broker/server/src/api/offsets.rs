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

use super::authz::{Authz, op};
use super::{RequestContext, str_bytes};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::group::coordinator::no_error;
use crate::group::coordinator::{CommitPartition, CommitRequest, Committed, FetchedOffsets};
use crate::group::partitions;

/// How long an offset commit waits for the offsets partition's ISR (Kafka's
/// `offsets.commit.timeout.ms` default).
const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// First OffsetFetch version that asks for several groups at once (KIP-709).
const BATCHED_FETCH_VERSION: i16 = 8;

/// Appends a commit (OffsetCommit's, or TxnOffsetCommit's staged one) and answers it, and makes
/// it visible to OffsetFetch, only once it is on the offsets partition's ISR (Kafka's acks=all
/// append of the coordinator), so the group's next coordinator has it and nobody reads an offset
/// a failover would lose. One error per partition, in request order.
pub async fn commit_durably(broker: &Arc<Broker>, commit: CommitRequest) -> Vec<ResponseError> {
    let group = commit.group_id.clone();
    let b = broker.clone();
    let (mut errors, pending) = tokio::task::spawn_blocking(move || {
        b.groups
            .commit_pending(&b.offsets_log(), commit, Instant::now(), now_ms())
    })
    .await
    .unwrap_or_default();
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

pub async fn commit(
    broker: &Arc<Broker>,
    req: OffsetCommitRequest,
    ctx: &RequestContext,
) -> OffsetCommitResponse {
    let authz = Authz::new(broker, ctx);
    let group_allowed = authz.group(op::READ, req.group_id.0.as_str());
    // Per topic: its partitions and whether READ on it is allowed (else they are not committed).
    let mut layout: Vec<(TopicName, Vec<i32>, bool)> = Vec::new();
    let mut partitions = Vec::new();
    for t in req.topics {
        let allowed = authz.topic(op::READ, t.name.0.as_str());
        layout.push((
            t.name.clone(),
            t.partitions.iter().map(|p| p.partition_index).collect(),
            allowed,
        ));
        if !group_allowed || !allowed {
            continue;
        }
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
        producer: None,
        group_id: req.group_id.0.to_string(),
        generation: req.generation_id_or_member_epoch,
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|s| s.to_string()),
        partitions,
    };
    let group = commit.group_id.clone();
    let any_denied = layout.iter().any(|(_, _, allowed)| !allowed);
    let errors = match broker.check_coordinator(&group) {
        // Refused without touching the group (Kafka answers these without the coordinator).
        _ if !group_allowed || (any_denied && commit.partitions.is_empty()) => Vec::new(),
        Err(e) => vec![e.error; commit.partitions.len()],
        Ok(()) => commit_durably(broker, commit).await,
    };
    let mut errors = errors.into_iter();
    let topics = layout
        .into_iter()
        .map(|(name, parts, allowed)| {
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|p| {
                            let e = if !group_allowed {
                                ResponseError::GroupAuthorizationFailed
                            } else if !allowed {
                                ResponseError::TopicAuthorizationFailed
                            } else {
                                errors
                                    .next()
                                    .unwrap_or(ResponseError::CoordinatorNotAvailable)
                            };
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

/// Per topic, per partition: the committed offset if any and the partition's error code.
type AuthorizedOffsets = Vec<(String, Vec<(i32, Option<Committed>, i16)>)>;

/// The group's committed offsets of the topics the principal may DESCRIBE. As Kafka, explicitly
/// requested topics it may not describe answer TOPIC_AUTHORIZATION_FAILED per partition (the
/// error code beside each partition), and a request for all topics silently leaves them out.
fn authorized_offsets(
    broker: &Broker,
    authz: &Authz,
    group: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> AuthorizedOffsets {
    // KIP-447: a partition with a transactional commit still waiting for its marker is
    // UNSTABLE_OFFSET_COMMIT for a consumer that asks for stable offsets; it retries.
    let with_code = |fetched: FetchedOffsets, code: i16| {
        fetched
            .into_iter()
            .map(|(t, ps)| {
                let ps = ps
                    .into_iter()
                    .map(|(p, c)| {
                        if require_stable && broker.groups.has_unstable_offset(group, &t, p) {
                            (p, None, ResponseError::UnstableOffsetCommit.code())
                        } else {
                            (p, c, code)
                        }
                    })
                    .collect();
                (t, ps)
            })
            .collect::<Vec<_>>()
    };
    match wanted {
        None => {
            let mut all = broker.groups.fetch_offsets(group, None);
            all.retain(|(topic, _)| authz.topic(op::DESCRIBE, topic));
            with_code(all, 0)
        }
        Some(wanted) => {
            let (allowed, denied): (Vec<_>, Vec<_>) = wanted
                .into_iter()
                .partition(|(topic, _)| authz.topic(op::DESCRIBE, topic));
            let mut out = with_code(broker.groups.fetch_offsets(group, Some(allowed)), 0);
            let refused = ResponseError::TopicAuthorizationFailed.code();
            out.extend(
                denied.into_iter().map(|(topic, ps)| {
                    (topic, ps.into_iter().map(|p| (p, None, refused)).collect())
                }),
            );
            out
        }
    }
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
    let authz = Authz::new(broker, ctx);
    if ctx.api_version >= BATCHED_FETCH_VERSION {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                if !authz.group(op::DESCRIBE, g.group_id.0.as_str()) {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(ResponseError::GroupAuthorizationFailed.code());
                }
                if let Err(e) = broker.check_coordinator(g.group_id.0.as_str()) {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(e.code());
                }
                let wanted = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let topics = authorized_offsets(
                    broker,
                    &authz,
                    g.group_id.0.as_str(),
                    wanted,
                    req.require_stable,
                )
                .into_iter()
                .map(|(topic, parts)| {
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(str_bytes(topic)))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|(p, c, code)| {
                                    let (offset, epoch, metadata) = unpack(c);
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(p)
                                        .with_error_code(code)
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
    let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    if !authz.group(op::DESCRIBE, req.group_id.0.as_str()) {
        let refused = ResponseError::GroupAuthorizationFailed.code();
        // v0-v1 have no top-level error code: Kafka repeats it on every requested partition.
        let topics = (ctx.api_version < 2)
            .then_some(wanted)
            .flatten()
            .unwrap_or_default()
            .into_iter()
            .map(|(topic, ps)| {
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(str_bytes(topic)))
                    .with_partitions(
                        ps.into_iter()
                            .map(|p| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(-1)
                                    .with_committed_leader_epoch(-1)
                                    .with_metadata(Some(str_bytes(String::new())))
                                    .with_error_code(refused)
                            })
                            .collect(),
                    )
            })
            .collect();
        return OffsetFetchResponse::default()
            .with_error_code(refused)
            .with_topics(topics);
    }
    if let Err(e) = broker.check_coordinator(req.group_id.0.as_str()) {
        return OffsetFetchResponse::default().with_error_code(e.code());
    }
    let with_epoch = ctx.api_version >= 5;
    let topics = authorized_offsets(
        broker,
        &authz,
        req.group_id.0.as_str(),
        wanted,
        req.require_stable,
    )
    .into_iter()
    .map(|(topic, parts)| {
        OffsetFetchResponseTopic::default()
            .with_name(TopicName(str_bytes(topic)))
            .with_partitions(
                parts
                    .into_iter()
                    .map(|(p, c, code)| {
                        let (offset, epoch, metadata) = unpack(c);
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_error_code(code)
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
    ctx: &RequestContext,
) -> OffsetDeleteResponse {
    let authz = Authz::new(broker, ctx);
    if !authz.group(op::DELETE, req.group_id.0.as_str()) {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    // Per topic: its partitions and whether READ on it is allowed (else they are left alone).
    let layout: Vec<(TopicName, Vec<i32>, bool)> = req
        .topics
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
                authz.topic(op::READ, t.name.0.as_str()),
            )
        })
        .collect();
    let flat: Vec<(String, i32)> = layout
        .iter()
        .filter(|(_, _, allowed)| *allowed)
        .flat_map(|(t, ps, _)| ps.iter().map(move |p| (t.0.to_string(), *p)))
        .collect();
    let b = broker.clone();
    let group = req.group_id.0.to_string();
    if let Err(e) = broker.check_coordinator(&group) {
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
                .map(|(name, parts, allowed)| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(name)
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|p| {
                                    let code = if allowed {
                                        errors.next().map(|e| e.code()).unwrap_or(0)
                                    } else {
                                        ResponseError::TopicAuthorizationFailed.code()
                                    };
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect();
            OffsetDeleteResponse::default().with_topics(topics)
        }
    }
}
