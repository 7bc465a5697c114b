//! ListOffsets: earliest (-2, in the remote tier when it holds the log's start), latest (-1, the
//! high watermark), max timestamp (-3, KIP-734), earliest local (-4, KIP-1005), latest tiered
//! (-5: the last offset copied to the remote tier) and by timestamp, through the remote
//! segments' time indexes first and then the local time index.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::RequestContext;
use super::authz::{Authz, op};
use crate::broker::Broker;
use crate::replica_manager::Partition;

/// First version whose response carries the leader epoch (KIP-320).
const LEADER_EPOCH_VERSION: i16 = 4;
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub async fn handle(
    broker: &Arc<Broker>,
    req: ListOffsetsRequest,
    ctx: &RequestContext,
) -> ListOffsetsResponse {
    let with_epoch = ctx.api_version >= LEADER_EPOCH_VERSION;
    let read_committed = req.isolation_level == READ_COMMITTED;
    let authz = Authz::new(broker, ctx);
    let topics = tokio::task::block_in_place(|| {
        req.topics
            .into_iter()
            .map(|t| {
                let topic = broker.replicas.topic(t.name.0.as_str());
                let allowed = authz.topic(op::DESCRIBE, t.name.0.as_str());
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let base = ListOffsetsPartitionResponse::default()
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
                                return base
                                    .with_error_code(e.code())
                                    .with_offset(-1)
                                    .with_timestamp(-1);
                            }
                        };
                        let found = match lookup(
                            &partition,
                            p.timestamp,
                            p.current_leader_epoch,
                            read_committed,
                        ) {
                            Ok(local) if p.timestamp >= 0 => {
                                remote_lookup(broker, &partition, p.timestamp).map(|remote| {
                                    remote.map_or(local, |(offset, ts)| (offset, ts, local.2))
                                })
                            }
                            other => other,
                        };
                        match found {
                            Ok((offset, timestamp, epoch)) => base
                                .with_offset(offset)
                                .with_timestamp(timestamp)
                                .with_leader_epoch(if with_epoch { epoch } else { -1 }),
                            Err(e) => base
                                .with_error_code(e.code())
                                .with_offset(-1)
                                .with_timestamp(-1),
                        }
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect()
    });
    ListOffsetsResponse::default().with_topics(topics)
}

/// A timestamp lookup in the remote tier, when the log's start lies there: the remote segments
/// hold the older records, so a match there comes first.
fn remote_lookup(
    broker: &Broker,
    partition: &Partition,
    timestamp: i64,
) -> Result<Option<(i64, i64)>, ResponseError> {
    let log = &partition.log;
    let Some(rlm) = &broker.remote else {
        return Ok(None);
    };
    if log.log_start_offset() >= log.local_log_start_offset() {
        return Ok(None);
    }
    let topic = &log.topic_partition().topic;
    let Some(t) = broker.replicas.topic(topic) else {
        return Ok(None);
    };
    let image = broker.node().image();
    let at = crate::remote_log::reader::RemotePartitionRef {
        topic,
        topic_id: t.meta.id,
        partition: partition.index,
    };
    let found =
        tokio::runtime::Handle::current().block_on(rlm.offset_for_timestamp(&image, at, timestamp));
    found
        .map(|f| f.filter(|(offset, _)| *offset < log.local_log_start_offset()))
        .map_err(|e| {
            tracing::warn!(topic, partition = partition.index, error = %e, "tiered storage: remote timestamp lookup failed");
            ResponseError::KafkaStorageError
        })
}

/// ListOffsets' isolation level that stops at the last stable offset.
const READ_COMMITTED: i8 = 1;

/// Returns (offset, timestamp, leader epoch); Kafka answers -1/-1 when no record qualifies.
/// With `read_committed` the visible end is the last stable offset.
fn lookup(
    partition: &Partition,
    timestamp: i64,
    current_leader_epoch: i32,
    read_committed: bool,
) -> Result<(i64, i64, i32), ResponseError> {
    // Only the leader answers (KIP-320 epoch fencing as for Fetch).
    partition.replica().check_leader(current_leader_epoch)?;
    let log = &partition.log;
    let epoch = log.latest_epoch().unwrap_or(-1);
    let storage = |_| ResponseError::KafkaStorageError;
    let visible_end = if read_committed {
        log.last_stable_offset()
    } else {
        log.high_watermark()
    };
    match timestamp {
        LATEST => Ok((visible_end, -1, epoch)),
        EARLIEST => Ok((log.log_start_offset(), -1, epoch)),
        EARLIEST_LOCAL => Ok((log.local_log_start_offset(), -1, epoch)),
        LATEST_TIERED => Ok(match log.highest_remote_offset() {
            -1 => (-1, -1, -1),
            offset => (offset, -1, epoch),
        }),
        MAX_TIMESTAMP => Ok(log
            .max_timestamp_offset()
            .map_err(storage)?
            .map(|l| (l.offset, l.timestamp, l.leader_epoch.unwrap_or(epoch)))
            .unwrap_or((-1, -1, -1))),
        t if t >= 0 => Ok(log
            .offset_for_timestamp(t)
            .map_err(storage)?
            // Records past the high watermark (or the LSO) are not visible to consumers yet.
            .filter(|l| l.offset < visible_end)
            .map(|l| (l.offset, l.timestamp, l.leader_epoch.unwrap_or(epoch)))
            .unwrap_or((-1, -1, -1))),
        _ => Err(ResponseError::InvalidRequest),
    }
}
