//! The few pieces of Kafka's on-disk format the remote reader needs: RecordBatch v2 headers,
//! record timestamps of uncompressed batches, offset index entries (relative offset u32 +
//! position u32, big-endian) and time index entries (timestamp i64 + relative offset u32).

/// Bytes of a RecordBatch v2 header (through `recordCount`).
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes that give a batch's offset and length (`baseOffset` + `batchLength`).
pub const LOG_OVERHEAD: usize = 12;

/// The fields of a batch header the reader uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Whole batch size on disk, `batchLength` + 12.
    pub size: u32,
    pub magic: i8,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub record_count: i32,
}

impl BatchHeader {
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    pub fn compression(&self) -> i16 {
        self.attributes & 0x07
    }

    pub fn log_append_time(&self) -> bool {
        self.attributes & 0x08 != 0
    }
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

/// Parses a v2 batch header from the first [`BATCH_HEADER_LEN`] bytes of `b`.
pub fn parse_batch_header(b: &[u8]) -> Result<BatchHeader, String> {
    if b.len() < BATCH_HEADER_LEN {
        return Err(format!("batch header truncated: {} bytes", b.len()));
    }
    let batch_length = be_i32(b, 8);
    let magic = b[16] as i8;
    if magic != 2 {
        return Err(format!("unsupported batch magic {magic}"));
    }
    // batchLength counts from partitionLeaderEpoch: at least the rest of the header.
    if batch_length < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
        return Err(format!("invalid batch length {batch_length}"));
    }
    let last_offset_delta = be_i32(b, 23);
    if last_offset_delta < 0 {
        return Err(format!("invalid lastOffsetDelta {last_offset_delta}"));
    }
    Ok(BatchHeader {
        base_offset: be_i64(b, 0),
        size: batch_length as u32 + LOG_OVERHEAD as u32,
        magic,
        attributes: i16::from_be_bytes([b[21], b[22]]),
        last_offset_delta,
        base_timestamp: be_i64(b, 27),
        max_timestamp: be_i64(b, 35),
        record_count: be_i32(b, 57),
    })
}

/// Offset index entries are `(relative offset u32, position u32)`; Kafka preallocates index files
/// with zeros, so the valid entries are a prefix: the first, then those with a non-zero position.
const OFFSET_ENTRY: usize = 8;
/// Time index entries are `(timestamp i64, relative offset u32)`.
const TIME_ENTRY: usize = 12;

fn valid_entries(raw: &[u8], entry: usize, is_zero: impl Fn(&[u8]) -> bool) -> usize {
    let n = raw.len() / entry;
    // Entries 1.. are valid until the zero tail starts: a monotone predicate, so bisect.
    let (mut lo, mut hi) = (1usize.min(n), n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if is_zero(&raw[mid * entry..(mid + 1) * entry]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// The position to start scanning from for `offset` (Kafka's `OffsetIndex.lookup`): the
/// position of the last entry at or below it, else 0. Works on the raw index bytes (binary
/// search, no parsing of the whole index per read).
pub fn offset_index_lookup(raw: &[u8], base_offset: i64, offset: i64) -> u32 {
    let rel = offset - base_offset;
    if rel < 0 {
        return 0;
    }
    let n = valid_entries(raw, OFFSET_ENTRY, |e| be_u32(e, 4) == 0);
    let entry = |i: usize| &raw[i * OFFSET_ENTRY..(i + 1) * OFFSET_ENTRY];
    // partition_point over entries by "relative offset <= rel".
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if i64::from(be_u32(entry(mid), 0)) <= rel {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if lo == 0 { 0 } else { be_u32(entry(lo - 1), 4) }
}

/// The offset a timestamp search may start from: one past the last time index entry whose
/// timestamp is below `ts` (every record up to that entry's offset is older), else the base.
pub fn time_index_start(raw: &[u8], base_offset: i64, ts: i64) -> i64 {
    let n = valid_entries(raw, TIME_ENTRY, |e| be_i64(e, 0) == 0 && be_u32(e, 8) == 0);
    let entry = |i: usize| &raw[i * TIME_ENTRY..(i + 1) * TIME_ENTRY];
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if be_i64(entry(mid), 0) < ts {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if lo == 0 {
        base_offset
    } else {
        base_offset + i64::from(be_u32(entry(lo - 1), 8)) + 1
    }
}

/// Reads a zigzag varint (Kafka's record fields).
fn varlong(b: &[u8], pos: &mut usize) -> Result<i64, String> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *b.get(*pos).ok_or("varint truncated")?;
        *pos += 1;
        if shift == 63 && byte > 1 {
            return Err("varint too long".into());
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err("varint too long".into())
}

/// In an uncompressed batch, the first record (offset, timestamp) with timestamp >= `ts`.
/// `None` when the batch is compressed (records would need decompressing) or has no such record.
pub fn first_record_at_or_after(batch: &[u8], ts: i64) -> Result<Option<(i64, i64)>, String> {
    let h = parse_batch_header(batch)?;
    if h.compression() != 0 {
        return Ok(None);
    }
    if h.log_append_time() {
        // Every record carries the batch's max timestamp.
        return Ok((h.max_timestamp >= ts).then_some((h.base_offset, h.max_timestamp)));
    }
    let end = (h.size as usize).min(batch.len());
    let mut pos = BATCH_HEADER_LEN;
    for _ in 0..h.record_count.max(0) {
        let len = varlong(batch, &mut pos)?;
        let start = pos;
        let record_end = start
            .checked_add(usize::try_from(len).map_err(|_| "negative record length")?)
            .filter(|e| *e <= end)
            .ok_or("record overruns batch")?;
        pos += 1; // attributes
        let ts_delta = varlong(batch, &mut pos)?;
        let offset_delta = varlong(batch, &mut pos)?;
        let record_ts = h.base_timestamp.saturating_add(ts_delta);
        if record_ts >= ts {
            return Ok(Some((h.base_offset + offset_delta, record_ts)));
        }
        pos = record_end;
    }
    Ok(None)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn zigzag(out: &mut Vec<u8>, v: i64) {
        let mut u = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            let byte = (u & 0x7f) as u8;
            u >>= 7;
            if u == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    /// An uncompressed v2 batch of `timestamps.len()` records with small values (the CRC is not
    /// checked by this crate, so it is left 0).
    pub fn batch(base_offset: i64, timestamps: &[i64]) -> Vec<u8> {
        let base_ts = timestamps[0];
        let mut records = Vec::new();
        for (i, ts) in timestamps.iter().enumerate() {
            let mut body = vec![0u8];
            zigzag(&mut body, ts - base_ts);
            zigzag(&mut body, i as i64);
            zigzag(&mut body, -1); // null key
            zigzag(&mut body, 3);
            body.extend_from_slice(b"abc");
            zigzag(&mut body, 0); // headers
            zigzag(&mut records, body.len() as i64);
            records.extend_from_slice(&body);
        }
        let mut b = Vec::new();
        b.extend_from_slice(&base_offset.to_be_bytes());
        b.extend_from_slice(&((BATCH_HEADER_LEN - 12 + records.len()) as i32).to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
        b.push(2);
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&((timestamps.len() - 1) as i32).to_be_bytes());
        b.extend_from_slice(&base_ts.to_be_bytes());
        b.extend_from_slice(&timestamps.iter().max().unwrap().to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&(timestamps.len() as i32).to_be_bytes());
        b.extend_from_slice(&records);
        b
    }

    #[test]
    fn batch_header_fields() {
        let b = batch(100, &[1000, 1005, 1003]);
        let h = parse_batch_header(&b).unwrap();
        assert_eq!(h.base_offset, 100);
        assert_eq!(h.size as usize, b.len());
        assert_eq!(h.last_offset(), 102);
        assert_eq!(h.base_timestamp, 1000);
        assert_eq!(h.max_timestamp, 1005);
        assert_eq!(h.record_count, 3);
        assert_eq!(h.compression(), 0);
        assert!(parse_batch_header(&b[..60]).is_err());
        let mut bad = b.clone();
        bad[16] = 1;
        assert!(parse_batch_header(&bad).is_err());
        let mut bad = b.clone();
        bad[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(parse_batch_header(&bad).is_err());
    }

    #[test]
    fn record_timestamps() {
        let b = batch(100, &[1000, 1005, 1003, 1010]);
        assert_eq!(first_record_at_or_after(&b, 0).unwrap(), Some((100, 1000)));
        assert_eq!(
            first_record_at_or_after(&b, 1001).unwrap(),
            Some((101, 1005))
        );
        assert_eq!(
            first_record_at_or_after(&b, 1006).unwrap(),
            Some((103, 1010))
        );
        assert_eq!(first_record_at_or_after(&b, 1011).unwrap(), None);
        let mut compressed = b.clone();
        compressed[22] = 1;
        assert_eq!(first_record_at_or_after(&compressed, 0).unwrap(), None);
        // A record length past the batch end is an error, not a panic.
        let mut bad = b.clone();
        bad[BATCH_HEADER_LEN] = 0x7e;
        assert!(first_record_at_or_after(&bad, 2000).is_err());
    }

    #[test]
    fn offset_index() {
        let mut raw = Vec::new();
        for (rel, pos) in [(0u32, 0u32), (10, 4096), (20, 8192)] {
            raw.extend_from_slice(&rel.to_be_bytes());
            raw.extend_from_slice(&pos.to_be_bytes());
        }
        for tail in [0usize, 16, 800] {
            let mut raw = raw.clone();
            raw.extend(std::iter::repeat_n(0u8, tail)); // preallocated tail
            assert_eq!(offset_index_lookup(&raw, 1000, 999), 0);
            assert_eq!(offset_index_lookup(&raw, 1000, 1000), 0);
            assert_eq!(offset_index_lookup(&raw, 1000, 1009), 0);
            assert_eq!(offset_index_lookup(&raw, 1000, 1010), 4096);
            assert_eq!(offset_index_lookup(&raw, 1000, 1025), 8192, "tail {tail}");
        }
        assert_eq!(offset_index_lookup(&[], 1000, 1025), 0);
        assert_eq!(offset_index_lookup(&raw[..7], 1000, 1025), 0);
    }

    #[test]
    fn time_index() {
        let mut raw = Vec::new();
        for (ts, rel) in [(100i64, 5u32), (200, 15), (300, 25)] {
            raw.extend_from_slice(&ts.to_be_bytes());
            raw.extend_from_slice(&rel.to_be_bytes());
        }
        for tail in [0usize, 12, 1200] {
            let mut raw = raw.clone();
            raw.extend(std::iter::repeat_n(0u8, tail));
            assert_eq!(time_index_start(&raw, 1000, 50), 1000);
            assert_eq!(time_index_start(&raw, 1000, 100), 1000);
            assert_eq!(time_index_start(&raw, 1000, 101), 1006);
            assert_eq!(time_index_start(&raw, 1000, 301), 1026, "tail {tail}");
        }
        assert_eq!(time_index_start(&[], 1000, 301), 1000);
    }
}
