//! The classic group protocol's APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, ListGroups, DescribeGroups and DeleteGroups. They translate protocol messages to
//! the coordinator's calls and wait (asynchronously) where the protocol makes a member wait.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, SyncGroupRequest, SyncGroupResponse,
};
use tokio::sync::oneshot;

use super::authz::{Authz, group_denied, op};
use super::{RequestContext, str_bytes};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::errors::ApiError;
use crate::group::coordinator::{JoinOutcome, JoinRequest, Reply, SyncOutcome, SyncRequest};
use crate::group::partitions;
use strait_cluster::acl::resource;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
/// First FindCoordinator version that batches keys (KIP-699).
const BATCHED_FIND_VERSION: i16 = 4;
/// First JoinGroup version that hands out member ids before joining (KIP-394).
const MEMBER_ID_REQUIRED_VERSION: i16 = 4;
/// First LeaveGroup version with a member list (KIP-345).
const BATCHED_LEAVE_VERSION: i16 = 3;
/// "Authorized operations" value meaning "not requested".
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;
/// Extra time a waiting JoinGroup/SyncGroup allows beyond the group's own deadlines, which the
/// coordinator's ticker enforces.
const WAIT_MARGIN: Duration = Duration::from_secs(5);

pub async fn find_coordinator(
    broker: &Arc<Broker>,
    req: FindCoordinatorRequest,
    ctx: &RequestContext,
) -> FindCoordinatorResponse {
    let keys: Vec<String> = if ctx.api_version >= BATCHED_FIND_VERSION {
        req.coordinator_keys.iter().map(|k| k.to_string()).collect()
    } else {
        vec![req.key.to_string()]
    };
    let authz = Authz::new(broker, ctx);
    let denials: Vec<Option<ApiError>> = keys
        .iter()
        .map(|key| match req.key_type {
            KEY_TYPE_GROUP => (!authz.group(op::DESCRIBE, key)).then(|| group_denied(key)),
            KEY_TYPE_TRANSACTION => (!authz.allows(op::DESCRIBE, resource::TRANSACTIONAL_ID, key))
                .then(|| {
                    ApiError::new(
                        ResponseError::TransactionalIdAuthorizationFailed,
                        format!("not authorized to access transactional id {key}"),
                    )
                }),
            _ => None,
        })
        .collect();
    let coordinators: Vec<Result<MetadataResponseBroker, ApiError>> = {
        let node = broker.node();
        // A group's coordinator leads its __consumer_offsets partition, a transactional id's its
        // __transaction_state partition; the topic is created on first use unless no key is
        // authorized (as Kafka, which only looks up authorized keys).
        let topic = match req.key_type {
            KEY_TYPE_GROUP => Some(crate::group::OFFSETS_TOPIC),
            KEY_TYPE_TRANSACTION => Some(crate::txn::TXN_TOPIC),
            _ => None,
        };
        let ensured = match topic {
            None => Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("unknown coordinator key type {}", req.key_type),
            )),
            Some(_) if denials.iter().all(Option::is_some) => Ok(()),
            Some(crate::group::OFFSETS_TOPIC) => {
                partitions::ensure_topic(&broker.config, node).await
            }
            Some(_) => crate::txn::partitions::ensure_topic(&broker.config, node).await,
        };
        match (ensured, topic) {
            (Err(e), _) => keys.iter().map(|_| Err(e.clone())).collect(),
            (Ok(()), None) => Vec::new(),
            (Ok(()), Some(topic)) => {
                let image = node.image();
                keys.iter()
                    .map(|key| {
                        let id = crate::internal_topic::coordinator_in(&image, topic, key)?;
                        let b = image.brokers.get(&id).ok_or_else(|| {
                            ApiError::new(ResponseError::CoordinatorNotAvailable, "unknown broker")
                        })?;
                        let e = b
                            .endpoint(&ctx.listener)
                            .or_else(|| b.endpoints.first())
                            .ok_or_else(|| {
                                ApiError::new(
                                    ResponseError::CoordinatorNotAvailable,
                                    format!("broker {id} has no endpoint"),
                                )
                            })?;
                        Ok(MetadataResponseBroker::default()
                            .with_node_id(BrokerId(id))
                            .with_host(str_bytes(e.host.clone()))
                            .with_port(e.port.into()))
                    })
                    .collect()
            }
        }
    };
    let answer = |(key, found): (String, Result<MetadataResponseBroker, ApiError>)| match found {
        Ok(b) => CoordinatorEntry::default()
            .with_key(str_bytes(key))
            .with_node_id(b.node_id)
            .with_host(b.host)
            .with_port(b.port),
        Err(e) => CoordinatorEntry::default()
            .with_key(str_bytes(key))
            .with_node_id(BrokerId(-1))
            .with_port(-1)
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(e.message.clone()))),
    };
    let keys: Vec<_> = keys
        .into_iter()
        .zip(coordinators.into_iter().zip(denials))
        .map(|(key, (found, denied))| (key, denied.map_or(found, Err)))
        .collect();
    if ctx.api_version >= BATCHED_FIND_VERSION {
        FindCoordinatorResponse::default().with_coordinators(keys.into_iter().map(answer).collect())
    } else {
        let c = keys.into_iter().next().map(answer).unwrap_or_default();
        FindCoordinatorResponse::default()
            .with_error_code(c.error_code)
            .with_error_message(c.error_message)
            .with_node_id(c.node_id)
            .with_host(c.host)
            .with_port(c.port)
    }
}

async fn wait<T>(rx: oneshot::Receiver<T>, limit: Duration, on_lost: T) -> T {
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(v)) => v,
        // The coordinator dropped the waiter (member removed or fenced) or the deadline machinery
        // failed: the member must rejoin.
        _ => on_lost,
    }
}

pub async fn join_group(
    broker: &Arc<Broker>,
    req: JoinGroupRequest,
    ctx: &RequestContext,
) -> JoinGroupResponse {
    let rebalance_timeout_ms = if ctx.api_version >= 1 {
        req.rebalance_timeout_ms
    } else {
        req.session_timeout_ms
    };
    let member_id = req.member_id.to_string();
    if !Authz::new(broker, ctx).group(op::READ, req.group_id.0.as_str()) {
        // Kafka's error response: unknown (empty) member id.
        return JoinGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code())
            .with_generation_id(-1);
    }
    if let Err(e) = broker.check_coordinator(req.group_id.0.as_str()) {
        return JoinGroupResponse::default()
            .with_error_code(e.code())
            .with_generation_id(-1)
            .with_member_id(str_bytes(member_id));
    }
    let join = JoinRequest {
        group_id: req.group_id.0.to_string(),
        member_id: member_id.clone(),
        group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: ctx.client_host.clone(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms,
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: ctx.api_version >= MEMBER_ID_REQUIRED_VERSION,
    };
    let limit = Duration::from_millis(rebalance_timeout_ms.max(0) as u64) + WAIT_MARGIN;
    let outcome = match broker
        .groups
        .join(&broker.offsets_log(), join, Instant::now(), now_ms())
    {
        Reply::Now(o) => o,
        Reply::Wait(rx) => {
            let lost = JoinOutcome {
                error: ResponseError::UnknownMemberId.code(),
                generation: -1,
                member_id: member_id.clone(),
                ..Default::default()
            };
            wait(rx, limit, lost).await
        }
    };
    JoinGroupResponse::default()
        .with_error_code(outcome.error)
        .with_generation_id(outcome.generation)
        .with_protocol_type(outcome.protocol_type.map(str_bytes))
        .with_protocol_name(Some(str_bytes(outcome.protocol_name.unwrap_or_default())))
        .with_leader(str_bytes(outcome.leader))
        .with_member_id(str_bytes(outcome.member_id))
        .with_members(
            outcome
                .members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(id))
                        .with_group_instance_id(instance.map(str_bytes))
                        .with_metadata(metadata)
                })
                .collect(),
        )
}

pub async fn sync_group(
    broker: &Arc<Broker>,
    req: SyncGroupRequest,
    ctx: &RequestContext,
) -> SyncGroupResponse {
    if !Authz::new(broker, ctx).group(op::READ, req.group_id.0.as_str()) {
        return SyncGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    if let Err(e) = broker.check_coordinator(req.group_id.0.as_str()) {
        return SyncGroupResponse::default().with_error_code(e.code());
    }
    let sync = SyncRequest {
        group_id: req.group_id.0.to_string(),
        generation: req.generation_id,
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        protocol_type: req.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: req.protocol_name.as_ref().map(|s| s.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let outcome = match broker
        .groups
        .sync(&broker.offsets_log(), sync, Instant::now(), now_ms())
    {
        Reply::Now(o) => o,
        Reply::Wait(rx) => {
            let lost = SyncOutcome {
                error: ResponseError::RebalanceInProgress.code(),
                ..Default::default()
            };
            // The coordinator's sync deadline (rebalance timeout) ends every wait; the cap here is
            // only a safety net.
            wait(rx, Duration::from_secs(30 * 60), lost).await
        }
    };
    SyncGroupResponse::default()
        .with_error_code(outcome.error)
        .with_protocol_type(outcome.protocol_type.map(str_bytes))
        .with_protocol_name(outcome.protocol_name.map(str_bytes))
        .with_assignment(outcome.assignment)
}

pub async fn heartbeat(
    broker: &Arc<Broker>,
    req: HeartbeatRequest,
    ctx: &RequestContext,
) -> HeartbeatResponse {
    if !Authz::new(broker, ctx).group(op::READ, req.group_id.0.as_str()) {
        return HeartbeatResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    if let Err(e) = broker.check_coordinator(req.group_id.0.as_str()) {
        return HeartbeatResponse::default().with_error_code(e.code());
    }
    let error = broker.groups.heartbeat(
        req.group_id.0.as_str(),
        req.generation_id,
        req.member_id.as_str(),
        req.group_instance_id.as_ref().map(|s| s.as_str()),
        Instant::now(),
    );
    HeartbeatResponse::default().with_error_code(error.code())
}

pub async fn leave_group(
    broker: &Arc<Broker>,
    req: LeaveGroupRequest,
    ctx: &RequestContext,
) -> LeaveGroupResponse {
    if !Authz::new(broker, ctx).group(op::READ, req.group_id.0.as_str()) {
        return LeaveGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    if let Err(e) = broker.check_coordinator(req.group_id.0.as_str()) {
        return LeaveGroupResponse::default().with_error_code(e.code());
    }
    let batched = ctx.api_version >= BATCHED_LEAVE_VERSION;
    let leaving: Vec<(String, Option<String>)> = if batched {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let b = broker.clone();
    let group_id = req.group_id.0.to_string();
    let l = leaving.clone();
    let result = tokio::task::spawn_blocking(move || {
        b.groups
            .leave(&b.offsets_log(), &group_id, &l, Instant::now(), now_ms())
    })
    .await
    .unwrap_or(Err(ResponseError::CoordinatorNotAvailable));
    match result {
        Err(e) => LeaveGroupResponse::default().with_error_code(e.code()),
        Ok(errors) if !batched => LeaveGroupResponse::default()
            .with_error_code(errors.first().map(|e| e.code()).unwrap_or(0)),
        Ok(errors) => LeaveGroupResponse::default().with_members(
            leaving
                .into_iter()
                .zip(errors)
                .map(|((member_id, instance), e)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(member_id))
                        .with_group_instance_id(instance.map(str_bytes))
                        .with_error_code(e.code())
                })
                .collect(),
        ),
    }
}

pub async fn list_groups(
    broker: &Arc<Broker>,
    req: ListGroupsRequest,
    ctx: &RequestContext,
) -> ListGroupsResponse {
    // DESCRIBE on the cluster lists every group; otherwise only the groups one may describe.
    let authz = Authz::new(broker, ctx);
    let all = authz.cluster(op::DESCRIBE);
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let groups = broker
        .groups
        .list()
        .into_iter()
        .filter(|(_, _, state, _)| states.is_empty() || states.contains(&state.to_lowercase()))
        .filter(|(_, _, _, kind)| types.is_empty() || types.iter().any(|t| t == kind))
        .filter(|(id, _, _, _)| all || authz.group(op::DESCRIBE, id))
        .map(|(id, protocol_type, state, kind)| {
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(id)))
                .with_protocol_type(str_bytes(protocol_type))
                .with_group_state(str_bytes(state))
                .with_group_type(str_bytes(kind))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn describe_groups(
    broker: &Arc<Broker>,
    req: DescribeGroupsRequest,
    ctx: &RequestContext,
) -> DescribeGroupsResponse {
    let authz = Authz::new(broker, ctx);
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            let base = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
            if !authz.group(op::DESCRIBE, id.0.as_str()) {
                return base.with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            let base = if req.include_authorized_operations {
                base.with_authorized_operations(authz.operations(resource::GROUP, id.0.as_str()))
            } else {
                base
            };
            if let Err(e) = broker.check_coordinator(id.0.as_str()) {
                return base.with_error_code(e.code());
            }
            if broker.groups.is_consumer_group(id.0.as_str()) {
                // Kafka refuses to describe a consumer-protocol group through the classic API.
                return base
                    .with_group_state(str_bytes("Dead"))
                    .with_error_code(ResponseError::GroupIdNotFound.code());
            }
            match broker.groups.describe(id.0.as_str()) {
                // Kafka describes an unknown group as Dead with no error (before v6).
                None => base.with_group_state(str_bytes("Dead")),
                Some(g) => base
                    .with_group_state(str_bytes(g.state.name()))
                    .with_protocol_type(str_bytes(g.protocol_type))
                    .with_protocol_data(str_bytes(g.protocol))
                    .with_members(
                        g.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(m.member_id))
                                    .with_group_instance_id(m.group_instance_id.map(str_bytes))
                                    .with_client_id(str_bytes(m.client_id))
                                    .with_client_host(str_bytes(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub async fn delete_groups(
    broker: &Arc<Broker>,
    req: DeleteGroupsRequest,
    ctx: &RequestContext,
) -> DeleteGroupsResponse {
    let authz = Authz::new(broker, ctx);
    let allowed: Vec<bool> = req
        .groups_names
        .iter()
        .map(|id| authz.group(op::DELETE, id.0.as_str()))
        .collect();
    let b = broker.clone();
    let results = tokio::task::spawn_blocking(move || {
        req.groups_names
            .into_iter()
            .zip(allowed)
            .map(|(id, allowed)| {
                let e = if !allowed {
                    ResponseError::GroupAuthorizationFailed
                } else {
                    match b.check_coordinator(id.0.as_str()) {
                        Ok(()) => b.groups.delete_group(&b.offsets_log(), id.0.as_str()),
                        Err(e) => e.error,
                    }
                };
                DeletableGroupResult::default()
                    .with_group_id(id)
                    .with_error_code(e.code())
            })
            .collect()
    })
    .await
    .unwrap_or_default();
    DeleteGroupsResponse::default().with_results(results)
}
