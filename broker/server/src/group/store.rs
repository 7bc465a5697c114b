//! The coordinator's durable side: `__consumer_offsets`, a compacted topic of Kafka-format
//! records, one partition per group (Kafka's hashing). Appends go through the replica manager's
//! leader append like any produce; a partition is read back and replayed into the coordinator
//! when this broker becomes its leader (`partitions`).

use std::collections::BTreeMap;
use std::time::Instant;

use kafka_protocol::ResponseError;
use strait_config::BrokerConfig;
use tracing::warn;

use super::Coordinator;
use super::OFFSETS_TOPIC;
use super::consumer_records;
use super::coordinator::{OffsetsLog, Record};
use super::records::{
    RecordKey, decode_group, decode_key, decode_offset, encode_group, encode_key, encode_offset,
    partition_for,
};
use crate::clock::now_ms;
use crate::errors::ApiError;
use crate::replica_manager::{AppendError, Partition, ReplicaManager, RequiredAcks};

/// [`OffsetsLog`] over the hosted partitions of `__consumer_offsets`.
pub struct OffsetsTopicLog<'a>(pub &'a ReplicaManager);

impl OffsetsLog for OffsetsTopicLog<'_> {
    fn append(
        &self,
        group: &str,
        records: Vec<(RecordKey, Option<Record>)>,
    ) -> Result<(), ApiError> {
        self.write(group, records, None)
    }

    fn append_transactional(
        &self,
        group: &str,
        producer_id: i64,
        epoch: i16,
        records: Vec<(RecordKey, Option<Record>)>,
    ) -> Result<(), ApiError> {
        self.write(group, records, Some((producer_id, epoch)))
    }

    fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        self.0
            .topic(topic)
            .is_some_and(|t| t.partition(partition).is_some())
    }

    fn topics(&self, names: &std::collections::BTreeSet<String>) -> super::assignor::TopicsView {
        names
            .iter()
            .filter_map(|n| self.0.topic(n))
            .map(|t| (t.meta.name.clone(), (t.meta.id, t.meta.partitions)))
            .collect()
    }

    fn all_topics(&self) -> super::assignor::TopicsView {
        self.0
            .all_topics()
            .into_iter()
            .map(|t| (t.meta.name.clone(), (t.meta.id, t.meta.partitions)))
            .collect()
    }
}

impl OffsetsTopicLog<'_> {
    fn write(
        &self,
        group: &str,
        records: Vec<(RecordKey, Option<Record>)>,
        producer: Option<(i64, i16)>,
    ) -> Result<(), ApiError> {
        let replicas = self.0;
        let topic = replicas.topic(OFFSETS_TOPIC).ok_or_else(|| {
            ApiError::new(
                ResponseError::CoordinatorNotAvailable,
                format!("{OFFSETS_TOPIC} is not hosted here"),
            )
        })?;
        let index = partition_for(group, topic.meta.partitions);
        if topic.partition(index).is_none() {
            return Err(ApiError::new(
                ResponseError::CoordinatorNotAvailable,
                "offsets partition missing",
            ));
        }
        let buf = crate::internal_topic::encode_records(
            records.into_iter().map(|(key, value)| {
                (
                    encode_key(&key),
                    value.map(|v| match v {
                        Record::Offset(o) => encode_offset(&o),
                        Record::Group(g) => encode_group(&g),
                        Record::Consumer(c) => consumer_records::encode_value(&c),
                    }),
                )
            }),
            now_ms(),
            producer,
        )?;
        let now = now_ms();
        // Only the partition's leader writes, at its leader epoch (so followers reconcile their
        // logs with KIP-101 like any topic's). No min.insync.replicas check: alone in the ISR
        // this commits at once; otherwise the high watermark moves as followers fetch, and
        // OffsetCommit waits for it (`partitions::wait_durable`).
        let appended = match producer {
            Some(_) => {
                replicas.append_as_coordinator(&topic, index, &buf, RequiredAcks::Leader, now)
            }
            None => replicas.append_as_leader(&topic, index, &buf, RequiredAcks::Leader, now),
        };
        match appended {
            Ok(_) => Ok(()),
            Err(AppendError::Log(e)) => {
                warn!(group, error = %e, "cannot persist group state");
                // Kafka answers storage trouble on the offsets topic with a retriable code.
                Err(ApiError::new(
                    ResponseError::CoordinatorNotAvailable,
                    e.to_string(),
                ))
            }
            Err(AppendError::NotHosted { .. }) => Err(ApiError::new(
                ResponseError::CoordinatorNotAvailable,
                "offsets partition missing",
            )),
            Err(AppendError::NotLeader { .. } | AppendError::EpochRaisePending { .. }) => {
                Err(ApiError::new(
                    ResponseError::NotCoordinator,
                    format!("this broker no longer leads {OFFSETS_TOPIC}-{index}"),
                ))
            }
            // Neither happens: the batch always has a header, and only the leader must ack.
            Err(e @ (AppendError::NoRecords | AppendError::NotEnoughReplicas { .. })) => Err(
                ApiError::new(ResponseError::UnknownServerError, e.to_string()),
            ),
        }
    }
}

/// The config overrides `__consumer_offsets` is created with (Kafka's).
pub fn offsets_topic_configs(config: &BrokerConfig) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        (
            "segment.bytes".to_string(),
            config.offsets_topic_segment_bytes.to_string(),
        ),
        ("compression.type".to_string(), "producer".to_string()),
    ])
}

/// Replays one partition of `__consumer_offsets` into the coordinator, up to its log end.
/// Returns the number of records applied.
pub fn load_partition(
    groups: &Coordinator,
    partition: &Partition,
) -> Result<usize, strait_storage::LogError> {
    let now = Instant::now();
    let wall = now_ms();
    let mut applied = 0usize;
    crate::internal_topic::replay(partition, |r| {
        if r.control {
            // A transaction's marker: its staged offset commits become visible or go.
            if r.producer_id >= 0
                && let Some(commit) = r.key.as_ref().and_then(|k| control_is_commit(k))
            {
                groups.complete_txn(r.producer_id, commit);
            }
            return;
        }
        let Some(key) = r.key.and_then(decode_key) else {
            return;
        };
        if r.transactional && r.producer_id >= 0 {
            if let (
                RecordKey::Offset {
                    group,
                    topic,
                    partition,
                },
                Some(v),
            ) = (key, r.value)
                && let Some(value) = decode_offset(v)
            {
                groups.load_txn_offset(r.producer_id, group, topic, partition, value, wall);
                applied += 1;
            }
            return;
        }
        let value = match (&key, r.value) {
            (_, None) => None,
            (RecordKey::Offset { .. }, Some(v)) => match decode_offset(v) {
                Some(o) => Some(Record::Offset(o)),
                None => return,
            },
            (RecordKey::Group { .. }, Some(v)) => match decode_group(v) {
                Some(g) => Some(Record::Group(g)),
                None => return,
            },
            (RecordKey::Consumer(k), Some(v)) => {
                match consumer_records::decode_value(k.kind(), v) {
                    Some(c) => Some(Record::Consumer(c)),
                    None => return,
                }
            }
        };
        groups.load_record(key, value, now, wall);
        applied += 1;
    })?;
    Ok(applied)
}

/// The type of a control record from its key (version i16, type i16): Some(true) for COMMIT,
/// Some(false) for ABORT, None for anything else.
pub fn control_is_commit(key: &[u8]) -> Option<bool> {
    if key.len() < 4 {
        return None;
    }
    match i16::from_be_bytes([key[2], key[3]]) {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}
