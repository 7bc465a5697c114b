//! KIP-848's ConsumerGroupHeartbeat and ConsumerGroupDescribe (`group.protocol=consumer`):
//! translation between topic ids on the wire and the coordinator's server-side assignment.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member,
    TopicPartitions as DescribedTopicPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, TopicName,
};

use super::authz::{Authz, group_denied, op, topic_denied};
use super::{RequestContext, str_bytes};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::group::assignor::Tp;
use crate::group::consumer::Heartbeat;
use strait_cluster::acl::resource;

/// How long a heartbeat that changed the group waits for its records to replicate.
const DURABLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// "Authorized operations" value meaning "not requested".
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;
/// KIP-1099 member type of a member that joined with the consumer protocol.
const MEMBER_TYPE_CONSUMER: i8 = 1;

fn grouped(tps: &BTreeSet<Tp>) -> Vec<(uuid::Uuid, Vec<i32>)> {
    let mut out: Vec<(uuid::Uuid, Vec<i32>)> = Vec::new();
    for (id, p) in tps {
        match out.last_mut() {
            Some((last, ps)) if last == id => ps.push(*p),
            _ => out.push((*id, vec![*p])),
        }
    }
    out
}

pub async fn heartbeat(
    broker: &Arc<Broker>,
    req: ConsumerGroupHeartbeatRequest,
    ctx: &RequestContext,
) -> ConsumerGroupHeartbeatResponse {
    let authz = Authz::new(broker, ctx);
    // READ on the group, then (as Kafka) DESCRIBE on every subscribed topic name. A subscription
    // regex is not checked here: it is resolved against all topics, authorized or not.
    let denied = if !authz.group(op::READ, req.group_id.0.as_str()) {
        Some(group_denied(req.group_id.0.as_str()))
    } else {
        let unauthorized: Vec<&str> = req
            .subscribed_topic_names
            .iter()
            .flatten()
            .map(|t| t.0.as_str())
            .filter(|t| !authz.topic(op::DESCRIBE, t))
            .collect();
        (!unauthorized.is_empty()).then(|| topic_denied(&unauthorized.join(", ")))
    };
    if let Some(e) = denied {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(e.message)));
    }
    if let Err(e) = broker.check_coordinator(req.group_id.0.as_str()) {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(e.message)));
    }
    let hb = Heartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.to_string()).collect()),
        // Empty clears a regex (librdkafka sends one alongside plain topic names).
        subscribed_topic_regex: req.subscribed_topic_regex.map(|s| s.to_string()),
        server_assignor: req.server_assignor.map(|s| s.to_string()),
        owned: req.topic_partitions.map(|tps| {
            tps.into_iter()
                .flat_map(|t| t.partitions.into_iter().map(move |p| (t.topic_id, p)))
                .collect()
        }),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: ctx.client_host.clone(),
    };
    let interval = broker.groups.heartbeat_interval().as_millis() as i32;
    let req_group = req.group_id.0.to_string();
    let req_group = req_group.as_str();
    let result = broker.groups.consumer_heartbeat(
        &broker.offsets_log(),
        req_group,
        hb,
        Instant::now(),
        now_ms(),
    );
    // A heartbeat that changed the group is answered once its records are on the offsets
    // partition's ISR, so the next coordinator knows the epoch and assignment it hands out.
    let result = match result {
        Ok((reply, true)) => {
            match crate::group::partitions::wait_durable(
                &broker.replicas,
                req_group,
                DURABLE_TIMEOUT,
            )
            .await
            {
                Ok(()) => Ok(reply),
                Err(e) => Err((e.error, e.message)),
            }
        }
        Ok((reply, false)) => Ok(reply),
        Err(e) => Err(e),
    };
    match result {
        Ok(reply) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(str_bytes(reply.member_id)))
            .with_member_epoch(reply.member_epoch)
            .with_heartbeat_interval_ms(interval)
            .with_assignment(reply.assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    grouped(&a)
                        .into_iter()
                        .map(|(id, ps)| {
                            TopicPartitions::default()
                                .with_topic_id(id)
                                .with_partitions(ps)
                        })
                        .collect(),
                )
            })),
        Err((error, message)) => {
            tracing::debug!(group = req_group, %error, %message, "consumer group heartbeat refused");
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(error.code())
                .with_error_message(Some(str_bytes(message)))
                .with_member_epoch(-1)
                .with_heartbeat_interval_ms(interval)
        }
    }
}

pub async fn describe(
    broker: &Arc<Broker>,
    req: ConsumerGroupDescribeRequest,
    ctx: &RequestContext,
) -> ConsumerGroupDescribeResponse {
    let authz = Authz::new(broker, ctx);
    let name_of = |id: uuid::Uuid| {
        broker
            .replicas
            .topic_by_id(&id)
            .map(|t| t.meta.name.clone())
            .unwrap_or_default()
    };
    let describe_tps = |tps: &BTreeSet<Tp>| {
        DescribedAssignment::default().with_topic_partitions(
            grouped(tps)
                .into_iter()
                .map(|(id, ps)| {
                    DescribedTopicPartitions::default()
                        .with_topic_id(id)
                        .with_topic_name(TopicName(str_bytes(name_of(id))))
                        .with_partitions(ps)
                })
                .collect(),
        )
    };
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let base = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
            if !authz.group(op::DESCRIBE, id.0.as_str()) {
                let e = group_denied(id.0.as_str());
                return base
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.message)));
            }
            if let Err(e) = broker.check_coordinator(id.0.as_str()) {
                return base
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.message)));
            }
            match broker.groups.consumer_describe(id.0.as_str()) {
                None => base
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(str_bytes(format!(
                        "Group {} not found",
                        id.0.as_str()
                    )))),
                Some((epoch, assignment_epoch, state, assignor, members)) => base
                    .with_authorized_operations(if req.include_authorized_operations {
                        authz.operations(resource::GROUP, id.0.as_str())
                    } else {
                        AUTHORIZED_OPERATIONS_OMITTED
                    })
                    .with_group_state(str_bytes(state))
                    .with_group_epoch(epoch)
                    .with_assignment_epoch(assignment_epoch)
                    .with_assignor_name(str_bytes(assignor))
                    .with_members(
                        members
                            .into_iter()
                            .map(|m| {
                                Member::default()
                                    .with_member_id(str_bytes(m.member_id))
                                    .with_instance_id(m.instance_id.map(str_bytes))
                                    .with_rack_id(m.rack_id.map(str_bytes))
                                    .with_member_epoch(m.member_epoch)
                                    .with_client_id(str_bytes(m.client_id))
                                    .with_client_host(str_bytes(m.client_host))
                                    .with_subscribed_topic_names(
                                        m.subscribed
                                            .into_iter()
                                            .map(|t| TopicName(str_bytes(t)))
                                            .collect(),
                                    )
                                    .with_subscribed_topic_regex(m.regex.map(str_bytes))
                                    .with_assignment(describe_tps(&m.assigned))
                                    .with_target_assignment(describe_tps(&m.target))
                                    .with_member_type(MEMBER_TYPE_CONSUMER)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
