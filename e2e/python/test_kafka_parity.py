"""Kafka parity that newer clients and tools rely on, through real clients: KIP-467 per-record
errors (librdkafka fails only the invalid records of a rejected batch — keyless records on a
compacted topic with INVALID_RECORD, CreateTime timestamps out of `message.timestamp.*.max.ms`
with INVALID_TIMESTAMP — and the others with its "different record" error), and the deprecated
topic configs Kafka 3.x still accepts (`message.format.version`,
`message.downconversion.enable`), taken with no effect."""

import time
import uuid

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

TIMEOUT = 15


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_per_record_errors_fail_only_the_invalid_records(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic = unique("compacted")
    admin.create_topics([NewTopic(topic, 1, 1, config={"cleanup.policy": "compact"})])[
        topic].result(TIMEOUT)
    producer = Producer({
        "bootstrap.servers": broker.bootstrap,
        # One batch of all 100 records, and no retries: the batch is rejected as a whole.
        "linger.ms": 1000,
        "batch.num.messages": 1000,
        "enable.idempotence": False,
        "retries": 0,
    })
    outcomes = {}

    def on_delivery(err, msg):
        index = int(msg.value())
        outcomes[index] = err.code() if err is not None else None

    for i in range(100):
        key = None if i % 10 == 0 else b"k%d" % i
        producer.produce(topic, key=key, value=b"%d" % i, partition=0, on_delivery=on_delivery)
    assert producer.flush(TIMEOUT) == 0
    assert len(outcomes) == 100
    invalid = sorted(i for i, code in outcomes.items() if code == KafkaError.INVALID_RECORD)
    different = [i for i, code in outcomes.items()
                 if code == KafkaError._INVALID_DIFFERENT_RECORD]
    assert invalid == list(range(0, 100, 10)), outcomes
    assert len(different) == 90, outcomes
    # Nothing of the rejected batch was written; a keyed record still is.
    producer.produce(topic, key=b"k", value=b"ok", partition=0)
    assert producer.flush(TIMEOUT) == 0


def test_out_of_range_timestamps_fail_only_their_records(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic = unique("bounded")
    admin.create_topics([NewTopic(topic, 1, 1, config={
        "message.timestamp.after.max.ms": "60000",
        "message.timestamp.before.max.ms": "3600000",
    })])[topic].result(TIMEOUT)
    producer = Producer({
        "bootstrap.servers": broker.bootstrap,
        "linger.ms": 1000,
        "enable.idempotence": False,
        "retries": 0,
    })
    outcomes = {}

    def on_delivery(err, msg):
        outcomes[int(msg.value())] = err.code() if err is not None else None

    now_ms = int(time.time() * 1000)
    for i in range(20):
        # Every 5th record claims to be from an hour in the future.
        ts = now_ms + 3_600_000 if i % 5 == 0 else now_ms
        producer.produce(topic, value=b"%d" % i, partition=0, timestamp=ts,
                         on_delivery=on_delivery)
    assert producer.flush(TIMEOUT) == 0
    # The partition's error is INVALID_TIMESTAMP; librdkafka reports the records the broker named
    # as invalid records (it has one code for every per-record error).
    named = (KafkaError.INVALID_TIMESTAMP, KafkaError.INVALID_RECORD)
    invalid = sorted(i for i, c in outcomes.items() if c in named)
    different = [i for i, c in outcomes.items() if c == KafkaError._INVALID_DIFFERENT_RECORD]
    assert invalid == [0, 5, 10, 15], outcomes
    assert len(different) == 16, outcomes


def test_deprecated_topic_configs_are_accepted_with_no_effect(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic = unique("legacy")
    admin.create_topics([NewTopic(topic, 1, 1, config={
        "message.format.version": "2.8",
        "message.downconversion.enable": "false",
    })])[topic].result(TIMEOUT)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    deadline = time.monotonic() + TIMEOUT
    while True:
        entries = admin.describe_configs([resource])[resource].result(TIMEOUT)
        if "message.format.version" in entries or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert entries["message.format.version"].value == "2.8"
    assert entries["message.downconversion.enable"].value == "false"
    # Writing and reading work as on any topic (the setting changes nothing).
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(topic, value=b"v")
    assert producer.flush(TIMEOUT) == 0
    assert "deprecated topic config accepted with no effect" in broker.stderr()
