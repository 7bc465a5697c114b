"""Admin APIs through real clients (confluent-kafka's AdminClient over librdkafka, and
kafka-python for the legacy AlterConfigs): topics, configs, partitions, records, error codes."""

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

TIMEOUT = 15


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def wait_until(what, cond, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def create(admin, name, partitions=1, config=None, validate_only=False):
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        validate_only=validate_only,
        request_timeout=TIMEOUT,
    )
    futures[name].result(timeout=TIMEOUT)


def error_code(excinfo) -> int:
    return excinfo.value.args[0].code()


def topic_configs(admin, name):
    resource = ConfigResource(ResourceType.TOPIC, name)
    return admin.describe_configs([resource], request_timeout=TIMEOUT)[resource].result(timeout=TIMEOUT)


def partition_count(admin, name) -> int:
    metadata = admin.list_topics(topic=name, timeout=TIMEOUT)
    return len(metadata.topics[name].partitions)


def test_create_topic_with_configs(admin):
    name = unique("created")
    create(admin, name, partitions=3, config={"retention.ms": "3600000", "cleanup.policy": "delete"})
    topics = admin.list_topics(timeout=TIMEOUT).topics
    assert name in topics
    assert len(topics[name].partitions) == 3
    configs = topic_configs(admin, name)
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not configs["retention.ms"].is_default


def test_validate_only_creates_nothing(admin):
    name = unique("validated")
    create(admin, name, partitions=2, validate_only=True)
    assert name not in admin.list_topics(timeout=TIMEOUT).topics


def test_describe_configs_reports_defaults(admin):
    name = unique("described")
    create(admin, name)
    configs = topic_configs(admin, name)
    for key in ("retention.ms", "segment.bytes", "cleanup.policy", "max.message.bytes"):
        assert key in configs, f"{key} described"
    policy = configs["cleanup.policy"]
    assert policy.value == "delete"
    assert policy.is_default
    assert policy.source in (ConfigSource.DEFAULT_CONFIG.value, ConfigSource.STATIC_BROKER_CONFIG.value)


def test_describe_broker_configs(admin):
    cluster = admin.describe_cluster(request_timeout=TIMEOUT).result(timeout=TIMEOUT)
    assert len(cluster.nodes) == 1
    node = cluster.nodes[0]
    resource = ConfigResource(ResourceType.BROKER, str(node.id))
    configs = admin.describe_configs([resource], request_timeout=TIMEOUT)[resource].result(timeout=TIMEOUT)
    assert configs["num.partitions"].value == "1"


def alter(admin, name, *entries):
    resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=list(entries))
    admin.incremental_alter_configs([resource], request_timeout=TIMEOUT)[resource].result(timeout=TIMEOUT)


def test_incremental_alter_set_delete_append_subtract(admin):
    name = unique("altered")
    create(admin, name)
    alter(admin, name, ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET))
    configs = topic_configs(admin, name)
    assert configs["retention.ms"].value == "1000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    alter(admin, name, ConfigEntry("retention.ms", "", incremental_operation=AlterConfigOpType.DELETE))
    configs = topic_configs(admin, name)
    assert configs["retention.ms"].is_default
    assert configs["retention.ms"].value == "604800000"

    alter(admin, name, ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND))
    assert topic_configs(admin, name)["cleanup.policy"].value == "delete,compact"
    alter(admin, name, ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT))
    assert topic_configs(admin, name)["cleanup.policy"].value == "compact"


def test_incremental_alter_invalid_value_is_rejected(admin):
    name = unique("badalter")
    create(admin, name)
    with pytest.raises(KafkaException) as excinfo:
        alter(admin, name, ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET))
    assert error_code(excinfo) == KafkaError.INVALID_CONFIG


def test_create_partitions(admin):
    name = unique("grown")
    create(admin, name, partitions=2)
    admin.create_partitions([NewPartitions(name, 5)], request_timeout=TIMEOUT)[name].result(timeout=TIMEOUT)
    wait_until("5 partitions", lambda: partition_count(admin, name) == 5)

    with pytest.raises(KafkaException) as excinfo:
        admin.create_partitions([NewPartitions(name, 3)], request_timeout=TIMEOUT)[name].result(timeout=TIMEOUT)
    assert error_code(excinfo) == KafkaError.INVALID_PARTITIONS


def produce(bootstrap, topic, count):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False})
    errors = []
    for i in range(count):
        producer.produce(topic, value=f"m{i}".encode(), partition=0,
                         on_delivery=lambda err, _msg: err and errors.append(err))
    assert producer.flush(TIMEOUT) == 0
    assert not errors, errors


def watermarks(bootstrap, topic):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "strait-pytest", "enable.auto.commit": False})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT, cached=False)
    finally:
        consumer.close()


def test_delete_records(admin, broker):
    name = unique("trimmed")
    create(admin, name)
    produce(broker.bootstrap, name, 20)
    tp = TopicPartition(name, 0, 12)
    result = admin.delete_records([tp], request_timeout=TIMEOUT)
    deleted = next(iter(result.values())).result(timeout=TIMEOUT)
    assert deleted.low_watermark == 12
    assert watermarks(broker.bootstrap, name) == (12, 20)

    with pytest.raises(KafkaException) as excinfo:
        beyond = admin.delete_records([TopicPartition(name, 0, 50)], request_timeout=TIMEOUT)
        next(iter(beyond.values())).result(timeout=TIMEOUT)
    assert error_code(excinfo) == KafkaError.OFFSET_OUT_OF_RANGE


def test_delete_topic(admin):
    name = unique("deleted")
    create(admin, name)
    admin.delete_topics([name], request_timeout=TIMEOUT)[name].result(timeout=TIMEOUT)
    wait_until("topic gone", lambda: name not in admin.list_topics(timeout=TIMEOUT).topics)

    with pytest.raises(KafkaException) as excinfo:
        admin.delete_topics([name], request_timeout=TIMEOUT)[name].result(timeout=TIMEOUT)
    assert error_code(excinfo) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_create_existing_topic_fails(admin):
    name = unique("twice")
    create(admin, name)
    with pytest.raises(KafkaException) as excinfo:
        create(admin, name)
    assert error_code(excinfo) == KafkaError.TOPIC_ALREADY_EXISTS


def test_create_with_invalid_config_fails(admin):
    name = unique("badconfig")
    with pytest.raises(KafkaException) as excinfo:
        create(admin, name, config={"retention.ms": "forever"})
    assert error_code(excinfo) == KafkaError.INVALID_CONFIG
    assert name not in admin.list_topics(timeout=TIMEOUT).topics


def test_create_with_bad_partition_count_fails(admin):
    name = unique("badcount")
    with pytest.raises(KafkaException) as excinfo:
        create(admin, name, partitions=0)
    assert error_code(excinfo) == KafkaError.INVALID_PARTITIONS


def test_create_with_bad_replication_factor_fails(admin):
    name = unique("badrf")
    futures = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=3)], request_timeout=TIMEOUT)
    with pytest.raises(KafkaException) as excinfo:
        futures[name].result(timeout=TIMEOUT)
    assert error_code(excinfo) == KafkaError.INVALID_REPLICATION_FACTOR


def test_describe_unknown_topic_fails(admin):
    with pytest.raises(KafkaException) as excinfo:
        topic_configs(admin, unique("missing"))
    assert error_code(excinfo) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_legacy_alter_configs_replaces_the_whole_set(admin, broker):
    """AlterConfigs (non-incremental) replaces the whole set: unnamed keys return to defaults.

    librdkafka's alter_configs sends the legacy AlterConfigs API as is (kafka-python 3 would
    switch to IncrementalAlterConfigs, which merges)."""
    name = unique("legacy")
    create(admin, name, config={"retention.ms": "1000"})
    resource = ConfigResource(ResourceType.TOPIC, name, set_config={"segment.ms": "600000"})
    for f in admin.alter_configs([resource], request_timeout=TIMEOUT).values():
        f.result()
    configs = topic_configs(admin, name)
    assert configs["segment.ms"].value == "600000"
    assert configs["retention.ms"].is_default
    assert broker.alive()
