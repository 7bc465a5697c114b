//! How every broker reaches the active controller: [`ControllerClient`] sends a controller
//! request to the voter it believes leads, follows `NotController` hints and moves on to the
//! next voter on connection errors, all within the caller's deadline. The voters it knows can be
//! replaced while it runs ([`ControllerClient::set_voters`]), as the quorum's voter set changes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::time::Instant;
use tonic::transport::Channel;

use super::proto::QuorumClient;
use super::tls::QuorumTls;
use crate::rpc::{ControllerError, ControllerRequest, ControllerResponse};

/// Longest wait for one voter's answer, so that a hung voter leaves time for the others.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Shortest wait for one voter when the deadline is split between them.
const MIN_ATTEMPT: Duration = Duration::from_millis(250);
/// Pause before asking again when no voter knows a leader (an election is running) or none
/// answered.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Bound on attempts per call, whatever the deadline.
const MAX_ATTEMPTS: usize = 1000;

struct Voter {
    id: i32,
    addr: String,
    client: Mutex<Option<QuorumClient<Channel>>>,
}

struct Inner {
    voters: RwLock<Arc<Vec<Arc<Voter>>>>,
    /// Index into `voters` of the believed leader.
    leader: AtomicUsize,
}

/// A client of the active controller; clones share connections and the leader guess.
#[derive(Clone)]
pub struct ControllerClient {
    inner: Arc<Inner>,
    tls: QuorumTls,
}

impl ControllerClient {
    /// `voters`: `controller.quorum.voters`, id -> `host:port`. Connections are made lazily,
    /// plaintext or TLS as `tls` says.
    pub fn new(voters: BTreeMap<i32, String>, tls: QuorumTls) -> ControllerClient {
        ControllerClient {
            tls,
            inner: Arc::new(Inner {
                voters: RwLock::new(Arc::new(
                    voters
                        .into_iter()
                        .map(|(id, addr)| {
                            Arc::new(Voter {
                                id,
                                addr,
                                client: Mutex::new(None),
                            })
                        })
                        .collect(),
                )),
                leader: AtomicUsize::new(0),
            }),
        }
    }

    fn voters(&self) -> Arc<Vec<Arc<Voter>>> {
        match self.inner.voters.read() {
            Ok(voters) => voters.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The voter this client currently sends to.
    pub fn believed_leader(&self) -> Option<i32> {
        let index = self.inner.leader.load(Ordering::Relaxed);
        self.voters().get(index).map(|v| v.id)
    }

    /// Replaces the voters this client sends to (the quorum's voter set changed). Connections
    /// to voters whose address is unchanged are kept; the believed leader stays when it is still
    /// a voter. Calls already running finish with the old list.
    pub fn set_voters(&self, voters: &BTreeMap<i32, String>) {
        let current = self.voters();
        let same = current.len() == voters.len()
            && current
                .iter()
                .zip(voters)
                .all(|(v, (id, addr))| v.id == *id && v.addr == *addr);
        if same || voters.is_empty() {
            return;
        }
        let leader = current
            .get(self.inner.leader.load(Ordering::Relaxed))
            .map(|v| v.id);
        let next: Vec<Arc<Voter>> = voters
            .iter()
            .map(|(id, addr)| {
                current
                    .iter()
                    .find(|v| v.id == *id && v.addr == *addr)
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(Voter {
                            id: *id,
                            addr: addr.clone(),
                            client: Mutex::new(None),
                        })
                    })
            })
            .collect();
        let index = leader
            .and_then(|l| next.iter().position(|v| v.id == l))
            .unwrap_or(0);
        let mut slot = match self.inner.voters.write() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Arc::new(next);
        self.inner.leader.store(index, Ordering::Relaxed);
    }

    /// Sends `request` to the active controller. Follows `NotController { leader }` hints and
    /// tries the next voter on a connection error, until an answer comes or `timeout` has
    /// passed (then `Err(Unavailable)`). A request may be applied even if its answer is lost;
    /// callers retry the way Kafka's do.
    pub async fn call(
        &self,
        request: ControllerRequest,
        timeout: Duration,
    ) -> Result<ControllerResponse, ControllerError> {
        let voters = self.voters();
        if voters.is_empty() {
            return Err(ControllerError::Unavailable(
                "no controller voters configured".into(),
            ));
        }
        let deadline = Instant::now() + timeout;
        let mut index = self.inner.leader.load(Ordering::Relaxed) % voters.len();
        let mut last_error = String::from("no answer before the deadline");
        // Voters tried since the last useful answer: after a full round, pause.
        let mut misses = 0;
        for _ in 0..MAX_ATTEMPTS {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let voter = &voters[index];
            // Leave time for the other voters: a believed leader that was cut off must not eat
            // the whole deadline (a heartbeat has only twice its interval).
            let remaining = deadline - now;
            let share = (remaining / voters.len() as u32).max(MIN_ATTEMPT);
            let attempt = remaining.min(share).min(ATTEMPT_TIMEOUT);
            let answer = self.attempt(voter, request.clone(), attempt).await;
            match answer {
                Ok(Err(ControllerError::NotController { leader })) => {
                    last_error = format!("voter {} is not the controller", voter.id);
                    let hinted = leader
                        .and_then(|id| voters.iter().position(|v| v.id == id))
                        .filter(|i| *i != index);
                    match hinted {
                        Some(i) => {
                            index = i;
                            misses = 0;
                            continue;
                        }
                        None => index = (index + 1) % voters.len(),
                    }
                }
                Ok(answer) => {
                    self.inner.leader.store(index, Ordering::Relaxed);
                    return answer;
                }
                Err(e) => {
                    last_error = e;
                    index = (index + 1) % voters.len();
                    // The next call starts with the next voter rather than the unreachable one.
                    self.inner.leader.store(index, Ordering::Relaxed);
                }
            }
            misses += 1;
            if misses >= voters.len() {
                misses = 0;
                tokio::time::sleep_until((Instant::now() + RETRY_PAUSE).min(deadline)).await;
            }
        }
        Err(ControllerError::Unavailable(last_error))
    }

    /// Sends `request` once, to the first voter this client knows, and returns its answer as
    /// it is (a `NotController` included): for asking one given controller, not the leader.
    pub async fn ask_once(
        &self,
        request: ControllerRequest,
        timeout: Duration,
    ) -> Result<ControllerResponse, ControllerError> {
        let voters = self.voters();
        let Some(voter) = voters.first() else {
            return Err(ControllerError::Unavailable("no controller to ask".into()));
        };
        self.attempt(voter, request, timeout)
            .await
            .map_err(ControllerError::Unavailable)?
    }

    /// One request to one voter: its answer, or why none came (unreachable, an RPC error, no
    /// reply within `timeout`).
    async fn attempt(
        &self,
        voter: &Voter,
        request: ControllerRequest,
        timeout: Duration,
    ) -> Result<Result<ControllerResponse, ControllerError>, String> {
        let mut client = self.client(voter)?;
        match tokio::time::timeout(timeout, client.controller(request)).await {
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(status)) => Err(format!("voter {}: {}", voter.id, status.message())),
            Err(_) => Err(format!("voter {} did not answer in time", voter.id)),
        }
    }

    fn client(&self, voter: &Voter) -> Result<QuorumClient<Channel>, String> {
        let mut cached = voter
            .client
            .lock()
            .map_err(|_| "controller client lock poisoned".to_string())?;
        if let Some(client) = cached.as_ref() {
            return Ok(client.clone());
        }
        let client = self
            .tls
            .client(&voter.addr)
            .map_err(|e| format!("voter {} address '{}': {e}", voter.id, voter.addr))?;
        *cached = Some(client.clone());
        Ok(client)
    }
}
