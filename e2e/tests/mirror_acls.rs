//! `strait-mirror`'s topic ACL sync (MM2's `sync.topic.acls.*`) between real single-node Strait
//! brokers with the StandardAuthorizer on (the harness and the mirror connect as the super user
//! `User:ANONYMOUS` on PLAINTEXT). One mirror process runs three flows:
//!
//! - `A->B`, ACL sync every second: B gets exactly MM2's mapping of A's topic ACLs (ALLOW WRITE
//!   dropped, ALLOW ALL turned into ALLOW READ, DENY kept, prefixed patterns, excluded topics,
//!   cycles and non-topic resources left out, names under DefaultReplicationPolicy); an ACL
//!   added on A later shows up on B within the interval; the created-bindings counter counts
//!   them and the error counter stays at zero;
//! - `A->C` with `A->C.sync.topic.acls.enabled=false`: C mirrors the topics and gets no ACL;
//! - `D->B` where D has no authorizer: the flow keeps mirroring records, the ACL sync logs once
//!   that the source has no authorizer and stops;
//! - `A->E` where E refuses CreateAcls (a DENY ALTER on its cluster for the mirror's principal):
//!   the flow keeps mirroring records, each pass fails with CLUSTER_AUTHORIZATION_FAILED, is
//!   logged as a warning and counted, and is retried next interval.
//!
//! Needs `target/release/strait-mirror` and `strait-broker`:
//! `cargo build --release --bin strait-mirror --bin strait-broker`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::{
    ApiKey, CreateAclsRequest, CreateAclsResponse, DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use strait_e2e::exposition::Scrape;
use strait_e2e::mirror::MirrorProcess;
use strait_e2e::wire::WireClient;
use strait_e2e::{
    Admin, Broker, TestMessage, free_port, produce_all, producer_config, wait_until, watermarks,
};

const AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";
const WAIT: Duration = Duration::from_secs(20);
const ACL_INTERVAL: Duration = Duration::from_secs(1);
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_GROUP: i8 = 3;
const RESOURCE_CLUSTER: i8 = 4;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const ALL: i8 = 2;
const READ: i8 = 3;
const WRITE: i8 = 4;
const ALTER: i8 = 7;
const DESCRIBE: i8 = 8;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

/// (resource type, name, pattern type, principal, host, operation, permission).
type Binding = (i8, String, i8, String, String, i8, i8);

fn binding(
    resource: i8,
    name: &str,
    pattern: i8,
    principal: &str,
    host: &str,
    operation: i8,
    permission: i8,
) -> Binding {
    (
        resource,
        name.to_owned(),
        pattern,
        format!("User:{principal}"),
        host.to_owned(),
        operation,
        permission,
    )
}

fn topic_acl(name: &str, principal: &str, host: &str, operation: i8, permission: i8) -> Binding {
    binding(
        RESOURCE_TOPIC,
        name,
        LITERAL,
        principal,
        host,
        operation,
        permission,
    )
}

fn authorized_broker() -> Broker {
    Broker::start(&[
        ("authorizer.class.name", AUTHORIZER),
        ("super.users", "User:ANONYMOUS"),
    ])
    .expect("start broker with the authorizer")
}

fn create_acls(broker: &Broker, bindings: &[Binding]) {
    let mut conn = WireClient::connect(broker.addr()).expect("connect");
    let creations = bindings
        .iter()
        .map(|(rt, name, pt, principal, host, op, perm)| {
            AclCreation::default()
                .with_resource_type(*rt)
                .with_resource_name(StrBytes::from_string(name.clone()))
                .with_resource_pattern_type(*pt)
                .with_principal(StrBytes::from_string(principal.clone()))
                .with_host(StrBytes::from_string(host.clone()))
                .with_operation(*op)
                .with_permission_type(*perm)
        })
        .collect();
    let response: CreateAclsResponse = conn
        .call(
            ApiKey::CreateAcls,
            1,
            &CreateAclsRequest::default().with_creations(creations),
        )
        .expect("CreateAcls");
    assert!(
        response.results.iter().all(|r| r.error_code == 0),
        "{response:?}"
    );
}

/// Every ACL binding of `broker` (any resource), or the error code it answered.
fn acls(broker: &Broker) -> Result<BTreeSet<Binding>, i16> {
    let mut conn = WireClient::connect(broker.addr()).expect("connect");
    // The nullable filters must be null: kafka-protocol's defaults are empty strings.
    let request = DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(1)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1);
    let response: DescribeAclsResponse = conn
        .call(ApiKey::DescribeAcls, 1, &request)
        .expect("DescribeAcls");
    if response.error_code != 0 {
        return Err(response.error_code);
    }
    Ok(response
        .resources
        .iter()
        .flat_map(|r| {
            r.acls.iter().map(|a| {
                (
                    r.resource_type,
                    r.resource_name.to_string(),
                    r.pattern_type,
                    a.principal.to_string(),
                    a.host.to_string(),
                    a.operation,
                    a.permission_type,
                )
            })
        })
        .collect())
}

/// Waits until `broker`'s ACLs are exactly `expected`; how long that took.
fn wait_acls(broker: &Broker, expected: &BTreeSet<Binding>, what: &str) -> Duration {
    let started = Instant::now();
    let mut last = None;
    let reached = wait_until(WAIT, what, || {
        let now = acls(broker).expect("DescribeAcls");
        let done = &now == expected;
        last = Some(now);
        done
    });
    assert!(
        reached.is_ok(),
        "{what}: expected {expected:#?}\ngot {last:#?}"
    );
    started.elapsed()
}

fn produce(broker: &Broker, topic: &str, count: usize) {
    let messages: Vec<TestMessage> = (0..count)
        .map(|i| TestMessage {
            value: Some(format!("{topic}-{i}").into_bytes()),
            partition: Some(0),
            ..TestMessage::default()
        })
        .collect();
    for d in produce_all(
        producer_config(&broker.bootstrap()).set("acks", "all"),
        topic,
        &messages,
        WAIT,
    )
    .expect("produce")
    {
        d.result.expect("delivered");
    }
}

/// A broker whose authorizer lets `User:ANONYMOUS` do everything but create or delete ACLs:
/// no ACL on topics and groups (allowed to everyone), ALLOW ALL and DENY ALTER on the cluster.
fn acl_refusing_broker() -> Broker {
    let broker = Broker::start(&[
        ("authorizer.class.name", AUTHORIZER),
        ("allow.everyone.if.no.acl.found", "true"),
    ])
    .expect("start broker refusing ACL changes");
    create_acls(
        &broker,
        &[
            binding(
                RESOURCE_CLUSTER,
                "kafka-cluster",
                LITERAL,
                "ANONYMOUS",
                "*",
                ALL,
                ALLOW,
            ),
            binding(
                RESOURCE_CLUSTER,
                "kafka-cluster",
                LITERAL,
                "ANONYMOUS",
                "*",
                ALTER,
                DENY,
            ),
        ],
    );
    broker
}

fn write_config(
    dir: &Path,
    a: &Broker,
    b: &Broker,
    c: &Broker,
    d: &Broker,
    e: &Broker,
) -> std::path::PathBuf {
    let path = dir.join("mm2.properties");
    std::fs::write(
        &path,
        format!(
            "clusters=A,B,C,D,E\n\
             A.bootstrap.servers={}\n\
             B.bootstrap.servers={}\n\
             C.bootstrap.servers={}\n\
             D.bootstrap.servers={}\n\
             E.bootstrap.servers={}\n\
             A->B.enabled=true\n\
             A->C.enabled=true\n\
             A->C.sync.topic.acls.enabled=false\n\
             D->B.enabled=true\n\
             A->E.enabled=true\n\
             topics.exclude=secret, __.*\n\
             replication.factor=1\n\
             refresh.topics.interval.seconds=1\n\
             sync.topic.acls.interval.seconds={}\n",
            a.bootstrap(),
            b.bootstrap(),
            c.bootstrap(),
            d.bootstrap(),
            e.bootstrap(),
            ACL_INTERVAL.as_secs(),
        ),
    )
    .expect("write config");
    path
}

#[test]
fn topic_acls_are_synced_as_mm2_does() {
    let started = Instant::now();
    let (a, b, c, d, e) = std::thread::scope(|s| {
        let a = s.spawn(authorized_broker);
        let b = s.spawn(authorized_broker);
        let c = s.spawn(authorized_broker);
        let d = s.spawn(|| Broker::start(&[]).expect("start broker without authorizer"));
        let e = s.spawn(acl_refusing_broker);
        (
            a.join().expect("A"),
            b.join().expect("B"),
            c.join().expect("C"),
            d.join().expect("D"),
            e.join().expect("E"),
        )
    });
    assert_eq!(acls(&d).err(), Some(54), "D answers SECURITY_DISABLED");
    let admin_a = Admin::new(&a.bootstrap()).expect("admin A");
    for topic in ["orders", "secret"] {
        admin_a.create_topic(topic, 1, &[]).expect("create topic");
    }
    produce(&a, "orders", 10);
    Admin::new(&d.bootstrap())
        .expect("admin D")
        .create_topic("events", 1, &[])
        .expect("create D:events");
    produce(&d, "events", 25);

    create_acls(
        &a,
        &[
            topic_acl("orders", "alice", "*", READ, ALLOW),
            // Never copied: only the mirror writes remote topics.
            topic_acl("orders", "bob", "*", WRITE, ALLOW),
            // A DENY WRITE is copied.
            topic_acl("orders", "bob", "*", WRITE, DENY),
            // ALLOW ALL becomes ALLOW READ.
            topic_acl("orders", "carol", "127.0.0.1", ALL, ALLOW),
            topic_acl("orders", "mallory", "*", READ, DENY),
            // Not literal, an excluded topic, a topic that came from B, not a topic.
            binding(RESOURCE_TOPIC, "ord", PREFIXED, "dave", "*", READ, ALLOW),
            topic_acl("secret", "erin", "*", READ, ALLOW),
            topic_acl("B.orders", "frank", "*", READ, ALLOW),
            binding(RESOURCE_GROUP, "orders", LITERAL, "alice", "*", READ, ALLOW),
        ],
    );
    assert!(acls(&b).expect("B describes").is_empty());

    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &a, &b, &c, &d, &e);
    let e_acls = acls(&e).expect("E describes");
    assert_eq!(e_acls.len(), 2, "{e_acls:?}");
    let metrics_port = free_port().expect("port");
    let mut mirror =
        MirrorProcess::start(&config, Some(metrics_port), &dir.path().join("mirror.log"))
            .expect("start strait-mirror");

    let mut expected: BTreeSet<Binding> = [
        topic_acl("A.orders", "alice", "*", READ, ALLOW),
        topic_acl("A.orders", "bob", "*", WRITE, DENY),
        topic_acl("A.orders", "carol", "127.0.0.1", READ, ALLOW),
        topic_acl("A.orders", "mallory", "*", READ, DENY),
    ]
    .into();
    let first = wait_acls(&b, &expected, "A's topic ACLs mapped onto B");
    println!("initial ACL sync on B after {first:?} (mirror start included)");

    // A binding added on the source arrives within the interval (plus the call's time).
    create_acls(&a, &[topic_acl("payments", "alice", "*", DESCRIBE, ALLOW)]);
    expected.insert(topic_acl("A.payments", "alice", "*", DESCRIBE, ALLOW));
    let added = wait_acls(&b, &expected, "a new source ACL on B");
    println!("a new source ACL reached B after {added:?}");
    assert!(
        added < ACL_INTERVAL * 3,
        "new ACL took {added:?} with a {ACL_INTERVAL:?} interval"
    );

    // D->B: records mirrored although D has no authorizer.
    wait_until(WAIT, "D:events mirrored to B:D.events", || {
        watermarks(&b.bootstrap(), "D.events", 0).is_ok_and(|(_, high)| high == 25)
    })
    .expect("D->B mirrors records");
    // A->C: the flow runs, and copies no ACL.
    wait_until(WAIT, "A:orders mirrored to C:A.orders", || {
        watermarks(&c.bootstrap(), "A.orders", 0).is_ok_and(|(_, high)| high == 10)
    })
    .expect("A->C mirrors records");
    // A->E: the flow runs although E refuses every CreateAcls.
    wait_until(WAIT, "A:orders mirrored to E:A.orders", || {
        watermarks(&e.bootstrap(), "A.orders", 0).is_ok_and(|(_, high)| high == 10)
    })
    .expect("A->E mirrors records");

    // Several more intervals: B unchanged (nothing of D, nothing deleted), C still empty, the
    // missing-authorizer line logged once.
    let settle = Instant::now() + ACL_INTERVAL * 3;
    while Instant::now() < settle {
        assert!(mirror.is_running(), "mirror exited:\n{}", mirror.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(acls(&b).expect("B describes"), expected);
    assert_eq!(
        acls(&c).expect("C describes"),
        BTreeSet::new(),
        "A->C has sync.topic.acls.enabled=false"
    );
    let log = mirror.log();
    let stopped: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("no ACL authorizer on the source cluster"))
        .collect();
    assert_eq!(stopped.len(), 1, "{log}");
    assert!(stopped[0].contains("D->B"), "{}", stopped[0]);
    assert_eq!(
        acls(&e).expect("E describes"),
        e_acls,
        "E refused every CreateAcls"
    );
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("topic ACL sync failed") && l.contains("A->E"))
        .collect();
    assert!(
        refused.len() >= 2,
        "A->E's ACL sync retried each interval: {log}"
    );
    assert!(
        refused
            .iter()
            .all(|l| l.contains("Target") && l.contains("ClusterAuthorizationFailed")),
        "{refused:?}"
    );
    assert!(
        log.lines()
            .filter(|l| l.contains("topic ACL sync failed"))
            .all(|l| l.contains("A->E")),
        "only A->E fails: {log}"
    );

    let scrape = Scrape::fetch(
        mirror.metrics_addr().expect("metrics address"),
        Duration::from_secs(5),
    )
    .expect("scrape mirror");
    let ab = [("source", "A"), ("target", "B")];
    assert_eq!(
        scrape.sum("strait_mirror_acl_bindings_created_total", &ab),
        Some(5.0)
    );
    // Both series of a syncing flow exist from its start, at 0 until something happens.
    assert_eq!(
        scrape.sum("strait_mirror_acl_sync_errors_total", &ab),
        Some(0.0)
    );
    let ae = [("source", "A"), ("target", "E")];
    assert_eq!(
        scrape.sum("strait_mirror_acl_bindings_created_total", &ae),
        Some(0.0)
    );
    assert!(
        scrape
            .sum("strait_mirror_acl_sync_errors_total", &ae)
            .is_some_and(|n| n >= 2.0),
        "A->E errors counted"
    );
    // A->C does not sync ACLs at all; D->B stopped at once (no authorizer on D).
    for (source, target, expected) in [("A", "C", None), ("D", "B", Some(0.0))] {
        let labels = [("source", source), ("target", target)];
        assert_eq!(
            scrape.sum("strait_mirror_acl_bindings_created_total", &labels),
            expected
        );
        assert_eq!(
            scrape.sum("strait_mirror_acl_sync_errors_total", &labels),
            expected
        );
    }
    mirror.kill();
    println!("mirror_acls took {:?}", started.elapsed());
}
