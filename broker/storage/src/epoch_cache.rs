//! Leader epoch cache (Kafka's `LeaderEpochFileCache`, KIP-101): the start offset of every leader
//! epoch in the log, persisted to `leader-epoch-checkpoint` whenever it changes.

use std::path::PathBuf;

use crate::LogError;
use crate::checkpoint::{read_epochs, write_epochs};

#[derive(Debug)]
pub(crate) struct EpochCache {
    path: PathBuf,
    /// (epoch, start offset), both strictly increasing.
    entries: Vec<(i32, i64)>,
}

impl EpochCache {
    pub fn load(path: PathBuf) -> Result<EpochCache, LogError> {
        let mut entries = read_epochs(&path)?;
        // Keep only a monotonic prefix, as Kafka does when it finds non-monotonic entries.
        let mut keep = 0;
        for i in 0..entries.len() {
            if i > 0 && (entries[i].0 <= entries[i - 1].0 || entries[i].1 < entries[i - 1].1) {
                break;
            }
            keep = i + 1;
        }
        entries.truncate(keep);
        Ok(EpochCache { path, entries })
    }

    /// Persists to `path` from now on (a replica moved between log dirs).
    pub(crate) fn relocate(&mut self, path: PathBuf) -> Result<(), LogError> {
        self.path = path;
        self.persist()
    }

    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    fn persist(&self) -> Result<(), LogError> {
        write_epochs(&self.path, &self.entries).map_err(LogError::Io)
    }

    /// The entries after assigning each (epoch, start offset) in turn, or None if nothing changes
    /// (a leader append assigns one epoch; a follower's may carry batches of several). Each
    /// assignment of an epoch other than the latest drops later or equal epochs and entries
    /// starting at or after its offset, as in Kafka's `assign`; negative epochs are ignored.
    pub fn with_assigned(&self, assignments: &[(i32, i64)]) -> Option<Vec<(i32, i64)>> {
        let mut entries: Option<Vec<(i32, i64)>> = None;
        for &(epoch, start_offset) in assignments {
            let current = entries.as_deref().unwrap_or(&self.entries);
            if epoch < 0 || current.last().map(|&(e, _)| e) == Some(epoch) {
                continue;
            }
            let mut next: Vec<(i32, i64)> = current
                .iter()
                .copied()
                .filter(|&(e, o)| e < epoch && o < start_offset)
                .collect();
            next.push((epoch, start_offset));
            entries = Some(next);
        }
        entries
    }

    /// Installs and persists entries computed by [`Self::with_assigned`]; memory is only updated
    /// once the file is written.
    pub fn install(&mut self, entries: Vec<(i32, i64)>) -> Result<(), LogError> {
        write_epochs(&self.path, &entries)?;
        self.entries = entries;
        Ok(())
    }

    /// Drops epochs starting at or after `end_offset` (the log was truncated there).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<(), LogError> {
        let keep = self.entries.partition_point(|&(_, o)| o < end_offset);
        if keep != self.entries.len() {
            self.entries.truncate(keep);
            self.persist()?;
        }
        Ok(())
    }

    /// Log start moved to `start_offset`: epochs wholly before it go, and the epoch covering it
    /// now starts there.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Result<(), LogError> {
        let below = self.entries.partition_point(|&(_, o)| o < start_offset);
        if below == 0 {
            return Ok(());
        }
        let covering = self.entries[below - 1].0;
        self.entries.drain(..below);
        if self.entries.first().map(|&(_, o)| o) != Some(start_offset) {
            self.entries.insert(0, (covering, start_offset));
        }
        self.persist()
    }

    pub fn clear(&mut self) -> Result<(), LogError> {
        if !self.entries.is_empty() {
            self.entries.clear();
            self.persist()?;
        }
        Ok(())
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|&(e, _)| e)
    }

    /// Kafka's `endOffsetFor`: for the latest epoch, the log end; otherwise the start offset of the
    /// first later epoch, paired with the largest known epoch <= the requested one (or the
    /// requested epoch when it predates the cache). None for unknown/undefined epochs.
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        if epoch < 0 {
            return None;
        }
        if self.latest_epoch() == Some(epoch) {
            return Some((epoch, log_end_offset));
        }
        let higher = self.entries.partition_point(|&(e, _)| e <= epoch);
        let &(_, higher_start) = self.entries.get(higher)?;
        if higher == 0 {
            Some((epoch, higher_start))
        } else {
            Some((self.entries[higher - 1].0, higher_start))
        }
    }
}

/// `local` with the epochs of `remote` (the remote tier's, oldest first) that start below it put
/// in front, and everything below `floor` (the log start) folded into the epoch covering it; None
/// when that changes nothing. The result stays strictly increasing in both epoch and offset: a
/// remote entry that is not (a stale or overlapping segment) is skipped, and a local first
/// entry continuing the last remote epoch goes (local retention moved its start forward).
pub(crate) fn with_prefix(
    local: &[(i32, i64)],
    remote: &[(i32, i64)],
    floor: i64,
) -> Option<Vec<(i32, i64)>> {
    let first_local = local.first().copied();
    let mut out: Vec<(i32, i64)> = Vec::new();
    for &(epoch, start) in remote {
        if let Some((local_epoch, local_start)) = first_local
            && (start >= local_start || epoch > local_epoch)
        {
            break;
        }
        match out.last() {
            Some(&(e, o)) if epoch <= e || start <= o => continue,
            _ => out.push((epoch, start)),
        }
    }
    for &(epoch, start) in local {
        match out.last() {
            Some(&(e, _)) if epoch == e => continue,
            Some(&(e, o)) if epoch < e || start <= o => continue,
            _ => out.push((epoch, start)),
        }
    }
    // The log start: epochs wholly below it go, the one covering it starts there.
    let below = out.partition_point(|&(_, o)| o < floor);
    if below > 0 {
        let covering = out[below - 1].0;
        out.drain(..below);
        if out.first().map(|&(_, o)| o) != Some(floor) {
            out.insert(0, (covering, floor));
        }
    }
    (out != local).then_some(out)
}

/// The epoch of the leader that wrote `offset`, from a snapshot of the entries.
pub(crate) fn epoch_for_offset(entries: &[(i32, i64)], offset: i64) -> Option<i32> {
    let n = entries.partition_point(|&(_, o)| o <= offset);
    (n > 0).then(|| entries[n - 1].0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> (tempfile::TempDir, EpochCache) {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = EpochCache::load(dir.path().join("leader-epoch-checkpoint")).expect("load");
        (dir, c)
    }

    fn assign(c: &mut EpochCache, e: i32, o: i64) {
        if let Some(v) = c.with_assigned(&[(e, o)]) {
            c.install(v).expect("install");
        }
    }

    #[test]
    fn kafka_end_offset_semantics() {
        let (_d, mut c) = cache();
        assert_eq!(c.end_offset_for(0, 10), None);
        assign(&mut c, 2, 0);
        assign(&mut c, 2, 5); // same epoch: no new entry
        assign(&mut c, 4, 10);
        assign(&mut c, 7, 20);
        assert_eq!(c.entries(), &[(2, 0), (4, 10), (7, 20)]);
        assert_eq!(c.end_offset_for(7, 30), Some((7, 30)));
        assert_eq!(c.end_offset_for(4, 30), Some((4, 20)));
        assert_eq!(c.end_offset_for(5, 30), Some((4, 20)));
        assert_eq!(c.end_offset_for(1, 30), Some((1, 0)));
        assert_eq!(c.end_offset_for(9, 30), None);
        assert_eq!(c.end_offset_for(-1, 30), None);
        assert_eq!(epoch_for_offset(c.entries(), 15), Some(4));
        assert_eq!(epoch_for_offset(c.entries(), 25), Some(7));
    }

    #[test]
    fn several_assignments_fold_in_order() {
        let (_d, mut c) = cache();
        assign(&mut c, 1, 0);
        assert_eq!(c.with_assigned(&[(1, 5), (-1, 6)]), None);
        let all = c
            .with_assigned(&[(1, 5), (2, 7), (2, 9), (4, 12)])
            .expect("changed");
        assert_eq!(all, vec![(1, 0), (2, 7), (4, 12)]);
        c.install(all).expect("install");
        assert_eq!(c.latest_epoch(), Some(4));
    }

    #[test]
    fn the_remote_tiers_epochs_fill_in_below_the_local_ones() {
        // Local retention left the local log at 1000, inside epoch 3.
        let local = [(3, 1000), (5, 1500)];
        let remote = [(0, 0), (3, 500), (3, 700), (5, 1500)];
        assert_eq!(
            with_prefix(&local, &remote, 0),
            Some(vec![(0, 0), (3, 500), (5, 1500)])
        );
        // Remote retention moved the log start to 600: epoch 3 now starts there.
        assert_eq!(
            with_prefix(&local, &remote, 600),
            Some(vec![(3, 600), (5, 1500)])
        );
        // Nothing to add: no change.
        let whole = [(0, 0), (3, 500), (5, 1500)];
        assert_eq!(with_prefix(&whole, &remote, 0), None);
        // A replica that started its log at the remote tail takes every remote epoch.
        assert_eq!(
            with_prefix(&[], &[(1, 0), (2, 40)], 0),
            Some(vec![(1, 0), (2, 40)])
        );
        // A stale remote entry above the local epochs is ignored.
        assert_eq!(
            with_prefix(&[(2, 100)], &[(1, 0), (7, 50)], 0),
            Some(vec![(1, 0), (2, 100)])
        );
    }

    #[test]
    fn truncation_and_persistence() {
        let (d, mut c) = cache();
        assign(&mut c, 1, 0);
        assign(&mut c, 3, 10);
        assign(&mut c, 5, 20);
        c.truncate_from_end(20).expect("truncate");
        assert_eq!(c.entries(), &[(1, 0), (3, 10)]);
        c.truncate_from_start(12).expect("truncate");
        assert_eq!(c.entries(), &[(3, 12)]);
        let text = std::fs::read_to_string(d.path().join("leader-epoch-checkpoint")).expect("read");
        assert_eq!(text, "0\n1\n3 12\n");
        // A lower epoch than the latest replaces later entries (follower divergence).
        assign(&mut c, 2, 12);
        assert_eq!(c.entries(), &[(2, 12)]);
        let reloaded = EpochCache::load(d.path().join("leader-epoch-checkpoint")).expect("load");
        assert_eq!(reloaded.entries(), &[(2, 12)]);
    }
}
