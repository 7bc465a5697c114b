"""SASL/OAUTHBEARER with KIP-768 JWT validation: the test is the identity provider. It makes RSA
keys with `cryptography`, writes their public halves as the broker's JSON Web Key Set file, and
signs RS256 tokens by hand. librdkafka (confluent-kafka's oauth_cb) produces and consumes with a
valid token; expired, wrong-audience, wrong-issuer and foreign-key tokens are refused while the
broker keeps serving; raw frames check RFC 7628's error challenge, the KIP-368 session lifetime
taken from the token's exp, malformed client messages, and keys rotated into the file; a broker
whose key set is missing or is an http(s) URL does not start."""

import base64
import json
import os
import pathlib
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request

import pytest
from confluent_kafka import KafkaError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from conftest import BrokerProcess, broker_binary, free_port
from test_sasl import closed_without_answer, frame, refused, round_trip

AUDIENCE = "strait-test"
ISSUER = "https://issuer.strait.test"
VALIDATOR = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36
SASL_AUTHENTICATION_FAILED = 58
TIMEOUT = 30


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint(n: int) -> str:
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def jwk(key, kid):
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": uint(numbers.n), "e": uint(numbers.e)}


def write_jwks(path: pathlib.Path, keys):
    """Replaces the key set file at once (a rename), as a sync job would."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"keys": [jwk(key, kid) for kid, key in keys]}))
    os.replace(tmp, path)


def token(key, kid, **claims):
    """An RS256 JWT: by default for `alice`, this broker's audience and issuer, valid 1 h."""
    now = int(time.time())
    payload = {"sub": "alice", "aud": AUDIENCE, "iss": ISSUER, "iat": now, "exp": now + 3600,
               "scope": "kafka"}
    payload.update(claims)
    header = {"alg": "RS256", "typ": "JWT", "kid": kid}
    signing_input = (b64url(json.dumps(header).encode()) + "." +
                     b64url(json.dumps(payload).encode()))
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(signature)


class Idp:
    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.next_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def valid(self, **claims):
        return token(self.key, "k1", **claims)


@pytest.fixture(scope="module")
def oauth_broker():
    with tempfile.TemporaryDirectory(prefix="strait-pytest-oauth-") as workdir:
        work = pathlib.Path(workdir)
        idp = Idp()
        jwks = work / "jwks.json"
        write_jwks(jwks, [("k1", idp.key)])
        sasl, metrics = free_port(), free_port()
        process = BrokerProcess(
            work,
            extra_listeners=f",SASL_PLAINTEXT://127.0.0.1:{sasl}",
            overrides=[
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
                "sasl.enabled.mechanisms=OAUTHBEARER",
                f"sasl.oauthbearer.jwks.endpoint.url=file://{jwks}",
                f"sasl.oauthbearer.expected.audience=other-service,{AUDIENCE}",
                f"sasl.oauthbearer.expected.issuer={ISSUER}",
                # Re-read the key set often, so a rotation shows within the test.
                "sasl.oauthbearer.jwks.endpoint.refresh.ms=200",
                # As a Kafka config turns on JWT validation; Strait always validates.
                f"listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class={VALIDATOR}",
                "connection.failed.authentication.delay.ms=20",
                "group.initial.rebalance.delay.ms=0",
                f"metrics.listener=127.0.0.1:{metrics}",
            ],
        )
        process.metrics = f"http://127.0.0.1:{metrics}/metrics"
        process.jwks = jwks
        try:
            yield process, f"127.0.0.1:{sasl}", idp
        finally:
            code = process.stop()
            assert code == 0, f"broker exit status {code}:\n{process.stderr()[-4000:]}"


def oauth_conf(bootstrap, jwt, principal="alice"):
    # librdkafka wants an unexpired lifetime for the token it holds, whatever the JWT says.
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "sasl_plaintext",
        "sasl.mechanism": "OAUTHBEARER",
        "oauth_cb": lambda _config: (jwt, time.time() + 3600, principal, {}),
    }


def authentications(process, result):
    text = urllib.request.urlopen(process.metrics, timeout=10).read().decode()
    want = ('strait_sasl_authentications_total{listener="SASL_PLAINTEXT",'
            f'mechanism="OAUTHBEARER",result="{result}"}}')
    for line in text.splitlines():
        if line.startswith(want):
            return float(line.split()[-1])
    return 0.0


def test_a_valid_token_produces_and_consumes(oauth_broker):
    process, sasl, idp = oauth_broker
    before = authentications(process, "success")
    round_trip(oauth_conf(sasl, idp.valid()), count=20)
    assert authentications(process, "success") > before
    assert "user=alice" in process.stderr()


def test_bad_tokens_are_refused_and_the_broker_keeps_serving(oauth_broker):
    process, sasl, idp = oauth_broker
    now = int(time.time())
    before = authentications(process, "failure")
    cases = {
        # Beyond the 30 s clock skew.
        "expired": idp.valid(iat=now - 7200, exp=now - 600),
        "wrong audience": idp.valid(aud="someone-else"),
        "wrong issuer": idp.valid(iss="https://evil.example"),
        # Right kid, wrong key: the signature does not verify.
        "bad signature": token(idp.foreign, "k1"),
    }
    for reason, jwt in cases.items():
        error = refused(oauth_conf(sasl, jwt))
        assert error is not None, reason
        assert error.code() == KafkaError._AUTHENTICATION, (reason, error)
        assert "Invalid OAUTHBEARER token" in error.str() and reason in error.str(), error
    assert authentications(process, "failure") - before >= len(cases)
    assert process.alive()
    assert "SASL authentication failed" in process.stderr()
    round_trip(oauth_conf(sasl, idp.valid()), count=5)


def request(sock, api_key, version, correlation, body):
    sock.sendall(frame(api_key, version, correlation, body))
    return response(sock, correlation)


def response(sock, correlation):
    sock.settimeout(10)
    size = struct.unpack(">i", recv_exactly(sock, 4))[0]
    body = recv_exactly(sock, size)
    assert struct.unpack(">i", body[:4])[0] == correlation
    return body[4:]


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def handshake(sock, mechanism=b"OAUTHBEARER"):
    body = request(sock, SASL_HANDSHAKE, 1, 1, struct.pack(">h", len(mechanism)) + mechanism)
    assert struct.unpack(">h", body[:2])[0] == 0


def authenticate(sock, correlation, auth_bytes):
    """SaslAuthenticate v1: (error code, error message, auth bytes, session lifetime ms)."""
    body = request(sock, SASL_AUTHENTICATE, 1, correlation,
                   struct.pack(">i", len(auth_bytes)) + auth_bytes)
    error, msg_len = struct.unpack(">hh", body[:4])
    message = body[4:4 + max(msg_len, 0)].decode() if msg_len >= 0 else None
    rest = body[4 + max(msg_len, 0):]
    auth_len = struct.unpack(">i", rest[:4])[0]
    auth = rest[4:4 + auth_len]
    lifetime = struct.unpack(">q", rest[4 + auth_len:12 + auth_len])[0]
    return error, message, auth, lifetime


def initial_response(jwt):
    return f"n,,\x01auth=Bearer {jwt}\x01\x01".encode()


def address(sasl):
    host, port = sasl.split(":")
    return host, int(port)


def test_session_lifetime_is_the_time_left_on_the_token(oauth_broker):
    """connections.max.reauth.ms is 0 here; as in Kafka the session still ends at the token's
    exp, and the client is told so (KIP-368's session_lifetime_ms)."""
    _, sasl, idp = oauth_broker
    with socket.create_connection(address(sasl)) as s:
        handshake(s)
        sent_at = time.time()
        error, _, auth, lifetime = authenticate(
            s, 2, initial_response(idp.valid(exp=int(sent_at) + 120)))
        assert (error, auth) == (0, b"")
        assert 100_000 < lifetime <= 120_000, lifetime
        # Authenticated: a Metadata request is answered.
        request(s, 3, 1, 3, struct.pack(">i", 0))
    # A token that outlives any clock: a session without an end, not an overflow.
    with socket.create_connection(address(sasl)) as s:
        handshake(s)
        error, _, _, lifetime = authenticate(s, 2, initial_response(idp.valid(exp=1e300)))
        assert error == 0 and lifetime > 10**17, lifetime
        request(s, 3, 1, 3, struct.pack(">i", 0))


def test_a_refused_token_gets_the_error_challenge_then_the_reason(oauth_broker):
    process, sasl, idp = oauth_broker
    with socket.create_connection(address(sasl)) as s:
        handshake(s)
        error, _, challenge, _ = authenticate(s, 2, initial_response(idp.valid(aud="nope")))
        assert error == 0 and json.loads(challenge) == {"status": "invalid_token"}
        error, message, _, _ = authenticate(s, 3, b"\x01")
        assert error == SASL_AUTHENTICATION_FAILED
        assert "wrong audience" in message, message
        assert closed_without_answer(s)
    assert process.alive()


def test_malformed_client_messages_fail_only_that_connection(oauth_broker):
    process, sasl, idp = oauth_broker
    for garbage in [b"\xff\x00garbage", b"n,,\x01auth=Basic abc\x01\x01",
                    b"n,,\x01auth=Bearer " + b"x" * 70_000 + b"\x01\x01",
                    initial_response(idp.valid())[:-1]]:
        with socket.create_connection(address(sasl)) as s:
            handshake(s)
            error, message, _, _ = authenticate(s, 2, garbage)
            assert error == SASL_AUTHENTICATION_FAILED, (garbage[:20], message)
            assert closed_without_answer(s)
    # An answer to the error challenge other than \x01.
    with socket.create_connection(address(sasl)) as s:
        handshake(s)
        error, _, challenge, _ = authenticate(s, 2, initial_response("not.a.jwt"))
        assert error == 0 and b"invalid_token" in challenge
        error, _, _, _ = authenticate(s, 3, initial_response(idp.valid()))
        assert error == SASL_AUTHENTICATION_FAILED
        assert closed_without_answer(s)
    assert process.alive()
    with socket.create_connection(address(sasl)) as s:
        handshake(s)
        assert authenticate(s, 2, initial_response(idp.valid()))[0] == 0


def test_keys_rotated_into_the_file_are_used(oauth_broker):
    process, sasl, idp = oauth_broker
    rotated = token(idp.next_key, "k2")

    def login(jwt):
        with socket.create_connection(address(sasl)) as s:
            handshake(s)
            error, _, auth, _ = authenticate(s, 2, initial_response(jwt))
            if error == 0 and auth == b"":
                return "ok"
            return authenticate(s, 3, b"\x01")[1]

    assert "unknown kid" in login(rotated)
    write_jwks(process.jwks, [("k1", idp.key), ("k2", idp.next_key)])
    deadline = time.monotonic() + 10
    while login(rotated) != "ok":
        assert time.monotonic() < deadline, "the rotated key set was not picked up"
        time.sleep(0.1)
    assert "JSON Web Key Set reloaded" in process.stderr()
    # A file that is not a key set keeps the keys in use.
    process.jwks.write_text("{not json")
    deadline = time.monotonic() + 10
    while "keeping the OAUTHBEARER keys in use" not in process.stderr():
        assert time.monotonic() < deadline, "the broken key set file was not noticed"
        time.sleep(0.1)
    assert login(idp.valid()) == "ok" and login(rotated) == "ok"
    write_jwks(process.jwks, [("k1", idp.key), ("k2", idp.next_key)])


@pytest.mark.parametrize("url, says", [
    ("file:///nonexistent/strait/jwks.json", "cannot read the JSON Web Key Set"),
    ("https://idp.example.com/jwks.json", "only file URLs"),
])
def test_a_broker_without_a_usable_key_set_does_not_start(url, says):
    with tempfile.TemporaryDirectory(prefix="strait-pytest-oauth-bad-") as workdir:
        work = pathlib.Path(workdir)
        args = [str(broker_binary()),
                "--override", f"listeners=SASL_PLAINTEXT://127.0.0.1:{free_port()}",
                "--override", f"log.dirs={work / 'data'}",
                "--override", "metrics.listener=",
                "--override", "sasl.enabled.mechanisms=OAUTHBEARER",
                "--override", f"sasl.oauthbearer.jwks.endpoint.url={url}"]
        done = subprocess.run(args, cwd=work, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=TIMEOUT, env={**os.environ, "NO_COLOR": "1"})
        stderr = done.stderr.decode(errors="replace")
        assert done.returncode != 0, stderr
        assert says in stderr and "sasl.oauthbearer.jwks.endpoint.url" in stderr, stderr
        assert not (work / "data").exists()
