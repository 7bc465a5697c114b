//! Transaction markers, after Kafka's `TransactionMarkerChannelManager` and the leader side of
//! WriteTxnMarkers. The coordinator hands a completed decision (producer, epoch, commit or
//! abort) and the transaction's partitions to [`send`], which groups them by their current
//! leader: partitions led here are written directly ([`write_local`]), the rest go out as one
//! WriteTxnMarkers request per leader over a cached inter-broker connection. [`write_local`] is
//! also what the WriteTxnMarkers handler runs: one control batch per partition through the
//! leader append (acks=all), answered once the ISR has it; on `__consumer_offsets` the group
//! coordinator then applies or drops the producer's transactional offset commits.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use strait_client::{ConnectOptions, Connection};
use strait_storage::ControlType;
use tracing::{debug, warn};

use crate::api::str_bytes;
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::errors::ApiError;
use crate::group::OFFSETS_TOPIC;
use crate::partition::Replicated;
use crate::replica_manager::AppendError;

/// WriteTxnMarkers' only version in Kafka 4 (v0 was removed).
pub const WRITE_TXN_MARKERS_VERSION: i16 = 1;
/// How long a marker may wait for the partition's ISR before the coordinator retries it.
const MARKER_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Partitions by topic.
pub type Partitions = BTreeMap<String, BTreeSet<i32>>;

/// The coordinator's marker must stop: a newer coordinator or producer epoch owns the
/// transaction now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stale(pub ResponseError);

/// Inter-broker connections the transaction machinery talks to other brokers on (markers to
/// partition leaders, KIP-890 verification to coordinators), one per broker, reused.
#[derive(Default)]
pub struct Channels {
    connections: tokio::sync::Mutex<HashMap<i32, Connection>>,
}

impl Channels {
    /// Sends `request` to broker `node` at `version` over the cached connection (opened on first
    /// use, dropped after a failure so the next call reconnects).
    pub async fn call<R: kafka_protocol::protocol::Request>(
        &self,
        broker: &Broker,
        node: i32,
        version: i16,
        request: &R,
    ) -> Result<R::Response, ApiError> {
        let mut connections = self.connections.lock().await;
        let conn = match connections.entry(node) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(connect(broker, node).await?),
        };
        let answer = conn.call(version, request).await;
        answer.map_err(|e| {
            // The broker may have restarted: the next call reconnects.
            connections.remove(&node);
            ApiError::new(
                ResponseError::CoordinatorNotAvailable,
                format!("request to broker {node}: {e}"),
            )
        })
    }
}

/// Writes the markers of one decided transaction to every partition in `partitions`. Returns
/// the partitions still to do (their leader was unavailable or moved: retry them), or [`Stale`]
/// when a partition refused the marker because this coordinator or epoch is outdated.
pub async fn send(
    broker: &Arc<Broker>,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    partitions: &Partitions,
) -> Result<Partitions, Stale> {
    let image = broker.node().image();
    let me = broker.config.node_id;
    let mut by_leader: BTreeMap<i32, Partitions> = BTreeMap::new();
    let mut remaining = Partitions::new();
    for (topic, ps) in partitions {
        // A deleted topic needs no marker (Kafka drops it from the transaction too).
        let Some(t) = image.topic(topic) else {
            continue;
        };
        for &p in ps {
            match t.partitions.get(p as usize) {
                None => {}
                Some(state) if image.is_live(state.leader) => {
                    by_leader
                        .entry(state.leader)
                        .or_default()
                        .entry(topic.clone())
                        .or_default()
                        .insert(p);
                }
                Some(_) => {
                    remaining.entry(topic.clone()).or_default().insert(p);
                }
            }
        }
    }
    let sends = by_leader.into_iter().map(|(leader, topics)| async move {
        let results = if leader == me {
            write_local(
                broker,
                producer_id,
                epoch,
                commit,
                coordinator_epoch,
                &topics,
            )
            .await
        } else {
            write_remote(
                broker,
                leader,
                producer_id,
                epoch,
                commit,
                coordinator_epoch,
                &topics,
            )
            .await
            .unwrap_or_else(|e| {
                debug!(leader, error = %e.message, "cannot send markers; retrying");
                topics
                    .iter()
                    .map(|(t, ps)| (t.clone(), ps.iter().map(|&p| (p, e.error)).collect()))
                    .collect()
            })
        };
        (topics, results)
    });
    for (_, results) in join_all(sends).await {
        for (topic, ps) in results {
            for (p, error) in ps {
                match error {
                    e if e == ok() => {}
                    ResponseError::TransactionCoordinatorFenced
                    | ResponseError::InvalidProducerEpoch
                    | ResponseError::ProducerFenced => return Err(Stale(error)),
                    // The topic went away between the image and the write.
                    ResponseError::UnknownTopicOrPartition
                        if broker.node().image().topic(&topic).is_none() => {}
                    _ => {
                        remaining.entry(topic.clone()).or_default().insert(p);
                    }
                }
            }
        }
    }
    Ok(remaining)
}

/// Per topic, per partition, a result.
pub type PerPartition<T> = Vec<(String, Vec<(i32, T)>)>;

/// Per topic, per partition, the error code (`ok()` for success).
pub type MarkerResults = PerPartition<ResponseError>;

/// `ResponseError` has no "none"; code 0 is this sentinel.
pub fn ok() -> ResponseError {
    ResponseError::Unknown(0)
}

async fn write_remote(
    broker: &Broker,
    leader: i32,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    topics: &Partitions,
) -> Result<MarkerResults, ApiError> {
    let request = WriteTxnMarkersRequest::default().with_markers(vec![
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_transaction_result(commit)
            .with_coordinator_epoch(coordinator_epoch)
            .with_topics(
                topics
                    .iter()
                    .map(|(t, ps)| {
                        WritableTxnMarkerTopic::default()
                            .with_name(TopicName(str_bytes(t.clone())))
                            .with_partition_indexes(ps.iter().copied().collect())
                    })
                    .collect(),
            ),
    ]);
    let response = broker
        .txn_channels
        .call(broker, leader, WRITE_TXN_MARKERS_VERSION, &request)
        .await?;
    Ok(response
        .markers
        .into_iter()
        .flat_map(|m| m.topics)
        .map(|t| {
            (
                t.name.0.to_string(),
                t.partitions
                    .into_iter()
                    .map(|p| {
                        let e = if p.error_code == 0 {
                            ok()
                        } else {
                            ResponseError::try_from_code(p.error_code)
                                .unwrap_or(ResponseError::UnknownServerError)
                        };
                        (p.partition_index, e)
                    })
                    .collect(),
            )
        })
        .collect())
}

async fn connect(broker: &Broker, leader: i32) -> Result<Connection, ApiError> {
    let node = broker.node();
    let image = node.image();
    let endpoint = image
        .brokers
        .get(&leader)
        .and_then(|b| b.endpoint(&node.settings.inter_broker_listener))
        .ok_or_else(|| {
            ApiError::new(
                ResponseError::CoordinatorNotAvailable,
                format!("broker {leader} has no inter-broker endpoint"),
            )
        })?;
    let options = ConnectOptions {
        connect_timeout: CONNECT_TIMEOUT,
        request_timeout: MARKER_TIMEOUT + Duration::from_secs(5),
        tls: node.settings.inter_broker_tls.clone(),
        sasl: node.settings.inter_broker_sasl.clone(),
        ..ConnectOptions::new(&format!("strait-txn-markers-{}", node.node_id))
    };
    let address = strait_config::join_host_port(&endpoint.host, endpoint.port);
    Connection::connect(&address, &options).await.map_err(|e| {
        ApiError::new(
            ResponseError::CoordinatorNotAvailable,
            format!("cannot connect to broker {leader}: {e}"),
        )
    })
}

/// The leader side of WriteTxnMarkers for one producer: a control batch on each partition, all
/// appended first and then waited for together.
pub async fn write_local(
    broker: &Broker,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    topics: &Partitions,
) -> MarkerResults {
    let marker = if commit {
        ControlType::Commit
    } else {
        ControlType::Abort
    };
    let now = now_ms();
    let mut waits = Vec::new();
    let mut results: MarkerResults = Vec::new();
    for (name, ps) in topics {
        let mut row = Vec::with_capacity(ps.len());
        let topic = broker.replicas.topic(name);
        for &p in ps {
            let Some(topic) = &topic else {
                row.push((p, broker.replicas.missing_topic_error(name).error));
                continue;
            };
            match broker.replicas.append_marker_as_leader(
                topic,
                p,
                producer_id,
                epoch,
                marker,
                coordinator_epoch,
                now,
            ) {
                Ok(appended) => {
                    let index = results.len();
                    let slot = row.len();
                    row.push((p, ok()));
                    waits.push(async move {
                        let target = appended.info.last_offset + 1;
                        let outcome = appended
                            .partition
                            .wait_for_high_watermark(target, appended.leader_epoch, MARKER_TIMEOUT)
                            .await;
                        (index, slot, outcome)
                    });
                }
                Err(e) => row.push((p, append_error(broker, topic, p, e))),
            }
        }
        results.push((name.clone(), row));
    }
    for (index, slot, outcome) in join_all(waits).await {
        let error = match outcome {
            Replicated::Yes => ok(),
            Replicated::LostLeadership => ResponseError::NotLeaderOrFollower,
            Replicated::TimedOut => ResponseError::RequestTimedOut,
        };
        results[index].1[slot].1 = error;
    }
    // Transactional offset commits become visible (or are dropped) once their marker is on the
    // offsets partition's ISR, as in Kafka.
    for (name, row) in &results {
        if name != OFFSETS_TOPIC {
            continue;
        }
        for &(_, e) in row {
            if e == ok() {
                broker.groups.complete_txn(producer_id, commit);
            }
        }
    }
    results
}

fn append_error(
    broker: &Broker,
    topic: &crate::replica_manager::Topic,
    p: i32,
    e: AppendError,
) -> ResponseError {
    match e {
        AppendError::NotHosted { .. } => broker.replicas.missing_partition_error(topic, p).error,
        AppendError::NotLeader { .. } | AppendError::EpochRaisePending { .. } => {
            ResponseError::NotLeaderOrFollower
        }
        AppendError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
        AppendError::NoRecords => ResponseError::InvalidRecord,
        AppendError::Log(e) => {
            let e = ApiError::from(e);
            if e.error == ResponseError::KafkaStorageError {
                warn!(topic = %topic.meta.name, partition = p, error = %e.message, "marker append failed");
            }
            e.error
        }
    }
}
