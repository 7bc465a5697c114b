//! RecordBatch v2 header parsing, validation of produced batches, and header patching.
//!
//! Only the fixed 61-byte header is ever interpreted on the hot path; records stay opaque bytes.

use crate::LogError;

/// Bytes before the batch length field is counted: baseOffset (8) + batchLength (4).
pub(crate) const LOG_OVERHEAD: usize = 12;
/// Size of the v2 batch header up to the first record.
pub(crate) const HEADER_LEN: usize = 61;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const LEADER_EPOCH_AT: usize = 12;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORD_COUNT_AT: usize = 57;
const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
pub(crate) const TRANSACTIONAL_BIT: i16 = 1 << 4;
pub(crate) const CONTROL_BIT: i16 = 1 << 5;
/// Kafka's `DELETE_HORIZON_FLAG_MASK` (KIP-534): the cleaner found the batch removable and set its
/// base timestamp to the time from which it may go (`deleteHorizonMs`).
pub(crate) const DELETE_HORIZON_BIT: i16 = 1 << 6;
pub(crate) const COMPRESSION_MASK: i16 = 0x7;
const MAX_COMPRESSION_CODEC: i16 = 4;

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// The fixed fields of a v2 batch header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub base_offset: i64,
    /// Whole batch size including the 12-byte log overhead.
    pub size: u32,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub record_count: i32,
    /// -1 for non-idempotent producers.
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl BatchHeader {
    /// Parses a header; `bytes` holds at least the first 17 bytes of the batch. Checks the magic
    /// and that the length field can describe a v2 batch, nothing that needs the records.
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, LogError> {
        if bytes.len() <= MAGIC_AT {
            return Err(LogError::CorruptMessage(format!(
                "truncated batch header ({} bytes)",
                bytes.len()
            )));
        }
        let magic = bytes[MAGIC_AT] as i8;
        if magic != 2 {
            return Err(LogError::UnsupportedMagic(magic));
        }
        if bytes.len() < HEADER_LEN {
            return Err(LogError::CorruptMessage(format!(
                "truncated batch header ({} bytes)",
                bytes.len()
            )));
        }
        let length = be_i32(bytes, 8);
        if length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(LogError::CorruptMessage(format!(
                "batch length {length} is smaller than a v2 header"
            )));
        }
        Ok(BatchHeader {
            base_offset: be_i64(bytes, 0),
            size: length as u32 + LOG_OVERHEAD as u32,
            crc: be_u32(bytes, CRC_AT),
            attributes: be_i16(bytes, ATTRIBUTES_AT),
            last_offset_delta: be_i32(bytes, 23),
            base_timestamp: be_i64(bytes, BASE_TIMESTAMP_AT),
            max_timestamp: be_i64(bytes, MAX_TIMESTAMP_AT),
            record_count: be_i32(bytes, RECORD_COUNT_AT),
            producer_id: be_i64(bytes, PRODUCER_ID_AT),
            producer_epoch: be_i16(bytes, PRODUCER_EPOCH_AT),
            base_sequence: be_i32(bytes, BASE_SEQUENCE_AT),
        })
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    pub fn is_compressed(&self) -> bool {
        self.attributes & COMPRESSION_MASK != 0
    }

    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Part of a transaction (data, or the COMMIT/ABORT marker that ends one).
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Kafka's `deleteHorizonMs`: the base timestamp when the delete-horizon flag is set.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.attributes & DELETE_HORIZON_BIT != 0).then_some(self.base_timestamp)
    }

    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap from i32::MAX to 0.
    pub fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }

    /// Checks the fields a producer can get wrong without breaking the framing.
    pub fn check_fields(&self) -> Result<(), LogError> {
        if self.record_count < 1 {
            return Err(LogError::InvalidRecord(format!(
                "record batch has {} records",
                self.record_count
            )));
        }
        if self.last_offset_delta < 0 {
            return Err(LogError::InvalidRecord(format!(
                "negative lastOffsetDelta {}",
                self.last_offset_delta
            )));
        }
        if i64::from(self.record_count) > i64::from(self.last_offset_delta) + 1 {
            return Err(LogError::InvalidRecord(format!(
                "{} records do not fit lastOffsetDelta {}",
                self.record_count, self.last_offset_delta
            )));
        }
        if self.attributes & COMPRESSION_MASK > MAX_COMPRESSION_CODEC {
            return Err(LogError::InvalidRecord(format!(
                "unknown compression codec {}",
                self.attributes & COMPRESSION_MASK
            )));
        }
        Ok(())
    }
}

/// `sequence + increment`, wrapping past i32::MAX to 0 as Kafka does; -1 (no sequence) stays.
pub(crate) fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence < 0 {
        return sequence;
    }
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// Builds a complete v2 batch around encoded (possibly compressed) `records`, with a valid CRC.
/// `h` supplies every header field except size, CRC and record count.
pub(crate) fn build_batch(
    h: &BatchHeader,
    leader_epoch: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    attributes: i16,
    record_count: i32,
    records: &[u8],
) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN + records.len());
    b.extend_from_slice(&h.base_offset.to_be_bytes());
    b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + records.len()) as i32).to_be_bytes());
    b.extend_from_slice(&leader_epoch.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&h.last_offset_delta.to_be_bytes());
    b.extend_from_slice(&base_timestamp.to_be_bytes());
    b.extend_from_slice(&max_timestamp.to_be_bytes());
    b.extend_from_slice(&h.producer_id.to_be_bytes());
    b.extend_from_slice(&h.producer_epoch.to_be_bytes());
    b.extend_from_slice(&h.base_sequence.to_be_bytes());
    b.extend_from_slice(&record_count.to_be_bytes());
    b.extend_from_slice(records);
    let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
    b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The partition leader epoch stored in a batch (outside the CRC).
pub(crate) fn leader_epoch_of(batch: &[u8]) -> i32 {
    be_i32(batch, LEADER_EPOCH_AT)
}

/// CRC-32C of a whole batch's covered bytes (attributes to the end).
pub(crate) fn crc_matches(batch: &[u8], header: &BatchHeader) -> bool {
    batch.len() > ATTRIBUTES_AT && crc32c::crc32c(&batch[ATTRIBUTES_AT..]) == header.crc
}

/// One batch of a produce request that passed validation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ValidBatch {
    /// Position of the batch inside the request buffer.
    pub start: usize,
    pub header: BatchHeader,
}

/// Validates every batch of a produce request (framing, magic, size, CRC, fields) before anything
/// is written, so an append is all-or-nothing.
pub(crate) fn validate_all(
    buf: &[u8],
    max_message_bytes: u32,
) -> Result<Vec<ValidBatch>, LogError> {
    if buf.is_empty() {
        return Err(LogError::InvalidRecord("no record batches".into()));
    }
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let header = BatchHeader::parse(rest)?;
        let size = header.size as usize;
        if size > rest.len() {
            return Err(LogError::CorruptMessage(format!(
                "batch at byte {pos} claims {size} bytes but only {} remain",
                rest.len()
            )));
        }
        if size > max_message_bytes as usize {
            return Err(LogError::RecordTooLarge {
                size,
                max: max_message_bytes,
            });
        }
        if !crc_matches(&rest[..size], &header) {
            return Err(LogError::CorruptMessage(format!(
                "CRC mismatch in batch at byte {pos}"
            )));
        }
        header.check_fields()?;
        out.push(ValidBatch { start: pos, header });
        pos += size;
    }
    Ok(out)
}

/// Sets the LogAppendTime type bit and both timestamps, and recomputes the CRC (these fields are
/// covered by it). `header` is the batch's first `HEADER_LEN` bytes, `body` the rest.
pub(crate) fn set_log_append_time(header: &mut [u8; HEADER_LEN], body: &[u8], now_ms: i64) {
    let attributes = be_i16(header, ATTRIBUTES_AT) | TIMESTAMP_TYPE_BIT;
    header[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    header[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
    header[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[ATTRIBUTES_AT..]), body);
    header[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Patches the two fields outside the CRC: base offset and partition leader epoch.
pub(crate) fn set_offset_and_epoch(header: &mut [u8; HEADER_LEN], base_offset: i64, epoch: i32) {
    header[0..8].copy_from_slice(&base_offset.to_be_bytes());
    header[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&epoch.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(records: i32, delta: i32) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN + 3];
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[16] = 2;
        b[23..27].copy_from_slice(&delta.to_be_bytes());
        b[35..43].copy_from_slice(&77i64.to_be_bytes());
        b[57..61].copy_from_slice(&records.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn parses_and_validates() {
        let b = batch(2, 1);
        let v = validate_all(&b, 1000).expect("valid");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].header.size as usize, b.len());
        assert_eq!(v[0].header.max_timestamp, 77);
        assert_eq!(v[0].header.last_offset(), 1);
    }

    #[test]
    fn rejects_bad_fields() {
        assert!(matches!(
            validate_all(&batch(0, 0), 1000),
            Err(LogError::InvalidRecord(_))
        ));
        assert!(matches!(
            validate_all(&batch(1, -1), 1000),
            Err(LogError::InvalidRecord(_))
        ));
        assert!(matches!(
            validate_all(&batch(3, 1), 1000),
            Err(LogError::InvalidRecord(_))
        ));
        assert!(matches!(
            validate_all(&[], 1000),
            Err(LogError::InvalidRecord(_))
        ));
        assert!(matches!(
            validate_all(&batch(1, 0), 10),
            Err(LogError::RecordTooLarge { .. })
        ));
        let mut short = batch(1, 0);
        short.truncate(30);
        assert!(matches!(
            validate_all(&short, 1000),
            Err(LogError::CorruptMessage(_))
        ));
    }

    #[test]
    fn log_append_time_patch_keeps_crc_valid() {
        let b = batch(1, 0);
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&b[..HEADER_LEN]);
        set_log_append_time(&mut h, &b[HEADER_LEN..], 1234);
        set_offset_and_epoch(&mut h, 99, 5);
        let mut patched = h.to_vec();
        patched.extend_from_slice(&b[HEADER_LEN..]);
        let header = BatchHeader::parse(&patched).expect("parse");
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp, 1234);
        assert_eq!(header.base_offset, 99);
        assert!(crc_matches(&patched, &header));
    }

    #[test]
    fn sequences_wrap_like_kafka() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(-1, 3), -1);
    }

    #[test]
    fn built_batches_parse_with_valid_crc() {
        let original = BatchHeader::parse(&batch(2, 1)).expect("parse");
        let h = BatchHeader {
            base_offset: 40,
            producer_id: 7,
            producer_epoch: 2,
            base_sequence: 11,
            ..original
        };
        let b = build_batch(&h, 3, 100, 120, 0, 1, &[9, 9, 9]);
        let got = BatchHeader::parse(&b).expect("parse");
        assert!(crc_matches(&b, &got));
        assert_eq!(got.size as usize, b.len());
        assert_eq!((got.base_offset, got.last_offset()), (40, 41));
        assert_eq!(
            (got.producer_id, got.producer_epoch, got.base_sequence),
            (7, 2, 11)
        );
        assert_eq!(
            (got.base_timestamp, got.max_timestamp, got.record_count),
            (100, 120, 1)
        );
        assert_eq!(leader_epoch_of(&b), 3);
        assert_eq!(got.last_sequence(), 12);
    }
}
