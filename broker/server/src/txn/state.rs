//! The transaction state machine, after Kafka's `TransactionMetadata` and the checks of its
//! `TransactionCoordinator`: pure functions from the current metadata of a transactional id and a
//! request to the next value to write to `__transaction_state` (or the error to answer). Nothing
//! here does I/O or reads a clock, so every rule is unit-tested; `coordinator` writes the values
//! and applies them once durable.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;

use super::records::{TxnStatus, TxnValue};

/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`.
pub const NO_EPOCH: i16 = -1;
/// Kafka's `RecordBatch.NO_PRODUCER_ID`.
pub const NO_PRODUCER_ID: i64 = -1;

/// One transactional id's state as the coordinator holds it: the last durable value plus
/// `last_epoch` (the epoch before the latest bump, so a retried InitProducerId of KIP-360 is
/// recognised) and whether a transition is being written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub value: TxnValue,
    pub last_epoch: i16,
    /// A value is on its way to the log: every other request waits (CONCURRENT_TRANSACTIONS).
    pub pending: bool,
}

impl TxnMetadata {
    pub fn from_value(value: TxnValue) -> TxnMetadata {
        TxnMetadata {
            value,
            last_epoch: NO_EPOCH,
            pending: false,
        }
    }

    pub fn status(&self) -> TxnStatus {
        self.value.status
    }
}

/// What InitProducerId needs from the caller beyond the metadata.
#[derive(Debug, Clone, Copy)]
pub struct InitRequest {
    pub timeout_ms: i32,
    pub max_timeout_ms: i32,
    /// KIP-360: the producer id and epoch a producer that already had one sends back.
    pub expected: Option<(i64, i16)>,
    pub now_ms: i64,
}

/// The next step of InitProducerId.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitStep {
    /// Write this Empty value and answer with its producer id and epoch.
    Write(TxnValue),
    /// The id's transaction is ongoing: fence its producer (epoch bump) and abort it; the
    /// client is told CONCURRENT_TRANSACTIONS and retries once the abort completed.
    FenceAndAbort(TxnValue),
    /// The producer already has this id and epoch (a retried request): answer without writing.
    Answer(i64, i16),
}

/// Whether an InitProducerId needs a fresh producer id (new transactional id, or an epoch that
/// cannot be bumped any more).
pub fn needs_new_producer_id(current: Option<&TxnMetadata>) -> bool {
    current.is_none_or(|m| m.value.producer_epoch >= i16::MAX - 1)
}

/// InitProducerId for a transactional id (Kafka's `handleInitProducerId`). `fresh_id` is a new
/// producer id, used when [`needs_new_producer_id`] said so.
pub fn init_producer_id(
    current: Option<&TxnMetadata>,
    req: InitRequest,
    fresh_id: Option<i64>,
) -> Result<InitStep, ResponseError> {
    if req.timeout_ms <= 0 || req.timeout_ms > req.max_timeout_ms {
        return Err(ResponseError::InvalidTransactionTimeout);
    }
    let Some(m) = current else {
        let producer_id = fresh_id.ok_or(ResponseError::CoordinatorNotAvailable)?;
        return Ok(InitStep::Write(TxnValue {
            producer_id,
            previous_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: 0,
            timeout_ms: req.timeout_ms,
            status: TxnStatus::Empty,
            partitions: BTreeMap::new(),
            last_update_ms: req.now_ms,
            start_ms: -1,
            client_transaction_version: 0,
        }));
    };
    if m.pending {
        return Err(ResponseError::ConcurrentTransactions);
    }
    let v = &m.value;
    if let Some((pid, epoch)) = req.expected {
        // KIP-360: a producer that lost track of its state may re-init with what it had; it must
        // be the current producer (or its retry of the last bump).
        let current_pair = pid == v.producer_id && epoch == v.producer_epoch;
        let retried_bump = pid == v.producer_id && epoch == m.last_epoch;
        let previous = pid == v.previous_producer_id && v.previous_producer_id != NO_PRODUCER_ID;
        if retried_bump && v.status == TxnStatus::Empty {
            return Ok(InitStep::Answer(v.producer_id, v.producer_epoch));
        }
        if !current_pair && !previous {
            return Err(ResponseError::ProducerFenced);
        }
    }
    match v.status {
        TxnStatus::PrepareCommit | TxnStatus::PrepareAbort => {
            Err(ResponseError::ConcurrentTransactions)
        }
        TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort => {
            let (producer_id, producer_epoch, previous) =
                match (needs_new_producer_id(Some(m)), fresh_id) {
                    (true, Some(id)) => (id, 0, v.producer_id),
                    (true, None) => return Err(ResponseError::CoordinatorNotAvailable),
                    (false, _) => (v.producer_id, v.producer_epoch + 1, NO_PRODUCER_ID),
                };
            Ok(InitStep::Write(TxnValue {
                producer_id,
                previous_producer_id: previous,
                next_producer_id: NO_PRODUCER_ID,
                producer_epoch,
                timeout_ms: req.timeout_ms,
                status: TxnStatus::Empty,
                partitions: BTreeMap::new(),
                last_update_ms: req.now_ms,
                start_ms: -1,
                client_transaction_version: v.client_transaction_version,
            }))
        }
        TxnStatus::Ongoing => Ok(InitStep::FenceAndAbort(fenced_abort(v, req.now_ms))),
        TxnStatus::Dead | TxnStatus::PrepareEpochFence => {
            Err(ResponseError::ConcurrentTransactions)
        }
    }
}

/// The PrepareAbort value that fences the current producer of an ongoing transaction: its epoch
/// is bumped, so its markers and anything it still sends carry a stale epoch. Used by a new
/// producer's InitProducerId and by the timeout of a transaction.
pub fn fenced_abort(v: &TxnValue, now_ms: i64) -> TxnValue {
    TxnValue {
        producer_epoch: v.producer_epoch.saturating_add(1).min(i16::MAX - 1),
        status: TxnStatus::PrepareAbort,
        last_update_ms: now_ms,
        ..v.clone()
    }
}

/// Checks that a request of producer (`producer_id`, `epoch`) may change the transaction.
fn check_producer(m: &TxnMetadata, producer_id: i64, epoch: i16) -> Result<(), ResponseError> {
    if m.value.producer_id != producer_id {
        return Err(ResponseError::InvalidProducerIdMapping);
    }
    if m.value.producer_epoch != epoch {
        return Err(ResponseError::ProducerFenced);
    }
    if m.pending {
        return Err(ResponseError::ConcurrentTransactions);
    }
    Ok(())
}

/// The next step of AddPartitionsToTxn / AddOffsetsToTxn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddStep {
    /// Every partition is in the ongoing transaction already.
    AlreadyAdded,
    Write(TxnValue),
}

/// AddPartitionsToTxn (Kafka's `handleAddPartitionsToTransaction`).
pub fn add_partitions(
    current: Option<&TxnMetadata>,
    producer_id: i64,
    epoch: i16,
    partitions: &BTreeMap<String, BTreeSet<i32>>,
    now_ms: i64,
) -> Result<AddStep, ResponseError> {
    let m = current.ok_or(ResponseError::InvalidProducerIdMapping)?;
    check_producer(m, producer_id, epoch)?;
    let v = &m.value;
    match v.status {
        TxnStatus::PrepareCommit | TxnStatus::PrepareAbort => {
            return Err(ResponseError::ConcurrentTransactions);
        }
        TxnStatus::Dead | TxnStatus::PrepareEpochFence => {
            return Err(ResponseError::InvalidTxnState);
        }
        TxnStatus::Empty
        | TxnStatus::Ongoing
        | TxnStatus::CompleteCommit
        | TxnStatus::CompleteAbort => {}
    }
    let all_in = partitions
        .iter()
        .all(|(t, ps)| v.partitions.get(t).is_some_and(|have| ps.is_subset(have)));
    if v.status == TxnStatus::Ongoing && all_in {
        return Ok(AddStep::AlreadyAdded);
    }
    let mut next = v.clone();
    if v.status != TxnStatus::Ongoing {
        // A new transaction: the previous one's partitions were cleared when it completed.
        next.partitions.clear();
        next.start_ms = now_ms;
    }
    for (t, ps) in partitions {
        next.partitions
            .entry(t.clone())
            .or_default()
            .extend(ps.iter().copied());
    }
    next.status = TxnStatus::Ongoing;
    next.last_update_ms = now_ms;
    Ok(AddStep::Write(next))
}

/// KIP-890 verification: whether `partition` of `topic` is in producer (`producer_id`,
/// `epoch`)'s ongoing transaction.
pub fn verify_partition(
    current: Option<&TxnMetadata>,
    producer_id: i64,
    epoch: i16,
    topic: &str,
    partition: i32,
) -> Result<(), ResponseError> {
    let m = current.ok_or(ResponseError::InvalidProducerIdMapping)?;
    if m.value.producer_id != producer_id {
        return Err(ResponseError::InvalidProducerIdMapping);
    }
    if m.value.producer_epoch != epoch {
        return Err(ResponseError::ProducerFenced);
    }
    let ongoing = m.value.status == TxnStatus::Ongoing
        && m.value
            .partitions
            .get(topic)
            .is_some_and(|ps| ps.contains(&partition));
    if ongoing {
        Ok(())
    } else {
        Err(ResponseError::InvalidTxnState)
    }
}

/// Transaction version 2 (KIP-890 part 2): the epoch is bumped at every EndTxn and partitions
/// are added implicitly by their leaders.
pub const TV2: i16 = 2;

/// The next step of EndTxn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndStep {
    /// Write this PrepareCommit/PrepareAbort value, then send the markers.
    Prepare(TxnValue),
    /// A retry of an EndTxn that already completed: answer success with this producer id and
    /// epoch.
    Done(i64, i16),
}

/// What EndTxn needs beyond the metadata.
#[derive(Debug, Clone, Copy)]
pub struct EndRequest {
    pub producer_id: i64,
    pub epoch: i16,
    pub commit: bool,
    /// The client speaks transaction version 2 (EndTxn v5+).
    pub tv2: bool,
    /// A new producer id, for a TV2 bump of an exhausted epoch.
    pub fresh_id: Option<i64>,
    pub now_ms: i64,
}

/// Whether a TV2 EndTxn of `m` needs a new producer id (its epoch cannot be bumped again).
pub fn end_needs_new_producer_id(m: Option<&TxnMetadata>) -> bool {
    m.is_some_and(|m| m.value.producer_epoch >= i16::MAX - 1)
}

/// EndTxn (Kafka's `endTransaction`). With transaction version 2 the Prepare value carries the
/// bumped epoch (and, when the epoch is exhausted, the next producer id), so the markers fence
/// anything the producer still sends for this transaction, and a retry with the previous epoch
/// of an EndTxn that completed is answered with the current producer id and epoch.
pub fn end_txn(current: Option<&TxnMetadata>, req: EndRequest) -> Result<EndStep, ResponseError> {
    let m = current.ok_or(ResponseError::InvalidProducerIdMapping)?;
    let v = &m.value;
    let finished = |status: TxnStatus| {
        (status == TxnStatus::CompleteCommit && req.commit)
            || (status == TxnStatus::CompleteAbort && !req.commit)
    };
    if req.tv2 && !m.pending {
        // A retry after the bump: the producer did not see the answer.
        let retried = (req.producer_id == v.producer_id && req.epoch == m.last_epoch)
            || (req.producer_id == v.previous_producer_id && v.producer_epoch == 0);
        if retried && req.epoch != v.producer_epoch {
            return match v.status {
                s if finished(s) => Ok(EndStep::Done(v.producer_id, v.producer_epoch)),
                TxnStatus::PrepareCommit | TxnStatus::PrepareAbort => {
                    Err(ResponseError::ConcurrentTransactions)
                }
                _ => Err(ResponseError::ProducerFenced),
            };
        }
    }
    check_producer(m, req.producer_id, req.epoch)?;
    let prepare = |status: TxnStatus| -> Result<EndStep, ResponseError> {
        let mut next = TxnValue {
            status,
            last_update_ms: req.now_ms,
            ..v.clone()
        };
        if req.tv2 {
            next.client_transaction_version = TV2;
            next.producer_epoch = v.producer_epoch.saturating_add(1);
            if end_needs_new_producer_id(Some(m)) {
                next.next_producer_id =
                    req.fresh_id.ok_or(ResponseError::CoordinatorNotAvailable)?;
            }
        }
        Ok(EndStep::Prepare(next))
    };
    let target = if req.commit {
        TxnStatus::PrepareCommit
    } else {
        TxnStatus::PrepareAbort
    };
    match (v.status, req.tv2) {
        (TxnStatus::Ongoing, _) => prepare(target),
        // TV2 lets a producer abort with nothing added, to bump its epoch after an error.
        (TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort, true)
            if !req.commit =>
        {
            prepare(target)
        }
        // TV1: the retry of an EndTxn that completed.
        (s, false) if finished(s) => Ok(EndStep::Done(v.producer_id, v.producer_epoch)),
        (TxnStatus::PrepareCommit, _) if req.commit => Err(ResponseError::ConcurrentTransactions),
        (TxnStatus::PrepareAbort, _) if !req.commit => Err(ResponseError::ConcurrentTransactions),
        _ => Err(ResponseError::InvalidTxnState),
    }
}

/// The producer id and epoch a client continues with after an EndTxn that wrote `prepared`.
pub fn producer_after(prepared: &TxnValue) -> (i64, i16) {
    if prepared.next_producer_id != NO_PRODUCER_ID {
        (prepared.next_producer_id, 0)
    } else {
        (prepared.producer_id, prepared.producer_epoch)
    }
}

/// The Complete value that follows a Prepare value once every marker is written: the partitions
/// are cleared, as Kafka does, and a TV2 transaction whose epoch ran out moves to its next
/// producer id.
pub fn complete(prepared: &TxnValue, now_ms: i64) -> TxnValue {
    let mut done = TxnValue {
        status: if prepared.status == TxnStatus::PrepareCommit {
            TxnStatus::CompleteCommit
        } else {
            TxnStatus::CompleteAbort
        },
        partitions: BTreeMap::new(),
        last_update_ms: now_ms,
        ..prepared.clone()
    };
    if prepared.next_producer_id != NO_PRODUCER_ID {
        done.previous_producer_id = prepared.producer_id;
        done.producer_id = prepared.next_producer_id;
        done.next_producer_id = NO_PRODUCER_ID;
        done.producer_epoch = 0;
    }
    done
}

/// Whether an ongoing transaction ran past its timeout.
pub fn timed_out(m: &TxnMetadata, now_ms: i64) -> bool {
    !m.pending
        && m.value.status == TxnStatus::Ongoing
        && m.value.start_ms >= 0
        && now_ms.saturating_sub(m.value.start_ms) > i64::from(m.value.timeout_ms)
}

/// Whether a transactional id has been idle long enough to be removed
/// (`transactional.id.expiration.ms`): only ids with no transaction in flight.
pub fn expired(m: &TxnMetadata, now_ms: i64, expiration_ms: i64) -> bool {
    !m.pending
        && matches!(
            m.value.status,
            TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort
        )
        && now_ms.saturating_sub(m.value.last_update_ms) >= expiration_ms
}

/// Kafka answers PRODUCER_FENCED only to clients that know it (KIP-588); older versions of each
/// API get INVALID_PRODUCER_EPOCH.
pub fn for_version(e: ResponseError, version: i16, first_fenced_version: i16) -> ResponseError {
    if e == ResponseError::ProducerFenced && version < first_fenced_version {
        ResponseError::InvalidProducerEpoch
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(now: i64) -> InitRequest {
        InitRequest {
            timeout_ms: 60_000,
            max_timeout_ms: 900_000,
            expected: None,
            now_ms: now,
        }
    }

    fn written(step: InitStep) -> TxnValue {
        match step {
            InitStep::Write(v) => v,
            other => panic!("expected a write, got {other:?}"),
        }
    }

    fn meta(v: TxnValue) -> TxnMetadata {
        TxnMetadata::from_value(v)
    }

    fn end(pid: i64, epoch: i16, commit: bool, now: i64) -> EndRequest {
        EndRequest {
            producer_id: pid,
            epoch,
            commit,
            tv2: false,
            fresh_id: None,
            now_ms: now,
        }
    }

    fn end2(pid: i64, epoch: i16, commit: bool, now: i64) -> EndRequest {
        EndRequest {
            tv2: true,
            ..end(pid, epoch, commit, now)
        }
    }

    fn parts(list: &[(&str, i32)]) -> BTreeMap<String, BTreeSet<i32>> {
        let mut out: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
        for (t, p) in list {
            out.entry(t.to_string()).or_default().insert(*p);
        }
        out
    }

    #[test]
    fn init_creates_then_bumps_the_epoch() {
        let v = written(init_producer_id(None, req(1), Some(7)).expect("init"));
        assert_eq!(
            (v.producer_id, v.producer_epoch, v.status),
            (7, 0, TxnStatus::Empty)
        );
        let m = meta(v);
        let v2 = written(init_producer_id(Some(&m), req(2), None).expect("re-init"));
        assert_eq!((v2.producer_id, v2.producer_epoch), (7, 1));
        // An exhausted epoch moves to a new producer id.
        let mut old = m.clone();
        old.value.producer_epoch = i16::MAX - 1;
        assert!(needs_new_producer_id(Some(&old)));
        let v3 = written(init_producer_id(Some(&old), req(3), Some(9)).expect("new id"));
        assert_eq!(
            (v3.producer_id, v3.producer_epoch, v3.previous_producer_id),
            (9, 0, 7)
        );
    }

    #[test]
    fn init_validates_the_timeout() {
        let mut r = req(1);
        r.timeout_ms = 900_001;
        assert_eq!(
            init_producer_id(None, r, Some(1)),
            Err(ResponseError::InvalidTransactionTimeout)
        );
        r.timeout_ms = 0;
        assert_eq!(
            init_producer_id(None, r, Some(1)),
            Err(ResponseError::InvalidTransactionTimeout)
        );
    }

    #[test]
    fn init_during_an_ongoing_transaction_fences_and_aborts_it() {
        let m = meta(written(
            init_producer_id(None, req(1), Some(7)).expect("init"),
        ));
        let AddStep::Write(ongoing) =
            add_partitions(Some(&m), 7, 0, &parts(&[("t", 0)]), 5).expect("add")
        else {
            panic!("expected a write");
        };
        let m = meta(ongoing);
        match init_producer_id(Some(&m), req(6), None).expect("init") {
            InitStep::FenceAndAbort(v) => {
                assert_eq!(v.status, TxnStatus::PrepareAbort);
                assert_eq!(v.producer_epoch, 1);
                assert_eq!(v.partitions, parts(&[("t", 0)]));
            }
            other => panic!("expected fencing, got {other:?}"),
        }
        // While it is being aborted, retries wait.
        let mut preparing = m.clone();
        preparing.value.status = TxnStatus::PrepareAbort;
        assert_eq!(
            init_producer_id(Some(&preparing), req(7), None),
            Err(ResponseError::ConcurrentTransactions)
        );
        let mut pending = m;
        pending.pending = true;
        assert_eq!(
            init_producer_id(Some(&pending), req(7), None),
            Err(ResponseError::ConcurrentTransactions)
        );
    }

    #[test]
    fn kip_360_re_init_must_name_the_current_producer() {
        let m = meta(written(
            init_producer_id(None, req(1), Some(7)).expect("init"),
        ));
        let mut r = req(2);
        r.expected = Some((7, 0));
        assert_eq!(
            written(init_producer_id(Some(&m), r, None).expect("same producer")).producer_epoch,
            1
        );
        r.expected = Some((7, 5));
        assert_eq!(
            init_producer_id(Some(&m), r, None),
            Err(ResponseError::ProducerFenced)
        );
        // A retry of the bump that already happened gets the same answer.
        let mut bumped = meta(written(
            init_producer_id(Some(&m), req(3), None).expect("bump"),
        ));
        bumped.last_epoch = 0;
        r.expected = Some((7, 0));
        assert_eq!(
            init_producer_id(Some(&bumped), r, None),
            Ok(InitStep::Answer(7, 1))
        );
    }

    #[test]
    fn add_partitions_checks_the_producer_and_state() {
        assert_eq!(
            add_partitions(None, 7, 0, &parts(&[("t", 0)]), 1),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        let m = meta(written(
            init_producer_id(None, req(1), Some(7)).expect("init"),
        ));
        assert_eq!(
            add_partitions(Some(&m), 8, 0, &parts(&[("t", 0)]), 1),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        assert_eq!(
            add_partitions(Some(&m), 7, 1, &parts(&[("t", 0)]), 1),
            Err(ResponseError::ProducerFenced)
        );
        let AddStep::Write(v) =
            add_partitions(Some(&m), 7, 0, &parts(&[("t", 0), ("t", 1)]), 10).expect("add")
        else {
            panic!("expected a write");
        };
        assert_eq!((v.status, v.start_ms), (TxnStatus::Ongoing, 10));
        let m = meta(v);
        assert_eq!(
            add_partitions(Some(&m), 7, 0, &parts(&[("t", 1)]), 11),
            Ok(AddStep::AlreadyAdded)
        );
        let AddStep::Write(v) =
            add_partitions(Some(&m), 7, 0, &parts(&[("u", 3)]), 12).expect("add more")
        else {
            panic!("expected a write");
        };
        assert_eq!(v.partitions, parts(&[("t", 0), ("t", 1), ("u", 3)]));
        assert_eq!(v.start_ms, 10, "the transaction's start stays");
        let mut preparing = meta(v);
        preparing.value.status = TxnStatus::PrepareCommit;
        assert_eq!(
            add_partitions(Some(&preparing), 7, 0, &parts(&[("t", 0)]), 13),
            Err(ResponseError::ConcurrentTransactions)
        );
        // After completion the next transaction starts with only its own partitions.
        let done = meta(complete(&preparing.value, 14));
        assert!(done.value.partitions.is_empty());
        let AddStep::Write(next) =
            add_partitions(Some(&done), 7, 0, &parts(&[("u", 0)]), 15).expect("next txn")
        else {
            panic!("expected a write");
        };
        assert_eq!((next.partitions, next.start_ms), (parts(&[("u", 0)]), 15));
    }

    #[test]
    fn end_txn_prepares_once_and_accepts_retries() {
        let m = meta(written(
            init_producer_id(None, req(1), Some(7)).expect("init"),
        ));
        assert_eq!(
            end_txn(Some(&m), end(7, 0, true, 2)),
            Err(ResponseError::InvalidTxnState)
        );
        let AddStep::Write(v) =
            add_partitions(Some(&m), 7, 0, &parts(&[("t", 0)]), 3).expect("add")
        else {
            panic!("expected a write");
        };
        let m = meta(v);
        let EndStep::Prepare(p) = end_txn(Some(&m), end(7, 0, true, 4)).expect("end") else {
            panic!("expected prepare");
        };
        assert_eq!(p.status, TxnStatus::PrepareCommit);
        let prepared = meta(p.clone());
        assert_eq!(
            end_txn(Some(&prepared), end(7, 0, true, 5)),
            Err(ResponseError::ConcurrentTransactions)
        );
        assert_eq!(
            end_txn(Some(&prepared), end(7, 0, false, 5)),
            Err(ResponseError::InvalidTxnState)
        );
        let done = meta(complete(&p, 6));
        assert_eq!(done.value.status, TxnStatus::CompleteCommit);
        assert_eq!(
            end_txn(Some(&done), end(7, 0, true, 7)),
            Ok(EndStep::Done(7, 0))
        );
        assert_eq!(
            end_txn(Some(&done), end(7, 0, false, 7)),
            Err(ResponseError::InvalidTxnState)
        );
        assert_eq!(
            end_txn(Some(&done), end(7, 1, true, 7)),
            Err(ResponseError::ProducerFenced)
        );
    }

    #[test]
    fn timeouts_expiry_and_verification() {
        let m = meta(written(
            init_producer_id(None, req(1), Some(7)).expect("init"),
        ));
        assert!(!timed_out(&m, 1_000_000));
        assert!(expired(&m, 1 + 100, 100));
        assert!(!expired(&m, 1 + 99, 100));
        let AddStep::Write(v) =
            add_partitions(Some(&m), 7, 0, &parts(&[("t", 0)]), 10).expect("add")
        else {
            panic!("expected a write");
        };
        let m = meta(v);
        assert!(!timed_out(&m, 10 + 60_000));
        assert!(timed_out(&m, 10 + 60_001));
        assert!(
            !expired(&m, i64::MAX, 100),
            "an ongoing transaction never expires"
        );
        let fenced = fenced_abort(&m.value, 70_000);
        assert_eq!(
            (fenced.producer_epoch, fenced.status),
            (1, TxnStatus::PrepareAbort)
        );
        assert_eq!(verify_partition(Some(&m), 7, 0, "t", 0), Ok(()));
        assert_eq!(
            verify_partition(Some(&m), 7, 0, "t", 1),
            Err(ResponseError::InvalidTxnState)
        );
        assert_eq!(
            verify_partition(Some(&m), 7, 1, "t", 0),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            for_version(ResponseError::ProducerFenced, 1, 2),
            ResponseError::InvalidProducerEpoch
        );
        assert_eq!(
            for_version(ResponseError::ProducerFenced, 2, 2),
            ResponseError::ProducerFenced
        );
    }

    #[test]
    fn tv2_bumps_the_epoch_at_every_end_and_answers_retries() {
        let m = meta(written(
            init_producer_id(None, req(1), Some(7)).expect("init"),
        ));
        let AddStep::Write(v) =
            add_partitions(Some(&m), 7, 0, &parts(&[("t", 0)]), 3).expect("add")
        else {
            panic!("expected a write");
        };
        let m = meta(v);
        let EndStep::Prepare(p) = end_txn(Some(&m), end2(7, 0, true, 4)).expect("end") else {
            panic!("expected prepare");
        };
        assert_eq!((p.status, p.producer_epoch), (TxnStatus::PrepareCommit, 1));
        assert_eq!(p.client_transaction_version, TV2);
        assert_eq!(producer_after(&p), (7, 1));
        let mut done = meta(complete(&p, 5));
        done.last_epoch = 0;
        // The retry with the old epoch gets the new one; anything else old is fenced.
        assert_eq!(
            end_txn(Some(&done), end2(7, 0, true, 6)),
            Ok(EndStep::Done(7, 1))
        );
        assert_eq!(
            end_txn(Some(&done), end2(7, 0, false, 6)),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            add_partitions(Some(&done), 7, 0, &parts(&[("t", 0)]), 6),
            Err(ResponseError::ProducerFenced)
        );
        // Committing nothing is refused; aborting nothing bumps the epoch.
        assert_eq!(
            end_txn(Some(&done), end2(7, 1, true, 7)),
            Err(ResponseError::InvalidTxnState)
        );
        let EndStep::Prepare(a) = end_txn(Some(&done), end2(7, 1, false, 7)).expect("abort") else {
            panic!("expected prepare");
        };
        assert_eq!((a.status, a.producer_epoch), (TxnStatus::PrepareAbort, 2));
        assert!(a.partitions.is_empty());
    }

    #[test]
    fn tv2_moves_to_a_new_producer_id_when_the_epoch_runs_out() {
        let mut m = meta(written(
            init_producer_id(None, req(1), Some(7)).expect("init"),
        ));
        m.value.producer_epoch = i16::MAX - 1;
        let AddStep::Write(v) =
            add_partitions(Some(&m), 7, i16::MAX - 1, &parts(&[("t", 0)]), 3).expect("add")
        else {
            panic!("expected a write");
        };
        let m = meta(v);
        assert!(end_needs_new_producer_id(Some(&m)));
        assert_eq!(
            end_txn(Some(&m), end2(7, i16::MAX - 1, true, 4)),
            Err(ResponseError::CoordinatorNotAvailable),
            "a new producer id is needed"
        );
        let mut r = end2(7, i16::MAX - 1, true, 4);
        r.fresh_id = Some(9);
        let EndStep::Prepare(p) = end_txn(Some(&m), r).expect("end") else {
            panic!("expected prepare");
        };
        assert_eq!(
            (p.producer_id, p.producer_epoch, p.next_producer_id),
            (7, i16::MAX, 9)
        );
        assert_eq!(producer_after(&p), (9, 0));
        let done = complete(&p, 5);
        assert_eq!(
            (
                done.producer_id,
                done.producer_epoch,
                done.previous_producer_id
            ),
            (9, 0, 7)
        );
        // The retry with the old producer id is answered with the new one.
        let mut d = meta(done);
        d.last_epoch = i16::MAX - 1;
        assert_eq!(
            end_txn(Some(&d), end2(7, i16::MAX - 1, true, 6)),
            Ok(EndStep::Done(9, 0))
        );
    }
}
