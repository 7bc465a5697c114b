//! Follower appends (Kafka's `appendAsFollower`): leader batches copied verbatim, offset checks,
//! epochs and producer state carried over, crash recovery, and KIP-101 truncation then catch-up.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use strait_storage::{LogConfig, LogError, LogManager, PartitionLog, TimestampType};

/// Batches stamped with the real clock, so reloading does not expire their producers.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Sets the two header fields outside the CRC, as a leader does.
fn placed(mut batch: Vec<u8>, base_offset: i64, leader_epoch: i32) -> Vec<u8> {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
    batch
}

fn read_max(log: &PartitionLog, offset: i64, max_bytes: u64) -> Vec<u8> {
    let r = log.read(offset, max_bytes, i64::MAX, true).expect("read");
    let mut out = Vec::new();
    for region in &r.regions {
        region.read_to_vec(&mut out).expect("read region");
    }
    out
}

/// Fetches from `leader` at the follower's log end until it has caught up, `max_bytes` at a time.
fn replicate(leader: &PartitionLog, follower: &PartitionLog, max_bytes: u64) {
    for _ in 0..10_000 {
        let leo = follower.log_end_offset();
        if leo >= leader.log_end_offset() {
            return;
        }
        let bytes = read_max(leader, leo, max_bytes);
        follower
            .append_as_follower(&bytes, 0)
            .expect("follower append");
    }
    panic!("follower did not catch up");
}

/// Name and content of every file with extension `ext`.
fn files(dir: &Path, ext: &str) -> Vec<(String, Vec<u8>)> {
    segment_files(dir, ext)
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            (name, std::fs::read(p).expect("read file"))
        })
        .collect()
}

fn log_in(dir: &Path, config: LogConfig) -> (LogManager, Arc<PartitionLog>) {
    let mgr = open_with(dir, config.clone());
    let log = create(&mgr, config);
    (mgr, log)
}

fn assert_same(leader: &PartitionLog, follower: &PartitionLog, pids: &[i64]) {
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(read_bytes(follower, 0), read_bytes(leader, 0));
    assert_eq!(files(&follower.dir(), "log"), files(&leader.dir(), "log"));
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    for &pid in pids {
        assert_eq!(follower.producer_state(pid), leader.producer_state(pid));
    }
}

#[test]
fn follower_copy_is_byte_identical() {
    let (ld, fd) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let one = batch(2, 0, 100).len() as u64;
    let config = LogConfig {
        segment_bytes: one * 3,
        index_interval_bytes: 1,
        ..small_config()
    };
    let (_lm, leader) = log_in(ld.path(), config.clone());
    // The leader stamps LogAppendTime; the follower, configured otherwise, keeps the bytes.
    leader.update_config(LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..config.clone()
    });
    let ts = now();
    let mut seq = 0;
    for (i, epoch) in [0, 0, 0, 1, 1, 3, 3, 3, 3, 7, 7, 7].into_iter().enumerate() {
        if i % 3 == 0 {
            leader
                .append(&pid_batch(2, 11, 0, seq, ts), epoch, ts + i as i64)
                .expect("append");
            seq += 2;
        } else {
            leader
                .append(&batch(2, ts, 100), epoch, ts + i as i64)
                .expect("append");
        }
    }
    assert!(leader.segment_count() >= 3);
    let (_fm, follower) = log_in(fd.path(), config);
    // Fetch sizes that cut across segments and epochs.
    replicate(&leader, &follower, one * 3);
    assert_same(&leader, &follower, &[11]);
    assert_eq!(follower.segment_count(), leader.segment_count());
    assert_eq!(follower.producer_state(11), Some((0, seq - 1, 19)));
    assert_eq!(
        follower.epoch_entries(),
        vec![(0, 0), (1, 6), (3, 10), (7, 18)]
    );
    for epoch in [0, 1, 2, 3, 7, 8] {
        assert_eq!(
            follower.end_offset_for_epoch(epoch),
            leader.end_offset_for_epoch(epoch)
        );
    }
    // One fetch of everything still lays the segments out as the leader did.
    let whole = tempfile::tempdir().expect("dir");
    let (_wm, at_once) = log_in(whole.path(), small_config());
    at_once.update_config(follower.config());
    replicate(&leader, &at_once, u64::MAX);
    assert_same(&leader, &at_once, &[11]);
    // The follower's high watermark is the caller's business.
    assert_eq!(follower.high_watermark(), 0);
    leader.flush().expect("flush");
    follower.flush().expect("flush");
    assert_eq!(
        files(&follower.dir(), "index"),
        files(&leader.dir(), "index")
    );
    assert_eq!(
        files(&follower.dir(), "timeindex"),
        files(&leader.dir(), "timeindex")
    );
}

#[test]
fn overlaps_are_rejected_with_nothing_written() {
    let (ld, fd) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (_lm, leader) = log_in(ld.path(), small_config());
    for epoch in [1, 1, 2] {
        leader.append(&batch(3, 0, 10), epoch, 0).expect("append");
    }
    let (_fm, follower) = log_in(fd.path(), small_config());
    replicate(&leader, &follower, u64::MAX);
    let size = follower.size_bytes();
    let entries = follower.epoch_entries();

    let again = read_bytes(&leader, 3);
    assert!(matches!(
        follower.append_as_follower(&again, 0),
        Err(LogError::UnexpectedOffset {
            expected: 9,
            got: 3
        })
    ));
    // Offsets going backwards inside one request: the good first batch is not written either.
    let mut backwards = placed(batch(2, 0, 10), 9, 2);
    backwards.extend_from_slice(&placed(batch(2, 0, 10), 10, 4));
    assert!(matches!(
        follower.append_as_follower(&backwards, 0),
        Err(LogError::UnexpectedOffset {
            expected: 11,
            got: 10
        })
    ));
    // A corrupt batch is refused like a produce.
    let mut corrupt = placed(batch(2, 0, 10), 9, 2);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(matches!(
        follower.append_as_follower(&corrupt, 0),
        Err(LogError::CorruptMessage(_))
    ));
    assert_eq!(follower.log_end_offset(), 9);
    assert_eq!(follower.size_bytes(), size);
    assert_eq!(follower.epoch_entries(), entries);
    assert_same(&leader, &follower, &[]);
}

#[test]
fn gaps_left_by_compaction_are_accepted() {
    let dir = tempfile::tempdir().expect("dir");
    let (_m, follower) = log_in(dir.path(), small_config());
    follower
        .append_as_follower(&placed(batch(2, 0, 10), 0, 0), 0)
        .expect("append");
    // A compacted leader removed offsets 2..9 entirely.
    let info = follower
        .append_as_follower(&placed(batch(3, 0, 10), 10, 0), 0)
        .expect("gap");
    assert_eq!((info.first_offset, info.last_offset), (10, 12));
    assert_eq!(follower.log_end_offset(), 13);
    let bases: Vec<i64> = batches_in(&read_bytes(&follower, 5))
        .iter()
        .map(|b| b.0)
        .collect();
    assert_eq!(bases, vec![10]);
    // A gap beyond relative-offset reach starts a new segment at the batch.
    let far = 13 + i64::from(i32::MAX) + 5;
    follower
        .append_as_follower(&placed(batch(1, 0, 10), far, 0), 0)
        .expect("far gap");
    assert_eq!(follower.segment_count(), 2);
    assert_eq!(follower.log_end_offset(), far + 1);
    let names: Vec<String> = files(&follower.dir(), "log")
        .into_iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(names[1], format!("{far:020}.log"));
    assert_eq!(batches_in(&read_bytes(&follower, 13))[0].0, far);
}

#[test]
fn a_far_gap_on_an_empty_segment_replaces_it() {
    let dir = tempfile::tempdir().expect("dir");
    let (_m, follower) = log_in(dir.path(), small_config());
    let far = i64::from(i32::MAX) + 100;
    follower
        .append_as_follower(&placed(batch(2, 0, 10), far, 5), 0)
        .expect("append");
    let names: Vec<String> = files(&follower.dir(), "log")
        .into_iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(names, vec![format!("{far:020}.log")]);
    assert_eq!(follower.log_end_offset(), far + 2);
    assert_eq!(follower.epoch_entries(), vec![(5, far)]);
}

#[test]
fn idempotent_batches_are_accepted_whatever_their_sequences() {
    let dir = tempfile::tempdir().expect("dir");
    let (_m, follower) = log_in(dir.path(), small_config());
    let ts = now();
    // Unknown producer starting at sequence 5, then a gap, then a new epoch not at 0.
    let mut request = placed(pid_batch(2, 3, 0, 5, ts), 0, 1);
    request.extend_from_slice(&placed(pid_batch(1, 3, 0, 40, ts), 2, 1));
    follower.append_as_follower(&request, 0).expect("gapped");
    assert_eq!(follower.producer_state(3), Some((0, 40, 2)));
    follower
        .append_as_follower(&placed(pid_batch(2, 3, 2, 9, ts), 3, 1), 0)
        .expect("new epoch mid-sequence");
    assert_eq!(follower.producer_state(3), Some((2, 10, 4)));
    // A repeat of cached sequences is data for a follower, not a duplicate to drop.
    let info = follower
        .append_as_follower(&placed(pid_batch(2, 3, 2, 9, ts), 5, 1), 0)
        .expect("same sequences again");
    assert!(!info.duplicate);
    assert_eq!(follower.log_end_offset(), 7);
    // Producer state as the follower has it lets it lead: the next in-sequence batch is taken,
    // a retry is answered as a duplicate.
    let info = follower
        .append(&pid_batch(1, 3, 2, 11, ts), 2, 0)
        .expect("lead");
    assert_eq!(info.first_offset, 7);
    let retry = follower
        .append(&pid_batch(1, 3, 2, 11, ts), 2, 0)
        .expect("retry");
    assert!(retry.duplicate);
}

#[test]
fn a_crashed_follower_recovers_what_it_copied() {
    let (ld, fd) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let one = batch(2, 0, 100).len() as u64;
    let config = LogConfig {
        segment_bytes: one * 4,
        ..small_config()
    };
    let (_lm, leader) = log_in(ld.path(), config.clone());
    let ts = now();
    for (i, epoch) in [0, 0, 2, 2, 2, 5, 5, 5, 5, 5].into_iter().enumerate() {
        leader
            .append(&pid_batch(2, 21, 0, 2 * i as i32, ts), epoch, ts)
            .expect("append");
    }
    {
        let (_fm, follower) = log_in(fd.path(), config.clone());
        replicate(&leader, &follower, one * 2);
        follower.set_high_watermark(leader.log_end_offset());
        // Dropped without shutdown: a crash.
    }
    let mgr = open_with(fd.path(), config);
    let follower = mgr.get(&tp("t", 0)).expect("log");
    assert!(mgr.recovered_on_open());
    assert_same(&leader, &follower, &[21]);
    assert_eq!(follower.producer_state(21), Some((0, 19, 19)));
}

#[test]
fn kip_101_truncation_mid_segment_then_catch_up() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let config = LogConfig {
        index_interval_bytes: 1,
        ..small_config()
    };
    let ts = now();
    // Old leader: epoch 1 then epoch 2, all in one segment.
    let (_m1, old) = log_in(dirs[0].path(), config.clone());
    old.append(&batch(2, ts, 10), 1, 0).expect("append");
    old.append(&pid_batch(2, 8, 0, 0, ts), 1, 0)
        .expect("append");
    old.append(&batch(2, ts, 10), 2, 0).expect("append");
    old.append(&pid_batch(2, 8, 0, 2, ts), 2, 0)
        .expect("append");
    old.append(&pid_batch(2, 8, 0, 4, ts), 2, 0)
        .expect("append");
    // The follower has all of it; the new leader only up to offset 6, then leads epoch 3.
    let (_m2, follower) = log_in(dirs[1].path(), config.clone());
    replicate(&old, &follower, u64::MAX);
    let (_m3, new) = log_in(dirs[2].path(), config);
    replicate_to(&old, &new, 6);
    assert_eq!(new.log_end_offset(), 6);
    new.append(&pid_batch(1, 8, 0, 2, ts), 3, 0).expect("lead");
    new.append(&batch(3, ts, 10), 3, 0).expect("lead");
    assert_eq!(follower.segment_count(), 1);

    // OffsetForLeaderEpoch with the follower's latest epoch, then truncate there.
    let latest = follower.latest_epoch().expect("epoch");
    assert_eq!(latest, 2);
    let (epoch, end) = new.end_offset_for_epoch(latest).expect("known epoch");
    assert_eq!((epoch, end), (2, 6));
    follower.truncate_to(end).expect("truncate");
    assert_eq!(follower.log_end_offset(), 6);
    assert_eq!(follower.epoch_entries(), vec![(1, 0), (2, 4)]);
    assert_eq!(follower.producer_state(8), Some((0, 1, 3)));
    replicate(&new, &follower, u64::MAX);
    assert_same(&new, &follower, &[8]);
    assert_eq!(follower.epoch_entries(), vec![(1, 0), (2, 4), (3, 6)]);
    assert_eq!(follower.end_offset_for_epoch(2), Some((2, 6)));
    assert_eq!(follower.producer_state(8), Some((0, 2, 6)));
}

/// Copies whole batches from `leader` until the follower reaches `end`.
fn replicate_to(leader: &PartitionLog, follower: &PartitionLog, end: i64) {
    for _ in 0..1000 {
        let leo = follower.log_end_offset();
        if leo >= end {
            return;
        }
        let bytes = read_max(leader, leo, 1);
        follower.append_as_follower(&bytes, 0).expect("append");
    }
    panic!("did not reach {end}");
}

#[test]
fn truncate_fully_and_start_at_restarts_the_log_anywhere() {
    let dir = tempfile::tempdir().expect("dir");
    let one = batch(2, 0, 100).len() as u64;
    let config = LogConfig {
        segment_bytes: one * 2,
        ..small_config()
    };
    let (mgr, log) = log_in(dir.path(), config.clone());
    let ts = now();
    for i in 0..5 {
        log.append(&pid_batch(2, 4, 0, 2 * i, ts), i, 0)
            .expect("append");
    }
    log.set_high_watermark(10);
    log.flush().expect("flush");
    log.truncate_fully_and_start_at(100).expect("truncate");
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.high_watermark()
        ),
        (100, 100, 100)
    );
    assert_eq!(log.recovery_point(), 100);
    assert!(log.epoch_entries().is_empty());
    assert_eq!(log.producer_count(), 0);
    let names: Vec<String> = files(&log.dir(), "log").into_iter().map(|f| f.0).collect();
    assert_eq!(names, vec![format!("{:020}.log", 100)]);
    assert!(segment_files(&log.dir(), "snapshot").is_empty());
    log.append_as_follower(&placed(pid_batch(2, 4, 1, 7, ts), 100, 9), 0)
        .expect("append");
    mgr.shutdown().expect("shutdown");
    drop(mgr);
    let mgr = open_with(dir.path(), config);
    let log = mgr.get(&tp("t", 0)).expect("log");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 102));
    assert_eq!(log.epoch_entries(), vec![(9, 100)]);
    assert_eq!(log.producer_state(4), Some((1, 8, 101)));
    // Restarting at the base of the only segment reuses (empties) it.
    log.truncate_fully_and_start_at(100).expect("truncate");
    assert_eq!(log.log_end_offset(), 100);
    assert_eq!(log.size_bytes(), 0);
    assert_eq!(log.segment_count(), 1);
    log.append(&batch(1, 0, 10), 10, 0).expect("append");
    assert_eq!(log.log_end_offset(), 101);
}
