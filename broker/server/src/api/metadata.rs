//! Metadata: the live brokers (on the listener the client used), topics with partitions,
//! leaders, replicas and ISR, all from the metadata image; auto-creates requested topics through
//! the controller when `auto.create.topics.enable` and the client allow it.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use uuid::Uuid;

use super::authz::{Authz, op};
use super::{RequestContext, str_bytes};
use crate::broker::{Broker, validate_topic_name};
use strait_cluster::acl::{CLUSTER_NAME, resource};
use strait_cluster::image::{Image, NO_LEADER, TopicImage};

/// "Authorized operations" bitfield value meaning "not requested" in Kafka's protocol.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Every live broker of `image` with its endpoint on `listener` (the listener the request came
/// in on, Kafka's rule), else its first.
pub fn live_brokers(image: &Image, listener: &str) -> Vec<MetadataResponseBroker> {
    image
        .live_brokers()
        .filter_map(|b| {
            let endpoint = b.endpoint(listener).or_else(|| b.endpoints.first())?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.id))
                    .with_host(str_bytes(endpoint.host.clone()))
                    .with_port(endpoint.port.into())
                    .with_rack(b.rack.clone().map(str_bytes)),
            )
        })
        .collect()
}

/// Everything from the metadata image — every live broker, and per partition the
/// leader, leader epoch, replicas, ISR and offline replicas. Auto-creation asks the controller.
pub async fn handle(
    broker: &Arc<Broker>,
    req: MetadataRequest,
    ctx: &RequestContext,
) -> MetadataResponse {
    let node = broker.node();
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
    // Kafka: topics without DESCRIBE are left out of "all topics" and answered
    // TOPIC_AUTHORIZATION_FAILED when named; auto-creation needs CREATE on the cluster or topic.
    let authz = Authz::new(broker, ctx);
    let may_create = |n: &str| authz.cluster(op::CREATE) || authz.topic(op::CREATE, n);
    if let (Some(list), true) = (&requested, allow_create) {
        let missing: Vec<String> = list
            .iter()
            .filter_map(|(name, _)| name.clone())
            .filter(|n| image.topic(n).is_none() && validate_topic_name(n).is_ok())
            .filter(|n| authz.topic(op::DESCRIBE, n) && may_create(n))
            .collect();
        if !missing.is_empty() {
            super::admin_topics::auto_create(broker, node, &missing).await;
            image = node.image();
        }
    }
    let topics: Vec<MetadataResponseTopic> = match requested {
        None => image
            .topics
            .values()
            .filter(|t| authz.topic(op::DESCRIBE, &t.name))
            .map(|t| cluster_topic(&image, t))
            .collect(),
        Some(list) => list
            .into_iter()
            .map(|(name, id)| {
                let found = match &name {
                    Some(n) => image.topic(n),
                    None => image.topic_by_id(&id),
                };
                let visible = match (found, &name) {
                    (Some(t), _) => authz.topic(op::DESCRIBE, &t.name),
                    (None, Some(n)) => authz.topic(op::DESCRIBE, n),
                    (None, None) => true,
                };
                if !visible {
                    return MetadataResponseTopic::default()
                        .with_name(name.map(|n| TopicName(str_bytes(n))))
                        .with_topic_id(id)
                        .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
                }
                match (found, name) {
                    (Some(t), _) => cluster_topic(&image, t),
                    (None, Some(n)) => {
                        let code = match validate_topic_name(&n) {
                            Err(e) => e.error.code(),
                            Ok(()) if allow_create && may_create(&n) => {
                                ResponseError::LeaderNotAvailable.code()
                            }
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
    let mut topics = topics;
    if version >= 8 && req.include_topic_authorized_operations {
        for t in topics.iter_mut().filter(|t| t.error_code == 0) {
            if let Some(name) = &t.name {
                t.topic_authorized_operations = authz.operations(resource::TOPIC, name.0.as_str());
            }
        }
    }
    let brokers = live_brokers(&image, &ctx.listener);
    let mut resp = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(node.controller_id_for_clients()))
        .with_topics(topics);
    if (8..=10).contains(&version) {
        resp.cluster_authorized_operations = if req.include_cluster_authorized_operations {
            authz.operations(resource::CLUSTER, CLUSTER_NAME)
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        };
    }
    resp
}

/// One partition as Metadata and DescribeTopicPartitions describe it: the leader only while it
/// is alive (else no leader, LEADER_NOT_AVAILABLE), replicas, ISR and offline replicas.
pub struct PartitionView {
    pub error: i16,
    pub leader: BrokerId,
    pub leader_epoch: i32,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub offline: Vec<BrokerId>,
}

pub fn partition_view(
    image: &Image,
    topic: &str,
    index: i32,
    p: &strait_cluster::image::PartitionState,
) -> PartitionView {
    let ids = |v: &[i32]| v.iter().map(|id| BrokerId(*id)).collect::<Vec<_>>();
    let leader = if image.is_live(p.leader) {
        p.leader
    } else {
        NO_LEADER
    };
    PartitionView {
        error: if leader == NO_LEADER {
            ResponseError::LeaderNotAvailable.code()
        } else {
            0
        },
        leader: BrokerId(leader),
        leader_epoch: p.leader_epoch,
        replicas: ids(&p.replicas),
        isr: ids(&p.isr),
        offline: ids(&image.offline_replicas(topic, index, p)),
    }
}

fn cluster_topic(image: &Image, topic: &TopicImage) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let v = partition_view(image, &topic.name, index as i32, p);
            MetadataResponsePartition::default()
                .with_error_code(v.error)
                .with_partition_index(index as i32)
                .with_leader_id(v.leader)
                .with_leader_epoch(v.leader_epoch)
                .with_replica_nodes(v.replicas)
                .with_isr_nodes(v.isr)
                .with_offline_replicas(v.offline)
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.name.starts_with("__"))
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}
