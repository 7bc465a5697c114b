//! Checkpoints of one flow: reads the offset syncs back from the source, translates the source
//! groups' committed offsets conservatively (never past a record known to be mirrored), writes
//! MM2 `Checkpoint` records to `<source>.checkpoints.internal` on the target, and, with
//! `sync.group.offsets.enabled`, commits the translated offsets to the target's groups that
//! have no active members and are behind.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use crate::copy::FlowContext;
use crate::formats::{Checkpoint, OffsetSync};
use crate::internal::{InternalReader, InternalWriter};
use crate::wire::{Offsets, WireError};

/// Syncs kept per partition before older ones are thinned out.
const MAX_SYNCS: usize = 4096;

/// Offset syncs per source partition, ascending by upstream offset.
#[derive(Debug, Default)]
pub struct SyncStore {
    syncs: HashMap<(String, i32), Vec<(i64, i64)>>,
}

impl SyncStore {
    /// Adds a sync read from the offset-syncs topic. A sync at or before the last one's
    /// upstream offset means a restarted copier wrote that range again: the older mapping of
    /// the range is dropped.
    pub fn add(&mut self, sync: OffsetSync) {
        let v = self.syncs.entry((sync.topic, sync.partition)).or_default();
        if v.last().is_some_and(|&(u, _)| sync.upstream <= u) {
            v.retain(|&(u, _)| u < sync.upstream);
        }
        v.push((sync.upstream, sync.downstream));
        if v.len() > MAX_SYNCS {
            // Keep every second sync of the older half: old offsets still translate, coarser.
            let half = v.len() / 2;
            let mut i = 0;
            v.retain(|_| {
                let keep = i >= half || i % 2 == 0;
                i += 1;
                keep
            });
        }
    }

    /// The downstream offset a group at `upstream` resumes from on the target: exact when a
    /// sync names that offset, otherwise one past the newest sync before it (which re-reads
    /// at most the records between the sync and `upstream`, and skips none). `None` without a
    /// sync at or before `upstream`.
    pub fn translate(&self, topic: &str, partition: i32, upstream: i64) -> Option<i64> {
        let v = self.syncs.get(&(topic.to_owned(), partition))?;
        let i = v.partition_point(|&(u, _)| u <= upstream);
        let (u, d) = *v.get(i.checked_sub(1)?)?;
        Some(if u == upstream { d } else { d + 1 })
    }
}

/// The checkpoint task of a flow: every `emit.checkpoints.interval.seconds` until shutdown.
pub async fn run(flow: Arc<FlowContext>) {
    let config = &flow.config;
    let mut reader = InternalReader::new(flow.source.clone(), config.offset_syncs_topic());
    let mut writer = InternalWriter::new(flow.target.clone(), config.checkpoints_topic());
    let mut store = SyncStore::default();
    let mut emitted: BTreeMap<(String, String, i32), (i64, i64)> = BTreeMap::new();
    let mut last_group_sync: Option<Instant> = None;
    let mut shutdown = flow.shutdown.clone();
    let interval = config
        .emit_checkpoints_interval
        .min(config.sync_group_offsets_interval);
    loop {
        if !flow.leads() {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        let result = pass(
            &flow,
            &mut reader,
            &mut writer,
            &mut store,
            &mut emitted,
            &mut last_group_sync,
        )
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "checkpoint pass failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn pass(
    flow: &FlowContext,
    reader: &mut InternalReader,
    writer: &mut InternalWriter,
    store: &mut SyncStore,
    emitted: &mut BTreeMap<(String, String, i32), (i64, i64)>,
    last_group_sync: &mut Option<Instant>,
) -> Result<(), WireError> {
    let config = &flow.config;
    for record in reader.read_new().await? {
        let (Some(key), Some(value)) = (&record.key, &record.value) else {
            continue;
        };
        match OffsetSync::decode(key, value) {
            Ok(sync) => store.add(sync),
            Err(e) => {
                tracing::warn!(error = %e, offset = record.offset, "unreadable offset sync skipped")
            }
        }
    }
    let progress_group = config.progress_group();
    let groups = flow.source.list_groups().await?;
    // group → checkpoints (remote topic, partition) → (downstream, metadata)
    let mut translated: BTreeMap<String, Offsets> = BTreeMap::new();
    let mut records = Vec::new();
    for group in groups.keys() {
        if *group == progress_group
            || *group == config.members_group()
            || !config.groups.matches(group)
        {
            continue;
        }
        let mut coordinator = flow.source.coordinator(group).await?;
        let committed = flow.source.committed(&mut coordinator, group).await?;
        for ((topic, partition), (upstream, metadata)) in committed {
            if !config.mirrors_topic(&topic) {
                continue;
            }
            let Some(downstream) = store.translate(&topic, partition, upstream) else {
                continue;
            };
            let remote = config.policy.format_remote_topic(&config.source, &topic);
            translated
                .entry(group.clone())
                .or_default()
                .insert((remote.clone(), partition), (downstream, metadata.clone()));
            let key = (group.clone(), remote.clone(), partition);
            if emitted.get(&key) != Some(&(upstream, downstream)) {
                let checkpoint = Checkpoint {
                    group: group.clone(),
                    topic: remote,
                    partition,
                    upstream,
                    downstream,
                    metadata,
                };
                records.push((checkpoint.key(), checkpoint.value()));
                emitted.insert(key, (upstream, downstream));
            }
        }
    }
    if config.emit_checkpoints_enabled && !records.is_empty() {
        writer.write(&records).await?;
        flow.metrics
            .checkpoints_emitted
            .with_label_values(&[&config.source, &config.target])
            .inc_by(records.len() as u64);
    }
    let due = last_group_sync.is_none_or(|at| at.elapsed() >= config.sync_group_offsets_interval);
    if config.sync_group_offsets_enabled && due {
        *last_group_sync = Some(Instant::now());
        for (group, offsets) in &translated {
            if let Err(e) = sync_group(flow, group, offsets).await {
                tracing::warn!(group, error = %e, "group offsets not synced to the target");
            }
        }
    }
    Ok(())
}

/// Commits `offsets` to `group` on the target when the group has no members there, only for
/// partitions where the target group is behind (never moves a group backwards).
async fn sync_group(flow: &FlowContext, group: &str, offsets: &Offsets) -> Result<(), WireError> {
    let mut coordinator = flow.target.coordinator(group).await?;
    let (state, members) = flow.target.group_state(&mut coordinator, group).await?;
    if members > 0 || !(state == "Empty" || state == "Dead" || state.is_empty()) {
        tracing::debug!(
            group,
            state,
            members,
            "target group active: offsets not synced"
        );
        return Ok(());
    }
    let current = flow.target.committed(&mut coordinator, group).await?;
    let behind: Offsets = offsets
        .iter()
        .filter(|(tp, (offset, _))| current.get(*tp).is_none_or(|(c, _)| c < offset))
        .map(|(tp, v)| (tp.clone(), v.clone()))
        .collect();
    if behind.is_empty() {
        return Ok(());
    }
    tracing::info!(
        group,
        partitions = behind.len(),
        "syncing translated offsets to the target group"
    );
    flow.target.commit(&mut coordinator, group, &behind).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync(upstream: i64, downstream: i64) -> OffsetSync {
        OffsetSync {
            topic: "t".into(),
            partition: 0,
            upstream,
            downstream,
        }
    }

    #[test]
    fn translation_is_conservative() {
        let mut store = SyncStore::default();
        assert_eq!(store.translate("t", 0, 5), None);
        store.add(sync(10, 0));
        store.add(sync(110, 100));
        store.add(sync(210, 200));
        assert_eq!(store.translate("t", 0, 9), None, "before the first sync");
        assert_eq!(store.translate("t", 0, 10), Some(0), "exact");
        assert_eq!(
            store.translate("t", 0, 50),
            Some(1),
            "one past the sync before"
        );
        assert_eq!(store.translate("t", 0, 110), Some(100));
        assert_eq!(store.translate("t", 0, 1_000), Some(201));
        assert_eq!(store.translate("t", 1, 10), None, "other partition");
        // A restarted copier re-wrote from upstream 110 at downstream 250.
        store.add(sync(110, 250));
        assert_eq!(store.translate("t", 0, 110), Some(250));
        assert_eq!(
            store.translate("t", 0, 1_000),
            Some(251),
            "older mapping dropped"
        );
        assert_eq!(store.translate("t", 0, 50), Some(1));
    }

    #[test]
    fn old_syncs_are_thinned_not_dropped() {
        let mut store = SyncStore::default();
        for i in 0..(MAX_SYNCS as i64 + 1) {
            store.add(sync(i * 10, i));
        }
        let v = &store.syncs[&("t".to_owned(), 0)];
        assert!(v.len() <= MAX_SYNCS);
        assert_eq!(v[0], (0, 0));
        assert_eq!(store.translate("t", 0, 0), Some(0));
        assert_eq!(
            store.translate("t", 0, 10),
            Some(1),
            "thinned: coarser, not later"
        );
        assert_eq!(
            store.translate("t", 0, MAX_SYNCS as i64 * 10),
            Some(MAX_SYNCS as i64)
        );
    }
}
