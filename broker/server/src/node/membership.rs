//! A controller's own entry in the metadata quorum's voter set (KIP-853). A controller started
//! with `controller.quorum.bootstrap.servers` alone asks the Raft leader to add it as an observer
//! (a learner that follows the log), after which AddRaftVoter can promote it; a voter seeded by
//! `controller.quorum.voters` reports its directory id, and any voter a changed endpoint. The
//! same task keeps the node's controller client pointed at the current voters, so that a node
//! that bootstrapped through a voter that has since gone still reaches the leader; a broker-only
//! node does the same with the voter set its metadata follower hears of.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use strait_cluster::quorum::{ControllerClient, QuorumMetrics, VoterNode, membership_of};
use strait_cluster::rpc::{ControllerRequest, VoterChange};
use strait_config::{BrokerConfig, KraftSettings};
use tokio::sync::watch;
use uuid::Uuid;

/// Pause before asking the leader again after a refused or failed request.
const RETRY: Duration = Duration::from_secs(1);
/// Longest wait for one answer of the leader.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the entry is checked when nothing changes (a lost answer must not leave it stale).
const RECHECK: Duration = Duration::from_secs(5);

/// `host:port` the other controllers reach this one on: its `controller.quorum.voters` entry,
/// else its controller listener (advertised, if the controller listener is advertised).
pub fn own_address(config: &BrokerConfig, kraft: &KraftSettings, bind: SocketAddr) -> String {
    let join = |host: &str, port: u16| {
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    };
    if let Some((host, port)) = kraft.voters.get(&config.node_id) {
        return join(host, *port);
    }
    let listener = kraft.controller_listener.as_ref().and_then(|l| {
        config
            .advertised_listeners
            .iter()
            .find(|a| a.name == l.name)
            .or(Some(l))
    });
    match listener {
        Some(l) if !l.host.is_empty() && l.host != "0.0.0.0" && l.host != "::" => {
            join(&l.host, l.port)
        }
        _ => {
            tracing::warn!(
                %bind,
                "the controller listener has no routable host: other controllers are told {bind}"
            );
            bind.to_string()
        }
    }
}

/// The voters' addresses and this node's record, from a node's Raft metrics.
fn view(metrics: &QuorumMetrics, node_id: i32) -> (BTreeMap<i32, String>, Option<VoterNode>) {
    let (voters, mut nodes) = membership_of(metrics);
    let addresses = voters
        .iter()
        .filter_map(|id| Some((*id, nodes.get(id)?.addr.clone())))
        .collect();
    (addresses, nodes.remove(&node_id))
}

/// Runs until aborted: keeps this controller's record in the voter set equal to
/// (`address`, `directory_id`) and `client` on the current voters.
pub async fn upkeep(
    node_id: i32,
    directory_id: Uuid,
    address: String,
    mut metrics: watch::Receiver<QuorumMetrics>,
    client: ControllerClient,
) {
    let wanted = VoterNode::new(address.clone(), Some(directory_id));
    loop {
        let (voters, own) = view(&metrics.borrow_and_update(), node_id);
        client.set_voters(&voters);
        let pause = if own.as_ref() == Some(&wanted) {
            RECHECK
        } else {
            let change = VoterChange::Join {
                id: node_id,
                directory_id,
                address: address.clone(),
            };
            let request = ControllerRequest::ChangeVoters {
                change,
                timeout_ms: CALL_TIMEOUT.as_millis() as u64,
            };
            match client.call(request, CALL_TIMEOUT).await {
                Ok(_) => {
                    tracing::info!(node_id, %address, %directory_id, "recorded in the metadata quorum's membership");
                    // The change shows once the log reaches this node.
                    RETRY
                }
                Err(e) => {
                    tracing::info!(error = %e, "cannot record this controller in the metadata quorum yet");
                    RETRY
                }
            }
        };
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Runs until aborted: points a broker-only node's controller client at the voters its metadata
/// follower hears of.
pub async fn follow_voters(
    mut voters: watch::Receiver<BTreeMap<i32, String>>,
    client: ControllerClient,
) {
    loop {
        let current = voters.borrow_and_update().clone();
        client.set_voters(&current);
        if voters.changed().await.is_err() {
            return;
        }
    }
}
