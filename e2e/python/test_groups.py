"""Consumer groups through Python clients and kcat: kafka-python and librdkafka
(confluent-kafka) members sharing one group, kcat -L with the internal offsets topic, and
kafka-python's admin views of groups (list, describe, committed offsets and lag)."""

import json
import shutil
import subprocess
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import OffsetSpec
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.structs import OffsetAndMetadata

TIMEOUT = 30
OFFSETS_TOPIC_PARTITIONS = 50


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_until(what, cond, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def create_topic(bootstrap, name, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1)], request_timeout=TIMEOUT
    )
    futures[name].result(timeout=TIMEOUT)


def produce(bootstrap, topic, values_by_partition):
    """Produces {partition: [values]} with acks=all and checks every delivery."""
    errors = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for partition, values in values_by_partition.items():
        for value in values:
            producer.produce(
                topic,
                value=value,
                partition=partition,
                on_delivery=lambda err, _msg: err and errors.append(err),
            )
            producer.poll(0)
    assert producer.flush(TIMEOUT) == 0, "undelivered messages"
    assert not errors, f"delivery errors: {errors[:5]}"


class Member(threading.Thread):
    """A group member on its own thread: processes records, then commits synchronously; keeps
    what it processed and its current assignment for the test thread."""

    def __init__(self, name, poll, commit, assignment, close):
        super().__init__(name=name, daemon=True)
        self._poll, self._commit, self._assignment, self._close = poll, commit, assignment, close
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.records = []  # (partition, offset, value)
        self.owned = set()
        self.error = None

    def run(self):
        try:
            deadline = time.monotonic() + 120
            while not self.stop.is_set() and time.monotonic() < deadline:
                batch = self._poll()
                with self.lock:
                    self.records.extend(batch)
                if batch:
                    self._commit()
                owned = self._assignment()
                with self.lock:
                    self.owned = owned
        except Exception as e:  # reported by the test thread
            self.error = e
        finally:
            self._close()

    def snapshot(self):
        with self.lock:
            return list(self.records), set(self.owned)


def kafka_python_member(bootstrap, group, topic):
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id="kafka-python-member",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        partition_assignment_strategy=[RangePartitionAssignor],
        session_timeout_ms=10000,
        heartbeat_interval_ms=500,
    )

    def poll():
        out = []
        for tp, records in consumer.poll(timeout_ms=100).items():
            out.extend((tp.partition, r.offset, r.value) for r in records)
        return out

    return Member(
        "kafka-python",
        poll,
        lambda: consumer.commit(),
        lambda: {tp.partition for tp in consumer.assignment()},
        lambda: consumer.close(),
    )


def librdkafka_member(bootstrap, group, topic):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": "librdkafka-member",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "partition.assignment.strategy": "range",
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 500,
        }
    )
    consumer.subscribe([topic])

    def poll():
        out = []
        for message in consumer.consume(num_messages=500, timeout=0.1):
            if message.error():
                raise RuntimeError(f"librdkafka consumer error: {message.error()}")
            out.append((message.partition(), message.offset(), message.value()))
        return out

    return Member(
        "librdkafka",
        poll,
        lambda: consumer.commit(asynchronous=False),
        lambda: {tp.partition for tp in consumer.assignment()},
        lambda: consumer.close(),
    )


def test_kafka_python_and_librdkafka_members_share_a_group(broker):
    topic, group, partitions, per_partition = unique("interop"), unique("interop-group"), 6, 500
    create_topic(broker.bootstrap, topic, partitions)
    members = [
        kafka_python_member(broker.bootstrap, group, topic),
        librdkafka_member(broker.bootstrap, group, topic),
    ]
    for member in members:
        member.start()
    try:
        # Produce only once the group has settled: both own partitions, none owned twice.
        def settled():
            owned = [m.snapshot()[1] for m in members]
            return all(owned) and not (owned[0] & owned[1]) and owned[0] | owned[1] == set(range(partitions))

        wait_until("both members to own disjoint partitions covering the topic", settled)
        assignment = [m.snapshot()[1] for m in members]
        values = {p: [f"{p}-{i}".encode() for i in range(per_partition)] for p in range(partitions)}
        produce(broker.bootstrap, topic, values)
        total = partitions * per_partition
        wait_until(
            "every message consumed",
            lambda: sum(len(m.snapshot()[0]) for m in members) >= total or any(m.error for m in members),
        )
    finally:
        for member in members:
            member.stop.set()
        for member in members:
            member.join(timeout=TIMEOUT)
    for member in members:
        assert member.error is None, f"{member.name}: {member.error!r}"
        assert not member.is_alive(), f"{member.name} did not stop"

    consumed = [m.snapshot()[0] for m in members]
    assert all(consumed), f"both members consumed: {[len(c) for c in consumed]}"
    by_partition = [{p for p, _, _ in c} for c in consumed]
    assert not (by_partition[0] & by_partition[1]), f"partitions consumed by both: {by_partition}"
    for records, owned in zip(consumed, assignment):
        assert {p for p, _, _ in records} <= owned, "consumed only its own partitions"
    everything = sorted(consumed[0] + consumed[1])
    expected = sorted((p, i, values[p][i]) for p in range(partitions) for i in range(per_partition))
    assert everything == expected, "each message consumed exactly once, with its offset"

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        committed = admin.list_group_offsets({group: None})[group]
        assert {tp.partition: om.offset for tp, om in committed.items() if tp.topic == topic} == {
            p: per_partition for p in range(partitions)
        }, "both clients committed what they processed"
    finally:
        admin.close()


def kcat():
    path = shutil.which("kcat") or shutil.which("kafkacat")
    if path is None:
        pytest.fail("kcat not installed: run e2e/setup.sh")
    return path


def test_kcat_list_and_group_admin_views_with_lag(broker):
    topic, group = unique("lag"), unique("lag-group")
    per_partition, quota = 40, {0: 10, 1: 20, 2: 30}
    create_topic(broker.bootstrap, topic, 3)
    produce(broker.bootstrap, topic, {p: [f"{p}-{i}".encode() for i in range(per_partition)] for p in quota})

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        # Process exactly quota[p] records of partition p, pausing partitions that are done.
        processed = {p: 0 for p in quota}
        deadline = time.monotonic() + TIMEOUT
        while processed != quota:
            assert time.monotonic() < deadline, f"processed only {processed}"
            for tp, records in consumer.poll(timeout_ms=200).items():
                for record in records:
                    if processed[tp.partition] < quota[tp.partition]:
                        assert record.offset == processed[tp.partition]
                        processed[tp.partition] += 1
                if processed[tp.partition] == quota[tp.partition]:
                    consumer.pause(tp)
        consumer.commit(
            {TopicPartition(topic, p): OffsetAndMetadata(n, f"upto-{n}", -1) for p, n in quota.items()}
        )

        groups = {g["group_id"]: g for g in admin.list_groups()}
        assert group in groups, f"{group} missing from {sorted(groups)}"
        assert groups[group]["protocol_type"] == "consumer"
        described = admin.describe_groups([group])[group]
        assert described["error"] is None
        assert described["group_state"] == "Stable"
        assert described["protocol_type"] == "consumer"
        assert len(described["members"]) == 1
        assigned = described["members"][0]["member_assignment"]["assigned_partitions"]
        assert [(a["topic"], sorted(a["partitions"])) for a in assigned] == [(topic, [0, 1, 2])]
    finally:
        consumer.close()

    try:
        wait_until(
            "the group to be empty after its only member left",
            lambda: admin.describe_groups([group])[group]["group_state"] == "Empty",
        )
        assert admin.describe_groups([group])[group]["members"] == []
        committed = admin.list_group_offsets({group: None})[group]
        assert {tp.partition: (om.offset, om.metadata) for tp, om in committed.items()} == {
            p: (n, f"upto-{n}") for p, n in quota.items()
        }
        ends = admin.list_partition_offsets({TopicPartition(topic, p): OffsetSpec.LATEST for p in quota})
        lag = {tp.partition: ends[tp].offset - om.offset for tp, om in committed.items()}
        assert lag == {p: per_partition - n for p, n in quota.items()}, f"consumer lag {lag}"
        assert sum(lag.values()) == 3 * per_partition - sum(quota.values())

        listed = subprocess.run(
            [kcat(), "-b", broker.bootstrap, "-L", "-J"], capture_output=True, text=True, timeout=TIMEOUT
        )
        assert listed.returncode == 0, listed.stderr
        metadata = json.loads(listed.stdout)
        topics = {t["topic"]: t for t in metadata["topics"]}
        assert topic in topics
        for name, entry in topics.items():
            if name not in (topic, "__consumer_offsets"):
                continue  # other tests' topics are theirs to check
            assert "error" not in entry, f"kcat reports an error for {name}: {entry}"
            for partition in entry["partitions"]:
                assert "error" not in partition, f"{name}: {partition}"
                assert partition["leader"] == metadata["originating_broker"]["id"], f"{name}: {partition}"
        assert sorted(p["partition"] for p in topics[topic]["partitions"]) == [0, 1, 2]
        if "__consumer_offsets" in topics:
            # Listed like Kafka does: an internal topic, healthy, with its configured partitions.
            assert len(topics["__consumer_offsets"]["partitions"]) == OFFSETS_TOPIC_PARTITIONS
            described_topic = admin.describe_topics(["__consumer_offsets"])[0]
            assert described_topic["is_internal"] is True
        assert admin.describe_topics([topic])[0]["is_internal"] is False
    finally:
        admin.close()
