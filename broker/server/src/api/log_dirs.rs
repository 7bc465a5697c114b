//! JBOD admin APIs: DescribeLogDirs (every log dir with its replicas' sizes and lags, and its
//! volume's total and usable bytes) and AlterReplicaLogDirs (move hosted replicas to another log
//! dir; the copy runs on a blocking thread while the replica keeps serving).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, TopicName,
};
use strait_storage::{LogDirDescription, LogError, MoveOutcome, TopicPartition};

use super::authz::{Authz, op};
use super::{RequestContext, str_bytes};
use crate::broker::Broker;

/// Kafka's `DescribeLogDirsResponse.UNKNOWN_VOLUME_BYTES`.
const UNKNOWN_VOLUME_BYTES: i64 = -1;

pub async fn describe(
    broker: &Arc<Broker>,
    req: DescribeLogDirsRequest,
    ctx: &RequestContext,
) -> DescribeLogDirsResponse {
    if !Authz::new(broker, ctx).cluster(op::DESCRIBE) {
        // v3+ carries the error; older versions see an empty answer, as from Kafka.
        return DescribeLogDirsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    // None: every partition; otherwise the requested partitions by topic.
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    let dirs = {
        let broker = broker.clone();
        tokio::task::spawn_blocking(move || broker.replicas.logs.describe())
            .await
            .unwrap_or_default()
    };
    let results = dirs
        .into_iter()
        .map(|dir| describe_dir(dir, wanted.as_ref()))
        .collect();
    DescribeLogDirsResponse::default().with_results(results)
}

fn describe_dir(
    dir: LogDirDescription,
    wanted: Option<&BTreeMap<String, Vec<i32>>>,
) -> DescribeLogDirsResult {
    let result =
        DescribeLogDirsResult::default().with_log_dir(str_bytes(dir.path.display().to_string()));
    if dir.offline {
        return result
            .with_error_code(ResponseError::KafkaStorageError.code())
            .with_total_bytes(UNKNOWN_VOLUME_BYTES)
            .with_usable_bytes(UNKNOWN_VOLUME_BYTES);
    }
    let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for r in dir.replicas {
        let included = wanted.is_none_or(|w| {
            w.get(&r.tp.topic)
                .is_some_and(|parts| parts.contains(&r.tp.partition))
        });
        if !included {
            continue;
        }
        topics.entry(r.tp.topic.clone()).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(r.tp.partition)
                .with_partition_size(i64::try_from(r.size).unwrap_or(i64::MAX))
                .with_offset_lag(r.offset_lag)
                .with_is_future_key(r.is_future),
        );
    }
    let (total, usable) = volume_bytes(&dir.path);
    result
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    DescribeLogDirsTopic::default()
                        .with_name(TopicName(str_bytes(name)))
                        .with_partitions(partitions)
                })
                .collect(),
        )
        .with_total_bytes(total)
        .with_usable_bytes(usable)
}

/// (total, usable) bytes of the file system holding `path`, as Java's `FileStore` gives them
/// (`f_blocks` and `f_bavail` in fragment units); unknown if statvfs fails.
fn volume_bytes(path: &Path) -> (i64, i64) {
    match rustix::fs::statvfs(path) {
        Ok(st) => {
            let bytes =
                |blocks: u64| i64::try_from(blocks.saturating_mul(st.f_frsize)).unwrap_or(i64::MAX);
            (bytes(st.f_blocks), bytes(st.f_bavail))
        }
        Err(_) => (UNKNOWN_VOLUME_BYTES, UNKNOWN_VOLUME_BYTES),
    }
}

pub async fn alter(
    broker: &Arc<Broker>,
    req: AlterReplicaLogDirsRequest,
    ctx: &RequestContext,
) -> AlterReplicaLogDirsResponse {
    let authorized = Authz::new(broker, ctx).cluster(op::ALTER);
    let mut results: BTreeMap<String, Vec<AlterReplicaLogDirPartitionResult>> = BTreeMap::new();
    for dir in req.dirs {
        let dest = PathBuf::from(dir.path.to_string());
        for topic in dir.topics {
            let name = topic.name.0.to_string();
            for partition in topic.partitions {
                let code = if authorized {
                    start_move(broker, &name, partition, &dest)
                } else {
                    ResponseError::ClusterAuthorizationFailed.code()
                };
                results.entry(name.clone()).or_default().push(
                    AlterReplicaLogDirPartitionResult::default()
                        .with_partition_index(partition)
                        .with_error_code(code),
                );
            }
        }
    }
    AlterReplicaLogDirsResponse::default().with_results(
        results
            .into_iter()
            .map(|(name, partitions)| {
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(TopicName(str_bytes(name)))
                    .with_partitions(partitions)
            })
            .collect(),
    )
}

/// Starts one replica's move in the background; the error code of its answer.
fn start_move(broker: &Arc<Broker>, topic: &str, partition: i32, dest: &Path) -> i16 {
    let hosted = broker
        .replicas
        .topic(topic)
        .and_then(|t| t.partition(partition).cloned());
    let Some(hosted) = hosted else {
        return ResponseError::ReplicaNotAvailable.code();
    };
    if hosted.log.is_offline() {
        return ResponseError::KafkaStorageError.code();
    }
    let tp = TopicPartition::new(topic, partition);
    let logs = &broker.replicas.logs;
    let mv = match logs.start_move(&tp, dest) {
        Ok(Some(mv)) => mv,
        Ok(None) => return 0,
        Err(LogError::LogDirNotFound(_)) => return ResponseError::LogDirNotFound.code(),
        Err(LogError::Deleted(_)) => return ResponseError::ReplicaNotAvailable.code(),
        Err(_) => return ResponseError::KafkaStorageError.code(),
    };
    let broker = broker.clone();
    tokio::task::spawn_blocking(move || match broker.replicas.logs.run_move(&mv) {
        Ok(MoveOutcome::Done) => {}
        Ok(MoveOutcome::Cancelled) => {
            tracing::info!(partition = %mv.topic_partition(), "replica move cancelled");
        }
        Err(e) => {
            tracing::warn!(partition = %mv.topic_partition(), dest = %mv.dest_root().display(), "replica move failed: {e}");
        }
    });
    0
}
