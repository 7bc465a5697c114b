//! The failover of a linked Mirror as pure functions: what the operator does this pass
//! ([`plan`], from `spec.failover`, the recorded status and the failover Job found) and what
//! the Job's status says ([`job_state`]). The Job itself is built in `build`, created once in
//! `controller`, and reported by `status`.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use strait_crds::mirror::FailoverStatus;

/// `status.failover.state` values.
pub mod state {
    /// `spec.failover` on a Mirror that cannot fail over (not linked mode).
    pub const REFUSED: &str = "Refused";
    /// Asked for; the Job is not created yet.
    pub const PENDING: &str = "Pending";
    /// The Job runs.
    pub const IN_PROGRESS: &str = "InProgress";
    /// The Job succeeded: the mirror topics are writable, mirroring stays stopped.
    pub const COMPLETED: &str = "Completed";
    /// The Job failed for good.
    pub const FAILED: &str = "Failed";
    /// `spec.failover` set back to false before the failover completed.
    pub const WITHDRAWN: &str = "Withdrawn";
}

/// Retries of the failover pod before the Job fails for good.
pub const BACKOFF_LIMIT: i32 = 6;
/// The longest failure message kept in the status (the tail of the pod's log).
const MAX_MESSAGE: usize = 1024;

/// Name of a Mirror's failover Job.
pub fn job_name(mirror: &str) -> String {
    format!("{mirror}-failover")
}

/// What the failover Job's status says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// No Job.
    Absent,
    /// Not finished: pods running now and attempts failed so far, with the last failure.
    Running {
        /// Pods running.
        active: i32,
        /// Attempts that failed.
        failed: i32,
        /// The last failed attempt's message.
        last_failure: Option<String>,
    },
    /// Succeeded, at the Job's completion time.
    Succeeded {
        /// `status.completionTime`.
        at: Option<Time>,
    },
    /// Failed for good (backoff limit reached, deadline exceeded), and why.
    Failed {
        /// The Job's reason and the last pod's message.
        reason: String,
    },
}

/// The state of `job`; `pod_message` is the last failed attempt's termination message (its
/// log's tail), read from the Job's pods when some attempt failed.
pub fn job_state(job: Option<&Job>, pod_message: Option<&str>) -> JobState {
    let Some(job) = job else {
        return JobState::Absent;
    };
    let status = job.status.clone().unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();
    let condition = |kind: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == kind && c.status == "True")
    };
    let last_failure = pod_message
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(tail);
    if condition("Complete").is_some() || status.succeeded.unwrap_or(0) > 0 {
        return JobState::Succeeded {
            at: status.completion_time,
        };
    }
    if let Some(failed) = condition("Failed") {
        let why = [failed.reason.as_deref(), failed.message.as_deref()]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        let reason = match last_failure {
            Some(m) => format!("{why}; last attempt: {m}"),
            None => why,
        };
        return JobState::Failed { reason };
    }
    JobState::Running {
        active: status.active.unwrap_or(0),
        failed: status.failed.unwrap_or(0),
        last_failure,
    }
}

/// The termination message of the failover container that finished last with a non-zero exit
/// code among `pods` (the Job's), if any.
pub fn last_failure(pods: &[Pod]) -> Option<String> {
    pods.iter()
        .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref())
        .filter(|t| t.exit_code != 0)
        .max_by_key(|t| t.finished_at.as_ref().map(|f| f.0))
        .map(|t| {
            let message = t.message.as_deref().unwrap_or_default().trim();
            if message.is_empty() {
                format!("exit code {}", t.exit_code)
            } else {
                format!("exit code {}: {message}", t.exit_code)
            }
        })
}

/// At most [`MAX_MESSAGE`] bytes, the end kept (where the error is), cut at a character.
fn tail(s: &str) -> String {
    if s.len() <= MAX_MESSAGE {
        return s.to_owned();
    }
    let mut start = s.len() - MAX_MESSAGE;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &s[start..])
}

/// What the operator does with the mirror Deployment and the failover Job this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Mirror: the Deployment runs `spec.replicas`, no Job.
    Mirror,
    /// Mirror again after a failover withdrawn before it completed: its Job is deleted.
    Withdraw,
    /// Fail over: the Deployment at 0 replicas, the Job created if absent (never changed).
    FailOver,
    /// Failed over (now or earlier): the Deployment stays at 0 for good.
    FailedOver {
        /// When the failover completed, if known.
        at: Option<Time>,
    },
}

impl Plan {
    /// Whether the mirror processes run.
    pub fn mirrors(&self) -> bool {
        matches!(self, Plan::Mirror | Plan::Withdraw)
    }
}

/// The plan for a Mirror whose `spec.failover` is `requested`, whose status recorded
/// `previous`, and whose failover Job is in state `job`. A completed failover (recorded, or a
/// Job that succeeded) is permanent whatever the spec says now: the mirror topics took writes.
pub fn plan(requested: bool, previous: Option<&FailoverStatus>, job: &JobState) -> Plan {
    if let Some(p) = previous.filter(|p| p.state.as_deref() == Some(state::COMPLETED)) {
        return Plan::FailedOver {
            at: p.completed_at.clone(),
        };
    }
    if let JobState::Succeeded { at } = job {
        return Plan::FailedOver { at: at.clone() };
    }
    match (requested, job) {
        (true, _) => Plan::FailOver,
        (false, JobState::Absent) => Plan::Mirror,
        (false, _) => Plan::Withdraw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(status: serde_json::Value) -> Job {
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "dr-failover", "namespace": "ns"},
            "status": status
        }))
        .unwrap_or_else(|e| panic!("job: {e}"))
    }

    fn completed() -> FailoverStatus {
        FailoverStatus {
            requested: true,
            state: Some(state::COMPLETED.into()),
            completed_at: Some(Time(
                k8s_openapi::jiff::Timestamp::from_second(5).unwrap_or_default(),
            )),
            message: None,
        }
    }

    #[test]
    fn job_status_maps_to_running_succeeded_and_failed() {
        assert_eq!(job_state(None, None), JobState::Absent);
        assert_eq!(
            job_state(Some(&job(json!({}))), None),
            JobState::Running {
                active: 0,
                failed: 0,
                last_failure: None
            }
        );
        assert_eq!(
            job_state(
                Some(&job(json!({"active": 1, "failed": 2}))),
                Some("exit code 1: target unreachable\n")
            ),
            JobState::Running {
                active: 1,
                failed: 2,
                last_failure: Some("exit code 1: target unreachable".into())
            }
        );
        let done = job(
            json!({"succeeded": 1, "completionTime": "2026-12-07T20:00:00Z",
            "conditions": [{"type": "Complete", "status": "True"}]}),
        );
        assert_eq!(
            job_state(Some(&done), None),
            JobState::Succeeded {
                at: Some(Time("2026-12-07T20:00:00Z".parse().unwrap_or_default()))
            }
        );
        let failed = job(
            json!({"failed": 7, "conditions": [{"type": "Failed", "status": "True",
            "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}),
        );
        assert_eq!(
            job_state(Some(&failed), Some("exit code 1: orders: not authorized")),
            JobState::Failed {
                reason: "BackoffLimitExceeded: Job has reached the specified backoff limit; \
                         last attempt: exit code 1: orders: not authorized"
                    .into()
            }
        );
        // A condition that is not True does not count.
        let not_yet =
            job(json!({"active": 1, "conditions": [{"type": "Failed", "status": "False"}]}));
        assert!(matches!(
            job_state(Some(&not_yet), None),
            JobState::Running { active: 1, .. }
        ));
    }

    #[test]
    fn the_last_failed_pod_gives_the_message_and_long_ones_keep_their_end() {
        let pod = |exit: i32, at: &str, message: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": at},
                "status": {"containerStatuses": [{"name": "failover", "image": "i", "imageID": "",
                    "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": exit, "finishedAt": at, "message": message}}}]}}))
            .unwrap_or_else(|e| panic!("pod: {e}"))
        };
        let pods = [
            pod(1, "2026-12-07T20:00:00Z", "first"),
            pod(2, "2026-12-07T20:01:00Z", "second"),
            pod(0, "2026-12-07T20:02:00Z", "ok"),
        ];
        assert_eq!(last_failure(&pods).as_deref(), Some("exit code 2: second"));
        assert_eq!(last_failure(&pods[2..]), None);
        let long = format!("{}END", "x".repeat(5000));
        let t = tail(&long);
        assert!(
            t.ends_with("END") && t.len() <= MAX_MESSAGE + 3,
            "{}",
            t.len()
        );
    }

    #[test]
    fn plans_follow_the_request_and_a_completed_failover_is_permanent() {
        let absent = JobState::Absent;
        let running = JobState::Running {
            active: 1,
            failed: 0,
            last_failure: None,
        };
        assert_eq!(plan(false, None, &absent), Plan::Mirror);
        assert_eq!(plan(true, None, &absent), Plan::FailOver);
        assert_eq!(plan(true, None, &running), Plan::FailOver);
        let failed = JobState::Failed { reason: "x".into() };
        assert_eq!(plan(true, None, &failed), Plan::FailOver);
        // Withdrawn before completion: the Job goes, mirroring resumes.
        assert_eq!(plan(false, None, &running), Plan::Withdraw);
        assert_eq!(plan(false, None, &failed), Plan::Withdraw);
        // Completed: recorded or seen, whatever spec.failover says now.
        let at = completed().completed_at;
        for requested in [true, false] {
            for job in [&absent, &running] {
                assert_eq!(
                    plan(requested, Some(&completed()), job),
                    Plan::FailedOver { at: at.clone() }
                );
            }
        }
        let done = JobState::Succeeded { at: None };
        assert_eq!(plan(false, None, &done), Plan::FailedOver { at: None });
        assert!(Plan::Mirror.mirrors() && Plan::Withdraw.mirrors());
        assert!(!Plan::FailOver.mirrors() && !Plan::FailedOver { at: None }.mirrors());
    }
}
