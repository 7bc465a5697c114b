//! Idempotent producer state: duplicates, sequence and epoch rules, snapshots, reload after clean
//! shutdown and crash, truncation and expiry.

mod common;

use std::path::Path;

use common::*;
use strait_storage::{LogConfig, LogError};

/// Batches stamped with the real clock, so loading does not expire their producers.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn snapshots(dir: &Path) -> Vec<i64> {
    segment_files(dir, "snapshot")
        .iter()
        .map(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
                .expect("snapshot name")
        })
        .collect()
}

#[test]
fn duplicate_retry_returns_original_offsets_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(&mgr, small_config());
    let first = pid_batch(3, 42, 0, 0, 1000);
    let info = log.append(&first, 0, 0).expect("append");
    assert!(!info.duplicate);
    assert_eq!((info.first_offset, info.last_offset), (0, 2));
    let info = log
        .append(&pid_batch(2, 42, 0, 3, 1000), 0, 0)
        .expect("append");
    assert_eq!((info.first_offset, info.last_offset), (3, 4));
    let size = log.size_bytes();

    for _ in 0..2 {
        let retry = log.append(&first, 0, 0).expect("retry");
        assert!(retry.duplicate);
        assert_eq!((retry.first_offset, retry.last_offset), (0, 2));
        assert_eq!(retry.bytes, 0);
    }
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(log.size_bytes(), size);
    assert_eq!(log.producer_state(42), Some((0, 4, 4)));

    // Duplicates first, then a new batch: only the new batch is written.
    let mut mixed = pid_batch(2, 42, 0, 3, 1000);
    mixed.extend_from_slice(&pid_batch(1, 42, 0, 5, 1000));
    let info = log.append(&mixed, 0, 0).expect("mixed");
    assert!(!info.duplicate);
    assert_eq!((info.first_offset, info.last_offset), (5, 5));
    // A duplicate after a new batch is out of order.
    let mut bad = pid_batch(1, 42, 0, 6, 1000);
    bad.extend_from_slice(&pid_batch(1, 42, 0, 5, 1000));
    assert!(matches!(
        log.append(&bad, 0, 0),
        Err(LogError::OutOfOrderSequence { .. })
    ));
    assert_eq!(log.log_end_offset(), 6);
    // Non-idempotent batches are never duplicates.
    log.append(&batch(1, 0, 10), 0, 0).expect("plain");
    log.append(&batch(1, 0, 10), 0, 0).expect("plain");
    assert_eq!(log.log_end_offset(), 8);
}

#[test]
fn sequence_gap_old_epoch_and_unknown_producer_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(&mgr, small_config());
    log.append(&pid_batch(2, 7, 3, 0, 0), 0, 0).expect("first");
    let size = log.size_bytes();
    assert!(matches!(
        log.append(&pid_batch(1, 7, 3, 3, 0), 0, 0),
        Err(LogError::OutOfOrderSequence { producer_id: 7, .. })
    ));
    assert!(matches!(
        log.append(&pid_batch(1, 7, 2, 2, 0), 0, 0),
        Err(LogError::InvalidProducerEpoch {
            producer_id: 7,
            epoch: 2,
            current: 3
        })
    ));
    assert!(matches!(
        log.append(&pid_batch(1, 7, 4, 2, 0), 0, 0),
        Err(LogError::OutOfOrderSequence { .. })
    ));
    assert!(matches!(
        log.append(&pid_batch(1, 8, 0, 5, 0), 0, 0),
        Err(LogError::UnknownProducerId {
            producer_id: 8,
            sequence: 5
        })
    ));
    // All-or-nothing: a valid batch followed by a bad one writes neither.
    let mut request = pid_batch(1, 7, 3, 2, 0);
    request.extend_from_slice(&pid_batch(1, 7, 3, 9, 0));
    assert!(log.append(&request, 0, 0).is_err());
    assert_eq!(log.size_bytes(), size);
    assert_eq!(log.producer_state(7), Some((3, 1, 1)));

    // An epoch bump restarting at sequence 0 is accepted; the old epoch is then fenced.
    let info = log.append(&pid_batch(1, 7, 4, 0, 0), 0, 0).expect("bump");
    assert_eq!(info.first_offset, 2);
    assert_eq!(log.producer_state(7), Some((4, 0, 2)));
    assert!(matches!(
        log.append(&pid_batch(1, 7, 3, 2, 0), 0, 0),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    log.append(&pid_batch(1, 8, 0, 0, 0), 0, 0)
        .expect("new producer");
    assert_eq!(log.producer_count(), 2);
}

#[test]
fn state_survives_clean_restart_through_the_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pdir;
    {
        let mgr = open(dir.path());
        let log = create(&mgr, small_config());
        pdir = log.dir();
        log.append(&pid_batch(2, 5, 1, 0, now()), 0, 0)
            .expect("append");
        log.append(&pid_batch(3, 5, 1, 2, now()), 0, 0)
            .expect("append");
        log.append(&pid_batch(1, 6, 0, 0, now()), 0, 0)
            .expect("append");
        mgr.shutdown().expect("shutdown");
    }
    assert_eq!(snapshots(&pdir), vec![6]);
    // Kafka's ProducerSnapshot v1 layout on disk.
    let bytes = std::fs::read(pdir.join("00000000000000000006.snapshot")).expect("snapshot");
    assert_eq!(bytes.len(), 10 + 2 * 46);
    assert_eq!(be_i32(&bytes, 6), 2);
    assert_eq!(crc32c::crc32c(&bytes[6..]).to_be_bytes(), bytes[2..6]);
    assert_eq!(be_i64(&bytes, 10), 5);
    assert_eq!(be_i32(&bytes, 20), 4); // last sequence
    assert_eq!(be_i64(&bytes, 24), 4); // last offset
    assert_eq!(be_i32(&bytes, 32), 2); // offset delta

    let mgr = open(dir.path());
    let log = mgr.get(&tp("t", 0)).expect("log");
    assert!(!mgr.recovered_on_open());
    assert_eq!(log.producer_state(5), Some((1, 4, 4)));
    assert_eq!(log.producer_state(6), Some((0, 0, 5)));
    let retry = log
        .append(&pid_batch(3, 5, 1, 2, now()), 0, 0)
        .expect("retry");
    assert!(retry.duplicate);
    assert_eq!((retry.first_offset, retry.last_offset), (2, 4));
    assert!(matches!(
        log.append(&pid_batch(1, 5, 1, 9, now()), 0, 0),
        Err(LogError::OutOfOrderSequence { .. })
    ));
    log.append(&pid_batch(1, 5, 1, 5, now()), 0, 0)
        .expect("next");
}

#[test]
fn snapshot_is_used_instead_of_the_log_it_covers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pdir;
    {
        let mgr = open(dir.path());
        let log = create(&mgr, small_config());
        pdir = log.dir();
        log.append(&pid_batch(2, 5, 1, 0, now()), 0, 0)
            .expect("append");
        mgr.shutdown().expect("shutdown");
    }
    // A snapshot saying something else than the log proves the snapshot is what gets loaded.
    let mut bytes = std::fs::read(pdir.join("00000000000000000002.snapshot")).expect("snapshot");
    bytes[20..24].copy_from_slice(&77i32.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[6..]);
    bytes[2..6].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(pdir.join("00000000000000000002.snapshot"), &bytes).expect("write");
    let mgr = open(dir.path());
    let log = mgr.get(&tp("t", 0)).expect("log");
    assert_eq!(log.producer_state(5), Some((1, 77, 1)));
    drop(mgr);
    // A corrupt snapshot is deleted and the state rebuilt from the log.
    bytes[30] ^= 0xff;
    std::fs::write(pdir.join("00000000000000000002.snapshot"), &bytes).expect("write");
    let mgr = open(dir.path());
    let log = mgr.get(&tp("t", 0)).expect("log");
    assert_eq!(log.producer_state(5), Some((1, 1, 1)));
}

#[test]
fn crash_rebuilds_state_from_what_survived() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 300,
        ..small_config()
    };
    let pdir;
    {
        let mgr = open_with(dir.path(), config.clone());
        let log = create(&mgr, config.clone());
        pdir = log.dir();
        for seq in 0..12 {
            log.append(&pid_batch(1, 9, 0, seq, now()), 0, 0)
                .expect("append");
        }
        assert!(log.segment_count() >= 4);
        // Dropped without shutdown: a crash.
    }
    let logs = segment_files(&pdir, "log");
    let snaps = snapshots(&pdir);
    assert_eq!(snaps.len(), 2, "the last two roll snapshots are kept");
    // Damage the second segment: recovery cuts there and drops every later segment, so the
    // snapshots above the new log end must not be used.
    let second_base: i64 = logs[1]
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("base");
    let mut data = std::fs::read(&logs[1]).expect("read");
    let first_len = be_i32(&data, 8) as usize + 12;
    let last = data.len() - 1;
    assert!(first_len <= last);
    data[first_len + 30] ^= 0xff; // inside the second batch of the segment
    std::fs::write(&logs[1], &data).expect("write");

    let mgr = open_with(dir.path(), config.clone());
    let log = mgr.get(&tp("t", 0)).expect("log");
    assert!(mgr.recovered_on_open());
    let leo = log.log_end_offset();
    assert_eq!(leo, second_base + 1);
    assert!(snapshots(&pdir).iter().all(|&s| s <= leo));
    // Offsets equal sequences here: the last surviving batch has sequence leo - 1.
    assert_eq!(log.producer_state(9), Some((0, (leo - 1) as i32, leo - 1)));
    let retry = log
        .append(&pid_batch(1, 9, 0, (leo - 1) as i32, now()), 0, 0)
        .expect("retry");
    assert!(retry.duplicate);
    let next = log
        .append(&pid_batch(1, 9, 0, leo as i32, now()), 0, 0)
        .expect("next");
    assert!(!next.duplicate);
    assert_eq!(next.first_offset, leo);
}

#[test]
fn crash_without_snapshots_rebuilds_by_scanning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pdir;
    {
        let mgr = open(dir.path());
        let log = create(&mgr, small_config());
        pdir = log.dir();
        log.append(&pid_batch(2, 3, 2, 0, now()), 0, 0)
            .expect("append");
        log.append(&pid_batch(2, 3, 2, 2, now()), 0, 0)
            .expect("append");
    }
    assert!(snapshots(&pdir).is_empty());
    let mgr = open(dir.path());
    let log = mgr.get(&tp("t", 0)).expect("log");
    assert_eq!(log.producer_state(3), Some((2, 3, 3)));
    assert!(
        log.append(&pid_batch(2, 3, 2, 2, now()), 0, 0)
            .expect("retry")
            .duplicate
    );
}

#[test]
fn truncation_rolls_producer_state_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let config = LogConfig {
        segment_bytes: 300,
        ..small_config()
    };
    let log = create(&mgr, config);
    for seq in 0..10 {
        log.append(&pid_batch(1, 4, 0, seq, 100), 0, 0)
            .expect("append");
    }
    assert!(!snapshots(&log.dir()).is_empty());
    log.truncate_to(3).expect("truncate");
    assert_eq!(log.log_end_offset(), 3);
    assert!(snapshots(&log.dir()).iter().all(|&s| s <= 3));
    assert_eq!(log.producer_state(4), Some((0, 2, 2)));
    // Sequence 3 was truncated away, so it is new again (not a duplicate).
    let info = log
        .append(&pid_batch(1, 4, 0, 3, 100), 0, 0)
        .expect("append");
    assert!(!info.duplicate);
    assert_eq!(info.first_offset, 3);
    log.truncate_to(0).expect("truncate all");
    assert_eq!(log.producer_count(), 0);
    assert!(matches!(
        log.append(&pid_batch(1, 4, 0, 4, 100), 0, 0),
        Err(LogError::UnknownProducerId { .. })
    ));
}

#[test]
fn producers_expire_after_producer_id_expiration_ms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        producer_id_expiration_ms: 1000,
        ..small_config()
    };
    let pdir;
    {
        let mgr = open_with(dir.path(), config.clone());
        let log = create(&mgr, config.clone());
        pdir = log.dir();
        log.append(&pid_batch(1, 1, 0, 0, 10_000), 0, 0)
            .expect("append");
        log.append(&pid_batch(1, 2, 0, 0, 10_500), 0, 0)
            .expect("append");
        assert_eq!(mgr.expire_producers(10_999), 0);
        assert_eq!(mgr.expire_producers(11_000), 1);
        assert_eq!(log.producer_state(1), None);
        assert!(log.producer_state(2).is_some());
        // An expired producer starts over at sequence 0.
        log.append(&pid_batch(1, 1, 0, 0, 11_000), 0, 0)
            .expect("restart");
        assert_eq!(log.producer_count(), 2);
        mgr.shutdown().expect("shutdown");
    }
    assert!(!snapshots(&pdir).is_empty());
    // Snapshot entries are expired on load too (real clock: these timestamps are decades old).
    let mgr = open_with(dir.path(), config);
    let log = mgr.get(&tp("t", 0)).expect("log");
    assert_eq!(log.producer_count(), 0);
}

#[test]
fn retention_deletes_snapshots_below_the_log_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let config = LogConfig {
        segment_bytes: 300,
        ..small_config()
    };
    let log = create(&mgr, config);
    for seq in 0..10 {
        log.append(&pid_batch(1, 4, 0, seq, 100), 0, 0)
            .expect("append");
    }
    log.set_high_watermark(10);
    let before = snapshots(&log.dir());
    assert_eq!(before.len(), 2);
    let start = log
        .delete_records_before(before[1])
        .expect("delete records");
    assert_eq!(start, before[1]);
    assert_eq!(snapshots(&log.dir()), vec![before[1]]);
    // Producer state is kept (KIP-360): the producer continues its sequence.
    log.append(&pid_batch(1, 4, 0, 10, 100), 0, 0)
        .expect("append");
}
