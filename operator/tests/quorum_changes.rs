//! KIP-853 voter changes driven by the Cluster controller over several reconciles, against a
//! stateful mocked API server (it keeps the Cluster, its StatefulSets and their pods between
//! passes, as the real one does) and the fake Kafka admin's quorum: a one-broker cluster grows to
//! three voters and a three-broker one to five, one AddRaftVoter per pass once each new
//! controller has joined as a caught-up observer; a voter whose disk was lost is removed by its
//! old directory id and added back with its new one; three brokers shrink to one once the
//! leaving voters left the quorum. The mock enforces what the API server enforces and these
//! passes could break: the status is written only through the status subresource (a write of
//! the main resource leaves it alone), and a StatefulSet's selector, serviceName,
//! podManagementPolicy and volumeClaimTemplates are immutable (422 otherwise).

// The scripted one-pass helpers are for the other test files.
#[allow(dead_code)]
mod fixtures;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use fixtures::{FakeAdmin, Seen, context, finish, mock_client};
use http::StatusCode;
use serde_json::{Value, json};
use strait_crds::Cluster;
use strait_operator::admin::{Quorum, Replica};
use uuid::Uuid;

/// The API server's state.
#[derive(Default)]
struct ApiServer {
    cluster: Value,
    sets: BTreeMap<String, Value>,
    pods: BTreeMap<String, Value>,
    /// Pods created so far (for unique uids).
    created: u32,
    /// Writes refused as the real API server would refuse them.
    refused: Vec<String>,
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    for (k, v) in fields {
        if v.is_null() {
            if let Some(t) = target.as_object_mut() {
                t.remove(k);
            }
        } else {
            merge(&mut target[k.as_str()], v);
        }
    }
}

/// The revision the StatefulSet controller names a pod template by.
fn revision(name: &str, template: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    template.to_string().hash(&mut h);
    format!("{name}-{:x}", h.finish())
}

fn not_found() -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

fn list(items: Vec<Value>) -> (StatusCode, Value) {
    (
        StatusCode::OK,
        json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}),
    )
}

impl ApiServer {
    fn new(cluster: Value) -> Self {
        ApiServer {
            cluster,
            ..ApiServer::default()
        }
    }

    fn answer(&mut self, seen: &Seen) -> Option<(StatusCode, Value)> {
        let path = seen.path.as_str();
        if path.ends_with("/clusters/kafka/status") && seen.method == "PATCH" {
            merge(&mut self.cluster["status"], &seen.body["status"]);
            return Some((StatusCode::OK, self.cluster.clone()));
        }
        if path.ends_with("/clusters/kafka") && seen.method == "PATCH" {
            // The status subresource: a write of the object leaves its status alone.
            let mut body = seen.body.clone();
            if let Some(o) = body.as_object_mut() {
                o.remove("status");
            }
            merge(&mut self.cluster, &body);
            return Some((StatusCode::OK, self.cluster.clone()));
        }
        if let Some(rest) = path.split("/statefulsets").nth(1) {
            return self.statefulsets(seen, rest.trim_start_matches('/'));
        }
        if path.ends_with("/eviction") && seen.method == "POST" {
            let pod = path.rsplit('/').nth(1).unwrap_or_default().to_owned();
            return Some(self.evict(&pod));
        }
        if path.ends_with("/pods") && seen.method == "GET" {
            return Some(list(self.pods.values().cloned().collect()));
        }
        None
    }

    fn statefulsets(&mut self, seen: &Seen, name: &str) -> Option<(StatusCode, Value)> {
        match (seen.method.as_str(), name) {
            ("GET", "") => Some(list(self.sets.values().cloned().collect())),
            ("GET", name) => Some(
                self.sets
                    .get(name)
                    .map_or_else(not_found, |s| (StatusCode::OK, s.clone())),
            ),
            ("DELETE", name) => {
                self.sets.remove(name);
                Some((
                    StatusCode::OK,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
                ))
            }
            ("PATCH", name)
                if seen.query.contains("fieldManager") && seen.body.get("kind").is_some() =>
            {
                Some(self.apply_statefulset(name, &seen.body))
            }
            ("PATCH", name) => {
                let stored = self.sets.get_mut(name)?;
                merge(stored, &seen.body);
                Some((StatusCode::OK, stored.clone()))
            }
            _ => None,
        }
    }

    fn apply_statefulset(&mut self, name: &str, body: &Value) -> (StatusCode, Value) {
        let mut set = body.clone();
        if let Some(old) = self.sets.get(name) {
            for field in [
                "selector",
                "serviceName",
                "podManagementPolicy",
                "volumeClaimTemplates",
            ] {
                if set["spec"][field] != old["spec"][field] {
                    self.refused.push(format!("{name}: spec.{field}"));
                    return (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid", "code": 422,
                               "message": format!("StatefulSet.apps \"{name}\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")}),
                    );
                }
            }
        }
        let generation = self
            .sets
            .get(name)
            .and_then(|s| s["metadata"]["generation"].as_i64())
            .unwrap_or(0)
            + 1;
        set["metadata"]["generation"] = json!(generation);
        set["metadata"]["uid"] = json!(format!("sts-uid-{name}"));
        self.sets.insert(name.to_owned(), set);
        self.sync_pods(name);
        (StatusCode::OK, self.sets[name].clone())
    }

    /// What the StatefulSet controller does: pods for its replicas (new ones from the current
    /// template, all ready at once), none beyond, and its status.
    fn sync_pods(&mut self, name: &str) {
        let Some(set) = self.sets.get(name).cloned() else {
            return;
        };
        let replicas = set["spec"]["replicas"].as_i64().unwrap_or(0);
        let start = set["spec"]["ordinals"]["start"].as_i64().unwrap_or(0);
        let template = &set["spec"]["template"];
        let rev = revision(name, template);
        let wanted: Vec<String> = (start..start + replicas)
            .map(|id| format!("{name}-{id}"))
            .collect();
        self.pods
            .retain(|pod, _| !pod.starts_with(&format!("{name}-")) || wanted.contains(pod));
        for pod in &wanted {
            if !self.pods.contains_key(pod) {
                self.create_pod(pod, &rev, template);
            }
        }
        let ready = i64::try_from(wanted.len()).unwrap_or(0);
        let generation = set["metadata"]["generation"].clone();
        if let Some(s) = self.sets.get_mut(name) {
            s["status"] = json!({
                "replicas": ready, "readyReplicas": ready, "observedGeneration": generation,
                "updateRevision": rev
            });
        }
    }

    fn create_pod(&mut self, pod: &str, rev: &str, template: &Value) {
        self.created += 1;
        self.pods.insert(
            pod.to_owned(),
            json!({
                "metadata": {
                    "name": pod, "namespace": "ns", "uid": format!("uid-{pod}-{}", self.created),
                    "labels": {"controller-revision-hash": rev},
                    "annotations": template["metadata"]["annotations"].clone()
                },
                "status": {"hostIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}
            }),
        );
    }

    /// An eviction deletes the pod; its StatefulSet makes it again from the current template.
    fn evict(&mut self, pod: &str) -> (StatusCode, Value) {
        if self.pods.remove(pod).is_none() {
            return not_found();
        }
        let set = pod
            .rsplit_once('-')
            .map(|(s, _)| s.to_owned())
            .unwrap_or_default();
        self.sync_pods(&set);
        (
            StatusCode::CREATED,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}),
        )
    }

    fn set_replicas(&mut self, replicas: i32) {
        self.cluster["spec"]["replicas"] = json!(replicas);
        let generation = self.cluster["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        self.cluster["metadata"]["generation"] = json!(generation);
    }

    fn start_command(&self, zone: usize) -> String {
        self.sets[&format!("kafka-z{zone}")]["spec"]["template"]["spec"]["containers"][0]["args"][0]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn condition(&self, kind: &str) -> Value {
        self.cluster["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
            .cloned()
            .unwrap_or(Value::Null)
    }
}

fn cluster(replicas: i32) -> Value {
    json!({
        "apiVersion": "strait.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": "kafka", "namespace": "ns", "uid": "u-1", "generation": 1},
        "spec": {
            "replicas": replicas,
            "zones": ["a", "b", "c"],
            "storage": {"size": "10Gi"},
            "listeners": [{"name": "plain", "port": 9092, "type": "internal"}]
        }
    })
}

/// One reconcile of the stored Cluster: the requests made and the admin calls.
async fn pass(server: &Arc<Mutex<ApiServer>>, admin: &FakeAdmin) -> (Vec<Seen>, Vec<String>) {
    let lock = || {
        server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let stored = lock().cluster.clone();
    let obj: Cluster = serde_json::from_value(stored.clone()).unwrap_or_else(|e| panic!("{e}"));
    admin.with(|k| k.calls.clear());
    let shared = server.clone();
    let (client, log, handle) = mock_client(
        stored,
        Box::new(move |seen| {
            shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .answer(seen)
        }),
    );
    let ctx = context(client, admin.clone());
    let result = strait_operator::cluster::controller::reconcile(Arc::new(obj), ctx.clone()).await;
    let seen = finish(ctx, log, handle).await;
    assert!(result.is_ok(), "{result:?}");
    assert!(lock().refused.is_empty(), "refused: {:?}", lock().refused);
    (seen, admin.calls())
}

fn dir(id: i32, disk: u128) -> Uuid {
    Uuid::from_u128(u128::try_from(id).unwrap_or(0) * 10 + disk)
}

fn replica(id: i32, log_end_offset: i64) -> Replica {
    Replica {
        id,
        directory_id: dir(id, 1),
        log_end_offset,
    }
}

fn voter_changes(calls: &[String]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.starts_with("add_raft_voter") || c.starts_with("remove_raft_voter"))
        .cloned()
        .collect()
}

fn evictions(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter(|s| s.method == "POST" && s.path.ends_with("/eviction"))
        .map(|s| s.path.rsplit('/').nth(1).unwrap_or_default().to_owned())
        .collect()
}

fn server_properties(seen: &[Seen]) -> String {
    seen.iter()
        .rev()
        .find(|s| s.method == "PATCH" && s.path.contains("/configmaps/"))
        .and_then(|s| s.body["data"]["server.properties"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The fake quorum: observers join as the test says, AddRaftVoter/RemoveRaftVoter move them.
fn set_quorum(admin: &FakeAdmin, leader: i32, voters: &[(i32, i64)], observers: &[(i32, i64)]) {
    admin.with(|k| {
        k.active_controller = Some(leader);
        k.quorum = Some(Quorum {
            leader: Some(leader),
            voters: voters.iter().map(|(id, leo)| replica(*id, *leo)).collect(),
            observers: observers
                .iter()
                .map(|(id, leo)| replica(*id, *leo))
                .collect(),
        });
    });
}

fn voter_ids(admin: &FakeAdmin) -> Vec<i32> {
    admin.with(|k| {
        k.quorum
            .as_ref()
            .map(|q| q.voters.iter().map(|v| v.id).collect())
            .unwrap_or_default()
    })
}

#[tokio::test]
async fn one_voter_grows_to_three_one_add_per_pass() {
    let server = Arc::new(Mutex::new(ApiServer::new(cluster(1))));
    let lock = || {
        server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let admin = FakeAdmin::default();

    // Created with one broker: the quorum is seeded by it, the operator asks nothing.
    let (_, calls) = pass(&server, &admin).await;
    assert!(voter_changes(&calls).is_empty());
    assert_eq!(lock().cluster["status"]["quorum"]["seedVoters"], json!([0]));
    let seed_template = lock().start_command(0);
    assert!(
        seed_template.starts_with("case \"${HOSTNAME##*-}\" in 0) "),
        "{seed_template}"
    );
    set_quorum(&admin, 0, &[(0, 100)], &[]);
    let (_, calls) = pass(&server, &admin).await;
    assert_eq!(calls.iter().filter(|c| *c == "describe_quorum").count(), 1);
    assert_eq!(lock().condition("QuorumReconfiguring")["status"], "False");

    // Three brokers: no refusal; the new brokers start as joining controllers.
    lock().set_replicas(3);
    let (seen, calls) = pass(&server, &admin).await;
    assert!(
        voter_changes(&calls).is_empty(),
        "nobody has joined yet: {calls:?}"
    );
    let blocked = lock().condition("ScaleDownBlocked");
    assert_eq!(blocked["status"], "False", "{blocked}");
    assert_ne!(blocked["reason"], "QuorumChangeRefused");
    let waiting = lock().condition("QuorumReconfiguring");
    assert_eq!(waiting["status"], "True", "{waiting}");
    assert_eq!(waiting["reason"], "QuorumChangeWaiting");
    assert!(
        waiting["message"]
            .as_str()
            .is_some_and(|m| m.contains("node 1000 has not joined")),
        "{waiting}"
    );
    assert_eq!(lock().pods.len(), 3);
    let z1 = lock().start_command(1);
    assert!(
        z1.starts_with(
            "case \"${HOSTNAME##*-}\" in 0) set -- '--override' 'process.roles=broker,controller'"
        ),
        "{z1}"
    );
    assert!(
        z1.contains(
            "1000) set -- '--override' 'process.roles=broker,controller' '--override' \
             'listeners=REPLICATION://0.0.0.0:9091,PLAIN://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093' \
             '--override' 'controller.quorum.voters=' '--override' \
             'controller.quorum.bootstrap.servers=kafka-z0-0.kafka-brokers.ns.svc:9093,\
             kafka-z1-1000.kafka-brokers.ns.svc:9093,kafka-z2-2000.kafka-brokers.ns.svc:9093' ;; "
        ),
        "{z1}"
    );
    assert!(
        !z1.contains("2000) set"),
        "zone b's template names its own joining node only"
    );
    // The seed is told every controller (should it lose its disk, it joins the grown quorum
    // instead of seeding a second one), but the only voter does not restart while voters change.
    let grown_template = lock().start_command(0);
    assert_ne!(grown_template, seed_template);
    assert!(
        grown_template.starts_with("case \"${HOSTNAME##*-}\" in 0) set -- ")
            && grown_template.contains(
                "'--override' 'controller.quorum.bootstrap.servers=kafka-z0-0.kafka-brokers.ns.svc:9093,\
                 kafka-z1-1000.kafka-brokers.ns.svc:9093,kafka-z2-2000.kafka-brokers.ns.svc:9093' ;; *) set"
            ),
        "{grown_template}"
    );
    assert!(evictions(&seen).is_empty());
    assert!(
        server_properties(&seen)
            .contains("\ncontroller.quorum.voters=0@kafka-z0-0.kafka-brokers.ns.svc:9093\n")
    );

    // Both join as observers; 2000 is still copying the log.
    set_quorum(&admin, 0, &[(0, 100)], &[(1000, 100), (2000, 40)]);
    let (seen, calls) = pass(&server, &admin).await;
    // Voter 0 runs an old configuration (below) but is not restarted while voters change.
    assert!(evictions(&seen).is_empty(), "{:?}", evictions(&seen));
    let rolling = lock().condition("Rolling");
    assert!(
        rolling["message"]
            .as_str()
            .is_some_and(|m| m.contains("controller quorum changes")),
        "{rolling}"
    );
    assert_eq!(
        voter_changes(&calls),
        [format!(
            "add_raft_voter 1000 {} kafka-z1-1000.kafka-brokers.ns.svc:9093",
            dir(1000, 1)
        )]
    );
    let adding = lock().condition("QuorumReconfiguring");
    assert_eq!(adding["reason"], "AddingVoter", "{adding}");
    assert_eq!(voter_ids(&admin), [0, 1000]);

    let (_, calls) = pass(&server, &admin).await;
    assert!(voter_changes(&calls).is_empty(), "{calls:?}");
    let waiting = lock().condition("QuorumReconfiguring");
    assert!(
        waiting["message"]
            .as_str()
            .is_some_and(|m| m.contains("observer 2000 is 60 entries behind")),
        "{waiting}"
    );
    assert_eq!(
        lock().cluster["status"]["quorum"]["voters"],
        json!([0, 1000])
    );

    admin.with(|k| {
        if let Some(q) = k.quorum.as_mut() {
            q.observers[0].log_end_offset = 100;
        }
    });
    let (_, calls) = pass(&server, &admin).await;
    assert_eq!(voter_changes(&calls).len(), 1);
    assert!(voter_changes(&calls)[0].starts_with("add_raft_voter 2000 "));
    assert_eq!(voter_ids(&admin), [0, 1000, 2000]);

    let (seen, calls) = pass(&server, &admin).await;
    assert!(voter_changes(&calls).is_empty());
    let settled = lock().condition("QuorumReconfiguring");
    assert_eq!(settled["status"], "False", "{settled}");
    assert_eq!(settled["reason"], "QuorumSettled");
    let quorum = lock().cluster["status"]["quorum"].clone();
    assert_eq!(quorum["seedVoters"], json!([0]), "{quorum}");
    assert_eq!(quorum["voters"], json!([0, 1000, 2000]), "{quorum}");
    assert_eq!(lock().start_command(0), grown_template);
    // Three brokers raise the replication defaults in server.properties, so every broker runs
    // an old configuration; the voter 0 restarts only now that the quorum has three voters.
    assert_eq!(evictions(&seen), ["kafka-z0-0"]);
    let (seen, _) = pass(&server, &admin).await;
    assert!(evictions(&seen).is_empty(), "{:?}", evictions(&seen));
    let ready = lock().condition("Ready");
    assert_eq!(ready["status"], "True", "{ready}");
}

#[tokio::test]
async fn three_voters_grow_to_five_and_voters_restart_only_after() {
    let server = Arc::new(Mutex::new(ApiServer::new(cluster(3))));
    let lock = || {
        server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let admin = FakeAdmin::default();
    let (seen, _) = pass(&server, &admin).await;
    let properties = server_properties(&seen);
    assert_eq!(
        lock().cluster["status"]["quorum"]["seedVoters"],
        json!([0, 1000, 2000])
    );
    set_quorum(&admin, 0, &[(0, 50), (1000, 50), (2000, 50)], &[]);
    pass(&server, &admin).await;

    // Five brokers: five voters, 1 and 1001 joining. Every zone's template changes (the joining
    // controllers, and the seeds told of them), so the voters run an old revision, but no voter
    // restarts while the set changes.
    lock().set_replicas(5);
    let (seen, calls) = pass(&server, &admin).await;
    assert!(voter_changes(&calls).is_empty());
    assert_eq!(
        server_properties(&seen),
        properties,
        "the seeds' file stays"
    );
    assert!(lock().start_command(0).contains("1) set -- "));
    assert!(lock().start_command(1).contains("1001) set -- "));
    assert!(!lock().start_command(2).contains("1) set -- "));
    assert!(evictions(&seen).is_empty(), "{:?}", evictions(&seen));

    set_quorum(
        &admin,
        0,
        &[(0, 50), (1000, 50), (2000, 50)],
        &[(1, 50), (1001, 50), (2, 50)],
    );
    let (seen, calls) = pass(&server, &admin).await;
    assert_eq!(voter_changes(&calls).len(), 1);
    assert!(voter_changes(&calls)[0].starts_with("add_raft_voter 1 "));
    assert!(evictions(&seen).is_empty());
    let rolling = lock().condition("Rolling");
    assert!(
        rolling["message"]
            .as_str()
            .is_some_and(|m| m.contains("controller quorum changes")),
        "{rolling}"
    );
    let (seen, calls) = pass(&server, &admin).await;
    assert_eq!(voter_changes(&calls).len(), 1);
    assert!(voter_changes(&calls)[0].starts_with("add_raft_voter 1001 "));
    assert!(evictions(&seen).is_empty());
    assert_eq!(voter_ids(&admin), [0, 1000, 2000, 1, 1001]);

    // Settled: the roll restarts the outdated voters, the active controller (0) last. Zone c's
    // seed 2000 is outdated too: every seed is now told all five controllers.
    assert!(
        lock()
            .start_command(2)
            .contains("controller.quorum.bootstrap.servers=kafka-z0-0.kafka-brokers.ns.svc:9093,"),
        "{}",
        lock().start_command(2)
    );
    let (seen, calls) = pass(&server, &admin).await;
    assert!(voter_changes(&calls).is_empty());
    assert_eq!(evictions(&seen), ["kafka-z1-1000"]);
    let (seen, _) = pass(&server, &admin).await;
    assert_eq!(evictions(&seen), ["kafka-z2-2000"]);
    let (seen, _) = pass(&server, &admin).await;
    assert_eq!(evictions(&seen), ["kafka-z0-0"]);
    let (seen, _) = pass(&server, &admin).await;
    assert!(evictions(&seen).is_empty());
    assert_eq!(
        lock().cluster["status"]["quorum"]["voters"],
        json!([0, 1000, 2000, 1, 1001])
    );
    let ready = lock().condition("Ready");
    assert_eq!(ready["status"], "True", "{ready}");
}

#[tokio::test]
async fn a_voter_whose_disk_was_lost_is_replaced() {
    let server = Arc::new(Mutex::new(ApiServer::new(cluster(3))));
    let lock = || {
        server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let admin = FakeAdmin::default();
    pass(&server, &admin).await;
    set_quorum(&admin, 0, &[(0, 300), (1000, 300), (2000, 300)], &[]);
    let (_, calls) = pass(&server, &admin).await;
    assert!(voter_changes(&calls).is_empty());

    // Broker 1000 came back on an empty disk: its old voter entry lags, the node itself
    // follows the log under its new directory id.
    admin.with(|k| {
        if let Some(q) = k.quorum.as_mut() {
            q.voters[1].log_end_offset = 120;
            q.observers.push(Replica {
                id: 1000,
                directory_id: dir(1000, 2),
                log_end_offset: 300,
            });
        }
    });
    let (_, calls) = pass(&server, &admin).await;
    assert_eq!(
        voter_changes(&calls),
        [format!("remove_raft_voter 1000 {}", dir(1000, 1))],
        "the old directory goes first"
    );
    let replacing = lock().condition("QuorumReconfiguring");
    assert_eq!(replacing["reason"], "ReplacingVoter", "{replacing}");
    // The node's record in the membership is now its new disk's only.
    admin.with(|k| {
        if let Some(q) = k.quorum.as_mut() {
            q.observers.retain(|o| o.directory_id != dir(1000, 1));
        }
    });
    let (_, calls) = pass(&server, &admin).await;
    assert_eq!(
        voter_changes(&calls),
        [format!(
            "add_raft_voter 1000 {} kafka-z1-1000.kafka-brokers.ns.svc:9093",
            dir(1000, 2)
        )]
    );
    let (_, calls) = pass(&server, &admin).await;
    assert!(voter_changes(&calls).is_empty());
    assert_eq!(
        lock().condition("QuorumReconfiguring")["reason"],
        "QuorumSettled"
    );
    let voters = admin.with(|k| k.quorum.clone().map(|q| q.voters).unwrap_or_default());
    assert!(
        voters
            .iter()
            .any(|v| v.id == 1000 && v.directory_id == dir(1000, 2))
    );
}

#[tokio::test]
async fn three_brokers_shrink_to_one_once_the_leaving_voters_left_the_quorum() {
    let server = Arc::new(Mutex::new(ApiServer::new(cluster(3))));
    let lock = || {
        server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let admin = FakeAdmin::default();
    pass(&server, &admin).await;
    set_quorum(&admin, 1000, &[(0, 80), (1000, 80), (2000, 80)], &[]);
    pass(&server, &admin).await;

    lock().set_replicas(1);
    // Followers first: 0 stays, 2000 goes before the leader 1000. The zones keep their
    // brokers meanwhile.
    let (_, calls) = pass(&server, &admin).await;
    assert_eq!(
        voter_changes(&calls),
        [format!("remove_raft_voter 2000 {}", dir(2000, 1))]
    );
    let blocked = lock().condition("ScaleDownBlocked");
    assert_eq!(blocked["reason"], "RemovingVoters", "{blocked}");
    assert_eq!(lock().pods.len(), 3);
    let (_, calls) = pass(&server, &admin).await;
    assert_eq!(
        voter_changes(&calls),
        [format!("remove_raft_voter 1000 {}", dir(1000, 1))]
    );
    assert_eq!(lock().pods.len(), 3);
    assert_eq!(voter_ids(&admin), [0]);
    // No voter leaves any more: the zones shrink.
    let (_, calls) = pass(&server, &admin).await;
    assert!(voter_changes(&calls).is_empty());
    assert_eq!(
        lock().pods.keys().cloned().collect::<Vec<_>>(),
        ["kafka-z0-0"]
    );
    let (seen, _) = pass(&server, &admin).await;
    // The seeds whose brokers left are dropped: a node coming back joins, not seeds.
    assert_eq!(lock().cluster["status"]["quorum"]["seedVoters"], json!([0]));
    assert!(
        server_properties(&seen)
            .contains("\ncontroller.quorum.voters=0@kafka-z0-0.kafka-brokers.ns.svc:9093\n")
    );
}

#[tokio::test]
async fn the_mock_api_server_refuses_what_the_real_one_refuses() {
    let mut server = ApiServer::new(cluster(1));
    let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "kafka-z0"},
                     "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "1"}}, "template": {}}});
    let apply = |body: &Value| Seen {
        method: "PATCH".into(),
        path: "/apis/apps/v1/namespaces/ns/statefulsets/kafka-z0".into(),
        query: "fieldManager=strait-operator&force=true".into(),
        body: body.clone(),
    };
    let ok = server.answer(&apply(&sts)).map(|(code, _)| code);
    assert_eq!(ok, Some(StatusCode::OK));
    let mut changed = sts.clone();
    changed["spec"]["selector"] = json!({"matchLabels": {"a": "2"}});
    let refused = server.answer(&apply(&changed)).map(|(code, _)| code);
    assert_eq!(refused, Some(StatusCode::UNPROCESSABLE_ENTITY));
    // A status in a write of the object itself is ignored.
    let write = Seen {
        method: "PATCH".into(),
        path: "/apis/strait.dev/v1alpha1/namespaces/ns/clusters/kafka".into(),
        query: String::new(),
        body: json!({"status": {"replicas": 7}}),
    };
    server.answer(&write);
    assert!(server.cluster.get("status").is_none());
}
