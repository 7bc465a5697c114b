//! OffsetForLeaderEpoch (KIP-101, KIP-320): where a leader epoch ends in the leader's log. Followers
//! ask it after a leader change to find where their log diverges; consumers ask it to detect log
//! truncation. Only the leader answers, and the request's current leader epoch is fenced as for
//! Fetch.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::RequestContext;
use super::authz::{Authz, op};
use crate::broker::Broker;

pub async fn handle(
    broker: &Arc<Broker>,
    req: OffsetForLeaderEpochRequest,
    ctx: &RequestContext,
) -> OffsetForLeaderEpochResponse {
    // Followers need CLUSTER_ACTION; consumers (KIP-320) DESCRIBE on the topic.
    let authz = Authz::new(broker, ctx);
    let follower = req.replica_id.0 >= 0;
    let follower_allowed = !follower || authz.cluster(op::CLUSTER_ACTION);
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.replicas.topic(t.topic.0.as_str());
            let allowed = if follower {
                follower_allowed
            } else {
                authz.topic(op::DESCRIBE, t.topic.0.as_str())
            };
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let base = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    if !allowed {
                        return base
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let found = broker.replicas.hosted_partition(
                        t.topic.0.as_str(),
                        topic.as_ref(),
                        p.partition,
                    );
                    let partition = match found {
                        Ok(partition) => partition,
                        Err(e) => return base.with_error_code(e.code()),
                    };
                    if let Err(e) = partition.replica().check_leader(p.current_leader_epoch) {
                        return base.with_error_code(e.code());
                    }
                    match partition.log.end_offset_for_epoch(p.leader_epoch) {
                        Some((epoch, end)) => base.with_leader_epoch(epoch).with_end_offset(end),
                        None => base,
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
