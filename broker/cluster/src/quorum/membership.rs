//! Dynamic voter set (KIP-853): the Raft node record ([`VoterNode`]: quorum address and metadata
//! log directory id) and the pure decision of what one voter change does to the membership
//! ([`plan`]), which the active controller then carries out through openraft's membership
//! changes. Voters are Raft voters; observers are openraft learners.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::NodeId;
use crate::rpc::{ControllerError, VoterChange};

/// A member of the quorum as the Raft log records it. Serialised like openraft's `BasicNode`
/// (`{"addr": ...}`) plus the directory id, so logs and snapshots written before directory ids
/// existed still read (their voters have `directory_id: None`, "unknown").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterNode {
    /// `host:port` of the node's controller listener.
    pub addr: String,
    /// The node's metadata log directory id (`directory.id` of its `meta.properties`).
    #[serde(default)]
    pub directory_id: Option<Uuid>,
}

impl VoterNode {
    pub fn new(addr: impl Into<String>, directory_id: Option<Uuid>) -> VoterNode {
        VoterNode {
            addr: addr.into(),
            directory_id,
        }
    }
}

impl fmt::Display for VoterNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.directory_id {
            Some(dir) => write!(f, "{} (directory {dir})", self.addr),
            None => f.write_str(&self.addr),
        }
    }
}

/// What one voter change does, in openraft's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Already so: answer success.
    Nothing,
    /// Add the node as a learner (observer), or replace a learner's record.
    SetLearner(NodeId, VoterNode),
    /// Make the node a voter: first make `node` its learner record when given, let it catch up,
    /// then add it to the voters.
    Promote { id: NodeId, node: Option<VoterNode> },
    /// Replace a voter's record (new endpoint, or its directory id learned).
    SetVoter(NodeId, VoterNode),
    /// Remove a voter from the voter set; it stays a member as an observer.
    RemoveVoter(NodeId),
    /// Remove an observer from the membership.
    RemoveLearner(NodeId),
}

/// A directory id given in a request matches the recorded one when either is unknown (a voter
/// seeded by `controller.quorum.voters` before it reported its id; a request with the zero id).
fn matches(recorded: Option<Uuid>, asked: Uuid) -> bool {
    asked.is_nil() || recorded.is_none_or(|r| r == asked)
}

fn known(dir: Uuid) -> Option<Uuid> {
    (!dir.is_nil()).then_some(dir)
}

/// A voter's record at `address` with the request's directory id (or the recorded one when the
/// request names none): `SetVoter` when that changes the record.
fn update_voter(id: NodeId, current: &VoterNode, address: &str, directory_id: Uuid) -> Step {
    let wanted = VoterNode::new(address, known(directory_id).or(current.directory_id));
    if *current == wanted {
        Step::Nothing
    } else {
        Step::SetVoter(id, wanted)
    }
}

fn describe(node: &VoterNode) -> String {
    node.directory_id
        .map_or("an unknown directory".to_string(), |d| {
            format!("directory {d}")
        })
}

/// Decides `change` against the current membership: `voters` are the Raft voters, `nodes` every
/// member (voters and learners) with its record.
pub fn plan(
    voters: &BTreeSet<NodeId>,
    nodes: &BTreeMap<NodeId, VoterNode>,
    change: &VoterChange,
) -> Result<Step, ControllerError> {
    let node_id = |id: i32| {
        NodeId::try_from(id)
            .map_err(|_| ControllerError::InvalidRequest(format!("voter id {id} is negative")))
    };
    match change {
        VoterChange::Add {
            id,
            directory_id,
            address,
        } => {
            let nid = node_id(*id)?;
            if voters.contains(&nid) {
                return Err(ControllerError::DuplicateVoter(format!(
                    "node {id} is already a voter ({})",
                    nodes.get(&nid).map_or("unknown".to_string(), describe)
                )));
            }
            let wanted = VoterNode::new(address.clone(), known(*directory_id));
            let node = match nodes.get(&nid) {
                Some(current) if *current == wanted => None,
                // An observer with another directory id is another disk: its record is
                // replaced (learners do not vote, so this is safe).
                _ => Some(wanted),
            };
            Ok(Step::Promote { id: nid, node })
        }
        VoterChange::Remove { id, directory_id } => {
            let nid = node_id(*id)?;
            let Some(current) = nodes.get(&nid) else {
                return Err(ControllerError::VoterNotFound(format!(
                    "node {id} is neither a voter nor an observer"
                )));
            };
            if !matches(current.directory_id, *directory_id) {
                return Err(ControllerError::VoterNotFound(format!(
                    "node {id} has {}, not directory {directory_id}",
                    describe(current)
                )));
            }
            if !voters.contains(&nid) {
                return Ok(Step::RemoveLearner(nid));
            }
            if voters.len() == 1 {
                return Err(ControllerError::InvalidRequest(format!(
                    "node {id} is the only voter: the quorum cannot lose its last voter"
                )));
            }
            Ok(Step::RemoveVoter(nid))
        }
        VoterChange::Update {
            id,
            directory_id,
            address,
        } => {
            let nid = node_id(*id)?;
            let current = nodes
                .get(&nid)
                .filter(|_| voters.contains(&nid))
                .ok_or_else(|| {
                    ControllerError::VoterNotFound(format!("node {id} is not a voter"))
                })?;
            if !matches(current.directory_id, *directory_id) {
                return Err(ControllerError::VoterNotFound(format!(
                    "voter {id} has {}, not directory {directory_id}",
                    describe(current)
                )));
            }
            Ok(update_voter(nid, current, address, *directory_id))
        }
        VoterChange::Join {
            id,
            directory_id,
            address,
        } => {
            let nid = node_id(*id)?;
            let wanted = VoterNode::new(address.clone(), known(*directory_id));
            match nodes.get(&nid) {
                Some(current) if voters.contains(&nid) => {
                    if !matches(current.directory_id, *directory_id) {
                        // Another disk under a voter's id: it forgot its votes and log, so it
                        // must not act as that voter (Raft's safety rests on both).
                        return Err(ControllerError::InvalidRequest(format!(
                            "node {id} is a voter with {}, this node has directory \
                             {directory_id} (a replaced disk?): remove the old voter with \
                             RemoveRaftVoter, then add this one",
                            describe(current)
                        )));
                    }
                    Ok(update_voter(nid, current, address, *directory_id))
                }
                Some(current) if *current == wanted => Ok(Step::Nothing),
                _ => Ok(Step::SetLearner(nid, wanted)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn members(
        voters: &[(NodeId, Option<Uuid>)],
        learners: &[(NodeId, Option<Uuid>)],
    ) -> (BTreeSet<NodeId>, BTreeMap<NodeId, VoterNode>) {
        let node = |id: NodeId, d| (id, VoterNode::new(format!("h{id}:9093"), d));
        (
            voters.iter().map(|(id, _)| *id).collect(),
            voters
                .iter()
                .chain(learners)
                .map(|(id, d)| node(*id, *d))
                .collect(),
        )
    }

    fn add(id: i32, d: Uuid) -> VoterChange {
        VoterChange::Add {
            id,
            directory_id: d,
            address: format!("h{id}:9093"),
        }
    }

    #[test]
    fn adding_an_observer_promotes_it_without_touching_its_record() {
        let (v, n) = members(&[(1, Some(dir(1)))], &[(2, Some(dir(2)))]);
        assert_eq!(
            plan(&v, &n, &add(2, dir(2))).unwrap(),
            Step::Promote { id: 2, node: None }
        );
    }

    #[test]
    fn adding_an_unknown_node_or_another_disk_sets_its_learner_record_first() {
        let (v, n) = members(&[(1, Some(dir(1)))], &[(2, Some(dir(2)))]);
        assert_eq!(
            plan(&v, &n, &add(3, dir(3))).unwrap(),
            Step::Promote {
                id: 3,
                node: Some(VoterNode::new("h3:9093", Some(dir(3))))
            }
        );
        assert_eq!(
            plan(&v, &n, &add(2, dir(9))).unwrap(),
            Step::Promote {
                id: 2,
                node: Some(VoterNode::new("h2:9093", Some(dir(9))))
            }
        );
    }

    #[test]
    fn adding_a_voter_twice_is_a_duplicate() {
        let (v, n) = members(&[(1, Some(dir(1)))], &[]);
        let e = plan(&v, &n, &add(1, dir(1))).unwrap_err();
        assert_eq!(e.code(), 126);
    }

    #[test]
    fn removal_checks_the_directory_and_keeps_one_voter() {
        let (v, n) = members(&[(1, Some(dir(1))), (2, None)], &[(3, Some(dir(3)))]);
        let remove = |id, d| VoterChange::Remove {
            id,
            directory_id: d,
        };
        assert_eq!(
            plan(&v, &n, &remove(1, dir(1))).unwrap(),
            Step::RemoveVoter(1)
        );
        assert_eq!(
            plan(&v, &n, &remove(1, Uuid::nil())).unwrap(),
            Step::RemoveVoter(1)
        );
        assert_eq!(plan(&v, &n, &remove(1, dir(7))).unwrap_err().code(), 127);
        // A seeded voter's unknown directory matches any.
        assert_eq!(
            plan(&v, &n, &remove(2, dir(7))).unwrap(),
            Step::RemoveVoter(2)
        );
        assert_eq!(
            plan(&v, &n, &remove(3, dir(3))).unwrap(),
            Step::RemoveLearner(3)
        );
        assert_eq!(plan(&v, &n, &remove(4, dir(4))).unwrap_err().code(), 127);
        let (v, n) = members(&[(1, Some(dir(1)))], &[]);
        assert_eq!(plan(&v, &n, &remove(1, dir(1))).unwrap_err().code(), 42);
    }

    #[test]
    fn update_changes_only_a_matching_voter() {
        let (v, n) = members(&[(1, Some(dir(1))), (2, None)], &[(3, None)]);
        let update = |id, d: Uuid, addr: &str| VoterChange::Update {
            id,
            directory_id: d,
            address: addr.to_string(),
        };
        assert_eq!(
            plan(&v, &n, &update(1, dir(1), "new:1")).unwrap(),
            Step::SetVoter(1, VoterNode::new("new:1", Some(dir(1))))
        );
        assert_eq!(
            plan(&v, &n, &update(1, dir(1), "h1:9093")).unwrap(),
            Step::Nothing
        );
        assert_eq!(
            plan(&v, &n, &update(1, dir(2), "new:1"))
                .unwrap_err()
                .code(),
            127
        );
        assert_eq!(
            plan(&v, &n, &update(3, dir(3), "new:3"))
                .unwrap_err()
                .code(),
            127
        );
        // A seeded voter learns its directory id.
        assert_eq!(
            plan(&v, &n, &update(2, dir(2), "h2:9093")).unwrap(),
            Step::SetVoter(2, VoterNode::new("h2:9093", Some(dir(2))))
        );
    }

    #[test]
    fn join_adds_observers_and_refuses_a_voter_with_another_disk() {
        let (v, n) = members(&[(1, Some(dir(1))), (2, None)], &[(3, Some(dir(3)))]);
        let join = |id, d| VoterChange::Join {
            id,
            directory_id: d,
            address: format!("h{id}:9093"),
        };
        assert_eq!(
            plan(&v, &n, &join(4, dir(4))).unwrap(),
            Step::SetLearner(4, VoterNode::new("h4:9093", Some(dir(4))))
        );
        assert_eq!(plan(&v, &n, &join(3, dir(3))).unwrap(), Step::Nothing);
        assert_eq!(plan(&v, &n, &join(1, dir(1))).unwrap(), Step::Nothing);
        assert_eq!(
            plan(&v, &n, &join(2, dir(2))).unwrap(),
            Step::SetVoter(2, VoterNode::new("h2:9093", Some(dir(2))))
        );
        assert_eq!(plan(&v, &n, &join(1, dir(5))).unwrap_err().code(), 42);
        assert_eq!(
            plan(&v, &n, &join(3, dir(6))).unwrap(),
            Step::SetLearner(3, VoterNode::new("h3:9093", Some(dir(6))))
        );
    }

    #[test]
    fn old_basic_node_records_still_read() {
        let node: VoterNode = serde_json::from_str(r#"{"addr":"h:1"}"#).unwrap();
        assert_eq!(node, VoterNode::new("h:1", None));
    }
}
