//! The transaction APIs: the coordinator side (InitProducerId with a transactional id,
//! AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, DescribeTransactions, ListTransactions), the
//! group side (TxnOffsetCommit) and the partition side (WriteTxnMarkers, DescribeProducers).
//! Each translates the protocol to `crate::txn` calls, with Kafka's ACL checks and Kafka's
//! version-dependent error codes (PRODUCER_FENCED only for clients that know it, KIP-588).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTransaction;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeProducersRequest, DescribeProducersResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse,
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse, WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
};
use strait_cluster::acl::resource;

use super::authz::{Authz, op};
use super::{RequestContext, str_bytes};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::group::coordinator::{CommitPartition, CommitRequest, no_error};
use crate::group::records::partition_for;
use crate::group::{OFFSETS_TOPIC, partitions as group_partitions};
use crate::txn::markers::{self, MarkerResults, Partitions, PerPartition};
use crate::txn::records::TxnStatus;
use crate::txn::state::for_version;

/// First AddPartitionsToTxn version that batches transactions (KIP-890, sent by brokers).
const BATCHED_ADD_VERSION: i16 = 4;
/// First versions that know PRODUCER_FENCED (KIP-588).
const ADD_FENCED_VERSION: i16 = 2;
const END_FENCED_VERSION: i16 = 2;
const OFFSETS_FENCED_VERSION: i16 = 2;
const TXN_COMMIT_FENCED_VERSION: i16 = 3;
/// First EndTxn version of transaction version 2 (the epoch bumps at every EndTxn).
const TV2_END_VERSION: i16 = 5;
/// First TxnOffsetCommit version of transaction version 2 (the group's offsets partition joins
/// the transaction implicitly).
const TV2_TXN_COMMIT_VERSION: i16 = 5;

fn code(e: ResponseError) -> i16 {
    if e == no_error() { 0 } else { e.code() }
}

fn id_denied(authz: &Authz<'_>, id: &str) -> bool {
    !authz.allows(op::WRITE, resource::TRANSACTIONAL_ID, id)
}

/// InitProducerId with a transactional id (the idempotent case stays in `producer_id`).
pub async fn init_transactional(
    broker: &Arc<Broker>,
    id: &str,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
    version: i16,
) -> Result<(i64, i16), ResponseError> {
    let txns = broker.txns.clone();
    txns.init_producer_id(broker, id, timeout_ms, expected)
        .await
        .map_err(|e| for_version(e, version, 4))
}

/// Topics and partitions of a (v3-style) AddPartitionsToTxn transaction.
fn requested(topics: &[AddPartitionsToTxnTopic]) -> Vec<(String, Vec<i32>)> {
    topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.partitions.clone()))
        .collect()
}

/// The transaction a request names.
struct Txn<'a> {
    id: &'a str,
    producer_id: i64,
    epoch: i16,
}

/// One transaction's AddPartitionsToTxn: per topic, per partition, the error.
async fn add_one(
    broker: &Arc<Broker>,
    authz: &Authz<'_>,
    txn: Txn<'_>,
    topics: Vec<(String, Vec<i32>)>,
    verify_only: bool,
    from_broker: bool,
    version: i16,
) -> MarkerResults {
    let Txn {
        id,
        producer_id,
        epoch,
    } = txn;
    let all = |e: ResponseError| {
        topics
            .iter()
            .map(|(t, ps)| (t.clone(), ps.iter().map(|p| (*p, e)).collect()))
            .collect::<Vec<_>>()
    };
    // A broker's batched request was authorized as CLUSTER_ACTION as a whole.
    if !from_broker && id_denied(authz, id) {
        return all(ResponseError::TransactionalIdAuthorizationFailed);
    }
    // Per partition: an authorization or existence problem, else none yet.
    let image = broker.node().image();
    let mut problems: PerPartition<Option<ResponseError>> = Vec::new();
    for (t, ps) in &topics {
        let denied = !from_broker && !authz.topic(op::WRITE, t);
        let topic = image.topic(t);
        problems.push((
            t.clone(),
            ps.iter()
                .map(|&p| {
                    let problem = if denied {
                        Some(ResponseError::TopicAuthorizationFailed)
                    } else if topic.is_none_or(|t| p < 0 || p as usize >= t.partitions.len()) {
                        Some(ResponseError::UnknownTopicOrPartition)
                    } else {
                        None
                    };
                    (p, problem)
                })
                .collect(),
        ));
    }
    if problems
        .iter()
        .any(|(_, ps)| ps.iter().any(|(_, e)| e.is_some()))
    {
        // Kafka adds nothing when any partition is refused; the rest were not attempted.
        return problems
            .into_iter()
            .map(|(t, ps)| {
                let ps = ps
                    .into_iter()
                    .map(|(p, e)| (p, e.unwrap_or(ResponseError::OperationNotAttempted)))
                    .collect();
                (t, ps)
            })
            .collect();
    }
    if verify_only {
        // KIP-890 part 1, from a partition leader: each partition checked on its own.
        return topics
            .into_iter()
            .map(|(t, ps)| {
                let ps = ps
                    .into_iter()
                    .map(|p| {
                        let r = broker.txns.verify(broker, id, producer_id, epoch, &t, p);
                        (p, r.err().unwrap_or_else(no_error))
                    })
                    .collect();
                (t, ps)
            })
            .collect();
    }
    let mut wanted: Partitions = BTreeMap::new();
    for (t, ps) in &topics {
        wanted
            .entry(t.clone())
            .or_default()
            .extend(ps.iter().copied());
    }
    let result = broker
        .txns
        .add_partitions(broker, id, producer_id, epoch, &wanted)
        .await;
    all(result.map_or_else(
        |e| for_version(e, version, ADD_FENCED_VERSION),
        |()| no_error(),
    ))
}

fn topic_results(results: MarkerResults) -> Vec<AddPartitionsToTxnTopicResult> {
    results
        .into_iter()
        .map(|(t, ps)| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(TopicName(str_bytes(t)))
                .with_results_by_partition(
                    ps.into_iter()
                        .map(|(p, e)| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(p)
                                .with_partition_error_code(code(e))
                        })
                        .collect(),
                )
        })
        .collect()
}

pub async fn add_partitions(
    broker: &Arc<Broker>,
    req: AddPartitionsToTxnRequest,
    ctx: &RequestContext,
) -> AddPartitionsToTxnResponse {
    let version = ctx.api_version;
    let authz = Authz::new(broker, ctx);
    if version < BATCHED_ADD_VERSION {
        let results = add_one(
            broker,
            &authz,
            Txn {
                id: req.v3_and_below_transactional_id.0.as_str(),
                producer_id: req.v3_and_below_producer_id.0,
                epoch: req.v3_and_below_producer_epoch,
            },
            requested(&req.v3_and_below_topics),
            false,
            false,
            version,
        )
        .await;
        return AddPartitionsToTxnResponse::default()
            .with_results_by_topic_v3_and_below(topic_results(results));
    }
    // The batched form is for brokers verifying partitions (KIP-890): CLUSTER_ACTION.
    if !authz.cluster(op::CLUSTER_ACTION) {
        return AddPartitionsToTxnResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let mut out = Vec::with_capacity(req.transactions.len());
    for t in req.transactions {
        let results = add_one(
            broker,
            &authz,
            Txn {
                id: t.transactional_id.0.as_str(),
                producer_id: t.producer_id.0,
                epoch: t.producer_epoch,
            },
            requested(&t.topics),
            t.verify_only,
            true,
            version,
        )
        .await;
        out.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id)
                .with_topic_results(topic_results(results)),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(out)
}

pub async fn add_offsets(
    broker: &Arc<Broker>,
    req: AddOffsetsToTxnRequest,
    ctx: &RequestContext,
) -> AddOffsetsToTxnResponse {
    let authz = Authz::new(broker, ctx);
    let id = req.transactional_id.0.as_str();
    let group = req.group_id.0.as_str();
    let result = if id_denied(&authz, id) {
        Err(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !authz.group(op::READ, group) {
        Err(ResponseError::GroupAuthorizationFailed)
    } else {
        // The group's offsets partition joins the transaction: its marker settles the
        // transactional offset commits.
        match group_partitions::ensure_topic(&broker.config, broker.node()).await {
            Err(e) => Err(e.error),
            Ok(()) => match broker.node().image().topic(OFFSETS_TOPIC) {
                None => Err(ResponseError::CoordinatorNotAvailable),
                Some(t) => {
                    let p = partition_for(group, t.partitions.len() as i32);
                    let wanted = BTreeMap::from([(OFFSETS_TOPIC.to_string(), BTreeSet::from([p]))]);
                    broker
                        .txns
                        .add_partitions(broker, id, req.producer_id.0, req.producer_epoch, &wanted)
                        .await
                }
            },
        }
    };
    let e = result.map_or_else(
        |e| for_version(e, ctx.api_version, OFFSETS_FENCED_VERSION),
        |()| no_error(),
    );
    AddOffsetsToTxnResponse::default().with_error_code(code(e))
}

pub async fn end_txn(
    broker: &Arc<Broker>,
    req: EndTxnRequest,
    ctx: &RequestContext,
) -> EndTxnResponse {
    let authz = Authz::new(broker, ctx);
    let id = req.transactional_id.0.as_str();
    let tv2 = ctx.api_version >= TV2_END_VERSION;
    let result = if id_denied(&authz, id) {
        Err(ResponseError::TransactionalIdAuthorizationFailed)
    } else {
        let txns = broker.txns.clone();
        txns.end_txn(
            broker,
            id,
            req.producer_id.0,
            req.producer_epoch,
            req.committed,
            tv2,
        )
        .await
    };
    match result {
        Ok((pid, epoch)) => EndTxnResponse::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch),
        Err(e) => EndTxnResponse::default()
            .with_error_code(for_version(e, ctx.api_version, END_FENCED_VERSION).code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

pub async fn write_markers(
    broker: &Arc<Broker>,
    req: WriteTxnMarkersRequest,
    ctx: &RequestContext,
) -> WriteTxnMarkersResponse {
    let allowed = Authz::new(broker, ctx).cluster(op::CLUSTER_ACTION);
    let mut out = Vec::with_capacity(req.markers.len());
    for m in req.markers {
        let mut topics: Partitions = BTreeMap::new();
        for t in &m.topics {
            topics
                .entry(t.name.0.to_string())
                .or_default()
                .extend(t.partition_indexes.iter().copied());
        }
        let results = if allowed {
            markers::write_local(
                broker,
                m.producer_id.0,
                m.producer_epoch,
                m.transaction_result,
                m.coordinator_epoch,
                &topics,
            )
            .await
        } else {
            topics
                .iter()
                .map(|(t, ps)| {
                    let denied = ResponseError::ClusterAuthorizationFailed;
                    (t.clone(), ps.iter().map(|p| (*p, denied)).collect())
                })
                .collect()
        };
        out.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(
                    results
                        .into_iter()
                        .map(|(t, ps)| {
                            WritableTxnMarkerTopicResult::default()
                                .with_name(TopicName(str_bytes(t)))
                                .with_partitions(
                                    ps.into_iter()
                                        .map(|(p, e)| {
                                            WritableTxnMarkerPartitionResult::default()
                                                .with_partition_index(p)
                                                .with_error_code(code(e))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(out)
}

pub async fn txn_offset_commit(
    broker: &Arc<Broker>,
    req: TxnOffsetCommitRequest,
    ctx: &RequestContext,
) -> TxnOffsetCommitResponse {
    let authz = Authz::new(broker, ctx);
    let id = req.transactional_id.0.as_str();
    let group = req.group_id.0.to_string();
    let request_error = if id_denied(&authz, id) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !authz.group(op::READ, &group) {
        Some(ResponseError::GroupAuthorizationFailed)
    } else {
        broker.check_coordinator(&group).err().map(|e| e.error)
    };
    let mut layout: Vec<(TopicName, Vec<i32>, bool)> = Vec::new();
    let mut partitions = Vec::new();
    for t in req.topics {
        let allowed = authz.topic(op::READ, t.name.0.as_str());
        layout.push((
            t.name.clone(),
            t.partitions.iter().map(|p| p.partition_index).collect(),
            allowed,
        ));
        if !allowed {
            continue;
        }
        for p in t.partitions {
            partitions.push(CommitPartition {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.map(|m| m.to_string()),
            });
        }
    }
    // Transaction version 2: the group's offsets partition joins the transaction here (no
    // AddOffsetsToTxn).
    let request_error = match request_error {
        None if ctx.api_version >= TV2_TXN_COMMIT_VERSION && !partitions.is_empty() => {
            implicit_add_offsets(broker, id, req.producer_id.0, req.producer_epoch, &group).await
        }
        other => other,
    };
    let errors = match request_error {
        Some(e) => vec![e; partitions.len()],
        None if partitions.is_empty() => Vec::new(),
        None => {
            let commit = CommitRequest {
                producer: Some((req.producer_id.0, req.producer_epoch)),
                group_id: group.clone(),
                generation: req.generation_id,
                member_id: req.member_id.to_string(),
                group_instance_id: req.group_instance_id.map(|s| s.to_string()),
                partitions,
            };
            super::offsets::commit_durably(broker, commit).await
        }
    };
    let mut errors = errors.into_iter();
    let topics = layout
        .into_iter()
        .map(|(name, parts, allowed)| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|p| {
                            let e = match request_error {
                                Some(e) => e,
                                None if !allowed => ResponseError::TopicAuthorizationFailed,
                                None => errors.next().unwrap_or_else(no_error),
                            };
                            let e = for_version(e, ctx.api_version, TXN_COMMIT_FENCED_VERSION);
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(code(e))
                        })
                        .collect(),
                )
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// TxnOffsetCommit v5: adds `group`'s offsets partition to the producer's transaction through
/// its coordinator; the error that stops the commit, if any.
async fn implicit_add_offsets(
    broker: &Arc<Broker>,
    id: &str,
    producer_id: i64,
    epoch: i16,
    group: &str,
) -> Option<ResponseError> {
    let image = broker.node().image();
    let topic = image.topic(OFFSETS_TOPIC)?;
    let p = partition_for(group, topic.partitions.len() as i32);
    let wanted = BTreeMap::from([(OFFSETS_TOPIC.to_string(), BTreeSet::from([p]))]);
    let refused =
        match crate::txn::verify::coordinate(broker, id, producer_id, epoch, &wanted, true).await {
            Err(e) => Some(e.error),
            Ok(refused) => refused.into_values().next().map(|e| e.error),
        };
    // The leaders' retriable answer means the same here; the client retries the commit.
    refused.map(|e| match e {
        ResponseError::NotEnoughReplicas => ResponseError::CoordinatorLoadInProgress,
        other => other,
    })
}

pub async fn describe_transactions(
    broker: &Arc<Broker>,
    req: DescribeTransactionsRequest,
    ctx: &RequestContext,
) -> DescribeTransactionsResponse {
    let authz = Authz::new(broker, ctx);
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let state = TransactionState::default().with_transactional_id(id.clone());
            if !authz.allows(op::DESCRIBE, resource::TRANSACTIONAL_ID, id.0.as_str()) {
                return state
                    .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
            }
            match broker.txns.describe(broker, id.0.as_str()) {
                Err(e) => state.with_error_code(e.code()),
                Ok(view) => {
                    let v = view.value;
                    state
                        .with_transaction_state(str_bytes(v.status.name()))
                        .with_transaction_timeout_ms(v.timeout_ms)
                        .with_transaction_start_time_ms(v.start_ms)
                        .with_producer_id(ProducerId(v.producer_id))
                        .with_producer_epoch(v.producer_epoch)
                        .with_topics(
                            v.partitions
                                .into_iter()
                                // Kafka shows only the topics the caller may describe.
                                .filter(|(t, _)| authz.topic(op::DESCRIBE, t))
                                .map(|(t, ps)| {
                                    TopicData::default()
                                        .with_topic(TopicName(str_bytes(t)))
                                        .with_partitions(ps.into_iter().collect())
                                })
                                .collect(),
                        )
                }
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

pub async fn list_transactions(
    broker: &Arc<Broker>,
    req: ListTransactionsRequest,
    ctx: &RequestContext,
) -> ListTransactionsResponse {
    let authz = Authz::new(broker, ctx);
    let names = [
        TxnStatus::Empty,
        TxnStatus::Ongoing,
        TxnStatus::PrepareCommit,
        TxnStatus::PrepareAbort,
        TxnStatus::CompleteCommit,
        TxnStatus::CompleteAbort,
        TxnStatus::Dead,
        TxnStatus::PrepareEpochFence,
    ];
    let unknown: Vec<_> = req
        .state_filters
        .iter()
        .filter(|f| !names.iter().any(|s| s.name() == f.as_str()))
        .cloned()
        .collect();
    let pattern = match req
        .transactional_id_pattern
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        None => None,
        // Java's Pattern.matches: the whole id must match.
        Some(p) => match regex::Regex::new(&format!("^(?:{p})$")) {
            Ok(re) => Some(re),
            Err(_) => {
                return ListTransactionsResponse::default()
                    .with_error_code(ResponseError::InvalidRegularExpression.code());
            }
        },
    };
    let now = now_ms();
    let states = broker
        .txns
        .list()
        .into_iter()
        .filter(|t| {
            req.state_filters.is_empty()
                || req
                    .state_filters
                    .iter()
                    .any(|f| f.as_str() == t.value.status.name())
        })
        .filter(|t| {
            req.producer_id_filters.is_empty()
                || req
                    .producer_id_filters
                    .contains(&ProducerId(t.value.producer_id))
        })
        // KIP-994: only transactions running longer than the filter.
        .filter(|t| {
            req.duration_filter < 0
                || (t.value.status == TxnStatus::Ongoing
                    && now.saturating_sub(t.value.start_ms) >= req.duration_filter)
        })
        .filter(|t| {
            pattern
                .as_ref()
                .is_none_or(|re| re.is_match(&t.transactional_id))
        })
        .filter(|t| {
            authz.allows(
                op::DESCRIBE,
                resource::TRANSACTIONAL_ID,
                &t.transactional_id,
            )
        })
        .map(|t| {
            ListedTransaction::default()
                .with_transactional_id(TransactionalId(str_bytes(t.transactional_id)))
                .with_producer_id(ProducerId(t.value.producer_id))
                .with_transaction_state(str_bytes(t.value.status.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(states)
}

pub async fn describe_producers(
    broker: &Arc<Broker>,
    req: DescribeProducersRequest,
    ctx: &RequestContext,
) -> DescribeProducersResponse {
    let authz = Authz::new(broker, ctx);
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let allowed = authz.topic(op::READ, &name);
            let topic = broker.replicas.topic(&name);
            let partitions = t
                .partition_indexes
                .into_iter()
                .map(|p| {
                    let resp = PartitionResponse::default().with_partition_index(p);
                    let partition = match (&topic, allowed) {
                        (_, false) => Err(ResponseError::TopicAuthorizationFailed),
                        (None, true) => Err(broker.replicas.missing_topic_error(&name).error),
                        (Some(topic), true) => topic
                            .partition(p)
                            .cloned()
                            .ok_or_else(|| broker.replicas.missing_partition_error(topic, p).error),
                    };
                    let partition = partition.and_then(|p| {
                        if p.replica().is_leader() {
                            Ok(p)
                        } else {
                            Err(ResponseError::NotLeaderOrFollower)
                        }
                    });
                    match partition {
                        Err(e) => resp.with_error_code(e.code()),
                        Ok(p) => resp.with_active_producers(
                            p.log
                                .producers()
                                .into_iter()
                                .map(|s| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(s.producer_id))
                                        .with_producer_epoch(i32::from(s.producer_epoch))
                                        .with_last_sequence(s.last_sequence)
                                        .with_last_timestamp(s.last_timestamp)
                                        .with_coordinator_epoch(s.coordinator_epoch)
                                        .with_current_txn_start_offset(s.current_txn_start_offset)
                                })
                                .collect(),
                        ),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
