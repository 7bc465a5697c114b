//! DeleteRecords: advances a partition's log start offset (offset -1 means "up to the high
//! watermark"); whole segments below it are deleted by the log engine, and for a tiered topic
//! the remote tier's new start is recorded in the metadata (its segments go by remote retention). Compact-only topics
//! refuse it with POLICY_VIOLATION, as in Kafka.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::RequestContext;
use super::authz::{Authz, op};
use crate::broker::Broker;
use crate::errors::ApiError;

const HIGH_WATERMARK: i64 = -1;

pub async fn handle(
    broker: &Arc<Broker>,
    req: DeleteRecordsRequest,
    ctx: &RequestContext,
) -> DeleteRecordsResponse {
    let authz = Authz::new(broker, ctx);
    let topics = tokio::task::block_in_place(|| {
        req.topics
            .into_iter()
            .map(|t| {
                let topic = broker.replicas.topic(t.name.0.as_str());
                let allowed = authz.topic(op::DELETE, t.name.0.as_str());
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let result = DeleteRecordsPartitionResult::default()
                            .with_partition_index(p.partition_index);
                        let found = if allowed {
                            broker.replicas.hosted_partition(
                                t.name.0.as_str(),
                                topic.as_ref(),
                                p.partition_index,
                            )
                        } else {
                            Err(ResponseError::TopicAuthorizationFailed)
                        };
                        let partition = match found {
                            Ok(partition) => partition,
                            Err(e) => {
                                return result.with_error_code(e.code()).with_low_watermark(-1);
                            }
                        };
                        // Only the leader deletes; followers follow its log start offset.
                        if let Err(e) = partition.replica().check_leader(-1) {
                            return result.with_error_code(e.code()).with_low_watermark(-1);
                        }
                        let log = &partition.log;
                        // Kafka deletes records only from topics with the delete policy: a
                        // compact-only topic keeps its latest value per key forever.
                        if !log.config().cleanup_delete {
                            return result
                                .with_error_code(ResponseError::PolicyViolation.code())
                                .with_low_watermark(-1);
                        }
                        let offset = if p.offset == HIGH_WATERMARK {
                            log.high_watermark()
                        } else {
                            p.offset
                        };
                        match log.delete_records_before(offset) {
                            Ok(low)
                                if broker
                                    .node()
                                    .image()
                                    .remote_partition(t.name.0.as_str(), p.partition_index)
                                    .is_some() =>
                            {
                                // The remote tier's start is in the metadata, so that every
                                // replica and the next leader agree; its segments below go at
                                // the next remote log manager pass.
                                let recorded = tokio::runtime::Handle::current().block_on(
                                    crate::remote_log::record_log_start(
                                        broker,
                                        t.name.0.as_str(),
                                        p.partition_index,
                                        low,
                                    ),
                                );
                                match recorded {
                                    Ok(()) => result.with_low_watermark(low),
                                    Err(e) => {
                                        result.with_error_code(e.code()).with_low_watermark(-1)
                                    }
                                }
                            }
                            Ok(low) => result.with_low_watermark(low),
                            Err(e) => result
                                .with_error_code(ApiError::from(e).code())
                                .with_low_watermark(-1),
                        }
                    })
                    .collect();
                DeleteRecordsTopicResult::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect()
    });
    DeleteRecordsResponse::default().with_topics(topics)
}
