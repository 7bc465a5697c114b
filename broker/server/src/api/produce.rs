//! Produce: appends each partition's record batches to its log as received (the log engine checks
//! and stamps them), then answers with the assigned base offset. acks=0 gets no response at all,
//! as in Kafka. On a single node the high watermark moves with every append, so acks=1 and
//! acks=all are both complete once the append returns; acks=all still enforces
//! `min.insync.replicas` against the in-sync replica count.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use strait_config::effective_topic_config;
use tracing::warn;

use super::{RequestContext, error_name, now_ms, str_bytes};
use crate::broker::{Broker, Topic, unknown_topic};
use crate::errors::ApiError;

/// First Produce version that names topics by id (KIP-516).
const TOPIC_ID_VERSION: i16 = 13;
/// A single node is the only in-sync replica of its partitions.
const IN_SYNC_REPLICAS: i32 = 1;
/// Single-node partitions never change leader, so their leader epoch stays at 0.
const LEADER_EPOCH: i32 = 0;

pub async fn handle(
    broker: &Arc<Broker>,
    req: ProduceRequest,
    ctx: &RequestContext,
) -> Option<ProduceResponse> {
    let version = ctx.api_version;
    let acks = req.acks;
    let now = now_ms();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    // Appends touch the disk (and fsync under flush.messages); keep them off the async workers'
    // hot path without a thread hop per partition.
    tokio::task::block_in_place(|| {
        for topic_data in req.topic_data {
            let topic = if version >= TOPIC_ID_VERSION {
                broker
                    .topic_by_id(&topic_data.topic_id)
                    .ok_or_else(|| ApiError::new(ResponseError::UnknownTopicId, "unknown topic id"))
            } else {
                broker
                    .topic(topic_data.name.0.as_str())
                    .ok_or_else(|| unknown_topic(topic_data.name.0.as_str()))
            };
            let partition_responses = topic_data
                .partition_data
                .into_iter()
                .map(|data| {
                    let index = data.index;
                    let records_len = data.records.as_ref().map(|r| r.len()).unwrap_or(0);
                    let result = match &topic {
                        Ok(_) if acks != 0 && acks != 1 && acks != -1 => Err(ApiError::new(
                            ResponseError::InvalidRequiredAcks,
                            format!("acks must be -1, 0 or 1, got {acks}"),
                        )),
                        Ok(topic) => append(broker, topic, data, acks, now),
                        Err(e) => Err(e.clone()),
                    };
                    if let Ok(topic) = &topic {
                        let m = &broker.metrics;
                        let name = [topic.meta.name.as_str()];
                        m.produce_requests.with_label_values(&name).inc();
                        match &result {
                            Ok(a) if !a.duplicate => {
                                m.messages_in
                                    .with_label_values(&name)
                                    .inc_by(a.record_count);
                                m.bytes_in
                                    .with_label_values(&name)
                                    .inc_by(records_len as u64);
                            }
                            Ok(_) => {}
                            Err(e) => {
                                m.failed_produce_requests.with_label_values(&name).inc();
                                m.errors
                                    .with_label_values(&["Produce", error_name(e.error).as_str()])
                                    .inc();
                            }
                        }
                    }
                    partition_response(index, result)
                })
                .collect();
            let mut resp =
                TopicProduceResponse::default().with_partition_responses(partition_responses);
            if version >= TOPIC_ID_VERSION {
                resp.topic_id = topic_data.topic_id;
            } else {
                resp.name = topic_data.name;
            }
            responses.push(resp);
        }
    });
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}

struct Appended {
    base_offset: i64,
    log_append_time: i64,
    log_start_offset: i64,
    record_count: u64,
    duplicate: bool,
}

fn append(
    broker: &Broker,
    topic: &Topic,
    data: PartitionProduceData,
    acks: i16,
    now: i64,
) -> Result<Appended, ApiError> {
    let Some(partition) = topic.partition(data.index) else {
        return Err(ApiError::new(
            ResponseError::UnknownTopicOrPartition,
            format!(
                "Partition {} of topic {} does not exist",
                data.index, topic.meta.name
            ),
        ));
    };
    let records = data.records.unwrap_or_default();
    if records.is_empty() {
        return Err(ApiError::new(
            ResponseError::InvalidRecord,
            "Produce request has no record batches",
        ));
    }
    if acks == -1 {
        let min_isr =
            effective_topic_config(&topic.meta.configs, &broker.config).min_insync_replicas;
        if IN_SYNC_REPLICAS < min_isr {
            return Err(ApiError::new(
                ResponseError::NotEnoughReplicas,
                format!(
                    "The size of the current ISR {IN_SYNC_REPLICAS} is insufficient to satisfy the min.isr requirement of {min_isr} for partition {}-{}",
                    topic.meta.name, data.index
                ),
            ));
        }
    }
    let info = partition.log.append(&records, LEADER_EPOCH, now).map_err(|e| {
        let e = ApiError::from(e);
        if e.error == ResponseError::KafkaStorageError {
            warn!(topic = %topic.meta.name, partition = data.index, error = %e.message, "append failed");
        }
        e
    })?;
    partition
        .log
        .set_high_watermark(partition.log.log_end_offset());
    partition.appended.notify_waiters();
    Ok(Appended {
        base_offset: info.first_offset,
        log_append_time: info.log_append_time,
        log_start_offset: info.log_start_offset,
        record_count: info.record_count,
        duplicate: info.duplicate,
    })
}

fn partition_response(index: i32, result: Result<Appended, ApiError>) -> PartitionProduceResponse {
    let resp = PartitionProduceResponse::default().with_index(index);
    match result {
        Ok(a) => resp
            .with_base_offset(a.base_offset)
            .with_log_append_time_ms(a.log_append_time)
            .with_log_start_offset(a.log_start_offset),
        Err(e) => resp
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(e.message)))
            .with_base_offset(-1)
            .with_log_append_time_ms(-1)
            .with_log_start_offset(-1),
    }
}
