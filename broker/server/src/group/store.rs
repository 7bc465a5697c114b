//! The coordinator's durable side: `__consumer_offsets`, a compacted topic of Kafka-format
//! records, one partition per group (Kafka's hashing). Appends go through the replica manager's
//! leader append like any produce; a partition is read back and replayed into the coordinator
//! when this broker becomes its leader (`partitions`).

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::records::{
    Compression, Record as KRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType,
};
use strait_config::BrokerConfig;
use tracing::warn;

use super::Coordinator;
use super::OFFSETS_TOPIC;
use super::coordinator::{OffsetsLog, Record};
use super::records::{
    RecordKey, decode_group, decode_key, decode_offset, encode_group, encode_key, encode_offset,
    partition_for,
};
use crate::clock::now_ms;
use crate::errors::ApiError;
use crate::replica_manager::{AppendError, Partition, ReplicaManager, RequiredAcks};

/// Read the topic back in chunks of this size at start-up.
const LOAD_CHUNK: u64 = 8 << 20;

/// [`OffsetsLog`] over the hosted partitions of `__consumer_offsets`.
pub struct OffsetsTopicLog<'a>(pub &'a ReplicaManager);

impl OffsetsLog for OffsetsTopicLog<'_> {
    fn append(
        &self,
        group: &str,
        records: Vec<(RecordKey, Option<Record>)>,
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
        let now = now_ms();
        let krecords: Vec<KRecord> = records
            .into_iter()
            .enumerate()
            .map(|(i, (key, value))| KRecord {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: now,
                key: Some(encode_key(&key)),
                value: value.map(|v| match v {
                    Record::Offset(o) => encode_offset(&o),
                    Record::Group(g) => encode_group(&g),
                }),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &krecords,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .map_err(|e| {
            ApiError::new(
                ResponseError::UnknownServerError,
                format!("encoding offsets batch: {e}"),
            )
        })?;
        // Only the partition's leader writes, at its leader epoch (so followers reconcile their
        // logs with KIP-101 like any topic's). No min.insync.replicas check: alone in the ISR
        // this commits at once; otherwise the high watermark moves as followers fetch, and
        // OffsetCommit waits for it (`partitions::wait_durable`).
        match replicas.append_as_leader(&topic, index, &buf, RequiredAcks::Leader, now) {
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
            Err(AppendError::NotLeader { .. }) => Err(ApiError::new(
                ResponseError::NotCoordinator,
                format!("this broker no longer leads {OFFSETS_TOPIC}-{index}"),
            )),
            // Neither happens: the batch always has a header, and only the leader must ack.
            Err(e @ (AppendError::NoRecords | AppendError::NotEnoughReplicas { .. })) => Err(
                ApiError::new(ResponseError::UnknownServerError, e.to_string()),
            ),
        }
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
    let mut records = 0usize;
    let log = &partition.log;
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    while offset < end {
        let read = log.read(offset, LOAD_CHUNK, end, true)?;
        if read.regions.is_empty() {
            break;
        }
        let mut buf = Vec::with_capacity(read.bytes as usize);
        for region in &read.regions {
            region.read_to_vec(&mut buf)?;
        }
        let mut bytes = Bytes::from(buf);
        let sets = match RecordBatchDecoder::decode_all(&mut bytes) {
            Ok(s) => s,
            Err(e) => {
                warn!(partition = partition.index, offset, error = %e, "undecodable offsets batch; skipping the rest of the partition");
                break;
            }
        };
        let mut last = offset;
        for set in sets {
            for r in set.records {
                last = last.max(r.offset);
                if r.control {
                    continue;
                }
                let Some(key) = r.key.and_then(decode_key) else {
                    continue;
                };
                let value = match (&key, r.value) {
                    (_, None) => None,
                    (RecordKey::Offset { .. }, Some(v)) => match decode_offset(v) {
                        Some(o) => Some(Record::Offset(o)),
                        None => continue,
                    },
                    (RecordKey::Group { .. }, Some(v)) => match decode_group(v) {
                        Some(g) => Some(Record::Group(g)),
                        None => continue,
                    },
                };
                groups.load_record(key, value, now, wall);
                records += 1;
            }
        }
        offset = last + 1;
    }
    Ok(records)
}
