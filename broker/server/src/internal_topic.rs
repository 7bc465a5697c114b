//! Kafka's coordinator topics (`__consumer_offsets` for groups, `__transaction_state` for
//! transactions) share one shape: an ordinary replicated topic created through the controller on
//! the first FindCoordinator, a key (group id, transactional id) belongs to partition
//! `partition_for(key)`, and that partition's leader is the key's coordinator.

use std::time::Duration;

use kafka_protocol::ResponseError;
use strait_cluster::image::Image;
use strait_cluster::rpc::{ControllerError, ControllerRequest, ControllerResponse, NewTopic};

use crate::errors::ApiError;
use crate::group::records::partition_for;
use crate::node::ClusterNode;

/// How long FindCoordinator waits for a freshly created coordinator topic to reach this broker.
const CREATE_WAIT: Duration = Duration::from_secs(10);

/// Creates `topic` through the controller when the cluster does not have it yet. Until enough
/// brokers registered for its replication factor it cannot be created and its coordinators are
/// unavailable, as in Kafka.
pub async fn ensure(node: &ClusterNode, topic: NewTopic) -> Result<(), ApiError> {
    let name = topic.name.clone();
    if node.image().topic(&name).is_some() {
        return Ok(());
    }
    let unavailable = |why: String| ApiError::new(ResponseError::CoordinatorNotAvailable, why);
    let answer = node
        .call(ControllerRequest::CreateTopics {
            topics: vec![topic],
            validate_only: false,
        })
        .await;
    match answer {
        Ok(ControllerResponse::CreateTopics(results)) => {
            if let Some(Err(e)) = results.first()
                && !matches!(e, ControllerError::TopicExists(_))
            {
                return Err(unavailable(format!("cannot create {name}: {e}")));
            }
        }
        Ok(other) => {
            return Err(unavailable(format!(
                "unexpected controller answer {other:?}"
            )));
        }
        Err(e) => return Err(unavailable(format!("cannot create {name}: {e}"))),
    }
    node.wait_for_image(CREATE_WAIT, |image| image.topic(&name).is_some())
        .await;
    Ok(())
}

/// The coordinator of `key` in `topic` according to `image`: the leader of its partition, if
/// that broker is alive.
pub fn coordinator_in(image: &Image, topic: &str, key: &str) -> Result<i32, ApiError> {
    let unavailable = |why: String| ApiError::new(ResponseError::CoordinatorNotAvailable, why);
    let t = image
        .topic(topic)
        .ok_or_else(|| unavailable(format!("{topic} does not exist yet")))?;
    let index = partition_for(key, t.partitions.len() as i32);
    let state = &t.partitions[index as usize];
    if image.is_live(state.leader) {
        Ok(state.leader)
    } else {
        Err(unavailable(format!("{topic}-{index} has no leader")))
    }
}

/// One key/value record batch (magic 2, uncompressed) of a coordinator's records, as Kafka's
/// coordinators write them; `None` values are tombstones. With `producer` the batch is that
/// producer's transactional batch (TxnOffsetCommit), without sequence numbers.
pub fn encode_records(
    records: impl IntoIterator<Item = (bytes::Bytes, Option<bytes::Bytes>)>,
    now_ms: i64,
    producer: Option<(i64, i16)>,
) -> Result<bytes::BytesMut, ApiError> {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.map_or(-1, |p| p.0),
            producer_epoch: producer.map_or(-1, |p| p.1),
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: now_ms,
            key: Some(key),
            value,
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| {
        ApiError::new(
            ResponseError::UnknownServerError,
            format!("encoding coordinator records: {e}"),
        )
    })?;
    Ok(buf)
}

/// Read a coordinator partition back in chunks of this size.
const LOAD_CHUNK: u64 = 8 << 20;

/// Every record of `partition` from its log start to its log end, in order, to `apply`
/// (control records included: a coordinator replaying transactional writes needs the markers).
/// Returns how many records were read. An undecodable batch ends the replay with a warning:
/// what came before it is still applied.
pub fn replay(
    partition: &crate::replica_manager::Partition,
    mut apply: impl FnMut(kafka_protocol::records::Record),
) -> Result<usize, strait_storage::LogError> {
    use kafka_protocol::records::RecordBatchDecoder;
    let log = &partition.log;
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    let mut records = 0usize;
    while offset < end {
        let read = log.read(offset, LOAD_CHUNK, end, true)?;
        if read.regions.is_empty() {
            break;
        }
        let mut buf = Vec::with_capacity(read.bytes as usize);
        for region in &read.regions {
            region.read_to_vec(&mut buf)?;
        }
        let mut bytes = bytes::Bytes::from(buf);
        let sets = match RecordBatchDecoder::decode_all(&mut bytes) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(partition = partition.index, offset, error = %e, "undecodable coordinator batch; skipping the rest of the partition");
                break;
            }
        };
        let mut last = offset;
        for set in sets {
            for r in set.records {
                last = last.max(r.offset);
                records += 1;
                apply(r);
            }
        }
        offset = last + 1;
    }
    Ok(records)
}
