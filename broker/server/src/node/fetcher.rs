//! Replica fetchers (Kafka's `ReplicaFetcherThread`): `num.replica.fetchers` tasks per leader
//! this broker follows partitions of, each with its own connection and its share of the
//! partitions (by hash). Each loop it first reconciles partitions that entered a new leader epoch —
//! OffsetForLeaderEpoch with the follower's latest epoch, then truncation to where its log and the
//! leader's diverge (KIP-101/KIP-279; never to the local high watermark) — then sends one Fetch
//! with this broker's replica id for all its partitions, appends what comes back verbatim and
//! takes the leader's high watermark. The fetch runs in an incremental fetch session (KIP-227)
//! with the leader when it offers one: after the first full request only partitions whose fetch
//! position changed are sent, and only partitions with news come back. An error of one partition
//! (a full log dir refusing its append, the leader refusing it) backs off only that partition for
//! `replica.fetch.backoff.ms`, out of the fetch session meanwhile, as Kafka's
//! `AbstractFetcherThread` delays it; the fetcher's other partitions go on.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strait_client::{ClientError, ConnectOptions, Connection, KafkaError};
use strait_cluster::image::NO_LEADER;
use strait_storage::LogError;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::ClusterNode;
use crate::clock::now_ms;
use crate::partition::replica::Role;
use crate::replica_manager::{Partition, ReplicaManager};

const FETCH_VERSION: i16 = 12;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response accepted from a leader (a fetch response is bounded by
/// `replica.fetch.response.max.bytes`; this is a sanity cap against a corrupt length).
const MAX_RESPONSE: usize = 512 * 1024 * 1024;
/// How often the manager looks for leaders to follow (also woken by image changes).
const MANAGER_PERIOD: Duration = Duration::from_millis(500);

/// Starts and retires per-leader fetchers as the partitions this broker follows change.
pub async fn run(
    replicas: Arc<ReplicaManager>,
    node: Arc<ClusterNode>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut fetchers: HashMap<FetcherId, JoinHandle<()>> = HashMap::new();
    let mut images = node.watch_image();
    let count = node.settings.replica_fetchers.max(1);
    loop {
        fetchers.retain(|_, h| !h.is_finished());
        for id in needed_fetchers(&replicas, count) {
            if let std::collections::hash_map::Entry::Vacant(slot) = fetchers.entry(id) {
                debug!(
                    leader = id.leader,
                    index = id.index,
                    "starting replica fetcher"
                );
                slot.insert(tokio::spawn(fetch_from(
                    replicas.clone(),
                    node.clone(),
                    id,
                    shutdown.clone(),
                )));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(MANAGER_PERIOD) => {}
            changed = images.changed() => if changed.is_err() { break; },
            _ = shutdown.changed() => break,
        }
    }
    for (_, h) in fetchers {
        let _ = h.await;
    }
}

/// The fetchers that have partitions to follow: (leader, index) of each followed partition.
fn needed_fetchers(replicas: &ReplicaManager, count: usize) -> HashSet<FetcherId> {
    let mut needed = HashSet::new();
    for topic in replicas.all_topics() {
        for p in &topic.partitions {
            if let Role::Follower { leader } = p.replica().role
                && leader != NO_LEADER
            {
                needed.insert(FetcherId {
                    leader,
                    index: fetcher_index(&topic.meta.name, p.index, count),
                    count,
                });
            }
        }
    }
    needed
}

/// Which of a leader's `count` fetchers follows a partition: a stable hash of topic and
/// partition (Kafka: `abs(31 * topic.hashCode + partition) % count`).
fn fetcher_index(topic: &str, partition: i32, count: usize) -> usize {
    if count <= 1 {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic.bytes().chain(partition.to_be_bytes()) {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (hash % count as u64) as usize
}

/// One fetcher: `index` of the `count` (`num.replica.fetchers`) that follow `leader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FetcherId {
    leader: i32,
    index: usize,
    count: usize,
}

impl FetcherId {
    /// Whether this fetcher follows the partition (when it follows its leader).
    fn takes(&self, topic: &str, partition: i32) -> bool {
        fetcher_index(topic, partition, self.count) == self.index
    }
}

/// One followed partition.
struct Followed {
    topic: Arc<str>,
    partition: Arc<Partition>,
    leader_epoch: i32,
    truncate: bool,
}

/// The partitions this fetcher follows, rebuilt only when the replica manager's generation moves
/// (a metadata pass) or a reconciliation changed a partition's state — not on every fetch, which
/// with thousands of partitions would cost more than the fetch itself.
struct FollowedSet {
    generation: u64,
    list: Vec<Followed>,
    /// topic -> partition index -> position in `list`, to place response partitions.
    index: HashMap<Arc<str>, HashMap<i32, usize>>,
}

impl FollowedSet {
    fn build(replicas: &ReplicaManager, fetcher: FetcherId) -> FollowedSet {
        // Read before the roles: a pass that lands meanwhile bumps it again.
        let generation = replicas.generation();
        let leader = fetcher.leader;
        let mut list = Vec::new();
        for topic in replicas.all_topics() {
            let name: Arc<str> = Arc::from(topic.meta.name.as_str());
            for p in &topic.partitions {
                // A replica in a failed log dir fetches nothing (its appends would fail).
                if !fetcher.takes(&name, p.index) || p.log.is_offline() {
                    continue;
                }
                let replica = p.replica();
                if replica.role == (Role::Follower { leader }) {
                    list.push(Followed {
                        topic: name.clone(),
                        partition: p.clone(),
                        leader_epoch: replica.leader_epoch,
                        truncate: replica.truncate_pending,
                    });
                }
            }
        }
        FollowedSet::of(generation, list)
    }

    fn of(generation: u64, list: Vec<Followed>) -> FollowedSet {
        let mut index: HashMap<Arc<str>, HashMap<i32, usize>> = HashMap::new();
        for (i, f) in list.iter().enumerate() {
            index
                .entry(f.topic.clone())
                .or_default()
                .insert(f.partition.index, i);
        }
        FollowedSet {
            generation,
            list,
            index,
        }
    }

    fn position_of(&self, topic: &str, partition: i32) -> Option<usize> {
        self.index.get(topic)?.get(&partition).copied()
    }
}

async fn fetch_from(
    replicas: Arc<ReplicaManager>,
    node: Arc<ClusterNode>,
    fetcher: FetcherId,
    mut shutdown: watch::Receiver<bool>,
) {
    let leader = fetcher.leader;
    let backoff = node.settings.fetch_backoff;
    let mut connection: Option<Connection> = None;
    let mut session = Session::default();
    let mut delays = Delays::default();
    let mut followed: Option<FollowedSet> = None;
    let mut rebuild = true;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let stale = rebuild
            || followed
                .as_ref()
                .is_none_or(|f| f.generation != replicas.generation());
        if stale {
            rebuild = false;
            let set = FollowedSet::build(&replicas, fetcher);
            session.follow(followed.as_ref(), &set);
            followed = Some(set);
        }
        let set = followed.as_ref().expect("just built");
        if set.list.is_empty() {
            debug!(leader, "replica fetcher has nothing left to follow");
            return;
        }
        let now = Instant::now();
        let next_delay_end = delays.expire(now);
        let outcome = async {
            if connection.is_none() {
                connection = Some(connect(&node, leader).await?);
                // A reconnect usually follows a leader restart or an error: start afresh.
                session = Session::default();
            }
            let conn = connection.as_mut().ok_or(FetchError::NoEndpoint)?;
            let pending: Vec<&Followed> = set
                .list
                .iter()
                .filter(|f| f.truncate && !delays.holds(f, now))
                .collect();
            if !pending.is_empty() {
                reconcile(&node, conn, &pending, &mut delays, now + backoff).await?;
            }
            let ready = set.list.iter().any(|f| delays.fetchable(f, now));
            let mut changed = !pending.is_empty();
            if ready {
                changed |= fetch_once(&node, conn, set, &mut session, &mut delays, now).await?;
            }
            Ok::<(bool, bool), FetchError>((ready, changed))
        };
        let pause = match outcome.await {
            Ok((ready, changed)) => {
                // Reconciled or marked for reconciliation: take the new states.
                rebuild |= changed;
                // Nothing to fetch: partitions wait for reconciliation or sit out a back-off.
                (!ready).then(|| {
                    let idle = Duration::from_millis(50);
                    next_delay_end.map_or(idle, |end| idle.min(end.saturating_duration_since(now)))
                })
            }
            Err(e) => {
                debug!(leader, error = %e, "replica fetch failed");
                connection = None;
                Some(backoff.min(Duration::from_millis(500)))
            }
        };
        if let Some(pause) = pause {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Partitions backing off after an error of their own (Kafka's per-partition `DelayedItem` in
/// `AbstractFetcherThread`): left out of fetches, and so out of the fetch session, until their
/// `replica.fetch.backoff.ms` has passed, while the fetcher's other partitions go on. A delay
/// holds only in the leader epoch it was set in: a new epoch starts the partition afresh.
#[derive(Debug, Default)]
struct Delays {
    /// topic -> partition -> (end of the delay, leader epoch it was set in).
    until: HashMap<Arc<str>, HashMap<i32, (Instant, i32)>>,
}

impl Delays {
    fn delay(&mut self, f: &Followed, until: Instant) {
        self.until
            .entry(f.topic.clone())
            .or_default()
            .insert(f.partition.index, (until, f.leader_epoch));
    }

    /// Whether `f` sits out a back-off at `now`.
    fn holds(&self, f: &Followed, now: Instant) -> bool {
        // The common case, no partition in error, costs no lookup.
        !self.until.is_empty()
            && self
                .until
                .get(&*f.topic)
                .and_then(|t| t.get(&f.partition.index))
                .is_some_and(|&(until, epoch)| epoch == f.leader_epoch && now < until)
    }

    /// Whether `f` goes into the next fetch: reconciled, not backing off, its log dir online.
    fn fetchable(&self, f: &Followed, now: Instant) -> bool {
        !f.truncate && !self.holds(f, now) && !f.partition.log.is_offline()
    }

    /// Drops the delays that have run out; returns when the earliest remaining one does.
    fn expire(&mut self, now: Instant) -> Option<Instant> {
        if self.until.is_empty() {
            return None;
        }
        for partitions in self.until.values_mut() {
            partitions.retain(|_, (until, _)| *until > now);
        }
        self.until.retain(|_, partitions| !partitions.is_empty());
        self.until
            .values()
            .flat_map(|partitions| partitions.values())
            .map(|(until, _)| *until)
            .min()
    }
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("leader has no endpoint on the inter-broker listener")]
    NoEndpoint,
    #[error(transparent)]
    Client(#[from] ClientError),
}

async fn connect(node: &ClusterNode, leader: i32) -> Result<Connection, FetchError> {
    let image = node.image();
    let endpoint = image
        .brokers
        .get(&leader)
        .and_then(|b| b.endpoint(&node.settings.inter_broker_listener))
        .ok_or(FetchError::NoEndpoint)?;
    let options = ConnectOptions {
        connect_timeout: CONNECT_TIMEOUT,
        // A fetch waits up to `replica.fetch.wait.max.ms` on the leader before answering.
        request_timeout: node.settings.fetch_wait + Duration::from_secs(10),
        max_response: MAX_RESPONSE,
        tls: node.settings.inter_broker_tls.clone(),
        sasl: node.settings.inter_broker_sasl.clone(),
        ..ConnectOptions::new(&format!("strait-replica-fetcher-{}", node.node_id))
    };
    let address = strait_config::join_host_port(&endpoint.host, endpoint.port);
    Ok(Connection::connect(&address, &options).await?)
}

/// KIP-101/KIP-279: asks the leader where this follower's latest epoch ends in its log, and
/// truncates to the smaller of that and where the same epoch ends here. A partition whose
/// truncation fails backs off until `delay_until` and stays pending.
async fn reconcile(
    node: &ClusterNode,
    conn: &mut Connection,
    pending: &[&Followed],
    delays: &mut Delays,
    delay_until: Instant,
) -> Result<(), FetchError> {
    let mut topics: Vec<OffsetForLeaderTopic> = Vec::new();
    let mut asked: Vec<(&Followed, Option<i32>)> = Vec::new();
    for f in pending {
        let epoch = f.partition.log.latest_epoch();
        asked.push((f, epoch));
        let Some(epoch) = epoch else { continue };
        let entry = OffsetForLeaderPartition::default()
            .with_partition(f.partition.index)
            .with_current_leader_epoch(f.leader_epoch)
            .with_leader_epoch(epoch);
        match topics.iter_mut().find(|t| t.topic.0.as_str() == &*f.topic) {
            Some(t) => t.partitions.push(entry),
            None => topics.push(
                OffsetForLeaderTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(f.topic.to_string())))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    let answers = if topics.is_empty() {
        Vec::new()
    } else {
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(node.node_id))
            .with_topics(topics);
        conn.call(OFFSET_FOR_LEADER_EPOCH_VERSION, &request)
            .await?
            .topics
    };
    for (f, epoch) in asked {
        let log = &f.partition.log;
        let Some(epoch) = epoch else {
            // Nothing written under any epoch here: nothing can diverge.
            finish_reconcile(f);
            continue;
        };
        let answer = answers
            .iter()
            .filter(|t| t.topic.0.as_str() == &*f.topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition == f.partition.index);
        let Some(answer) = answer else { continue };
        if answer.error_code != 0 {
            debug!(topic = %f.topic, partition = f.partition.index, code = answer.error_code,
                "OffsetForLeaderEpoch refused; waiting for newer metadata");
            continue;
        }
        let leo = log.log_end_offset();
        let truncate_to = if answer.end_offset < 0 {
            // The leader knows no epoch up to ours: no common history at all.
            log.log_start_offset()
        } else if answer.leader_epoch == epoch {
            answer.end_offset.min(leo)
        } else {
            // The leader's largest epoch below ours: our log ends that epoch where it does.
            let local_end = log
                .end_offset_for_epoch(answer.leader_epoch)
                .map_or(leo, |(_, end)| end);
            answer.end_offset.min(local_end).min(leo)
        };
        if truncate_to < leo {
            info!(topic = %f.topic, partition = f.partition.index, from = leo, to = truncate_to,
                leader_epoch = answer.leader_epoch, "truncating divergent log tail");
            if let Err(e) = log.truncate_to(truncate_to) {
                warn!(topic = %f.topic, partition = f.partition.index, error = %e,
                    "truncation failed; backing off this partition");
                delays.delay(f, delay_until);
                continue;
            }
            f.partition.follow_high_watermark(log.high_watermark());
        }
        finish_reconcile(f);
    }
    Ok(())
}

fn finish_reconcile(f: &Followed) {
    let mut replica = f.partition.replica();
    if replica.leader_epoch == f.leader_epoch {
        replica.truncate_pending = false;
    }
}

/// This fetcher's incremental fetch session with its leader (KIP-227): id 0 means none yet (the
/// next fetch is a full one asking for a session), and what each followed partition last sent
/// (aligned with the `FollowedSet`'s list).
#[derive(Debug, Default)]
struct Session {
    id: i32,
    epoch: i32,
    sent: Vec<Option<Position>>,
    /// Partitions the session holds that are no longer followed: the next fetch forgets them.
    forget: Vec<(Arc<str>, i32)>,
}

impl Session {
    /// Carries what was sent over to a rebuilt partition list; what left the list is forgotten.
    fn follow(&mut self, old: Option<&FollowedSet>, new: &FollowedSet) {
        let mut sent = vec![None; new.list.len()];
        if let Some(old) = old {
            for (f, position) in old.list.iter().zip(&self.sent) {
                let Some(position) = position else { continue };
                match new.position_of(&f.topic, f.partition.index) {
                    Some(i) => sent[i] = Some(*position),
                    None => self.forget.push((f.topic.clone(), f.partition.index)),
                }
            }
        }
        self.sent = sent;
    }
}

/// What a follower tells the leader about one partition; a partition is re-sent when it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    fetch_offset: i64,
    leader_epoch: i32,
    last_fetched_epoch: i32,
    log_start_offset: i64,
}

fn topic_entry<'a>(topics: &'a mut Vec<FetchTopic>, topic: &str) -> &'a mut FetchTopic {
    // Partitions come grouped by topic, so the match is nearly always the last entry.
    match topics.iter().rposition(|t| t.topic.0.as_str() == topic) {
        Some(i) => &mut topics[i],
        None => {
            topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string()))),
            );
            topics.last_mut().expect("just pushed")
        }
    }
}

/// One Fetch for every followed partition that is fetchable now; appends what comes back.
/// Returns whether a partition was marked for reconciliation (the list must be rebuilt).
async fn fetch_once(
    node: &ClusterNode,
    conn: &mut Connection,
    set: &FollowedSet,
    session: &mut Session,
    delays: &mut Delays,
    now: Instant,
) -> Result<bool, FetchError> {
    let incremental = session.id != 0;
    let plan = plan_fetch(set, session, delays, now, node.settings.fetch_max_bytes);
    let (session_id, epoch) = if incremental {
        (session.id, session.epoch)
    } else {
        (0, 0)
    };
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(node.node_id))
        .with_max_wait_ms(node.settings.fetch_wait.as_millis() as i32)
        .with_min_bytes(1)
        .with_max_bytes(node.settings.fetch_response_max_bytes)
        .with_session_id(session_id)
        .with_session_epoch(epoch)
        .with_topics(plan.topics)
        .with_forgotten_topics_data(plan.forgotten);
    let response = conn.call(FETCH_VERSION, &request).await?;
    let lost_session = [
        ResponseError::FetchSessionIdNotFound,
        ResponseError::InvalidFetchSessionEpoch,
    ]
    .iter()
    .any(|e| e.code() == response.error_code);
    if lost_session {
        // Evicted, or the leader restarted: the next fetch is a full one.
        debug!(
            session = session.id,
            "fetch session lost; sending a full fetch"
        );
        *session = Session::default();
        return Ok(false);
    }
    // Partition errors are handled one by one below; a top-level one fails the whole fetch.
    KafkaError::check(ApiKey::Fetch, None, response.error_code, None).map_err(ClientError::from)?;
    if response.session_id == 0 {
        *session = Session::default();
    } else {
        session.epoch = if incremental && response.session_id == session.id {
            session.epoch.checked_add(1).unwrap_or(1)
        } else {
            1
        };
        session.id = response.session_id;
        session.sent = plan.wanted;
        session.forget.clear();
    }
    let delay_until = Instant::now() + node.settings.fetch_backoff;
    Ok(apply_response(
        set,
        response.responses,
        delays,
        delay_until,
        now_ms(),
    ))
}

/// The partitions of one Fetch request and what each followed partition asks for in it.
struct FetchPlan {
    topics: Vec<FetchTopic>,
    forgotten: Vec<ForgottenTopic>,
    /// Aligned with the `FollowedSet`'s list: the position asked for, `None` when left out (the
    /// session then no longer holds it, so it is sent in full when it comes back).
    wanted: Vec<Option<Position>>,
}

/// What the next Fetch asks: every fetchable partition (in an incremental session only those
/// whose position changed or that come back), and forgets what the session holds but is not
/// fetchable now — awaiting reconciliation, backing off, offline — or no longer followed, so the
/// leader stops answering them.
fn plan_fetch(
    set: &FollowedSet,
    session: &Session,
    delays: &Delays,
    now: Instant,
    partition_max_bytes: i32,
) -> FetchPlan {
    let incremental = session.id != 0;
    let mut wanted: Vec<Option<Position>> = vec![None; set.list.len()];
    let mut topics: Vec<FetchTopic> = Vec::new();
    let mut forgotten: Vec<ForgottenTopic> = Vec::new();
    let mut forget =
        |topic: &str, index: i32| match forgotten.iter_mut().rfind(|t| t.topic.0.as_str() == topic)
        {
            Some(t) => t.partitions.push(index),
            None => forgotten.push(
                ForgottenTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![index]),
            ),
        };
    for (i, f) in set.list.iter().enumerate() {
        let sent = session.sent.get(i).copied().flatten();
        if !delays.fetchable(f, now) {
            // Out of the session until it can fetch again.
            if incremental && sent.is_some() {
                forget(&f.topic, f.partition.index);
            }
            continue;
        }
        let (fetch_offset, last_fetched_epoch, log_start_offset) = f.partition.log.fetch_position();
        let position = Position {
            fetch_offset,
            leader_epoch: f.leader_epoch,
            last_fetched_epoch,
            log_start_offset,
        };
        wanted[i] = Some(position);
        if incremental && sent == Some(position) {
            continue;
        }
        let entry = FetchPartition::default()
            .with_partition(f.partition.index)
            .with_current_leader_epoch(position.leader_epoch)
            .with_fetch_offset(position.fetch_offset)
            .with_last_fetched_epoch(position.last_fetched_epoch)
            .with_log_start_offset(position.log_start_offset)
            .with_partition_max_bytes(partition_max_bytes);
        topic_entry(&mut topics, &f.topic).partitions.push(entry);
    }
    if incremental {
        for (topic, index) in &session.forget {
            forget(topic, *index);
        }
    }
    FetchPlan {
        topics,
        forgotten,
        wanted,
    }
}

/// Applies a Fetch response partition by partition. A partition that fails — the leader refused
/// it, or its own log could not take the data — backs off until `delay_until`; the others are
/// applied regardless. Returns whether a partition was marked for reconciliation.
fn apply_response(
    set: &FollowedSet,
    responses: Vec<FetchableTopicResponse>,
    delays: &mut Delays,
    delay_until: Instant,
    now_ms: i64,
) -> bool {
    let mut reconcile = false;
    for topic in responses {
        for pd in topic.partitions {
            let Some(i) = set.position_of(topic.topic.0.as_str(), pd.partition_index) else {
                continue;
            };
            let f = &set.list[i];
            match apply_partition(f, pd, now_ms) {
                Ok(Applied::Done) => {}
                Ok(Applied::Reconcile) => reconcile = true,
                Ok(Applied::Refused(code)) => {
                    debug!(topic = %f.topic, partition = f.partition.index, code,
                        "leader refused the fetch; backing off this partition");
                    delays.delay(f, delay_until);
                }
                Err(e) => {
                    warn!(topic = %f.topic, partition = f.partition.index, error = %e,
                        "cannot apply the fetched data; backing off this partition");
                    delays.delay(f, delay_until);
                }
            }
        }
    }
    reconcile
}

/// What became of one partition of a Fetch response.
#[derive(Debug, PartialEq, Eq)]
enum Applied {
    /// Appended (or nothing to append), high watermark and log start taken.
    Done,
    /// Marked for reconciliation with the leader (its fetch offset is out of range there).
    Reconcile,
    /// The leader answered this error code for it.
    Refused(i16),
}

fn apply_partition(f: &Followed, pd: PartitionData, now_ms: i64) -> Result<Applied, LogError> {
    let partition = &f.partition;
    if pd.error_code != 0 {
        let error = ResponseError::try_from_code(pd.error_code);
        if error == Some(ResponseError::OffsetMovedToTieredStorage) {
            return start_at_remote_tail(f);
        }
        if error != Some(ResponseError::OffsetOutOfRange) {
            return Ok(Applied::Refused(pd.error_code));
        }
        if pd.log_start_offset > partition.log.log_end_offset() {
            // The leader deleted what we still need (retention, DeleteRecords): start over at
            // its log start, as Kafka's truncateFullyAndStartAt.
            warn!(topic = %f.topic, partition = partition.index,
                leader_log_start = pd.log_start_offset,
                "follower is behind the leader's log start; restarting the log there");
            partition
                .log
                .truncate_fully_and_start_at(pd.log_start_offset)?;
            return Ok(Applied::Done);
        }
        warn!(topic = %f.topic, partition = partition.index,
            "fetch offset out of range on the leader; reconciling");
        partition.replica().truncate_pending = true;
        return Ok(Applied::Reconcile);
    }
    // Still following the same leader epoch? A role change while the fetch was out means these
    // bytes may no longer be ours to append.
    if partition.replica().leader_epoch != f.leader_epoch {
        return Ok(Applied::Done);
    }
    let records = whole_batches(pd.records.unwrap_or_default());
    if !records.is_empty() {
        partition.log.append_as_follower(&records, now_ms)?;
        partition.appended.notify_waiters();
    }
    partition.follow_high_watermark(pd.high_watermark);
    // Records the leader deleted (DeleteRecords, retention) go here too, so they do not come
    // back if this replica leads later.
    let log = &partition.log;
    if pd.log_start_offset > log.log_start_offset() && pd.log_start_offset <= log.high_watermark() {
        log.delete_records_before(pd.log_start_offset)?;
    }
    Ok(Applied::Done)
}

/// KIP-405's follower bootstrap: what this replica asks for is only in the remote tier (a new
/// replica, a lost disk), so it does not copy the remote tier but starts its log right after the
/// highest copied offset, which the leader still holds locally (local retention deletes only
/// copied segments). Older reads are served from the remote tier. Until the metadata image says
/// what is copied, the partition backs off and asks again. The leader epochs below come from the
/// image (the applier), the producer state from the remote tier (`remote_log::bootstrap`).
fn start_at_remote_tail(f: &Followed) -> Result<Applied, LogError> {
    let log = &f.partition.log;
    let start = log.highest_remote_offset() + 1;
    if start <= log.log_end_offset() {
        return Ok(Applied::Refused(
            ResponseError::OffsetMovedToTieredStorage.code(),
        ));
    }
    warn!(topic = %f.topic, partition = f.partition.index, start,
        "fetch offset is only in the remote tier; starting this replica's log after the highest copied offset");
    log.start_at_remote_tail(start)?;
    Ok(Applied::Done)
}

/// Cuts a trailing partial batch (Kafka may end a fetch response mid-batch).
fn whole_batches(records: Bytes) -> Bytes {
    let mut end = 0usize;
    while records.len() >= end + 12 {
        let len = i32::from_be_bytes([
            records[end + 8],
            records[end + 9],
            records[end + 10],
            records[end + 11],
        ]);
        let Ok(len) = usize::try_from(len) else { break };
        let next = end + 12 + len;
        if next > records.len() {
            break;
        }
        end = next;
    }
    records.slice(..end)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use strait_storage::{LogConfig, LogManager, TopicPartition};

    use super::*;
    use crate::partition::replica::ReplicaState;

    #[test]
    fn each_partition_has_exactly_one_fetcher() {
        for count in 1..=4usize {
            for partition in 0..50 {
                let takers = (0..count)
                    .filter(|&index| {
                        FetcherId {
                            leader: 1,
                            index,
                            count,
                        }
                        .takes("orders", partition)
                    })
                    .count();
                assert_eq!(takers, 1, "{count} fetchers, partition {partition}");
            }
        }
        // Spread: with 2 fetchers, 50 partitions do not all land on one.
        let first = (0..50)
            .filter(|&p| {
                FetcherId {
                    leader: 1,
                    index: 0,
                    count: 2,
                }
                .takes("orders", p)
            })
            .count();
        assert!((10..=40).contains(&first), "{first} of 50 on fetcher 0");
    }

    /// One batch of `count` one-byte records starting at offset `base`.
    fn batch(base: i64, count: i64) -> Bytes {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 3,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: base + i,
                sequence: -1,
                timestamp: 0,
                key: None,
                value: Some(Bytes::from_static(b"v")),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode");
        buf.freeze()
    }

    /// Partitions 0 and 1 of topic `t` on real logs in `dir`, followed from node 2 at epoch 3.
    fn following(dir: &std::path::Path) -> (LogManager, FollowedSet) {
        let logs =
            LogManager::open(&[dir.to_path_buf()], &|_: &str| LogConfig::default()).expect("logs");
        let topic: Arc<str> = Arc::from("t");
        let list = (0..2)
            .map(|index| {
                let log = logs
                    .get_or_create(&TopicPartition::new("t", index), LogConfig::default())
                    .expect("log");
                let partition = Partition::new(index, log, ReplicaState::follower_of(1, 2));
                partition.replica().leader_epoch = 3;
                Followed {
                    topic: topic.clone(),
                    partition: Arc::new(partition),
                    leader_epoch: 3,
                    truncate: false,
                }
            })
            .collect();
        (logs, FollowedSet::of(1, list))
    }

    fn response(partitions: Vec<PartitionData>) -> Vec<FetchableTopicResponse> {
        vec![
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(partitions),
        ]
    }

    /// (partition, fetch offset) of each partition a plan fetches, and the partitions it forgets.
    fn asked(plan: &FetchPlan) -> (Vec<(i32, i64)>, Vec<i32>) {
        let fetched = plan
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| (p.partition, p.fetch_offset))
            .collect();
        let forgotten = plan
            .forgotten
            .iter()
            .flat_map(|t| t.partitions.iter().copied())
            .collect();
        (fetched, forgotten)
    }

    #[test]
    fn a_partition_that_cannot_append_backs_off_alone_and_leaves_the_session() {
        let dir = tempfile::tempdir().expect("dir");
        let (_logs, set) = following(dir.path());
        let backoff = Duration::from_secs(1);
        let now = Instant::now();
        let mut delays = Delays::default();
        // A full fetch opened session 7 with both partitions at offset 0.
        let first = plan_fetch(&set, &Session::default(), &delays, now, 1 << 20);
        assert_eq!(asked(&first), (vec![(0, 0), (1, 0)], vec![]));
        let mut session = Session {
            id: 7,
            epoch: 1,
            sent: first.wanted,
            forget: Vec::new(),
        };

        // Partition 0's data cannot be appended (a corrupt batch: the log refuses it, as a full
        // disk refuses a write); partition 1's can.
        let mut corrupt = batch(0, 2).to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        let reconcile = apply_response(
            &set,
            response(vec![
                PartitionData::default()
                    .with_partition_index(0)
                    .with_high_watermark(2)
                    .with_records(Some(Bytes::from(corrupt))),
                PartitionData::default()
                    .with_partition_index(1)
                    .with_high_watermark(2)
                    .with_records(Some(batch(0, 2))),
            ]),
            &mut delays,
            now + backoff,
            0,
        );
        assert!(!reconcile);
        let (p0, p1) = (&set.list[0], &set.list[1]);
        assert_eq!(p0.partition.log.log_end_offset(), 0);
        assert_eq!(p1.partition.log.log_end_offset(), 2);
        assert_eq!(p1.partition.log.high_watermark(), 2);
        assert!(delays.holds(p0, now) && !delays.holds(p1, now));

        // The next fetch goes on with partition 1 and takes partition 0 out of the session, so
        // the leader stops sending its data meanwhile.
        let next = plan_fetch(&set, &session, &delays, now, 1 << 20);
        assert_eq!(asked(&next), (vec![(1, 2)], vec![0]));
        assert_eq!(next.wanted[0], None);
        session.sent = next.wanted;
        session.epoch += 1;
        // While it waits it is neither fetched nor forgotten again.
        let waiting = plan_fetch(&set, &session, &delays, now, 1 << 20);
        assert_eq!(asked(&waiting), (vec![], vec![]));

        // The back-off over, it comes back into the session where it stopped.
        let later = now + backoff + Duration::from_millis(1);
        assert_eq!(delays.expire(later), None);
        let back = plan_fetch(&set, &session, &delays, later, 1 << 20);
        assert_eq!(asked(&back), (vec![(0, 0)], vec![]));
        let reconcile = apply_response(
            &set,
            response(vec![
                PartitionData::default()
                    .with_partition_index(0)
                    .with_high_watermark(2)
                    .with_records(Some(batch(0, 2))),
            ]),
            &mut delays,
            later + backoff,
            0,
        );
        assert!(!reconcile);
        assert_eq!(p0.partition.log.log_end_offset(), 2);
        assert!(!delays.holds(p0, later));
    }

    #[test]
    fn a_refused_partition_backs_off_until_its_leader_epoch_changes() {
        let dir = tempfile::tempdir().expect("dir");
        let (_logs, set) = following(dir.path());
        let now = Instant::now();
        let mut delays = Delays::default();
        let reconcile = apply_response(
            &set,
            response(vec![
                PartitionData::default()
                    .with_partition_index(0)
                    .with_error_code(ResponseError::NotLeaderOrFollower.code()),
                PartitionData::default()
                    .with_partition_index(1)
                    .with_high_watermark(1)
                    .with_records(Some(batch(0, 1))),
            ]),
            &mut delays,
            now + Duration::from_secs(1),
            0,
        );
        assert!(!reconcile);
        assert!(delays.holds(&set.list[0], now));
        assert!(!delays.holds(&set.list[1], now));
        assert_eq!(set.list[1].partition.log.log_end_offset(), 1);
        // A new leader epoch starts the partition afresh.
        let next_epoch = Followed {
            leader_epoch: 4,
            ..clone_followed(&set.list[0])
        };
        assert!(!delays.holds(&next_epoch, now));
        assert!(delays.fetchable(&next_epoch, now));
    }

    fn clone_followed(f: &Followed) -> Followed {
        Followed {
            topic: f.topic.clone(),
            partition: f.partition.clone(),
            leader_epoch: f.leader_epoch,
            truncate: f.truncate,
        }
    }

    #[test]
    fn delays_run_out_one_by_one() {
        let dir = tempfile::tempdir().expect("dir");
        let (_logs, set) = following(dir.path());
        let now = Instant::now();
        let mut delays = Delays::default();
        assert_eq!(delays.expire(now), None);
        let (short, long) = (
            now + Duration::from_millis(100),
            now + Duration::from_millis(300),
        );
        delays.delay(&set.list[0], long);
        delays.delay(&set.list[1], short);
        assert_eq!(delays.expire(now), Some(short));
        assert_eq!(delays.expire(short), Some(long));
        assert!(delays.holds(&set.list[0], short) && !delays.holds(&set.list[1], short));
        assert_eq!(delays.expire(long), None);
        assert!(delays.until.is_empty());
    }

    #[test]
    fn trailing_partial_batch_is_cut() {
        let mut buf = Vec::new();
        for size in [20usize, 30] {
            buf.extend_from_slice(&0i64.to_be_bytes());
            buf.extend_from_slice(&(size as i32).to_be_bytes());
            buf.extend(std::iter::repeat_n(7u8, size));
        }
        let whole = buf.len();
        buf.extend_from_slice(&0i64.to_be_bytes());
        buf.extend_from_slice(&100i32.to_be_bytes());
        buf.extend_from_slice(&[1, 2, 3]);
        assert_eq!(whole_batches(Bytes::from(buf)).len(), whole);
        assert!(whole_batches(Bytes::from_static(&[0, 0, 0])).is_empty());
    }
}
