#!/usr/bin/env python3
"""Transactions benchmark: what Kafka transactions cost on Strait, through confluent-kafka.

  python3 e2e/bench/transactions.py [--quick] [--broker PATH] [--markdown FILE]

One single-node `strait-broker` (the existing target/release binary, never rebuilt) on free
127.0.0.1 ports with a temporary log dir and no transaction overrides (a node without
process.roles gives __transaction_state RF=1 and min ISR 1):

1. Produce throughput, N x 1 KiB values (default 500,000; --quick 100,000) on a new 3-partition
   topic per case (round-robin over the partitions; acks=all, linger.ms=5, no compression):
     idempotent:    enable.idempotence=true, produce N, flush;
     transactional: the same plus transactional.id: begin_transaction, produce for --txn-ms
                    (100 ms), flush, commit_transaction; repeated until N are sent.
   The two run back to back, alternating which goes first, --repeat rounds (5; --quick 1); the
   median-MB/s run of each is reported, and transactional/idempotent as the median (range) of
   the per-round ratios. Timed from the first produce() to the end of the last flush/commit.
   The idempotent producer gets its producer id (one record, flushed) before the clock starts,
   as the transactional one does in init_transactions. The transactional loop flushes before it
   commits (commit_transaction would flush first anyway), so "commit" is the EndTxn round trip
   alone and "flush+commit" what an application calling commit_transaction waits for.
2. Consume-transform-produce: an input topic (3 partitions) pre-filled with N 1 KiB records
   (an 8-byte sequence number + 1016 bytes), one process reading it with a read_committed group
   consumer and writing each record unchanged to the same partition of an output topic, in
   transactions of --txn-ms: begin at the first record, after the window flush,
   send_offsets_to_transaction(positions), commit. Records/s are timed from the first record
   consumed (the group joined) to the commit holding the last one. Afterwards the group's
   committed offsets must equal the input's ends, and a read_committed reader of the output
   must see exactly N records, every sequence number once; otherwise the run fails (exit 1).
   --repeat runs (new topics, group and transactional id each), the median-records/s one shown.

Broker CPU is its utime+stime over each timed part (security.py's Meter); client CPU this process
with its librdkafka threads; "other" the rest of the machine's busy time. Every loop is bounded
in count and time; the benchmark topics are deleted at the end (their directories checked gone),
the broker is stopped by PID (also on an error, Ctrl-C or SIGTERM) and the temp dir removed."""

import argparse
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from c_client import (QUIET, REPO, Stop, free_port, http_ok, machine, on_signal,  # noqa: E402
                      percentile, terminate)
import security  # noqa: E402
from security import Meter, du, fmt, log, median, tail  # noqa: E402

from confluent_kafka import (Consumer, KafkaError, KafkaException, Producer,  # noqa: E402
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

PREFIX = "txn-bench-"
PARTITIONS = 3
SIZE = 1024
PRODUCER_CONF = {"acks": "all", "enable.idempotence": True, "linger.ms": "5",
                 "compression.type": "none", "queue.buffering.max.messages": "100000",
                 "delivery.report.only.error": True}
# As in security.py: librdkafka's default 1 s fetch pause once 100,000 records are queued would
# otherwise be what is measured.
CONSUMER_CONF = {"fetch.queue.backoff.ms": 10}
CALL_TIMEOUT = 30  # seconds per transactional API call

PROCS = []  # Popen objects this run started


class Broker(security.Broker):
    """One PLAINTEXT node. cpu_seconds, check_alive, delete_topic and stop are security.py's."""

    def __init__(self, binary, tmp: pathlib.Path):  # noqa: super().__init__ sets up SSL/SASL
        self.name = "strait"
        self.port, self.metrics = free_port(), free_port()
        self.dir = tmp
        self.data = tmp / "data"
        self.logfile = tmp / "broker.log"
        overrides = [f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
                     f"log.dirs={self.data}",
                     f"metrics.listener=127.0.0.1:{self.metrics}",
                     "auto.create.topics.enable=false",
                     "group.initial.rebalance.delay.ms=0"]
        cmd = [binary]
        for o in overrides:
            cmd += ["--override", o]
        with open(self.logfile, "wb") as f:
            self.proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env={**os.environ, "NO_COLOR": "1"})
        PROCS.append(self.proc)
        self.admin = None

    def client_conf(self, *_):
        return {"bootstrap.servers": f"127.0.0.1:{self.port}"}

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while not http_ok(f"http://127.0.0.1:{self.metrics}/ready"):
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"broker not ready in {timeout}s\n{tail(self.logfile)}")
            time.sleep(0.1)
        self.admin = AdminClient({**self.client_conf(), "socket.timeout.ms": 10000},
                                 logger=QUIET)
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if self.admin.list_topics(timeout=2).brokers:
                    return
            except KafkaException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"no metadata in {timeout}s\n{tail(self.logfile)}")

    def create_topic(self, topic, partitions=PARTITIONS):
        self.admin.create_topics([NewTopic(topic, partitions, 1)],
                                 request_timeout=30)[topic].result(timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            t = self.admin.list_topics(topic=topic, timeout=5).topics.get(topic)
            if t is not None and t.error is None and len(t.partitions) == partitions \
                    and all(p.leader >= 0 for p in t.partitions.values()):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{topic} has no leaders after 60 s")

    def bench_topics(self):
        return [t for t in self.admin.list_topics(timeout=10).topics if t.startswith(PREFIX)]


def txn_call(what, fn, deadline):
    """A transactional API call, retried while it fails with a retriable error (until deadline).
    An abortable error aborts the transaction and fails the case, as does a fatal one."""
    while True:
        try:
            return fn()
        except KafkaException as e:
            err = e.args[0]
            if err.retriable() and not err.fatal() and time.monotonic() < deadline:
                log(f"{what}: retrying after {err}")
                continue
            raise RuntimeError(f"{what} failed: {err}") from e


def abort_quietly(p):
    try:
        p.abort_transaction(CALL_TIMEOUT)
    except KafkaException:
        pass


def stats_ms(vals):
    vals = sorted(vals)
    if not vals:
        return None, None
    return sum(vals) / len(vals) * 1000, percentile(vals, 0.99) * 1000


# ---------------------------------------------------------------------------------------------
# 1. produce: idempotent vs transactional


def produce_case(broker, topic, count, args, tid=None):
    """Produces `count` x 1 KiB round-robin over the topic's partitions, idempotent only or (with
    tid) in transactions of args.txn_ms. Returns a dict of what was measured."""
    errors = []

    def on_error(err, _msg):
        errors.append(str(err))

    conf = {**broker.client_conf(), **PRODUCER_CONF, "on_delivery": on_error}
    if tid:
        conf["transactional.id"] = tid
    p = Producer(conf, logger=QUIET)
    p.list_topics(topic, timeout=30)  # connection and metadata before the clock starts
    if tid:
        txn_call("init_transactions", lambda: p.init_transactions(CALL_TIMEOUT),
                 time.monotonic() + 90)
    else:
        # Its producer id, before the clock starts as init_transactions does for the other: a
        # new librdkafka producer finds no broker up yet and retries InitProducerId 500 ms
        # later, which would otherwise be half of a 500 MB case.
        p.produce(topic, b"pid", partition=0)
        if p.flush(30) or errors:
            raise RuntimeError(f"idempotent producer: no producer id in 30 s {errors[:1]}")
    payload = os.urandom(SIZE)
    window = args.txn_ms / 1000.0
    flushes, commits, per_txn = [], [], []
    sent = 0
    prod = p.produce
    mono = time.monotonic
    meter = Meter([broker]).__enter__()  # the timed part only, not the set-up
    start = mono()
    deadline = start + args.case_timeout
    try:
        while sent < count and mono() < deadline and len(commits) < args.max_txns:
            if tid:
                p.begin_transaction()
                window_end = min(mono() + window, deadline)
            else:
                window_end = deadline
            first = sent
            while sent < count:
                try:
                    prod(topic, payload, partition=sent % PARTITIONS)
                    sent += 1
                except BufferError:
                    p.poll(0.005)
                    if mono() >= window_end:
                        break
                    continue
                if not sent & 255:
                    p.poll(0)
                    if mono() >= window_end:
                        break
            if tid:
                t0 = mono()
                left = p.flush(max(1.0, deadline + 60 - t0))
                if left:
                    abort_quietly(p)
                    raise RuntimeError(f"{left} records not delivered at commit: "
                                       f"{errors[:1]}")
                t1 = mono()
                txn_call("commit_transaction", lambda: p.commit_transaction(CALL_TIMEOUT),
                         t1 + 90)
                t2 = mono()
                flushes.append(t2 - t0)
                commits.append(t2 - t1)
                per_txn.append(sent - first)
        left = 0 if tid else p.flush(max(10.0, deadline + 60 - mono()))
        elapsed = mono() - start
        meter.__exit__(None, None, None)
    finally:
        del p
    failed = len(errors) + left
    note = []
    if sent < count:
        note.append(f"stopped after {sent:,} sent ({args.case_timeout:g} s or "
                    f"{args.max_txns} transactions)")
    if failed:
        note.append(f"{failed} not delivered: {errors[:1]}")
    return {"sent": sent, "delivered": sent - failed, "seconds": elapsed, "commits": commits,
            "flushes": flushes, "per_txn": per_txn, "note": "; ".join(note), "meter": meter}


def produce_row(kind, res, broker):
    meter = res["meter"]
    n, secs = res["delivered"], res["seconds"]
    nbytes = n * SIZE
    bcpu = meter.broker[broker.name]
    commit_mean, commit_p99 = stats_ms(res["commits"])
    fc_mean, fc_p99 = stats_ms(res["flushes"])
    return {"case": kind, "n": n, "seconds": secs,
            "mbps": nbytes / secs / 1e6 if secs else None,
            "msgs": n / secs if secs else None,
            "txns": len(res["commits"]),
            "commits_s": len(res["commits"]) / secs if res["commits"] and secs else None,
            "per_txn": (sum(res["per_txn"]) / len(res["per_txn"])) if res["per_txn"] else None,
            "commit_mean": commit_mean, "commit_p99": commit_p99,
            "fc_mean": fc_mean, "fc_p99": fc_p99,
            "commit_list": res["commits"], "fc_list": res["flushes"],
            "s_per_gb": bcpu / (nbytes / 1e9) if nbytes else None,
            "broker_cores": bcpu / meter.wall, "client_cores": meter.client / meter.wall,
            "other_cores": meter.other / meter.wall, "note": res["note"]}


def run_produce(broker, kind, args, seq, count=None):
    topic = f"{PREFIX}produce-{kind}-{seq}"
    broker.create_topic(topic)
    try:
        tid = f"{PREFIX}producer-{seq}" if kind == "transactional" else None
        res = produce_case(broker, topic, count or args.count, args, tid)
        row = produce_row(kind, res, broker)
    finally:
        broker.check_alive()
        broker.delete_topic(topic)
    extra = (f", {row['txns']} commits ({fmt(row['commits_s'], '.1f')}/s, "
             f"{fmt(row['per_txn'], ',.0f')} records each), commit mean/p99 "
             f"{fmt(row['commit_mean'], '.2f')}/{fmt(row['commit_p99'], '.2f')} ms, flush+commit "
             f"{fmt(row['fc_mean'], '.1f')}/{fmt(row['fc_p99'], '.1f')} ms"
             if kind == "transactional" else "")
    log(f"{kind:<13} {fmt(row['mbps'], '6.1f')} MB/s {fmt(row['msgs'], '8,.0f')} msgs/s, broker "
        f"{fmt(row['s_per_gb'], '.2f')} s/GB{extra} {row['note']}")
    if row["note"]:
        raise RuntimeError(f"{kind} produce: {row['note']}")
    return row


RATIOS = []  # transactional / idempotent MB/s, one per round


def produce_phase(broker, args, seq):
    runs = {"idempotent": [], "transactional": []}
    for rnd in range(args.repeat):
        log(f"produce round {rnd + 1} of {args.repeat}")
        order = ["idempotent", "transactional"]
        if rnd % 2:
            order.reverse()
        got = {}
        for kind in order:
            seq += 1
            got[kind] = run_produce(broker, kind, args, seq)
            runs[kind].append(got[kind])
        a, b = got["idempotent"]["mbps"], got["transactional"]["mbps"]
        RATIOS.append(b / a if a and b else None)
    rows = []
    for kind, rs in runs.items():
        rs = sorted(rs, key=lambda r: r["mbps"] or 0.0)
        r = dict(rs[(len(rs) - 1) // 2])
        # Latencies pooled over the runs (a run has only ~10 commits), CPU the median.
        r["commit_mean"], r["commit_p99"] = stats_ms([x for y in rs for x in y["commit_list"]])
        r["fc_mean"], r["fc_p99"] = stats_ms([x for y in rs for x in y["fc_list"]])
        r["commit_n"] = sum(len(y["commit_list"]) for y in rs)
        r["s_per_gb"] = median(x["s_per_gb"] for x in rs)
        notes = [f"{len(rs)} runs: {fmt(rs[0]['mbps'], '.0f')}-{fmt(rs[-1]['mbps'], '.0f')} MB/s"
                 if len(rs) > 1 else "",
                 f"latencies of {r['commit_n']} commits" if r["commit_n"] else "", r["note"]]
        r["note"] = "; ".join(n for n in notes if n)
        rows.append(r)
    return rows, seq


# ---------------------------------------------------------------------------------------------
# 2. consume-transform-produce


def prefill(broker, topic, count, deadline):
    """count records, value = 8-byte big-endian sequence number + 1016 fixed bytes."""
    errors = []
    p = Producer({**broker.client_conf(), **PRODUCER_CONF,
                  "on_delivery": lambda err, _m: errors.append(str(err))}, logger=QUIET)
    pad = os.urandom(SIZE - 8)
    sent = 0
    while sent < count:
        try:
            p.produce(topic, sent.to_bytes(8, "big") + pad, partition=sent % PARTITIONS)
            sent += 1
        except BufferError:
            p.poll(0.005)
        if not sent & 1023:
            p.poll(0)
            if time.monotonic() > deadline:
                break
    left = p.flush(max(10.0, deadline + 60 - time.monotonic()))
    del p
    if sent < count or left or errors:
        raise RuntimeError(f"pre-fill: {sent} of {count} sent, {left} left in the queue, "
                           f"{len(errors)} errors {errors[:1]}")


def read_ends(consumer, topic):
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=CALL_TIMEOUT,
                                              cached=False)[1] for p in range(PARTITIONS)}


def transform(broker, args, in_topic, out_topic, group, tid):
    """The pipeline; returns (records, seconds from the first record, seconds from subscribe,
    commit latencies, send_offsets latencies, records per transaction, group committed, CPU
    Meter from the first record)."""
    errors = []
    c = Consumer({**broker.client_conf(), "group.id": group,
                  "isolation.level": "read_committed", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", **CONSUMER_CONF}, logger=QUIET)
    p = Producer({**broker.client_conf(), **PRODUCER_CONF, "transactional.id": tid,
                  "on_delivery": lambda err, _m: errors.append(str(err))}, logger=QUIET)
    state = {"in_txn": False}

    def on_revoke(_c, parts):
        if state["in_txn"] and parts:
            raise RuntimeError(f"partitions revoked mid-transaction: {parts}")

    try:
        txn_call("init_transactions", lambda: p.init_transactions(CALL_TIMEOUT),
                 time.monotonic() + 90)
        c.subscribe([in_topic], on_revoke=on_revoke, on_lost=on_revoke)
        window = args.txn_ms / 1000.0
        commits, offsets_lat, per_txn = [], [], []
        n = args.count
        processed = in_txn_count = 0
        mono = time.monotonic
        t_sub = mono()
        deadline = t_sub + args.case_timeout
        t_first = None
        window_end = 0.0
        prod = p.produce
        while processed < n and mono() < deadline and len(commits) < args.max_txns:
            wait = max(0.0, min(0.1, window_end - mono())) if state["in_txn"] else 0.1
            for m in c.consume(1000, wait):
                err = m.error()
                if err is not None:
                    raise RuntimeError(f"consumer: {err}")
                if not state["in_txn"]:
                    p.begin_transaction()
                    state["in_txn"] = True
                    window_end = mono() + window
                    if t_first is None:
                        meter = Meter([broker]).__enter__()  # from the first record on
                        t_first = mono()
                while True:
                    try:
                        prod(out_topic, m.value(), partition=m.partition())
                        break
                    except BufferError:
                        p.poll(0.005)
                        if mono() > deadline:
                            raise RuntimeError("producer queue full until the deadline")
                processed += 1
                in_txn_count += 1
                if not processed & 255:
                    p.poll(0)
            if state["in_txn"] and (mono() >= window_end or processed >= n):
                left = p.flush(max(1.0, deadline + 60 - mono()))
                if left or errors:
                    abort_quietly(p)
                    raise RuntimeError(f"{left} records not delivered, {len(errors)} errors "
                                       f"{errors[:1]}")
                t0 = mono()
                positions = c.position(c.assignment())
                txn_call("send_offsets_to_transaction",
                         lambda: p.send_offsets_to_transaction(
                             positions, c.consumer_group_metadata(), CALL_TIMEOUT), t0 + 90)
                t1 = mono()
                txn_call("commit_transaction", lambda: p.commit_transaction(CALL_TIMEOUT),
                         t1 + 90)
                t2 = mono()
                offsets_lat.append(t1 - t0)
                commits.append(t2 - t1)
                per_txn.append(in_txn_count)
                in_txn_count = 0
                state["in_txn"] = False
        t_end = mono()
        if t_first is not None:
            meter.__exit__(None, None, None)
        if state["in_txn"]:
            abort_quietly(p)
            state["in_txn"] = False
        committed = {tp.partition: tp.offset for tp in
                     c.committed([TopicPartition(in_topic, q) for q in range(PARTITIONS)],
                                 timeout=CALL_TIMEOUT)}
    finally:
        c.close()
        del p
    if processed < n:
        raise RuntimeError(f"pipeline: {processed:,} of {n:,} records in "
                           f"{t_end - t_sub:.0f} s ({len(commits)} transactions)")
    return (processed, t_end - t_first, t_end - t_sub, commits, offsets_lat, per_txn,
            committed, meter)


def verify_output(broker, topic, n, timeout):
    """A read_committed reader of the whole output: (records, problems)."""
    c = Consumer({**broker.client_conf(), "group.id": f"{PREFIX}verify-{time.time_ns()}",
                  "isolation.level": "read_committed", "enable.auto.commit": False,
                  "enable.partition.eof": True, "auto.offset.reset": "earliest",
                  **CONSUMER_CONF}, logger=QUIET)
    problems = []
    seen = bytearray(n)
    got = dup = bad = 0
    try:
        ends = read_ends(c, topic)
        c.assign([TopicPartition(topic, q, 0) for q in range(PARTITIONS)])
        eof = {q: -1 for q in range(PARTITIONS)}
        deadline = time.monotonic() + timeout
        while (any(eof[q] < ends[q] for q in eof) and time.monotonic() < deadline
               and got < 2 * n + 10):
            for m in c.consume(10000, 0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        eof[m.partition()] = m.offset()
                        continue
                    problems.append(f"reader error: {err}")
                    deadline = 0
                    break
                got += 1
                v = m.value()
                i = int.from_bytes(v[:8], "big") if v and len(v) == SIZE else n
                if i >= n:
                    bad += 1
                elif seen[i]:
                    dup += 1
                else:
                    seen[i] = 1
        if any(eof[q] < ends[q] for q in eof):
            problems.append(f"reader did not reach the ends {ends} (at {eof}) in {timeout:g} s")
    finally:
        c.close()
    missing = n - sum(seen)
    if got != n:
        problems.append(f"{got:,} records instead of {n:,}")
    if dup or missing or bad:
        problems.append(f"{dup} duplicates, {missing} missing, {bad} malformed")
    return got, problems


PIPE_ROWS = []


def pipeline_case(broker, args, seq, round_label):
    in_topic, out_topic = f"{PREFIX}pipe-in-{seq}", f"{PREFIX}pipe-out-{seq}"
    n = args.count
    for t in (in_topic, out_topic):
        broker.create_topic(t)
    try:
        t0 = time.monotonic()
        prefill(broker, in_topic, n, t0 + args.case_timeout)
        log(f"pipeline {round_label}: pre-filled {in_topic} with {n:,} x {SIZE} B in "
            f"{time.monotonic() - t0:.1f} s")
        (got, secs, secs_join, commits, offsets_lat, per_txn, committed,
         m) = transform(broker, args, in_topic, out_topic, f"{PREFIX}pipe-group-{seq}",
                        f"{PREFIX}pipe-{seq}")
        broker.check_alive()
        # Group offsets: the input's ends (every record is in a committed transaction).
        c = Consumer({**broker.client_conf(), "group.id": f"{PREFIX}ends-{seq}"}, logger=QUIET)
        try:
            in_ends = read_ends(c, in_topic)
        finally:
            c.close()
        problems = []
        if committed != in_ends:
            problems.append(f"group committed {committed}, input ends {in_ends}")
        out_n, more = verify_output(broker, out_topic, n, args.case_timeout)
        problems += more
        bcpu = m.broker[broker.name]
        cm, cp = stats_ms(commits)
        om, op = stats_ms(offsets_lat)
        row = {"n": got, "seconds": secs, "seconds_join": secs_join,
               "rate": got / secs if secs else None,
               "mbps": got * SIZE / secs / 1e6 if secs else None,
               "txns": len(commits), "commits_s": len(commits) / secs if secs else None,
               "per_txn": sum(per_txn) / len(per_txn) if per_txn else None,
               "commit_mean": cm, "commit_p99": cp, "offsets_mean": om, "offsets_p99": op,
               "commit_list": commits, "offsets_list": offsets_lat,
               "verified": ("exactly-once: " + f"{out_n:,} records, each once, group offsets at "
                            "the input's ends") if not problems else
                           "FAILED: " + "; ".join(problems),
               # bytes in and out: the broker serves the fetch and the produce of each record
               "s_per_gb": bcpu / (2 * got * SIZE / 1e9) if got else None,
               "broker_cores": bcpu / m.wall, "client_cores": m.client / m.wall,
               "other_cores": m.other / m.wall}
        PIPE_ROWS.append(row)
        log(f"pipeline {round_label}: {got:,} records in {secs:.2f} s "
            f"({fmt(row['rate'], ',.0f')} records/s, {secs_join:.2f} s with the group join), "
            f"{len(commits)} transactions, commit mean/p99 {fmt(cm, '.2f')}/{fmt(cp, '.2f')} "
            f"ms; {row['verified']}")
        if problems:
            raise RuntimeError("pipeline output verification FAILED: " + "; ".join(problems))
    finally:
        broker.check_alive()
        for t in (in_topic, out_topic):
            broker.delete_topic(t)


def pipeline_phase(broker, args, seq):
    for rnd in range(args.repeat):
        seq += 1
        pipeline_case(broker, args, seq, f"{rnd + 1}/{args.repeat}")
    return seq


def pipeline_median():
    """The median-records/s run, the range of the runs in its note; latencies pooled over the
    runs, broker CPU s/GB their median."""
    rs = sorted(PIPE_ROWS, key=lambda r: r["rate"] or 0.0)
    r = dict(rs[(len(rs) - 1) // 2])
    r["commit_mean"], r["commit_p99"] = stats_ms([x for y in rs for x in y["commit_list"]])
    r["offsets_mean"], r["offsets_p99"] = stats_ms([x for y in rs for x in y["offsets_list"]])
    r["commit_n"] = sum(len(y["commit_list"]) for y in rs)
    r["s_per_gb"] = median(x["s_per_gb"] for x in rs)
    r["note"] = (f"{len(rs)} runs: {fmt(rs[0]['rate'], ',.0f')}-{fmt(rs[-1]['rate'], ',.0f')} "
                 "records/s; " if len(rs) > 1 else "") + f"latencies of {r['commit_n']} commits"
    return r


# ---------------------------------------------------------------------------------------------
# report


def table_produce(rows):
    lines = ["| producer | records | MB/s | msgs/s | txn/idempotent MB/s | commits/s | "
             "records/txn | commit ms mean | commit ms p99 | flush+commit ms mean / p99 | "
             "broker CPU s/GB | broker cores | client cores | other cores | note |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    ratios = sorted(r for r in RATIOS if r is not None)
    for r in rows:
        ratio = ""
        if r["case"] == "transactional" and ratios:
            ratio = f"{median(ratios):.3f}" + (f" ({ratios[0]:.2f}-{ratios[-1]:.2f})"
                                               if len(ratios) > 1 else "")
        txn = r["case"] == "transactional"
        lines.append(
            f"| {r['case']} | {r['n']:,} | {fmt(r['mbps'], '.1f')} | {fmt(r['msgs'], ',.0f')} | "
            f"{ratio} | {fmt(r['commits_s'], '.1f') if txn else ''} | "
            f"{fmt(r['per_txn'], ',.0f') if txn else ''} | "
            f"{fmt(r['commit_mean'], '.2f') if txn else ''} | "
            f"{fmt(r['commit_p99'], '.2f') if txn else ''} | "
            f"{(fmt(r['fc_mean'], '.1f') + ' / ' + fmt(r['fc_p99'], '.1f')) if txn else ''} | "
            f"{fmt(r['s_per_gb'], '.2f')} | {r['broker_cores']:.2f} | {r['client_cores']:.2f} | "
            f"{r['other_cores']:.2f} | {r['note']} |")
    return lines


def table_pipeline():
    lines = ["| records | seconds | records/s | MB/s in | with group join s | transactions | "
             "commits/s | records/txn | send_offsets ms mean / p99 | commit ms mean / p99 | "
             "broker CPU s/GB (in+out) | broker cores | client cores | other cores | output | "
             "note |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in [pipeline_median()]:
        lines.append(
            f"| {r['n']:,} | {r['seconds']:.2f} | {fmt(r['rate'], ',.0f')} | "
            f"{fmt(r['mbps'], '.1f')} | {r['seconds_join']:.2f} | {r['txns']} | "
            f"{fmt(r['commits_s'], '.1f')} | {fmt(r['per_txn'], ',.0f')} | "
            f"{fmt(r['offsets_mean'], '.2f')} / {fmt(r['offsets_p99'], '.2f')} | "
            f"{fmt(r['commit_mean'], '.2f')} / {fmt(r['commit_p99'], '.2f')} | "
            f"{fmt(r['s_per_gb'], '.2f')} | {r['broker_cores']:.2f} | {r['client_cores']:.2f} | "
            f"{r['other_cores']:.2f} | {r['verified']} | {r['note']} |")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", default=str(REPO / "target/release/strait-broker"),
                    help="strait-broker binary [target/release/strait-broker]; never built here")
    ap.add_argument("--quick", action="store_true", help="100,000 records, one round")
    ap.add_argument("--count", type=int, help="records per case [500,000; --quick 100,000]")
    ap.add_argument("--repeat", type=int, help="rounds of each case, the median reported "
                                               "[5; --quick 1]")
    ap.add_argument("--txn-ms", type=float, default=100.0,
                    help="produce (or consume) for this long per transaction [100]")
    ap.add_argument("--no-produce", action="store_true", help="skip the produce cases")
    ap.add_argument("--no-pipeline", action="store_true", help="skip the pipeline")
    ap.add_argument("--markdown", metavar="FILE", help="also write the tables as Markdown")
    ap.add_argument("--keep-data", action="store_true", help="keep the temp dir (broker log)")
    args = ap.parse_args()
    args.count = args.count or (100_000 if args.quick else 500_000)
    args.repeat = max(1, args.repeat or (1 if args.quick else 5))
    args.case_timeout = 120 if args.quick else 300
    args.max_txns = int(args.case_timeout * 1000 / max(1.0, args.txn_ms)) + 1000
    if not (os.path.isfile(args.broker) and os.access(args.broker, os.X_OK)):
        sys.exit(f"transactions.py: no broker binary at {args.broker}: build it first "
                 f"(cargo build --release -p strait-broker) or pass --broker PATH; this script "
                 f"does not build anything")

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="strait-txn-bench-"))
    need_gb = 2 * args.count * SIZE / 1e9 + 1  # the pipeline's input and output, then deleted
    free_gb = shutil.disk_usage(tmp).free / 1e9
    if free_gb < need_gb:
        shutil.rmtree(tmp, ignore_errors=True)
        sys.exit(f"transactions.py: {free_gb:.1f} GB free under {tmp.parent}, want "
                 f"{need_gb:.1f}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    header = machine()
    header.append(f"disk: {free_gb:.1f} GB free under {tmp.parent}")
    built = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(os.path.getmtime(args.broker)))
    header.append(f"broker: {args.broker} (built {built}), one node, no transaction overrides")
    import confluent_kafka
    header.append(f"client: confluent-kafka {confluent_kafka.__version__} (librdkafka "
                  f"{confluent_kafka.libversion()[0]}), Python {sys.version.split()[0]}; "
                  f"producer {', '.join(f'{k}={v}' for k, v in PRODUCER_CONF.items())}; "
                  f"consumer {', '.join(f'{k}={v}' for k, v in CONSUMER_CONF.items())}")
    header.append(f"mode: {'quick' if args.quick else 'full'}: {args.count:,} x {SIZE} B per "
                  f"case, {PARTITIONS} partitions, transactions of {args.txn_ms:g} ms, "
                  f"{args.repeat} round(s) of each")
    for line in header:
        print(line, flush=True)
    print(f"temp dir: {tmp}", flush=True)
    rows = []
    status = 0
    t_run = time.monotonic()
    broker = None
    after = []
    try:
        broker = Broker(args.broker, tmp)
        broker.wait_ready()
        log(f"broker pid {broker.pid}, PLAINTEXT :{broker.port}, metrics :{broker.metrics}")
        # Unrecorded: creates __transaction_state (on the first FindCoordinator for a
        # transactional id) and __consumer_offsets, and warms both paths.
        seq = 0
        warm = min(args.count, 20_000)
        for kind in ("idempotent", "transactional"):
            seq += 1
            run_produce(broker, kind, args, seq, count=warm)
        log("warm-up done")
        if not args.no_produce:
            rows, seq = produce_phase(broker, args, seq)
        if not args.no_pipeline:
            seq = pipeline_phase(broker, args, seq)
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
        if broker is not None:
            try:  # anything left behind by a failed case
                if broker.admin is not None and broker.proc.poll() is None:
                    for t in broker.bench_topics():
                        broker.delete_topic(t)
            except Exception as e:  # noqa: BLE001
                log(f"could not list or delete the bench topics: {e}")
            broker.admin = None
            left = sorted({p.name.rsplit("-", 1)[0] for p in broker.data.iterdir()
                           if p.name.startswith(PREFIX)}) if broker.data.is_dir() else []
            after.append(f"data dir at the end: {du(broker.data) / 1e6:.1f} MB"
                         + (f", bench topics still there: {left}" if left else
                            ", no bench topic left"))
        terminate(PROCS, grace=30)
        if not args.keep_data:
            shutil.rmtree(tmp, ignore_errors=True)

    notes = after + [
        f"run took {time.monotonic() - t_run:.0f}s; load average after the run: "
        + " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "One Python process is the client: with client cores near 1 its loop is the limit, so "
        "MB/s compares the cases with each other and broker CPU s/GB is the broker's own cost.",
    ]
    out = [f"produce ({PARTITIONS} partitions, 1 KiB, acks=all, idempotent; transactional: "
           f"begin, produce {args.txn_ms:g} ms, flush, commit; median-MB/s run of "
           f"{args.repeat}, broker CPU s/GB the median, commit latencies pooled over the runs; "
           "txn/idempotent: median (range) of the per-round ratios; commit = "
           "commit_transaction after the flush)"]
    out += table_produce(rows) if rows else ["(not run)"]
    out += ["", f"consume-transform-produce ({PARTITIONS} partitions in and out, read_committed "
                f"group consumer, transactions of {args.txn_ms:g} ms with "
                "send_offsets_to_transaction; timed from the first record to the last commit; "
                f"median-records/s run of {args.repeat}, broker CPU s/GB the median, latencies "
                "pooled; output verified on every run)"]
    out += table_pipeline() if PIPE_ROWS else ["(not run)"]
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
