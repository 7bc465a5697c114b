//! Raft's outgoing RPCs (openraft's `RaftNetwork`): append entries, vote and snapshot chunks sent
//! to the other voters over the quorum gRPC service. Each RPC names the directory id the voter
//! set records for its target, so a node on a replaced disk refuses to answer for the old voter.

use std::future::Future;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use tonic::transport::Channel;

use super::proto::{AppendEntriesRequest, QuorumClient};
use super::service::DIRECTORY_HEADER;
use super::tls::QuorumTls;
use super::{NodeId, TypeConfig, VoterNode};

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, VoterNode, RaftError<NodeId, E>>>;

/// Creates one [`Peer`] per voter openraft replicates to.
pub struct Network(pub QuorumTls);

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &VoterNode) -> Peer {
        Peer {
            target,
            client: self.0.client(&node.addr).map_err(|e| e.to_string()),
            directory: node
                .directory_id
                .and_then(|d| tonic::metadata::MetadataValue::try_from(d.to_string()).ok()),
        }
    }
}

/// The connection to one voter.
pub struct Peer {
    target: NodeId,
    /// `Err` when the voter's address is not a valid URI authority: every RPC fails unreachable.
    client: Result<QuorumClient<Channel>, String>,
    /// The target's directory id as the voter set records it, when known.
    directory: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl Peer {
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(directory) = &self.directory {
            request
                .metadata_mut()
                .insert(DIRECTORY_HEADER, directory.clone());
        }
        request
    }

    /// Runs one RPC within openraft's hard deadline; transport failures become openraft's
    /// unreachable/network errors, a Raft error answered by the voter becomes a remote error.
    async fn call<T, E, F, Fut>(&self, option: &RPCOption, rpc: F) -> RpcResult<T, E>
    where
        E: std::error::Error,
        F: FnOnce(QuorumClient<Channel>) -> Fut,
        Fut: Future<
            Output = Result<tonic::Response<Result<T, RaftError<NodeId, E>>>, tonic::Status>,
        >,
    {
        let client = match &self.client {
            Ok(client) => client.clone(),
            Err(e) => {
                return Err(RPCError::Unreachable(Unreachable::new(
                    &std::io::Error::new(std::io::ErrorKind::InvalidInput, e.clone()),
                )));
            }
        };
        match tokio::time::timeout(option.hard_ttl(), rpc(client)).await {
            Err(elapsed) => Err(RPCError::Network(NetworkError::new(&elapsed))),
            Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {
                Err(RPCError::Unreachable(Unreachable::new(&status)))
            }
            Ok(Err(status)) => Err(RPCError::Network(NetworkError::new(&status))),
            Ok(Ok(reply)) => reply
                .into_inner()
                .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
        }
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let rpc = self.request(rpc);
        self.call(&option, |mut c| async move { c.append_entries(rpc).await })
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let rpc = self.request(rpc);
        self.call(
            &option,
            |mut c| async move { c.install_snapshot(rpc).await },
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let rpc = self.request(rpc);
        self.call(&option, |mut c| async move { c.vote(rpc).await })
            .await
    }
}
