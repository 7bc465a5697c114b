//! Test support: a real s3s-fs server on a free loopback port (killed by PID on drop), and real
//! Kafka segments (RecordBatch v2 bytes from kafka-protocol's encoder, with the offset and time
//! indexes Strait's storage writes for them).

#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strait_tiered::{Backend, RemoteStorageConfig, SegmentFiles, SegmentKey};
use uuid::Uuid;

pub const ACCESS_KEY: &str = "strait-test-ak";
pub const SECRET_KEY: &str = "strait-test-secret-key";
pub const BUCKET: &str = "tier";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running s3s-fs; the process is killed (by its PID) when this is dropped.
pub struct S3Server {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    log: PathBuf,
}

impl S3Server {
    /// Starts s3s-fs over a fresh directory with bucket [`BUCKET`] and waits until it accepts
    /// connections.
    pub fn start() -> S3Server {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join(BUCKET)).expect("bucket dir");
        let port = free_port();
        let log = dir.path().join("s3s-fs.log");
        let child = spawn_s3s(port, dir.path(), &log);
        let server = S3Server {
            child,
            port,
            dir,
            log,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not listen on {addr} within 30 s; log: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Stops the server (the data directory stays).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port and directory.
    pub fn restart(&mut self) {
        self.stop();
        self.child = spawn_s3s(self.port, self.dir.path(), &self.log);
        self.wait_ready();
    }

    /// Files (objects) in the bucket, as paths relative to it.
    pub fn objects(&self) -> Vec<String> {
        let root = self.dir.path().join(BUCKET);
        let mut out = Vec::new();
        walk(&root, &root, &mut out);
        out.sort();
        out
    }

    pub fn config(&self, prefix: &str) -> RemoteStorageConfig {
        s3_config(&self.endpoint(), BUCKET, ACCESS_KEY, SECRET_KEY, prefix)
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
}

fn spawn_s3s(port: u16, dir: &Path, log: &Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let err = out.try_clone().expect("log file");
    Command::new("s3s-fs")
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("s3s-fs on PATH (install it with e2e/setup.sh)")
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn s3_config(
    endpoint: &str,
    bucket: &str,
    access_key: &str,
    secret_key: &str,
    prefix: &str,
) -> RemoteStorageConfig {
    RemoteStorageConfig {
        backend: Backend::S3 {
            bucket: bucket.into(),
            endpoint: Some(endpoint.into()),
            region: "us-east-1".into(),
            path_style: true,
            access_key_id: Some(access_key.into()),
            secret_access_key: Some(secret_key.into()),
        },
        key_prefix: prefix.into(),
        copy_bytes_per_sec: None,
        fetch_bytes_per_sec: None,
        upload_concurrency: 4,
        read_concurrency: 8,
        cache_bytes: 64 << 20,
    }
}

pub fn fs_config(root: &Path, prefix: &str) -> RemoteStorageConfig {
    RemoteStorageConfig {
        backend: Backend::Filesystem {
            root: root.to_path_buf(),
        },
        key_prefix: prefix.into(),
        copy_bytes_per_sec: None,
        fetch_bytes_per_sec: None,
        upload_concurrency: 4,
        read_concurrency: 8,
        cache_bytes: 64 << 20,
    }
}

/// One batch of a built segment.
#[derive(Debug, Clone)]
pub struct BatchInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub position: u64,
    pub size: u64,
    /// Timestamp of each record, in offset order.
    pub timestamps: Vec<i64>,
    pub compressed: bool,
}

impl BatchInfo {
    pub fn max_timestamp(&self) -> i64 {
        self.timestamps.iter().copied().max().unwrap_or(-1)
    }
}

/// A closed segment on local disk.
pub struct BuiltSegment {
    pub dir: tempfile::TempDir,
    pub files: SegmentFiles,
    pub log: Bytes,
    pub batches: Vec<BatchInfo>,
    pub base_offset: i64,
}

impl BuiltSegment {
    pub fn next_offset(&self) -> i64 {
        self.batches
            .last()
            .map_or(self.base_offset, |b| b.last_offset + 1)
    }

    /// The log bytes of batches `from..to` (indexes into `batches`).
    pub fn slice(&self, from: usize, to: usize) -> Bytes {
        let start = self.batches[from].position as usize;
        let end = (self.batches[to - 1].position + self.batches[to - 1].size) as usize;
        self.log.slice(start..end)
    }

    /// Index of the batch holding `offset`.
    pub fn batch_of(&self, offset: i64) -> usize {
        self.batches
            .iter()
            .position(|b| b.last_offset >= offset)
            .expect("offset in segment")
    }

    /// Kafka's answer for ListOffsets by timestamp within this segment.
    pub fn expected_for_timestamp(&self, ts: i64) -> Option<(i64, i64)> {
        for b in &self.batches {
            if b.max_timestamp() < ts {
                continue;
            }
            if b.compressed {
                return Some((b.base_offset, b.max_timestamp()));
            }
            for (i, t) in b.timestamps.iter().enumerate() {
                if *t >= ts {
                    return Some((b.base_offset + i as i64, *t));
                }
            }
        }
        None
    }

    pub fn key(&self, topic: &str, topic_id: Uuid, partition: i32) -> SegmentKey {
        SegmentKey {
            topic: topic.into(),
            topic_id,
            partition,
            base_offset: self.base_offset,
            segment_id: Uuid::new_v4(),
        }
    }
}

/// Deterministic pseudo-random numbers (xorshift), so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Builds a segment of `batches` batches starting at `base_offset`: 1..=`max_records` records
/// per batch of values up to `max_value` bytes, timestamps mostly rising (with some going back,
/// as producers' CreateTime does), every `gzip_every`-th batch gzip-compressed (0: none), and
/// Kafka's indexes (an entry once more than `index_interval` bytes went by).
pub fn build_segment(
    base_offset: i64,
    batches: usize,
    max_records: u64,
    max_value: u64,
    gzip_every: usize,
    index_interval: u64,
    seed: u64,
) -> BuiltSegment {
    let mut rng = Rng::new(seed);
    let mut log = BytesMut::new();
    let mut infos = Vec::new();
    let mut offset_index = Vec::new();
    let mut time_index = Vec::new();
    let mut offset = base_offset;
    let mut ts = 1_700_000_000_000i64;
    let mut bytes_since_index = 0u64;
    let mut max_ts = -1i64;
    let mut max_ts_offset = base_offset;
    let mut last_indexed_ts = i64::MIN;
    for n in 0..batches {
        let count = 1 + rng.below(max_records);
        let mut records = Vec::new();
        let mut timestamps = Vec::new();
        for i in 0..count {
            ts += rng.below(20) as i64;
            let t = if rng.below(10) == 0 { ts - 15 } else { ts };
            timestamps.push(t);
            let len = rng.below(max_value + 1) as usize;
            let value: Vec<u8> = (0..len).map(|j| (j as u64 ^ rng.0 ^ i) as u8).collect();
            records.push(Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 3,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: offset + i as i64,
                sequence: i as i32,
                timestamp: t,
                key: Some(Bytes::from(format!("key-{}", offset + i as i64))),
                value: Some(Bytes::from(value)),
                headers: Default::default(),
            });
        }
        let compressed = gzip_every > 0 && n % gzip_every == gzip_every - 1;
        let options = RecordEncodeOptions {
            version: 2,
            compression: if compressed {
                Compression::Gzip
            } else {
                Compression::None
            },
        };
        let position = log.len() as u64;
        RecordBatchEncoder::encode(&mut log, &records, &options).expect("encode batch");
        let size = log.len() as u64 - position;
        let last_offset = offset + count as i64 - 1;
        let batch_max = *timestamps.iter().max().unwrap_or(&-1);
        if batch_max > max_ts {
            max_ts = batch_max;
            max_ts_offset = last_offset;
        }
        if bytes_since_index > index_interval {
            offset_index.extend_from_slice(&((last_offset - base_offset) as u32).to_be_bytes());
            offset_index.extend_from_slice(&(position as u32).to_be_bytes());
            if max_ts > last_indexed_ts {
                time_index.extend_from_slice(&max_ts.to_be_bytes());
                time_index.extend_from_slice(&((max_ts_offset - base_offset) as u32).to_be_bytes());
                last_indexed_ts = max_ts;
            }
            bytes_since_index = 0;
        }
        bytes_since_index += size;
        infos.push(BatchInfo {
            base_offset: offset,
            last_offset,
            position,
            size,
            timestamps,
            compressed,
        });
        offset = last_offset + 1;
    }
    // Sealing indexes the largest timestamp.
    if max_ts > last_indexed_ts {
        time_index.extend_from_slice(&max_ts.to_be_bytes());
        time_index.extend_from_slice(&((max_ts_offset - base_offset) as u32).to_be_bytes());
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("{base_offset:020}");
    let log_path = dir.path().join(format!("{name}.log"));
    let index_path = dir.path().join(format!("{name}.index"));
    let time_path = dir.path().join(format!("{name}.timeindex"));
    std::fs::write(&log_path, &log).expect("write log");
    std::fs::write(&index_path, &offset_index).expect("write index");
    std::fs::write(&time_path, &time_index).expect("write timeindex");
    BuiltSegment {
        files: SegmentFiles {
            log: log_path,
            offset_index: index_path,
            time_index: time_path,
            txn_index: None,
            producer_snapshot: Some(Bytes::from_static(b"producer-snapshot-bytes")),
            leader_epoch_checkpoint: Bytes::from(format!("0\n1\n3 {base_offset}\n")),
        },
        dir,
        log: log.freeze(),
        batches: infos,
        base_offset,
    }
}
