//! Reads from the remote tier: a consumer's fetch below the local log start, and ListOffsets by
//! timestamp over the remote segments. Bounded by `remote.log.reader.threads` concurrent reads;
//! a store failure fails that partition's fetch with a retriable error, never the broker.

use bytes::Bytes;
use strait_cluster::image::Image;
use strait_cluster::remote::RemoteSegment;
use uuid::Uuid;

use super::{RemoteLogManager, segment_key};
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum RemoteReadError {
    /// No remote segment holds the offset (it was deleted, or never copied).
    #[error("offset {0} is not in the remote tier")]
    NotFound(i64),
    #[error("remote storage: {0}")]
    Store(#[from] strait_tiered::TieredError),
    /// A batch read back from the store does not decode.
    #[error("remote record batch: {0}")]
    Batch(#[from] strait_storage::LogError),
}

/// The copied segment holding `offset`, or the first one after it (the offset may fall between
/// segments, e.g. on a compacted-away or control record).
fn segment_at(image: &Image, topic: &str, partition: i32, offset: i64) -> Option<RemoteSegment> {
    let remote = image.remote_partition(topic, partition)?;
    if let Some(s) = remote.segment_for(offset) {
        return Some(s.clone());
    }
    remote
        .copied()
        .into_iter()
        .find(|s| s.base_offset > offset)
        .cloned()
}

/// A partition as the remote tier names it.
#[derive(Clone, Copy)]
pub struct RemotePartitionRef<'a> {
    pub topic: &'a str,
    pub topic_id: Uuid,
    pub partition: i32,
}

impl RemoteLogManager {
    /// Whole batches from the remote segment holding `offset` (at least one batch, at most
    /// `max_bytes` beyond it), as Kafka returns one remote segment's data per fetch.
    pub async fn read(
        &self,
        image: &Image,
        metrics: &Metrics,
        at: RemotePartitionRef<'_>,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Bytes, RemoteReadError> {
        let RemotePartitionRef {
            topic,
            topic_id,
            partition,
        } = at;
        let segment =
            segment_at(image, topic, partition, offset).ok_or(RemoteReadError::NotFound(offset))?;
        let key = segment_key(topic, topic_id, partition, &segment);
        let _permit = self.readers.acquire().await;
        let m = &metrics.remote;
        m.fetch_requests.with_label_values(&[topic]).inc();
        let from = offset.max(segment.base_offset);
        match self.store.read(&key, from, max_bytes).await {
            Ok(bytes) => {
                m.fetch_bytes
                    .with_label_values(&[topic])
                    .inc_by(bytes.len() as u64);
                Ok(bytes)
            }
            Err(e) => {
                m.fetch_errors.with_label_values(&[topic]).inc();
                tracing::warn!(topic, partition, offset, error = %e, "tiered storage: remote read failed");
                Err(e.into())
            }
        }
    }

    /// The first remote offset whose batch has a timestamp >= `ts`, with that timestamp.
    pub async fn offset_for_timestamp(
        &self,
        image: &Image,
        at: RemotePartitionRef<'_>,
        ts: i64,
    ) -> Result<Option<(i64, i64)>, RemoteReadError> {
        let RemotePartitionRef {
            topic,
            topic_id,
            partition,
        } = at;
        let Some(remote) = image.remote_partition(topic, partition) else {
            return Ok(None);
        };
        let start = remote.start_offset().unwrap_or(i64::MAX);
        for segment in remote.copied() {
            if segment.max_timestamp < ts || segment.end_offset < start {
                continue;
            }
            let key = segment_key(topic, topic_id, partition, segment);
            let _permit = self.readers.acquire().await;
            // The exact record, compressed batches included (they are decompressed here).
            if let Some(batch) = self.store.batch_for_timestamp(&key, ts).await?
                && let Some(hit) = strait_storage::first_record_in_batch(&batch, start, ts)?
            {
                return Ok(Some(hit));
            }
            if let Some((offset, timestamp)) = self.store.offset_for_timestamp(&key, ts).await? {
                return Ok(Some((offset.max(start), timestamp)));
            }
        }
        Ok(None)
    }
}
