//! Log manager behaviour: checkpoints, clean shutdown, crash recovery, retention, partition
//! creation and deletion.

mod common;

use std::fs::OpenOptions;

use common::*;
use strait_storage::{LogConfig, LogError, LogManager};

#[test]
fn checkpoint_files_use_kafka_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let a = mgr
        .get_or_create(&tp("alpha", 0), small_config())
        .expect("create");
    let b = mgr
        .get_or_create(&tp("beta-x", 3), small_config())
        .expect("create");
    a.append(&batch(5, 0, 10), 0, 0).expect("append");
    b.append(&batch(2, 0, 10), 0, 0).expect("append");
    a.set_high_watermark(4);
    a.flush().expect("flush");
    mgr.checkpoint().expect("checkpoint");
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).expect(name);
    assert_eq!(
        read("recovery-point-offset-checkpoint"),
        "0\n2\nalpha 0 5\nbeta-x 3 0\n"
    );
    assert_eq!(
        read("replication-offset-checkpoint"),
        "0\n2\nalpha 0 4\nbeta-x 3 0\n"
    );
    assert_eq!(
        read("log-start-offset-checkpoint"),
        "0\n2\nalpha 0 0\nbeta-x 3 0\n"
    );
    assert!(
        !dir.path()
            .join("recovery-point-offset-checkpoint.tmp")
            .exists()
    );
}

#[test]
fn clean_shutdown_skips_recovery_and_keeps_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mgr = open(dir.path());
        let log = create(
            &mgr,
            LogConfig {
                index_interval_bytes: 1,
                segment_bytes: 1000,
                ..small_config()
            },
        );
        for i in 0..10 {
            log.append(&batch(2, 100 * i, 50), 1, 0).expect("append");
        }
        log.set_high_watermark(15);
        log.set_topic_id("Zm9vYmFyYmF6cXV4cXV1eA")
            .expect("topic id");
        log.delete_records_before(3).expect("delete records");
        mgr.shutdown().expect("shutdown");
        assert!(dir.path().join(".kafka_cleanshutdown").exists());
    }
    let mgr = open(dir.path());
    assert!(!mgr.recovered_on_open());
    assert!(
        !dir.path().join(".kafka_cleanshutdown").exists(),
        "marker removed once loaded"
    );
    let log = mgr.get(&tp("t", 0)).expect("loaded");
    assert_eq!(log.log_end_offset(), 20);
    assert_eq!(log.high_watermark(), 15);
    assert_eq!(log.log_start_offset(), 3);
    assert_eq!(log.recovery_point(), 20);
    assert_eq!(log.topic_id().as_deref(), Some("Zm9vYmFyYmF6cXV4cXV1eA"));
    assert_eq!(log.latest_epoch(), Some(1));
    let ts = log
        .offset_for_timestamp(401)
        .expect("lookup")
        .expect("found");
    assert_eq!((ts.offset, ts.timestamp), (9, 401));
    let max = log.max_timestamp_offset().expect("max").expect("some");
    assert_eq!((max.offset, max.timestamp), (19, 901));
    let info = log
        .append(&batch(1, 0, 10), 1, 0)
        .expect("append after reopen");
    assert_eq!(info.first_offset, 20);
    drop(mgr);
    // Without a clean shutdown the next open recovers.
    let mgr = open(dir.path());
    assert!(mgr.recovered_on_open());
}

#[test]
fn crash_recovery_rebuilds_indexes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        index_interval_bytes: 1,
        segment_bytes: 1000,
        ..small_config()
    };
    let (index_before, time_before, pdir) = {
        let mgr = open_with(dir.path(), config.clone());
        let log = create(&mgr, config.clone());
        for i in 0..20 {
            log.append(&batch(2, 1000 + i, 40), 0, 0).expect("append");
        }
        assert!(log.segment_count() >= 3);
        log.flush().expect("flush");
        let pdir = log.dir();
        let active_index = segment_files(&pdir, "index").pop().expect("index");
        let active_time = segment_files(&pdir, "timeindex").pop().expect("timeindex");
        (
            std::fs::read(&active_index).expect("index"),
            std::fs::read(&active_time).expect("timeindex"),
            pdir,
        )
        // Dropped without shutdown: a crash.
    };
    assert!(!index_before.is_empty());
    for path in segment_files(&pdir, "index")
        .into_iter()
        .chain(segment_files(&pdir, "timeindex"))
    {
        std::fs::remove_file(path).expect("remove index");
    }
    let mgr = open_with(dir.path(), config);
    assert!(mgr.recovered_on_open());
    let log = mgr.get(&tp("t", 0)).expect("loaded");
    assert_eq!(log.log_end_offset(), 40);
    let index_after =
        std::fs::read(segment_files(&pdir, "index").pop().expect("index")).expect("index");
    let time_after =
        std::fs::read(segment_files(&pdir, "timeindex").pop().expect("ti")).expect("ti");
    assert_eq!(index_after, index_before);
    // The time index after a rebuild matches the one written during appends.
    assert_eq!(time_after[..time_before.len()], time_before[..]);
    assert_eq!(segment_files(&pdir, "index").len(), log.segment_count());
    // Batch i holds offsets 2i, 2i+1 at timestamps 1000+i, 1001+i.
    let found = log
        .offset_for_timestamp(1010)
        .expect("lookup")
        .expect("found");
    assert_eq!((found.offset, found.timestamp), (19, 1010));
    assert_eq!(batches_in(&read_bytes(&log, 0)).len(), 20);
}

fn crash_with_tail_damage(damage: impl FnOnce(&std::path::Path, u64)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let last_size;
    let pdir;
    {
        let mgr = open(dir.path());
        let log = create(
            &mgr,
            LogConfig {
                index_interval_bytes: 1,
                ..small_config()
            },
        );
        for epoch in [0, 0, 1, 2] {
            log.append(&batch(3, 0, 60), epoch, 0).expect("append");
        }
        last_size = batch(3, 0, 60).len() as u64;
        pdir = log.dir();
        mgr.checkpoint().expect("checkpoint");
        log.flush().expect("flush");
    }
    let segment = segment_files(&pdir, "log").pop().expect("segment");
    damage(&segment, last_size);
    let mgr = open(dir.path());
    assert!(mgr.recovered_on_open());
    let log = mgr.get(&tp("t", 0)).expect("loaded");
    assert_eq!(log.log_end_offset(), 9, "the damaged last batch is dropped");
    assert_eq!(
        log.latest_epoch(),
        Some(1),
        "the epoch of the dropped batch is trimmed"
    );
    assert_eq!(
        std::fs::metadata(&segment).expect("meta").len(),
        3 * last_size
    );
    let bases: Vec<i64> = batches_in(&read_bytes(&log, 0))
        .iter()
        .map(|b| b.0)
        .collect();
    assert_eq!(bases, vec![0, 3, 6]);
    let info = log
        .append(&batch(1, 0, 10), 3, 0)
        .expect("append after recovery");
    assert_eq!(info.first_offset, 9);
}

#[test]
fn torn_tail_is_truncated() {
    crash_with_tail_damage(|segment, _| {
        let len = std::fs::metadata(segment).expect("meta").len();
        let f = OpenOptions::new().write(true).open(segment).expect("open");
        f.set_len(len - 7).expect("tear");
    });
}

#[test]
fn corrupt_tail_is_truncated() {
    crash_with_tail_damage(|segment, last_size| {
        let mut bytes = std::fs::read(segment).expect("read");
        let at = bytes.len() - last_size as usize + 100;
        bytes[at] ^= 0x55;
        std::fs::write(segment, bytes).expect("write");
    });
}

#[test]
fn recovery_deletes_segments_after_a_corrupt_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = batch(2, 0, 100).len() as u64;
    let config = LogConfig {
        segment_bytes: one * 2,
        ..small_config()
    };
    let pdir;
    {
        let mgr = open_with(dir.path(), config.clone());
        let log = create(&mgr, config.clone());
        for _ in 0..6 {
            log.append(&batch(2, 0, 100), 0, 0).expect("append");
        }
        assert_eq!(log.segment_count(), 3);
        pdir = log.dir();
    }
    // Nothing was checkpointed: recovery scans from the start and meets the damage in segment 2.
    let second = &segment_files(&pdir, "log")[1];
    let mut bytes = std::fs::read(second).expect("read");
    bytes[one as usize + 70] ^= 1;
    std::fs::write(second, bytes).expect("write");
    let mgr = open_with(dir.path(), config);
    let log = mgr.get(&tp("t", 0)).expect("loaded");
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.segment_count(), 2);
    assert_eq!(segment_files(&pdir, "log").len(), 2);
}

#[test]
fn retention_by_time_keeps_the_active_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let one = batch(1, 0, 100).len() as u64;
    let log = create(
        &mgr,
        LogConfig {
            segment_bytes: one * 2,
            retention_ms: Some(1000),
            ..small_config()
        },
    );
    for i in 0..6 {
        log.append(&batch(1, 10_000 + i * 1000, 100), 0, 0)
            .expect("append");
    }
    // Segments: [0,1] ts<=11000, [2,3] ts<=13000, [4,5] active.
    assert_eq!(log.segment_count(), 3);
    assert_eq!(
        mgr.enforce_retention(20_000).expect("retention"),
        0,
        "nothing below the high watermark"
    );
    log.set_high_watermark(6);
    assert_eq!(mgr.enforce_retention(12_500).expect("retention"), 1);
    assert_eq!(log.log_start_offset(), 2);
    assert_eq!(mgr.enforce_retention(100_000).expect("retention"), 1);
    assert_eq!(
        log.segment_count(),
        1,
        "the active segment is never deleted"
    );
    assert_eq!(log.log_start_offset(), 4);
    assert_eq!(segment_files(&log.dir(), "log").len(), 1);
    assert!(matches!(
        log.read(3, 100, 10, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn retention_by_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let one = batch(1, 0, 100).len() as u64;
    let log = create(
        &mgr,
        LogConfig {
            segment_bytes: one * 2,
            retention_bytes: Some((one * 3) as i64),
            ..small_config()
        },
    );
    for _ in 0..7 {
        log.append(&batch(1, 0, 100), 0, 0).expect("append");
    }
    log.set_high_watermark(7);
    // Four segments of 2,2,2,1 batches = 7 > 3: deleting the first two leaves 3.
    assert_eq!(log.segment_count(), 4);
    assert_eq!(mgr.enforce_retention(0).expect("retention"), 2);
    assert_eq!(log.size_bytes(), one * 3);
    assert_eq!(log.log_start_offset(), 4);
    assert_eq!(mgr.enforce_retention(0).expect("retention"), 0);
}

#[test]
fn create_spreads_over_dirs_and_delete_removes() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
    let mgr = LogManager::open(&dirs, &|_| small_config()).expect("open");
    for p in 0..4 {
        mgr.get_or_create(&tp("spread", p), small_config())
            .expect("create");
    }
    let count = |d: &std::path::Path| {
        std::fs::read_dir(d)
            .expect("read")
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()))
            .count()
    };
    assert_eq!((count(a.path()), count(b.path())), (2, 2));
    let log = mgr.get(&tp("spread", 1)).expect("exists");
    let pdir = log.dir();
    mgr.delete(&tp("spread", 1)).expect("delete");
    assert!(!pdir.exists());
    assert!(mgr.get(&tp("spread", 1)).is_none());
    assert!(matches!(
        log.append(&batch(1, 0, 10), 0, 0),
        Err(LogError::Deleted(_))
    ));
    assert_eq!(mgr.all().len(), 3);
    mgr.checkpoint().expect("checkpoint");
    drop(mgr);

    // Leftovers of an interrupted delete or checkpoint write are cleaned at open.
    let leftover = a.path().join("spread-0.0123abcd-delete");
    std::fs::create_dir(&leftover).expect("leftover");
    std::fs::write(leftover.join("00000000000000000000.log"), b"x").expect("file");
    std::fs::write(a.path().join("replication-offset-checkpoint.tmp"), b"junk").expect("tmp");
    let mgr = LogManager::open(&dirs, &|_| small_config()).expect("reopen");
    assert!(!leftover.exists());
    assert!(!a.path().join("replication-offset-checkpoint.tmp").exists());
    assert_eq!(mgr.all().len(), 3);
}

#[test]
fn a_locked_or_unusable_dir_fails_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _mgr = open(dir.path());
    let err = LogManager::open(&[dir.path().to_path_buf()], &|_| small_config())
        .err()
        .expect("second open must fail");
    assert!(matches!(err, LogError::LogDir { .. }), "{err:?}");
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").expect("write");
    let err = LogManager::open(&[file], &|_| small_config())
        .err()
        .expect("file as dir must fail");
    assert!(err.to_string().contains("plain-file"), "{err}");
}

#[test]
fn log_start_checkpoint_survives_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = batch(2, 0, 100).len() as u64;
    let config = LogConfig {
        segment_bytes: one * 2,
        ..small_config()
    };
    {
        let mgr = open_with(dir.path(), config.clone());
        let log = create(&mgr, config.clone());
        for _ in 0..4 {
            log.append(&batch(2, 0, 100), 0, 0).expect("append");
        }
        log.set_high_watermark(8);
        log.delete_records_before(5).expect("delete");
        log.flush().expect("flush");
        mgr.checkpoint().expect("checkpoint");
    }
    let mgr = open_with(dir.path(), config);
    let log = mgr.get(&tp("t", 0)).expect("loaded");
    assert_eq!(log.log_start_offset(), 5);
    assert_eq!(log.high_watermark(), 8);
    assert_eq!(log.log_end_offset(), 8);
    assert_eq!(log.recovery_point(), 8);
}
