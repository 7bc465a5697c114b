//! The topic catalogue of a single-node cluster: names, topic ids, partition counts, replication
//! factors and config overrides, persisted as one JSON document in the first log dir and replaced
//! atomically on every change. The broker reads and changes topics only through this type, so the
//! multi-broker issue can swap the file for the replicated metadata log without touching handlers.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

const FILE_NAME: &str = "__strait_metadata.json";
const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Topic-level config overrides (Kafka key names); defaults come from the broker config.
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Image {
    version: u32,
    topics: BTreeMap<String, TopicMeta>,
    /// First producer id not yet handed out (ids are allocated in durable blocks).
    #[serde(default)]
    next_producer_id: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("metadata file {path} is not valid: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

pub struct MetadataStore {
    path: PathBuf,
    image: Mutex<Image>,
}

impl MetadataStore {
    /// Opens the catalogue in `dir`; the flag tells whether a catalogue existed before.
    pub fn open(dir: &Path) -> Result<(MetadataStore, bool), MetadataError> {
        let path = dir.join(FILE_NAME);
        let io = |source| MetadataError::Io {
            path: path.clone(),
            source,
        };
        let (image, existed) = match fs::read(&path) {
            Ok(bytes) => {
                let image: Image =
                    serde_json::from_slice(&bytes).map_err(|e| MetadataError::Corrupt {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                if image.version != FORMAT_VERSION {
                    return Err(MetadataError::Corrupt {
                        path,
                        reason: format!("unsupported format version {}", image.version),
                    });
                }
                (image, true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
                Image {
                    version: FORMAT_VERSION,
                    topics: BTreeMap::new(),
                    next_producer_id: 0,
                },
                false,
            ),
            Err(e) => return Err(io(e)),
        };
        Ok((
            MetadataStore {
                path,
                image: Mutex::new(image),
            },
            existed,
        ))
    }

    pub fn topics(&self) -> Vec<TopicMeta> {
        self.lock().topics.values().cloned().collect()
    }

    /// Inserts or replaces a topic; durable when this returns.
    pub fn put_topic(&self, topic: TopicMeta) -> Result<(), MetadataError> {
        let mut image = self.lock();
        let previous = image.topics.insert(topic.name.clone(), topic.clone());
        if let Err(e) = self.persist(&image) {
            match previous {
                Some(p) => image.topics.insert(p.name.clone(), p),
                None => image.topics.remove(&topic.name),
            };
            return Err(e);
        }
        Ok(())
    }

    pub fn remove_topic(&self, name: &str) -> Result<Option<TopicMeta>, MetadataError> {
        let mut image = self.lock();
        let Some(removed) = image.topics.remove(name) else {
            return Ok(None);
        };
        if let Err(e) = self.persist(&image) {
            image.topics.insert(removed.name.clone(), removed);
            return Err(e);
        }
        Ok(Some(removed))
    }

    /// Reserves `size` producer ids durably and returns the first; a crash can only skip ids,
    /// never hand one out twice (Kafka's producer-id blocks).
    pub fn allocate_producer_ids(&self, size: i64) -> Result<i64, MetadataError> {
        let mut image = self.lock();
        let start = image.next_producer_id;
        image.next_producer_id = start + size;
        if let Err(e) = self.persist(&image) {
            image.next_producer_id = start;
            return Err(e);
        }
        Ok(start)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Image> {
        // A panic while holding the lock cannot leave the image half-changed (every change is one
        // map operation), so a poisoned lock is still consistent.
        self.image.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(&self, image: &Image) -> Result<(), MetadataError> {
        let io = |source| MetadataError::Io {
            path: self.path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(image).map_err(|e| MetadataError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        write_atomically(&self.path, &bytes).map_err(io)
    }
}

/// Write to a temporary sibling, fsync, rename over the target, fsync the directory: a crash
/// leaves either the old or the new file, never a torn one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_survive_reopen_and_removal_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (store, existed) = MetadataStore::open(dir.path()).unwrap();
        assert!(!existed);
        let t = TopicMeta {
            name: "orders".into(),
            id: Uuid::new_v4(),
            partitions: 3,
            replication_factor: 1,
            configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
        };
        store.put_topic(t.clone()).unwrap();
        store
            .put_topic(TopicMeta {
                name: "other".into(),
                ..t.clone()
            })
            .unwrap();
        store.remove_topic("other").unwrap();
        drop(store);
        let (store, existed) = MetadataStore::open(dir.path()).unwrap();
        assert!(existed);
        assert_eq!(store.topics(), vec![t]);
    }

    #[test]
    fn corrupt_file_is_reported_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        assert!(matches!(
            MetadataStore::open(dir.path()),
            Err(MetadataError::Corrupt { .. })
        ));
    }
}
