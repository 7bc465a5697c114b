//! Whether a controller whose metadata log is empty may seed the voter set from
//! `controller.quorum.voters`. A seed voter that lost its disk comes back empty with the same
//! configuration; seeding then would start a second quorum beside the one it used to belong to
//! (a one-seed quorum that has since grown elects the lost seed alone). So when the node also
//! knows `controller.quorum.bootstrap.servers`, it first asks the other controllers
//! (DescribeQuorum): one that leads, or follows a named leader, proves a running quorum. It asks
//! for 3 s, or for 10 s when the bootstrap servers name controllers beyond the seeds (the quorum
//! grew, so a running one is likely and its voters may be restarting too). An empty log must
//! still seed when nobody leads: a seed whose pod first starts after the operator already
//! rendered joining controllers (a Cluster scaled up before its first broker ran) is the only
//! one that can form the quorum.
//!
//! When a running quorum answers, the node starts unseeded and asks to join, as a controller
//! started with bootstrap servers alone does; the leader refuses it as the old voter (its
//! directory id differs) and lists it as an observer, so that the voter can be replaced
//! (KIP-853).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::NodeId;
use super::client::ControllerClient;
use super::membership::VoterNode;
use super::tls::QuorumTls;
use crate::rpc::{ControllerError, ControllerRequest, ControllerResponse};

/// How long an empty log looks for a running quorum before it seeds.
pub const PROBE_TIME: Duration = Duration::from_secs(3);
/// The same when the quorum has grown beyond its seeds.
pub const GROWN_PROBE_TIME: Duration = Duration::from_secs(10);
/// Wait for one controller's answer.
const ASK_TIMEOUT: Duration = Duration::from_millis(800);
/// Pause between rounds of asking.
const ROUND_PAUSE: Duration = Duration::from_millis(200);

/// What an empty metadata log does with its seed voters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seeding {
    /// Write the seed voters as the first entry.
    Seed,
    /// Start unseeded and join the running quorum; the reason is logged.
    Join(String),
}

/// Whether `bootstrap` names a controller that is not among `seeds` (the quorum grew).
pub fn grown(seeds: &BTreeMap<NodeId, VoterNode>, bootstrap: &[String]) -> bool {
    bootstrap
        .iter()
        .any(|b| !seeds.values().any(|s| same_address(&s.addr, b)))
}

/// Decides for node `node_id` by asking the other bootstrap servers for up to [`PROBE_TIME`]
/// ([`GROWN_PROBE_TIME`] when the quorum [`grown`]).
pub async fn decide(
    node_id: NodeId,
    seeds: &BTreeMap<NodeId, VoterNode>,
    bootstrap: &[String],
    tls: &QuorumTls,
) -> Seeding {
    if bootstrap.is_empty() {
        return Seeding::Seed;
    }
    let probe_time = if grown(seeds, bootstrap) {
        GROWN_PROBE_TIME
    } else {
        PROBE_TIME
    };
    let own = seeds.get(&node_id).map(|n| n.addr.as_str());
    let others: Vec<&String> = bootstrap
        .iter()
        .filter(|b| own.is_none_or(|own| !same_address(own, b)))
        .collect();
    if others.is_empty() {
        return Seeding::Seed;
    }
    let clients: Vec<(&String, ControllerClient)> = others
        .iter()
        .map(|addr| {
            let one = BTreeMap::from([(-1, (*addr).clone())]);
            (*addr, ControllerClient::new(one, tls.clone()))
        })
        .collect();
    let deadline = Instant::now() + probe_time;
    while Instant::now() < deadline {
        for (addr, client) in &clients {
            let answer = client
                .ask_once(ControllerRequest::DescribeQuorum, ASK_TIMEOUT)
                .await;
            if let Some(leader) = running_leader(&answer) {
                return Seeding::Join(format!(
                    "controller {addr} reports a running quorum{}",
                    leader
                        .map(|l| format!(" led by node {l}"))
                        .unwrap_or_default()
                ));
            }
        }
        tokio::time::sleep(ROUND_PAUSE.min(deadline.saturating_duration_since(Instant::now())))
            .await;
    }
    Seeding::Seed
}

/// `Some(leader)` when `answer` shows a quorum with a leader: the leader's own DescribeQuorum,
/// or a follower naming its leader.
fn running_leader(answer: &Result<ControllerResponse, ControllerError>) -> Option<Option<i32>> {
    match answer {
        Ok(ControllerResponse::Quorum(q)) => Some(Some(q.leader)),
        Err(ControllerError::NotController { leader: Some(l) }) => Some(Some(*l)),
        _ => None,
    }
}

/// Addresses compared without case (host names) and without IPv6 brackets.
fn same_address(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().replace(['[', ']'], "").to_ascii_lowercase();
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds(addrs: &[(NodeId, &str)]) -> BTreeMap<NodeId, VoterNode> {
        addrs
            .iter()
            .map(|(id, a)| (*id, VoterNode::new(*a, None)))
            .collect()
    }

    #[test]
    fn bootstrap_servers_beyond_the_seeds_mean_the_quorum_grew() {
        let one = seeds(&[(0, "kafka-0.brokers:9093")]);
        let contacts = |s: &[&str]| s.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert!(!grown(&one, &contacts(&["KAFKA-0.brokers:9093"])));
        assert!(grown(
            &one,
            &contacts(&["kafka-0.brokers:9093", "kafka-1000.brokers:9093"])
        ));
        let ipv6 = seeds(&[(0, "[::1]:9093")]);
        assert!(!grown(&ipv6, &contacts(&["::1:9093"])));
    }

    #[tokio::test]
    async fn nobody_to_ask_or_nobody_answering_seeds() {
        let one = seeds(&[(0, "127.0.0.1:1")]);
        let tls = QuorumTls::default();
        assert_eq!(decide(0, &one, &[], &tls).await, Seeding::Seed);
        assert_eq!(
            decide(0, &one, &["127.0.0.1:1".to_string()], &tls).await,
            Seeding::Seed
        );
        // Another seed that does not answer within the probe time: seed.
        let two = seeds(&[(0, "127.0.0.1:1"), (1, "127.0.0.1:2")]);
        let both = ["127.0.0.1:1".to_string(), "127.0.0.1:2".to_string()];
        assert_eq!(decide(0, &two, &both, &tls).await, Seeding::Seed);
    }

    #[test]
    fn a_leader_or_a_follower_naming_one_proves_a_running_quorum() {
        let not = |leader| Err(ControllerError::NotController { leader });
        assert_eq!(running_leader(&not(Some(3))), Some(Some(3)));
        assert_eq!(running_leader(&not(None)), None);
        assert_eq!(
            running_leader(&Err(ControllerError::Unavailable("down".into()))),
            None
        );
    }
}
