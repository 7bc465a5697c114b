//! Append throughput with 1 MB batches (page cache, no flush policy). Ignored by default because
//! it measures the machine as much as the code: `cargo test --release -p strait-storage --test
//! throughput -- --ignored --nocapture`.

mod common;

use std::time::Instant;

use common::*;
use strait_storage::LogConfig;

#[test]
#[ignore]
fn appends_of_1mb_batches_exceed_700_mb_per_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(
        &mgr,
        LogConfig {
            max_message_bytes: 2 << 20,
            segment_bytes: 256 << 20,
            ..small_config()
        },
    );
    let request = batch(1000, 0, 1000);
    assert!(request.len() > 1_000_000);
    let rounds = 768;
    // Warm-up creates the first segment and fills caches.
    for _ in 0..16 {
        log.append(&request, 0, 0).expect("append");
    }
    let start = Instant::now();
    for _ in 0..rounds {
        log.append(&request, 0, 0).expect("append");
    }
    let secs = start.elapsed().as_secs_f64();
    let mb_per_s = (request.len() * rounds) as f64 / secs / 1e6;
    eprintln!(
        "append throughput: {mb_per_s:.0} MB/s over {rounds} batches of {} bytes",
        request.len()
    );
    let r = log.read(0, 64 << 20, i64::MAX, true).expect("read");
    let start = Instant::now();
    let mut buf = Vec::with_capacity(64 << 20);
    for region in &r.regions {
        region.read_to_vec(&mut buf).expect("read");
    }
    eprintln!(
        "region read: {:.0} MB/s",
        buf.len() as f64 / start.elapsed().as_secs_f64() / 1e6
    );
    assert!(mb_per_s > 700.0, "append throughput {mb_per_s:.0} MB/s");
}
