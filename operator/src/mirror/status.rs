//! The Mirror's status as a pure function of the previous status and how the pass went: the
//! conditions `Ready`, `Reconciling` and `Failed`, `observedGeneration`, the configuration hash
//! running, per-topic lag with the time it was measured, and the failover (its state from the
//! pass's plan and the failover Job's status; a completed one is kept for good).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use strait_crds::mirror::{FailoverStatus, MirrorStatus, MirroredTopic};

use crate::conditions::{Cond, merge};
use crate::error::Error;
use crate::mirror::failover::{JobState, Plan, state};
use crate::mirror::lag::MAX_STATUS_TOPICS;
use crate::mirror::validate::Refusal;
use crate::target_cluster;

/// What a pass that applied the Deployment saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Hash of the configuration applied.
    pub config_hash: String,
    /// Mirror processes wanted.
    pub replicas: i32,
    /// Mirror processes ready, as the Deployment reports.
    pub ready: i32,
    /// The lag of every mirrored topic, or why it could not be measured.
    pub lag: Result<Vec<MirroredTopic>, String>,
    /// A step that failed without stopping the mirror (the PodMonitor): its message.
    pub warning: Option<String>,
    /// What the pass did about the failover.
    pub plan: Plan,
    /// The failover Job as the pass left it (`Running` once created).
    pub job: JobState,
}

/// How one pass went.
#[derive(Clone, Copy, Debug)]
pub enum Pass<'a> {
    /// The spec is refused, or waits for a Cluster.
    Refused(&'a Refusal),
    /// The objects were applied.
    Applied(&'a Applied),
    /// A Kubernetes call failed; the pass is retried.
    Failed(&'a Error),
}

/// The status to write after `pass`; fields the pass did not observe keep their values.
pub fn status(
    previous: &MirrorStatus,
    generation: Option<i64>,
    source_alias: &str,
    failover_requested: bool,
    pass: Pass<'_>,
    now: Timestamp,
) -> MirrorStatus {
    let conditions: Vec<Cond> = match pass {
        Pass::Refused(r) => vec![
            Cond::new("Ready", false, r.reason, r.message.clone()),
            if r.transient {
                Cond::new(
                    "Reconciling",
                    true,
                    r.reason,
                    "waiting, checked again every minute",
                )
            } else {
                Cond::new("Reconciling", false, r.reason, "waiting for a spec change")
            },
            Cond::new("Failed", !r.transient, r.reason, r.message.clone()),
        ],
        Pass::Failed(error) => {
            let [ready, reconciling] = target_cluster::failed(error);
            let failed = Cond::new("Failed", true, ready.reason, ready.message.clone());
            vec![ready, reconciling, failed]
        }
        Pass::Applied(a) => match failing_over(a, failover_requested) {
            Some(conditions) => conditions,
            None => applied(a),
        },
    };
    let mut out = MirrorStatus {
        conditions: merge(&previous.conditions, &conditions, generation, now),
        observed_generation: generation,
        source_alias: Some(source_alias.to_owned()),
        failover: failover(previous.failover.as_ref(), failover_requested, pass, now),
        ..previous.clone()
    };
    if let Pass::Applied(a) = pass {
        out.config_hash = Some(a.config_hash.clone());
        if let Ok(topics) = &a.lag {
            out.topics = topics.iter().take(MAX_STATUS_TOPICS).cloned().collect();
            out.last_sync_time = Some(Time(now));
        }
    }
    out
}

/// The conditions of a pass that applied the Deployment.
fn applied(a: &Applied) -> Vec<Cond> {
    let mut notes = Vec::new();
    match &a.lag {
        Ok(topics) => {
            let total: i64 = topics.iter().map(|t| t.lag_records).sum();
            notes.push(format!(
                "{} topics mirrored, {total} records behind",
                topics.len()
            ));
        }
        Err(why) => notes.push(format!("lag not measured: {why}")),
    }
    if let Some(w) = &a.warning {
        notes.push(w.clone());
    }
    let notes = notes.join("; ");
    let ready = a.replicas > 0 && a.ready >= a.replicas;
    let progress = format!("{}/{} mirror processes ready", a.ready, a.replicas);
    if ready {
        vec![
            Cond::new("Ready", true, "Mirroring", format!("{progress}; {notes}")),
            Cond::new(
                "Reconciling",
                false,
                "Reconciled",
                "the Deployment is up to date",
            ),
            Cond::new("Failed", false, "Mirroring", notes),
        ]
    } else {
        vec![
            Cond::new("Ready", false, "Deploying", format!("{progress}; {notes}")),
            Cond::new("Reconciling", true, "Deploying", progress),
            Cond::new("Failed", false, "Deploying", notes),
        ]
    }
}

/// The conditions of a pass that stopped mirroring for a failover, `None` when mirroring.
fn failing_over(a: &Applied, requested: bool) -> Option<Vec<Cond>> {
    let conditions = match (&a.plan, &a.job) {
        (Plan::Mirror | Plan::Withdraw, _) => return None,
        (Plan::FailedOver { .. }, _) if !requested => {
            let why = "the failover completed: the mirror topics are writable and mirroring \
                       stays stopped (failover is permanent); to mirror back, create a Mirror in \
                       the other direction";
            vec![
                Cond::new("Ready", false, "FailoverPermanent", why),
                Cond::new(
                    "Reconciling",
                    false,
                    "FailoverPermanent",
                    "waiting for a spec change",
                ),
                Cond::new("Failed", true, "FailoverPermanent", why),
            ]
        }
        (Plan::FailedOver { .. }, _) => {
            let done = "failover completed: the mirror topics are writable; mirroring stopped";
            vec![
                Cond::new("Ready", true, "FailedOver", done),
                Cond::new("Reconciling", false, "FailedOver", done),
                Cond::new("Failed", false, "FailedOver", done),
            ]
        }
        (Plan::FailOver, JobState::Failed { reason }) => {
            let why = format!("the failover Job failed: {reason}");
            vec![
                Cond::new("Ready", false, "FailoverFailed", why.clone()),
                Cond::new(
                    "Reconciling",
                    false,
                    "FailoverFailed",
                    "delete the failover Job to retry, or set failover to false to mirror again",
                ),
                Cond::new("Failed", true, "FailoverFailed", why),
            ]
        }
        (Plan::FailOver, job) => {
            let progress = progress(job);
            vec![
                Cond::new("Ready", false, "FailingOver", progress.clone()),
                Cond::new("Reconciling", true, "FailingOver", progress),
                Cond::new(
                    "Failed",
                    false,
                    "FailingOver",
                    "mirroring stopped for the failover",
                ),
            ]
        }
    };
    Some(conditions)
}

/// How a failover not yet finished stands.
fn progress(job: &JobState) -> String {
    match job {
        JobState::Running {
            active,
            failed,
            last_failure,
        } => {
            let mut m = format!("failover Job running ({active} pods active");
            if *failed > 0 {
                m.push_str(&format!(", {failed} attempts failed"));
                if let Some(last) = last_failure {
                    m.push_str(&format!(", last: {last}"));
                }
            }
            m.push(')');
            m
        }
        _ => "failover Job not created yet".to_owned(),
    }
}

/// `status.failover`: recorded once asked for, from the pass's plan and the Job; a completed
/// failover is kept whatever happens next.
fn failover(
    previous: Option<&FailoverStatus>,
    requested: bool,
    pass: Pass<'_>,
    now: Timestamp,
) -> Option<FailoverStatus> {
    let kept = |p: &FailoverStatus| FailoverStatus {
        requested,
        ..p.clone()
    };
    if let Some(p) = previous.filter(|p| p.state.as_deref() == Some(state::COMPLETED)) {
        return Some(kept(p));
    }
    let make = |state: &str, message: Option<String>| {
        Some(FailoverStatus {
            requested,
            completed_at: None,
            state: Some(state.to_owned()),
            message,
        })
    };
    match pass {
        Pass::Applied(a) => match (&a.plan, &a.job) {
            (Plan::Mirror, _) => previous.map(kept),
            (Plan::Withdraw, _) => make(
                state::WITHDRAWN,
                Some(
                    "failover withdrawn before it completed: its Job was deleted and mirroring \
                     resumed (topics it already failed over stay writable and are no longer \
                     mirrored)"
                        .to_owned(),
                ),
            ),
            (Plan::FailedOver { at }, _) => Some(FailoverStatus {
                requested,
                completed_at: Some(at.clone().unwrap_or(Time(now))),
                state: Some(state::COMPLETED.to_owned()),
                message: Some("the mirror topics are writable; mirroring stopped".to_owned()),
            }),
            (Plan::FailOver, JobState::Failed { reason }) => {
                make(state::FAILED, Some(reason.clone()))
            }
            (Plan::FailOver, JobState::Absent) => make(state::PENDING, Some(progress(&a.job))),
            (Plan::FailOver, job) => make(state::IN_PROGRESS, Some(progress(job))),
        },
        _ if !requested => previous.map(kept),
        Pass::Refused(r) if r.reason == "FailoverNotSupported" || !r.transient => {
            make(state::REFUSED, Some(r.message.clone()))
        }
        // Waiting or a failed call: a failover under way keeps its state.
        _ => match previous.filter(|p| p.state.as_deref() != Some(state::REFUSED)) {
            Some(p) if p.requested => Some(kept(p)),
            _ => make(
                state::PENDING,
                Some("failover Job not created yet".to_owned()),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Timestamp {
        Timestamp::from_second(1_000).expect("t0")
    }

    fn kind<'a>(s: &'a MirrorStatus, kind: &str) -> (&'a str, &'a str) {
        s.conditions
            .iter()
            .find(|c| c.type_ == kind)
            .map_or(("", ""), |c| (c.status.as_str(), c.reason.as_str()))
    }

    fn applied(ready: i32, lag: Result<Vec<MirroredTopic>, String>) -> Applied {
        Applied {
            config_hash: "h1".into(),
            replicas: 2,
            ready,
            lag,
            warning: None,
            plan: Plan::Mirror,
            job: JobState::Absent,
        }
    }

    fn failing(plan: Plan, job: JobState) -> Applied {
        Applied {
            replicas: 0,
            ready: 0,
            plan,
            job,
            ..applied(0, Err("mirroring stopped for the failover".into()))
        }
    }

    fn pass(previous: &MirrorStatus, requested: bool, a: &Applied, at: i64) -> MirrorStatus {
        let now = Timestamp::from_second(at).expect("now");
        status(previous, Some(5), "east", requested, Pass::Applied(a), now)
    }

    fn state_of(s: &MirrorStatus) -> (bool, &str) {
        s.failover.as_ref().map_or((false, "none"), |f| {
            (f.requested, f.state.as_deref().unwrap_or(""))
        })
    }

    fn topic(lag: i64) -> MirroredTopic {
        MirroredTopic {
            name: "orders".into(),
            target_topic: "east.orders".into(),
            lag_records: lag,
        }
    }

    #[test]
    fn ready_when_every_process_is_and_lag_recorded_with_its_time() {
        let a = applied(2, Ok(vec![topic(7)]));
        let s = status(
            &MirrorStatus::default(),
            Some(3),
            "east",
            false,
            Pass::Applied(&a),
            t0(),
        );
        assert_eq!(kind(&s, "Ready"), ("True", "Mirroring"));
        assert_eq!(kind(&s, "Failed"), ("False", "Mirroring"));
        assert_eq!(s.topics, vec![topic(7)]);
        assert_eq!(s.last_sync_time, Some(Time(t0())));
        assert_eq!(s.config_hash.as_deref(), Some("h1"));
        assert_eq!(s.observed_generation, Some(3));
        assert!(s.failover.is_none());
        // Lag that cannot be measured keeps the last measurement and says why.
        let later = Timestamp::from_second(2_000).expect("t1");
        let b = applied(1, Err("source unreachable".into()));
        let s = status(&s, Some(3), "east", false, Pass::Applied(&b), later);
        assert_eq!(kind(&s, "Ready"), ("False", "Deploying"));
        assert_eq!(
            (s.topics.len(), s.last_sync_time.clone()),
            (1, Some(Time(t0())))
        );
        assert!(
            s.conditions[0]
                .message
                .contains("lag not measured: source unreachable")
        );
    }

    #[test]
    fn refusals_and_failover_requests_are_recorded() {
        let r = Refusal {
            reason: "FailoverNotSupported",
            message: "only linked".into(),
            transient: false,
        };
        let s = status(
            &MirrorStatus::default(),
            Some(1),
            "east",
            true,
            Pass::Refused(&r),
            t0(),
        );
        assert_eq!(kind(&s, "Ready"), ("False", "FailoverNotSupported"));
        assert_eq!(kind(&s, "Reconciling"), ("False", "FailoverNotSupported"));
        assert_eq!(kind(&s, "Failed"), ("True", "FailoverNotSupported"));
        let f = s.failover.clone().unwrap_or_default();
        assert_eq!((f.requested, f.state.as_deref()), (true, Some("Refused")));
        let waiting = Refusal {
            reason: "TargetNotReady",
            message: "x".into(),
            transient: true,
        };
        let s = status(&s, Some(2), "east", false, Pass::Refused(&waiting), t0());
        assert_eq!(kind(&s, "Reconciling"), ("True", "TargetNotReady"));
        assert_eq!(kind(&s, "Failed"), ("False", "TargetNotReady"));
        assert_eq!(s.failover.map(|f| f.requested), Some(false));
    }

    #[test]
    fn a_failover_goes_pending_in_progress_completed_and_stays_completed() {
        let mirroring = pass(
            &MirrorStatus::default(),
            false,
            &applied(2, Ok(vec![topic(3)])),
            100,
        );
        assert_eq!(state_of(&mirroring), (false, "none"));
        // Asked for, target not ready yet: Pending.
        let waiting = Refusal {
            reason: "TargetNotReady",
            message: "x".into(),
            transient: true,
        };
        let s = status(
            &mirroring,
            Some(6),
            "east",
            true,
            Pass::Refused(&waiting),
            t0(),
        );
        assert_eq!(state_of(&s), (true, state::PENDING));
        // The Job created and running; then one attempt failed.
        let running = JobState::Running {
            active: 1,
            failed: 0,
            last_failure: None,
        };
        let s = pass(&s, true, &failing(Plan::FailOver, running), 200);
        assert_eq!(state_of(&s), (true, state::IN_PROGRESS));
        assert_eq!(kind(&s, "Ready"), ("False", "FailingOver"));
        assert_eq!(kind(&s, "Reconciling"), ("True", "FailingOver"));
        assert_eq!(kind(&s, "Failed"), ("False", "FailingOver"));
        // The last lag measurement is kept, not replaced by the stopped mirror's.
        assert_eq!(s.topics, vec![topic(3)]);
        let retrying = JobState::Running {
            active: 1,
            failed: 1,
            last_failure: Some("exit code 1: target unreachable".into()),
        };
        let s = pass(&s, true, &failing(Plan::FailOver, retrying), 250);
        let message = s.failover.as_ref().and_then(|f| f.message.clone());
        assert_eq!(
            message.as_deref(),
            Some(
                "failover Job running (1 pods active, 1 attempts failed, last: exit code 1: target unreachable)"
            )
        );
        // A Kubernetes call failing mid-way keeps the state.
        let error = Error::MissingField("x");
        let s = status(&s, Some(6), "east", true, Pass::Failed(&error), t0());
        assert_eq!(state_of(&s), (true, state::IN_PROGRESS));
        // The Job succeeded.
        let done_at = Time(Timestamp::from_second(300).expect("t"));
        let s = pass(
            &s,
            true,
            &failing(
                Plan::FailedOver {
                    at: Some(done_at.clone()),
                },
                JobState::Succeeded {
                    at: Some(done_at.clone()),
                },
            ),
            310,
        );
        assert_eq!(state_of(&s), (true, state::COMPLETED));
        assert_eq!(
            s.failover.as_ref().and_then(|f| f.completed_at.clone()),
            Some(done_at.clone())
        );
        assert_eq!(kind(&s, "Ready"), ("True", "FailedOver"));
        assert_eq!(kind(&s, "Failed"), ("False", "FailedOver"));
        // spec.failover back to false: still completed, and the status says it is permanent.
        let s = pass(
            &s,
            false,
            &failing(
                Plan::FailedOver {
                    at: Some(done_at.clone()),
                },
                JobState::Absent,
            ),
            400,
        );
        assert_eq!(state_of(&s), (false, state::COMPLETED));
        assert_eq!(
            s.failover.as_ref().and_then(|f| f.completed_at.clone()),
            Some(done_at.clone())
        );
        assert_eq!(kind(&s, "Ready"), ("False", "FailoverPermanent"));
        assert_eq!(kind(&s, "Reconciling"), ("False", "FailoverPermanent"));
        assert!(
            s.conditions[0]
                .message
                .contains("create a Mirror in the other direction"),
            "{:?}",
            s.conditions
        );
        // Nothing a later pass reports undoes it: a refusal or a failed call.
        let refused = Refusal {
            reason: "ConfigKeyReserved",
            message: "x".into(),
            transient: false,
        };
        let s = status(&s, Some(7), "east", true, Pass::Refused(&refused), t0());
        assert_eq!(state_of(&s), (true, state::COMPLETED));
        let s = status(&s, Some(7), "east", false, Pass::Failed(&error), t0());
        assert_eq!(state_of(&s), (false, state::COMPLETED));
        assert_eq!(s.failover.and_then(|f| f.completed_at), Some(done_at));
    }

    #[test]
    fn a_failed_failover_says_why_and_a_withdrawn_one_mirrors_again() {
        let failed = JobState::Failed {
            reason: "BackoffLimitExceeded: Job has reached the specified backoff limit; last \
                     attempt: exit code 1: topic orders: TOPIC_AUTHORIZATION_FAILED"
                .into(),
        };
        let s = pass(
            &MirrorStatus::default(),
            true,
            &failing(Plan::FailOver, failed),
            100,
        );
        assert_eq!(state_of(&s), (true, state::FAILED));
        assert!(
            s.failover
                .as_ref()
                .and_then(|f| f.message.as_deref())
                .is_some_and(|m| m.contains("TOPIC_AUTHORIZATION_FAILED")),
            "{s:?}"
        );
        assert_eq!(kind(&s, "Ready"), ("False", "FailoverFailed"));
        assert_eq!(kind(&s, "Failed"), ("True", "FailoverFailed"));
        assert_eq!(kind(&s, "Reconciling"), ("False", "FailoverFailed"));
        assert!(
            s.failover
                .as_ref()
                .is_some_and(|f| f.completed_at.is_none())
        );
        // Withdrawn: the Job deleted, mirroring again.
        let mut back = applied(2, Ok(vec![topic(0)]));
        back.plan = Plan::Withdraw;
        let s = pass(&s, false, &back, 200);
        assert_eq!(state_of(&s), (false, state::WITHDRAWN));
        assert_eq!(kind(&s, "Ready"), ("True", "Mirroring"));
        // Later passes keep the record of it.
        let s = pass(&s, false, &applied(2, Ok(vec![topic(0)])), 300);
        assert_eq!(state_of(&s), (false, state::WITHDRAWN));
    }
}
