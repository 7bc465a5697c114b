//! The Topic's status as a pure function of the previous status and how the pass went: the
//! conditions `Ready` and `Reconciling`, `observedGeneration`, and what the cluster reports.

use k8s_openapi::jiff::Timestamp;
use strait_crds::TopicStatus;

use crate::admin::TopicDescription;
use crate::conditions::{Cond, merge};
use crate::error::Error;
use crate::target_cluster;

/// What a pass that reached the cluster did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Synced {
    /// Differences the operator will not resolve: `(reason, message)`.
    pub refused: Vec<(&'static str, String)>,
    /// The topic as the cluster describes it after the changes.
    pub observed: Option<TopicDescription>,
}

/// How one pass went.
#[derive(Clone, Copy, Debug)]
pub enum Pass<'a> {
    /// The spec names no usable cluster: why.
    Invalid(&'a str),
    /// The cluster was reached and changed as far as Kafka allows.
    Synced(&'a Synced),
    /// Talking to the cluster failed; the pass is retried.
    Failed(&'a Error),
}

/// The status to write after `pass` over topic `kafka_name`: fields the pass did not observe
/// keep their previous values.
pub fn status(
    previous: &TopicStatus,
    generation: Option<i64>,
    kafka_name: &str,
    pass: Pass<'_>,
    now: Timestamp,
) -> TopicStatus {
    let conditions: Vec<Cond> = match pass {
        Pass::Invalid(problem) => vec![
            Cond::new("Ready", false, "InvalidSpec", problem),
            Cond::new(
                "Reconciling",
                false,
                "InvalidSpec",
                "waiting for a spec change",
            ),
        ],
        Pass::Failed(error) => target_cluster::failed(error).into(),
        Pass::Synced(synced) => vec![
            ready(kafka_name, &synced.refused),
            Cond::new(
                "Reconciling",
                false,
                "Reconciled",
                format!("topic {kafka_name} was reconciled"),
            ),
        ],
    };
    let base = TopicStatus {
        conditions: merge(&previous.conditions, &conditions, generation, now),
        observed_generation: generation,
        topic_name: Some(kafka_name.to_owned()),
        ..previous.clone()
    };
    match pass {
        Pass::Synced(Synced {
            observed: Some(d), ..
        }) => TopicStatus {
            topic_id: Some(d.topic_id.clone()),
            partitions: i32::try_from(d.partitions.len()).ok(),
            replicas: Some(d.replication_factor()),
            config: d.config.clone(),
            ..base
        },
        _ => base,
    }
}

/// `Ready`: true unless something was refused (the first refusal's reason, every message).
fn ready(kafka_name: &str, refused: &[(&'static str, String)]) -> Cond {
    let Some((reason, _)) = refused.first() else {
        return Cond::new(
            "Ready",
            true,
            "TopicReady",
            format!("topic {kafka_name} matches the spec"),
        );
    };
    let message = refused
        .iter()
        .map(|(_, m)| m.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Cond::new("Ready", false, reason, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::AdminError;

    fn t0() -> Timestamp {
        Timestamp::from_second(1_000).expect("t0")
    }

    fn kind<'a>(s: &'a TopicStatus, kind: &str) -> (&'a str, &'a str) {
        s.conditions
            .iter()
            .find(|c| c.type_ == kind)
            .map_or(("", ""), |c| (c.status.as_str(), c.reason.as_str()))
    }

    fn described() -> TopicDescription {
        TopicDescription {
            topic_id: "id-1".into(),
            partitions: (0..3).map(|p| (p, vec![0, 1])).collect(),
            config: [("retention.ms".to_owned(), "1000".to_owned())].into(),
        }
    }

    #[test]
    fn a_synced_pass_reports_the_topic_and_ready() {
        let synced = Synced {
            refused: Vec::new(),
            observed: Some(described()),
        };
        let s = status(
            &TopicStatus::default(),
            Some(3),
            "orders",
            Pass::Synced(&synced),
            t0(),
        );
        assert_eq!(kind(&s, "Ready"), ("True", "TopicReady"));
        assert_eq!(kind(&s, "Reconciling"), ("False", "Reconciled"));
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!((s.partitions, s.replicas), (Some(3), Some(2)));
        assert_eq!(s.topic_id.as_deref(), Some("id-1"));
    }

    #[test]
    fn refusals_make_ready_false_with_every_message() {
        let synced = Synced {
            refused: vec![("PartitionDecreaseRefused", "a".into()), ("X", "b".into())],
            observed: Some(described()),
        };
        let s = status(
            &TopicStatus::default(),
            Some(1),
            "orders",
            Pass::Synced(&synced),
            t0(),
        );
        assert_eq!(kind(&s, "Ready"), ("False", "PartitionDecreaseRefused"));
        assert_eq!(s.conditions[0].message, "a; b");
    }

    #[test]
    fn a_failed_pass_keeps_what_was_observed_and_names_the_failure() {
        let previous = status(
            &TopicStatus::default(),
            Some(1),
            "orders",
            Pass::Synced(&Synced {
                refused: Vec::new(),
                observed: Some(described()),
            }),
            t0(),
        );
        let error = Error::Admin(AdminError::Connect {
            address: "kafka-bootstrap.ns.svc:9091".into(),
            reason: "connection refused".into(),
        });
        let s = status(&previous, Some(2), "orders", Pass::Failed(&error), t0());
        assert_eq!(kind(&s, "Ready"), ("False", "ClusterUnreachable"));
        assert_eq!(kind(&s, "Reconciling"), ("True", "RetryingAfterError"));
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(s.topic_id.as_deref(), Some("id-1"));
        assert_eq!(s.partitions, Some(3));
    }

    #[test]
    fn an_invalid_spec_is_not_retried() {
        let s = status(
            &TopicStatus::default(),
            Some(1),
            "orders",
            Pass::Invalid("set exactly one"),
            t0(),
        );
        assert_eq!(kind(&s, "Ready"), ("False", "InvalidSpec"));
        assert_eq!(kind(&s, "Reconciling"), ("False", "InvalidSpec"));
    }
}
