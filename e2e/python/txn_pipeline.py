"""A consume-transform-produce pipeline with exactly-once semantics through Kafka transactions
(confluent-kafka / librdkafka), run as its own process so a test can SIGKILL it mid-transaction.

It reads --input with a read_committed group consumer, writes one record per input record to
--output (same partition, value `<input partition>:<input offset>:<input value>`), and every
--commit-interval-ms commits the records and the consumer's positions in one transaction
(send_offsets_to_transaction). The transactional id is fixed, so a restarted copy fences a killed
one and aborts whatever it left open. On a rebalance the open transaction is aborted (its records
are processed again from the committed offsets); on an abortable error it is aborted and the
consumer rewound; a fatal error exits 3. It prints `progress <committed input records>` after
each commit and exits 0 once the group's committed offsets reach the input's end (as it was when
the process started: the input must be complete before the pipeline runs); 2 on --deadline-s.

    python3 txn_pipeline.py --bootstrap HOST:PORT --input in --output out --group g \
        --transactional-id pipe [--max-rate 5000] [--commit-interval-ms 500] [--deadline-s 300]
"""

import argparse
import sys
import threading
import time
import traceback

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

CALL_TIMEOUT = 30
RETRY_FOR = 90


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


class Watchdog:
    """Logs where the main thread is when the loop has not turned for `after` seconds, once per
    stall: a pipeline blocked inside a client call says which call it is."""

    def __init__(self, after=30.0):
        self.after = after
        self.beat = time.monotonic()
        self.main = threading.main_thread().ident
        threading.Thread(target=self._watch, daemon=True).start()

    def tick(self):
        self.beat = time.monotonic()

    def _watch(self):
        told = None
        while True:
            time.sleep(1)
            beat = self.beat
            if time.monotonic() - beat >= self.after and told != beat:
                told = beat
                frame = sys._current_frames().get(self.main)
                stack = "".join(traceback.format_stack(frame)) if frame else "?"
                log(f"loop stalled for {self.after:.0f} s in:\n{stack}")


class Fatal(Exception):
    pass


def retrying(what, call):
    """Runs `call` again while it fails with a retriable error, for at most RETRY_FOR seconds.
    Abortable errors are raised to the caller; fatal ones become Fatal."""
    deadline = time.monotonic() + RETRY_FOR
    while True:
        try:
            return call()
        except KafkaException as e:
            err = e.args[0]
            if err.fatal():
                raise Fatal(f"{what}: {err}") from e
            if err.retriable() and time.monotonic() < deadline:
                log(f"{what}: retrying after {err}")
                continue
            raise


class Pipeline:
    def __init__(self, args):
        self.args = args
        self.consumer = Consumer({
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": 120000,
            # Small fetches interleave the partitions in what consume() returns, so a
            # transaction spans several output partitions instead of draining one at a time.
            "max.partition.fetch.bytes": 8192,
        })
        self.producer = Producer({
            "bootstrap.servers": args.bootstrap,
            "transactional.id": args.transactional_id,
            "transaction.timeout.ms": 30000,
            "linger.ms": 5,
            "queue.buffering.max.messages": 200000,
        })
        self.in_txn = False
        self.txn_started = 0.0
        self.first = {}  # partition -> first input offset in the open transaction
        self.pending = 0  # records in the open transaction
        self.committed = {}  # partition -> committed offset as far as this process knows

    def start(self):
        retrying("init_transactions", lambda: self.producer.init_transactions(CALL_TIMEOUT))
        metadata = self.consumer.list_topics(self.args.input, timeout=CALL_TIMEOUT)
        topic = metadata.topics.get(self.args.input)
        if topic is None or topic.error is not None or not topic.partitions:
            raise Fatal(f"input topic {self.args.input} not found: {topic and topic.error}")
        self.partitions = sorted(topic.partitions)
        self.ends = {}
        for p in self.partitions:
            _, high = retrying("watermarks", lambda p=p: self.consumer.get_watermark_offsets(
                TopicPartition(self.args.input, p), timeout=CALL_TIMEOUT, cached=False))
            self.ends[p] = high
        log(f"input ends {self.ends}")
        self.refresh_committed()
        self.consumer.subscribe([self.args.input], on_revoke=self.on_revoke,
                                on_lost=self.on_revoke)

    def refresh_committed(self):
        got = retrying("committed", lambda: self.consumer.committed(
            [TopicPartition(self.args.input, p) for p in self.partitions], timeout=CALL_TIMEOUT))
        self.committed = {tp.partition: max(tp.offset, 0) for tp in got}

    def done(self):
        return all(self.committed.get(p, 0) >= end for p, end in self.ends.items())

    def on_revoke(self, _consumer, partitions):
        # Records of an open transaction were read at positions the next owner will not know:
        # abort, and they are read again from the committed offsets.
        if self.in_txn:
            log(f"revoked {[tp.partition for tp in partitions]}: aborting the open transaction")
            self.abort()

    def abort(self):
        retrying("abort_transaction", lambda: self.producer.abort_transaction(CALL_TIMEOUT))
        self.in_txn = False
        self.pending = 0
        self.first = {}

    def rewind(self, first):
        for partition, offset in first.items():
            try:
                self.consumer.seek(TopicPartition(self.args.input, partition, offset))
            except KafkaException as e:
                log(f"seek {partition}@{offset}: {e} (no longer assigned?)")

    def commit(self):
        assignment = self.consumer.assignment()
        positions = self.consumer.position(assignment)
        first = dict(self.first)
        try:
            retrying("send_offsets_to_transaction", lambda: self.producer.send_offsets_to_transaction(
                positions, self.consumer.consumer_group_metadata(), CALL_TIMEOUT))
            retrying("commit_transaction",
                     lambda: self.producer.commit_transaction(CALL_TIMEOUT))
        except KafkaException as e:
            err = e.args[0]
            if not err.txn_requires_abort():
                raise Fatal(f"commit: {err}") from e
            log(f"commit failed ({err}): aborting and rewinding to {first}")
            self.abort()
            self.rewind(first)
            return
        self.in_txn = False
        self.pending = 0
        self.first = {}
        for tp in positions:
            if tp.offset >= 0:
                self.committed[tp.partition] = tp.offset
        print(f"progress {sum(self.committed.values())}", flush=True)

    def produce(self, partition, value):
        since = time.monotonic()
        told = False
        while True:
            try:
                self.producer.produce(self.args.output, value=value, partition=partition)
                return
            except BufferError:
                # Said once, so a pipeline stalled on undeliverable records shows why.
                if not told and time.monotonic() - since > 10:
                    told = True
                    log(f"producer queue full for 10 s (partition {partition})")
                self.producer.poll(0.05)

    def run(self):
        self.start()
        deadline = time.monotonic() + self.args.deadline_s
        interval = self.args.commit_interval_ms / 1000.0
        started = time.monotonic()
        processed = 0
        last_done_check = 0.0
        watchdog = Watchdog()
        while time.monotonic() < deadline:
            watchdog.tick()
            now = time.monotonic()
            if self.in_txn and now - self.txn_started >= interval:
                self.commit()
                continue
            if not self.in_txn and self.done():
                # Confirm with the group coordinator before declaring victory.
                if now - last_done_check >= 0.5:
                    last_done_check = now
                    self.refresh_committed()
                    if self.done():
                        log(f"done: committed {self.committed}")
                        return 0
            budget = 500
            if self.args.max_rate > 0:
                allowed = int(self.args.max_rate * (now - started)) - processed
                if allowed > self.args.max_rate:
                    # At most one second of backlog (e.g. time spent joining the group).
                    processed += allowed - self.args.max_rate
                    allowed = self.args.max_rate
                budget = min(budget, allowed)
                if budget < 1:
                    time.sleep(0.005)
                    self.producer.poll(0)
                    continue
            messages = self.consumer.consume(num_messages=budget, timeout=0.1)
            for m in messages:
                if m.error() is not None:
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        log(f"consumer: {m.error()}")
                    continue
                if not self.in_txn:
                    retrying("begin_transaction", self.producer.begin_transaction)
                    self.in_txn = True
                    self.txn_started = time.monotonic()
                self.first.setdefault(m.partition(), m.offset())
                self.produce(m.partition(),
                             b"%d:%d:" % (m.partition(), m.offset()) + (m.value() or b""))
                self.pending += 1
                processed += 1
            self.producer.poll(0)
        log(f"deadline: committed {self.committed}, ends {self.ends}")
        return 2


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--transactional-id", required=True)
    parser.add_argument("--max-rate", type=int, default=0, help="input records/s, 0 = unpaced")
    parser.add_argument("--commit-interval-ms", type=int, default=500)
    parser.add_argument("--deadline-s", type=float, default=300)
    args = parser.parse_args()
    pipeline = Pipeline(args)
    try:
        code = pipeline.run()
    except Fatal as e:
        log(f"fatal: {e}")
        code = 3
    except KafkaException as e:
        log(f"unexpected Kafka error: {e}")
        code = 3
    try:
        pipeline.consumer.close()
    except Exception as e:  # closing is best effort: the exit code says what happened
        log(f"close: {e}")
    return code


if __name__ == "__main__":
    sys.exit(main())
