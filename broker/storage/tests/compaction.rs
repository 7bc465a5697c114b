//! Log compaction: latest record per key, tombstone retention, compressed batches, header
//! fidelity, keyless records, dirty ratio and lags, crash-safe swaps, readers during cleaning,
//! and idempotent producers' last batches.

mod common;

use std::path::Path;

use bytes::Bytes;
use common::*;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strait_storage::{LogConfig, LogError, PartitionLog};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn compact_config() -> LogConfig {
    LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        segment_bytes: 400,
        ..small_config()
    }
}

fn put(log: &PartitionLog, key: &str, value: Option<&str>, ts: i64) -> i64 {
    let rec = Rec {
        key: Some(key.as_bytes()),
        value: value.map(str::as_bytes),
        headers: &[],
    };
    log.append(&keyed_batch(&[rec], ts), 0, 0)
        .expect("append")
        .first_offset
}

fn summary(log: &PartitionLog) -> Vec<(i64, String, Option<String>)> {
    records_in(&read_bytes(log, log.log_start_offset()))
        .into_iter()
        .map(|r| {
            (
                r.offset,
                String::from_utf8(r.key.expect("key")).expect("utf8"),
                r.value.map(|v| String::from_utf8(v).expect("utf8")),
            )
        })
        .collect()
}

fn entry(offset: i64, key: &str, value: Option<&str>) -> (i64, String, Option<String>) {
    (offset, key.to_owned(), value.map(str::to_owned))
}

/// Offsets 0..16 update k0..k3, 16 deletes k1, 17..19 update k2, 20..24 (active) write z keys.
fn fill(log: &PartitionLog, ts: i64) {
    for i in 0..16 {
        put(log, &format!("k{}", i % 4), Some(&format!("v{i}")), ts);
    }
    put(log, "k1", None, ts);
    for i in 17..20 {
        put(log, "k2", Some(&format!("v{i}")), ts);
    }
    for i in 20..25 {
        put(log, &format!("z{i}"), Some("z"), ts);
    }
    log.set_high_watermark(log.log_end_offset());
}

#[test]
fn keyed_updates_and_tombstones_collapse_to_the_latest_per_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = now();
    let pdir;
    let expected = vec![
        entry(12, "k0", Some("v12")),
        entry(15, "k3", Some("v15")),
        entry(16, "k1", None),
        entry(19, "k2", Some("v19")),
        entry(20, "z20", Some("z")),
        entry(21, "z21", Some("z")),
        entry(22, "z22", Some("z")),
        entry(23, "z23", Some("z")),
        entry(24, "z24", Some("z")),
    ];
    {
        let mgr = open_with(dir.path(), compact_config());
        let log = create(&mgr, compact_config());
        pdir = log.dir();
        fill(&log, t);
        assert_eq!(log.segment_count(), 5);
        let active = pdir.join("00000000000000000020.log");
        let active_before = std::fs::read(&active).expect("active");

        let stats = mgr.clean(t).expect("clean");
        assert_eq!(stats.logs_cleaned, 1);
        assert_eq!(
            stats.segments_deleted, 1,
            "segment 5 held only superseded records"
        );
        assert_eq!(stats.segments_rewritten, 3);
        assert_eq!(stats.records_removed, 16);
        assert_eq!(summary(&log), expected);
        assert_eq!(log.log_end_offset(), 25);
        assert_eq!(log.log_start_offset(), 0);
        assert_eq!(std::fs::read(&active).expect("active"), active_before);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cleaner-offset-checkpoint")).expect("cp"),
            "0\n1\nt 0 20\n"
        );
        // Reads from inside removed ranges land on the next surviving record.
        let from_six = records_in(&read_bytes(&log, 6));
        assert_eq!(from_six.first().map(|r| r.offset), Some(12));
        // Nothing dirty left: a second pass does nothing.
        assert_eq!(mgr.clean(t).expect("clean").logs_cleaned, 0);
        mgr.shutdown().expect("shutdown");
    }
    assert!(segment_files(&pdir, "cleaned").is_empty());
    assert!(segment_files(&pdir, "swap").is_empty());
    let mgr = open_with(dir.path(), compact_config());
    let log = mgr.get(&tp("t", 0)).expect("log");
    assert_eq!(summary(&log), expected);
    assert_eq!(log.log_end_offset(), 25);
}

#[test]
fn tombstones_are_kept_until_delete_retention_ms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = now();
    let config = LogConfig {
        delete_retention_ms: 60_000,
        ..compact_config()
    };
    let mgr = open_with(dir.path(), config.clone());
    let log = create(&mgr, config);
    fill(&log, t);
    log.clean(t).expect("clean");
    assert!(summary(&log).contains(&entry(16, "k1", None)));
    // More dirty data rolls the z segment closed; a later pass drops the old tombstone.
    for i in 25..30 {
        put(&log, "k2", Some(&format!("v{i}")), t);
    }
    log.set_high_watermark(log.log_end_offset());
    let stats = log.clean(t + 120_000).expect("clean");
    assert_eq!(stats.logs_cleaned, 1);
    let got = summary(&log);
    assert!(got.iter().all(|(_, k, _)| k != "k1"), "{got:?}");
    assert!(got.contains(&entry(12, "k0", Some("v12"))));
    assert!(got.contains(&entry(24, "z24", Some("z"))));
    // 25..29 are in the active segment, so they supersede nothing yet.
    assert!(got.contains(&entry(19, "k2", Some("v19"))));
}

#[test]
fn compressed_batches_are_rewritten_with_their_codec_and_all_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = now();
    let mgr = open_with(dir.path(), compact_config());
    let log = create(&mgr, compact_config());
    let recs = [
        Rec {
            key: Some(b"k1"),
            value: Some(b"a"),
            headers: &[(b"h", b"1"), (b"h", b"2")],
        },
        Rec {
            key: Some(b"k2"),
            value: Some(b"b"),
            headers: &[],
        },
        Rec {
            key: Some(b"k1"),
            value: Some(b"c"),
            headers: &[(b"h", b"3"), (b"h", b"4"), (b"x", b"5")],
        },
        Rec {
            key: Some(b"k3"),
            value: Some(b"d"),
            headers: &[],
        },
    ];
    log.append(&keyed_gzip_batch(&recs, t), 0, 0).expect("gzip");
    // A zstd batch written by kafka-protocol's encoder (an independent encoder).
    let zstd_records: Vec<Record> = ["k3", "k4", "k4"]
        .iter()
        .enumerate()
        .map(|(i, k)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch when offset - sequence changes.
            sequence: i as i32,
            timestamp: t + i as i64,
            key: Some(Bytes::from(k.to_string())),
            value: Some(Bytes::from(format!("zv{i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut zstd = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut zstd,
        &zstd_records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::Zstd,
        },
    )
    .expect("encode zstd");
    let info = log.append(&zstd, 0, 0).expect("zstd");
    assert_eq!(info.first_offset, 4);
    put(&log, "k2", Some("e"), t);
    // Roll so everything above is closed, then make it committed.
    let filler = vec![b'f'; 300];
    let big = Rec {
        key: Some(b"big"),
        value: Some(&filler),
        headers: &[],
    };
    log.append(&keyed_batch(&[big], t), 0, 0).expect("roll");
    log.set_high_watermark(log.log_end_offset());
    assert!(log.segment_count() >= 2);

    let stats = log.clean(t).expect("clean");
    assert_eq!(stats.logs_cleaned, 1);
    assert_eq!(stats.records_removed, 4);
    let bytes = read_bytes(&log, 0);
    let batches = batches_in(&bytes);
    // The gzip batch keeps its base offset and lastOffsetDelta; only k1@2 and k3... survive.
    assert_eq!((batches[0].0, batches[0].1), (0, 3));
    let first = &bytes[..batches[0].3];
    assert_eq!(
        i16::from_be_bytes([first[21], first[22]]) & 7,
        1,
        "still gzip"
    );
    assert_eq!(
        be_i64(first, 27),
        t + 2,
        "base timestamp is the first kept record's"
    );
    assert_eq!(be_i32(first, 57), 1);
    let recs_read = records_in(first);
    assert_eq!(recs_read.len(), 1);
    assert_eq!(recs_read[0].offset, 2);
    assert_eq!(recs_read[0].timestamp, t + 2);
    assert_eq!(recs_read[0].value.as_deref(), Some(&b"c"[..]));
    assert_eq!(
        recs_read[0].headers,
        vec![
            (b"h".to_vec(), Some(b"3".to_vec())),
            (b"h".to_vec(), Some(b"4".to_vec())),
            (b"x".to_vec(), Some(b"5".to_vec())),
        ]
    );
    // The zstd batch: k3@4 survives (k3@3 superseded), k4@5 superseded by k4@6.
    let start = batches[0].3;
    let zstd_batch = &bytes[start..start + batches[1].3];
    assert_eq!((batches[1].0, batches[1].1), (4, 6));
    assert_eq!(
        i16::from_be_bytes([zstd_batch[21], zstd_batch[22]]) & 7,
        4,
        "still zstd"
    );
    let mut buf = Bytes::copy_from_slice(zstd_batch);
    let set = RecordBatchDecoder::decode(&mut buf).expect("valid zstd batch");
    assert_eq!(set.compression, Compression::Zstd);
    let got: Vec<(i64, Option<Bytes>)> = set
        .records
        .iter()
        .map(|r| (r.offset, r.value.clone()))
        .collect();
    assert_eq!(
        got,
        vec![(4, Some(Bytes::from("zv0"))), (6, Some(Bytes::from("zv2")))]
    );
    // The whole log still decodes with an independent decoder (CRCs valid).
    let mut all = Bytes::from(bytes);
    let sets = RecordBatchDecoder::decode_all(&mut all).expect("decode all");
    let offsets: Vec<i64> = sets
        .iter()
        .flat_map(|s| s.records.iter().map(|r| r.offset))
        .collect();
    assert_eq!(offsets, vec![2, 4, 6, 7, 8]);
}

#[test]
fn keyless_records_are_rejected_only_on_compacted_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let compacted = create(&mgr, compact_config());
    let plain = mgr
        .get_or_create(&tp("plain", 0), small_config())
        .expect("create");
    for keyless in [batch(2, 0, 5), gzip_batch(&[0, 1], 0)] {
        match compacted.append(&keyless, 0, 0) {
            Err(LogError::InvalidRecords { message, records }) => {
                assert!(
                    message.contains("Compacted topic cannot accept message without key"),
                    "{message}"
                );
                assert!(message.contains("t-0"), "{message}");
                // KIP-467: both records are named, by their index in the batch.
                let indexes: Vec<i32> = records.iter().map(|(i, _)| *i).collect();
                assert_eq!(indexes, vec![0, 1]);
            }
            other => panic!(
                "keyless record accepted: {:?}",
                other.map(|i| i.first_offset)
            ),
        }
        plain
            .append(&keyless, 0, 0)
            .expect("non-compacted log takes keyless records");
    }
    // One keyless record anywhere rejects the whole request.
    let mut request = keyed_batch(
        &[Rec {
            key: Some(b"k"),
            value: Some(b"v"),
            headers: &[],
        }],
        0,
    );
    request.extend_from_slice(&keyed_batch(
        &[
            Rec {
                key: Some(b"k"),
                value: Some(b"v"),
                headers: &[],
            },
            Rec {
                key: None,
                value: Some(b"v"),
                headers: &[],
            },
        ],
        0,
    ));
    assert!(matches!(
        compacted.append(&request, 0, 0),
        Err(LogError::InvalidRecords { message, records })
            if message.contains("batch 1") && records.len() == 1 && records[0].0 == 1
    ));
    assert_eq!(compacted.log_end_offset(), 0);
    put(&compacted, "k", None, 0);
    assert_eq!(compacted.log_end_offset(), 1);
}

#[test]
fn dirty_ratio_and_compaction_lags_are_respected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = now();
    let config = LogConfig {
        min_compaction_lag_ms: 3_600_000,
        ..compact_config()
    };
    let mgr = open_with(dir.path(), config.clone());
    let log = create(&mgr, config.clone());
    fill(&log, t);
    // Records younger than min.compaction.lag.ms are not cleaned.
    assert_eq!(log.clean(t).expect("clean").logs_cleaned, 0);
    assert_eq!(summary(&log).len(), 25);
    assert_eq!(log.clean(t + 3_700_000).expect("clean").logs_cleaned, 1);
    assert_eq!(summary(&log).len(), 9);

    // A little dirty data over a large clean part: below min.cleanable.dirty.ratio.
    let config = LogConfig {
        min_compaction_lag_ms: 0,
        segment_bytes: 2000,
        ..compact_config()
    };
    let log = mgr
        .get_or_create(&tp("ratio", 0), config.clone())
        .expect("create");
    for i in 0..60 {
        put(&log, &format!("k{i}"), Some("v"), t);
    }
    put(&log, "k0", Some("w"), t); // lands in the active segment at first
    log.set_high_watermark(log.log_end_offset());
    assert!(log.clean(t).expect("clean").logs_cleaned >= 1);
    // Roll one more small dirty segment: k1 again, then push it out of the active segment.
    for _ in 0..2 {
        put(&log, "k1", Some("x"), t);
    }
    let filler = vec![b'f'; 1900];
    let roll = Rec {
        key: Some(b"roll"),
        value: Some(&filler),
        headers: &[],
    };
    log.append(&keyed_batch(&[roll], t), 0, 0).expect("roll");
    log.append(
        &keyed_batch(
            &[Rec {
                key: Some(b"r2"),
                value: Some(&filler),
                headers: &[],
            }],
            t,
        ),
        0,
        0,
    )
    .expect("roll");
    log.set_high_watermark(log.log_end_offset());
    let before = summary(&log).len();
    assert_eq!(
        log.clean(t).expect("clean").logs_cleaned,
        0,
        "ratio too low"
    );
    assert_eq!(summary(&log).len(), before);
    // max.compaction.lag.ms forces the pass whatever the ratio.
    log.update_config(LogConfig {
        max_compaction_lag_ms: 1000,
        ..config
    });
    assert_eq!(log.clean(t + 5000).expect("clean").logs_cleaned, 1);
    assert!(summary(&log).len() < before);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

#[test]
fn a_crash_during_the_swap_recovers_to_a_consistent_log() {
    let t = now();
    let original = tempfile::tempdir().expect("tempdir");
    {
        let mgr = open_with(original.path(), compact_config());
        let log = create(&mgr, compact_config());
        fill(&log, t);
        mgr.shutdown().expect("shutdown");
    }
    let before_commit = tempfile::tempdir().expect("tempdir");
    let after_commit = tempfile::tempdir().expect("tempdir");
    copy_dir(original.path(), before_commit.path());
    copy_dir(original.path(), after_commit.path());
    let (cleaned_view, pristine_view);
    {
        let mgr = open_with(original.path(), compact_config());
        let log = mgr.get(&tp("t", 0)).expect("log");
        pristine_view = summary(&log);
        log.clean(t).expect("clean");
        cleaned_view = summary(&log);
        mgr.shutdown().expect("shutdown");
    }
    assert_ne!(cleaned_view, pristine_view);
    let cleaned_dir = original.path().join("t-0");
    for (dir, ext) in [(&before_commit, "log.cleaned"), (&after_commit, "log.swap")] {
        let pdir = dir.path().join("t-0");
        // What the cleaner had written when the crash came: every changed segment's new file.
        for old in segment_files(&pdir, "log") {
            let name = old
                .file_name()
                .and_then(|n| n.to_str())
                .expect("name")
                .to_owned();
            let new = cleaned_dir.join(&name);
            let content = std::fs::read(&new).unwrap_or_default();
            if std::fs::read(&old).expect("old") != content {
                std::fs::write(pdir.join(&name).with_extension(ext), content).expect("write");
            }
        }
        // A crash, not a clean shutdown.
        std::fs::remove_file(dir.path().join(".kafka_cleanshutdown")).expect("marker");
        let mgr = open_with(dir.path(), compact_config());
        let log = mgr.get(&tp("t", 0)).expect("log");
        let want = if ext == "log.swap" {
            &cleaned_view
        } else {
            &pristine_view
        };
        assert_eq!(&summary(&log), want, "{ext}");
        assert_eq!(log.log_end_offset(), 25);
        assert!(segment_files(&pdir, "swap").is_empty());
        assert!(segment_files(&pdir, "cleaned").is_empty());
        // Rebuilt indexes serve reads from the middle.
        let from = records_in(&read_bytes(&log, 13));
        assert!(from.iter().all(|r| r.offset >= 13));
        assert_eq!(from.last().map(|r| r.offset), Some(24));
    }
}

#[test]
fn readers_holding_regions_from_before_cleaning_still_read_valid_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = now();
    let mgr = open_with(dir.path(), compact_config());
    let log = create(&mgr, compact_config());
    fill(&log, t);
    let held = log.read(0, u64::MAX, i64::MAX, true).expect("read");
    let stats = log.clean(t).expect("clean");
    assert_eq!(stats.logs_cleaned, 1);
    let mut old = Vec::new();
    for r in &held.regions {
        r.read_to_vec(&mut old).expect("read held region");
    }
    let recs = records_in(&old);
    assert_eq!(recs.len(), 25);
    assert_eq!(
        recs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..25).collect::<Vec<_>>()
    );
    assert_eq!(summary(&log).len(), 9);
}

#[test]
fn a_producers_last_batch_survives_as_an_empty_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = now();
    let pdir;
    {
        let mgr = open_with(dir.path(), compact_config());
        let log = create(&mgr, compact_config());
        pdir = log.dir();
        for seq in 0..3 {
            let b = keyed_batch(
                &[Rec {
                    key: Some(b"p"),
                    value: Some(b"v"),
                    headers: &[],
                }],
                t,
            );
            log.append(&with_producer(b, 77, 1, seq), 0, 0)
                .expect("append");
        }
        for i in 3..10 {
            put(&log, "p", Some(&format!("w{i}")), t);
        }
        log.set_high_watermark(log.log_end_offset());
        log.clean(t).expect("clean");
        let bytes = read_bytes(&log, 0);
        let batches = batches_in(&bytes);
        // The empty batch at offset 2 (record count 0) keeps producer 77's last sequence.
        let mut pos = 0;
        let mut empty = Vec::new();
        for b in &batches {
            if be_i32(&bytes, pos + 57) == 0 {
                empty.push((b.0, be_i64(&bytes, pos + 43)));
            }
            pos += b.3;
        }
        assert_eq!(empty, vec![(2, 77)]);
        assert!(records_in(&bytes).iter().all(|r| r.offset >= 3));
        // Crash: no snapshot covers the log, so state comes from scanning the cleaned segments.
        for s in segment_files(&pdir, "snapshot") {
            std::fs::remove_file(s).expect("remove snapshot");
        }
    }
    let mgr = open_with(dir.path(), compact_config());
    let log = mgr.get(&tp("t", 0)).expect("log");
    assert_eq!(log.producer_state(77), Some((1, 2, 2)));
    let b = keyed_batch(
        &[Rec {
            key: Some(b"p"),
            value: Some(b"v"),
            headers: &[],
        }],
        t,
    );
    let info = log
        .append(&with_producer(b, 77, 1, 3), 0, 0)
        .expect("next seq");
    assert!(!info.duplicate);
}

#[test]
fn create_time_bounds_name_the_records_out_of_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let now = 10_000_000;
    let config = LogConfig {
        timestamp_before_max_ms: Some(1000),
        timestamp_after_max_ms: Some(500),
        ..small_config()
    };
    let log = mgr
        .get_or_create(&tp("bounded", 0), config)
        .expect("create");
    // Record timestamps base + deltas: now-5000 (too old), now, now+100, now+900 (too new).
    let bad = batch_with_deltas(&[0, 5000, 5100, 5900], now - 5000);
    match log.append(&bad, 0, now) {
        Err(LogError::InvalidTimestamps { records, .. }) => {
            let indexes: Vec<i32> = records.iter().map(|(i, _)| *i).collect();
            assert_eq!(indexes, vec![0, 3]);
        }
        other => panic!(
            "out-of-range timestamps accepted: {:?}",
            other.map(|i| i.first_offset)
        ),
    }
    assert_eq!(log.log_end_offset(), 0, "nothing of the batch was written");
    let good = batch_with_deltas(&[0, 100, 400], now - 900);
    assert_eq!(log.append(&good, 0, now).expect("in range").first_offset, 0);
}
