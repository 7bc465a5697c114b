"""Kafka transactions through confluent-kafka (librdkafka) against one real broker: commit and
abort over two topics, read_committed vs read_uncommitted visibility (control records hidden,
offsets jumping over the markers), the last stable offset while a transaction is open (Fetch and
ListOffsets), consume-transform-produce with send_offsets_to_transaction, zombie fencing, the
coordinator aborting a transaction whose producer died, and the admin views of transactions
(kafka-python's list/describe_transactions and describe_producers; confluent-kafka 2.16 has none).

The broker runs with the single-node transaction-state settings Kafka needs
(`transaction.state.log.replication.factor=1`, `transaction.state.log.min.isr=1`) and a short
abort-scan interval, so it is this module's own broker, not the shared session fixture."""

import os
import pathlib
import select
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import BrokerProcess

TIMEOUT = 30
TXN_OVERRIDES = (
    "transaction.state.log.replication.factor=1",
    "transaction.state.log.min.isr=1",
    "transaction.state.log.num.partitions=4",
    # Kafka scans for timed-out transactions every 10 s by default; the timeout test wants it
    # sooner.
    "transaction.abort.timed.out.transaction.cleanup.interval.ms=1000",
    "group.initial.rebalance.delay.ms=0",
)
# What a fenced zombie producer may be told: librdkafka raises _FENCED (fatal) for
# PRODUCER_FENCED and for INVALID_PRODUCER_EPOCH answered to a transactional producer.
FENCED_CODES = {
    KafkaError._FENCED,
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_until(what, cond, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def txn_broker():
    with tempfile.TemporaryDirectory(prefix="strait-pytest-txn-") as workdir:
        process = BrokerProcess(pathlib.Path(workdir), overrides=TXN_OVERRIDES)
        try:
            yield process
        finally:
            alive = process.alive()
            code = process.stop()
            assert alive, f"the broker died during the transaction tests:\n{process.stderr()[-4000:]}"
            assert code == 0, f"broker exit status {code}:\n{process.stderr()[-4000:]}"


def create_topics(bootstrap, names, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names],
        request_timeout=TIMEOUT,
    )
    for f in futures.values():
        f.result(timeout=TIMEOUT)


def txn_producer(bootstrap, transactional_id, **extra):
    """A transactional producer after init_transactions."""
    conf = {
        "bootstrap.servers": bootstrap,
        "transactional.id": transactional_id,
        "linger.ms": 5,
        **extra,
    }
    producer = Producer(conf)
    producer.init_transactions(TIMEOUT)
    return producer


def plain_produce(bootstrap, topic, values_by_partition, timestamp=None):
    errors = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for partition, values in values_by_partition.items():
        for value in values:
            kwargs = {"timestamp": timestamp} if timestamp is not None else {}
            producer.produce(topic, value=value, partition=partition,
                             on_delivery=lambda err, _m: err and errors.append(err), **kwargs)
            producer.poll(0)
    assert producer.flush(TIMEOUT) == 0, "undelivered messages"
    assert not errors, f"delivery errors: {errors[:5]}"


def kafka_error(excinfo_or_exc):
    exc = getattr(excinfo_or_exc, "value", excinfo_or_exc)
    return exc.args[0]


class Reader:
    """An assign()-ed consumer (no group protocol) over `tps` from the beginning, that keeps every
    record it read and the offset of the last end-of-partition event per partition. The end a read
    waits for is ListOffsets' latest offset under the reader's isolation level: the high watermark
    for read_uncommitted, the last stable offset for read_committed."""

    def __init__(self, bootstrap, tps, isolation):
        self.isolation = isolation
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": unique("reader"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
            "check.crcs": True,
        })
        self.tps = list(tps)
        self.records = {tp: [] for tp in self.tps}  # (offset, value)
        self.eof = {tp: None for tp in self.tps}
        self.consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in self.tps])

    def watermarks(self, tp):
        return self.consumer.get_watermark_offsets(TopicPartition(*tp), timeout=TIMEOUT,
                                                   cached=False)

    def ends(self):
        return {tp: self.watermarks(tp)[1] for tp in self.tps}

    def poll_once(self, timeout=0.2):
        msg = self.consumer.poll(timeout)
        if msg is None:
            return
        tp = (msg.topic(), msg.partition())
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                self.eof[tp] = msg.offset()
                return
            if msg.error().retriable():
                return
            raise KafkaException(msg.error())
        assert msg.value() is not None and msg.value() != b"", (
            f"an empty record at {tp} offset {msg.offset()}: a control record leaked?")
        self.records[tp].append((msg.offset(), msg.value()))

    def read_until(self, ends, timeout=TIMEOUT):
        """Polls until every partition reported end-of-partition at or past `ends[tp]`."""
        deadline = time.monotonic() + timeout
        while not all(self.eof[tp] is not None and self.eof[tp] >= end
                      for tp, end in ends.items()):
            if time.monotonic() >= deadline:
                pytest.fail(f"{self.isolation} reader did not reach {ends}: at {self.eof}")
            self.poll_once()

    def read_to_end(self, timeout=TIMEOUT):
        ends = self.ends()
        self.read_until(ends, timeout)
        return ends

    def values(self, tp):
        return [v for _, v in self.records[tp]]

    def offsets(self, tp):
        return [o for o, _ in self.records[tp]]

    def all_values(self):
        return [v for tp in self.tps for v in self.values(tp)]

    def close(self):
        self.consumer.close()


def test_commit_and_abort_over_two_topics(txn_broker):
    bootstrap = txn_broker.bootstrap
    topics = [unique("txn-a"), unique("txn-b")]
    create_topics(bootstrap, topics, 3)
    tps = [(t, p) for t in topics for p in range(3)]
    producer = txn_producer(bootstrap, unique("tid"))

    def run(tag, count, commit):
        producer.begin_transaction()
        for t, p in tps:
            for i in range(count):
                producer.produce(t, value=f"{tag}-{t}-{p}-{i}".encode(), partition=p)
        if commit:
            producer.commit_transaction(TIMEOUT)
        else:
            producer.flush(TIMEOUT)  # the aborted records are really in the log
            producer.abort_transaction(TIMEOUT)

    run("c1", 5, True)
    run("a2", 4, False)
    run("c3", 3, True)

    committed = Reader(bootstrap, tps, "read_committed")
    uncommitted = Reader(bootstrap, tps, "read_uncommitted")
    try:
        rc_ends = committed.read_to_end()
        ru_ends = uncommitted.read_to_end()
        for t, p in tps:
            tp = (t, p)
            c1 = [f"c1-{t}-{p}-{i}".encode() for i in range(5)]
            a2 = [f"a2-{t}-{p}-{i}".encode() for i in range(4)]
            c3 = [f"c3-{t}-{p}-{i}".encode() for i in range(3)]
            assert committed.values(tp) == c1 + c3, f"read_committed {tp}"
            assert uncommitted.values(tp) == c1 + a2 + c3, f"read_uncommitted {tp}"
            # c1 at 0..4, its commit marker at 5, a2 at 6..9, abort marker 10, c3 at 11..13,
            # commit marker 14: the markers take offsets and no consumer ever sees them.
            assert committed.offsets(tp) == [0, 1, 2, 3, 4, 11, 12, 13], f"{tp}"
            assert uncommitted.offsets(tp) == [0, 1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13], f"{tp}"
            assert rc_ends[tp] == 15 and ru_ends[tp] == 15, (rc_ends, ru_ends)
            assert committed.eof[tp] == 15 and uncommitted.eof[tp] == 15
    finally:
        committed.close()
        uncommitted.close()


def test_open_transaction_is_invisible_to_read_committed_until_commit(txn_broker):
    bootstrap = txn_broker.bootstrap
    topic = unique("txn-open")
    create_topics(bootstrap, [topic], 1)
    tp = (topic, 0)
    producer = txn_producer(bootstrap, unique("tid"))
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, value=f"first-{i}".encode(), partition=0)
    producer.commit_transaction(TIMEOUT)  # offsets 0..2, marker 3

    producer.begin_transaction()
    for i in range(5):
        producer.produce(topic, value=f"open-{i}".encode(), partition=0)
    producer.flush(TIMEOUT)  # offsets 4..8 written, transaction still open

    committed = Reader(bootstrap, [tp], "read_committed")
    uncommitted = Reader(bootstrap, [tp], "read_uncommitted")
    try:
        uncommitted.read_until({tp: 9})
        assert uncommitted.values(tp)[-5:] == [f"open-{i}".encode() for i in range(5)]
        assert committed.watermarks(tp) == (0, 4), "read_committed end is the LSO"
        # The read_committed consumer stops at the LSO: it reports the end of the partition
        # there and hands out nothing of the open transaction.
        committed.read_until({tp: 4})
        assert committed.eof[tp] == 4
        for _ in range(5):
            committed.poll_once(0.1)
        assert committed.values(tp) == [f"first-{i}".encode() for i in range(3)]

        producer.commit_transaction(TIMEOUT)  # marker at 9
        committed.read_until({tp: 10})
        assert committed.values(tp) == (
            [f"first-{i}".encode() for i in range(3)] + [f"open-{i}".encode() for i in range(5)])
        assert committed.offsets(tp) == [0, 1, 2, 4, 5, 6, 7, 8]
        assert committed.watermarks(tp) == (0, 10)
    finally:
        committed.close()
        uncommitted.close()


def test_list_offsets_under_read_committed_stop_at_the_lso(txn_broker):
    bootstrap = txn_broker.bootstrap
    topic = unique("txn-lso")
    create_topics(bootstrap, [topic], 2)
    t0 = int(time.time() * 1000) - 60_000
    t1 = t0 + 30_000
    plain_produce(bootstrap, topic, {0: [b"p0-a", b"p0-b"], 1: [b"p1-a"]}, timestamp=t0)
    producer = txn_producer(bootstrap, unique("tid"))
    producer.begin_transaction()
    for i in range(4):
        producer.produce(topic, value=f"open-{i}".encode(), partition=0, timestamp=t1)
    producer.flush(TIMEOUT)  # partition 0: 0..1 plain, 2..5 open; partition 1 untouched

    committed = Reader(bootstrap, [(topic, 0), (topic, 1)], "read_committed")
    uncommitted = Reader(bootstrap, [(topic, 0), (topic, 1)], "read_uncommitted")
    try:
        assert committed.watermarks((topic, 0)) == (0, 2), "LSO = first open offset"
        assert uncommitted.watermarks((topic, 0)) == (0, 6), "HWM"
        assert committed.watermarks((topic, 1)) == (0, 1), "no open txn: LSO = HWM"

        def times(reader, ts):
            found = reader.consumer.offsets_for_times(
                [TopicPartition(topic, 0, ts)], timeout=TIMEOUT)
            assert found[0].error is None, found
            return found[0].offset

        # The first record at or after t1 is offset 2, which read_committed may not see yet:
        # Kafka answers "none" (-1) instead of an offset at or past the LSO.
        assert times(uncommitted, t1) == 2
        assert times(committed, t1) == -1
        assert times(committed, t0) == 0
        assert times(uncommitted, t0) == 0

        producer.abort_transaction(TIMEOUT)  # abort marker at 6
        wait_until("the LSO to move past the abort marker",
                   lambda: committed.watermarks((topic, 0)) == (0, 7))
        assert uncommitted.watermarks((topic, 0)) == (0, 7)
        committed.read_until({(topic, 0): 7, (topic, 1): 1})
        assert committed.values((topic, 0)) == [b"p0-a", b"p0-b"]
        assert committed.values((topic, 1)) == [b"p1-a"]
    finally:
        committed.close()
        uncommitted.close()


def test_consume_transform_produce_exactly_once(txn_broker):
    bootstrap = txn_broker.bootstrap
    source, sink = unique("ctp-in"), unique("ctp-out")
    create_topics(bootstrap, [source, sink], 3)
    total = 5000
    plain_produce(bootstrap, source,
                  {p: [f"in-{i}".encode() for i in range(total) if i % 3 == p] for p in range(3)})
    group = unique("ctp-group")
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
    })
    consumer.subscribe([source])
    producer = txn_producer(bootstrap, unique("ctp-tid"))
    committed_count = 0
    aborted_count = 0
    transactions = 0
    deadline = time.monotonic() + 120
    try:
        while committed_count < total:
            assert time.monotonic() < deadline, f"stuck at {committed_count} of {total}"
            batch = consumer.consume(num_messages=700, timeout=1.0)
            batch = [m for m in batch if m.error() is None]
            if not batch:
                continue
            producer.begin_transaction()
            first = {}
            for m in batch:
                first.setdefault(m.partition(), m.offset())
                producer.produce(sink, partition=m.partition(),
                                 value=b"out:%d:%d:" % (m.partition(), m.offset()) + m.value())
            positions = consumer.position(consumer.assignment())
            producer.send_offsets_to_transaction(
                positions, consumer.consumer_group_metadata(), TIMEOUT)
            transactions += 1
            if transactions == 3:
                # Abort one batch in the middle and process it again. Flushed first: an abort
                # purges what librdkafka has not sent yet, and these records must be in the log.
                assert producer.flush(TIMEOUT) == 0
                producer.abort_transaction(TIMEOUT)
                aborted_count += len(batch)
                for partition, offset in first.items():
                    consumer.seek(TopicPartition(source, partition, offset))
                continue
            producer.commit_transaction(TIMEOUT)
            committed_count += len(batch)
    finally:
        consumer.close()
    assert aborted_count > 0
    assert committed_count == total

    sink_tps = [(sink, p) for p in range(3)]
    committed = Reader(bootstrap, sink_tps, "read_committed")
    uncommitted = Reader(bootstrap, sink_tps, "read_uncommitted")
    try:
        committed.read_to_end()
        uncommitted.read_to_end()
        out = committed.all_values()
        assert len(out) == total, f"{len(out)} records in the output, {total} expected"
        assert len(set(out)) == total, "duplicates in the read_committed output"
        sources = sorted(int(v.rsplit(b"-", 1)[1]) for v in out)
        assert sources == list(range(total)), "every input exactly once"
        for t, p in sink_tps:
            for v in committed.values((t, p)):
                assert v.startswith(b"out:%d:" % p), "output stays in its input's partition"
        assert len(uncommitted.all_values()) == total + aborted_count, (
            "the aborted batch is in the log but hidden from read_committed")
    finally:
        committed.close()
        uncommitted.close()

    # The group's offsets, committed by the transactions, are the input's end.
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                      "enable.auto.commit": False, "isolation.level": "read_committed"})
    try:
        ends = [probe.get_watermark_offsets(TopicPartition(source, p), timeout=TIMEOUT)[1]
                for p in range(3)]
        got = probe.committed([TopicPartition(source, p) for p in range(3)], timeout=TIMEOUT)
        assert [tp.offset for tp in got] == ends, f"committed {got}, input ends {ends}"
        assert sum(ends) == total
    finally:
        probe.close()


def test_a_zombie_producer_is_fenced(txn_broker):
    bootstrap = txn_broker.bootstrap
    topic = unique("txn-zombie")
    create_topics(bootstrap, [topic], 1)
    tid = unique("zombie-tid")
    zombie = txn_producer(bootstrap, tid)
    zombie.begin_transaction()
    for i in range(3):
        zombie.produce(topic, value=f"zombie-{i}".encode(), partition=0)
    zombie.flush(TIMEOUT)

    successor = txn_producer(bootstrap, tid)  # bumps the epoch, aborts the zombie's txn

    errors = []
    try:
        # No delivery callback: confluent-kafka raises the fatal error from flush() itself (with
        # a Python callback it surfaces as a SystemError caused by the KafkaException).
        zombie.produce(topic, value=b"zombie-late", partition=0)
        zombie.flush(TIMEOUT)
    except (KafkaException, SystemError) as e:
        cause = e if isinstance(e, KafkaException) else e.__cause__
        assert isinstance(cause, KafkaException), repr(e)
        errors.append(kafka_error(cause))
    committed_ok = False
    try:
        zombie.commit_transaction(TIMEOUT)
        committed_ok = True
    except KafkaException as e:
        errors.append(kafka_error(e))
    assert not committed_ok, "the fenced producer committed"
    last = errors[-1]
    if last.txn_requires_abort() and not last.fatal():
        # Not fatal at once: then the abort must fail as fenced as well.
        with pytest.raises(KafkaException) as aborted:
            zombie.abort_transaction(TIMEOUT)
        last = kafka_error(aborted)
    assert last.fatal() or last.code() in FENCED_CODES, (
        f"the zombie's commit failed with {last} (code {last.code()}), not a fencing error; "
        f"all errors {errors}")

    successor.begin_transaction()
    successor.produce(topic, value=b"successor", partition=0)
    successor.commit_transaction(TIMEOUT)

    committed = Reader(bootstrap, [(topic, 0)], "read_committed")
    uncommitted = Reader(bootstrap, [(topic, 0)], "read_uncommitted")
    try:
        committed.read_to_end()
        uncommitted.read_to_end()
        assert committed.values((topic, 0)) == [b"successor"], "none of the zombie's writes"
        assert uncommitted.values((topic, 0))[:3] == [f"zombie-{i}".encode() for i in range(3)]
        assert b"zombie-late" not in committed.values((topic, 0))
    finally:
        committed.close()
        uncommitted.close()


HANGING_PRODUCER = r"""
import sys, time
from confluent_kafka import Producer
bootstrap, topic, tid = sys.argv[1:4]
p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid,
              "transaction.timeout.ms": 3000, "linger.ms": 5})
p.init_transactions(30)
p.begin_transaction()
for i in range(5):
    p.produce(topic, value=b"hanging-%d" % i, partition=0)
assert p.flush(30) == 0
print("ready", flush=True)
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    time.sleep(0.2)
"""


def read_line(proc, timeout):
    """One stdout line of `proc` within `timeout` seconds, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            return proc.stdout.readline()
        if proc.poll() is not None:
            return None
    return None


def test_the_coordinator_aborts_a_transaction_whose_producer_died(txn_broker):
    bootstrap = txn_broker.bootstrap
    topic = unique("txn-timeout")
    create_topics(bootstrap, [topic], 1)
    tp = (topic, 0)
    proc = subprocess.Popen(
        [sys.executable, "-c", HANGING_PRODUCER, bootstrap, topic, unique("hanging-tid")],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        line = read_line(proc, TIMEOUT)
        if line is None or line.strip() != b"ready":
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"the hanging producer did not start: {line!r}\n{err.decode()[-3000:]}")
        committed = Reader(bootstrap, [tp], "read_committed")
        try:
            assert committed.watermarks(tp) == (0, 0), "its open transaction holds the LSO"
            # The producer dies without ending its transaction.
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

            other = txn_producer(bootstrap, unique("tid"))
            other.begin_transaction()
            for i in range(3):
                other.produce(topic, value=f"after-{i}".encode(), partition=0)
            other.commit_transaction(TIMEOUT)

            # 3 s of transaction timeout plus the coordinator's scan: then the abort marker
            # lets the LSO pass the dead producer's records and reach the later commit.
            started = time.monotonic()
            wait_until("the coordinator to abort the timed-out transaction",
                       lambda: committed.watermarks(tp)[1] >= 10, timeout=60)
            print(f"timed-out transaction aborted after {time.monotonic() - started:.1f}s")
            committed.read_to_end()
            assert committed.values(tp) == [f"after-{i}".encode() for i in range(3)]
            assert not any(v.startswith(b"hanging") for v in committed.values(tp))
        finally:
            committed.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def kafka_python_admin(bootstrap):
    kafka = pytest.importorskip("kafka")
    return kafka, kafka.KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT * 1000)


def test_admin_views_of_transactions(txn_broker):
    """ListTransactions, DescribeTransactions and DescribeProducers (KIP-664) through
    kafka-python, as kafka-transactions.sh uses them."""
    bootstrap = txn_broker.bootstrap
    kafka, admin = kafka_python_admin(bootstrap)
    from kafka import errors as Errors
    from kafka.admin import TransactionState

    topic = unique("txn-admin")
    create_topics(bootstrap, [topic], 2)
    tid = unique("admin-tid")
    producer = txn_producer(bootstrap, tid, **{"transaction.timeout.ms": 45000})
    producer.begin_transaction()
    producer.produce(topic, value=b"x0", partition=0)
    producer.produce(topic, value=b"x1", partition=1)
    producer.flush(TIMEOUT)
    try:
        try:
            described = admin.describe_transactions([tid])[tid]
        except (Errors.IncompatibleBrokerVersion, Errors.UnsupportedVersionError) as e:
            producer.abort_transaction(TIMEOUT)
            pytest.skip(f"the broker lacks DescribeTransactions: {e}")
        assert described.state == TransactionState.ONGOING, described
        assert described.producer_id >= 0 and described.producer_epoch >= 0
        assert described.transaction_timeout_ms == 45000
        assert described.transaction_start_time_ms > 0
        assert {(tp.topic, tp.partition) for tp in described.topic_partitions} == {
            (topic, 0), (topic, 1)}

        listed = [t for per_broker in admin.list_transactions().values() for t in per_broker]
        mine = [t for t in listed if t.transactional_id == tid]
        assert len(mine) == 1 and mine[0].state == TransactionState.ONGOING, listed
        assert mine[0].producer_id == described.producer_id
        ongoing = [t.transactional_id for per in
                   admin.list_transactions(state_filters=["Ongoing"]).values() for t in per]
        assert tid in ongoing
        assert tid not in [t.transactional_id for per in
                           admin.list_transactions(state_filters=["CompleteCommit"]).values()
                           for t in per]

        tp0 = kafka.TopicPartition(topic, 0)
        states = admin.describe_producers([tp0])[tp0].active_producers
        mine = [s for s in states if s.producer_id == described.producer_id]
        assert len(mine) == 1, states
        assert mine[0].current_transaction_start_offset == 0, mine
        assert mine[0].producer_epoch == described.producer_epoch

        producer.commit_transaction(TIMEOUT)
        wait_until("the transaction to be CompleteCommit",
                   lambda: admin.describe_transactions([tid])[tid].state
                   == TransactionState.COMPLETE_COMMIT)
        after = admin.describe_producers([tp0])[tp0].active_producers
        mine = [s for s in after if s.producer_id == described.producer_id]
        assert mine and mine[0].current_transaction_start_offset == -1, after

        with pytest.raises(Errors.TransactionalIdNotFoundError):
            admin.describe_transactions([unique("no-such-tid")])
    finally:
        admin.close()
