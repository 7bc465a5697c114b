//! CreateTopics, DeleteTopics and CreatePartitions: validate each topic independently (one bad
//! topic never fails the others), apply through the broker's topic lifecycle, and answer per topic
//! with Kafka's error codes and messages.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use strait_config::describe_topic;
use uuid::Uuid;

use super::{RequestContext, str_bytes};
use crate::broker::{Broker, Topic};
use crate::errors::ApiError;

/// First DeleteTopics version that names topics through `topics` (name or id) instead of
/// `topic_names`.
const DELETE_BY_ID_VERSION: i16 = 6;

pub async fn create_topics(
    broker: &Arc<Broker>,
    req: CreateTopicsRequest,
    _ctx: &RequestContext,
) -> CreateTopicsResponse {
    if let Some(node) = broker.cluster() {
        return super::cluster_admin::create_topics(broker, node, req).await;
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.0.to_string()).or_default() += 1;
    }
    let validate_only = req.validate_only;
    let results = tokio::task::block_in_place(|| {
        req.topics
            .into_iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let outcome = if seen.get(&name).copied().unwrap_or(0) > 1 {
                    Err(ApiError::new(
                        ResponseError::InvalidRequest,
                        format!(
                            "Create topics request from client contains a duplicate topic: {name}"
                        ),
                    ))
                } else {
                    create_one(broker, &t, validate_only)
                };
                let result = CreatableTopicResult::default().with_name(t.name);
                match outcome {
                    Ok(topic) => result
                        .with_topic_id(if validate_only {
                            Uuid::nil()
                        } else {
                            topic.meta.id
                        })
                        .with_num_partitions(topic.meta.partitions)
                        .with_replication_factor(topic.meta.replication_factor)
                        .with_configs(Some(created_configs(broker, &topic.meta.configs))),
                    Err(e) => result
                        .with_error_code(e.code())
                        .with_error_message(Some(str_bytes(e.message)))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1),
                }
            })
            .collect()
    });
    CreateTopicsResponse::default().with_topics(results)
}

/// The config overrides a CreateTopics entry asks for (null values refused, as Kafka does).
pub(crate) fn requested_configs(t: &CreatableTopic) -> Result<BTreeMap<String, String>, ApiError> {
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        let Some(value) = &c.value else {
            return Err(ApiError::new(
                ResponseError::InvalidConfig,
                format!(
                    "Null value not supported for topic configs: {}",
                    c.name.as_str()
                ),
            ));
        };
        configs.insert(c.name.to_string(), value.to_string());
    }
    Ok(configs)
}

fn create_one(
    broker: &Broker,
    t: &CreatableTopic,
    validate_only: bool,
) -> Result<Arc<Topic>, ApiError> {
    let configs = requested_configs(t)?;
    let (partitions, replication_factor) = if t.assignments.is_empty() {
        (t.num_partitions, t.replication_factor)
    } else {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
            ));
        }
        let mut indexes: Vec<i32> = t.assignments.iter().map(|a| a.partition_index).collect();
        indexes.sort_unstable();
        if indexes.iter().enumerate().any(|(i, p)| *p != i as i32) {
            return Err(ApiError::new(
                ResponseError::InvalidReplicaAssignment,
                "Partitions should be a consecutive 0-based integer sequence",
            ));
        }
        let rf = t.assignments[0].broker_ids.len();
        for a in &t.assignments {
            check_assignment(
                broker,
                &a.broker_ids.iter().map(|b| b.0).collect::<Vec<_>>(),
            )?;
            if a.broker_ids.len() != rf {
                return Err(ApiError::new(
                    ResponseError::InvalidReplicaAssignment,
                    "All partitions should have the same number of replicas",
                ));
            }
        }
        (t.assignments.len() as i32, rf as i16)
    };
    broker.create_topic(
        t.name.0.as_str(),
        partitions,
        replication_factor,
        configs,
        validate_only,
    )
}

/// A single node can only place replicas on itself, once.
fn check_assignment(broker: &Broker, replicas: &[i32]) -> Result<(), ApiError> {
    let node = broker.config.node_id;
    if replicas.is_empty() {
        return Err(ApiError::new(
            ResponseError::InvalidReplicaAssignment,
            "Replica assignment must not be empty",
        ));
    }
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != replicas.len() {
        return Err(ApiError::new(
            ResponseError::InvalidReplicaAssignment,
            format!("Duplicate brokers not allowed in replica assignment: {replicas:?}"),
        ));
    }
    if let Some(unknown) = replicas.iter().find(|b| **b != node) {
        return Err(ApiError::new(
            ResponseError::InvalidReplicaAssignment,
            format!("Unknown broker {unknown} in replica assignment (live brokers: [{node}])"),
        ));
    }
    Ok(())
}

pub(crate) fn created_configs(
    broker: &Broker,
    overrides: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    describe_topic(overrides, &broker.config)
        .into_iter()
        .map(|e| {
            CreatableTopicConfigs::default()
                .with_name(str_bytes(e.name))
                .with_value(e.value.map(str_bytes))
                .with_read_only(e.read_only)
                .with_config_source(e.source as i8)
                .with_is_sensitive(e.sensitive)
        })
        .collect()
}

pub async fn delete_topics(
    broker: &Arc<Broker>,
    req: DeleteTopicsRequest,
    ctx: &RequestContext,
) -> DeleteTopicsResponse {
    if let Some(node) = broker.cluster() {
        return super::cluster_admin::delete_topics(broker, node, req, ctx).await;
    }
    let by_id_version = ctx.api_version >= DELETE_BY_ID_VERSION;
    let targets: Vec<(Option<TopicName>, Uuid)> = if by_id_version {
        req.topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    let responses = tokio::task::block_in_place(|| {
        targets
            .into_iter()
            .map(|(name, id)| {
                let resolved = match &name {
                    Some(n) => Ok(n.0.to_string()),
                    None => broker
                        .topic_by_id(&id)
                        .map(|t| t.meta.name.clone())
                        .ok_or_else(|| {
                            ApiError::new(
                                ResponseError::UnknownTopicId,
                                format!("Topic id {id} does not exist"),
                            )
                        }),
                };
                let result = resolved.and_then(|n| broker.delete_topic(&n));
                let mut r = DeletableTopicResult::default().with_name(name);
                match result {
                    Ok(meta) => {
                        if by_id_version {
                            r.topic_id = meta.id;
                            r.name = Some(TopicName(str_bytes(meta.name)));
                        }
                    }
                    Err(e) => {
                        r.topic_id = id;
                        r.error_code = e.code();
                        r.error_message = Some(str_bytes(e.message));
                    }
                }
                r
            })
            .collect()
    });
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    broker: &Arc<Broker>,
    req: CreatePartitionsRequest,
    _ctx: &RequestContext,
) -> CreatePartitionsResponse {
    if let Some(node) = broker.cluster() {
        return super::cluster_admin::create_partitions(node, req).await;
    }
    let validate_only = req.validate_only;
    let results = tokio::task::block_in_place(|| {
        req.topics
            .into_iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let outcome = (|| {
                    if let Some(assignments) = &t.assignments {
                        let current = broker.topic(&name).map(|t| t.meta.partitions).unwrap_or(0);
                        if assignments.len() as i64 != i64::from(t.count) - i64::from(current) {
                            return Err(ApiError::new(
                                ResponseError::InvalidReplicaAssignment,
                                format!(
                                    "Increasing the number of partitions by {} but {} assignments provided.",
                                    i64::from(t.count) - i64::from(current),
                                    assignments.len()
                                ),
                            ));
                        }
                        for a in assignments {
                            check_assignment(broker, &a.broker_ids.iter().map(|b| b.0).collect::<Vec<_>>())?;
                        }
                    }
                    broker.create_partitions(&name, t.count, validate_only)
                })();
                let r = CreatePartitionsTopicResult::default().with_name(t.name);
                match outcome {
                    Ok(()) => r,
                    Err(e) => r
                        .with_error_code(e.code())
                        .with_error_message(Some(str_bytes(e.message))),
                }
            })
            .collect()
    });
    CreatePartitionsResponse::default().with_results(results)
}
