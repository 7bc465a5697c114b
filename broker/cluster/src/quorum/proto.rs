//! The quorum's gRPC service: its messages (openraft's RPC types and Strait's controller RPC
//! types, carried as JSON by [`JsonCodec`](super::codec::JsonCodec)) and the client and server
//! code `build.rs` generates for them.

use std::collections::BTreeMap;

use openraft::error::{InstallSnapshotError, RaftError};
use serde::{Deserialize, Serialize};

use super::{NodeId, TypeConfig};
use crate::image::Image;
use crate::rpc::{ControllerError, ControllerResponse};

pub type AppendEntriesRequest = openraft::raft::AppendEntriesRequest<TypeConfig>;
pub type AppendEntriesReply =
    Result<openraft::raft::AppendEntriesResponse<NodeId>, RaftError<NodeId>>;
pub type VoteRequest = openraft::raft::VoteRequest<NodeId>;
pub type VoteReply = Result<openraft::raft::VoteResponse<NodeId>, RaftError<NodeId>>;
pub type InstallSnapshotRequest = openraft::raft::InstallSnapshotRequest<TypeConfig>;
pub type InstallSnapshotReply = Result<
    openraft::raft::InstallSnapshotResponse<NodeId>,
    RaftError<NodeId, InstallSnapshotError>,
>;
pub type ControllerRequest = crate::rpc::ControllerRequest;
pub type ControllerReply = Result<ControllerResponse, ControllerError>;

/// Long poll for the metadata image: answered at once when the voter's image is newer than
/// `known_offset`, else when it becomes newer or after the voter's wait (about 2 s).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchMetadataRequest {
    pub known_offset: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchMetadataReply {
    /// `None` when nothing newer than the asked offset was applied during the wait.
    pub image: Option<Image>,
    /// The Raft leader as this voter knows it: the freshest voter to poll next.
    pub leader: Option<i32>,
    /// The current voters (id -> `host:port`), as this voter's log has them.
    #[serde(default)]
    pub voters: BTreeMap<i32, String>,
}

#[allow(clippy::all, clippy::pedantic, missing_docs, unused_qualifications)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/strait.quorum.Quorum.rs"));
}

pub use generated::quorum_client::QuorumClient;
pub use generated::quorum_server::{Quorum as QuorumRpc, QuorumServer};

/// Largest quorum message accepted or sent: images and snapshot chunks are JSON and can exceed
/// tonic's 4 MiB default on big clusters.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;
