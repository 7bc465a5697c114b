//! The node's identity on disk: Kafka's `meta.properties` in every log dir (cluster id, node id,
//! directory id). Kafka requires `kafka-storage format` first; Strait formats empty dirs on first
//! start so the embedded broker needs no setup, but refuses to start on dirs that belong to another
//! node or cluster, which is how Kafka keeps a mis-mounted volume from mixing data.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::PathBuf;

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
}

/// Kafka's cluster/directory id format: a random UUID in URL-safe base64 without padding.
pub fn random_kafka_id() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes())
}

/// Reads or writes `meta.properties` in every dir and returns the cluster id they agree on.
pub fn load_or_format(
    dirs: &[PathBuf],
    node_id: i32,
    configured_cluster_id: Option<&str>,
) -> Result<String, IdentityError> {
    let mut found: Vec<(PathBuf, BTreeMap<String, String>)> = Vec::new();
    for dir in dirs {
        let path = dir.join(FILE_NAME);
        match fs::read_to_string(&path) {
            Ok(text) => found.push((path, parse(&text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(IdentityError::Io { path, source }),
        }
    }
    let mut cluster_id = configured_cluster_id.map(str::to_string);
    for (path, props) in &found {
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
    let cluster_id = cluster_id.unwrap_or_else(random_kafka_id);
    for dir in dirs {
        let path = dir.join(FILE_NAME);
        if found.iter().any(|(p, _)| *p == path) {
            continue;
        }
        let text = format!(
            "#\n#Written by strait-broker\ncluster.id={cluster_id}\ndirectory.id={}\nnode.id={node_id}\nversion=1\n",
            random_kafka_id()
        );
        fs::create_dir_all(dir)
            .and_then(|_| write_atomically(&path, text.as_bytes()))
            .map_err(|source| IdentityError::Io {
                path: path.clone(),
                source,
            })?;
    }
    Ok(cluster_id)
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
        let id = load_or_format(&dirs, 1, None).unwrap();
        assert_eq!(id.len(), 22);
        assert_eq!(load_or_format(&dirs, 1, None).unwrap(), id);
        assert!(matches!(
            load_or_format(&dirs, 2, None),
            Err(IdentityError::Mismatch { .. })
        ));
        assert!(matches!(
            load_or_format(&dirs, 1, Some("other")),
            Err(IdentityError::Mismatch { .. })
        ));
    }
}
