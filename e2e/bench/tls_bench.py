#!/usr/bin/env python3
"""TLS cost on one broker: the same produce and consume runs through a PLAINTEXT and an SSL
listener of one release broker, with confluent-kafka (librdkafka with OpenSSL) as the client.

    python3 e2e/bench/tls_bench.py [--messages N] [--seconds S]

Starts target/release/strait-broker on free loopback ports with a temporary data directory and
certificates made with the openssl command line, prints MB/s and msgs/s per case, and stops the
broker. Each case is bounded by --messages and --seconds."""

import argparse
import os
import pathlib
import platform
import socket
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, Producer

REPO = pathlib.Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d: pathlib.Path):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=bench ca",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=broker", "-keyout", "b.key",
            "-out", "b.csr", cwd=d)
    openssl("x509", "-req", "-in", "b.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", "b.pem", "-extfile", "san.ext", cwd=d)
    (d / "keystore.pem").write_text((d / "b.key").read_text() + (d / "b.pem").read_text())


def wait_port(port: int, proc, deadline_s=30):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"broker exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit("broker did not start")


def produce(conf, topic, size, count, seconds):
    p = Producer({**conf, "acks": "1", "linger.ms": "5", "batch.size": "1000000",
                  "queue.buffering.max.messages": "1000000", "compression.type": "none"})
    payload = b"x" * size
    start = time.monotonic()
    sent = 0
    while sent < count and time.monotonic() - start < seconds:
        try:
            p.produce(topic, payload, partition=0)
            sent += 1
        except BufferError:
            p.poll(0.01)
    left = p.flush(120)
    elapsed = time.monotonic() - start
    return sent - left, elapsed


def consume(conf, topic, count, seconds):
    c = Consumer({**conf, "group.id": f"bench-{topic}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": "false", "fetch.max.bytes": "52428800"})
    c.subscribe([topic])
    got = 0
    nbytes = 0
    start = None
    deadline = time.monotonic() + seconds + 30
    while got < count and time.monotonic() < deadline:
        for m in c.consume(10000, 1.0):
            if m.error() is None:
                if start is None:
                    start = time.monotonic()
                got += 1
                nbytes += len(m.value())
    elapsed = time.monotonic() - (start or time.monotonic())
    c.close()
    return got, nbytes, max(elapsed, 1e-9)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    binary = pathlib.Path(os.environ.get("STRAIT_BROKER_BIN", REPO / "target/release/strait-broker"))
    if not binary.is_file():
        sys.exit(f"{binary} missing: cargo build --release -p strait-broker")
    with tempfile.TemporaryDirectory(prefix="strait-tls-bench-") as work:
        work = pathlib.Path(work)
        make_pki(work)
        plain, tls = free_port(), free_port()
        proc = subprocess.Popen(
            [str(binary),
             "--override", f"listeners=PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{tls}",
             "--override", f"log.dirs={work / 'data'}",
             "--override", "metrics.listener=",
             "--override", "ssl.keystore.type=PEM",
             "--override", f"ssl.keystore.location={work / 'keystore.pem'}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(work / "broker.stderr", "wb"))
        try:
            wait_port(plain, proc)
            wait_port(tls, proc)
            print(f"broker:   {binary} (PLAINTEXT :{plain}, SSL :{tls}, TLS via rustls/aws-lc-rs)")
            print(f"machine:  {os.cpu_count()} cpus, {platform.platform()}")
            print(f"client:   confluent-kafka (librdkafka, OpenSSL); acks=1, 1 partition, "
                  f"up to {args.messages} messages or {args.seconds:.0f} s per case")
            print(f"{'listener':<10} {'size':>6} {'produce msgs/s':>15} {'MB/s':>8} "
                  f"{'consume msgs/s':>15} {'MB/s':>8}")
            for size in (100, 1024):
                for name, port, extra in (
                    ("PLAINTEXT", plain, {}),
                    ("SSL", tls, {"security.protocol": "ssl",
                                  "ssl.ca.location": str(work / "ca.pem")}),
                ):
                    conf = {"bootstrap.servers": f"127.0.0.1:{port}", **extra}
                    topic = f"bench-{name.lower()}-{size}"
                    acked, elapsed = produce(conf, topic, size, args.messages, args.seconds)
                    got, nbytes, celapsed = consume(conf, topic, acked, args.seconds)
                    print(f"{name:<10} {size:>5}B {acked / elapsed:>15,.0f} "
                          f"{acked * size / elapsed / 1e6:>8.1f} {got / celapsed:>15,.0f} "
                          f"{nbytes / celapsed / 1e6:>8.1f}")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
