#!/usr/bin/env python3
"""Security benchmark (issue 13): what TLS, SASL/SCRAM and the ACL authorizer cost.

  python3 e2e/bench/security.py [--quick] [--broker PATH] [--markdown FILE]

Two single-node `strait-broker` processes on loopback, each with four listeners — PLAINTEXT, SSL
(a server certificate only), SASL_PLAINTEXT and SASL_SSL, both SASL ones with SCRAM-SHA-512 — and
certificates made with the openssl command line (a CA and a broker certificate for 127.0.0.1):

  authz off: no authorizer;
  authz on:  authorizer.class.name=StandardAuthorizer, super.users=User:admin only. The measured
             principals (User:bench over SASL, User:ANONYMOUS over PLAINTEXT) are NOT super users:
             they get ALLOW WRITE/READ/DESCRIBE on the topic prefix `sec-` and READ on the group
             prefix `sec-`, and 100 unrelated bindings for other users (some on the same prefix)
             are there for the authorizer to scan. Every Produce, Fetch, Metadata, ListOffsets
             and group request of the measured clients is checked against them.

1. Throughput, every case on a new 1-partition topic (deleted afterwards, its directory checked
   gone): produce N x 1 KiB (confluent-kafka, acks=1, linger.ms=5, no compression) and consume
   them back from the start (a subscribed consumer group, timed from the first record) — on each
   listener of `authz off`, and on PLAINTEXT and SASL_SSL of `authz on`, the off/on cases of one
   listener run back to back (alternating which goes first) so that other load on the machine
   hits both alike. --repeat rounds, the run with the median MB/s reported.
2. Connection set-up, against `authz off`: for --conn-seconds (at most --conn-max connections)
   one connection after another: TCP connect (+ TLS handshake), ApiVersions v0, and on the SASL
   listeners SaslHandshake v1 + the SCRAM-SHA-512 exchange (RFC 5802, SaslAuthenticate v1,
   done here with hashlib/hmac; the server signature is checked), then close. The client caches
   the salted password (PBKDF2 with the broker's salt and 4096 iterations) after the first
   login, as it is the client's cost, not the broker's; TLS sessions are not resumed.

Broker CPU is its utime+stime before and after each case (the process CPU-time clock, in ns; the
10 ms ticks of /proc/<pid>/stat if that clock cannot be read); client CPU is this
process (all its librdkafka threads) from getrusage(RUSAGE_SELF); "other" is the rest of the
machine's busy time (/proc/stat). The Python producer loop is often the limit (client cores near
1): MB/s is then a relative comparison, and broker CPU s/GB the figure that shows the broker's
cost. Every loop is bounded in count and time; only 127.0.0.1 is used; the brokers this script
started are stopped by PID on exit, error, Ctrl-C or SIGTERM; the temp dir is removed."""

import argparse
import base64
import hashlib
import hmac
import os
import pathlib
import resource
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from c_client import (CLK_TCK, QUIET, REPO, Stop, cpu_ticks, free_port, http_ok,  # noqa: E402
                      machine, on_signal, percentile, system_busy_seconds, terminate)

from confluent_kafka import Consumer, KafkaError, Producer  # noqa: E402
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,  # noqa: E402
                                   AclPermissionType, AdminClient, NewTopic, ResourcePatternType,
                                   ResourceType)

AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
LISTENERS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
AUTHZ_LISTENERS = ("PLAINTEXT", "SASL_SSL")
USER, PASSWORD = "bench", "bench-secret"
ADMIN, ADMIN_PASSWORD = "admin", "admin-secret"
PREFIX = "sec-"  # topics and groups the measured principals may use
SIZE = 1024
UNRELATED_ACLS = 100
PRODUCER_CONF = {"acks": "1", "linger.ms": "5", "compression.type": "none",
                 "enable.idempotence": False, "queue.buffering.max.messages": "500000",
                 "delivery.report.only.error": True}

# librdkafka stops fetching for fetch.queue.backoff.ms (1 s by default) once 100,000 records
# (queued.min.messages) wait in its queue: with 1 KiB records and a fast broker that idles the
# fetcher most of the time and measures the pause, not the broker. 10 ms keeps it fetching.
CONSUMER_CONF = {"fetch.queue.backoff.ms": 10}

PROCS = []  # Popen objects this run started


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def du(path):
    total = 0
    for root, _dirs, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(root, n)).st_blocks * 512
            except OSError:
                pass
    return total


def tail(path, n=3000):
    try:
        return pathlib.Path(path).read_text(errors="replace")[-n:]
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------
# certificates and brokers


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d: pathlib.Path):
    """A CA and a broker certificate for 127.0.0.1 (as e2e/python/test_tls.py's make_pki)."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=strait bench ca", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    (d / "broker.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=broker",
            "-keyout", "broker.key", "-out", "broker.csr", cwd=d)
    openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", "broker.pem", "-extfile", "broker.ext", cwd=d)
    (d / "keystore.pem").write_text((d / "broker.key").read_text() + (d / "broker.pem").read_text())


class Broker:
    def __init__(self, binary, tmp: pathlib.Path, pki: pathlib.Path, authz: bool):
        self.name = "authz on" if authz else "authz off"
        self.authz = authz
        self.pki = pki
        self.ports = {l: free_port() for l in LISTENERS}
        self.metrics = free_port()
        self.dir = tmp / ("authz-on" if authz else "authz-off")
        self.dir.mkdir()
        self.data = self.dir / "data"
        self.logfile = self.dir / "broker.log"
        listeners = ",".join(f"{l}://127.0.0.1:{self.ports[l]}" for l in LISTENERS)
        overrides = [
            f"listeners={listeners}",
            "listener.security.protocol.map=" + ",".join(f"{l}:{l}" for l in LISTENERS),
            f"log.dirs={self.data}",
            f"metrics.listener=127.0.0.1:{self.metrics}",
            "num.partitions=1",
            "auto.create.topics.enable=false",
            "group.initial.rebalance.delay.ms=0",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={pki / 'keystore.pem'}",
        ]
        if authz:
            overrides += [f"authorizer.class.name={AUTHORIZER}", "super.users=User:admin",
                          "allow.everyone.if.no.acl.found=false"]
        cmd = [binary]
        for o in overrides:
            cmd += ["--override", o]
        cmd += ["--add-scram", f"SCRAM-SHA-512=[name={USER},password={PASSWORD}]",
                "--add-scram", f"SCRAM-SHA-512=[name={ADMIN},password={ADMIN_PASSWORD}]"]
        with open(self.logfile, "wb") as f:
            self.proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env={**os.environ, "NO_COLOR": "1"})
        PROCS.append(self.proc)
        self.admin = None

    @property
    def pid(self):
        return self.proc.pid

    def cpu_seconds(self):
        """utime+stime of the broker: its process CPU-time clock (clock_getcpuclockid(pid), the
        sum /proc/<pid>/stat reports in 10 ms ticks, here in ns: a 500 MB case costs well under
        a second), or /proc/<pid>/stat where that clock cannot be read."""
        try:
            return time.clock_gettime(((~self.pid) << 3) | 2)  # CPUCLOCK_SCHED, whole process
        except OSError:
            return cpu_ticks(self.pid) / CLK_TCK

    def check_alive(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name}: broker exited ({self.proc.returncode})\n"
                               f"{tail(self.logfile)}")

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while not http_ok(f"http://127.0.0.1:{self.metrics}/ready"):
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: not ready in {timeout}s\n{tail(self.logfile)}")
            time.sleep(0.1)
        # The super user, over SASL_PLAINTEXT, creates and deletes the topics (and the ACLs).
        self.admin = AdminClient({**self.client_conf("SASL_PLAINTEXT", ADMIN, ADMIN_PASSWORD),
                                  "socket.timeout.ms": 10000}, logger=QUIET)
        while True:
            self.check_alive()
            try:
                if self.admin.list_topics(timeout=2).brokers:
                    return
            except Exception:  # noqa: BLE001 - still starting
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: no metadata in {timeout}s\n{tail(self.logfile)}")
            time.sleep(0.2)

    def client_conf(self, listener, user=USER, password=PASSWORD):
        conf = {"bootstrap.servers": f"127.0.0.1:{self.ports[listener]}"}
        if listener in ("SSL", "SASL_SSL"):
            conf["ssl.ca.location"] = str(self.pki / "ca.pem")
        if listener.startswith("SASL"):
            conf.update({"sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user,
                         "sasl.password": password})
        conf["security.protocol"] = listener.lower()
        return conf

    def create_topic(self, topic):
        self.admin.create_topics([NewTopic(topic, 1, 1)],
                                 request_timeout=30)[topic].result(timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            t = self.admin.list_topics(topic=topic, timeout=5).topics.get(topic)
            if t is not None and t.error is None and 0 in t.partitions \
                    and t.partitions[0].leader >= 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: {topic} has no leader after 60 s")

    def delete_topic(self, topic):
        """Deletes the topic and waits (bounded) until its directory is gone from log.dirs."""
        try:
            self.admin.delete_topics([topic], request_timeout=30)[topic].result(timeout=60)
        except Exception as e:  # noqa: BLE001 - reported; the dir check below says the rest
            log(f"{self.name}: could not delete {topic}: {e}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            left = [p.name for p in self.data.iterdir() if p.name.startswith(f"{topic}-")] \
                if self.data.is_dir() else []
            if not left:
                return True
            time.sleep(0.2)
        log(f"WARNING {self.name}: {topic}'s data is still in {self.data} after 60 s: {left}")
        return False

    def stop(self):
        terminate([self.proc], grace=30)


def set_up_acls(broker: Broker):
    """The measured principals' grants, and UNRELATED_ACLS bindings of other users."""
    def b(rtype, name, pattern, principal, op, perm=AclPermissionType.ALLOW):
        return AclBinding(rtype, name, pattern, principal, "*", op, perm)

    T, G = ResourceType.TOPIC, ResourceType.GROUP
    PFX, LIT = ResourcePatternType.PREFIXED, ResourcePatternType.LITERAL
    bindings = []
    for principal in (f"User:{USER}", "User:ANONYMOUS"):
        for op in (AclOperation.WRITE, AclOperation.READ, AclOperation.DESCRIBE):
            bindings.append(b(T, PREFIX, PFX, principal, op))
        bindings.append(b(G, PREFIX, PFX, principal, AclOperation.READ))
    measured = len(bindings)
    for i in range(UNRELATED_ACLS):
        other = f"User:team-{i}"
        kind = i % 5
        if kind == 0:    # another team's topics
            bindings.append(b(T, f"team-{i}-", PFX, other, AclOperation.WRITE))
        elif kind == 1:
            bindings.append(b(T, f"team-{i}-events", LIT, other, AclOperation.READ))
        elif kind == 2:  # its consumer group
            bindings.append(b(G, f"team-{i}-app", LIT, other, AclOperation.READ))
        elif kind == 3:  # other users on the very prefix the bench topics match
            bindings.append(b(T, PREFIX, PFX, other, AclOperation.READ))
        else:            # and denials for them there
            bindings.append(b(T, PREFIX, PFX, other, AclOperation.WRITE,
                              AclPermissionType.DENY))
    for f in broker.admin.create_acls(bindings, request_timeout=30).values():
        f.result(timeout=60)
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    n = len(broker.admin.describe_acls(everything, request_timeout=30).result(timeout=60))
    log(f"{broker.name}: {n} ACL bindings ({measured} for the measured principals, "
        f"{UNRELATED_ACLS} for {UNRELATED_ACLS} other users)")
    if n != len(bindings):
        raise RuntimeError(f"expected {len(bindings)} ACL bindings, DescribeAcls shows {n}")
    # The measured clients are subject to the ACLs: Metadata shows them a `sec-` topic and hides
    # one outside the prefix (which the super user sees).
    shown, hidden = f"{PREFIX}acl-check", "acl-check-hidden"
    for t in (shown, hidden):
        broker.create_topic(t)
    try:
        for listener in AUTHZ_LISTENERS:
            a = AdminClient(broker.client_conf(listener), logger=QUIET)
            seen = set(a.list_topics(timeout=30).topics)
            del a
            if shown not in seen or hidden in seen:
                raise RuntimeError(f"{broker.name} {listener}: Metadata shows {sorted(seen)}; "
                                   f"want {shown} and not {hidden}")
        log(f"{broker.name}: over {' and '.join(AUTHZ_LISTENERS)}, Metadata shows {shown} and "
            f"hides {hidden}: the measured clients go through the ACLs")
    finally:
        for t in (shown, hidden):
            broker.delete_topic(t)
    return n


# ---------------------------------------------------------------------------------------------
# throughput


class Meter:
    """Broker CPU, this process's CPU and the machine's busy time over one interval."""

    def __init__(self, brokers):
        self.brokers = brokers

    def __enter__(self):
        self.b0 = {b.name: b.cpu_seconds() for b in self.brokers}
        r = resource.getrusage(resource.RUSAGE_SELF)
        self.c0 = r.ru_utime + r.ru_stime
        self.s0 = system_busy_seconds()
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.wall = time.monotonic() - self.t0
        self.broker = {b.name: b.cpu_seconds() - self.b0[b.name] for b in self.brokers}
        r = resource.getrusage(resource.RUSAGE_SELF)
        self.client = r.ru_utime + r.ru_stime - self.c0
        self.other = max(0.0, system_busy_seconds() - self.s0 - sum(self.broker.values())
                         - self.client)
        return False


def produce(broker, listener, topic, count, timeout):
    """(delivered, seconds from the first produce() to the end of flush(), note)."""
    errors = []

    def on_error(err, _msg):
        if len(errors) < 3:
            errors.append(str(err))
        else:
            errors.append(None)

    p = Producer({**broker.client_conf(listener), **PRODUCER_CONF, "on_delivery": on_error})
    payload = os.urandom(SIZE)
    p.list_topics(topic, timeout=30)  # connection, login and metadata before the clock starts
    sent = 0
    start = time.monotonic()
    deadline = start + timeout
    prod = p.produce
    while sent < count:
        try:
            prod(topic, payload, partition=0)
            sent += 1
        except BufferError:
            p.poll(0.005)
            if time.monotonic() > deadline:
                break
            continue
        if sent % 10000 == 0:
            p.poll(0)
            if time.monotonic() > deadline:
                break
    left = p.flush(max(10.0, deadline + 60 - time.monotonic()))
    elapsed = time.monotonic() - start
    failed = len(errors) + left
    note = []
    if sent < count:
        note.append(f"timed out after {sent} sent")
    if failed:
        note.append(f"{failed} not delivered: {[e for e in errors if e][:1]}")
    del p
    return sent - failed, elapsed, "; ".join(note)


def consume(broker, listener, topic, count, timeout):
    """(records, bytes, seconds: those after the first batch, from its end to the last record;
    note; all bytes read, for the broker CPU per GB: the CPU is counted over the whole case)."""
    c = Consumer({**broker.client_conf(listener), "group.id": f"{topic}-group",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  **CONSUMER_CONF},
                 logger=QUIET)
    c.subscribe([topic])
    got = nbytes = 0
    start = last = None
    note = ""
    deadline = time.monotonic() + timeout
    try:
        while got < count and time.monotonic() < deadline:
            for m in c.consume(10000, 0.5):
                err = m.error()
                if err is None:
                    got += 1
                    nbytes += len(m.value())
                elif err.code() != KafkaError._PARTITION_EOF:
                    note = f"error: {err}"
                    deadline = 0
                    break
            if got and start is None:
                start = time.monotonic()  # the first batch: the group is joined, fetching runs
                first_batch = got
            last = time.monotonic()
    finally:
        c.close()
    if got < count and not note:
        note = f"read {got} of {count} in {timeout}s"
    if start is None or last <= start:
        return got, nbytes, None, note, nbytes
    # Timed from the end of the first consume() batch: its records are not counted.
    return got - first_batch, nbytes - first_batch * SIZE, last - start, note, nbytes


ROWS = []


def record(broker, listener, op, n, nbytes, seconds, meter, note, cpu_bytes=None):
    mbps = nbytes / seconds / 1e6 if seconds else None
    msgs = n / seconds if seconds else None
    bcpu = meter.broker[broker.name]
    r = {"broker": broker.name, "listener": listener, "op": op, "mbps": mbps, "msgs": msgs,
         "bytes": nbytes, "broker_cpu": bcpu, "broker_cores": bcpu / meter.wall,
         "client_cores": meter.client / meter.wall, "other_cores": meter.other / meter.wall,
         "s_per_gb": bcpu / ((cpu_bytes or nbytes) / 1e9) if (cpu_bytes or nbytes) else None,
         "note": note}
    return r


def run_case(broker, listener, args, brokers, seq):
    topic = f"{PREFIX}{seq}-{broker.name.replace(' ', '-')}-{listener.lower()}"
    broker.create_topic(topic)
    try:
        with Meter(brokers) as m:
            n, secs, note = produce(broker, listener, topic, args.count, args.case_timeout)
        prod = record(broker, listener, "produce", n, n * SIZE, secs, m, note)
        with Meter(brokers) as m:
            got, nbytes, csecs, cnote, total = consume(broker, listener, topic, n,
                                                       args.case_timeout)
        cons = record(broker, listener, "consume", got, nbytes, csecs, m, cnote, total)
    finally:
        broker.check_alive()
        broker.delete_topic(topic)
    log(f"{broker.name:<9} {listener:<14} produce {fmt(prod['mbps'], '7.1f')} MB/s "
        f"{fmt(prod['s_per_gb'], '5.2f')} brk s/GB | consume {fmt(cons['mbps'], '7.1f')} MB/s "
        f"{fmt(cons['s_per_gb'], '5.2f')} brk s/GB  {prod['note']} {cons['note']}")
    return prod, cons


def median(vals):
    vals = sorted(v for v in vals if v is not None)
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2


def median_rows(runs):
    """One row per case: MB/s, msgs/s and cores of the run with the median MB/s; broker CPU s/GB
    the median over the runs (its own, as it does not follow MB/s); ranges in the note."""
    out = []
    for rs in runs.values():
        rs = sorted(rs, key=lambda r: r["mbps"] or 0.0)
        r = dict(rs[(len(rs) - 1) // 2])
        r["s_per_gb"] = median(x["s_per_gb"] for x in rs)
        if len(rs) > 1:
            gb = sorted(x["s_per_gb"] or 0.0 for x in rs)
            spread = (f"{len(rs)} runs: {fmt(rs[0]['mbps'], '.0f')}-"
                      f"{fmt(rs[-1]['mbps'], '.0f')} MB/s, {gb[0]:.2f}-{gb[-1]:.2f} s/GB")
            r["note"] = spread + (f"; {r['note']}" if r["note"] else "")
        out.append(r)
    return out


PAIRS = {}  # (listener, op) -> [(MB/s on/off, s/GB on/off)], one per round


def throughput(off, on, args):
    """Every listener on `off`; PLAINTEXT and SASL_SSL also on `on`, right before or after the
    same case on `off` (alternating by round), so each round gives one paired on/off ratio."""
    brokers = [off, on]
    runs = {}
    seq = 0
    for rnd in range(args.repeat):
        log(f"round {rnd + 1} of {args.repeat}")
        for listener in LISTENERS:
            order = [off] + ([on] if listener in AUTHZ_LISTENERS else [])
            if rnd % 2:
                order.reverse()
            got = {}
            for b in order:
                seq += 1
                for r in run_case(b, listener, args, brokers, seq):
                    runs.setdefault((b.name, listener, r["op"]), []).append(r)
                    got[(b.name, r["op"])] = r
            for op in ("produce", "consume"):
                a, b = got.get(("authz off", op)), got.get(("authz on", op))
                if a and b:
                    PAIRS.setdefault((listener, op), []).append((
                        b["mbps"] / a["mbps"] if a["mbps"] and b["mbps"] else None,
                        b["s_per_gb"] / a["s_per_gb"] if a["s_per_gb"] and b["s_per_gb"]
                        else None))
    return median_rows(runs)


def warm_up(broker, args):
    """An unrecorded produce and consume on each listener (cold caches, first logins)."""
    for listener in (AUTHZ_LISTENERS if broker.authz else LISTENERS):
        topic = f"{PREFIX}warm-up-{broker.name.replace(' ', '-')}-{listener.lower()}"
        broker.create_topic(topic)
        n, _, note = produce(broker, listener, topic, args.warm_up, args.case_timeout)
        got, _, _, cnote, _ = consume(broker, listener, topic, n, args.case_timeout)
        broker.delete_topic(topic)
        if note or cnote or n < args.warm_up:
            raise RuntimeError(f"{broker.name} {listener} warm-up: produced {n}, read {got}: "
                               f"{note} {cnote}")


# ---------------------------------------------------------------------------------------------
# connection set-up


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf += chunk
    return bytes(buf)


CLIENT_ID = b"security-bench"


def call(sock, api_key, version, corr, body):
    """One request (header v1) and its response body (header v0)."""
    header = struct.pack(">hhih", api_key, version, corr, len(CLIENT_ID)) + CLIENT_ID
    sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    resp = recv_exact(sock, size)
    if struct.unpack(">i", resp[:4])[0] != corr:
        raise ConnectionError("correlation id mismatch")
    return resp[4:]


def api_versions(sock):
    body = call(sock, 18, 0, 1, b"")
    err = struct.unpack(">h", body[:2])[0]
    if err:
        raise ConnectionError(f"ApiVersions error {err}")


SALTED = {}  # (salt, iterations) -> SaltedPassword: PBKDF2 is the client's cost, done once


def sasl_authenticate(sock, corr, data):
    body = call(sock, 36, 1, corr, struct.pack(">i", len(data)) + data)
    err = struct.unpack(">h", body[:2])[0]
    mlen = struct.unpack(">h", body[2:4])[0]
    pos = 4 + max(0, mlen)
    msg = body[4:pos].decode(errors="replace") if mlen >= 0 else ""
    if err:
        raise ConnectionError(f"SaslAuthenticate error {err}: {msg}")
    blen = struct.unpack(">i", body[pos:pos + 4])[0]
    return body[pos + 4:pos + 4 + max(0, blen)]


def scram_login(sock, user, password):
    """SaslHandshake v1 + SCRAM-SHA-512 (RFC 5802) over SaslAuthenticate v1."""
    mech = b"SCRAM-SHA-512"
    body = call(sock, 17, 1, 2, struct.pack(">h", len(mech)) + mech)
    err = struct.unpack(">h", body[:2])[0]
    if err:
        raise ConnectionError(f"SaslHandshake error {err}")
    cnonce = base64.b64encode(os.urandom(24)).decode()
    first_bare = f"n={user},r={cnonce}"
    server_first = sasl_authenticate(sock, 3, f"n,,{first_bare}".encode()).decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    nonce, salt, iters = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
    if not nonce.startswith(cnonce):
        raise ConnectionError("server nonce does not extend the client nonce")
    key = (salt, iters)
    salted = SALTED.get(key)
    if salted is None:
        salted = SALTED[key] = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iters)
    client_key = hmac.digest(salted, b"Client Key", "sha512")
    stored_key = hashlib.sha512(client_key).digest()
    final_bare = f"c=biws,r={nonce}"
    auth_message = f"{first_bare},{server_first},{final_bare}".encode()
    signature = hmac.digest(stored_key, auth_message, "sha512")
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    final = f"{final_bare},p={base64.b64encode(proof).decode()}".encode()
    server_final = sasl_authenticate(sock, 4, final).decode()
    server_key = hmac.digest(salted, b"Server Key", "sha512")
    want = base64.b64encode(hmac.digest(server_key, auth_message, "sha512")).decode()
    if server_final != f"v={want}":
        raise ConnectionError(f"bad server signature: {server_final!r}")


def one_connection(port, tls_ctx, sasl):
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock = raw
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls_ctx is not None:
            sock = tls_ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        api_versions(sock)
        if sasl:
            scram_login(sock, USER, PASSWORD)
    finally:
        sock.close()


CONN_ROWS = []


def connection_case(broker, listener, args):
    tls_ctx = None
    if listener in ("SSL", "SASL_SSL"):
        tls_ctx = ssl.create_default_context(cafile=str(broker.pki / "ca.pem"))
    sasl = listener.startswith("SASL")
    port = broker.ports[listener]
    steps = ("TCP" + (" + TLS" if tls_ctx else "") + " + ApiVersions"
             + (" + SaslHandshake + SCRAM-SHA-512" if sasl else ""))
    one_connection(port, tls_ctx, sasl)  # warm-up (and the client's PBKDF2, cached)
    lat = []
    failures = 0
    first_error = ""
    with Meter([broker]) as m:
        end = time.monotonic() + args.conn_seconds
        while len(lat) < args.conn_max and time.monotonic() < end and failures < 20:
            t0 = time.monotonic()
            try:
                one_connection(port, tls_ctx, sasl)
                lat.append(time.monotonic() - t0)
            except (OSError, ConnectionError, ssl.SSLError) as e:
                failures += 1
                first_error = first_error or str(e)
    broker.check_alive()
    n = len(lat)
    lat.sort()
    r = {"listener": listener, "steps": steps, "n": n, "seconds": m.wall,
         "rate": n / m.wall if m.wall else None,
         "mean_ms": sum(lat) / n * 1000 if n else None,
         "p99_ms": percentile(lat, 0.99) * 1000 if n else None,
         "broker_ms": m.broker[broker.name] / n * 1000 if n else None,
         "broker_cores": m.broker[broker.name] / m.wall,
         "client_cores": m.client / m.wall, "other_cores": m.other / m.wall,
         "note": f"{failures} failed: {first_error[:80]}" if failures else ""}
    CONN_ROWS.append(r)
    log(f"connections {listener:<14} {n} in {m.wall:.1f}s: {fmt(r['rate'], '.0f')}/s, mean "
        f"{fmt(r['mean_ms'], '.2f')} ms, broker {fmt(r['broker_ms'], '.3f')} ms CPU each "
        f"{r['note']}")


# ---------------------------------------------------------------------------------------------
# report


def table_throughput(rows):
    base = {(r["op"]): r for r in rows if r["broker"] == "authz off" and
            r["listener"] == "PLAINTEXT"}
    lines = ["| broker | listener | case | MB/s | msgs/s | vs PLAINTEXT | broker CPU s/GB | "
             "broker cores | client cores | other cores | note |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in sorted(rows, key=lambda r: (r["op"] != "produce", r["broker"] != "authz off",
                                         LISTENERS.index(r["listener"]))):
        b = base.get(r["op"])
        vs = (f"{r['mbps'] / b['mbps']:.2f}" if b and b["mbps"] and r["mbps"]
              and r["broker"] == "authz off" else "")
        case = f"{r['op']} 1 KiB" + (" acks=1" if r["op"] == "produce" else " from start")
        lines.append(f"| {r['broker']} | {r['listener']} | {case} | {fmt(r['mbps'], '.1f')} | "
                     f"{fmt(r['msgs'], ',.0f')} | {vs} | {fmt(r['s_per_gb'], '.2f')} | "
                     f"{r['broker_cores']:.2f} | {r['client_cores']:.2f} | "
                     f"{r['other_cores']:.2f} | {r['note']} |")
    return lines


def table_authz(rows):
    by = {(r["broker"], r["listener"], r["op"]): r for r in rows}

    def ratio(vals):
        vals = sorted(v for v in vals if v is not None)
        if not vals:
            return "-"
        m = median(vals)
        return f"{m:.3f}" + (f" ({vals[0]:.2f}-{vals[-1]:.2f})" if len(vals) > 1 else "")

    lines = ["| listener | case | MB/s off → on | MB/s on/off, paired | broker CPU s/GB off → on "
             "| CPU s/GB on/off, paired |",
             "|---|---|---:|---:|---:|---:|"]
    for listener in AUTHZ_LISTENERS:
        for op in ("produce", "consume"):
            a, b = by.get(("authz off", listener, op)), by.get(("authz on", listener, op))
            pairs = PAIRS.get((listener, op), [])
            if not a or not b:
                continue
            lines.append(f"| {listener} | {op} | {fmt(a['mbps'], '.1f')} → "
                         f"{fmt(b['mbps'], '.1f')} | {ratio(p[0] for p in pairs)} | "
                         f"{fmt(a['s_per_gb'], '.2f')} → {fmt(b['s_per_gb'], '.2f')} | "
                         f"{ratio(p[1] for p in pairs)} |")
    return lines


def table_connections():
    lines = ["| listener | steps per connection | connections | seconds | per second | mean ms | "
             "p99 ms | broker CPU ms each | broker cores | client cores | other cores | note |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in CONN_ROWS:
        lines.append(f"| {r['listener']} | {r['steps']} | {r['n']} | {r['seconds']:.1f} | "
                     f"{fmt(r['rate'], '.0f')} | {fmt(r['mean_ms'], '.2f')} | "
                     f"{fmt(r['p99_ms'], '.2f')} | {fmt(r['broker_ms'], '.3f')} | "
                     f"{r['broker_cores']:.2f} | {r['client_cores']:.2f} | "
                     f"{r['other_cores']:.2f} | {r['note']} |")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", default=str(REPO / "target/release/strait-broker"),
                    help="strait-broker binary [target/release/strait-broker]")
    ap.add_argument("--quick", action="store_true",
                    help="50,000 records per case, one round, 3 s per connection case")
    ap.add_argument("--count", type=int, help="records per throughput case [500,000]")
    ap.add_argument("--repeat", type=int, help="rounds of throughput cases, median reported "
                                               "[5; --quick 1]")
    ap.add_argument("--conn-seconds", type=float, help="seconds per connection case [10; --quick 3]")
    ap.add_argument("--conn-max", type=int, default=20000,
                    help="at most this many connections per connection case [20,000]")
    ap.add_argument("--no-throughput", action="store_true", help="only the connection cases")
    ap.add_argument("--markdown", metavar="FILE", help="also write the tables as Markdown")
    ap.add_argument("--keep-data", action="store_true", help="keep the temp dir (logs)")
    args = ap.parse_args()
    args.count = args.count or (50_000 if args.quick else 500_000)
    args.repeat = max(1, args.repeat or (1 if args.quick else 5))
    args.conn_seconds = args.conn_seconds or (3.0 if args.quick else 10.0)
    args.warm_up = min(args.count, 20_000)
    args.case_timeout = 120 if args.quick else 300
    if not (os.path.isfile(args.broker) and os.access(args.broker, os.X_OK)):
        sys.exit(f"security.py: not an executable: {args.broker}")

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="strait-security-bench-"))
    need_gb = 2 * args.count * SIZE / 1e9 + 1  # one case's topic at a time, then deleted
    free_gb = shutil.disk_usage(tmp).free / 1e9
    if free_gb < need_gb:
        shutil.rmtree(tmp, ignore_errors=True)
        sys.exit(f"security.py: {free_gb:.1f} GB free under {tmp.parent}, want {need_gb:.1f}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    header = machine()
    header.append(f"disk: {free_gb:.1f} GB free under {tmp.parent}")
    header.append(f"broker: {args.broker} (built "
                  f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(os.path.getmtime(args.broker)))})")
    import confluent_kafka
    header.append(f"client: confluent-kafka {confluent_kafka.__version__} (librdkafka "
                  f"{confluent_kafka.libversion()[0]}), Python {sys.version.split()[0]}; "
                  f"producer {', '.join(f'{k}={v}' for k, v in PRODUCER_CONF.items())}; consumer "
                  f"{', '.join(f'{k}={v}' for k, v in CONSUMER_CONF.items())}")
    header.append(f"mode: {'quick' if args.quick else 'full'}: {args.count:,} x {SIZE} B per "
                  f"throughput case, {args.repeat} round(s); connection cases "
                  f"{args.conn_seconds:g} s or {args.conn_max} connections")
    for line in header:
        print(line, flush=True)
    print(f"temp dir: {tmp}", flush=True)
    rows = []
    status = 0
    t_run = time.monotonic()
    brokers = []
    after = []
    try:
        pki = tmp / "pki"
        pki.mkdir()
        make_pki(pki)
        off = Broker(args.broker, tmp, pki, authz=False)
        brokers.append(off)
        on = Broker(args.broker, tmp, pki, authz=True)
        brokers.append(on)
        for b in brokers:
            b.wait_ready()
            log(f"{b.name}: pid {b.pid}, " + ", ".join(f"{l} :{p}" for l, p in b.ports.items()))
        set_up_acls(on)
        if not args.no_throughput:
            for b in brokers:
                warm_up(b, args)
            rows = throughput(off, on, args)
        for listener in LISTENERS:
            connection_case(off, listener, args)
    except Stop as e:
        print(f"\nstopped by {e}", flush=True)
        status = 130
    except Exception as e:  # noqa: BLE001 - report and clean up
        import traceback
        traceback.print_exc()
        print(f"\nerror: {e}", flush=True)
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for b in brokers:
            b.admin = None
            left = [p.name for p in b.data.iterdir() if p.name.startswith(PREFIX)] \
                if b.data.is_dir() else []
            after.append(f"{b.name} data dir at the end: {du(b.data) / 1e6:.1f} MB"
                         + (f", bench topics still there: {left}" if left else
                            ", no bench topic left"))
        terminate(PROCS, grace=30)
        if not args.keep_data:
            shutil.rmtree(tmp, ignore_errors=True)

    notes = after + [
        f"run took {time.monotonic() - t_run:.0f}s; load average after the run: "
        + " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "The client is one Python process (confluent-kafka): with client cores near 1 the "
        "producer loop is the limit, so MB/s compares listeners relative to each other and "
        "broker CPU s/GB is the broker's own cost.",
    ]
    out = ["throughput (1 partition, 1 KiB records; consume timed from the first batch; MB/s of "
           "the median run, broker CPU s/GB the median of the runs)"]
    out += table_throughput(rows) if rows else ["(not run)"]
    out += ["", f"authorizer on / off (StandardAuthorizer, {UNRELATED_ACLS} unrelated bindings "
                "+ the measured principal's; not a super user): medians, and the median (range) "
                "of the per-round ratios of cases run back to back"]
    out += table_authz(rows) if rows else ["(not run)"]
    out += ["", "connection set-up, one connection after another (authz off broker; client "
                "caches the PBKDF2 salted password; no TLS session resumption)"]
    out += table_connections()
    print()
    print("\n".join(out))
    print()
    print("\n".join(notes))
    if args.markdown:
        pathlib.Path(args.markdown).write_text(
            "\n".join([f"- {h}" for h in header] + [""] + out + [""]
                      + [f"- {n}" for n in notes]) + "\n")
        print(f"Markdown written to {args.markdown}")
    return status


if __name__ == "__main__":
    sys.exit(main())
