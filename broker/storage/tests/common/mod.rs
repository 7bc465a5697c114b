//! Shared test helpers: hand-built RecordBatch v2 bytes and log set-up.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strait_storage::{LogConfig, LogManager, PartitionLog, TopicPartition};

pub const HEADER: usize = 61;

pub fn varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

/// Encoded records with timestamps `base_ts + ts_deltas[i]` and values of `value_size` bytes.
pub fn records(ts_deltas: &[i64], value_size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &d) in ts_deltas.iter().enumerate() {
        let mut body = vec![0u8];
        varlong(&mut body, d);
        varlong(&mut body, i as i64);
        varlong(&mut body, -1);
        let value = vec![b'a' + (i % 26) as u8; value_size];
        varlong(&mut body, value.len() as i64);
        body.extend_from_slice(&value);
        varlong(&mut body, 0);
        varlong(&mut out, body.len() as i64);
        out.extend_from_slice(&body);
    }
    out
}

/// Wraps encoded records in a v2 batch header with a valid CRC.
pub fn frame(records: &[u8], count: i32, base_ts: i64, max_ts: i64, attributes: i16) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER + records.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((HEADER - 12 + records.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&(count - 1).to_be_bytes());
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(records);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// An uncompressed batch of `n` records with timestamps base_ts, base_ts+1, ...
pub fn batch(n: usize, base_ts: i64, value_size: usize) -> Vec<u8> {
    let deltas: Vec<i64> = (0..n as i64).collect();
    frame(
        &records(&deltas, value_size),
        n as i32,
        base_ts,
        base_ts + n as i64 - 1,
        0,
    )
}

/// A batch whose records have the given timestamp deltas (not sorted).
pub fn batch_with_deltas(deltas: &[i64], base_ts: i64) -> Vec<u8> {
    let max = deltas.iter().copied().max().unwrap_or(0);
    frame(
        &records(deltas, 10),
        deltas.len() as i32,
        base_ts,
        base_ts + max,
        0,
    )
}

/// A gzip-compressed batch whose records have the given timestamp deltas.
pub fn gzip_batch(deltas: &[i64], base_ts: i64) -> Vec<u8> {
    let raw = records(deltas, 10);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&raw).expect("gzip");
    let compressed = enc.finish().expect("gzip");
    let max = deltas.iter().copied().max().unwrap_or(0);
    frame(&compressed, deltas.len() as i32, base_ts, base_ts + max, 1)
}

pub fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

pub fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// (base offset, last offset, leader epoch, size) of each batch in `bytes`.
pub fn batches_in(bytes: &[u8]) -> Vec<(i64, i64, i32, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let base = be_i64(bytes, pos);
        let size = be_i32(bytes, pos + 8) as usize + 12;
        let delta = be_i32(bytes, pos + 23) as i64;
        out.push((base, base + delta, be_i32(bytes, pos + 12), size));
        pos += size;
    }
    assert_eq!(pos, bytes.len(), "regions must hold whole batches");
    out
}

pub fn tp(topic: &str, p: i32) -> TopicPartition {
    TopicPartition::new(topic, p)
}

pub fn small_config() -> LogConfig {
    LogConfig {
        retention_ms: None,
        segment_ms: None,
        ..LogConfig::default()
    }
}

pub fn open(dir: &Path) -> LogManager {
    LogManager::open(&[dir.to_path_buf()], &|_| small_config()).expect("open log manager")
}

pub fn open_with(dir: &Path, config: LogConfig) -> LogManager {
    LogManager::open(&[dir.to_path_buf()], &move |_| config.clone()).expect("open log manager")
}

pub fn create(mgr: &LogManager, config: LogConfig) -> Arc<PartitionLog> {
    mgr.get_or_create(&tp("t", 0), config).expect("create")
}

/// Reads everything readable from `offset` as bytes.
pub fn read_bytes(log: &PartitionLog, offset: i64) -> Vec<u8> {
    let r = log.read(offset, u64::MAX, i64::MAX, true).expect("read");
    let mut out = Vec::new();
    for region in &r.regions {
        region.read_to_vec(&mut out).expect("read region");
    }
    assert_eq!(out.len() as u64, r.bytes);
    out
}

pub fn segment_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// `batch` with the idempotent producer fields set (and the CRC recomputed).
pub fn with_producer(
    mut batch: Vec<u8>,
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
    batch[51..53].copy_from_slice(&epoch.to_be_bytes());
    batch[53..57].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// An idempotent batch of `n` records.
pub fn pid_batch(n: usize, producer_id: i64, epoch: i16, base_sequence: i32, ts: i64) -> Vec<u8> {
    with_producer(batch(n, ts, 10), producer_id, epoch, base_sequence)
}

/// A record for [`keyed_records`]: key, value (None = tombstone), headers in order.
pub struct Rec<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a [u8], &'a [u8])],
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => varlong(out, -1),
        Some(b) => {
            varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// Encoded records with offset deltas 0.. and timestamp deltas 0..
pub fn keyed_records(recs: &[Rec<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        let mut body = vec![0u8];
        varlong(&mut body, i as i64);
        varlong(&mut body, i as i64);
        put_bytes(&mut body, r.key);
        put_bytes(&mut body, r.value);
        varlong(&mut body, r.headers.len() as i64);
        for (k, v) in r.headers {
            put_bytes(&mut body, Some(k));
            put_bytes(&mut body, Some(v));
        }
        varlong(&mut out, body.len() as i64);
        out.extend_from_slice(&body);
    }
    out
}

/// An uncompressed batch of keyed records, timestamps base_ts, base_ts+1, ...
pub fn keyed_batch(recs: &[Rec<'_>], base_ts: i64) -> Vec<u8> {
    let n = recs.len() as i32;
    frame(
        &keyed_records(recs),
        n,
        base_ts,
        base_ts + i64::from(n) - 1,
        0,
    )
}

/// The same, gzip-compressed.
pub fn keyed_gzip_batch(recs: &[Rec<'_>], base_ts: i64) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&keyed_records(recs)).expect("gzip");
    let compressed = enc.finish().expect("gzip");
    let n = recs.len() as i32;
    frame(&compressed, n, base_ts, base_ts + i64::from(n) - 1, 1)
}

fn read_varlong(b: &[u8], pos: &mut usize) -> i64 {
    let mut raw = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*pos];
        *pos += 1;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return (raw >> 1) as i64 ^ -((raw & 1) as i64);
        }
        shift += 7;
    }
}

fn get_bytes(b: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
    let len = read_varlong(b, pos);
    if len < 0 {
        return None;
    }
    let out = b[*pos..*pos + len as usize].to_vec();
    *pos += len as usize;
    Some(out)
}

/// One record read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Every record of `bytes` (whole batches, CRC checked, gzip or uncompressed).
pub fn records_in(bytes: &[u8]) -> Vec<ReadRecord> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let size = be_i32(bytes, pos + 8) as usize + 12;
        let b = &bytes[pos..pos + size];
        assert_eq!(
            crc32c::crc32c(&b[21..]),
            u32::from_be_bytes([b[17], b[18], b[19], b[20]])
        );
        let base = be_i64(b, 0);
        let base_ts = be_i64(b, 27);
        let count = be_i32(b, 57);
        let attributes = i16::from_be_bytes([b[21], b[22]]);
        let data = match attributes & 7 {
            0 => b[61..].to_vec(),
            1 => {
                let mut d = flate2::read::GzDecoder::new(&b[61..]);
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut d, &mut v).expect("gunzip");
                v
            }
            other => panic!("codec {other} not readable in tests"),
        };
        let mut p = 0;
        for _ in 0..count {
            let len = read_varlong(&data, &mut p);
            let end = p + len as usize;
            p += 1;
            let ts = read_varlong(&data, &mut p);
            let od = read_varlong(&data, &mut p);
            let key = get_bytes(&data, &mut p);
            let value = get_bytes(&data, &mut p);
            let n = read_varlong(&data, &mut p);
            let mut headers = Vec::new();
            for _ in 0..n {
                let k = get_bytes(&data, &mut p).expect("header key");
                headers.push((k, get_bytes(&data, &mut p)));
            }
            assert_eq!(p, end);
            out.push(ReadRecord {
                offset: base + od,
                timestamp: base_ts + ts,
                key,
                value,
                headers,
            });
        }
        assert_eq!(p, data.len());
        pos += size;
    }
    out
}

/// Attribute bit of transactional batches.
pub const TRANSACTIONAL: i16 = 0x10;

/// `batch` made transactional for the producer (attributes and CRC rewritten).
pub fn transactional(
    mut batch: Vec<u8>,
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    let attributes = i16::from_be_bytes([batch[21], batch[22]]) | TRANSACTIONAL;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    with_producer(batch, producer_id, epoch, base_sequence)
}

/// A transactional batch of `n` records.
pub fn txn_batch(n: usize, producer_id: i64, epoch: i16, base_sequence: i32, ts: i64) -> Vec<u8> {
    transactional(batch(n, ts, 10), producer_id, epoch, base_sequence)
}

/// Bytes of the `<base>.txnindex` file in `dir` (None when missing).
pub fn txn_index_file(dir: &Path, base: i64) -> Option<Vec<u8>> {
    std::fs::read(dir.join(format!("{base:020}.txnindex"))).ok()
}

/// Kafka's 34-byte AbortedTxn entry.
pub fn txn_index_entry(pid: i64, first: i64, last: i64, lso: i64) -> Vec<u8> {
    let mut out = vec![0u8, 0];
    for v in [pid, first, last, lso] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}
