//! JBOD from the outside: a broker's log dirs as DescribeLogDirs reports them (replica sizes,
//! lags, each dir's error and volume bytes), AlterReplicaLogDirs moves, and the segment bytes a
//! partition directory really holds, for the single-node and the cluster JBOD tests.

use std::collections::BTreeMap;
use std::path::Path;

use kafka_protocol::messages::alter_replica_log_dirs_request::{
    AlterReplicaLogDir, AlterReplicaLogDirTopic,
};
use kafka_protocol::messages::{
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, ApiKey, DescribeLogDirsRequest,
    DescribeLogDirsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::error::{HarnessError, Result};
use crate::wire::WireClient;

/// One replica in a log dir as DescribeLogDirs reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaDir {
    pub size: i64,
    pub offset_lag: i64,
    /// A move's destination copy (AlterReplicaLogDirs in progress).
    pub is_future: bool,
}

/// One log dir's error code and volume bytes (-1 when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirState {
    pub error_code: i16,
    pub total_bytes: i64,
    pub usable_bytes: i64,
}

/// A broker's DescribeLogDirs answer: (dir, topic, partition) -> replica, and dir -> state.
#[derive(Debug, Clone, Default)]
pub struct Described {
    pub replicas: BTreeMap<(String, String, i32), ReplicaDir>,
    pub dirs: BTreeMap<String, DirState>,
}

impl Described {
    /// The dir holding each partition of `topic` (current replicas, not move destinations).
    pub fn placement(&self, topic: &str) -> BTreeMap<i32, String> {
        self.replicas
            .iter()
            .filter(|((_, t, _), r)| t == topic && !r.is_future)
            .map(|((dir, _, p), _)| (*p, dir.clone()))
            .collect()
    }

    /// Size of each partition of `topic` (current replicas).
    pub fn sizes(&self, topic: &str) -> BTreeMap<i32, i64> {
        self.replicas
            .iter()
            .filter(|((_, t, _), r)| t == topic && !r.is_future)
            .map(|((_, _, p), r)| (*p, r.size))
            .collect()
    }

    /// Whether a move is still copying somewhere.
    pub fn moving(&self) -> bool {
        self.replicas.values().any(|r| r.is_future)
    }
}

/// DescribeLogDirs v4 of every partition.
pub fn describe(client: &mut WireClient) -> Result<Described> {
    let response: DescribeLogDirsResponse = client.call(
        ApiKey::DescribeLogDirs,
        4,
        &DescribeLogDirsRequest::default().with_topics(None),
    )?;
    if response.error_code != 0 {
        return Err(HarnessError::Unexpected(format!(
            "DescribeLogDirs: error {}",
            response.error_code
        )));
    }
    let mut described = Described::default();
    for dir in response.results {
        let path = dir.log_dir.to_string();
        described.dirs.insert(
            path.clone(),
            DirState {
                error_code: dir.error_code,
                total_bytes: dir.total_bytes,
                usable_bytes: dir.usable_bytes,
            },
        );
        for topic in dir.topics {
            for p in topic.partitions {
                described.replicas.insert(
                    (path.clone(), topic.name.0.to_string(), p.partition_index),
                    ReplicaDir {
                        size: p.partition_size,
                        offset_lag: p.offset_lag,
                        is_future: p.is_future_key,
                    },
                );
            }
        }
    }
    Ok(described)
}

/// Bytes of the `.log` segment files in one partition directory.
pub fn segment_bytes(partition_dir: &Path) -> Result<i64> {
    let entries = std::fs::read_dir(partition_dir)
        .map_err(|e| HarnessError::io(format!("read {}", partition_dir.display()), e))?;
    let mut total = 0i64;
    for entry in entries {
        let entry = entry.map_err(|e| HarnessError::io("read dir entry", e))?;
        if entry.path().extension().is_some_and(|x| x == "log") {
            let len = entry
                .metadata()
                .map_err(|e| HarnessError::io(format!("stat {}", entry.path().display()), e))?
                .len();
            total += i64::try_from(len).unwrap_or(i64::MAX);
        }
    }
    Ok(total)
}

/// AlterReplicaLogDirs v2 of `(destination dir, topic, partition)` moves; `(topic, partition,
/// error code)` of every answered partition.
pub fn alter(
    client: &mut WireClient,
    moves: &[(String, &str, i32)],
) -> Result<Vec<(String, i32, i16)>> {
    let mut dirs: BTreeMap<&str, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
    for (dir, topic, p) in moves {
        dirs.entry(dir.as_str())
            .or_default()
            .entry(topic)
            .or_default()
            .push(*p);
    }
    let request = AlterReplicaLogDirsRequest::default().with_dirs(
        dirs.into_iter()
            .map(|(dir, topics)| {
                AlterReplicaLogDir::default()
                    .with_path(StrBytes::from_string(dir.to_string()))
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(t, ps)| {
                                AlterReplicaLogDirTopic::default()
                                    .with_name(TopicName(StrBytes::from_string(t.to_string())))
                                    .with_partitions(ps)
                            })
                            .collect(),
                    )
            })
            .collect(),
    );
    let response: AlterReplicaLogDirsResponse =
        client.call(ApiKey::AlterReplicaLogDirs, 2, &request)?;
    Ok(response
        .results
        .into_iter()
        .flat_map(|t| {
            let name = t.topic_name.0.to_string();
            t.partitions
                .into_iter()
                .map(move |p| (name.clone(), p.partition_index, p.error_code))
        })
        .collect())
}
