//! Record-level access for the rare paths that need exact record offsets (timestamp searches):
//! walks a batch's records (decompressing through `kafka-protocol` when the batch is compressed)
//! and reports each record's offset and timestamp.

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use crate::LogError;
use crate::batch::{BatchHeader, HEADER_LEN};

fn corrupt(detail: &str) -> LogError {
    LogError::CorruptMessage(format!("malformed record: {detail}"))
}

/// Zigzag varint (Kafka's `ByteUtils.readVarlong`).
fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, LogError> {
    let mut raw: u64 = 0;
    for shift in (0..70).step_by(7) {
        let Some(&b) = buf.get(*pos) else {
            return Err(corrupt("truncated varint"));
        };
        *pos += 1;
        if shift == 63 && b > 1 {
            return Err(corrupt("varint too long"));
        }
        raw |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err(corrupt("varint too long"))
}

/// Offsets and timestamps of an uncompressed batch's records, without allocating records.
fn walk_plain(
    batch: &[u8],
    header: &BatchHeader,
    mut f: impl FnMut(i64, i64) -> bool,
) -> Result<Option<(i64, i64)>, LogError> {
    let records = batch
        .get(HEADER_LEN..)
        .ok_or_else(|| corrupt("batch shorter than its header"))?;
    let mut pos = 0usize;
    for _ in 0..header.record_count {
        let len = read_varlong(records, &mut pos)?;
        let start = pos;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|&e| e <= records.len())
            .ok_or_else(|| corrupt("record length out of bounds"))?;
        pos += 1; // attributes
        let ts_delta = read_varlong(records, &mut pos)?;
        let offset_delta = read_varlong(records, &mut pos)?;
        if pos > end {
            return Err(corrupt("record header exceeds its length"));
        }
        let offset = header.base_offset + offset_delta;
        let timestamp = header.base_timestamp.wrapping_add(ts_delta);
        if f(offset, timestamp) {
            return Ok(Some((offset, timestamp)));
        }
        pos = end;
    }
    Ok(None)
}

/// The first record of `batch` (offset, timestamp) for which `pred` holds.
pub(crate) fn first_record_matching(
    batch: Vec<u8>,
    header: &BatchHeader,
    pred: impl Fn(i64, i64) -> bool,
) -> Result<Option<(i64, i64)>, LogError> {
    if header.is_log_append_time() {
        // Every record of a LogAppendTime batch carries the batch's max timestamp.
        let ts = header.max_timestamp;
        return Ok((header.base_offset..=header.last_offset())
            .find(|&o| pred(o, ts))
            .map(|o| (o, ts)));
    }
    if !header.is_compressed() {
        return walk_plain(&batch, header, pred);
    }
    let mut bytes = Bytes::from(batch);
    let set = RecordBatchDecoder::decode(&mut bytes)
        .map_err(|e| LogError::CorruptMessage(format!("cannot decode batch: {e:#}")))?;
    Ok(set
        .records
        .iter()
        .find(|r| pred(r.offset, r.timestamp))
        .map(|r| (r.offset, r.timestamp)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        for (bytes, want) in [
            (&[0u8][..], 0i64),
            (&[1], -1),
            (&[2], 1),
            (&[0xac, 0x02], 150),
        ] {
            let mut pos = 0;
            assert_eq!(read_varlong(bytes, &mut pos).expect("varint"), want);
            assert_eq!(pos, bytes.len());
        }
        let mut pos = 0;
        assert!(read_varlong(&[0x80, 0x80], &mut pos).is_err());
        let mut pos = 0;
        assert!(read_varlong(&[0xff; 11], &mut pos).is_err());
    }
}
