//! Loading a partition directory (Kafka's `LogLoader`): removes leftovers, opens segments, trusts
//! cleanly closed segments' indexes after sanity checks, and otherwise recovers from the recovery
//! point: rescans and CRC-checks batches, rebuilds indexes, truncates a torn or corrupt tail and
//! drops every later segment, then trims the leader epoch cache. An interrupted cleaner swap is
//! completed first, and producer state is reloaded last, from what survived, rebuilding the
//! transaction index of every rescanned segment and of any whose `.txnindex` is missing or bad.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

use crate::checkpoint::{LEADER_EPOCH_CHECKPOINT, PARTITION_METADATA, read_partition_metadata};
use crate::cleaner::complete_swaps;
use crate::epoch_cache::EpochCache;
use crate::log::LogState;
use crate::offset_index::OffsetIndex;
use crate::producer_state::ProducerStateManager;
use crate::segment::{LogSegment, parse_log_file_name, remove_if_exists};
use crate::time_index::TimeIndex;
use crate::txn_index::TxnIndex;
use crate::{LogConfig, LogError, TopicPartition};

/// Offsets recorded for a partition in the dir-level checkpoint files.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Checkpointed {
    pub recovery_point: Option<i64>,
    pub high_watermark: Option<i64>,
    pub log_start_offset: Option<i64>,
    pub cleaner_checkpoint: Option<i64>,
}

pub(crate) struct Loaded {
    pub state: LogState,
    /// Whether any segment had to be rescanned.
    pub recovered: bool,
}

fn is_leftover(name: &str) -> bool {
    [".tmp", ".cleaned", ".swap", ".deleted"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// Loads one partition directory. `clean` = the log dir had a clean-shutdown marker.
pub(crate) fn load_partition(
    dir: &Path,
    tp: &TopicPartition,
    config: &LogConfig,
    checkpointed: Checkpointed,
    clean: bool,
    now_ms: i64,
) -> Result<Loaded, LogError> {
    // A cleaner pass that reached its commit point (the .swap renames) is completed.
    for (base, replaced) in complete_swaps(dir)? {
        tracing::info!(partition = %tp, base_offset = base, replaced, "completed an interrupted segment swap");
    }
    let mut bases = Vec::new();
    let mut index_files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_leftover(name) {
            tracing::info!(partition = %tp, file = name, "deleting leftover file");
            remove_if_exists(&entry.path())?;
        } else if let Some(base) = parse_log_file_name(name) {
            bases.push(base);
        } else if name.ends_with(".index")
            || name.ends_with(".timeindex")
            || name.ends_with(".txnindex")
        {
            index_files.push((name.to_owned(), entry.path()));
        }
    }
    bases.sort_unstable();
    // Index files without a log file are orphans of an interrupted deletion.
    for (name, path) in index_files {
        let stem = name.rsplit_once('.').map_or("", |(s, _)| s);
        if !bases.iter().any(|b| format!("{b:020}") == stem) {
            remove_if_exists(&path)?;
        }
    }

    let mut segments = BTreeMap::new();
    for &base in &bases {
        segments.insert(base, LogSegment::open(dir, base)?);
    }
    if segments.is_empty() {
        let base = checkpointed.log_start_offset.unwrap_or(0).max(0);
        segments.insert(base, LogSegment::create(dir, base)?);
    }

    // Segments from the one holding the recovery point on are rescanned after a crash.
    let rescan_from = match (clean, checkpointed.recovery_point) {
        (true, Some(_)) => i64::MAX,
        (_, rp) => {
            let rp = rp.unwrap_or(0);
            segments
                .range(..=rp)
                .next_back()
                .map_or(i64::MIN, |(b, _)| *b)
        }
    };
    let mut recovered = false;
    let mut cut_at: Option<i64> = None;
    // Segments whose transaction index is rebuilt by the producer state replay below.
    let mut rebuild_txn = BTreeSet::new();
    for (base, segment) in segments.iter_mut() {
        let problem = if *base >= rescan_from {
            recovered = true;
            rebuild_txn.insert(*base);
            rebuild(segment, config, now_ms)?
        } else {
            match load_clean(segment)? {
                Ok(()) => {
                    let path = segment.txn_index_path();
                    match TxnIndex::load(&path, *base, segment.next_offset)? {
                        Ok(index) => segment.txn_index = index,
                        Err(why) => {
                            tracing::warn!(partition = %tp, file = %path.display(),
                                "rebuilding the transaction index: {why}");
                            rebuild_txn.insert(*base);
                        }
                    }
                    None
                }
                Err(why) => {
                    tracing::warn!(partition = %tp, segment = %segment.log_path().display(),
                        "rebuilding indexes: {why}");
                    recovered = true;
                    rebuild_txn.insert(*base);
                    rebuild(segment, config, now_ms)?
                }
            }
        };
        if let Some(what) = problem {
            tracing::warn!(partition = %tp, "recovery truncated the log: {what}");
            cut_at = Some(*base);
            break;
        }
    }
    if let Some(cut) = cut_at {
        let later: Vec<i64> = segments.range(cut + 1..).map(|(b, _)| *b).collect();
        for base in later {
            if let Some(seg) = segments.remove(&base) {
                tracing::warn!(partition = %tp, segment = %seg.log_path().display(),
                    "recovery deleted a segment after the truncation point");
                seg.delete_files()?;
            }
        }
    }

    let first_base = segments.first_key_value().map_or(0, |(b, _)| *b);
    let mut log_end = segments.last_key_value().map_or(0, |(_, s)| s.next_offset);
    let mut log_start = checkpointed
        .log_start_offset
        .unwrap_or(first_base)
        .max(first_base);
    if log_start > log_end {
        // Data acknowledged as deleted is gone: start the log afresh at log start.
        tracing::warn!(partition = %tp, log_start, log_end, "log start beyond log end; starting empty");
        for seg in std::mem::take(&mut segments).into_values() {
            seg.delete_files()?;
        }
        segments.insert(log_start, LogSegment::create(dir, log_start)?);
        log_end = log_start;
    }
    rebuild_txn.retain(|base| segments.contains_key(base));
    log_start = log_start.min(log_end);

    let recovery_point = if clean && !recovered {
        log_end
    } else {
        checkpointed.recovery_point.unwrap_or(0).clamp(0, log_end)
    };
    let high_watermark = checkpointed
        .high_watermark
        .unwrap_or(log_start)
        .clamp(log_start, log_end);

    let mut epochs = EpochCache::load(dir.join(LEADER_EPOCH_CHECKPOINT))?;
    epochs.truncate_from_end(log_end)?;
    epochs.truncate_from_start(log_start)?;
    let topic_id = read_partition_metadata(&dir.join(PARTITION_METADATA))?;

    let mut state = LogState {
        segments,
        log_start_offset: log_start,
        high_watermark,
        recovery_point,
        epochs,
        topic_id,
        generation: 0,
        first_unflushed_ms: (recovery_point < log_end).then_some(now_ms),
        deleted: false,
        producers: ProducerStateManager::new(dir),
        cleaner_checkpoint: checkpointed
            .cleaner_checkpoint
            .map(|cp| cp.clamp(log_start, log_end)),
        remote_log_start: None,
        highest_remote_offset: -1,
        remote_producer_state_pending: None,
    };
    // After recovery this replays exactly the batches that survived.
    state.reload_producers(now_ms, config.producer_id_expiration_ms, &rebuild_txn)?;
    Ok(Loaded { state, recovered })
}

/// Full rescan; the rebuilt indexes are written right away so the files match the log.
fn rebuild(
    segment: &mut LogSegment,
    config: &LogConfig,
    now_ms: i64,
) -> io::Result<Option<String>> {
    let problem = segment.rebuild(config, now_ms)?;
    segment.write_indexes(true)?;
    Ok(problem)
}

/// Trusts a closed segment: loads its index files (Kafka's sanity checks) and scans only the tail
/// after the last offset index entry. `Err(reason)` means the segment must be rebuilt.
fn load_clean(segment: &mut LogSegment) -> io::Result<Result<(), String>> {
    let Some(index) = OffsetIndex::load(&segment.index_path(), segment.base_offset, segment.size)?
    else {
        return Ok(Err("offset index missing or corrupt".into()));
    };
    segment.offset_index = index;
    segment.time_index = TimeIndex::new(segment.base_offset);
    if let Err(why) = segment.recompute_tail()? {
        return Ok(Err(why));
    }
    let Some(time_index) = TimeIndex::load(
        &segment.time_index_path(),
        segment.base_offset,
        segment.next_offset,
    )?
    else {
        return Ok(Err("time index missing or corrupt".into()));
    };
    segment.time_index = time_index;
    // Fold the time index's largest entry into the tail scan's result.
    if let Err(why) = segment.recompute_tail()? {
        return Ok(Err(why));
    }
    segment.indexes_dirty = false;
    Ok(Ok(()))
}
