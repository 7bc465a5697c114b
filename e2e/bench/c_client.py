#!/usr/bin/env python3
"""The broker benchmark driven by librdkafka's C load generator (rdkafka_performance).

Run it through e2e/bench/c-client.sh, which builds the tool and passes --perf. This file starts
the brokers, runs the matrix, and prints one table (docs/performance.md explains every column):

  single node (RF=1, 1 partition, data on disk): produce 100 B / 1 KiB with acks=1 and acks=all,
  consume each from the start, and acks=all 1 KiB latency at fixed offered loads (-r, -l -A);
  3-node `strait-broker dev` cluster (RF=3, min.insync.replicas=2): 1 KiB acks=1, idempotent
  acks=all 1 KiB and 100 B, consume from the start, idempotent acks=all latency at the same loads;
  with --peer-tansu PATH the single-node matrix again against Tansu (memory storage) and ratios.

Broker CPU is utime+stime from /proc/<pid>/stat before and after each case (all nodes summed for
the cluster). Every case is bounded by a message count and a timeout; only 127.0.0.1 is used;
the brokers it started are stopped by PID on exit, Ctrl-C or SIGTERM."""

import argparse
import logging
import os
import pathlib
import platform
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

REPO = pathlib.Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1_000_000  # rdkafka_performance's MB/s is bytes per microsecond, i.e. 10^6 bytes
LOADS_MB = (1, 20, 50)

# Producer settings of every throughput case. rdkafka_performance defaults linger.ms to 1000;
# 5 ms is librdkafka's own default. No compression: the broker handles the bytes as sent.
THROUGHPUT_CONF = ["linger.ms=5", "compression.type=none"]
# Latency cases: send as soon as possible (the batching delay is the client's, not the broker's).
LATENCY_CONF = ["linger.ms=0", "compression.type=none"]
# Every latency sample from the first second is dropped (connection set-up, metadata and the
# idempotent producer id are counted in the first deliveries' latency, not the broker's).
WARMUP_S = 1.0


class Stop(Exception):
    pass


def on_signal(signum, _frame):
    raise Stop(f"signal {signum}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ports_free(ports) -> bool:
    socks = []
    try:
        for p in ports:
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def cpu_ticks(pid: int) -> int:
    """utime + stime of one process, in clock ticks (0 if it is gone)."""
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(fields[11]) + int(fields[12])


def system_busy_seconds() -> float:
    """CPU time spent by the whole machine (all CPUs, everything but idle and iowait)."""
    fields = [int(x) for x in pathlib.Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    # guest time is already counted in user; only the first 8 fields are summed
    return (sum(fields[:8]) - idle) / CLK_TCK


def children_of(ppid: int):
    out = []
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == ppid:
            out.append(int(d.name))
    return sorted(out)


def alive(pid: int) -> bool:
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def http_ok(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


STARTED = []  # every Target this run started, stopped on the way out whatever happens


def terminate(procs, grace=70):
    """SIGTERM every process of `procs` (Popen objects this run started) still running, then wait
    for them all; one still running after `grace` seconds is SIGKILLed."""
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class Target:
    """A broker (or cluster) this run started: its processes and bootstrap address."""

    def __init__(self, name, bootstrap, procs, rf, log_paths):
        self.name = name
        self.bootstrap = bootstrap
        self.procs = procs  # Popen objects we started (the dev launcher or the broker)
        self.rf = rf
        self.log_paths = log_paths
        self.node_pids = []  # the processes whose CPU is counted
        self.stopped = False
        STARTED.append(self)

    def announce(self):
        print(f"# {self.name}: bootstrap {self.bootstrap}, CPU counted for pids "
              f"{' '.join(map(str, self.node_pids))}", flush=True)

    def cpu_seconds(self) -> float:
        return sum(cpu_ticks(p) for p in self.node_pids) / CLK_TCK

    def check_alive(self):
        for p in self.procs:
            if p.poll() is not None:
                tail = ""
                for path in self.log_paths:
                    try:
                        tail += pathlib.Path(path).read_text()[-2000:]
                    except OSError:
                        pass
                raise RuntimeError(f"{self.name}: process {p.pid} exited ({p.returncode})\n{tail}")

    def stop(self):
        """SIGTERM to what we started, then SIGKILL after a grace period; nodes too, by PID."""
        if self.stopped:
            return
        nodes = [pid for pid in self.node_pids if pid not in {p.pid for p in self.procs}]
        terminate(self.procs)
        # Nodes of the dev launcher: it SIGTERMs and reaps them itself; anything left is ours.
        for pid in nodes:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.stopped = True


QUIET = logging.getLogger("c_client.admin")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


def admin_for(bootstrap):
    # librdkafka's own log lines (connection refused while a broker starts or stops) are noise here.
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000},
                       logger=QUIET)


def wait_metadata(target: Target, brokers: int, deadline_s=60):
    admin = admin_for(target.bootstrap)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        target.check_alive()
        try:
            md = admin.list_topics(timeout=2)
            if len(md.brokers) >= brokers:
                return
        except KafkaException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{target.name}: metadata did not show {brokers} broker(s) in {deadline_s}s")


def create_topic(target: Target, topic: str):
    admin = admin_for(target.bootstrap)
    config = {"min.insync.replicas": "2"} if target.rf == 3 else {}
    fut = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=target.rf,
                                        config=config)], request_timeout=30)
    fut[topic].result(timeout=60)
    # Wait until the partition has a leader (and its full ISR) in the metadata.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        md = admin.list_topics(topic=topic, timeout=5)
        t = md.topics.get(topic)
        if t is not None and t.error is None and 0 in t.partitions:
            p = t.partitions[0]
            if p.leader >= 0 and len(p.isrs) >= target.rf:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{target.name}: topic {topic} has no leader with a full ISR")


def start_strait_single(binary, tmp: pathlib.Path) -> Target:
    port, metrics = free_port(), free_port()
    data = tmp / "strait-1"
    log = tmp / "strait-1.log"
    cmd = [binary,
           "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
           "--override", f"log.dirs={data}",
           "--override", f"metrics.listener=127.0.0.1:{metrics}",
           "--override", "num.partitions=1",
           "--override", "auto.create.topics.enable=false"]
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    t = Target("strait 1 node", f"127.0.0.1:{port}", [proc], 1, [log])
    t.node_pids = [proc.pid]
    deadline = time.monotonic() + 60
    while not http_ok(f"http://127.0.0.1:{metrics}/ready"):
        t.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError("strait did not become ready in 60 s")
        time.sleep(0.2)
    wait_metadata(t, 1)
    return t


def start_strait_cluster(binary, tmp: pathlib.Path) -> Target:
    for _ in range(50):
        base = random.randrange(20000, 60000, 2)
        if ports_free([base + i for i in range(6)] + [base + 1000 + i for i in range(3)]):
            break
    else:
        raise RuntimeError("no free port range for the dev cluster")
    data = tmp / "strait-3"
    log = tmp / "strait-3.log"
    cmd = [binary, "dev", "--brokers", "3", "--base-port", str(base), "--data-dir", str(data),
           "--override", "auto.create.topics.enable=false"]
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    t = Target("strait 3 nodes", ",".join(f"127.0.0.1:{base + 2 * i}" for i in range(3)), [proc], 3,
               [log])
    deadline = time.monotonic() + 90
    while True:
        t.check_alive()
        t.node_pids = children_of(proc.pid)
        if len(t.node_pids) == 3 and all(http_ok(f"http://127.0.0.1:{base + 1000 + i}/ready")
                                         for i in range(3)):
            break
        if time.monotonic() > deadline:
            raise RuntimeError("the dev cluster did not become ready in 90 s")
        time.sleep(0.3)
    wait_metadata(t, 3)
    return t


def start_tansu(binary, tmp: pathlib.Path) -> Target:
    port = free_port()
    log = tmp / "tansu.log"
    help_text = subprocess.run([binary, "broker", "--help"], capture_output=True, text=True,
                               timeout=30).stdout
    cmd = [binary, "broker",
           "--listener-url", f"tcp://127.0.0.1:{port}",
           "--advertised-listener-url", f"tcp://127.0.0.1:{port}",
           "--storage-engine", "memory://tansu/"]
    # Some versions also open a Prometheus listener (0.0.0.0:9100 by default): keep it on
    # loopback and on a free port.
    if "--prometheus-listener-url" in help_text:
        cmd += ["--prometheus-listener-url", f"tcp://127.0.0.1:{free_port()}"]
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    t = Target("tansu (memory)", f"127.0.0.1:{port}", [proc], 1, [log])
    t.node_pids = [proc.pid]
    wait_metadata(t, 1)
    return t


def percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(-(-p * len(sorted_vals) // 1)) - 1))
    return sorted_vals[k]


PRODUCED = re.compile(r"(\d+) messages produced \((\d+) bytes\), (\d+) delivered \(offset -?\d+, "
                      r"(\d+) failed\) in (\d+)ms: (\d+) msgs/s and ([\d.]+) MB/s")
CONSUMED = re.compile(r"(\d+) messages \((\d+) bytes\) consumed in (\d+)ms: (\d+) msgs/s "
                      r"\(([\d.]+) MB/s\)")


class Runner:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.rows = []
        self.seq = 0
        self.collecting = False
        self.pending = {}
        self.other_cpu = 0.0

    def perf(self, target: Target, argv, timeout_s, case):
        """One rdkafka_performance run: returns (stdout, broker CPU s, client CPU s, wall s)."""
        target.check_alive()
        cmd = [self.args.perf, "-b", target.bootstrap, "-q"] + argv
        if self.args.verbose:
            print("  $", " ".join(cmd), flush=True)
        before_broker = target.cpu_seconds()
        before_client = resource.getrusage(resource.RUSAGE_CHILDREN)
        before_system = system_busy_seconds()
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True)
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            # SIGINT makes it stop producing/consuming and print its summary.
            proc.send_signal(signal.SIGINT)
            try:
                out, _ = proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            out += f"\n(timed out after {timeout_s}s)"
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        wall = time.monotonic() - start
        after_client = resource.getrusage(resource.RUSAGE_CHILDREN)
        broker_cpu = target.cpu_seconds() - before_broker
        system_cpu = system_busy_seconds() - before_system
        client_cpu = ((after_client.ru_utime + after_client.ru_stime)
                      - (before_client.ru_utime + before_client.ru_stime))
        if self.args.verbose:
            print("\n".join("    " + line for line in out.splitlines()
                            if "CONFWARN" not in line), flush=True)
        if proc.returncode not in (0, None) and "timed out" not in out:
            print(f"  {case}: rdkafka_performance exited {proc.returncode}:\n{out[-1500:]}",
                  flush=True)
        # Whatever else ran on the machine meanwhile (other builds, this script): its cores.
        self.other_cpu = max(0.0, system_cpu - broker_cpu - client_cpu)
        return out, broker_cpu, client_cpu, wall

    def topic(self, target, label):
        self.seq += 1
        name = f"bench-{self.seq}-" + re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-")
        create_topic(target, name)
        return name

    def record(self, system, case, kind, mbps, msgs, nbytes, broker_cpu, client_cpu, wall, lat=None,
               offered=None, note=""):
        row = {"system": system, "case": case, "kind": kind, "mbps": mbps, "msgs": msgs,
               "other_cpu": self.other_cpu,
               "bytes": nbytes, "broker_cpu": broker_cpu, "client_cpu": client_cpu, "wall": wall,
               "lat": lat, "offered": offered, "note": note}
        if self.collecting:
            self.pending.setdefault((system, case), []).append(row)
            return row
        self.rows.append(row)
        print(format_row(row), flush=True)
        return row

    def flush(self):
        """One row per repeated case: the run with the median MB/s, with the range in its note."""
        for runs in self.pending.values():
            runs_sorted = sorted(runs, key=lambda r: r["mbps"] or 0.0)
            row = dict(runs_sorted[(len(runs_sorted) - 1) // 2])
            if len(runs) > 1:
                lo, hi = runs_sorted[0]["mbps"], runs_sorted[-1]["mbps"]
                spread = f"median of {len(runs)}, {fmt(lo, '.0f')}-{fmt(hi, '.0f')} MB/s"
                row["note"] = spread + (f"; {row['note']}" if row["note"] else "")
            self.rows.append(row)
            print(format_row(row), flush=True)
        self.pending = {}

    def delete(self, target, topic):
        """Frees the disk a case used (a full run would otherwise keep tens of GB)."""
        admin = admin_for(target.bootstrap)  # kept alive until the answer arrives
        try:
            admin.delete_topics([topic], request_timeout=30)[topic].result(timeout=60)
        except Exception as e:  # noqa: BLE001 - a peer without DeleteTopics keeps its data
            print(f"  (could not delete {topic}: {e})", flush=True)

    def produce(self, target, system, size, acks, idempotent, count, label):
        topic = self.topic(target, label)
        conf = list(THROUGHPUT_CONF)
        if idempotent:
            conf.append("enable.idempotence=true")
        argv = ["-P", "-t", topic, "-p", "0", "-s", str(size), "-c", str(count),
                "-X", f"acks={acks}"]
        for c in conf:
            argv += ["-X", c]
        out, bcpu, ccpu, wall = self.perf(target, argv, self.args.case_timeout, label)
        m = PRODUCED.search(out)
        if not m:
            last = out.strip().splitlines()[-1][:80] if out.strip() else "no output"
            self.record(system, label, "produce", None, None, 0, bcpu, ccpu, wall,
                        note=f"no summary: {last}")
            return topic, 0
        delivered, failed = int(m.group(3)), int(m.group(4))
        nbytes = delivered * size
        note = f"{failed} failed" if failed else ""
        self.record(system, label, "produce", float(m.group(7)), int(m.group(6)), nbytes, bcpu,
                    ccpu, wall, note=note)
        return topic, delivered

    def consume(self, target, system, topic, count, size, label):
        if count <= 0:
            return
        argv = ["-C", "-t", topic, "-p", "0", "-o", "beginning", "-c", str(count), "-e",
                "-X", "enable.partition.eof=true"]
        out, bcpu, ccpu, wall = self.perf(target, argv, self.args.case_timeout, label)
        m = CONSUMED.search(out)
        if not m:
            self.record(system, label, "consume", None, None, 0, bcpu, ccpu, wall,
                        note="no summary")
            return
        got = int(m.group(1))
        note = "" if got >= count else f"read {got} of {count}"
        self.record(system, label, "consume", float(m.group(5)), int(m.group(4)),
                    int(m.group(2)), bcpu, ccpu, wall, note=note)

    def latency(self, target, system, load_mb, idempotent, label):
        size = 1024
        rate = max(1, round(load_mb * MB / size))
        count = max(100, int(rate * self.args.latency_seconds))
        topic = self.topic(target, label)
        lat_file = self.tmp / f"{topic}.lat"
        argv = ["-P", "-t", topic, "-p", "0", "-s", str(size), "-c", str(count),
                "-r", str(rate), "-l", "-A", str(lat_file), "-X", "acks=all"]
        conf = list(LATENCY_CONF)
        if idempotent:
            conf.append("enable.idempotence=true")
        for c in conf:
            argv += ["-X", c]
        out, bcpu, ccpu, wall = self.perf(target, argv, self.args.latency_seconds * 3 + 30,
                                          label)
        m = PRODUCED.search(out)
        try:
            samples = [int(x) for x in lat_file.read_text().split()]
        except OSError:
            samples = []
        lat_file.unlink(missing_ok=True)
        skip = min(len(samples) // 2, int(rate * WARMUP_S))
        vals = sorted(samples[skip:])
        lat = None
        if vals:
            lat = tuple(percentile(vals, p) / 1000.0 for p in (0.5, 0.99, 0.999, 1.0))
        if not m:
            self.record(system, label, "latency", None, None, 0, bcpu, ccpu, wall, lat=lat,
                        offered=load_mb, note="no summary")
            return
        delivered, failed = int(m.group(3)), int(m.group(4))
        note = f"{failed} failed" if failed else ""
        self.record(system, label, "latency", float(m.group(7)), int(m.group(6)),
                    delivered * size, bcpu, ccpu, wall, lat=lat, offered=load_mb, note=note)

    def warm_up(self, target):
        """An unrecorded produce and consume, so the first case does not pay for cold caches."""
        topic = self.topic(target, "warm-up")
        self.perf(target, ["-P", "-t", topic, "-p", "0", "-s", "1024", "-c", "200000",
                           "-X", "acks=all"] + [x for c in THROUGHPUT_CONF for x in ("-X", c)],
                  self.args.case_timeout, "warm-up")
        self.perf(target, ["-C", "-t", topic, "-p", "0", "-o", "beginning", "-c", "200000", "-e",
                           "-X", "enable.partition.eof=true"], self.args.case_timeout, "warm-up")

    def single_matrix(self, target, system):
        a = self.args
        self.warm_up(target)
        self.collecting = True
        for _ in range(a.repeat):
            for size, count in ((100, a.count_100), (1024, a.count_1k)):
                sz = "100B" if size == 100 else "1KiB"
                topic, n = self.produce(target, system, size, "1", False, count,
                                        f"produce {sz} acks=1 RF=1")
                self.consume(target, system, topic, n, size, f"consume {sz} from start RF=1")
                self.delete(target, topic)
                topic, _ = self.produce(target, system, size, "all", False, count,
                                        f"produce {sz} acks=all RF=1")
                self.delete(target, topic)
        self.collecting = False
        self.flush()
        for load in LOADS_MB:
            self.latency(target, system, load, False, f"latency 1KiB acks=all RF=1 @{load}MB/s")

    def cluster_matrix(self, target, system):
        a = self.args
        self.warm_up(target)
        self.collecting = True
        for _ in range(a.repeat):
            topic, _ = self.produce(target, system, 1024, "1", False, a.count_1k_rf3,
                                    "produce 1KiB acks=1 RF=3")
            self.delete(target, topic)
            topic, n = self.produce(target, system, 1024, "all", True, a.count_1k_rf3,
                                    "produce 1KiB acks=all idem RF=3")
            self.consume(target, system, topic, n, 1024, "consume 1KiB from start RF=3")
            self.delete(target, topic)
            topic, _ = self.produce(target, system, 100, "all", True, a.count_100_rf3,
                                    "produce 100B acks=all idem RF=3")
            self.delete(target, topic)
        self.collecting = False
        self.flush()
        for load in LOADS_MB:
            self.latency(target, system, load, True,
                         f"latency 1KiB acks=all idem RF=3 @{load}MB/s")


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


HEADER = (f"{'system':<15} {'case':<38} {'MB/s':>8} {'msgs/s':>9} {'p50ms':>7} {'p99ms':>7} "
          f"{'p99.9ms':>7} {'maxms':>7} {'brk s/GB':>8} {'brk cores':>9} {'cli cores':>9}  note")


def format_row(r):
    lat = r["lat"] or (None, None, None, None)
    per_gb = r["broker_cpu"] / (r["bytes"] / 1e9) if r["bytes"] else None
    return (f"{r['system']:<15} {r['case']:<38} {fmt(r['mbps'], '8.1f')} {fmt(r['msgs'], '9d')} "
            f"{fmt(lat[0], '7.2f')} {fmt(lat[1], '7.2f')} {fmt(lat[2], '7.2f')} "
            f"{fmt(lat[3], '7.2f')} {fmt(per_gb, '8.2f')} {fmt(cores(r, 'broker_cpu'), '9.2f')} "
            f"{fmt(cores(r, 'client_cpu'), '9.2f')} {fmt(cores(r, 'other_cpu'), '9.2f')}  "
            f"{r['note']}")


def cores(r, key):
    """CPU seconds over the case's wall time: how many cores it kept busy on average."""
    return r[key] / r["wall"] if r["wall"] else None


def markdown(rows):
    lines = ["| system | case | MB/s | msgs/s | p50 ms | p99 ms | p99.9 ms | max ms | "
             "broker CPU s/GB | broker cores | client cores | other cores |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lat = r["lat"] or (None, None, None, None)
        per_gb = r["broker_cpu"] / (r["bytes"] / 1e9) if r["bytes"] else None
        note = f" ({r['note']})" if r["note"] else ""
        lines.append(f"| {r['system']} | {r['case']}{note} | {fmt(r['mbps'], '.1f')} | "
                     f"{fmt(r['msgs'], ',d')} | {fmt(lat[0], '.2f')} | {fmt(lat[1], '.2f')} | "
                     f"{fmt(lat[2], '.2f')} | {fmt(lat[3], '.2f')} | {fmt(per_gb, '.2f')} | "
                     f"{fmt(cores(r, 'broker_cpu'), '.2f')} | "
                     f"{fmt(cores(r, 'client_cpu'), '.2f')} | "
                     f"{fmt(cores(r, 'other_cpu'), '.2f')} |")
    return "\n".join(lines)


def ratios(rows, system_a, system_b):
    a = {r["case"]: r for r in rows if r["system"] == system_a}
    b = {r["case"]: r for r in rows if r["system"] == system_b}
    out = []
    for case, ra in a.items():
        rb = b.get(case)
        if not rb:
            continue
        if ra["kind"] == "latency":
            pa = ra["lat"][1] if ra["lat"] else None
            pb = rb["lat"][1] if rb["lat"] else None
            val = f"p99 {pa / pb:.2f}x" if pa and pb else "-"
        else:
            val = (f"MB/s {ra['mbps'] / rb['mbps']:.2f}x" if ra["mbps"] and rb["mbps"] else "-")
        out.append(f"  {case:<38} {system_a} / {system_b}: {val}")
    return out


def row(rows, system, case):
    for r in rows:
        if r["system"] == system and r["case"] == case:
            return r
    return None


def check_targets(rows):
    """The issue's targets (benchmark goals, not tests): one line each, met / missed / not run."""
    one, three = "strait 1 node", "strait 3 nodes"
    out = []

    def line(ok, text):
        out.append(f"  {'not run' if ok is None else ('met   ' if ok else 'missed')}  {text}")

    lat = row(rows, three, "latency 1KiB acks=all idem RF=3 @50MB/s")
    v = lat["lat"] if lat and lat["lat"] else None
    line(None if v is None else v[1] <= 5.0,
         f"RF=3 acks=all idempotent 1 KiB @50 MB/s p99 <= 5 ms "
         f"({'-' if v is None else f'{v[1]:.2f} ms'})")
    line(None if v is None else v[3] <= 50.0,
         f"RF=3 acks=all idempotent 1 KiB @50 MB/s max <= 50 ms "
         f"({'-' if v is None else f'{v[3]:.2f} ms'})")
    for system, case, want, text in (
            (three, "produce 1KiB acks=all idem RF=3", 300,
             "RF=3 acks=all idempotent 1 KiB >= 300 MB/s"),
            (one, "produce 1KiB acks=1 RF=1", 1000, "1 node produce 1 KiB >= 1 GB/s"),
            (one, "produce 100B acks=1 RF=1", 400, "1 node produce 100 B >= 400 MB/s"),
            (one, "consume 1KiB from start RF=1", 2000, "1 node consume >= 2 GB/s")):
        r = row(rows, system, case)
        got = r["mbps"] if r else None
        line(None if got is None else got >= want,
             f"{text} ({'-' if got is None else f'{got:.1f} MB/s'})")
    for sz in ("100B", "1KiB"):
        a1 = row(rows, one, f"produce {sz} acks=1 RF=1")
        aa = row(rows, one, f"produce {sz} acks=all RF=1")
        if a1 and aa and a1["mbps"] and aa["mbps"]:
            line(aa["mbps"] >= 0.9 * a1["mbps"],
                 f"1 node {sz} acks=all within 10% of acks=1 "
                 f"({aa['mbps']:.1f} vs {a1['mbps']:.1f} MB/s)")
        else:
            line(None, f"1 node {sz} acks=all within 10% of acks=1")
    return out


def machine():
    lines = [f"machine: {os.cpu_count()} CPUs, {platform.machine()}, kernel {platform.release()}"]
    try:
        model = [l for l in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
                 if l.startswith("model name")]
        if model:
            lines.append("cpu: " + model[0].split(":", 1)[1].strip())
    except OSError:
        pass
    try:
        mem = {l.split(":")[0]: l.split(":")[1].strip()
               for l in pathlib.Path("/proc/meminfo").read_text().splitlines()}
        lines.append(f"memory: {mem.get('MemTotal')} total, {mem.get('MemAvailable')} available, "
                     f"{mem.get('Dirty')} dirty (data is written through the page cache; "
                     f"nothing is fsynced per request, as in Kafka's defaults)")
    except OSError:
        pass
    lines.append("load average before the run: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--perf", required=True, help="rdkafka_performance binary (c-client.sh)")
    ap.add_argument("--librdkafka", default="?", help="its librdkafka version (for the report)")
    ap.add_argument("--broker", default=str(REPO / "target/release/strait-broker"),
                    help="strait-broker binary [target/release/strait-broker]")
    ap.add_argument("--peer-tansu", metavar="PATH",
                    help="a tansu binary: run the single-node matrix against it too "
                         "(memory storage) and print ratios")
    ap.add_argument("--quick", action="store_true", help="small counts: a smoke run (about a minute)")
    ap.add_argument("--repeat", type=int, metavar="N",
                    help="runs of each throughput case; the median is reported [3; --quick 1]")
    ap.add_argument("--no-cluster", action="store_true", help="skip the 3-node cluster")
    ap.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    ap.add_argument("-v", "--verbose", action="store_true", help="print commands and output")
    args = ap.parse_args()

    if args.quick:
        args.count_100, args.count_1k = 500_000, 100_000
        args.count_100_rf3, args.count_1k_rf3 = 200_000, 50_000
        args.latency_seconds, args.case_timeout = 4, 30
        args.repeat = args.repeat or 1
    else:
        args.count_100, args.count_1k = 10_000_000, 2_000_000
        args.count_100_rf3, args.count_1k_rf3 = 3_000_000, 1_000_000
        args.latency_seconds, args.case_timeout = 20, 60
        args.repeat = args.repeat or 3
    args.repeat = max(1, args.repeat)

    for path in (args.perf, args.broker) + ((args.peer_tansu,) if args.peer_tansu else ()):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            sys.exit(f"c_client.py: not an executable: {path}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    for line in machine():
        print(line)
    print(f"client: rdkafka_performance, librdkafka {args.librdkafka} ({args.perf})")
    print(f"broker: {args.broker} (built "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(os.path.getmtime(args.broker)))})")
    print(f"mode: {'quick' if args.quick else 'full'}; throughput cases run {args.repeat}x "
          f"(median reported); latency cases {args.latency_seconds}s each, "
          f"first {WARMUP_S:g}s of samples dropped; throughput producer -X "
          f"{' -X '.join(THROUGHPUT_CONF)}; latency producer -X {' -X '.join(LATENCY_CONF)}")
    print()
    print(HEADER, flush=True)

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="strait-c-bench-"))
    need_gb = 3 if args.quick else 10
    free_gb = shutil.disk_usage(tmp).free / 1e9
    if free_gb < need_gb:
        shutil.rmtree(tmp, ignore_errors=True)
        sys.exit(f"c_client.py: {free_gb:.0f} GB free under {tmp.parent}; this run writes up to "
                 f"~{need_gb} GB there (set TMPDIR elsewhere)")
    runner = Runner(args, tmp)
    status = 0
    try:
        phases = [("strait 1 node", lambda: start_strait_single(args.broker, tmp),
                   runner.single_matrix)]
        if not args.no_cluster:
            phases.append(("strait 3 nodes", lambda: start_strait_cluster(args.broker, tmp),
                           runner.cluster_matrix))
        if args.peer_tansu:
            phases.append(("tansu memory", lambda: start_tansu(args.peer_tansu, tmp),
                           runner.single_matrix))
        for system, start, matrix in phases:
            try:
                target = start()
                target.announce()
                matrix(target, system)
            finally:
                runner.collecting = False
                runner.flush()  # what an interrupted phase measured is still printed
                for t in STARTED:
                    t.stop()
                # Free the disk between phases (a full run writes several GB).
                for d in tmp.iterdir():
                    if d.is_dir():
                        shutil.rmtree(d, ignore_errors=True)
    except Stop as e:
        print(f"\nstopped by {e}", flush=True)
        status = 130
    except Exception as e:  # noqa: BLE001 - report and clean up
        print(f"\nerror: {e}", flush=True)
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for t in STARTED:
            t.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print("\ntargets (issue 17; on this machine, client and brokers sharing its CPUs):")
    for line in check_targets(runner.rows):
        print(line)
    print("\nload average after the run: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    if args.peer_tansu:
        print("\nratios (strait 1 node / tansu memory; MB/s above 1 and p99 below 1 favour "
              "strait):")
        for line in ratios(runner.rows, "strait 1 node", "tansu memory"):
            print(line)
    if args.markdown and runner.rows:
        pathlib.Path(args.markdown).write_text(markdown(runner.rows) + "\n")
        print(f"\nMarkdown table written to {args.markdown}")
    return status


if __name__ == "__main__":
    sys.exit(main())
