//! Incremental fetch sessions (KIP-227): a client that fetches many partitions sends the whole
//! list once, then only what changed (new fetch offsets, added and forgotten partitions), and the
//! broker answers only the partitions that have something new (records, a moved high watermark or
//! log start, an error). The broker remembers each session's partitions and what it last told
//! the client about them.
//!
//! The request's `(session_id, session_epoch)` says what to do, as in Kafka's `FetchSession`:
//! `(0, -1)` a sessionless full fetch; `(0 or id, 0)` a full fetch that opens a new session
//! (closing `id`); `(id, n > 0)` the `n`th incremental fetch of session `id`; `(id, -1)` closes
//! `id` and fetches sessionless. The cache holds `max.incremental.fetch.session.cache.slots`
//! sessions; when full, a new session takes the slot of the least recently used one idle for at
//! least [`EVICTION_IDLE`], else the client is answered sessionless (session id 0), which clients
//! treat as "keep sending full requests". Pure bookkeeping: no I/O, one short lock per request.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;

/// A session idle this long may be evicted for a new one (Kafka's
/// `min.incremental.fetch.session.eviction.ms` default, not a public config key).
pub const EVICTION_IDLE: Duration = Duration::from_secs(120);

/// The session epoch that asks for a new session.
const INITIAL_EPOCH: i32 = 0;
/// The session epoch that asks for no session (and closes the named one).
const FINAL_EPOCH: i32 = -1;

/// A topic as the request names it: by name before Fetch v13, by id from v13 (KIP-516).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TopicKey {
    /// Shared, so the per-partition keys of a request cost no string copies.
    Name(std::sync::Arc<str>),
    Id(uuid::Uuid),
}

/// One partition of a session: what the client last asked for and last heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPartition {
    pub fetch_offset: i64,
    pub max_bytes: i32,
    pub current_leader_epoch: i32,
    pub log_start_offset: i64,
    /// The high watermark and log start last sent (`None`: never answered yet).
    sent: Option<(i64, i64)>,
}

impl SessionPartition {
    pub fn new(
        fetch_offset: i64,
        max_bytes: i32,
        current_leader_epoch: i32,
        log_start_offset: i64,
    ) -> Self {
        SessionPartition {
            fetch_offset,
            max_bytes,
            current_leader_epoch,
            log_start_offset,
            sent: None,
        }
    }
}

pub type PartitionKey = (TopicKey, i32);

/// What the response would say about one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionAnswer {
    /// Records, or a preferred read replica to move to (KIP-392): the client must see it.
    pub has_records: bool,
    pub error: bool,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

struct Session {
    /// The epoch the next incremental request must carry.
    next_epoch: i32,
    partitions: BTreeMap<PartitionKey, SessionPartition>,
    last_used: Instant,
}

/// What a fetch request does with sessions, decided before any partition is read.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Fetch the request's partitions; answer with `session_id` (0: none) and every partition.
    Full { session_id: i32 },
    /// Fetch the session's partitions (the request's changes applied); answer only the changed.
    Incremental {
        session_id: i32,
        partitions: Vec<(PartitionKey, SessionPartition)>,
    },
}

pub struct FetchSessionCache {
    slots: usize,
    inner: std::sync::Mutex<Inner>,
}

struct Inner {
    sessions: HashMap<i32, Session>,
    next_id: i32,
}

impl FetchSessionCache {
    pub fn new(slots: usize) -> Self {
        FetchSessionCache {
            slots,
            inner: std::sync::Mutex::new(Inner {
                sessions: HashMap::new(),
                next_id: 1,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decides what the request does. `requested` are the request's partitions (all of them
    /// for a full fetch, the changed and added ones for an incremental one), `forgotten` those
    /// an incremental request drops. Errors are the response's top-level error.
    pub fn begin(
        &self,
        session_id: i32,
        epoch: i32,
        requested: Vec<(PartitionKey, SessionPartition)>,
        forgotten: &[PartitionKey],
        now: Instant,
    ) -> Result<Plan, ResponseError> {
        let mut inner = self.lock();
        match epoch {
            FINAL_EPOCH => {
                if session_id != 0 && inner.sessions.remove(&session_id).is_none() {
                    return Err(ResponseError::FetchSessionIdNotFound);
                }
                Ok(Plan::Full { session_id: 0 })
            }
            INITIAL_EPOCH => {
                if session_id != 0 {
                    inner.sessions.remove(&session_id);
                }
                let id = inner.open(self.slots, requested, now);
                Ok(Plan::Full { session_id: id })
            }
            _ if session_id == 0 => Err(ResponseError::InvalidFetchSessionEpoch),
            _ => {
                let Some(session) = inner.sessions.get_mut(&session_id) else {
                    return Err(ResponseError::FetchSessionIdNotFound);
                };
                if epoch != session.next_epoch {
                    return Err(ResponseError::InvalidFetchSessionEpoch);
                }
                session.next_epoch = next_epoch(epoch);
                session.last_used = now;
                for (key, mut asked) in requested {
                    if let Some(known) = session.partitions.get(&key) {
                        asked.sent = known.sent;
                    }
                    session.partitions.insert(key, asked);
                }
                for key in forgotten {
                    session.partitions.remove(key);
                }
                Ok(Plan::Incremental {
                    session_id,
                    partitions: session
                        .partitions
                        .iter()
                        .map(|(k, p)| (k.clone(), p.clone()))
                        .collect(),
                })
            }
        }
    }

    /// After the read: whether each partition goes into the response, remembering what it is
    /// told. A full fetch answers every partition; an incremental one only those with records,
    /// an error, or a high watermark or log start the client has not heard yet. One lock for the
    /// whole response.
    pub fn answer<'a>(
        &self,
        session_id: i32,
        incremental: bool,
        answers: impl IntoIterator<Item = (&'a PartitionKey, PartitionAnswer)>,
    ) -> Vec<bool> {
        let answers = answers.into_iter();
        if session_id == 0 {
            return answers.map(|_| true).collect();
        }
        let mut inner = self.lock();
        let Some(session) = inner.sessions.get_mut(&session_id) else {
            return answers.map(|_| true).collect();
        };
        answers
            .map(|(key, answer)| {
                let Some(partition) = session.partitions.get_mut(key) else {
                    return true;
                };
                let now = Some((answer.high_watermark, answer.log_start_offset));
                let changed = partition.sent != now;
                partition.sent = now;
                !incremental || answer.has_records || answer.error || changed
            })
            .collect()
    }
}

impl Inner {
    /// A new session for `partitions`, or 0 when every slot is taken by a session in use.
    fn open(
        &mut self,
        slots: usize,
        partitions: Vec<(PartitionKey, SessionPartition)>,
        now: Instant,
    ) -> i32 {
        if slots == 0 {
            return 0;
        }
        if self.sessions.len() >= slots {
            let idle = self
                .sessions
                .iter()
                .filter(|(_, s)| now.saturating_duration_since(s.last_used) >= EVICTION_IDLE)
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| *id);
            match idle {
                Some(id) => {
                    self.sessions.remove(&id);
                }
                None => return 0,
            }
        }
        let mut id = self.next_id;
        while id == 0 || self.sessions.contains_key(&id) {
            id = id.checked_add(1).unwrap_or(1);
        }
        self.next_id = id.checked_add(1).unwrap_or(1);
        self.sessions.insert(
            id,
            Session {
                next_epoch: 1,
                partitions: partitions.into_iter().collect(),
                last_used: now,
            },
        );
        id
    }
}

/// Epochs run 1..=i32::MAX and wrap to 1 (0 and -1 mean "new" and "none").
fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX { 1 } else { epoch + 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(t: &str, p: i32) -> PartitionKey {
        (TopicKey::Name(t.into()), p)
    }

    fn answer_one(
        cache: &FetchSessionCache,
        session_id: i32,
        incremental: bool,
        key: &PartitionKey,
        answer: PartitionAnswer,
    ) -> bool {
        cache.answer(session_id, incremental, [(key, answer)])[0]
    }

    fn said(
        has_records: bool,
        error: bool,
        high_watermark: i64,
        log_start_offset: i64,
    ) -> PartitionAnswer {
        PartitionAnswer {
            has_records,
            error,
            high_watermark,
            log_start_offset,
        }
    }

    fn at(offset: i64) -> SessionPartition {
        SessionPartition::new(offset, 1024, -1, -1)
    }

    #[test]
    fn a_session_opens_then_answers_only_changed_partitions() {
        let cache = FetchSessionCache::new(10);
        let now = Instant::now();
        let plan = cache
            .begin(
                0,
                0,
                vec![(key("a", 0), at(0)), (key("a", 1), at(0))],
                &[],
                now,
            )
            .unwrap();
        let Plan::Full { session_id } = plan else {
            panic!("{plan:?}")
        };
        assert_ne!(session_id, 0);
        // The full answer names both and is remembered.
        assert!(answer_one(
            &cache,
            session_id,
            false,
            &key("a", 0),
            said(false, false, 5, 0)
        ));
        assert!(answer_one(
            &cache,
            session_id,
            false,
            &key("a", 1),
            said(false, false, 0, 0)
        ));

        // Incremental: only a-0 moves on; a-1 is still in the session with its old offset.
        let plan = cache
            .begin(session_id, 1, vec![(key("a", 0), at(5))], &[], now)
            .unwrap();
        let Plan::Incremental { partitions, .. } = plan else {
            panic!("{plan:?}")
        };
        assert_eq!(partitions.len(), 2);
        assert_eq!(partitions[0].1.fetch_offset, 5);
        assert_eq!(partitions[1].1.fetch_offset, 0);
        // Nothing new for a-0 (same HW): left out; a-1's HW moved: answered.
        assert!(!answer_one(
            &cache,
            session_id,
            true,
            &key("a", 0),
            said(false, false, 5, 0)
        ));
        assert!(answer_one(
            &cache,
            session_id,
            true,
            &key("a", 1),
            said(false, false, 3, 0)
        ));
        assert!(!answer_one(
            &cache,
            session_id,
            true,
            &key("a", 1),
            said(false, false, 3, 0)
        ));
        assert!(answer_one(
            &cache,
            session_id,
            true,
            &key("a", 1),
            said(true, false, 3, 0)
        ));

        // Forgetting a partition drops it from the session.
        let plan = cache
            .begin(session_id, 2, vec![], &[key("a", 1)], now)
            .unwrap();
        let Plan::Incremental { partitions, .. } = plan else {
            panic!("{plan:?}")
        };
        assert_eq!(partitions.len(), 1);
    }

    #[test]
    fn wrong_epochs_unknown_ids_and_closing_are_answered_as_kafka_does() {
        let cache = FetchSessionCache::new(10);
        let now = Instant::now();
        let Plan::Full { session_id } = cache.begin(0, 0, vec![], &[], now).unwrap() else {
            panic!()
        };
        assert_eq!(
            cache.begin(session_id, 2, vec![], &[], now),
            Err(ResponseError::InvalidFetchSessionEpoch)
        );
        assert_eq!(
            cache.begin(session_id + 1000, 1, vec![], &[], now),
            Err(ResponseError::FetchSessionIdNotFound)
        );
        assert_eq!(
            cache.begin(0, 3, vec![], &[], now),
            Err(ResponseError::InvalidFetchSessionEpoch)
        );
        assert!(cache.begin(session_id, 1, vec![], &[], now).is_ok());
        // Closing: a sessionless full fetch, and the session is gone.
        assert_eq!(
            cache.begin(session_id, -1, vec![], &[], now),
            Ok(Plan::Full { session_id: 0 })
        );
        assert!(cache.is_empty());
        assert_eq!(
            cache.begin(session_id, 2, vec![], &[], now),
            Err(ResponseError::FetchSessionIdNotFound)
        );
    }

    #[test]
    fn a_full_cache_evicts_only_idle_sessions() {
        let cache = FetchSessionCache::new(1);
        let start = Instant::now();
        let Plan::Full { session_id: first } = cache.begin(0, 0, vec![], &[], start).unwrap()
        else {
            panic!()
        };
        assert_ne!(first, 0);
        // The only slot is in use: the newcomer is answered sessionless.
        assert_eq!(
            cache.begin(0, 0, vec![], &[], start + Duration::from_secs(1)),
            Ok(Plan::Full { session_id: 0 })
        );
        // Once the first has been idle long enough, it gives its slot up.
        let later = start + EVICTION_IDLE + Duration::from_secs(1);
        let Plan::Full { session_id: second } = cache.begin(0, 0, vec![], &[], later).unwrap()
        else {
            panic!()
        };
        assert!(second != 0 && second != first);
        assert_eq!(
            cache.begin(first, 1, vec![], &[], later),
            Err(ResponseError::FetchSessionIdNotFound)
        );
        // No slots: sessions are off.
        let off = FetchSessionCache::new(0);
        assert_eq!(
            off.begin(0, 0, vec![], &[], start),
            Ok(Plan::Full { session_id: 0 })
        );
    }
}
