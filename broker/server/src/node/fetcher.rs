//! Replica fetchers (Kafka's `ReplicaFetcherThread`): `num.replica.fetchers` tasks per leader
//! this broker follows partitions of, each with its own connection and its share of the
//! partitions (by hash). Each loop it first reconciles partitions that entered a new leader epoch —
//! OffsetForLeaderEpoch with the follower's latest epoch, then truncation to where its log and the
//! leader's diverge (KIP-101/KIP-279; never to the local high watermark) — then sends one Fetch
//! with this broker's replica id for all its partitions, appends what comes back verbatim and
//! takes the leader's high watermark. The fetch runs in an incremental fetch session (KIP-227)
//! with the leader when it offers one: after the first full request only partitions whose fetch
//! position changed are sent, and only partitions with news come back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strait_client::{ClientError, ConnectOptions, Connection, KafkaError};
use strait_cluster::image::NO_LEADER;
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
    let mut connection: Option<Connection> = None;
    let mut session = Session::default();
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
        let outcome = async {
            if connection.is_none() {
                connection = Some(connect(&node, leader).await?);
                // A reconnect usually follows a leader restart or an error: start afresh.
                session = Session::default();
            }
            let conn = connection.as_mut().ok_or(FetchError::NoEndpoint)?;
            let pending: Vec<&Followed> = set.list.iter().filter(|f| f.truncate).collect();
            if !pending.is_empty() {
                reconcile(&node, conn, &pending).await?;
            }
            let ready = set.list.iter().any(|f| !f.truncate);
            let mut changed = !pending.is_empty();
            if ready {
                changed |= fetch_once(&node, conn, set, &mut session).await?;
            }
            Ok::<(bool, bool), FetchError>((ready, changed))
        };
        let pause = match outcome.await {
            Ok((ready, changed)) => {
                // Reconciled or marked for reconciliation: take the new states.
                rebuild |= changed;
                (!ready).then_some(Duration::from_millis(50))
            }
            Err(e) => {
                debug!(leader, error = %e, "replica fetch failed");
                connection = None;
                Some(node.settings.fetch_backoff.min(Duration::from_millis(500)))
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

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("leader has no endpoint on the inter-broker listener")]
    NoEndpoint,
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("storage: {0}")]
    Storage(#[from] strait_storage::LogError),
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
/// truncates to the smaller of that and where the same epoch ends here.
async fn reconcile(
    node: &ClusterNode,
    conn: &mut Connection,
    pending: &[&Followed],
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
            log.truncate_to(truncate_to)?;
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

/// One Fetch for every followed partition not waiting for reconciliation; appends what comes
/// back. Returns whether a partition was marked for reconciliation (the list must be rebuilt).
async fn fetch_once(
    node: &ClusterNode,
    conn: &mut Connection,
    set: &FollowedSet,
    session: &mut Session,
) -> Result<bool, FetchError> {
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
        if f.truncate {
            // Out of the session until reconciled.
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
            .with_partition_max_bytes(node.settings.fetch_max_bytes);
        topic_entry(&mut topics, &f.topic).partitions.push(entry);
    }
    if incremental {
        for (topic, index) in &session.forget {
            forget(topic, *index);
        }
    }
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
        .with_topics(topics)
        .with_forgotten_topics_data(forgotten);
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
        session.sent = wanted;
        session.forget.clear();
    }
    let now = now_ms();
    let mut reconcile = false;
    for topic in response.responses {
        for pd in topic.partitions {
            let Some(i) = set.position_of(topic.topic.0.as_str(), pd.partition_index) else {
                continue;
            };
            let f = &set.list[i];
            let partition = &f.partition;
            if pd.error_code != 0 {
                let error = ResponseError::try_from_code(pd.error_code);
                if error == Some(ResponseError::OffsetOutOfRange) {
                    if pd.log_start_offset > partition.log.log_end_offset() {
                        // The leader deleted what we still need (retention, DeleteRecords):
                        // start over at its log start, as Kafka's truncateFullyAndStartAt.
                        warn!(topic = %f.topic, partition = partition.index,
                            leader_log_start = pd.log_start_offset,
                            "follower is behind the leader's log start; restarting the log there");
                        partition
                            .log
                            .truncate_fully_and_start_at(pd.log_start_offset)?;
                    } else {
                        warn!(topic = %f.topic, partition = partition.index,
                            "fetch offset out of range on the leader; reconciling");
                        partition.replica().truncate_pending = true;
                        reconcile = true;
                    }
                } else {
                    debug!(topic = %f.topic, partition = partition.index, code = pd.error_code,
                        "leader refused the fetch");
                }
                continue;
            }
            // Still following the same leader epoch? A role change while the fetch was out
            // means these bytes may no longer be ours to append.
            if partition.replica().leader_epoch != f.leader_epoch {
                continue;
            }
            let records = whole_batches(pd.records.unwrap_or_default());
            if !records.is_empty() {
                partition.log.append_as_follower(&records, now)?;
                partition.appended.notify_waiters();
            }
            partition.follow_high_watermark(pd.high_watermark);
            // Records the leader deleted (DeleteRecords, retention) go here too, so they do not
            // come back if this replica leads later.
            let log = &partition.log;
            if pd.log_start_offset > log.log_start_offset()
                && pd.log_start_offset <= log.high_watermark()
            {
                log.delete_records_before(pd.log_start_offset)?;
            }
        }
    }
    Ok(reconcile)
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
    use super::*;

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
