//! CreateTopics, DeleteTopics, CreatePartitions, topic config changes and auto-creation: each
//! topic is checked here as far as this broker can (names, config values; one bad topic never
//! fails the others), the rest is forwarded to the active controller, and the answer is given
//! once the change has reached this broker's metadata image, so that a Metadata request that
//! follows sees it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

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
use strait_cluster::rpc::{ControllerRequest, ControllerResponse, NewTopic};
use strait_config::{describe_topic, validate_topic_configs};
use uuid::Uuid;

use super::authz::{Authz, op, topic_denied};
use super::{RequestContext, str_bytes};
use crate::broker::{Broker, validate_topic_name};
use crate::errors::ApiError;
use crate::node::ClusterNode;

/// How long an admin answer waits for its change to reach this broker's image.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(10);
/// First DeleteTopics version naming topics through `topics` (name or id) instead of
/// `topic_names`.
const DELETE_BY_ID_VERSION: i16 = 6;

pub async fn create_topics(
    broker: &Arc<Broker>,
    req: CreateTopicsRequest,
    ctx: &RequestContext,
) -> CreateTopicsResponse {
    let node = broker.node();
    let authz = Authz::new(broker, ctx);
    let may_create = authz.cluster(op::CREATE);
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
            // CREATE on the cluster, or on the topic (Kafka's rule).
            if !may_create && !authz.topic(op::CREATE, t.name.0.as_str()) {
                return Err(topic_denied(t.name.0.as_str()));
            }
            new_topic(broker, t)
        })
        .collect();
    // controller_mutation_rate (KIP-599): over the quota, v6+ clients are refused with
    // THROTTLING_QUOTA_EXCEEDED and retry after the throttle; older ones are let through.
    let over_quota = mutation_pending(broker, ctx, !req.validate_only && ctx.api_version >= 6);
    let checked: Vec<Result<NewTopic, ApiError>> = checked
        .into_iter()
        .map(|c| match (c, &over_quota) {
            (Ok(_), Some(e)) => Err(e.clone()),
            (c, _) => c,
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
                .map(|r| r.map_err(|e| ApiError::from(&e)))
                .collect(),
            Ok(other) => vec![Err(ApiError::unexpected_answer(&other)); to_send.len()],
            Err(e) => vec![Err(ApiError::from(&e)); to_send.len()],
        }
    }
    .into_iter();
    let mut throttle = crate::quota::Throttle::NONE;
    if !req.validate_only {
        let partitions: usize = answers.clone().flatten().map(|t| t.partitions.len()).sum();
        if partitions > 0 {
            throttle = ctx.record_quota(
                broker,
                crate::quota::Kind::ControllerMutation,
                partitions as f64,
            );
        }
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
                    .with_configs(Some(created_configs(broker, &sent.configs))),
                Err(e) => result
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.message)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            }
        })
        .collect();
    let throttle_ms = over_quota
        .as_ref()
        .map_or(throttle.ms(), |_| mutation_wait(broker, ctx).ms());
    CreateTopicsResponse::default()
        .with_throttle_time_ms(throttle_ms)
        .with_topics(results)
}

/// The refusal of a topic mutation while the client is over its `controller_mutation_rate`,
/// when the request's version lets Kafka refuse (`strict`).
fn mutation_pending(broker: &Broker, ctx: &RequestContext, strict: bool) -> Option<ApiError> {
    if !strict || !mutation_wait(broker, ctx).is_throttled() {
        return None;
    }
    Some(ApiError::new(
        ResponseError::ThrottlingQuotaExceeded,
        "The throttling quota has been exceeded.",
    ))
}

fn mutation_wait(broker: &Broker, ctx: &RequestContext) -> crate::quota::Throttle {
    let image = broker.node().image();
    broker.quotas.pending(
        &image,
        crate::quota::Kind::ControllerMutation,
        ctx.quota_user(),
        ctx.quota_client(),
    )
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

fn new_topic(
    broker: &Broker,
    t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> Result<NewTopic, ApiError> {
    let name = t.name.0.to_string();
    validate_topic_name(&name)?;
    let configs = requested_configs(t)?;
    validate_topic_configs(&configs)?;
    broker.validate_tiered(None, &configs)?;
    warn_deprecated(&name, &configs);
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

pub async fn delete_topics(
    broker: &Arc<Broker>,
    req: DeleteTopicsRequest,
    ctx: &RequestContext,
) -> DeleteTopicsResponse {
    let node = broker.node();
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
    let authz = Authz::new(broker, ctx);
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
        let resolved = resolved.and_then(|n| {
            if authz.topic(op::DELETE, &n) {
                Ok(n)
            } else {
                Err(topic_denied(&n))
            }
        });
        let over_quota = mutation_pending(broker, ctx, ctx.api_version >= 5);
        let resolved = match over_quota {
            Some(e) => Err(e),
            None => resolved,
        };
        let partitions = resolved
            .as_ref()
            .ok()
            .and_then(|n| image.topic(n))
            .map_or(0, |x| x.partitions.len());
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
                    .map_err(|e| ApiError::from(&e)),
                Ok(other) => Err(ApiError::unexpected_answer(&other)),
                Err(e) => Err(ApiError::from(&e)),
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
                ctx.record_quota(
                    broker,
                    crate::quota::Kind::ControllerMutation,
                    partitions as f64,
                );
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
    broker: &Arc<Broker>,
    req: CreatePartitionsRequest,
    ctx: &RequestContext,
) -> CreatePartitionsResponse {
    let node = broker.node();
    let mut results = Vec::with_capacity(req.topics.len());
    let authz = Authz::new(broker, ctx);
    for t in req.topics {
        let name = t.name.0.to_string();
        if !authz.topic(op::ALTER, &name) {
            let e = topic_denied(&name);
            results.push(
                CreatePartitionsTopicResult::default()
                    .with_name(t.name)
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.message))),
            );
            continue;
        }
        let assignments = t.assignments.as_ref().map(|a| {
            a.iter()
                .map(|x| x.broker_ids.iter().map(|b| b.0).collect())
                .collect()
        });
        let before = node.image().topic(&name).map_or(0, |x| x.partitions.len());
        let over_quota = mutation_pending(broker, ctx, !req.validate_only && ctx.api_version >= 3);
        let outcome = if let Some(e) = over_quota {
            Err(e)
        } else if t.count > crate::broker::MAX_PARTITIONS_PER_TOPIC {
            Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!(
                    "Number of partitions must be at most {}, got {}.",
                    crate::broker::MAX_PARTITIONS_PER_TOPIC,
                    t.count
                ),
            ))
        } else {
            match node
                .call(ControllerRequest::CreatePartitions {
                    topic: name.clone(),
                    count: t.count,
                    assignments,
                    validate_only: req.validate_only,
                })
                .await
            {
                Ok(ControllerResponse::Done) => Ok(()),
                Ok(other) => Err(ApiError::unexpected_answer(&other)),
                Err(e) => Err(ApiError::from(&e)),
            }
        };
        if outcome.is_ok() && !req.validate_only {
            let count = t.count as usize;
            node.wait_for_image(PROPAGATION_TIMEOUT, |image| {
                image
                    .topic(&name)
                    .is_some_and(|x| x.partitions.len() >= count)
            })
            .await;
            let added = count.saturating_sub(before);
            ctx.record_quota(broker, crate::quota::Kind::ControllerMutation, added as f64);
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

/// Kafka 3.x still accepts its deprecated topic configs; so does Strait, saying they do nothing.
fn warn_deprecated(topic: &str, configs: &BTreeMap<String, String>) {
    for key in configs.keys() {
        if let Some(why) = strait_config::deprecation(key) {
            tracing::warn!(topic, key = %key, "deprecated topic config accepted with no effect: {why}");
        }
    }
}

/// Replaces a topic's config overrides through the controller (AlterConfigs and
/// IncrementalAlterConfigs in KRaft mode), then waits until the image has them.
pub async fn set_topic_configs(
    node: &ClusterNode,
    topic: &str,
    configs: BTreeMap<String, String>,
) -> Result<(), ApiError> {
    validate_topic_configs(&configs)?;
    warn_deprecated(topic, &configs);
    match node
        .call(ControllerRequest::SetTopicConfigs {
            topic: topic.to_string(),
            configs: configs.clone(),
        })
        .await
    {
        Ok(ControllerResponse::Done) => {}
        Ok(other) => return Err(ApiError::unexpected_answer(&other)),
        Err(e) => return Err(ApiError::from(&e)),
    }
    node.wait_for_image(PROPAGATION_TIMEOUT, |image| {
        image.topic(topic).is_some_and(|t| t.configs == configs)
    })
    .await;
    Ok(())
}
