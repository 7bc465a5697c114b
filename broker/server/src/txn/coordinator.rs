//! The transactions this broker coordinates (those of the `__transaction_state` partitions it
//! leads), behind one lock, and the one way they change: a request computes the next value with
//! `state`, marks the transaction pending, writes the value to its partition with acks=all and
//! applies it only once the high watermark covers it — so a coordinator that takes over after a
//! failover reloads exactly what clients were told. A transaction in PrepareCommit/PrepareAbort
//! has its markers sent by one completion task (`markers`), which then writes the Complete
//! value; the ticker starts such tasks for transactions loaded in a Prepare state, aborts
//! transactions past their timeout and removes expired transactional ids.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kafka_protocol::ResponseError;
use tracing::{debug, info, warn};

use super::TXN_TOPIC;
use super::records::{TxnStatus, TxnValue, decode_key, decode_value, encode_key, encode_value};
use super::state::{
    self, AddStep, EndRequest, EndStep, InitRequest, InitStep, TxnMetadata, needs_new_producer_id,
};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::group::records::partition_for;
use crate::partition::Replicated;
use crate::replica_manager::{AppendError, RequiredAcks};

/// How long a write to `__transaction_state` may wait for the ISR (Kafka's request timeout).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A transaction as DescribeTransactions / ListTransactions report it.
#[derive(Debug, Clone)]
pub struct TxnView {
    pub transactional_id: String,
    pub value: TxnValue,
}

#[derive(Default)]
struct Inner {
    txns: HashMap<String, TxnMetadata>,
    /// Loaded `__transaction_state` partitions and the coordinator epoch (the partition's leader
    /// epoch) they were loaded at.
    loaded: BTreeMap<i32, i32>,
    /// Partitions count of the topic when they were loaded.
    partitions: i32,
    /// Transactions whose markers a completion task is sending.
    completing: HashSet<String>,
}

/// Every transaction of the `__transaction_state` partitions this broker leads.
#[derive(Default)]
pub struct TxnCoordinator {
    inner: Mutex<Inner>,
}

/// Where a transactional id lives and the coordinator epoch its transitions are made at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    partition: i32,
    epoch: i32,
}

impl TxnCoordinator {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change is completed before anything that could panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The partition of `id` and its coordinator epoch, if this broker coordinates it now.
    fn owner(&self, broker: &Broker, id: &str) -> Result<Owner, ResponseError> {
        let Some(topic) = broker.replicas.topic(TXN_TOPIC) else {
            return Err(ResponseError::NotCoordinator);
        };
        let partition = partition_for(id, topic.meta.partitions);
        if let Some(&epoch) = self.lock().loaded.get(&partition) {
            return Ok(Owner { partition, epoch });
        }
        match topic.partition(partition) {
            Some(p) if p.replica().is_leader() => Err(ResponseError::CoordinatorLoadInProgress),
            _ => Err(ResponseError::NotCoordinator),
        }
    }

    /// Marks `id` pending with `value` as its next state (creating its entry for a new id) when
    /// `owner` still holds; the caller then [`Self::write`]s it.
    fn begin(inner: &mut Inner, owner: Owner, id: &str, value: &TxnValue) -> bool {
        if inner.loaded.get(&owner.partition) != Some(&owner.epoch) {
            return false;
        }
        match inner.txns.get_mut(id) {
            Some(m) => m.pending = true,
            None => {
                let mut m = TxnMetadata::from_value(value.clone());
                // Not durable yet: a failed write removes it again (see `finish`).
                m.value.producer_epoch = state::NO_EPOCH;
                m.pending = true;
                inner.txns.insert(id.to_string(), m);
            }
        }
        true
    }

    /// Writes `value` (None = tombstone) for `id` and applies it once durable; on failure the
    /// transaction keeps its previous state. Answers with the coordinator's error codes.
    async fn write(
        &self,
        broker: &Broker,
        owner: Owner,
        id: &str,
        value: Option<TxnValue>,
    ) -> Result<(), ResponseError> {
        let written = append(broker, id, value.as_ref()).await;
        let mut inner = self.lock();
        if inner.loaded.get(&owner.partition) != Some(&owner.epoch) {
            // Unloaded (or reloaded from the log) meanwhile: the new owner has the truth.
            return Err(ResponseError::NotCoordinator);
        }
        match (&written, value) {
            (Ok(()), Some(value)) => {
                if let Some(m) = inner.txns.get_mut(id) {
                    if value.producer_epoch != m.value.producer_epoch {
                        m.last_epoch = m.value.producer_epoch;
                    }
                    m.value = value;
                    m.pending = false;
                }
            }
            (Ok(()), None) => {
                inner.txns.remove(id);
            }
            (Err(_), _) => {
                let fresh = inner
                    .txns
                    .get(id)
                    .is_some_and(|m| m.value.producer_epoch == state::NO_EPOCH);
                if fresh {
                    inner.txns.remove(id);
                } else if let Some(m) = inner.txns.get_mut(id) {
                    m.pending = false;
                }
            }
        }
        written
    }

    /// InitProducerId with a transactional id: (producer id, epoch).
    pub async fn init_producer_id(
        self: &Arc<Self>,
        broker: &Arc<Broker>,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ResponseError> {
        if id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let owner = self.owner(broker, id)?;
        let fresh = if needs_new_producer_id(self.lock().txns.get(id)) {
            Some(fresh_producer_id(broker).await?)
        } else {
            None
        };
        let req = InitRequest {
            timeout_ms,
            max_timeout_ms: broker.config.transactions.max_timeout_ms,
            expected,
            now_ms: now_ms(),
        };
        let step = {
            let mut inner = self.lock();
            let step = state::init_producer_id(inner.txns.get(id), req, fresh)?;
            let value = match &step {
                InitStep::Write(v) | InitStep::FenceAndAbort(v) => Some(v.clone()),
                InitStep::Answer(..) => None,
            };
            if let Some(v) = &value
                && !Self::begin(&mut inner, owner, id, v)
            {
                return Err(ResponseError::NotCoordinator);
            }
            step
        };
        match step {
            InitStep::Answer(pid, epoch) => Ok((pid, epoch)),
            InitStep::Write(v) => {
                let (pid, epoch) = (v.producer_id, v.producer_epoch);
                self.write(broker, owner, id, Some(v)).await?;
                info!(
                    transactional_id = id,
                    producer_id = pid,
                    epoch,
                    "transactional producer initialised"
                );
                Ok((pid, epoch))
            }
            InitStep::FenceAndAbort(v) => {
                info!(
                    transactional_id = id,
                    producer_id = v.producer_id,
                    epoch = v.producer_epoch,
                    "fencing the previous producer and aborting its ongoing transaction"
                );
                self.write(broker, owner, id, Some(v.clone())).await?;
                self.spawn_completion(broker, owner, id, v);
                // The client retries and then finds the transaction aborted.
                Err(ResponseError::ConcurrentTransactions)
            }
        }
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn.
    pub async fn add_partitions(
        &self,
        broker: &Broker,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &BTreeMap<String, BTreeSet<i32>>,
    ) -> Result<(), ResponseError> {
        let owner = self.owner(broker, id)?;
        let value = {
            let mut inner = self.lock();
            match state::add_partitions(
                inner.txns.get(id),
                producer_id,
                epoch,
                partitions,
                now_ms(),
            )? {
                AddStep::AlreadyAdded => return Ok(()),
                AddStep::Write(v) => {
                    if !Self::begin(&mut inner, owner, id, &v) {
                        return Err(ResponseError::NotCoordinator);
                    }
                    v
                }
            }
        };
        self.write(broker, owner, id, Some(value)).await
    }

    /// KIP-890 part 1: whether `topic`-`partition` is in the producer's ongoing transaction.
    pub fn verify(
        &self,
        broker: &Broker,
        id: &str,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ResponseError> {
        self.owner(broker, id)?;
        state::verify_partition(
            self.lock().txns.get(id),
            producer_id,
            epoch,
            topic,
            partition,
        )
    }

    /// EndTxn: answered once PrepareCommit/PrepareAbort is durable; the markers follow. Returns
    /// the producer id and epoch the client continues with (bumped under transaction version 2).
    pub async fn end_txn(
        self: &Arc<Self>,
        broker: &Arc<Broker>,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        tv2: bool,
    ) -> Result<(i64, i16), ResponseError> {
        let owner = self.owner(broker, id)?;
        let fresh_id = if tv2 && state::end_needs_new_producer_id(self.lock().txns.get(id)) {
            Some(fresh_producer_id(broker).await?)
        } else {
            None
        };
        let req = EndRequest {
            producer_id,
            epoch,
            commit,
            tv2,
            fresh_id,
            now_ms: now_ms(),
        };
        let prepared = {
            let mut inner = self.lock();
            match state::end_txn(inner.txns.get(id), req)? {
                EndStep::Done(pid, epoch) => return Ok((pid, epoch)),
                EndStep::Prepare(v) => {
                    if !Self::begin(&mut inner, owner, id, &v) {
                        return Err(ResponseError::NotCoordinator);
                    }
                    v
                }
            }
        };
        self.write(broker, owner, id, Some(prepared.clone()))
            .await?;
        debug!(
            transactional_id = id,
            commit, "transaction prepared; writing markers"
        );
        let after = state::producer_after(&prepared);
        self.spawn_completion(broker, owner, id, prepared);
        Ok(after)
    }

    /// Starts the task that writes the markers of a prepared transaction and then completes it,
    /// unless one runs already.
    fn spawn_completion(
        self: &Arc<Self>,
        broker: &Arc<Broker>,
        owner: Owner,
        id: &str,
        prepared: TxnValue,
    ) {
        if !self.lock().completing.insert(id.to_string()) {
            return;
        }
        let (this, broker, id) = (self.clone(), broker.clone(), id.to_string());
        tokio::spawn(async move {
            this.complete(&broker, owner, &id, prepared).await;
            this.lock().completing.remove(&id);
        });
    }

    /// Whether `id` is still in the prepared state `prepared` under `owner`.
    fn still_prepared(&self, owner: Owner, id: &str, prepared: &TxnValue) -> bool {
        let inner = self.lock();
        inner.loaded.get(&owner.partition) == Some(&owner.epoch)
            && inner
                .txns
                .get(id)
                .is_some_and(|m| !m.pending && m.value == *prepared)
    }

    async fn complete(&self, broker: &Arc<Broker>, owner: Owner, id: &str, prepared: TxnValue) {
        let commit = prepared.status == TxnStatus::PrepareCommit;
        let mut remaining = prepared.partitions.clone();
        let mut backoff = Duration::from_millis(20);
        while !remaining.is_empty() {
            if !self.still_prepared(owner, id, &prepared) {
                return;
            }
            match super::markers::send(
                broker,
                prepared.producer_id,
                prepared.producer_epoch,
                commit,
                owner.epoch,
                &remaining,
            )
            .await
            {
                Ok(left) => remaining = left,
                Err(e) => {
                    warn!(transactional_id = id, error = ?e, "markers refused: this coordinator is stale");
                    return;
                }
            }
            if !remaining.is_empty() {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
        let done = state::complete(&prepared, now_ms());
        {
            let mut inner = self.lock();
            let ready = inner
                .txns
                .get(id)
                .is_some_and(|m| !m.pending && m.value == prepared);
            if !ready || !Self::begin(&mut inner, owner, id, &done) {
                return;
            }
        }
        match self.write(broker, owner, id, Some(done)).await {
            Ok(()) => {
                broker.metrics.txn_completed(commit);
                debug!(transactional_id = id, commit, "transaction completed");
            }
            // The next tick finds it still prepared and tries again.
            Err(e) => {
                warn!(transactional_id = id, error = ?e, "cannot write the completed transaction")
            }
        }
    }

    /// Starts the completion of prepared transactions that have none running: loaded in a
    /// Prepare state after a failover, or whose completion failed. Run often by the ticker.
    pub fn complete_prepared(self: &Arc<Self>, broker: &Arc<Broker>) {
        let prepared: Vec<(String, Owner, TxnValue)> = {
            let inner = self.lock();
            inner
                .txns
                .iter()
                .filter(|(id, m)| {
                    matches!(
                        m.value.status,
                        TxnStatus::PrepareCommit | TxnStatus::PrepareAbort
                    ) && !m.pending
                        && !inner.completing.contains(*id)
                })
                .filter_map(|(id, m)| {
                    owner_of(&inner, id).map(|o| (id.clone(), o, m.value.clone()))
                })
                .collect()
        };
        for (id, owner, value) in prepared {
            self.spawn_completion(broker, owner, &id, value);
        }
    }

    /// Aborts transactions past their timeout, fencing their producer (Kafka's
    /// `abortTimedOutTransactions`, every `transaction.abort.timed.out.transaction.cleanup.interval.ms`).
    pub async fn abort_timed_out(self: &Arc<Self>, broker: &Arc<Broker>) {
        let now = now_ms();
        let timed_out: Vec<(String, Owner, TxnValue)> = {
            let mut inner = self.lock();
            let found: Vec<(String, Owner, TxnValue)> = inner
                .txns
                .iter()
                .filter(|(_, m)| state::timed_out(m, now))
                .filter_map(|(id, m)| {
                    owner_of(&inner, id)
                        .map(|o| (id.clone(), o, state::fenced_abort(&m.value, now)))
                })
                .collect();
            found
                .into_iter()
                .filter(|(id, owner, value)| Self::begin(&mut inner, *owner, id, value))
                .collect()
        };
        for (id, owner, value) in timed_out {
            info!(transactional_id = %id, producer_id = value.producer_id, "aborting a transaction past its transaction.timeout.ms");
            if self
                .write(broker, owner, &id, Some(value.clone()))
                .await
                .is_ok()
            {
                broker.metrics.txn_timed_out.inc();
                self.spawn_completion(broker, owner, &id, value);
            }
        }
    }

    /// Removes transactional ids idle past `transactional.id.expiration.ms` (a tombstone each).
    pub async fn expire(&self, broker: &Broker) {
        let now = now_ms();
        let expiration = broker.config.transactions.id_expiration_ms;
        let expired: Vec<(String, Owner)> = {
            let mut inner = self.lock();
            let candidates: Vec<(String, Owner)> = inner
                .txns
                .iter()
                .filter(|(_, m)| state::expired(m, now, expiration))
                .filter_map(|(id, _)| owner_of(&inner, id).map(|o| (id.clone(), o)))
                .collect();
            for (id, _) in &candidates {
                if let Some(m) = inner.txns.get_mut(id) {
                    m.pending = true;
                }
            }
            candidates
        };
        for (id, owner) in expired {
            if self.write(broker, owner, &id, None).await.is_ok() {
                info!(transactional_id = %id, "transactional id expired");
            }
        }
    }

    /// Loads one `__transaction_state` partition (this broker now leads it at `epoch`).
    pub fn load(
        &self,
        partition: &crate::replica_manager::Partition,
        partitions: i32,
        epoch: i32,
    ) -> Result<usize, strait_storage::LogError> {
        let mut found: HashMap<String, Option<TxnValue>> = HashMap::new();
        let records = crate::internal_topic::replay(partition, |r| {
            if r.control {
                return;
            }
            let Some(id) = r.key.and_then(decode_key) else {
                return;
            };
            match r.value {
                None => {
                    found.insert(id, None);
                }
                Some(v) => {
                    if let Some(v) = decode_value(v) {
                        found.insert(id, Some(v));
                    }
                }
            }
        })?;
        let mut inner = self.lock();
        inner.partitions = partitions;
        inner
            .txns
            .retain(|id, _| partition_for(id, partitions) != partition.index);
        for (id, value) in found {
            if let Some(v) = value {
                inner.txns.insert(id, TxnMetadata::from_value(v));
            }
        }
        inner.loaded.insert(partition.index, epoch);
        Ok(records)
    }

    /// Forgets the transactions of a partition this broker no longer leads.
    pub fn unload(&self, partition: i32, partitions: i32) -> usize {
        let mut inner = self.lock();
        inner.loaded.remove(&partition);
        let before = inner.txns.len();
        inner
            .txns
            .retain(|id, _| partition_for(id, partitions) != partition);
        before - inner.txns.len()
    }

    /// The loaded partitions and their coordinator epochs.
    pub fn loaded(&self) -> BTreeMap<i32, i32> {
        self.lock().loaded.clone()
    }

    /// One transaction, if this broker coordinates it.
    pub fn describe(&self, broker: &Broker, id: &str) -> Result<TxnView, ResponseError> {
        self.owner(broker, id)?;
        self.lock()
            .txns
            .get(id)
            .filter(|m| m.value.producer_epoch != state::NO_EPOCH)
            .map(|m| TxnView {
                transactional_id: id.to_string(),
                value: m.value.clone(),
            })
            .ok_or(ResponseError::TransactionalIdNotFound)
    }

    /// Every transaction coordinated here.
    pub fn list(&self) -> Vec<TxnView> {
        let inner = self.lock();
        let mut out: Vec<TxnView> = inner
            .txns
            .iter()
            .filter(|(_, m)| m.value.producer_epoch != state::NO_EPOCH)
            .map(|(id, m)| TxnView {
                transactional_id: id.clone(),
                value: m.value.clone(),
            })
            .collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }

    /// (ongoing transactions, transactional ids) for the metrics.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.lock();
        let ongoing = inner
            .txns
            .values()
            .filter(|m| m.value.status == TxnStatus::Ongoing)
            .count();
        (ongoing, inner.txns.len())
    }
}

/// A new producer id, for a new transactional id or one whose epoch ran out.
async fn fresh_producer_id(broker: &Broker) -> Result<i64, ResponseError> {
    broker
        .next_producer_id()
        .await
        .map_err(|_| ResponseError::CoordinatorNotAvailable)
}

fn owner_of(inner: &Inner, id: &str) -> Option<Owner> {
    if inner.partitions <= 0 {
        return None;
    }
    let partition = partition_for(id, inner.partitions);
    inner
        .loaded
        .get(&partition)
        .map(|&epoch| Owner { partition, epoch })
}

/// Appends one record for `id` to its `__transaction_state` partition and waits until the ISR
/// has it, answering failures with Kafka's coordinator codes.
async fn append(broker: &Broker, id: &str, value: Option<&TxnValue>) -> Result<(), ResponseError> {
    let topic = broker
        .replicas
        .topic(TXN_TOPIC)
        .ok_or(ResponseError::NotCoordinator)?;
    let index = partition_for(id, topic.meta.partitions);
    let now = now_ms();
    let batch = crate::internal_topic::encode_records(
        [(encode_key(id), value.map(encode_value))],
        now,
        None,
    )
    .map_err(|e| e.error)?;
    let appended = broker
        .replicas
        .append_as_leader(&topic, index, &batch, RequiredAcks::All, now)
        .map_err(|e| {
            warn!(transactional_id = id, error = %e, "cannot write to {TXN_TOPIC}");
            match e {
                AppendError::NotHosted { .. }
                | AppendError::NotLeader { .. }
                | AppendError::EpochRaisePending { .. } => ResponseError::NotCoordinator,
                AppendError::NotEnoughReplicas { .. } => ResponseError::CoordinatorNotAvailable,
                AppendError::Log(_) | AppendError::NoRecords => ResponseError::NotCoordinator,
            }
        })?;
    let target = appended.info.last_offset + 1;
    match appended
        .partition
        .wait_for_high_watermark(target, appended.leader_epoch, WRITE_TIMEOUT)
        .await
    {
        Replicated::Yes => Ok(()),
        Replicated::LostLeadership => Err(ResponseError::NotCoordinator),
        Replicated::TimedOut => Err(ResponseError::CoordinatorNotAvailable),
    }
}
