//! The quorum step of a Cluster reconcile (KIP-853): which voters seeded the quorum (kept in
//! `status.quorum.seedVoters`, so that the rendered `controller.quorum.voters` never changes
//! under running voters), which voters the spec wants (`quorum::choose_voters`: one, three or
//! five), and, for a running cluster, one voter change per pass towards them: DescribeQuorum,
//! [`voters::next_step`], then at most one AddRaftVoter or RemoveRaftVoter. The step's outcome
//! is the `QuorumReconfiguring` condition; the scale step keeps a leaving broker until it is no
//! voter, and the roll waits while a change is under way (see `apply`).

use strait_crds::cluster::QuorumStatus;

use crate::admin::{KafkaAdmin, Quorum, TlsConfig};
use crate::cluster::identity::{ClusterRef, held_node_ids};
use crate::cluster::quorum::{self, CONTROLLER_PORT, Controllers};
use crate::cluster::reach::{admin_of, answered};
use crate::cluster::status::AdminReach;
use crate::cluster::voters::{self, VoterStep};
use crate::conditions::Cond;
use crate::context::{AdminFactory, Context};
use crate::names;

/// Condition type of a voter change under way.
pub const CONDITION: &str = "QuorumReconfiguring";

/// The seed voters of a Cluster: those recorded in its status (`previous`), less any whose
/// broker neither runs (`current`, brokers per zone now) nor is wanted (`desired`, per zone): a
/// node id that comes back later must join, not seed a second quorum. Without a record, a
/// running cluster formed with what an operator version before KIP-853 chose
/// ([`quorum::static_voters`]) and a new one seeds with the voters it wants.
pub fn seed_voters(previous: Option<&QuorumStatus>, current: &[i32], desired: &[i32]) -> Vec<i32> {
    let running: i32 = current.iter().map(|n| (*n).max(0)).sum();
    let recorded = previous.map(|q| q.seed_voters.as_slice()).unwrap_or(&[]);
    if !recorded.is_empty() {
        let exists = held_node_ids(current);
        let wanted = held_node_ids(desired);
        let kept: Vec<i32> = recorded
            .iter()
            .filter(|id| exists.contains(id) || wanted.contains(id))
            .copied()
            .collect();
        if !kept.is_empty() {
            return kept;
        }
    }
    if running > 0 {
        quorum::static_voters(current)
    } else {
        quorum::choose_voters(desired)
    }
}

/// What the quorum step found and did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuorumOutcome {
    /// The seed voters (see [`seed_voters`]).
    pub seeds: Vec<i32>,
    /// The voters the spec wants.
    pub desired: Vec<i32>,
    /// The voters as DescribeQuorum reported them this pass, after the change sent (if any);
    /// `None` when the quorum was not described (a new cluster, no DescribeQuorum v2, an admin
    /// failure).
    pub voters: Option<Vec<i32>>,
    /// The voters the status recorded last (what to assume when the quorum cannot be asked).
    pub recorded: Vec<i32>,
    /// The step of this pass, when the quorum was described.
    pub step: Option<VoterStep>,
    /// `QuorumReconfiguring`, when there is something to say.
    pub condition: Option<Cond>,
}

impl QuorumOutcome {
    /// The controllers to render: the seeds, plus the wanted voters that are no seeds once the
    /// brokers are known to change voters (DescribeQuorum v2 answered, now or before): brokers
    /// that cannot would never promote a joining controller.
    pub fn controllers(&self) -> Controllers {
        if self.voters.is_none() && self.recorded.is_empty() {
            return Controllers::seeded(&self.seeds);
        }
        Controllers::new(&self.seeds, &self.desired)
    }

    /// The voters now: as reported, else (not described) as last recorded, else the seeds.
    pub fn voters_now(&self) -> Vec<i32> {
        match &self.voters {
            Some(v) => v.clone(),
            None if !self.recorded.is_empty() => self.recorded.clone(),
            None => self.seeds.clone(),
        }
    }

    /// Whether a voter change is under way or waited for: the roll holds meanwhile (restarting
    /// a voter while the set changes could cost the majority).
    pub fn changing(&self) -> bool {
        self.step.is_some_and(|s| s != VoterStep::Nothing)
    }

    /// What the status records.
    pub fn status(&self) -> QuorumStatus {
        QuorumStatus {
            seed_voters: self.seeds.clone(),
            voters: self.voters_now(),
            desired_voters: self.desired.clone(),
        }
    }
}

/// The `QuorumReconfiguring` condition for `step`, the voters being `now` and wanted `desired`.
pub fn condition(step: &VoterStep, now: &[i32], desired: &[i32]) -> Cond {
    match step {
        VoterStep::Nothing => Cond::new(CONDITION, false, step.reason(), format!("voters {now:?}")),
        _ => Cond::new(
            CONDITION,
            true,
            step.reason(),
            format!("voters {now:?}, wanted {desired:?}: {step}"),
        ),
    }
}

/// The quorum step of a pass over Cluster `c` whose zones have `current` brokers (the admin
/// client over TLS with `admin_tls`); every admin call goes into `reach`. A cluster with no
/// broker yet is not asked.
pub async fn step<F: AdminFactory>(
    c: &ClusterRef<'_>,
    previous: Option<&QuorumStatus>,
    current: &[i32],
    admin_tls: Option<&TlsConfig>,
    ctx: &Context<F>,
    reach: &mut AdminReach,
) -> QuorumOutcome {
    let desired_sizes = quorum::desired_zone_sizes(c.spec);
    let mut outcome = QuorumOutcome {
        seeds: seed_voters(previous, current, &desired_sizes),
        desired: quorum::choose_voters(&desired_sizes),
        recorded: previous.map(|q| q.voters.clone()).unwrap_or_default(),
        ..QuorumOutcome::default()
    };
    if current.iter().all(|n| *n <= 0) {
        return outcome;
    }
    let admin = admin_of(c, ctx, admin_tls);
    let described = admin.describe_quorum().await;
    reach.record(&answered(&described));
    let quorum = match described {
        Ok(Some(q)) => q,
        Ok(None) => {
            if outcome.voters_now() != outcome.desired {
                outcome.condition = Some(Cond::new(
                    CONDITION,
                    false,
                    "DescribeQuorumUnsupported",
                    format!(
                        "the brokers do not serve DescribeQuorum v2 (directory ids), so the \
                         voters stay {:?} (wanted {:?})",
                        outcome.seeds, outcome.desired
                    ),
                ));
            }
            return outcome;
        }
        Err(e) => {
            tracing::warn!(cluster = c.name, error = %e, "cannot describe the metadata quorum");
            outcome.condition = Some(Cond::new(
                CONDITION,
                true,
                "QuorumUnknown",
                format!("cannot describe the metadata quorum: {e}"),
            ));
            // Unknown: the roll and the scale step must not assume the voters settled.
            outcome.step = Some(VoterStep::Wait(voters::WaitReason::NoLeader));
            return outcome;
        }
    };
    let step = voters::next_step(&outcome.desired, &quorum, &Default::default());
    let now = voter_ids(&quorum);
    let sent = match step {
        VoterStep::Add { id, directory_id } => {
            let host = controller_host(c, id);
            let port = u16::try_from(CONTROLLER_PORT).unwrap_or(9093);
            Some(admin.add_raft_voter(id, directory_id, (&host, port)).await)
        }
        VoterStep::Remove { id, directory_id } => {
            Some(admin.remove_raft_voter(id, directory_id).await)
        }
        VoterStep::RemoveReplaced {
            id,
            old_directory_id,
            ..
        } => Some(admin.remove_raft_voter(id, old_directory_id).await),
        VoterStep::Nothing | VoterStep::Wait(_) => None,
    };
    let mut cond = condition(&step, &now, &outcome.desired);
    if let Some(result) = sent {
        reach.record(&answered(&result));
        match result {
            Ok(()) => {
                tracing::info!(cluster = c.name, %step, "metadata quorum voter change");
            }
            // Refused (another change still committing, the observer not caught up yet) or
            // failed: asked again next pass, from a fresh DescribeQuorum.
            Err(e) => {
                tracing::info!(cluster = c.name, %step, error = %e, "voter change not made");
                cond.message = format!("{}; not made yet: {e}", cond.message);
            }
        }
    }
    outcome.voters = Some(now);
    outcome.step = Some(step);
    outcome.condition = Some(cond);
    outcome
}

/// Voter ids of `quorum`, in its order.
fn voter_ids(quorum: &Quorum) -> Vec<i32> {
    quorum.voters.iter().map(|v| v.id).collect()
}

/// The CONTROLLER endpoint host of node `id`: its pod's stable DNS name, as
/// `controller.quorum.voters` and the bootstrap servers name it.
fn controller_host(c: &ClusterRef<'_>, id: i32) -> String {
    let pod = names::pod(c.name, quorum::zone_of(id), id);
    format!(
        "{pod}.{}.{}.svc",
        names::headless_service(c.name),
        c.namespace
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(seeds: &[i32]) -> QuorumStatus {
        QuorumStatus {
            seed_voters: seeds.to_vec(),
            ..QuorumStatus::default()
        }
    }

    #[test]
    fn a_new_cluster_seeds_with_the_voters_it_wants() {
        assert_eq!(seed_voters(None, &[0, 0, 0], &[1, 1, 1]), [0, 1000, 2000]);
        assert_eq!(
            seed_voters(None, &[0, 0, 0], &[2, 2, 2]),
            [0, 1000, 2000, 1, 1001]
        );
    }

    #[test]
    fn recorded_seeds_stay_while_the_voters_change() {
        let seeds = recorded(&[0]);
        assert_eq!(seed_voters(Some(&seeds), &[1, 0, 0], &[1, 1, 1]), [0]);
        assert_eq!(seed_voters(Some(&seeds), &[1, 1, 1], &[2, 2, 1]), [0]);
    }

    #[test]
    fn a_running_cluster_without_a_record_formed_with_at_most_three() {
        assert_eq!(seed_voters(None, &[2, 2, 2], &[2, 2, 2]), [0, 1000, 2000]);
        assert_eq!(
            seed_voters(Some(&QuorumStatus::default()), &[1, 0, 0], &[1, 1, 1]),
            [0]
        );
    }

    #[test]
    fn a_seed_whose_broker_left_is_no_seed_any_more() {
        // 3 -> 1: brokers 1000 and 2000 are still there while they drain, then gone.
        let seeds = recorded(&[0, 1000, 2000]);
        assert_eq!(
            seed_voters(Some(&seeds), &[1, 1, 1], &[1, 0, 0]),
            [0, 1000, 2000]
        );
        assert_eq!(seed_voters(Some(&seeds), &[1, 0, 0], &[1, 0, 0]), [0]);
        // Growing back, they join rather than seed.
        assert_eq!(
            seed_voters(Some(&recorded(&[0])), &[1, 0, 0], &[1, 1, 1]),
            [0]
        );
    }

    #[test]
    fn the_condition_names_the_step() {
        let step = VoterStep::Add {
            id: 1000,
            directory_id: uuid::Uuid::from_u128(7),
        };
        let cond = condition(&step, &[0], &[0, 1000, 2000]);
        assert_eq!(cond.kind, CONDITION);
        assert!(cond.status);
        assert_eq!(cond.reason, "AddingVoter");
        assert!(
            cond.message.contains("adding node 1000"),
            "{}",
            cond.message
        );
        let settled = condition(&VoterStep::Nothing, &[0, 1000, 2000], &[0, 1000, 2000]);
        assert!(!settled.status);
        assert_eq!(settled.reason, "QuorumSettled");
    }
}
