//! KIP-890: before a partition leader appends the first transactional batch of a producer's
//! transaction, it asks the transaction coordinator whether the partition really is in that
//! producer's ongoing transaction (part 1, directly when it coordinates the id, else with a
//! verify-only AddPartitionsToTxn v4). A late or stray batch therefore cannot open a
//! transaction nobody will ever end, which would hold the partition's last stable offset back
//! for good. Batches of a transaction already open on the partition need no check; a
//! transaction aborted meanwhile has bumped (timeout, fencing) or completed its producer's epoch
//! there. Clients of transaction version 2 (part 2: Produce v12+) send no AddPartitionsToTxn:
//! the leader asks the coordinator to add the partition instead (AddPartitionsToTxn v5), and
//! TxnOffsetCommit v5 does the same for the group's offsets partition.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ProduceRequest, ProducerId, TopicName, TransactionalId,
};

use super::TXN_TOPIC;
use crate::api::str_bytes;
use crate::broker::Broker;
use crate::errors::ApiError;

/// The AddPartitionsToTxn versions brokers verify (part 1) and add (part 2) with.
const VERIFY_VERSION: i16 = 4;
const ADD_VERSION: i16 = 5;
/// First Produce version whose transactional batches join their transaction implicitly.
const IMPLICIT_ADD_VERSION: i16 = 12;
/// Produce versions that name topics by id (KIP-516).
const TOPIC_ID_VERSION: i16 = 13;
const TRANSACTIONAL_BIT: i16 = 0x10;

/// (topic name, partition) → why its batch may not be appended.
pub type Refused = HashMap<(String, i32), ApiError>;

/// The producer id, epoch and transactional flag of the first batch of `records`, if it is a
/// v2 batch long enough to say.
fn first_batch(records: &[u8]) -> Option<(i64, i16, bool)> {
    if records.len() < 61 || records[16] != 2 {
        return None;
    }
    let attributes = i16::from_be_bytes([records[21], records[22]]);
    let mut pid = [0u8; 8];
    pid.copy_from_slice(&records[43..51]);
    let epoch = i16::from_be_bytes([records[51], records[52]]);
    Some((
        i64::from_be_bytes(pid),
        epoch,
        attributes & TRANSACTIONAL_BIT != 0,
    ))
}

/// Checks every partition of `req` whose batch would open a new transaction; returns those the
/// coordinator does not confirm.
pub async fn check(broker: &Arc<Broker>, req: &ProduceRequest, version: i16) -> Refused {
    let mut refused = Refused::new();
    if !broker.config.transactions.partition_verification {
        return refused;
    }
    let Some(id) = req.transactional_id.as_ref().map(|t| t.0.to_string()) else {
        return refused;
    };
    let mut wanted: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    let mut producer = None;
    for t in &req.topic_data {
        let topic = if version >= TOPIC_ID_VERSION {
            broker.replicas.topic_by_id(&t.topic_id)
        } else {
            broker.replicas.topic(t.name.0.as_str())
        };
        let Some(topic) = topic else { continue };
        for p in &t.partition_data {
            let Some((pid, epoch, true)) = p.records.as_deref().and_then(first_batch) else {
                continue;
            };
            let Some(partition) = topic.partition(p.index) else {
                continue;
            };
            let open = partition
                .log
                .ongoing_transactions()
                .iter()
                .any(|(open_pid, _, _)| *open_pid == pid);
            if !open {
                producer = Some((pid, epoch));
                wanted
                    .entry(topic.meta.name.clone())
                    .or_default()
                    .insert(p.index);
            }
        }
    }
    let Some((pid, epoch)) = producer else {
        return refused;
    };
    let add = version >= IMPLICIT_ADD_VERSION;
    let answers = coordinate(broker, &id, pid, epoch, &wanted, add).await;
    for (topic, ps) in wanted {
        for p in ps {
            let error = match &answers {
                Err(e) => Some(e.clone()),
                Ok(errors) => errors.get(&(topic.clone(), p)).cloned(),
            };
            if let Some(e) = error {
                refused.insert((topic.clone(), p), e);
            }
        }
    }
    refused
}

/// Asks the coordinator of `id` to verify (`add` false) or add `wanted` to the producer's
/// transaction; per partition the refusal, if any.
pub async fn coordinate(
    broker: &Arc<Broker>,
    id: &str,
    pid: i64,
    epoch: i16,
    wanted: &BTreeMap<String, BTreeSet<i32>>,
    add: bool,
) -> Result<HashMap<(String, i32), ApiError>, ApiError> {
    let refusal = |e: ResponseError, topic: &str, p: i32| {
        // As Kafka's leaders do: a coordinator that is busy, moving or finishing the previous
        // transaction makes the producer retry the batch.
        let e = match e {
            ResponseError::CoordinatorNotAvailable
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::NotCoordinator
            | ResponseError::ConcurrentTransactions => ResponseError::NotEnoughReplicas,
            other => other,
        };
        ApiError::new(
            e,
            format!(
                "{topic}-{p} is not part of the ongoing transaction of producer {pid} (epoch {epoch}) for transactional id {id}"
            ),
        )
    };
    let image = broker.node().image();
    let coordinator = crate::internal_topic::coordinator_in(&image, TXN_TOPIC, id)
        .map_err(|e| ApiError::new(ResponseError::NotEnoughReplicas, e.message))?;
    let mut out = HashMap::new();
    if coordinator == broker.config.node_id && add {
        if let Err(e) = broker
            .txns
            .add_partitions(broker, id, pid, epoch, wanted)
            .await
        {
            for (t, ps) in wanted {
                for &p in ps {
                    out.insert((t.clone(), p), refusal(e, t, p));
                }
            }
        }
        return Ok(out);
    }
    if coordinator == broker.config.node_id {
        for (t, ps) in wanted {
            for &p in ps {
                if let Err(e) = broker.txns.verify(broker, id, pid, epoch, t, p) {
                    out.insert((t.clone(), p), refusal(e, t, p));
                }
            }
        }
        return Ok(out);
    }
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(str_bytes(id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_verify_only(!add)
            .with_topics(
                wanted
                    .iter()
                    .map(|(t, ps)| {
                        AddPartitionsToTxnTopic::default()
                            .with_name(TopicName(str_bytes(t.clone())))
                            .with_partitions(ps.iter().copied().collect())
                    })
                    .collect(),
            ),
    ]);
    let response = broker
        .txn_channels
        .call(
            broker,
            coordinator,
            if add { ADD_VERSION } else { VERIFY_VERSION },
            &request,
        )
        .await
        // Retriable for the producer: it retries the batch.
        .map_err(|e| ApiError::new(ResponseError::NotEnoughReplicas, e.message))?;
    if response.error_code != 0 {
        let e = ResponseError::try_from_code(response.error_code)
            .unwrap_or(ResponseError::UnknownServerError);
        return Err(ApiError::new(e, "transaction verification refused"));
    }
    for r in response.results_by_transaction {
        for t in r.topic_results {
            for p in t.results_by_partition {
                if p.partition_error_code != 0 {
                    let e = ResponseError::try_from_code(p.partition_error_code)
                        .unwrap_or(ResponseError::UnknownServerError);
                    let topic = t.name.0.to_string();
                    let err = refusal(e, &topic, p.partition_index);
                    out.insert((topic, p.partition_index), err);
                }
            }
        }
    }
    Ok(out)
}
