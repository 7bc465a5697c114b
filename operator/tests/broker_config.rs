//! The configuration the operator renders for a broker pod is accepted by the real broker: the
//! `server.properties` of a one-broker Cluster and the pod's rendered start command (run by
//! `sh`, as the pod runs it, with the ordinal taken from `HOSTNAME`) start a Strait KRaft node
//! that is its own controller quorum, turns ready on `/ready`, and stops on SIGTERM well inside
//! the pod's termination grace period; with external listeners, each listener's Metadata names
//! the broker by the external address the command picked; with a TLS listener, the broker
//! serves the certificate the operator issued, which a client trusting only the cluster CA
//! accepts for the pod's DNS name; the replication listener serves mutual TLS with the
//! operator-issued certificates (the files of the broker certificates Secret as mounted), which
//! the operator's admin client passes with its own certificate while clients without one, with
//! another CA's, or in plaintext are refused. Clusters still replicating in plaintext (started
//! by an earlier operator version) start too. With SCRAM-SHA-512 listeners (SASL_PLAINTEXT and
//! SASL_SSL), the User controller's pass (against a mocked API server, its admin calls over
//! the replication listener's mutual TLS to the real broker) sets credentials clients log in
//! with, refuses what the broker lacks the APIs for, and removes the credential on deletion.
//! With `authorization`, the broker enforces ACLs with the super users the operator renders:
//! the operator's and the brokers' certificate principals may do everything over the
//! replication listener, another certificate of the cluster CA may not; the ACLs the User
//! controller sets let a SCRAM user write where they allow and nowhere else, anonymous clients
//! get nothing, bindings deleted by hand come back on the next pass, bindings dropped from the
//! spec go, and deleting the User removes its credential and bindings; a User with ACLs on a
//! Cluster without `authorization` is refused and nothing is set. A `tls` listener (mutual TLS
//! against the clients CA as mounted) lets in the certificate the User controller issues for a
//! `tls` User, whose ACLs (for `User:CN=<name>`, the principal the broker derives) apply; a
//! certificate of another CA for the same name, or none, is refused.
//! The CONTROLLER listener runs mutual TLS with the same certificates (every mutual-TLS node
//! above starts its quorum that way), and a node rendered as a joining controller (the bootstrap
//! servers alone) joins a rendered seed voter's quorum as an observer and becomes a voter through
//! the operator's AddRaftVoter. With an S3 `tieredStorage` (a real s3s-fs) and the access keys
//! given as the env vars rendered from the Secret, closed segments of a tiered topic are
//! uploaded to the bucket. Addresses are moved to 127.0.0.1 and free ports.

// Only the mocked API server of the fixtures is used here.
#[allow(dead_code)]
mod fixtures;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;
use std::sync::Arc;

use fixtures::Seen;
use http::StatusCode;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use strait_client::kafka_protocol::messages::MetadataRequest;
use strait_client::{ClientError, ClientTls, ConnectOptions, Connection, SaslLogin};
use strait_crds::{ClusterSpec, User};
use strait_operator::admin::{
    ACL_APIS, AdminError, KafkaAdmin, QUOTA_APIS, SCRAM_APIS, TlsConfig, WireAdmin,
    decode_response, encode_frame, tls_config,
};
use strait_operator::cluster::build::certificates::{
    broker_certs_secret, clients_ca_cert_secret, clients_ca_secret, operator_certs_secret,
};
use strait_operator::cluster::build::statefulset::TERMINATION_GRACE_SECONDS;
use strait_operator::cluster::certs::{self, Ca, Signer, generate_ca};
use strait_operator::cluster::config::{server_properties, start_command};
use strait_operator::cluster::external::{ExternalAddress, ExternalAddresses};
use strait_operator::cluster::identity::ClusterRef;
use strait_operator::cluster::quorum::{Controllers, desired_voters, zone_of};
use strait_operator::cluster::tls::{
    KnownAddresses, Replication, San, broker_sans, keystore_key, replication_of,
};
use strait_operator::context::{AdminFactory, Context};
use strait_operator::error::Error;
use strait_operator::metrics::Metrics;
use strait_operator::names;

fn spec() -> ClusterSpec {
    serde_json::from_value(serde_json::json!({
        "replicas": 1,
        "zones": ["a"],
        "storage": {"size": "1Gi"},
        "config": {"num.partitions": "3", "log.retention.ms": "3600000"},
        "listeners": [{"name": "plain", "port": 9092, "type": "internal"}]
    }))
    .unwrap_or_else(|e| panic!("spec: {e}"))
}

/// Moves the pod's addresses and paths to this machine.
fn localise(text: &str, ports: &[(u16, u16)], data: &str, config_dir: &str) -> String {
    let mut out = text
        .replace("/etc/strait-tls", &format!("{config_dir}/tls"))
        .replace(
            "/etc/strait-clients-ca",
            &format!("{config_dir}/clients-ca"),
        )
        .replace("kafka-z0-0.kafka-brokers.ns.svc", "127.0.0.1")
        .replace("0.0.0.0", "127.0.0.1")
        .replace("/var/lib/strait/data", data)
        .replace("/etc/strait", config_dir);
    for (from, to) in ports {
        out = out.replace(&format!(":{from}"), &format!(":{to}"));
    }
    out
}

/// Status line of `GET /ready` on `port`, or None when the request fails.
fn ready_status(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.lines().next().map(str::to_owned)
}

fn read_log(path: &std::path::Path) -> String {
    let mut log = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut log);
    }
    log
}

/// Kills the broker if the test fails before stopping it.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn new_ca() -> Ca {
    generate_ca("kafka", "ns", std::time::SystemTime::now()).unwrap_or_else(|e| panic!("ca: {e}"))
}

#[test]
fn rendered_pod_command_starts_a_ready_kraft_voter() {
    start_ready_and_stop(
        &spec(),
        &ExternalAddresses::default(),
        &[],
        Some(&new_ca()),
        |_| {},
    );
}

#[test]
fn rendered_pod_command_with_plaintext_replication_starts_a_ready_kraft_voter() {
    // A Cluster whose brokers an earlier operator version started keeps plaintext replication.
    let no_statefulsets: [k8s_openapi::api::apps::v1::StatefulSet; 0] = [];
    assert_eq!(replication_of(&no_statefulsets), Replication::MutualTls);
    start_ready_and_stop(&spec(), &ExternalAddresses::default(), &[], None, |ports| {
        let replication = ports
            .iter()
            .find(|(from, _)| *from == 9091)
            .map_or(0, |m| m.1);
        // Served in plaintext, advertised on the pod's stable name.
        assert_eq!(
            broker_endpoint(replication),
            (
                "kafka-z0-0.kafka-brokers.ns.svc".to_owned(),
                i32::from(replication)
            )
        );
    });
}

/// The operator's admin client for the Cluster's bootstrap Service on the replication port,
/// dialling `port` on this machine, with TLS settings made as the operator makes them: its
/// client certificate from `signer`, stored in the operator certificates Secret, read back.
fn operator_admin(
    ca: &Ca,
    signer: &Signer,
    spec: &ClusterSpec,
    name: &str,
    port: u16,
) -> WireAdmin {
    let c = cluster_ref(spec);
    let keystore = signer
        .issue_operator(std::time::SystemTime::now())
        .unwrap_or_else(|e| panic!("issue: {e}"));
    let secret = operator_certs_secret(&c, ca, keystore);
    let text = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .unwrap_or_default()
    };
    let tls = tls_config(
        &text(certs::CA_CERT_KEY),
        &text(certs::OPERATOR_KEYSTORE_KEY),
    )
    .unwrap_or_else(|e| panic!("tls: {e}"));
    let address = format!("{name}:9091");
    WireAdmin::with_tls(&address, Some(tls)).connect_via(&address, &format!("127.0.0.1:{port}"))
}

#[test]
fn rendered_replication_listener_serves_mutual_tls_to_the_operator_only() {
    let ca = new_ca();
    let other = new_ca();
    let s = spec();
    start_ready_and_stop(&s, &ExternalAddresses::default(), &[], Some(&ca), |ports| {
        let port = ports
            .iter()
            .find(|(from, _)| *from == 9091)
            .map_or(0, |m| m.1);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let signer = Signer::new(&ca).unwrap_or_else(|e| panic!("signer: {e}"));
        // The operator's admin client (the real code path: its certificate, the CA it
        // trusts, host name checked) reaches the broker through the bootstrap Service's name.
        let admin = operator_admin(&ca, &signer, &s, "kafka-bootstrap.ns.svc", port);
        runtime.block_on(async {
            let id = admin.cluster_id().await;
            assert!(matches!(id, Ok(Some(_))), "{id:?}");
            let leader = admin.active_controller().await;
            assert!(matches!(leader, Ok(Some(0))), "{leader:?}");
            admin
                .create_topic("over-tls", 2, 1, &BTreeMap::new())
                .await
                .unwrap_or_else(|e| panic!("create over TLS: {e}"));
            let described = admin.describe_topic("over-tls").await;
            assert!(
                matches!(&described, Ok(Some(t)) if t.partitions.len() == 2),
                "{described:?}"
            );
        });
        // A name the broker's certificate lacks is refused by the client.
        let wrong = operator_admin(&ca, &signer, &s, "kafka-other.ns.svc", port);
        let refused = runtime.block_on(wrong.cluster_id());
        assert!(
            matches!(refused, Err(AdminError::Connect { .. })),
            "{refused:?}"
        );
        // A client certificate of another CA is refused by the broker.
        let other_signer = Signer::new(&other).unwrap_or_else(|e| panic!("signer: {e}"));
        let foreign = operator_admin(&ca, &other_signer, &s, "kafka-bootstrap.ns.svc", port);
        let refused = runtime.block_on(foreign.cluster_id());
        assert!(refused.is_err(), "{refused:?}");
        // So is a client trusting the CA but showing no certificate, and a plaintext one.
        let no_cert = tls_broker_endpoint(port, &ca.cert_pem, "kafka-bootstrap.ns.svc");
        assert!(no_cert.is_err(), "{no_cert:?}");
        let plaintext = TcpStream::connect(("127.0.0.1", port)).and_then(|tcp| {
            tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
            Ok(tcp)
        });
        let mut plaintext = plaintext.unwrap_or_else(|e| panic!("connect: {e}"));
        assert!(metadata_endpoint(&mut plaintext).is_err());
    });
}

#[test]
fn rendered_pod_command_with_external_addresses_starts_a_ready_broker() {
    // A NodePort listener whose nodePort is known (advertised on the pod's node IP) and a
    // LoadBalancer one whose ingress is known: the broker accepts the advertised listeners.
    let mut spec = spec();
    spec.listeners.push(
        serde_json::from_value(serde_json::json!(
            {"name": "np", "port": 9094, "type": "nodeport"}
        ))
        .unwrap_or_else(|e| panic!("listener: {e}")),
    );
    spec.listeners.push(
        serde_json::from_value(serde_json::json!(
            {"name": "lb", "port": 9095, "type": "loadbalancer"}
        ))
        .unwrap_or_else(|e| panic!("listener: {e}")),
    );
    let external = ExternalAddresses {
        known: BTreeMap::from([
            (("np".to_owned(), 0), ExternalAddress::NodePort(31000)),
            (
                ("lb".to_owned(), 0),
                ExternalAddress::Host("lb0.example.com".into(), 9095),
            ),
        ]),
        pending: Vec::new(),
    };
    start_ready_and_stop(&spec, &external, &[9094, 9095], Some(&new_ca()), |ports| {
        let local = |p: u16| ports.iter().find(|(from, _)| *from == p).map_or(0, |m| m.1);
        // Metadata on each external listener names the broker by its external address.
        assert_eq!(
            broker_endpoint(local(9094)),
            ("127.0.0.1".to_owned(), 31000)
        );
        assert_eq!(
            broker_endpoint(local(9095)),
            ("lb0.example.com".to_owned(), i32::from(local(9095)))
        );
        // The internal listener keeps the pod's stable DNS name.
        assert_eq!(
            broker_endpoint(local(9092)),
            (
                "kafka-z0-0.kafka-brokers.ns.svc".to_owned(),
                i32::from(local(9092))
            )
        );
    });
}

#[test]
fn rendered_tls_listener_serves_the_operators_certificate() {
    let mut spec = spec();
    spec.listeners.push(
        serde_json::from_value(serde_json::json!(
            {"name": "secure", "port": 9094, "type": "internal", "tls": true}
        ))
        .unwrap_or_else(|e| panic!("listener: {e}")),
    );
    let ca = new_ca();
    let other = new_ca();
    start_ready_and_stop(
        &spec,
        &ExternalAddresses::default(),
        &[9094],
        Some(&ca),
        |ports| {
            let port = ports
                .iter()
                .find(|(from, _)| *from == 9094)
                .map_or(0, |m| m.1);
            // A client trusting the cluster CA talks Kafka over TLS to the pod's DNS name and to
            // the bootstrap Service's.
            for name in ["kafka-z0-0.kafka-brokers.ns.svc", "kafka-bootstrap.ns.svc"] {
                let endpoint = tls_broker_endpoint(port, &ca.cert_pem, name)
                    .unwrap_or_else(|e| panic!("TLS to {name}: {e}"));
                assert_eq!(endpoint.0, "kafka-z0-0.kafka-brokers.ns.svc");
            }
            // Not for a name the certificate lacks, nor for a client trusting another CA.
            assert!(
                tls_broker_endpoint(port, &ca.cert_pem, "kafka-z0-1.kafka-brokers.ns.svc").is_err()
            );
            assert!(tls_broker_endpoint(port, &other.cert_pem, "kafka-bootstrap.ns.svc").is_err());
        },
    );
}

/// The operator's admin clients as the controllers get them (`WireAdmin`, TLS settings from
/// the operator certificates Secret), dialling the test broker's replication listener on
/// this machine whatever bootstrap address they are given.
struct LocalAdmins {
    replication: u16,
}

impl AdminFactory for LocalAdmins {
    type Admin = WireAdmin;
    fn admin(&self, bootstrap: &str, tls: Option<&TlsConfig>) -> WireAdmin {
        WireAdmin::with_tls(bootstrap, tls.cloned())
            .connect_via(bootstrap, &format!("127.0.0.1:{}", self.replication))
    }
}

/// Kafka's `SASL_AUTHENTICATION_FAILED`.
const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// User `name` of Cluster `kafka` with `spec` (the cluster reference is added), carrying the
/// controller's finalizer, deleted a second ago when `deleted`.
fn user(name: &str, spec: Value, deleted: bool) -> User {
    let mut spec = spec;
    spec["cluster"] = json!({"name": "kafka"});
    let mut meta = json!({"name": name, "namespace": "ns", "uid": format!("u-{name}"),
                          "generation": 1, "resourceVersion": "1",
                          "finalizers": ["strait.dev/user"]});
    if deleted {
        let at =
            k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(1);
        meta["deletionTimestamp"] = json!(at.to_string());
    }
    serde_json::from_value(json!({
        "apiVersion": "strait.dev/v1alpha1", "kind": "User", "metadata": meta, "spec": spec
    }))
    .unwrap_or_else(|e| panic!("user: {e}"))
}

/// A Secret `name` holding `key` = `value`, as the API server returns it.
fn secret_json(name: &str, key: &str, value: &str) -> Value {
    let secret = Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("ns".to_owned()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            key.to_owned(),
            ByteString(value.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    };
    serde_json::to_value(&secret).unwrap_or(Value::Null)
}

/// The API server of the User tests: the operator certificates Secret of Cluster `kafka` (as the
/// Cluster controller writes it), the Cluster itself with `cluster` as its spec, and `more`
/// Secrets; the fixtures' defaults (404 for other objects, writes echoed) for the rest.
fn user_api(cluster: &ClusterSpec, operator_certs: Value, more: Vec<Value>) -> fixtures::Script {
    let cluster = serde_json::to_value(cluster).unwrap_or(Value::Null);
    Box::new(move |seen| {
        if seen.method != "GET" {
            return None;
        }
        if seen.path.ends_with("/clusters/kafka") {
            return Some((
                StatusCode::OK,
                json!({
                    "apiVersion": "strait.dev/v1alpha1", "kind": "Cluster",
                    "metadata": {"name": "kafka", "namespace": "ns", "uid": "c-1", "generation": 1},
                    "spec": cluster
                }),
            ));
        }
        std::iter::once(&operator_certs)
            .chain(&more)
            .find(|s| {
                let name = s["metadata"]["name"].as_str().unwrap_or_default();
                seen.path.ends_with(&format!("/secrets/{name}"))
            })
            .map(|s| (StatusCode::OK, s.clone()))
    })
}

/// One User controller pass over `u` against the API server `api`, with the operator's admin
/// clients reaching the broker's replication listener on `replication`: its result and the
/// requests made to the API server.
async fn user_pass(
    u: &User,
    api: fixtures::Script,
    replication: u16,
) -> (Result<Action, Error>, Vec<Seen>) {
    let primary = serde_json::to_value(u).unwrap_or(Value::Null);
    let (client, log, server) = fixtures::mock_client(primary, api);
    let metrics = Metrics::new().unwrap_or_else(|e| panic!("metrics: {e}"));
    let ctx = Context::new(client, metrics, LocalAdmins { replication });
    let result =
        strait_operator::user::controller::reconcile(Arc::new(u.clone()), ctx.clone()).await;
    (result, fixtures::finish(ctx, log, server).await)
}

/// The body of the last PATCH of a path ending in `suffix`.
fn patched(seen: &[Seen], suffix: &str) -> Option<Value> {
    seen.iter()
        .rev()
        .find(|s| s.method == "PATCH" && s.path.ends_with(suffix))
        .map(|s| s.body.clone())
}

/// `(status, reason, message)` of the `Ready` condition the pass wrote into the User's status.
fn ready_of(seen: &[Seen], user: &str) -> (String, String, String) {
    let status = patched(seen, &format!("/users/{user}/status")).unwrap_or(Value::Null);
    let ready = status["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or(Value::Null);
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        text(&ready["status"]),
        text(&ready["reason"]),
        text(&ready["message"]),
    )
}

/// Logs `username` in with SCRAM-SHA-512 on the listener at local `port` (over TLS trusting
/// `ca_pem` for the bootstrap Service's name when given), then asks for Metadata, which a
/// SASL listener serves only after the login.
async fn scram_login(
    port: u16,
    ca_pem: Option<&str>,
    username: &str,
    password: &str,
) -> Result<(), ClientError> {
    let options = ConnectOptions {
        tls: ca_pem
            .map(|pem| ClientTls::from_pem(pem, None))
            .transpose()?,
        sasl: Some(SaslLogin {
            mechanism: "SCRAM-SHA-512".to_owned(),
            username: username.to_owned(),
            password: password.to_owned(),
        }),
        ..ConnectOptions::new("scram-test")
    };
    let mut conn = Connection::connect_via(
        "kafka-bootstrap.ns.svc:9092",
        &format!("127.0.0.1:{port}"),
        &options,
    )
    .await?;
    conn.call(12, &MetadataRequest::default()).await?;
    Ok(())
}

/// Whether `result` is the broker's refusal of a login.
fn refused_login(result: &Result<(), ClientError>) -> bool {
    matches!(result, Err(ClientError::Kafka(k)) if k.code == SASL_AUTHENTICATION_FAILED)
}

#[test]
fn rendered_scram_listeners_log_in_the_users_the_user_controller_makes() {
    // `plain` becomes SASL_PLAINTEXT, `secure` SASL_SSL; replication stays mutual TLS.
    let mut spec = spec();
    spec.listeners[0] = serde_json::from_value(json!(
        {"name": "plain", "port": 9092, "type": "internal",
         "authentication": {"type": "scram-sha-512"}}
    ))
    .unwrap_or_else(|e| panic!("listener: {e}"));
    spec.listeners.push(
        serde_json::from_value(json!(
            {"name": "secure", "port": 9094, "type": "internal", "tls": true,
             "authentication": {"type": "scram-sha-512"}}
        ))
        .unwrap_or_else(|e| panic!("listener: {e}")),
    );
    assert!(strait_operator::cluster::validate::validate(&spec).is_ok());
    let properties = server_properties("kafka", "ns", &spec, &[0], Replication::MutualTls);
    for line in [
        "listener.name.plain.sasl.enabled.mechanisms=SCRAM-SHA-512",
        "listener.name.secure.sasl.enabled.mechanisms=SCRAM-SHA-512",
    ] {
        assert!(properties.contains(&format!("\n{line}\n")), "{properties}");
    }
    let ca = new_ca();
    start_ready_and_stop(
        &spec,
        &ExternalAddresses::default(),
        &[9094],
        Some(&ca),
        |ports| {
            let local = |p: u16| ports.iter().find(|(from, _)| *from == p).map_or(0, |m| m.1);
            let (replication, plain, secure) = (local(9091), local(9092), local(9094));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("runtime: {e}"));
            let signer = Signer::new(&ca).unwrap_or_else(|e| panic!("signer: {e}"));
            let keystore = signer
                .issue_operator(std::time::SystemTime::now())
                .unwrap_or_else(|e| panic!("issue: {e}"));
            let operator_certs =
                serde_json::to_value(operator_certs_secret(&cluster_ref(&spec), &ca, keystore))
                    .unwrap_or(Value::Null);
            assert_eq!(
                operator_certs["metadata"]["name"],
                names::operator_certs("kafka")
            );
            let admin = operator_admin(&ca, &signer, &spec, "kafka-bootstrap.ns.svc", replication);
            runtime.block_on(async {
                let apis = admin
                    .supported_apis()
                    .await
                    .unwrap_or_else(|e| panic!("ApiVersions: {e}"));
                assert!(
                    apis.missing(SCRAM_APIS).is_empty(),
                    "the broker serves SCRAM"
                );

                // A generated password: the Secret `app` holds it, the credential is set.
                let app = user(
                    "app",
                    json!({"authentication": {"type": "scram-sha-512"}}),
                    false,
                );
                let (result, seen) = user_pass(
                    &app,
                    user_api(&spec, operator_certs.clone(), vec![]),
                    replication,
                )
                .await;
                assert!(result.is_ok(), "{result:?}");
                assert_eq!(
                    ready_of(&seen, "app").0,
                    "True",
                    "{:?}",
                    ready_of(&seen, "app")
                );
                let status = patched(&seen, "/users/app/status").unwrap_or(Value::Null);
                assert_eq!(status["status"]["username"], "app");
                assert_eq!(status["status"]["secret"], "app");
                let secret: Secret = patched(&seen, "/secrets/app")
                    .and_then(|b| serde_json::from_value(b).ok())
                    .unwrap_or_else(|| panic!("no Secret applied: {seen:?}"));
                let data = secret.data.unwrap_or_default();
                let text = |key: &str| {
                    data.get(key)
                        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
                        .unwrap_or_default()
                };
                let password = text("password");
                assert_eq!(password.len(), strait_operator::user::plan::PASSWORD_LEN);
                assert!(
                    text("sasl.jaas.config")
                        .contains(&format!("username=\"app\" password=\"{password}\"")),
                    "{}",
                    text("sasl.jaas.config")
                );
                for (port, tls) in [(plain, None), (secure, Some(ca.cert_pem.as_str()))] {
                    let ok = scram_login(port, tls, "app", &password).await;
                    assert!(ok.is_ok(), "app on {port}: {ok:?}");
                    // A wrong password and an unknown user are refused alike.
                    let wrong = scram_login(port, tls, "app", "not-the-password").await;
                    assert!(refused_login(&wrong), "{wrong:?}");
                    let unknown = scram_login(port, tls, "nobody", &password).await;
                    assert!(refused_login(&unknown), "{unknown:?}");
                }
                // A client that does not log in gets nothing but the SASL exchange.
                let anonymous = async {
                    let mut conn = Connection::connect(
                        &format!("127.0.0.1:{plain}"),
                        &ConnectOptions::new("anonymous"),
                    )
                    .await?;
                    conn.call(12, &MetadataRequest::default()).await
                }
                .await;
                assert!(anonymous.is_err(), "{anonymous:?}");

                // A password from the user's own Secret, rotated by changing that Secret.
                let bob_spec = json!({"authentication": {"type": "scram-sha-512", "password":
                    {"valueFrom": {"secretKeyRef": {"name": "bob-password", "key": "pw"}}}}});
                let bob = user("bob", bob_spec, false);
                for (pw, old) in [
                    ("bob-first-password", None),
                    ("bob-second-password", Some("bob-first-password")),
                ] {
                    let api = user_api(
                        &spec,
                        operator_certs.clone(),
                        vec![secret_json("bob-password", "pw", pw)],
                    );
                    let (result, seen) = user_pass(&bob, api, replication).await;
                    assert!(result.is_ok(), "{result:?}");
                    let status = patched(&seen, "/users/bob/status").unwrap_or(Value::Null);
                    assert_eq!(status["status"]["secret"], "bob-password");
                    assert!(
                        patched(&seen, "/secrets/bob-password").is_none(),
                        "the user's Secret is not written"
                    );
                    let ok = scram_login(plain, None, "bob", pw).await;
                    assert!(ok.is_ok(), "bob: {ok:?}");
                    if let Some(old) = old {
                        let stale = scram_login(plain, None, "bob", old).await;
                        assert!(refused_login(&stale), "{stale:?}");
                    }
                }

                // Quotas need AlterClientQuotas: without it the User is refused, naming what is
                // missing, and nothing is set (not even its credential).
                let carol = user(
                    "carol",
                    json!({"authentication": {"type": "scram-sha-512"},
                           "quotas": {"producerByteRate": 1048576}}),
                    false,
                );
                let missing = apis.missing(QUOTA_APIS);
                let (result, seen) = user_pass(
                    &carol,
                    user_api(&spec, operator_certs.clone(), vec![]),
                    replication,
                )
                .await;
                assert!(result.is_ok(), "{result:?}");
                let (ready, reason, message) = ready_of(&seen, "carol");
                if missing.is_empty() {
                    // A broker serving quotas: the User is reconciled.
                    assert_eq!(ready, "True", "{message}");
                } else {
                    assert_eq!(
                        (ready.as_str(), reason.as_str()),
                        ("False", "UnsupportedByCluster"),
                        "{message}"
                    );
                    for (key, version) in &missing {
                        assert!(
                            message.contains(&format!("{key:?} v{version}")),
                            "{message}"
                        );
                    }
                    let generated = patched(&seen, "/secrets/carol");
                    assert!(generated.is_none(), "{generated:?}");
                    let no_credential = scram_login(plain, None, "carol", "any").await;
                    assert!(refused_login(&no_credential), "{no_credential:?}");
                }

                // Deleting `app` removes its credential: its password no longer logs in.
                let gone = user(
                    "app",
                    json!({"authentication": {"type": "scram-sha-512"}}),
                    true,
                );
                let (result, seen) = user_pass(
                    &gone,
                    user_api(&spec, operator_certs.clone(), vec![]),
                    replication,
                )
                .await;
                assert!(result.is_ok(), "{result:?}");
                let finalizer = patched(&seen, "/users/app").unwrap_or(Value::Null);
                assert!(finalizer.to_string().contains("remove"), "{finalizer}");
                let after = scram_login(plain, None, "app", &password).await;
                assert!(refused_login(&after), "{after:?}");
            });
        },
    );
}

/// Kafka's `TOPIC_AUTHORIZATION_FAILED`.
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
/// Kafka's `CLUSTER_AUTHORIZATION_FAILED`.
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;

/// Produces one record to partition 0 of `topic` through the listener at local `port`, logged
/// in with SCRAM-SHA-512 as `login` (user, password) or anonymous: the partition's error code.
async fn produce(port: u16, login: Option<(&str, &str)>, topic: &str) -> Result<i16, String> {
    let options = ConnectOptions {
        sasl: login.map(|(username, password)| SaslLogin {
            mechanism: "SCRAM-SHA-512".to_owned(),
            username: username.to_owned(),
            password: password.to_owned(),
        }),
        ..ConnectOptions::new("acl-test")
    };
    produce_with(port, &options, topic).await
}

/// [`produce`] over TLS to the bootstrap Service's name trusting `ca_pem`, showing the key and
/// certificate in `keystore` when given.
async fn produce_tls(
    port: u16,
    ca_pem: &str,
    keystore: Option<&str>,
    topic: &str,
) -> Result<i16, String> {
    let options = ConnectOptions {
        tls: Some(ClientTls::from_pem(ca_pem, keystore).map_err(|e| e.to_string())?),
        ..ConnectOptions::new("mtls-test")
    };
    produce_with(port, &options, topic).await
}

async fn produce_with(port: u16, options: &ConnectOptions, topic: &str) -> Result<i16, String> {
    let mut conn = Connection::connect_via(
        "kafka-bootstrap.ns.svc:9092",
        &format!("127.0.0.1:{port}"),
        options,
    )
    .await
    .map_err(|e| e.to_string())?;
    let batch = strait_e2e::wire::record_batch(&[b"hello"]).map_err(|e| e.to_string())?;
    let response = conn
        .call(9, &strait_e2e::wire::produce_request(topic, 0, -1, batch))
        .await
        .map_err(|e| e.to_string())?;
    strait_e2e::wire::produce_result(&response)
        .map(|(code, _)| code)
        .map_err(|e| e.to_string())
}

/// The topics a Metadata request for all topics lists through the listener at local `port`,
/// logged in as `login` or anonymous (Kafka lists only those the principal may describe).
async fn listed_topics(port: u16, login: Option<(&str, &str)>) -> Result<Vec<String>, String> {
    let options = ConnectOptions {
        sasl: login.map(|(username, password)| SaslLogin {
            mechanism: "SCRAM-SHA-512".to_owned(),
            username: username.to_owned(),
            password: password.to_owned(),
        }),
        ..ConnectOptions::new("acl-test")
    };
    let mut conn = Connection::connect_via(
        "kafka-bootstrap.ns.svc:9092",
        &format!("127.0.0.1:{port}"),
        &options,
    )
    .await
    .map_err(|e| e.to_string())?;
    let response = conn
        .call(12, &MetadataRequest::default().with_topics(None))
        .await
        .map_err(|e| e.to_string())?;
    let mut topics: Vec<String> = response
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    topics.sort();
    Ok(topics)
}

/// Whether `result` is the broker's refusal of an operation with Kafka error `code`.
fn refused_with<T: std::fmt::Debug>(result: &Result<T, AdminError>, code: i16) -> bool {
    matches!(result, Err(AdminError::Kafka { code: c, .. }) if *c == code)
}

#[test]
fn rendered_authorization_enforces_the_acls_the_user_controller_sets() {
    // `plain` is SASL_PLAINTEXT (SCRAM users), `open` has no authentication (its clients are
    // User:ANONYMOUS); replication stays mutual TLS; ACLs are enforced.
    let mut spec = spec();
    spec.listeners[0] = serde_json::from_value(json!(
        {"name": "plain", "port": 9092, "type": "internal",
         "authentication": {"type": "scram-sha-512"}}
    ))
    .unwrap_or_else(|e| panic!("listener: {e}"));
    spec.listeners.push(
        serde_json::from_value(json!({"name": "open", "port": 9095, "type": "internal"}))
            .unwrap_or_else(|e| panic!("listener: {e}")),
    );
    spec.authorization = Some(
        serde_json::from_value(json!({"type": "simple", "superUsers": ["admin"]}))
            .unwrap_or_else(|e| panic!("authorization: {e}")),
    );
    assert!(strait_operator::cluster::validate::validate(&spec).is_ok());
    let properties = server_properties("kafka", "ns", &spec, &[0], Replication::MutualTls);
    for line in [
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users=User:CN=strait-operator,O=strait.dev;User:CN=kafka-broker,O=strait.dev;\
         User:admin",
    ] {
        assert!(properties.contains(&format!("\n{line}\n")), "{properties}");
    }
    // The same Cluster without `authorization`, as the User tests' API server shows it.
    let mut unauthorized = spec.clone();
    unauthorized.authorization = None;
    let ca = new_ca();
    start_ready_and_stop(
        &spec,
        &ExternalAddresses::default(),
        &[9095],
        Some(&ca),
        |ports| {
            let local = |p: u16| ports.iter().find(|(from, _)| *from == p).map_or(0, |m| m.1);
            let (replication, plain, open) = (local(9091), local(9092), local(9095));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("runtime: {e}"));
            let signer = Signer::new(&ca).unwrap_or_else(|e| panic!("signer: {e}"));
            let keystore = signer
                .issue_operator(std::time::SystemTime::now())
                .unwrap_or_else(|e| panic!("issue: {e}"));
            let operator_certs =
                serde_json::to_value(operator_certs_secret(&cluster_ref(&spec), &ca, keystore))
                    .unwrap_or(Value::Null);
            let admin = operator_admin(&ca, &signer, &spec, "kafka-bootstrap.ns.svc", replication);
            // An admin client showing a certificate of the cluster CA with common name `cn`
            // (subject `O=strait.dev, CN=<cn>`, as the operator issues them).
            let client_with = |cn: &str| {
                let keystore = signer
                    .issue(cn, &Default::default(), std::time::SystemTime::now())
                    .unwrap_or_else(|e| panic!("issue: {e}"));
                let tls = tls_config(&ca.cert_pem, &keystore).unwrap_or_else(|e| panic!("{e}"));
                let address = "kafka-bootstrap.ns.svc:9091";
                WireAdmin::with_tls(address, Some(tls))
                    .connect_via(address, &format!("127.0.0.1:{replication}"))
            };
            runtime.block_on(async {
                let apis = admin
                    .supported_apis()
                    .await
                    .unwrap_or_else(|e| panic!("ApiVersions: {e}"));
                assert!(apis.missing(ACL_APIS).is_empty(), "the broker serves ACLs");

                // The operator's principal is a super user: its admin calls pass with no ACL.
                for topic in ["orders-1", "payments"] {
                    admin
                        .create_topic(topic, 1, 1, &BTreeMap::new())
                        .await
                        .unwrap_or_else(|e| panic!("create {topic} as the operator: {e}"));
                }
                let id = admin.cluster_id().await;
                assert!(matches!(id, Ok(Some(_))), "{id:?}");
                // So is the brokers' (what a follower's fetch needs, CLUSTER_ACTION included).
                let broker = client_with(&certs::broker_common_name("kafka"));
                let created = broker
                    .create_topic("by-broker", 1, 1, &BTreeMap::new())
                    .await;
                assert!(created.is_ok(), "{created:?}");
                let described = broker.describe_acls_of("User:anyone").await;
                assert!(described.is_ok(), "{described:?}");
                // Another certificate of the same CA is no super user.
                let other = client_with("someone-else");
                let created = other.create_topic("by-other", 1, 1, &BTreeMap::new()).await;
                assert!(
                    refused_with(&created, TOPIC_AUTHORIZATION_FAILED),
                    "{created:?}"
                );
                let described = other.describe_acls_of("User:anyone").await;
                assert!(
                    refused_with(&described, CLUSTER_AUTHORIZATION_FAILED),
                    "{described:?}"
                );

                // A SCRAM user allowed to write to topics `orders-*` and to read group
                // `writers`, reconciled by the User controller.
                let write_orders = json!({"resource": {"type": "topic", "name": "orders-",
                                                       "patternType": "prefix"},
                                          "operations": ["Write"]});
                let read_group = json!({"resource": {"type": "group", "name": "writers"},
                                        "operations": ["Read"]});
                let writer_with = |acls: Value| {
                    user(
                        "writer",
                        json!({"authentication": {"type": "scram-sha-512"},
                               "authorization": {"type": "simple", "acls": acls}}),
                        false,
                    )
                };
                let writer = writer_with(json!([write_orders, read_group]));
                // A pass of the User controller; `password` is the generated Secret's, once made.
                let pass = |u: User, password: Option<&str>| {
                    let secrets = password
                        .map(|p| vec![secret_json("writer", "password", p)])
                        .unwrap_or_default();
                    let api = user_api(&spec, operator_certs.clone(), secrets);
                    async move { user_pass(&u, api, replication).await }
                };
                let (result, seen) = pass(writer.clone(), None).await;
                assert!(result.is_ok(), "{result:?}");
                let (ready, _, message) = ready_of(&seen, "writer");
                assert_eq!(ready, "True", "{message}");
                let password = patched(&seen, "/secrets/writer")
                    .and_then(|b| serde_json::from_value::<Secret>(b).ok())
                    .and_then(|s| s.data)
                    .and_then(|d| d.get("password").cloned())
                    .map(|v| String::from_utf8_lossy(&v.0).into_owned())
                    .unwrap_or_else(|| panic!("no generated password: {seen:?}"));
                let bindings = || admin.describe_acls_of("User:writer");
                let wanted = strait_operator::user::plan::desired_acls("writer", &writer.spec);
                assert_eq!(bindings().await.ok(), Some(wanted.clone()));
                let login = Some(("writer", password.as_str()));

                // It writes where its ACLs allow, and sees only those topics.
                assert_eq!(produce(plain, login, "orders-1").await, Ok(0));
                assert_eq!(
                    produce(plain, login, "payments").await,
                    Ok(TOPIC_AUTHORIZATION_FAILED)
                );
                assert_eq!(
                    listed_topics(plain, login).await,
                    Ok(vec!["orders-1".to_owned()])
                );
                // An anonymous client sees and writes nothing.
                assert_eq!(
                    produce(open, None, "orders-1").await,
                    Ok(TOPIC_AUTHORIZATION_FAILED)
                );
                assert_eq!(listed_topics(open, None).await, Ok(Vec::new()));

                // Bindings deleted by hand come back on the next pass.
                let current = bindings().await.unwrap_or_default();
                admin
                    .delete_acls(&current)
                    .await
                    .unwrap_or_else(|e| panic!("DeleteAcls: {e}"));
                assert_eq!(bindings().await.ok(), Some(Vec::new()));
                assert_eq!(
                    produce(plain, login, "orders-1").await,
                    Ok(TOPIC_AUTHORIZATION_FAILED)
                );
                let (result, seen) = pass(writer.clone(), Some(&password)).await;
                assert!(result.is_ok(), "{result:?}");
                assert_eq!(ready_of(&seen, "writer").0, "True");
                assert_eq!(bindings().await.ok(), Some(wanted));
                assert_eq!(produce(plain, login, "orders-1").await, Ok(0));

                // A rule dropped from the spec goes from the cluster.
                let reader = writer_with(json!([read_group]));
                let (result, seen) = pass(reader.clone(), Some(&password)).await;
                assert!(result.is_ok(), "{result:?}");
                assert_eq!(ready_of(&seen, "writer").0, "True");
                let wanted = strait_operator::user::plan::desired_acls("writer", &reader.spec);
                assert_eq!(wanted.len(), 1);
                assert_eq!(bindings().await.ok(), Some(wanted));
                assert_eq!(
                    produce(plain, login, "orders-1").await,
                    Ok(TOPIC_AUTHORIZATION_FAILED)
                );

                // On a Cluster without `authorization` a User with ACLs is refused: no
                // credential, no binding.
                let loner = user(
                    "loner",
                    json!({"authentication": {"type": "scram-sha-512"},
                           "authorization": {"type": "simple", "acls": [write_orders]}}),
                    false,
                );
                let api = user_api(&unauthorized, operator_certs.clone(), vec![]);
                let (result, seen) = user_pass(&loner, api, replication).await;
                assert!(result.is_ok(), "{result:?}");
                let (ready, reason, message) = ready_of(&seen, "loner");
                assert_eq!(
                    (ready.as_str(), reason.as_str()),
                    ("False", "AuthorizationNotEnabled"),
                    "{message}"
                );
                assert!(patched(&seen, "/secrets/loner").is_none());
                let loner_bindings = admin.describe_acls_of("User:loner").await;
                assert_eq!(loner_bindings.ok(), Some(Vec::new()));

                // Deleting the User removes its credential and its bindings.
                let (result, seen) = pass(
                    user(
                        "writer",
                        json!({"authentication": {"type": "scram-sha-512"}}),
                        true,
                    ),
                    Some(&password),
                )
                .await;
                assert!(result.is_ok(), "{result:?}");
                let finalizer = patched(&seen, "/users/writer").unwrap_or(Value::Null);
                assert!(finalizer.to_string().contains("remove"), "{finalizer}");
                assert_eq!(bindings().await.ok(), Some(Vec::new()));
                let after = scram_login(plain, None, "writer", &password).await;
                assert!(refused_login(&after), "{after:?}");
            });
        },
    );
}

#[test]
fn rendered_tls_authentication_lets_in_the_certificates_the_user_controller_issues() {
    // `mtls` is SSL with client certificates of the clients CA required; ACLs are enforced.
    let mut spec = spec();
    spec.listeners[0] = serde_json::from_value(json!(
        {"name": "mtls", "port": 9092, "type": "internal", "tls": true,
         "authentication": {"type": "tls"}}
    ))
    .unwrap_or_else(|e| panic!("listener: {e}"));
    spec.authorization = Some(
        serde_json::from_value(json!({"type": "simple"}))
            .unwrap_or_else(|e| panic!("authorization: {e}")),
    );
    assert!(strait_operator::cluster::validate::validate(&spec).is_ok());
    let properties = server_properties("kafka", "ns", &spec, &[0], Replication::MutualTls);
    for line in [
        "listener.name.mtls.ssl.client.auth=required",
        "listener.name.mtls.ssl.truststore.location=/etc/strait-clients-ca/ca.crt",
    ] {
        assert!(properties.contains(&format!("\n{line}\n")), "{properties}");
    }
    let ca = new_ca();
    let now = std::time::SystemTime::now();
    let clients_ca = certs::generate_clients_ca("kafka", "ns", now)
        .unwrap_or_else(|e| panic!("clients CA: {e}"));
    start_ready_and_stop_with(
        &spec,
        &ExternalAddresses::default(),
        &[],
        Some(&ca),
        Some(&clients_ca),
        &[],
        |ports| {
            let local = |p: u16| ports.iter().find(|(from, _)| *from == p).map_or(0, |m| m.1);
            let (replication, mtls) = (local(9091), local(9092));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("runtime: {e}"));
            let signer = Signer::new(&ca).unwrap_or_else(|e| panic!("signer: {e}"));
            let keystore = signer
                .issue_operator(now)
                .unwrap_or_else(|e| panic!("issue: {e}"));
            let operator_certs =
                serde_json::to_value(operator_certs_secret(&cluster_ref(&spec), &ca, keystore))
                    .unwrap_or(Value::Null);
            let clients_ca_stored =
                serde_json::to_value(clients_ca_secret(&cluster_ref(&spec), &clients_ca))
                    .unwrap_or(Value::Null);
            let admin = operator_admin(&ca, &signer, &spec, "kafka-bootstrap.ns.svc", replication);
            runtime.block_on(async {
                for topic in ["orders", "payments"] {
                    admin
                        .create_topic(topic, 1, 1, &BTreeMap::new())
                        .await
                        .unwrap_or_else(|e| panic!("create {topic}: {e}"));
                }
                // A tls User allowed to write to `orders`, reconciled by the User controller.
                let alice_spec = json!({"authentication": {"type": "tls"},
                    "authorization": {"type": "simple", "acls": [
                        {"resource": {"type": "topic", "name": "orders"},
                         "operations": ["Write"]}]}});
                let alice = user("alice", alice_spec.clone(), false);
                let api = user_api(
                    &spec,
                    operator_certs.clone(),
                    vec![clients_ca_stored.clone()],
                );
                let (result, seen) = user_pass(&alice, api, replication).await;
                assert!(result.is_ok(), "{result:?}");
                let (ready, _, message) = ready_of(&seen, "alice");
                assert_eq!(ready, "True", "{message}");
                let status = patched(&seen, "/users/alice/status").unwrap_or(Value::Null);
                assert_eq!(status["status"]["username"], "CN=alice");
                let data: BTreeMap<String, String> = patched(&seen, "/secrets/alice")
                    .and_then(|b| serde_json::from_value::<Secret>(b).ok())
                    .and_then(|s| s.data)
                    .unwrap_or_else(|| panic!("no user Secret: {seen:?}"))
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect();
                assert_eq!(data["ca.crt"], clients_ca.cert_pem);
                let user_keystore = format!("{}{}", data["user.key"], data["user.crt"]);
                // Its bindings name the principal the broker derives from the certificate.
                let wanted = strait_operator::user::plan::desired_acls("alice", &alice.spec);
                assert_eq!(wanted[0].principal, "User:CN=alice");
                let bindings = || admin.describe_acls_of("User:CN=alice");
                assert_eq!(bindings().await.ok(), Some(wanted));
                // Its certificate logs in; its ACLs let it write to `orders` and nowhere else.
                assert_eq!(
                    produce_tls(mtls, &ca.cert_pem, Some(&user_keystore), "orders").await,
                    Ok(0)
                );
                assert_eq!(
                    produce_tls(mtls, &ca.cert_pem, Some(&user_keystore), "payments").await,
                    Ok(TOPIC_AUTHORIZATION_FAILED)
                );
                // A certificate for the same name from another CA is refused, as is a client
                // without one.
                let other = certs::generate_clients_ca("kafka", "ns", now)
                    .unwrap_or_else(|e| panic!("other CA: {e}"));
                let (key, cert) = Signer::new(&other)
                    .and_then(|s| s.issue_user("alice", now))
                    .unwrap_or_else(|e| panic!("issue: {e}"));
                let forged = format!("{key}{cert}");
                let refused = produce_tls(mtls, &ca.cert_pem, Some(&forged), "orders").await;
                assert!(refused.is_err(), "{refused:?}");
                let anonymous = produce_tls(mtls, &ca.cert_pem, None, "orders").await;
                assert!(anonymous.is_err(), "{anonymous:?}");

                // Deleting the User removes its bindings (its Secret goes by owner reference).
                let api = user_api(&spec, operator_certs.clone(), vec![clients_ca_stored]);
                let (result, seen) =
                    user_pass(&user("alice", alice_spec, true), api, replication).await;
                assert!(result.is_ok(), "{result:?}");
                let finalizer = patched(&seen, "/users/alice").unwrap_or(Value::Null);
                assert!(finalizer.to_string().contains("remove"), "{finalizer}");
                assert_eq!(bindings().await.ok(), Some(Vec::new()));
                assert_eq!(
                    produce_tls(mtls, &ca.cert_pem, Some(&user_keystore), "orders").await,
                    Ok(TOPIC_AUTHORIZATION_FAILED)
                );
            });
        },
    );
}

/// The mechanisms a SaslHandshake v1 for `mechanism` on the listener at local `port` is answered
/// with, and its error code.
fn sasl_handshake(port: u16, mechanism: &str) -> Result<(i16, Vec<String>), String> {
    use kafka_protocol::messages::{ApiKey, SaslHandshakeRequest, SaslHandshakeResponse};
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let request = SaslHandshakeRequest::default().with_mechanism(mechanism.to_owned().into());
    let frame = encode_frame(ApiKey::SaslHandshake, 1, "test", &request)
        .map_err(|e| format!("encode: {e}"))?;
    stream.write_all(&frame).map_err(|e| e.to_string())?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).map_err(|e| e.to_string())?;
    let mut body = vec![0u8; usize::try_from(i32::from_be_bytes(len)).unwrap_or(0)];
    stream.read_exact(&mut body).map_err(|e| e.to_string())?;
    let resp: SaslHandshakeResponse =
        decode_response(&body, 1).map_err(|e| format!("decode: {e}"))?;
    Ok((
        resp.error_code,
        resp.mechanisms.iter().map(|m| m.to_string()).collect(),
    ))
}

#[test]
fn rendered_oauth_listener_starts_with_the_mounted_key_set() {
    // `plain` is SASL_PLAINTEXT with OAUTHBEARER, its key set from a ConfigMap key.
    let mut spec = spec();
    spec.listeners[0] = serde_json::from_value(json!(
        {"name": "plain", "port": 9092, "type": "internal",
         "authentication": {"type": "oauth",
                            "jwks": {"configMapKeyRef": {"name": "idp", "key": "keys.json"}},
                            "validAudience": "kafka",
                            "validIssuerUri": "https://idp.example.com/realms/kafka"}}
    ))
    .unwrap_or_else(|e| panic!("listener: {e}"));
    assert!(strait_operator::cluster::validate::validate(&spec).is_ok());
    let properties = server_properties("kafka", "ns", &spec, &[0], Replication::MutualTls);
    for line in [
        "listener.name.plain.sasl.enabled.mechanisms=OAUTHBEARER",
        "sasl.oauthbearer.jwks.endpoint.url=file:///etc/strait-oauth/jwks.json",
        "sasl.oauthbearer.expected.audience=kafka",
        "sasl.oauthbearer.expected.issuer=https://idp.example.com/realms/kafka",
    ] {
        assert!(properties.contains(&format!("\n{line}\n")), "{properties}");
    }
    // The pod mounts the ConfigMap key as `jwks.json` (see the StatefulSet builder); the key is
    // RFC 7517's example P-256 key. The broker does not start without a usable key set.
    let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"1",
        "x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
        "y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}]}"#;
    let ca = new_ca();
    start_ready_and_stop_with(
        &spec,
        &ExternalAddresses::default(),
        &[],
        Some(&ca),
        None,
        &[("/etc/strait-oauth/jwks.json", jwks)],
        |ports| {
            let plain = ports
                .iter()
                .find(|(from, _)| *from == 9092)
                .map_or(0, |m| m.1);
            // The listener offers OAUTHBEARER only.
            assert_eq!(
                sasl_handshake(plain, "OAUTHBEARER"),
                Ok((0, vec!["OAUTHBEARER".to_owned()]))
            );
            let scram = sasl_handshake(plain, "SCRAM-SHA-512");
            assert!(matches!(scram, Ok((33, _))), "{scram:?}");
        },
    );
}

/// [`broker_endpoint`] over TLS, trusting only the CA in `ca_pem` and checking the broker's
/// certificate for `server_name`.
fn tls_broker_endpoint(
    port: u16,
    ca_pem: &str,
    server_name: &str,
) -> Result<(String, i32), String> {
    use std::sync::Arc;

    let mut roots = rustls::RootCertStore::empty();
    let der = x509_pem_der(ca_pem);
    roots.add(der.into()).map_err(|e| e.to_string())?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())
        .map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    metadata_endpoint(&mut stream)
}

/// The DER of the first certificate in `pem`.
fn x509_pem_der(pem: &str) -> Vec<u8> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .find(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
        .unwrap_or_default()
}

/// The (host, port) of broker 0 in a Metadata response from the listener on `port`.
fn broker_endpoint(port: u16) -> (String, i32) {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect {port}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("timeout: {e}"));
    metadata_endpoint(&mut stream).unwrap_or_else(|e| panic!("{e}"))
}

/// Asks `stream` for Metadata; the (host, port) of broker 0.
fn metadata_endpoint(stream: &mut (impl Read + Write)) -> Result<(String, i32), String> {
    use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
    const VERSION: i16 = 12;
    let frame = encode_frame(
        ApiKey::Metadata,
        VERSION,
        "test",
        &MetadataRequest::default(),
    )
    .map_err(|e| format!("encode: {e}"))?;
    stream
        .write_all(&frame)
        .map_err(|e| format!("write: {e}"))?;
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .map_err(|e| format!("read: {e}"))?;
    let mut body = vec![0u8; usize::try_from(i32::from_be_bytes(len)).unwrap_or(0)];
    stream
        .read_exact(&mut body)
        .map_err(|e| format!("read: {e}"))?;
    let resp: MetadataResponse =
        decode_response(&body, VERSION).map_err(|e| format!("decode: {e}"))?;
    let broker = resp
        .brokers
        .iter()
        .find(|b| b.node_id.0 == 0)
        .ok_or_else(|| format!("no broker 0 in {resp:?}"))?;
    Ok((broker.host.to_string(), broker.port))
}

/// Cluster `kafka` in namespace `ns`, replicating over mutual TLS.
fn cluster_ref(spec: &ClusterSpec) -> ClusterRef<'_> {
    ClusterRef {
        name: "kafka",
        namespace: "ns",
        owner: None,
        spec,
        replication: Replication::MutualTls,
    }
}

/// Writes the broker certificates Secret as the operator makes it for broker 0 of `spec` (its
/// certificate from `ca` for the names [`broker_sans`] gives, the CA certificate) into `dir`,
/// file per key, as the pod mounts it.
fn mount_broker_certs(dir: &std::path::Path, spec: &ClusterSpec, ca: &Ca) {
    mount_node_certs(dir, spec, ca, 0);
}

/// [`mount_broker_certs`] for broker `node_id`. Its certificate also names 127.0.0.1, which
/// [`localise`] puts in place of the pod DNS names the operator renders (the quorum's TLS dials
/// the voters and bootstrap servers by those names and checks them).
fn mount_node_certs(dir: &std::path::Path, spec: &ClusterSpec, ca: &Ca, node_id: i32) {
    let c = cluster_ref(spec);
    let (external, bootstrap, host_ips) = Default::default();
    let known = KnownAddresses {
        external: &external,
        bootstrap: &bootstrap,
        host_ips: &host_ips,
    };
    let mut sans = broker_sans(&c, node_id, &known);
    sans.insert(San::host("127.0.0.1"));
    let keystore = Signer::new(ca)
        .and_then(|s| {
            s.issue(
                &certs::broker_common_name("kafka"),
                &sans,
                std::time::SystemTime::now(),
            )
        })
        .unwrap_or_else(|e| panic!("issue: {e}"));
    let pod = names::pod("kafka", zone_of(node_id), node_id);
    let secret = broker_certs_secret(
        &c,
        ca,
        BTreeMap::from([(keystore_key(&pod), keystore)]),
        &BTreeMap::new(),
    );
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
    for (key, value) in secret.data.unwrap_or_default() {
        std::fs::write(dir.join(key), value.0).unwrap_or_else(|e| panic!("write: {e}"));
    }
}

/// Starts the rendered pod command of broker 0 (on node IP 127.0.0.1) with its listener ports
/// plus `more_ports` moved to free ones (`check` gets the mapping once the broker is ready),
/// and stops it with SIGTERM. With `ca` the Cluster replicates over mutual TLS and the broker
/// certificates Secret made with that CA is mounted; without, replication is plaintext.
fn start_ready_and_stop(
    spec: &ClusterSpec,
    external: &ExternalAddresses,
    more_ports: &[u16],
    ca: Option<&Ca>,
    check: impl FnOnce(&[(u16, u16)]),
) {
    start_ready_and_stop_with(spec, external, more_ports, ca, None, &[], check);
}

/// [`start_ready_and_stop`], with the clients CA certificate Secret made from `clients_ca`
/// mounted as the pod mounts it (the truststore of `tls` listeners) and `files` (pod path,
/// content) written where the localised paths point.
fn start_ready_and_stop_with(
    spec: &ClusterSpec,
    external: &ExternalAddresses,
    more_ports: &[u16],
    ca: Option<&Ca>,
    clients_ca: Option<&Ca>,
    files: &[(&str, &str)],
    check: impl FnOnce(&[(u16, u16)]),
) {
    let replication = if ca.is_some() {
        Replication::MutualTls
    } else {
        Replication::Plaintext
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let free = || strait_e2e::free_port().unwrap_or_else(|e| panic!("port: {e}"));
    // Replication, plain, controller, metrics.
    let ports: Vec<(u16, u16)> = [9091, 9092, 9093, 9404]
        .into_iter()
        .chain(more_ports.iter().copied())
        .map(|p| (p, free()))
        .collect();
    let metrics_port = ports[3].1;
    let data = dir.path().join("data").to_string_lossy().into_owned();
    let config_dir = dir.path().to_string_lossy().into_owned();
    let voters = desired_voters(spec);
    assert_eq!(voters, [0]);
    let properties = localise(
        &server_properties("kafka", "ns", spec, &voters, replication),
        &ports,
        &data,
        &config_dir,
    );
    assert!(!properties.contains("0.0.0.0"), "{properties}");
    // Mutual TLS replication comes with the quorum on TLS (CONTROLLER:SSL, same certificates).
    assert_eq!(
        properties.contains(",CONTROLLER:SSL\n"),
        replication == Replication::MutualTls,
        "{properties}"
    );
    std::fs::write(dir.path().join("server.properties"), &properties)
        .unwrap_or_else(|e| panic!("write: {e}"));
    if let Some(ca) = ca {
        mount_broker_certs(&dir.path().join("tls"), spec, ca);
    }
    for (path, content) in files {
        let local = std::path::PathBuf::from(localise(path, &[], &data, &config_dir));
        if let Some(parent) = local.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir: {e}"));
        }
        std::fs::write(&local, content).unwrap_or_else(|e| panic!("write: {e}"));
    }
    if let Some(clients_ca) = clients_ca {
        let secret = clients_ca_cert_secret(&cluster_ref(spec), clients_ca);
        let mount = dir.path().join("clients-ca");
        std::fs::create_dir_all(&mount).unwrap_or_else(|e| panic!("mkdir: {e}"));
        for (key, value) in secret.data.unwrap_or_default() {
            std::fs::write(mount.join(key), value.0).unwrap_or_else(|e| panic!("write: {e}"));
        }
    }
    let binary = strait_e2e::broker_binary().unwrap_or_else(|e| panic!("{e}"));
    let command = localise(
        &start_command(
            "kafka",
            "ns",
            spec,
            "a",
            &Controllers::seeded(&voters),
            external,
            replication,
        ),
        &ports,
        &data,
        &config_dir,
    )
    .replace(
        "exec strait-broker",
        &format!("exec '{}'", binary.to_string_lossy()),
    );
    let stderr_path = dir.path().join("stderr.log");
    let stderr = std::fs::File::create(&stderr_path).unwrap_or_else(|e| panic!("log: {e}"));
    let child = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .env("HOSTNAME", "kafka-z0-0")
        .env("HOST_IP", "127.0.0.1")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    let mut broker = Guard(child);

    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        if ready_status(metrics_port).is_some_and(|s| s.contains(" 200 ")) {
            break true;
        }
        if matches!(broker.0.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = read_log(&stderr_path);
    assert!(
        ready,
        "broker not ready with the rendered config:\n{command}\n{properties}\n{log}"
    );
    assert!(log.contains("node_id=0"), "{log}");
    check(&ports);

    // SIGTERM (what the kubelet sends) ends the process well inside the grace period.
    let stop = Instant::now();
    let pid = broker.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.is_ok_and(|s| s.success()), "kill -TERM {pid}");
    let grace = Duration::from_secs(u64::try_from(TERMINATION_GRACE_SECONDS).unwrap_or(0));
    let exited = loop {
        if let Ok(Some(status)) = broker.0.try_wait() {
            break Some(status);
        }
        if stop.elapsed() > grace / 2 {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        exited.is_some(),
        "broker still running {:?} after SIGTERM:\n{}",
        stop.elapsed(),
        read_log(&stderr_path)
    );
}

/// One node of a two-node test: its rendered `server.properties` and start command (pod
/// `hostname` of `zone`, its controllers as zone `zone_index`'s template has them) run on this
/// machine, each pod DNS name in `dns` (name, node id) moved to 127.0.0.1 and that node's
/// CONTROLLER port, the node's own ports to free ones (`ports`), its certificates mounted.
struct Node {
    broker: Guard,
    ports: Vec<(u16, u16)>,
    stderr: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Node {
    fn port(&self, from: u16) -> u16 {
        self.ports
            .iter()
            .find(|(f, _)| *f == from)
            .map_or(0, |m| m.1)
    }

    fn log(&self) -> String {
        read_log(&self.stderr)
    }
}

#[allow(clippy::too_many_arguments)]
fn start_node(
    spec: &ClusterSpec,
    ca: &Ca,
    node_id: i32,
    zone: &str,
    controllers: &Controllers,
    ports: Vec<(u16, u16)>,
    dns: &[(String, u16)],
) -> Node {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let data = dir.path().join("data").to_string_lossy().into_owned();
    let config_dir = dir.path().to_string_lossy().into_owned();
    let place = |text: &str| {
        let mut text = text.to_owned();
        for (name, port) in dns {
            text = text.replace(&format!("{name}:9093"), &format!("127.0.0.1:{port}"));
        }
        localise(&text, &ports, &data, &config_dir)
    };
    let replication = Replication::MutualTls;
    let properties = place(&server_properties(
        "kafka",
        "ns",
        spec,
        &controllers.seeds,
        replication,
    ));
    std::fs::write(dir.path().join("server.properties"), &properties)
        .unwrap_or_else(|e| panic!("write: {e}"));
    mount_node_certs(&dir.path().join("tls"), spec, ca, node_id);
    let binary = strait_e2e::broker_binary().unwrap_or_else(|e| panic!("{e}"));
    let command = place(&start_command(
        "kafka",
        "ns",
        spec,
        zone,
        controllers,
        &ExternalAddresses::default(),
        replication,
    ))
    .replace(
        "exec strait-broker",
        &format!("exec '{}'", binary.to_string_lossy()),
    );
    let stderr = dir.path().join("stderr.log");
    let file = std::fs::File::create(&stderr).unwrap_or_else(|e| panic!("log: {e}"));
    let pod = names::pod("kafka", zone_of(node_id), node_id);
    let child = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .env("HOSTNAME", &pod)
        .env("HOST_IP", "127.0.0.1")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    Node {
        broker: Guard(child),
        ports,
        stderr,
        _dir: dir,
    }
}

/// Waits until `node` answers `GET /ready` with 200.
fn wait_ready(node: &mut Node, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if ready_status(node.port(9404)).is_some_and(|s| s.contains(" 200 ")) {
            return;
        }
        let exited = matches!(node.broker.0.try_wait(), Ok(Some(_)));
        assert!(
            !exited && Instant::now() < deadline,
            "{what} not ready:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A node the operator renders as a joining controller (`controller.quorum.bootstrap.servers`
/// alone, the seed voter in the shared file) starts, joins the seed's quorum as an observer over
/// the CONTROLLER listener's mutual TLS, and becomes a voter through the operator's
/// AddRaftVoter once `voters::next_step` asks for it.
#[test]
fn a_rendered_joining_controller_joins_the_tls_quorum_and_is_promoted() {
    use strait_operator::cluster::voters::{VoterStep, next_step};
    let ca = new_ca();
    let mut s = spec();
    s.replicas = 3;
    s.zones = vec!["a".into(), "b".into(), "c".into()];
    // Seeded by broker 0 alone; 1000 is the first of the wanted voters to join.
    let controllers = Controllers::new(&[0], &desired_voters(&s));
    assert_eq!(controllers.joining, [1000, 2000]);
    let free = || strait_e2e::free_port().unwrap_or_else(|e| panic!("port: {e}"));
    let ports = |_: i32| -> Vec<(u16, u16)> {
        [9091, 9092, 9093, 9404]
            .into_iter()
            .map(|p| (p, free()))
            .collect()
    };
    let (p0, p1) = (ports(0), ports(1000));
    let controller_port = |p: &[(u16, u16)]| p[2].1;
    let dns = [
        (
            "kafka-z0-0.kafka-brokers.ns.svc".to_owned(),
            controller_port(&p0),
        ),
        (
            "kafka-z1-1000.kafka-brokers.ns.svc".to_owned(),
            controller_port(&p1),
        ),
        // Broker 2000 is not started: a bootstrap server that does not answer is skipped.
        ("kafka-z2-2000.kafka-brokers.ns.svc".to_owned(), free()),
    ];
    let mut seed = start_node(&s, &ca, 0, "a", &controllers.in_zone(0), p0, &dns);
    wait_ready(&mut seed, "seed voter 0");
    let mut joining = start_node(&s, &ca, 1000, "b", &controllers.in_zone(1), p1, &dns);
    wait_ready(&mut joining, "joining controller 1000");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let signer = Signer::new(&ca).unwrap_or_else(|e| panic!("signer: {e}"));
    let admin = operator_admin(&ca, &signer, &s, "kafka-bootstrap.ns.svc", seed.port(9091));
    let wanted = [0, 1000];
    let deadline = Instant::now() + Duration::from_secs(30);
    let added = loop {
        let quorum = runtime.block_on(admin.describe_quorum());
        if let Ok(Some(q)) = &quorum
            && let VoterStep::Add { id, directory_id } = next_step(&wanted, q, &BTreeMap::new())
        {
            assert_eq!(id, 1000, "{q:?}");
            let host_port = ("127.0.0.1", joining.port(9093));
            if runtime
                .block_on(admin.add_raft_voter(id, directory_id, host_port))
                .is_ok()
            {
                break directory_id;
            }
        }
        assert!(
            Instant::now() < deadline,
            "1000 never ready to add: {quorum:?}\nseed:\n{}\njoining:\n{}",
            seed.log(),
            joining.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let quorum = runtime.block_on(admin.describe_quorum());
        if let Ok(Some(q)) = &quorum
            && next_step(&wanted, q, &BTreeMap::new()) == VoterStep::Nothing
        {
            assert!(
                q.voters
                    .iter()
                    .any(|v| v.id == 1000 && v.directory_id == added)
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "1000 never a voter: {quorum:?}\n{}",
            joining.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Both still serve: the joining node is a broker too.
    wait_ready(&mut joining, "voter 1000");
    wait_ready(&mut seed, "voter 0");
}

/// Files under `dir` whose names end with `suffix`, recursively.
fn files_ending(dir: &std::path::Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(files_ending(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            out.push(path);
        }
    }
    out
}

/// The issue's check of the operator's part of tiered storage: the configuration rendered for a
/// Cluster with an S3 `tieredStorage` (a real S3 server, s3s-fs, path style, the access keys in
/// a Secret) starts a real broker, given the credentials through the env vars the StatefulSet
/// renders from that Secret (they are not in `server.properties`), and a topic with
/// `remote.storage.enable=true` created by the operator's admin client gets its closed segments
/// uploaded to the bucket.
#[test]
fn rendered_s3_tiered_storage_uploads_closed_segments_to_s3s_fs() {
    use strait_e2e::s3::{ACCESS_KEY, S3Server, SECRET_KEY, s3s_fs_binary};
    if s3s_fs_binary().is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "s3s-fs missing in CI: e2e/setup.sh installs it"
        );
        eprintln!("skipping: s3s-fs not installed (run e2e/setup.sh)");
        return;
    }
    let store = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let bucket = "kafka-tiered";
    let s3 = S3Server::start(store.path(), bucket).unwrap_or_else(|e| panic!("s3s-fs: {e}"));
    let mut s = spec();
    // Leaders look for closed segments often, so the test does not wait 30 s.
    s.config
        .insert("remote.log.manager.task.interval.ms".into(), "200".into());
    s.tiered_storage = Some(
        serde_json::from_value(json!({
            "s3": {
                "bucket": bucket,
                "endpoint": s3.endpoint(),
                "region": "us-east-1",
                "pathStyle": true,
                "credentialsSecret": {
                    "accessKeyId": {"name": "s3-creds", "key": "id"},
                    "secretAccessKey": {"name": "s3-creds", "key": "secret"}
                }
            },
            "keyPrefix": "kafka/"
        }))
        .unwrap_or_else(|e| panic!("tieredStorage: {e}")),
    );
    assert_eq!(
        strait_operator::cluster::validate::validate(&s).map_err(|e| e.to_string()),
        Ok(())
    );
    // The Secret the env vars point at, resolved as the kubelet does.
    let secret = BTreeMap::from([("id", ACCESS_KEY), ("secret", SECRET_KEY)]);
    let env: Vec<(String, String)> = strait_operator::cluster::tiered::env(&s)
        .into_iter()
        .map(|e| {
            let r = e
                .value_from
                .and_then(|v| v.secret_key_ref)
                .unwrap_or_else(|| panic!("{} not from a Secret", e.name));
            assert_eq!(r.name, "s3-creds");
            (e.name, secret[r.key.as_str()].to_owned())
        })
        .collect();
    assert_eq!(env.len(), 2, "{env:?}");

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let free = || strait_e2e::free_port().unwrap_or_else(|e| panic!("port: {e}"));
    let ports: Vec<(u16, u16)> = [9091, 9092, 9093, 9404]
        .into_iter()
        .map(|p| (p, free()))
        .collect();
    let (plain, metrics_port) = (ports[1].1, ports[3].1);
    let data = dir.path().join("data").to_string_lossy().into_owned();
    let config_dir = dir.path().to_string_lossy().into_owned();
    let voters = desired_voters(&s);
    let rendered = server_properties("kafka", "ns", &s, &voters, Replication::Plaintext);
    for line in [
        "remote.log.storage.system.enable=true",
        "rsm.config.storage.backend=s3",
        "rsm.config.storage.s3.bucket.name=kafka-tiered",
        "rsm.config.storage.s3.path.style.access.enabled=true",
        "rsm.config.key.prefix=kafka/",
    ] {
        assert!(rendered.lines().any(|l| l == line), "{line}:\n{rendered}");
    }
    assert!(
        !rendered.contains(ACCESS_KEY) && !rendered.contains(SECRET_KEY),
        "credentials in the rendered configuration:\n{rendered}"
    );
    // The endpoint's port is not one of the pod ports `localise` moves.
    let properties = localise(&rendered, &ports, &data, &config_dir);
    assert!(properties.contains(&s3.endpoint()), "{properties}");
    std::fs::write(dir.path().join("server.properties"), &properties)
        .unwrap_or_else(|e| panic!("write: {e}"));
    let binary = strait_e2e::broker_binary().unwrap_or_else(|e| panic!("{e}"));
    let command = localise(
        &start_command(
            "kafka",
            "ns",
            &s,
            "a",
            &Controllers::seeded(&voters),
            &ExternalAddresses::default(),
            Replication::Plaintext,
        ),
        &ports,
        &data,
        &config_dir,
    )
    .replace(
        "exec strait-broker",
        &format!("exec '{}'", binary.to_string_lossy()),
    );
    let stderr_path = dir.path().join("stderr.log");
    let stderr = std::fs::File::create(&stderr_path).unwrap_or_else(|e| panic!("log: {e}"));
    let child = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .env("HOSTNAME", "kafka-z0-0")
        .env("HOST_IP", "127.0.0.1")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    let mut broker = Guard(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready_status(metrics_port).is_some_and(|s| s.contains(" 200 ")) {
        let exited = matches!(broker.0.try_wait(), Ok(Some(_)));
        assert!(
            !exited && Instant::now() < deadline,
            "broker not ready:\n{properties}\n{}",
            read_log(&stderr_path)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let topic = "tiered";
    let admin = WireAdmin::with_tls("kafka-bootstrap.ns.svc:9092", None)
        .connect_via("kafka-bootstrap.ns.svc:9092", &format!("127.0.0.1:{plain}"));
    let config = BTreeMap::from([
        ("remote.storage.enable".to_owned(), "true".to_owned()),
        ("segment.bytes".to_owned(), "262144".to_owned()),
    ]);
    runtime
        .block_on(admin.create_topic(topic, 1, 1, &config))
        .unwrap_or_else(|e| panic!("create {topic}: {e}\n{}", read_log(&stderr_path)));
    // About 4 MiB in 16 KiB records: some fifteen closed segments of 256 KiB.
    let value = vec![b'x'; 16 * 1024];
    runtime.block_on(async {
        let mut conn = Connection::connect_via(
            "kafka-bootstrap.ns.svc:9092",
            &format!("127.0.0.1:{plain}"),
            &ConnectOptions::new("tiered-test"),
        )
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
        // Batches of 128 KiB: a batch never spans segments, and must fit in one.
        for _ in 0..32 {
            let values: Vec<&[u8]> = (0..8).map(|_| value.as_slice()).collect();
            let batch = strait_e2e::wire::record_batch(&values).unwrap_or_else(|e| panic!("{e}"));
            let response = conn
                .call(9, &strait_e2e::wire::produce_request(topic, 0, -1, batch))
                .await
                .unwrap_or_else(|e| panic!("produce: {e}"));
            let (code, _) = strait_e2e::wire::produce_result(&response)
                .unwrap_or_else(|e| panic!("produce: {e}"));
            assert_eq!(code, 0, "produce error");
        }
    });
    let objects = s3.bucket_dir(bucket);
    let deadline = Instant::now() + Duration::from_secs(60);
    while files_ending(&objects, ".log").len() < 4 {
        assert!(
            Instant::now() < deadline,
            "no segments in the bucket: {:?}\n{}",
            files_ending(&objects, ""),
            read_log(&stderr_path)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Under the key prefix, with their indexes.
    let uploaded = files_ending(&objects, ".log");
    assert!(
        uploaded.iter().all(|p| p
            .strip_prefix(&objects)
            .is_ok_and(|r| r.starts_with("kafka"))),
        "{uploaded:?}"
    );
    assert!(!files_ending(&objects, ".index").is_empty());
    drop(broker);
}
