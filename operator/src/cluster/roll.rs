//! Rolling restarts across zones, as a pure decision. The zone StatefulSets use the `OnDelete`
//! update strategy, so Kubernetes never restarts a broker by itself (with `RollingUpdate` each
//! zone's StatefulSet would roll on its own, one pod per zone at once, taking down every replica
//! of a partition spread over three zones). Instead, each reconcile asks [`next_restart`] which
//! single broker to restart, if any: only when every broker pod is Ready (the broker's `/ready`
//! is 200 only once it is back in the ISR of everything it hosts), brokers that are not
//! controller voters first, voters last and the active controller (when known) very last.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;

/// A broker pod as the roll sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerPod {
    /// Pod name.
    pub name: String,
    /// Node id (the StatefulSet ordinal).
    pub node_id: i32,
    /// Index of its zone (StatefulSet) in `spec.zones`.
    pub zone: usize,
    /// The pod's Ready condition is True.
    pub ready: bool,
    /// The pod is being deleted.
    pub terminating: bool,
    /// Its `controller-revision-hash` label: the StatefulSet revision it was created from.
    pub revision: Option<String>,
}

/// A zone's StatefulSet as the roll sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneSet {
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.updateRevision`, `None` while the StatefulSet controller has not yet observed the
    /// latest spec (`status.observedGeneration < metadata.generation`): then the revision pods
    /// should have is not known yet.
    pub update_revision: Option<String>,
}

/// Why the roll cannot restart a broker now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RollWait {
    /// A zone's StatefulSet status does not reflect its latest spec yet.
    StatusPending {
        /// Zone index.
        zone: usize,
    },
    /// Some broker pods are not Ready (or are terminating).
    NotReady {
        /// Their names.
        pods: Vec<String>,
    },
    /// A zone has fewer pods than its StatefulSet wants (one is being recreated).
    MissingPods {
        /// Zone index.
        zone: usize,
        /// Pods there.
        have: usize,
        /// `spec.replicas`.
        want: i32,
    },
    /// A voter is next, but the voter set is changing (see `reconfigure`).
    QuorumChanging {
        /// The voter change under way.
        step: String,
    },
}

impl fmt::Display for RollWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RollWait::QuorumChanging { step } => {
                write!(
                    f,
                    "no voter restarts while the controller quorum changes ({step})"
                )
            }
            RollWait::StatusPending { zone } => {
                write!(
                    f,
                    "the StatefulSet of zone {zone} has not observed its spec yet"
                )
            }
            RollWait::NotReady { pods } => write!(f, "pods not ready: {}", pods.join(", ")),
            RollWait::MissingPods { zone, have, want } => {
                write!(f, "zone {zone} has {have} of {want} pods")
            }
        }
    }
}

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RollStep {
    /// Nothing to restart.
    Done,
    /// Restart this pod (and only this one) now.
    Restart {
        /// Pod name.
        pod: String,
        /// Its node id.
        node_id: i32,
    },
    /// Brokers are on an old revision, or may be, but none may restart now.
    Wait(RollWait),
}

/// The roll decision and the brokers still on an old revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollPlan {
    /// Node ids of the pods whose revision differs from their StatefulSet's update revision, in
    /// restart order (empty when unknown, see [`RollWait::StatusPending`]).
    pub outdated: Vec<i32>,
    /// The step to take.
    pub step: RollStep,
}

impl RollPlan {
    /// A roll is under way: some broker is known to run an old revision.
    pub fn rolling(&self) -> bool {
        !self.outdated.is_empty()
    }
}

/// Decides the next broker to restart. `sets` maps zone index to its StatefulSet; `voters` are
/// the controller voters' node ids and `active_controller` the quorum leader when known.
///
/// Restarts one outdated pod only when the revisions are known, every pod is Ready and not
/// terminating and every zone has all its pods. Order: non-voters, then voters, then the
/// active controller, each by lowest node id.
pub fn next_restart(
    pods: &[BrokerPod],
    sets: &BTreeMap<usize, ZoneSet>,
    voters: &[i32],
    active_controller: Option<i32>,
) -> RollPlan {
    let wait = |outdated: Vec<i32>, why| RollPlan {
        outdated,
        step: RollStep::Wait(why),
    };
    if let Some((zone, _)) = sets.iter().find(|(_, s)| s.update_revision.is_none()) {
        return wait(Vec::new(), RollWait::StatusPending { zone: *zone });
    }
    let mut outdated: Vec<&BrokerPod> = pods
        .iter()
        .filter(|p| {
            let wanted = sets.get(&p.zone).and_then(|s| s.update_revision.as_ref());
            matches!((wanted, &p.revision), (Some(w), Some(r)) if w != r)
        })
        .collect();
    outdated.sort_by_key(|p| {
        (
            active_controller == Some(p.node_id),
            voters.contains(&p.node_id),
            p.node_id,
        )
    });
    let ids: Vec<i32> = outdated.iter().map(|p| p.node_id).collect();
    let Some(first) = outdated.first() else {
        return RollPlan {
            outdated: ids,
            step: RollStep::Done,
        };
    };
    let mut not_ready: Vec<String> = pods
        .iter()
        .filter(|p| !p.ready || p.terminating)
        .map(|p| p.name.clone())
        .collect();
    if !not_ready.is_empty() {
        not_ready.sort();
        return wait(ids, RollWait::NotReady { pods: not_ready });
    }
    for (zone, set) in sets {
        let have = pods.iter().filter(|p| p.zone == *zone).count();
        if i32::try_from(have).unwrap_or(i32::MAX) < set.replicas {
            return wait(
                ids,
                RollWait::MissingPods {
                    zone: *zone,
                    have,
                    want: set.replicas,
                },
            );
        }
    }
    RollPlan {
        step: RollStep::Restart {
            pod: first.name.clone(),
            node_id: first.node_id,
        },
        outdated: ids,
    }
}

/// Label the StatefulSet controller puts on each pod: the revision it was created from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// A broker pod of `cluster` as the roll sees it; `None` for a pod whose name is not
/// `<cluster>-z<zone>-<node id>`.
pub fn broker_pod(cluster: &str, pod: &Pod) -> Option<BrokerPod> {
    let name = pod.metadata.name.clone()?;
    let (zone, node_id) = name
        .strip_prefix(cluster)?
        .strip_prefix("-z")?
        .split_once('-')?;
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    Some(BrokerPod {
        zone: zone.parse().ok()?,
        node_id: node_id.parse().ok()?,
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        revision: pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(REVISION_LABEL))
            .cloned(),
        name,
    })
}

/// A zone StatefulSet (as the API server returned it) as the roll sees it.
pub fn zone_set(set: &StatefulSet) -> ZoneSet {
    let generation = set.metadata.generation.unwrap_or(0);
    let status = set.status.as_ref();
    let observed = status.and_then(|s| s.observed_generation).unwrap_or(-1);
    ZoneSet {
        replicas: set.spec.replicas.unwrap_or(0),
        update_revision: status
            .filter(|_| observed >= generation)
            .and_then(|s| s.update_revision.clone()),
    }
}

/// Whether an existing StatefulSet still has the `RollingUpdate` strategy, which server-side
/// apply alone cannot switch to `OnDelete`: the API server defaulted `rollingUpdate` when the
/// StatefulSet was created, nobody owns that field so apply leaves it, and `OnDelete` with
/// `rollingUpdate` set is invalid. The controller first merge-patches it away.
pub fn needs_strategy_migration(existing: &StatefulSet) -> bool {
    existing
        .spec
        .update_strategy
        .as_ref()
        .is_some_and(|u| u.type_.as_deref() != Some("OnDelete") || u.rolling_update.is_some())
}

/// The merge patch switching a StatefulSet to `OnDelete` (pods are left as they are).
pub fn strategy_migration_patch() -> serde_json::Value {
    serde_json::json!({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": null}}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(node_id: i32, ready: bool, revision: &str) -> BrokerPod {
        let zone = usize::try_from(node_id / 1000).unwrap_or(0);
        BrokerPod {
            name: format!("kafka-z{zone}-{node_id}"),
            node_id,
            zone,
            ready,
            terminating: false,
            revision: Some(revision.to_owned()),
        }
    }

    fn sets(replicas: i32, revision: &str) -> BTreeMap<usize, ZoneSet> {
        (0..3)
            .map(|z| {
                (
                    z,
                    ZoneSet {
                        replicas,
                        update_revision: Some(revision.to_owned()),
                    },
                )
            })
            .collect()
    }

    const VOTERS: [i32; 3] = [0, 1000, 2000];

    fn six(revision: &str) -> Vec<BrokerPod> {
        [0, 1, 1000, 1001, 2000, 2001]
            .iter()
            .map(|id| pod(*id, true, revision))
            .collect()
    }

    #[test]
    fn nothing_to_do_when_every_pod_is_current() {
        let plan = next_restart(&six("new"), &sets(2, "new"), &VOTERS, None);
        assert_eq!(plan.step, RollStep::Done);
        assert!(!plan.rolling());
        // Not ready pods on the current revision are not a roll's business.
        let mut pods = six("new");
        pods[0].ready = false;
        assert_eq!(
            next_restart(&pods, &sets(2, "new"), &VOTERS, None).step,
            RollStep::Done
        );
    }

    #[test]
    fn one_broker_at_a_time_across_zones_non_voters_first() {
        let plan = next_restart(&six("old"), &sets(2, "new"), &VOTERS, None);
        // Six brokers in three zones are outdated, yet only one restarts: a non-voter.
        assert_eq!(
            plan.step,
            RollStep::Restart {
                pod: "kafka-z0-1".into(),
                node_id: 1
            }
        );
        assert_eq!(plan.outdated, [1, 1001, 2001, 0, 1000, 2000]);
        assert!(plan.rolling());
    }

    #[test]
    fn voters_last_and_the_active_controller_after_them() {
        let mut pods = six("new");
        for p in &mut pods {
            if VOTERS.contains(&p.node_id) {
                p.revision = Some("old".into());
            }
        }
        let plan = next_restart(&pods, &sets(2, "new"), &VOTERS, Some(0));
        assert_eq!(
            plan.step,
            RollStep::Restart {
                pod: "kafka-z1-1000".into(),
                node_id: 1000
            }
        );
        assert_eq!(plan.outdated, [1000, 2000, 0]);
        // Unknown leader: lowest ordinal among the voters.
        let plan = next_restart(&pods, &sets(2, "new"), &VOTERS, None);
        assert_eq!(plan.outdated, [0, 1000, 2000]);
    }

    #[test]
    fn never_restarts_while_a_pod_is_not_ready() {
        let mut pods = six("old");
        // The broker restarted last is back on the new revision but not yet in every ISR.
        pods[0] = pod(0, false, "new");
        let plan = next_restart(&pods, &sets(2, "new"), &VOTERS, None);
        assert_eq!(
            plan.step,
            RollStep::Wait(RollWait::NotReady {
                pods: vec!["kafka-z0-0".into()]
            })
        );
        assert_eq!(plan.outdated.len(), 5);
        // A terminating pod counts as not ready even while its Ready condition still holds.
        let mut pods = six("old");
        pods[3].terminating = true;
        assert!(matches!(
            next_restart(&pods, &sets(2, "new"), &VOTERS, None).step,
            RollStep::Wait(RollWait::NotReady { .. })
        ));
    }

    #[test]
    fn waits_for_a_deleted_pod_to_be_recreated() {
        let mut pods = six("old");
        pods.retain(|p| p.node_id != 1001);
        let plan = next_restart(&pods, &sets(2, "new"), &VOTERS, None);
        assert_eq!(
            plan.step,
            RollStep::Wait(RollWait::MissingPods {
                zone: 1,
                have: 1,
                want: 2
            })
        );
    }

    #[test]
    fn waits_until_statefulset_status_catches_up() {
        let mut s = sets(2, "new");
        if let Some(z) = s.get_mut(&2) {
            z.update_revision = None;
        }
        let plan = next_restart(&six("old"), &s, &VOTERS, None);
        assert_eq!(
            plan.step,
            RollStep::Wait(RollWait::StatusPending { zone: 2 })
        );
        assert!(!plan.rolling(), "outdated is unknown");
    }

    #[test]
    fn each_zone_compares_with_its_own_revision() {
        // Revision hashes differ per StatefulSet; zone 1's pods match zone 1's revision.
        let mut s = sets(2, "z0-rev");
        for (zone, rev) in [(1, "z1-rev"), (2, "z2-rev")] {
            if let Some(z) = s.get_mut(&zone) {
                z.update_revision = Some(rev.into());
            }
        }
        let mut pods = six("z0-rev");
        for p in &mut pods {
            p.revision = Some(format!("z{}-rev", p.zone));
        }
        assert_eq!(next_restart(&pods, &s, &VOTERS, None).step, RollStep::Done);
        // A pod without a revision label (not created by a StatefulSet) is never restarted.
        pods[1].revision = None;
        assert_eq!(next_restart(&pods, &s, &VOTERS, None).step, RollStep::Done);
    }

    #[test]
    fn a_full_roll_restarts_each_broker_once_in_order() {
        // Simulates the reconciles of a roll: restart, pod comes back on the new revision and
        // becomes ready, next restart.
        let mut pods = six("old");
        let mut order = Vec::new();
        for _ in 0..10 {
            let plan = next_restart(&pods, &sets(2, "new"), &VOTERS, None);
            match plan.step {
                RollStep::Restart { node_id, .. } => {
                    order.push(node_id);
                    if let Some(p) = pods.iter_mut().find(|p| p.node_id == node_id) {
                        p.revision = Some("new".into());
                    }
                }
                RollStep::Done => break,
                RollStep::Wait(w) => panic!("unexpected wait: {w}"),
            }
        }
        assert_eq!(order, [1, 1001, 2001, 0, 1000, 2000]);
    }

    #[test]
    fn pods_and_statefulsets_from_the_api() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kafka-z1-1003", "labels": {"controller-revision-hash": "kafka-z1-abc"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("pod");
        assert_eq!(
            broker_pod("kafka", &pod),
            Some(BrokerPod {
                name: "kafka-z1-1003".into(),
                node_id: 1003,
                zone: 1,
                ready: true,
                terminating: false,
                revision: Some("kafka-z1-abc".into()),
            })
        );
        // Another cluster whose name starts the same way is not ours.
        assert_eq!(broker_pod("kafk", &pod), None);
        let pending: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kafka-z0-0", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]}
        }))
        .expect("pod");
        let p = broker_pod("kafka", &pending).expect("parsed");
        assert!(!p.ready && p.terminating && p.revision.is_none());

        let set = |generation: i64, observed: i64| -> StatefulSet {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "kafka-z0", "generation": generation},
                "spec": {"replicas": 2, "serviceName": "s", "selector": {}, "template": {},
                         "updateStrategy": {"type": "OnDelete"}},
                "status": {"replicas": 2, "observedGeneration": observed, "updateRevision": "r2"}
            }))
            .expect("sts")
        };
        assert_eq!(
            zone_set(&set(3, 3)),
            ZoneSet {
                replicas: 2,
                update_revision: Some("r2".into())
            }
        );
        assert_eq!(zone_set(&set(4, 3)).update_revision, None);
        assert!(!needs_strategy_migration(&set(1, 1)));
        let rolling: StatefulSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kafka-z0"},
            "spec": {"serviceName": "s", "selector": {}, "template": {},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}}
        }))
        .expect("sts");
        assert!(needs_strategy_migration(&rolling));
        assert_eq!(
            strategy_migration_patch()["spec"]["updateStrategy"]["rollingUpdate"],
            serde_json::Value::Null
        );
    }
}
