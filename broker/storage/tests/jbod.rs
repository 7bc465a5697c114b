//! JBOD: placement over several log dirs, moving a replica between dirs while it is appended to
//! (nothing lost or doubled, the same `PartitionLog` keeps serving from the new files), and a
//! failed dir going offline alone.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use strait_storage::{LogConfig, LogError, LogManager, MoveOutcome};

fn open_dirs(dirs: &[PathBuf], config: LogConfig) -> LogManager {
    LogManager::open(dirs, &move |_| config.clone()).expect("open log manager")
}

fn two_dirs() -> (tempfile::TempDir, Vec<PathBuf>) {
    let root = tempfile::tempdir().expect("tempdir");
    let dirs = vec![root.path().join("d1"), root.path().join("d2")];
    (root, dirs)
}

/// Offsets of every batch in the log, in order.
fn offsets(log: &strait_storage::PartitionLog) -> Vec<i64> {
    batches_in(&read_bytes(log, log.log_start_offset()))
        .into_iter()
        .map(|(base, _, _, _)| base)
        .collect()
}

fn under(path: &Path, root: &Path) -> bool {
    path.starts_with(root)
}

#[test]
fn partitions_spread_and_describe_reports_sizes() {
    let (_root, dirs) = two_dirs();
    let mgr = open_dirs(&dirs, small_config());
    let logs: Vec<_> = (0..4)
        .map(|p| {
            mgr.get_or_create(&tp("t", p), small_config())
                .expect("create")
        })
        .collect();
    for (i, log) in logs.iter().enumerate() {
        for _ in 0..=i {
            log.append(&batch(3, 0, 100), 0, 0).expect("append");
        }
    }
    let described = mgr.describe();
    assert_eq!(described.len(), 2);
    for d in &described {
        assert!(!d.offline);
        assert_eq!(d.replicas.len(), 2, "{d:?}");
        for r in &d.replicas {
            let on_disk: u64 = segment_files(&d.path.join(r.tp.dir_name()), "log")
                .iter()
                .map(|f| std::fs::metadata(f).expect("stat").len())
                .sum();
            assert_eq!(r.size, on_disk);
            assert!(r.size > 0 && r.offset_lag == 0 && !r.is_future);
        }
    }
}

#[test]
fn move_under_appends_loses_and_doubles_nothing() {
    let (_root, dirs) = two_dirs();
    let config = LogConfig {
        segment_bytes: 64 * 1024,
        ..small_config()
    };
    let mgr = Arc::new(open_dirs(&dirs, config.clone()));
    let log = mgr.get_or_create(&tp("t", 0), config).expect("create");
    for _ in 0..2000 {
        log.append(&batch(5, 0, 200), 0, 0).expect("append");
    }
    let src = mgr.dir_of(&tp("t", 0)).expect("hosted");
    let dest = dirs.iter().find(|d| **d != src).expect("other dir").clone();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut appended = 0;
            while !stop.load(Ordering::Relaxed) {
                log.append(&batch(5, 0, 200), 0, 0)
                    .expect("append during move");
                appended += 1;
            }
            appended
        })
    };
    let mv = mgr
        .start_move(&tp("t", 0), &dest)
        .expect("start")
        .expect("a move");
    assert_eq!(mgr.run_move(&mv).expect("move"), MoveOutcome::Done);
    // Appends keep going into the moved log for a while.
    std::thread::sleep(std::time::Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let appended = writer.join().expect("writer");

    assert!(under(&log.dir(), &dest), "{}", log.dir().display());
    assert_eq!(mgr.dir_of(&tp("t", 0)), Some(dest.clone()));
    assert!(!src.join(tp("t", 0).dir_name()).exists());
    let expected: Vec<i64> = (0..(2000 + appended) as i64).map(|i| i * 5).collect();
    assert_eq!(offsets(&log), expected);
    assert_eq!(log.log_end_offset(), (2000 + appended) as i64 * 5);
    assert!(log.segment_count() > 1);

    // A clean restart loads it from the new dir with everything in it.
    mgr.shutdown().expect("shutdown");
    drop((log, mgr));
    let mgr = open_dirs(&dirs, small_config());
    let log = mgr.get(&tp("t", 0)).expect("reloaded");
    assert!(under(&log.dir(), &dest));
    assert_eq!(offsets(&log), expected);
    assert!(!mgr.recovered_on_open());
}

#[test]
fn move_errors_and_no_ops() {
    let (_root, dirs) = two_dirs();
    let mgr = open_dirs(&dirs, small_config());
    mgr.get_or_create(&tp("t", 0), small_config())
        .expect("create");
    let here = mgr.dir_of(&tp("t", 0)).expect("hosted");
    assert!(
        mgr.start_move(&tp("t", 0), &here)
            .expect("same dir")
            .is_none()
    );
    assert!(matches!(
        mgr.start_move(&tp("t", 0), Path::new("/nowhere")),
        Err(LogError::LogDirNotFound(_))
    ));
    assert!(matches!(
        mgr.start_move(&tp("t", 9), &dirs[1]),
        Err(LogError::Deleted(_))
    ));
}

#[test]
fn leftover_future_dir_is_removed_at_start() {
    let (_root, dirs) = two_dirs();
    let mgr = open_dirs(&dirs, small_config());
    mgr.get_or_create(&tp("t", 0), small_config())
        .expect("create");
    mgr.shutdown().expect("shutdown");
    drop(mgr);
    let future = dirs[1].join("t-0.0123abcd-future");
    std::fs::create_dir_all(&future).expect("mkdir");
    std::fs::write(future.join("00000000000000000000.log"), b"partial").expect("write");
    let mgr = open_dirs(&dirs, small_config());
    assert!(!future.exists());
    assert!(mgr.get(&tp("t", 0)).is_some());
}

#[test]
fn a_failed_dir_goes_offline_alone() {
    let (_root, dirs) = two_dirs();
    let mgr = open_dirs(&dirs, small_config());
    let a = mgr.get_or_create(&tp("t", 0), small_config()).expect("a");
    let b = mgr.get_or_create(&tp("t", 1), small_config()).expect("b");
    a.append(&batch(3, 0, 10), 0, 0).expect("append");
    b.append(&batch(3, 0, 10), 0, 0).expect("append");
    let a_dir = mgr.dir_of(&tp("t", 0)).expect("a dir");
    // The disk goes away under the partition: its files vanish, then a roll needs a new one.
    std::fs::remove_dir_all(a.dir()).expect("remove partition dir");
    let err = a
        .truncate_fully_and_start_at(100)
        .expect_err("I/O on a missing dir fails");
    assert!(matches!(err, LogError::Io(_)), "{err:?}");
    assert_eq!(mgr.offline_dirs(), vec![a_dir.clone()]);
    assert!(!mgr.dir_failed_at_open(), "failed later, not at open");
    assert!(a.is_offline());
    assert!(matches!(
        a.append(&batch(1, 0, 10), 0, 0),
        Err(LogError::LogDirOffline(_))
    ));
    assert!(matches!(
        a.read(0, u64::MAX, i64::MAX, true),
        Err(LogError::LogDirOffline(_))
    ));
    // The other dir keeps working, and the periodic jobs skip the offline one.
    b.append(&batch(3, 0, 10), 0, 0)
        .expect("append to the online dir");
    assert_eq!(offsets(&b), vec![0, 3]);
    mgr.flush_due(i64::MAX).expect("flush");
    mgr.checkpoint().expect("checkpoint");
    let described = mgr.describe();
    let offline = described.iter().find(|d| d.path == a_dir).expect("listed");
    assert!(offline.offline && offline.replicas.is_empty());
    // New partitions go to the online dir.
    let c = mgr.get_or_create(&tp("t", 2), small_config()).expect("c");
    assert!(!under(&c.dir(), &a_dir));
    mgr.shutdown().expect("shutdown skips the offline dir");
    assert!(!a_dir.join(".kafka_cleanshutdown").exists());
}

#[test]
fn a_dir_that_cannot_open_is_offline_and_the_rest_start() {
    let (_root, dirs) = two_dirs();
    // A regular file where a log dir should be: it can neither be created nor listed.
    std::fs::create_dir_all(dirs[0].parent().expect("parent")).expect("mkdir");
    std::fs::write(&dirs[0], b"not a dir").expect("write");
    let mgr = open_dirs(&dirs, small_config());
    assert_eq!(mgr.offline_dirs(), vec![dirs[0].clone()]);
    assert!(mgr.dir_failed_at_open());
    let log = mgr
        .get_or_create(&tp("t", 0), small_config())
        .expect("create");
    assert!(under(&log.dir(), &dirs[1]));

    let only_bad = LogManager::open(&dirs[..1], &|_| small_config());
    assert!(
        only_bad.is_err(),
        "a broker with no online dir does not start"
    );
}
