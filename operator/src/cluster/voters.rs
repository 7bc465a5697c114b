//! The next change to a Cluster's KRaft voter set (KIP-853), as a pure function: from the voters
//! the operator wants and the quorum as DescribeQuorum reports it, [`next_step`] returns one
//! AddRaftVoter or RemoveRaftVoter to send, or why to wait. The reconcile's quorum step
//! (`reconfigure`) asks it once per pass.

use std::collections::BTreeMap;
use std::fmt;

use uuid::Uuid;

pub use crate::admin::{Quorum, Replica};

/// How far (in metadata log entries) a voter may trail the leader and still count as caught up,
/// and an observer must be within before it is added (the broker's own AddRaftVoter check is
/// "within a few entries" too).
pub const MAX_LAG: i64 = 10;

/// The one voter change to make next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoterStep {
    /// The voter set is the wanted one.
    Nothing,
    /// The quorum is not healthy enough to change now: requeue and look again.
    Wait(WaitReason),
    /// AddRaftVoter for a caught-up observer.
    Add { id: i32, directory_id: Uuid },
    /// RemoveRaftVoter for a voter no longer wanted.
    Remove { id: i32, directory_id: Uuid },
    /// The first half of replacing a voter whose disk was lost: RemoveRaftVoter with its old
    /// directory id. The node then rejoins as an observer with the new one, and a later step
    /// adds it back.
    RemoveReplaced {
        id: i32,
        old_directory_id: Uuid,
        new_directory_id: Uuid,
    },
}

/// Why a voter change waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// No leader (an election is running, or the majority is gone).
    NoLeader,
    /// A voter trails the leader: changing the set now could cost the majority.
    VoterLagging { id: i32, behind: i64 },
    /// A wanted voter has not joined as an observer yet (pod starting).
    ObserverMissing { id: i32 },
    /// A wanted voter is an observer that has not caught up with the leader yet.
    ObserverCatchingUp { id: i32, behind: i64 },
    /// A wanted voter's observer entry has no directory id (AddRaftVoter needs one).
    DirectoryUnknown { id: i32 },
}

impl VoterStep {
    /// The condition reason naming this step.
    pub fn reason(&self) -> &'static str {
        match self {
            VoterStep::Nothing => "QuorumSettled",
            VoterStep::Wait(_) => "QuorumChangeWaiting",
            VoterStep::Add { .. } => "AddingVoter",
            VoterStep::Remove { .. } => "RemovingVoter",
            VoterStep::RemoveReplaced { .. } => "ReplacingVoter",
        }
    }
}

impl fmt::Display for VoterStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VoterStep::Nothing => f.write_str("the voter set is as wanted"),
            VoterStep::Wait(why) => write!(f, "waiting: {why}"),
            VoterStep::Add { id, directory_id } => {
                write!(f, "adding node {id} (directory {directory_id}) as a voter")
            }
            VoterStep::Remove { id, directory_id } => {
                write!(f, "removing voter {id} (directory {directory_id})")
            }
            VoterStep::RemoveReplaced {
                id,
                old_directory_id,
                new_directory_id,
            } => write!(
                f,
                "replacing voter {id}: removing its old directory {old_directory_id}, then adding \
                 {new_directory_id}"
            ),
        }
    }
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitReason::NoLeader => f.write_str("the quorum has no leader"),
            WaitReason::VoterLagging { id, behind } => {
                write!(f, "voter {id} is {behind} entries behind the leader")
            }
            WaitReason::ObserverMissing { id } => {
                write!(f, "node {id} has not joined the quorum as an observer")
            }
            WaitReason::ObserverCatchingUp { id, behind } => {
                write!(f, "observer {id} is {behind} entries behind the leader")
            }
            WaitReason::DirectoryUnknown { id } => {
                write!(f, "observer {id} reports no directory id")
            }
        }
    }
}

/// The next voter change towards `desired` (node ids in pick order, as
/// [`crate::cluster::quorum::choose_voters`] gives them). `reported` is each running node's own
/// metadata directory id where known: a voter whose directory id differs lost its disk (the node
/// cannot rejoin while the old entry stands, so DescribeQuorum alone may not show the new id).
/// An observer with a voter's id and another directory id counts as the same evidence.
///
/// Order: wait without a leader; replace a lost disk (the lost voter is the one lagging); wait
/// while any voter lags; add the first wanted observer that is caught up; remove an unwanted
/// voter (followers before the leader, never the last voter). One step per call: the caller
/// sends it, requeues and asks again with a fresh DescribeQuorum.
pub fn next_step(desired: &[i32], quorum: &Quorum, reported: &BTreeMap<i32, Uuid>) -> VoterStep {
    let Some(leader) = quorum.leader.and_then(|id| quorum.voter(id)) else {
        return VoterStep::Wait(WaitReason::NoLeader);
    };
    let behind = |r: &Replica| leader.log_end_offset.saturating_sub(r.log_end_offset);
    let lagging = |r: &&Replica| behind(r) > MAX_LAG;

    for voter in &quorum.voters {
        let new_directory_id = reported.get(&voter.id).copied().or_else(|| {
            quorum
                .observers
                .iter()
                .find(|o| o.id == voter.id)
                .map(|o| o.directory_id)
        });
        let Some(new_directory_id) = new_directory_id else {
            continue;
        };
        if voter.directory_id.is_nil()
            || new_directory_id.is_nil()
            || new_directory_id == voter.directory_id
            // The leader answers with its own disk: a differing report is stale.
            || voter.id == leader.id
        {
            continue;
        }
        // Removing it must leave a caught-up majority of the rest (all of them, since the set
        // shrinks by one and this voter is already gone).
        if let Some(other) = quorum
            .voters
            .iter()
            .filter(|v| v.id != voter.id)
            .find(lagging)
        {
            return VoterStep::Wait(WaitReason::VoterLagging {
                id: other.id,
                behind: behind(other),
            });
        }
        return VoterStep::RemoveReplaced {
            id: voter.id,
            old_directory_id: voter.directory_id,
            new_directory_id,
        };
    }

    if let Some(voter) = quorum.voters.iter().find(lagging) {
        return VoterStep::Wait(WaitReason::VoterLagging {
            id: voter.id,
            behind: behind(voter),
        });
    }

    let mut first_wait = None;
    for id in desired.iter().filter(|id| quorum.voter(**id).is_none()) {
        let wait = match quorum.observers.iter().find(|o| o.id == *id) {
            None => WaitReason::ObserverMissing { id: *id },
            Some(o) if o.directory_id.is_nil() => WaitReason::DirectoryUnknown { id: *id },
            Some(o) if lagging(&o) => WaitReason::ObserverCatchingUp {
                id: *id,
                behind: behind(o),
            },
            Some(o) => {
                return VoterStep::Add {
                    id: o.id,
                    directory_id: o.directory_id,
                };
            }
        };
        first_wait.get_or_insert(wait);
    }
    if let Some(wait) = first_wait {
        return VoterStep::Wait(wait);
    }

    if quorum.voters.len() > 1 {
        let unwanted = |v: &&Replica| !desired.contains(&v.id);
        let pick = quorum
            .voters
            .iter()
            .filter(unwanted)
            .find(|v| v.id != leader.id)
            .or_else(|| quorum.voters.iter().find(unwanted));
        if let Some(voter) = pick {
            return VoterStep::Remove {
                id: voter.id,
                directory_id: voter.directory_id,
            };
        }
    }
    VoterStep::Nothing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::quorum::choose_voters;

    fn dir(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn replica(id: i32, log_end_offset: i64) -> Replica {
        Replica {
            id,
            directory_id: dir(id as u128 + 1),
            log_end_offset,
        }
    }

    fn quorum(leader: i32, voters: &[(i32, i64)], observers: &[(i32, i64)]) -> Quorum {
        Quorum {
            leader: Some(leader),
            voters: voters.iter().map(|(id, leo)| replica(*id, *leo)).collect(),
            observers: observers
                .iter()
                .map(|(id, leo)| replica(*id, *leo))
                .collect(),
        }
    }

    fn none() -> BTreeMap<i32, Uuid> {
        BTreeMap::new()
    }

    /// Runs `next_step` to its end the way the reconcile would: carry out each step on the
    /// quorum, let every observer catch up, and ask again.
    fn settle(desired: &[i32], mut q: Quorum) -> (Quorum, Vec<VoterStep>) {
        let mut steps = Vec::new();
        for _ in 0..10 {
            let step = next_step(desired, &q, &none());
            steps.push(step);
            match step {
                VoterStep::Add { id, .. } => {
                    let at = q.observers.iter().position(|o| o.id == id).unwrap();
                    q.voters.push(q.observers.remove(at));
                }
                VoterStep::Remove { id, .. } => {
                    let at = q.voters.iter().position(|v| v.id == id).unwrap();
                    q.observers.push(q.voters.remove(at));
                }
                _ => return (q, steps),
            }
        }
        panic!("no end: {steps:?}");
    }

    fn ids(replicas: &[Replica]) -> Vec<i32> {
        replicas.iter().map(|r| r.id).collect()
    }

    #[test]
    fn one_voter_grows_to_three_one_caught_up_observer_at_a_time() {
        let desired = choose_voters(&[1, 1, 1]);
        assert_eq!(desired, [0, 1000, 2000]);
        let q = quorum(0, &[(0, 100)], &[(1000, 100), (2000, 95)]);
        let (q, steps) = settle(&desired, q);
        assert_eq!(
            steps,
            [
                VoterStep::Add {
                    id: 1000,
                    directory_id: dir(1001)
                },
                VoterStep::Add {
                    id: 2000,
                    directory_id: dir(2001)
                },
                VoterStep::Nothing,
            ]
        );
        assert_eq!(ids(&q.voters), [0, 1000, 2000]);
    }

    #[test]
    fn an_observer_is_added_only_once_caught_up() {
        let desired = [0, 1, 2];
        // Observer 1 still copying the log: 2, caught up, goes first.
        let q = quorum(0, &[(0, 500)], &[(1, 20), (2, 495)]);
        assert_eq!(
            next_step(&desired, &q, &none()),
            VoterStep::Add {
                id: 2,
                directory_id: dir(3)
            }
        );
        let q = quorum(0, &[(0, 500), (2, 500)], &[(1, 20)]);
        assert_eq!(
            next_step(&desired, &q, &none()),
            VoterStep::Wait(WaitReason::ObserverCatchingUp { id: 1, behind: 480 })
        );
        // Not started yet.
        let q = quorum(0, &[(0, 500), (2, 500)], &[]);
        assert_eq!(
            next_step(&desired, &q, &none()),
            VoterStep::Wait(WaitReason::ObserverMissing { id: 1 })
        );
        let mut q = quorum(0, &[(0, 500), (2, 500)], &[(1, 500)]);
        q.observers[0].directory_id = Uuid::nil();
        assert_eq!(
            next_step(&desired, &q, &none()),
            VoterStep::Wait(WaitReason::DirectoryUnknown { id: 1 })
        );
    }

    #[test]
    fn three_voters_grow_to_five() {
        let desired = [0, 1000, 2000, 1, 1001];
        let q = quorum(
            1000,
            &[(0, 70), (1000, 70), (2000, 70)],
            &[(1, 70), (1001, 70), (2, 70), (2001, 70)],
        );
        let (q, steps) = settle(&desired, q);
        assert_eq!(
            steps,
            [
                VoterStep::Add {
                    id: 1,
                    directory_id: dir(2)
                },
                VoterStep::Add {
                    id: 1001,
                    directory_id: dir(1002)
                },
                VoterStep::Nothing,
            ]
        );
        assert_eq!(ids(&q.voters), [0, 1000, 2000, 1, 1001]);
        // And back to three: followers first, the brokers stay observers.
        let (q, steps) = settle(&[0, 1000, 2000], q);
        assert_eq!(steps.len(), 3);
        assert_eq!(ids(&q.voters), [0, 1000, 2000]);
    }

    #[test]
    fn the_leader_is_removed_last_and_the_last_voter_never() {
        let q = quorum(2, &[(1, 9), (2, 9), (3, 9)], &[]);
        assert_eq!(
            next_step(&[3], &q, &none()),
            VoterStep::Remove {
                id: 1,
                directory_id: dir(2)
            }
        );
        let q = quorum(2, &[(2, 9), (3, 9)], &[]);
        assert_eq!(
            next_step(&[3], &q, &none()),
            VoterStep::Remove {
                id: 2,
                directory_id: dir(3)
            }
        );
        let q = quorum(2, &[(2, 9)], &[]);
        assert_eq!(next_step(&[], &q, &none()), VoterStep::Nothing);
    }

    #[test]
    fn a_lost_disk_is_replaced_old_directory_out_then_new_in() {
        let desired = [0, 1, 2];
        // Node 1 came back with an empty disk: it cannot rejoin while the old entry stands, so
        // only its own report shows the new directory id, and its old entry lags.
        let q = quorum(0, &[(0, 300), (1, 120), (2, 300)], &[]);
        let reported = BTreeMap::from([(0, dir(1)), (1, dir(77)), (2, dir(3))]);
        assert_eq!(
            next_step(&desired, &q, &reported),
            VoterStep::RemoveReplaced {
                id: 1,
                old_directory_id: dir(2),
                new_directory_id: dir(77)
            }
        );
        // Without the report: a lagging voter, so wait rather than guess.
        assert_eq!(
            next_step(&desired, &q, &none()),
            VoterStep::Wait(WaitReason::VoterLagging { id: 1, behind: 180 })
        );
        // Removed: it joins as an observer with the new id, copies the log, is added back.
        let mut q = quorum(0, &[(0, 300), (2, 300)], &[(1, 0)]);
        q.observers[0].directory_id = dir(77);
        assert_eq!(
            next_step(&desired, &q, &reported),
            VoterStep::Wait(WaitReason::ObserverCatchingUp { id: 1, behind: 300 })
        );
        q.observers[0].log_end_offset = 300;
        assert_eq!(
            next_step(&desired, &q, &reported),
            VoterStep::Add {
                id: 1,
                directory_id: dir(77)
            }
        );
        // An observer entry with the voter's id and a new directory is the same evidence.
        let mut q = quorum(0, &[(0, 300), (1, 120), (2, 300)], &[(1, 0)]);
        q.observers[0].directory_id = dir(77);
        assert!(matches!(
            next_step(&desired, &q, &none()),
            VoterStep::RemoveReplaced { id: 1, .. }
        ));
    }

    #[test]
    fn a_replacement_waits_for_the_other_voters() {
        // Voter 2 lags too: removing 1 would leave 0 and a lagging 2.
        let q = quorum(0, &[(0, 300), (1, 120), (2, 200)], &[]);
        let reported = BTreeMap::from([(1, dir(77))]);
        assert_eq!(
            next_step(&[0, 1, 2], &q, &reported),
            VoterStep::Wait(WaitReason::VoterLagging { id: 2, behind: 100 })
        );
        // A voter seeded without a directory id, or a report naming the same disk, is no
        // replacement; nor is a report about the leader.
        let mut q = quorum(0, &[(0, 300), (1, 300), (2, 300)], &[]);
        assert_eq!(
            next_step(&[0, 1, 2], &q, &BTreeMap::from([(0, dir(9)), (1, dir(2))])),
            VoterStep::Nothing
        );
        q.voters[1].directory_id = Uuid::nil();
        assert_eq!(next_step(&[0, 1, 2], &q, &reported), VoterStep::Nothing);
    }

    #[test]
    fn nothing_changes_while_the_quorum_is_unhealthy() {
        let desired = [0, 1, 2];
        let mut q = quorum(0, &[(0, 50)], &[(1, 50), (2, 50)]);
        q.leader = None;
        assert_eq!(
            next_step(&desired, &q, &none()),
            VoterStep::Wait(WaitReason::NoLeader)
        );
        // A leader id that is no voter (a stale answer) is no leader either.
        q.leader = Some(7);
        assert_eq!(
            next_step(&desired, &q, &none()),
            VoterStep::Wait(WaitReason::NoLeader)
        );
        // A voter lagging: no add, and no remove either.
        let q = quorum(0, &[(0, 50), (1, 10)], &[(2, 50)]);
        assert_eq!(
            next_step(&desired, &q, &none()),
            VoterStep::Wait(WaitReason::VoterLagging { id: 1, behind: 40 })
        );
        let q = quorum(0, &[(0, 50), (1, 10), (2, 50)], &[]);
        assert_eq!(
            next_step(&[0], &q, &none()),
            VoterStep::Wait(WaitReason::VoterLagging { id: 1, behind: 40 })
        );
        // Within the allowed lag: settled.
        let q = quorum(0, &[(0, 50), (1, 45), (2, 50)], &[]);
        assert_eq!(next_step(&desired, &q, &none()), VoterStep::Nothing);
    }

    #[test]
    fn reads_a_describe_quorum_partition() {
        use kafka_protocol::messages::BrokerId;
        use kafka_protocol::messages::describe_quorum_response::{PartitionData, ReplicaState};
        let state = |id: i32, dir: Uuid, leo: i64| {
            ReplicaState::default()
                .with_replica_id(BrokerId(id))
                .with_replica_directory_id(dir)
                .with_log_end_offset(leo)
        };
        let partition = PartitionData::default()
            .with_leader_id(BrokerId(3))
            .with_current_voters(vec![state(3, dir(4), 12)])
            .with_observers(vec![state(5, dir(6), 11)]);
        assert_eq!(
            Quorum::from_partition(&partition),
            Quorum {
                leader: Some(3),
                voters: vec![Replica {
                    id: 3,
                    directory_id: dir(4),
                    log_end_offset: 12
                }],
                observers: vec![Replica {
                    id: 5,
                    directory_id: dir(6),
                    log_end_offset: 11
                }],
            }
        );
        let leaderless = partition.with_leader_id(BrokerId(-1));
        assert_eq!(Quorum::from_partition(&leaderless).leader, None);
    }
}
