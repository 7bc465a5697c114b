//! Reconcile tests of the Mirror controller against the mocked API server in `fixtures.rs`: a
//! Mirror between two Strait Clusters renders the ConfigMap (`mm2.properties`) and the
//! Deployment running `strait-mirror` on it, and reports lag from the admin clients; a spec
//! change changes the configuration hash on the pod template; `mode: linked` renders
//! `mirror.mode=linked`; `failover` is refused for mm2, and for a linked Mirror scales the
//! Deployment to 0 and creates the failover Job once (never patched), its state following the
//! Job's status (InProgress, Failed with the pod's message, Completed, which stays when
//! `failover` is set back to false; withdrawn before it completes, the Job is deleted); a
//! missing target Cluster is named in the conditions.
//!
//! With real broker processes: lag measured (ListOffsets at the partitions' leaders),
//! cross-checked with librdkafka's watermarks; the rendered `mm2.properties` (addresses moved
//! to the test brokers) runs the real `strait-mirror` until the measured lag is 0; the rendered
//! linked configuration makes read-only mirror topics with the source's ends, and the failover
//! Job's command, run as its pod would, makes them writable (and succeeds again when retried);
//! with TLS and SASL, the engine's parser reads the rendered file with the Deployment's
//! environment as the passwords' only source. (The CRD's CEL rule refusing both or neither
//! source is evaluated in `crds/src/mirror.rs`.)

mod fixtures;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fixtures::{FakeAdmin, Seen, finish, mock_client, reconcile_ok};
use http::StatusCode;
use serde_json::{Value, json};
use strait_crds::Mirror;
use strait_e2e::broker::Broker;
use strait_e2e::kafka::{Admin, TestMessage, produce_all, producer_config, watermarks};
use strait_operator::admin::{TlsConfig, WireAdmin};
use strait_operator::context::{AdminFactory, Context};
use strait_operator::metrics::Metrics;
use strait_operator::mirror::controller::reconcile;

fn mirror(spec: Value) -> Mirror {
    serde_json::from_value(json!({
        "apiVersion": "strait.dev/v1alpha1", "kind": "Mirror",
        "metadata": {"name": "dr", "namespace": "ns", "uid": "m-1", "generation": 4},
        "spec": spec
    }))
    .unwrap_or_else(|e| panic!("mirror: {e}"))
}

fn east_to_west() -> Value {
    json!({
        "source": {"clusterRef": {"name": "east"}},
        "target": {"clusterRef": {"name": "west"}},
        "topics": ["orders.*"],
        "replicationFactor": 3,
        "replicas": 2
    })
}

/// A Ready Cluster `name` with one plaintext internal listener, as the API server returns it.
fn cluster(name: &str) -> Value {
    json!({
        "apiVersion": "strait.dev/v1alpha1", "kind": "Cluster",
        "metadata": {"name": name, "namespace": "ns", "uid": format!("c-{name}"), "generation": 1},
        "spec": {"replicas": 3, "zones": ["a"], "storage": {"size": "1Gi"},
                 "listeners": [{"name": "plain", "port": 9092, "type": "internal"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "AllBrokersReady",
                                   "message": "3/3", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                   "listeners": [{"name": "plain",
                                  "bootstrapServers": format!("{name}-bootstrap.ns.svc:9092")}]}
    })
}

/// The API server: Clusters `clusters` exist, the Deployment reports `ready` ready replicas
/// once applied; everything else as the fixtures' defaults (404, writes echoed).
fn api(clusters: &'static [&'static str], ready: i32) -> fixtures::Script {
    Box::new(move |seen: &Seen| {
        let name = seen.path.rsplit('/').next().unwrap_or_default();
        if seen.method == "GET" && seen.path.contains("/clusters/") {
            return clusters
                .contains(&name)
                .then(|| (StatusCode::OK, cluster(name)));
        }
        if seen.method == "PATCH" && seen.path.contains("/deployments/") {
            let mut body = seen.body.clone();
            body["metadata"]["resourceVersion"] = json!("2");
            body["status"] = json!({"replicas": 2, "readyReplicas": ready});
            return Some((StatusCode::OK, body));
        }
        None
    })
}

fn applied<'a>(seen: &'a [Seen], resource: &str) -> Vec<&'a Seen> {
    seen.iter()
        .filter(|s| s.method == "PATCH" && s.path.contains(&format!("/{resource}/")))
        .filter(|s| !s.path.ends_with("/status"))
        .collect()
}

fn status_patch(seen: &[Seen]) -> Value {
    seen.iter()
        .rev()
        .find(|s| s.method == "PATCH" && s.path.ends_with("/mirrors/dr/status"))
        .map(|s| s.body["status"].clone())
        .unwrap_or(Value::Null)
}

fn condition<'a>(status: &'a Value, kind: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

/// A fake pair of clusters: `orders` (3 partitions), `orders-eu` and `payments` on the source,
/// `east.orders` partly mirrored on the target.
fn fake_clusters() -> FakeAdmin {
    let admin = FakeAdmin::default();
    admin.with(|k| {
        for (topic, partitions) in [("orders", 3), ("orders-eu", 1), ("payments", 1)] {
            for p in 0..partitions {
                k.partitions.insert((topic.to_owned(), p), vec![0]);
            }
        }
        k.end_offsets
            .insert("orders".into(), BTreeMap::from([(0, 10), (1, 15), (2, 5)]));
        k.end_offsets
            .insert("orders-eu".into(), BTreeMap::from([(0, 2)]));
        k.end_offsets.insert(
            "east.orders".into(),
            BTreeMap::from([(0, 4), (1, 15), (2, 5)]),
        );
    });
    admin
}

#[tokio::test]
async fn a_mirror_between_clusters_renders_its_config_and_deployment_and_reports_lag() {
    let admin = fake_clusters();
    let seen = reconcile_ok(
        mirror(east_to_west()),
        api(&["east", "west"], 2),
        admin.clone(),
        reconcile,
    )
    .await;
    let maps = applied(&seen, "configmaps");
    assert_eq!(maps.len(), 1, "{seen:#?}");
    assert!(
        maps[0]
            .path
            .ends_with("/namespaces/ns/configmaps/dr-mirror-config")
    );
    assert_eq!(
        maps[0].body["data"]["mm2.properties"],
        "\
# Rendered by strait-operator from Mirror; do not edit.
clusters=east, west
east.bootstrap.servers=east-bootstrap.ns.svc:9092
east.security.protocol=PLAINTEXT
west.bootstrap.servers=west-bootstrap.ns.svc:9092
west.security.protocol=PLAINTEXT
east->west.enabled=true
west->east.enabled=false
topics=orders.*
groups=.*
replication.policy.class=org.apache.kafka.connect.mirror.DefaultReplicationPolicy
replication.policy.separator=.
replication.factor=3
"
    );
    assert_eq!(maps[0].body["metadata"]["ownerReferences"][0]["name"], "dr");
    let deployments = applied(&seen, "deployments");
    assert_eq!(deployments.len(), 1);
    let d = &deployments[0].body;
    assert!(
        deployments[0]
            .path
            .ends_with("/namespaces/ns/deployments/dr-mirror")
    );
    assert_eq!(
        (d["apiVersion"].as_str(), d["kind"].as_str()),
        (Some("apps/v1"), Some("Deployment"))
    );
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["metadata"]["ownerReferences"][0]["kind"], "Mirror");
    assert_eq!(d["metadata"]["ownerReferences"][0]["controller"], true);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["command"],
        json!([
            "strait-mirror",
            "--config",
            "/etc/strait-mirror/mm2.properties",
            "--metrics-addr",
            "0.0.0.0:9404"
        ])
    );
    assert_eq!(
        pod["volumes"][0],
        json!({"name": "config", "configMap": {"name": "dr-mirror-config"}})
    );
    let hash = d["spec"]["template"]["metadata"]["annotations"]["strait.dev/config-hash"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(hash.len(), 64, "{d}");
    // Both Clusters are reached as the Topic controller reaches them (replication listener,
    // plaintext without an operator certificates Secret); the lag counts every partition.
    let calls = admin.calls();
    assert!(
        calls.contains(&"connect east-bootstrap.ns.svc:9091".to_owned()),
        "{calls:?}"
    );
    assert!(
        calls.contains(&"connect west-bootstrap.ns.svc:9091".to_owned()),
        "{calls:?}"
    );
    let status = status_patch(&seen);
    assert_eq!(condition(&status, "Ready")["status"], "True", "{status}");
    assert_eq!(condition(&status, "Ready")["reason"], "Mirroring");
    assert_eq!(condition(&status, "Failed")["status"], "False");
    assert_eq!(status["observedGeneration"], 4);
    assert_eq!(status["configHash"], hash);
    assert_eq!(
        status["topics"],
        json!([{"name": "orders", "targetTopic": "east.orders", "lagRecords": 6},
               {"name": "orders-eu", "targetTopic": "east.orders-eu", "lagRecords": 2}])
    );
    assert!(status["lastSyncTime"].is_string(), "{status}");
}

#[tokio::test]
async fn a_spec_change_changes_the_config_hash_and_processes_not_ready_are_reported() {
    let hash_of = |seen: &[Seen]| {
        applied(seen, "deployments")
            .first()
            .map(|s| {
                s.body["spec"]["template"]["metadata"]["annotations"]["strait.dev/config-hash"]
                    .clone()
            })
            .unwrap_or(Value::Null)
    };
    let first = reconcile_ok(
        mirror(east_to_west()),
        api(&["east", "west"], 0),
        fake_clusters(),
        reconcile,
    )
    .await;
    let again = reconcile_ok(
        mirror(east_to_west()),
        api(&["east", "west"], 0),
        fake_clusters(),
        reconcile,
    )
    .await;
    assert_eq!(hash_of(&first), hash_of(&again));
    let mut changed = east_to_west();
    changed["syncGroupOffsets"] = json!(true);
    let after = reconcile_ok(
        mirror(changed),
        api(&["east", "west"], 0),
        fake_clusters(),
        reconcile,
    )
    .await;
    assert!(hash_of(&after).is_string());
    assert_ne!(hash_of(&first), hash_of(&after));
    let status = status_patch(&first);
    assert_eq!(
        condition(&status, "Ready")["reason"],
        "Deploying",
        "{status}"
    );
    assert_eq!(condition(&status, "Reconciling")["status"], "True");
    assert!(
        condition(&status, "Ready")["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("0/2 mirror processes ready"),
        "{status}"
    );
}

#[tokio::test]
async fn linked_mode_renders_mirror_mode_and_failover_is_refused_for_mm2() {
    let mut spec = east_to_west();
    spec["mode"] = json!("linked");
    let admin = fake_clusters();
    let seen = reconcile_ok(
        mirror(spec),
        api(&["east", "west"], 2),
        admin.clone(),
        reconcile,
    )
    .await;
    let maps = applied(&seen, "configmaps");
    assert_eq!(maps.len(), 1, "{seen:#?}");
    let properties = maps[0].body["data"]["mm2.properties"]
        .as_str()
        .unwrap_or_default();
    assert!(
        properties.contains("\nwest->east.enabled=false\nmirror.mode=linked\ntopics=orders.*\n"),
        "{properties}"
    );
    let deployments = applied(&seen, "deployments");
    assert_eq!(deployments.len(), 1);
    assert_eq!(deployments[0].body["spec"]["replicas"], 2);
    // The failover Job is looked for (none) and not created.
    assert!(
        seen.iter()
            .any(|s| s.method == "GET" && s.path.ends_with("/namespaces/ns/jobs/dr-failover")),
        "{seen:#?}"
    );
    assert!(jobs_written(&seen).is_empty(), "{seen:#?}");
    let status = status_patch(&seen);
    assert_eq!(
        condition(&status, "Ready")["reason"],
        "Mirroring",
        "{status}"
    );
    assert!(
        status.get("failover").is_none_or(Value::is_null),
        "{status}"
    );
    assert!(admin.calls().iter().any(|c| c == "end_offsets east.orders"));
    // failover with mm2 is refused, nothing rendered, and recorded as a refused request.
    let mut spec = east_to_west();
    spec["failover"] = json!(true);
    let seen = reconcile_ok(
        mirror(spec),
        api(&["east", "west"], 0),
        FakeAdmin::default(),
        reconcile,
    )
    .await;
    assert!(applied(&seen, "deployments").is_empty());
    assert!(jobs_written(&seen).is_empty());
    let status = status_patch(&seen);
    let ready = condition(&status, "Ready");
    assert_eq!(ready["reason"], "FailoverNotSupported");
    assert!(
        ready["message"]
            .as_str()
            .unwrap_or_default()
            .contains("only for mode linked"),
        "{ready}"
    );
    assert_eq!(status["failover"]["requested"], true);
    assert_eq!(status["failover"]["state"], "Refused");
}

/// Writes (POST, PATCH, PUT, DELETE) to Jobs.
fn jobs_written(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter()
        .filter(|s| s.method != "GET" && s.path.contains("/jobs"))
        .collect()
}

/// A linked Mirror east -> west; `failover` its spec.failover, `recorded` its status.failover.
fn linked(failover: bool, recorded: Option<Value>) -> Mirror {
    let mut spec = east_to_west();
    spec["mode"] = json!("linked");
    spec["failover"] = json!(failover);
    let mut m = mirror(spec);
    if let Some(f) = recorded {
        m.status = serde_json::from_value(json!({"failover": f}))
            .unwrap_or_else(|e| panic!("status: {e}"));
    }
    m
}

/// The API server of `api(&["east", "west"], 0)`, with the failover Job answering `job` (its
/// status; `None`: no Job) and the Job's pods `pods`.
fn api_with_job(job: Option<Value>, pods: Value) -> fixtures::Script {
    let clusters = api(&["east", "west"], 0);
    Box::new(move |seen: &Seen| {
        if seen.method == "GET" && seen.path.ends_with("/namespaces/ns/jobs/dr-failover") {
            let status = job.clone()?;
            return Some((
                StatusCode::OK,
                json!({"apiVersion": "batch/v1", "kind": "Job",
                       "metadata": {"name": "dr-failover", "namespace": "ns", "uid": "j-1"},
                       // Not what the operator would build now: it must not care.
                       "spec": {"template": {"spec": {"containers": [
                           {"name": "failover", "image": "old"}]}}},
                       "status": status}),
            ));
        }
        if seen.method == "GET" && seen.path.ends_with("/namespaces/ns/pods") {
            return Some((
                StatusCode::OK,
                json!({"apiVersion": "v1", "kind": "PodList",
                       "metadata": {"resourceVersion": "1"}, "items": pods.clone()}),
            ));
        }
        clusters(seen)
    })
}

#[tokio::test]
async fn failover_stops_the_mirror_and_creates_the_job_once() {
    let admin = fake_clusters();
    let seen = reconcile_ok(
        linked(true, None),
        api_with_job(None, json!([])),
        admin.clone(),
        reconcile,
    )
    .await;
    let deployments = applied(&seen, "deployments");
    assert_eq!(deployments.len(), 1, "{seen:#?}");
    assert_eq!(deployments[0].body["spec"]["replicas"], 0);
    let jobs = jobs_written(&seen);
    assert_eq!(jobs.len(), 1, "{seen:#?}");
    assert_eq!(jobs[0].method, "POST");
    assert!(
        jobs[0].path.ends_with("/namespaces/ns/jobs"),
        "{}",
        jobs[0].path
    );
    let job = &jobs[0].body;
    assert_eq!(job["metadata"]["name"], "dr-failover");
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "Mirror");
    assert_eq!(job["metadata"]["ownerReferences"][0]["uid"], "m-1");
    assert_eq!(job["spec"]["backoffLimit"], 6);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(
        pod["containers"][0]["command"],
        json!([
            "strait-mirror",
            "--config",
            "/etc/strait-mirror/mm2.properties",
            "--failover"
        ])
    );
    let mirror_pod = &deployments[0].body["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"], mirror_pod["volumes"]);
    assert_eq!(
        pod["containers"][0]["volumeMounts"],
        mirror_pod["containers"][0]["volumeMounts"]
    );
    // The ConfigMap the Job reads is applied before it, unchanged (the same hash).
    let maps = applied(&seen, "configmaps");
    assert_eq!(maps.len(), 1);
    let order: Vec<&str> = seen
        .iter()
        .filter(|s| s.method != "GET")
        .map(|s| s.path.rsplit('/').next().unwrap_or_default())
        .collect();
    assert_eq!(
        order,
        ["dr-mirror-config", "dr-mirror", "jobs", "status"],
        "{seen:#?}"
    );
    let status = status_patch(&seen);
    assert_eq!(status["failover"]["requested"], true, "{status}");
    assert_eq!(status["failover"]["state"], "InProgress");
    assert_eq!(condition(&status, "Ready")["reason"], "FailingOver");
    assert_eq!(condition(&status, "Reconciling")["status"], "True");
    // No lag is measured once mirroring is stopped (the source may be gone).
    assert!(admin.calls().is_empty(), "{:?}", admin.calls());

    // Next pass: the Job exists (with a template the operator would not build now); it is
    // neither re-created nor patched.
    let seen = reconcile_ok(
        linked(
            true,
            Some(json!({"requested": true, "state": "InProgress"})),
        ),
        api_with_job(Some(json!({"active": 1})), json!([])),
        FakeAdmin::default(),
        reconcile,
    )
    .await;
    assert!(jobs_written(&seen).is_empty(), "{seen:#?}");
    assert_eq!(applied(&seen, "deployments")[0].body["spec"]["replicas"], 0);
    let status = status_patch(&seen);
    assert_eq!(status["failover"]["state"], "InProgress", "{status}");
    assert_eq!(
        status["failover"]["message"],
        "failover Job running (1 pods active)"
    );
}

#[tokio::test]
async fn the_failover_state_follows_the_job_and_a_completed_one_stays_completed() {
    // The Job failed for good: the reason and the last attempt's log tail.
    let pod = json!({"metadata": {"name": "dr-failover-x"},
        "status": {"containerStatuses": [{"name": "failover", "image": "i", "imageID": "",
            "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 1, "finishedAt": "2026-12-07T20:00:00Z",
                "message": "error: failover of east->west: orders: TOPIC_AUTHORIZATION_FAILED\n"}}}]}});
    let failed = json!({"failed": 7, "conditions": [{"type": "Failed", "status": "True",
        "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]});
    let seen = reconcile_ok(
        linked(
            true,
            Some(json!({"requested": true, "state": "InProgress"})),
        ),
        api_with_job(Some(failed), json!([pod])),
        FakeAdmin::default(),
        reconcile,
    )
    .await;
    let listed = seen
        .iter()
        .find(|s| s.method == "GET" && s.path.ends_with("/pods"))
        .map(|s| s.query.clone())
        .unwrap_or_default();
    assert!(
        listed.contains("app.kubernetes.io%2Fcomponent%3Dmirror-failover")
            && listed.contains("strait.dev%2Fmirror%3Ddr"),
        "{listed}"
    );
    assert!(jobs_written(&seen).is_empty(), "{seen:#?}");
    assert_eq!(applied(&seen, "deployments")[0].body["spec"]["replicas"], 0);
    let status = status_patch(&seen);
    assert_eq!(status["failover"]["state"], "Failed", "{status}");
    assert_eq!(
        status["failover"]["message"],
        "BackoffLimitExceeded: Job has reached the specified backoff limit; last attempt: \
         exit code 1: error: failover of east->west: orders: TOPIC_AUTHORIZATION_FAILED"
    );
    assert_eq!(condition(&status, "Ready")["reason"], "FailoverFailed");
    assert_eq!(condition(&status, "Failed")["status"], "True");

    // The Job succeeded.
    let succeeded = json!({"succeeded": 1, "completionTime": "2026-12-07T20:05:00Z",
        "conditions": [{"type": "Complete", "status": "True"}]});
    let seen = reconcile_ok(
        linked(
            true,
            Some(json!({"requested": true, "state": "InProgress"})),
        ),
        api_with_job(Some(succeeded.clone()), json!([])),
        FakeAdmin::default(),
        reconcile,
    )
    .await;
    assert!(jobs_written(&seen).is_empty(), "{seen:#?}");
    let status = status_patch(&seen);
    assert_eq!(
        status["failover"],
        json!({"requested": true, "state": "Completed", "completedAt": "2026-12-07T20:05:00Z",
               "message": "the mirror topics are writable; mirroring stopped"}),
        "{status}"
    );
    assert_eq!(condition(&status, "Ready")["status"], "True");
    assert_eq!(condition(&status, "Ready")["reason"], "FailedOver");

    // spec.failover back to false, Job still there or gone: mirroring stays stopped, the Job
    // is left alone, and the status says why.
    for job in [Some(succeeded), None] {
        let seen = reconcile_ok(
            linked(false, Some(status["failover"].clone())),
            api_with_job(job, json!([])),
            FakeAdmin::default(),
            reconcile,
        )
        .await;
        assert!(jobs_written(&seen).is_empty(), "{seen:#?}");
        assert_eq!(applied(&seen, "deployments")[0].body["spec"]["replicas"], 0);
        let after = status_patch(&seen);
        assert_eq!(after["failover"]["state"], "Completed", "{after}");
        assert_eq!(after["failover"]["requested"], false);
        assert_eq!(after["failover"]["completedAt"], "2026-12-07T20:05:00Z");
        let ready = condition(&after, "Ready");
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "FailoverPermanent");
        assert!(
            ready["message"]
                .as_str()
                .unwrap_or_default()
                .contains("create a Mirror in the other direction"),
            "{ready}"
        );
    }
}

#[tokio::test]
async fn a_failover_withdrawn_before_it_completes_deletes_its_job_and_mirrors_again() {
    let seen = reconcile_ok(
        linked(
            false,
            Some(json!({"requested": true, "state": "InProgress"})),
        ),
        api_with_job(Some(json!({"active": 1, "failed": 0})), json!([])),
        fake_clusters(),
        reconcile,
    )
    .await;
    let jobs = jobs_written(&seen);
    assert_eq!(jobs.len(), 1, "{seen:#?}");
    assert_eq!(jobs[0].method, "DELETE");
    assert!(jobs[0].path.ends_with("/namespaces/ns/jobs/dr-failover"));
    // With its pods (the API's default for Jobs would orphan them).
    assert_eq!(
        jobs[0].body["propagationPolicy"], "Background",
        "{:?}",
        jobs[0]
    );
    assert_eq!(applied(&seen, "deployments")[0].body["spec"]["replicas"], 2);
    let status = status_patch(&seen);
    assert_eq!(status["failover"]["state"], "Withdrawn", "{status}");
    assert_eq!(status["failover"]["requested"], false);
}

#[tokio::test]
async fn a_missing_target_cluster_is_named_and_checked_again() {
    let (result, seen) = fixtures::reconcile_once(
        mirror(east_to_west()),
        api(&["east"], 0),
        FakeAdmin::default(),
        reconcile,
    )
    .await;
    let action = result.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(Duration::from_secs(60))
    );
    assert!(applied(&seen, "deployments").is_empty());
    let status = status_patch(&seen);
    let ready = condition(&status, "Ready");
    assert_eq!(ready["reason"], "TargetNotFound", "{status}");
    assert_eq!(
        ready["message"],
        "target Cluster west not found in namespace ns"
    );
    assert_eq!(condition(&status, "Reconciling")["status"], "True");
}

/// The operator's real admin clients, dialling the test brokers on this machine for the
/// Clusters' replication Service addresses.
struct LocalAdmins {
    by_bootstrap: BTreeMap<String, String>,
}

impl AdminFactory for LocalAdmins {
    type Admin = WireAdmin;
    fn admin(&self, bootstrap: &str, tls: Option<&TlsConfig>) -> WireAdmin {
        let admin = WireAdmin::with_tls(bootstrap, tls.cloned());
        match self.by_bootstrap.get(bootstrap) {
            Some(to) => admin.connect_via(bootstrap, to),
            None => admin,
        }
    }
}

/// One reconcile of `m` against the mocked API server (Clusters `east` and `west` Ready), the
/// operator's real admin clients reaching `east` at `src` and `west` at `tgt`; the requests.
fn real_pass(m: Mirror, src: &str, tgt: &str) -> Vec<Seen> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    runtime.block_on(async {
        let primary = serde_json::to_value(&m).unwrap_or(Value::Null);
        let ready = m.spec.replicas;
        let (client, log, server) = mock_client(primary, api(&["east", "west"], ready));
        let admins = LocalAdmins {
            by_bootstrap: BTreeMap::from([
                ("east-bootstrap.ns.svc:9091".to_owned(), src.to_owned()),
                ("west-bootstrap.ns.svc:9091".to_owned(), tgt.to_owned()),
            ]),
        };
        let metrics = Metrics::new().unwrap_or_else(|e| panic!("metrics: {e}"));
        let ctx = Context::new(client, metrics, admins);
        let result = reconcile(Arc::new(m), ctx.clone()).await;
        assert!(result.is_ok(), "{result:?}");
        finish(ctx, log, server).await
    })
}

fn produce(bootstrap: &str, topic: &str, per_partition: &[(i32, usize)]) {
    let messages: Vec<TestMessage> = per_partition
        .iter()
        .flat_map(|&(p, n)| {
            (0..n).map(move |i| TestMessage {
                value: Some(format!("{topic}-{p}-{i}").into_bytes()),
                partition: Some(p),
                ..TestMessage::default()
            })
        })
        .collect();
    let deliveries = produce_all(
        &producer_config(bootstrap),
        topic,
        &messages,
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("produce to {topic}: {e}"));
    assert!(
        deliveries.iter().all(|d| d.result.is_ok()),
        "{deliveries:?}"
    );
}

#[test]
fn lag_is_measured_from_real_brokers() {
    let source = Broker::start(&[]).unwrap_or_else(|e| panic!("source broker: {e}"));
    let target = Broker::start(&[]).unwrap_or_else(|e| panic!("target broker: {e}"));
    let (src, tgt) = (source.bootstrap(), target.bootstrap());
    let src_admin = Admin::new(&src).unwrap_or_else(|e| panic!("{e}"));
    let tgt_admin = Admin::new(&tgt).unwrap_or_else(|e| panic!("{e}"));
    for (admin, topic, partitions) in [
        (&src_admin, "orders", 3),
        (&src_admin, "orders-eu", 1),
        (&src_admin, "payments", 1),
        (&tgt_admin, "east.orders", 3),
    ] {
        admin
            .create_topic(topic, partitions, &[])
            .unwrap_or_else(|e| panic!("create {topic}: {e}"));
    }
    produce(&src, "orders", &[(0, 10), (1, 15), (2, 5)]);
    produce(&src, "orders-eu", &[(0, 2)]);
    produce(&src, "payments", &[(0, 1)]);
    // The target has a copy of part of partition 0 and all of partition 1.
    produce(&tgt, "east.orders", &[(0, 4), (1, 15)]);
    let expected_orders: i64 = (0..3)
        .map(|p| {
            let (_, s) = watermarks(&src, "orders", p).unwrap_or_else(|e| panic!("{e}"));
            let (_, t) = watermarks(&tgt, "east.orders", p).unwrap_or_else(|e| panic!("{e}"));
            s - t
        })
        .sum();
    assert_eq!(expected_orders, 6 + 5);

    let status = status_patch(&real_pass(mirror(east_to_west()), &src, &tgt));
    assert_eq!(
        status["topics"],
        json!([{"name": "orders", "targetTopic": "east.orders", "lagRecords": expected_orders},
               {"name": "orders-eu", "targetTopic": "east.orders-eu", "lagRecords": 2}]),
        "{status}"
    );
    let ready = condition(&status, "Ready");
    assert_eq!(ready["status"], "True", "{status}");
    assert!(
        ready["message"]
            .as_str()
            .unwrap_or_default()
            .contains("2 topics mirrored, 13 records behind"),
        "{ready}"
    );
}

/// `strait-mirror` next to `strait-broker` (`cargo build --release --bin strait-mirror`).
fn mirror_binary() -> std::path::PathBuf {
    let path = strait_e2e::broker::broker_binary()
        .unwrap_or_else(|e| panic!("broker binary: {e}"))
        .with_file_name("strait-mirror");
    assert!(
        path.is_file(),
        "{} missing: cargo build --release --bin strait-mirror",
        path.display()
    );
    path
}

/// A `strait-mirror` process this test started, killed on drop.
struct MirrorProcess(std::process::Child);

impl Drop for MirrorProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_rendered_config_runs_the_real_strait_mirror_until_no_lag_is_left() {
    let source = Broker::start(&[]).unwrap_or_else(|e| panic!("source broker: {e}"));
    let target = Broker::start(&[]).unwrap_or_else(|e| panic!("target broker: {e}"));
    let (src, tgt) = (source.bootstrap(), target.bootstrap());
    Admin::new(&src)
        .and_then(|a| a.create_topic("orders", 3, &[]))
        .unwrap_or_else(|e| panic!("create orders: {e}"));
    produce(&src, "orders", &[(0, 10), (1, 15), (2, 5)]);
    // Single brokers: every topic the mirror creates has one replica.
    let mut spec = east_to_west();
    spec["replicationFactor"] = json!(1);
    spec["replicas"] = json!(1);
    spec["config"] = json!({
        "offset-syncs.topic.replication.factor": "1",
        "checkpoints.topic.replication.factor": "1",
        "heartbeats.topic.replication.factor": "1"
    });
    let seen = real_pass(mirror(spec.clone()), &src, &tgt);
    let status = status_patch(&seen);
    assert_eq!(
        status["topics"],
        json!([{"name": "orders", "targetTopic": "east.orders", "lagRecords": 30}]),
        "{status}"
    );
    let properties = applied(&seen, "configmaps")
        .first()
        .and_then(|s| s.body["data"]["mm2.properties"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no ConfigMap applied: {seen:#?}"));
    // The pods' addresses are the Clusters' Services; here they are the test brokers.
    let localised = properties
        .replace("east-bootstrap.ns.svc:9092", &src)
        .replace("west-bootstrap.ns.svc:9092", &tgt);
    assert_ne!(localised, properties);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let config = dir.path().join("mm2.properties");
    let stderr = dir.path().join("mirror.log");
    std::fs::write(&config, &localised).unwrap_or_else(|e| panic!("write config: {e}"));
    let log = std::fs::File::create(&stderr).unwrap_or_else(|e| panic!("log: {e}"));
    let metrics_port = strait_e2e::broker::free_port().unwrap_or_else(|e| panic!("port: {e}"));
    let _mirror = MirrorProcess(
        std::process::Command::new(mirror_binary())
            .arg("--config")
            .arg(&config)
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn strait-mirror: {e}")),
    );
    let mirrored = strait_e2e::wait::wait_until(Duration::from_secs(60), "orders mirrored", || {
        (0..3).all(|p| {
            let s = watermarks(&src, "orders", p).map(|w| w.1);
            let t = watermarks(&tgt, "east.orders", p).map(|w| w.1);
            matches!((s, t), (Ok(s), Ok(t)) if s == t)
        })
    });
    if let Err(e) = mirrored {
        let log = std::fs::read_to_string(&stderr).unwrap_or_default();
        panic!("{e}\nstrait-mirror log:\n{log}\nconfig:\n{localised}");
    }
    let status = status_patch(&real_pass(mirror(spec), &src, &tgt));
    assert_eq!(
        status["topics"],
        json!([{"name": "orders", "targetTopic": "east.orders", "lagRecords": 0}]),
        "{status}"
    );
    let ready = condition(&status, "Ready");
    assert_eq!(ready["status"], "True", "{status}");
    assert!(
        ready["message"]
            .as_str()
            .unwrap_or_default()
            .contains("1 topics mirrored, 0 records behind"),
        "{ready}"
    );
}

/// Runs `command` (a container's, its first word `strait-mirror`) as its pod would, with the
/// ConfigMap's file at `config`, until it exits (bounded): its exit status and output.
fn run_like_the_pod(
    command: &Value,
    config: &std::path::Path,
    dir: &std::path::Path,
) -> (i32, String) {
    let words: Vec<String> = command
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|w| w.as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        words.first().map(String::as_str),
        Some("strait-mirror"),
        "{command}"
    );
    let args: Vec<String> = words[1..]
        .iter()
        .map(|w| {
            if w == "/etc/strait-mirror/mm2.properties" {
                config.display().to_string()
            } else {
                w.clone()
            }
        })
        .collect();
    let out = dir.join("failover.log");
    let log = std::fs::File::create(&out).unwrap_or_else(|e| panic!("log: {e}"));
    let err = log.try_clone().unwrap_or_else(|e| panic!("log: {e}"));
    let mut child = MirrorProcess(
        std::process::Command::new(mirror_binary())
            .args(&args)
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn strait-mirror {args:?}: {e}")),
    );
    let mut code = None;
    let exited =
        strait_e2e::wait::wait_until(Duration::from_secs(90), "the failover to exit", || {
            code = child
                .0
                .try_wait()
                .ok()
                .flatten()
                .map(|s| s.code().unwrap_or(-1));
            code.is_some()
        });
    let output = std::fs::read_to_string(&out).unwrap_or_default();
    if let Err(e) = exited {
        panic!("{e}\n{output}");
    }
    (code.unwrap_or(-1), output)
}

#[test]
fn a_linked_mirror_copies_offsets_and_its_failover_jobs_command_makes_the_topics_writable() {
    let source = Broker::start(&[]).unwrap_or_else(|e| panic!("source broker: {e}"));
    let target = Broker::start(&[]).unwrap_or_else(|e| panic!("target broker: {e}"));
    let (src, tgt) = (source.bootstrap(), target.bootstrap());
    Admin::new(&src)
        .and_then(|a| a.create_topic("orders", 3, &[]))
        .unwrap_or_else(|e| panic!("create orders: {e}"));
    produce(&src, "orders", &[(0, 10), (1, 15), (2, 5)]);
    let mut spec = east_to_west();
    spec["mode"] = json!("linked");
    spec["replicationFactor"] = json!(1);
    spec["replicas"] = json!(1);
    spec["refreshTopicsIntervalSeconds"] = json!(2);
    spec["config"] = json!({"heartbeats.topic.replication.factor": "1"});
    let seen = real_pass(mirror(spec.clone()), &src, &tgt);
    let properties = applied(&seen, "configmaps")
        .first()
        .and_then(|s| s.body["data"]["mm2.properties"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no ConfigMap applied: {seen:#?}"));
    assert!(
        properties.contains("\nmirror.mode=linked\n"),
        "{properties}"
    );
    let localised = properties
        .replace("east-bootstrap.ns.svc:9092", &src)
        .replace("west-bootstrap.ns.svc:9092", &tgt);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let config = dir.path().join("mm2.properties");
    std::fs::write(&config, &localised).unwrap_or_else(|e| panic!("write config: {e}"));
    let stderr = dir.path().join("mirror.log");
    let log = std::fs::File::create(&stderr).unwrap_or_else(|e| panic!("log: {e}"));
    let metrics_port = strait_e2e::broker::free_port().unwrap_or_else(|e| panic!("port: {e}"));
    let running = MirrorProcess(
        std::process::Command::new(mirror_binary())
            .arg("--config")
            .arg(&config)
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn strait-mirror: {e}")),
    );
    // Each partition's end on the target is the source's; what makes it linked is checked next.
    let mirrored = strait_e2e::wait::wait_until(Duration::from_secs(60), "orders linked", || {
        (0..3).all(|p| {
            let s = watermarks(&src, "orders", p);
            let t = watermarks(&tgt, "east.orders", p);
            matches!((s, t), (Ok(s), Ok(t)) if s == t)
        })
    });
    if let Err(e) = mirrored {
        let log = std::fs::read_to_string(&stderr).unwrap_or_default();
        panic!("{e}\nstrait-mirror log:\n{log}\nconfig:\n{localised}");
    }
    // A read-only mirror topic until the failover.
    let one = [TestMessage {
        value: Some(b"on west".to_vec()),
        partition: Some(0),
        ..TestMessage::default()
    }];
    let before = produce_all(
        &producer_config(&tgt),
        "east.orders",
        &one,
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("produce: {e}"));
    assert!(before.iter().all(|d| d.result.is_err()), "{before:?}");

    // spec.failover: the Deployment goes to 0 and the Job is created; run its command as its
    // pod would (the Deployment's process stopped first, as the scale-down does).
    let mut failing = spec;
    failing["failover"] = json!(true);
    let seen = real_pass(mirror(failing), &src, &tgt);
    assert_eq!(applied(&seen, "deployments")[0].body["spec"]["replicas"], 0);
    let job = jobs_written(&seen)
        .first()
        .map(|s| s.body.clone())
        .unwrap_or_else(|| panic!("no Job created: {seen:#?}"));
    assert_eq!(status_patch(&seen)["failover"]["state"], "InProgress");
    drop(running);
    let command = &job["spec"]["template"]["spec"]["containers"][0]["command"];
    let (code, output) = run_like_the_pod(command, &config, dir.path());
    assert_eq!(code, 0, "{command}: {output}");
    // Writable now, appended after the mirrored records.
    let after = produce_all(
        &producer_config(&tgt),
        "east.orders",
        &one,
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("produce: {e}"));
    assert!(after.iter().all(|d| d.result.is_ok()), "{after:?}");
    let (_, end) = watermarks(&tgt, "east.orders", 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(end, 11);
    // Run again (a retried pod): nothing left to do, still a success.
    let (code, output) = run_like_the_pod(command, &config, dir.path());
    assert_eq!(code, 0, "{output}");
}

#[tokio::test]
async fn the_engine_reads_the_rendered_tls_and_sasl_settings_from_the_deployments_env() {
    let spec = json!({
        "source": {"bootstrapServers": "kafka-1.example:9093,kafka-2.example:9093",
                   "tls": {"caCert": {"name": "ext-ca", "key": "ca.pem"}},
                   "sasl": {"mechanism": "SCRAM-SHA-256", "username": "mirror",
                            "passwordSecret": {"name": "ext-mirror", "key": "password"}}},
        "sourceAlias": "ext",
        "target": {"clusterRef": {"name": "west"},
                   "sasl": {"mechanism": "SCRAM-SHA-512", "username": "mirror-w",
                            "passwordSecret": {"name": "west-mirror", "key": "password"}}},
        "topics": ["orders\\..*", "pay(ments)?"],
        "replicationPolicy": "identity"
    });
    let scram_west: fixtures::Script = Box::new(|seen: &Seen| {
        if seen.method == "GET" && seen.path.ends_with("/clusters/west") {
            let mut west = cluster("west");
            west["spec"]["listeners"] = json!([{"name": "scram", "port": 9094, "type": "internal",
                "tls": true, "authentication": {"type": "scram-sha-512"}}]);
            west["status"]["listeners"] = json!([{"name": "scram",
                "bootstrapServers": "west-bootstrap.ns.svc:9094", "caSecret": "west-cluster-ca-cert"}]);
            return Some((StatusCode::OK, west));
        }
        None
    });
    let seen = reconcile_ok(mirror(spec), scram_west, FakeAdmin::default(), reconcile).await;
    let properties = applied(&seen, "configmaps")
        .first()
        .and_then(|s| s.body["data"]["mm2.properties"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no ConfigMap applied: {seen:#?}"));
    assert!(!properties.contains("s3cret") && !properties.contains("w-pass"));
    let deployment = applied(&seen, "deployments")
        .first()
        .map(|s| s.body.clone())
        .unwrap_or(Value::Null);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    // The pod's environment as the kubelet fills it from the Secrets.
    let secrets = BTreeMap::from([("ext-mirror", "s3cret"), ("west-mirror", "w-pass")]);
    let env: BTreeMap<String, String> = container["env"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let from = e["valueFrom"]["secretKeyRef"]["name"]
                .as_str()
                .unwrap_or_default();
            (
                e["name"].as_str().unwrap_or_default().to_owned(),
                secrets
                    .get(from)
                    .map(|v| (*v).to_owned())
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(env.len(), 2, "{container}");
    let parsed =
        strait_mirror::config::MirrorConfig::parse_with(&properties, |name| env.get(name).cloned())
            .unwrap_or_else(|e| panic!("{e}\n{properties}"));
    let ext = &parsed.clusters["ext"];
    assert_eq!(
        ext.bootstrap_servers,
        "kafka-1.example:9093,kafka-2.example:9093"
    );
    assert!(ext.security_protocol.tls() && ext.security_protocol.sasl());
    let mounts = container["volumeMounts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ca = ext
        .truststore
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    assert!(
        mounts
            .iter()
            .any(|m| ca.starts_with(m["mountPath"].as_str().unwrap_or("?"))
                && m["name"] == "source-ca"),
        "{ca} is not under the source CA mount: {mounts:?}"
    );
    let sasl = ext.sasl.clone().unwrap_or_else(|| panic!("ext sasl"));
    assert_eq!(
        (
            sasl.mechanism.as_str(),
            sasl.username.as_str(),
            sasl.password.as_str()
        ),
        ("SCRAM-SHA-256", "mirror", "s3cret")
    );
    let west = &parsed.clusters["west"];
    assert_eq!(west.bootstrap_servers, "west-bootstrap.ns.svc:9094");
    assert_eq!(
        west.sasl.as_ref().map(|s| s.password.as_str()),
        Some("w-pass")
    );
    assert!(west.truststore.is_some());
    assert_eq!(parsed.flows.len(), 1);
    let flow = &parsed.flows[0];
    assert_eq!(flow.name(), "ext->west");
    for (topic, selected) in [
        ("orders.eu", true),
        ("orders", false),
        ("pay", true),
        ("payments", true),
        ("paym", false),
    ] {
        assert_eq!(flow.topics.matches(topic), selected, "{topic}");
    }
    assert_eq!(
        flow.policy.format_remote_topic("ext", "orders.eu"),
        "orders.eu"
    );
    // Without the Secrets' values the engine refuses the file instead of sending a literal.
    assert!(strait_mirror::config::MirrorConfig::parse_with(&properties, |_| None).is_err());
}
