//! Runs the flows of a configuration: per flow, the internal topics, the offset-sync writer,
//! heartbeats, checkpoints, and a topic-sync loop that starts one copier per mirrored partition
//! (and stops those of topics no longer mirrored) every `refresh.topics.interval.seconds`, and
//! the topic ACL sync.
//! A linked flow runs heartbeats, the group offset copy and one linker per partition instead
//! (no offset syncs, no checkpoints).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{FlowConfig, MirrorConfig};
use crate::copy::{FlowContext, copy_partition};
use crate::internal::{InternalWriter, offset_sync_writer};
use crate::link::link_partition;
use crate::metrics::{Metrics, PartitionLabels};
use crate::topics::{ensure_internal_topics, sync_linked_topics, sync_topics};
use crate::wire::{Cluster, WireError};
use crate::{acls, checkpoint, group, heartbeat, link};

/// Runs every flow of `config` until `shutdown` turns true; copiers commit their progress
/// before this returns.
pub async fn run(
    config: MirrorConfig,
    metrics: Metrics,
    shutdown: watch::Receiver<bool>,
) -> Result<(), WireError> {
    let mut flows = Vec::new();
    for flow in &config.flows {
        let source = Cluster::new(&config.clusters[&flow.source], "strait-mirror")?;
        let target = Cluster::new(&config.clusters[&flow.target], "strait-mirror")?;
        flows.push(tokio::spawn(run_flow(
            flow.clone(),
            source,
            target,
            metrics.clone(),
            shutdown.clone(),
        )));
    }
    for f in flows {
        let _ = f.await;
    }
    Ok(())
}

async fn run_flow(
    config: FlowConfig,
    source: Cluster,
    target: Cluster,
    metrics: Metrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = config.name();
    // Internal topics first: without them nothing else of the flow can be written.
    let mut backoff = Duration::from_millis(200);
    loop {
        match ensure_internal_topics(&config, &source, &target).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(flow = %name, error = %e, "internal topics not ready; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    let (share_tx, mut share_rx) = watch::channel(None);
    let membership = tokio::spawn(group::run(
        source.clone(),
        config.members_group(),
        share_tx,
        shutdown.clone(),
    ));
    let (syncs_tx, syncs_rx) = mpsc::unbounded_channel();
    let flow = Arc::new(FlowContext {
        config: config.clone(),
        source: source.clone(),
        target: target.clone(),
        metrics,
        syncs: syncs_tx,
        shutdown: shutdown.clone(),
        share: share_rx.clone(),
        linked: std::sync::Mutex::new(BTreeMap::new()),
    });
    let linked = config.linked();
    let mut side_tasks = vec![membership];
    if !linked {
        // Linked flows keep offsets: no offset syncs, no checkpoints (the channel's sends
        // are dropped).
        side_tasks.push(tokio::spawn(offset_sync_writer(
            InternalWriter::new(source.clone(), config.offset_syncs_topic()),
            syncs_rx,
            shutdown.clone(),
        )));
    }
    if config.emit_heartbeats_enabled {
        side_tasks.push(tokio::spawn(heartbeat::run(flow.clone())));
    }
    if config.sync_topic_acls_enabled {
        side_tasks.push(tokio::spawn(acls::run(flow.clone())));
    }
    if linked {
        if config.sync_group_offsets_enabled {
            side_tasks.push(tokio::spawn(link::run_group_sync(flow.clone())));
        }
    } else if config.emit_checkpoints_enabled || config.sync_group_offsets_enabled {
        side_tasks.push(tokio::spawn(checkpoint::run(flow.clone())));
    }
    let mut warned = BTreeSet::new();
    tracing::info!(flow = %name, mode = ?config.mode, "flow started");
    let mut copiers: HashMap<(String, i32), JoinHandle<()>> = HashMap::new();
    loop {
        let share = *share_rx.borrow_and_update();
        let result = match share {
            Some(_) if linked => {
                let result = sync_linked_topics(&config, &source, &target, &mut warned).await;
                if let (Ok(topics), Ok(mut map)) = (&result, flow.linked.lock()) {
                    *map = topics
                        .iter()
                        .map(|m| (m.topic.clone(), m.remote.clone()))
                        .collect();
                }
                result
            }
            Some(_) => sync_topics(&config, &source, &target).await,
            // No share while the group rebalances: every copier stops.
            None => Ok(Vec::new()),
        };
        match result {
            Ok(mirrored) => {
                let mut wanted = std::collections::HashSet::new();
                for m in &mirrored {
                    for partition in 0..m.partitions {
                        if !share.is_some_and(|s| s.owns(&m.topic, partition)) {
                            continue;
                        }
                        let key = (m.topic.clone(), partition);
                        wanted.insert(key.clone());
                        let running = copiers.get(&key).is_some_and(|h| !h.is_finished());
                        if !running {
                            let (topic, remote) = (m.topic.clone(), m.remote.clone());
                            let task = if linked {
                                tokio::spawn(link_partition(flow.clone(), topic, partition, remote))
                            } else {
                                tokio::spawn(copy_partition(flow.clone(), topic, partition, remote))
                            };
                            copiers.insert(key, task);
                        }
                    }
                }
                let gone: Vec<(String, i32)> = copiers
                    .keys()
                    .filter(|key| !wanted.contains(*key))
                    .cloned()
                    .collect();
                for key in gone {
                    let Some(handle) = copiers.remove(&key) else {
                        continue;
                    };
                    tracing::info!(topic = %key.0, partition = key.1, "no longer mirrored: copier stopped");
                    handle.abort();
                    // Awaited first: a copier still running could set its gauges again.
                    let _ = handle.await;
                    let partition = key.1.to_string();
                    flow.metrics.forget_partition(&PartitionLabels {
                        source: &config.source,
                        target: &config.target,
                        topic: &key.0,
                        partition: &partition,
                    });
                }
            }
            Err(e) => tracing::warn!(flow = %name, error = %e, "topic sync failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.refresh_topics_interval) => {}
            _ = share_rx.changed() => {}
            _ = shutdown.changed() => break,
        }
    }
    for (_, handle) in copiers {
        let _ = handle.await;
    }
    for task in side_tasks {
        let _ = task.await;
    }
    tracing::info!(flow = %name, "flow stopped");
}
