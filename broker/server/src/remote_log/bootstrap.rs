//! KIP-405 follower bootstrap, the producer state: a replica that started its log at the remote
//! tier's tail (its fetch offset was only in the remote tier: a new replica, a lost disk) has the
//! leader epochs below from the metadata image, but would lose every producer's sequence and
//! open transaction of the data below. So the producer snapshot uploaded with the remote
//! segment ending right below its start is fetched and installed under the batches it has
//! appended since, as Kafka's `buildProducerStateFromRemote` does; a leader that moves here then
//! keeps deduplicating idempotent retries and knows the transactions still open.

use std::sync::Arc;

use strait_tiered::IndexKind;
use tracing::{info, warn};

use super::{RemoteLogManager, pass_failed, segment_key};
use crate::broker::Broker;
use crate::replica_manager::{Partition, Topic};

/// Hosted partitions whose log waits for the remote producer state, with the offset it started at.
pub fn awaiting(broker: &Broker) -> Vec<(Arc<Topic>, Arc<Partition>, i64)> {
    let mut out = Vec::new();
    for topic in broker.replicas.all_topics() {
        for p in &topic.partitions {
            if let Some(start) = p.log.remote_producer_state_pending() {
                out.push((topic.clone(), p.clone(), start));
            }
        }
    }
    out
}

/// Fetches the producer snapshot taken at `start` from the remote segment ending below it and
/// installs it. Retried on the next pass after a store failure; with no such segment in the
/// image any more (remote retention passed it), the log keeps the state its own data gives.
pub async fn install(
    broker: &Broker,
    rlm: &RemoteLogManager,
    topic: &Topic,
    partition: &Partition,
    start: i64,
) {
    let name = topic.meta.name.as_str();
    let index = partition.index;
    let image = broker.node().image();
    let segment = image.remote_partition(name, index).and_then(|r| {
        r.copied()
            .into_iter()
            .find(|s| s.end_offset == start - 1)
            .cloned()
    });
    let Some(segment) = segment else {
        warn!(
            topic = name,
            partition = index,
            start,
            "tiered storage: no remote segment ends below this replica's log start; its producer state covers only its own data"
        );
        let _ = partition.log.install_remote_producer_snapshot(start, &[]);
        return;
    };
    let key = segment_key(name, topic.meta.id, index, &segment);
    let snapshot = match rlm
        .store
        .fetch_index(&key, IndexKind::ProducerSnapshot)
        .await
    {
        Ok(bytes) => bytes,
        Err(e) => return pass_failed(name, index, "fetching the producer snapshot", &e),
    };
    match partition
        .log
        .install_remote_producer_snapshot(start, &snapshot)
    {
        Ok(true) => info!(
            topic = name,
            partition = index,
            start,
            bytes = snapshot.len(),
            "tiered storage: installed the remote tier's producer state below this replica's log start"
        ),
        Ok(false) => {}
        Err(e) => pass_failed(name, index, "installing the producer snapshot", &e),
    }
}
