//! Topic and User reconciles against the mocked API server in `fixtures/` when things go wrong:
//! an unreachable cluster shows in the status and as an Event, finalizers are released once the
//! Cluster is gone or being deleted (or after a bounded wait while it is unreachable),
//! `deletionPolicy: retain` on User, Users refused by a cluster without the APIs they need,
//! SCRAM Users reconciled on a cluster serving what Strait's broker serves (SCRAM and ACLs, no
//! quotas), and Users with ACLs refused by a cluster that enforces none (a Cluster without
//! `spec.authorization`, or an external cluster answering SECURITY_DISABLED).

mod fixtures;

use std::time::Duration;

use fixtures::{FakeAdmin, Seen, reconcile_ok, reconcile_once};
use http::StatusCode;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kafka_protocol::messages::ApiKey;
use serde_json::{Value, json};
use strait_crds::{Topic, User};
use strait_operator::admin::TopicDescription;
use strait_operator::target_cluster::deletion::CLEANUP_WAIT;

/// How the Topic or User names its cluster.
#[derive(Clone, Copy)]
enum Target {
    /// `cluster.name: kafka`.
    Named,
    /// `cluster.bootstrapServers` of an external cluster.
    External,
}

impl Target {
    fn reference(self) -> Value {
        match self {
            Target::Named => json!({"name": "kafka"}),
            Target::External => json!({"bootstrapServers": "kafka.example:9092"}),
        }
    }
}

/// Metadata of a reconciled object: finalizer present, deleted `deleted_ago` ago if set.
fn meta(name: &str, finalizer: &str, deleted_ago: Option<Duration>) -> Value {
    let mut meta = json!({"name": name, "namespace": "ns", "uid": "u-9", "generation": 4,
                          "resourceVersion": "1", "finalizers": [finalizer]});
    if let Some(ago) = deleted_ago {
        let at = Timestamp::now() - SignedDuration::try_from(ago).unwrap_or_default();
        meta["deletionTimestamp"] = json!(at.to_string());
    }
    meta
}

fn topic(target: Target, deleted_ago: Option<Duration>) -> Topic {
    serde_json::from_value(json!({
        "apiVersion": "strait.dev/v1alpha1", "kind": "Topic",
        "metadata": meta("orders", "strait.dev/topic", deleted_ago),
        "spec": {"cluster": target.reference(), "partitions": 3, "replicas": 1}
    }))
    .unwrap_or_else(|e| panic!("topic: {e}"))
}

fn user(target: Target, deleted_ago: Option<Duration>, retain: bool) -> User {
    let mut spec = json!({
        "cluster": target.reference(),
        "authentication": {"type": "scram-sha-512"},
        "authorization": {"type": "simple", "acls": [
            {"resource": {"type": "topic", "name": "orders"}, "operations": ["Read"]}
        ]}
    });
    if retain {
        spec["deletionPolicy"] = json!("retain");
    }
    serde_json::from_value(json!({
        "apiVersion": "strait.dev/v1alpha1", "kind": "User",
        "metadata": meta("app", "strait.dev/user", deleted_ago),
        "spec": spec
    }))
    .unwrap_or_else(|e| panic!("user: {e}"))
}

/// The referenced Cluster `kafka`: absent (`None`, the mock's 404), present, or being deleted;
/// without `spec.authorization`.
fn cluster_is(state: Option<bool>) -> fixtures::Script {
    cluster_script(state, false)
}

/// The Cluster `kafka` present, with `spec.authorization` (ACLs enforced) when `authorization`.
fn cluster_authorizing(authorization: bool) -> fixtures::Script {
    cluster_script(PRESENT, authorization)
}

fn cluster_script(state: Option<bool>, authorization: bool) -> fixtures::Script {
    Box::new(move |seen| {
        let deleting = state?;
        if seen.method != "GET" || !seen.path.ends_with("/clusters/kafka") {
            return None;
        }
        let mut meta = json!({"name": "kafka", "namespace": "ns", "uid": "c-1", "generation": 1});
        if deleting {
            meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            meta["finalizers"] = json!(["example.com/keep"]);
        }
        let mut spec = json!({"replicas": 3, "zones": ["a", "b", "c"], "storage": {"size": "10Gi"},
                              "listeners": [{"name": "plain", "port": 9092, "type": "internal",
                                             "authentication": {"type": "scram-sha-512"}}]});
        if authorization {
            spec["authorization"] = json!({"type": "simple"});
        }
        Some((
            StatusCode::OK,
            json!({
                "apiVersion": "strait.dev/v1alpha1", "kind": "Cluster", "metadata": meta,
                "spec": spec
            }),
        ))
    })
}

const PRESENT: Option<bool> = Some(false);
const DELETING: Option<bool> = Some(true);
const MISSING: Option<bool> = None;

fn unreachable() -> FakeAdmin {
    let admin = FakeAdmin::default();
    admin.with(|k| k.unreachable = true);
    admin
}

fn status_patch(seen: &[Seen], resource: &str) -> Value {
    seen.iter()
        .rev()
        .find(|s| s.method == "PATCH" && s.path.ends_with(&format!("{resource}/status")))
        .map(|s| s.body["status"].clone())
        .unwrap_or(Value::Null)
}

fn condition<'a>(status: &'a Value, kind: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

/// `(reason, note)` of every Warning Event published.
fn warnings(seen: &[Seen]) -> Vec<(String, String)> {
    seen.iter()
        .filter(|s| s.path.contains("/events") && s.body["type"] == "Warning")
        .map(|s| {
            (
                s.body["reason"].as_str().unwrap_or_default().to_owned(),
                s.body["note"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Reasons of every Event published.
fn events(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter(|s| s.path.contains("/events"))
        .map(|s| s.body["reason"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Whether the finalizer was removed from the object at `resource` (`strait_operator::finalizer`
/// sends a JSON patch removing it).
fn finalizer_removed(seen: &[Seen], resource: &str) -> bool {
    seen.iter().any(|s| {
        s.method == "PATCH" && s.path.ends_with(resource) && s.body.to_string().contains("remove")
    })
}

#[tokio::test]
async fn unreachable_cluster_shows_in_topic_status_and_events() {
    let (result, seen) = reconcile_once(
        topic(Target::Named, None),
        Box::new(|_| None),
        unreachable(),
        strait_operator::topic::controller::reconcile,
    )
    .await;
    assert!(result.is_err(), "retried with backoff: {result:?}");
    let status = status_patch(&seen, "/topics/orders");
    assert_eq!(status["observedGeneration"], 4, "{status}");
    let ready = condition(&status, "Ready");
    assert_eq!(ready["status"], "False", "{status}");
    assert_eq!(ready["reason"], "ClusterUnreachable");
    assert!(
        ready["message"]
            .as_str()
            .is_some_and(|m| m.contains("connection refused")),
        "{ready}"
    );
    assert_eq!(condition(&status, "Reconciling")["status"], "True");
    let warned = warnings(&seen);
    assert!(
        warned
            .iter()
            .any(|(r, n)| r == "ClusterUnreachable" && n.contains("connection refused")),
        "{warned:?}"
    );
}

#[tokio::test]
async fn unreachable_cluster_shows_in_user_status_and_events() {
    let (result, seen) = reconcile_once(
        user(Target::Named, None, false),
        Box::new(|_| None),
        unreachable(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    assert!(result.is_err(), "retried with backoff: {result:?}");
    let status = status_patch(&seen, "/users/app");
    assert_eq!(status["observedGeneration"], 4, "{status}");
    assert_eq!(condition(&status, "Ready")["reason"], "ClusterUnreachable");
    assert_eq!(condition(&status, "Reconciling")["status"], "True");
    assert!(
        warnings(&seen)
            .iter()
            .any(|(r, _)| r == "ClusterUnreachable")
    );
}

#[tokio::test]
async fn a_reachable_topic_reports_reconciled() {
    let admin = FakeAdmin::default();
    let seen = reconcile_ok(
        topic(Target::Named, None),
        Box::new(|_| None),
        admin.clone(),
        strait_operator::topic::controller::reconcile,
    )
    .await;
    assert!(
        admin
            .calls()
            .contains(&"create_topic orders 3 1".to_owned())
    );
    let status = status_patch(&seen, "/topics/orders");
    assert_eq!(condition(&status, "Ready")["status"], "True", "{status}");
    assert_eq!(condition(&status, "Reconciling")["status"], "False");
    assert_eq!(status["observedGeneration"], 4);
}

#[tokio::test]
async fn topic_of_a_missing_cluster_is_released_without_admin_calls() {
    let admin = FakeAdmin::default();
    let seen = reconcile_ok(
        topic(Target::Named, Some(Duration::from_secs(1))),
        cluster_is(MISSING),
        admin.clone(),
        strait_operator::topic::controller::reconcile,
    )
    .await;
    assert!(admin.calls().is_empty(), "{:?}", admin.calls());
    assert!(finalizer_removed(&seen, "/topics/orders"));
    assert_eq!(events(&seen), ["ClusterGone"]);
}

#[tokio::test]
async fn topic_of_a_cluster_being_deleted_is_released() {
    let admin = unreachable();
    let seen = reconcile_ok(
        topic(Target::Named, Some(Duration::from_secs(1))),
        cluster_is(DELETING),
        admin.clone(),
        strait_operator::topic::controller::reconcile,
    )
    .await;
    assert!(admin.calls().is_empty(), "{:?}", admin.calls());
    assert!(finalizer_removed(&seen, "/topics/orders"));
    assert_eq!(events(&seen), ["ClusterDeleting"]);
}

#[tokio::test]
async fn topic_of_a_reachable_cluster_is_deleted_then_released() {
    let admin = FakeAdmin::default();
    let seen = reconcile_ok(
        topic(Target::Named, Some(Duration::from_secs(1))),
        cluster_is(PRESENT),
        admin.clone(),
        strait_operator::topic::controller::reconcile,
    )
    .await;
    assert!(admin.calls().contains(&"delete_topic orders".to_owned()));
    assert!(finalizer_removed(&seen, "/topics/orders"));
    assert_eq!(events(&seen), ["Deleted"]);
}

#[tokio::test]
async fn topic_of_an_unreachable_cluster_waits_visibly_within_the_bound() {
    for target in [Target::Named, Target::External] {
        let (result, seen) = reconcile_once(
            topic(target, Some(Duration::from_secs(60))),
            cluster_is(PRESENT),
            unreachable(),
            strait_operator::topic::controller::reconcile,
        )
        .await;
        assert!(result.is_err(), "the finalizer stays: {result:?}");
        assert!(!finalizer_removed(&seen, "/topics/orders"));
        let status = status_patch(&seen, "/topics/orders");
        let ready = condition(&status, "Ready");
        assert_eq!(ready["reason"], "WaitingForCluster", "{status}");
        let message = ready["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("connection refused") && message.contains("until"),
            "{message}"
        );
        assert!(
            warnings(&seen)
                .iter()
                .any(|(r, _)| r == "WaitingForCluster")
        );
    }
}

#[tokio::test]
async fn topic_of_an_unreachable_cluster_is_released_past_the_bound() {
    for target in [Target::Named, Target::External] {
        let (result, seen) = reconcile_once(
            topic(target, Some(CLEANUP_WAIT + Duration::from_secs(60))),
            cluster_is(PRESENT),
            unreachable(),
            strait_operator::topic::controller::reconcile,
        )
        .await;
        assert!(result.is_ok(), "{result:?}");
        assert!(finalizer_removed(&seen, "/topics/orders"));
        let warned = warnings(&seen);
        assert!(
            warned
                .iter()
                .any(|(r, n)| r == "LeftInCluster" && n.contains("topic orders")),
            "{warned:?}"
        );
    }
}

#[tokio::test]
async fn retained_user_keeps_its_credentials_and_acls() {
    let admin = FakeAdmin::default();
    let seen = reconcile_ok(
        user(Target::Named, Some(Duration::from_secs(1)), true),
        cluster_is(PRESENT),
        admin.clone(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    let calls = admin.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("delete_scram") || c.starts_with("delete_acls")),
        "{calls:?}"
    );
    assert!(finalizer_removed(&seen, "/users/app"));
    assert_eq!(events(&seen), ["Retained"]);
}

#[tokio::test]
async fn deleted_user_is_removed_from_a_reachable_cluster() {
    let admin = FakeAdmin::default();
    let seen = reconcile_ok(
        user(Target::Named, Some(Duration::from_secs(1)), false),
        cluster_is(PRESENT),
        admin.clone(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    let calls = admin.calls();
    assert!(calls.contains(&"delete_scram app".to_owned()), "{calls:?}");
    assert!(calls.contains(&"quotas app".to_owned()), "{calls:?}");
    assert!(finalizer_removed(&seen, "/users/app"));
}

#[tokio::test]
async fn user_of_a_missing_cluster_is_released_without_admin_calls() {
    let admin = unreachable();
    let seen = reconcile_ok(
        user(Target::Named, Some(Duration::from_secs(1)), false),
        cluster_is(MISSING),
        admin.clone(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    assert!(admin.calls().is_empty(), "{:?}", admin.calls());
    assert!(finalizer_removed(&seen, "/users/app"));
}

/// A cluster whose ApiVersions leave out `apis`.
fn without(apis: &[ApiKey]) -> FakeAdmin {
    let admin = FakeAdmin::default();
    admin.with(|k| k.unsupported = apis.to_vec());
    admin
}

/// The ACL and quota APIs, which Strait's broker did not serve before its ACLs.
const ACLS_AND_QUOTAS: [ApiKey; 4] = [
    ApiKey::DescribeAcls,
    ApiKey::CreateAcls,
    ApiKey::DeleteAcls,
    ApiKey::AlterClientQuotas,
];

/// What Strait's broker advertises today: SCRAM credentials and ACLs, no quota API.
fn strait_broker() -> FakeAdmin {
    without(&[ApiKey::AlterClientQuotas])
}

/// Strait's broker before its ACLs: SCRAM credentials, no ACL or quota APIs.
fn strait_before_acls() -> FakeAdmin {
    without(&ACLS_AND_QUOTAS)
}

/// A broker serving none of the security APIs (Strait before SASL).
fn no_security_apis() -> FakeAdmin {
    let mut apis = ACLS_AND_QUOTAS.to_vec();
    apis.push(ApiKey::AlterUserScramCredentials);
    without(&apis)
}

#[tokio::test]
async fn user_is_refused_by_a_cluster_without_the_apis() {
    // A broker serving the SCRAM credential but not the ACLs (Strait before ACLs): the whole
    // User is refused, naming only what is missing.
    let admin = strait_before_acls();
    let seen = reconcile_ok(
        user(Target::Named, None, false),
        Box::new(|_| None),
        admin.clone(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    let calls = admin.calls();
    assert!(
        !calls.iter().any(|c| c.starts_with("upsert_scram")
            || c.contains("acls")
            || c.starts_with("quotas")),
        "{calls:?}"
    );
    assert!(
        !seen
            .iter()
            .any(|s| s.method == "PATCH" && s.path.ends_with("/secrets/app")),
        "no password Secret for a refused User"
    );
    let status = status_patch(&seen, "/users/app");
    let ready = condition(&status, "Ready");
    assert_eq!(ready["status"], "False", "{status}");
    assert_eq!(ready["reason"], "UnsupportedByCluster");
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("DescribeAcls v3, CreateAcls v3, DeleteAcls v3")
            && !message.contains("AlterUserScramCredentials"),
        "{message}"
    );
    assert!(
        warnings(&seen)
            .iter()
            .any(|(r, _)| r == "UnsupportedByCluster")
    );
}

#[tokio::test]
async fn scram_user_is_reconciled_by_strait_broker() {
    let mut u = user(Target::Named, None, false);
    u.spec.authorization = None;
    let admin = strait_broker();
    let seen = reconcile_ok(
        u,
        Box::new(|_| None),
        admin.clone(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    // The ACL step runs too, with nothing to add or remove.
    assert_eq!(
        admin.calls(),
        [
            "connect kafka-bootstrap.ns.svc:9091",
            "supported_apis",
            "upsert_scram app",
            "create_acls 0",
            "delete_acls 0"
        ]
    );
    let secret = seen
        .iter()
        .find(|s| s.method == "PATCH" && s.path.ends_with("/secrets/app"))
        .map(|s| s.body.clone())
        .unwrap_or(Value::Null);
    assert!(secret["data"]["password"].is_string(), "{secret}");
    assert!(secret["data"]["sasl.jaas.config"].is_string(), "{secret}");
    let status = status_patch(&seen, "/users/app");
    assert_eq!(condition(&status, "Ready")["status"], "True", "{status}");
    assert_eq!(status["username"], "app");
    assert_eq!(status["secret"], "app");
}

#[tokio::test]
async fn user_deletion_makes_no_call_the_cluster_cannot_answer() {
    // Strait's broker: the credential and the ACLs are removed, quotas are not asked for.
    let admin = strait_broker();
    admin.with(|k| {
        k.acls = strait_operator::user::plan::desired_acls(
            "app",
            &user(Target::Named, None, false).spec,
        );
    });
    let seen = reconcile_ok(
        user(Target::Named, Some(Duration::from_secs(1)), false),
        cluster_is(PRESENT),
        admin.clone(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    let calls = admin.calls();
    assert!(calls.contains(&"delete_scram app".to_owned()), "{calls:?}");
    assert!(calls.contains(&"delete_acls 1".to_owned()), "{calls:?}");
    assert!(admin.with(|k| k.acls.is_empty()));
    assert!(!calls.iter().any(|c| c.starts_with("quotas")), "{calls:?}");
    assert!(finalizer_removed(&seen, "/users/app"));
    // Strait before ACLs: the credential alone.
    let admin = strait_before_acls();
    let seen = reconcile_ok(
        user(Target::Named, Some(Duration::from_secs(1)), false),
        cluster_is(PRESENT),
        admin.clone(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    let calls = admin.calls();
    assert!(calls.contains(&"delete_scram app".to_owned()), "{calls:?}");
    assert!(
        !calls
            .iter()
            .any(|c| c.contains("acls") || c.starts_with("quotas")),
        "{calls:?}"
    );
    assert!(finalizer_removed(&seen, "/users/app"));
    // A broker without any security API: nothing to remove, no call.
    let admin = no_security_apis();
    let seen = reconcile_ok(
        user(Target::Named, Some(Duration::from_secs(1)), false),
        cluster_is(PRESENT),
        admin.clone(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    let calls = admin.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.contains("scram") || c.contains("acls") || c.starts_with("quotas")),
        "{calls:?}"
    );
    assert!(finalizer_removed(&seen, "/users/app"));
}

#[tokio::test]
async fn user_with_acls_is_refused_by_a_cluster_without_authorization() {
    // The Cluster has no `spec.authorization`: its brokers enforce no ACL, so the User's would
    // only look enforced. Refused before the cluster is contacted: no credential, no ACL, no
    // password Secret.
    let admin = strait_broker();
    let (result, seen) = reconcile_once(
        user(Target::Named, None, false),
        cluster_authorizing(false),
        admin.clone(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    assert!(result.is_ok(), "requeued, not retried: {result:?}");
    assert!(admin.calls().is_empty(), "{:?}", admin.calls());
    assert!(
        !seen
            .iter()
            .any(|s| s.method == "PATCH" && s.path.ends_with("/secrets/app")),
        "no password Secret for a refused User"
    );
    let status = status_patch(&seen, "/users/app");
    let ready = condition(&status, "Ready");
    assert_eq!(ready["status"], "False", "{status}");
    assert_eq!(ready["reason"], "AuthorizationNotEnabled");
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Cluster kafka has no `spec.authorization`"),
        "{message}"
    );
    assert_eq!(
        condition(&status, "Reconciling")["reason"],
        "AuthorizationNotEnabled"
    );
    assert!(
        warnings(&seen)
            .iter()
            .any(|(r, n)| r == "AuthorizationNotEnabled" && n.contains("Cluster kafka")),
        "{:?}",
        warnings(&seen)
    );

    // The same User once the Cluster has `authorization`: credential and ACLs set.
    let admin = strait_broker();
    let seen = reconcile_ok(
        user(Target::Named, None, false),
        cluster_authorizing(true),
        admin.clone(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    let calls = admin.calls();
    assert!(calls.contains(&"upsert_scram app".to_owned()), "{calls:?}");
    assert!(calls.contains(&"create_acls 1".to_owned()), "{calls:?}");
    let status = status_patch(&seen, "/users/app");
    assert_eq!(condition(&status, "Ready")["status"], "True", "{status}");

    // A User without ACLs needs no authorizer: its credential is set.
    let mut u = user(Target::Named, None, false);
    u.spec.authorization = None;
    let admin = strait_broker();
    let seen = reconcile_ok(
        u,
        cluster_authorizing(false),
        admin.clone(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    assert!(
        admin.calls().contains(&"upsert_scram app".to_owned()),
        "{:?}",
        admin.calls()
    );
    let status = status_patch(&seen, "/users/app");
    assert_eq!(condition(&status, "Ready")["status"], "True", "{status}");
}

#[tokio::test]
async fn user_with_acls_is_refused_by_an_external_cluster_without_an_authorizer() {
    // Kafka answers the ACL APIs with SECURITY_DISABLED when no authorizer is configured: the
    // User with ACLs is refused before its credential is set.
    let disabled = || {
        let admin = strait_broker();
        admin.with(|k| k.security_disabled = true);
        admin
    };
    let admin = disabled();
    let (result, seen) = reconcile_once(
        user(Target::External, None, false),
        Box::new(|_| None),
        admin.clone(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
    let calls = admin.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("upsert_scram") || c.contains("acls")),
        "{calls:?}"
    );
    let status = status_patch(&seen, "/users/app");
    let ready = condition(&status, "Ready");
    assert_eq!(ready["reason"], "AuthorizationNotEnabled", "{status}");
    assert!(
        ready["message"]
            .as_str()
            .is_some_and(|m| m.contains("SECURITY_DISABLED")),
        "{ready}"
    );
    // Without ACLs in the spec there is nothing to enforce: the credential is set, no ACL call.
    let mut u = user(Target::External, None, false);
    u.spec.authorization = None;
    let admin = disabled();
    let seen = reconcile_ok(
        u,
        Box::new(|_| None),
        admin.clone(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    let calls = admin.calls();
    assert!(calls.contains(&"upsert_scram app".to_owned()), "{calls:?}");
    assert!(!calls.iter().any(|c| c.contains("acls")), "{calls:?}");
    let status = status_patch(&seen, "/users/app");
    assert_eq!(condition(&status, "Ready")["status"], "True", "{status}");
    // Deleted: the credential goes; no binding to remove.
    let admin = disabled();
    let seen = reconcile_ok(
        user(Target::External, Some(Duration::from_secs(1)), false),
        Box::new(|_| None),
        admin.clone(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    let calls = admin.calls();
    assert!(calls.contains(&"delete_scram app".to_owned()), "{calls:?}");
    assert!(!calls.iter().any(|c| c.contains("acls")), "{calls:?}");
    assert!(finalizer_removed(&seen, "/users/app"));
}

#[tokio::test]
async fn acls_changed_by_hand_are_put_back_and_removed_ones_deleted() {
    // The cluster holds a binding the spec does not ask for (added by hand, or left from an
    // earlier spec) and lacks the one it asks for (deleted by hand): one pass corrects both.
    let u = user(Target::Named, None, false);
    let wanted = strait_operator::user::plan::desired_acls("app", &u.spec);
    let stale = strait_operator::admin::AclBinding {
        operation: 4,
        ..wanted[0].clone()
    };
    let admin = strait_broker();
    admin.with(|k| k.acls = vec![stale.clone()]);
    reconcile_ok(
        u,
        cluster_authorizing(true),
        admin.clone(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    let calls = admin.calls();
    assert!(calls.contains(&"create_acls 1".to_owned()), "{calls:?}");
    assert!(calls.contains(&"delete_acls 1".to_owned()), "{calls:?}");
    assert_eq!(admin.with(|k| k.acls.clone()), wanted);
}

#[tokio::test]
async fn a_topic_still_in_kafka_keeps_its_status_while_unreachable() {
    // The previous status (topic id, partitions) stays; only the conditions change.
    let mut t = topic(Target::Named, None);
    t.status = Some(strait_crds::TopicStatus {
        topic_id: Some("id-1".into()),
        partitions: Some(3),
        ..Default::default()
    });
    let admin = unreachable();
    admin.with(|k| {
        k.topics.insert(
            "orders".into(),
            TopicDescription {
                topic_id: "id-1".into(),
                partitions: (0..3).map(|p| (p, vec![0])).collect(),
                config: Default::default(),
            },
        );
    });
    let (_, seen) = reconcile_once(
        t,
        Box::new(|_| None),
        admin,
        strait_operator::topic::controller::reconcile,
    )
    .await;
    let status = status_patch(&seen, "/topics/orders");
    assert_eq!(condition(&status, "Ready")["status"], "False", "{status}");
    assert_eq!(status["topicId"], "id-1");
}

/// Writes that do not name the operator as field manager (`unknown` in managedFields on a real
/// API server). Events are left out: kube's `Recorder` cannot be given one. DELETE takes none.
fn writes_without_field_manager(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter(|s| s.method != "GET" && s.method != "DELETE" && !s.path.contains("/events"))
        .filter(|s| !s.query.contains("fieldManager=strait-operator"))
        .map(|s| format!("{} {}?{}", s.method, s.path, s.query))
        .collect()
}

#[tokio::test]
async fn every_topic_and_user_write_names_the_operator_as_field_manager() {
    let mut all = Vec::new();
    // Created: the finalizer is added, first to no finalizers, then next to another one.
    for others in [None, Some(vec!["example.com/keep".to_owned()])] {
        let mut t = topic(Target::Named, None);
        t.metadata.finalizers.clone_from(&others);
        all.extend(
            reconcile_ok(
                t,
                Box::new(|_| None),
                FakeAdmin::default(),
                strait_operator::topic::controller::reconcile,
            )
            .await,
        );
        let mut u = user(Target::Named, None, false);
        u.metadata.finalizers = others;
        all.extend(
            reconcile_ok(
                u,
                Box::new(|_| None),
                FakeAdmin::default(),
                strait_operator::user::controller::reconcile,
            )
            .await,
        );
    }
    // Updated: the topic created, the password Secret applied, statuses written.
    all.extend(
        reconcile_ok(
            topic(Target::Named, None),
            Box::new(|_| None),
            FakeAdmin::default(),
            strait_operator::topic::controller::reconcile,
        )
        .await,
    );
    all.extend(
        reconcile_ok(
            user(Target::Named, None, false),
            Box::new(|_| None),
            FakeAdmin::default(),
            strait_operator::user::controller::reconcile,
        )
        .await,
    );
    // Deleted: cleaned up and the finalizer removed, or a visible wait (status written).
    let deleted = Some(Duration::from_secs(1));
    all.extend(
        reconcile_ok(
            topic(Target::Named, deleted),
            cluster_is(PRESENT),
            FakeAdmin::default(),
            strait_operator::topic::controller::reconcile,
        )
        .await,
    );
    all.extend(
        reconcile_ok(
            user(Target::Named, deleted, false),
            cluster_is(PRESENT),
            FakeAdmin::default(),
            strait_operator::user::controller::reconcile,
        )
        .await,
    );
    let (_, waiting) = reconcile_once(
        topic(Target::Named, Some(Duration::from_secs(60))),
        cluster_is(PRESENT),
        unreachable(),
        strait_operator::topic::controller::reconcile,
    )
    .await;
    all.extend(waiting);
    let finalizer_patches = all
        .iter()
        .filter(|s| s.method == "PATCH" && s.body.to_string().contains("/metadata/finalizers"))
        .count();
    assert!(
        finalizer_patches >= 6,
        "finalizer adds and removes exercised"
    );
    assert!(
        all.iter()
            .any(|s| s.method == "PATCH" && s.path.ends_with("/secrets/app")),
        "the Secret apply exercised"
    );
    assert_eq!(writes_without_field_manager(&all), Vec::<String>::new());
}
