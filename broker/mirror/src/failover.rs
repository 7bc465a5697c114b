//! `strait-mirror --failover`: turns every linked flow's mirror topics on the target into
//! ordinary, writable topics. Per flow: the target topics whose `strait.mirror.source` names
//! the flow's source (and whose name the flow's policy gives that source topic), a last copy of
//! the groups' offsets (skipped with a warning when the source is unreachable: that is the
//! disaster being recovered from), then `strait.mirror.source` deleted from each and the
//! deletion verified. Idempotent: topics already failed over carry no marker and are not found.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{FlowConfig, MirrorConfig};
use crate::link::copy_group_offsets;
use crate::topics::marker_belongs;
use crate::wire::{Cluster, MIRROR_SOURCE_CONFIG, WireError};

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
