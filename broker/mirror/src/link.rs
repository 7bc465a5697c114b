//! Linked (offset-preserving) mode: per partition, raw record batches fetched from the source
//! leader (read_uncommitted) are handed verbatim to the target leader as link appends, so the
//! mirror topic's log is the source's byte for byte, at the same offsets. The resume point is
//! the target's log end (no progress store): the target refuses a batch below its end with
//! OFFSET_OUT_OF_RANGE naming the end. A topic failed over answers "not a mirror topic" and
//! its partitions stop. Also the 1:1 copy of consumer group offsets onto the mirror topics.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strait_client::Connection;

use crate::config::FlowConfig;
use crate::copy::{FlowContext, PartitionLeaders};
use crate::internal::now_ms;
use crate::metrics::PartitionLabels;
use crate::wire::{BatchHeader, Cluster, LinkAppend, Offsets, WireError, code, whole_batches};

/// How long a Fetch waits for records at the source.
const FETCH_WAIT: Duration = Duration::from_millis(500);
/// Bytes asked per Fetch (and so the most one link append carries, short of one larger batch).
const FETCH_BYTES: i32 = 4 * 1024 * 1024;
/// Link append deadline at the target.
const APPEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The fetched batches a link append carries: complete batches from the first one that is
/// neither wholly before `next` nor (when the target's log end is known) starting below that
/// end, which the target already holds. Returns the byte offset the send starts at and the
/// headers of the batches sent (contiguous to the end of `headers`).
pub fn batches_to_send(
    headers: &[BatchHeader],
    next: i64,
    target_end: Option<i64>,
) -> (usize, &[BatchHeader]) {
    let mut skip_bytes = 0;
    let mut first = 0;
    for h in headers {
        let behind = h.last_offset < next || target_end.is_some_and(|end| h.base_offset < end);
        if !behind {
            break;
        }
        skip_bytes += h.size;
        first += 1;
    }
    (skip_bytes, &headers[first..])
}

/// Where to fetch the source from after it answered OFFSET_OUT_OF_RANGE at `next`, given its
/// log start and end: its earliest offset when `next` was deleted there (the target accepts
/// the gap), `next` again when it is within range now (a race with retention or a leader
/// change), `None` when the target is ahead of the source (the source topic was truncated or
/// recreated: nothing can be appended until it grows past the target).
pub fn source_resume(next: i64, earliest: i64, latest: i64) -> Option<i64> {
    if next < earliest {
        Some(earliest)
    } else if next <= latest {
        Some(next)
    } else {
        None
    }
}

/// The offset to commit to a target group for a partition: the source group's committed
/// offset, capped at the mirror partition's high watermark (records not yet mirrored are read
/// from the source's successor position, never skipped), and `None` when the target group is
/// already there or further (a group never moves backwards).
pub fn group_offset_to_commit(
    source_committed: i64,
    target_high_watermark: i64,
    target_committed: Option<i64>,
) -> Option<i64> {
    let offset = source_committed.min(target_high_watermark);
    if offset < 0 || target_committed.is_some_and(|c| c >= offset) {
        None
    } else {
        Some(offset)
    }
}

/// Links `topic`/`partition` into `remote`/`partition` until shutdown, the task is aborted, or
/// the target says `remote` is no longer a mirror topic (failed over).
pub async fn link_partition(flow: Arc<FlowContext>, topic: String, partition: i32, remote: String) {
    let mut linker = Linker {
        labels_partition: partition.to_string(),
        flow,
        topic,
        partition,
        remote,
        leaders: PartitionLeaders::default(),
        next: None,
        target_end: None,
    };
    linker.run().await;
}

enum Step {
    Continue,
    FailedOver(String),
}

struct Linker {
    flow: Arc<FlowContext>,
    topic: String,
    partition: i32,
    remote: String,
    labels_partition: String,
    leaders: PartitionLeaders,
    /// The next source offset to fetch.
    next: Option<i64>,
    /// The target partition's log end as last learnt (at least its high watermark).
    target_end: Option<i64>,
}

impl Linker {
    fn labels(&self) -> PartitionLabels<'_> {
        PartitionLabels {
            source: &self.flow.config.source,
            target: &self.flow.config.target,
            topic: &self.topic,
            partition: &self.labels_partition,
        }
    }

    async fn run(&mut self) {
        let mut failures = 0u32;
        while !self.flow.stopping() {
            match self.step().await {
                Ok(Step::Continue) => failures = 0,
                Ok(Step::FailedOver(message)) => {
                    tracing::warn!(topic = %self.topic, partition = self.partition, remote = %self.remote, %message, "target is no longer a mirror topic (failed over): partition stopped");
                    return;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let backoff = Duration::from_millis(100 * u64::from(failures.min(50)));
                    tracing::warn!(topic = %self.topic, partition = self.partition, error = %e, "link step failed; retrying in {backoff:?}");
                    self.forget_connections(&e);
                    let mut shutdown = self.flow.shutdown.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }

    fn forget_connections(&mut self, e: &WireError) {
        if PartitionLeaders::must_reconnect(e, &[]) {
            self.leaders.forget();
        }
    }

    async fn source_leader(&mut self) -> Result<&mut Connection, WireError> {
        self.leaders
            .source(&self.flow, &self.topic, self.partition)
            .await
    }

    async fn target_leader(&mut self) -> Result<&mut Connection, WireError> {
        self.leaders
            .target(&self.flow, &self.remote, self.partition)
            .await
    }

    /// One Fetch from the source and, when it returned whole batches, one link append.
    async fn step(&mut self) -> Result<Step, WireError> {
        let flow = self.flow.clone();
        let (topic, partition, remote) = (self.topic.clone(), self.partition, self.remote.clone());
        let next = match self.next {
            Some(n) => n,
            None => {
                // The target's end is the resume point; a high watermark below the log end is
                // corrected by the first append's OFFSET_OUT_OF_RANGE.
                let leader = self.target_leader().await?;
                let end = flow
                    .target
                    .list_offset(leader, &remote, partition, -1)
                    .await?;
                tracing::info!(%topic, partition, %remote, from = end, "linking partition");
                self.next = Some(end);
                self.target_end = Some(end);
                end
            }
        };
        let leader = self.source_leader().await?;
        let fetched = match flow
            .source
            .fetch_raw(leader, &topic, partition, next, FETCH_WAIT, FETCH_BYTES)
            .await
        {
            Err(e) if e.code() == Some(code::OFFSET_OUT_OF_RANGE) => {
                let earliest = flow
                    .source
                    .list_offset(leader, &topic, partition, -2)
                    .await?;
                let latest = flow
                    .source
                    .list_offset(leader, &topic, partition, -1)
                    .await?;
                return match source_resume(next, earliest, latest) {
                    Some(at) => {
                        tracing::warn!(%topic, partition, from = next, to = at, earliest, latest, "offset out of range on the source: resuming from its earliest offset");
                        self.next = Some(at);
                        Ok(Step::Continue)
                    }
                    None => Err(WireError::Records {
                        cluster: flow.source.alias.clone(),
                        what: format!("{topic}-{partition}"),
                        detail: format!(
                            "the mirror topic's end {next} is beyond the source's end {latest}: the source was truncated or recreated; nothing is linked until it grows past it"
                        ),
                    }),
                };
            }
            other => other?,
        };
        let fetched_at = now_ms();
        // Lag as of this fetch, before the append: a target refusing appends shows the
        // backlog growing.
        self.report_lag(fetched.high_watermark, next);
        let (headers, complete) =
            whole_batches(&fetched.records).map_err(|detail| WireError::Records {
                cluster: flow.source.alias.clone(),
                what: format!("{topic}-{partition}"),
                detail,
            })?;
        let (skip, send) = batches_to_send(&headers, next, self.target_end);
        if let Some(end) = self.target_end
            && headers
                .iter()
                .any(|h| h.base_offset < end && h.last_offset >= end.max(next))
        {
            tracing::warn!(%topic, partition, end, "a source batch straddles the mirror topic's end (records deleted inside a batch on the source): it cannot be linked and is skipped");
        }
        let Some(last) = send.last() else {
            if let Some(h) = headers.last() {
                // Everything fetched is on the target already.
                self.next = Some(next.max(h.last_offset + 1));
            } else if complete == 0 && fetched.records.len() >= FETCH_BYTES as usize {
                return Err(WireError::Records {
                    cluster: flow.source.alias.clone(),
                    what: format!("{topic}-{partition}"),
                    detail: format!("no whole batch in {FETCH_BYTES} bytes at offset {next}"),
                });
            }
            if fetched.high_watermark <= self.next.unwrap_or(next) {
                flow.metrics
                    .last_copy_timestamp_seconds
                    .with_label_values(&self.labels().values())
                    .set(fetched_at as f64 / 1000.0);
            }
            return Ok(Step::Continue);
        };
        let first_base = send[0].base_offset;
        let next_after = last.last_offset + 1;
        let bytes = fetched.records.slice(skip..complete);
        let byte_count = bytes.len() as u64;
        let leader = self.target_leader().await?;
        let answer = flow
            .target
            .link_append(leader, &remote, partition, bytes, APPEND_TIMEOUT)
            .await?;
        match answer {
            LinkAppend::Appended { .. } => {
                let acked_at = now_ms();
                let data: Vec<&BatchHeader> = send.iter().filter(|h| !h.control).collect();
                let records: u64 = data.iter().map(|h| h.records.max(0) as u64).sum();
                let ages: Vec<f64> = data
                    .iter()
                    .map(|h| (fetched_at - h.max_timestamp).max(0) as f64)
                    .collect();
                let latencies: Vec<f64> = data
                    .iter()
                    .map(|h| (acked_at - h.max_timestamp).max(0) as f64)
                    .collect();
                flow.metrics
                    .copied(&self.labels(), records, byte_count, &ages, &latencies);
                flow.metrics
                    .last_copy_timestamp_seconds
                    .with_label_values(&self.labels().values())
                    .set(acked_at as f64 / 1000.0);
                self.next = Some(next_after);
                self.target_end = Some(next_after);
                self.report_lag(fetched.high_watermark, next_after);
                Ok(Step::Continue)
            }
            LinkAppend::OutOfRange { log_end } => {
                tracing::info!(%topic, partition, %remote, sent = first_base, log_end, "mirror topic ends elsewhere: resuming the source from its end");
                self.next = Some(log_end);
                self.target_end = Some(log_end);
                Ok(Step::Continue)
            }
            LinkAppend::NotMirror { message } => {
                let labels_partition = self.labels_partition.clone();
                flow.metrics.forget_partition(&PartitionLabels {
                    source: &flow.config.source,
                    target: &flow.config.target,
                    topic: &topic,
                    partition: &labels_partition,
                });
                Ok(Step::FailedOver(message))
            }
        }
    }

    fn report_lag(&self, high_watermark: i64, next: i64) {
        self.flow
            .metrics
            .partition_lag_records
            .with_label_values(&self.labels().values())
            .set((high_watermark - next).max(0));
    }
}

/// What one group offset copy did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GroupCopy {
    /// Groups whose offsets were committed on the target.
    pub groups: usize,
    /// Partitions committed.
    pub partitions: usize,
    /// Groups skipped because they have members on the target.
    pub active: usize,
    /// Groups that failed (logged).
    pub failed: usize,
}

/// Copies the committed offsets of the source's groups (`groups`/`groups.exclude`, not the
/// mirror's own) on the `linked` topics (source topic → mirror topic) to the same groups on the
/// target, 1:1 capped at the mirror partition's high watermark, with the same metadata; only
/// into groups without members there and never backwards.
pub async fn copy_group_offsets(
    config: &FlowConfig,
    source: &Cluster,
    target: &Cluster,
    linked: &BTreeMap<String, String>,
) -> Result<GroupCopy, WireError> {
    let mut report = GroupCopy::default();
    if linked.is_empty() {
        return Ok(report);
    }
    let groups = source.list_groups().await?;
    let mut high_watermarks: HashMap<(String, i32), i64> = HashMap::new();
    for group in groups.keys() {
        if *group == config.members_group()
            || *group == config.progress_group()
            || !config.groups.matches(group)
        {
            continue;
        }
        match copy_group(source, target, linked, group, &mut high_watermarks).await {
            Ok(None) => report.active += 1,
            Ok(Some(0)) => {}
            Ok(Some(n)) => {
                report.groups += 1;
                report.partitions += n;
            }
            Err(e) => {
                report.failed += 1;
                tracing::warn!(group, error = %e, "group offsets not copied to the target");
            }
        }
    }
    Ok(report)
}

/// One group: `None` when it has members on the target, else the partitions committed.
async fn copy_group(
    source: &Cluster,
    target: &Cluster,
    linked: &BTreeMap<String, String>,
    group: &str,
    high_watermarks: &mut HashMap<(String, i32), i64>,
) -> Result<Option<usize>, WireError> {
    let mut coordinator = source.coordinator(group).await?;
    let committed = source.committed(&mut coordinator, group).await?;
    let wanted: Offsets = committed
        .into_iter()
        .filter_map(|((topic, partition), v)| Some(((linked.get(&topic)?.clone(), partition), v)))
        .collect();
    if wanted.is_empty() {
        return Ok(Some(0));
    }
    let mut coordinator = target.coordinator(group).await?;
    let (state, members) = target.group_state(&mut coordinator, group).await?;
    if members > 0 || !(state == "Empty" || state == "Dead" || state.is_empty()) {
        tracing::debug!(
            group,
            state,
            members,
            "target group active: offsets not copied"
        );
        return Ok(None);
    }
    let current = target.committed(&mut coordinator, group).await?;
    let mut commit = Offsets::new();
    for ((remote, partition), (offset, metadata)) in wanted {
        let key = (remote.clone(), partition);
        let hw = match high_watermarks.get(&key) {
            Some(hw) => *hw,
            None => {
                let mut leader = target.connect_leader(&remote, partition).await?;
                let hw = target
                    .list_offset(&mut leader, &remote, partition, -1)
                    .await?;
                high_watermarks.insert(key.clone(), hw);
                hw
            }
        };
        let have = current.get(&key).map(|(c, _)| *c);
        if let Some(offset) = group_offset_to_commit(offset, hw, have) {
            commit.insert(key, (offset, metadata));
        }
    }
    if commit.is_empty() {
        return Ok(Some(0));
    }
    tracing::info!(
        group,
        partitions = commit.len(),
        "copying group offsets to the target"
    );
    target.commit(&mut coordinator, group, &commit).await?;
    Ok(Some(commit.len()))
}

/// The group offset copy task of a linked flow: every `sync.group.offsets.interval.seconds`,
/// by the first member of the mirror group, over the topics the flow currently links.
pub async fn run_group_sync(flow: Arc<FlowContext>) {
    let mut shutdown = flow.shutdown.clone();
    let interval = flow.config.sync_group_offsets_interval;
    let mut last: Option<Instant> = None;
    loop {
        let due = last.is_none_or(|at| at.elapsed() >= interval);
        if flow.leads() && due {
            last = Some(Instant::now());
            let linked = flow.linked_topics();
            match copy_group_offsets(&flow.config, &flow.source, &flow.target, &linked).await {
                Ok(r) if r.partitions > 0 => tracing::info!(
                    groups = r.groups,
                    partitions = r.partitions,
                    "group offsets copied"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "group offset copy failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval.min(Duration::from_secs(1))) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(base: i64, last: i64, size: usize) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            last_offset: last,
            size,
            control: false,
            records: i32::try_from(last - base + 1).unwrap(),
            max_timestamp: 0,
        }
    }

    #[test]
    fn sends_from_the_first_batch_the_target_lacks() {
        let headers = vec![header(0, 4, 100), header(5, 9, 80), header(10, 10, 70)];
        let (skip, send) = batches_to_send(&headers, 0, Some(0));
        assert_eq!((skip, send.len()), (0, 3));
        let (skip, send) = batches_to_send(&headers, 5, Some(5));
        assert_eq!((skip, send[0].base_offset), (100, 5));
        // The fetch offset inside a batch, with the target's end unknown (after a source
        // reset to a log start inside a batch): the whole batch goes, verbatim.
        let (skip, send) = batches_to_send(&headers, 7, None);
        assert_eq!((skip, send[0].base_offset, send.len()), (100, 5, 2));
        // Known end inside that batch: it cannot be appended (it starts below the end).
        let (skip, send) = batches_to_send(&headers, 7, Some(7));
        assert_eq!((skip, send[0].base_offset), (180, 10));
        let (skip, send) = batches_to_send(&headers, 11, Some(11));
        assert_eq!((skip, send.len()), (250, 0));
        assert_eq!(batches_to_send(&[], 3, None).1.len(), 0);
    }

    #[test]
    fn source_out_of_range_resumes_at_its_start_or_waits() {
        assert_eq!(source_resume(10, 50, 80), Some(50), "deleted on the source");
        assert_eq!(source_resume(60, 50, 80), Some(60), "within range again");
        assert_eq!(source_resume(80, 50, 80), Some(80), "at the end");
        assert_eq!(source_resume(90, 0, 80), None, "target ahead of the source");
    }

    #[test]
    fn group_offsets_are_capped_and_never_go_back() {
        assert_eq!(group_offset_to_commit(40, 100, None), Some(40));
        assert_eq!(
            group_offset_to_commit(140, 100, None),
            Some(100),
            "capped at the mirror's high watermark"
        );
        assert_eq!(group_offset_to_commit(40, 100, Some(30)), Some(40));
        assert_eq!(
            group_offset_to_commit(40, 100, Some(40)),
            None,
            "already there"
        );
        assert_eq!(
            group_offset_to_commit(40, 100, Some(70)),
            None,
            "never backwards"
        );
        assert_eq!(group_offset_to_commit(140, 100, Some(100)), None);
        assert_eq!(group_offset_to_commit(-1, 100, None), None);
    }

    #[test]
    fn whole_batches_cut_a_partial_tail() {
        let records: Vec<_> = (0..3)
            .map(|i| {
                crate::wire::plain_record(
                    bytes::Bytes::from(format!("k{i}")),
                    bytes::Bytes::from(vec![b'v'; 50]),
                    1_000 + i,
                )
            })
            .collect();
        let one = crate::wire::encode_batch(&records, (7, 0), 0).unwrap();
        let mut second = bytes::BytesMut::from(&one[..]);
        second[0..8].copy_from_slice(&3i64.to_be_bytes());
        let mut all = bytes::BytesMut::new();
        all.extend_from_slice(&one);
        all.extend_from_slice(&second);
        all.extend_from_slice(&one[..one.len() - 1]);
        let (headers, complete) = whole_batches(&all).unwrap();
        assert_eq!(complete, 2 * one.len(), "the partial third batch is cut");
        assert_eq!(headers.len(), 2);
        assert_eq!((headers[1].base_offset, headers[1].last_offset), (3, 5));
        assert_eq!(headers[0].records, 3);
        assert_eq!(headers[0].max_timestamp, 1_002);
        assert!(!headers[0].control);
        // A header alone (shorter than a batch header) is a partial tail too.
        let (headers, complete) = whole_batches(&one[..40]).unwrap();
        assert_eq!((headers.len(), complete), (0, 0));
        let mut v1 = bytes::BytesMut::from(&one[..]);
        v1[16] = 1;
        assert!(whole_batches(&v1).unwrap_err().contains("v1"));
        let mut control = bytes::BytesMut::from(&one[..]);
        control[22] |= 1 << 5;
        assert!(whole_batches(&control).unwrap().0[0].control);
    }
}
