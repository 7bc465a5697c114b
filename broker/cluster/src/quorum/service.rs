//! The quorum's gRPC service as a voter serves it: Raft RPCs handed to openraft, controller
//! requests handed to the active controller, and the metadata long poll of broker-only nodes.
//! Raft RPCs meant for this node's id but another disk (a voter whose disk was replaced) are
//! refused: a node that forgot its log and votes must not count as that voter (KIP-853).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use openraft::Raft;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::active::ActiveController;
use super::proto::{
    AppendEntriesReply, AppendEntriesRequest, ControllerReply, ControllerRequest,
    FetchMetadataReply, FetchMetadataRequest, InstallSnapshotReply, InstallSnapshotRequest,
    QuorumRpc, VoteReply, VoteRequest,
};
use super::{NodeId, TypeConfig};
use super::{membership_of, node_to_i32};
use crate::image::Image;

/// How long a FetchMetadata call waits for a newer image before answering "nothing new".
pub const FETCH_WAIT: Duration = Duration::from_secs(2);

pub struct QuorumService {
    pub raft: Raft<TypeConfig>,
    pub image: watch::Receiver<Arc<Image>>,
    pub active: Arc<ActiveController>,
    /// Turns true when the voter shuts down: long polls end at once.
    pub stopping: watch::Receiver<bool>,
    pub node_id: NodeId,
    /// This node's metadata log directory id.
    pub directory_id: Uuid,
    /// Set once the "another disk" refusal was logged at warn level.
    pub warned: AtomicBool,
}

/// gRPC metadata key of the directory id a Raft RPC is meant for (the one the sender's voter
/// set records for this node), as Kafka's requests carry the replica's directory id.
pub const DIRECTORY_HEADER: &str = "strait-directory-id";

impl QuorumService {
    /// Refuses a Raft RPC meant for this node id on another disk: this node forgot that voter's
    /// log and votes, so it must not answer for it.
    fn check_addressee(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(), Status> {
        let Some(meant) = metadata
            .get(DIRECTORY_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Uuid::parse_str(v).ok())
        else {
            return Ok(());
        };
        if meant == self.directory_id {
            return Ok(());
        }
        let message = format!(
            "node {} is recorded in the voter set with directory {meant}, this node's metadata \
             log directory is {}: refusing to act as that voter (remove it with \
             RemoveRaftVoter, then add this one)",
            self.node_id, self.directory_id
        );
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!("{message}");
        }
        Err(Status::failed_precondition(message))
    }
}

#[tonic::async_trait]
impl QuorumRpc for QuorumService {
    async fn append_entries(
        &self,
        request: Request<AppendEntriesRequest>,
    ) -> Result<Response<AppendEntriesReply>, Status> {
        self.check_addressee(request.metadata())?;
        let request = request.into_inner();
        Ok(Response::new(self.raft.append_entries(request).await))
    }

    async fn vote(&self, request: Request<VoteRequest>) -> Result<Response<VoteReply>, Status> {
        self.check_addressee(request.metadata())?;
        Ok(Response::new(self.raft.vote(request.into_inner()).await))
    }

    async fn install_snapshot(
        &self,
        request: Request<InstallSnapshotRequest>,
    ) -> Result<Response<InstallSnapshotReply>, Status> {
        self.check_addressee(request.metadata())?;
        Ok(Response::new(
            self.raft.install_snapshot(request.into_inner()).await,
        ))
    }

    async fn controller(
        &self,
        request: Request<ControllerRequest>,
    ) -> Result<Response<ControllerReply>, Status> {
        Ok(Response::new(
            self.active.handle(request.into_inner()).await,
        ))
    }

    async fn fetch_metadata(
        &self,
        request: Request<FetchMetadataRequest>,
    ) -> Result<Response<FetchMetadataReply>, Status> {
        let known = request.into_inner().known_offset;
        let mut image = self.image.clone();
        let mut stopping = self.stopping.clone();
        let deadline = tokio::time::Instant::now() + FETCH_WAIT;
        let newer = loop {
            let current = image.borrow_and_update().clone();
            if current.offset > known {
                break Some(Image::clone(&current));
            }
            if *stopping.borrow_and_update() {
                break None;
            }
            tokio::select! {
                changed = image.changed() => if changed.is_err() { break None },
                _ = stopping.changed() => break None,
                _ = tokio::time::sleep_until(deadline) => break None,
            }
        };
        let (leader, voters) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            let (voters, nodes) = membership_of(&m);
            let voters = voters
                .into_iter()
                .filter_map(|id| Some((id, nodes.get(&id)?.addr.clone())))
                .collect();
            (m.current_leader.and_then(node_to_i32), voters)
        };
        Ok(Response::new(FetchMetadataReply {
            image: newer,
            leader,
            voters,
        }))
    }
}
