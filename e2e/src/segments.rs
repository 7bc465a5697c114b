//! Inspection of Kafka's on-disk layout (`<log.dir>/<topic>-<p>/<20-digit>.log`): list segments
//! and walk the record batch headers of a segment file, for crash and retention tests.

use std::path::{Path, PathBuf};

use crate::error::{HarnessError, Result};

/// Bytes of a RecordBatch header before `lastOffsetDelta` ends (baseOffset .. lastOffsetDelta).
const BATCH_HEADER_PREFIX: usize = 27;
/// baseOffset (8) + batchLength (4): the part not counted in batchLength.
const LOG_OVERHEAD: usize = 12;

/// The partition directory `<log_dir>/<topic>-<partition>`.
pub fn partition_dir(log_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    log_dir.join(format!("{topic}-{partition}"))
}

/// Segment `.log` files of a partition directory, sorted by base offset.
pub fn segment_files(partition_dir: &Path) -> Result<Vec<(i64, PathBuf)>> {
    let entries = std::fs::read_dir(partition_dir)
        .map_err(|e| HarnessError::io(format!("read_dir {}", partition_dir.display()), e))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| HarnessError::io("read_dir entry", e))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".log") else {
            continue;
        };
        if stem.len() == 20
            && let Ok(base) = stem.parse::<i64>()
        {
            segments.push((base, path));
        }
    }
    segments.sort();
    Ok(segments)
}

/// One record batch found in a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    /// Byte position of the batch in the file.
    pub position: u64,
    pub base_offset: i64,
    /// Offset of the last record (`base_offset + lastOffsetDelta`).
    pub last_offset: i64,
    /// Total bytes of the batch including the 12-byte log overhead.
    pub size: u64,
}

/// Walks the batch headers of a segment file. Stops at the first incomplete batch; CRCs are not
/// checked here (consumers check them).
pub fn batches(segment: &Path) -> Result<Vec<BatchInfo>> {
    let data = std::fs::read(segment)
        .map_err(|e| HarnessError::io(format!("read {}", segment.display()), e))?;
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + BATCH_HEADER_PREFIX <= data.len() {
        let field = |at: usize, len: usize| &data[pos + at..pos + at + len];
        let base_offset = i64::from_be_bytes(field(0, 8).try_into().unwrap_or([0; 8]));
        let batch_len = i32::from_be_bytes(field(8, 4).try_into().unwrap_or([0; 4]));
        let delta = i32::from_be_bytes(field(23, 4).try_into().unwrap_or([0; 4]));
        let Ok(batch_len) = usize::try_from(batch_len) else {
            break;
        };
        let size = LOG_OVERHEAD + batch_len;
        if batch_len < BATCH_HEADER_PREFIX - LOG_OVERHEAD || pos + size > data.len() {
            break;
        }
        out.push(BatchInfo {
            position: pos as u64,
            base_offset,
            last_offset: base_offset + i64::from(delta),
            size: size as u64,
        });
        pos += size;
    }
    Ok(out)
}
