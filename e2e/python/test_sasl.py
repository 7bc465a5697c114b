"""SASL with real clients: SCRAM-SHA-256/512 and PLAIN over SASL_PLAINTEXT and SASL_SSL through
librdkafka (confluent-kafka) and kafka-python; the first admin credential from `--add-scram`,
users created and described with the admin client (AlterUserScramCredentials /
DescribeUserScramCredentials), KIP-368 re-authentication on a long-lived connection, refusals
(wrong password, unknown user, mechanism not enabled) that leave the broker serving others, and
hand-made bad SASL frames."""

import pathlib
import socket
import struct
import tempfile
import time
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)
from kafka import KafkaConsumer, KafkaProducer

from conftest import BrokerProcess, free_port
from test_tls import make_pki

TIMEOUT = 30
ADMIN_PASSWORD = "admin-secret"
PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'user_carol="carol-secret";')


@pytest.fixture(scope="module")
def sasl_broker():
    with tempfile.TemporaryDirectory(prefix="strait-pytest-sasl-") as workdir:
        work = pathlib.Path(workdir)
        pki = work / "pki"
        pki.mkdir()
        make_pki(pki)
        sasl, secure, metrics = free_port(), free_port(), free_port()
        process = BrokerProcess(
            work,
            extra_listeners=f",SASL_PLAINTEXT://127.0.0.1:{sasl},SECURE://127.0.0.1:{secure}",
            overrides=[
                "listener.security.protocol.map="
                "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SECURE:SASL_SSL",
                "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
                "listener.name.secure.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN",
                f"listener.name.secure.plain.sasl.jaas.config={PLAIN_JAAS}",
                "ssl.keystore.type=PEM",
                f"ssl.keystore.location={pki / 'keystore.pem'}",
                # Short sessions: connections must re-authenticate during the tests (KIP-368).
                "connections.max.reauth.ms=3000",
                "connection.failed.authentication.delay.ms=50",
                "group.initial.rebalance.delay.ms=0",
                f"metrics.listener=127.0.0.1:{metrics}",
            ],
            extra_args=["--add-scram", f"SCRAM-SHA-512=[name=admin,password={ADMIN_PASSWORD}]",
                        "--add-scram", f"SCRAM-SHA-256=[name=admin,password={ADMIN_PASSWORD}]"],
        )
        process.metrics = f"http://127.0.0.1:{metrics}/metrics"
        try:
            yield process, f"127.0.0.1:{sasl}", f"127.0.0.1:{secure}", pki
        finally:
            code = process.stop()
            assert code == 0, f"broker exit status {code}:\n{process.stderr()[-4000:]}"


def sasl_conf(bootstrap, mechanism, user, password, ssl_ca=None):
    conf = {
        "bootstrap.servers": bootstrap,
        "security.protocol": "sasl_ssl" if ssl_ca else "sasl_plaintext",
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }
    if ssl_ca:
        conf["ssl.ca.location"] = str(ssl_ca)
    return conf


def round_trip(conf, count=30):
    """Produces `count` records to a new topic and reads them back with the same login."""
    topic = f"sasl-{uuid.uuid4().hex[:8]}"
    producer = Producer(conf)
    for i in range(count):
        producer.produce(topic, value=b"v%d" % i)
    assert producer.flush(TIMEOUT) == 0
    consumer = Consumer({**conf, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got = []
    deadline = time.monotonic() + TIMEOUT
    while len(got) < count and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value())
    consumer.close()
    assert got == [b"v%d" % i for i in range(count)]


def refused(conf):
    """The error librdkafka reports for a login the broker refuses (None if it was accepted)."""
    errors = []
    producer = Producer({**conf, "error_cb": errors.append, "message.timeout.ms": 5000})
    producer.produce(f"refused-{uuid.uuid4().hex[:8]}", value=b"x")
    deadline = time.monotonic() + TIMEOUT
    while not errors and time.monotonic() < deadline:
        producer.poll(0.2)
    producer.purge()
    return errors[0] if errors else None


def create_user(admin_conf, user, password, mechanism=ScramMechanism.SCRAM_SHA_256):
    admin = AdminClient(admin_conf)
    upsert = UserScramCredentialUpsertion(user, ScramCredentialInfo(mechanism, 4096),
                                          password.encode())
    for f in admin.alter_user_scram_credentials([upsert]).values():
        f.result(TIMEOUT)


def test_add_scram_admin_creates_and_describes_users(sasl_broker):
    _, sasl, _, _ = sasl_broker
    admin_conf = sasl_conf(sasl, "SCRAM-SHA-512", "admin", ADMIN_PASSWORD)
    create_user(admin_conf, "alice", "alice-secret")
    create_user(admin_conf, "alice", "alice-secret", ScramMechanism.SCRAM_SHA_512)
    admin = AdminClient(admin_conf)
    described = admin.describe_user_scram_credentials(["alice", "admin"])
    alice = described["alice"].result(TIMEOUT)
    mechanisms = sorted((i.mechanism, i.iterations) for i in alice.scram_credential_infos)
    assert mechanisms == [(ScramMechanism.SCRAM_SHA_256, 4096), (ScramMechanism.SCRAM_SHA_512, 4096)]
    assert len(described["admin"].result(TIMEOUT).scram_credential_infos) == 2
    with pytest.raises(KafkaException) as e:
        admin.describe_user_scram_credentials(["nobody"])["nobody"].result(TIMEOUT)
    assert "RESOURCE_NOT_FOUND" in str(e.value)
    # Iterations below Kafka's minimum are refused with UNACCEPTABLE_CREDENTIAL.
    weak = UserScramCredentialUpsertion(
        "weak", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 1000), b"pw")
    with pytest.raises(KafkaException) as e:
        for f in admin.alter_user_scram_credentials([weak]).values():
            f.result(TIMEOUT)
    assert "UNACCEPTABLE_CREDENTIAL" in str(e.value)
    # alice can log in with both mechanisms, and with PLAIN against her SCRAM credential.
    round_trip(sasl_conf(sasl, "SCRAM-SHA-256", "alice", "alice-secret"))
    round_trip(sasl_conf(sasl, "SCRAM-SHA-512", "alice", "alice-secret"))
    round_trip(sasl_conf(sasl, "PLAIN", "alice", "alice-secret"))


def test_deleted_credentials_no_longer_log_in(sasl_broker):
    _, sasl, _, _ = sasl_broker
    admin_conf = sasl_conf(sasl, "SCRAM-SHA-512", "admin", ADMIN_PASSWORD)
    create_user(admin_conf, "dave", "dave-secret")
    round_trip(sasl_conf(sasl, "SCRAM-SHA-256", "dave", "dave-secret"), count=5)
    admin = AdminClient(admin_conf)
    gone = UserScramCredentialDeletion("dave", ScramMechanism.SCRAM_SHA_256)
    for f in admin.alter_user_scram_credentials([gone]).values():
        f.result(TIMEOUT)
    error = refused(sasl_conf(sasl, "SCRAM-SHA-256", "dave", "dave-secret"))
    assert error is not None and "Authentication failed" in error.str(), error


def test_sasl_ssl_with_scram_and_a_plain_user_list(sasl_broker):
    _, _, secure, pki = sasl_broker
    ca = pki / "ca.pem"
    round_trip(sasl_conf(secure, "SCRAM-SHA-512", "admin", ADMIN_PASSWORD, ssl_ca=ca))
    # This listener's PLAIN has its own user list: carol is there, SCRAM users are not.
    round_trip(sasl_conf(secure, "PLAIN", "carol", "carol-secret", ssl_ca=ca))
    error = refused(sasl_conf(secure, "PLAIN", "admin", ADMIN_PASSWORD, ssl_ca=ca))
    assert error is not None and "Authentication failed" in error.str(), error
    # SCRAM-SHA-256 is not enabled on this listener.
    error = refused(sasl_conf(secure, "SCRAM-SHA-256", "admin", ADMIN_PASSWORD, ssl_ca=ca))
    assert error is not None and "SCRAM-SHA-256" in error.str(), error


def test_kafka_python_scram(sasl_broker):
    _, sasl, _, _ = sasl_broker
    topic = f"py-sasl-{uuid.uuid4().hex[:8]}"
    login = dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                 sasl_plain_username="admin", sasl_plain_password=ADMIN_PASSWORD)
    producer = KafkaProducer(bootstrap_servers=sasl, acks="all", **login)
    for i in range(50):
        producer.send(topic, value=b"py %d" % i)
    producer.flush(TIMEOUT)
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=sasl, auto_offset_reset="earliest",
                             consumer_timeout_ms=TIMEOUT * 1000, **login)
    got = []
    for m in consumer:
        got.append(m.value)
        if len(got) == 50:
            break
    consumer.close()
    assert got == [b"py %d" % i for i in range(50)]


def test_wrong_logins_are_refused_and_others_keep_working(sasl_broker):
    process, sasl, _, _ = sasl_broker
    wrong = refused(sasl_conf(sasl, "SCRAM-SHA-512", "admin", "not-the-password"))
    unknown = refused(sasl_conf(sasl, "SCRAM-SHA-512", "mallory", "whatever"))
    plain_wrong = refused(sasl_conf(sasl, "PLAIN", "admin", "nope"))
    for error in (wrong, unknown, plain_wrong):
        assert error is not None and "Authentication failed" in error.str(), error
    assert authentications(process, "SCRAM-SHA-512", "failure") >= 2
    # An unknown user and a wrong password read the same (no user enumeration).
    assert "invalid credentials" in wrong.str() and "invalid credentials" in unknown.str()
    assert process.alive()
    round_trip(sasl_conf(sasl, "SCRAM-SHA-512", "admin", ADMIN_PASSWORD), count=5)
    assert "SASL authentication failed" in process.stderr()


def test_sessions_reauthenticate_on_long_lived_connections(sasl_broker):
    """connections.max.reauth.ms is 3 s: a producer sending for 8 s re-authenticates on its
    connection (KIP-368) and loses nothing; no connection is closed for an expired session."""
    process, sasl, _, _ = sasl_broker
    topic = f"reauth-{uuid.uuid4().hex[:8]}"
    conf = sasl_conf(sasl, "SCRAM-SHA-256", "admin", ADMIN_PASSWORD)
    before = authentications(process, "SCRAM-SHA-256", "success")
    producer = Producer(conf)
    failures = []
    sent = 0
    end = time.monotonic() + 8
    while time.monotonic() < end:
        producer.produce(topic, value=b"r%d" % sent,
                         on_delivery=lambda err, _m: err and failures.append(err))
        sent += 1
        producer.poll(0.05)
    assert producer.flush(TIMEOUT) == 0
    assert not failures, failures
    assert "expired" not in process.stderr()
    # The producer's connections logged in, then logged in again at least twice in 8 s.
    assert authentications(process, "SCRAM-SHA-256", "success") - before >= 4
    round_trip(conf, count=5)


def authentications(process, mechanism, result):
    """strait_sasl_authentications_total of the SASL_PLAINTEXT listener."""
    text = urllib.request.urlopen(process.metrics, timeout=10).read().decode()
    want = (f'strait_sasl_authentications_total{{listener="SASL_PLAINTEXT",'
            f'mechanism="{mechanism}",result="{result}"}}')
    for line in text.splitlines():
        if line.startswith(want):
            return float(line.split()[-1])
    return 0.0


def frame(api_key, version, correlation, body=b"", client_id=b"raw"):
    header = struct.pack(">hhih", api_key, version, correlation, len(client_id)) + client_id
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def closed_without_answer(sock):
    sock.settimeout(5)
    try:
        return sock.recv(4) == b""
    except ConnectionResetError:
        return True


def test_bad_sasl_input_closes_only_that_connection(sasl_broker):
    process, sasl, _, _ = sasl_broker
    host, port = sasl.split(":")
    addr = (host, int(port))
    # A Metadata request before authenticating.
    with socket.create_connection(addr) as s:
        s.sendall(frame(3, 1, 1, struct.pack(">i", -1)))
        assert closed_without_answer(s)
    # SaslAuthenticate (v1) before any handshake.
    with socket.create_connection(addr) as s:
        s.sendall(frame(36, 1, 1, struct.pack(">i", 3) + b"abc"))
        assert closed_without_answer(s)
    # A frame beyond sasl.server.max.receive.size (512 KiB) before authenticating.
    with socket.create_connection(addr) as s:
        s.sendall(struct.pack(">i", 4 * 1024 * 1024) + b"\x00" * 64)
        assert closed_without_answer(s)
    # A handshake for a mechanism not enabled: UNSUPPORTED_SASL_MECHANISM and the list.
    with socket.create_connection(addr) as s:
        mech = b"GSSAPI"
        s.sendall(frame(17, 1, 7, struct.pack(">h", len(mech)) + mech))
        s.settimeout(5)
        size = struct.unpack(">i", s.recv(4))[0]
        body = b""
        while len(body) < size:
            body += s.recv(size - len(body))
        correlation, error = struct.unpack(">ih", body[:6])
        assert (correlation, error) == (7, 33)
        assert b"SCRAM-SHA-512" in body
    # A valid handshake, then garbage as the SCRAM client-first message: SASL_AUTHENTICATION_FAILED.
    with socket.create_connection(addr) as s:
        mech = b"SCRAM-SHA-256"
        s.sendall(frame(17, 1, 1, struct.pack(">h", len(mech)) + mech))
        s.settimeout(5)
        size = struct.unpack(">i", s.recv(4))[0]
        s.recv(size)
        token = b"\xff\x00garbage"
        s.sendall(frame(36, 1, 2, struct.pack(">i", len(token)) + token))
        size = struct.unpack(">i", s.recv(4))[0]
        body = b""
        while len(body) < size:
            body += s.recv(size - len(body))
        correlation, error = struct.unpack(">ih", body[:6])
        assert (correlation, error) == (2, 58)
        assert closed_without_answer(s)
    assert process.alive()
    round_trip(sasl_conf(sasl, "SCRAM-SHA-512", "admin", ADMIN_PASSWORD), count=5)


def test_add_scram_applies_only_to_a_new_cluster():
    """A restart with another --add-scram password keeps the first credential (applied once,
    when the metadata log was created) and says so in the log."""
    with tempfile.TemporaryDirectory(prefix="strait-pytest-addscram-") as workdir:
        work = pathlib.Path(workdir)
        port = free_port()

        def start(password):
            return BrokerProcess(
                work,
                extra_listeners=f",SASL_PLAINTEXT://127.0.0.1:{port}",
                overrides=["listener.security.protocol.map="
                           "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
                           "sasl.enabled.mechanisms=SCRAM-SHA-512",
                           "group.initial.rebalance.delay.ms=0"],
                extra_args=["--add-scram", f"SCRAM-SHA-512=[name=root,password={password}]"],
            )

        first = start("first-secret")
        try:
            round_trip(sasl_conf(f"127.0.0.1:{port}", "SCRAM-SHA-512", "root", "first-secret"),
                       count=3)
        finally:
            assert first.stop() == 0
        second = start("second-secret")
        try:
            bootstrap = f"127.0.0.1:{port}"
            round_trip(sasl_conf(bootstrap, "SCRAM-SHA-512", "root", "first-secret"), count=3)
            error = refused(sasl_conf(bootstrap, "SCRAM-SHA-512", "root", "second-secret"))
            assert error is not None and "Authentication failed" in error.str(), error
            assert "--add-scram ignored" in second.stderr()
        finally:
            assert second.stop() == 0


def kcat(args, stdin=b""):
    import shutil
    import subprocess
    binary = shutil.which("kcat") or shutil.which("kafkacat")
    assert binary, "kcat is installed by e2e/setup.sh"
    return subprocess.run([binary, *args], input=stdin, capture_output=True, timeout=60)


def test_kcat_over_sasl_plaintext_and_sasl_ssl(sasl_broker):
    """kcat (Debian's librdkafka, built with Cyrus SASL and OpenSSL) with SCRAM-SHA-512."""
    _, sasl, secure, pki = sasl_broker
    topic = f"kcat-sasl-{uuid.uuid4().hex[:8]}"
    login = ["-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=admin",
             "-X", f"sasl.password={ADMIN_PASSWORD}"]
    plain = ["-b", sasl, "-X", "security.protocol=SASL_PLAINTEXT", *login]
    lines = b"".join(b"line %d\n" % i for i in range(20))
    produced = kcat([*plain, "-P", "-t", topic], lines)
    assert produced.returncode == 0, produced.stderr
    secure_args = ["-b", secure, "-X", "security.protocol=SASL_SSL",
                   "-X", f"ssl.ca.location={pki / 'ca.pem'}", *login]
    consumed = kcat([*secure_args, "-C", "-t", topic, "-o", "beginning", "-e", "-q"])
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.splitlines() == lines.splitlines()
    wrong = kcat(["-b", sasl, "-X", "security.protocol=SASL_PLAINTEXT",
                  "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=admin",
                  "-X", "sasl.password=wrong", "-L", "-m", "5"])
    assert wrong.returncode != 0
    assert b"Authentication failed" in wrong.stderr or b"authentication" in wrong.stderr.lower()
