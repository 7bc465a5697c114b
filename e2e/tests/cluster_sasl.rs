//! Authenticated, authorized replication. Three KRaft nodes whose inter-broker listener is
//! SASL_SSL: every follower fetch runs over TLS after a SCRAM-SHA-512 login with the brokers'
//! own credential (created with `--add-scram` on the new cluster), and the StandardAuthorizer is
//! on, so each fetch also needs CLUSTER_ACTION (the brokers' user is a super user). A full ISR
//! proves the logins and checks pass; a leader killed under idempotent acks=all load loses
//! nothing acknowledged. ACLs created through one broker are the same on every broker.

use std::time::Duration;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::{CreateAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;
use strait_client::{ConnectOptions, Connection};
use strait_e2e::cluster::{Cluster, ClusterSpec};
use strait_e2e::failover::kill_leader_under_load;
use strait_e2e::pki::Pki;

const PARTITIONS: i32 = 3;
const TIMEOUT: Duration = Duration::from_secs(60);
const AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

fn sasl_ssl_replication(pki: &Pki) -> Vec<(String, String)> {
    let jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required \
                username=\"broker\" password=\"broker-secret\";";
    [
        (
            "listener.name.replication.ssl.keystore.type",
            "PEM".to_string(),
        ),
        (
            "listener.name.replication.ssl.keystore.location",
            pki.path_str("keystore.pem"),
        ),
        (
            "listener.name.replication.ssl.truststore.type",
            "PEM".to_string(),
        ),
        (
            "listener.name.replication.ssl.truststore.location",
            pki.path_str("ca.pem"),
        ),
        (
            "listener.name.replication.sasl.enabled.mechanisms",
            "SCRAM-SHA-512".to_string(),
        ),
        (
            "sasl.mechanism.inter.broker.protocol",
            "SCRAM-SHA-512".to_string(),
        ),
        (
            "listener.name.replication.scram-sha-512.sasl.jaas.config",
            jaas.to_string(),
        ),
        ("authorizer.class.name", AUTHORIZER.to_string()),
        // The harness's own clients use the PLAINTEXT listener (anonymous).
        ("super.users", "User:broker;User:ANONYMOUS".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[test]
fn brokers_replicate_over_sasl_ssl_with_acls_and_fail_over() {
    let pki = Pki::generate().expect("test PKI");
    let mut spec = ClusterSpec::combined(&["a", "b", "c"]);
    spec.replication_protocol = Some("SASL_SSL".into());
    spec.overrides.extend(sasl_ssl_replication(&pki));
    spec.extra_args = vec![
        "--add-scram".into(),
        "SCRAM-SHA-512=[name=broker,password=broker-secret]".into(),
    ];
    let mut cluster = Cluster::start(spec).expect("cluster with SASL_SSL replication");
    let topic = "sasl-replicated";
    cluster
        .create_topic(topic, PARTITIONS, 3, &[("min.insync.replicas", "2")])
        .expect("create RF=3 topic");

    let leader = kill_leader_under_load(
        &mut cluster,
        topic,
        PARTITIONS,
        40_000,
        15_000,
        "followers log in and fetch over SASL_SSL",
    );
    for id in cluster.ids().into_iter().filter(|id| *id != leader) {
        let stderr = cluster.node(id).expect("node").stderr();
        assert!(
            !stderr.contains("SASL authentication failed"),
            "node {id} refused a broker login:\n{stderr}"
        );
    }

    // An ACL created through one live broker is described identically by every live broker.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let live: Vec<String> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != leader)
        .map(|id| cluster.node(id).expect("node").bootstrap())
        .collect();
    runtime.block_on(async {
        let options = ConnectOptions::new("acl-check");
        let mut first = Connection::connect(&live[0], &options)
            .await
            .expect("connect");
        let creation = AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("orders-"))
            .with_resource_pattern_type(4)
            .with_principal(StrBytes::from_static_str("User:alice"))
            .with_host(StrBytes::from_static_str("*"))
            .with_operation(4)
            .with_permission_type(3);
        let created = first
            .call(
                3,
                &CreateAclsRequest::default().with_creations(vec![creation]),
            )
            .await
            .expect("CreateAcls");
        assert_eq!(created.results[0].error_code, 0, "{created:?}");
        // kafka-protocol's defaults for the nullable filters are empty strings, not null.
        let describe = DescribeAclsRequest::default()
            .with_resource_name_filter(None)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1);
        for bootstrap in &live {
            let mut conn = Connection::connect(bootstrap, &options)
                .await
                .expect("connect");
            let seen = wait_for_acls(&mut conn, &describe).await;
            assert_eq!(seen.len(), 1, "{bootstrap}: {seen:?}");
            assert_eq!(seen[0].0, "orders-");
        }
    });
}

/// DescribeAcls until it shows a binding (a broker applies the metadata log a moment after the
/// one that answered CreateAcls): (resource name, principal) of each.
async fn wait_for_acls(
    conn: &mut Connection,
    describe: &DescribeAclsRequest,
) -> Vec<(String, String)> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let response = conn.call(3, describe).await.expect("DescribeAcls");
        assert_eq!(response.error_code, 0, "{response:?}");
        let seen: Vec<(String, String)> = response
            .resources
            .iter()
            .flat_map(|r| {
                r.acls
                    .iter()
                    .map(|a| (r.resource_name.to_string(), a.principal.to_string()))
            })
            .collect();
        if !seen.is_empty() || tokio::time::Instant::now() >= deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
