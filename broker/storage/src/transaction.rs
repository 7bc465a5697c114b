//! Transaction markers (Kafka's `EndTransactionMarker`): the COMMIT/ABORT control batches a
//! transaction coordinator has the partition leader write, built and read back here, and the
//! public types of the partition's transaction state.

use crate::LogError;
use crate::batch::{BatchHeader, CONTROL_BIT, HEADER_LEN, TRANSACTIONAL_BIT, build_batch};
use crate::records::{RawRecord, batch_records, encode_record, parse_records};

/// The key type of a control record that ends a transaction (Kafka's `ControlRecordType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
}

impl ControlType {
    fn code(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
        }
    }

    /// None for the other control record types (KRaft's leader change and snapshot records).
    fn from_code(code: i16) -> Option<ControlType> {
        match code {
            0 => Some(ControlType::Abort),
            1 => Some(ControlType::Commit),
            _ => None,
        }
    }
}

/// One producer's state in a partition, as DescribeProducers reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerInfo {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// -1 when no batch of the current epoch is known.
    pub last_sequence: i32,
    pub last_timestamp: i64,
    /// Of the last transaction marker; -1 before any.
    pub coordinator_epoch: i32,
    /// First offset of the producer's ongoing transaction, -1 when none.
    pub current_txn_start_offset: i64,
}

/// The content of an end-transaction marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TxnMarker {
    pub control: ControlType,
    pub coordinator_epoch: i32,
}

/// Version of the control record key and of the marker value (Kafka writes 0 for both).
const MARKER_VERSION: i16 = 0;
/// Attributes of a marker batch: transactional control batch, uncompressed.
const MARKER_ATTRIBUTES: i16 = TRANSACTIONAL_BIT | CONTROL_BIT;
const LOG_APPEND_TIME_BIT: i16 = 1 << 3;

/// Kafka's `MemoryRecords.withEndTransactionMarker`: one control record, key = (version, type),
/// value = (version, coordinator epoch), base sequence -1, timestamps `now_ms`.
pub(crate) fn marker_batch(
    base_offset: i64,
    leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    marker: TxnMarker,
    now_ms: i64,
    log_append_time: bool,
) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&MARKER_VERSION.to_be_bytes());
    key.extend_from_slice(&marker.control.code().to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&MARKER_VERSION.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let record = RawRecord {
        attributes: 0,
        timestamp_delta: 0,
        offset_delta: 0,
        key: Some(&key),
        value: Some(&value),
        headers: &[0],
    };
    let mut body = Vec::with_capacity(24);
    encode_record(&mut body, &record, 0);
    let header = BatchHeader {
        base_offset,
        size: 0,
        crc: 0,
        attributes: 0,
        last_offset_delta: 0,
        base_timestamp: now_ms,
        max_timestamp: now_ms,
        record_count: 1,
        producer_id,
        producer_epoch,
        base_sequence: -1,
    };
    let attributes = if log_append_time {
        MARKER_ATTRIBUTES | LOG_APPEND_TIME_BIT
    } else {
        MARKER_ATTRIBUTES
    };
    build_batch(&header, leader_epoch, now_ms, now_ms, attributes, 1, &body)
}

fn invalid(detail: &str) -> LogError {
    LogError::CorruptMessage(format!("control record: {detail}"))
}

/// The marker in a control batch (`batch` is the whole batch). None for a batch the cleaner
/// emptied or another kind of control record, which do not touch transactions (as in Kafka).
pub(crate) fn read_marker(batch: &[u8], h: &BatchHeader) -> Result<Option<TxnMarker>, LogError> {
    if h.record_count == 0 || batch.len() <= HEADER_LEN {
        return Ok(None);
    }
    let data = batch_records(batch, h)?;
    let records = parse_records(&data, h.record_count)?;
    let Some(record) = records.first() else {
        return Ok(None);
    };
    let key = record.key.ok_or_else(|| invalid("no key"))?;
    if key.len() < 4 {
        return Err(invalid("key shorter than 4 bytes"));
    }
    if i16::from_be_bytes([key[0], key[1]]) < 0 {
        return Err(invalid("negative key version"));
    }
    let Some(control) = ControlType::from_code(i16::from_be_bytes([key[2], key[3]])) else {
        return Ok(None);
    };
    // Later value versions only add fields after these (Kafka reads them the same way).
    let value = record
        .value
        .ok_or_else(|| invalid("marker without value"))?;
    if value.len() < 6 || i16::from_be_bytes([value[0], value[1]]) < 0 {
        return Err(invalid("malformed end transaction marker value"));
    }
    Ok(Some(TxnMarker {
        control,
        coordinator_epoch: i32::from_be_bytes([value[2], value[3], value[4], value[5]]),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::crc_matches;
    use bytes::Bytes;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn marker_batches_decode_with_kafka_protocol() {
        // Kafka's ControlRecordType ids: ABORT 0, COMMIT 1.
        for (control, kafka) in [(ControlType::Abort, 0u8), (ControlType::Commit, 1)] {
            let marker = TxnMarker {
                control,
                coordinator_epoch: 9,
            };
            let b = marker_batch(42, 3, 1000, 5, marker, 777, false);
            let h = BatchHeader::parse(&b).expect("parse");
            assert!(crc_matches(&b, &h));
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.base_offset, h.last_offset(), h.record_count),
                (42, 42, 1)
            );
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (1000, 5, -1)
            );
            assert_eq!(read_marker(&b, &h).expect("read"), Some(marker));

            let mut bytes = Bytes::from(b);
            let set = RecordBatchDecoder::decode(&mut bytes).expect("kafka-protocol decodes it");
            let r = &set.records[0];
            assert!(r.control && r.transactional);
            assert_eq!((r.offset, r.timestamp, r.producer_id), (42, 777, 1000));
            let key = r.key.as_ref().expect("key");
            assert_eq!(key.as_ref(), &[0, 0, 0, kafka]);
            let value = r.value.as_ref().expect("value");
            assert_eq!(value.as_ref(), &[0, 0, 0, 0, 0, 9]);
        }
    }
}
