//! Admin requests in KRaft mode: any broker accepts them, checks what it can check locally (names,
//! config values), and forwards the rest to the active controller as a controller RPC; the answer
//! is given once the change has reached this broker's metadata image, so a Metadata request that
//! follows sees it. Also the cluster-only APIs: ElectLeaders, AlterPartitionReassignments and
//! ListPartitionReassignments.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, ElectLeadersRequest, ElectLeadersResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use strait_cluster::rpc::{ControllerError, ControllerRequest, ControllerResponse, NewTopic};
use strait_config::validate_topic_configs;
use uuid::Uuid;

use super::{RequestContext, str_bytes};
use crate::broker::{Broker, validate_topic_name};
use crate::cluster::ClusterNode;
use crate::errors::ApiError;

/// How long an admin answer waits for its change to reach this broker's image.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(10);
/// First DeleteTopics version naming topics through `topics`.
const DELETE_BY_ID_VERSION: i16 = 6;
/// ElectLeaders `election_type`: 0 preferred, 1 unclean.
const PREFERRED: i8 = 0;

fn controller_error(e: &ControllerError) -> ApiError {
    let code = ResponseError::try_from_code(e.code()).unwrap_or(ResponseError::UnknownServerError);
    ApiError::new(code, e.to_string())
}

fn unexpected(answer: &ControllerResponse) -> ApiError {
    ApiError::new(
        ResponseError::UnknownServerError,
        format!("unexpected controller answer {answer:?}"),
    )
}

/// Topics named in Metadata requests that do not exist yet, created with the broker defaults.
pub async fn auto_create(broker: &Broker, node: &ClusterNode, names: &[String]) {
    let topics = names
        .iter()
        .map(|name| NewTopic {
            name: name.clone(),
            partitions: broker.config.num_partitions,
            replication_factor: broker.config.default_replication_factor,
            assignments: None,
            configs: BTreeMap::new(),
        })
        .collect();
    let answer = node
        .call(ControllerRequest::CreateTopics {
            topics,
            validate_only: false,
        })
        .await;
    if let Ok(ControllerResponse::CreateTopics(results)) = answer {
        let created: Vec<Uuid> = results.iter().flatten().map(|t| t.id).collect();
        node.wait_for_image(PROPAGATION_TIMEOUT, |image| {
            created.iter().all(|id| image.topic_by_id(id).is_some())
        })
        .await;
    }
}

fn new_topic(
    broker: &Broker,
    t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> Result<NewTopic, ApiError> {
    let name = t.name.0.to_string();
    validate_topic_name(&name)?;
    let configs = super::admin_topics::requested_configs(t)?;
    validate_topic_configs(&configs)?;
    let assignments = if t.assignments.is_empty() {
        None
    } else {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
            ));
        }
        let mut sorted: Vec<_> = t.assignments.iter().collect();
        sorted.sort_by_key(|a| a.partition_index);
        if sorted
            .iter()
            .enumerate()
            .any(|(i, a)| a.partition_index != i as i32)
        {
            return Err(ApiError::new(
                ResponseError::InvalidReplicaAssignment,
                "Partitions should be a consecutive 0-based integer sequence",
            ));
        }
        Some(
            sorted
                .iter()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect(),
        )
    };
    let partitions = match t.num_partitions {
        -1 => broker.config.num_partitions,
        n => n,
    };
    let replication_factor = match t.replication_factor {
        -1 => broker.config.default_replication_factor,
        n => n,
    };
    if assignments.is_none() && !(1..=crate::broker::MAX_PARTITIONS_PER_TOPIC).contains(&partitions)
    {
        return Err(ApiError::new(
            ResponseError::InvalidPartitions,
            format!(
                "Number of partitions must be between 1 and {}, got {partitions}.",
                crate::broker::MAX_PARTITIONS_PER_TOPIC
            ),
        ));
    }
    Ok(NewTopic {
        name,
        partitions,
        replication_factor,
        assignments,
        configs,
    })
}

pub async fn create_topics(
    broker: &Arc<Broker>,
    node: &ClusterNode,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.0.to_string()).or_default() += 1;
    }
    // Local checks first; only the topics that pass go to the controller.
    let checked: Vec<Result<NewTopic, ApiError>> = req
        .topics
        .iter()
        .map(|t| {
            if seen.get(t.name.0.as_str()).copied().unwrap_or(0) > 1 {
                return Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    format!(
                        "Create topics request from client contains a duplicate topic: {}",
                        t.name.0.as_str()
                    ),
                ));
            }
            new_topic(broker, t)
        })
        .collect();
    let to_send: Vec<NewTopic> = checked
        .iter()
        .filter_map(|c| c.as_ref().ok().cloned())
        .collect();
    let mut answers = if to_send.is_empty() {
        Vec::new()
    } else {
        match node
            .call(ControllerRequest::CreateTopics {
                topics: to_send.clone(),
                validate_only: req.validate_only,
            })
            .await
        {
            Ok(ControllerResponse::CreateTopics(results)) => results
                .into_iter()
                .map(|r| r.map_err(|e| controller_error(&e)))
                .collect(),
            Ok(other) => vec![Err(unexpected(&other)); to_send.len()],
            Err(e) => vec![Err(controller_error(&e)); to_send.len()],
        }
    }
    .into_iter();
    if !req.validate_only {
        let created: Vec<Uuid> = answers.clone().flatten().map(|t| t.id).collect();
        node.wait_for_image(PROPAGATION_TIMEOUT, |image| {
            created.iter().all(|id| image.topic_by_id(id).is_some())
        })
        .await;
    }
    let results = req
        .topics
        .into_iter()
        .zip(checked)
        .map(|(t, local)| {
            let outcome = local.and_then(|sent| {
                answers
                    .next()
                    .unwrap_or_else(|| {
                        Err(ApiError::new(
                            ResponseError::UnknownServerError,
                            "no answer",
                        ))
                    })
                    .map(|created| (sent, created))
            });
            let result = CreatableTopicResult::default().with_name(t.name);
            match outcome {
                Ok((sent, created)) => result
                    .with_topic_id(if req.validate_only {
                        Uuid::nil()
                    } else {
                        created.id
                    })
                    .with_num_partitions(created.partitions.len() as i32)
                    .with_replication_factor(
                        created
                            .partitions
                            .first()
                            .map_or(sent.replication_factor, |p| p.replicas.len() as i16),
                    )
                    .with_configs(Some(super::admin_topics::created_configs(
                        broker,
                        &sent.configs,
                    ))),
                Err(e) => result
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.message)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

pub async fn delete_topics(
    broker: &Arc<Broker>,
    node: &ClusterNode,
    req: DeleteTopicsRequest,
    ctx: &RequestContext,
) -> DeleteTopicsResponse {
    let by_id_version = ctx.api_version >= DELETE_BY_ID_VERSION;
    let image = node.image();
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
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let resolved: Result<String, ApiError> = if !broker.config.delete_topic_enable {
            Err(ApiError::new(
                ResponseError::TopicDeletionDisabled,
                "Topic deletion is disabled (delete.topic.enable=false).",
            ))
        } else {
            match &name {
                Some(n) => Ok(n.0.to_string()),
                None => image
                    .topic_by_id(&id)
                    .map(|t| t.name.clone())
                    .ok_or_else(|| {
                        ApiError::new(
                            ResponseError::UnknownTopicId,
                            format!("Topic id {id} does not exist"),
                        )
                    }),
            }
        };
        let outcome = match resolved {
            Ok(n) => match node
                .call(ControllerRequest::DeleteTopics {
                    names: vec![n.clone()],
                })
                .await
            {
                Ok(ControllerResponse::DeleteTopics(mut r)) if r.len() == 1 => r
                    .remove(0)
                    .map(|id| (n, id))
                    .map_err(|e| controller_error(&e)),
                Ok(other) => Err(unexpected(&other)),
                Err(e) => Err(controller_error(&e)),
            },
            Err(e) => Err(e),
        };
        let mut r = DeletableTopicResult::default().with_name(name);
        match outcome {
            Ok((deleted, deleted_id)) => {
                node.wait_for_image(PROPAGATION_TIMEOUT, |image| {
                    image.topic_by_id(&deleted_id).is_none()
                })
                .await;
                if by_id_version {
                    r.topic_id = deleted_id;
                    r.name = Some(TopicName(str_bytes(deleted)));
                }
            }
            Err(e) => {
                r.topic_id = id;
                r.error_code = e.code();
                r.error_message = Some(str_bytes(e.message));
            }
        }
        responses.push(r);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    node: &ClusterNode,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let assignments = t.assignments.as_ref().map(|a| {
            a.iter()
                .map(|x| x.broker_ids.iter().map(|b| b.0).collect())
                .collect()
        });
        let outcome = match node
            .call(ControllerRequest::CreatePartitions {
                topic: name.clone(),
                count: t.count,
                assignments,
                validate_only: req.validate_only,
            })
            .await
        {
            Ok(ControllerResponse::Done) => Ok(()),
            Ok(other) => Err(unexpected(&other)),
            Err(e) => Err(controller_error(&e)),
        };
        if outcome.is_ok() && !req.validate_only {
            let count = t.count as usize;
            node.wait_for_image(PROPAGATION_TIMEOUT, |image| {
                image
                    .topic(&name)
                    .is_some_and(|x| x.partitions.len() >= count)
            })
            .await;
        }
        let r = CreatePartitionsTopicResult::default().with_name(t.name);
        results.push(match outcome {
            Ok(()) => r,
            Err(e) => r
                .with_error_code(e.code())
                .with_error_message(Some(str_bytes(e.message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// Replaces a topic's config overrides through the controller (AlterConfigs and
/// IncrementalAlterConfigs in KRaft mode), then waits until the image has them.
pub async fn set_topic_configs(
    node: &ClusterNode,
    topic: &str,
    configs: BTreeMap<String, String>,
) -> Result<(), ApiError> {
    validate_topic_configs(&configs)?;
    match node
        .call(ControllerRequest::SetTopicConfigs {
            topic: topic.to_string(),
            configs: configs.clone(),
        })
        .await
    {
        Ok(ControllerResponse::Done) => {}
        Ok(other) => return Err(unexpected(&other)),
        Err(e) => return Err(controller_error(&e)),
    }
    node.wait_for_image(PROPAGATION_TIMEOUT, |image| {
        image.topic(topic).is_some_and(|t| t.configs == configs)
    })
    .await;
    Ok(())
}

/// ElectLeaders (KIP-460): preferred or unclean elections through the controller. A single
/// node leads all its partitions already: ELECTION_NOT_NEEDED.
pub async fn elect_leaders(
    broker: &Arc<Broker>,
    req: ElectLeadersRequest,
    ctx: &RequestContext,
) -> ElectLeadersResponse {
    let partitions = req.topic_partitions.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect::<Vec<_>>()
    });
    // v0 has no top-level error: a whole-request failure is reported on every partition.
    let failed = |code: i16, message: String| {
        let results = partitions
            .iter()
            .flatten()
            .map(|(t, p)| {
                let e = ControllerError::InvalidRequest(message.clone());
                ((t.clone(), *p), Err::<(), _>((code, e.to_string())))
            })
            .collect::<Vec<_>>();
        let mut resp = election_response(results);
        if ctx.api_version >= 1 {
            resp.error_code = code;
        }
        resp
    };
    let Some(node) = broker.cluster() else {
        let results = partitions
            .iter()
            .flatten()
            .map(|(t, p)| {
                let exists = broker.topic(t).is_some_and(|x| x.partition(*p).is_some());
                let e = if exists {
                    ControllerError::ElectionNotNeeded
                } else {
                    ControllerError::UnknownTopicOrPartition(format!("{t}-{p}"))
                };
                ((t.clone(), *p), Err((e.code(), e.to_string())))
            })
            .collect();
        return election_response(results);
    };
    let answer = node
        .call(ControllerRequest::ElectLeaders {
            preferred: req.election_type == PREFERRED,
            partitions: partitions.clone(),
        })
        .await;
    match answer {
        Ok(ControllerResponse::ElectLeaders(results)) => election_response(
            results
                .into_iter()
                .map(|(tp, r)| (tp, r.map_err(|e| (e.code(), e.to_string()))))
                .collect(),
        ),
        Ok(other) => {
            let e = unexpected(&other);
            failed(e.code(), e.message)
        }
        Err(e) => failed(e.code(), e.to_string()),
    }
}

type ElectionResult = ((String, i32), Result<(), (i16, String)>);

fn election_response(results: Vec<ElectionResult>) -> ElectLeadersResponse {
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for ((topic, partition), result) in results {
        let r = PartitionResult::default().with_partition_id(partition);
        by_topic.entry(topic).or_default().push(match result {
            Ok(()) => r,
            Err((code, message)) => r
                .with_error_code(code)
                .with_error_message(Some(str_bytes(message))),
        });
    }
    ElectLeadersResponse::default().with_replica_election_results(
        by_topic
            .into_iter()
            .map(|(topic, partition_result)| {
                ReplicaElectionResult::default()
                    .with_topic(TopicName(str_bytes(topic)))
                    .with_partition_result(partition_result)
            })
            .collect(),
    )
}

pub async fn alter_reassignments(
    broker: &Arc<Broker>,
    req: AlterPartitionReassignmentsRequest,
    _ctx: &RequestContext,
) -> AlterPartitionReassignmentsResponse {
    let Some(node) = broker.cluster() else {
        return AlterPartitionReassignmentsResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code());
    };
    let changes: Vec<(String, i32, Option<Vec<i32>>)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
                )
            })
        })
        .collect();
    let results = match node
        .call(ControllerRequest::AlterReassignments { changes })
        .await
    {
        Ok(ControllerResponse::AlterReassignments(results)) => results,
        Ok(other) => {
            return AlterPartitionReassignmentsResponse::default()
                .with_error_code(unexpected(&other).code());
        }
        Err(e) => {
            return AlterPartitionReassignmentsResponse::default()
                .with_error_code(e.code())
                .with_error_message(Some(str_bytes(e.to_string())));
        }
    };
    let mut by_topic: BTreeMap<String, Vec<ReassignablePartitionResponse>> = BTreeMap::new();
    for ((topic, partition), result) in results {
        let r = ReassignablePartitionResponse::default().with_partition_index(partition);
        by_topic.entry(topic).or_default().push(match result {
            Ok(()) => r,
            Err(e) => r
                .with_error_code(e.code())
                .with_error_message(Some(str_bytes(e.to_string()))),
        });
    }
    AlterPartitionReassignmentsResponse::default().with_responses(
        by_topic
            .into_iter()
            .map(|(name, partitions)| {
                ReassignableTopicResponse::default()
                    .with_name(TopicName(str_bytes(name)))
                    .with_partitions(partitions)
            })
            .collect(),
    )
}

pub async fn list_reassignments(
    broker: &Arc<Broker>,
    req: ListPartitionReassignmentsRequest,
    _ctx: &RequestContext,
) -> ListPartitionReassignmentsResponse {
    let Some(node) = broker.cluster() else {
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code());
    };
    let partitions = req.topics.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let name = t.name.0.to_string();
                t.partition_indexes
                    .into_iter()
                    .map(move |p| (name.clone(), p))
            })
            .collect::<Vec<_>>()
    });
    let ongoing = match node
        .call(ControllerRequest::ListReassignments { partitions })
        .await
    {
        Ok(ControllerResponse::Reassignments(list)) => list,
        Ok(other) => {
            return ListPartitionReassignmentsResponse::default()
                .with_error_code(unexpected(&other).code());
        }
        Err(e) => {
            return ListPartitionReassignmentsResponse::default()
                .with_error_code(e.code())
                .with_error_message(Some(str_bytes(e.to_string())));
        }
    };
    let ids = |v: Vec<i32>| v.into_iter().map(BrokerId).collect::<Vec<_>>();
    let mut by_topic: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for (topic, partition, replicas, adding, removing) in ongoing {
        by_topic.entry(topic).or_default().push(
            OngoingPartitionReassignment::default()
                .with_partition_index(partition)
                .with_replicas(ids(replicas))
                .with_adding_replicas(ids(adding))
                .with_removing_replicas(ids(removing)),
        );
    }
    ListPartitionReassignmentsResponse::default().with_topics(
        by_topic
            .into_iter()
            .map(|(name, partitions)| {
                OngoingTopicReassignment::default()
                    .with_name(TopicName(str_bytes(name)))
                    .with_partitions(partitions)
            })
            .collect(),
    )
}
