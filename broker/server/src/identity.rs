//! The node's identity on disk: Kafka's `meta.properties` in every log dir (cluster id, node id,
//! directory id). Kafka requires `kafka-storage format` first; Strait formats empty dirs on first
//! start, with the cluster id the metadata quorum holds, so the embedded broker needs no setup and
//! every node of a cluster reports one id; it refuses to start on dirs that belong to another node
//! or cluster, which is how Kafka keeps a mis-mounted volume from mixing data.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use uuid::Uuid;

const FILE_NAME: &str = "meta.properties";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Mismatch { path: PathBuf, reason: String },
    #[error(
        "the log dirs (or cluster.id) name cluster {local}, but the metadata quorum this node \
         joined is cluster {quorum}: refusing to mix two clusters' data (point the node at its \
         own cluster's quorum or data dirs; see docs/operations.md, \"Cluster id\")"
    )]
    OtherCluster { local: String, quorum: String },
}

/// Kafka's cluster/directory id format: a random UUID in URL-safe base64 without padding.
pub fn random_kafka_id() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes())
}

/// Reads `meta.properties` in every dir that has one and returns the cluster id they (and the
/// configured `cluster.id`) agree on, or `None` for a new node with no id configured: that one
/// learns the id from the metadata quorum. A dir of another node, or dirs that disagree, refuse.
/// A dir whose file cannot be read is skipped (a failed disk: the log manager takes it offline,
/// as Kafka starts without its error log dirs).
pub fn read(
    dirs: &[PathBuf],
    node_id: i32,
    configured_cluster_id: Option<&str>,
) -> Result<Option<String>, IdentityError> {
    let mut cluster_id = configured_cluster_id.map(str::to_string);
    for dir in dirs {
        let path = dir.join(FILE_NAME);
        let props = match fs::read_to_string(&path) {
            Ok(text) => parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot read; the log dir will be offline: {e}");
                continue;
            }
        };
        let mismatch = |reason: String| IdentityError::Mismatch {
            path: path.clone(),
            reason,
        };
        match props.get("node.id").map(|v| v.parse::<i32>()) {
            Some(Ok(id)) if id == node_id => {}
            Some(Ok(id)) => {
                return Err(mismatch(format!(
                    "belongs to node.id {id}, but this broker is node.id {node_id}"
                )));
            }
            _ => return Err(mismatch("missing or invalid node.id".into())),
        }
        let Some(id) = props.get("cluster.id") else {
            return Err(mismatch("missing cluster.id".into()));
        };
        match &cluster_id {
            Some(expected) if expected != id => {
                return Err(mismatch(format!(
                    "belongs to cluster {id}, expected cluster {expected}"
                )));
            }
            Some(_) => {}
            None => cluster_id = Some(id.clone()),
        }
    }
    Ok(cluster_id)
}

/// The `directory.id` of `dir`'s `meta.properties`, `None` when the dir is not formatted yet
/// (or its file names none).
pub fn directory_id(dir: &Path) -> Result<Option<String>, IdentityError> {
    let path = dir.join(FILE_NAME);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(parse(&text).remove("directory.id")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(IdentityError::Io { path, source }),
    }
}

/// A Kafka directory id (URL-safe base64 of 16 bytes) as the UUID the protocol carries.
pub fn directory_uuid(id: &str) -> Option<Uuid> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id)
        .ok()?;
    Some(Uuid::from_bytes(bytes.try_into().ok()?))
}

/// Writes `meta.properties` into every dir that has none yet (a new node, or a dir added to
/// `log.dirs`), naming `cluster_id`. `directory_ids` gives the directory id to write for a dir
/// whose id is already in use (the metadata log dir's, which the quorum records before the
/// cluster id is known); other dirs get a new random one. A dir that cannot be written is
/// skipped (it will be offline) unless no dir can be.
pub fn format_new_dirs(
    dirs: &[PathBuf],
    node_id: i32,
    cluster_id: &str,
    directory_ids: &BTreeMap<PathBuf, String>,
) -> Result<(), IdentityError> {
    let mut failed = Vec::new();
    for dir in dirs {
        let path = dir.join(FILE_NAME);
        if path.exists() {
            continue;
        }
        let text = format!(
            "#\n#Written by strait-broker\ncluster.id={cluster_id}\ndirectory.id={}\nnode.id={node_id}\nversion=1\n",
            directory_ids
                .get(dir)
                .cloned()
                .unwrap_or_else(random_kafka_id)
        );
        if let Err(source) =
            fs::create_dir_all(dir).and_then(|_| write_atomically(&path, text.as_bytes()))
        {
            tracing::warn!(path = %path.display(), "cannot write; the log dir will be offline: {source}");
            failed.push(IdentityError::Io { path, source });
        }
    }
    match failed.into_iter().next() {
        Some(e) if dirs.len() == 1 => Err(e),
        _ => Ok(()),
    }
}

/// The metadata quorum's id must be the one the dirs name: a volume of another cluster mounted
/// here, or a node pointed at another cluster's quorum, would otherwise mix two clusters' data.
pub fn check_against_quorum(local: Option<&str>, quorum: &str) -> Result<(), IdentityError> {
    match local {
        Some(local) if local != quorum => Err(IdentityError::OtherCluster {
            local: local.to_string(),
            quorum: quorum.to_string(),
        }),
        _ => Ok(()),
    }
}

fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Write to a temporary sibling, fsync, rename over the target, fsync the directory: a crash
/// leaves either the old or the new file, never a torn one.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
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
    fn formats_once_then_keeps_cluster_id_and_rejects_other_node() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(read(&dirs, 1, None).unwrap(), None);
        let id = random_kafka_id();
        assert_eq!(id.len(), 22);
        format_new_dirs(&dirs, 1, &id, &BTreeMap::new()).unwrap();
        assert_eq!(read(&dirs, 1, None).unwrap(), Some(id.clone()));
        format_new_dirs(&dirs, 1, "ignored", &BTreeMap::new()).unwrap();
        assert_eq!(read(&dirs, 1, None).unwrap(), Some(id.clone()));
        assert!(matches!(
            read(&dirs, 2, None),
            Err(IdentityError::Mismatch { .. })
        ));
        assert!(matches!(
            read(&dirs, 1, Some("other")),
            Err(IdentityError::Mismatch { .. })
        ));
    }

    #[test]
    fn the_metadata_dir_keeps_the_directory_id_the_quorum_recorded() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(directory_id(a.path()).unwrap(), None);
        let preset = random_kafka_id();
        let ids = BTreeMap::from([(a.path().to_path_buf(), preset.clone())]);
        format_new_dirs(&dirs, 1, &random_kafka_id(), &ids).unwrap();
        assert_eq!(directory_id(a.path()).unwrap(), Some(preset.clone()));
        let other = directory_id(b.path()).unwrap().unwrap();
        assert_ne!(other, preset);
        let uuid = directory_uuid(&preset).unwrap();
        assert!(!uuid.is_nil());
        assert_eq!(directory_uuid("not base64!"), None);
    }

    #[test]
    fn a_quorum_of_another_cluster_is_refused_naming_both_ids() {
        assert!(check_against_quorum(None, "q").is_ok());
        assert!(check_against_quorum(Some("q"), "q").is_ok());
        let refused = check_against_quorum(Some("mine"), "theirs").unwrap_err();
        let message = refused.to_string();
        assert!(
            message.contains("mine") && message.contains("theirs"),
            "{message}"
        );
    }
}
