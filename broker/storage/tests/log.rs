//! Partition log behaviour: append/read, rolling, indexes, timestamp search, retention, delete
//! records, truncation, epochs, validation and concurrency.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use strait_storage::{LogConfig, LogError, TimestampType};

#[test]
fn append_read_round_trip_is_byte_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(&mgr, small_config());
    let b1 = batch(3, 1000, 20);
    let b2 = batch(2, 2000, 30);
    let mut request = b1.clone();
    request.extend_from_slice(&b2);
    let info = log.append(&request, 7, 5000).expect("append");
    assert_eq!((info.first_offset, info.last_offset), (0, 4));
    assert_eq!(info.record_count, 5);
    assert_eq!(info.bytes, request.len() as u64);
    assert_eq!(info.log_append_time, -1);
    assert_eq!(info.max_timestamp, 2001);
    let b3 = batch(4, 3000, 5);
    let info = log.append(&b3, 7, 5001).expect("append");
    assert_eq!((info.first_offset, info.last_offset), (5, 8));
    assert_eq!(log.log_end_offset(), 9);

    let got = read_bytes(&log, 0);
    let mut want = request.clone();
    want.extend_from_slice(&b3);
    assert_eq!(got.len(), want.len());
    let found = batches_in(&got);
    assert_eq!(
        found.iter().map(|b| (b.0, b.1, b.2)).collect::<Vec<_>>(),
        vec![(0, 2, 7), (3, 4, 7), (5, 8, 7)]
    );
    // Only base offset and leader epoch differ from what was produced.
    let mut pos = 0;
    for (i, (_, _, _, size)) in found.iter().enumerate() {
        let (g, w) = (&got[pos..pos + size], &want[pos..pos + size]);
        assert_eq!(&g[8..12], &w[8..12], "batch {i}");
        assert_eq!(&g[16..], &w[16..], "batch {i}");
        pos += size;
    }
}

#[test]
fn read_starting_inside_a_batch_returns_that_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(&mgr, small_config());
    log.append(&batch(5, 0, 10), 0, 0).expect("append");
    log.append(&batch(5, 0, 10), 0, 0).expect("append");
    let bases: Vec<i64> = batches_in(&read_bytes(&log, 7))
        .iter()
        .map(|b| b.0)
        .collect();
    assert_eq!(bases, vec![5]);
    let bases: Vec<i64> = batches_in(&read_bytes(&log, 3))
        .iter()
        .map(|b| b.0)
        .collect();
    assert_eq!(bases, vec![0, 5]);
    let r = log
        .read(10, 1 << 20, i64::MAX, true)
        .expect("read at log end");
    assert!(r.regions.is_empty());
    assert_eq!(r.log_end_offset, 10);
    assert!(matches!(
        log.read(11, 1 << 20, i64::MAX, true),
        Err(LogError::OffsetOutOfRange {
            offset: 11,
            log_start: 0,
            log_end: 10
        })
    ));
}

#[test]
fn max_bytes_min_one_and_upper_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(&mgr, small_config());
    for _ in 0..4 {
        log.append(&batch(2, 0, 500), 0, 0).expect("append");
    }
    let size = batches_in(&read_bytes(&log, 0))[0].3 as u64;
    let r = log.read(0, size * 2 + 10, i64::MAX, false).expect("read");
    assert_eq!(r.bytes, size * 2);
    let r = log.read(0, 10, i64::MAX, true).expect("read");
    assert_eq!(r.bytes, size, "min_one returns the first batch whole");
    let r = log.read(0, 10, i64::MAX, false).expect("read");
    assert_eq!(r.bytes, 0);
    assert!(r.regions.is_empty());
    // Upper bound: only batches whose last offset is below it.
    let r = log.read(0, u64::MAX, 5, true).expect("read");
    assert_eq!(r.bytes, size * 2);
    let r = log.read(0, u64::MAX, 1, true).expect("read");
    assert_eq!(r.bytes, 0, "a batch crossing the bound is not returned");
    log.set_high_watermark(4);
    let r = log
        .read(2, u64::MAX, log.high_watermark(), true)
        .expect("read");
    assert_eq!(r.bytes, size);
    assert_eq!(r.high_watermark, 4);
    // Contiguous batches coalesce into one region.
    let r = log.read(0, u64::MAX, i64::MAX, true).expect("read");
    assert_eq!(r.regions.len(), 1);
    assert_eq!(r.regions[0].len as u64, size * 4);
}

#[test]
fn rolls_by_size_and_reads_across_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let one = batch(1, 0, 400).len() as u64;
    let log = create(
        &mgr,
        LogConfig {
            segment_bytes: one * 3,
            ..small_config()
        },
    );
    for _ in 0..10 {
        log.append(&batch(1, 0, 400), 0, 0).expect("append");
    }
    assert_eq!(log.segment_count(), 4);
    let logs = segment_files(&log.dir(), "log");
    let names: Vec<String> = logs
        .iter()
        .map(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        names,
        vec![
            "00000000000000000000.log",
            "00000000000000000003.log",
            "00000000000000000006.log",
            "00000000000000000009.log"
        ]
    );
    assert_eq!(std::fs::metadata(&logs[0]).expect("meta").len(), one * 3);
    let bases: Vec<i64> = batches_in(&read_bytes(&log, 2))
        .iter()
        .map(|b| b.0)
        .collect();
    assert_eq!(bases, (2..10).collect::<Vec<_>>());
    assert_eq!(log.size_bytes(), one * 10);
}

#[test]
fn rolls_by_time_on_append_and_when_idle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(
        &mgr,
        LogConfig {
            segment_ms: Some(1000),
            ..small_config()
        },
    );
    log.append(&batch(1, 10_000, 10), 0, 10_000)
        .expect("append");
    log.append(&batch(1, 10_500, 10), 0, 10_900)
        .expect("append");
    assert_eq!(log.segment_count(), 1);
    log.append(&batch(1, 11_500, 10), 0, 11_001)
        .expect("append");
    assert_eq!(
        log.segment_count(),
        2,
        "first batch of the segment is older than segment.ms"
    );
    mgr.roll_due(11_600).expect("roll due");
    assert_eq!(log.segment_count(), 2, "not old enough yet");
    mgr.roll_due(12_501).expect("roll due");
    assert_eq!(log.segment_count(), 3);
    mgr.roll_due(99_999).expect("roll due");
    assert_eq!(
        log.segment_count(),
        3,
        "an empty active segment never rolls"
    );
}

#[test]
fn rolls_when_the_offset_index_is_full() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(
        &mgr,
        LogConfig {
            segment_index_bytes: 24,
            index_interval_bytes: 1,
            ..small_config()
        },
    );
    // Entries are added from the second batch on: three entries fill a 24-byte offset index.
    // Equal timestamps keep the time index (capacity 2) at one entry.
    for _ in 0..4 {
        log.append(&batch(1, 0, 10), 0, 0).expect("append");
    }
    assert_eq!(log.segment_count(), 1);
    log.append(&batch(1, 0, 10), 0, 0).expect("append");
    assert_eq!(log.segment_count(), 2);
    let index = std::fs::read(&segment_files(&log.dir(), "index")[0]).expect("index");
    assert_eq!(index.len(), 24);
}

#[test]
fn index_files_hold_kafka_entries_after_flush() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(
        &mgr,
        LogConfig {
            index_interval_bytes: 100,
            ..small_config()
        },
    );
    let mut positions = Vec::new();
    let mut pos = 0;
    for i in 0..6 {
        let b = batch(2, 1000 + 10 * i, 80);
        positions.push(pos);
        pos += b.len() as u32;
        log.append(&b, 0, 0).expect("append");
    }
    log.flush().expect("flush");
    assert_eq!(log.recovery_point(), 12);
    let index = std::fs::read(&segment_files(&log.dir(), "index")[0]).expect("index");
    // Every batch after the first passes the 100-byte interval: entry = (last offset, position).
    assert_eq!(index.len(), 5 * 8);
    for (k, entry) in index.chunks(8).enumerate() {
        let i = k + 1;
        assert_eq!(be_i32(entry, 0), (2 * i + 1) as i32);
        assert_eq!(be_i32(entry, 4) as u32, positions[i]);
    }
    let time_index = std::fs::read(&segment_files(&log.dir(), "timeindex")[0]).expect("timeindex");
    assert_eq!(time_index.len(), 5 * 12);
    for (k, entry) in time_index.chunks(12).enumerate() {
        let i = (k + 1) as i64;
        assert_eq!(be_i64(entry, 0), 1000 + 10 * i + 1);
        assert_eq!(be_i32(entry, 8) as i64, 2 * i + 1);
    }
}

#[test]
fn offset_for_timestamp_finds_the_exact_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(
        &mgr,
        LogConfig {
            index_interval_bytes: 1,
            segment_bytes: 600,
            ..small_config()
        },
    );
    // Offsets 0..2 at ts 100,101,102; 3..7 at ts 200 + {0,5,3,9,1}.
    log.append(&batch(3, 100, 10), 1, 0).expect("append");
    log.append(&batch_with_deltas(&[0, 5, 3, 9, 1], 200), 2, 0)
        .expect("append");
    for i in 0..10 {
        log.append(&batch(2, 1000 + 100 * i, 50), 3, 0)
            .expect("append");
    }
    assert!(log.segment_count() > 2);
    let at = |ts| {
        log.offset_for_timestamp(ts)
            .expect("lookup")
            .map(|l| (l.offset, l.timestamp, l.leader_epoch))
    };
    assert_eq!(at(0), Some((0, 100, Some(1))));
    assert_eq!(at(101), Some((1, 101, Some(1))));
    assert_eq!(at(204), Some((4, 205, Some(2))));
    assert_eq!(at(206), Some((6, 209, Some(2))));
    assert_eq!(at(1301), Some((15, 1301, Some(3))));
    assert_eq!(at(1350), Some((16, 1400, Some(3))));
    assert_eq!(at(1901), Some((27, 1901, Some(3))));
    assert_eq!(at(1902), None);
    let max = log.max_timestamp_offset().expect("max").expect("some");
    assert_eq!((max.offset, max.timestamp), (27, 1901));
}

#[test]
fn offset_for_timestamp_inside_a_compressed_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(&mgr, small_config());
    log.append(&batch(2, 50, 10), 0, 0).expect("append");
    log.append(&gzip_batch(&[0, 7, 2, 9, 4], 100), 0, 0)
        .expect("append");
    let at = |ts| {
        log.offset_for_timestamp(ts)
            .expect("lookup")
            .map(|l| (l.offset, l.timestamp))
    };
    assert_eq!(at(103), Some((3, 107)));
    assert_eq!(at(108), Some((5, 109)));
    assert_eq!(at(110), None);
    let max = log.max_timestamp_offset().expect("max").expect("some");
    assert_eq!((max.offset, max.timestamp), (5, 109));
}

#[test]
fn empty_log_has_no_timestamps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(&mgr, small_config());
    assert_eq!(log.offset_for_timestamp(0).expect("lookup"), None);
    assert_eq!(log.max_timestamp_offset().expect("max"), None);
}

#[test]
fn log_append_time_patches_timestamps_and_crc() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(
        &mgr,
        LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..small_config()
        },
    );
    let info = log.append(&batch(3, 5, 10), 0, 777_000).expect("append");
    assert_eq!(info.log_append_time, 777_000);
    assert_eq!(info.max_timestamp, 777_000);
    let got = read_bytes(&log, 0);
    assert_eq!(be_i64(&got, 27), 777_000);
    assert_eq!(be_i64(&got, 35), 777_000);
    assert_eq!(i16::from_be_bytes([got[21], got[22]]) & 0x8, 0x8);
    assert_eq!(
        u32::from_be_bytes([got[17], got[18], got[19], got[20]]),
        crc32c::crc32c(&got[21..])
    );
    let found = log
        .offset_for_timestamp(700_000)
        .expect("lookup")
        .expect("found");
    assert_eq!((found.offset, found.timestamp), (0, 777_000));
}

#[test]
fn invalid_input_is_rejected_with_nothing_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(
        &mgr,
        LogConfig {
            max_message_bytes: 2000,
            ..small_config()
        },
    );
    log.append(&batch(1, 0, 10), 0, 0).expect("append");
    let size_before = log.size_bytes();
    let good = batch(2, 0, 10);

    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    let mut bad_magic = good.clone();
    bad_magic[16] = 1;
    let oversize = batch(1, 0, 3000);
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 3);
    let mut zero_records = good.clone();
    zero_records[57..61].copy_from_slice(&0i32.to_be_bytes());
    let crc = crc32c::crc32c(&zero_records[21..]);
    zero_records[17..21].copy_from_slice(&crc.to_be_bytes());

    type Check = fn(&LogError) -> bool;
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        ("crc", bad_crc, |e| matches!(e, LogError::CorruptMessage(_))),
        ("magic", bad_magic, |e| {
            matches!(e, LogError::UnsupportedMagic(1))
        }),
        ("oversize", oversize, |e| {
            matches!(e, LogError::RecordTooLarge { max: 2000, .. })
        }),
        ("truncated", truncated, |e| {
            matches!(e, LogError::CorruptMessage(_))
        }),
        ("zero records", zero_records, |e| {
            matches!(e, LogError::InvalidRecord(_))
        }),
        ("empty", Vec::new(), |e| {
            matches!(e, LogError::InvalidRecord(_))
        }),
    ];
    for (name, bad, expect) in cases {
        // The bad batch comes after a good one: the whole request must be refused.
        let mut request = if bad.is_empty() {
            Vec::new()
        } else {
            good.clone()
        };
        request.extend_from_slice(&bad);
        let err = log
            .append(&request, 0, 0)
            .err()
            .unwrap_or_else(|| panic!("{name} accepted"));
        assert!(expect(&err), "{name}: unexpected {err:?}");
        assert_eq!(log.log_end_offset(), 1, "{name}");
        assert_eq!(log.size_bytes(), size_before, "{name}");
        let file = &segment_files(&log.dir(), "log")[0];
        assert_eq!(
            std::fs::metadata(file).expect("meta").len(),
            size_before,
            "{name}"
        );
    }
}

#[test]
fn delete_records_advances_log_start_and_drops_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let one = batch(2, 0, 100).len() as u64;
    let log = create(
        &mgr,
        LogConfig {
            segment_bytes: one * 2,
            ..small_config()
        },
    );
    for _ in 0..5 {
        log.append(&batch(2, 0, 100), 0, 0).expect("append");
    }
    assert_eq!(log.segment_count(), 3); // [0..4) [4..8) [8..10)
    assert!(matches!(
        log.delete_records_before(5),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    log.set_high_watermark(10);
    assert_eq!(log.delete_records_before(3).expect("delete"), 3);
    assert_eq!(
        log.segment_count(),
        3,
        "segment [0..4) still holds offset 3"
    );
    assert_eq!(log.delete_records_before(5).expect("delete"), 5);
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.log_start_offset(), 5);
    assert_eq!(log.delete_records_before(2).expect("no-op"), 5);
    assert!(matches!(
        log.read(4, 1000, 10, true),
        Err(LogError::OffsetOutOfRange { log_start: 5, .. })
    ));
    let bases: Vec<i64> = batches_in(&read_bytes(&log, 5))
        .iter()
        .map(|b| b.0)
        .collect();
    assert_eq!(bases, vec![4, 6, 8]);
    assert_eq!(segment_files(&log.dir(), "log").len(), 2);
}

#[test]
fn truncate_to_drops_the_tail_and_epochs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let one = batch(2, 0, 100).len() as u64;
    let log = create(
        &mgr,
        LogConfig {
            segment_bytes: one * 2,
            index_interval_bytes: 1,
            ..small_config()
        },
    );
    for epoch in [0, 0, 1, 1, 2, 2] {
        log.append(&batch(2, 0, 100), epoch, 0).expect("append");
    }
    assert_eq!(log.log_end_offset(), 12);
    log.set_high_watermark(12);
    assert_eq!(log.epoch_entries(), vec![(0, 0), (1, 4), (2, 8)]);
    log.truncate_to(7).expect("truncate");
    // Whole batches: the batch [6, 7] goes too.
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.high_watermark(), 6);
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.epoch_entries(), vec![(0, 0), (1, 4)]);
    let bases: Vec<i64> = batches_in(&read_bytes(&log, 0))
        .iter()
        .map(|b| b.0)
        .collect();
    assert_eq!(bases, vec![0, 2, 4]);
    let info = log
        .append(&batch(1, 0, 10), 3, 0)
        .expect("append after truncation");
    assert_eq!(info.first_offset, 6);
    assert_eq!(log.latest_epoch(), Some(3));
    log.truncate_to(100).expect("beyond the end is a no-op");
    assert_eq!(log.log_end_offset(), 7);
}

#[test]
fn epoch_cache_is_persisted_and_answers_end_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(&mgr, small_config());
    log.append(&batch(3, 0, 10), 0, 0).expect("append");
    log.append(&batch(3, 0, 10), 0, 0).expect("append");
    log.append(&batch(2, 0, 10), 4, 0).expect("append");
    let text = std::fs::read_to_string(log.dir().join("leader-epoch-checkpoint")).expect("file");
    assert_eq!(text, "0\n2\n0 0\n4 6\n");
    assert_eq!(log.latest_epoch(), Some(4));
    assert_eq!(log.end_offset_for_epoch(4), Some((4, 8)));
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 6)));
    assert_eq!(log.end_offset_for_epoch(2), Some((0, 6)));
    assert_eq!(log.end_offset_for_epoch(9), None);
}

#[test]
fn flush_messages_one_fsyncs_every_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(
        &mgr,
        LogConfig {
            flush_messages: Some(1),
            ..small_config()
        },
    );
    for i in 1..=3 {
        log.append(&batch(2, 0, 10), 0, 0).expect("append");
        assert_eq!(log.recovery_point(), 2 * i);
    }
    let lazy = mgr
        .get_or_create(&tp("lazy", 0), small_config())
        .expect("create");
    lazy.append(&batch(2, 0, 10), 0, 0).expect("append");
    assert_eq!(lazy.recovery_point(), 0);
}

#[test]
fn flush_ms_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(
        &mgr,
        LogConfig {
            flush_ms: Some(1000),
            ..small_config()
        },
    );
    log.append(&batch(2, 0, 10), 0, 5000).expect("append");
    mgr.flush_due(5500).expect("flush");
    assert_eq!(log.recovery_point(), 0);
    mgr.flush_due(6000).expect("flush");
    assert_eq!(log.recovery_point(), 2);
}

#[test]
fn concurrent_appends_and_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let one = batch(3, 0, 200).len() as u64;
    let log = create(
        &mgr,
        LogConfig {
            segment_bytes: one * 50,
            index_interval_bytes: 512,
            ..small_config()
        },
    );
    let writers = 4;
    let per_writer = 150;
    let deadline = Instant::now() + Duration::from_secs(60);
    std::thread::scope(|s| {
        for _ in 0..writers {
            let log = Arc::clone(&log);
            s.spawn(move || {
                for _ in 0..per_writer {
                    let info = log.append(&batch(3, 0, 200), 0, 0).expect("append");
                    assert_eq!(info.last_offset - info.first_offset, 2);
                    log.set_high_watermark(log.log_end_offset());
                }
            });
        }
        for _ in 0..2 {
            let log = Arc::clone(&log);
            s.spawn(move || {
                let mut next = 0i64;
                while next < (writers * per_writer * 3) as i64 {
                    assert!(Instant::now() < deadline, "reader did not catch up in time");
                    let hw = log.high_watermark();
                    let r = log.read(next, 64 * 1024, hw, true).expect("read");
                    let mut bytes = Vec::new();
                    for region in &r.regions {
                        region.read_to_vec(&mut bytes).expect("region");
                    }
                    for (base, last, _, _) in batches_in(&bytes) {
                        assert_eq!(base, next, "batches are contiguous");
                        assert!(last < hw);
                        next = last + 1;
                    }
                    if r.regions.is_empty() {
                        std::thread::yield_now();
                    }
                }
            });
        }
    });
    assert_eq!(log.log_end_offset(), (writers * per_writer * 3) as i64);
    assert!(log.segment_count() > 1);
    let all = read_bytes(&log, 0);
    let found = batches_in(&all);
    assert_eq!(found.len(), writers * per_writer);
    for (i, b) in found.iter().enumerate() {
        assert_eq!(b.0, 3 * i as i64);
    }
}

#[test]
fn truncate_below_the_first_segment_starts_afresh() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let one = batch(2, 0, 100).len() as u64;
    let log = create(
        &mgr,
        LogConfig {
            segment_bytes: one * 2,
            ..small_config()
        },
    );
    for _ in 0..4 {
        log.append(&batch(2, 0, 100), 5, 0).expect("append");
    }
    log.set_high_watermark(8);
    log.delete_records_before(4).expect("delete records");
    assert_eq!(log.segment_count(), 1);
    log.truncate_to(2).expect("truncate");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 2));
    assert_eq!(log.latest_epoch(), None);
    let names: Vec<_> = segment_files(&log.dir(), "log")
        .iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .collect();
    assert_eq!(names, vec!["00000000000000000002.log"]);
    assert_eq!(
        log.append(&batch(1, 0, 10), 6, 0)
            .expect("append")
            .first_offset,
        2
    );
}

#[test]
fn flush_due_flushes_rolled_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let one = batch(1, 0, 100).len() as u64;
    let log = create(
        &mgr,
        LogConfig {
            segment_bytes: one * 2,
            ..small_config()
        },
    );
    for _ in 0..5 {
        log.append(&batch(1, 0, 100), 0, 0).expect("append");
    }
    assert_eq!(log.recovery_point(), 0);
    mgr.flush_due(0).expect("flush due");
    // Without flush.ms only whole rolled segments are flushed, as Kafka does on roll.
    assert_eq!(log.recovery_point(), 4);
    // Their index files are on disk.
    assert_eq!(segment_files(&log.dir(), "index").len(), 3);
}

#[test]
fn a_request_of_thousands_of_batches_is_written_whole() {
    // More batches than IOV_MAX (1024) iovecs: the vectored write must loop.
    let dir = tempfile::tempdir().expect("tempdir");
    let mgr = open(dir.path());
    let log = create(&mgr, small_config());
    let mut request = Vec::new();
    for i in 0..3000 {
        request.extend_from_slice(&batch(1, i, 8));
    }
    let info = log.append(&request, 2, 0).expect("append");
    assert_eq!((info.first_offset, info.last_offset), (0, 2999));
    let got = read_bytes(&log, 0);
    assert_eq!(got.len(), request.len());
    let found = batches_in(&got);
    assert_eq!(found.len(), 3000);
    assert!(
        found
            .iter()
            .enumerate()
            .all(|(i, b)| b.0 == i as i64 && b.2 == 2)
    );
    let ts = log
        .offset_for_timestamp(2500)
        .expect("lookup")
        .expect("found");
    assert_eq!(ts.offset, 2500);
}
