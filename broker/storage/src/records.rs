//! Record-level access for the rare paths that look inside batches: exact record offsets for
//! timestamp searches, the key check of compacted topics, and the cleaner's rewrite. Records are
//! parsed and encoded here byte for byte (headers are carried as raw bytes, so duplicate header
//! keys survive), never through `kafka-protocol`'s `Record`, whose headers are a map.

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use crate::LogError;
use crate::batch::{BatchHeader, HEADER_LEN};
use crate::compression::decompress;

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

fn write_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// One record of a v2 batch, borrowed from the uncompressed records buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawRecord<'a> {
    pub attributes: u8,
    pub timestamp_delta: i64,
    pub offset_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// Header count and headers exactly as stored.
    pub headers: &'a [u8],
}

/// A nullable byte field: varint length (-1 = null) and bytes, within `end`.
fn read_bytes<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    end: usize,
) -> Result<Option<&'a [u8]>, LogError> {
    let len = read_varlong(buf, pos)?;
    if len < 0 {
        return Ok(None);
    }
    let stop = usize::try_from(len)
        .ok()
        .and_then(|l| pos.checked_add(l))
        .filter(|&e| e <= end)
        .ok_or_else(|| corrupt("field length out of bounds"))?;
    let out = &buf[*pos..stop];
    *pos = stop;
    Ok(Some(out))
}

/// Parses `count` records from uncompressed record bytes, which must hold exactly them.
pub(crate) fn parse_records(data: &[u8], count: i32) -> Result<Vec<RawRecord<'_>>, LogError> {
    let count = usize::try_from(count).map_err(|_| corrupt("negative record count"))?;
    let mut out = Vec::with_capacity(count.min(data.len()));
    let mut pos = 0usize;
    for _ in 0..count {
        let len = read_varlong(data, &mut pos)?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|&e| e <= data.len())
            .ok_or_else(|| corrupt("record length out of bounds"))?;
        let attributes = *data.get(pos).ok_or_else(|| corrupt("truncated record"))?;
        pos += 1;
        let timestamp_delta = read_varlong(data, &mut pos)?;
        let offset_delta = read_varlong(data, &mut pos)?;
        let key = read_bytes(data, &mut pos, end)?;
        let value = read_bytes(data, &mut pos, end)?;
        if pos > end {
            return Err(corrupt("record fields exceed its length"));
        }
        out.push(RawRecord {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers: &data[pos..end],
        });
        pos = end;
    }
    if pos != data.len() {
        return Err(corrupt("bytes left after the last record"));
    }
    Ok(out)
}

/// Appends `record` encoded with `timestamp_delta` (offset delta and everything else unchanged).
pub(crate) fn encode_record(out: &mut Vec<u8>, record: &RawRecord<'_>, timestamp_delta: i64) {
    let mut body = Vec::with_capacity(
        16 + record.key.map_or(0, <[u8]>::len)
            + record.value.map_or(0, <[u8]>::len)
            + record.headers.len(),
    );
    body.push(record.attributes);
    write_varlong(&mut body, timestamp_delta);
    write_varlong(&mut body, record.offset_delta);
    for field in [record.key, record.value] {
        match field {
            None => write_varlong(&mut body, -1),
            Some(b) => {
                write_varlong(&mut body, b.len() as i64);
                body.extend_from_slice(b);
            }
        }
    }
    body.extend_from_slice(record.headers);
    write_varlong(out, body.len() as i64);
    out.extend_from_slice(&body);
}

/// The uncompressed record bytes of a whole batch.
pub(crate) fn batch_records(batch: &[u8], header: &BatchHeader) -> Result<Bytes, LogError> {
    let body = batch
        .get(HEADER_LEN..header.size as usize)
        .ok_or_else(|| corrupt("batch shorter than its header"))?;
    decompress(header.compression(), body)
}

/// Compacted topics take only keyed records (Kafka's `validateKey`); control batches are exempt.
pub(crate) fn check_keys(
    batch: &[u8],
    header: &BatchHeader,
    batch_index: usize,
    partition: &impl std::fmt::Display,
) -> Result<(), LogError> {
    if header.is_control() {
        return Ok(());
    }
    let data = batch_records(batch, header)?;
    // Every keyless record is named (KIP-467), so the client fails only those.
    let why = format!(
        "Compacted topic cannot accept message without key in topic partition {partition}."
    );
    let keyless: Vec<(i32, String)> = parse_records(&data, header.record_count)?
        .iter()
        .enumerate()
        .filter(|(_, r)| r.key.is_none())
        .map(|(i, _)| (i as i32, why.clone()))
        .collect();
    if keyless.is_empty() {
        return Ok(());
    }
    Err(LogError::InvalidRecords {
        message: format!(
            "One or more records have been rejected due to {} record errors in total \
             (batch {batch_index}): {why}",
            keyless.len()
        ),
        records: keyless,
    })
}

/// Kafka's `validateTimestamp` for CreateTime (KIP-937): every record whose timestamp lies more
/// than `before_ms` behind or `after_ms` ahead of `now_ms` is named, so the client fails only
/// those. Only topics that set a bound pay for reading the records.
pub(crate) fn check_timestamps(
    batch: &[u8],
    header: &BatchHeader,
    bounds: (Option<u64>, Option<u64>),
    now_ms: i64,
    partition: &impl std::fmt::Display,
) -> Result<(), LogError> {
    if header.is_control() {
        return Ok(());
    }
    let (before, after) = bounds;
    let lowest = before.map_or(i64::MIN, |b| {
        now_ms.saturating_sub(b.min(i64::MAX as u64) as i64)
    });
    let highest = after.map_or(i64::MAX, |a| {
        now_ms.saturating_add(a.min(i64::MAX as u64) as i64)
    });
    // The header's max timestamp settles the common case without reading the records.
    if header.max_timestamp > highest || header.base_timestamp < lowest || before.is_some() {
        let data = batch_records(batch, header)?;
        let bad: Vec<(i32, String)> = parse_records(&data, header.record_count)?
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let ts = header.base_timestamp.wrapping_add(r.timestamp_delta);
                (ts < lowest || ts > highest).then(|| {
                    (
                        i as i32,
                        format!(
                            "Timestamp {ts} of message with offset delta {} is out of range. \
                             The timestamp should be within [{lowest}, {highest}]",
                            r.offset_delta
                        ),
                    )
                })
            })
            .collect();
        if let Some((_, first)) = bad.first() {
            return Err(LogError::InvalidTimestamps {
                message: format!(
                    "One or more records have been rejected due to {} record errors in \
                     total in {partition}: {first}",
                    bad.len()
                ),
                records: bad,
            });
        }
    }
    Ok(())
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

/// The first record (offset, timestamp) of one whole record batch read from elsewhere (the
/// remote tier) at or after `min_offset` whose timestamp is >= `ts`, decompressing the batch if
/// it is compressed: ListOffsets by timestamp answers that exact record, as Kafka does.
pub fn first_record_in_batch(
    batch: &[u8],
    min_offset: i64,
    ts: i64,
) -> Result<Option<(i64, i64)>, LogError> {
    let header = BatchHeader::parse(batch)?;
    first_record_matching(batch.to_vec(), &header, |offset, timestamp| {
        offset >= min_offset && timestamp >= ts
    })
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
        for v in [0i64, -1, 1, 150, -150, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            let mut pos = 0;
            assert_eq!(read_varlong(&out, &mut pos).expect("varint"), v);
        }
    }

    #[test]
    fn records_round_trip_byte_exact() {
        // Two headers with the same key must both survive.
        let headers = [4u8, 2, b'h', 2, b'1', 2, b'h', 2, b'2'];
        let recs = [
            RawRecord {
                attributes: 0,
                timestamp_delta: 5,
                offset_delta: 0,
                key: Some(b"k1"),
                value: Some(b"value"),
                headers: &headers,
            },
            RawRecord {
                attributes: 0,
                timestamp_delta: -3,
                offset_delta: 7,
                key: Some(b""),
                value: None,
                headers: &[0],
            },
        ];
        let mut data = Vec::new();
        for r in &recs {
            encode_record(&mut data, r, r.timestamp_delta);
        }
        let parsed = parse_records(&data, 2).expect("parse");
        assert_eq!(parsed, recs);
        assert!(parse_records(&data, 1).is_err());
        assert!(parse_records(&data, 3).is_err());
        assert!(parse_records(&data[..data.len() - 1], 2).is_err());
    }
}
