"""SSL listeners through Python's own TLS stack (kafka-python on the ssl module) and librdkafka's
(confluent-kafka): produce and consume over TLS with host-name verification, mutual TLS with a
client certificate, and refusal of a client that does not trust the broker's CA. Certificates
come from the openssl command line, as an administrator would make them."""

import pathlib
import subprocess
import tempfile
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaConnectionError, KafkaTimeoutError

REFUSED = (KafkaConnectionError, KafkaTimeoutError)

from conftest import BrokerProcess, free_port

TIMEOUT = 30


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d: pathlib.Path):
    """A CA, a broker certificate for 127.0.0.1/localhost, a client certificate, and an
    unrelated CA."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=strait test ca", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=other ca", "-keyout", "other.key", "-out", "other-ca.pem", cwd=d)
    # Extensions make v3 certificates; TLS verifiers refuse v1 ones.
    (d / "broker.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("broker", "client"):
        ext = ["-extfile", f"{name}.ext"]
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", *ext, cwd=d)
    # The broker's PEM keystore: key and chain in one file.
    (d / "keystore.pem").write_text((d / "broker.key").read_text() + (d / "broker.pem").read_text())


@pytest.fixture(scope="module")
def tls_broker():
    with tempfile.TemporaryDirectory(prefix="strait-pytest-tls-") as workdir:
        work = pathlib.Path(workdir)
        pki = work / "pki"
        pki.mkdir()
        make_pki(pki)
        tls, mtls = free_port(), free_port()
        process = BrokerProcess(
            work,
            extra_listeners=f",SSL://127.0.0.1:{tls},MTLS://127.0.0.1:{mtls}",
            overrides=[
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL",
                "ssl.keystore.type=PEM",
                f"ssl.keystore.location={pki / 'keystore.pem'}",
                "listener.name.mtls.ssl.client.auth=required",
                "listener.name.mtls.ssl.truststore.type=PEM",
                f"listener.name.mtls.ssl.truststore.location={pki / 'ca.pem'}",
            ],
        )
        try:
            yield process, f"127.0.0.1:{tls}", f"127.0.0.1:{mtls}", pki
        finally:
            code = process.stop()
            assert code == 0, f"broker exit status {code}:\n{process.stderr()[-4000:]}"


def test_kafka_python_over_tls_with_hostname_check(tls_broker):
    _, tls, _, pki = tls_broker
    topic = f"py-tls-{uuid.uuid4().hex[:8]}"
    ssl = dict(security_protocol="SSL", ssl_cafile=str(pki / "ca.pem"), ssl_check_hostname=True)
    producer = KafkaProducer(bootstrap_servers=tls, acks="all", **ssl)
    for i in range(100):
        producer.send(topic, key=b"k%d" % i, value=b"tls %d" % i)
    producer.flush(TIMEOUT)
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=tls, auto_offset_reset="earliest",
                             consumer_timeout_ms=TIMEOUT * 1000, **ssl)
    got = []
    for m in consumer:
        got.append(m.value)
        if len(got) == 100:
            break
    consumer.close()
    assert got == [b"tls %d" % i for i in range(100)]


def test_confluent_kafka_mutual_tls(tls_broker):
    _, _, mtls, pki = tls_broker
    topic = f"py-mtls-{uuid.uuid4().hex[:8]}"
    conf = {
        "bootstrap.servers": mtls,
        "security.protocol": "ssl",
        "ssl.ca.location": str(pki / "ca.pem"),
        "ssl.certificate.location": str(pki / "client.pem"),
        "ssl.key.location": str(pki / "client.key"),
    }
    producer = Producer(conf)
    for i in range(50):
        producer.produce(topic, value=b"mtls %d" % i)
    assert producer.flush(TIMEOUT) == 0
    consumer = Consumer({**conf, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got = []
    deadline_polls = 200
    while len(got) < 50 and deadline_polls > 0:
        deadline_polls -= 1
        m = consumer.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value())
    consumer.close()
    assert got == [b"mtls %d" % i for i in range(50)]


def test_clients_without_trust_or_certificate_are_refused(tls_broker):
    process, tls, mtls, pki = tls_broker
    # kafka-python verifying against a CA that did not sign the broker's certificate.
    with pytest.raises(REFUSED):
        KafkaProducer(bootstrap_servers=tls, security_protocol="SSL",
                      ssl_cafile=str(pki / "other-ca.pem"), bootstrap_timeout_ms=5000)
    # No client certificate on the mutual-TLS listener.
    with pytest.raises(REFUSED):
        KafkaProducer(bootstrap_servers=mtls, security_protocol="SSL",
                      ssl_cafile=str(pki / "ca.pem"), bootstrap_timeout_ms=5000)
    assert process.alive()
    assert "TLS handshake failed" in process.stderr()
