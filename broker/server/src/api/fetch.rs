//! Fetch: serves whole record batches from file regions, starting with the batch that holds the
//! fetch offset, bounded by the high watermark, `partition_max_bytes` and the response's
//! `max_bytes` (the first batch is always returned whole, KIP-74). When less than `min_bytes` is
//! available it long-polls until an append to one of the partitions or `max_wait_ms`. The
//! expensive part, reading the bytes, happens once, after the wait. Incremental fetch sessions
//! (KIP-227, `crate::fetch_session`) let a client send only what changed and get back only the
//! partitions with something new.
//!
//! A fetch with a replica id is a follower's: only the leader serves it, it records the
//! follower's progress (which may move the high watermark) and reads up to the log end rather
//! than the high watermark. A consumer's fetch (v11+) may go to any replica (KIP-392): a
//! follower serves it up to the high watermark it knows, and with `replica.selector.class` set
//! the leader answers a consumer that names its `client.rack` with a `preferred_read_replica` in
//! that rack and no records, so the consumer moves there. Leader epochs in the request are
//! checked against the one this replica knows (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH,
//! KIP-320).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{BrokerId, ProducerId};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use strait_storage::{FileRegion, LogError};
use tokio::sync::futures::Notified;
use tokio::time::Instant;

use super::authz::{Authz, op};
use super::{RequestContext, error_name, str_bytes};
use crate::broker::Broker;
use crate::fetch_session::{PartitionAnswer, PartitionKey, Plan, SessionPartition, TopicKey};
use crate::replica_manager::Partition;
use crate::zero_copy::Splices;

/// First Fetch version that names topics by id (KIP-516).
const TOPIC_ID_VERSION: i16 = 13;
/// First version with `current_leader_epoch` (KIP-320).
const LEADER_EPOCH_VERSION: i16 = 9;
/// First version with the client's rack, from which a consumer may fetch from a follower (KIP-392).
const CLIENT_METADATA_VERSION: i16 = 11;
/// First version with the current leader on NOT_LEADER_OR_FOLLOWER/FENCED_LEADER_EPOCH.
const LEADER_HINT_VERSION: i16 = 12;
/// First version with the leaders' endpoints (KIP-951).
const NODE_ENDPOINTS_VERSION: i16 = 16;
/// First version that carries the replica id inside `replica_state` (KIP-903).
const REPLICA_STATE_VERSION: i16 = 15;
/// Upper bound on a long poll, whatever the client asks (Kafka caps it by the request timeout).
const MAX_WAIT_CAP: Duration = Duration::from_secs(60);
const READ_COMMITTED: i8 = 1;
/// Largest read done on the async worker itself.
const INLINE_READ_MAX: u64 = 1024 * 1024;

/// One requested partition, resolved once per request.
struct Slot {
    topic_index: usize,
    partition_index: i32,
    fetch_offset: i64,
    max_bytes: u64,
    target: Result<Arc<Partition>, ResponseError>,
    /// A follower's fetch reads up to the log end; a consumer's up to the high watermark, or
    /// the last stable offset with `read_committed`.
    follower: bool,
    read_committed: bool,
    /// KIP-392: the replica the consumer should fetch from instead; nothing is read.
    preferred: Option<i32>,
    /// A consumer's fetch this broker serves as a follower (KIP-392), for its metric.
    from_follower: bool,
}

/// One topic's share of a fetch, for its metrics.
#[derive(Default)]
struct TopicCounts {
    partition: Option<Arc<Partition>>,
    fetches: u64,
    bytes: u64,
    /// Of `bytes`, those served to consumers by this broker as a follower.
    follower_bytes: u64,
    redirects: u64,
    failed: u64,
}

/// What a pass over the partitions found, before any bytes are read.
struct Planned {
    error: ResponseError,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    regions: Vec<FileRegion>,
    /// read_committed: the aborted transactions the returned range overlaps, as (producer id,
    /// first offset), so the client drops their records.
    aborted: Vec<(i64, i64)>,
    /// A consumer's fetch below the local log start: (offset, max bytes) to read from the remote
    /// tier (KIP-405).
    remote: Option<(i64, u64)>,
}

/// The response, and the file regions its records come from when they go out by `sendfile`
/// (empty when the records are in the response).
/// The fetching replica's id (-1 for a consumer): in `replica_state` from v15.
pub fn replica_id(req: &FetchRequest, version: i16) -> i32 {
    if version >= REPLICA_STATE_VERSION {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    }
}

/// Record bytes a response carries in memory (zero-copy regions are counted separately).
pub fn inline_record_bytes(resp: &FetchResponse) -> u64 {
    resp.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| p.records.as_ref().map_or(0, |r| r.len() as u64))
        .sum()
}

pub async fn handle(
    broker: &Arc<Broker>,
    mut req: FetchRequest,
    ctx: &RequestContext,
) -> (FetchResponse, Splices) {
    let version = ctx.api_version;
    let (session_id, incremental) = match begin_session(broker, &mut req, version) {
        Ok(session) => session,
        Err(e) => {
            let response = FetchResponse::default()
                .with_error_code(e.code())
                .with_session_id(0);
            return (response, Splices::default());
        }
    };
    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let deadline = Instant::now() + wait;
    let min_bytes = req.min_bytes.max(0) as u64;
    let response_max = req.max_bytes.max(0) as u64;
    let replica_id = replica_id(&req, version);
    let follower = replica_id >= 0;
    let read_committed = !follower && req.isolation_level == READ_COMMITTED;
    let received = std::time::Instant::now();
    // A follower's fetch needs CLUSTER_ACTION; a consumer's, READ on each topic.
    let authz = Authz::new(broker, ctx);
    let follower_allowed = !follower || authz.cluster(op::CLUSTER_ACTION);
    // KIP-392: a consumer that knows the client metadata fields may read from any replica, and
    // one that names its rack may be sent to a follower there.
    let any_replica = !follower && version >= CLIENT_METADATA_VERSION;
    let client_rack = (any_replica && broker.config.rack_aware_replica_selector)
        .then(|| req.rack_id.as_str().to_string())
        .filter(|rack| !rack.is_empty());
    let image = client_rack.as_ref().map(|_| broker.node().image());
    let rack_of = |id: i32| -> Option<Option<String>> {
        let b = image.as_ref()?.brokers.get(&id).filter(|b| !b.fenced)?;
        b.endpoint(&ctx.listener)?;
        Some(b.rack.clone())
    };
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut topic_keys: Vec<TopicKey> = Vec::new();
    let mut slots: Vec<Slot> = Vec::new();
    for (topic_index, t) in req.topics.into_iter().enumerate() {
        let topic = if version >= TOPIC_ID_VERSION {
            broker.replicas.topic_by_id(&t.topic_id)
        } else {
            broker.replicas.topic(t.topic.0.as_str())
        };
        let missing = if version >= TOPIC_ID_VERSION {
            broker.replicas.missing_topic_error_by_id(&t.topic_id).error
        } else {
            broker
                .replicas
                .missing_topic_error(t.topic.0.as_str())
                .error
        };
        let allowed = match &topic {
            _ if follower => follower_allowed,
            Some(topic) => authz.topic(op::READ, &topic.meta.name),
            None if version < TOPIC_ID_VERSION => authz.topic(op::READ, t.topic.0.as_str()),
            None => true,
        };
        for p in &t.partitions {
            let mut preferred = None;
            let mut from_follower = false;
            let target = match &topic {
                _ if !allowed => Err(ResponseError::TopicAuthorizationFailed),
                None => Err(missing),
                Some(topic) => match topic.partition(p.partition) {
                    None => Err(broker
                        .replicas
                        .missing_partition_error(topic, p.partition)
                        .error),
                    Some(partition) => {
                        let asked = if version >= LEADER_EPOCH_VERSION {
                            p.current_leader_epoch
                        } else {
                            -1
                        };
                        let (checked, leads) = {
                            let replica = partition.replica();
                            let checked = if any_replica {
                                replica.check_replica(asked)
                            } else {
                                replica.check_leader(asked)
                            };
                            (checked, replica.is_leader())
                        };
                        if follower && checked.is_ok() {
                            partition.record_follower_fetch(
                                replica_id,
                                p.fetch_offset,
                                p.log_start_offset,
                                received,
                            );
                        }
                        if checked.is_ok() && !follower {
                            from_follower = !leads;
                            if let Some(rack) = client_rack.as_deref().filter(|_| leads) {
                                preferred = partition.preferred_read_replica(
                                    rack,
                                    broker.config.broker_rack.as_deref(),
                                    p.fetch_offset,
                                    rack_of,
                                    received,
                                );
                            }
                        }
                        checked.map(|()| partition.clone())
                    }
                },
            };
            slots.push(Slot {
                topic_index,
                partition_index: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as u64,
                target,
                follower,
                read_committed,
                preferred,
                from_follower,
            });
        }
        topic_keys.push(topic_key(version, &t.topic, t.topic_id));
        let mut resp = FetchableTopicResponse::default();
        if version >= TOPIC_ID_VERSION {
            resp.topic_id = t.topic_id;
        } else {
            resp.topic = t.topic;
        }
        topics.push(resp);
    }

    let mut planned = loop {
        // Register interest before looking, so an append that lands between the look and the wait
        // still wakes us.
        let mut wakeups: Vec<Pin<Box<Notified<'_>>>> = slots
            .iter()
            .filter_map(|s| s.target.as_ref().ok())
            .map(|p| Box::pin(p.appended.notified()))
            .collect();
        for w in &mut wakeups {
            w.as_mut().enable();
        }
        let planned = plan(&slots, response_max);
        let available = planned_bytes(&planned);
        let any_error = planned.iter().any(|p| p.error.code() != 0);
        // A consumer sent elsewhere should go at once, as Kafka answers it.
        let redirected = slots.iter().any(|s| s.preferred.is_some());
        let remote = planned.iter().any(|p| p.remote.is_some());
        if available >= min_bytes
            || any_error
            || remote
            || redirected
            || wakeups.is_empty()
            || Instant::now() >= deadline
        {
            break planned;
        }
        let _parked = broker.metrics.delayed("Fetch");
        let woke = tokio::time::timeout_at(deadline, futures::future::select_all(wakeups)).await;
        if woke.is_err() {
            // Timed out: answer with whatever is there now.
            break plan(&slots, response_max);
        }
    };

    // Recent data is in the page cache and copies in microseconds, less than handing the worker
    // thread off (`block_in_place`) costs; a big read may touch the disk, and then it is worth it.
    let mut splices = Splices::default();
    let data = if ctx.zero_copy {
        // The bytes go from the files to the socket when the response is written.
        planned
            .iter_mut()
            .map(|p| splices.records(std::mem::take(&mut p.regions)))
            .collect()
    } else if planned_bytes(&planned) > INLINE_READ_MAX {
        tokio::task::block_in_place(|| read_all(&planned))
    } else {
        read_all(&planned)
    };
    let data = read_remote(broker, &slots, &planned, data).await;
    let mut endpoints: Vec<NodeEndpoint> = Vec::new();
    let mut answers: Vec<(PartitionKey, usize, PartitionData)> = Vec::with_capacity(slots.len());
    // Per-topic metrics are added once per topic, not per partition: a follower's fetch names
    // thousands of partitions and each label lookup hashes the topic name.
    let mut counts: Vec<TopicCounts> = (0..topics.len()).map(|_| TopicCounts::default()).collect();
    for ((slot, plan), records) in slots.iter().zip(&planned).zip(data) {
        let (error, records) = match records {
            Ok(r) => (plan.error, r),
            Err(_) => (ResponseError::KafkaStorageError, Bytes::new()),
        };
        if let Ok(p) = &slot.target {
            let c = &mut counts[slot.topic_index];
            c.partition.get_or_insert_with(|| p.clone());
            c.fetches += 1;
            c.bytes += records.len() as u64;
            if slot.from_follower {
                c.follower_bytes += records.len() as u64;
            }
            c.redirects += u64::from(slot.preferred.is_some());
            c.failed += u64::from(error.code() != 0);
        }
        if error.code() != 0 {
            broker
                .metrics
                .errors
                .with_label_values(&["Fetch", error_name(error).as_str()])
                .inc();
        }
        let mut pd = PartitionData::default()
            .with_partition_index(slot.partition_index)
            .with_high_watermark(plan.high_watermark)
            .with_last_stable_offset(plan.last_stable_offset)
            .with_log_start_offset(plan.log_start_offset)
            .with_preferred_read_replica(BrokerId(slot.preferred.unwrap_or(-1)))
            .with_records(Some(records));
        if error.code() != 0 {
            pd.error_code = error.code();
        }
        let leader_moved = matches!(
            error,
            ResponseError::NotLeaderOrFollower | ResponseError::FencedLeaderEpoch
        );
        if leader_moved && version >= LEADER_HINT_VERSION {
            let t = &topics[slot.topic_index];
            let node = broker.node();
            let name = if version >= TOPIC_ID_VERSION {
                node.image()
                    .topic_by_id(&t.topic_id)
                    .map(|t| t.name.clone())
            } else {
                Some(t.topic.0.to_string())
            };
            if let Some(hint) =
                name.and_then(|n| node.leader_hint(&n, slot.partition_index, &ctx.listener))
            {
                pd.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(hint.id))
                    .with_leader_epoch(hint.epoch);
                if version >= NODE_ENDPOINTS_VERSION
                    && !endpoints
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
        if read_committed {
            pd.aborted_transactions = Some(
                plan.aborted
                    .iter()
                    .map(|&(producer_id, first_offset)| {
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(producer_id))
                            .with_first_offset(first_offset)
                    })
                    .collect(),
            );
        }
        answers.push((
            (topic_keys[slot.topic_index].clone(), slot.partition_index),
            slot.topic_index,
            pd,
        ));
    }
    for c in counts {
        let Some(p) = c.partition else { continue };
        let m = &broker.metrics;
        let name = [p.log.topic_partition().topic.as_str()];
        m.fetch_requests.with_label_values(&name).inc_by(c.fetches);
        // Kafka counts replication apart from what clients read.
        if follower {
            m.replication_bytes_out
                .with_label_values(&name)
                .inc_by(c.bytes);
        } else {
            m.bytes_out.with_label_values(&name).inc_by(c.bytes);
        }
        if c.follower_bytes > 0 {
            m.follower_read_bytes
                .with_label_values(&name)
                .inc_by(c.follower_bytes);
        }
        if c.redirects > 0 {
            m.preferred_replica_redirects
                .with_label_values(&name)
                .inc_by(c.redirects);
        }
        if c.failed > 0 {
            m.failed_fetch_requests
                .with_label_values(&name)
                .inc_by(c.failed);
        }
    }
    let answered = broker.fetch_sessions.answer(
        session_id,
        incremental,
        answers.iter().map(|(key, _, pd)| {
            (
                key,
                PartitionAnswer {
                    has_records: pd.records.as_ref().is_some_and(|r| !r.is_empty())
                        || pd.preferred_read_replica.0 >= 0,
                    error: pd.error_code != 0,
                    high_watermark: pd.high_watermark,
                    log_start_offset: pd.log_start_offset,
                },
            )
        }),
    );
    for ((_, topic_index, pd), answered) in answers.into_iter().zip(answered) {
        if answered {
            topics[topic_index].partitions.push(pd);
        }
    }
    if incremental {
        topics.retain(|t| !t.partitions.is_empty());
    }
    let response = FetchResponse::default()
        .with_session_id(session_id)
        .with_responses(topics)
        .with_node_endpoints(endpoints);
    (response, splices)
}

fn topic_key(version: i16, name: &kafka_protocol::messages::TopicName, id: uuid::Uuid) -> TopicKey {
    if version >= TOPIC_ID_VERSION {
        TopicKey::Id(id)
    } else {
        TopicKey::Name(std::sync::Arc::from(name.0.as_str()))
    }
}

/// Applies the request to the session cache (KIP-227): returns the response's session id and
/// whether it is incremental; for an incremental fetch, `req.topics` becomes the session's whole
/// partition list so the rest of the handler reads them all.
fn begin_session(
    broker: &Broker,
    req: &mut FetchRequest,
    version: i16,
) -> Result<(i32, bool), ResponseError> {
    let requested: Vec<(PartitionKey, SessionPartition)> = req
        .topics
        .iter()
        .flat_map(|t| {
            let topic = topic_key(version, &t.topic, t.topic_id);
            t.partitions.iter().map(move |p| {
                (
                    (topic.clone(), p.partition),
                    SessionPartition::new(
                        p.fetch_offset,
                        p.partition_max_bytes,
                        p.current_leader_epoch,
                        p.log_start_offset,
                    ),
                )
            })
        })
        .collect();
    let forgotten: Vec<PartitionKey> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| {
            let topic = topic_key(version, &t.topic, t.topic_id);
            t.partitions.iter().map(move |p| (topic.clone(), *p))
        })
        .collect();
    let plan = broker.fetch_sessions.begin(
        req.session_id,
        req.session_epoch,
        requested,
        &forgotten,
        std::time::Instant::now(),
    );
    broker
        .metrics
        .fetch_sessions
        .set(broker.fetch_sessions.len() as i64);
    let plan = plan?;
    match plan {
        Plan::Full { session_id } => Ok((session_id, false)),
        Plan::Incremental {
            session_id,
            partitions,
        } => {
            let mut topics: Vec<FetchTopic> = Vec::new();
            for ((topic, index), p) in partitions {
                let partition = FetchPartition::default()
                    .with_partition(index)
                    .with_fetch_offset(p.fetch_offset)
                    .with_partition_max_bytes(p.max_bytes)
                    .with_current_leader_epoch(p.current_leader_epoch)
                    .with_log_start_offset(p.log_start_offset);
                let same = |t: &FetchTopic| match &topic {
                    TopicKey::Id(id) => t.topic_id == *id,
                    TopicKey::Name(name) => t.topic.0.as_str() == &**name,
                };
                match topics.last_mut().filter(|t| same(t)) {
                    Some(t) => t.partitions.push(partition),
                    None => {
                        let t = match &topic {
                            TopicKey::Id(id) => FetchTopic::default().with_topic_id(*id),
                            TopicKey::Name(name) => FetchTopic::default().with_topic(
                                kafka_protocol::messages::TopicName(str_bytes(name.to_string())),
                            ),
                        };
                        topics.push(t.with_partitions(vec![partition]));
                    }
                }
            }
            req.topics = topics;
            Ok((session_id, true))
        }
    }
}

/// Computes the regions every partition would return now, in request order, splitting the
/// response budget as Kafka does: each partition gets min(its limit, what is left), and only the
/// first partition that has data may exceed it to return one whole batch.
fn plan(slots: &[Slot], response_max: u64) -> Vec<Planned> {
    let mut left = response_max;
    let mut min_one = true;
    slots
        .iter()
        .map(|slot| {
            let partition = match &slot.target {
                Ok(p) => p,
                Err(e) => {
                    return Planned {
                        error: *e,
                        high_watermark: -1,
                        last_stable_offset: -1,
                        log_start_offset: -1,
                        regions: Vec::new(),
                        aborted: Vec::new(),
                        remote: None,
                    };
                }
            };
            let log = &partition.log;
            let hw = log.high_watermark();
            let lso = log.last_stable_offset();
            if slot.preferred.is_some() {
                return Planned {
                    error: no_error(),
                    high_watermark: hw,
                    last_stable_offset: lso,
                    log_start_offset: log.log_start_offset(),
                    regions: Vec::new(),
                    aborted: Vec::new(),
                    remote: None,
                };
            }
            let upper = if slot.follower {
                log.log_end_offset()
            } else if slot.read_committed {
                lso
            } else {
                hw
            };
            let read = log
                .read(slot.fetch_offset, slot.max_bytes.min(left), upper, min_one)
                .and_then(|read| {
                    let aborted = if slot.read_committed && read.bytes > 0 {
                        log.aborted_transactions(slot.fetch_offset, upper)?
                            .into_iter()
                            .map(|a| (a.producer_id, a.first_offset))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    Ok((read, aborted))
                });
            match read {
                Ok((read, aborted)) => {
                    if read.bytes > 0 {
                        min_one = false;
                        left = left.saturating_sub(read.bytes);
                    }
                    Planned {
                        error: no_error(),
                        high_watermark: read.high_watermark,
                        last_stable_offset: lso.min(read.high_watermark),
                        log_start_offset: read.log_start_offset,
                        regions: read.regions,
                        aborted,
                        remote: None,
                    }
                }
                Err(LogError::OffsetMovedToTieredStorage { .. }) if !slot.follower => Planned {
                    error: no_error(),
                    high_watermark: hw,
                    last_stable_offset: lso.min(hw),
                    log_start_offset: log.log_start_offset(),
                    regions: Vec::new(),
                    aborted: Vec::new(),
                    remote: Some((slot.fetch_offset, slot.max_bytes.min(left).max(1))),
                },
                Err(e) => Planned {
                    error: match e {
                        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
                        // A follower rebuilds from the leader's local log start (KIP-405).
                        LogError::OffsetMovedToTieredStorage { .. } => {
                            ResponseError::OffsetMovedToTieredStorage
                        }
                        _ => ResponseError::KafkaStorageError,
                    },
                    high_watermark: hw,
                    last_stable_offset: lso,
                    log_start_offset: log.log_start_offset(),
                    regions: Vec::new(),
                    aborted: Vec::new(),
                    remote: None,
                },
            }
        })
        .collect()
}

/// Fills in the records of partitions read below the local log start from the remote tier. A
/// store failure fails that partition with a retriable error; the others are unaffected.
async fn read_remote(
    broker: &Arc<Broker>,
    slots: &[Slot],
    planned: &[Planned],
    mut data: Vec<std::io::Result<Bytes>>,
) -> Vec<std::io::Result<Bytes>> {
    if planned.iter().all(|p| p.remote.is_none()) {
        return data;
    }
    let image = broker.node().image();
    for (i, (slot, plan)) in slots.iter().zip(planned).enumerate() {
        let (Some((offset, max_bytes)), Ok(partition)) = (plan.remote, &slot.target) else {
            continue;
        };
        let topic = &partition.log.topic_partition().topic;
        let read = match (&broker.remote, broker.replicas.topic(topic)) {
            (Some(rlm), Some(t)) => rlm
                .read(
                    &image,
                    &broker.metrics,
                    crate::remote_log::reader::RemotePartitionRef {
                        topic,
                        topic_id: t.meta.id,
                        partition: slot.partition_index,
                    },
                    offset,
                    usize::try_from(max_bytes).unwrap_or(usize::MAX),
                )
                .await
                .map_err(std::io::Error::other),
            _ => Err(std::io::Error::other("tiered storage is not available")),
        };
        data[i] = read;
    }
    data
}

/// Record bytes the planned regions hold.
fn planned_bytes(planned: &[Planned]) -> u64 {
    planned
        .iter()
        .flat_map(|p| &p.regions)
        .map(|r| u64::from(r.len))
        .sum()
}

/// `ResponseError` has no "none" variant; code 0 is represented by this sentinel.
fn no_error() -> ResponseError {
    ResponseError::Unknown(0)
}

fn read_all(planned: &[Planned]) -> Vec<std::io::Result<Bytes>> {
    planned
        .iter()
        .map(|p| {
            let total: usize = p.regions.iter().map(|r| r.len as usize).sum();
            let mut buf = Vec::with_capacity(total);
            for region in &p.regions {
                region.read_to_vec(&mut buf)?;
            }
            Ok(Bytes::from(buf))
        })
        .collect()
}
