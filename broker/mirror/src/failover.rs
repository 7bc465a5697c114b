//! `strait-mirror --failover`: turns every linked flow's mirror topics on the target into
//! ordinary, writable topics. Per flow: the target topics whose `strait.mirror.source` names
//! the flow's source (and whose name the flow's policy gives that source topic), a last copy of
//! the groups' offsets (skipped with a warning when the source is unreachable: that is the
//! disaster being recovered from), then `strait.mirror.source` deleted from each (the broker
//! keeps it with an empty value: failed over, writable) and the deletion verified, then the
//! transactions the source left open in the mirrored logs aborted on every partition, as
//! Kafka's `kafka-transactions.sh abort` does (KIP-664: DescribeProducers, WriteTxnMarkers),
//! until the last stable offset is the high watermark. Idempotent: topics already failed over
//! carry an empty marker and are not found.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::config::{FlowConfig, MirrorConfig};
use crate::link::copy_group_offsets;
use crate::topics::marker_belongs;
use crate::wire::{Cluster, MIRROR_SOURCE_CONFIG, WireError};

/// How long the open transactions of one partition may take to abort (the leader answers
/// NOT_LEADER_OR_FOLLOWER while it raises its epoch after the failover).
const ABORT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the last group offset copy may take (the source may be down or unreachable).
const GROUP_COPY_TIMEOUT: Duration = Duration::from_secs(30);

/// The outcome of a failover run.
#[derive(Debug, Default)]
pub struct FailoverReport {
    /// (flow, mirror topic, former marker) of topics failed over now.
    pub failed_over: Vec<(String, String, String)>,
    /// (flow, what, error) of what could not be done.
    pub failures: Vec<(String, String, String)>,
}

/// Fails over every linked flow of `config`, printing one line per topic to stdout.
pub async fn run(config: &MirrorConfig) -> FailoverReport {
    let mut report = FailoverReport::default();
    for flow in config.flows.iter().filter(|f| f.linked()) {
        let name = flow.name();
        if let Err(e) = fail_over_flow(config, flow, &mut report).await {
            println!("{name}: FAILED: {e}");
            report.failures.push((
                name.clone(),
                "the target's mirror topics".into(),
                e.to_string(),
            ));
        }
    }
    report
}

async fn fail_over_flow(
    config: &MirrorConfig,
    flow: &FlowConfig,
    report: &mut FailoverReport,
) -> Result<(), WireError> {
    let name = flow.name();
    let source = Cluster::new(&config.clusters[&flow.source], "strait-mirror-failover")?;
    let target = Cluster::new(&config.clusters[&flow.target], "strait-mirror-failover")?;
    let (topics, _) = target.topics().await?;
    let names: Vec<String> = topics.keys().cloned().collect();
    let markers = target
        .topic_config_values(&names, MIRROR_SOURCE_CONFIG)
        .await?;
    // mirror topic → (source topic, marker)
    let mine: BTreeMap<String, (String, String)> = markers
        .into_iter()
        .filter_map(|(remote, marker)| {
            let topic = marker_belongs(flow, &remote, &marker)?;
            Some((remote, (topic, marker)))
        })
        .collect();
    if mine.is_empty() {
        println!(
            "{name}: nothing to fail over (no mirror topic of {} on {})",
            flow.source, flow.target
        );
        return Ok(());
    }
    let linked: BTreeMap<String, String> = mine
        .iter()
        .map(|(remote, (topic, _))| (topic.clone(), remote.clone()))
        .collect();
    match tokio::time::timeout(
        GROUP_COPY_TIMEOUT,
        copy_group_offsets(flow, &source, &target, &linked),
    )
    .await
    {
        Ok(Ok(copy)) => println!(
            "{name}: group offsets copied: {} groups, {} partitions ({} groups active on {} left alone, {} failed)",
            copy.groups, copy.partitions, copy.active, flow.target, copy.failed
        ),
        Ok(Err(e)) => println!(
            "{name}: WARNING: last group offset copy failed ({e}); the target groups keep the offsets copied before"
        ),
        Err(_) => println!(
            "{name}: WARNING: last group offset copy timed out after {GROUP_COPY_TIMEOUT:?} (source unreachable?); the target groups keep the offsets copied before"
        ),
    }
    for (remote, (_, marker)) in mine {
        let result = async {
            target
                .delete_topic_config(&remote, MIRROR_SOURCE_CONFIG)
                .await?;
            let left = target
                .topic_config_values(std::slice::from_ref(&remote), MIRROR_SOURCE_CONFIG)
                .await?;
            Ok::<_, WireError>(left.get(&remote).cloned())
        }
        .await;
        let partitions = topics.get(&remote).copied().unwrap_or(0);
        let result = match result {
            Ok(None) => abort_open_transactions(&name, &target, &remote, partitions)
                .await
                .map(|()| None),
            other => other,
        };
        match result {
            Ok(None) => {
                println!("{name}: {remote}: failed over (was a mirror of {marker}); writable now");
                report.failed_over.push((name.clone(), remote, marker));
            }
            Ok(Some(still)) => {
                let e = format!("{MIRROR_SOURCE_CONFIG} still {still:?} after the delete");
                println!("{name}: {remote}: FAILED: {e}");
                report.failures.push((name.clone(), remote, e));
            }
            Err(e) => {
                println!("{name}: {remote}: FAILED: {e}");
                report.failures.push((name.clone(), remote, e.to_string()));
            }
        }
    }
    Ok(())
}

/// Aborts, on every partition of `topic`, the transactions left open in the mirrored log, and
/// waits until each partition's last stable offset is its high watermark.
async fn abort_open_transactions(
    flow: &str,
    target: &Cluster,
    topic: &str,
    partitions: i32,
) -> Result<(), WireError> {
    for partition in 0..partitions {
        let deadline = Instant::now() + ABORT_TIMEOUT;
        loop {
            match abort_partition(flow, target, topic, partition).await {
                Ok(true) => break,
                Ok(false) if Instant::now() < deadline => {}
                Ok(false) => {
                    return Err(WireError::Records {
                        cluster: target.alias.clone(),
                        what: format!("{topic}-{partition}"),
                        detail: format!(
                            "transactions still open after {ABORT_TIMEOUT:?} (read_committed end below the high watermark)"
                        ),
                    });
                }
                Err(e) if Instant::now() < deadline => {
                    tracing::info!(%topic, partition, error = %e, "aborting open transactions: retrying");
                }
                Err(e) => {
                    return Err(WireError::Records {
                        cluster: target.alias.clone(),
                        what: format!("{topic}-{partition}"),
                        detail: format!(
                            "open transactions not aborted ({e}); the topic is failed over, so a new run will not retry: abort them with kafka-transactions.sh abort (DescribeProducers names them)"
                        ),
                    });
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// One attempt on one partition: abort what DescribeProducers reports open, then whether the
/// partition has nothing open left (read_committed latest == read_uncommitted latest).
async fn abort_partition(
    flow: &str,
    target: &Cluster,
    topic: &str,
    partition: i32,
) -> Result<bool, WireError> {
    let mut leader = target.connect_leader(topic, partition).await?;
    for txn in target
        .open_transactions(&mut leader, topic, partition)
        .await?
    {
        target
            .abort_transaction(&mut leader, topic, partition, &txn)
            .await?;
        println!(
            "{flow}: {topic}-{partition}: aborted the transaction producer {} (epoch {}) left open at offset {}",
            txn.producer_id, txn.producer_epoch, txn.start_offset
        );
    }
    let stable = target
        .list_offset_isolated(&mut leader, topic, partition, -1, 1)
        .await?;
    let end = target
        .list_offset_isolated(&mut leader, topic, partition, -1, 0)
        .await?;
    Ok(stable == end)
}
