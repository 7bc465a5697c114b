//! Transactions on the partition side (Kafka's `ProducerStateManager`, `TransactionIndex` and
//! `UnifiedLog`): transactional appends, COMMIT/ABORT markers, the last stable offset, the
//! `.txnindex` files, refusals, restarts, followers, truncation, compaction (and its removal of
//! markers), expiry and log start.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use strait_storage::{
    AbortedTxn, ControlType, LogConfig, LogError, LogManager, PartitionLog, ProducerInfo,
};

/// Batches stamped with the real clock, so reloading does not expire their producers.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn aborted(producer_id: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id,
        first_offset: first,
        last_offset: last,
        last_stable_offset: lso,
    }
}

fn all_aborted(log: &PartitionLog) -> Vec<AbortedTxn> {
    log.aborted_transactions(0, i64::MAX).expect("aborted")
}

/// Base offsets of the segments in `dir`.
fn bases(dir: &Path) -> Vec<i64> {
    segment_files(dir, "log")
        .iter()
        .map(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
                .expect("segment name")
        })
        .collect()
}

/// Base offset of the segment holding `offset`.
fn segment_of(dir: &Path, offset: i64) -> i64 {
    bases(dir)
        .into_iter()
        .filter(|&b| b <= offset)
        .max()
        .expect("segment")
}

/// Name and content of every `.txnindex` file.
fn txn_indexes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    segment_files(dir, "txnindex")
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            (name, std::fs::read(p).expect("read"))
        })
        .collect()
}

fn commit(log: &PartitionLog, pid: i64, epoch: i16, coordinator_epoch: i32) -> i64 {
    log.append_marker(pid, epoch, ControlType::Commit, coordinator_epoch, 0, now())
        .expect("commit")
        .first_offset
}

fn abort(log: &PartitionLog, pid: i64, epoch: i16, coordinator_epoch: i32) -> i64 {
    log.append_marker(pid, epoch, ControlType::Abort, coordinator_epoch, 0, now())
        .expect("abort")
        .first_offset
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 300,
        ..small_config()
    }
}

/// Three producers, two aborts, one commit, one transaction left open, over several segments:
///
/// | offsets | batch                                   |
/// |---------|-----------------------------------------|
/// | 0..1    | producer 1 (transaction from 0)         |
/// | 2..3    | producer 2 (transaction from 2)         |
/// | 4..5    | plain                                   |
/// | 6       | ABORT producer 1 (LSO 2)                |
/// | 7..8    | producer 2                              |
/// | 9..10   | producer 3 (transaction from 9)         |
/// | 11      | COMMIT producer 2 (LSO 9)               |
/// | 12..13  | producer 1 (transaction from 12, open)  |
/// | 14..15  | plain                                   |
/// | 16      | ABORT producer 3 (LSO 12)               |
fn fill(log: &PartitionLog) {
    let t = now();
    log.append(&txn_batch(2, 1, 0, 0, t), 0, t).expect("p1");
    log.append(&txn_batch(2, 2, 0, 0, t), 0, t).expect("p2");
    log.append(&batch(2, t, 10), 0, t).expect("plain");
    assert_eq!(abort(log, 1, 0, 1), 6);
    log.append(&txn_batch(2, 2, 0, 2, t), 0, t).expect("p2");
    log.append(&txn_batch(2, 3, 0, 0, t), 0, t).expect("p3");
    assert_eq!(commit(log, 2, 0, 2), 11);
    log.append(&txn_batch(2, 1, 0, 2, t), 0, t).expect("p1");
    log.append(&batch(2, t, 10), 0, t).expect("plain");
    assert_eq!(abort(log, 3, 0, 3), 16);
    assert_eq!(log.log_end_offset(), 17);
}

fn assert_filled_state(log: &PartitionLog) {
    assert_eq!(log.ongoing_transactions(), vec![(1, 0, 12)]);
    assert_eq!(
        all_aborted(log),
        vec![aborted(1, 0, 6, 2), aborted(3, 9, 16, 12)]
    );
    let producers: Vec<(i64, i32, i32, i64)> = log
        .producers()
        .iter()
        .map(|p| {
            (
                p.producer_id,
                p.last_sequence,
                p.coordinator_epoch,
                p.current_txn_start_offset,
            )
        })
        .collect();
    assert_eq!(producers, vec![(1, 3, 1, 12), (2, 3, 2, -1), (3, 1, 3, -1)]);
    log.set_high_watermark(log.log_end_offset());
    assert_eq!(log.first_unstable_offset(), Some(12));
    assert_eq!(log.last_stable_offset(), 12);
}

#[test]
fn transactional_appends_hold_the_lso_until_the_marker_is_replicated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(&mgr, small_config());
    let t = now();
    log.append(&batch(2, t, 10), 0, t).expect("plain");
    log.set_high_watermark(2);
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(log.last_stable_offset(), 2);

    let info = log.append(&txn_batch(3, 1, 0, 0, t), 0, t).expect("txn");
    assert_eq!(info.first_offset, 2);
    log.append(&batch(1, t, 10), 0, t).expect("plain");
    log.set_high_watermark(6);
    assert_eq!(log.high_watermark(), 6);
    assert_eq!(log.first_unstable_offset(), Some(2));
    assert_eq!(log.last_stable_offset(), 2);
    assert_eq!(log.ongoing_transactions(), vec![(1, 0, 2)]);
    assert_eq!(
        log.producers(),
        vec![ProducerInfo {
            producer_id: 1,
            producer_epoch: 0,
            last_sequence: 2,
            last_timestamp: t + 2,
            coordinator_epoch: -1,
            current_txn_start_offset: 2,
        }]
    );

    // More data of the same transaction does not move its start.
    log.append(&txn_batch(2, 1, 0, 3, t), 0, t).expect("txn");
    assert_eq!(log.ongoing_transactions(), vec![(1, 0, 2)]);
    let info = log
        .append_marker(1, 0, ControlType::Commit, 5, 0, t + 10)
        .expect("commit");
    assert_eq!(
        (info.first_offset, info.last_offset, info.record_count),
        (8, 8, 1)
    );
    assert!(!info.duplicate);
    assert!(log.ongoing_transactions().is_empty());
    let p = &log.producers()[0];
    assert_eq!(
        (
            p.current_txn_start_offset,
            p.coordinator_epoch,
            p.last_timestamp
        ),
        (-1, 5, t + 10)
    );
    // Until the high watermark passes the marker the transaction stays unstable (Kafka's
    // unreplicated transactions): a read_committed reader must be able to get the marker too.
    assert_eq!(log.first_unstable_offset(), Some(2));
    assert_eq!(log.last_stable_offset(), 2);
    assert!(log.raise_high_watermark(8));
    assert_eq!(log.last_stable_offset(), 2);
    assert!(log.raise_high_watermark(9));
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(log.last_stable_offset(), 9);
    assert!(all_aborted(&log).is_empty());

    // The next transaction of the producer holds the LSO again.
    log.append(&txn_batch(1, 1, 0, 5, t), 0, t).expect("txn");
    log.set_high_watermark(10);
    assert_eq!(log.last_stable_offset(), 9);
    assert_eq!(log.ongoing_transactions(), vec![(1, 0, 9)]);
}

#[test]
fn an_abort_is_indexed_in_kafkas_layout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(&mgr, small_config());
    let t = now();
    log.append(&txn_batch(3, 7, 2, 0, t), 4, t).expect("txn");
    let info = log
        .append_marker(7, 2, ControlType::Abort, 11, 4, t + 5)
        .expect("abort");
    assert_eq!(info.first_offset, 3);
    assert_eq!(log.epoch_entries(), vec![(4, 0)]);

    // Kafka's EndTransactionMarker batch: transactional control batch, sequence -1, one record
    // with key (version 0, type 0 = ABORT) and value (version 0, coordinator epoch).
    let bytes = read_bytes(&log, 3);
    assert_eq!(batches_in(&bytes), vec![(3, 3, 4, bytes.len())]);
    assert_eq!(i16::from_be_bytes([bytes[21], bytes[22]]), 0x30);
    assert_eq!(be_i64(&bytes, 27), t + 5);
    assert_eq!(be_i64(&bytes, 43), 7);
    assert_eq!(i16::from_be_bytes([bytes[51], bytes[52]]), 2);
    assert_eq!(be_i32(&bytes, 53), -1);
    assert_eq!(be_i32(&bytes, 57), 1);
    let recs = records_in(&bytes);
    assert_eq!(recs.len(), 1);
    assert_eq!((recs[0].offset, recs[0].timestamp), (3, t + 5));
    assert_eq!(recs[0].key.as_deref(), Some(&[0u8, 0, 0, 0][..]));
    assert_eq!(recs[0].value.as_deref(), Some(&[0u8, 0, 0, 0, 0, 11][..]));
    assert!(recs[0].headers.is_empty());

    assert_eq!(all_aborted(&log), vec![aborted(7, 0, 3, 4)]);
    assert_eq!(
        log.aborted_transactions(3, 4).expect("search"),
        vec![aborted(7, 0, 3, 4)]
    );
    assert!(log.aborted_transactions(4, 100).expect("search").is_empty());
    assert!(log.aborted_transactions(0, 0).expect("search").is_empty());
    log.flush().expect("flush");
    assert_eq!(
        txn_index_file(&log.dir(), 0),
        Some(txn_index_entry(7, 0, 3, 4))
    );

    // A commit indexes nothing.
    log.append(&txn_batch(1, 7, 2, 3, t), 4, t).expect("txn");
    log.append_marker(7, 2, ControlType::Commit, 11, 4, t + 6)
        .expect("commit");
    log.flush().expect("flush");
    assert_eq!(
        txn_index_file(&log.dir(), 0),
        Some(txn_index_entry(7, 0, 3, 4))
    );
}

#[test]
fn interleaved_transactions_of_two_producers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(&mgr, small_config());
    let t = now();
    log.append(&txn_batch(2, 1, 0, 0, t), 0, t).expect("p1"); // 0..1
    log.append(&txn_batch(1, 2, 0, 0, t), 0, t).expect("p2"); // 2
    log.append(&txn_batch(1, 1, 0, 2, t), 0, t).expect("p1"); // 3
    log.append(&batch(1, t, 10), 0, t).expect("plain"); // 4
    log.set_high_watermark(5);
    assert_eq!(log.ongoing_transactions(), vec![(1, 0, 0), (2, 0, 2)]);
    assert_eq!(log.last_stable_offset(), 0);

    // Producer 2's transaction is still open, so the abort's LSO is its first offset.
    assert_eq!(abort(&log, 1, 0, 0), 5);
    assert_eq!(all_aborted(&log), vec![aborted(1, 0, 5, 2)]);
    log.set_high_watermark(6);
    assert_eq!(log.last_stable_offset(), 2);
    log.append(&txn_batch(1, 2, 0, 1, t), 0, t).expect("p2"); // 6
    assert_eq!(commit(&log, 2, 0, 0), 7);
    log.set_high_watermark(8);
    assert_eq!(log.last_stable_offset(), 8);

    log.append(&txn_batch(1, 3, 0, 0, t), 0, t).expect("p3"); // 8
    assert_eq!(abort(&log, 3, 0, 0), 9);
    assert_eq!(
        all_aborted(&log),
        vec![aborted(1, 0, 5, 2), aborted(3, 8, 9, 10)]
    );
    // Kafka's search bounds: last offset >= from, first offset < upper.
    assert_eq!(
        log.aborted_transactions(0, 2).expect("search"),
        vec![aborted(1, 0, 5, 2)]
    );
    assert_eq!(
        log.aborted_transactions(6, 100).expect("search"),
        vec![aborted(3, 8, 9, 10)]
    );
    assert_eq!(
        log.aborted_transactions(5, 9).expect("search"),
        vec![aborted(1, 0, 5, 2), aborted(3, 8, 9, 10)]
    );
}

#[test]
fn clients_cannot_write_markers_nor_leave_their_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(&mgr, small_config());
    let t = now();
    // A marker batch taken from another log, sent as a produce.
    let other = mgr
        .get_or_create(&tp("other", 0), small_config())
        .expect("create");
    other.append(&txn_batch(1, 5, 0, 0, t), 0, t).expect("txn");
    abort(&other, 5, 0, 0);
    let marker = read_bytes(&other, 1);
    match log.append(&marker, 0, t) {
        Err(LogError::InvalidRecord(msg)) => {
            assert!(
                msg.contains("control batches cannot be produced by clients"),
                "{msg}"
            );
        }
        other => panic!(
            "control batch accepted: {:?}",
            other.map(|i| i.first_offset)
        ),
    }
    // A transactional batch needs a producer id.
    let no_pid = frame(&records(&[0], 10), 1, t, t, TRANSACTIONAL);
    assert!(matches!(
        log.append(&no_pid, 0, t),
        Err(LogError::InvalidRecord(_))
    ));

    log.append(&txn_batch(1, 5, 0, 0, t), 0, t).expect("txn");
    assert!(matches!(
        log.append(&pid_batch(1, 5, 0, 1, t), 0, t),
        Err(LogError::InvalidTxnState { producer_id: 5, .. })
    ));
    assert_eq!(log.log_end_offset(), 1);
    // Other producers are not concerned.
    log.append(&pid_batch(1, 6, 0, 0, t), 0, t).expect("p6");
    log.append(&batch(1, t, 10), 0, t).expect("plain");
    commit(&log, 5, 0, 0);
    // Once the transaction is over the producer may write outside one again.
    log.append(&pid_batch(1, 5, 0, 1, t), 0, t)
        .expect("idempotent after commit");
}

#[test]
fn stale_markers_are_refused_and_markers_bump_epochs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(&mgr, small_config());
    let t = now();
    log.append(&txn_batch(1, 3, 3, 0, t), 0, t).expect("txn");
    assert!(matches!(
        log.append_marker(3, 2, ControlType::Commit, 0, 0, t),
        Err(LogError::InvalidProducerEpoch {
            producer_id: 3,
            epoch: 2,
            current: 3
        })
    ));
    assert_eq!(abort(&log, 3, 3, 5), 1);
    assert!(matches!(
        log.append_marker(3, 3, ControlType::Commit, 4, 0, t),
        Err(LogError::TransactionCoordinatorFenced {
            producer_id: 3,
            coordinator_epoch: 4,
            current: 5
        })
    ));
    assert_eq!(log.log_end_offset(), 2);

    // KIP-890 transactions v2: the marker carries the bumped epoch, after which the producer
    // starts over at sequence 0 and the old epoch is fenced.
    log.append(&txn_batch(1, 3, 3, 1, t), 0, t).expect("txn");
    assert_eq!(commit(&log, 3, 4, 5), 3);
    assert_eq!(log.producer_state(3), Some((4, -1, -1)));
    log.append(&txn_batch(1, 3, 4, 0, t), 0, t)
        .expect("new epoch from sequence 0");
    assert!(matches!(
        log.append(&txn_batch(1, 3, 3, 2, t), 0, t),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    assert_eq!(log.ongoing_transactions(), vec![(3, 4, 4)]);

    // A marker for a producer without a transaction here is written all the same.
    let info = log
        .append_marker(99, 0, ControlType::Abort, 2, 0, t)
        .expect("marker");
    assert_eq!(info.first_offset, 5);
    assert_eq!(all_aborted(&log), vec![aborted(3, 0, 1, 2)]);
    let p99 = log
        .producers()
        .into_iter()
        .find(|p| p.producer_id == 99)
        .expect("producer 99");
    assert_eq!(
        (p99.coordinator_epoch, p99.current_txn_start_offset),
        (2, -1)
    );
}

#[test]
fn transactions_survive_a_clean_restart_through_the_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pdir;
    {
        let mgr = open_with(dir.path(), small_segments());
        let log = create(&mgr, small_segments());
        pdir = log.dir();
        fill(&log);
        assert!(log.segment_count() >= 4);
        log.set_high_watermark(17);
        mgr.shutdown().expect("shutdown");
    }
    // The snapshot at the log end records producer 1's open transaction and coordinator epoch.
    let snap = std::fs::read(pdir.join(format!("{:020}.snapshot", 17))).expect("snapshot");
    let entry = &snap[10..10 + 46];
    assert_eq!(be_i64(entry, 0), 1);
    assert_eq!(be_i32(entry, 34), 1);
    assert_eq!(be_i64(entry, 38), 12);
    let before = txn_indexes(&pdir);

    let mgr = open_with(dir.path(), small_segments());
    assert!(!mgr.recovered_on_open());
    let log = mgr.get(&tp("t", 0)).expect("log");
    assert_filled_state(&log);
    assert_eq!(txn_indexes(&pdir), before);
    // The transaction can be ended after the restart.
    assert_eq!(commit(&log, 1, 0, 1), 17);
    log.set_high_watermark(18);
    assert_eq!(log.last_stable_offset(), 18);
}

#[test]
fn a_crash_rebuilds_transactions_and_indexes_from_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pdir;
    let before;
    {
        let mgr = open_with(dir.path(), small_segments());
        let log = create(&mgr, small_segments());
        pdir = log.dir();
        fill(&log);
        log.flush().expect("flush");
        before = txn_indexes(&pdir);
        // Dropped without shutdown and without snapshots: everything is replayed.
    }
    for s in segment_files(&pdir, "snapshot") {
        std::fs::remove_file(s).expect("remove snapshot");
    }
    // The recovered segments' indexes are rebuilt, whatever their files said.
    for (name, _) in &before {
        std::fs::write(pdir.join(name), b"garbage").expect("write");
    }
    let mgr = open_with(dir.path(), small_segments());
    assert!(mgr.recovered_on_open());
    let log = mgr.get(&tp("t", 0)).expect("log");
    assert_filled_state(&log);
    log.flush().expect("flush");
    assert_eq!(txn_indexes(&pdir), before);
    assert!(before.iter().any(|(_, b)| !b.is_empty()));
}

#[test]
fn a_missing_or_torn_txnindex_is_rebuilt_on_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pdir;
    {
        let mgr = open_with(dir.path(), small_segments());
        let log = create(&mgr, small_segments());
        pdir = log.dir();
        fill(&log);
        log.set_high_watermark(17);
        mgr.shutdown().expect("shutdown");
    }
    let before = txn_indexes(&pdir);
    let (first, second) = (segment_of(&pdir, 6), segment_of(&pdir, 16));
    assert_ne!(first, second);
    let path = |base: i64| pdir.join(format!("{base:020}.txnindex"));
    assert_eq!(
        std::fs::read(path(second)).expect("read"),
        txn_index_entry(3, 9, 16, 12)
    );
    // Lost: the abort of producer 3, whose LSO needs producer 1's transaction from offset 12.
    std::fs::remove_file(path(second)).expect("remove");
    // Torn in the middle of an entry.
    let torn = std::fs::read(path(first)).expect("read");
    std::fs::write(path(first), &torn[..20]).expect("write");

    let mgr = open_with(dir.path(), small_segments());
    let log = mgr.get(&tp("t", 0)).expect("log");
    assert_filled_state(&log);
    assert_eq!(txn_indexes(&pdir), before);
    drop(log);
    mgr.shutdown().expect("shutdown");
    drop(mgr);

    // An index naming a marker beyond its segment is not trusted either.
    std::fs::write(path(first), txn_index_entry(1, 0, 9999, 2)).expect("write");
    let mgr = open_with(dir.path(), small_segments());
    let log = mgr.get(&tp("t", 0)).expect("log");
    assert_filled_state(&log);
    assert_eq!(txn_indexes(&pdir), before);
}

/// Fetches from `leader` at the follower's log end until it has caught up.
fn replicate(leader: &PartitionLog, follower: &PartitionLog, max_bytes: u64) {
    for _ in 0..10_000 {
        let leo = follower.log_end_offset();
        if leo >= leader.log_end_offset() {
            return;
        }
        let r = leader.read(leo, max_bytes, i64::MAX, true).expect("read");
        let mut bytes = Vec::new();
        for region in &r.regions {
            region.read_to_vec(&mut bytes).expect("read region");
        }
        follower
            .append_as_follower(&bytes, 0)
            .expect("follower append");
    }
    panic!("follower did not catch up");
}

fn log_in(dir: &Path, config: LogConfig) -> (LogManager, Arc<PartitionLog>) {
    let mgr = open_with(dir, config.clone());
    let log = create(&mgr, config);
    (mgr, log)
}

#[test]
fn a_follower_copy_has_the_same_transactions_and_indexes() {
    let (ld, fd, wd) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (_lm, leader) = log_in(ld.path(), small_segments());
    fill(&leader);
    let (_fm, follower) = log_in(fd.path(), small_segments());
    let (_wm, whole) = log_in(wd.path(), small_segments());
    // Batch by batch, and everything in one fetch.
    replicate(&leader, &follower, 1);
    replicate(&leader, &whole, u64::MAX);
    for copy in [&follower, &whole] {
        assert_eq!(copy.log_end_offset(), leader.log_end_offset());
        assert_eq!(read_bytes(copy, 0), read_bytes(&leader, 0));
        assert_eq!(copy.ongoing_transactions(), leader.ongoing_transactions());
        assert_eq!(copy.producers(), leader.producers());
        assert_eq!(all_aborted(copy), all_aborted(&leader));
        assert_eq!(copy.first_unstable_offset(), leader.first_unstable_offset());
        assert_filled_state(copy);
        copy.flush().expect("flush");
    }
    assert_filled_state(&leader);
    leader.flush().expect("flush");
    let leader_indexes = txn_indexes(&leader.dir());
    assert_eq!(leader_indexes.len(), leader.segment_count());
    assert_eq!(txn_indexes(&follower.dir()), leader_indexes);
    assert_eq!(txn_indexes(&whole.dir()), leader_indexes);

    // The follower can take over as leader and end the open transaction.
    assert_eq!(commit(&follower, 1, 0, 1), 17);
    assert!(matches!(
        follower.append_marker(1, 0, ControlType::Abort, 0, 0, now()),
        Err(LogError::TransactionCoordinatorFenced { .. })
    ));
}

#[test]
fn truncation_removes_markers_and_reopens_their_transactions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open_with(dir.path(), small_segments());
    let log = create(&mgr, small_segments());
    fill(&log);
    let pdir = log.dir();

    // Below producer 3's abort (16): its transaction is open again, its index entry gone.
    log.truncate_to(16).expect("truncate");
    assert_eq!(log.log_end_offset(), 16);
    assert_eq!(log.ongoing_transactions(), vec![(3, 0, 9), (1, 0, 12)]);
    assert_eq!(all_aborted(&log), vec![aborted(1, 0, 6, 2)]);
    log.set_high_watermark(16);
    assert_eq!(log.last_stable_offset(), 9);

    // Below producer 2's commit (11) and producer 1's second transaction.
    log.truncate_to(11).expect("truncate");
    assert_eq!(log.ongoing_transactions(), vec![(2, 0, 2), (3, 0, 9)]);
    assert_eq!(all_aborted(&log), vec![aborted(1, 0, 6, 2)]);

    // Below producer 1's abort (6), across segments.
    log.truncate_to(6).expect("truncate");
    assert_eq!(log.ongoing_transactions(), vec![(1, 0, 0), (2, 0, 2)]);
    assert!(all_aborted(&log).is_empty());
    log.flush().expect("flush");
    for (name, bytes) in txn_indexes(&pdir) {
        assert!(bytes.is_empty(), "{name} still holds entries");
    }
    log.set_high_watermark(6);
    assert_eq!(log.last_stable_offset(), 0);

    // The leader's copy continues: the abort is written again and indexed again.
    assert_eq!(abort(&log, 1, 0, 1), 6);
    assert_eq!(all_aborted(&log), vec![aborted(1, 0, 6, 2)]);

    // Into the first transaction's batch: nothing of it is left.
    log.truncate_to(1).expect("truncate");
    assert_eq!(log.log_end_offset(), 0);
    assert!(log.ongoing_transactions().is_empty());
    assert_eq!(log.first_unstable_offset(), None);

    fill(&log);
    log.truncate_fully_and_start_at(100)
        .expect("truncate fully");
    assert!(log.ongoing_transactions().is_empty());
    assert!(all_aborted(&log).is_empty());
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(segment_files(&pdir, "txnindex").len(), 1);
}

#[test]
fn expiry_keeps_producers_with_an_open_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        producer_id_expiration_ms: 1000,
        ..small_config()
    };
    let mgr = open_with(dir.path(), config.clone());
    let log = create(&mgr, config);
    log.append(&txn_batch(1, 1, 0, 0, 10_000), 0, 10_000)
        .expect("txn");
    log.append(&pid_batch(1, 2, 0, 0, 10_000), 0, 10_000)
        .expect("idempotent");
    assert_eq!(mgr.expire_producers(20_000), 1);
    assert_eq!(log.producer_state(2), None);
    assert_eq!(log.ongoing_transactions(), vec![(1, 0, 0)]);
    // The marker counts as activity; then the producer expires like any other.
    log.append_marker(1, 0, ControlType::Commit, 0, 0, 20_000)
        .expect("commit");
    assert_eq!(mgr.expire_producers(20_999), 0);
    assert_eq!(mgr.expire_producers(21_000), 1);
    assert_eq!(log.producer_count(), 0);
}

#[test]
fn the_log_start_drops_indexes_and_the_aborts_below_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open_with(dir.path(), small_segments());
    let log = create(&mgr, small_segments());
    fill(&log);
    log.set_high_watermark(17);
    let pdir = log.dir();
    let first = segment_of(&pdir, 6);
    assert_eq!(log.delete_records_before(6).expect("delete"), 6);
    assert_eq!(
        all_aborted(&log),
        vec![aborted(1, 0, 6, 2), aborted(3, 9, 16, 12)]
    );
    // Still in a kept segment, but its marker is below the log start.
    log.delete_records_before(7).expect("delete");
    assert_eq!(all_aborted(&log), vec![aborted(3, 9, 16, 12)]);
    assert_eq!(
        log.aborted_transactions(0, 10).expect("search"),
        vec![aborted(3, 9, 16, 12)]
    );
    // Segments that go take their transaction index with them.
    let next = bases(&pdir)
        .into_iter()
        .find(|&b| b > first)
        .expect("next segment");
    log.delete_records_before(next).expect("delete");
    assert!(txn_index_file(&pdir, first).is_none());
    assert!(
        bases(&pdir)
            .iter()
            .all(|&b| txn_index_file(&pdir, b).is_some())
    );
    // An open transaction below the log start is unstable from the log start on.
    assert_eq!(log.ongoing_transactions(), vec![(1, 0, 12)]);
    log.delete_records_before(13).expect("delete");
    assert_eq!(log.first_unstable_offset(), Some(log.log_start_offset()));
    assert_eq!(log.last_stable_offset(), log.log_start_offset());
}

fn compact_config() -> LogConfig {
    LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        segment_bytes: 400,
        ..small_config()
    }
}

fn keyed(key: &str, value: &str, ts: i64) -> Vec<u8> {
    keyed_batch(
        &[Rec {
            key: Some(key.as_bytes()),
            value: Some(value.as_bytes()),
            headers: &[],
        }],
        ts,
    )
}

fn put(log: &PartitionLog, key: &str, value: &str, ts: i64) -> i64 {
    log.append(&keyed(key, value, ts), 0, ts)
        .expect("append")
        .first_offset
}

fn put_txn(log: &PartitionLog, pid: i64, seq: i32, key: &str, value: &str, ts: i64) -> i64 {
    log.append(&transactional(keyed(key, value, ts), pid, 0, seq), 0, ts)
        .expect("append")
        .first_offset
}

/// (offset, key, value) of every record from the log start.
fn summary(log: &PartitionLog) -> Vec<(i64, String, String)> {
    records_in(&read_bytes(log, log.log_start_offset()))
        .into_iter()
        .filter(|r| r.key.as_ref().is_some_and(|k| k.len() != 4 || k[0] != 0))
        .map(|r| {
            (
                r.offset,
                String::from_utf8(r.key.expect("key")).expect("utf8"),
                String::from_utf8(r.value.expect("value")).expect("utf8"),
            )
        })
        .collect()
}

fn has(log: &PartitionLog, offset: i64) -> bool {
    summary(log).iter().any(|r| r.0 == offset)
}

#[test]
fn compaction_stops_at_the_first_unstable_offset_and_drops_aborted_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open_with(dir.path(), compact_config());
    let log = create(&mgr, compact_config());
    let t = now();
    assert_eq!(put(&log, "k1", "a", t), 0);
    assert_eq!(put(&log, "k2", "a", t), 1);
    // Aborted: must neither survive nor make k1 = a go.
    assert_eq!(put_txn(&log, 9, 0, "k1", "aborted", t), 2);
    assert_eq!(abort(&log, 9, 0, 0), 3);
    assert_eq!(put(&log, "k2", "b", t), 4);
    assert_eq!(put(&log, "k3", "a", t), 5);
    assert_eq!(put(&log, "k3", "b", t), 6);
    // Producer 10's transaction stays open from offset 7.
    assert_eq!(put_txn(&log, 10, 0, "k3", "c", t), 7);
    for i in 8..20 {
        put(&log, "k5", &format!("v{i}"), t);
    }
    let pdir = log.dir();
    let unstable_segment = segment_of(&pdir, 7);
    assert!(unstable_segment > 0);
    assert!(
        bases(&pdir)
            .iter()
            .filter(|&&b| b > unstable_segment)
            .count()
            >= 2
    );
    log.set_high_watermark(log.log_end_offset());
    assert_eq!(log.first_unstable_offset(), Some(7));
    log.clean(t).expect("clean");

    assert!(has(&log, 0), "committed k1 = a survives the aborted k1");
    assert!(!has(&log, 1), "k2 = a is superseded");
    assert!(!has(&log, 2), "the aborted record is gone");
    // The marker stays, and so does its index entry.
    assert_eq!(read_bytes(&log, 3)[..8], 3i64.to_be_bytes());
    assert_eq!(all_aborted(&log), vec![aborted(9, 2, 3, 4)]);
    // Nothing from the segment of the first unstable offset on was cleaned, not even the
    // superseded k3 = a and k5 updates.
    for offset in 5..20 {
        assert!(has(&log, offset), "offset {offset} was cleaned");
    }

    assert_eq!(commit(&log, 10, 0, 0), 20);
    log.set_high_watermark(log.log_end_offset());
    assert_eq!(log.first_unstable_offset(), None);
    log.clean(t).expect("clean");
    assert!(
        !has(&log, 5) && !has(&log, 6),
        "k3 = a, b are superseded now"
    );
    assert!(has(&log, 7), "the committed k3 = c stays");
    assert!(has(&log, 0));
    assert_eq!(all_aborted(&log), vec![aborted(9, 2, 3, 4)]);
    assert_eq!(
        txn_indexes(&pdir).len(),
        log.segment_count(),
        "every segment keeps its transaction index"
    );

    // After a restart the cleaned log gives the same transaction state.
    drop(log);
    mgr.shutdown().expect("shutdown");
    drop(mgr);
    let mgr = open_with(dir.path(), compact_config());
    let log = mgr.get(&tp("t", 0)).expect("log");
    assert!(log.ongoing_transactions().is_empty());
    assert_eq!(all_aborted(&log), vec![aborted(9, 2, 3, 4)]);
}

#[test]
fn coordinator_appends_track_transactions_without_sequences() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_mgr, log) = log_in(dir.path(), small_config());
    let t = now();
    // Two TxnOffsetCommit-like batches of one producer, both without sequence numbers and of
    // the same size: neither is taken for a retry of the other.
    let first = log
        .append_from_coordinator(&txn_batch(1, 9, 0, -1, t), 0, t)
        .expect("first commit");
    let second = log
        .append_from_coordinator(&txn_batch(1, 9, 0, -1, t), 0, t)
        .expect("second commit");
    assert!(!second.duplicate);
    assert_eq!(second.first_offset, first.last_offset + 1);
    assert_eq!(log.ongoing_transactions(), vec![(9, 0, first.first_offset)]);
    // A client's batch without sequences is still refused.
    assert!(log.append(&txn_batch(1, 10, 0, -1, t), 0, t).is_err());
    let end = commit(&log, 9, 1, 0);
    assert!(log.ongoing_transactions().is_empty());
    // The marker bumped the epoch: the fenced producer's next commit is refused.
    assert!(matches!(
        log.append_from_coordinator(&txn_batch(1, 9, 0, -1, t), 0, t),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    assert!(end > second.last_offset);
}

/// Compaction with markers that may go: any dirty segment triggers a pass, one minute of
/// delete.retention.ms.
fn marker_config() -> LogConfig {
    LogConfig {
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: 60_000,
        ..compact_config()
    }
}

/// Plain records with fresh keys until the active segment rolls, so the next pass has dirty data.
fn dirty_segment(log: &PartitionLog, t: i64) {
    let segments = log.segment_count();
    while log.segment_count() == segments {
        put(log, &format!("z{}", log.log_end_offset()), "z", t);
    }
    log.set_high_watermark(log.log_end_offset());
}

/// (attributes, base timestamp, record timestamp) of the control batch at `offset`, if present.
fn marker_at(log: &PartitionLog, offset: i64) -> Option<(i16, i64, i64)> {
    let bytes = read_bytes(log, log.log_start_offset());
    let mut pos = 0;
    for (base, _, _, size) in batches_in(&bytes) {
        let b = &bytes[pos..pos + size];
        pos += size;
        let attributes = i16::from_be_bytes([b[21], b[22]]);
        if base == offset && attributes & 0x20 != 0 {
            let record_ts = records_in(b)[0].timestamp;
            return Some((attributes, be_i64(b, 27), record_ts));
        }
    }
    None
}

/// Kafka's delete-horizon attribute bit (KIP-534).
const DELETE_HORIZON: i16 = 0x40;

/// What a `read_committed` consumer gets from the log start up to the last stable offset, filtering
/// with the aborted transactions as Kafka's fetcher does: a producer's transactional records are
/// skipped from an aborted transaction's first offset until that producer's ABORT marker.
fn read_committed(log: &PartitionLog) -> Vec<(i64, String, String)> {
    let start = log.log_start_offset();
    let lso = log.last_stable_offset();
    let mut aborted = log.aborted_transactions(start, lso).expect("aborted");
    aborted.sort_by_key(|a| a.first_offset);
    let mut aborted = aborted.into_iter().peekable();
    let mut skipping = std::collections::HashSet::new();
    let mut bytes = bytes::Bytes::from(read_bytes(log, start));
    let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes).expect("decode");
    let mut out = Vec::new();
    for r in sets.iter().flat_map(|s| s.records.iter()) {
        if r.offset >= lso {
            break;
        }
        while let Some(a) = aborted.next_if(|a| a.first_offset <= r.offset) {
            skipping.insert(a.producer_id);
        }
        let key = r.key.as_ref().expect("key");
        if r.control {
            if key[..] == [0, 0, 0, 0] {
                skipping.remove(&r.producer_id);
            }
            continue;
        }
        if r.transactional && skipping.contains(&r.producer_id) {
            continue;
        }
        let value = r.value.as_ref().expect("value");
        out.push((
            r.offset,
            String::from_utf8(key.to_vec()).expect("utf8"),
            String::from_utf8(value.to_vec()).expect("utf8"),
        ));
    }
    out
}

#[test]
fn compaction_removes_markers_of_emptied_transactions_after_delete_retention_ms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = marker_config();
    let mgr = open_with(dir.path(), config.clone());
    let log = create(&mgr, config.clone());
    let pdir = log.dir();
    let t = now();
    // Producer 1 commits a = A1, b = A2, both overwritten below: its marker may go.
    assert_eq!(put_txn(&log, 1, 0, "a", "A1", t), 0);
    assert_eq!(put_txn(&log, 1, 1, "b", "A2", t), 1);
    assert_eq!(commit(&log, 1, 0, 0), 2);
    // Producer 2 aborts a = aborted: its records go, then its marker and index entry.
    assert_eq!(put_txn(&log, 2, 0, "a", "aborted", t), 3);
    assert_eq!(abort(&log, 2, 0, 0), 4);
    // Producer 3 commits d = D, never overwritten: its marker stays.
    assert_eq!(put_txn(&log, 3, 0, "d", "D", t), 5);
    assert_eq!(commit(&log, 3, 0, 0), 6);
    // Producer 4 commits g = G with a KIP-890 epoch bump, g is overwritten, and the marker is its
    // last record: it stays until the producer expires.
    assert_eq!(put_txn(&log, 4, 0, "g", "G", t), 7);
    let bumped = log
        .append_marker(4, 1, ControlType::Commit, 0, 0, now())
        .expect("commit");
    assert_eq!(bumped.first_offset, 8);
    assert_eq!(put(&log, "a", "new", t), 9);
    assert_eq!(put(&log, "b", "new", t), 10);
    assert_eq!(put(&log, "g", "new", t), 11);
    // Later transactions of producers 1..3, so the markers above are not their last records.
    assert_eq!(put_txn(&log, 1, 2, "c", "C", t), 12);
    assert_eq!(commit(&log, 1, 0, 0), 13);
    assert_eq!(put_txn(&log, 2, 1, "e", "E", t), 14);
    assert_eq!(commit(&log, 2, 0, 0), 15);
    assert_eq!(put_txn(&log, 3, 1, "f", "F", t), 16);
    assert_eq!(commit(&log, 3, 0, 0), 17);
    // Producer snapshots (taken at rolls) land far above the markers.
    for _ in 0..4 {
        dirty_segment(&log, t);
    }
    let markers = [2, 4, 6, 8, 13, 15, 17];
    let committed = |log: &PartitionLog| {
        read_committed(log)
            .into_iter()
            .filter(|r| !r.1.starts_with('z'))
            .collect::<Vec<_>>()
    };
    let latest = vec![
        (5, "d".to_owned(), "D".to_owned()),
        (9, "a".to_owned(), "new".to_owned()),
        (10, "b".to_owned(), "new".to_owned()),
        (11, "g".to_owned(), "new".to_owned()),
        (12, "c".to_owned(), "C".to_owned()),
        (14, "e".to_owned(), "E".to_owned()),
        (16, "f".to_owned(), "F".to_owned()),
    ];
    let aborted_p2 = vec![aborted(2, 3, 4, 5)];
    assert_eq!(all_aborted(&log), aborted_p2);

    // Pass 1 removes the overwritten and aborted records; it read them, so no marker is judged.
    let stats = log.clean(t).expect("clean");
    assert_eq!(stats.records_removed, 4);
    assert_eq!((stats.markers_stamped, stats.markers_removed), (0, 0));
    for offset in [0, 1, 3, 7] {
        assert!(!has(&log, offset), "offset {offset} survived");
    }
    for offset in markers {
        let (attributes, _, _) = marker_at(&log, offset).expect("marker");
        assert_eq!(attributes & DELETE_HORIZON, 0, "marker {offset} stamped");
    }
    assert_eq!(committed(&log), latest);
    let before = [2, 4, 8].map(|o| marker_at(&log, o).expect("marker").2);

    // Pass 2 finds the transactions of markers 2, 4 and 8 without data: it only stamps them with
    // the delete horizon, keeping their record timestamps.
    dirty_segment(&log, t);
    let stats = log.clean(t).expect("clean");
    assert_eq!((stats.markers_stamped, stats.markers_removed), (3, 0));
    for (offset, record_ts) in [2, 4, 8].into_iter().zip(before) {
        let (attributes, base_ts, ts) = marker_at(&log, offset).expect("marker");
        assert_ne!(
            attributes & DELETE_HORIZON,
            0,
            "marker {offset} not stamped"
        );
        assert_eq!(base_ts, t + 60_000, "delete horizon of marker {offset}");
        assert_eq!(ts, record_ts, "record timestamp of marker {offset}");
    }
    for offset in [6, 13, 15, 17] {
        let (attributes, _, _) = marker_at(&log, offset).expect("marker");
        assert_eq!(attributes & DELETE_HORIZON, 0, "marker {offset} has data");
    }
    // Kafka's decoder reads the flag (and checks the rewritten CRC).
    let mut bytes = bytes::Bytes::from(read_bytes(&log, 2));
    let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes).expect("decode");
    let first = &sets[0].records[0];
    assert_eq!((first.offset, first.control), (2, true));
    assert!(first.delete_horizon);
    assert_eq!(first.timestamp, before[0]);
    // The ABORT marker is still there, and so is its index entry.
    assert_eq!(all_aborted(&log), aborted_p2);
    assert_eq!(committed(&log), latest);

    // Before the horizon nothing goes, and nothing is stamped again.
    dirty_segment(&log, t);
    let stats = log.clean(t + 59_999).expect("clean");
    assert_eq!((stats.markers_stamped, stats.markers_removed), (0, 0));
    assert!(marker_at(&log, 2).is_some() && marker_at(&log, 4).is_some());
    assert_eq!(marker_at(&log, 2).expect("marker").1, t + 60_000);

    // A producer snapshot at or below a marker (a replay from it may hold the transaction as
    // ongoing) keeps it past the horizon.
    // (Copied after the roll, which keeps only the newest two.)
    dirty_segment(&log, t);
    let snapshots = segment_files(&pdir, "snapshot");
    let old = pdir.join(format!("{:020}.snapshot", 0));
    std::fs::copy(snapshots.last().expect("snapshot"), &old).expect("copy");
    let stats = log.clean(t + 60_000).expect("clean");
    assert_eq!(stats.markers_removed, 0);
    std::fs::remove_file(&old).expect("remove");

    // At the horizon the markers of producers 1 and 2 go, with producer 2's index entry.
    dirty_segment(&log, t);
    let stats = log.clean(t + 60_000).expect("clean");
    assert_eq!((stats.markers_stamped, stats.markers_removed), (0, 2));
    assert!(marker_at(&log, 2).is_none() && marker_at(&log, 4).is_none());
    assert!(all_aborted(&log).is_empty());
    assert!(
        txn_indexes(&pdir).iter().all(|(_, bytes)| bytes.is_empty()),
        "an index entry outlived its marker"
    );
    // Producer 4's marker is its last record; producer 3's still has d = D.
    let (attributes, _, _) = marker_at(&log, 8).expect("last record of producer 4");
    assert_ne!(attributes & DELETE_HORIZON, 0);
    let (attributes, _, _) = marker_at(&log, 6).expect("marker of the latest d");
    assert_eq!(attributes & DELETE_HORIZON, 0);
    assert!(has(&log, 5));
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(log.last_stable_offset(), log.high_watermark());
    assert_eq!(committed(&log), latest);

    // Once producer 4 has expired, its marker goes too; markers whose data remains never do.
    assert_eq!(log.expire_producers(t + 2 * 86_400_000), 4);
    dirty_segment(&log, t);
    let stats = log.clean(t + 10 * 60_000).expect("clean");
    assert_eq!(stats.markers_removed, 1);
    assert!(marker_at(&log, 8).is_none());
    for offset in [6, 13, 15, 17] {
        let (attributes, _, _) = marker_at(&log, offset).expect("marker with data");
        assert_eq!(attributes & DELETE_HORIZON, 0);
    }
    assert_eq!(committed(&log), latest);
    assert!(segment_files(&pdir, "cleaned").is_empty());
    assert!(segment_files(&pdir, "swap").is_empty());

    // A restart rebuilds the same transaction state from what is left.
    drop(log);
    mgr.shutdown().expect("shutdown");
    drop(mgr);
    let mgr = open_with(dir.path(), config);
    let log = mgr.get(&tp("t", 0)).expect("log");
    assert!(log.ongoing_transactions().is_empty());
    assert!(all_aborted(&log).is_empty());
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(log.last_stable_offset(), log.high_watermark());
    for offset in [2, 4, 8] {
        assert!(marker_at(&log, offset).is_none());
    }
    assert_eq!(committed(&log), latest);
}
