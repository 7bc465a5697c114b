//! The Mirror's status as a pure function of the previous status and how the pass went: the
//! conditions `Ready`, `Reconciling` and `Failed`, `observedGeneration`, the configuration hash
//! running, per-topic lag with the time it was measured, and the failover request.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use strait_crds::mirror::{FailoverStatus, MirrorStatus, MirroredTopic};

use crate::conditions::{Cond, merge};
use crate::error::Error;
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
        Pass::Applied(a) => applied(a),
    };
    let mut out = MirrorStatus {
        conditions: merge(&previous.conditions, &conditions, generation, now),
        observed_generation: generation,
        source_alias: Some(source_alias.to_owned()),
        failover: failover(previous.failover.as_ref(), failover_requested, pass),
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

/// `status.failover`: recorded once asked for (refused until linked mode exists), kept after.
fn failover(
    previous: Option<&FailoverStatus>,
    requested: bool,
    pass: Pass<'_>,
) -> Option<FailoverStatus> {
    if !requested {
        return previous.map(|p| FailoverStatus {
            requested: false,
            ..p.clone()
        });
    }
    let state = match pass {
        Pass::Refused(r) if r.reason == "FailoverNotSupported" || !r.transient => "Refused",
        _ => "Pending",
    };
    Some(FailoverStatus {
        requested: true,
        completed_at: previous.and_then(|p| p.completed_at.clone()),
        state: Some(state.to_owned()),
    })
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
        }
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
}
