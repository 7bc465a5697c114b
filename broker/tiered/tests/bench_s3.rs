//! Throughput of the remote store against a real s3s-fs on loopback (a benchmark, not a check:
//! run with `cargo test --release -p strait-tiered --test bench_s3 -- --ignored --nocapture`).
//! Uploads a ~256 MiB segment set (4 × 64 MiB), then reads it all back cold (fresh store, empty
//! cache) the way a consumer does: 1 MiB fetches in offset order, one reader per segment.

mod common;

use std::time::Instant;

use common::{S3Server, build_segment};
use strait_tiered::RemoteStore;
use uuid::Uuid;

const SEGMENTS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run explicitly"]
async fn s3_upload_and_cold_read_throughput() {
    let server = S3Server::start();
    let topic_id = Uuid::new_v4();
    // ~64 MiB each: 2000 batches of up to 64 records of up to 2 KiB (avg ~33 KiB a batch).
    let segments: Vec<_> = (0..SEGMENTS)
        .map(|i| {
            build_segment(
                i as i64 * 1_000_000,
                2000,
                64,
                2048,
                0,
                4096,
                100 + i as u64,
            )
        })
        .collect();
    let total: u64 = segments.iter().map(|s| s.log.len() as u64).sum();
    let keys: Vec<_> = segments
        .iter()
        .enumerate()
        .map(|(i, s)| s.key("bench", topic_id, i as i32))
        .collect();

    let store = RemoteStore::new(&server.config("")).unwrap();
    let start = Instant::now();
    let uploads: Vec<_> = segments
        .iter()
        .zip(&keys)
        .map(|(s, k)| store.copy_segment(k, &s.files))
        .collect();
    for r in futures::future::join_all(uploads).await {
        r.expect("upload");
    }
    let up = start.elapsed().as_secs_f64();

    let cold = RemoteStore::new(&server.config("")).unwrap();
    let start = Instant::now();
    let reads: Vec<_> = segments
        .iter()
        .zip(&keys)
        .map(|(s, k)| {
            let cold = cold.clone();
            async move {
                let mut offset = s.base_offset;
                let mut bytes = 0usize;
                while offset < s.next_offset() {
                    let data = cold.read(k, offset, 1 << 20).await.expect("read");
                    let first = s.batch_of(offset);
                    let end = s.batches[first].position + data.len() as u64;
                    let last = s.batches.iter().rev().find(|b| b.position < end).unwrap();
                    offset = last.last_offset + 1;
                    bytes += data.len();
                }
                bytes
            }
        })
        .collect();
    let read_bytes: usize = futures::future::join_all(reads).await.into_iter().sum();
    let down = start.elapsed().as_secs_f64();
    assert_eq!(read_bytes as u64, total);

    // One reader, one segment: a single consumer's cold catch-up rate.
    let single = RemoteStore::new(&server.config("")).unwrap();
    let s = &segments[0];
    let start = Instant::now();
    let mut offset = s.base_offset;
    while offset < s.next_offset() {
        let data = single.read(&keys[0], offset, 1 << 20).await.expect("read");
        let first = s.batch_of(offset);
        let end = s.batches[first].position + data.len() as u64;
        offset = s
            .batches
            .iter()
            .rev()
            .find(|b| b.position < end)
            .unwrap()
            .last_offset
            + 1;
    }
    let one = start.elapsed().as_secs_f64();

    let mib = |b: f64| b / (1024.0 * 1024.0);
    println!(
        "upload: {:.0} MiB in {up:.2} s = {:.0} MiB/s ({SEGMENTS} segments in parallel)",
        mib(total as f64),
        mib(total as f64) / up
    );
    println!(
        "cold read: {:.0} MiB in {down:.2} s = {:.0} MiB/s ({SEGMENTS} readers, 1 MiB fetches)",
        mib(total as f64),
        mib(total as f64) / down
    );
    println!(
        "cold read, one reader: {:.0} MiB in {one:.2} s = {:.0} MiB/s",
        mib(s.log.len() as f64),
        mib(s.log.len() as f64) / one
    );
}
