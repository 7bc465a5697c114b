//! Metadata: brokers (this node, on the listener the client used), topics with partitions,
//! leaders, replicas and ISR; auto-creates requested topics when `auto.create.topics.enable` and
//! the client allow it.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use tracing::debug;
use uuid::Uuid;

use super::{RequestContext, str_bytes};
use crate::broker::{Broker, Topic, validate_topic_name};
use crate::cluster::ClusterNode;
use strait_cluster::image::{Image, NO_LEADER, TopicImage};

/// "Authorized operations" bitfield value meaning "not requested" in Kafka's protocol.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub async fn handle(
    broker: &Arc<Broker>,
    req: MetadataRequest,
    ctx: &RequestContext,
) -> MetadataResponse {
    let version = ctx.api_version;
    if let Some(node) = broker.cluster() {
        return cluster_metadata(broker, node, req, ctx).await;
    }
    // Before v4 the request has no flag and auto-creation is implied.
    let allow_create =
        (version < 4 || req.allow_auto_topic_creation) && broker.config.auto_create_topics_enable;
    let topics = match req.topics {
        None => broker
            .all_topics()
            .iter()
            .map(|t| topic_response(t, broker.config.node_id))
            .collect(),
        // v0 has no null: an empty list means all topics.
        Some(list) if list.is_empty() && version == 0 => broker
            .all_topics()
            .iter()
            .map(|t| topic_response(t, broker.config.node_id))
            .collect(),
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for requested in list {
                out.push(match requested.name {
                    Some(name) => by_name(broker, name.0.as_str(), allow_create).await,
                    None => by_id(broker, requested.topic_id),
                });
            }
            out
        }
    };
    let mut resp = MetadataResponse::default()
        .with_brokers(brokers(broker, &ctx.listener))
        .with_cluster_id(Some(str_bytes(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(broker.config.node_id))
        .with_topics(topics);
    if (8..=10).contains(&version) {
        resp.cluster_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
    }
    resp
}

/// This node's endpoint on the listener the request came in on (Kafka's rule), falling back to
/// the first advertised listener.
pub fn brokers(broker: &Broker, listener: &str) -> Vec<MetadataResponseBroker> {
    let config = &broker.config;
    let endpoint = config
        .advertised_listeners
        .iter()
        .find(|l| l.name == listener)
        .or_else(|| config.advertised_listeners.first());
    endpoint
        .map(|l| {
            vec![
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(config.node_id))
                    .with_host(str_bytes(l.host.clone()))
                    .with_port(l.port.into())
                    .with_rack(config.broker_rack.clone().map(str_bytes)),
            ]
        })
        .unwrap_or_default()
}

async fn by_name(broker: &Arc<Broker>, name: &str, allow_create: bool) -> MetadataResponseTopic {
    if let Some(topic) = broker.topic(name) {
        return topic_response(&topic, broker.config.node_id);
    }
    let error = |e: ResponseError| {
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(str_bytes(name))))
            .with_error_code(e.code())
            .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
    };
    if let Err(e) = validate_topic_name(name) {
        return error(e.error);
    }
    if !allow_create {
        return error(ResponseError::UnknownTopicOrPartition);
    }
    let b = broker.clone();
    let owned = name.to_string();
    let created = tokio::task::spawn_blocking(move || {
        b.create_topic(&owned, -1, -1, Default::default(), false)
    })
    .await;
    match created {
        Ok(Ok(topic)) => topic_response(&topic, broker.config.node_id),
        // Lost a race with another creator: answer with what exists now.
        Ok(Err(e)) if e.error == ResponseError::TopicAlreadyExists => match broker.topic(name) {
            Some(topic) => topic_response(&topic, broker.config.node_id),
            None => error(ResponseError::LeaderNotAvailable),
        },
        Ok(Err(e)) => {
            debug!(topic = name, error = %e, "auto-creation failed");
            error(e.error)
        }
        Err(_) => error(ResponseError::UnknownServerError),
    }
}

fn by_id(broker: &Broker, id: Uuid) -> MetadataResponseTopic {
    match broker.topic_by_id(&id) {
        Some(topic) => topic_response(&topic, broker.config.node_id),
        None => MetadataResponseTopic::default()
            .with_topic_id(id)
            .with_error_code(ResponseError::UnknownTopicId.code())
            .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED),
    }
}

/// Single-node cluster: this broker leads and is the only replica of every partition. The
/// cluster issue takes leaders, replicas and ISR from the metadata log instead.
pub fn topic_response(topic: &Topic, node_id: i32) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            let leader = BrokerId(node_id);
            MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(leader)
                .with_leader_epoch(p.log.latest_epoch().unwrap_or(0))
                .with_replica_nodes(vec![leader])
                .with_isr_nodes(vec![leader])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.meta.name.clone()))))
        .with_topic_id(topic.meta.id)
        .with_is_internal(topic.meta.name.starts_with("__"))
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

/// KRaft mode: everything from the metadata image — every live broker, and per partition the
/// leader, leader epoch, replicas, ISR and offline replicas. Auto-creation asks the controller.
async fn cluster_metadata(
    broker: &Arc<Broker>,
    node: &ClusterNode,
    req: MetadataRequest,
    ctx: &RequestContext,
) -> MetadataResponse {
    let version = ctx.api_version;
    let allow_create =
        (version < 4 || req.allow_auto_topic_creation) && broker.config.auto_create_topics_enable;
    let mut image = node.image();
    let requested: Option<Vec<(Option<String>, Uuid)>> = match req.topics {
        None => None,
        Some(list) if list.is_empty() && version == 0 => None,
        Some(list) => Some(
            list.into_iter()
                .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
                .collect(),
        ),
    };
    if let (Some(list), true) = (&requested, allow_create) {
        let missing: Vec<String> = list
            .iter()
            .filter_map(|(name, _)| name.clone())
            .filter(|n| image.topic(n).is_none() && validate_topic_name(n).is_ok())
            .collect();
        if !missing.is_empty() {
            crate::api::cluster_admin::auto_create(broker, node, &missing).await;
            image = node.image();
        }
    }
    let topics: Vec<MetadataResponseTopic> = match requested {
        None => image
            .topics
            .values()
            .map(|t| cluster_topic(&image, t))
            .collect(),
        Some(list) => list
            .into_iter()
            .map(|(name, id)| {
                let found = match &name {
                    Some(n) => image.topic(n),
                    None => image.topic_by_id(&id),
                };
                match (found, name) {
                    (Some(t), _) => cluster_topic(&image, t),
                    (None, Some(n)) => {
                        let code = match validate_topic_name(&n) {
                            Err(e) => e.error.code(),
                            Ok(()) if allow_create => ResponseError::LeaderNotAvailable.code(),
                            Ok(()) => ResponseError::UnknownTopicOrPartition.code(),
                        };
                        MetadataResponseTopic::default()
                            .with_name(Some(TopicName(str_bytes(n))))
                            .with_error_code(code)
                            .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
                    }
                    (None, None) => MetadataResponseTopic::default()
                        .with_topic_id(id)
                        .with_error_code(ResponseError::UnknownTopicId.code())
                        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED),
                }
            })
            .collect(),
    };
    let brokers = image
        .live_brokers()
        .filter_map(|b| {
            let endpoint = b.endpoint(&ctx.listener).or_else(|| b.endpoints.first())?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.id))
                    .with_host(str_bytes(endpoint.host.clone()))
                    .with_port(endpoint.port.into())
                    .with_rack(b.rack.clone().map(str_bytes)),
            )
        })
        .collect();
    let mut resp = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(node.controller_id_for_clients()))
        .with_topics(topics);
    if (8..=10).contains(&version) {
        resp.cluster_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
    }
    resp
}

fn cluster_topic(image: &Image, topic: &TopicImage) -> MetadataResponseTopic {
    let ids = |v: &[i32]| v.iter().map(|id| BrokerId(*id)).collect::<Vec<_>>();
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let leader = if image.is_live(p.leader) {
                p.leader
            } else {
                NO_LEADER
            };
            let error = if leader == NO_LEADER {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(index as i32)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_offline_replicas(ids(&image.offline_replicas(p)))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.name.starts_with("__"))
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}
