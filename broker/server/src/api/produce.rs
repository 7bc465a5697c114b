//! Produce: the partition leader appends each partition's record batches to its log as received
//! (through the replica manager's leader append; the log engine checks and stamps them with the
//! leader epoch), then answers with the assigned base offset. acks=0 gets no response at all, as in Kafka; acks=1 is answered after the local
//! append; acks=all requires `min.insync.replicas` in-sync replicas before appending
//! (NOT_ENOUGH_REPLICAS) and waits until the high watermark passes the appended records, failing
//! with NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below the minimum meanwhile, or
//! REQUEST_TIMED_OUT after the request's timeout. Non-leaders answer NOT_LEADER_OR_FOLLOWER.
//!
//! Linked mirror topics (`strait.mirror.source` set) refuse producers (INVALID_REQUEST). Their
//! data comes from a mirror link: a request whose transactional id is
//! [`strait_client::link::TRANSACTIONAL_ID`], needing ALTER on the topic rather than WRITE,
//! whose batches the leader appends verbatim like a follower. A link append starting below the
//! log end gets OFFSET_OUT_OF_RANGE with the log end as base offset, where the link resumes.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use tracing::warn;

use super::authz::{Authz, op, topic_denied};
use super::{RequestContext, error_name, str_bytes};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::errors::ApiError;
use crate::partition::Replicated;
use crate::replica_manager::{AppendError, LeaderAppend, Partition, RequiredAcks, Topic};
use strait_storage::LogError;

/// First Produce version that names topics by id (KIP-516).
const TOPIC_ID_VERSION: i16 = 13;
/// First Produce version with leader hints on NOT_LEADER_OR_FOLLOWER (KIP-951).
const LEADER_HINT_VERSION: i16 = 10;
/// Bound on an acks=all wait whatever the request asks.
const MAX_ACK_WAIT: Duration = Duration::from_secs(300);

/// A produce request whose appends are done: what is left is the acks=all wait and the response.
/// Staging happens in request order on the connection; the wait does not block the connection
/// (see `crate::net::server`), so a client's next requests are appended while this one waits.
pub struct Staged {
    acks: i16,
    /// One deadline for the whole request, as Kafka's DelayedProduce: partitions waited for one
    /// after another must not each get the full timeout.
    deadline: tokio::time::Instant,
    topics: Vec<StagedTopic>,
}

struct StagedTopic {
    name: kafka_protocol::messages::TopicName,
    topic_id: uuid::Uuid,
    topic: Option<Arc<Topic>>,
    results: Vec<(i32, Result<Appended, ApiError>)>,
}

impl Staged {
    /// Whether the response needs nothing more than the appends: acks=0/1, or acks=all with no
    /// partition appended.
    pub fn is_complete(&self) -> bool {
        self.acks != -1
            || self
                .topics
                .iter()
                .all(|t| t.results.iter().all(|(_, r)| r.is_err()))
    }

    /// acks=0 gets no response at all, as in Kafka.
    pub fn wants_response(&self) -> bool {
        self.acks != 0
    }
}

/// Appends every partition's records as leader, in request order; partitions in `refused`
/// (KIP-890 verification failed) get their error instead.
pub fn stage(
    broker: &Arc<Broker>,
    req: ProduceRequest,
    ctx: &RequestContext,
    refused: crate::txn::verify::Refused,
) -> Staged {
    let version = ctx.api_version;
    let acks = req.acks;
    let link = req
        .transactional_id
        .as_ref()
        .is_some_and(|t| t.as_str() == strait_client::link::TRANSACTIONAL_ID);
    // A link rewrites a topic's history as another cluster wrote it: more than a producer may.
    let write = if link { op::ALTER } else { op::WRITE };
    let now = now_ms();
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64).min(MAX_ACK_WAIT);
    let authz = Authz::new(broker, ctx);
    let resolved: Vec<_> = req
        .topic_data
        .into_iter()
        .map(|topic_data| {
            // Kafka checks WRITE before existence: no answer tells an unauthorized client
            // whether a topic exists.
            if version < TOPIC_ID_VERSION && !authz.topic(write, topic_data.name.0.as_str()) {
                let denied = Err(topic_denied(topic_data.name.0.as_str()));
                return (topic_data, denied);
            }
            let topic = if version >= TOPIC_ID_VERSION {
                broker
                    .replicas
                    .topic_by_id(&topic_data.topic_id)
                    .ok_or_else(|| {
                        broker
                            .replicas
                            .missing_topic_error_by_id(&topic_data.topic_id)
                    })
            } else {
                broker
                    .replicas
                    .topic(topic_data.name.0.as_str())
                    .ok_or_else(|| {
                        broker
                            .replicas
                            .missing_topic_error(topic_data.name.0.as_str())
                    })
            };
            let topic = match topic {
                Ok(t) if !authz.topic(write, &t.meta.name) => Err(topic_denied(&t.meta.name)),
                other => other,
            };
            (topic_data, topic)
        })
        .collect();
    // An append writes to the page cache, which takes microseconds; handing the worker thread
    // off (`block_in_place`) costs more than that on every request. Only a topic that fsyncs
    // on append (`flush.messages`) may block long enough to need it.
    let may_fsync = resolved
        .iter()
        .any(|(_, t)| matches!(t, Ok(t) if t.config.flush_messages.is_some()));
    let append_all = || {
        resolved
            .into_iter()
            .map(|(topic_data, topic)| {
                let results = topic_data
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
                            Ok(topic) if link => link_append(broker, topic, data, acks, now),
                            Ok(topic) if topic.config.mirror_source.is_some() => {
                                Err(read_only_mirror(topic))
                            }
                            Ok(topic) if !refused.is_empty() => {
                                match refused.get(&(topic.meta.name.clone(), index)) {
                                    Some(e) => Err(e.clone()),
                                    None => append(broker, topic, data, acks, now),
                                }
                            }
                            Ok(topic) => append(broker, topic, data, acks, now),
                            Err(e) => Err(e.clone()),
                        };
                        if let Ok(topic) = &topic {
                            count(broker, topic, &result, records_len);
                        }
                        (index, result)
                    })
                    .collect();
                StagedTopic {
                    name: topic_data.name,
                    topic_id: topic_data.topic_id,
                    topic: topic.ok(),
                    results,
                }
            })
            .collect()
    };
    let topics = if may_fsync {
        tokio::task::block_in_place(append_all)
    } else {
        append_all()
    };
    Staged {
        acks,
        deadline: tokio::time::Instant::now() + timeout,
        topics,
    }
}

fn count(broker: &Broker, topic: &Topic, result: &Result<Appended, ApiError>, bytes: usize) {
    let m = &broker.metrics;
    let name = [topic.meta.name.as_str()];
    m.produce_requests.with_label_values(&name).inc();
    match result {
        Ok(a) if !a.duplicate => {
            m.messages_in
                .with_label_values(&name)
                .inc_by(a.record_count);
            m.bytes_in.with_label_values(&name).inc_by(bytes as u64);
        }
        Ok(_) => {}
        Err(e) => record_failure(broker, &topic.meta.name, e),
    }
}

/// Waits for replication (acks=all) and builds the response.
pub async fn complete(broker: &Broker, staged: Staged, ctx: &RequestContext) -> ProduceResponse {
    let version = ctx.api_version;
    let acks = staged.acks;
    let deadline = staged.deadline;
    let mut responses = Vec::with_capacity(staged.topics.len());
    let mut endpoints: Vec<NodeEndpoint> = Vec::new();
    let _parked = (acks == -1).then(|| broker.metrics.delayed("Produce"));
    let mut staged = staged;
    reserve_mirrored_producer_ids(broker, &mut staged).await;
    for StagedTopic {
        name,
        topic_id,
        topic,
        results,
    } in staged.topics
    {
        let mut partition_responses = Vec::with_capacity(results.len());
        for (index, mut result) in results {
            if let (Ok(appended), -1, Some(topic)) = (&result, acks, &topic)
                && let Err(e) = wait_for_replication(
                    topic,
                    appended,
                    deadline.saturating_duration_since(tokio::time::Instant::now()),
                )
                .await
            {
                record_failure(broker, &topic.meta.name, &e);
                result = Err(e);
            }
            let not_leader =
                matches!(&result, Err(e) if e.error == ResponseError::NotLeaderOrFollower);
            let mut resp = partition_response(index, result);
            if not_leader && version >= LEADER_HINT_VERSION {
                let topic_name = match &topic {
                    Some(t) => Some(t.meta.name.clone()),
                    None if version >= TOPIC_ID_VERSION => broker
                        .node()
                        .image()
                        .topic_by_id(&topic_id)
                        .map(|t| t.name.clone()),
                    None => Some(name.0.to_string()),
                };
                if let Some(hint) =
                    topic_name.and_then(|t| broker.node().leader_hint(&t, index, &ctx.listener))
                {
                    resp.current_leader = LeaderIdAndEpoch::default()
                        .with_leader_id(BrokerId(hint.id))
                        .with_leader_epoch(hint.epoch);
                    if !endpoints
                        .iter()
                        .any(|e: &NodeEndpoint| e.node_id.0 == hint.id)
                    {
                        endpoints.push(
                            NodeEndpoint::default()
                                .with_node_id(BrokerId(hint.id))
                                .with_host(str_bytes(hint.host))
                                .with_port(i32::from(hint.port))
                                .with_rack(hint.rack.map(str_bytes)),
                        );
                    }
                }
            }
            partition_responses.push(resp);
        }
        let mut resp =
            TopicProduceResponse::default().with_partition_responses(partition_responses);
        if version >= TOPIC_ID_VERSION {
            resp.topic_id = topic_id;
        } else {
            resp.name = name;
        }
        responses.push(resp);
    }
    ProduceResponse::default()
        .with_responses(responses)
        .with_node_endpoints(endpoints)
}

/// A link append is acknowledged only once the producer ids it brought are reserved, so that a
/// failover right after it cannot hand one out here. Failing that, its partitions answer
/// REQUEST_TIMED_OUT: the link retries, is told the log end, and the next append reserves again.
async fn reserve_mirrored_producer_ids(broker: &Broker, staged: &mut Staged) {
    let below = staged
        .topics
        .iter()
        .flat_map(|t| t.results.iter())
        .filter_map(|(_, r)| r.as_ref().ok()?.reserve_producer_ids_below)
        .max();
    let Some(below) = below else {
        return;
    };
    if let Err(e) = crate::node::mirror_claims::reserve_producer_ids(broker.node(), below).await {
        warn!(below, error = %e, "producer ids of mirrored producers not reserved");
        for (_, result) in staged.topics.iter_mut().flat_map(|t| t.results.iter_mut()) {
            if matches!(result, Ok(a) if a.reserve_producer_ids_below.is_some()) {
                *result = Err(ApiError::new(
                    ResponseError::RequestTimedOut,
                    format!(
                        "the records are written but the source's producer ids could not be reserved: {e}"
                    ),
                ));
            }
        }
    }
}

fn record_failure(broker: &Broker, topic: &str, e: &ApiError) {
    let m = &broker.metrics;
    m.failed_produce_requests.with_label_values(&[topic]).inc();
    m.errors
        .with_label_values(&["Produce", error_name(e.error).as_str()])
        .inc();
}

/// acks=all: waits until the high watermark covers the appended records while this broker still
/// leads in the same epoch; then the ISR must still meet `min.insync.replicas`.
async fn wait_for_replication(
    topic: &Topic,
    appended: &Appended,
    timeout: Duration,
) -> Result<(), ApiError> {
    let partition = &appended.partition;
    let target = appended.last_offset + 1;
    match partition
        .wait_for_high_watermark(target, appended.leader_epoch, timeout)
        .await
    {
        Replicated::Yes => {}
        Replicated::LostLeadership => {
            return Err(ApiError::new(
                ResponseError::NotLeaderOrFollower,
                format!(
                    "Leadership of {}-{} moved before the records were replicated",
                    topic.meta.name, partition.index
                ),
            ));
        }
        Replicated::TimedOut => {
            return Err(ApiError::new(
                ResponseError::RequestTimedOut,
                format!(
                    "Records of {}-{} were not replicated to the ISR within {} ms",
                    topic.meta.name,
                    partition.index,
                    timeout.as_millis()
                ),
            ));
        }
    }
    let min_isr = topic.config.min_insync_replicas;
    let isr = partition.replica().isr.len() as i32;
    if isr < min_isr {
        return Err(ApiError::new(
            ResponseError::NotEnoughReplicasAfterAppend,
            format!(
                "The records of {}-{} were written but the ISR shrank to {isr}, below min.insync.replicas {min_isr}",
                topic.meta.name, partition.index
            ),
        ));
    }
    Ok(())
}

struct Appended {
    partition: Arc<Partition>,
    /// A link append brought producer ids to reserve below this before answering.
    reserve_producer_ids_below: Option<i64>,
    leader_epoch: i32,
    last_offset: i64,
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
    let index = data.index;
    let records = data.records.unwrap_or_default();
    broker
        .replicas
        .append_as_leader(topic, index, &records, required_acks(acks), now)
        .map(appended)
        .map_err(|e| append_error(broker, topic, index, e))
}

/// A mirror link's append to a linked mirror topic: the source's batches as they are.
fn link_append(
    broker: &Broker,
    topic: &Topic,
    data: PartitionProduceData,
    acks: i16,
    now: i64,
) -> Result<Appended, ApiError> {
    let index = data.index;
    if topic.config.mirror_source.is_none() {
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!(
                "topic '{}' is not a mirror topic (strait.mirror.source is not set): it was failed over or never linked",
                topic.meta.name
            ),
        ));
    }
    let records = data.records.unwrap_or_default();
    broker
        .replicas
        .append_from_link(topic, index, &records, required_acks(acks), now)
        .map(|a| {
            let reserve = broker.replicas.unreserved_producer_ids(&a.partition);
            Appended {
                reserve_producer_ids_below: reserve,
                ..appended(a)
            }
        })
        .map_err(|e| match e {
            AppendError::Log(LogError::UnexpectedOffset { expected, got }) => {
                let mut e = ApiError::new(
                    ResponseError::OffsetOutOfRange,
                    format!(
                        "link append at offset {got} of {}-{index}, which ends at {expected}: resume there",
                        topic.meta.name
                    ),
                );
                e.resume_at = Some(expected);
                e
            }
            e => append_error(broker, topic, index, e),
        })
}

fn read_only_mirror(topic: &Topic) -> ApiError {
    ApiError::new(
        ResponseError::InvalidRequest,
        format!(
            "topic '{}' is a read-only mirror of '{}' (strait.mirror.source); fail it over to write to it",
            topic.meta.name,
            topic.config.mirror_source.as_deref().unwrap_or_default()
        ),
    )
}

fn required_acks(acks: i16) -> RequiredAcks {
    if acks == -1 {
        RequiredAcks::All
    } else {
        RequiredAcks::Leader
    }
}

fn appended(appended: LeaderAppend) -> Appended {
    let info = appended.info;
    Appended {
        partition: appended.partition,
        leader_epoch: appended.leader_epoch,
        last_offset: info.last_offset,
        base_offset: info.first_offset,
        log_append_time: info.log_append_time,
        log_start_offset: info.log_start_offset,
        record_count: info.record_count,
        duplicate: info.duplicate,
        reserve_producer_ids_below: None,
    }
}

fn append_error(broker: &Broker, topic: &Topic, index: i32, e: AppendError) -> ApiError {
    match e {
        AppendError::NotHosted { .. } => broker.replicas.missing_partition_error(topic, index),
        AppendError::NotLeader { .. } | AppendError::EpochRaisePending { .. } => {
            ApiError::new(ResponseError::NotLeaderOrFollower, e.to_string())
        }
        AppendError::NoRecords => ApiError::new(ResponseError::InvalidRecord, e.to_string()),
        AppendError::NotEnoughReplicas { .. } => {
            ApiError::new(ResponseError::NotEnoughReplicas, e.to_string())
        }
        AppendError::Log(e) => {
            let e = ApiError::from(e);
            if e.error == ResponseError::KafkaStorageError {
                warn!(topic = %topic.meta.name, partition = index, error = %e.message, "append failed");
            }
            e
        }
    }
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
            // KIP-467: which records of the batch were invalid, so the client fails only them.
            .with_record_errors(
                e.record_errors
                    .into_iter()
                    .map(|(index, why)| {
                        BatchIndexAndErrorMessage::default()
                            .with_batch_index(index)
                            .with_batch_index_error_message(Some(str_bytes(why)))
                    })
                    .collect(),
            )
            .with_base_offset(e.resume_at.unwrap_or(-1))
            .with_error_message(Some(str_bytes(e.message)))
            .with_log_append_time_ms(-1)
            .with_log_start_offset(-1),
    }
}
