//! The log's side of tiered storage: closed segments offered for copying stop below the high
//! watermark, local retention deletes only what the remote tier holds, reads below the local
//! log start say the offset is remote, and DeleteRecords below the local data moves only the
//! remote start.

mod common;

use common::*;
use strait_storage::{LogConfig, LogError};

fn tiered_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        remote_storage_enable: true,
        // Keep nothing locally beyond what is needed: everything copied may go.
        local_retention_bytes: Some(0),
        ..small_config()
    }
}

#[test]
fn local_retention_deletes_only_copied_segments_and_reads_below_go_remote() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mgr = open_with(dir.path(), tiered_config());
    let log = create(&mgr, tiered_config());
    // Leader epochs: 0 for the first batch, 1 up to offset 200, then 2.
    for i in 0..40 {
        let epoch = match i {
            0 => 0,
            1..20 => 1,
            _ => 2,
        };
        log.append(&batch(10, now_ms(), 100), epoch, now_ms())
            .expect("append");
    }
    let end = log.log_end_offset();
    assert_eq!(end, 400);
    // Nothing is offered above the high watermark.
    log.set_high_watermark(0);
    assert!(log.closed_segments(-1, log.high_watermark()).is_empty());
    log.set_high_watermark(end);
    let closed = log.closed_segments(-1, end);
    assert!(closed.len() >= 3, "{} closed segments", closed.len());
    assert_eq!(closed[0].base_offset, 0);
    for pair in closed.windows(2) {
        assert_eq!(pair[0].next_offset, pair[1].base_offset);
    }
    assert!(closed[0].next_offset > 10, "{:?}", closed[0]);
    assert!(
        closed[0]
            .leader_epoch_checkpoint()
            .starts_with("0\n2\n0 0\n1 10\n"),
        "{}",
        closed[0].leader_epoch_checkpoint()
    );
    // A segment straddling the highest copied offset is offered again (another replica rolled
    // at other offsets): skipping it would leave a hole in the remote tier.
    let straddling = log.closed_segments(closed[0].base_offset + 3, end);
    assert_eq!(straddling[0].base_offset, closed[0].base_offset);
    assert_eq!(straddling.len(), closed.len());

    // Nothing copied yet: retention keeps everything despite local.retention.bytes=0.
    assert_eq!(mgr.enforce_retention(now_ms()).expect("retention"), 0);
    assert_eq!(log.local_log_start_offset(), 0);

    // The first two segments are remote: only they may go.
    let copied_end = closed[1].next_offset - 1;
    let remote_epochs: Vec<(i32, i64)> = closed[..2]
        .iter()
        .flat_map(|c| c.epochs.iter().copied())
        .collect();
    log.set_remote_bounds(Some(0), copied_end, &remote_epochs)
        .expect("remote bounds");
    assert_eq!(mgr.enforce_retention(now_ms()).expect("retention"), 2);
    assert_eq!(log.local_log_start_offset(), closed[2].base_offset);
    assert!(closed[2].base_offset > 10, "epoch 0 is wholly remote");
    // OffsetForLeaderEpoch answers for the whole log, the remote tier included.
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 10)));
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 200)));
    assert_eq!(log.epoch_entries(), [(0, 0), (1, 10), (2, 200)]);

    // A replica that starts its log at the remote tier's tail (KIP-405 follower bootstrap)
    // takes the remote epochs from the metadata, and answers the same.
    let other_dir = tempfile::tempdir().expect("temp dir");
    let other = create(
        &open_with(other_dir.path(), tiered_config()),
        tiered_config(),
    );
    other
        .truncate_fully_and_start_at(copied_end + 1)
        .expect("start at the remote tail");
    other
        .set_remote_bounds(Some(0), copied_end, &remote_epochs)
        .expect("remote bounds");
    assert_eq!(other.end_offset_for_epoch(0), Some((0, 10)));
    assert_eq!(other.epoch_entries()[..2], [(0, 0), (1, 10)]);
    assert_eq!(
        log.log_start_offset(),
        0,
        "the log still starts in the remote tier"
    );
    match log.read(5, 1 << 20, end, true) {
        Err(LogError::OffsetMovedToTieredStorage {
            offset: 5,
            local_log_start,
        }) => {
            assert_eq!(local_log_start, closed[2].base_offset)
        }
        Err(other) => panic!("read below the local start: {other}"),
        Ok(_) => panic!("read below the local start served locally"),
    }
    assert!(log.read(closed[2].base_offset, 1 << 20, end, true).is_ok());
    assert_eq!(log.uncopied_bytes(), log.size_bytes());

    // DeleteRecords below the local data moves the remote start only.
    assert_eq!(log.delete_records_before(7).expect("delete records"), 7);
    assert_eq!(log.log_start_offset(), 7);
    assert!(matches!(
        log.read(3, 1 << 20, end, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // The metadata image agrees later: an older start is not taken back.
    log.set_remote_bounds(Some(7), copied_end, &remote_epochs)
        .expect("remote bounds");
    assert_eq!(log.log_start_offset(), 7);
    assert_eq!(log.epoch_entries()[0], (0, 7));
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// KIP-405 follower bootstrap: a replica that starts its log at the remote tier's tail takes the
/// producer snapshot uploaded with the segment below, so idempotent producers keep their
/// sequences there.
#[test]
fn a_replica_started_at_the_remote_tail_takes_the_remote_producer_state() {
    let config = LogConfig {
        segment_bytes: 1024,
        ..tiered_config()
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let leader = create(&open_with(dir.path(), config.clone()), config.clone());
    for i in 0..12 {
        leader
            .append(&pid_batch(5, 42, 3, i * 5, now_ms()), 0, now_ms())
            .expect("append");
    }
    let end = leader.log_end_offset();
    leader.set_high_watermark(end);
    let closed = leader.closed_segments(-1, end);
    let segment = closed.first().expect("a closed segment");
    let snapshot_path = segment
        .producer_snapshot
        .clone()
        .expect("a producer snapshot taken at the roll");
    let snapshot = std::fs::read(&snapshot_path).expect("read the snapshot");
    let start = segment.next_offset;

    let other_dir = tempfile::tempdir().expect("temp dir");
    let replica = create(&open_with(other_dir.path(), config.clone()), config);
    replica
        .start_at_remote_tail(start)
        .expect("start at the tail");
    assert_eq!(replica.remote_producer_state_pending(), Some(start));
    assert_eq!(replica.producer_state(42), None);
    // A snapshot for another offset is not taken.
    assert!(
        !replica
            .install_remote_producer_snapshot(start + 1, &snapshot)
            .expect("install elsewhere")
    );
    // A corrupt one is refused and the log keeps waiting.
    assert!(
        replica
            .install_remote_producer_snapshot(start, b"junk")
            .is_err()
    );
    assert_eq!(replica.remote_producer_state_pending(), Some(start));
    assert!(
        replica
            .install_remote_producer_snapshot(start, &snapshot)
            .expect("install")
    );
    assert_eq!(replica.remote_producer_state_pending(), None);
    let (epoch, last_seq, _) = replica.producer_state(42).expect("producer 42 known");
    assert_eq!(
        (epoch, last_seq),
        (3, i32::try_from(start).expect("small") - 1)
    );
    // Done once: a second install is ignored.
    assert!(
        !replica
            .install_remote_producer_snapshot(start, &snapshot)
            .expect("again")
    );
}
