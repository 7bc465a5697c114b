//! Record copy of one partition: Fetch from the source leader, produce the same records (key,
//! value, headers, CreateTime timestamp) to the same partition number of the remote topic with
//! acks=all and an idempotent producer id, then commit the next source offset to the flow's
//! progress group on the source. A restarted process resumes from that commit: at-least-once,
//! with duplicates only for what was in flight at a crash. Offset syncs are emitted when MM2
//! would (first record, every `offset.lag.max` records, gaps, and at each progress commit).
//!
//! With `exactly.once.source.support=enabled` the copier is instead a transactional producer
//! on the target (transactional id per source partition, see [`transactional_id`]): the records
//! of a few fetches and the next source offset, committed to the progress group **on the
//! target** with TxnOffsetCommit (keyed by the remote topic's partition), form one
//! transaction. A restart (or a new owner, whose
//! InitProducerId fences this one and aborts its open transaction) resumes from the progress
//! group's stable commit, so a read_committed consumer of the target sees every record once.
//! Offset syncs and metrics then follow only committed transactions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafka_protocol::records::Record;
use strait_client::Connection;
use tokio::sync::{mpsc, watch};

use crate::config::FlowConfig;
use crate::formats::OffsetSync;
use crate::metrics::{Metrics, PartitionLabels};
use crate::wire::{
    Cluster, TxnProducer, WireError, code, encode_batch, encode_transactional_batch,
};

/// How long a Fetch waits for records at the source.
const FETCH_WAIT: Duration = Duration::from_millis(500);
/// Bytes asked per Fetch.
const FETCH_BYTES: i32 = 4 * 1024 * 1024;
/// Produce deadline at the target.
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often progress is committed while records flow.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// Exactly-once: a transaction is committed once the copier caught up with the source (a
/// short fetch brought nothing more), or after this long, or after [`TXN_MAX_BYTES`],
/// whichever comes first. Short (Kafka Streams' exactly-once commit interval), because
/// read_committed consumers of the target see nothing of a transaction before its commit.
const TXN_MAX_AGE: Duration = Duration::from_millis(100);
/// Exactly-once: bytes copied in one transaction before it is committed.
const TXN_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Exactly-once: after being fenced, how long a copier waits for this process's share of the
/// flow to change before it claims the partition again.
const FENCED_WAIT: Duration = Duration::from_secs(5);

/// What every task of one `source->target` flow shares.
pub struct FlowContext {
    pub config: FlowConfig,
    pub source: Cluster,
    pub target: Cluster,
    pub metrics: Metrics,
    /// Offset syncs to write to the source's offset-syncs topic.
    pub syncs: mpsc::UnboundedSender<OffsetSync>,
    pub shutdown: watch::Receiver<bool>,
    /// This process's share of the flow (`None` while the mirror group rebalances).
    pub share: watch::Receiver<Option<crate::group::Share>>,
    /// Linked mode: the topics linked at the last topic sync, source topic → mirror topic.
    pub linked: std::sync::Mutex<BTreeMap<String, String>>,
}

/// What one Fetch of the source partition brought (see `Copier::fetch_source`).
struct SourceFetch {
    records: Vec<Record>,
    /// The offset after the fetched batches (control batches included).
    next: i64,
    /// When it was fetched (ms).
    at: i64,
    high_watermark: i64,
}

/// A partition copier's connections to the partition's leaders on both clusters, opened when
/// first needed and dropped when an error says leadership moved or the broker did not answer.
/// Shared by the MM2 copier and the linked-mode linker.
#[derive(Default)]
pub(crate) struct PartitionLeaders {
    source: Option<Connection>,
    target: Option<Connection>,
}

/// Error codes after which a partition's leader must be looked up again.
const LEADERSHIP_MOVED: [i16; 5] = [
    code::NOT_LEADER_OR_FOLLOWER,
    code::LEADER_NOT_AVAILABLE,
    code::UNKNOWN_TOPIC_OR_PARTITION,
    code::FENCED_LEADER_EPOCH,
    code::UNKNOWN_LEADER_EPOCH,
];

impl PartitionLeaders {
    /// The source leader of `topic`-`partition`.
    pub(crate) async fn source(
        &mut self,
        flow: &FlowContext,
        topic: &str,
        partition: i32,
    ) -> Result<&mut Connection, WireError> {
        if self.source.is_none() {
            self.source = Some(flow.source.connect_leader(topic, partition).await?);
        }
        Ok(self.source.as_mut().expect("set above"))
    }

    /// The target leader of `remote`-`partition`.
    pub(crate) async fn target(
        &mut self,
        flow: &FlowContext,
        remote: &str,
        partition: i32,
    ) -> Result<&mut Connection, WireError> {
        if self.target.is_none() {
            self.target = Some(flow.target.connect_leader(remote, partition).await?);
        }
        Ok(self.target.as_mut().expect("set above"))
    }

    /// Whether `e` calls for new connections: the broker did not answer, or answered that
    /// leadership moved (or one of `also`). A broker that answered anything else is kept.
    pub(crate) fn must_reconnect(e: &WireError, also: &[i16]) -> bool {
        e.code()
            .is_none_or(|c| LEADERSHIP_MOVED.contains(&c) || also.contains(&c))
    }

    pub(crate) fn forget(&mut self) {
        self.source = None;
        self.target = None;
    }
}

impl FlowContext {
    pub fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// The topics linked at the last topic sync (linked mode), source topic → mirror topic.
    pub fn linked_topics(&self) -> BTreeMap<String, String> {
        self.linked.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Whether this process writes the flow's checkpoints and heartbeats: the first member of
    /// the mirror group, so several processes do not all write them.
    pub fn leads(&self) -> bool {
        self.share.borrow().is_some_and(|s| s.index == 0)
    }
}

/// MM2's per-partition rule for when an offset sync must be emitted (`OffsetSyncWriter`'s
/// `PartitionState`).
#[derive(Debug, Clone)]
pub struct SyncState {
    previous_upstream: i64,
    previous_downstream: i64,
    last_sync_downstream: i64,
    max_lag: i64,
}

impl SyncState {
    pub fn new(max_lag: i64) -> Self {
        SyncState {
            previous_upstream: -1,
            previous_downstream: -1,
            last_sync_downstream: -1,
            max_lag,
        }
    }

    /// Whether record `upstream`, written at `downstream`, needs a sync now: the first of this
    /// process, `offset.lag.max` records since the last, an upstream gap, or a downstream
    /// rewind.
    pub fn update(&mut self, upstream: i64, downstream: i64) -> bool {
        let first = self.last_sync_downstream == -1;
        let stale = downstream - (self.last_sync_downstream + 1) >= self.max_lag;
        let skipped = upstream - self.previous_upstream != 1;
        let truncated = downstream < self.previous_downstream;
        let sync = first || stale || skipped || truncated;
        if sync {
            self.last_sync_downstream = downstream;
        }
        self.previous_upstream = upstream;
        self.previous_downstream = downstream;
        sync
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn record_bytes(r: &Record) -> u64 {
    let len = |b: &Option<bytes::Bytes>| b.as_ref().map_or(0, |b| b.len());
    let headers: usize = r.headers.iter().map(|(k, v)| k.len() + len(v)).sum();
    (len(&r.key) + len(&r.value) + headers) as u64
}

/// Encoded size a produce batch stays under: below the 1 MiB `max.message.bytes` Kafka
/// topics have by default (a single larger record is sent alone).
const MAX_BATCH_BYTES: u64 = 960 * 1024;

/// `records` cut into runs whose encoded batch stays under [`MAX_BATCH_BYTES`] (an estimate:
/// the data plus a generous per-record and per-batch overhead).
pub fn chunks(records: &[Record]) -> Vec<&[Record]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = 64u64;
    for (i, r) in records.iter().enumerate() {
        let estimate = record_bytes(r) + 32 + 8 * r.headers.len() as u64;
        if i > start && size + estimate > MAX_BATCH_BYTES {
            out.push(&records[start..i]);
            start = i;
            size = 64;
        }
        size += estimate;
    }
    if start < records.len() {
        out.push(&records[start..]);
    }
    out
}

/// Copies `topic`/`partition` to `remote`/`partition` until shutdown (or the task is aborted).
pub async fn copy_partition(flow: Arc<FlowContext>, topic: String, partition: i32, remote: String) {
    let mut copier = Copier {
        labels_partition: partition.to_string(),
        flow,
        topic,
        partition,
        remote,
        leaders: PartitionLeaders::default(),
        coordinator: None,
        producer: None,
        sequence: 0,
        sync_state: None,
        last_synced: None,
        last_copied: None,
        committed: None,
        next: None,
        last_commit: Instant::now(),
        eos: None,
    };
    if copier.flow.config.exactly_once {
        copier.eos = Some(Eos {
            id: transactional_id(&copier.flow.config, &copier.topic, partition),
            producer: None,
            txn_coordinator: None,
            group_coordinator: None,
            open: None,
        });
    }
    copier.run().await;
}

/// The transactional id of the exactly-once copier of `topic`-`partition`:
/// `strait-mirror-<source>-><target>-<topic>-<partition>`. Deterministic, so whichever process
/// of the mirror group copies the partition next fences the previous one.
pub fn transactional_id(config: &FlowConfig, topic: &str, partition: i32) -> String {
    format!(
        "strait-mirror-{}->{}-{topic}-{partition}",
        config.source, config.target
    )
}

/// Error codes saying another producer of the same transactional id took over.
const FENCED: [i16; 3] = [
    code::PRODUCER_FENCED,
    code::INVALID_PRODUCER_EPOCH,
    code::TRANSACTION_COORDINATOR_FENCED,
];

/// An exactly-once copier's transactional state.
struct Eos {
    id: String,
    /// `None` until InitProducerId (again after any failure: the new epoch aborts whatever
    /// transaction was left open).
    producer: Option<TxnProducer>,
    txn_coordinator: Option<Connection>,
    /// The coordinator of the progress group on the target.
    group_coordinator: Option<Connection>,
    open: Option<OpenTxn>,
}

/// What the open transaction holds, reported (metrics, offset syncs) once it commits.
#[derive(Default)]
struct OpenTxn {
    started: Option<Instant>,
    partition_added: bool,
    records: u64,
    bytes: u64,
    ages: Vec<f64>,
    timestamps: Vec<i64>,
    syncs: Vec<OffsetSync>,
    /// The last record produced (upstream, downstream).
    last_copied: Option<(i64, i64)>,
}

struct Copier {
    flow: Arc<FlowContext>,
    topic: String,
    partition: i32,
    remote: String,
    labels_partition: String,
    leaders: PartitionLeaders,
    coordinator: Option<Connection>,
    producer: Option<(i64, i16)>,
    sequence: i32,
    sync_state: Option<SyncState>,
    /// The last offset sync sent (upstream, downstream).
    last_synced: Option<(i64, i64)>,
    /// The last record copied (upstream, downstream).
    last_copied: Option<(i64, i64)>,
    /// The source offset last committed to the progress group.
    committed: Option<i64>,
    /// The next source offset to copy.
    next: Option<i64>,
    last_commit: Instant,
    /// Set when the flow is exactly-once.
    eos: Option<Eos>,
}

impl Copier {
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
            let result = if self.eos.is_some() {
                self.step_eos().await
            } else {
                self.step().await
            };
            match result {
                Ok(()) => failures = 0,
                Err(e) if self.eos.is_some() && e.code().is_some_and(|c| FENCED.contains(&c)) => {
                    self.reset_eos();
                    if !self.fenced_still_owner(&e).await {
                        return;
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let backoff = Duration::from_millis(100 * u64::from(failures.min(50)));
                    tracing::warn!(topic = %self.topic, partition = self.partition, error = %e, "copy step failed; retrying in {backoff:?}");
                    self.forget_connections(&e);
                    if self.eos.is_some() {
                        // The open transaction is left to the next InitProducerId to abort;
                        // copying resumes from the last committed progress.
                        self.reset_eos();
                    }
                    let mut shutdown = self.flow.shutdown.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
        let last = if self.eos.is_some() {
            self.commit_txn().await
        } else {
            self.commit().await
        };
        if let Err(e) = last {
            tracing::warn!(topic = %self.topic, partition = self.partition, error = %e, "final progress commit failed");
        }
    }

    fn forget_connections(&mut self, e: &WireError) {
        let coordinator_moved = [code::NOT_COORDINATOR, code::COORDINATOR_NOT_AVAILABLE];
        if PartitionLeaders::must_reconnect(e, &coordinator_moved) {
            self.leaders.forget();
            self.coordinator = None;
            if let Some(eos) = &mut self.eos {
                eos.txn_coordinator = None;
                eos.group_coordinator = None;
            }
        }
    }

    /// Exactly-once: forgets the producer and the open transaction; the next step starts a new
    /// epoch (aborting what was open) and re-reads the committed progress.
    fn reset_eos(&mut self) {
        if let Some(eos) = &mut self.eos {
            eos.producer = None;
            eos.open = None;
        }
        self.next = None;
        self.committed = None;
        self.sync_state = None;
        self.last_copied = None;
    }

    /// Exactly-once, after `e` said another producer of this partition's transactional id took
    /// over (the partition moved to another process of the mirror group): waits for this
    /// process's share to change, and whether it still owns the partition then. A copier that
    /// does not returns; the flow restarts it if the partition comes back.
    async fn fenced_still_owner(&mut self, e: &WireError) -> bool {
        tracing::warn!(topic = %self.topic, partition = self.partition, error = %e, "fenced by another producer of this partition's transactional id");
        let mut share = self.flow.share.clone();
        let mut shutdown = self.flow.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(FENCED_WAIT) => {}
            _ = share.changed() => {}
            _ = shutdown.changed() => return false,
        }
        let owns = self
            .flow
            .share
            .borrow()
            .is_some_and(|s| s.owns(&self.topic, self.partition));
        if !owns {
            tracing::info!(topic = %self.topic, partition = self.partition, "partition no longer this process's: copier stopped");
        }
        owns && !self.flow.stopping()
    }

    /// Where copying starts: the progress group's commit, or the source's earliest offset.
    async fn start_offset(&mut self) -> Result<i64, WireError> {
        let flow = self.flow.clone();
        let (topic, partition) = (self.topic.clone(), self.partition);
        let group = flow.config.progress_group();
        let coordinator = self.coordinator().await?;
        let committed = flow.source.committed(coordinator, &group).await?;
        if let Some((offset, _)) = committed.get(&(topic.clone(), partition)) {
            self.committed = Some(*offset);
            return Ok(*offset);
        }
        let leader = self.source_leader().await?;
        flow.source.list_offset(leader, &topic, partition, -2).await
    }

    async fn coordinator(&mut self) -> Result<&mut Connection, WireError> {
        if self.coordinator.is_none() {
            let group = self.flow.config.progress_group();
            self.coordinator = Some(self.flow.source.coordinator(&group).await?);
        }
        Ok(self.coordinator.as_mut().expect("set above"))
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

    /// One Fetch and, when it returned records, one Produce and the bookkeeping after it.
    async fn step(&mut self) -> Result<(), WireError> {
        let next = match self.next {
            Some(n) => n,
            None => {
                let n = self.start_offset().await?;
                tracing::info!(topic = %self.topic, partition = self.partition, remote = %self.remote, from = n, "copying partition");
                self.next = Some(n);
                n
            }
        };
        let Some(SourceFetch {
            records,
            next: new_next,
            at: fetched_at,
            high_watermark,
        }) = self.fetch_source(next, FETCH_WAIT).await?
        else {
            return Ok(());
        };
        let flow = self.flow.clone();
        if records.is_empty() {
            // Control batches only, or nothing new.
            self.next = Some(new_next);
            self.report_lag(high_watermark, new_next);
            if high_watermark <= new_next {
                flow.metrics
                    .last_copy_timestamp_seconds
                    .with_label_values(&self.labels().values())
                    .set(fetched_at as f64 / 1000.0);
            }
            return self.maybe_commit().await;
        }
        for chunk in chunks(&records) {
            self.copy_chunk(chunk, fetched_at).await?;
            // Progress counts per acknowledged chunk: a failure later resumes after it.
            if let Some(last) = chunk.last() {
                self.next = Some(last.offset + 1);
            }
        }
        self.next = Some(new_next);
        self.report_lag(high_watermark, new_next);
        self.maybe_commit().await
    }

    /// Fetches the source partition from `next`, waiting up to `wait` for records, and reports
    /// the lag as of this fetch (before copying: with the target down the copy fails, and the
    /// gauge must show the backlog growing rather than the last successful value). Returns the
    /// records, the offset after the fetched batches, the fetch time and the high watermark; `None` after an
    /// OFFSET_OUT_OF_RANGE, which moved `next` to the source's earliest offset.
    async fn fetch_source(
        &mut self,
        next: i64,
        wait: Duration,
    ) -> Result<Option<SourceFetch>, WireError> {
        let flow = self.flow.clone();
        let (topic, partition) = (self.topic.clone(), self.partition);
        let leader = self.source_leader().await?;
        let fetched = match flow
            .source
            .fetch(leader, &topic, partition, next, wait, FETCH_BYTES)
            .await
        {
            Err(e) if e.code() == Some(code::OFFSET_OUT_OF_RANGE) => {
                let earliest = flow
                    .source
                    .list_offset(leader, &topic, partition, -2)
                    .await?;
                tracing::warn!(%topic, partition, from = next, to = earliest, "offset out of range on the source: resetting to the earliest offset");
                self.next = Some(earliest);
                return Ok(None);
            }
            other => other?,
        };
        let fetched_at = now_ms();
        self.report_lag(fetched.high_watermark, next);
        let mut records: Vec<Record> = Vec::new();
        let mut new_next = next;
        for batch in fetched.batches {
            records.extend(batch.records);
            new_next = new_next.max(batch.last_offset + 1);
        }
        Ok(Some(SourceFetch {
            records,
            next: new_next,
            at: fetched_at,
            high_watermark: fetched.high_watermark,
        }))
    }

    /// Produces one chunk and records its metrics and offset syncs.
    async fn copy_chunk(&mut self, records: &[Record], fetched_at: i64) -> Result<(), WireError> {
        let flow = self.flow.clone();
        let ages: Vec<f64> = records
            .iter()
            .map(|r| (fetched_at - r.timestamp).max(0) as f64)
            .collect();
        let downstream = self.produce(records).await?;
        let acked_at = now_ms();
        let latencies: Vec<f64> = records
            .iter()
            .map(|r| (acked_at - r.timestamp).max(0) as f64)
            .collect();
        let bytes: u64 = records.iter().map(record_bytes).sum();
        flow.metrics.copied(
            &self.labels(),
            records.len() as u64,
            bytes,
            &ages,
            &latencies,
        );
        flow.metrics
            .last_copy_timestamp_seconds
            .with_label_values(&self.labels().values())
            .set(acked_at as f64 / 1000.0);
        if let Some(base) = downstream {
            let state = self
                .sync_state
                .get_or_insert_with(|| SyncState::new(flow.config.offset_lag_max));
            for (i, r) in records.iter().enumerate() {
                let d = base + i as i64;
                if state.update(r.offset, d) {
                    let _ = flow.syncs.send(OffsetSync {
                        topic: self.topic.clone(),
                        partition: self.partition,
                        upstream: r.offset,
                        downstream: d,
                    });
                    self.last_synced = Some((r.offset, d));
                }
                self.last_copied = Some((r.offset, d));
            }
        } else {
            // The target reported a duplicate without its offset: no sync is certain.
            self.last_copied = None;
        }
        Ok(())
    }

    fn report_lag(&self, high_watermark: i64, next: i64) {
        self.flow
            .metrics
            .partition_lag_records
            .with_label_values(&self.labels().values())
            .set((high_watermark - next).max(0));
    }

    /// Produces `records` until the target acknowledges them; the downstream base offset
    /// (`None` when the target recognised the batch as a duplicate of one already written).
    async fn produce(&mut self, records: &[Record]) -> Result<Option<i64>, WireError> {
        let flow = self.flow.clone();
        loop {
            let producer = match self.producer {
                Some(p) => p,
                None => {
                    let p = flow.target.init_producer_id().await?;
                    self.producer = Some(p);
                    self.sequence = 0;
                    p
                }
            };
            let batch = encode_batch(records, producer, self.sequence).map_err(|detail| {
                WireError::Records {
                    cluster: flow.target.alias.clone(),
                    what: format!("{}-{}", self.remote, self.partition),
                    detail,
                }
            })?;
            let (remote, partition) = (self.remote.clone(), self.partition);
            let leader = self.target_leader().await?;
            match flow
                .target
                .produce(leader, &remote, partition, batch, PRODUCE_TIMEOUT)
                .await
            {
                Ok(base) => {
                    self.advance_sequence(records.len());
                    return Ok(Some(base));
                }
                Err(e) if e.code() == Some(code::DUPLICATE_SEQUENCE_NUMBER) => {
                    self.advance_sequence(records.len());
                    return Ok(None);
                }
                Err(e)
                    if matches!(
                        e.code(),
                        Some(
                            code::OUT_OF_ORDER_SEQUENCE_NUMBER
                                | code::UNKNOWN_PRODUCER_ID
                                | code::INVALID_PRODUCER_EPOCH
                                | code::PRODUCER_FENCED
                        )
                    ) =>
                {
                    // The target lost our producer state: start a new producer id and resend
                    // (a duplicate is possible, a loss is not).
                    tracing::warn!(remote = %remote, partition, error = %e, "producer state lost at the target; new producer id");
                    self.producer = None;
                }
                Err(e) => {
                    // Retriable or not, the same batch with the same sequence is resent after
                    // the backoff: the target's idempotence drops it if it was written.
                    return Err(e);
                }
            }
        }
    }

    fn advance_sequence(&mut self, n: usize) {
        let n = i32::try_from(n).unwrap_or(i32::MAX);
        // Kafka sequences wrap to 0 after i32::MAX.
        self.sequence = if self.sequence > i32::MAX - n {
            n - (i32::MAX - self.sequence) - 1
        } else {
            self.sequence + n
        };
    }

    async fn maybe_commit(&mut self) -> Result<(), WireError> {
        if self.last_commit.elapsed() >= COMMIT_INTERVAL && self.next != self.committed {
            self.commit().await?;
        }
        Ok(())
    }

    /// Commits the next source offset to the progress group and sends the delayed offset sync
    /// (MM2 promotes delayed syncs at each offset commit).
    async fn commit(&mut self) -> Result<(), WireError> {
        let Some(next) = self.next else {
            return Ok(());
        };
        if self.committed == Some(next) {
            return Ok(());
        }
        let flow = self.flow.clone();
        let group = flow.config.progress_group();
        let mut offsets = BTreeMap::new();
        offsets.insert((self.topic.clone(), self.partition), (next, String::new()));
        let coordinator = self.coordinator().await?;
        flow.source.commit(coordinator, &group, &offsets).await?;
        self.committed = Some(next);
        self.last_commit = Instant::now();
        self.promote_delayed_sync();
        Ok(())
    }

    /// Sends the offset sync MM2 holds back until a commit: the last record copied, when it
    /// was not synced yet.
    fn promote_delayed_sync(&mut self) {
        if let Some(last) = self.last_copied
            && self.last_synced != Some(last)
        {
            let _ = self.flow.syncs.send(OffsetSync {
                topic: self.topic.clone(),
                partition: self.partition,
                upstream: last.0,
                downstream: last.1,
            });
            self.last_synced = Some(last);
        }
    }
}

/// The exactly-once path (`exactly.once.source.support=enabled`).
impl Copier {
    fn eos(&mut self) -> &mut Eos {
        self.eos.as_mut().expect("exactly-once copier")
    }

    async fn txn_coordinator(&mut self) -> Result<&mut Connection, WireError> {
        let flow = self.flow.clone();
        let eos = self.eos();
        if eos.txn_coordinator.is_none() {
            eos.txn_coordinator = Some(flow.target.txn_coordinator(&eos.id).await?);
        }
        Ok(eos.txn_coordinator.as_mut().expect("set above"))
    }

    /// The coordinator of the progress group on the target.
    async fn target_group_coordinator(&mut self) -> Result<&mut Connection, WireError> {
        let flow = self.flow.clone();
        let eos = self.eos();
        if eos.group_coordinator.is_none() {
            let group = flow.config.progress_group();
            eos.group_coordinator = Some(flow.target.coordinator(&group).await?);
        }
        Ok(eos.group_coordinator.as_mut().expect("set above"))
    }

    /// The transactional producer, initialised when there is none: the new epoch fences any
    /// other copier of this partition and aborts the transaction left open by the previous one,
    /// so the progress read after it is final.
    async fn txn_producer(&mut self) -> Result<TxnProducer, WireError> {
        if let Some(p) = &self.eos().producer {
            return Ok(p.clone());
        }
        let flow = self.flow.clone();
        let id = self.eos().id.clone();
        let timeout = flow.config.transaction_timeout_ms;
        let coordinator = self.txn_coordinator().await?;
        let producer = flow
            .target
            .init_transactional_producer(coordinator, &id, timeout)
            .await?;
        tracing::info!(transactional_id = %id, producer_id = producer.producer_id, epoch = producer.epoch, "transactional producer initialised");
        let eos = self.eos();
        eos.producer = Some(producer.clone());
        eos.open = None;
        self.sequence = 0;
        self.next = None;
        Ok(producer)
    }

    /// Where exactly-once copying starts: the progress group's stable commit on the target;
    /// without one, the at-least-once progress on the source (a flow switched to exactly-once
    /// continues where it was); else the source's earliest offset.
    async fn start_offset_eos(&mut self) -> Result<i64, WireError> {
        let flow = self.flow.clone();
        let (topic, partition) = (self.topic.clone(), self.partition);
        let remote = self.remote.clone();
        let group = flow.config.progress_group();
        let coordinator = self.target_group_coordinator().await?;
        if let Some(offset) = flow
            .target
            .committed_stable(coordinator, &group, &remote, partition)
            .await?
        {
            self.committed = Some(offset);
            return Ok(offset);
        }
        let coordinator = self.coordinator().await?;
        let on_source = flow.source.committed(coordinator, &group).await?;
        if let Some((offset, _)) = on_source.get(&(topic.clone(), partition)) {
            tracing::info!(%topic, partition, from = offset, "no exactly-once progress on the target yet: continuing from the source's progress commit");
            return Ok(*offset);
        }
        let leader = self.source_leader().await?;
        flow.source.list_offset(leader, &topic, partition, -2).await
    }

    /// One Fetch, its records produced in the open transaction (begun if none is), and the
    /// transaction committed when it is due.
    async fn step_eos(&mut self) -> Result<(), WireError> {
        self.txn_producer().await?;
        let next = match self.next {
            Some(n) => n,
            None => {
                let n = self.start_offset_eos().await?;
                tracing::info!(topic = %self.topic, partition = self.partition, remote = %self.remote, from = n, "copying partition (exactly-once)");
                self.next = Some(n);
                n
            }
        };
        // With records waiting in the open transaction, the fetch does not wait long for more.
        let wait = if self.eos().open.is_some() {
            Duration::from_millis(10)
        } else {
            FETCH_WAIT
        };
        let Some(SourceFetch {
            records,
            next: new_next,
            at: fetched_at,
            high_watermark,
        }) = self.fetch_source(next, wait).await?
        else {
            return Ok(());
        };
        let flow = self.flow.clone();
        for chunk in chunks(&records) {
            self.produce_in_txn(chunk, fetched_at).await?;
        }
        self.next = Some(new_next);
        self.report_lag(high_watermark, new_next);
        let caught_up = high_watermark <= new_next;
        if caught_up && records.is_empty() {
            flow.metrics
                .last_copy_timestamp_seconds
                .with_label_values(&self.labels().values())
                .set(fetched_at as f64 / 1000.0);
        }
        // Caught up, the transaction still takes what arrives within one short fetch (records
        // a producer sends in quick succession share a transaction), then commits.
        let due = match &self.eos().open {
            Some(open) => {
                (caught_up && records.is_empty())
                    || open.bytes >= TXN_MAX_BYTES
                    || open.started.is_some_and(|t| t.elapsed() >= TXN_MAX_AGE)
            }
            // Only control batches or nothing: the progress still moves, at the usual pace.
            None => self.last_commit.elapsed() >= COMMIT_INTERVAL && self.next != self.committed,
        };
        if due {
            self.commit_txn().await?;
        }
        Ok(())
    }

    /// Produces `records` as one transactional batch, the remote partition joining the
    /// transaction first; what to report is kept until the commit.
    async fn produce_in_txn(
        &mut self,
        records: &[Record],
        fetched_at: i64,
    ) -> Result<(), WireError> {
        let flow = self.flow.clone();
        let producer = self.txn_producer().await?;
        let (remote, partition) = (self.remote.clone(), self.partition);
        let added = self.eos().open.as_ref().is_some_and(|o| o.partition_added);
        if !added {
            let coordinator = self.txn_coordinator().await?;
            flow.target
                .add_partition_to_txn(coordinator, &producer, &remote, partition)
                .await?;
            let open = self.eos().open.get_or_insert_with(OpenTxn::default);
            open.partition_added = true;
            open.started.get_or_insert_with(Instant::now);
        }
        let batch = encode_transactional_batch(
            records,
            (producer.producer_id, producer.epoch),
            self.sequence,
        )
        .map_err(|detail| WireError::Records {
            cluster: flow.target.alias.clone(),
            what: format!("{remote}-{partition}"),
            detail,
        })?;
        let leader = self.target_leader().await?;
        let base = flow
            .target
            .produce_transactional(
                leader,
                &producer,
                &remote,
                partition,
                batch,
                PRODUCE_TIMEOUT,
            )
            .await?;
        self.advance_sequence(records.len());
        let state = self
            .sync_state
            .get_or_insert_with(|| SyncState::new(flow.config.offset_lag_max));
        let mut syncs = Vec::new();
        let mut last_copied = None;
        for (i, r) in records.iter().enumerate() {
            let d = base + i as i64;
            if state.update(r.offset, d) {
                syncs.push(OffsetSync {
                    topic: self.topic.clone(),
                    partition,
                    upstream: r.offset,
                    downstream: d,
                });
            }
            last_copied = Some((r.offset, d));
        }
        let open = self.eos().open.get_or_insert_with(OpenTxn::default);
        open.records += records.len() as u64;
        open.bytes += records.iter().map(record_bytes).sum::<u64>();
        open.ages.extend(
            records
                .iter()
                .map(|r| (fetched_at - r.timestamp).max(0) as f64),
        );
        open.timestamps.extend(records.iter().map(|r| r.timestamp));
        open.syncs.extend(syncs);
        open.last_copied = last_copied.or(open.last_copied);
        if let Some(last) = records.last() {
            self.next = Some(last.offset + 1);
        }
        Ok(())
    }

    /// Commits the next source offset to the progress group on the target inside the open
    /// transaction (one holding only the offset when no record is pending) and commits it;
    /// then reports the transaction's records and sends its offset syncs.
    async fn commit_txn(&mut self) -> Result<(), WireError> {
        let Some(next) = self.next else {
            return Ok(());
        };
        if self.eos().open.is_none() && self.committed == Some(next) {
            return Ok(());
        }
        let Some(producer) = self.eos().producer.clone() else {
            return Ok(());
        };
        let flow = self.flow.clone();
        let group = flow.config.progress_group();
        let coordinator = self.txn_coordinator().await?;
        flow.target
            .add_offsets_to_txn(coordinator, &producer, &group)
            .await?;
        // Keyed by the remote topic: brokers refuse TxnOffsetCommit for a topic they do not
        // have, and the source topic's name need not exist on the target.
        let mut offsets = BTreeMap::new();
        offsets.insert((self.remote.clone(), self.partition), (next, String::new()));
        let group_coordinator = self.target_group_coordinator().await?;
        flow.target
            .txn_offset_commit(group_coordinator, &producer, &group, &offsets)
            .await?;
        let coordinator = self.txn_coordinator().await?;
        flow.target.end_txn(coordinator, &producer, true).await?;
        self.committed = Some(next);
        self.last_commit = Instant::now();
        let Some(open) = self.eos().open.take() else {
            return Ok(());
        };
        let committed_at = now_ms();
        if open.records > 0 {
            let latencies: Vec<f64> = open
                .timestamps
                .iter()
                .map(|t| (committed_at - t).max(0) as f64)
                .collect();
            flow.metrics.copied(
                &self.labels(),
                open.records,
                open.bytes,
                &open.ages,
                &latencies,
            );
            flow.metrics
                .last_copy_timestamp_seconds
                .with_label_values(&self.labels().values())
                .set(committed_at as f64 / 1000.0);
        }
        for sync in open.syncs {
            self.last_synced = Some((sync.upstream, sync.downstream));
            let _ = flow.syncs.send(sync);
        }
        if open.last_copied.is_some() {
            self.last_copied = open.last_copied;
        }
        // MM2 promotes the delayed sync at each commit.
        self.promote_delayed_sync();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_stay_under_the_default_message_size() {
        let record = |n: usize| {
            crate::wire::plain_record(
                bytes::Bytes::from_static(b"k"),
                bytes::Bytes::from(vec![0u8; n]),
                0,
            )
        };
        let records: Vec<Record> = (0..3000).map(|_| record(1024)).collect();
        let parts = chunks(&records);
        assert!(parts.len() > 1);
        assert_eq!(parts.iter().map(|c| c.len()).sum::<usize>(), 3000);
        for part in &parts {
            let encoded = encode_batch(part, (1, 0), 0).unwrap();
            assert!(encoded.len() as u64 <= MAX_BATCH_BYTES, "{}", encoded.len());
        }
        let big = vec![record(2 * 1024 * 1024), record(10)];
        assert_eq!(chunks(&big).len(), 2, "an oversized record goes alone");
        assert!(chunks(&[]).is_empty());
    }

    #[test]
    fn transactional_ids_name_flow_topic_and_partition() {
        let config = crate::config::MirrorConfig::parse(
            "clusters=east,west\neast.bootstrap.servers=x:1\nwest.bootstrap.servers=y:1\neast->west.enabled=true\n",
        )
        .unwrap();
        let flow = &config.flows[0];
        assert_eq!(
            transactional_id(flow, "orders", 3),
            "strait-mirror-east->west-orders-3"
        );
        assert_ne!(
            transactional_id(flow, "orders", 3),
            transactional_id(flow, "orders", 4)
        );
    }

    #[test]
    fn syncs_follow_mm2_rules() {
        let mut s = SyncState::new(100);
        assert!(s.update(0, 0), "first record");
        assert!(!s.update(1, 1));
        for i in 2..100 {
            assert!(!s.update(i, i), "{i}");
        }
        assert!(s.update(101, 101), "gap upstream");
        assert!(!s.update(102, 102));
        // 100 records after the last sync's downstream + 1.
        for i in 103..202 {
            assert!(!s.update(i, i), "{i}");
        }
        assert!(s.update(202, 202), "offset.lag.max reached");
        assert!(s.update(203, 150), "downstream rewound");
        let mut every = SyncState::new(0);
        assert!(every.update(5, 0));
        assert!(every.update(6, 1), "offset.lag.max=0 syncs every record");
    }
}
