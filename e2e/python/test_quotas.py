"""Client quotas with a real client: AlterClientQuotas / DescribeClientQuotas (hand-encoded, as
neither Python client has them), and a librdkafka producer held to its producer_byte_rate
within ±20 % over 10 s while another client id on the same broker is not slowed."""

import socket
import struct
import threading
import time
import urllib.request

import pytest
from confluent_kafka import Producer

TIMEOUT = 30
LIMIT = 1_000_000  # bytes per second


def string(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def nullable(s):
    return struct.pack(">h", -1) if s is None else string(s)


def call(bootstrap, api_key, version, body):
    host, port = bootstrap.split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as s:
        header = struct.pack(">hhi", api_key, version, 1) + string("quota-test")
        s.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        size = struct.unpack(">i", recv(s, 4))[0]
        return recv(s, size)[4:]  # without the correlation id


def recv(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        assert chunk, "connection closed"
        out += chunk
    return out


def alter_quota(bootstrap, entity, key, value, remove=False):
    """AlterClientQuotas v0 for one entity [(type, name)] and one key: the entry's error code."""
    body = struct.pack(">i", 1) + struct.pack(">i", len(entity))
    for t, n in entity:
        body += string(t) + nullable(n)
    body += struct.pack(">i", 1) + string(key) + struct.pack(">d?", value, remove)
    body += struct.pack(">?", False)
    resp = call(bootstrap, 49, 0, body)
    _throttle, count = struct.unpack(">ii", resp[:8])
    assert count == 1
    return struct.unpack(">h", resp[8:10])[0]


def describe_quotas(bootstrap):
    """DescribeClientQuotas v0 of every client-id entity: {name: {key: value}}."""
    body = struct.pack(">i", 1) + string("client-id") + struct.pack(">b", 2) + nullable(None)
    body += struct.pack(">?", False)
    resp = call(bootstrap, 48, 0, body)
    pos = 4
    error = struct.unpack(">h", resp[pos:pos + 2])[0]
    assert error == 0
    pos += 2
    mlen = struct.unpack(">h", resp[pos:pos + 2])[0]
    pos += 2 + max(mlen, 0)
    count = struct.unpack(">i", resp[pos:pos + 4])[0]
    pos += 4
    out = {}
    for _ in range(count):
        n = struct.unpack(">i", resp[pos:pos + 4])[0]
        pos += 4
        name = None
        for _ in range(n):
            tlen = struct.unpack(">h", resp[pos:pos + 2])[0]
            pos += 2 + tlen
            nlen = struct.unpack(">h", resp[pos:pos + 2])[0]
            pos += 2
            if nlen >= 0:
                name = resp[pos:pos + nlen].decode()
                pos += nlen
        values = {}
        v = struct.unpack(">i", resp[pos:pos + 4])[0]
        pos += 4
        for _ in range(v):
            klen = struct.unpack(">h", resp[pos:pos + 2])[0]
            key = resp[pos + 2:pos + 2 + klen].decode()
            pos += 2 + klen
            values[key] = struct.unpack(">d", resp[pos:pos + 8])[0]
            pos += 8
        out[name] = values
    return out


def produce_for(bootstrap, client_id, topic, seconds, delivered):
    """Produces 1 KiB records as fast as the client may for `seconds` (bounded in count);
    appends (time, bytes) per delivery to `delivered`."""
    producer = Producer({"bootstrap.servers": bootstrap, "client.id": client_id,
                         "linger.ms": 5, "queue.buffering.max.kbytes": 2048})
    payload = b"q" * 1024
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < seconds and sent < 200_000:
        try:
            producer.produce(topic, value=payload,
                             on_delivery=lambda err, m: err is None and delivered.append(
                                 (time.monotonic(), len(m.value()))))
            sent += 1
        except BufferError:
            producer.poll(0.01)
            continue
        producer.poll(0)
    producer.flush(TIMEOUT)


def test_producer_byte_rate_holds_one_client_and_not_another(broker):
    bootstrap = broker.bootstrap
    assert alter_quota(bootstrap, [("client-id", "slow")], "producer_byte_rate", LIMIT) == 0
    assert describe_quotas(bootstrap)["slow"] == {"producer_byte_rate": float(LIMIT)}
    # Kafka's checks: an unknown key and a non-positive value are INVALID_REQUEST (42).
    assert alter_quota(bootstrap, [("client-id", "x")], "bogus_rate", 1.0) == 42
    assert alter_quota(bootstrap, [("client-id", "x")], "producer_byte_rate", -5.0) == 42

    slow, fast = [], []
    threads = [
        threading.Thread(target=produce_for, args=(bootstrap, "slow", "quota-slow", 15, slow)),
        threading.Thread(target=produce_for, args=(bootstrap, "fast", "quota-fast", 6, fast)),
    ]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    # The first seconds are spent filling Kafka's 11-window sample (a new client is measured
    # over at least 10 s); from then on the rate is held at the quota.
    window = [b for (t, b) in slow if start + 4 <= t < start + 14]
    rate = sum(window) / 10
    assert 0.8 * LIMIT <= rate <= 1.2 * LIMIT, f"slow client: {rate:.0f} B/s"
    fast_rate = sum(b for _, b in fast) / 6
    assert fast_rate > 3 * LIMIT, f"unthrottled client: {fast_rate:.0f} B/s"
    assert alter_quota(bootstrap, [("client-id", "slow")], "producer_byte_rate", 0, True) == 0
    assert "slow" not in describe_quotas(bootstrap)
