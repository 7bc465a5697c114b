//! The active controller: the one [`Controller`] of this voter, driven only while this voter is
//! the Raft leader. Requests, ticks and proposals go through one mutex, so each decision is made
//! against the image holding every earlier decision (each commit is waited for until applied).
//! The controller is (re-)activated whenever this voter starts leading a new term, after the
//! state machine has caught up with everything earlier leaders committed. Voter changes
//! (KIP-853) are carried out here too, one at a time, through openraft's membership changes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::{BTreeMap, BTreeSet};

use openraft::error::{ChangeMembershipError, CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, Raft};
use tokio::sync::{Mutex, watch};

use super::membership::{Step, VoterNode, plan};
use super::{MetadataBatch, NodeId, TypeConfig, node_to_i32};
use crate::controller::{Controller, ControllerSettings};
use crate::image::Image;
use crate::record::MetadataRecord;
use crate::rpc::{
    ControllerError, ControllerRequest, ControllerResponse, QuorumStatus, VoterChange, VoterStatus,
};

/// How long a commit (or the catch-up on becoming leader) may wait for a Raft quorum before the
/// request is answered `Unavailable`. The entry may still commit later.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a new voter to catch up, whatever the request asks: the caller's controller
/// RPC gives up after 30 s.
const MAX_CATCH_UP: Duration = Duration::from_secs(25);
/// How long a node refused as a voter with another disk is listed as an observer after its last
/// attempt to join (it retries every few seconds while it runs).
const REFUSED_JOIN_SHOWN: Duration = Duration::from_secs(30);
/// A learner counts as caught up when its replicated log is at most this many entries behind.
const CAUGHT_UP_LAG: u64 = 10;

struct State {
    controller: Controller,
    /// The Raft term in which `controller` was activated; `None`: not active.
    active_term: Option<u64>,
}

pub struct ActiveController {
    node_id: NodeId,
    raft: Raft<TypeConfig>,
    image: watch::Receiver<Arc<Image>>,
    state: Mutex<State>,
    /// Held during a voter change: a second concurrent one is refused, as Kafka does.
    voter_change: Mutex<()>,
    /// Nodes refused as a voter because they came back with another disk, by id: DescribeQuorum
    /// lists them as observers under their new directory id, as Kafka lists such a node, so an
    /// operator sees which voter to replace and with which directory id.
    refused_joins: std::sync::Mutex<BTreeMap<NodeId, (VoterNode, Instant)>>,
}

impl ActiveController {
    pub fn new(
        node_id: NodeId,
        raft: Raft<TypeConfig>,
        image: watch::Receiver<Arc<Image>>,
        settings: ControllerSettings,
    ) -> ActiveController {
        ActiveController {
            node_id,
            raft,
            image,
            state: Mutex::new(State {
                controller: Controller::new(settings),
                active_term: None,
            }),
            voter_change: Mutex::new(()),
            refused_joins: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Decides `request` and commits its records; answers once they are applied here.
    pub async fn handle(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerResponse, ControllerError> {
        let request = match request {
            ControllerRequest::DescribeQuorum => return self.describe_quorum(),
            ControllerRequest::ChangeVoters { change, timeout_ms } => {
                return self
                    .change_voters(change, Duration::from_millis(timeout_ms))
                    .await;
            }
            other => other,
        };
        let mut state = self.state.lock().await;
        self.ensure_active(&mut state).await?;
        let image = self.image.borrow().clone();
        let decision = state.controller.handle(&image, request, Instant::now())?;
        if !decision.records.is_empty() {
            self.commit(decision.records).await?;
        }
        Ok(decision.response)
    }

    /// Commits records decided outside the controller; returns the log index they were applied
    /// at.
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Result<u64, ControllerError> {
        let mut state = self.state.lock().await;
        self.ensure_active(&mut state).await?;
        self.commit(records).await
    }

    /// The controller's periodic work; does nothing unless this voter leads.
    pub async fn tick(&self) {
        if !self.is_leader() {
            return;
        }
        let mut state = self.state.lock().await;
        if let Err(e) = self.ensure_active(&mut state).await {
            tracing::debug!(error = %e, "controller tick skipped");
            return;
        }
        let image = self.image.borrow().clone();
        let records = state.controller.tick(&image, Instant::now());
        if records.is_empty() {
            return;
        }
        if let Err(e) = self.commit(records).await {
            tracing::warn!(error = %e, "committing the controller's periodic records failed");
        }
    }

    /// DescribeQuorum from the Raft leader's metrics: term, commit point and each voter's
    /// replicated log end.
    fn describe_quorum(&self) -> Result<ControllerResponse, ControllerError> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        if m.current_leader != Some(self.node_id) {
            return Err(ControllerError::NotController {
                leader: m.current_leader.and_then(node_to_i32),
            });
        }
        let exclusive = |index: Option<u64>| index.map_or(0, |i| i as i64 + 1);
        let membership = m.membership_config.membership();
        let status = |id: &NodeId, node: &VoterNode| {
            let log_end = if *id == self.node_id {
                exclusive(m.last_log_index)
            } else {
                match m.replication.as_ref().and_then(|r| r.get(id)) {
                    Some(matched) => exclusive(matched.map(|l| l.index)),
                    None => -1,
                }
            };
            Some(VoterStatus {
                id: node_to_i32(*id)?,
                log_end,
                address: node.addr.clone(),
                directory_id: node.directory_id,
            })
        };
        let voter_ids: BTreeSet<NodeId> = membership.voter_ids().collect();
        let (voters, observers): (Vec<_>, Vec<_>) = membership
            .nodes()
            .partition(|(id, _)| voter_ids.contains(id));
        // A voter's id on another disk: listed until the old voter is replaced.
        let refused: Vec<VoterStatus> = {
            let mut joins = self.refused_joins.lock().unwrap_or_else(|e| e.into_inner());
            joins.retain(|id, (node, at)| {
                at.elapsed() < REFUSED_JOIN_SHOWN
                    && voter_ids.contains(id)
                    && membership.get_node(id).map(|v| v.directory_id) != Some(node.directory_id)
            });
            joins
                .iter()
                .filter_map(|(id, (node, _))| {
                    Some(VoterStatus {
                        id: node_to_i32(*id)?,
                        log_end: -1,
                        address: node.addr.clone(),
                        directory_id: node.directory_id,
                    })
                })
                .collect()
        };
        Ok(ControllerResponse::Quorum(QuorumStatus {
            leader: node_to_i32(self.node_id).unwrap_or(-1),
            epoch: i32::try_from(m.current_term).unwrap_or(i32::MAX),
            high_watermark: exclusive(m.last_applied.map(|l| l.index)),
            voters: voters
                .into_iter()
                .filter_map(|(i, n)| status(i, n))
                .collect(),
            observers: observers
                .into_iter()
                .filter_map(|(i, n)| status(i, n))
                .chain(refused)
                .collect(),
        }))
    }

    /// One voter change (KIP-853) on the Raft leader; a second one while the first runs is
    /// refused with REQUEST_TIMED_OUT, as Kafka refuses it.
    async fn change_voters(
        &self,
        change: VoterChange,
        timeout: Duration,
    ) -> Result<ControllerResponse, ControllerError> {
        let Ok(_guard) = self.voter_change.try_lock() else {
            return Err(ControllerError::RequestTimedOut(
                "request timed out waiting for the leader to handle the previous voter change"
                    .into(),
            ));
        };
        let (voters, nodes) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            if m.current_leader != Some(self.node_id) {
                return Err(ControllerError::NotController {
                    leader: m.current_leader.and_then(node_to_i32),
                });
            }
            let membership = m.membership_config.membership();
            let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
            let nodes: BTreeMap<NodeId, VoterNode> = membership
                .nodes()
                .map(|(id, node)| (*id, node.clone()))
                .collect();
            (voters, nodes)
        };
        let step = match plan(&voters, &nodes, &change) {
            Ok(step) => step,
            Err(e) => {
                if let VoterChange::Join {
                    id,
                    directory_id,
                    address,
                } = &change
                    && let Ok(nid) = NodeId::try_from(*id)
                    && voters.contains(&nid)
                {
                    let node = VoterNode::new(address.clone(), Some(*directory_id));
                    self.refused_joins
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(nid, (node, Instant::now()));
                }
                return Err(e);
            }
        };
        if step != Step::Nothing {
            tracing::info!(?change, ?step, "changing the metadata quorum's membership");
        }
        match step {
            Step::Nothing => {}
            Step::SetLearner(id, node) => {
                self.change_membership(ChangeMembers::SetNodes(BTreeMap::from([(id, node)])), true)
                    .await?;
            }
            Step::Promote { id, node } => {
                if let Some(node) = node {
                    self.change_membership(
                        ChangeMembers::SetNodes(BTreeMap::from([(id, node)])),
                        true,
                    )
                    .await?;
                }
                self.wait_caught_up(id, timeout.min(MAX_CATCH_UP)).await?;
                self.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)
                    .await?;
            }
            Step::SetVoter(id, node) => {
                self.change_membership(ChangeMembers::SetNodes(BTreeMap::from([(id, node)])), true)
                    .await?;
            }
            // The removed voter stays an observer (a learner), as in Kafka: if it still runs it
            // keeps following the log for its broker; a dead one is dropped by a second
            // RemoveRaftVoter.
            Step::RemoveVoter(id) => {
                self.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), true)
                    .await?;
            }
            Step::RemoveLearner(id) => {
                self.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                    .await?;
            }
        }
        Ok(ControllerResponse::Done)
    }

    /// Waits until the learner `id` has replicated the log up to (nearly) the leader's end.
    async fn wait_caught_up(&self, id: NodeId, timeout: Duration) -> Result<(), ControllerError> {
        let mut metrics = self.raft.metrics();
        let caught_up = metrics.wait_for(|m| {
            let end = m.last_log_index.unwrap_or(0);
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&id))
                .and_then(|l| l.map(|l| l.index));
            matched.is_some_and(|matched| matched + CAUGHT_UP_LAG >= end)
                || m.current_leader != Some(self.node_id)
        });
        match tokio::time::timeout(timeout, caught_up).await {
            Err(_) => Err(ControllerError::RequestTimedOut(format!(
                "node {id} did not catch up with the metadata log within {} ms (it stays an \
                 observer)",
                timeout.as_millis()
            ))),
            Ok(Err(_)) => Err(ControllerError::Unavailable("raft stopped".into())),
            Ok(Ok(m)) if m.current_leader != Some(self.node_id) => {
                Err(ControllerError::NotController {
                    leader: m.current_leader.and_then(node_to_i32),
                })
            }
            Ok(Ok(_)) => Ok(()),
        }
    }

    async fn change_membership(
        &self,
        change: ChangeMembers<NodeId, VoterNode>,
        retain: bool,
    ) -> Result<(), ControllerError> {
        let write = self.raft.change_membership(change, retain);
        match tokio::time::timeout(COMMIT_TIMEOUT, write).await {
            Err(_) => Err(ControllerError::RequestTimedOut(
                "the membership change did not commit in time".into(),
            )),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(ControllerError::NotController {
                    leader: f.leader_id.and_then(node_to_i32),
                })
            }
            Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                e @ ChangeMembershipError::InProgress(_),
            )))) => Err(ControllerError::RequestTimedOut(e.to_string())),
            Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
                Err(ControllerError::InvalidRequest(e.to_string()))
            }
            Ok(Err(e)) => Err(ControllerError::Unavailable(e.to_string())),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.node_id)
    }

    /// Fails unless this voter leads; on the first call of a new term, waits until every entry
    /// committed before it is applied and activates the controller on that image.
    async fn ensure_active(&self, state: &mut State) -> Result<(), ControllerError> {
        let (leader, term) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            (m.current_leader, m.current_term)
        };
        if leader != Some(self.node_id) {
            state.active_term = None;
            return Err(ControllerError::NotController {
                leader: leader.and_then(node_to_i32),
            });
        }
        if state.active_term == Some(term) {
            return Ok(());
        }
        match tokio::time::timeout(COMMIT_TIMEOUT, self.raft.ensure_linearizable()).await {
            Err(_) => {
                return Err(ControllerError::Unavailable(
                    "no Raft quorum confirmed this controller's leadership".into(),
                ));
            }
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                return Err(ControllerError::NotController {
                    leader: f.leader_id.and_then(node_to_i32),
                });
            }
            Ok(Err(e)) => return Err(ControllerError::Unavailable(e.to_string())),
            Ok(Ok(_)) => {}
        }
        let image = self.image.borrow().clone();
        state.controller.activate(&image, Instant::now());
        state.active_term = Some(term);
        tracing::info!(
            node = self.node_id,
            term,
            offset = image.offset,
            "controller activated"
        );
        Ok(())
    }

    /// Appends `records` as one log entry and waits until it is applied here.
    async fn commit(&self, records: Vec<MetadataRecord>) -> Result<u64, ControllerError> {
        let write = self.raft.client_write(MetadataBatch { records });
        match tokio::time::timeout(COMMIT_TIMEOUT, write).await {
            Err(_) => Err(ControllerError::Unavailable(
                "the metadata log did not commit in time".into(),
            )),
            Ok(Ok(reply)) => Ok(reply.log_id.index),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(ControllerError::NotController {
                    leader: f.leader_id.and_then(node_to_i32),
                })
            }
            Ok(Err(e)) => Err(ControllerError::Unavailable(e.to_string())),
        }
    }
}
