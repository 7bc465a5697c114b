#!/usr/bin/env python3
"""Mirror benchmark (issue 14): strait-mirror throughput for 1 KiB records in both modes, and the
end-to-end replication latency (record timestamp on the source to consumption on the target) at
a fixed offered load.

  python3 e2e/bench/mirror.py [--broker PATH] [--mirror PATH] [--mib 200] [--load-mb 50]
                              [--seconds 20] [--partitions 6] [--modes mm2,mm2-eos,linked]

Modes: `mm2` (at-least-once), `mm2-eos` (mm2 with exactly.once.source.support=enabled; the
throughput window ends when B's high watermarks reach A's, which its commit markers make a few
offsets early: negligible against the records copied) and `linked`. The latency consumer reads
read_committed (librdkafka's default), so in mm2-eos mode a record counts once its transaction
committed.

Two single-node `strait-broker`s (source A and target B, the given binaries, never rebuilt; copy
them somewhere private first) on free 127.0.0.1 ports with temporary log dirs, and one
`strait-mirror` per case with an mm2.properties flow A->B (IdentityReplicationPolicy, so the
target topic has the source's name; `mirror.mode` mm2 or linked).

1. Throughput: --mib MiB of 1 KiB values (acks=all, linger.ms=5, no compression) written to a
   topic of --partitions partitions on A first; then the mirror starts and the time from the
   first record seen on B (sum of B's high watermarks > 0) to the last (B's high watermarks reach
   A's) gives MB/s. The mirror's start-up and group join are outside the window.
2. Latency: the mirror runs on an empty topic; a producer offers --load-mb MB/s of 1 KiB records
   for --seconds (paced in 10 ms steps, CreateTime = send time), once a first batch of records
   reached B (so the mirror's start-up is not counted), while a consumer on B reads the copy; latency = receive time - record timestamp (ms resolution), first second dropped;
   p50/p99/max and the rate the consumer saw. Producer, consumer, both brokers and the mirror
   share this machine's cores, so the figures include their contention.

Every loop is bounded in count and time; processes are stopped by PID (also on an error, Ctrl-C
or SIGTERM) and the temp dir removed."""

import argparse
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from c_client import (QUIET, REPO, Stop, free_port, machine, on_signal,  # noqa: E402
                      start_strait_single, terminate)

VALUE = 1024
MB = 1_000_000


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def create_topic(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap}, logger=QUIET)
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                        request_timeout=30)[topic].result(timeout=60)


def high_watermarks(bootstrap, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-marks",
                  "enable.auto.commit": False}, logger=QUIET)
    try:
        marks = []
        for p in range(partitions):
            try:
                marks.append(c.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1])
            except Exception:  # noqa: BLE001 - the topic may not exist on the target yet
                marks.append(0)
        return marks
    finally:
        c.close()


def produce(bootstrap, topic, mib, partitions):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "compression.type": "none", "queue.buffering.max.kbytes": 262144},
                 logger=QUIET)
    value = b"v" * VALUE
    count = mib * 1024 * 1024 // VALUE
    deadline = time.monotonic() + 600
    for i in range(count):
        while True:
            try:
                p.produce(topic, value, partition=i % partitions)
                break
            except BufferError:
                p.poll(0.05)
                if time.monotonic() > deadline:
                    raise RuntimeError("produce did not finish in 600 s")
        if i % 10000 == 0:
            p.poll(0)
    if p.flush(120) != 0:
        raise RuntimeError("records left unflushed")
    return count


def write_config(path, a, b, mode, topic):
    # `mm2-eos` is mm2 mode with exactly.once.source.support=enabled.
    eos = "enabled" if mode == "mm2-eos" else "disabled"
    path.write_text(
        "clusters = A, B\n"
        f"A.bootstrap.servers = {a}\n"
        f"B.bootstrap.servers = {b}\n"
        "A->B.enabled = true\n"
        f"A->B.topics = {topic}\n"
        "replication.policy.class = IdentityReplicationPolicy\n"
        f"mirror.mode = {mode.removesuffix('-eos')}\n"
        f"exactly.once.source.support = {eos}\n"
        "replication.factor = 1\n"
        "refresh.topics.interval.seconds = 1\n"
        "emit.checkpoints.enabled = false\n"
        "emit.heartbeats.enabled = false\n")


def start_mirror(binary, config, logfile):
    with open(logfile, "ab") as f:
        return subprocess.Popen([binary, "--config", str(config)], stdout=subprocess.DEVNULL,
                                stderr=f, stdin=subprocess.DEVNULL, start_new_session=True)


def throughput(args, a, b, mode, tmp):
    topic = f"tput-{mode}"
    create_topic(a.bootstrap, topic, args.partitions)
    count = produce(a.bootstrap, topic, args.mib, args.partitions)
    source = high_watermarks(a.bootstrap, topic, args.partitions)
    config = tmp / f"{topic}.properties"
    write_config(config, a.bootstrap, b.bootstrap, mode, topic)
    mirror = start_mirror(args.mirror, config, tmp / f"{topic}.log")
    try:
        deadline = time.monotonic() + 600
        first = None
        while True:
            if mirror.poll() is not None:
                raise RuntimeError(f"mirror exited: {(tmp / f'{topic}.log').read_text()[-2000:]}")
            marks = high_watermarks(b.bootstrap, topic, args.partitions)
            now = time.monotonic()
            if first is None and sum(marks) > 0:
                first = (now, sum(marks))
            if all(t >= s for t, s in zip(marks, source)):
                break
            if now > deadline:
                raise RuntimeError(f"{mode}: target at {marks}, source at {source} after 600 s")
            time.sleep(0.05)
        seconds = max(now - first[0], 1e-3)
        copied = (count - first[1]) * VALUE
        return {"mode": mode, "records": count, "mb_s": copied / seconds / MB, "seconds": seconds}
    finally:
        terminate([mirror])


def percentile(vals, p):
    return vals[min(len(vals) - 1, int(len(vals) * p / 100))] if vals else float("nan")


def latency(args, a, b, mode, tmp):
    topic = f"lat-{mode}"
    create_topic(a.bootstrap, topic, args.partitions)
    config = tmp / f"{topic}.properties"
    write_config(config, a.bootstrap, b.bootstrap, mode, topic)
    mirror = start_mirror(args.mirror, config, tmp / f"{topic}.log")
    consumer = None
    try:
        # The mirror creates the target topic; wait for it before subscribing.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            md = AdminClient({"bootstrap.servers": b.bootstrap}, logger=QUIET).list_topics(timeout=5)
            if topic in md.topics and len(md.topics[topic].partitions) == args.partitions:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("the mirror did not create the target topic in 60 s")
        # The window starts once the mirror copies: a first batch of records must reach B, so
        # the mirror's start-up and group join are not counted as latency.
        producer = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "linger.ms": 1,
                             "compression.type": "none"}, logger=QUIET)
        for i in range(args.partitions * 10):
            producer.produce(topic, b"w", partition=i % args.partitions)
        producer.flush(30)
        deadline = time.monotonic() + 60
        while sum(high_watermarks(b.bootstrap, topic, args.partitions)) < args.partitions * 10:
            if time.monotonic() > deadline:
                raise RuntimeError("the mirror copied nothing in 60 s")
            time.sleep(0.05)
        consumer = Consumer({"bootstrap.servers": b.bootstrap, "group.id": f"bench-{mode}",
                             "auto.offset.reset": "earliest", "fetch.wait.max.ms": 5,
                             "enable.auto.commit": False}, logger=QUIET)
        consumer.assign([TopicPartition(topic, p, 0) for p in range(args.partitions)])
        value = b"l" * VALUE
        per_step = max(1, int(args.load_mb * MB / VALUE / 100))  # records per 10 ms
        start = time.monotonic()
        warm_ms = time.time() * 1000 + 1000  # samples of records sent in the first second dropped
        end = start + args.seconds
        sent = 0
        lat = []
        received = 0
        while True:
            now = time.monotonic()
            if now < end:
                target_sent = int((now - start) * 100 + 1) * per_step
                while sent < target_sent:
                    try:
                        producer.produce(topic, value, partition=sent % args.partitions,
                                         timestamp=int(time.time() * 1000))
                        sent += 1
                    except BufferError:
                        producer.poll(0)
                        break
                producer.poll(0)
            for m in consumer.consume(num_messages=5000, timeout=0.005):
                if m.error():
                    continue
                received += 1
                recv_ms = time.time() * 1000
                ts = m.timestamp()[1]
                if ts >= warm_ms:
                    lat.append(recv_ms - ts)
            if now >= end and (received >= sent or now > end + 60):
                break
        producer.flush(30)
        lat.sort()
        return {"mode": mode, "offered_mb_s": args.load_mb, "sent": sent, "received": received,
                "seen_mb_s": received * VALUE / max(time.monotonic() - start, 1e-3) / MB,
                "p50": percentile(lat, 50), "p99": percentile(lat, 99),
                "max": lat[-1] if lat else float("nan")}
    finally:
        if consumer is not None:
            consumer.close()
        terminate([mirror])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--broker", default=str(REPO / "target/release/strait-broker"))
    ap.add_argument("--mirror", default=str(REPO / "target/release/strait-mirror"))
    ap.add_argument("--mib", type=int, default=200)
    ap.add_argument("--load-mb", type=float, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--modes", default="mm2,mm2-eos,linked")
    ap.add_argument("--keep-logs", help="copy the mirror and broker logs into this directory")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"# {machine()}")
    with tempfile.TemporaryDirectory(prefix="strait-mirror-bench-") as d:
        tmp = pathlib.Path(d)
        (tmp / "a").mkdir()
        (tmp / "b").mkdir()
        targets = []
        try:
            a = start_strait_single(args.broker, tmp / "a")
            targets.append(a)
            b = start_strait_single(args.broker, tmp / "b")
            targets.append(b)
            rows = []
            for mode in args.modes.split(","):
                log(f"{mode}: throughput, {args.mib} MiB")
                t = throughput(args, a, b, mode, tmp)
                log(f"{mode}: latency at {args.load_mb} MB/s for {args.seconds} s")
                lat = latency(args, a, b, mode, tmp)
                rows.append((t, lat))
            print("\n| mode | throughput MB/s (1 KiB) | records | offered MB/s | seen MB/s "
                  "| p50 ms | p99 ms | max ms |")
            print("|---|---|---|---|---|---|---|---|")
            for t, lat in rows:
                print(f"| {t['mode']} | {t['mb_s']:.1f} | {t['records']} | {lat['offered_mb_s']:.0f} "
                      f"| {lat['seen_mb_s']:.1f} | {lat['p50']:.0f} | {lat['p99']:.0f} "
                      f"| {lat['max']:.0f} |")
        except Stop as e:
            log(f"stopped: {e}")
            return 1
        finally:
            for t in targets:
                t.stop()
            if args.keep_logs:
                keep = pathlib.Path(args.keep_logs)
                keep.mkdir(parents=True, exist_ok=True)
                # The mirrors' logs and each broker's (not the brokers' segment files).
                for f in [*tmp.glob("*.log"), *tmp.glob("*/strait-*.log")]:
                    shutil.copy(f, keep / f"{f.parent.name}-{f.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
