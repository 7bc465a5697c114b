#!/usr/bin/env python3
"""Tiered storage (KIP-405) benchmark: what offloading segments to an S3-compatible store costs
produce, how fast segments go up, and how a cold read from the remote tier compares with a local
one, through confluent-kafka against a real s3s-fs on loopback.

  python3 e2e/bench/tiered.py [--mib 1024] [--rounds 2] [--broker PATH] [--quick] [--store s3|dir]

--store dir replaces s3s-fs by the local-directory store (rsm.config.storage.backend=filesystem),
which shows what the broker's own path does when the object server is not the limit.

One single-node `strait-broker` (the given binary, never rebuilt; copy it somewhere private
first) on free 127.0.0.1 ports with a temporary log dir, and one `s3s-fs` (PATH or
~/.cargo/bin, as e2e/src/s3.rs finds it; installed by e2e/setup.sh) over a temporary directory.
The broker stores remote segments there (rsm.config.storage.backend=s3, path-style access,
remote.log.manager.task.interval.ms=500, log.retention.check.interval.ms=1000). Every topic has 1 partition, segment.bytes=16 MiB and
retention.ms=-1; "on" topics add remote.storage.enable=true and local.retention.bytes=32 MiB.

1. Produce: --mib MiB of 1 KiB values (acks=all, linger.ms=5, no compression, idempotence off)
   to a new topic with tiering off and to one with tiering on, alternating which goes first,
   --rounds rounds; the median MB/s of each is reported and on/off as the median of the
   per-round ratios. Timed from the first produce() to the end of flush().
2. Upload: while the "on" topic is produced, remotecopybytes_total of the topic is sampled
   every 0.5 s: MB/s over the produce window, then until every closed segment is copied
   (remotecopylagsegments 0), and the time from the end of produce to that point.
3. Cold read: the broker is stopped (SIGTERM) and started again on the same dirs, so its chunk
   cache is empty; the last round's "on" topic (all but the local tail in s3s-fs) and "off"
   topic (all local) are read from offset 0 to the end by an assigned consumer: MB/s (first
   record to last) and first-record latency (assign to first record). The remote read goes
   first; s3s-fs files and local segments may both sit in the OS page cache (nothing is
   dropped: this measures the broker's path, not the disk).

Every loop is bounded in count and time; processes are stopped by PID (also on an error,
Ctrl-C or SIGTERM) and the temp dir removed."""

import argparse
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from c_client import (QUIET, REPO, Stop, free_port, http_ok, machine, on_signal,  # noqa: E402
                      terminate)
from security import log, median, tail  # noqa: E402

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

SIZE = 1024
MB = 1_000_000
MIB = 1 << 20
BUCKET = "strait-bench"
ACCESS_KEY, SECRET_KEY = "bench-access", "bench-secret"
PRODUCER_CONF = {"acks": "all", "linger.ms": "5", "compression.type": "none",
                 "queue.buffering.max.messages": "200000", "delivery.report.only.error": True}
TOPIC_BASE = {"segment.bytes": str(16 * MIB), "retention.ms": "-1"}
TOPIC_ON = {**TOPIC_BASE, "remote.storage.enable": "true",
            "local.retention.bytes": str(32 * MIB)}
M = "kafka_server_brokertopicmetrics_"
PROCS = []  # Popen objects this run started


def s3s_fs_binary():
    found = shutil.which("s3s-fs")
    if found:
        return found
    home = pathlib.Path.home() / ".cargo" / "bin" / "s3s-fs"
    if home.exists():
        return str(home)
    raise RuntimeError("s3s-fs not found on PATH or in ~/.cargo/bin (run e2e/setup.sh)")


def wait_port(port, what, proc, timeout=30):
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} not listening on {port} after {timeout}s")


class S3:
    def __init__(self, tmp: pathlib.Path):
        self.port = free_port()
        self.root = tmp / "s3"
        (self.root / BUCKET).mkdir(parents=True)
        self.logfile = tmp / "s3s-fs.log"
        with open(self.logfile, "wb") as f:
            self.proc = subprocess.Popen(
                [s3s_fs_binary(), "--host", "127.0.0.1", "--port", str(self.port),
                 "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY, str(self.root)],
                stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        PROCS.append(self.proc)
        wait_port(self.port, "s3s-fs", self.proc)


class Broker:
    def __init__(self, binary, tmp: pathlib.Path, s3):
        """`s3`: an S3 server, or None for the local-directory store under `tmp`/store."""
        self.binary, self.s3 = binary, s3
        self.store = tmp / "store"
        self.port, self.metrics = free_port(), free_port()
        self.data = tmp / "data"
        self.logfile = tmp / "broker.log"
        self.proc = None
        self.admin = None

    def start(self):
        overrides = [f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
                     f"log.dirs={self.data}",
                     f"metrics.listener=127.0.0.1:{self.metrics}",
                     "auto.create.topics.enable=false",
                     "remote.log.manager.task.interval.ms=500",
                     # local.retention.* is applied by the retention check (5 min by default).
                     "log.retention.check.interval.ms=1000"]
        if self.s3 is None:
            overrides += ["rsm.config.storage.backend=filesystem",
                          f"rsm.config.storage.root={self.store}"]
        else:
            overrides += [
                "rsm.config.storage.backend=s3",
                f"rsm.config.storage.s3.bucket.name={BUCKET}",
                f"rsm.config.storage.s3.endpoint.url=http://127.0.0.1:{self.s3.port}",
                "rsm.config.storage.s3.region=us-east-1",
                "rsm.config.storage.s3.path.style.access.enabled=true",
                f"rsm.config.storage.aws.access.key.id={ACCESS_KEY}",
                f"rsm.config.storage.aws.secret.access.key={SECRET_KEY}"]
        cmd = [self.binary]
        for o in overrides:
            cmd += ["--override", o]
        with open(self.logfile, "ab") as f:
            self.proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env={**os.environ, "NO_COLOR": "1"})
        PROCS.append(self.proc)
        deadline = time.monotonic() + 60
        while not http_ok(f"http://127.0.0.1:{self.metrics}/ready"):
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"broker not ready in 60s\n{tail(self.logfile)}")
            time.sleep(0.1)
        self.admin = AdminClient({**self.conf(), "socket.timeout.ms": 10000}, logger=QUIET)
        while time.monotonic() < deadline:
            try:
                if self.admin.list_topics(timeout=2).brokers:
                    return
            except KafkaException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"no metadata in 60s\n{tail(self.logfile)}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=70)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.admin = None

    def check_alive(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"broker exited with {self.proc.returncode}\n{tail(self.logfile)}")

    def conf(self):
        return {"bootstrap.servers": f"127.0.0.1:{self.port}"}

    def create_topic(self, topic, config):
        self.admin.create_topics([NewTopic(topic, 1, 1, config=config)],
                                 request_timeout=30)[topic].result(timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            t = self.admin.list_topics(topic=topic, timeout=5).topics.get(topic)
            if t is not None and t.error is None and all(p.leader >= 0
                                                         for p in t.partitions.values()):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{topic} has no leader after 60 s")

    def metric(self, name, topic):
        """The sum of `name`'s series labelled topic="topic" (0 when there is none yet)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=10) as r:
            text = r.read().decode()
        want = f'topic="{topic}"'
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and (line[len(name)] in "{ ") and want in line:
                total += float(line.rsplit(" ", 1)[1])
        return total


def produce(broker, topic, count, timeout):
    """(delivered, seconds from the first produce() to the end of flush())."""
    failed = []
    p = Producer({**broker.conf(), **PRODUCER_CONF,
                  "on_delivery": lambda err, _m: err and failed.append(str(err))})
    payload = os.urandom(SIZE)
    p.list_topics(topic, timeout=30)
    sent = 0
    start = time.monotonic()
    deadline = start + timeout
    while sent < count and time.monotonic() < deadline:
        try:
            p.produce(topic, payload, partition=0)
            sent += 1
        except BufferError:
            p.poll(0.005)
            continue
        if sent % 10000 == 0:
            p.poll(0)
    left = p.flush(max(10.0, deadline + 60 - time.monotonic()))
    elapsed = time.monotonic() - start
    if failed or left or sent < count:
        raise RuntimeError(f"{topic}: {sent}/{count} sent, {left} unflushed, errors {failed[:2]}")
    return sent, elapsed


class CopySampler(threading.Thread):
    """Samples remotecopybytes_total of a topic every 0.5 s: [(monotonic, bytes)]."""

    def __init__(self, broker, topic):
        super().__init__(daemon=True)
        self.broker, self.topic = broker, topic
        self.samples = []
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                self.samples.append((time.monotonic(),
                                     self.broker.metric(M + "remotecopybytes_total", self.topic)))
            except OSError:
                pass
            self.done.wait(0.5)

    def at(self, t):
        """Copied bytes at the last sample at or before t."""
        best = 0.0
        for ts, v in self.samples:
            if ts <= t:
                best = v
        return best


def wait_copied(broker, topic, timeout):
    """Waits until no closed segment of `topic` waits to be copied and local retention left only
    the tail; returns the monotonic time the lag first read 0."""
    deadline = time.monotonic() + timeout
    lag_zero = None
    while time.monotonic() < deadline:
        broker.check_alive()
        lag = broker.metric(M + "remotecopylagsegments", topic)
        copied = broker.metric(M + "remotecopybytes_total", topic)
        if lag == 0 and copied > 0:
            lag_zero = lag_zero or time.monotonic()
            if broker.metric("kafka_log_log_size", topic) <= 64 * MIB:
                return lag_zero
        else:
            lag_zero = None
        time.sleep(0.2)
    raise RuntimeError(f"{topic}: not copied within {timeout}s\n{tail(broker.logfile)}")


def read_all(broker, topic, count, timeout):
    """(records, bytes, seconds from the first record to the last, first-record latency)."""
    c = Consumer({**broker.conf(), "group.id": f"bench-{topic}", "enable.auto.commit": False,
                  "fetch.queue.backoff.ms": 10, "fetch.max.bytes": 52428800,
                  "max.partition.fetch.bytes": 16 * MIB}, logger=QUIET)
    c.list_topics(topic, timeout=30)
    t0 = time.monotonic()
    c.assign([TopicPartition(topic, 0, 0)])
    deadline = t0 + timeout
    n = nbytes = 0
    first = last = None
    while n < count and time.monotonic() < deadline:
        for m in c.consume(num_messages=10000, timeout=0.5):
            if m.error():
                raise RuntimeError(f"{topic}: {m.error()}")
            if first is None:
                first = time.monotonic()
            n += 1
            nbytes += len(m.value())
        last = time.monotonic()
    c.close()
    if n != count:
        raise RuntimeError(f"{topic}: read {n} of {count} in {timeout}s")
    return n, nbytes, last - first, first - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--broker", default=str(REPO / "target/release/strait-broker"))
    ap.add_argument("--mib", type=int, default=1024, help="MiB produced per topic")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="256 MiB, 1 round")
    ap.add_argument("--store", choices=["s3", "dir"], default="s3",
                    help="s3s-fs on loopback (default) or the local-directory store")
    args = ap.parse_args()
    if args.quick:
        args.mib, args.rounds = 256, 1
    count = args.mib * MIB // SIZE
    timeout = max(120, args.mib // 2)
    signal.signal(signal.SIGTERM, on_signal)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="strait-tiered-bench-"))
    try:
        s3 = S3(tmp) if args.store == "s3" else None
        broker = Broker(args.broker, tmp, s3)
        broker.start()
        produced = {}
        uploads = []
        for r in range(args.rounds):
            order = ["off", "on"] if r % 2 == 0 else ["on", "off"]
            for mode in order:
                topic = f"tiered-bench-{mode}-{r}"
                broker.create_topic(topic, TOPIC_ON if mode == "on" else TOPIC_BASE)
                sampler = None
                if mode == "on":
                    sampler = CopySampler(broker, topic)
                    sampler.start()
                start = time.monotonic()
                n, secs = produce(broker, topic, count, timeout)
                end = start + secs
                produced.setdefault(mode, []).append((n * SIZE / MB / secs, topic))
                log(f"round {r} {mode}: {n} x 1 KiB in {secs:.1f}s = {n * SIZE / MB / secs:.0f} MB/s")
                if sampler:
                    zero = wait_copied(broker, topic, timeout)
                    sampler.done.set()
                    sampler.join()
                    during = sampler.at(end) - sampler.at(start)
                    total = broker.metric(M + "remotecopybytes_total", topic)
                    firsts = [t for t, v in sampler.samples if v > 0]
                    uploads.append({
                        "during": during / MB / secs,
                        "share": during / (n * SIZE),
                        "overall": total / MB / (zero - start),
                        "after": zero - end,
                        "total": total,
                        "first": (firsts[0] - start) if firsts else float("nan"),
                    })
                    log(f"  upload: {during / MB / secs:.0f} MB/s while producing, "
                        f"all copied {zero - end:.1f}s after the last ack")
        last_on, last_off = f"tiered-bench-on-{args.rounds - 1}", f"tiered-bench-off-{args.rounds - 1}"
        local_on = broker.metric("kafka_log_log_size", last_on)
        remote_on = broker.metric(M + "remotelogsizebytes", last_on)
        broker.stop()
        broker.start()  # an empty chunk cache
        reads = {}
        for mode, topic in (("remote (cold)", last_on), ("local", last_off)):
            reads[mode] = read_all(broker, topic, count, timeout)
            n, nb, secs, lat = reads[mode]
            log(f"read {mode}: {n} records {nb / MB / secs:.0f} MB/s, first record {lat * 1000:.0f} ms")
        fetched = broker.metric(M + "remotefetchbytes_total", last_on)
        broker.stop()

        print()
        for line in machine():
            print(line)
        print(f"{args.mib} MiB per topic ({count} x 1 KiB), {args.rounds} round(s), "
              f"segment.bytes 16 MiB, local.retention.bytes 32 MiB, "
              f"{'s3s-fs on loopback' if s3 else 'local-directory store'}")
        print()
        print("| case | MB/s | note |")
        print("| --- | --- | --- |")
        med = {m: median([v for v, _ in produced[m]]) for m in produced}
        ratios = [on / off for (on, _), (off, _) in zip(produced["on"], produced["off"])]
        print(f"| produce, tiering off (acks=all) | {med['off']:.0f} | "
              f"runs {', '.join(f'{v:.0f}' for v, _ in produced['off'])} |")
        print(f"| produce, tiering on (acks=all) | {med['on']:.0f} | "
              f"runs {', '.join(f'{v:.0f}' for v, _ in produced['on'])}; on/off "
              f"{median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f}) |")
        up_during = median([u["during"] for u in uploads])
        print(f"| upload while producing | {up_during:.0f} | "
              f"{median([u['share'] for u in uploads]) * 100:.0f}% of the produced bytes copied "
              f"by the last ack; first copy {median([u['first'] for u in uploads]):.1f}s in |")
        print(f"| upload, first produce to all copied | {median([u['overall'] for u in uploads]):.0f} | "
              f"all copied {median([u['after'] for u in uploads]):.1f}s after the last ack |")
        for mode, (n, nb, secs, lat) in reads.items():
            note = f"first record after {lat * 1000:.0f} ms"
            if mode.startswith("remote"):
                note += (f"; {remote_on / MIB:.0f} MiB remote, {local_on / MIB:.0f} MiB local; "
                         f"{fetched / MIB:.0f} MiB served from the store")
            print(f"| read from offset 0, {mode} | {nb / MB / secs:.0f} | {note} |")
        return 0
    except Stop as e:
        log(f"stopped: {e}")
        return 130
    finally:
        terminate(PROCS)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
