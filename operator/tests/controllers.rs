//! Reconcile tests of the Cluster, Topic and User controllers against the mocked API server in
//! `fixtures.rs`: create path, status patch, scale-down refused and moving, finalizer add and
//! remove, topic partition decrease refused, user credentials.

mod fixtures;

use std::collections::BTreeMap;

use fixtures::{FakeAdmin, Seen, reconcile_ok, reconcile_once};
use http::StatusCode;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};
use strait_crds::{Cluster, Topic, User};
use strait_operator::admin::{OngoingReassignment, TopicDescription};
use strait_operator::cluster::{certs, tls};

fn cluster(replicas: i32) -> Cluster {
    serde_json::from_value(json!({
        "apiVersion": "strait.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": "kafka", "namespace": "ns", "uid": "u-1", "generation": 2},
        "spec": {
            "replicas": replicas,
            "zones": ["a", "b", "c"],
            "storage": {"size": "10Gi"},
            "listeners": [{"name": "plain", "port": 9092, "type": "internal"}]
        }
    }))
    .unwrap_or_else(|e| panic!("cluster: {e}"))
}

fn json_of<T: serde::Serialize>(obj: &T) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

fn applied<'a>(seen: &'a [Seen], resource: &str) -> Vec<&'a Seen> {
    seen.iter()
        .filter(|s| {
            s.method == "PATCH"
                && s.path.contains(&format!("/{resource}/"))
                && !s.path.ends_with("/status")
        })
        .collect()
}

fn status_patch(seen: &[Seen], resource: &str) -> Value {
    seen.iter()
        .rev()
        .find(|s| s.method == "PATCH" && s.path.contains(resource) && s.path.ends_with("/status"))
        .map(|s| s.body["status"].clone())
        .unwrap_or(Value::Null)
}

fn condition<'a>(status: &'a Value, kind: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

/// A running cluster as the scripted API server shows it: `replicas[i]` pods in zone `i`, the
/// first `ready` of each zone ready (minus those named in `unready`), every pod created from
/// `pod_revision` while the StatefulSets' update revision (after an apply) is `update_revision`.
struct Running {
    replicas: Vec<i32>,
    ready: i32,
    pod_revision: &'static str,
    update_revision: &'static str,
    unready: Vec<&'static str>,
    strategy: Value,
    eviction: StatusCode,
    /// The StatefulSets were made by an operator version replicating in plaintext (their
    /// template lacks the replication annotation).
    legacy: bool,
    /// The StatefulSets' data claim template: size and StorageClass.
    claim_size: &'static str,
    claim_class: Option<&'static str>,
    /// Zones whose StatefulSet is gone (deleted orphaning its pods, which still run).
    missing: Vec<usize>,
    /// A zone whose StatefulSet's status reports `ReplicaFailure` with this message.
    replica_failure: Option<(usize, &'static str)>,
}

impl Running {
    fn new(replicas: Vec<i32>, ready: i32) -> Self {
        Running {
            replicas,
            ready,
            pod_revision: "rev1",
            update_revision: "rev1",
            unready: Vec::new(),
            strategy: json!({"type": "OnDelete"}),
            eviction: StatusCode::CREATED,
            legacy: false,
            claim_size: "10Gi",
            claim_class: None,
            missing: Vec::new(),
            replica_failure: None,
        }
    }

    /// `status.conditions` of zone `index`'s StatefulSet.
    fn sts_conditions(&self, index: usize) -> Value {
        match self.replica_failure {
            Some((zone, message)) if zone == index => json!([{
                "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": message
            }]),
            _ => json!([]),
        }
    }

    /// The stored StatefulSets' `volumeClaimTemplates`.
    fn claim_templates(&self) -> Value {
        let mut spec = json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": self.claim_size}}});
        if let Some(class) = self.claim_class {
            spec["storageClassName"] = json!(class);
        }
        json!([{"metadata": {"name": "data"}, "spec": spec}])
    }

    fn pods(&self) -> Vec<Value> {
        let mut pods = Vec::new();
        for (zone, r) in self.replicas.iter().enumerate() {
            for k in 0..*r {
                let id = i32::try_from(zone).unwrap_or(0) * 1000 + k;
                let name = format!("kafka-z{zone}-{id}");
                let ready = k < self.ready && !self.unready.contains(&name.as_str());
                // Pods carry their template's annotations.
                let annotations = if self.legacy {
                    json!({})
                } else {
                    json!({"strait.dev/replication": "mutual-tls"})
                };
                pods.push(json!({
                    "metadata": {
                        "name": name, "namespace": "ns", "uid": format!("uid-{id}"),
                        "labels": {"controller-revision-hash": format!("kafka-z{zone}-{}", self.pod_revision)},
                        "annotations": annotations
                    },
                    "status": {"hostIP": format!("10.0.0.{}", zone + 1),
                               "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
                }));
            }
        }
        pods
    }

    fn script(self) -> fixtures::Script {
        Box::new(move |seen| {
            if seen.path.ends_with("/pods") && seen.method == "GET" {
                return Some((
                    StatusCode::OK,
                    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": self.pods()}),
                ));
            }
            if seen.path.ends_with("/eviction") {
                let code = self.eviction.as_u16();
                let ok = self.eviction.is_success();
                return Some((
                    self.eviction,
                    json!({"kind": "Status", "apiVersion": "v1", "status": if ok { "Success" } else { "Failure" },
                           "code": code, "message": if ok { "" } else { "Cannot evict pod as it would violate the pod's disruption budget." }}),
                ));
            }
            if !seen.path.contains("/statefulsets/kafka-z") {
                return None;
            }
            let index: usize = seen.path.rsplit("-z").next()?.parse().ok()?;
            let r = *self.replicas.get(index)?;
            let template = if self.legacy {
                json!({})
            } else {
                json!({"metadata": {"annotations": {"strait.dev/replication": "mutual-tls"}}})
            };
            let exists = !self.missing.contains(&index);
            match seen.method.as_str() {
                "GET" if !exists => None,
                "GET" => Some((
                    StatusCode::OK,
                    json!({
                        "apiVersion": "apps/v1", "kind": "StatefulSet",
                        "metadata": {"name": format!("kafka-z{index}"), "namespace": "ns", "generation": 1,
                                     "uid": format!("sts-uid-{index}")},
                        "spec": {"replicas": r, "serviceName": "kafka-brokers", "selector": {}, "template": template,
                                 "updateStrategy": self.strategy, "volumeClaimTemplates": self.claim_templates()},
                        "status": {"replicas": r, "readyReplicas": r.min(self.ready), "observedGeneration": 1,
                                   "updateRevision": format!("kafka-z{index}-{}", self.pod_revision),
                                   "conditions": self.sts_conditions(index)}
                    }),
                )),
                "DELETE" => Some((
                    StatusCode::OK,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
                )),
                // The real API server's rule the mock used to lack: an existing StatefulSet's
                // volumeClaimTemplates are immutable.
                "PATCH"
                    if exists
                        && seen.body["spec"].get("volumeClaimTemplates").is_some()
                        && claim_templates_differ(
                            &seen.body["spec"]["volumeClaimTemplates"],
                            &self.claim_templates(),
                        ) =>
                {
                    Some(statefulset_spec_forbidden(index))
                }
                // An apply: the server's answer carries the status the StatefulSet controller
                // wrote for that spec.
                "PATCH"
                    if seen.query.contains("fieldManager") && seen.body.get("kind").is_some() =>
                {
                    let mut body = seen.body.clone();
                    body["metadata"]["generation"] = json!(2);
                    body["status"] = json!({
                        "replicas": r, "readyReplicas": r.min(self.ready), "observedGeneration": 2,
                        "updateRevision": format!("kafka-z{index}-{}", self.update_revision)
                    });
                    Some((StatusCode::OK, body))
                }
                _ => None,
            }
        })
    }
}

/// Whether two `volumeClaimTemplates` lists differ in what the API server compares: names,
/// requested storage and StorageClass.
fn claim_templates_differ(sent: &Value, stored: &Value) -> bool {
    let key = |list: &Value| -> Vec<(Value, Value, Value)> {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["metadata"]["name"].clone(),
                    t["spec"]["resources"]["requests"]["storage"].clone(),
                    t["spec"]["storageClassName"].clone(),
                )
            })
            .collect()
    };
    key(sent) != key(stored)
}

/// The API server's answer to a StatefulSet update that changes an immutable field.
fn statefulset_spec_forbidden(index: usize) -> (StatusCode, Value) {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid", "code": 422,
            "message": format!(
                "StatefulSet.apps \"kafka-z{index}\" is invalid: spec: Forbidden: updates to \
                 statefulset spec for fields other than 'replicas', 'ordinals', 'template', \
                 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' \
                 are forbidden"
            )
        }),
    )
}

/// Answers for a running cluster with `replicas[i]` pods in zone `i`, `ready` of them ready,
/// all on the current revision.
fn statefulsets(replicas: Vec<i32>, ready: i32) -> fixtures::Script {
    Running::new(replicas, ready).script()
}

fn sts_replicas(seen: &[Seen]) -> Vec<i64> {
    applied(seen, "statefulsets")
        .iter()
        .map(|s| s.body["spec"]["replicas"].as_i64().unwrap_or(-1))
        .collect()
}

#[tokio::test]
async fn cluster_create_path_applies_in_order_and_patches_status() {
    let admin = FakeAdmin::default();
    let seen = reconcile_ok(
        cluster(3),
        Box::new(|_| None),
        admin.clone(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    let order: Vec<&str> = seen
        .iter()
        .filter(|s| s.method == "PATCH" && !s.path.ends_with("/status"))
        .filter_map(|s| s.path.split('/').rev().nth(1))
        .collect();
    // The CA's public Secret and the operator's certificate first (the operator may talk to
    // the brokers before anything else is applied), the brokers' certificates before the
    // StatefulSets mounting them.
    assert_eq!(
        order,
        [
            "secrets",
            "secrets",
            "serviceaccounts",
            "configmaps",
            "services",
            "services",
            "secrets",
            "statefulsets",
            "statefulsets",
            "statefulsets",
            "poddisruptionbudgets"
        ]
    );
    assert!(
        seen.iter()
            .filter(|s| s.method == "PATCH" && !s.path.ends_with("/status"))
            .all(|s| s.query.contains("fieldManager=strait-operator")
                && s.query.contains("force=true"))
    );
    assert_eq!(sts_replicas(&seen), [1, 1, 1]);
    let status = status_patch(&seen, "/clusters/kafka");
    assert_eq!(condition(&status, "Ready")["status"], "False");
    assert_eq!(condition(&status, "Ready")["reason"], "BrokersNotReady");
    assert_eq!(status["observedGeneration"], 2);
    assert_eq!(
        status["listeners"][0]["bootstrapServers"],
        "kafka-bootstrap.ns.svc:9092"
    );
    assert!(
        admin.calls().is_empty(),
        "no admin calls without a scale-down"
    );
    // Replication over mutual TLS though no listener serves TLS: a CA, a certificate per
    // broker, the operator's own client certificate, and the rendered SSL listener.
    assert_eq!(condition(&status, "ReplicationTLS")["status"], "True");
    let ca = ca_of(&secret_sent(&seen, "POST", "kafka-cluster-ca").expect("CA created"));
    let signer = certs::Signer::new(&ca).unwrap_or_else(|e| panic!("{e}"));
    let operator =
        secret_data(&secret_sent(&seen, "PATCH", "kafka-operator-certs").expect("applied"));
    assert_eq!(operator["ca.crt"], ca.cert_pem);
    assert!(matches!(
        signer.inspect(&operator["operator.pem"]),
        tls::Existing::Issued { by_current_ca: true, ref sans, .. } if sans.is_empty()
    ));
    let brokers = secret_data(&secret_sent(&seen, "PATCH", "kafka-broker-certs").expect("applied"));
    assert_eq!(brokers["ca.crt"], ca.cert_pem);
    assert_eq!(brokers.len(), 4, "{:?}", brokers.keys());
    let config = applied(&seen, "configmaps")[0].body["data"]["server.properties"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(config.contains("REPLICATION:SSL"), "{config}");
    assert!(config.contains("\nlistener.name.replication.ssl.client.auth=required\n"));
    for sts in applied(&seen, "statefulsets") {
        let template = &sts.body["spec"]["template"];
        assert_eq!(
            template["metadata"]["annotations"]["strait.dev/replication"],
            "mutual-tls"
        );
        assert!(template["spec"]["volumes"].as_array().is_some_and(|v| {
            v.iter()
                .any(|v| v["secret"]["secretName"] == "kafka-broker-certs")
        }));
    }
}

#[tokio::test]
async fn an_earlier_versions_plaintext_cluster_keeps_plaintext_replication() {
    let admin = FakeAdmin::default();
    let mut running = Running::new(vec![2, 2, 2], 2);
    running.legacy = true;
    // A scale-down, so the operator talks to the brokers.
    running.replicas = vec![2, 2, 2];
    admin.with(|k| {
        k.partitions
            .insert(("t".to_owned(), 0), vec![0, 1000, 2000]);
    });
    let seen = reconcile_ok(
        cluster(5),
        running.script(),
        admin.clone(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    let status = status_patch(&seen, "/clusters/kafka");
    let replication = condition(&status, "ReplicationTLS");
    assert_eq!(replication["status"], "False");
    assert_eq!(replication["reason"], "PlaintextBrokers");
    // Nothing of TLS: no Secrets, the same plaintext configuration and pod template.
    assert!(
        seen.iter().all(|s| !s.path.contains("/secrets")),
        "{:?}",
        seen.iter()
            .filter(|s| s.path.contains("/secrets"))
            .collect::<Vec<_>>()
    );
    let config = applied(&seen, "configmaps")[0].body["data"]["server.properties"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(config.contains("REPLICATION:PLAINTEXT"), "{config}");
    assert!(!config.contains("ssl."), "{config}");
    for sts in applied(&seen, "statefulsets") {
        let template = &sts.body["spec"]["template"];
        assert!(template["metadata"]["annotations"]["strait.dev/replication"].is_null());
    }
    // The admin client stays plaintext for it.
    let calls = admin.calls();
    assert!(
        calls.contains(&"connect kafka-bootstrap.ns.svc:9091".to_owned()),
        "{calls:?}"
    );
    assert!(!calls.iter().any(|c| c.ends_with(" tls")), "{calls:?}");
}

#[tokio::test]
async fn ready_brokers_make_the_cluster_ready() {
    let seen = reconcile_ok(
        cluster(3),
        statefulsets(vec![1, 1, 1], 1),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    let status = status_patch(&seen, "/clusters/kafka");
    assert_eq!(condition(&status, "Ready")["status"], "True", "{status}");
    assert_eq!(status["readyReplicas"], 3);
    assert_eq!(status["clusterId"], "fake-cluster-id");
    assert_eq!(status["replicas"], 3);
    assert!(
        status["selector"]
            .as_str()
            .is_some_and(|s| s.contains("strait.dev/cluster=kafka"))
    );
}

#[tokio::test]
async fn scale_down_refused_when_replicas_do_not_fit() {
    // 5 brokers (2+2+1) down to 3; a partition with 4 replicas cannot fit on 3 brokers.
    let admin = FakeAdmin::default();
    admin
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .partitions = BTreeMap::from([(("t".to_owned(), 0), vec![0, 1, 1000, 1001])]);
    let seen = reconcile_ok(
        cluster(3),
        statefulsets(vec![2, 2, 1], 2),
        admin.clone(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert_eq!(sts_replicas(&seen), [2, 2, 1], "nothing is removed");
    let status = status_patch(&seen, "/clusters/kafka");
    let blocked = condition(&status, "ScaleDownBlocked");
    assert_eq!(blocked["status"], "True", "{status}");
    assert!(
        blocked["message"]
            .as_str()
            .is_some_and(|m| m.contains("4 replicas but only 3 brokers"))
    );
    assert_eq!(condition(&status, "Ready")["reason"], "ScaleDownRefused");
    assert!(!admin.calls().iter().any(|c| c.starts_with("reassign")));
    assert!(
        seen.iter()
            .any(|s| s.path.contains("/events") && s.body["reason"] == "ScaleDownRefused")
    );
}

#[tokio::test]
async fn scale_down_moves_partitions_before_removing_brokers() {
    let admin = FakeAdmin::default();
    admin
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .partitions = BTreeMap::from([(("t".to_owned(), 0), vec![1, 1000, 2000])]);
    let seen = reconcile_ok(
        cluster(3),
        statefulsets(vec![2, 2, 1], 2),
        admin.clone(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert_eq!(
        sts_replicas(&seen),
        [2, 2, 1],
        "zones hold their size while partitions move"
    );
    let moved = admin
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .reassigned
        .clone();
    assert_eq!(moved[&("t".to_owned(), 0)], [0, 1000, 2000]);
    let status = status_patch(&seen, "/clusters/kafka");
    assert_eq!(
        condition(&status, "ScaleDownBlocked")["reason"],
        "MovingPartitions"
    );
}

#[tokio::test]
async fn scale_down_shrinks_once_leaving_brokers_are_empty() {
    let admin = FakeAdmin::default();
    admin
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .partitions = BTreeMap::from([(("t".to_owned(), 0), vec![0, 1000, 2000])]);
    let seen = reconcile_ok(
        cluster(3),
        statefulsets(vec![2, 2, 1], 2),
        admin,
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert_eq!(sts_replicas(&seen), [1, 1, 1]);
}

#[tokio::test]
async fn scale_up_rebalances_onto_new_brokers_once_ready() {
    let admin = FakeAdmin::default();
    admin
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .partitions = (0..6)
        .map(|p| (("t".to_owned(), p), vec![0, 1000, 2000]))
        .collect();
    let seen = reconcile_ok(
        cluster(5),
        statefulsets(vec![2, 2, 1], 2),
        admin.clone(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert_eq!(sts_replicas(&seen), [2, 2, 1]);
    let moved = admin
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .reassigned
        .clone();
    assert!(
        moved.values().any(|r| r.contains(&1)) && moved.values().any(|r| r.contains(&1001)),
        "{moved:?}"
    );
    let status = status_patch(&seen, "/clusters/kafka");
    assert_eq!(condition(&status, "Ready")["status"], "True");
}

fn topic(partitions: i32, finalizer: bool, deleting: bool) -> Topic {
    let mut meta = json!({"name": "orders", "namespace": "ns", "uid": "u-2", "generation": 1, "resourceVersion": "1"});
    if finalizer {
        meta["finalizers"] = json!(["strait.dev/topic"]);
    }
    if deleting {
        meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    serde_json::from_value(json!({
        "apiVersion": "strait.dev/v1alpha1", "kind": "Topic", "metadata": meta,
        "spec": {"cluster": {"name": "kafka"}, "partitions": partitions, "replicas": 1, "config": {"retention.ms": "1000"}}
    }))
    .unwrap_or_else(|e| panic!("topic: {e}"))
}

#[tokio::test]
async fn topic_finalizer_is_added_first() {
    let t = topic(3, false, false);
    let admin = FakeAdmin::default();
    let seen = reconcile_ok(
        t,
        Box::new(|_| None),
        admin.clone(),
        strait_operator::topic::controller::reconcile,
    )
    .await;
    let patch = seen
        .iter()
        .find(|s| s.path.ends_with("/topics/orders"))
        .map(|s| s.body.to_string())
        .unwrap_or_default();
    assert!(patch.contains("strait.dev/topic"), "{patch}");
    assert!(
        admin.calls().iter().all(|c| !c.starts_with("create_topic")),
        "nothing before the finalizer"
    );
}

#[tokio::test]
async fn topic_is_created_and_status_reports_it() {
    let t = topic(3, true, false);
    let admin = FakeAdmin::default();
    let seen = reconcile_ok(
        t,
        Box::new(|_| None),
        admin.clone(),
        strait_operator::topic::controller::reconcile,
    )
    .await;
    assert!(
        admin
            .calls()
            .contains(&"connect kafka-bootstrap.ns.svc:9091".to_owned())
    );
    assert!(
        admin
            .calls()
            .contains(&"create_topic orders 3 1".to_owned())
    );
    let status = status_patch(&seen, "/topics/orders");
    assert_eq!(condition(&status, "Ready")["status"], "True");
    assert_eq!(status["partitions"], 3);
    assert_eq!(status["topicId"], "00000000-0000-0000-0000-000000000001");
    assert_eq!(status["config"]["retention.ms"], "1000");
}

#[tokio::test]
async fn topic_partition_decrease_is_refused() {
    let t = topic(3, true, false);
    let admin = FakeAdmin::default();
    admin
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .topics
        .insert(
            "orders".into(),
            TopicDescription {
                topic_id: "id".into(),
                partitions: (0..6).map(|p| (p, vec![0])).collect(),
                config: BTreeMap::from([("retention.ms".into(), "1000".into())]),
            },
        );
    let seen = reconcile_ok(
        t,
        Box::new(|_| None),
        admin.clone(),
        strait_operator::topic::controller::reconcile,
    )
    .await;
    assert!(
        !admin
            .calls()
            .iter()
            .any(|c| c.starts_with("create_partitions") || c.starts_with("create_topic"))
    );
    let status = status_patch(&seen, "/topics/orders");
    let ready = condition(&status, "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "PartitionDecreaseRefused");
    assert_eq!(status["partitions"], 6);
}

#[tokio::test]
async fn deleted_topic_is_removed_from_kafka_then_finalizer_dropped() {
    let t = topic(3, true, true);
    let admin = FakeAdmin::default();
    // Its Cluster exists: the topic is deleted from Kafka before the finalizer goes (a missing
    // Cluster releases it with no admin call, see tests/topic_user.rs).
    let seen = reconcile_ok(
        t,
        Box::new(|s| {
            (s.method == "GET" && s.path.ends_with("/clusters/kafka"))
                .then(|| (StatusCode::OK, json_of(&cluster(3))))
        }),
        admin.clone(),
        strait_operator::topic::controller::reconcile,
    )
    .await;
    assert!(admin.calls().contains(&"delete_topic orders".to_owned()));
    let patch = seen
        .iter()
        .find(|s| s.method == "PATCH" && s.path.ends_with("/topics/orders"))
        .map(|s| s.body.to_string())
        .unwrap_or_default();
    assert!(patch.contains("remove"), "finalizer removal patch: {patch}");
}

#[tokio::test]
async fn user_gets_generated_secret_scram_and_acls() {
    let u: User = serde_json::from_value(json!({
        "apiVersion": "strait.dev/v1alpha1", "kind": "User",
        "metadata": {"name": "app", "namespace": "ns", "uid": "u-3", "generation": 1, "finalizers": ["strait.dev/user"]},
        "spec": {
            "cluster": {"name": "kafka"},
            "authentication": {"type": "scram-sha-512"},
            "authorization": {"type": "simple", "acls": [
                {"resource": {"type": "topic", "name": "orders"}, "operations": ["Read", "Describe"]}
            ]}
        }
    }))
    .unwrap_or_else(|e| panic!("user: {e}"));
    let admin = FakeAdmin::default();
    let seen = reconcile_ok(
        u,
        Box::new(|_| None),
        admin.clone(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    let secret = seen
        .iter()
        .find(|s| s.method == "PATCH" && s.path.ends_with("/secrets/app"))
        .map(|s| s.body.clone())
        .unwrap_or(Value::Null);
    assert!(secret["data"]["password"].is_string(), "{secret}");
    let calls = admin.calls();
    assert!(calls.contains(&"upsert_scram app".to_owned()));
    assert!(calls.contains(&"create_acls 2".to_owned()));
    let status = status_patch(&seen, "/users/app");
    assert_eq!(status["secret"], "app");
    assert_eq!(condition(&status, "Ready")["status"], "True");
}

#[tokio::test]
async fn scram_listeners_and_authorization_are_deployed() {
    // SCRAM-SHA-512 on a plaintext and a TLS listener: SASL_PLAINTEXT and SASL_SSL, each
    // naming its mechanism (the broker refuses a SASL listener left at Kafka's GSSAPI).
    let mut c = cluster(3);
    c.spec.listeners = serde_json::from_value(json!([
        {"name": "plain", "port": 9092, "type": "internal",
         "authentication": {"type": "scram-sha-512"}},
        {"name": "secure", "port": 9094, "type": "internal", "tls": true,
         "authentication": {"type": "scram-sha-512"}}
    ]))
    .unwrap_or_else(|e| panic!("listeners: {e}"));
    let seen = reconcile_ok(
        c.clone(),
        Box::new(|_| None),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    let config = applied(&seen, "configmaps");
    let properties = config[0].body["data"]["server.properties"]
        .as_str()
        .unwrap_or_default();
    for line in [
        "listener.security.protocol.map=REPLICATION:SSL,PLAIN:SASL_PLAINTEXT,SECURE:SASL_SSL,CONTROLLER:SSL",
        "listener.name.plain.sasl.enabled.mechanisms=SCRAM-SHA-512",
        "listener.name.secure.sasl.enabled.mechanisms=SCRAM-SHA-512",
    ] {
        assert!(properties.contains(&format!("\n{line}\n")), "{properties}");
    }
    assert_eq!(applied(&seen, "statefulsets").len(), 3);
    let status = status_patch(&seen, "/clusters/kafka");
    assert_ne!(
        condition(&status, "Ready")["reason"],
        "InvalidSpec",
        "{status}"
    );

    assert!(
        !properties.contains("authorizer.class.name"),
        "{properties}"
    );

    // With `authorization`: Kafka's StandardAuthorizer, the operator's and the brokers'
    // certificate principals as super users before the user's, and the brokers deployed.
    c.spec.authorization = Some(
        serde_json::from_value(json!({"type": "simple", "superUsers": ["admin"]}))
            .unwrap_or_else(|e| panic!("authorization: {e}")),
    );
    let seen = reconcile_ok(
        c,
        Box::new(|_| None),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    let config = applied(&seen, "configmaps");
    let properties = config[0].body["data"]["server.properties"]
        .as_str()
        .unwrap_or_default();
    for line in [
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users=User:CN=strait-operator,O=strait.dev;User:CN=kafka-broker,O=strait.dev;User:admin",
    ] {
        assert!(properties.contains(&format!("\n{line}\n")), "{properties}");
    }
    assert_eq!(applied(&seen, "statefulsets").len(), 3);
    let status = status_patch(&seen, "/clusters/kafka");
    assert_ne!(
        condition(&status, "Ready")["reason"],
        "InvalidSpec",
        "{status}"
    );
}

#[tokio::test]
async fn authorization_is_refused_for_brokers_replicating_in_plaintext() {
    // Brokers an earlier operator version started replicate in plaintext: there the brokers
    // and the operator are User:ANONYMOUS, which ACLs would cut off. Refused, nothing applied.
    let mut c = cluster(3);
    c.spec.listeners = serde_json::from_value(json!([
        {"name": "plain", "port": 9092, "type": "internal",
         "authentication": {"type": "scram-sha-512"}}
    ]))
    .unwrap_or_else(|e| panic!("listeners: {e}"));
    c.spec.authorization = Some(
        serde_json::from_value(json!({"type": "simple"}))
            .unwrap_or_else(|e| panic!("authorization: {e}")),
    );
    let mut running = Running::new(vec![1, 1, 1], 1);
    running.legacy = true;
    let admin = FakeAdmin::default();
    let (result, seen) = reconcile_once(
        c,
        running.script(),
        admin.clone(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
    assert!(applied(&seen, "configmaps").is_empty());
    assert!(applied(&seen, "statefulsets").is_empty());
    assert!(admin.calls().is_empty(), "{:?}", admin.calls());
    let status = status_patch(&seen, "/clusters/kafka");
    let ready = condition(&status, "Ready");
    assert_eq!(ready["status"], "False", "{status}");
    assert_eq!(ready["reason"], "AuthorizationNeedsMutualTLS", "{status}");
    assert!(
        ready["message"]
            .as_str()
            .is_some_and(|m| m.contains("mutual TLS") && m.contains("User:ANONYMOUS")),
        "{ready}"
    );
    assert!(
        seen.iter().any(|s| s.path.contains("/events")
            && s.body["type"] == "Warning"
            && s.body["reason"] == "AuthorizationNeedsMutualTLS"),
        "a Warning Event"
    );
}

#[tokio::test]
async fn created_cluster_renders_its_controller_quorum() {
    let seen = reconcile_ok(
        cluster(3),
        Box::new(|_| None),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    let config = applied(&seen, "configmaps");
    let properties = config[0].body["data"]["server.properties"]
        .as_str()
        .unwrap_or_default();
    assert!(
        properties.contains(
            "\ncontroller.quorum.voters=0@kafka-z0-0.kafka-brokers.ns.svc:9093,\
             1000@kafka-z1-1000.kafka-brokers.ns.svc:9093,\
             2000@kafka-z2-2000.kafka-brokers.ns.svc:9093\n"
        ),
        "{properties}"
    );
    for sts in applied(&seen, "statefulsets") {
        let args = sts.body["spec"]["template"]["spec"]["containers"][0]["args"][0]
            .as_str()
            .unwrap_or_default();
        assert!(
            args.starts_with("case \"${HOSTNAME##*-}\" in 0|1000|2000) "),
            "{args}"
        );
    }
}

#[tokio::test]
async fn a_running_cluster_grows_across_three_brokers_without_a_refusal() {
    // A running one-broker cluster asked for three: its quorum formed with voter 0 alone, and
    // grows to three voters (see tests/quorum_changes.rs for the passes that promote them).
    let admin = FakeAdmin::default();
    admin.with(|k| {
        k.quorum = Some(strait_operator::admin::Quorum {
            leader: Some(0),
            voters: vec![strait_operator::admin::Replica {
                id: 0,
                directory_id: uuid::Uuid::from_u128(1),
                log_end_offset: 10,
            }],
            observers: Vec::new(),
        });
    });
    let seen = reconcile_ok(
        cluster(3),
        statefulsets(vec![1, 0, 0], 1),
        admin.clone(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert_eq!(sts_replicas(&seen), [1, 1, 1], "the cluster grows");
    let config = applied(&seen, "configmaps");
    let properties = config[0].body["data"]["server.properties"]
        .as_str()
        .unwrap_or_default();
    assert!(
        properties.contains("\ncontroller.quorum.voters=0@kafka-z0-0.kafka-brokers.ns.svc:9093\n"),
        "the seed voter stays the only one named: {properties}"
    );
    let status = status_patch(&seen, "/clusters/kafka");
    let blocked = condition(&status, "ScaleDownBlocked");
    assert_eq!(blocked["status"], "False", "{status}");
    assert_eq!(status["quorum"]["seedVoters"], json!([0]), "{status}");
    assert_eq!(
        condition(&status, "QuorumReconfiguring")["reason"],
        "QuorumChangeWaiting"
    );
    assert_eq!(
        admin
            .calls()
            .iter()
            .filter(|c| *c == "describe_quorum")
            .count(),
        1
    );
}

fn evictions(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter(|s| s.method == "POST" && s.path.ends_with("/eviction"))
        .map(|s| s.path.rsplit('/').nth(1).unwrap_or_default().to_owned())
        .collect()
}

fn deletes_pods(seen: &[Seen]) -> bool {
    seen.iter()
        .any(|s| s.method == "DELETE" && s.path.contains("/pods/"))
}

#[tokio::test]
async fn config_change_restarts_exactly_one_broker_across_all_zones() {
    // Six ready brokers over three zones, all on revision 1; the apply moved every zone's
    // StatefulSet to revision 2.
    let mut running = Running::new(vec![2, 2, 2], 2);
    running.update_revision = "rev2";
    let seen = reconcile_ok(
        cluster(6),
        running.script(),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    // One broker, a non-voter (voters are 0, 1000, 2000), is restarted; nothing else.
    assert_eq!(evictions(&seen), ["kafka-z0-1"]);
    assert!(!deletes_pods(&seen));
    let eviction = seen
        .iter()
        .find(|s| s.path.ends_with("/eviction"))
        .map(|s| s.body.clone())
        .unwrap_or(Value::Null);
    assert_eq!(
        eviction["deleteOptions"]["preconditions"]["uid"], "uid-1",
        "{eviction}"
    );
    // Kubernetes does not roll the zones itself.
    for sts in applied(&seen, "statefulsets") {
        assert_eq!(sts.body["spec"]["updateStrategy"]["type"], "OnDelete");
    }
    let status = status_patch(&seen, "/clusters/kafka");
    let rolling = condition(&status, "Rolling");
    assert_eq!(rolling["status"], "True", "{status}");
    assert_eq!(rolling["reason"], "RestartingBroker");
    assert!(
        rolling["message"]
            .as_str()
            .is_some_and(|m| m.contains("broker 1 (kafka-z0-1)") && m.contains("6 broker")),
        "{rolling}"
    );
    assert_eq!(condition(&status, "Ready")["reason"], "Rolling");
    assert!(
        seen.iter()
            .any(|s| s.path.contains("/events") && s.body["reason"] == "RollingRestart")
    );
}

#[tokio::test]
async fn no_broker_restarts_while_another_is_not_ready() {
    let mut running = Running::new(vec![2, 2, 2], 2);
    running.update_revision = "rev2";
    running.unready = vec!["kafka-z2-2001"];
    let seen = reconcile_ok(
        cluster(6),
        running.script(),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert!(evictions(&seen).is_empty(), "{:?}", evictions(&seen));
    assert!(!deletes_pods(&seen));
    let status = status_patch(&seen, "/clusters/kafka");
    let rolling = condition(&status, "Rolling");
    assert_eq!(rolling["status"], "True");
    assert_eq!(rolling["reason"], "WaitingForBrokers");
    assert!(
        rolling["message"]
            .as_str()
            .is_some_and(|m| m.contains("not ready: kafka-z2-2001")),
        "{rolling}"
    );
}

#[tokio::test]
async fn eviction_refused_by_the_disruption_budget_waits() {
    let mut running = Running::new(vec![1, 1, 1], 1);
    running.update_revision = "rev2";
    running.eviction = StatusCode::TOO_MANY_REQUESTS;
    let (action, seen) = reconcile_once(
        cluster(3),
        running.script(),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert!(
        action.is_ok(),
        "a refused eviction is not an error: {action:?}"
    );
    // All three are voters: the lowest ordinal goes first.
    assert_eq!(evictions(&seen), ["kafka-z0-0"]);
    let status = status_patch(&seen, "/clusters/kafka");
    let rolling = condition(&status, "Rolling");
    assert_eq!(rolling["reason"], "WaitingForBrokers", "{status}");
    assert!(
        rolling["message"]
            .as_str()
            .is_some_and(|m| m.contains("disruption budget")),
        "{rolling}"
    );
    assert!(
        !seen
            .iter()
            .any(|s| s.path.contains("/events") && s.body["reason"] == "RollingRestart")
    );
}

#[tokio::test]
async fn the_active_controller_restarts_last() {
    // Three voters on an old revision; voter 0 leads the quorum, so 1000 goes first.
    let mut running = Running::new(vec![1, 1, 1], 1);
    running.update_revision = "rev2";
    let admin = FakeAdmin::default();
    admin.with(|k| k.active_controller = Some(0));
    let seen = reconcile_ok(
        cluster(3),
        running.script(),
        admin.clone(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert_eq!(evictions(&seen), ["kafka-z1-1000"]);
    assert!(admin.calls().contains(&"active_controller".to_owned()));

    // A non-voter to restart first: the quorum is not even asked.
    let mut running = Running::new(vec![2, 2, 2], 2);
    running.update_revision = "rev2";
    let admin = FakeAdmin::default();
    admin.with(|k| k.active_controller = Some(0));
    let seen = reconcile_ok(
        cluster(6),
        running.script(),
        admin.clone(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert_eq!(evictions(&seen), ["kafka-z0-1"]);
    assert!(!admin.calls().contains(&"active_controller".to_owned()));
}

#[tokio::test]
async fn up_to_date_cluster_restarts_nothing() {
    let seen = reconcile_ok(
        cluster(6),
        statefulsets(vec![2, 2, 2], 2),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert!(evictions(&seen).is_empty());
    let status = status_patch(&seen, "/clusters/kafka");
    assert_eq!(condition(&status, "Rolling")["status"], "False");
    assert_eq!(condition(&status, "Ready")["status"], "True", "{status}");
}

#[tokio::test]
async fn rolling_update_statefulsets_switch_to_on_delete_before_the_new_template() {
    // StatefulSets created by an older operator, with the defaulted RollingUpdate strategy.
    let mut running = Running::new(vec![1, 1, 1], 1);
    running.strategy = json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}});
    let seen = reconcile_ok(
        cluster(3),
        running.script(),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    let sts: Vec<&Seen> = applied(&seen, "statefulsets");
    for zone in 0..3 {
        let path = format!("/statefulsets/kafka-z{zone}");
        let merge = sts
            .iter()
            .position(|s| s.path.ends_with(&path) && s.body.get("kind").is_none())
            .unwrap_or_else(|| panic!("no merge patch of zone {zone}"));
        let apply = sts
            .iter()
            .position(|s| s.path.ends_with(&path) && s.body.get("kind").is_some())
            .unwrap_or_else(|| panic!("no apply of zone {zone}"));
        assert!(merge < apply, "zone {zone}: migration before the apply");
        assert_eq!(
            sts[merge].body,
            json!({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": null}}})
        );
    }
}

fn moving(replicas: &[i32], adding: &[i32], removing: &[i32]) -> OngoingReassignment {
    OngoingReassignment {
        replicas: replicas.to_vec(),
        adding: adding.to_vec(),
        removing: removing.to_vec(),
    }
}

#[tokio::test]
async fn scale_down_waits_for_moves_in_progress_without_reissuing_them() {
    // 5 brokers down to 3: t-0 is already moving off broker 1 (Metadata shows the union of
    // old and new replicas), t-1 still has a replica on leaving broker 1001 and no move.
    let admin = FakeAdmin::default();
    admin.with(|k| {
        k.partitions = BTreeMap::from([
            (("t".to_owned(), 0), vec![0, 1000, 2000, 1]),
            (("t".to_owned(), 1), vec![1001, 0, 2000]),
        ]);
        k.ongoing =
            BTreeMap::from([(("t".to_owned(), 0), moving(&[0, 1000, 2000, 1], &[0], &[1]))]);
    });
    let seen = reconcile_ok(
        cluster(3),
        statefulsets(vec![2, 2, 1], 2),
        admin.clone(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert_eq!(sts_replicas(&seen), [2, 2, 1], "nothing is removed yet");
    assert!(admin.calls().contains(&"list_reassignments".to_owned()));
    // Only t-1 is reassigned; t-0's move is left alone.
    let moved = admin.with(|k| k.reassigned.clone());
    assert_eq!(
        moved,
        BTreeMap::from([(("t".to_owned(), 1), vec![1000, 0, 2000])])
    );
    let status = status_patch(&seen, "/clusters/kafka");
    let blocked = condition(&status, "ScaleDownBlocked");
    assert_eq!(blocked["reason"], "MovingPartitions", "{status}");
    assert_eq!(
        blocked["message"],
        "2 partitions still have a replica on brokers [1, 1001]: 1 moves in progress, 1 issued now"
    );

    // The next reconcile, with both moves running: nothing is issued at all.
    admin.with(|k| {
        k.calls.clear();
        k.reassigned.clear();
        k.partitions
            .insert(("t".to_owned(), 1), vec![1000, 0, 2000, 1001]);
        k.ongoing.insert(
            ("t".to_owned(), 1),
            moving(&[1000, 0, 2000, 1001], &[1000], &[1001]),
        );
    });
    let seen = reconcile_ok(
        cluster(3),
        statefulsets(vec![2, 2, 1], 2),
        admin.clone(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert!(
        !admin.calls().iter().any(|c| c.starts_with("reassign")),
        "{:?}",
        admin.calls()
    );
    assert_eq!(sts_replicas(&seen), [2, 2, 1]);
    let status = status_patch(&seen, "/clusters/kafka");
    assert_eq!(
        condition(&status, "ScaleDownBlocked")["message"],
        "2 partitions still have a replica on brokers [1, 1001]: 2 moves in progress, 0 issued now"
    );
}

/// `cluster(replicas)` with an external listener `ext` of `kind` on 9094 next to `plain`.
fn external_cluster(replicas: i32, kind: &str) -> Cluster {
    let mut c = cluster(replicas);
    c.spec.listeners.push(
        serde_json::from_value(json!({"name": "ext", "port": 9094, "type": kind}))
            .unwrap_or_else(|e| panic!("listener: {e}")),
    );
    c
}

/// `script`, except that applied Services named in `services` come back with that status (and
/// `nodePort` on their single port, when given).
fn with_services(
    script: fixtures::Script,
    services: Vec<(&'static str, Option<i64>, Value)>,
) -> fixtures::Script {
    Box::new(move |seen| {
        if seen.method == "PATCH" && seen.path.contains("/services/") {
            let name = seen.path.rsplit('/').next().unwrap_or_default();
            if let Some((_, node_port, status)) = services.iter().find(|(n, _, _)| *n == name) {
                let mut body = seen.body.clone();
                if let Some(port) = node_port {
                    body["spec"]["ports"][0]["nodePort"] = json!(port);
                }
                body["status"] = status.clone();
                return Some((StatusCode::OK, body));
            }
        }
        script(seen)
    })
}

fn start_command_of(seen: &[Seen], zone: usize) -> String {
    applied(seen, "statefulsets")
        .iter()
        .find(|s| s.path.ends_with(&format!("/statefulsets/kafka-z{zone}")))
        .and_then(|s| s.body["spec"]["template"]["spec"]["containers"][0]["args"][0].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn load_balancer_ingress_becomes_the_advertised_address() {
    // Brokers 0 and 1000 have their load balancer; 2000's is still being provisioned.
    let lb = |ingress: Value| json!({"loadBalancer": {"ingress": [ingress]}});
    let script = with_services(
        statefulsets(vec![1, 1, 1], 1),
        vec![
            (
                "kafka-ext-0",
                Some(31000),
                lb(json!({"ip": "203.0.113.10"})),
            ),
            (
                "kafka-ext-1000",
                Some(31001),
                lb(json!({"hostname": "b1000.example.com"})),
            ),
            ("kafka-ext-2000", Some(31002), json!({"loadBalancer": {}})),
            (
                "kafka-ext-bootstrap",
                Some(31999),
                lb(json!({"hostname": "kafka.example.com"})),
            ),
        ],
    );
    let (action, seen) = reconcile_once(
        external_cluster(3, "loadbalancer"),
        script,
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert_eq!(
        action.ok(),
        Some(kube::runtime::controller::Action::requeue(
            std::time::Duration::from_secs(15)
        )),
        "pending addresses requeue soon"
    );
    let z0 = start_command_of(&seen, 0);
    assert!(
        z0.contains(
            "case \"${HOSTNAME##*-}\" in 0) set -- \"$@\" '--override' \
             'advertised.listeners=REPLICATION://'\"${HOSTNAME}\"'.kafka-brokers.ns.svc:9091,\
             PLAIN://'\"${HOSTNAME}\"'.kafka-brokers.ns.svc:9092,EXT://203.0.113.10:9094' ;; "
        ),
        "{z0}"
    );
    // Each zone's template holds its own brokers' addresses only.
    let z1 = start_command_of(&seen, 1);
    assert!(
        z1.contains("1000) set -- ") && z1.contains("EXT://b1000.example.com:9094"),
        "{z1}"
    );
    assert!(!z1.contains("203.0.113.10"), "{z1}");
    // Pending: the in-cluster name of the broker's Service until the ingress is known.
    let z2 = start_command_of(&seen, 2);
    assert!(!z2.contains("2000) set -- \"$@\""), "{z2}");
    assert!(
        z2.contains("EXT://kafka-ext-'\"${HOSTNAME##*-}\"'.ns.svc:9094' ;; esac; exec"),
        "{z2}"
    );
    // A load balancer needs no node IP.
    let env =
        applied(&seen, "statefulsets")[0].body["spec"]["template"]["spec"]["containers"][0]["env"]
            .to_string();
    assert!(!env.contains("HOST_IP"), "{env}");
    let status = status_patch(&seen, "/clusters/kafka");
    assert_eq!(
        status["listeners"][0]["bootstrapServers"],
        "kafka-bootstrap.ns.svc:9092"
    );
    assert_eq!(
        status["listeners"][1]["bootstrapServers"],
        "kafka.example.com:9094"
    );
    let reconciling = condition(&status, "Reconciling");
    assert_eq!(reconciling["status"], "True", "{status}");
    assert_eq!(reconciling["reason"], "ExternalAddressesPending");
    assert!(
        reconciling["message"]
            .as_str()
            .is_some_and(|m| m.contains("kafka-ext-2000") && !m.contains("kafka-ext-0")),
        "{reconciling}"
    );
    // The brokers themselves are all serving.
    assert_eq!(condition(&status, "Ready")["status"], "True", "{status}");
}

#[tokio::test]
async fn node_ports_are_advertised_on_the_pods_node() {
    let script = with_services(
        statefulsets(vec![1, 1, 1], 1),
        vec![
            ("kafka-ext-0", Some(31000), json!({})),
            ("kafka-ext-1000", Some(31001), json!({})),
            ("kafka-ext-2000", Some(31002), json!({})),
            ("kafka-ext-bootstrap", Some(31999), json!({})),
        ],
    );
    let c = external_cluster(3, "nodeport");
    let seen = reconcile_ok(
        c,
        script,
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    for (zone, id, port) in [(0, 0, 31000), (1, 1000, 31001), (2, 2000, 31002)] {
        let cmd = start_command_of(&seen, zone);
        assert!(
            cmd.contains(&format!("{id}) set -- "))
                && cmd.contains(&format!("EXT://'\"${{HOST_IP}}\"':{port}' ;; ")),
            "{cmd}"
        );
        let env = &applied(&seen, "statefulsets")[zone].body["spec"]["template"]["spec"]["containers"]
            [0]["env"];
        assert!(
            env.as_array()
                .is_some_and(|e| e.iter().any(|v| v["name"] == "HOST_IP"
                    && v["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP")),
            "{env}"
        );
    }
    let status = status_patch(&seen, "/clusters/kafka");
    assert_eq!(
        status["listeners"][1]["bootstrapServers"],
        "10.0.0.1:31999,10.0.0.2:31999,10.0.0.3:31999"
    );
    assert_eq!(
        condition(&status, "Reconciling")["reason"],
        "Idle",
        "{status}"
    );
}

/// `script`, except that the label-selected lists of Services and of PersistentVolumeClaims
/// hold `services` and `claims`, and deletes succeed.
fn with_listed(
    script: fixtures::Script,
    services: Vec<Value>,
    claims: Vec<Value>,
) -> fixtures::Script {
    let list = |items: &Vec<Value>| json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items});
    Box::new(move |seen| {
        if seen.method == "GET" && seen.query.contains("labelSelector") {
            if seen.path.ends_with("/services") {
                return Some((StatusCode::OK, list(&services)));
            }
            if seen.path.ends_with("/persistentvolumeclaims") {
                return Some((StatusCode::OK, list(&claims)));
            }
        }
        if seen.method == "DELETE" {
            return Some((
                StatusCode::OK,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
            ));
        }
        script(seen)
    })
}

/// A Service of listener `ext` as the operator created it: per broker `node_id`, or the
/// listener's bootstrap Service.
fn ext_service(node_id: Option<i32>) -> Value {
    let name = node_id.map_or_else(
        || "kafka-ext-bootstrap".to_owned(),
        |id| format!("kafka-ext-{id}"),
    );
    let mut labels = json!({
        "app.kubernetes.io/name": "strait", "app.kubernetes.io/instance": "kafka",
        "app.kubernetes.io/component": "broker", "app.kubernetes.io/managed-by": "strait-operator",
        "strait.dev/cluster": "kafka", "strait.dev/listener": "ext"
    });
    if let Some(id) = node_id {
        labels["strait.dev/node-id"] = json!(id.to_string());
    }
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": name, "namespace": "ns", "uid": format!("svc-uid-{name}"), "labels": labels,
            "ownerReferences": [{"apiVersion": "strait.dev/v1alpha1", "kind": "Cluster",
                                 "name": "kafka", "uid": "u-1", "controller": true}]
        },
        "spec": {"type": "NodePort", "ports": [{"name": "ext", "port": 9094, "nodePort": 31000}]}
    })
}

fn data_claim(node_id: i32) -> Value {
    let name = format!("data-kafka-z{}-{node_id}", node_id / 1000);
    json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name, "namespace": "ns", "uid": format!("pvc-uid-{name}"),
            "labels": {"app.kubernetes.io/name": "strait", "app.kubernetes.io/instance": "kafka",
                       "app.kubernetes.io/component": "broker", "strait.dev/cluster": "kafka"}
        },
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}
    })
}

/// `(path, uid precondition)` of every DELETE.
fn deletes(seen: &[Seen]) -> Vec<(String, String)> {
    seen.iter()
        .filter(|s| s.method == "DELETE")
        .map(|s| {
            (
                s.path
                    .trim_start_matches("/api/v1/namespaces/ns/")
                    .to_owned(),
                s.body["preconditions"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// A four-broker nodeport cluster scaled to three: broker 1 (zone 0) leaves. `running` is what
/// the StatefulSets and pods look like now; the fake cluster holds no partitions on broker 1.
async fn scale_down_4_to_3(running: Vec<i32>, delete_claim: bool) -> Vec<Seen> {
    let mut c = external_cluster(3, "nodeport");
    c.spec.storage.delete_claim = delete_claim;
    let services = [Some(0), Some(1), Some(1000), Some(2000), None]
        .into_iter()
        .map(ext_service)
        .collect();
    let claims = [0, 1, 1000, 2000].into_iter().map(data_claim).collect();
    let script = with_listed(
        with_services(
            statefulsets(running, 1),
            vec![
                ("kafka-ext-0", Some(31000), json!({})),
                ("kafka-ext-1000", Some(31001), json!({})),
                ("kafka-ext-2000", Some(31002), json!({})),
                ("kafka-ext-bootstrap", Some(31999), json!({})),
            ],
        ),
        services,
        claims,
    );
    let admin = FakeAdmin::default();
    admin.with(|k| {
        k.partitions = BTreeMap::from([(("t".to_owned(), 0), vec![0, 1000, 2000])]);
    });
    reconcile_ok(
        c,
        script,
        admin,
        strait_operator::cluster::controller::reconcile,
    )
    .await
}

#[tokio::test]
async fn nothing_is_deleted_while_the_leaving_brokers_pod_exists() {
    // The StatefulSet of zone 0 shrinks now, but kafka-z0-1 is still running (terminating).
    let seen = scale_down_4_to_3(vec![2, 1, 1], true).await;
    assert_eq!(sts_replicas(&seen), [1, 1, 1]);
    assert_eq!(deletes(&seen), Vec::<(String, String)>::new());
    // The Services were looked for, by the exact selector.
    let query = seen
        .iter()
        .find(|s| s.method == "GET" && s.path.ends_with("/services"))
        .map(|s| {
            s.query
                .replace("%2F", "/")
                .replace("%3D", "=")
                .replace("%2C", ",")
        })
        .unwrap_or_default();
    assert!(
        query.contains(
            "labelSelector=strait.dev/cluster=kafka,app.kubernetes.io/managed-by=strait-operator,\
             strait.dev/listener"
        ),
        "{query}"
    );
}

#[tokio::test]
async fn a_removed_brokers_service_and_claim_go_once_its_pod_is_gone() {
    // The StatefulSets have shrunk and kafka-z0-1 is gone.
    let seen = scale_down_4_to_3(vec![1, 1, 1], true).await;
    assert_eq!(
        deletes(&seen),
        [
            (
                "services/kafka-ext-1".to_owned(),
                "svc-uid-kafka-ext-1".to_owned()
            ),
            (
                "persistentvolumeclaims/data-kafka-z0-1".to_owned(),
                "pvc-uid-data-kafka-z0-1".to_owned()
            ),
        ]
    );
    // The deletes come after the StatefulSets were applied.
    let last_sts = seen
        .iter()
        .rposition(|s| s.method == "PATCH" && s.path.contains("/statefulsets/"));
    let first_delete = seen.iter().position(|s| s.method == "DELETE");
    assert!(last_sts < first_delete, "{last_sts:?} {first_delete:?}");
    let status = status_patch(&seen, "/clusters/kafka");
    assert_eq!(
        condition(&status, "Degraded")["status"],
        "False",
        "{status}"
    );

    // Without deleteClaim the claim stays (Strimzi's semantics).
    let seen = scale_down_4_to_3(vec![1, 1, 1], false).await;
    assert_eq!(
        deletes(&seen),
        [(
            "services/kafka-ext-1".to_owned(),
            "svc-uid-kafka-ext-1".to_owned()
        )]
    );
}

#[tokio::test]
async fn a_listener_made_internal_loses_its_services_once_brokers_restarted() {
    let services: Vec<Value> = [Some(0), Some(1000), Some(2000), None]
        .into_iter()
        .map(ext_service)
        .collect();
    // `ext` is gone from the spec. The brokers still run the old template: nothing goes.
    let mut running = Running::new(vec![1, 1, 1], 1);
    running.update_revision = "rev2";
    let script = with_listed(running.script(), services.clone(), Vec::new());
    let seen = reconcile_ok(
        cluster(3),
        script,
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert_eq!(deletes(&seen), Vec::<(String, String)>::new());

    // Every broker restarted on the template without it: its Services go, bootstrap included.
    let script = with_listed(statefulsets(vec![1, 1, 1], 1), services, Vec::new());
    let seen = reconcile_ok(
        cluster(3),
        script,
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    let deleted: Vec<String> = deletes(&seen).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        deleted,
        [
            "services/kafka-ext-0",
            "services/kafka-ext-1000",
            "services/kafka-ext-2000",
            "services/kafka-ext-bootstrap"
        ]
    );
}

/// `cluster(replicas)` with its `plain` listener serving TLS.
fn tls_cluster(replicas: i32) -> Cluster {
    let mut c = cluster(replicas);
    c.spec.listeners[0].tls = true;
    c
}

/// The Secret a request carried (create or apply), decoded.
fn secret_sent(seen: &[Seen], method: &str, name: &str) -> Option<Secret> {
    seen.iter()
        .rev()
        .find(|s| {
            s.method == method && s.path.contains("/secrets") && s.body["metadata"]["name"] == name
        })
        .map(|s| serde_json::from_value(s.body.clone()).unwrap_or_else(|e| panic!("{e}")))
}

fn secret_data(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

fn ca_of(secret: &Secret) -> certs::Ca {
    let data = secret_data(secret);
    certs::Ca {
        cert_pem: data["ca.crt"].clone(),
        key_pem: data["ca.key"].clone(),
    }
}

/// `script`, except that GETs of the Secrets in `secrets` return them.
fn with_secrets(script: fixtures::Script, secrets: Vec<Secret>) -> fixtures::Script {
    Box::new(move |seen| {
        if seen.method == "GET" {
            let name = seen.path.rsplit('/').next().unwrap_or_default();
            if seen.path.contains("/secrets/")
                && let Some(s) = secrets
                    .iter()
                    .find(|s| s.metadata.name.as_deref() == Some(name))
            {
                return Some((StatusCode::OK, json_of(s)));
            }
        }
        script(seen)
    })
}

fn generation_of(seen: &[Seen], zone: usize) -> Value {
    applied(seen, "statefulsets")
        .iter()
        .find(|s| s.path.ends_with(&format!("/statefulsets/kafka-z{zone}")))
        .map(|s| {
            s.body["spec"]["template"]["metadata"]["annotations"]
                ["strait.dev/certificate-generation"]
                .clone()
        })
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn tls_cluster_gets_a_ca_and_a_certificate_per_broker_before_its_brokers() {
    let seen = reconcile_ok(
        tls_cluster(3),
        Box::new(|_| None),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    let status = status_patch(&seen, "/clusters/kafka");
    assert_eq!(condition(&status, "Ready")["reason"], "BrokersNotReady");
    assert_eq!(status["listeners"][0]["caSecret"], "kafka-cluster-ca-cert");

    // The CA is created (never applied over), its certificate published for clients.
    let created = secret_sent(&seen, "POST", "kafka-cluster-ca").expect("CA created");
    assert!(
        created
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| o[0].uid == "u-1"),
        "owned by the Cluster"
    );
    let ca = ca_of(&created);
    let public = secret_sent(&seen, "PATCH", "kafka-cluster-ca-cert").expect("CA cert applied");
    assert_eq!(
        secret_data(&public),
        BTreeMap::from([("ca.crt".to_owned(), ca.cert_pem.clone())])
    );

    // One keystore per broker, signed by that CA, naming the broker's pod.
    let brokers = secret_sent(&seen, "PATCH", "kafka-broker-certs").expect("certificates applied");
    let mut keystores = secret_data(&brokers);
    assert_eq!(keystores.remove("ca.crt"), Some(ca.cert_pem.clone()));
    assert_eq!(
        keystores.keys().collect::<Vec<_>>(),
        ["kafka-z0-0.pem", "kafka-z1-1000.pem", "kafka-z2-2000.pem"]
    );
    let signer = certs::Signer::new(&ca).unwrap_or_else(|e| panic!("{e}"));
    for (key, pem) in &keystores {
        let pod = key.trim_end_matches(".pem");
        match signer.inspect(pem) {
            tls::Existing::Issued {
                sans,
                by_current_ca,
                ..
            } => {
                assert!(by_current_ca, "{key}");
                assert!(sans.contains(&tls::San::Dns(format!("{pod}.kafka-brokers.ns.svc"))));
                assert!(sans.contains(&tls::San::Dns("kafka-bootstrap.ns.svc".into())));
            }
            tls::Existing::Unreadable => panic!("{key} unreadable"),
        }
    }

    // Secrets exist before the StatefulSets that mount them; the pods carry generation 0.
    let position = |pred: &dyn Fn(&Seen) -> bool| seen.iter().position(pred).unwrap_or(usize::MAX);
    let certs_at = position(&|s| s.path.ends_with("/secrets/kafka-broker-certs"));
    let sts_at = position(&|s| s.method == "PATCH" && s.path.contains("/statefulsets/"));
    assert!(certs_at < sts_at, "{certs_at} < {sts_at}");
    for zone in 0..3 {
        assert_eq!(generation_of(&seen, zone), "0");
    }
    let config = applied(&seen, "configmaps")[0].body["data"]["server.properties"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        config.contains("\nlistener.name.plain.ssl.keystore.type=PEM\n"),
        "{config}"
    );
    assert!(config.contains("PLAIN:SSL"), "{config}");
}

/// The Secrets the operator wrote in `seen`, as the API server would now return them.
fn stored_secrets(seen: &[Seen]) -> Vec<Secret> {
    let mut out = Vec::new();
    if let Some(ca) = secret_sent(seen, "POST", "kafka-cluster-ca") {
        out.push(ca);
    }
    out.extend(secret_sent(seen, "PATCH", "kafka-broker-certs"));
    out.extend(secret_sent(seen, "PATCH", "kafka-operator-certs"));
    out
}

#[tokio::test]
async fn an_existing_ca_and_current_certificates_are_kept() {
    // First reconcile: everything is made.
    let made = reconcile_ok(
        tls_cluster(3),
        Box::new(|_| None),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    let stored = stored_secrets(&made);
    assert_eq!(stored.len(), 3);

    // Second reconcile against what was stored: nothing is created or reissued.
    let seen = reconcile_ok(
        tls_cluster(3),
        with_secrets(statefulsets(vec![1, 1, 1], 1), stored.clone()),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert!(
        !seen
            .iter()
            .any(|s| s.method == "POST" && s.path.contains("/secrets")),
        "the CA is reused"
    );
    let public = secret_sent(&seen, "PATCH", "kafka-cluster-ca-cert").expect("CA cert applied");
    assert_eq!(secret_data(&public)["ca.crt"], ca_of(&stored[0]).cert_pem);
    let kept = secret_sent(&seen, "PATCH", "kafka-broker-certs").expect("certificates applied");
    assert_eq!(
        secret_data(&kept),
        secret_data(&stored[1]),
        "no certificate reissued"
    );
    assert!(
        secret_sent(&seen, "PATCH", "kafka-operator-certs").is_none(),
        "the operator's certificate is kept, not rewritten"
    );
    assert_eq!(generation_of(&seen, 1), "0", "no restart");
    assert_eq!(
        condition(&status_patch(&seen, "/clusters/kafka"), "Ready")["status"],
        "True"
    );
}

#[tokio::test]
async fn topics_of_a_mutual_tls_cluster_are_managed_over_tls() {
    // The operator's certificate as the Cluster controller stored it.
    let made = reconcile_ok(
        cluster(3),
        Box::new(|_| None),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    let operator = secret_sent(&made, "PATCH", "kafka-operator-certs").expect("applied");
    let admin = FakeAdmin::default();
    reconcile_ok(
        topic(3, true, false),
        with_secrets(Box::new(|_| None), vec![operator]),
        admin.clone(),
        strait_operator::topic::controller::reconcile,
    )
    .await;
    let calls = admin.calls();
    assert!(
        calls.contains(&"connect kafka-bootstrap.ns.svc:9091 tls".to_owned()),
        "{calls:?}"
    );
    assert!(calls.contains(&"create_topic orders 3 1".to_owned()));
}

#[tokio::test]
async fn certificates_from_another_ca_are_reissued_and_restart_the_brokers() {
    let first = reconcile_ok(
        tls_cluster(3),
        Box::new(|_| None),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    let mut stored = stored_secrets(&first);
    // The CA Secret was replaced (deleted and made anew): the brokers' certificates are not
    // its own.
    let other = certs::generate_ca("kafka", "ns", std::time::SystemTime::now())
        .unwrap_or_else(|e| panic!("{e}"));
    stored[0].data = Some(BTreeMap::from([
        (
            "ca.crt".to_owned(),
            k8s_openapi::ByteString(other.cert_pem.clone().into_bytes()),
        ),
        (
            "ca.key".to_owned(),
            k8s_openapi::ByteString(other.key_pem.clone().into_bytes()),
        ),
    ]));
    let old = secret_data(&stored[1]);
    let seen = reconcile_ok(
        tls_cluster(3),
        with_secrets(statefulsets(vec![1, 1, 1], 1), stored),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    let reissued =
        secret_data(&secret_sent(&seen, "PATCH", "kafka-broker-certs").expect("applied"));
    let signer = certs::Signer::new(&other).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reissued["ca.crt"], other.cert_pem);
    for (key, pem) in reissued.iter().filter(|(k, _)| k.ends_with(".pem")) {
        assert_ne!(Some(pem), old.get(key), "{key} reissued");
        assert!(matches!(
            signer.inspect(pem),
            tls::Existing::Issued {
                by_current_ca: true,
                ..
            }
        ));
    }
    for zone in 0..3 {
        assert_eq!(generation_of(&seen, zone), "1", "zone {zone} restarts");
    }
}

/// A zone StatefulSet of Cluster `kafka` as listed: zone `zone` at `index` with `replicas`.
fn zone_statefulset(index: usize, zone: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": format!("kafka-z{index}"), "namespace": "ns", "uid": format!("sts-{index}"),
                     "labels": {"strait.dev/cluster": "kafka"},
                     "ownerReferences": [{"apiVersion": "strait.dev/v1alpha1", "kind": "Cluster",
                                          "name": "kafka", "uid": "u-1", "controller": true}]},
        "spec": {"replicas": replicas, "serviceName": "kafka-brokers", "template": {},
                 "selector": {"matchLabels": {"strait.dev/cluster": "kafka", "strait.dev/zone": zone}}},
        "status": {"replicas": replicas}
    })
}

/// `script`, except that the label-selected StatefulSet list holds `sets` and deletes succeed.
fn with_zone_sets(script: fixtures::Script, sets: Vec<Value>) -> fixtures::Script {
    Box::new(move |seen| {
        if seen.method == "GET"
            && seen.path.ends_with("/statefulsets")
            && seen.query.contains("labelSelector")
        {
            return Some((
                StatusCode::OK,
                json!({"apiVersion": "apps/v1", "kind": "StatefulSetList", "metadata": {"resourceVersion": "1"}, "items": sets}),
            ));
        }
        if seen.method == "DELETE" {
            return Some((
                StatusCode::OK,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
            ));
        }
        script(seen)
    })
}

/// `cluster(replicas)` over zones a and b only (zone c removed).
fn two_zone_cluster(replicas: i32) -> Cluster {
    let mut c = cluster(replicas);
    c.spec.zones.pop();
    c
}

#[tokio::test]
async fn removing_a_zone_that_still_has_brokers_is_refused_and_nothing_changes() {
    let sets = vec![
        zone_statefulset(0, "a", 1),
        zone_statefulset(1, "b", 1),
        zone_statefulset(2, "c", 1),
    ];
    let seen = reconcile_ok(
        two_zone_cluster(2),
        with_zone_sets(statefulsets(vec![1, 1, 1], 1), sets),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert!(
        !seen.iter().any(|s| s.method == "DELETE"
            || (s.method == "PATCH"
                && !s.path.ends_with("/status")
                && !s.path.contains("/events"))),
        "nothing applied or deleted: {:?}",
        seen.iter()
            .map(|s| format!("{} {}", s.method, s.path))
            .collect::<Vec<_>>()
    );
    let status = status_patch(&seen, "/clusters/kafka");
    assert_eq!(condition(&status, "Ready")["reason"], "ZoneRemovalRefused");
    let blocked = condition(&status, "ScaleDownBlocked");
    assert_eq!(blocked["status"], "True");
    assert!(
        blocked["message"].as_str().is_some_and(|m| m.contains(
            "zone `c` (kafka-z2, position 2) was removed from spec.zones but still has 1 broker(s)"
        )),
        "{blocked}"
    );
    assert!(
        seen.iter()
            .any(|s| s.path.contains("/events") && s.body["reason"] == "ZoneRemovalRefused")
    );
}

#[tokio::test]
async fn an_empty_removed_zone_loses_its_statefulset() {
    let sets = vec![
        zone_statefulset(0, "a", 1),
        zone_statefulset(1, "b", 1),
        zone_statefulset(2, "c", 0),
    ];
    let seen = reconcile_ok(
        two_zone_cluster(2),
        with_zone_sets(statefulsets(vec![1, 1, 0], 1), sets),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    let deleted: Vec<(&str, &Value)> = seen
        .iter()
        .filter(|s| s.method == "DELETE")
        .map(|s| (s.path.as_str(), &s.body["preconditions"]["uid"]))
        .collect();
    assert_eq!(
        deleted,
        [(
            "/apis/apps/v1/namespaces/ns/statefulsets/kafka-z2",
            &json!("sts-2")
        )]
    );
    // The remaining zones are reconciled as usual.
    assert_eq!(sts_replicas(&seen), [1, 1]);
    assert_eq!(
        condition(&status_patch(&seen, "/clusters/kafka"), "Ready")["status"],
        "True"
    );
}

/// `(path, body)` of every StatefulSet DELETE.
fn statefulset_deletes(seen: &[Seen]) -> Vec<(String, Value)> {
    seen.iter()
        .filter(|s| s.method == "DELETE" && s.path.contains("/statefulsets/"))
        .map(|s| {
            (
                s.path.rsplit('/').next().unwrap_or_default().to_owned(),
                s.body.clone(),
            )
        })
        .collect()
}

/// The data claim template of zone `zone`'s applied StatefulSet: `(size, class)`.
fn applied_claim_template(seen: &[Seen], zone: usize) -> Option<(Value, Value)> {
    applied(seen, "statefulsets")
        .iter()
        .rev()
        .find(|s| {
            s.path.ends_with(&format!("/statefulsets/kafka-z{zone}"))
                && s.body.get("kind").is_some()
        })
        .map(|s| {
            let t = &s.body["spec"]["volumeClaimTemplates"][0]["spec"];
            (
                t["resources"]["requests"]["storage"].clone(),
                t["storageClassName"].clone(),
            )
        })
}

/// `(claim, requested size)` of every PersistentVolumeClaim patch.
fn claim_patches(seen: &[Seen]) -> Vec<(String, Value)> {
    seen.iter()
        .filter(|s| s.method == "PATCH" && s.path.contains("/persistentvolumeclaims/"))
        .map(|s| {
            (
                s.path.rsplit('/').next().unwrap_or_default().to_owned(),
                s.body["spec"]["resources"]["requests"]["storage"].clone(),
            )
        })
        .collect()
}

/// A data claim of broker `node_id` of `size` in StorageClass `class`.
fn sized_claim(node_id: i32, size: &str, class: Option<&str>) -> Value {
    let mut claim = data_claim(node_id);
    claim["spec"]["resources"]["requests"]["storage"] = json!(size);
    if let Some(class) = class {
        claim["spec"]["storageClassName"] = json!(class);
    }
    claim
}

/// `cluster(replicas)` asking for `size` in StorageClass `class`.
fn storage_cluster(replicas: i32, size: &str, class: Option<&str>) -> Cluster {
    let mut c = cluster(replicas);
    c.spec.storage.size = size.to_owned();
    c.spec.storage.storage_class = class.map(str::to_owned);
    c
}

#[tokio::test]
async fn a_larger_size_grows_the_claims_and_recreates_a_statefulset_never_patching_its_template() {
    // Three running brokers on 10Gi claims; the spec now asks for 20Gi. The mock refuses any
    // change to an existing StatefulSet's volumeClaimTemplates, as the API server does.
    let claims = [0, 1000, 2000]
        .into_iter()
        .map(|id| sized_claim(id, "10Gi", None))
        .collect();
    let script = with_listed(statefulsets(vec![1, 1, 1], 1), Vec::new(), claims);
    let (result, seen) = reconcile_once(
        storage_cluster(3, "20Gi", None),
        script,
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
    // Every existing claim grows in place.
    assert_eq!(
        claim_patches(&seen),
        [
            ("data-kafka-z0-0".to_owned(), json!("20Gi")),
            ("data-kafka-z1-1000".to_owned(), json!("20Gi")),
            ("data-kafka-z2-2000".to_owned(), json!("20Gi")),
        ]
    );
    // One zone's StatefulSet is deleted, orphaning its pods (they keep running), to be
    // recreated with the new template; the others keep theirs until their turn.
    let deleted = statefulset_deletes(&seen);
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0].0, "kafka-z0");
    assert_eq!(deleted[0].1["propagationPolicy"], "Orphan");
    assert_eq!(deleted[0].1["preconditions"]["uid"], "sts-uid-0");
    assert_eq!(
        applied_claim_template(&seen, 0),
        None,
        "not applied meanwhile"
    );
    for zone in [1, 2] {
        assert_eq!(
            applied_claim_template(&seen, zone),
            Some((json!("10Gi"), Value::Null))
        );
    }
    let status = status_patch(&seen, "/clusters/kafka");
    assert_eq!(status["observedGeneration"], 2);
    let storage = condition(&status, "StorageChangeBlocked");
    assert_eq!(storage["status"], "False", "{status}");
    assert_eq!(storage["reason"], "Resized");
    let reconciling = condition(&status, "Reconciling");
    assert_eq!(reconciling["reason"], "RecreatingStatefulSet", "{status}");
    assert!(
        reconciling["message"]
            .as_str()
            .is_some_and(|m| m.contains("kafka-z0") && m.contains("kafka-z1")),
        "{reconciling}"
    );
    assert!(
        seen.iter()
            .any(|s| s.path.contains("/events") && s.body["reason"] == "RecreatingStatefulSet")
    );
}

#[tokio::test]
async fn a_recreated_zone_statefulset_keeps_every_orphaned_broker() {
    // Zone 0's StatefulSet was deleted orphaning its two pods; zones 1 and 2 still have theirs
    // with the old template.
    let mut running = Running::new(vec![2, 2, 2], 2);
    running.missing = vec![0];
    let (result, seen) = reconcile_once(
        storage_cluster(6, "20Gi", None),
        running.script(),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
    // Made again with both brokers (one with fewer would delete the others' pods), and the
    // new template; the others wait for their turn.
    assert_eq!(sts_replicas(&seen), [2, 2, 2]);
    assert_eq!(
        applied_claim_template(&seen, 0),
        Some((json!("20Gi"), Value::Null))
    );
    assert_eq!(
        applied_claim_template(&seen, 1),
        Some((json!("10Gi"), Value::Null))
    );
    assert!(statefulset_deletes(&seen).is_empty());
    let status = status_patch(&seen, "/clusters/kafka");
    assert_eq!(
        condition(&status, "ScaleDownBlocked")["status"],
        "False",
        "{status}"
    );
    assert_eq!(status["readyReplicas"], 6);
    // The orphaned pods tell how the zone replicates (here over mutual TLS).
    assert_eq!(condition(&status, "ReplicationTLS")["status"], "True");
}

#[tokio::test]
async fn a_smaller_size_is_refused_and_nothing_the_api_server_refuses_is_applied() {
    let claims = [0, 1000, 2000]
        .into_iter()
        .map(|id| sized_claim(id, "10Gi", None))
        .collect();
    let script = with_listed(statefulsets(vec![1, 1, 1], 1), Vec::new(), claims);
    let (result, seen) = reconcile_once(
        storage_cluster(3, "5Gi", None),
        script,
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
    assert!(claim_patches(&seen).is_empty());
    assert!(statefulset_deletes(&seen).is_empty());
    for zone in 0..3 {
        assert_eq!(
            applied_claim_template(&seen, zone),
            Some((json!("10Gi"), Value::Null)),
            "zone {zone} keeps its size"
        );
    }
    let status = status_patch(&seen, "/clusters/kafka");
    let storage = condition(&status, "StorageChangeBlocked");
    assert_eq!(storage["status"], "True", "{status}");
    assert_eq!(storage["reason"], "StorageShrinkRefused");
    assert_eq!(
        storage["message"],
        "storage cannot shrink from 10Gi to 5Gi: claims and StatefulSets keep 10Gi"
    );
    // The brokers serve as before.
    assert_eq!(condition(&status, "Ready")["status"], "True", "{status}");
    assert_eq!(condition(&status, "Degraded")["status"], "False");
}

#[tokio::test]
async fn a_new_storage_class_is_for_new_brokers_existing_claims_keep_theirs() {
    let claims = [0, 1000, 2000]
        .into_iter()
        .map(|id| sized_claim(id, "10Gi", Some("standard")))
        .collect();
    let mut running = Running::new(vec![1, 1, 1], 1);
    running.claim_class = Some("standard");
    let script = with_listed(running.script(), Vec::new(), claims);
    let (result, seen) = reconcile_once(
        storage_cluster(3, "10Gi", Some("fast")),
        script,
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
    assert!(
        claim_patches(&seen).is_empty(),
        "a claim's class cannot change"
    );
    let deleted = statefulset_deletes(&seen);
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0].1["propagationPolicy"], "Orphan");
    assert_eq!(
        applied_claim_template(&seen, 1),
        Some((json!("10Gi"), json!("standard")))
    );
    let status = status_patch(&seen, "/clusters/kafka");
    let storage = condition(&status, "StorageChangeBlocked");
    assert_eq!(storage["status"], "True", "{status}");
    assert_eq!(storage["reason"], "StorageClassKept");
    assert_eq!(
        storage["message"],
        "existing claims data-kafka-z0-0, data-kafka-z1-1000, data-kafka-z2-2000 keep \
         StorageClass standard (a claim's class cannot change); new brokers get fast"
    );
}

#[tokio::test]
async fn claims_whose_storage_class_cannot_expand_are_reported_not_patched() {
    // Broker 0's class says so; broker 1000's class cannot be read and the API server refuses
    // the patch; broker 2000's grows.
    let claims = vec![
        sized_claim(0, "10Gi", Some("fixed")),
        sized_claim(1000, "10Gi", Some("hidden")),
        sized_claim(2000, "10Gi", Some("fast")),
    ];
    let listed = with_listed(statefulsets(vec![1, 1, 1], 1), Vec::new(), claims);
    let script: fixtures::Script = Box::new(move |seen| {
        let class = |name: &str, expand: bool| {
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                   "metadata": {"name": name}, "provisioner": "x", "allowVolumeExpansion": expand})
        };
        match (seen.method.as_str(), seen.path.as_str()) {
            ("GET", "/apis/storage.k8s.io/v1/storageclasses/fixed") => {
                Some((StatusCode::OK, class("fixed", false)))
            }
            ("GET", "/apis/storage.k8s.io/v1/storageclasses/fast") => {
                Some((StatusCode::OK, class("fast", true)))
            }
            ("GET", "/apis/storage.k8s.io/v1/storageclasses/hidden") => Some((
                StatusCode::FORBIDDEN,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden",
                       "code": 403, "message": "storageclasses.storage.k8s.io \"hidden\" is forbidden"}),
            )),
            ("PATCH", "/api/v1/namespaces/ns/persistentvolumeclaims/data-kafka-z1-1000") => Some((
                StatusCode::FORBIDDEN,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
                       "message": "persistentvolumeclaims \"data-kafka-z1-1000\" is forbidden: only dynamically \
                                   provisioned pvc can be resized and the storageclass that provisions the pvc \
                                   must support resize"}),
            )),
            _ => listed(seen),
        }
    });
    let (result, seen) = reconcile_once(
        storage_cluster(3, "20Gi", None),
        script,
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(
        claim_patches(&seen),
        [
            ("data-kafka-z1-1000".to_owned(), json!("20Gi")),
            ("data-kafka-z2-2000".to_owned(), json!("20Gi")),
        ],
        "never the claim whose class does not expand"
    );
    let status = status_patch(&seen, "/clusters/kafka");
    let storage = condition(&status, "StorageChangeBlocked");
    assert_eq!(storage["status"], "True", "{status}");
    assert_eq!(storage["reason"], "ExpansionNotSupported");
    let message = storage["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("data-kafka-z0-0 cannot grow to 20Gi: StorageClass fixed does not allow volume expansion")
            && message.contains("data-kafka-z1-1000 cannot grow to 20Gi: persistentvolumeclaims")
            && !message.contains("data-kafka-z2-2000"),
        "{message}"
    );
}

#[tokio::test]
async fn a_scale_down_while_the_brokers_do_not_answer_still_applies_the_rest() {
    // Five brokers to three, with a config change, while the admin API is unreachable.
    let mut c = cluster(3);
    c.spec
        .config
        .insert("num.partitions".to_owned(), "7".to_owned());
    let admin = FakeAdmin::default();
    admin.with(|k| k.unreachable = true);
    let (result, seen) = reconcile_once(
        c,
        statefulsets(vec![2, 2, 1], 2),
        admin,
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(sts_replicas(&seen), [2, 2, 1], "the brokers are kept");
    let config = applied(&seen, "configmaps")[0].body["data"]["server.properties"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(config.contains("\nnum.partitions=7\n"), "{config}");
    let status = status_patch(&seen, "/clusters/kafka");
    assert_eq!(status["observedGeneration"], 2);
    let blocked = condition(&status, "ScaleDownBlocked");
    assert_eq!(blocked["status"], "True", "{status}");
    assert_eq!(blocked["reason"], "AdminUnavailable");
    assert!(
        blocked["message"]
            .as_str()
            .is_some_and(|m| m.contains("[1, 1001]") && m.contains("connection refused")),
        "{blocked}"
    );
    assert_eq!(condition(&status, "Ready")["reason"], "AdminUnavailable");
    assert_eq!(condition(&status, "Degraded")["reason"], "AdminUnavailable");
}

#[tokio::test]
async fn a_failed_step_is_written_into_the_status_before_the_retry() {
    // The PodDisruptionBudget cannot be applied (say, a chart without the right).
    let running = statefulsets(vec![1, 1, 1], 1);
    let script: fixtures::Script = Box::new(move |seen| {
        if seen.method == "PATCH" && seen.path.contains("/poddisruptionbudgets/") {
            return Some((
                StatusCode::FORBIDDEN,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden",
                       "code": 403, "message": "poddisruptionbudgets.policy \"kafka\" is forbidden"}),
            ));
        }
        running(seen)
    });
    let (result, seen) = reconcile_once(
        cluster(3),
        script,
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert!(result.is_err(), "the failure still backs off");
    // What came before the failure was applied, and the status says what failed.
    assert_eq!(sts_replicas(&seen), [1, 1, 1]);
    let status = status_patch(&seen, "/clusters/kafka");
    assert_eq!(status["observedGeneration"], 2, "{status}");
    let ready = condition(&status, "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "ReconcileFailed");
    assert!(
        ready["message"].as_str().is_some_and(
            |m| m.contains("applying the PodDisruptionBudget") && m.contains("forbidden")
        ),
        "{ready}"
    );
    assert_eq!(condition(&status, "Degraded")["reason"], "ReconcileFailed");
    assert_eq!(status["readyReplicas"], 3);
}

#[tokio::test]
async fn ready_brokers_behind_an_unreachable_admin_api_are_not_ready() {
    let admin = FakeAdmin::default();
    admin.with(|k| k.unreachable = true);
    let seen = reconcile_ok(
        cluster(3),
        statefulsets(vec![1, 1, 1], 1),
        admin,
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    let status = status_patch(&seen, "/clusters/kafka");
    let ready = condition(&status, "Ready");
    assert_eq!(ready["status"], "False", "{status}");
    assert_eq!(ready["reason"], "AdminUnavailable");
    assert!(
        ready["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("3/3 brokers ready") && m.contains("connection refused")),
        "{ready}"
    );
    assert_eq!(condition(&status, "Degraded")["reason"], "AdminUnavailable");
    assert_eq!(status["readyReplicas"], 3);
}

#[tokio::test]
async fn pods_that_cannot_be_created_say_why_in_ready() {
    // No pod can be made: zone 0's StatefulSet reports it in its status, zone 1's only in an
    // Event.
    let mut running = Running::new(vec![1, 1, 1], 0);
    running.replica_failure = Some((
        0,
        "pods \"kafka-z0-0\" is forbidden: no PriorityClass with name gold was found",
    ));
    let running = running.script();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let script: fixtures::Script = Box::new(move |seen| {
        if seen.method == "GET" && seen.path == "/api/v1/namespaces/ns/events" {
            return Some((
                StatusCode::OK,
                json!({"apiVersion": "v1", "kind": "EventList", "metadata": {"resourceVersion": "1"}, "items": [{
                    "metadata": {"name": "kafka-z1.1", "namespace": "ns"},
                    "involvedObject": {"kind": "StatefulSet", "name": "kafka-z1", "namespace": "ns"},
                    "reason": "FailedCreate", "type": "Warning", "lastTimestamp": now,
                    "message": "create Pod kafka-z1-1000 in StatefulSet kafka-z1 failed error: exceeded quota"
                }]}),
            ));
        }
        running(seen)
    });
    let seen = reconcile_ok(
        cluster(3),
        script,
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    let listed = seen
        .iter()
        .find(|s| s.method == "GET" && s.path == "/api/v1/namespaces/ns/events")
        .map(|s| s.query.replace("%3D", "=").replace("%2C", ","))
        .unwrap_or_default();
    assert!(
        listed.contains("fieldSelector=involvedObject.kind=StatefulSet,reason=FailedCreate"),
        "{listed}"
    );
    let status = status_patch(&seen, "/clusters/kafka");
    let ready = condition(&status, "Ready");
    assert_eq!(ready["reason"], "FailedCreate", "{status}");
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("0/3 brokers ready; pods cannot be created: ")
            && message.contains("no PriorityClass with name gold")
            && message.contains("exceeded quota"),
        "{message}"
    );
}

#[tokio::test]
async fn the_lease_is_released_on_shutdown_only_while_held() {
    let lease = |holder: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "strait-operator", "namespace": "ops", "resourceVersion": "7"},
               "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "leaseTransitions": 3,
                        "renewTime": "2026-01-01T00:00:00.000000Z"}})
    };
    for (holder, released) in [("me", true), ("other", false)] {
        let stored = lease(holder);
        let (client, log, server) = fixtures::mock_client(
            Value::Null,
            Box::new(move |seen| {
                (seen.method == "GET" && seen.path.ends_with("/leases/strait-operator"))
                    .then(|| (StatusCode::OK, stored.clone()))
            }),
        );
        let elector = strait_operator::leader::Elector::new(client, "ops", "strait-operator", "me");
        let result = elector.release().await;
        assert_eq!(result.ok(), Some(released), "held by {holder}");
        drop(elector);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(20), server).await;
        let seen = log.lock().map(|l| l.clone()).unwrap_or_default();
        let puts: Vec<&Seen> = seen.iter().filter(|s| s.method == "PUT").collect();
        if !released {
            assert!(puts.is_empty(), "another holder's lease is left alone");
            continue;
        }
        assert_eq!(puts.len(), 1, "{seen:?}");
        let body = &puts[0].body;
        assert!(body["spec"]["holderIdentity"].is_null(), "{body}");
        assert_eq!(body["spec"]["leaseDurationSeconds"], 1);
        assert_eq!(body["spec"]["leaseTransitions"], 3);
        assert_eq!(
            body["metadata"]["resourceVersion"], "7",
            "a takeover since the read wins"
        );
        assert!(puts[0].query.contains("fieldManager=strait-operator"));
    }
}

/// Writes (every request but reads and deletes, which take no field manager) that do not name
/// the operator as field manager; Events are written by kube's `Recorder`, which sets none.
fn writes_without_field_manager(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter(|s| s.method != "GET" && s.method != "DELETE" && !s.path.contains("/events"))
        .filter(|s| !s.query.contains("fieldManager=strait-operator"))
        .map(|s| format!("{} {}?{}", s.method, s.path, s.query))
        .collect()
}

#[tokio::test]
async fn every_write_names_the_operator_as_field_manager() {
    let mut all = Vec::new();
    // A new TLS cluster: the CA is created (POST), everything else applied, status patched.
    all.extend(
        reconcile_ok(
            tls_cluster(3),
            Box::new(|_| None),
            FakeAdmin::default(),
            strait_operator::cluster::controller::reconcile,
        )
        .await,
    );
    // A roll (an eviction) of StatefulSets still on RollingUpdate (merge patches).
    let mut running = Running::new(vec![2, 2, 2], 2);
    running.update_revision = "rev2";
    running.strategy = json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}});
    all.extend(
        reconcile_ok(
            cluster(6),
            running.script(),
            FakeAdmin::default(),
            strait_operator::cluster::controller::reconcile,
        )
        .await,
    );
    // Claims grown (PVC patches), a StatefulSet recreated.
    let claims = [0, 1000, 2000]
        .into_iter()
        .map(|id| sized_claim(id, "10Gi", None))
        .collect();
    all.extend(
        reconcile_ok(
            storage_cluster(3, "20Gi", None),
            with_listed(statefulsets(vec![1, 1, 1], 1), Vec::new(), claims),
            FakeAdmin::default(),
            strait_operator::cluster::controller::reconcile,
        )
        .await,
    );
    // A refused scale-down and an invalid spec: their own status writes.
    let admin = FakeAdmin::default();
    admin.with(|k| k.unreachable = true);
    all.extend(
        reconcile_ok(
            cluster(3),
            statefulsets(vec![2, 2, 1], 2),
            admin,
            strait_operator::cluster::controller::reconcile,
        )
        .await,
    );
    let mut invalid = cluster(3);
    invalid.spec.replicas = 0;
    all.extend(
        reconcile_ok(
            invalid,
            Box::new(|_| None),
            FakeAdmin::default(),
            strait_operator::cluster::controller::reconcile,
        )
        .await,
    );
    for needed in ["POST", "PATCH"] {
        assert!(all.iter().any(|s| s.method == needed), "{needed} exercised");
    }
    assert!(
        all.iter()
            .any(|s| s.method == "PATCH" && s.path.contains("/persistentvolumeclaims/")),
        "claim patches exercised"
    );
    assert!(
        all.iter().any(|s| s.path.ends_with("/eviction")),
        "evictions exercised"
    );
    assert_eq!(writes_without_field_manager(&all), Vec::<String>::new());
}

fn tls_user(deleting: bool) -> User {
    let mut meta = json!({"name": "alice", "namespace": "ns", "uid": "u-7", "generation": 1,
                          "finalizers": ["strait.dev/user"]});
    if deleting {
        meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    serde_json::from_value(json!({
        "apiVersion": "strait.dev/v1alpha1", "kind": "User",
        "metadata": meta,
        "spec": {
            "cluster": {"name": "kafka"},
            "authentication": {"type": "tls"},
            "authorization": {"type": "simple", "acls": [
                {"resource": {"type": "topic", "name": "orders"}, "operations": ["Write"]}
            ]}
        }
    }))
    .unwrap_or_else(|e| panic!("user: {e}"))
}

/// `script`, except that the Cluster `kafka` (with authorization) exists.
fn with_authorizing_cluster(script: fixtures::Script) -> fixtures::Script {
    let mut c = cluster(3);
    c.spec.authorization = serde_json::from_value(json!({"type": "simple"}))
        .unwrap_or_else(|e| panic!("authorization: {e}"));
    let c = json_of(&c);
    Box::new(move |s| {
        if s.method == "GET" && s.path.ends_with("/clusters/kafka") {
            return Some((StatusCode::OK, c.clone()));
        }
        script(s)
    })
}

/// Whether the User Secret `data` holds a certificate for `CN=alice` by `ca`, with its key.
fn issued_by(data: &BTreeMap<String, String>, ca: &certs::Ca) -> bool {
    let signer = certs::Signer::new(ca).unwrap_or_else(|e| panic!("signer: {e}"));
    matches!(
        signer.inspect(&format!("{}{}", data["user.key"], data["user.crt"])),
        tls::Existing::Issued {
            by_current_ca: true,
            ..
        }
    )
}

#[tokio::test]
async fn tls_user_gets_a_certificate_from_the_clients_ca_acls_for_its_subject_and_no_scram() {
    let admin = FakeAdmin::default();
    let seen = reconcile_ok(
        tls_user(false),
        with_authorizing_cluster(Box::new(|_| None)),
        admin.clone(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    // The clients CA is created (never applied) and its certificate published for the brokers.
    let ca = ca_of(
        &secret_sent(&seen, "POST", "kafka-clients-ca").unwrap_or_else(|| panic!("no clients CA")),
    );
    let ca_cert = secret_sent(&seen, "PATCH", "kafka-clients-ca-cert")
        .unwrap_or_else(|| panic!("no clients CA cert"));
    assert_eq!(secret_data(&ca_cert)["ca.crt"], ca.cert_pem);
    // The user's Secret: Strimzi's keys, owned by the User (deleting the User deletes it).
    let secret = secret_sent(&seen, "PATCH", "alice").unwrap_or_else(|| panic!("no user Secret"));
    let data = secret_data(&secret);
    assert_eq!(
        data.keys().map(String::as_str).collect::<Vec<_>>(),
        ["ca.crt", "user.crt", "user.key"]
    );
    assert_eq!(data["ca.crt"], ca.cert_pem);
    assert!(issued_by(&data, &ca));
    let owners = secret.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1);
    assert_eq!(
        (owners[0].kind.as_str(), owners[0].uid.as_str()),
        ("User", "u-7")
    );
    // No SCRAM credential (one left from a SCRAM past is removed); ACLs name the subject.
    let calls = admin.calls();
    assert!(
        !calls.iter().any(|c| c.starts_with("upsert_scram")),
        "{calls:?}"
    );
    assert!(
        calls.contains(&"delete_scram alice".to_owned()),
        "{calls:?}"
    );
    let acls = admin.with(|k| k.acls.clone());
    assert_eq!(acls.len(), 1);
    assert_eq!(acls[0].principal, "User:CN=alice");
    let status = status_patch(&seen, "/users/alice");
    assert_eq!(status["username"], "CN=alice");
    assert_eq!(status["secret"], "alice");
    assert_eq!(condition(&status, "Ready")["status"], "True");

    // Next pass: the stored CA and certificate are kept; a certificate of another CA is not.
    let stored = vec![
        secret_sent(&seen, "POST", "kafka-clients-ca").unwrap_or_default(),
        secret.clone(),
    ];
    let again = reconcile_ok(
        tls_user(false),
        with_authorizing_cluster(with_secrets(Box::new(|_| None), stored)),
        admin.clone(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    assert!(secret_sent(&again, "POST", "kafka-clients-ca").is_none());
    assert!(secret_sent(&again, "PATCH", "alice").is_none());
    let other = certs::generate_clients_ca("kafka", "ns", std::time::SystemTime::now())
        .unwrap_or_else(|e| panic!("{e}"));
    let stored = [
        secret_sent(&seen, "POST", "kafka-clients-ca").unwrap_or_default(),
        secret.clone(),
    ];
    let mut foreign_ca = stored[0].clone();
    foreign_ca.data = Some(BTreeMap::from([
        (
            "ca.crt".to_owned(),
            k8s_openapi::ByteString(other.cert_pem.clone().into_bytes()),
        ),
        (
            "ca.key".to_owned(),
            k8s_openapi::ByteString(other.key_pem.clone().into_bytes()),
        ),
    ]));
    let renewed = reconcile_ok(
        tls_user(false),
        with_authorizing_cluster(with_secrets(
            Box::new(|_| None),
            vec![foreign_ca, stored[1].clone()],
        )),
        admin.clone(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    let data = secret_data(
        &secret_sent(&renewed, "PATCH", "alice").unwrap_or_else(|| panic!("not reissued")),
    );
    assert!(issued_by(&data, &other));
    assert_eq!(data["ca.crt"], other.cert_pem);
}

#[tokio::test]
async fn deleting_a_tls_user_removes_the_acls_of_its_subject_only() {
    let admin = FakeAdmin::default();
    let binding = |principal: &str| strait_operator::admin::AclBinding {
        resource_type: 2,
        resource_name: "orders".into(),
        pattern_type: 3,
        principal: principal.into(),
        host: "*".into(),
        operation: 4,
        permission: 3,
    };
    admin.with(|k| {
        k.acls = vec![binding("User:CN=alice"), binding("User:bob")];
    });
    reconcile_ok(
        tls_user(true),
        with_authorizing_cluster(Box::new(|_| None)),
        admin.clone(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    let acls = admin.with(|k| k.acls.clone());
    assert_eq!(acls, [binding("User:bob")]);
}

#[tokio::test]
async fn a_tls_user_of_an_external_cluster_is_refused() {
    let mut u = tls_user(false);
    u.spec.cluster = serde_json::from_value(json!({"bootstrapServers": "kafka:9092"}))
        .unwrap_or_else(|e| panic!("{e}"));
    let admin = FakeAdmin::default();
    let seen = reconcile_ok(
        u,
        Box::new(|_| None),
        admin.clone(),
        strait_operator::user::controller::reconcile,
    )
    .await;
    let status = status_patch(&seen, "/users/alice");
    let ready = condition(&status, "Ready");
    assert_eq!(ready["reason"], "InvalidSpec");
    assert!(secret_sent(&seen, "PATCH", "alice").is_none());
    assert!(!admin.calls().iter().any(|c| c.contains("acls")));
}

#[tokio::test]
async fn tls_listeners_trust_the_clients_ca_which_brokers_mount() {
    let mut c = cluster(3);
    c.spec.listeners = serde_json::from_value(json!([
        {"name": "mtls", "port": 9094, "type": "internal", "tls": true,
         "authentication": {"type": "tls"}}
    ]))
    .unwrap_or_else(|e| panic!("listeners: {e}"));
    let seen = reconcile_ok(
        c,
        Box::new(|_| None),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    let properties = applied(&seen, "configmaps")[0].body["data"]["server.properties"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for line in [
        "listener.name.mtls.ssl.client.auth=required",
        "listener.name.mtls.ssl.truststore.location=/etc/strait-clients-ca/ca.crt",
    ] {
        assert!(properties.contains(&format!("\n{line}\n")), "{properties}");
    }
    assert!(properties.contains("MTLS:SSL"), "{properties}");
    // The clients CA exists before the StatefulSets that mount its certificate.
    let position = |pred: &dyn Fn(&Seen) -> bool| seen.iter().position(pred);
    let ca_cert =
        position(&|s| s.method == "PATCH" && s.path.ends_with("/secrets/kafka-clients-ca-cert"));
    let sts = position(&|s| s.method == "PATCH" && s.path.contains("/statefulsets/"));
    assert!(secret_sent(&seen, "POST", "kafka-clients-ca").is_some());
    assert!(ca_cert.is_some() && ca_cert < sts, "{ca_cert:?} {sts:?}");
    let template = &applied(&seen, "statefulsets")[0].body["spec"]["template"]["spec"];
    let volumes = template["volumes"].to_string();
    assert!(
        volumes.contains("\"secretName\":\"kafka-clients-ca-cert\""),
        "{volumes}"
    );
    let mounts = template["containers"][0]["volumeMounts"].to_string();
    assert!(mounts.contains("/etc/strait-clients-ca"), "{mounts}");
}

#[tokio::test]
async fn oauth_listeners_mount_their_key_set() {
    let mut c = cluster(3);
    c.spec.listeners = serde_json::from_value(json!([
        {"name": "plain", "port": 9092, "type": "internal",
         "authentication": {"type": "oauth",
                            "jwks": {"secretKeyRef": {"name": "idp-keys", "key": "jwks"}},
                            "validIssuerUri": "https://idp.example.com"}}
    ]))
    .unwrap_or_else(|e| panic!("listeners: {e}"));
    let seen = reconcile_ok(
        c,
        Box::new(|_| None),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    let properties = applied(&seen, "configmaps")[0].body["data"]["server.properties"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for line in [
        "listener.name.plain.sasl.enabled.mechanisms=OAUTHBEARER",
        "sasl.oauthbearer.jwks.endpoint.url=file:///etc/strait-oauth/jwks.json",
        "sasl.oauthbearer.expected.issuer=https://idp.example.com",
    ] {
        assert!(properties.contains(&format!("\n{line}\n")), "{properties}");
    }
    let template = &applied(&seen, "statefulsets")[0].body["spec"]["template"]["spec"];
    let volume = template["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == "oauth-jwks"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        volume["secret"],
        json!({"secretName": "idp-keys", "items": [{"key": "jwks", "path": "jwks.json"}]})
    );
    let mounts = template["containers"][0]["volumeMounts"].to_string();
    assert!(mounts.contains("/etc/strait-oauth"), "{mounts}");
    // No clients CA without a tls listener.
    assert!(secret_sent(&seen, "POST", "kafka-clients-ca").is_none());
}

#[tokio::test]
async fn tiered_storage_renders_the_store_keys_and_the_secret_env_refs() {
    // Without `tieredStorage`, tiering is off: the broker's default would tier into its own
    // data volume.
    let seen = reconcile_ok(
        cluster(3),
        Box::new(|_| None),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    let config = applied(&seen, "configmaps");
    let properties = config[0].body["data"]["server.properties"]
        .as_str()
        .unwrap_or_default();
    assert!(
        properties.contains("\nremote.log.storage.system.enable=false\n"),
        "{properties}"
    );
    assert!(!properties.contains("rsm.config."), "{properties}");

    let mut c = cluster(3);
    c.spec.tiered_storage = Some(
        serde_json::from_value(json!({
            "s3": {
                "bucket": "kafka-tiered",
                "endpoint": "http://minio.storage.svc:9000",
                "region": "eu-west-1",
                "pathStyle": true,
                "credentialsSecret": {
                    "accessKeyId": {"name": "s3-creds", "key": "access-key-id"},
                    "secretAccessKey": {"name": "s3-creds", "key": "secret-access-key"}
                }
            },
            "keyPrefix": "kafka/",
            "defaultLocalRetentionMs": 3_600_000
        }))
        .unwrap_or_else(|e| panic!("tieredStorage: {e}")),
    );
    let seen = reconcile_ok(
        c.clone(),
        Box::new(|_| None),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    let config = applied(&seen, "configmaps");
    let properties = config[0].body["data"]["server.properties"]
        .as_str()
        .unwrap_or_default();
    for line in [
        "remote.log.storage.system.enable=true",
        "rsm.config.storage.backend=s3",
        "rsm.config.storage.s3.bucket.name=kafka-tiered",
        "rsm.config.storage.s3.endpoint.url=http://minio.storage.svc:9000",
        "rsm.config.storage.s3.region=eu-west-1",
        "rsm.config.storage.s3.path.style.access.enabled=true",
        "rsm.config.key.prefix=kafka/",
        "log.local.retention.ms=3600000",
    ] {
        assert!(properties.contains(&format!("\n{line}\n")), "{properties}");
    }
    assert!(!properties.contains("aws.access.key"), "{properties}");
    let sets = applied(&seen, "statefulsets");
    assert_eq!(sets.len(), 3);
    for set in sets {
        let env = set.body["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let from_secret = |name: &str| {
            env.iter()
                .find(|e| e["name"] == name)
                .map(|e| e["valueFrom"]["secretKeyRef"].clone())
                .unwrap_or(Value::Null)
        };
        assert_eq!(
            from_secret("AWS_ACCESS_KEY_ID"),
            json!({"name": "s3-creds", "key": "access-key-id"})
        );
        assert_eq!(
            from_secret("AWS_SECRET_ACCESS_KEY"),
            json!({"name": "s3-creds", "key": "secret-access-key"})
        );
        // The made-up names of earlier versions are gone.
        assert!(
            env.iter().all(|e| !e["name"]
                .as_str()
                .unwrap_or("")
                .starts_with("STRAIT_TIERED")),
            "{env:?}"
        );
    }
    let status = status_patch(&seen, "/clusters/kafka");
    assert_ne!(
        condition(&status, "Ready")["reason"],
        "InvalidSpec",
        "{status}"
    );

    // Neither store (a schema the API server did not check): refused with the reason.
    c.spec.tiered_storage = Some(
        serde_json::from_value(json!({"keyPrefix": "kafka/"}))
            .unwrap_or_else(|e| panic!("tieredStorage: {e}")),
    );
    let seen = reconcile_ok(
        c,
        Box::new(|_| None),
        FakeAdmin::default(),
        strait_operator::cluster::controller::reconcile,
    )
    .await;
    assert!(applied(&seen, "statefulsets").is_empty());
    let status = status_patch(&seen, "/clusters/kafka");
    let ready = condition(&status, "Ready");
    assert_eq!(ready["reason"], "InvalidSpec", "{status}");
    assert_eq!(
        ready["message"],
        "`tieredStorage`: set exactly one of `s3` and `filesystem`"
    );
}
