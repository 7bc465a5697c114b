"""ACLs with real clients (Kafka's StandardAuthorizer semantics): SCRAM users whose access comes
from ACLs created with the admin client — WRITE on a topic prefix, READ on one group, a DENY that
beats an ALLOW, Metadata hiding what a user may not DESCRIBE, anonymous clients refused, a super
user allowed everything, DescribeAcls/DeleteAcls, and ACLs kept across a restart."""

import pathlib
import tempfile
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, NewTopic, ResourcePatternType, ResourceType,
                                   ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

from conftest import BrokerProcess, free_port

TIMEOUT = 30
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def start_broker(work: pathlib.Path, port: int) -> BrokerProcess:
    return BrokerProcess(
        work,
        extra_listeners=f",SASL_PLAINTEXT://127.0.0.1:{port}",
        overrides=[
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            f"authorizer.class.name={AUTHORIZER}",
            "super.users=User:admin",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
        ],
        extra_args=["--add-scram", "SCRAM-SHA-512=[name=admin,password=admin-secret]"],
    )


def login(bootstrap, user, password):
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "sasl_plaintext",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": user,
        "sasl.password": password,
    }


@pytest.fixture(scope="module")
def acl_broker():
    with tempfile.TemporaryDirectory(prefix="strait-pytest-acl-") as workdir:
        port = free_port()
        process = start_broker(pathlib.Path(workdir), port)
        bootstrap = f"127.0.0.1:{port}"
        admin = AdminClient(login(bootstrap, "admin", "admin-secret"))
        for user in ("alice", "bob"):
            upsert = UserScramCredentialUpsertion(
                user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                f"{user}-secret".encode())
            for f in admin.alter_user_scram_credentials([upsert]).values():
                f.result(TIMEOUT)
        topics = ["orders-eu", "orders-secret", "payments"]
        for f in admin.create_topics([NewTopic(t, 1, 1) for t in topics]).values():
            f.result(TIMEOUT)
        bindings = [
            acl(ResourceType.TOPIC, "orders-", ResourcePatternType.PREFIXED, "User:alice",
                AclOperation.WRITE, AclPermissionType.ALLOW),
            acl(ResourceType.TOPIC, "orders-", ResourcePatternType.PREFIXED, "User:alice",
                AclOperation.READ, AclPermissionType.ALLOW),
            acl(ResourceType.TOPIC, "orders-secret", ResourcePatternType.LITERAL, "User:alice",
                AclOperation.WRITE, AclPermissionType.DENY),
            acl(ResourceType.GROUP, "alice-app", ResourcePatternType.LITERAL, "User:alice",
                AclOperation.READ, AclPermissionType.ALLOW),
        ]
        for f in admin.create_acls(bindings).values():
            f.result(TIMEOUT)
        try:
            yield process, bootstrap, admin
        finally:
            code = process.stop()
            assert code == 0, f"broker exit status {code}:\n{process.stderr()[-4000:]}"


def acl(rtype, name, pattern, principal, operation, permission):
    return AclBinding(rtype, name, pattern, principal, "*", operation, permission)


def produce_error(conf, topic):
    """The delivery error of one record (None when it was written)."""
    result = []
    producer = Producer({**conf, "message.timeout.ms": 10000})
    producer.produce(topic, value=b"x", on_delivery=lambda err, _m: result.append(err))
    producer.flush(TIMEOUT)
    assert result, "no delivery report"
    return result[0]


def test_write_on_a_prefix_only_and_deny_wins(acl_broker):
    _, bootstrap, _ = acl_broker
    alice = login(bootstrap, "alice", "alice-secret")
    assert produce_error(alice, "orders-eu") is None
    denied = produce_error(alice, "payments")
    assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, denied
    denied = produce_error(alice, "orders-secret")
    assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, denied
    # bob has no ACL at all.
    denied = produce_error(login(bootstrap, "bob", "bob-secret"), "orders-eu")
    assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, denied


def consume(conf, topic, group):
    """(records read, the first error) of a consumer of `topic` in `group`."""
    consumer = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got, error = [], None
    deadline = time.monotonic() + TIMEOUT
    while not got and error is None and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is None:
            continue
        if m.error() is None:
            got.append(m.value())
        elif m.error().code() != KafkaError._PARTITION_EOF:
            error = m.error()
    consumer.close()
    return got, error


def test_group_read_is_needed_to_consume(acl_broker):
    _, bootstrap, _ = acl_broker
    alice = login(bootstrap, "alice", "alice-secret")
    assert produce_error(alice, "orders-eu") is None
    got, error = consume(alice, "orders-eu", "alice-app")
    assert got and error is None, error
    got, error = consume(alice, "orders-eu", "someone-elses-app")
    assert not got and error is not None
    assert error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, error


def test_metadata_hides_topics_without_describe(acl_broker):
    _, bootstrap, admin = acl_broker
    alice = AdminClient(login(bootstrap, "alice", "alice-secret"))
    visible = set(alice.list_topics(timeout=TIMEOUT).topics)
    # READ/WRITE imply DESCRIBE; the DENY is for WRITE only.
    assert {"orders-eu", "orders-secret"} <= visible and "payments" not in visible, visible
    bob = AdminClient(login(bootstrap, "bob", "bob-secret"))
    assert not set(bob.list_topics(timeout=TIMEOUT).topics), "bob may describe nothing"
    # The super user sees everything.
    assert {"orders-eu", "orders-secret", "payments"} <= set(admin.list_topics(timeout=TIMEOUT).topics)


def test_anonymous_clients_are_refused(acl_broker):
    process, _, _ = acl_broker
    denied = produce_error({"bootstrap.servers": process.bootstrap}, "orders-eu")
    assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, denied


def test_only_the_cluster_may_change_acls_and_delete_removes_access(acl_broker):
    _, bootstrap, admin = acl_broker
    alice_admin = AdminClient(login(bootstrap, "alice", "alice-secret"))
    extra = acl(ResourceType.TOPIC, "payments", ResourcePatternType.LITERAL, "User:alice",
                AclOperation.WRITE, AclPermissionType.ALLOW)
    with pytest.raises(Exception) as e:
        for f in alice_admin.create_acls([extra]).values():
            f.result(TIMEOUT)
    assert "CLUSTER_AUTHORIZATION_FAILED" in str(e.value) or "authoriz" in str(e.value).lower()
    # The admin grants it; alice can write to payments now.
    for f in admin.create_acls([extra]).values():
        f.result(TIMEOUT)
    alice = login(bootstrap, "alice", "alice-secret")
    assert produce_error(alice, "payments") is None
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    described = admin.describe_acls(everything).result(TIMEOUT)
    assert len(described) == 5, described
    only_payments = AclBindingFilter(ResourceType.TOPIC, "payments", ResourcePatternType.LITERAL,
                                     None, None, AclOperation.ANY, AclPermissionType.ANY)
    for f in admin.delete_acls([only_payments]).values():
        assert len(f.result(TIMEOUT)) == 1
    denied = produce_error(alice, "payments")
    assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, denied
    assert len(admin.describe_acls(everything).result(TIMEOUT)) == 4


def test_acls_survive_a_restart():
    with tempfile.TemporaryDirectory(prefix="strait-pytest-acl-restart-") as workdir:
        work = pathlib.Path(workdir)
        port = free_port()
        bootstrap = f"127.0.0.1:{port}"
        binding = acl(ResourceType.GROUP, f"g-{uuid.uuid4().hex[:6]}", ResourcePatternType.PREFIXED,
                      "User:carol", AclOperation.READ, AclPermissionType.ALLOW)
        first = start_broker(work, port)
        try:
            admin = AdminClient(login(bootstrap, "admin", "admin-secret"))
            for f in admin.create_acls([binding]).values():
                f.result(TIMEOUT)
        finally:
            assert first.stop() == 0
        second = start_broker(work, port)
        try:
            admin = AdminClient(login(bootstrap, "admin", "admin-secret"))
            found = admin.describe_acls(AclBindingFilter(
                ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                AclPermissionType.ANY)).result(TIMEOUT)
            assert found == [binding], found
        finally:
            assert second.stop() == 0


def test_client_certificates_name_the_principal():
    """On a mutual-TLS listener the principal comes from the client certificate's subject,
    mapped by ssl.principal.mapping.rules (here `CN=client` becomes `User:client`)."""
    from test_tls import make_pki
    with tempfile.TemporaryDirectory(prefix="strait-pytest-acl-mtls-") as workdir:
        work = pathlib.Path(workdir)
        pki = work / "pki"
        pki.mkdir()
        make_pki(pki)
        mtls = free_port()
        process = BrokerProcess(
            work,
            extra_listeners=f",MTLS://127.0.0.1:{mtls}",
            overrides=[
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,MTLS:SSL",
                "ssl.keystore.type=PEM",
                f"ssl.keystore.location={pki / 'keystore.pem'}",
                "listener.name.mtls.ssl.client.auth=required",
                "listener.name.mtls.ssl.truststore.type=PEM",
                f"listener.name.mtls.ssl.truststore.location={pki / 'ca.pem'}",
                "ssl.principal.mapping.rules=RULE:^CN=([^,]*)$/$1/L,DEFAULT",
                f"authorizer.class.name={AUTHORIZER}",
                # The harness's PLAINTEXT client administers.
                "super.users=User:ANONYMOUS",
                "auto.create.topics.enable=false",
            ],
        )
        try:
            admin = AdminClient({"bootstrap.servers": process.bootstrap})
            for f in admin.create_topics([NewTopic(t, 1, 1) for t in ("mtls-a", "other")]).values():
                f.result(TIMEOUT)
            grant = acl(ResourceType.TOPIC, "mtls-", ResourcePatternType.PREFIXED, "User:client",
                        AclOperation.WRITE, AclPermissionType.ALLOW)
            for f in admin.create_acls([grant]).values():
                f.result(TIMEOUT)
            conf = {
                "bootstrap.servers": f"127.0.0.1:{mtls}",
                "security.protocol": "ssl",
                "ssl.ca.location": str(pki / "ca.pem"),
                "ssl.certificate.location": str(pki / "client.pem"),
                "ssl.key.location": str(pki / "client.key"),
            }
            assert produce_error(conf, "mtls-a") is None
            denied = produce_error(conf, "other")
            assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
        finally:
            assert process.stop() == 0


def test_acl_apis_without_an_authorizer_answer_security_disabled(broker):
    """Kafka refuses the ACL APIs when no authorizer is configured, so that bindings are never
    stored looking enforced."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    binding = acl(ResourceType.TOPIC, "x", ResourcePatternType.LITERAL, "User:a",
                  AclOperation.READ, AclPermissionType.ALLOW)
    with pytest.raises(Exception) as e:
        for f in admin.create_acls([binding]).values():
            f.result(TIMEOUT)
    assert "SECURITY_DISABLED" in str(e.value), e.value
