//! Status conditions: building `metav1.Condition`s that keep their transition time while their
//! status does not change.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// A condition to set: type, status, reason (CamelCase) and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    /// Condition type, e.g. `Ready`.
    pub kind: &'static str,
    /// True or False.
    pub status: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl Cond {
    /// A new condition.
    pub fn new(
        kind: &'static str,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Cond {
            kind,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// The conditions to write: `wanted`, each keeping `lastTransitionTime` from `previous` when
/// its status is unchanged.
pub fn merge(
    previous: &[Condition],
    wanted: &[Cond],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    wanted
        .iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" }.to_owned();
            let since = previous
                .iter()
                .find(|p| p.type_ == c.kind && p.status == status)
                .map(|p| p.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: c.kind.to_owned(),
                status,
                reason: c.reason.to_owned(),
                message: c.message.clone(),
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

/// `written` plus each condition of `previous` whose type `written` lacks, unchanged: what a
/// failed pass did not get to evaluate stays as last observed.
pub fn keep_unset(previous: &[Condition], mut written: Vec<Condition>) -> Vec<Condition> {
    let kept: Vec<Condition> = previous
        .iter()
        .filter(|p| !written.iter().any(|w| w.type_ == p.type_))
        .cloned()
        .collect();
    written.extend(kept);
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_kept_while_status_holds() {
        let t0 = Timestamp::from_second(1_000).expect("t0");
        let t1 = Timestamp::from_second(2_000).expect("t1");
        let first = merge(
            &[],
            &[Cond::new("Ready", false, "Creating", "x")],
            Some(1),
            t0,
        );
        let same = merge(
            &first,
            &[Cond::new("Ready", false, "Waiting", "y")],
            Some(2),
            t1,
        );
        assert_eq!(same[0].last_transition_time, Time(t0));
        assert_eq!(same[0].reason, "Waiting");
        let flipped = merge(&same, &[Cond::new("Ready", true, "Ready", "")], Some(2), t1);
        assert_eq!(flipped[0].last_transition_time, Time(t1));
        assert_eq!(flipped[0].status, "True");
    }

    #[test]
    fn conditions_not_written_are_kept_as_they_were() {
        let t0 = Timestamp::from_second(1_000).expect("t0");
        let before = merge(
            &[],
            &[
                Cond::new("Ready", true, "AllBrokersReady", "3/3"),
                Cond::new("Rolling", false, "UpToDate", ""),
            ],
            Some(1),
            t0,
        );
        let now = merge(
            &before,
            &[Cond::new("Ready", false, "ReconcileFailed", "x")],
            Some(2),
            t0,
        );
        let kept = keep_unset(&before, now);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].reason, "ReconcileFailed");
        assert_eq!(kept[1], before[1]);
    }
}
