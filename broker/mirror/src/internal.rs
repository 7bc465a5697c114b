//! Writing and reading MM2's single-partition internal topics: an [`InternalWriter`] that
//! appends records to partition 0 of a topic (reconnecting to its leader as needed), the
//! offset-sync writer task fed by the partition copiers, and an [`InternalReader`] that reads a
//! topic's partition 0 forward (the checkpoint task reads offset syncs with it).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::records::Record;
use strait_client::Connection;
use tokio::sync::{mpsc, watch};

use crate::formats::OffsetSync;
use crate::wire::{Cluster, WireError, encode_batch, plain_record};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Appends to partition 0 of one topic with acks=all.
pub struct InternalWriter {
    cluster: Cluster,
    topic: String,
    leader: Option<Connection>,
}

impl InternalWriter {
    pub fn new(cluster: Cluster, topic: String) -> Self {
        InternalWriter {
            cluster,
            topic,
            leader: None,
        }
    }

    /// Writes `(key, value)` records, trying up to three times (reconnecting to the leader).
    pub async fn write(&mut self, entries: &[(Bytes, Bytes)]) -> Result<(), WireError> {
        if entries.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let records: Vec<Record> = entries
            .iter()
            .map(|(k, v)| plain_record(k.clone(), v.clone(), now))
            .collect();
        let batch = encode_batch(&records, (-1, -1), -1).map_err(|detail| WireError::Records {
            cluster: self.cluster.alias.clone(),
            what: self.topic.clone(),
            detail,
        })?;
        let mut last = None;
        for attempt in 0..3u64 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            if self.leader.is_none() {
                match self.cluster.connect_leader(&self.topic, 0).await {
                    Ok(c) => self.leader = Some(c),
                    Err(e) => {
                        last = Some(e);
                        continue;
                    }
                }
            }
            let leader = self.leader.as_mut().expect("set above");
            match self
                .cluster
                .produce(
                    leader,
                    &self.topic,
                    0,
                    batch.clone(),
                    Duration::from_secs(15),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => {
                    self.leader = None;
                    last = Some(e);
                }
            }
        }
        Err(last.expect("three attempts failed"))
    }
}

/// Writes the offset syncs the copiers send to `mm2-offset-syncs.<target>.internal` on the
/// source, batching what arrived together, until the channel closes or shutdown.
pub async fn offset_sync_writer(
    mut writer: InternalWriter,
    mut syncs: mpsc::UnboundedReceiver<OffsetSync>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let first = tokio::select! {
            s = syncs.recv() => s,
            _ = shutdown.changed() => None,
        };
        let Some(first) = first else {
            // Write what is queued before leaving.
            let mut rest = Vec::new();
            while let Ok(s) = syncs.try_recv() {
                rest.push((s.key(), s.value()));
            }
            if let Err(e) = writer.write(&rest).await {
                tracing::warn!(error = %e, "offset syncs lost at shutdown");
            }
            return;
        };
        let mut entries = vec![(first.key(), first.value())];
        while let Ok(s) = syncs.try_recv() {
            entries.push((s.key(), s.value()));
            if entries.len() >= 1000 {
                break;
            }
        }
        // A lost sync only makes translation coarser (checkpoints use the previous one).
        if let Err(e) = writer.write(&entries).await {
            tracing::warn!(error = %e, count = entries.len(), "offset syncs not written");
        }
    }
}

/// Reads partition 0 of a topic forward from its earliest offset.
pub struct InternalReader {
    cluster: Cluster,
    topic: String,
    leader: Option<Connection>,
    next: Option<i64>,
}

impl InternalReader {
    pub fn new(cluster: Cluster, topic: String) -> Self {
        InternalReader {
            cluster,
            topic,
            leader: None,
            next: None,
        }
    }

    /// Every record from where the last call stopped up to the high watermark.
    pub async fn read_new(&mut self) -> Result<Vec<Record>, WireError> {
        let result = self.read_inner().await;
        if result.is_err() {
            self.leader = None;
        }
        result
    }

    async fn read_inner(&mut self) -> Result<Vec<Record>, WireError> {
        if self.leader.is_none() {
            self.leader = Some(self.cluster.connect_leader(&self.topic, 0).await?);
        }
        let leader = self.leader.as_mut().expect("set above");
        let mut next = match self.next {
            Some(n) => n,
            None => self.cluster.list_offset(leader, &self.topic, 0, -2).await?,
        };
        let mut out = Vec::new();
        loop {
            let fetched = match self
                .cluster
                .fetch(
                    leader,
                    &self.topic,
                    0,
                    next,
                    Duration::ZERO,
                    4 * 1024 * 1024,
                )
                .await
            {
                Err(e) if e.code() == Some(crate::wire::code::OFFSET_OUT_OF_RANGE) => {
                    next = self.cluster.list_offset(leader, &self.topic, 0, -2).await?;
                    continue;
                }
                other => other?,
            };
            let before = next;
            for batch in fetched.batches {
                out.extend(batch.records);
                next = next.max(batch.last_offset + 1);
            }
            self.next = Some(next);
            if next >= fetched.high_watermark || next == before {
                return Ok(out);
            }
        }
    }
}
