"""confluent-kafka-python against a live Sluice broker.

confluent-kafka wraps the librdkafka it ships in its wheel (2.16 for confluent-kafka 2.16.1),
newer than the one the Rust tests link, so these tests also cover the request versions a
current librdkafka negotiates. The module runs against one broker (the `broker` fixture of
conftest.py).
"""

import time

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType
from kafka.partitioner.default import murmur2

from sluice_broker import unique

BASE_TS = 1_704_164_645_000  # 2024-01-02T03:04:05Z
TIMEOUT = 20.0


@pytest.fixture
def consumers():
    """Collects consumers to close after the test, even when it fails."""
    made = []
    yield made
    for c in made:
        c.close()


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.address})


def create_topic(broker, topic, partitions, config=None):
    client = admin(broker)  # kept alive until the result: a dropped client fails its futures
    futures = client.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=TIMEOUT,
    )
    futures[topic].result(TIMEOUT)


def produce_all(producer, topic, records):
    """Produces (key, value, partition or None, headers) records and returns each
    delivery's (partition, offset), in order."""
    delivered = [None] * len(records)

    def report(index):
        def on_delivery(err, msg):
            assert err is None, err
            delivered[index] = (msg.partition(), msg.offset())

        return on_delivery

    for i, (key, value, partition, headers) in enumerate(records):
        extra = {} if partition is None else {"partition": partition}
        producer.produce(
            topic, value=value, key=key, timestamp=BASE_TS + i, headers=headers,
            on_delivery=report(i), **extra,
        )
    assert producer.flush(TIMEOUT) == 0
    return delivered


def read_assigned(broker, consumers, topic, partitions, count, **config):
    """Reads `count` records from the beginning of `partitions` by assignment, as
    (partition, offset, key, value, headers, timestamp) sorted by partition and offset."""
    consumer = Consumer({
        "bootstrap.servers": broker.address,
        "group.id": unique("assign"),
        "enable.auto.commit": False,
        **config,
    })
    consumers.append(consumer)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    return poll_exactly(consumer, count)


def poll_exactly(consumer, count, settle=0.7):
    """Polls until `count` records arrived, then a little longer to catch extra ones; returns
    them as (partition, offset, key, value, headers, timestamp), sorted."""
    records = []

    def poll_once():
        for msg in consumer.consume(num_messages=count, timeout=0.2):
            assert msg.error() is None, msg.error()
            records.append((
                msg.partition(), msg.offset(), msg.key(), msg.value(),
                msg.headers() or [], msg.timestamp(),
            ))

    deadline = time.monotonic() + TIMEOUT
    while len(records) < count:
        assert time.monotonic() < deadline, f"timed out with {len(records)} of {count} records: {records}"
        poll_once()
    settle_until = time.monotonic() + settle
    while time.monotonic() < settle_until:
        poll_once()
    return sorted(records)


def test_produce_with_keys_headers_and_partitions_then_read_back_exactly(broker, consumers):
    topic = unique("ck-produce")
    create_topic(broker, topic, 3)
    producer = Producer({
        "bootstrap.servers": broker.address,
        "partitioner": "murmur2_random",  # the Java client's partitioner
        "linger.ms": 0,
    })
    records = [
        (b"alpha", b"v0", None, [("h1", b"x")]),
        (b"beta", b"v1", None, []),
        (b"gamma", b"v2", None, [("h1", b"y"), ("h2", b"")]),
        (None, b"v3", 2, [("only", b"header")]),
        (b"alpha", b"v4", None, []),
    ]
    delivered = produce_all(producer, topic, records)

    # Keyed records land where Kafka's murmur2 partitioner puts them, the rest where asked.
    expected_partitions = [
        (murmur2(key) & 0x7FFFFFFF) % 3 if partition is None else partition
        for key, _, partition, _ in records
    ]
    assert [p for p, _ in delivered] == expected_partitions
    # Offsets count up from 0 in each partition, in send order.
    seen = {}
    for p, offset in delivered:
        assert offset == seen.get(p, 0)
        seen[p] = offset + 1

    got = read_assigned(broker, consumers, topic, [0, 1, 2], len(records))
    expected = sorted(
        (p, offset, key, value, headers, (TIMESTAMP_CREATE_TIME, BASE_TS + i))
        for i, ((key, value, _, headers), (p, offset)) in enumerate(zip(records, delivered))
    )
    assert got == expected


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_round_trip(broker, consumers, codec):
    topic = unique(f"ck-{codec}")
    create_topic(broker, topic, 1)
    producer = Producer({
        "bootstrap.servers": broker.address,
        "compression.type": codec,
        "linger.ms": 50,  # one compressed batch of all records
    })
    records = [(f"k{i}".encode(), f"value {i} ".encode() * 20, 0, []) for i in range(50)]
    delivered = produce_all(producer, topic, records)
    assert delivered == [(0, i) for i in range(50)]

    got = read_assigned(broker, consumers, topic, [0], 50)
    assert [(offset, key, value) for _, offset, key, value, _, _ in got] == [
        (i, key, value) for i, (key, value, _, _) in enumerate(records)
    ]


def test_watermarks_and_offsets_for_times(broker, consumers):
    topic = unique("ck-offsets")
    create_topic(broker, topic, 1)
    producer = Producer({"bootstrap.servers": broker.address, "linger.ms": 0})
    produce_all(producer, topic, [(b"k", f"v{i}".encode(), 0, []) for i in range(4)])

    consumer = Consumer({"bootstrap.servers": broker.address, "group.id": unique("ck-offsets")})
    consumers.append(consumer)
    assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT) == (0, 4)
    # Record i has timestamp BASE_TS + i: the first at or after BASE_TS + 2 is offset 2, and
    # a time past every record gives the end (-1).
    found = consumer.offsets_for_times(
        [TopicPartition(topic, 0, BASE_TS + 2)], timeout=TIMEOUT
    )
    assert [(tp.partition, tp.offset) for tp in found] == [(0, 2)]
    found = consumer.offsets_for_times(
        [TopicPartition(topic, 0, BASE_TS + 1000)], timeout=TIMEOUT
    )
    assert [(tp.partition, tp.offset) for tp in found] == [(0, -1)]


def test_group_commits_and_a_new_member_resumes_after_them(broker, consumers):
    topic = unique("ck-group")
    group = unique("ck-group")
    create_topic(broker, topic, 2)
    producer = Producer({"bootstrap.servers": broker.address, "linger.ms": 0})
    produce_all(producer, topic, [(b"k", f"first-{i}".encode(), i % 2, []) for i in range(6)])

    config = {
        "bootstrap.servers": broker.address,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    first = Consumer(config)
    consumers.append(first)
    first.subscribe([topic])
    got = poll_exactly(first, 6)
    assert [(p, o, v) for p, o, _, v, _, _ in got] == [
        (0, 0, b"first-0"), (0, 1, b"first-2"), (0, 2, b"first-4"),
        (1, 0, b"first-1"), (1, 1, b"first-3"), (1, 2, b"first-5"),
    ]
    committed = first.commit(asynchronous=False)
    assert sorted((tp.partition, tp.offset) for tp in committed) == [(0, 3), (1, 3)]
    first.close()
    consumers.remove(first)

    produce_all(producer, topic, [(b"k", f"second-{i}".encode(), i % 2, []) for i in range(2)])
    second = Consumer(config)
    consumers.append(second)
    stored = second.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=TIMEOUT)
    assert sorted((tp.partition, tp.offset) for tp in stored) == [(0, 3), (1, 3)]
    second.subscribe([topic])
    got = poll_exactly(second, 2)
    assert [(p, o, v) for p, o, _, v, _, _ in got] == [(0, 3, b"second-0"), (1, 3, b"second-1")]


def test_transactions_commit_and_abort_as_read_committed_sees_them(broker, consumers):
    topic = unique("ck-txn")
    create_topic(broker, topic, 1)
    producer = Producer({
        "bootstrap.servers": broker.address,
        "transactional.id": unique("ck-txn"),
        "linger.ms": 0,
    })
    producer.init_transactions(TIMEOUT)
    outcomes = [("commit", [b"a", b"b"]), ("abort", [b"x", b"y"]), ("commit", [b"c", b"d"])]
    for outcome, values in outcomes:
        producer.begin_transaction()
        for v in values:
            producer.produce(topic, value=v, partition=0)
        producer.flush(TIMEOUT)
        if outcome == "commit":
            producer.commit_transaction(TIMEOUT)
        else:
            producer.abort_transaction(TIMEOUT)

    # Each transaction ends with a marker that takes an offset: a, b, [commit], x, y,
    # [abort], c, d, [commit].
    committed = read_assigned(
        broker, consumers, topic, [0], 4, **{"isolation.level": "read_committed"}
    )
    assert [(o, v) for _, o, _, v, _, _ in committed] == [(0, b"a"), (1, b"b"), (6, b"c"), (7, b"d")]
    everything = read_assigned(
        broker, consumers, topic, [0], 6, **{"isolation.level": "read_uncommitted"}
    )
    assert [(o, v) for _, o, _, v, _, _ in everything] == [
        (0, b"a"), (1, b"b"), (3, b"x"), (4, b"y"), (6, b"c"), (7, b"d"),
    ]


def test_admin_creates_describes_and_deletes_topics(broker):
    topic = unique("ck-admin")
    client = admin(broker)
    create_topic(broker, topic, 4, config={"retention.ms": "3600000"})

    metadata = client.list_topics(topic, timeout=TIMEOUT)
    assert sorted(metadata.topics[topic].partitions) == [0, 1, 2, 3]

    with pytest.raises(KafkaException) as exists:
        create_topic(broker, topic, 1)
    assert exists.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = client.describe_configs([resource])[resource].result(TIMEOUT)
    assert configs["retention.ms"].value == "3600000"
    assert configs["cleanup.policy"].value == "delete"

    client.delete_topics([topic], operation_timeout=TIMEOUT)[topic].result(TIMEOUT)
    assert topic not in client.list_topics(timeout=TIMEOUT).topics
