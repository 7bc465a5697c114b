//! DescribeQuorum (KIP-595/KIP-853): the metadata quorum's leader, epoch, commit point and each
//! voter's replicated log end and directory id, as `kafka-metadata-quorum.sh describe --status`
//! and operators read it; and the voter changes of KIP-853 (AddRaftVoter, RemoveRaftVoter,
//! UpdateRaftVoter). Any broker answers by asking the Raft leader through the controller
//! channel; observers are the controllers that follow the log without voting and the
//! broker-only nodes.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, BrokerId, DescribeQuorumRequest,
    DescribeQuorumResponse, RemoveRaftVoterRequest, RemoveRaftVoterResponse, TopicName,
    UpdateRaftVoterRequest, UpdateRaftVoterResponse,
};
use kafka_protocol::protocol::StrBytes;
use strait_cluster::rpc::{
    ControllerError, ControllerRequest, ControllerResponse, QuorumStatus, VoterChange, VoterStatus,
};
use uuid::Uuid;

use super::authz::{Authz, cluster_denied, op};
use super::{RequestContext, str_bytes};
use crate::broker::Broker;

/// The metadata log's topic-partition, the only one DescribeQuorum describes.
const METADATA_TOPIC: &str = "__cluster_metadata";
/// First version with the voters' endpoints (`nodes`, KIP-853).
const NODES_VERSION: i16 = 2;

pub async fn describe(
    broker: &Arc<Broker>,
    req: DescribeQuorumRequest,
    ctx: &RequestContext,
) -> DescribeQuorumResponse {
    if !Authz::new(broker, ctx).cluster(op::DESCRIBE) {
        let e = cluster_denied();
        return DescribeQuorumResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(e.message)));
    }
    let node = broker.node();
    let wanted = |name: &str, partition: i32| name == METADATA_TOPIC && partition == 0;
    let asks_metadata_log = req.topics.len() == 1
        && req.topics[0].partitions.len() == 1
        && wanted(
            req.topics[0].topic_name.0.as_str(),
            req.topics[0].partitions[0].partition_index,
        );
    if !asks_metadata_log {
        let topics = req
            .topics
            .iter()
            .map(|t| {
                TopicData::default()
                    .with_topic_name(t.topic_name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                PartitionData::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                                    .with_leader_id(BrokerId(-1))
                            })
                            .collect(),
                    )
            })
            .collect();
        return DescribeQuorumResponse::default().with_topics(topics);
    }
    let partition = PartitionData::default().with_partition_index(0);
    let (partition, nodes) = match node
        .call(strait_cluster::rpc::ControllerRequest::DescribeQuorum)
        .await
    {
        Ok(ControllerResponse::Quorum(status)) => {
            // Controllers following the log, then brokers that are no member of the quorum.
            let mut observers: Vec<ReplicaState> = status
                .observers
                .iter()
                .map(|v| replica(v, ctx.api_version))
                .collect();
            observers.extend(
                node.image()
                    .brokers
                    .keys()
                    .filter(|id| {
                        !status
                            .voters
                            .iter()
                            .chain(&status.observers)
                            .any(|v| v.id == **id)
                    })
                    .map(|id| {
                        let broker = VoterStatus {
                            id: *id,
                            log_end: -1,
                            address: String::new(),
                            directory_id: None,
                        };
                        replica(&broker, ctx.api_version)
                    }),
            );
            let nodes = voter_nodes(broker, &status);
            (
                partition
                    .with_leader_id(BrokerId(status.leader))
                    .with_leader_epoch(status.epoch)
                    .with_high_watermark(status.high_watermark)
                    .with_current_voters(
                        status
                            .voters
                            .iter()
                            .map(|v| replica(v, ctx.api_version))
                            .collect(),
                    )
                    .with_observers(observers),
                nodes,
            )
        }
        Ok(other) => (
            partition
                .with_error_code(ResponseError::UnknownServerError.code())
                .with_error_message(Some(str_bytes(format!("unexpected answer {other:?}"))))
                .with_leader_id(BrokerId(-1)),
            Vec::new(),
        ),
        Err(e) => (
            partition
                .with_error_code(
                    ResponseError::try_from_code(e.code())
                        .unwrap_or(ResponseError::UnknownServerError)
                        .code(),
                )
                .with_error_message(Some(str_bytes(e.to_string())))
                .with_leader_id(BrokerId(-1)),
            Vec::new(),
        ),
    };
    let response = DescribeQuorumResponse::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(TopicName(str_bytes(METADATA_TOPIC)))
            .with_partitions(vec![partition]),
    ]);
    if ctx.api_version >= NODES_VERSION {
        response.with_nodes(nodes)
    } else {
        response
    }
}

fn replica(v: &VoterStatus, version: i16) -> ReplicaState {
    // Raft here does not track fetch times per voter: -1 is Kafka's "unknown". The directory id
    // exists from v2 on (an older version cannot encode one).
    let directory_id = v
        .directory_id
        .filter(|_| version >= NODES_VERSION)
        .unwrap_or(Uuid::nil());
    ReplicaState::default()
        .with_replica_id(BrokerId(v.id))
        .with_replica_directory_id(directory_id)
        .with_log_end_offset(v.log_end)
        .with_last_fetch_timestamp(-1)
        .with_last_caught_up_timestamp(-1)
}

/// The voters' quorum endpoints, under this node's controller listener name.
fn voter_nodes(broker: &Broker, status: &QuorumStatus) -> Vec<Node> {
    let name = broker
        .config
        .kraft
        .as_ref()
        .and_then(|k| k.controller_listener.as_ref())
        .map_or("CONTROLLER".to_string(), |l| l.name.clone());
    status
        .voters
        .iter()
        .filter_map(|v| {
            let (host, port) = v.address.rsplit_once(':')?;
            let port: u16 = port.parse().ok()?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Some(
                Node::default()
                    .with_node_id(BrokerId(v.id))
                    .with_listeners(vec![
                        Listener::default()
                            .with_name(str_bytes(name.clone()))
                            .with_host(str_bytes(host))
                            .with_port(port),
                    ]),
            )
        })
        .collect()
}

/// Longest a voter change may take when the request gives no timeout (Kafka's default
/// `request.timeout.ms` of the admin client).
const DEFAULT_CHANGE_TIMEOUT_MS: u64 = 30_000;

/// A voter change as the Raft leader answers it: `Ok` or the error code and message.
async fn change_voters(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    cluster_id: Option<&StrBytes>,
    change: VoterChange,
    timeout_ms: i32,
) -> Result<(), (i16, String)> {
    if !Authz::new(broker, ctx).cluster(op::ALTER) {
        let e = cluster_denied();
        return Err((e.code(), e.message.to_string()));
    }
    // Kafka's clients send the cluster id they expect; null or empty means "any".
    if let Some(id) = cluster_id.filter(|id| !id.is_empty())
        && id.as_str() != broker.cluster_id
    {
        return Err((
            ResponseError::InconsistentClusterId.code(),
            format!(
                "cluster id {id} is not this cluster's ({})",
                broker.cluster_id
            ),
        ));
    }
    let timeout_ms = u64::try_from(timeout_ms)
        .ok()
        .filter(|t| *t > 0)
        .unwrap_or(DEFAULT_CHANGE_TIMEOUT_MS);
    let request = ControllerRequest::ChangeVoters { change, timeout_ms };
    match broker.node().call(request).await {
        Ok(ControllerResponse::Done) => Ok(()),
        Ok(other) => Err((
            ResponseError::UnknownServerError.code(),
            format!("unexpected answer {other:?}"),
        )),
        Err(e) => Err((error_code(&e), e.to_string())),
    }
}

/// Kafka's code for a refused voter change; an unreachable controller is retriable.
fn error_code(e: &ControllerError) -> i16 {
    match e {
        ControllerError::NotController { .. } | ControllerError::Unavailable(_) => {
            ResponseError::RequestTimedOut.code()
        }
        other => other.code(),
    }
}

/// The endpoint named like this node's controller listener, else the first one: the address
/// the other voters will reach the voter on.
fn pick_endpoint<'a>(
    broker: &Broker,
    endpoints: impl Iterator<Item = (&'a StrBytes, &'a StrBytes, u16)> + Clone,
) -> Option<String> {
    let name = broker
        .config
        .kraft
        .as_ref()
        .and_then(|k| k.controller_listener.as_ref())
        .map(|l| l.name.clone());
    let (_, host, port) = endpoints
        .clone()
        .find(|(n, _, _)| name.as_deref() == Some(n.as_str()))
        .or_else(|| endpoints.clone().next())?;
    let host = host.as_str();
    Some(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

fn message(text: String) -> Option<StrBytes> {
    Some(str_bytes(text))
}

/// AddRaftVoter (KIP-853): the node joins as an observer if it is not one, catches up, and is
/// added to the voter set.
pub async fn add_voter(
    broker: &Arc<Broker>,
    req: AddRaftVoterRequest,
    ctx: &RequestContext,
) -> AddRaftVoterResponse {
    let endpoints = req.listeners.iter().map(|l| (&l.name, &l.host, l.port));
    let Some(address) = pick_endpoint(broker, endpoints) else {
        return AddRaftVoterResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(message("the new voter names no listener".into()));
    };
    let change = VoterChange::Add {
        id: req.voter_id,
        directory_id: req.voter_directory_id,
        address,
    };
    match change_voters(broker, ctx, req.cluster_id.as_ref(), change, req.timeout_ms).await {
        Ok(()) => AddRaftVoterResponse::default().with_error_message(None),
        Err((code, text)) => AddRaftVoterResponse::default()
            .with_error_code(code)
            .with_error_message(message(text)),
    }
}

/// RemoveRaftVoter (KIP-853): the voter leaves the voter set (a removed voter that still runs
/// follows the log as an observer again).
pub async fn remove_voter(
    broker: &Arc<Broker>,
    req: RemoveRaftVoterRequest,
    ctx: &RequestContext,
) -> RemoveRaftVoterResponse {
    let change = VoterChange::Remove {
        id: req.voter_id,
        directory_id: req.voter_directory_id,
    };
    match change_voters(broker, ctx, req.cluster_id.as_ref(), change, 0).await {
        Ok(()) => RemoveRaftVoterResponse::default().with_error_message(None),
        Err((code, text)) => RemoveRaftVoterResponse::default()
            .with_error_code(code)
            .with_error_message(message(text)),
    }
}

/// UpdateRaftVoter (KIP-853): a voter's new controller endpoint. Kafka's voters send it to the
/// leader themselves; Strait's voters keep their entry current on their own (see
/// `node::membership`), and this answers the same request from any client.
pub async fn update_voter(
    broker: &Arc<Broker>,
    req: UpdateRaftVoterRequest,
    ctx: &RequestContext,
) -> UpdateRaftVoterResponse {
    use kafka_protocol::messages::update_raft_voter_response::CurrentLeader;
    let unknown_leader = CurrentLeader::default()
        .with_leader_id(BrokerId(-1))
        .with_leader_epoch(-1);
    let endpoints = req.listeners.iter().map(|l| (&l.name, &l.host, l.port));
    let Some(address) = pick_endpoint(broker, endpoints) else {
        return UpdateRaftVoterResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_current_leader(unknown_leader);
    };
    let change = VoterChange::Update {
        id: req.voter_id,
        directory_id: req.voter_directory_id,
        address,
    };
    let code = match change_voters(broker, ctx, req.cluster_id.as_ref(), change, 0).await {
        Ok(()) => 0,
        Err((code, text)) => {
            tracing::debug!(code, %text, "UpdateRaftVoter refused");
            code
        }
    };
    UpdateRaftVoterResponse::default()
        .with_error_code(code)
        .with_current_leader(unknown_leader)
}
