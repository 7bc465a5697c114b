//! The Cluster's conditions as a pure function of what one reconcile observed ([`Observed`])
//! and what it did ([`Outcome`]): `Ready` (serving: every broker ready and the operator's own
//! admin call answered), `Reconciling`, `ScaleDownBlocked`, `Degraded` and the conditions of
//! single steps. The controller writes them on every pass, a failed one included, so a failing
//! step shows up as a condition instead of hiding the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, Service};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use strait_crds::ClusterStatus;
use strait_crds::cluster::{ListenerStatus, ListenerType};

use crate::cluster::external;
use crate::cluster::identity::{ClusterRef, Replication};
use crate::conditions::{Cond, keep_unset, merge};
use crate::names;

/// How recent a `FailedCreate` Event must be to explain brokers that are not there.
pub const FAILED_CREATE_WINDOW: SignedDuration = SignedDuration::from_mins(10);

/// Whether the Kafka admin API answered the operator this pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AdminReach {
    /// No admin call was made.
    #[default]
    NotAsked,
    /// Every admin call made answered.
    Reachable,
    /// An admin call failed (the first error).
    Unreachable(String),
}

impl AdminReach {
    /// Records the result of one admin call: a failure sticks for the rest of the pass.
    pub fn record<T, E: Display>(&mut self, result: &Result<T, E>) {
        match result {
            Err(e) if !matches!(self, AdminReach::Unreachable(_)) => {
                *self = AdminReach::Unreachable(e.to_string());
            }
            Ok(_) if *self == AdminReach::NotAsked => *self = AdminReach::Reachable,
            _ => {}
        }
    }
}

/// Broker counts from the zone StatefulSets (or, for a zone whose StatefulSet is being
/// recreated, its pods).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BrokerCount {
    /// Brokers the StatefulSets hold (`spec.replicas`).
    pub existing: i32,
    /// Ready brokers.
    pub ready: i32,
}

/// What a reconcile observed.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// `spec.replicas`.
    pub desired: i32,
    /// `None` until the StatefulSets were read.
    pub brokers: Option<BrokerCount>,
    /// The operator's own admin calls this pass.
    pub admin: AdminReach,
    /// Why pods cannot be created (see [`creation_failures`]).
    pub pod_failures: Vec<String>,
}

/// The scale step's decision.
#[derive(Clone, Debug, Default)]
pub struct ScaleOutcome {
    /// Its `ScaleDownBlocked` condition, if any.
    pub conditions: Vec<Cond>,
    /// Partitions move or a scale is held back.
    pub busy: bool,
}

/// The rolling-restart step's decision.
#[derive(Clone, Debug)]
pub struct RollOutcome {
    /// Its `Rolling` condition.
    pub condition: Cond,
    /// Some broker runs an old revision.
    pub rolling: bool,
    /// Rolling, or waiting to know whether to roll.
    pub pending: bool,
}

/// What a reconcile did; `None`/empty for steps it did not reach.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The scale step.
    pub scale: Option<ScaleOutcome>,
    /// The roll step.
    pub roll: Option<RollOutcome>,
    /// `ReplicationTLS`.
    pub replication: Option<Cond>,
    /// `StorageChangeBlocked` (see `storage`).
    pub storage: Option<Cond>,
    /// `QuorumReconfiguring` (see `reconfigure`).
    pub quorum: Option<Cond>,
    /// A controller voter change is under way or waited for.
    pub quorum_changing: bool,
    /// Services whose external address is not known yet.
    pub external_pending: Vec<String>,
    /// A StatefulSet being recreated for a new claim template (what and why).
    pub recreating: Option<String>,
    /// Problems of steps that do not stop the reconcile (each a `Degraded` condition).
    pub degraded: Vec<Cond>,
    /// The step that failed and its error; the reconcile stopped there.
    pub failure: Option<String>,
}

/// What one reconcile observed and did, filled in stage by stage; the status is computed from
/// it (see [`cluster_status`]), also when a stage failed.
#[derive(Default)]
pub struct Pass {
    /// The step under way (names a failure).
    pub step: &'static str,
    /// What the status needs of the observation.
    pub observed: Observed,
    /// What the steps did.
    pub outcome: Outcome,
    /// Listener addresses, once the bootstrap Services were applied.
    pub listeners: Option<Vec<ListenerStatus>>,
    /// Hash of the configuration applied.
    pub config_hash: Option<String>,
    /// The Kafka cluster id, once known.
    pub cluster_id: Option<String>,
    /// Brokers the StatefulSets hold as applied.
    pub held: i32,
    /// The metadata quorum, once the quorum step ran.
    pub quorum: Option<strait_crds::cluster::QuorumStatus>,
}

/// The status to write after a pass of Cluster `name` at `generation`: the conditions of
/// `pass` merged into the `previous` ones (a `failed` pass leaves what it did not get to as
/// last observed), the broker counts, listeners and configuration hash as observed, else as
/// before.
pub fn cluster_status(
    previous: &ClusterStatus,
    pass: Pass,
    name: &str,
    generation: Option<i64>,
    failed: bool,
    now: Timestamp,
) -> ClusterStatus {
    let mut written = merge(
        &previous.conditions,
        &conditions(&pass.observed, &pass.outcome),
        generation,
        now,
    );
    if failed {
        written = keep_unset(&previous.conditions, written);
    }
    let brokers = pass.observed.brokers;
    ClusterStatus {
        conditions: written,
        observed_generation: generation,
        replicas: brokers.map_or(previous.replicas, |b| b.existing.max(pass.held)),
        ready_replicas: brokers.map_or(previous.ready_replicas, |b| b.ready),
        selector: Some(names::selector_string(name)),
        listeners: pass.listeners.unwrap_or_else(|| previous.listeners.clone()),
        cluster_id: pass.cluster_id,
        config_hash: pass.config_hash.or(previous.config_hash.clone()),
        quorum: pass.quorum.or_else(|| previous.quorum.clone()),
    }
}

/// The `ReplicationTLS` condition of a Cluster replicating as `replication`.
pub fn replication_condition(replication: Replication) -> Cond {
    match replication {
        Replication::MutualTls => Cond::new(
            "ReplicationTLS",
            true,
            "MutualTLS",
            "brokers replicate, the operator connects and the nodes reach the metadata quorum \
             over mutual TLS with certificates of the cluster CA",
        ),
        Replication::MutualTlsPlaintextQuorum => Cond::new(
            "ReplicationTLS",
            true,
            "MutualTLS",
            "brokers replicate, and the operator connects, over mutual TLS with certificates \
             of the cluster CA; the CONTROLLER listener stays plaintext (the brokers were \
             started by an operator version with a plaintext quorum, and switching it one \
             broker at a time would split the quorum)",
        ),
        Replication::Plaintext => Cond::new(
            "ReplicationTLS",
            false,
            "PlaintextBrokers",
            "the brokers were started by an operator version that replicated in plaintext; \
             switching the inter-broker listener to TLS in one rolling restart would split the \
             cluster, so replication stays plaintext (no automatic migration yet)",
        ),
    }
}

/// Client bootstrap addresses per listener, for status: external listeners' external addresses
/// once known (see [`external::bootstrap_servers`]; `bootstrap` holds the bootstrap Services as
/// applied, `host_ips` the nodes of the broker pods), else the bootstrap Service's in-cluster
/// name; TLS listeners name the Secret with the CA certificate to trust.
pub fn listener_status(
    cluster: &ClusterRef,
    bootstrap: &BTreeMap<String, Service>,
    host_ips: &BTreeSet<String>,
) -> Vec<ListenerStatus> {
    cluster
        .spec
        .listeners
        .iter()
        .map(|l| {
            let service = match l.kind {
                ListenerType::Internal => names::bootstrap_service(cluster.name, None),
                _ => names::bootstrap_service(cluster.name, Some(&l.name)),
            };
            let bootstrap_servers =
                external::bootstrap_servers(l, bootstrap.get(&service), host_ips)
                    .unwrap_or_else(|| format!("{service}.{}.svc:{}", cluster.namespace, l.port));
            ListenerStatus {
                name: l.name.clone(),
                bootstrap_servers,
                ca_secret: l.tls.then(|| names::cluster_ca_cert(cluster.name)),
            }
        })
        .collect()
}

/// Every broker is there and ready, nothing is being moved, held or restarted: the condition
/// for asking the admin API (and, if it answers, for `Ready`).
pub fn brokers_ready(observed: &Observed, outcome: &Outcome) -> bool {
    let Some(b) = observed.brokers else {
        return false;
    };
    b.ready >= observed.desired
        && b.existing == observed.desired
        && !outcome.scale.as_ref().is_some_and(|s| s.busy)
        && !outcome.roll.as_ref().is_some_and(|r| r.pending)
}

/// `Ready`: the brokers are ready and the admin API answered, and the pass did not fail.
pub fn ready(observed: &Observed, outcome: &Outcome) -> bool {
    outcome.failure.is_none()
        && brokers_ready(observed, outcome)
        && observed.admin == AdminReach::Reachable
}

/// The conditions to write.
pub fn conditions(observed: &Observed, outcome: &Outcome) -> Vec<Cond> {
    let mut out = vec![
        ready_condition(observed, outcome),
        reconciling_condition(observed, outcome),
    ];
    if let Some(scale) = &outcome.scale {
        out.push(
            scale
                .conditions
                .iter()
                .find(|c| c.kind == "ScaleDownBlocked")
                .cloned()
                .unwrap_or_else(|| Cond::new("ScaleDownBlocked", false, "NotBlocked", "")),
        );
    }
    out.push(degraded_condition(observed, outcome));
    out.extend(outcome.roll.as_ref().map(|r| r.condition.clone()));
    out.extend(outcome.replication.clone());
    out.extend(outcome.storage.clone());
    out.extend(outcome.quorum.clone());
    out
}

fn ready_condition(observed: &Observed, outcome: &Outcome) -> Cond {
    let desired = observed.desired;
    let counted = observed
        .brokers
        .map(|b| format!("{}/{desired} brokers ready", b.ready));
    let count = counted
        .clone()
        .unwrap_or_else(|| format!("?/{desired} brokers ready"));
    let blocked = outcome
        .scale
        .iter()
        .flat_map(|s| &s.conditions)
        .find(|c| c.kind == "ScaleDownBlocked" && c.status);
    let admin_error = match &observed.admin {
        AdminReach::Unreachable(e) => Some(e.as_str()),
        _ => None,
    };
    if let Some(failure) = &outcome.failure {
        let message = match counted {
            Some(count) => format!("{count}; {failure}"),
            None => failure.clone(),
        };
        return Cond::new("Ready", false, "ReconcileFailed", message);
    }
    if let Some(c) = blocked {
        if c.reason == "AdminUnavailable" {
            return Cond::new(
                "Ready",
                false,
                "AdminUnavailable",
                format!("{count}; {}", c.message),
            );
        }
        return Cond::new(
            "Ready",
            false,
            "ScaleDownRefused",
            format!("{count}; scale-down refused"),
        );
    }
    if let Some(roll) = outcome.roll.as_ref().filter(|r| r.rolling) {
        return Cond::new(
            "Ready",
            false,
            "Rolling",
            format!("{count}; {}", roll.condition.message),
        );
    }
    if !brokers_ready(observed, outcome) {
        if !observed.pod_failures.is_empty() {
            return Cond::new(
                "Ready",
                false,
                "FailedCreate",
                format!(
                    "{count}; pods cannot be created: {}",
                    observed.pod_failures.join("; ")
                ),
            );
        }
        return Cond::new("Ready", false, "BrokersNotReady", count);
    }
    if observed.admin != AdminReach::Reachable {
        return Cond::new(
            "Ready",
            false,
            "AdminUnavailable",
            format!(
                "{count}; the Kafka admin API does not answer: {}",
                admin_error.unwrap_or("not asked")
            ),
        );
    }
    Cond::new("Ready", true, "AllBrokersReady", count)
}

fn reconciling_condition(observed: &Observed, outcome: &Outcome) -> Cond {
    if let Some(failure) = &outcome.failure {
        return Cond::new("Reconciling", true, "ReconcileFailed", failure.clone());
    }
    // Brokers serve every listener meanwhile (external ones on in-cluster names), so pending
    // external addresses keep the reconcile going without making the cluster unready.
    if !outcome.external_pending.is_empty() {
        return Cond::new(
            "Reconciling",
            true,
            "ExternalAddressesPending",
            format!(
                "no external address yet for {} (brokers advertise the in-cluster name meanwhile \
                 and restart one at a time once it is known)",
                outcome.external_pending.join(", ")
            ),
        );
    }
    if let Some(why) = &outcome.recreating {
        return Cond::new("Reconciling", true, "RecreatingStatefulSet", why.clone());
    }
    if ready(observed, outcome) {
        Cond::new("Reconciling", false, "Idle", "")
    } else {
        Cond::new("Reconciling", true, "InProgress", "")
    }
}

/// One `Degraded` condition for every problem of the pass: the first one's reason, every
/// message (a condition type appears once in a status).
fn degraded_condition(observed: &Observed, outcome: &Outcome) -> Cond {
    let mut problems: Vec<Cond> = Vec::new();
    if let Some(failure) = &outcome.failure {
        problems.push(Cond::new(
            "Degraded",
            true,
            "ReconcileFailed",
            failure.clone(),
        ));
    }
    if let AdminReach::Unreachable(e) = &observed.admin {
        problems.push(Cond::new(
            "Degraded",
            true,
            "AdminUnavailable",
            format!("the Kafka admin API does not answer: {e}"),
        ));
    }
    problems.extend(outcome.degraded.iter().cloned());
    let Some(first) = problems.first() else {
        return Cond::new("Degraded", false, "Healthy", "");
    };
    let messages: Vec<&str> = problems.iter().map(|c| c.message.as_str()).collect();
    Cond::new("Degraded", true, first.reason, messages.join("; "))
}

/// Why the zone StatefulSets cannot create their pods: each one's `ReplicaFailure` condition
/// (when its status carries one) or else its latest `FailedCreate` Event seen within
/// [`FAILED_CREATE_WINDOW`] of `now` (a missing PriorityClass, a quota, an admission webhook
/// refusing the pod). `events` are the namespace's Events of StatefulSets with that reason.
pub fn creation_failures(sets: &[StatefulSet], events: &[Event], now: Timestamp) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for set in sets {
        let Some(name) = set.metadata.name.as_deref() else {
            continue;
        };
        let failed = set
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|c| {
                c.type_.as_deref() == Some("ReplicaFailure") && c.status.as_deref() == Some("True")
            })
            .map(|c| {
                c.message
                    .clone()
                    .unwrap_or_else(|| c.reason.clone().unwrap_or_default())
            });
        let latest_event = events
            .iter()
            .filter(|e| {
                e.involved_object.kind.as_deref() == Some("StatefulSet")
                    && e.involved_object.name.as_deref() == Some(name)
                    && e.reason.as_deref() == Some("FailedCreate")
            })
            .filter_map(|e| Some((last_seen(e)?, e.message.clone()?)))
            .filter(|(at, _)| *at + FAILED_CREATE_WINDOW >= now)
            .max_by_key(|(at, _)| *at)
            .map(|(_, message)| message);
        if let Some(message) = failed.or(latest_event)
            && seen.insert(message.clone())
        {
            out.push(message);
        }
    }
    out
}

fn last_seen(e: &Event) -> Option<Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{StatefulSetCondition, StatefulSetStatus};
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn serving() -> (Observed, Outcome) {
        let observed = Observed {
            desired: 3,
            brokers: Some(BrokerCount {
                existing: 3,
                ready: 3,
            }),
            admin: AdminReach::Reachable,
            pod_failures: Vec::new(),
        };
        let outcome = Outcome {
            scale: Some(ScaleOutcome::default()),
            roll: Some(RollOutcome {
                condition: Cond::new("Rolling", false, "UpToDate", ""),
                rolling: false,
                pending: false,
            }),
            ..Outcome::default()
        };
        (observed, outcome)
    }

    fn find<'a>(conds: &'a [Cond], kind: &str) -> &'a Cond {
        conds
            .iter()
            .find(|c| c.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} in {conds:?}"))
    }

    #[test]
    fn serving_brokers_with_an_answering_admin_api_are_ready() {
        let (o, out) = serving();
        let conds = conditions(&o, &out);
        let ready = find(&conds, "Ready");
        assert!(ready.status);
        assert_eq!(ready.message, "3/3 brokers ready");
        assert_eq!(find(&conds, "Reconciling").reason, "Idle");
        assert_eq!(find(&conds, "ScaleDownBlocked").reason, "NotBlocked");
        assert!(!find(&conds, "Degraded").status);
        assert_eq!(conds.iter().filter(|c| c.kind == "Degraded").count(), 1);
    }

    #[test]
    fn ready_brokers_behind_an_unreachable_admin_api_are_not_ready() {
        let (mut o, out) = serving();
        o.admin.record(&Ok::<(), String>(()));
        o.admin.record(&Err::<(), _>("connection refused"));
        o.admin.record(&Ok::<(), String>(()));
        let conds = conditions(&o, &out);
        let ready = find(&conds, "Ready");
        assert!(!ready.status);
        assert_eq!(ready.reason, "AdminUnavailable");
        assert!(ready.message.contains("connection refused"), "{ready:?}");
        let degraded = find(&conds, "Degraded");
        assert!(degraded.status);
        assert_eq!(degraded.reason, "AdminUnavailable");
        assert!(!super::ready(&o, &out));
        // Never asked (brokers not all ready, nothing to call for) is not serving either.
        o.admin = AdminReach::NotAsked;
        assert!(!find(&conditions(&o, &out), "Ready").status);
    }

    #[test]
    fn pods_that_cannot_be_created_name_the_reason() {
        let (mut o, out) = serving();
        o.brokers = Some(BrokerCount {
            existing: 3,
            ready: 0,
        });
        o.admin = AdminReach::NotAsked;
        o.pod_failures = vec!["no PriorityClass with name gold was found".into()];
        let ready = conditions(&o, &out)[0].clone();
        assert_eq!(ready.reason, "FailedCreate");
        assert_eq!(
            ready.message,
            "0/3 brokers ready; pods cannot be created: no PriorityClass with name gold was found"
        );
        o.pod_failures.clear();
        let ready = conditions(&o, &out)[0].clone();
        assert_eq!(ready.reason, "BrokersNotReady");
        assert_eq!(ready.message, "0/3 brokers ready");
    }

    #[test]
    fn an_admin_failure_in_the_scale_step_blocks_the_scale_down_not_the_status() {
        let (mut o, mut out) = serving();
        o.admin = AdminReach::Unreachable("connection refused".into());
        out.scale = Some(ScaleOutcome {
            conditions: vec![Cond::new(
                "ScaleDownBlocked",
                true,
                "AdminUnavailable",
                "cannot remove brokers [1]: connection refused",
            )],
            busy: true,
        });
        let conds = conditions(&o, &out);
        assert_eq!(find(&conds, "ScaleDownBlocked").reason, "AdminUnavailable");
        let ready = find(&conds, "Ready");
        assert_eq!(ready.reason, "AdminUnavailable");
        assert_eq!(
            ready.message,
            "3/3 brokers ready; cannot remove brokers [1]: connection refused"
        );
        assert_eq!(find(&conds, "Reconciling").reason, "InProgress");
    }

    #[test]
    fn a_failed_step_is_reported_and_unreached_steps_are_left_out() {
        let o = Observed {
            desired: 3,
            ..Observed::default()
        };
        let out = Outcome {
            failure: Some("applying the ConfigMap: kubernetes api: forbidden".into()),
            ..Outcome::default()
        };
        let conds = conditions(&o, &out);
        let kinds: Vec<&str> = conds.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, ["Ready", "Reconciling", "Degraded"]);
        for c in &conds {
            assert_eq!(c.reason, "ReconcileFailed");
            assert_eq!(
                c.message,
                "applying the ConfigMap: kubernetes api: forbidden"
            );
        }
    }

    #[test]
    fn every_degradation_lands_in_one_condition() {
        let (o, mut out) = serving();
        out.degraded = vec![
            Cond::new("Degraded", true, "CleanupFailed", "a"),
            Cond::new("Degraded", true, "ServiceMonitorFailed", "b"),
        ];
        let conds = conditions(&o, &out);
        assert_eq!(conds.iter().filter(|c| c.kind == "Degraded").count(), 1);
        let degraded = find(&conds, "Degraded");
        assert_eq!(degraded.reason, "CleanupFailed");
        assert_eq!(degraded.message, "a; b");
        // Degradation is not unreadiness.
        assert!(find(&conds, "Ready").status);
    }

    #[test]
    fn scale_refusal_roll_and_recreation_explain_themselves() {
        let (o, mut out) = serving();
        out.recreating = Some("kafka-z0".into());
        assert_eq!(
            find(&conditions(&o, &out), "Reconciling").reason,
            "RecreatingStatefulSet"
        );
        out.roll = Some(RollOutcome {
            condition: Cond::new("Rolling", true, "RestartingBroker", "restarting broker 1"),
            rolling: true,
            pending: true,
        });
        let ready = conditions(&o, &out)[0].clone();
        assert_eq!(ready.reason, "Rolling");
        assert_eq!(ready.message, "3/3 brokers ready; restarting broker 1");
        out.scale = Some(ScaleOutcome {
            conditions: vec![Cond::new("ScaleDownBlocked", true, "ScaleDownRefused", "x")],
            busy: true,
        });
        assert_eq!(conditions(&o, &out)[0].reason, "ScaleDownRefused");
    }

    fn set(name: &str, condition: Option<&str>) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            status: Some(StatefulSetStatus {
                conditions: condition.map(|m| {
                    vec![StatefulSetCondition {
                        type_: Some("ReplicaFailure".into()),
                        status: Some("True".into()),
                        reason: Some("FailedCreate".into()),
                        message: Some(m.into()),
                        last_transition_time: None,
                    }]
                }),
                ..StatefulSetStatus::default()
            }),
            ..StatefulSet::default()
        }
    }

    fn event(set: &str, reason: &str, at: i64, message: &str) -> Event {
        Event {
            involved_object: ObjectReference {
                kind: Some("StatefulSet".into()),
                name: Some(set.into()),
                ..ObjectReference::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_timestamp: Some(Time(Timestamp::from_second(at).expect("time"))),
            ..Event::default()
        }
    }

    #[test]
    fn creation_failures_come_from_replica_failure_or_recent_failed_create_events() {
        let now = Timestamp::from_second(10_000).expect("now");
        let sets = [
            set(
                "kafka-z0",
                Some("pods \"kafka-z0-0\" is forbidden: no PriorityClass"),
            ),
            set("kafka-z1", None),
            set("kafka-z2", None),
        ];
        let events = [
            event(
                "kafka-z0",
                "FailedCreate",
                9_990,
                "shadowed by the condition",
            ),
            event("kafka-z1", "FailedCreate", 9_900, "older"),
            event("kafka-z1", "FailedCreate", 9_950, "exceeded quota"),
            event(
                "kafka-z1",
                "SuccessfulCreate",
                9_999,
                "create Pod kafka-z1-1000",
            ),
            // Long past: not what holds the brokers back now.
            event("kafka-z2", "FailedCreate", 1_000, "stale"),
            event("other", "FailedCreate", 9_999, "another StatefulSet"),
        ];
        assert_eq!(
            creation_failures(&sets, &events, now),
            [
                "pods \"kafka-z0-0\" is forbidden: no PriorityClass",
                "exceeded quota"
            ]
        );
    }
}
