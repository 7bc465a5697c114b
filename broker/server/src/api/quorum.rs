//! DescribeQuorum (KIP-595/KIP-853): the metadata quorum's leader, epoch, commit point and each
//! voter's replicated log end, as `kafka-metadata-quorum.sh describe --status` and operators
//! read it. Any broker answers by asking the Raft leader through the controller channel;
//! broker-only nodes are listed as observers. A single node has no quorum and says so.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use strait_cluster::rpc::{ControllerResponse, QuorumStatus};

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
            let observers = node
                .image()
                .brokers
                .keys()
                .filter(|id| !status.voters.iter().any(|v| v.id == **id))
                .map(|id| replica(*id, -1))
                .collect();
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
                            .map(|v| replica(v.id, v.log_end))
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

fn replica(id: i32, log_end: i64) -> ReplicaState {
    // Raft here does not track fetch times per voter: -1 is Kafka's "unknown".
    ReplicaState::default()
        .with_replica_id(BrokerId(id))
        .with_log_end_offset(log_end)
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
