//! librdkafka group members on their own threads, recording every rebalance callback and every
//! processed message into one shared `GroupLog`, so a test can check who owned which partition
//! when, that ownership never overlapped, and that processing never skipped an offset.
//!
//! Members commit after processing: synchronously every `COMMIT_EVERY` or on revocation (the
//! standard at-least-once pattern), and once more before leaving the group.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::error::{HarnessError, Result};

/// How often a member commits what it processed, besides on revocation.
const COMMIT_EVERY: Duration = Duration::from_millis(300);
/// How long leaving the group (close) may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a rebalance callback reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebalanceKind {
    Assign,
    Revoke,
    Error,
}

/// One rebalance callback of one member, in global order.
#[derive(Debug, Clone)]
pub struct RebalanceEvent {
    pub seq: u64,
    pub member: String,
    pub kind: RebalanceKind,
    pub partitions: Vec<i32>,
    pub detail: String,
}

/// One message handed to the application.
#[derive(Debug, Clone)]
pub struct Processed {
    pub member: String,
    pub partition: i32,
    pub offset: i64,
    pub payload: Vec<u8>,
}

#[derive(Debug, Default)]
struct LogState {
    seq: u64,
    events: Vec<RebalanceEvent>,
    owned: HashMap<String, BTreeSet<i32>>,
    processed: Vec<Processed>,
    violations: Vec<String>,
    commit_failures: Vec<String>,
}

/// Everything the members of one group did, shared between their threads.
#[derive(Debug, Default)]
pub struct GroupLog {
    state: Mutex<LogState>,
}

impl GroupLog {
    fn lock(&self) -> MutexGuard<'_, LogState> {
        // A panicking member must not hide what the others recorded.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn event(&self, member: &str, kind: RebalanceKind, partitions: Vec<i32>, detail: String) {
        let mut state = self.lock();
        state.seq += 1;
        let seq = state.seq;
        match kind {
            RebalanceKind::Assign => {
                for p in &partitions {
                    let holders: Vec<String> = state
                        .owned
                        .iter()
                        .filter(|(m, set)| m.as_str() != member && set.contains(p))
                        .map(|(m, _)| m.clone())
                        .collect();
                    if !holders.is_empty() {
                        state.violations.push(format!(
                            "event {seq}: partition {p} assigned to {member} while owned by {holders:?}"
                        ));
                    }
                }
                state
                    .owned
                    .entry(member.to_string())
                    .or_default()
                    .extend(partitions.iter().copied());
            }
            RebalanceKind::Revoke => {
                if let Some(set) = state.owned.get_mut(member) {
                    for p in &partitions {
                        set.remove(p);
                    }
                }
            }
            RebalanceKind::Error => {}
        }
        state.events.push(RebalanceEvent {
            seq,
            member: member.to_string(),
            kind,
            partitions,
            detail,
        });
    }

    fn processed(&self, item: Processed) {
        let mut state = self.lock();
        let owns = state
            .owned
            .get(&item.member)
            .is_some_and(|s| s.contains(&item.partition));
        if !owns {
            let text = format!(
                "{} processed {}@{} without owning the partition",
                item.member, item.partition, item.offset
            );
            state.violations.push(text);
        }
        state.processed.push(item);
    }

    fn commit_failed(&self, text: String) {
        self.lock().commit_failures.push(text);
    }

    /// Current partitions of every member that owns at least one.
    pub fn ownership(&self) -> HashMap<String, BTreeSet<i32>> {
        self.lock()
            .owned
            .iter()
            .filter(|(_, set)| !set.is_empty())
            .map(|(m, s)| (m.clone(), s.clone()))
            .collect()
    }

    /// The sequence number of the latest callback together with the ownership it left, taken
    /// atomically so a test can later ask what happened after this point.
    pub fn snapshot(&self) -> (u64, HashMap<String, BTreeSet<i32>>) {
        let state = self.lock();
        let owned = state
            .owned
            .iter()
            .filter(|(_, set)| !set.is_empty())
            .map(|(m, s)| (m.clone(), s.clone()))
            .collect();
        (state.seq, owned)
    }

    /// Partitions of one member.
    pub fn owned_by(&self, member: &str) -> BTreeSet<i32> {
        self.lock().owned.get(member).cloned().unwrap_or_default()
    }

    /// Every rebalance callback so far.
    pub fn events(&self) -> Vec<RebalanceEvent> {
        self.lock().events.clone()
    }

    /// Sequence number of the latest rebalance callback.
    pub fn last_seq(&self) -> u64 {
        self.lock().seq
    }

    /// Every processed message so far.
    pub fn processed_messages(&self) -> Vec<Processed> {
        self.lock().processed.clone()
    }

    /// Number of processed messages so far.
    pub fn processed_count(&self) -> usize {
        self.lock().processed.len()
    }

    /// Overlapping ownership or processing without ownership, as seen so far.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Commits that the broker or client refused.
    pub fn commit_failures(&self) -> Vec<String> {
        self.lock().commit_failures.clone()
    }
}

/// The consumer context of a member: logs callbacks, commits processed offsets on revocation.
struct MemberContext {
    name: String,
    topic: String,
    log: Arc<GroupLog>,
    /// Next offset to commit, per partition, for what was processed since the last commit.
    pending: Mutex<HashMap<i32, i64>>,
}

impl ClientContext for MemberContext {}

fn partitions_of(list: &TopicPartitionList) -> Vec<i32> {
    let mut out: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
    out.sort_unstable();
    out
}

impl MemberContext {
    /// Commits (synchronously) the pending positions of `only`, or of every partition.
    fn commit_pending(&self, consumer: &BaseConsumer<MemberContext>, only: Option<&[i32]>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut list = TopicPartitionList::new();
        let chosen: Vec<(i32, i64)> = pending
            .iter()
            .filter(|(p, _)| only.is_none_or(|o| o.contains(p)))
            .map(|(p, o)| (*p, *o))
            .collect();
        if chosen.is_empty() {
            return;
        }
        for (partition, offset) in &chosen {
            if let Err(e) =
                list.add_partition_offset(&self.topic, *partition, Offset::Offset(*offset))
            {
                self.log
                    .commit_failed(format!("{}: build commit: {e}", self.name));
                return;
            }
        }
        match consumer.commit(&list, CommitMode::Sync) {
            Ok(()) => {
                for (partition, offset) in chosen {
                    if pending.get(&partition) == Some(&offset) {
                        pending.remove(&partition);
                    }
                }
            }
            Err(e) => {
                self.log
                    .commit_failed(format!("{}: commit {chosen:?}: {e}", self.name));
                if only.is_some() {
                    // The partitions are going away; their positions are no longer ours to commit.
                    pending.retain(|p, _| !chosen.iter().any(|(c, _)| c == p));
                }
            }
        }
    }
}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => self.log.event(
                &self.name,
                RebalanceKind::Assign,
                partitions_of(list),
                String::new(),
            ),
            Rebalance::Revoke(list) => {
                let partitions = partitions_of(list);
                self.commit_pending(consumer, Some(&partitions));
                // Ownership ends here: this thread processes nothing more from these partitions,
                // and right after this callback rust-rdkafka unassigns them, after which
                // librdkafka may rejoin and another member may get them before
                // `post_rebalance` runs, so recording it there would race with that member.
                self.log
                    .event(&self.name, RebalanceKind::Revoke, partitions, String::new());
            }
            Rebalance::Error(e) => {
                self.log
                    .event(&self.name, RebalanceKind::Error, Vec::new(), e.to_string());
            }
        }
    }
}

/// A running group member; `leave` makes it commit, leave the group and stop.
pub struct GroupMember {
    name: String,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<Result<()>>>,
}

impl GroupMember {
    /// Starts a member named `name` that subscribes to `topic` with `config` (which must carry
    /// `group.id`, `bootstrap.servers` and the protocol settings) and processes messages until
    /// told to leave, or until `max_duration` passes.
    pub fn spawn(
        name: &str,
        config: &ClientConfig,
        topic: &str,
        log: Arc<GroupLog>,
        max_duration: Duration,
    ) -> Result<GroupMember> {
        let mut config = config.clone();
        config
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("client.id", name);
        let context = MemberContext {
            name: name.to_string(),
            topic: topic.to_string(),
            log,
            pending: Mutex::new(HashMap::new()),
        };
        let consumer: BaseConsumer<MemberContext> = config
            .create_with_context(context)
            .map_err(|e| HarnessError::kafka(format!("create consumer {name}"), e))?;
        consumer
            .subscribe(&[topic])
            .map_err(|e| HarnessError::kafka(format!("subscribe {name}"), e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let worker = std::thread::spawn(move || run_member(consumer, &stop_flag, max_duration));
        Ok(GroupMember {
            name: name.to_string(),
            stop,
            worker: Some(worker),
        })
    }

    /// The member's name (its `client.id` and key in the log).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Commits, leaves the group (LeaveGroup through close) and waits for the thread.
    pub fn leave(mut self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        match self.worker.take() {
            Some(worker) => worker
                .join()
                .map_err(|_| HarnessError::Unexpected(format!("member {} panicked", self.name)))?,
            None => Ok(()),
        }
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn run_member(
    consumer: BaseConsumer<MemberContext>,
    stop: &AtomicBool,
    max_duration: Duration,
) -> Result<()> {
    let deadline = Instant::now() + max_duration;
    let context = consumer.context();
    let name = context.name.clone();
    let mut last_commit = Instant::now();
    let mut failure = None;
    while !stop.load(Ordering::SeqCst) {
        if Instant::now() >= deadline {
            failure = Some(HarnessError::Timeout(format!(
                "member {name} still running after {max_duration:?}"
            )));
            break;
        }
        if let Some(polled) = consumer.poll(Duration::from_millis(50)) {
            match polled {
                Ok(message) => {
                    let item = Processed {
                        member: name.clone(),
                        partition: message.partition(),
                        offset: message.offset(),
                        payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    };
                    context.log.processed(item);
                    context
                        .pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(message.partition(), message.offset() + 1);
                }
                // Transient client errors (a dropped connection) are reported through poll;
                // they are kept for the test to print, and the member carries on like an
                // application would.
                Err(e) => context.log.event(
                    &name,
                    RebalanceKind::Error,
                    Vec::new(),
                    format!("poll: {e}"),
                ),
            }
        }
        if last_commit.elapsed() >= COMMIT_EVERY {
            context.commit_pending(&consumer, None);
            last_commit = Instant::now();
        }
    }
    context.commit_pending(&consumer, None);
    // Close within a deadline: dropping an unclosed consumer would wait for ever.
    if let Err(e) = consumer.close_queue() {
        failure.get_or_insert(HarnessError::kafka(format!("close {name}"), e));
    } else {
        let close_deadline = Instant::now() + CLOSE_TIMEOUT;
        while !consumer.closed() {
            if Instant::now() >= close_deadline {
                // Dropping an unclosed consumer waits without bound; leak it instead.
                std::mem::forget(consumer);
                return Err(HarnessError::Timeout(format!("member {name} to close")));
            }
            let _ = consumer.poll(Duration::from_millis(50));
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
