"""kafka-python and confluent-kafka over TLS and SASL.

One broker with PLAINTEXT, SSL (client certificates requested), SASL_SSL and SASL_PLAINTEXT
listeners, certificates made by tests/lib/make-test-certs.sh, the bootstrap user `admin`
(SCRAM-SHA-256 and -512) and PLAIN, SCRAM and unsecured OAUTHBEARER enabled. Each client
produces 1,000 keyed records over each mechanism and mTLS and reads them back; a wrong
password, an unknown user, an expired token and a plaintext client on the TLS port each get
their error within 10 s while the broker keeps serving.
"""

import base64
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaTimeoutError

from sluice_broker import REPO_ROOT, Broker, free_port, tail, unique

ADMIN = ("admin", "admin-secret")
RECORDS = 1000
KEYS = 37
SCRAM_FAILED = "Authentication failed during authentication due to invalid credentials with SASL mechanism"


class Secured:
    """The broker, its listener addresses and the certificate files."""

    def __init__(self, root):
        self.certs = os.path.join(root, "certs")
        subprocess.run(
            [str(REPO_ROOT / "tests" / "lib" / "make-test-certs.sh"), self.certs],
            check=True, capture_output=True,
        )
        self.ssl_port, self.sasl_ssl_port = free_port(), free_port()
        self.broker = Broker(root, extra_args=self.serve_args)

    def serve_args(self, port):
        return [
            "--listeners",
            f"PLAINTEXT://127.0.0.1:{port},SSL://127.0.0.1:{self.ssl_port},"
            f"SASL_SSL://127.0.0.1:{self.sasl_ssl_port}",
            "--ssl-cert-file", self.cert("server.pem"),
            "--ssl-key-file", self.cert("server.key"),
            "--ssl-ca-file", self.cert("ca.pem"),
            "--ssl-client-auth", "requested",
            "--sasl-mechanisms", "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER",
            "--bootstrap-user", f"{ADMIN[0]}:{ADMIN[1]}",
        ]

    def cert(self, name):
        return os.path.join(self.certs, name)

    @property
    def plaintext(self):
        return self.broker.address

    @property
    def ssl(self):
        return f"127.0.0.1:{self.ssl_port}"

    @property
    def sasl_ssl(self):
        return f"127.0.0.1:{self.sasl_ssl_port}"


@pytest.fixture(scope="module")
def secured(request):
    root = tempfile.mkdtemp(prefix="sluice-python-security-")
    s = Secured(root)
    s.broker.start()
    failed_before = request.session.testsfailed
    yield s
    s.broker.stop()
    if request.session.testsfailed > failed_before:
        print(f"\n--- sluice broker log {s.broker.log_path} (last 200 lines) ---\n{tail(s.broker.log_path)}\n---")
    elif not os.environ.get("SLUICE_KEEP_DATA"):
        shutil.rmtree(root, ignore_errors=True)


def create_topic(secured, partitions=4):
    topic = unique("secure")
    admin = AdminClient({"bootstrap.servers": secured.plaintext})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(timeout=30)
    return topic


def sent_records():
    return [(f"key-{i % KEYS}", f"value-{i}") for i in range(RECORDS)]


def assert_read_back(received):
    """`received` (partition, key, value) holds every sent record: each key on one
    partition, its values in the order sent."""
    assert len(received) == RECORDS
    by_key = {}
    for partition, key, value in received:
        partitions, values = by_key.setdefault(key, (set(), []))
        partitions.add(partition)
        values.append(value)
    assert len(by_key) == KEYS
    for key, (partitions, values) in by_key.items():
        assert len(partitions) == 1, f"{key} on {partitions}"
        assert values == [v for k, v in sent_records() if k == key], key


def unsecured_jwt(subject, expires_in):
    """An unsecured JWT (RFC 7515 `alg: none`), as OAUTHBEARER without a signing key."""
    def part(claims):
        return base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    now = int(time.time())
    return f"{part({'alg': 'none'})}.{part({'sub': subject, 'iat': now - 60, 'exp': now + expires_in})}."


# --- kafka-python ------------------------------------------------------------------------------


def kafka_python_settings(secured, how):
    if how == "mtls":
        return dict(
            bootstrap_servers=secured.ssl, security_protocol="SSL", ssl_cafile=secured.cert("ca.pem"),
            ssl_certfile=secured.cert("client.pem"), ssl_keyfile=secured.cert("client.key"),
        )
    return dict(
        bootstrap_servers=secured.sasl_ssl, security_protocol="SASL_SSL", ssl_cafile=secured.cert("ca.pem"),
        sasl_mechanism=how, sasl_plain_username=ADMIN[0], sasl_plain_password=ADMIN[1],
    )


@pytest.mark.parametrize("how", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "mtls"])
def test_kafka_python_produces_and_reads_back_keyed_records(secured, how):
    topic = create_topic(secured)
    settings = kafka_python_settings(secured, how)
    producer = KafkaProducer(acks="all", **settings)
    try:
        futures = [producer.send(topic, key=k.encode(), value=v.encode()) for k, v in sent_records()]
        producer.flush(30)
        assert all(f.get(timeout=30).offset >= 0 for f in futures)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        topic, group_id=unique("group"), auto_offset_reset="earliest", consumer_timeout_ms=10_000, **settings
    )
    try:
        received = []
        deadline = time.monotonic() + 30
        while len(received) < RECORDS and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                received.extend((r.partition, r.key.decode(), r.value.decode()) for r in records)
    finally:
        consumer.close()
    assert_read_back(received)


@pytest.mark.parametrize(
    "what,settings,logged",
    [
        ("wrong password", dict(sasl_mechanism="SCRAM-SHA-256", sasl_plain_password="wrong"),
         f"SaslAuthenticationFailedError: {SCRAM_FAILED} SCRAM-SHA-256"),
        ("unknown user", dict(sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="nobody"),
         f"SaslAuthenticationFailedError: {SCRAM_FAILED} SCRAM-SHA-512"),
        ("wrong PLAIN password", dict(sasl_mechanism="PLAIN", sasl_plain_password="wrong"),
         "SaslAuthenticationFailedError: Authentication failed: Invalid username or password"),
    ],
)
def test_kafka_python_gets_the_authentication_error_within_10s(secured, caplog, what, settings, logged):
    caplog.set_level(logging.ERROR, logger="kafka")
    config = {**kafka_python_settings(secured, "SCRAM-SHA-256"), **settings}
    started = time.monotonic()
    with pytest.raises(KafkaTimeoutError):
        KafkaAdminClient(bootstrap_timeout_ms=5000, **config)
    assert time.monotonic() - started < 10
    assert any(logged in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
    # The broker still serves.
    KafkaAdminClient(**kafka_python_settings(secured, "SCRAM-SHA-256")).close()


def test_kafka_python_in_plaintext_on_the_tls_port_fails_within_10s(secured):
    started = time.monotonic()
    with pytest.raises(KafkaTimeoutError):
        KafkaAdminClient(bootstrap_servers=secured.ssl, bootstrap_timeout_ms=5000)
    assert time.monotonic() - started < 10
    assert f"plaintext client on TLS listener SSL://{secured.ssl}" in tail(secured.broker.log_path, 10_000)
    KafkaAdminClient(bootstrap_servers=secured.plaintext).close()


# --- confluent-kafka ---------------------------------------------------------------------------


def confluent_settings(secured, how, **extra):
    if how == "mtls":
        base = {
            "bootstrap.servers": secured.ssl, "security.protocol": "SSL",
            "ssl.ca.location": secured.cert("ca.pem"),
            "ssl.certificate.location": secured.cert("client.pem"),
            "ssl.key.location": secured.cert("client.key"),
        }
    elif how == "OAUTHBEARER":
        token = unsecured_jwt("alice", 3600)
        base = {
            "bootstrap.servers": secured.sasl_ssl, "security.protocol": "SASL_SSL",
            "ssl.ca.location": secured.cert("ca.pem"), "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": lambda _config: (token, time.time() + 3600, "alice"),
        }
    else:
        base = {
            "bootstrap.servers": secured.sasl_ssl, "security.protocol": "SASL_SSL",
            "ssl.ca.location": secured.cert("ca.pem"), "sasl.mechanism": how,
            "sasl.username": ADMIN[0], "sasl.password": ADMIN[1],
        }
    return {**base, **extra}


@pytest.mark.parametrize("how", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "mtls"])
def test_confluent_kafka_produces_and_reads_back_keyed_records(secured, how):
    topic = create_topic(secured)
    delivered = []
    producer = Producer(confluent_settings(secured, how, acks="all"))
    for key, value in sent_records():
        producer.produce(topic, key=key, value=value, on_delivery=lambda err, msg: delivered.append(err))
        producer.poll(0)
    assert producer.flush(30) == 0
    assert delivered == [None] * RECORDS
    consumer = Consumer(
        confluent_settings(secured, how, **{"group.id": unique("group"), "auto.offset.reset": "earliest"})
    )
    try:
        consumer.subscribe([topic])
        received = []
        deadline = time.monotonic() + 30
        while len(received) < RECORDS and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=500, timeout=1):
                assert m.error() is None, m.error()
                received.append((m.partition(), m.key().decode(), m.value().decode()))
    finally:
        consumer.close()
    assert_read_back(received)


def first_error(settings):
    """The first error librdkafka reports for a producer with `settings`, and how long it
    took (None after 10 s)."""
    errors = []
    started = time.monotonic()
    producer = Producer({**settings, "error_cb": lambda e: errors.append((e, time.monotonic() - started))})
    while not errors and time.monotonic() - started < 10:
        producer.poll(0.1)
    return errors[0] if errors else (None, None)


@pytest.mark.parametrize(
    "what,how,extra,message",
    [
        ("wrong password", "SCRAM-SHA-256", {"sasl.password": "wrong"}, f"{SCRAM_FAILED} SCRAM-SHA-256"),
        ("unknown user", "SCRAM-SHA-512", {"sasl.username": "nobody"}, f"{SCRAM_FAILED} SCRAM-SHA-512"),
        ("expired token", "OAUTHBEARER", {}, '{"status":"invalid_token"}'),
    ],
)
def test_confluent_kafka_gets_the_authentication_error_within_10s(secured, what, how, extra, message):
    settings = confluent_settings(secured, how, **extra)
    if what == "expired token":
        expired = unsecured_jwt("alice", -3600)
        # librdkafka is told the token is good for an hour; the broker reads its `exp`.
        settings["oauth_cb"] = lambda _config: (expired, time.time() + 3600, "alice")
    error, elapsed = first_error(settings)
    assert error is not None, "no error within 10 s"
    assert error.code() == KafkaError._AUTHENTICATION, error
    assert message in error.str(), error.str()
    assert elapsed < 10
    # The broker still serves.
    AdminClient(confluent_settings(secured, "SCRAM-SHA-256")).list_topics(timeout=10)


def test_confluent_kafka_in_plaintext_on_the_tls_port_fails_within_10s(secured):
    error, elapsed = first_error({"bootstrap.servers": secured.ssl})
    assert error is not None, "no error within 10 s"
    assert error.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN), error
    assert elapsed < 10
    AdminClient({"bootstrap.servers": secured.plaintext}).list_topics(timeout=10)
