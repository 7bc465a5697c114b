//! DescribeTopicPartitions (KIP-966): Metadata's partition view, paginated for clusters with
//! many partitions. Topics are answered in name order (all DESCRIBE-authorized topics when none
//! is named), from the request's cursor on, with at most `response_partition_limit` partitions
//! (capped at Kafka's `max.request.partition.size.limit` default, 2000); `next_cursor` names where
//! the next page starts.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use strait_cluster::acl::resource;
use strait_cluster::image::{Image, TopicImage};

use super::authz::{Authz, op};
use super::{RequestContext, str_bytes};
use crate::broker::Broker;

/// Kafka's default `max.request.partition.size.limit`.
const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

pub async fn handle(
    broker: &Arc<Broker>,
    req: DescribeTopicPartitionsRequest,
    ctx: &RequestContext,
) -> DescribeTopicPartitionsResponse {
    let image = broker.node().image();
    let authz = Authz::new(broker, ctx);
    let mut names: Vec<String> = if req.topics.is_empty() {
        image
            .topics
            .values()
            .map(|t| t.name.clone())
            .filter(|n| authz.topic(op::DESCRIBE, n))
            .collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let (first_topic, mut first_partition) = match &req.cursor {
        Some(c) => (Some(c.topic_name.0.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    let limit = req
        .response_partition_limit
        .clamp(1, MAX_PARTITIONS_PER_RESPONSE) as usize;
    let mut left = limit;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names
        .into_iter()
        .skip_while(|n| first_topic.as_ref().is_some_and(|f| n < f))
    {
        let start = if first_topic.as_deref() == Some(name.as_str()) {
            std::mem::take(&mut first_partition)
        } else {
            0
        };
        let answer = DescribeTopicPartitionsResponseTopic::default()
            .with_name(Some(TopicName(str_bytes(name.clone()))))
            .with_topic_authorized_operations(i32::MIN);
        if !authz.topic(op::DESCRIBE, &name) {
            topics.push(answer.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
            continue;
        }
        let Some(topic) = image.topic(&name) else {
            topics.push(answer.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
            continue;
        };
        if left == 0 {
            next_cursor = Some(cursor(&name, start));
            break;
        }
        let total = topic.partitions.len() as i32;
        let end = (start + left as i32).min(total);
        let partitions = partitions(&image, topic, start, end);
        left -= partitions.len();
        topics.push(
            answer
                .with_topic_id(topic.id)
                .with_is_internal(topic.name.starts_with("__"))
                .with_partitions(partitions)
                .with_topic_authorized_operations(authz.operations(resource::TOPIC, &name)),
        );
        if end < total {
            next_cursor = Some(cursor(&name, end));
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(str_bytes(topic.to_string())))
        .with_partition_index(partition)
}

/// Partitions `start..end` of `topic`, as Metadata describes them.
fn partitions(
    image: &Image,
    topic: &TopicImage,
    start: i32,
    end: i32,
) -> Vec<DescribeTopicPartitionsResponsePartition> {
    (start.max(0)..end)
        .filter_map(|index| topic.partitions.get(index as usize).map(|p| (index, p)))
        .map(|(index, p)| {
            let v = super::metadata::partition_view(image, &topic.name, index, p);
            DescribeTopicPartitionsResponsePartition::default()
                .with_error_code(v.error)
                .with_partition_index(index)
                .with_leader_id(v.leader)
                .with_leader_epoch(v.leader_epoch)
                .with_replica_nodes(v.replicas)
                .with_isr_nodes(v.isr)
                // No eligible leader replicas (KIP-966 part 1's ELR is not kept).
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new()))
                .with_offline_replicas(v.offline)
        })
        .collect()
}
