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
//! by an earlier operator version) start too. Addresses are moved to 127.0.0.1 and free ports.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use strait_crds::ClusterSpec;
use strait_operator::admin::{
    AdminError, KafkaAdmin, WireAdmin, decode_response, encode_frame, tls_config,
};
use strait_operator::cluster::build::certificates::{broker_certs_secret, operator_certs_secret};
use strait_operator::cluster::build::statefulset::TERMINATION_GRACE_SECONDS;
use strait_operator::cluster::certs::{self, Ca, Signer, generate_ca};
use strait_operator::cluster::config::{server_properties, start_command};
use strait_operator::cluster::external::{ExternalAddress, ExternalAddresses};
use strait_operator::cluster::identity::ClusterRef;
use strait_operator::cluster::quorum::desired_voters;
use strait_operator::cluster::tls::{
    KnownAddresses, Replication, broker_sans, keystore_key, replication_of,
};

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
    let c = cluster_ref(spec);
    let (external, bootstrap, host_ips) = Default::default();
    let known = KnownAddresses {
        external: &external,
        bootstrap: &bootstrap,
        host_ips: &host_ips,
    };
    let keystore = Signer::new(ca)
        .and_then(|s| {
            s.issue(
                &certs::broker_common_name("kafka"),
                &broker_sans(&c, 0, &known),
                std::time::SystemTime::now(),
            )
        })
        .unwrap_or_else(|e| panic!("issue: {e}"));
    let secret = broker_certs_secret(
        &c,
        ca,
        BTreeMap::from([(keystore_key("kafka-z0-0"), keystore)]),
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
    std::fs::write(dir.path().join("server.properties"), &properties)
        .unwrap_or_else(|e| panic!("write: {e}"));
    if let Some(ca) = ca {
        mount_broker_certs(&dir.path().join("tls"), spec, ca);
    }
    let binary = strait_e2e::broker_binary().unwrap_or_else(|e| panic!("{e}"));
    let command = localise(
        &start_command("kafka", "ns", spec, "a", &voters, external, replication),
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
