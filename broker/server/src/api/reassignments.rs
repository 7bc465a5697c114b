//! The partition-placement admin APIs, forwarded to the active controller: ElectLeaders
//! (preferred or unclean elections), AlterPartitionReassignments and
//! ListPartitionReassignments.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ElectLeadersRequest, ElectLeadersResponse, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse, TopicName,
};
use strait_cluster::rpc::{ControllerError, ControllerRequest, ControllerResponse};

use super::authz::{Authz, cluster_denied, op};
use super::{RequestContext, str_bytes};
use crate::broker::Broker;
use crate::errors::ApiError;

/// ElectLeaders `election_type`: 0 preferred, 1 unclean.
const PREFERRED: i8 = 0;

/// ElectLeaders (KIP-460): preferred or unclean elections through the controller.
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
    if !Authz::new(broker, ctx).cluster(op::ALTER) {
        let e = cluster_denied();
        return failed(e.code(), e.message);
    }
    let node = broker.node();
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
            let e = ApiError::unexpected_answer(&other);
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
    ctx: &RequestContext,
) -> AlterPartitionReassignmentsResponse {
    if !Authz::new(broker, ctx).cluster(op::ALTER) {
        let e = cluster_denied();
        return AlterPartitionReassignmentsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(e.message)));
    }
    let node = broker.node();
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
                .with_error_code(ApiError::unexpected_answer(&other).code());
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
    ctx: &RequestContext,
) -> ListPartitionReassignmentsResponse {
    if !Authz::new(broker, ctx).cluster(op::DESCRIBE) {
        let e = cluster_denied();
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(e.message)));
    }
    let node = broker.node();
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
                .with_error_code(ApiError::unexpected_answer(&other).code());
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
