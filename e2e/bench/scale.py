#!/usr/bin/env python3
"""Scale benchmark (issue 17, item 5): a broker with many partitions, and latency on many partitions.

  python3 e2e/bench/scale.py [--quick] [--broker PATH] [--markdown FILE]

1. One node (`strait-broker`, RF=1): start it empty, create 10,000 partitions (100 topics x 100
   partitions, in CreateTopics requests of 10 topics) and time it until Metadata shows every
   partition with a leader; RSS (VmRSS, VmHWM), open files and threads; idle CPU over 30 s with no
   client connected; SIGTERM (time to exit, exit code); start again on the same data dir and time
   /ready and "every partition led"; RSS and idle CPU again.
2. Three nodes (`strait-broker dev --brokers 3`), 10,000 partitions with RF=3 and
   min.insync.replicas=2: the same, per node and summed (idle CPU now includes the replica
   fetchers), plus the time until every ISR is full; the whole cluster restarted by SIGINT to the
   dev launcher (which SIGTERMs its nodes) and started again on the same data dir.
3. Latency with many partitions, on that cluster: one topic of 1,000 partitions (RF=3, minISR=2),
   16 producer processes (confluent-kafka, enable.idempotence=true, acks=all, linger.ms=0, 1 KiB
   values, a distinct key per message) offering a fixed total load (5 and 20 MB/s, 20 s each,
   paced on an absolute schedule). Latency = produce() call -> delivery callback, per message;
   samples sent in the first second are dropped. Run once with the 10,000 scale partitions still
   there (idle), then again after deleting them.

--quick: 1,000 partitions (10 x 100), 10 s idle windows, a 200-partition latency topic, 5 s per
load: a smoke run of a few minutes.

Every wait is bounded; only 127.0.0.1 is used; the processes this script started (brokers, the dev
launcher and its nodes, producer workers) are stopped by PID on exit, error, Ctrl-C or SIGTERM.
CPU is utime+stime from /proc/<pid>/stat; "other" is the rest of the machine's busy time
(/proc/stat) over the same window."""

import argparse
import array
import json
import os
import pathlib
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from c_client import (CLK_TCK, MB, QUIET, REPO, Stop, alive, children_of,  # noqa: E402
                      cpu_ticks, free_port, http_ok, machine, on_signal, percentile, ports_free,
                      system_busy_seconds, terminate)

VALUE_SIZE = 1024
WARMUP_S = 1.0
TOPIC_PREFIX = "scale-"
LAT_TOPIC = "latency-many"
# The issue's latency goal (RF=3 acks=all idempotent 1 KiB).
GOAL_P99_MS, GOAL_MAX_MS = 5.0, 50.0

PROCS = []      # Popen objects this run started
NODE_PIDS = {}  # pid -> data dir of dev-cluster nodes (children of a launcher we started)


def admin_for(bootstrap):
    # A CreateTopics of 1,000 partitions can take longer than c_client's 5 s socket timeout.
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 180000},
                       logger=QUIET)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def spawn(cmd, logfile, **kw):
    with open(logfile, "ab") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                             stdin=kw.pop("stdin", subprocess.DEVNULL), start_new_session=True,
                             **kw)
    PROCS.append(p)
    return p


def is_our_node(pid, data_dir):
    """A dev node we saw, still alive and still the same process (its command line names our dir)."""
    try:
        cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return alive(pid) and str(data_dir) in cmdline


def cleanup():
    """SIGTERM what we started, SIGKILL after a grace period; dev nodes left behind by PID."""
    terminate(PROCS)
    for pid, data_dir in NODE_PIDS.items():
        if is_our_node(pid, data_dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# ---------------------------------------------------------------------------------------------
# /proc readings


def proc_status(pid):
    out = {}
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            out[k] = v.strip()
    except OSError:
        pass
    return out


def mem_of(pid):
    """(RSS MiB, peak RSS MiB, threads, open fds)."""
    st = proc_status(pid)

    def kib(key):
        v = st.get(key, "0 kB").split()[0]
        return int(v) / 1024.0

    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = None
    return kib("VmRSS"), kib("VmHWM"), int(st.get("Threads", "0")), fds


def disk_usage(path):
    """Bytes allocated under path (st_blocks), and the number of files."""
    total, files = 0, 0
    for root, _dirs, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(root, n)).st_blocks * 512
                files += 1
            except OSError:
                pass
    return total, files


# ---------------------------------------------------------------------------------------------
# brokers


class Single:
    name = "1 node RF=1"
    rf = 1

    def __init__(self, binary, tmp):
        self.binary = binary
        self.port, self.metrics = free_port(), free_port()
        self.data = tmp / "single"
        self.logfile = tmp / "single.log"
        self.proc = None
        self.t_spawn = None

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    @property
    def pids(self):
        return [self.proc.pid]

    def start(self):
        cmd = [self.binary,
               "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
               "--override", f"log.dirs={self.data}",
               "--override", f"metrics.listener=127.0.0.1:{self.metrics}",
               "--override", "auto.create.topics.enable=false"]
        self.log_offset = log_size(self.logfile)
        self.t_spawn = time.monotonic()
        self.proc = spawn(cmd, self.logfile)

    def check_alive(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name}: broker exited ({self.proc.returncode})\n"
                               f"{tail(self.logfile)}")

    def is_ready(self):
        return http_ok(f"http://127.0.0.1:{self.metrics}/ready")

    def stop(self, timeout=600):
        """SIGTERM; returns (seconds to exit, exit code)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return time.monotonic() - t0, f"killed after {timeout}s"
        return time.monotonic() - t0, rc


class Cluster:
    name = "3 nodes RF=3"
    rf = 3

    def __init__(self, binary, tmp):
        self.binary = binary
        for _ in range(100):
            base = random.randrange(20000, 60000, 2)
            if ports_free([base + i for i in range(6)] + [base + 1000 + i for i in range(3)]):
                break
        else:
            raise RuntimeError("no free port range for the dev cluster")
        self.base = base
        self.data = tmp / "cluster"
        self.logfile = tmp / "cluster.log"
        self.proc = None
        self.node_pids = []
        self.t_spawn = None

    @property
    def bootstrap(self):
        return ",".join(f"127.0.0.1:{self.base + 2 * i}" for i in range(3))

    @property
    def pids(self):
        return self.node_pids

    def start(self):
        # Ports may linger a moment after a restart; the launcher checks nothing itself.
        cmd = [self.binary, "dev", "--brokers", "3", "--base-port", str(self.base),
               "--data-dir", str(self.data), "--override", "auto.create.topics.enable=false"]
        self.node_pids = []
        self.log_offset = log_size(self.logfile)
        self.t_spawn = time.monotonic()
        self.proc = spawn(cmd, self.logfile)

    def check_alive(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name}: dev launcher exited ({self.proc.returncode})\n"
                               f"{tail(self.logfile)}")
        if len(self.node_pids) == 3 and not all(alive(p) for p in self.node_pids):
            raise RuntimeError(f"{self.name}: a node exited\n{tail(self.logfile)}")

    def is_ready(self):
        if len(self.node_pids) < 3:
            self.node_pids = children_of(self.proc.pid)
            for p in self.node_pids:
                NODE_PIDS[p] = self.data
            if len(self.node_pids) < 3:
                return False
        return all(http_ok(f"http://127.0.0.1:{self.base + 1000 + i}/ready") for i in range(3))

    def stop(self, timeout=240):
        """SIGINT to the launcher (it SIGTERMs its nodes and waits); (seconds, launcher exit)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = f"killed after {timeout}s"
        elapsed = time.monotonic() - t0
        left = [p for p in self.node_pids if is_our_node(p, self.data)]
        for p in left:
            os.kill(p, signal.SIGKILL)
        if left:
            rc = f"{rc}; {len(left)} node(s) left running, killed"
        return elapsed, rc


def log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def log_since(target):
    try:
        with open(target.logfile, "rb") as f:
            f.seek(target.log_offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def log_findings(target):
    """What the broker log says since the last start: clean open or recovery, forced kills."""
    text = log_since(target)
    out = []
    clean = text.count("shut down cleanly; skipped recovery")
    unclean = text.count("was not shut down cleanly")
    if clean or unclean:
        out.append(f"log dirs opened clean {clean}, with recovery {unclean}")
    killed = text.count("did not stop in time; killing it")
    if killed:
        out.append(f"dev launcher SIGKILLed {killed} node(s) after its 60 s grace")
    return out


def tail(path, n=3000):
    try:
        return pathlib.Path(path).read_text(errors="replace")[-n:]
    except OSError:
        return ""


def wait_ready(target, timeout):
    """Seconds from spawn until /ready answers 200 (on every node)."""
    deadline = time.monotonic() + timeout
    while not target.is_ready():
        target.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{target.name}: not ready after {timeout}s\n{tail(target.logfile)}")
        time.sleep(0.1)
    return time.monotonic() - target.t_spawn


def count_partitions(admin, prefix, rf):
    """(partitions under prefix, led, with a full ISR) from one Metadata request."""
    md = admin.list_topics(timeout=20)
    total = led = full = 0
    for name, t in md.topics.items():
        if not name.startswith(prefix) or t.error is not None:
            continue
        for p in t.partitions.values():
            total += 1
            if p.error is None and p.leader >= 0:
                led += 1
                if len(p.isrs) >= rf:
                    full += 1
    return total, led, full


def wait_partitions(target, prefix, expected, t0, timeout, need_isr):
    """Polls Metadata until `expected` partitions are led (and, if need_isr, have full ISRs).
    Returns (seconds to all led or None, seconds to all ISRs full or None, last counts)."""
    admin = admin_for(target.bootstrap)
    t_led = t_full = None
    counts = (0, 0, 0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        target.check_alive()
        try:
            counts = count_partitions(admin, prefix, target.rf)
        except Exception:  # noqa: BLE001 - a broker still starting answers nothing useful
            time.sleep(0.5)
            continue
        now = time.monotonic()
        if t_led is None and counts[1] >= expected:
            t_led = now - t0
        if counts[2] >= expected and t_full is None:
            t_full = now - t0
        if t_led is not None and (t_full is not None or not need_isr):
            break
        time.sleep(0.5)
    del admin
    return t_led, t_full, counts


def create_topics(target, n_topics, per_topic, batch, timeout):
    """CreateTopics in requests of `batch` topics; returns (seconds the requests took, errors)."""
    from confluent_kafka.admin import NewTopic
    admin = admin_for(target.bootstrap)
    config = {"min.insync.replicas": "2"} if target.rf == 3 else {}
    names = [f"{TOPIC_PREFIX}{i:03d}" for i in range(n_topics)]
    errors = []
    t0 = time.monotonic()
    deadline = t0 + timeout
    for i in range(0, len(names), batch):
        chunk = names[i:i + batch]
        futs = admin.create_topics([NewTopic(n, num_partitions=per_topic,
                                             replication_factor=target.rf, config=config)
                                    for n in chunk], request_timeout=120)
        for n, f in futs.items():
            try:
                f.result(timeout=max(1.0, deadline - time.monotonic()))
            except Exception as e:  # noqa: BLE001 - reported, the run goes on
                errors.append(f"{n}: {e}")
        target.check_alive()
        if time.monotonic() > deadline:
            errors.append(f"gave up after {timeout}s at topic {i + batch} of {n_topics}")
            break
    del admin
    return time.monotonic() - t0, errors


def delete_topics(target, timeout):
    admin = admin_for(target.bootstrap)
    names = [n for n in admin.list_topics(timeout=20).topics if n.startswith(TOPIC_PREFIX)]
    t0 = time.monotonic()
    errors = []
    for i in range(0, len(names), 10):
        futs = admin.delete_topics(names[i:i + 10], request_timeout=120)
        for n, f in futs.items():
            try:
                f.result(timeout=max(1.0, t0 + timeout - time.monotonic()))
            except Exception as e:  # noqa: BLE001
                errors.append(f"{n}: {e}")
    # Until Metadata no longer lists them.
    while time.monotonic() < t0 + timeout:
        left = [n for n in admin.list_topics(timeout=20).topics if n.startswith(TOPIC_PREFIX)]
        if not left:
            break
        time.sleep(0.5)
    else:
        errors.append(f"still listed after {timeout}s")
    del admin
    return time.monotonic() - t0, errors


def idle_cpu(target, seconds):
    """CPU of each node over `seconds` with no client: (per-node cores, other cores)."""
    before = [cpu_ticks(p) for p in target.pids]
    sys_before = system_busy_seconds()
    t0 = time.monotonic()
    end = t0 + seconds
    while time.monotonic() < end:
        target.check_alive()
        time.sleep(min(1.0, max(0.0, end - time.monotonic())))
    wall = time.monotonic() - t0
    after = [cpu_ticks(p) for p in target.pids]
    per = [(a - b) / CLK_TCK / wall for a, b in zip(after, before)]
    other = max(0.0, (system_busy_seconds() - sys_before) / wall - sum(per))
    return per, other


# ---------------------------------------------------------------------------------------------
# report rows


ROWS = []


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def per_node(vals, spec):
    if vals is None:
        return "-"
    if len(vals) == 1:
        return format(vals[0], spec)
    return f"{format(sum(vals), spec)} ({' / '.join(format(v, spec) for v in vals)})"


def add_row(setup, step, seconds=None, rss=None, peak=None, cpu=None, other=None, fds=None,
            threads=None, note=""):
    r = {"setup": setup, "step": step, "seconds": seconds, "rss": rss, "peak": peak, "cpu": cpu,
         "other": other, "fds": fds, "threads": threads, "note": note}
    ROWS.append(r)
    log(f"ROW {setup} | {step} | {fmt(seconds, '.2f')} s | RSS {per_node(rss, '.0f')} MiB | "
        f"peak {per_node(peak, '.0f')} | CPU {per_node(cpu and [c * 100 for c in cpu], '.1f')} % | "
        f"other {fmt(other, '.2f')} cores | fds {per_node(fds, 'd')} | {note}")


def snapshot(target):
    ms = [mem_of(p) for p in target.pids]
    return ([m[0] for m in ms], [m[1] for m in ms], [m[3] or 0 for m in ms], [m[2] for m in ms])


def scale_phase(target, args):
    n = args.topics * args.per_topic
    setup = target.name
    log(f"{setup}: starting")
    target.start()
    t = wait_ready(target, 120)
    rss, peak, fds, thr = snapshot(target)
    add_row(setup, "start, empty", t, rss, peak, fds=fds, threads=thr, note="spawn -> /ready")

    log(f"{setup}: creating {n} partitions ({args.topics} topics x {args.per_topic})")
    t0 = time.monotonic()
    req_s, errors = create_topics(target, args.topics, args.per_topic, args.batch,
                                  args.create_timeout)
    t_led, t_full, counts = wait_partitions(target, TOPIC_PREFIX, n, t0,
                                            max(30.0, args.create_timeout - req_s), target.rf > 1)
    du, files = disk_usage(target.data)
    note = f"CreateTopics requests {req_s:.1f}s; "
    if target.rf > 1:
        note += f"all ISRs full at {fmt(t_full, '.1f')}s; "
    if t_led is None:
        note += f"NOT all led: {counts[1]}/{n} led, {counts[0]} listed; "
    if errors:
        note += f"{len(errors)} errors (first: {errors[0][:120]}); "
    note += f"data dir {du / 1e6:.0f} MB, {files} files"
    time.sleep(args.settle)
    rss, peak, fds, thr = snapshot(target)
    add_row(setup, f"create {n} partitions", t_led, rss, peak, fds=fds, threads=thr, note=note)

    log(f"{setup}: idle {args.idle}s")
    cpu, other = idle_cpu(target, args.idle)
    rss, peak, fds, thr = snapshot(target)
    add_row(setup, f"idle {args.idle:g}s, {n} partitions", None, rss, peak, cpu, other, fds, thr,
            note=f"threads {per_node(thr, 'd')}")

    log(f"{setup}: stopping")
    t, rc = target.stop()
    killed = log_since(target).count("did not stop in time; killing it")
    add_row(setup, "stop (SIGTERM)" if target.rf == 1 else "stop (SIGINT to dev launcher)", t,
            note=f"exit {rc}" + (f"; the launcher SIGKILLed {killed} node(s) after its 60 s "
                                 f"grace" if killed else ""))

    log(f"{setup}: restarting on the same data dir")
    target.start()
    t_ready = wait_ready(target, args.create_timeout)
    t_led, t_full, counts = wait_partitions(target, TOPIC_PREFIX, n, target.t_spawn,
                                            args.create_timeout, target.rf > 1)
    rss, peak, fds, thr = snapshot(target)
    note = "; ".join([f"/ready at {t_ready:.2f}s"] + log_findings(target))
    if target.rf > 1:
        note += f"; all ISRs full at {fmt(t_full, '.1f')}s"
    if t_led is None:
        note += f"; NOT all led: {counts[1]}/{n}"
    add_row(setup, f"restart with {n} partitions", t_led, rss, peak, fds=fds, threads=thr,
            note=note + " (seconds: spawn -> all led)")
    time.sleep(args.settle)
    log(f"{setup}: idle {args.idle}s after restart")
    cpu, other = idle_cpu(target, args.idle)
    rss, peak, fds, thr = snapshot(target)
    add_row(setup, f"idle {args.idle:g}s after restart", None, rss, peak, cpu, other, fds, thr,
            note=f"threads {per_node(thr, 'd')}")


# ---------------------------------------------------------------------------------------------
# latency with many partitions


LAT_ROWS = []


def latency_case(target, args, tmp, load_mb, label):
    producers = args.producers
    total_rate = load_mb * MB / VALUE_SIZE
    per = total_rate / producers
    workers = []
    outs = []
    log(f"latency {label} @{load_mb:g} MB/s: {producers} producers x {per:.0f} msg/s "
        f"for {args.latency_seconds}s")
    for i in range(producers):
        out = tmp / f"lat-{label}-{load_mb:g}-{i}"
        outs.append(out)
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--bootstrap",
               target.bootstrap, "--topic", LAT_TOPIC, "--rate", str(per), "--seconds",
               str(args.latency_seconds), "--out", str(out), "--id", str(i)]
        workers.append(spawn(cmd, tmp / "workers.log", stdin=subprocess.PIPE))
    deadline = time.monotonic() + 90
    while not all(pathlib.Path(f"{o}.ready").exists() for o in outs):
        target.check_alive()
        dead = [w for w in workers if w.poll() is not None]
        if dead:
            raise RuntimeError(f"producer worker exited ({dead[0].returncode})\n"
                               f"{tail(tmp / 'workers.log')}")
        if time.monotonic() > deadline:
            raise RuntimeError("producer workers not ready in 90 s")
        time.sleep(0.1)
    start_at = time.time() + 0.5
    cpu_before = [cpu_ticks(p) for p in target.pids]
    cli_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    sys_before = system_busy_seconds()
    t0 = time.monotonic()
    for w in workers:
        w.stdin.write(f"{start_at!r}\n".encode())
        w.stdin.close()
    deadline = time.monotonic() + args.latency_seconds + 60
    for w in workers:
        try:
            w.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()
    wall = time.monotonic() - t0
    brk = sum((cpu_ticks(p) - b) for p, b in zip(target.pids, cpu_before)) / CLK_TCK
    cli_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cli = ((cli_after.ru_utime + cli_after.ru_stime) - (cli_before.ru_utime + cli_before.ru_stime))
    other = max(0.0, system_busy_seconds() - sys_before - brk - cli)
    lats = []
    sent = delivered = failed = 0
    max_lag = 0.0
    missing = 0
    for o in outs:
        try:
            summary = json.loads(pathlib.Path(f"{o}.json").read_text())
        except (OSError, ValueError):
            missing += 1
            continue
        sent += summary["sent"]
        delivered += summary["delivered"]
        failed += summary["failed"]
        max_lag = max(max_lag, summary["max_lag_s"])
        rel, lat = array.array("d"), array.array("d")
        with open(f"{o}.bin", "rb") as f:
            rel.fromfile(f, summary["samples"])
            lat.fromfile(f, summary["samples"])
        lats.extend(l for r, l in zip(rel, lat) if r >= WARMUP_S)
    lats.sort()
    pct = tuple(None if not lats else percentile(lats, p) * 1000.0
                for p in (0.5, 0.99, 0.999, 1.0))
    achieved = delivered * VALUE_SIZE / MB / args.latency_seconds
    note = []
    if failed:
        note.append(f"{failed} failed")
    if missing:
        note.append(f"{missing} workers without results")
    if max_lag > 0.05:
        note.append(f"a producer fell {max_lag * 1000:.0f} ms behind its schedule")
    r = {"case": label, "load": load_mb, "achieved": achieved, "sent": sent,
         "delivered": delivered, "samples": len(lats), "lat": pct, "broker_cores": brk / wall,
         "client_cores": cli / wall, "other_cores": other / wall, "note": "; ".join(note)}
    LAT_ROWS.append(r)
    log(f"LAT {label} @{load_mb:g} MB/s: achieved {achieved:.1f} MB/s, p50/p99/p99.9/max "
        f"{'/'.join(fmt(v, '.2f') for v in pct)} ms, broker {r['broker_cores']:.2f} cores, "
        f"clients {r['client_cores']:.2f}, other {r['other_cores']:.2f}; {r['note']}")
    for o in outs:
        for suffix in (".json", ".bin", ".ready"):
            pathlib.Path(f"{o}{suffix}").unlink(missing_ok=True)


def latency_phase(target, args, tmp):
    from confluent_kafka.admin import NewTopic
    admin = admin_for(target.bootstrap)
    log(f"latency: creating {LAT_TOPIC} ({args.latency_partitions} partitions, RF=3, minISR=2)")
    t0 = time.monotonic()
    admin.create_topics([NewTopic(LAT_TOPIC, num_partitions=args.latency_partitions,
                                  replication_factor=3,
                                  config={"min.insync.replicas": "2"})],
                        request_timeout=120)[LAT_TOPIC].result(timeout=180)
    del admin
    t_led, t_full, counts = wait_partitions(target, LAT_TOPIC, args.latency_partitions, t0, 180,
                                            True)
    log(f"latency topic: all led at {fmt(t_led, '.1f')}s, ISRs full at {fmt(t_full, '.1f')}s")
    n = args.topics * args.per_topic
    if args.keep_scale_topics_for_latency:
        for load in args.loads:
            latency_case(target, args, tmp, load, f"{args.latency_partitions} partitions + "
                                                  f"{n} idle")
        log(f"deleting the {n} scale partitions")
        t, errors = delete_topics(target, args.create_timeout)
        add_row(target.name, f"delete {n} partitions", t,
                note=f"until Metadata lists none; {len(errors)} errors"
                     + (f" (first: {errors[0][:100]})" if errors else ""))
        time.sleep(args.settle)
    for load in args.loads:
        latency_case(target, args, tmp, load, f"{args.latency_partitions} partitions")


# ---------------------------------------------------------------------------------------------
# producer worker (a separate process; --worker)


def worker(args):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from confluent_kafka import KafkaException, Producer
    rel, lat = array.array("d"), array.array("d")
    stats = {"failed": 0, "start": 0.0}
    mono = time.monotonic

    def on_delivery(err, msg):
        # msg.latency(): librdkafka's produce() -> now (this callback), in seconds.
        if err is not None:
            stats["failed"] += 1
            return
        latency = msg.latency()
        lat.append(latency)
        rel.append(mono() - latency - stats["start"])

    p = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True,
                  "acks": "all", "linger.ms": 0, "compression.type": "none",
                  "client.id": f"scale-producer-{args.id}", "on_delivery": on_delivery})
    p.list_topics(args.topic, timeout=30)
    pathlib.Path(f"{args.out}.ready").touch()
    line = sys.stdin.readline()
    if not line.strip():
        return 1
    mono_start = mono() + (float(line) - time.time())
    stats["start"] = mono_start
    value = os.urandom(VALUE_SIZE)
    interval = 1.0 / args.rate
    end = mono_start + args.seconds
    next_t = mono_start
    sent = 0
    max_lag = 0.0
    while True:
        now = mono()
        if now >= end:
            break
        if now < next_t:
            p.poll(next_t - now)  # serves delivery callbacks while waiting for the next send
            continue
        lag = now - next_t
        if lag > max_lag:
            max_lag = lag
        if lag > 1.0:
            next_t = now  # more than a second behind: restart the schedule (reported as lag)
        try:
            p.produce(args.topic, value, f"{args.id}-{sent}".encode())
        except (BufferError, KafkaException):
            p.poll(0.01)
            continue
        sent += 1
        next_t += interval
        p.poll(0)
    left = p.flush(30)
    with open(f"{args.out}.bin", "wb") as f:
        rel.tofile(f)
        lat.tofile(f)
    pathlib.Path(f"{args.out}.json").write_text(json.dumps({
        "sent": sent, "delivered": len(lat), "failed": stats["failed"] + left,
        "samples": len(lat), "max_lag_s": max_lag}))
    return 0


# ---------------------------------------------------------------------------------------------
# output


def print_tables(fh=sys.stdout):
    print("\nscale (seconds: start/restart = spawn -> all partitions led, create = first "
          "CreateTopics -> all led; RSS/peak MiB and idle CPU % of one core summed over nodes, "
          "per node in brackets)", file=fh)
    for line in markdown_scale():
        print(line, file=fh)
    if LAT_ROWS:
        print("\nlatency (produce() -> delivery callback, 1 KiB, RF=3 minISR=2, acks=all, "
              "idempotent, linger.ms=0, 16 producers; first second dropped)", file=fh)
        for line in markdown_latency():
            print(line, file=fh)


def markdown_scale():
    lines = ["| setup | step | seconds | RSS MiB | peak RSS MiB | idle CPU % of a core | "
             "other cores | open fds | note |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in ROWS:
        cpu = None if r["cpu"] is None else [c * 100 for c in r["cpu"]]
        lines.append(f"| {r['setup']} | {r['step']} | {fmt(r['seconds'], '.2f')} | "
                     f"{per_node(r['rss'], '.0f')} | {per_node(r['peak'], '.0f')} | "
                     f"{per_node(cpu, '.1f')} | {fmt(r['other'], '.2f')} | "
                     f"{per_node(r['fds'], 'd')} | {r['note']} |")
    return lines


def markdown_latency():
    lines = ["| case | offered MB/s | achieved MB/s | samples | p50 ms | p99 ms | p99.9 ms | "
             "max ms | goal | broker cores | client cores | other cores | note |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"]
    for r in LAT_ROWS:
        p = r["lat"]
        goal = "-" if p[1] is None else (
            "met" if p[1] <= GOAL_P99_MS and p[3] <= GOAL_MAX_MS else
            f"missed ({'p99' if p[1] > GOAL_P99_MS else ''}"
            f"{' and ' if p[1] > GOAL_P99_MS and p[3] > GOAL_MAX_MS else ''}"
            f"{'max' if p[3] > GOAL_MAX_MS else ''})")
        lines.append(f"| {r['case']} | {r['load']:g} | {r['achieved']:.1f} | {r['samples']:,} | "
                     f"{fmt(p[0], '.2f')} | {fmt(p[1], '.2f')} | {fmt(p[2], '.2f')} | "
                     f"{fmt(p[3], '.2f')} | {goal} | {r['broker_cores']:.2f} | "
                     f"{r['client_cores']:.2f} | {r['other_cores']:.2f} | {r['note']} |")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", default=str(REPO / "target/release/strait-broker"),
                    help="strait-broker binary [target/release/strait-broker]")
    ap.add_argument("--quick", action="store_true",
                    help="1,000 partitions, 10 s idle, 200-partition latency topic, 5 s per load")
    ap.add_argument("--no-single", action="store_true", help="skip the 1-node phase")
    ap.add_argument("--no-cluster", action="store_true", help="skip the 3-node phases")
    ap.add_argument("--no-latency", action="store_true", help="skip the latency phase")
    ap.add_argument("--latency-only", action="store_true",
                    help="only the latency phase, on a new 3-node cluster without the scale topics")
    ap.add_argument("--loads", default="5,20", help="offered MB/s of the latency cases [5,20]")
    ap.add_argument("--producers", type=int, default=16, help="producer processes [16]")
    ap.add_argument("--markdown", metavar="FILE", help="also write the tables as Markdown")
    ap.add_argument("--keep-data", action="store_true", help="keep the temp dir (logs, data)")
    # worker mode (internal)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--bootstrap", help=argparse.SUPPRESS)
    ap.add_argument("--topic", help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--id", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    args.loads = [float(x) for x in args.loads.split(",") if x.strip()]
    args.batch = 10
    args.per_topic = 100
    args.keep_scale_topics_for_latency = True
    if args.quick:
        args.topics, args.idle, args.settle = 10, 10.0, 2.0
        args.latency_partitions, args.latency_seconds, args.create_timeout = 200, 5.0, 300.0
    else:
        args.topics, args.idle, args.settle = 100, 30.0, 5.0
        args.latency_partitions, args.latency_seconds, args.create_timeout = 1000, 20.0, 900.0
    if not (os.path.isfile(args.broker) and os.access(args.broker, os.X_OK)):
        sys.exit(f"scale.py: not an executable: {args.broker}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for line in machine():
        print(line)
    print(f"broker: {args.broker} (built "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(os.path.getmtime(args.broker)))})")
    print(f"open files limit (inherited by the brokers): "
          f"{resource.getrlimit(resource.RLIMIT_NOFILE)}")
    print(f"mode: {'quick' if args.quick else 'full'}: {args.topics * args.per_topic} partitions "
          f"({args.topics} topics x {args.per_topic}, {args.batch} topics per CreateTopics), "
          f"idle windows {args.idle:g}s after a {args.settle:g}s settle; latency topic "
          f"{args.latency_partitions} partitions, {args.producers} producers, loads "
          f"{', '.join(f'{x:g}' for x in args.loads)} MB/s, {args.latency_seconds:g}s each",
          flush=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="strait-scale-"))
    print(f"temp dir: {tmp}")
    t_run = time.monotonic()
    status = 0
    try:
        if not args.no_single and not args.latency_only:
            target = Single(args.broker, tmp)
            try:
                scale_phase(target, args)
            finally:
                if target.proc is not None and target.proc.poll() is None:
                    target.stop()
                if not args.keep_data:
                    shutil.rmtree(target.data, ignore_errors=True)
        if not args.no_cluster:
            target = Cluster(args.broker, tmp)
            try:
                if args.latency_only:
                    args.keep_scale_topics_for_latency = False
                    target.start()
                    add_row(target.name, "start, empty", wait_ready(target, 120))
                else:
                    scale_phase(target, args)
                if not args.no_latency:
                    latency_phase(target, args, tmp)
            finally:
                if target.proc is not None and target.proc.poll() is None:
                    target.stop()
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
        cleanup()
        if not args.keep_data:
            shutil.rmtree(tmp, ignore_errors=True)
    print_tables()
    print(f"\nrun took {time.monotonic() - t_run:.0f}s; load average after the run: "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    if args.markdown:
        pathlib.Path(args.markdown).write_text("\n".join(markdown_scale()) + "\n\n"
                                               + "\n".join(markdown_latency()) + "\n")
        print(f"Markdown tables written to {args.markdown}")
    return status


if __name__ == "__main__":
    sys.exit(main())
