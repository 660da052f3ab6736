"""kafka-python against a live Sluice broker (issue 6).

Each scenario runs with the versions kafka-python negotiates through ApiVersions (the newest
both sides support) and again with `api_version` pinned to old brokers, as deployed clients
still do, so that the broker's legacy request versions and message formats are exercised:

    negotiated   newest versions, message format v2
    0.10.1       Produce v2 / Fetch v3 (message format v1), ListOffsets v1, Metadata v2,
                 JoinGroup v1, CreateTopics v0 (no ApiVersions request)
    0.9          Produce v1 / Fetch v1 (message format v0, no timestamps), ListOffsets v0,
                 Metadata v0, JoinGroup v0 (no ApiVersions request)
    *-gzip       the same with gzip-compressed message sets (wrapper messages)

The module runs against one broker (the `broker` fixture of conftest.py).
"""

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import TopicAlreadyExistsError
from kafka.partitioner.default import murmur2

from sluice_broker import unique

NODE_ID = 1  # `sluice serve` default --node-id
BASE_TS = 1_704_164_645_000  # 2024-01-02T03:04:05Z: fixed timestamps make records comparable


@pytest.fixture
def clients():
    """Collects clients to close after the test, even when it fails."""
    made = []
    yield made
    for c in reversed(made):
        try:
            c.close()
        except Exception:  # closing is best effort
            pass


class Variant:
    """How the clients of one test run talk to the broker."""

    def __init__(self, name, api_version=None, compression=None):
        self.name = name
        self.api_version = api_version
        self.compression = compression

    @property
    def magic(self):
        """The message format the producer writes and the consumer fetches."""
        if self.api_version is None or self.api_version >= (0, 11):
            return 2
        return 1 if self.api_version >= (0, 10, 0) else 0

    def produced_timestamp(self, ts):
        """RecordMetadata.timestamp of a record sent with timestamp_ms=ts (CreateTime)."""
        return ts if self.magic >= 1 else -1

    def consumed_timestamp(self, ts):
        """ConsumerRecord.timestamp of that record (message format v0 has none)."""
        return ts if self.magic >= 1 else None

    def config(self, **config):
        if self.api_version is not None:
            config["api_version"] = self.api_version
        return config


NEGOTIATED = Variant("negotiated")
V0_10_1 = Variant("0.10.1", (0, 10, 1))
V0_10_1_GZIP = Variant("0.10.1-gzip", (0, 10, 1), "gzip")
V0_9 = Variant("0.9", (0, 9))
V0_9_GZIP = Variant("0.9-gzip", (0, 9), "gzip")
NEGOTIATED_GZIP = Variant("negotiated-gzip", None, "gzip")


def variants(*vs):
    return pytest.mark.parametrize("variant", vs, ids=[v.name for v in vs])


def admin_client(broker, clients, variant=NEGOTIATED):
    admin = KafkaAdminClient(
        **variant.config(bootstrap_servers=broker.address, client_id="sluice-python-admin", request_timeout_ms=10_000)
    )
    clients.append(admin)
    return admin


def create_topic(broker, clients, topic, partitions):
    result = admin_client(broker, clients).create_topics(
        {topic: {"num_partitions": partitions, "replication_factor": 1}}, wait_for_metadata=True
    )
    assert [(t["name"], t["error_code"]) for t in result["topics"]] == [(topic, 0)]


def producer_client(broker, clients, variant=NEGOTIATED, **config):
    producer = KafkaProducer(
        **variant.config(
            bootstrap_servers=broker.address,
            client_id="sluice-python-producer",
            acks="all",
            linger_ms=0,
            request_timeout_ms=10_000,
            max_block_ms=10_000,
            compression_type=variant.compression,
            **config,
        )
    )
    clients.append(producer)
    return producer


def consumer_client(broker, clients, topic, group_id, variant=NEGOTIATED, **config):
    consumer = KafkaConsumer(
        **variant.config(
            bootstrap_servers=broker.address,
            client_id="sluice-python-consumer",
            group_id=group_id,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=500,
            fetch_max_wait_ms=100,
            request_timeout_ms=15_000,
            **config,
        )
    )
    clients.append(consumer)
    # Learn the topic's partitions before subscribing. A kafka-python 3.0.12 consumer that
    # subscribes at construction can join the group before its first metadata answer
    # arrives (its range assignor then assigns nothing); the rejoin that follows, when it
    # completes after a poll() has already timed out, is never applied: its debug log
    # shows SyncGroup answered with every partition and no "Setting newly assigned
    # partitions", then no fetches. The broker's answers are the same either way.
    assert consumer.partitions_for_topic(topic), f"no metadata for {topic}"
    consumer.subscribe([topic])
    clients.append(consumer)
    return consumer


def as_tuple(record):
    key = None if record.key is None else record.key.decode()
    value = None if record.value is None else record.value.decode()
    return (record.partition, record.offset, key, value, record.timestamp)


def poll_exactly(consumer, count, timeout=20.0, settle=0.7):
    """Polls until `count` records arrived, then `settle` seconds more to catch extras."""
    records = []
    deadline = time.monotonic() + timeout
    while len(records) < count:
        assert time.monotonic() < deadline, f"timed out with {len(records)} of {count} records: {records}"
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(as_tuple(r) for r in batch)
    settle_until = time.monotonic() + settle
    while time.monotonic() < settle_until:
        for batch in consumer.poll(timeout_ms=100).values():
            records.extend(as_tuple(r) for r in batch)
    return sorted(records)


def produce(broker, clients, topic, records, variant=NEGOTIATED):
    """Sends (partition, key, value, timestamp) records; returns their RecordMetadata in order."""
    producer = producer_client(broker, clients, variant)
    futures = [
        producer.send(topic, key=k.encode(), value=v.encode(), partition=p, timestamp_ms=ts)
        for (p, k, v, ts) in records
    ]
    producer.flush(timeout=12)
    return [f.get(timeout=1) for f in futures]


@variants(NEGOTIATED, V0_10_1)
def test_admin_create_topics_and_list_topics(broker, clients, variant):
    topic = unique("py-admin")
    other = unique("py-admin-other")
    admin = admin_client(broker, clients, variant)

    result = admin.create_topics(
        {topic: {"num_partitions": 3, "replication_factor": 1}, other: {"num_partitions": 1, "replication_factor": 1}},
        wait_for_metadata=True,
    )
    assert sorted((t["name"], t["error_code"]) for t in result["topics"]) == sorted([(topic, 0), (other, 0)])

    names = admin.list_topics()
    assert topic in names and other in names
    assert len(names) == len(set(names))

    [described] = admin.describe_topics([topic])
    assert described["name"] == topic
    assert described["error_code"] == 0
    partitions = sorted(described["partitions"], key=lambda p: p["partition_index"])
    assert [(p["partition_index"], p["leader_id"], p["replica_nodes"], p["isr_nodes"]) for p in partitions] == [
        (i, NODE_ID, [NODE_ID], [NODE_ID]) for i in range(3)
    ]

    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
    again = admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}}, raise_errors=False)
    assert [(t["name"], t["error_code"]) for t in again["topics"]] == [(topic, TopicAlreadyExistsError.errno)]


@variants(NEGOTIATED, NEGOTIATED_GZIP, V0_10_1, V0_10_1_GZIP, V0_9, V0_9_GZIP)
def test_producer_send_with_key_and_partition_returns_offsets(broker, clients, variant):
    topic = unique("py-produce")
    create_topic(broker, clients, topic, 3)

    records = [
        (0, "k-a", "v-a", BASE_TS),
        (2, "k-b", "v-b", BASE_TS + 1),
        (0, "k-c", "v-c", BASE_TS + 2),
        (1, "k-d", "v-d", BASE_TS + 3),
        (2, "k-e", "v-e", BASE_TS + 4),
        (2, "k-f", "v-f", BASE_TS + 5),
    ]
    metadata = produce(broker, clients, topic, records, variant)
    ts = variant.produced_timestamp
    assert [(m.topic, m.partition, m.offset, m.timestamp) for m in metadata] == [
        (topic, 0, 0, ts(BASE_TS)),
        (topic, 2, 0, ts(BASE_TS + 1)),
        (topic, 0, 1, ts(BASE_TS + 2)),
        (topic, 1, 0, ts(BASE_TS + 3)),
        (topic, 2, 1, ts(BASE_TS + 4)),
        (topic, 2, 2, ts(BASE_TS + 5)),
    ]

    # Without a partition: kafka-python's default partitioner (murmur2 of the key).
    producer = producer_client(broker, clients, variant)
    key = b"keyed-record"
    meta = producer.send(topic, key=key, value=b"keyed-value", timestamp_ms=BASE_TS + 9).get(timeout=12)
    expected_partition = (murmur2(key) & 0x7FFFFFFF) % 3
    next_offset = {0: 2, 1: 1, 2: 3}[expected_partition]
    assert (meta.partition, meta.offset, meta.timestamp) == (expected_partition, next_offset, ts(BASE_TS + 9))

    # The end offsets agree (ListOffsets of the variant's version).
    consumer = KafkaConsumer(**variant.config(bootstrap_servers=broker.address, request_timeout_ms=15_000))
    clients.append(consumer)
    ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(3)])
    expected_ends = {0: 2, 1: 1, 2: 3}
    expected_ends[expected_partition] += 1
    assert {tp.partition: offset for tp, offset in ends.items()} == expected_ends


def test_admin_describe_log_dirs_reports_each_partitions_size_on_disk(broker, clients):
    topic = unique("py-logdirs")
    create_topic(broker, clients, topic, 2)
    produce(broker, clients, topic, [
        (0, "k-a", "v-a", BASE_TS),
        (0, "k-b", "v-b", BASE_TS + 1),
        (1, "k-c", "v" * 500, BASE_TS + 2),
    ])
    data_dir = broker.root / "data"

    def on_disk(partition):
        return sum(f.stat().st_size for f in (data_dir / f"{topic}-{partition}").glob("*.log"))

    admin = admin_client(broker, clients)
    # Partition 7 does not exist: left out, as Kafka does.
    [per_broker] = admin.describe_log_dirs({topic: [0, 1, 7]})
    [log_dir] = per_broker["log_dirs"]
    assert (log_dir["error_code"], log_dir["log_dir"]) == (0, str(data_dir))
    described = [
        (t["name"], [(p["partition_index"], p["partition_size"], p["offset_lag"], p["is_future_key"])
                     for p in t["partitions"]])
        for t in log_dir["topics"]
    ]
    assert described == [(topic, [(0, on_disk(0), 0, False), (1, on_disk(1), 0, False)])]
    assert 0 < on_disk(0) < on_disk(1)
    assert 0 < log_dir["usable_bytes"] <= log_dir["total_bytes"]

    # No topics named: every partition on the broker, this topic's among them.
    [everything] = admin.describe_log_dirs()[0]["log_dirs"]
    sizes = {(t["name"], p["partition_index"]): p["partition_size"]
             for t in everything["topics"] for p in t["partitions"]}
    assert (sizes[(topic, 0)], sizes[(topic, 1)]) == (on_disk(0), on_disk(1))


@variants(NEGOTIATED, V0_10_1, V0_10_1_GZIP, V0_9, V0_9_GZIP)
def test_group_consumer_consumes_commits_and_a_second_member_resumes(broker, clients, variant):
    topic = unique("py-group")
    group = unique("py-group-id")
    create_topic(broker, clients, topic, 3)
    ts = variant.consumed_timestamp

    first = [(i % 3, f"key-{i}", f"first-{i}", BASE_TS + i) for i in range(9)]
    produce(broker, clients, topic, first, variant)
    expected_first = sorted((p, i // 3, k, v, ts(t)) for i, (p, k, v, t) in enumerate(first))

    consumer = consumer_client(broker, clients, topic, group, variant)
    assert poll_exactly(consumer, len(first)) == expected_first
    assert consumer.assignment() == {TopicPartition(topic, p) for p in range(3)}

    consumer.commit()
    committed = {p: consumer.committed(TopicPartition(topic, p)) for p in range(3)}
    assert committed == {0: 3, 1: 3, 2: 3}
    consumer.close(autocommit=False)
    clients.remove(consumer)

    # The group's committed offsets as an admin sees them.
    admin = admin_client(broker, clients)
    offsets = admin.list_group_offsets(group)[group]
    assert {tp.partition: om.offset for tp, om in offsets.items() if tp.topic == topic} == {0: 3, 1: 3, 2: 3}

    second = [(i % 3, f"key-2-{i}", f"second-{i}", BASE_TS + 100 + i) for i in range(6)]
    metadata = produce(broker, clients, topic, second, variant)
    assert [(m.partition, m.offset) for m in metadata] == [(i % 3, 3 + i // 3) for i in range(6)]

    # A second consumer in the same group starts at the committed offsets: only the new records.
    resumed = consumer_client(broker, clients, topic, group, variant)
    expected_second = sorted((p, 3 + i // 3, k, v, ts(t)) for i, (p, k, v, t) in enumerate(second))
    assert poll_exactly(resumed, len(second)) == expected_second
    resumed.commit()
    assert {p: resumed.committed(TopicPartition(topic, p)) for p in range(3)} == {0: 5, 1: 5, 2: 5}
