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
    for _ in 0..40 {
        log.append(&batch(10, now_ms(), 100), 0, now_ms())
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
    assert!(
        closed[0]
            .leader_epoch_checkpoint()
            .starts_with("0\n1\n0 0\n")
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
    log.set_remote_bounds(Some(0), copied_end);
    assert_eq!(mgr.enforce_retention(now_ms()).expect("retention"), 2);
    assert_eq!(log.local_log_start_offset(), closed[2].base_offset);
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
    log.set_remote_bounds(Some(7), copied_end);
    assert_eq!(log.log_start_offset(), 7);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}
