//! Kafka's checkpoint text files (`OffsetCheckpointFile`, `LeaderEpochCheckpointFile`):
//! `<version>\n<count>\n<fields...>\n`, always replaced atomically (write `.tmp`, fsync, rename,
//! fsync the directory) so a crash leaves either the old or the new file.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::{LogError, TopicPartition};

pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const REPLICATION_CHECKPOINT: &str = "replication-offset-checkpoint";
pub const LOG_START_CHECKPOINT: &str = "log-start-offset-checkpoint";
pub const CLEANER_CHECKPOINT: &str = "cleaner-offset-checkpoint";
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
pub const PARTITION_METADATA: &str = "partition.metadata";
pub const CLEAN_SHUTDOWN_MARKER: &str = ".kafka_cleanshutdown";

const VERSION: u32 = 0;

/// Replaces `path` with `contents` atomically and durably.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn render<'a>(lines: impl ExactSizeIterator<Item = String> + 'a) -> String {
    let mut out = format!("{VERSION}\n{}\n", lines.len());
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Parses the common frame and returns each entry's whitespace-separated fields; every entry must
/// have `fields` fields. A missing file reads as empty.
fn parse(path: &Path, fields: usize) -> Result<Vec<Vec<String>>, LogError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LogError::Io(e)),
    };
    let corrupt = |detail: String| LogError::CorruptFile {
        path: path.to_path_buf(),
        detail,
    };
    let mut lines = text.lines();
    let version = lines.next().map(str::trim);
    if version != Some("0") {
        return Err(corrupt(format!("unsupported version {version:?}")));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| corrupt("missing entry count".into()))?;
    let mut out = Vec::with_capacity(count.min(1 << 16));
    for line in lines.by_ref().take(count) {
        let parts: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        if parts.len() != fields {
            return Err(corrupt(format!("malformed entry {line:?}")));
        }
        out.push(parts);
    }
    if out.len() != count {
        return Err(corrupt(format!(
            "expected {count} entries, found {}",
            out.len()
        )));
    }
    Ok(out)
}

/// Writes an offset checkpoint (`<topic> <partition> <offset>` entries).
pub(crate) fn write_offsets(
    path: &Path,
    offsets: &BTreeMap<TopicPartition, i64>,
) -> io::Result<()> {
    let text = render(
        offsets
            .iter()
            .map(|(tp, off)| format!("{} {} {off}", tp.topic, tp.partition)),
    );
    write_atomic(path, text.as_bytes())
}

pub(crate) fn read_offsets(path: &Path) -> Result<BTreeMap<TopicPartition, i64>, LogError> {
    let mut out = BTreeMap::new();
    for parts in parse(path, 3)? {
        let (Ok(partition), Ok(offset)) = (parts[1].parse::<i32>(), parts[2].parse::<i64>()) else {
            return Err(LogError::CorruptFile {
                path: path.to_path_buf(),
                detail: format!("malformed entry {:?}", parts.join(" ")),
            });
        };
        out.insert(TopicPartition::new(parts[0].clone(), partition), offset);
    }
    Ok(out)
}

/// Writes a leader epoch checkpoint (`<epoch> <start offset>` entries).
pub(crate) fn write_epochs(path: &Path, entries: &[(i32, i64)]) -> io::Result<()> {
    let text = render(entries.iter().map(|(e, o)| format!("{e} {o}")));
    write_atomic(path, text.as_bytes())
}

pub(crate) fn read_epochs(path: &Path) -> Result<Vec<(i32, i64)>, LogError> {
    parse(path, 2)?
        .into_iter()
        .map(
            |parts| match (parts[0].parse::<i32>(), parts[1].parse::<i64>()) {
                (Ok(e), Ok(o)) => Ok((e, o)),
                _ => Err(LogError::CorruptFile {
                    path: path.to_path_buf(),
                    detail: format!("malformed entry {:?}", parts.join(" ")),
                }),
            },
        )
        .collect()
}

/// Writes `partition.metadata` (`version: 0\ntopic_id: <id>\n`).
pub(crate) fn write_partition_metadata(path: &Path, topic_id: &str) -> io::Result<()> {
    write_atomic(
        path,
        format!("version: 0\ntopic_id: {topic_id}\n").as_bytes(),
    )
}

pub(crate) fn read_partition_metadata(path: &Path) -> Result<Option<String>, LogError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogError::Io(e)),
    };
    for line in text.lines() {
        if let Some((key, value)) = line.split_once(':')
            && key.trim() == "topic_id"
        {
            return Ok(Some(value.trim().to_owned()));
        }
    }
    Err(LogError::CorruptFile {
        path: path.to_path_buf(),
        detail: "no topic_id".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_in_kafka_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(RECOVERY_POINT_CHECKPOINT);
        let mut m = BTreeMap::new();
        m.insert(TopicPartition::new("a-b", 0), 42);
        m.insert(TopicPartition::new("c", 3), 7);
        write_offsets(&path, &m).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, "0\n2\na-b 0 42\nc 3 7\n");
        assert_eq!(read_offsets(&path).expect("parse"), m);
        assert!(
            !dir.path()
                .join(format!("{RECOVERY_POINT_CHECKPOINT}.tmp"))
                .exists()
        );
        assert!(
            read_offsets(&dir.path().join("missing"))
                .expect("missing")
                .is_empty()
        );
    }

    #[test]
    fn corrupt_files_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cp");
        for bad in ["1\n0\n", "0\n2\na 0 1\n", "0\n1\na x 1\n", "0\n1\n5\n", ""] {
            std::fs::write(&path, bad).expect("write");
            assert!(read_offsets(&path).is_err(), "{bad:?} accepted");
        }
        std::fs::write(&path, "0\n2\n0 0\n3 10\n").expect("write");
        assert_eq!(read_epochs(&path).expect("epochs"), vec![(0, 0), (3, 10)]);
    }

    #[test]
    fn partition_metadata() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(PARTITION_METADATA);
        assert_eq!(read_partition_metadata(&path).expect("missing"), None);
        write_partition_metadata(&path, "AAAAAAAAAAAAAAAAAAAAAA").expect("write");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "version: 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAA\n"
        );
        assert_eq!(
            read_partition_metadata(&path).expect("read").as_deref(),
            Some("AAAAAAAAAAAAAAAAAAAAAA")
        );
    }
}
