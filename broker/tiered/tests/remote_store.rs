//! The remote store against its two real backends: a local directory and a real S3 server
//! (s3s-fs on loopback). Segments are real Kafka RecordBatch v2 logs with their indexes.

mod common;

use std::time::{Duration, Instant};

use common::{BuiltSegment, S3Server, build_segment, fs_config, s3_config};
use strait_tiered::{IndexKind, RemoteStorageConfig, RemoteStore, SegmentKey, TieredError};
use uuid::Uuid;

/// Upload, read back from many offsets and sizes, look up timestamps, fetch indexes, list,
/// delete: the same checks for every backend.
async fn exercise(store: &RemoteStore, seg: &BuiltSegment, key: &SegmentKey) {
    let uploaded = store.copy_segment(key, &seg.files).await.expect("copy");
    assert!(uploaded > seg.log.len() as u64, "{uploaded}");
    let listed = store
        .list_partition(&key.topic, key.topic_id, key.partition)
        .await
        .expect("list");
    assert_eq!(listed, vec![(key.clone(), true)]);

    // Reads from the first offset, inside batches, the last offset, below and past the segment.
    let last = seg.next_offset() - 1;
    let mut offsets = vec![seg.base_offset, seg.base_offset - 5, last];
    for b in seg.batches.iter().step_by(seg.batches.len() / 7 + 1) {
        offsets.push(b.base_offset);
        offsets.push(b.last_offset);
        offsets.push((b.base_offset + b.last_offset) / 2);
    }
    for offset in offsets {
        let first = seg.batch_of(offset.max(seg.base_offset));
        for max_bytes in [1usize, 100, 4096, 100_000, 1 << 20, usize::MAX] {
            let got = store.read(key, offset, max_bytes).await.expect("read");
            // Expected: whole batches from `first` while they fit, at least one.
            let mut to = first + 1;
            while to < seg.batches.len() {
                let end = seg.batches[to].position + seg.batches[to].size;
                if end - seg.batches[first].position > max_bytes as u64 {
                    break;
                }
                to += 1;
            }
            let want = seg.slice(first, to);
            assert_eq!(
                got.len(),
                want.len(),
                "offset {offset} max_bytes {max_bytes}: batches {first}..{to}"
            );
            assert!(
                got == want,
                "offset {offset} max_bytes {max_bytes}: bytes differ"
            );
        }
    }
    // Exactly N whole batches fit; one byte less gives N-1.
    let first = seg.batches.len() / 3;
    let three = seg.slice(first, first + 3);
    let start = seg.batches[first].base_offset;
    assert_eq!(store.read(key, start, three.len()).await.unwrap(), three);
    assert_eq!(
        store.read(key, start, three.len() - 1).await.unwrap(),
        seg.slice(first, first + 2)
    );
    assert!(store.read(key, last + 1, 1 << 20).await.unwrap().is_empty());

    // Timestamps: before everything, every batch's records, past everything.
    let mut stamps = vec![0, i64::MAX];
    for b in seg.batches.iter().step_by(3) {
        stamps.extend(b.timestamps.iter().copied());
        stamps.push(b.max_timestamp() + 1);
    }
    for ts in stamps {
        assert_eq!(
            store
                .offset_for_timestamp(key, ts)
                .await
                .expect("timestamp"),
            seg.expected_for_timestamp(ts),
            "timestamp {ts}"
        );
    }

    for b in seg.batches.iter().step_by(5) {
        let ts = b.max_timestamp();
        let first = seg
            .batches
            .iter()
            .position(|x| x.max_timestamp() >= ts)
            .unwrap();
        let got = store.batch_for_timestamp(key, ts).await.unwrap();
        assert_eq!(got, Some(seg.slice(first, first + 1)), "timestamp {ts}");
    }
    assert_eq!(
        store.batch_for_timestamp(key, i64::MAX).await.unwrap(),
        None
    );

    // Indexes and state files come back as uploaded.
    let index = std::fs::read(&seg.files.offset_index).unwrap();
    assert_eq!(
        store.fetch_index(key, IndexKind::Offset).await.unwrap(),
        index
    );
    let time = std::fs::read(&seg.files.time_index).unwrap();
    assert_eq!(store.fetch_index(key, IndexKind::Time).await.unwrap(), time);
    assert_eq!(
        store
            .fetch_index(key, IndexKind::LeaderEpoch)
            .await
            .unwrap(),
        seg.files.leader_epoch_checkpoint
    );
    assert_eq!(
        Some(
            store
                .fetch_index(key, IndexKind::ProducerSnapshot)
                .await
                .unwrap()
        ),
        seg.files.producer_snapshot
    );
    // Uploaded without a transaction index: empty.
    assert!(
        store
            .fetch_index(key, IndexKind::Transaction)
            .await
            .unwrap()
            .is_empty()
    );

    let stats = store.stats();
    assert_eq!(stats.copy_requests, 1);
    assert_eq!(stats.bytes_copied, uploaded);
    assert_eq!(stats.copy_errors, 0);
    assert!(stats.cache_hits > stats.cache_misses, "{stats:?}");

    // Delete: gone, reads fail with a permanent error, deleting again is fine.
    store.delete_segment(key).await.expect("delete");
    assert!(
        store
            .list_partition(&key.topic, key.topic_id, key.partition)
            .await
            .unwrap()
            .is_empty()
    );
    let err = store.read(key, seg.base_offset, 1 << 20).await.unwrap_err();
    assert!(matches!(err, TieredError::NotFound { .. }), "{err}");
    assert!(!err.is_retriable());
    store.delete_segment(key).await.expect("delete again");
}

fn topic_key(seg: &BuiltSegment, partition: i32) -> SegmentKey {
    seg.key("orders.eu-1", Uuid::new_v4(), partition)
}

#[tokio::test]
async fn filesystem_round_trip() {
    let root = tempfile::tempdir().unwrap();
    let store = RemoteStore::new(&fs_config(root.path(), "cluster/")).unwrap();
    let seg = build_segment(1000, 300, 20, 600, 4, 4096, 7);
    let key = topic_key(&seg, 3);
    exercise(&store, &seg, &key).await;
}

#[tokio::test]
async fn s3_round_trip() {
    let server = S3Server::start();
    let store = RemoteStore::new(&server.config("prefix/")).unwrap();
    let seg = build_segment(50_000, 300, 20, 600, 4, 4096, 11);
    let key = topic_key(&seg, 0);
    exercise(&store, &seg, &key).await;
    assert!(server.objects().is_empty(), "{:?}", server.objects());
}

/// A log above the multipart threshold goes up in parts and reads back byte-exact across
/// chunk boundaries; the objects are laid out as Aiven's plugin does.
#[tokio::test]
async fn s3_multipart_segment() {
    let server = S3Server::start();
    let store = RemoteStore::new(&server.config("")).unwrap();
    // About 30 MiB: 600 batches of up to 64 records of up to 3 KiB.
    let seg = build_segment(0, 600, 64, 3000, 0, 4096, 3);
    assert!(seg.log.len() > 20 << 20, "{}", seg.log.len());
    let topic_id = Uuid::new_v4();
    let key = seg.key("big", topic_id, 2);
    store.copy_segment(&key, &seg.files).await.expect("copy");
    let dir = format!("big-{}/2/", strait_tiered::kafka_uuid(topic_id));
    let stem = format!(
        "{dir}00000000000000000000-{}",
        strait_tiered::kafka_uuid(key.segment_id)
    );
    let mut want: Vec<String> = [
        "index",
        "leader-epoch-checkpoint",
        "log",
        "manifest",
        "snapshot",
        "timeindex",
    ]
    .iter()
    .map(|s| format!("{stem}.{s}"))
    .collect();
    want.sort();
    assert_eq!(server.objects(), want);
    let on_disk = std::fs::read(
        server
            .dir
            .path()
            .join(common::BUCKET)
            .join(format!("{stem}.log")),
    )
    .unwrap();
    assert!(on_disk == seg.log, "uploaded log differs");

    // A consumer reading the whole segment 1 MiB at a time gets every byte, in order.
    let fresh = RemoteStore::new(&server.config("")).unwrap();
    let mut offset = 0;
    let mut got = Vec::new();
    while offset < seg.next_offset() {
        let data = fresh.read(&key, offset, 1 << 20).await.expect("read");
        assert!(!data.is_empty());
        let last_batch = seg
            .batches
            .iter()
            .rev()
            .find(|b| b.position < (seg.batches[seg.batch_of(offset)].position + data.len() as u64))
            .unwrap();
        offset = last_batch.last_offset + 1;
        got.extend_from_slice(&data);
    }
    assert!(got == seg.log, "sequential read differs");
    store.delete_segment(&key).await.unwrap();
}

/// Objects without a manifest (an upload that crashed) list as incomplete and cannot be read;
/// delete_partition removes everything of the partition and only it.
#[tokio::test]
async fn crashed_upload_is_incomplete_and_partition_delete() {
    let root = tempfile::tempdir().unwrap();
    let store = RemoteStore::new(&fs_config(root.path(), "")).unwrap();
    let topic_id = Uuid::new_v4();
    let a = build_segment(0, 20, 5, 200, 0, 1024, 1);
    let b = build_segment(a.next_offset(), 20, 5, 200, 0, 1024, 2);
    let key_a = a.key("t", topic_id, 0);
    let key_b = b.key("t", topic_id, 0);
    store.copy_segment(&key_a, &a.files).await.unwrap();
    store.copy_segment(&key_b, &b.files).await.unwrap();
    // Another partition of the same topic must survive delete_partition.
    let other = a.key("t", topic_id, 1);
    store.copy_segment(&other, &a.files).await.unwrap();

    // Simulate a crash after the log went up: remove b's manifest from the store's directory.
    let manifest = root.path().join(format!(
        "t-{}/0/{:020}-{}.manifest",
        strait_tiered::kafka_uuid(topic_id),
        key_b.base_offset,
        strait_tiered::kafka_uuid(key_b.segment_id)
    ));
    std::fs::remove_file(&manifest).expect("manifest file where the layout says");
    let listed = store.list_partition("t", topic_id, 0).await.unwrap();
    assert_eq!(listed, vec![(key_a.clone(), true), (key_b.clone(), false)]);
    let err = store
        .read(&key_b, key_b.base_offset, 1000)
        .await
        .unwrap_err();
    assert!(matches!(err, TieredError::NotFound { .. }), "{err}");

    // b has 5 objects left (no manifest), a has 6.
    assert_eq!(store.delete_partition("t", topic_id, 0).await.unwrap(), 11);
    assert!(
        store
            .list_partition("t", topic_id, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.delete_partition("t", topic_id, 0).await.unwrap(), 0);
    assert_eq!(
        store.list_partition("t", topic_id, 1).await.unwrap(),
        vec![(other, true)]
    );
    // A partition that never had data lists empty.
    assert!(
        store
            .list_partition("none", topic_id, 0)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A failed upload (here: the local log vanished) leaves nothing behind.
#[tokio::test]
async fn failed_upload_removes_what_it_put() {
    let server = S3Server::start();
    let store = RemoteStore::new(&server.config("")).unwrap();
    let seg = build_segment(0, 10, 5, 100, 0, 1024, 5);
    let key = seg.key("t", Uuid::new_v4(), 0);
    std::fs::remove_file(&seg.files.log).unwrap();
    let err = store.copy_segment(&key, &seg.files).await.unwrap_err();
    assert!(matches!(err, TieredError::LocalIo { .. }), "{err}");
    assert!(server.objects().is_empty(), "{:?}", server.objects());
    assert_eq!(store.stats().copy_errors, 1);
}

fn assert_quick(start: Instant, what: &str) {
    let took = start.elapsed();
    assert!(took < Duration::from_secs(45), "{what} took {took:?}");
}

/// Store down: operations fail with a retriable error after bounded retries, not a hang; after
/// the server is back they work.
#[tokio::test]
async fn store_down_is_retriable_and_recovers() {
    let mut server = S3Server::start();
    let store = RemoteStore::new(&server.config("")).unwrap();
    let seg = build_segment(0, 30, 5, 300, 0, 1024, 9);
    let key = seg.key("t", Uuid::new_v4(), 0);
    store.copy_segment(&key, &seg.files).await.unwrap();
    server.stop();

    let start = Instant::now();
    let other = seg.key("t", key.topic_id, 0);
    let err = store.copy_segment(&other, &seg.files).await.unwrap_err();
    assert!(err.is_retriable(), "{err}");
    assert_quick(start, "copy to a stopped store");

    let start = Instant::now();
    // A fresh store has nothing cached, so the read must reach the server.
    let cold = RemoteStore::new(&server.config("")).unwrap();
    let err = cold.read(&key, 0, 1 << 20).await.unwrap_err();
    assert!(err.is_retriable(), "{err}");
    assert!(matches!(err, TieredError::Unavailable { .. }), "{err}");
    assert_quick(start, "read from a stopped store");

    server.restart();
    assert_eq!(cold.read(&key, 0, usize::MAX >> 1).await.unwrap(), seg.log);
    store.copy_segment(&other, &seg.files).await.unwrap();
    let listed = store.list_partition("t", key.topic_id, 0).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|(_, complete)| *complete));
}

/// Nothing listening at all (wrong port): retriable, bounded.
#[tokio::test]
async fn unreachable_endpoint_is_retriable() {
    let port = common::free_port();
    let cfg = s3_config(&format!("http://127.0.0.1:{port}"), "b", "ak", "sk", "");
    let store = RemoteStore::new(&cfg).unwrap();
    let seg = build_segment(0, 5, 5, 100, 0, 1024, 4);
    let key = seg.key("t", Uuid::new_v4(), 0);
    let start = Instant::now();
    let err = store.copy_segment(&key, &seg.files).await.unwrap_err();
    assert!(err.is_retriable(), "{err}");
    assert_quick(start, "copy to nothing");
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_permanent_error() {
    let server = S3Server::start();
    let mut cfg: RemoteStorageConfig = server.config("");
    if let strait_tiered::Backend::S3 {
        secret_access_key, ..
    } = &mut cfg.backend
    {
        *secret_access_key = Some("not-the-secret".into());
    }
    let store = RemoteStore::new(&cfg).unwrap();
    let seg = build_segment(0, 5, 5, 100, 0, 1024, 4);
    let key = seg.key("t", Uuid::new_v4(), 0);
    let start = Instant::now();
    let err = store.copy_segment(&key, &seg.files).await.unwrap_err();
    assert!(matches!(err, TieredError::Denied { .. }), "{err:?}");
    assert!(!err.is_retriable());
    let text = err.to_string();
    assert!(
        text.contains("refused access") && text.contains("access.key"),
        "{text}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(server.objects().is_empty());
}

#[tokio::test]
async fn missing_bucket_is_a_clear_permanent_error() {
    let server = S3Server::start();
    let cfg = s3_config(
        &server.endpoint(),
        "no-such-bucket",
        common::ACCESS_KEY,
        common::SECRET_KEY,
        "",
    );
    let store = RemoteStore::new(&cfg).unwrap();
    let seg = build_segment(0, 5, 5, 100, 0, 1024, 4);
    let key = seg.key("t", Uuid::new_v4(), 0);
    let start = Instant::now();
    let err = store
        .list_partition("t", key.topic_id, 0)
        .await
        .unwrap_err();
    assert!(matches!(err, TieredError::NoSuchBucket { .. }), "{err:?}");
    assert!(!err.is_retriable());
    assert!(
        err.to_string()
            .contains("bucket 'no-such-bucket' does not exist"),
        "{err}"
    );
    // Reading an object of a missing bucket: S3 answers 404 (some servers say NoSuchKey).
    let err = store.read(&key, 0, 1000).await.unwrap_err();
    assert!(
        matches!(
            err,
            TieredError::NoSuchBucket { .. } | TieredError::NotFound { .. }
        ),
        "{err:?}"
    );
    assert!(!err.is_retriable());
    // s3s-fs creates a bucket's directory on PUT (real S3 answers NoSuchBucket), so an upload
    // can only be checked for the error kind when it fails.
    if let Err(err) = store.copy_segment(&key, &seg.files).await {
        assert!(matches!(err, TieredError::NoSuchBucket { .. }), "{err:?}");
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

/// The copy rate cap slows uploads down to about the configured rate.
#[tokio::test]
async fn copy_rate_cap() {
    let root = tempfile::tempdir().unwrap();
    let mut cfg = fs_config(root.path(), "");
    cfg.copy_bytes_per_sec = Some(2_000_000);
    let store = RemoteStore::new(&cfg).unwrap();
    let seg = build_segment(0, 240, 20, 3000, 0, 4096, 8);
    let size = seg.log.len() as f64;
    assert!(size > 3_000_000.0, "{size}");
    let start = Instant::now();
    let key = seg.key("t", Uuid::new_v4(), 0);
    store.copy_segment(&key, &seg.files).await.unwrap();
    // The first 2 MB pass as a burst, the rest at 2 MB/s.
    let floor = (size - 2_000_000.0) / 2_000_000.0 * 0.9;
    let took = start.elapsed().as_secs_f64();
    assert!(took >= floor, "{took} s < {floor} s for {size} bytes");
}

/// The fetch rate cap slows cold reads down to about the configured rate; cached reads are free.
#[tokio::test]
async fn fetch_rate_cap() {
    let root = tempfile::tempdir().unwrap();
    let seg = build_segment(0, 240, 20, 3000, 0, 4096, 8);
    let size = seg.log.len() as f64;
    assert!(size > 3_000_000.0, "{size}");
    let key = seg.key("t", Uuid::new_v4(), 0);
    RemoteStore::new(&fs_config(root.path(), ""))
        .unwrap()
        .copy_segment(&key, &seg.files)
        .await
        .unwrap();
    let mut cfg = fs_config(root.path(), "");
    cfg.fetch_bytes_per_sec = Some(2_000_000);
    let store = RemoteStore::new(&cfg).unwrap();
    let start = Instant::now();
    assert!(store.read(&key, 0, usize::MAX).await.unwrap() == seg.log);
    let floor = (size - 2_000_000.0) / 2_000_000.0 * 0.9;
    let took = start.elapsed().as_secs_f64();
    assert!(took >= floor, "{took} s < {floor} s for {size} bytes");
    let start = Instant::now();
    assert!(store.read(&key, 0, usize::MAX).await.unwrap() == seg.log);
    assert!(
        start.elapsed() < Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );
}

/// Concurrent readers of one segment share the chunk cache.
#[tokio::test]
async fn concurrent_reads_share_the_cache() {
    let server = S3Server::start();
    let store = RemoteStore::new(&server.config("")).unwrap();
    let seg = build_segment(0, 200, 20, 600, 3, 4096, 12);
    let key = seg.key("t", Uuid::new_v4(), 0);
    store.copy_segment(&key, &seg.files).await.unwrap();
    let reader = RemoteStore::new(&server.config("")).unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let reader = reader.clone();
            let key = key.clone();
            tokio::spawn(async move { reader.read(&key, 0, usize::MAX >> 1).await })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().unwrap() == seg.log);
    }
    let stats = reader.stats();
    // One GET per chunk, manifest and index, however many readers.
    let chunks = (seg.log.len() as u64).div_ceil(strait_tiered::CHUNK_BYTES);
    assert!(stats.cache_misses <= chunks + 2, "{stats:?}");
    assert_eq!(stats.fetch_requests, 8);
}

/// Remote objects that are not what the manifest says are refused as corrupt, not served.
#[tokio::test]
async fn corrupt_objects_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let store = RemoteStore::new(&fs_config(root.path(), "")).unwrap();
    let seg = build_segment(0, 40, 10, 300, 0, 1024, 21);
    let topic_id = Uuid::new_v4();
    let key = seg.key("t", topic_id, 0);
    store.copy_segment(&key, &seg.files).await.unwrap();
    let stem = root.path().join(format!(
        "t-{}/0/{:020}-{}",
        strait_tiered::kafka_uuid(topic_id),
        0,
        strait_tiered::kafka_uuid(key.segment_id)
    ));
    let index = stem.with_extension("index");
    let mut bytes = std::fs::read(&index).unwrap();
    assert!(!bytes.is_empty());
    bytes[3] ^= 0xff;
    std::fs::write(&index, &bytes).unwrap();
    // Cut the log short too.
    let log = stem.with_extension("log");
    std::fs::write(&log, &seg.log[..seg.log.len() / 2]).unwrap();

    let fresh = RemoteStore::new(&fs_config(root.path(), "")).unwrap();
    let err = fresh
        .fetch_index(&key, IndexKind::Offset)
        .await
        .unwrap_err();
    assert!(matches!(err, TieredError::Corrupt { .. }), "{err}");
    assert!(!err.is_retriable());
    let err = fresh.read(&key, 0, 1 << 20).await.unwrap_err();
    assert!(matches!(err, TieredError::Corrupt { .. }), "{err}");
    let last = seg.batches.last().unwrap().max_timestamp();
    let err = fresh.offset_for_timestamp(&key, last).await.unwrap_err();
    assert!(matches!(err, TieredError::Corrupt { .. }), "{err}");
    assert!(fresh.stats().fetch_errors >= 3);

    // With the index repaired, the short log still fails reads past its end, not silently.
    bytes[3] ^= 0xff;
    std::fs::write(&index, &bytes).unwrap();
    let fresh = RemoteStore::new(&fs_config(root.path(), "")).unwrap();
    let tail = seg.batches.last().unwrap().base_offset;
    let err = fresh.read(&key, tail, 1 << 20).await.unwrap_err();
    assert!(matches!(err, TieredError::Corrupt { .. }), "{err}");
}
