"""Smoke tests of the integration stack itself: the broker, transactions, and the registry.

They check the environment the other integration tests rely on (a KRaft Kafka with working
transactions and a Confluent-compatible registry enforcing BACKWARD compatibility), using
confluent-kafka directly rather than streamflow.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from streamflow.testing.plugin import NewTopic
from tests.integration.kafka_helpers import confluent_registry, confluent_serializer

pytestmark = pytest.mark.integration

PAYMENT_V1 = {
    "type": "record",
    "name": "Payment",
    "namespace": "dev.streamflow.smoke",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "amount", "type": "double"},
    ],
}


def _payment(extra_fields: list[dict[str, Any]]) -> str:
    fields: list[Any] = [*PAYMENT_V1["fields"], *extra_fields]
    return json.dumps({**PAYMENT_V1, "fields": fields})


def _value(msg: Message) -> bytes:
    value = msg.value()
    assert value is not None
    return value


def _text(msg: Message) -> str:
    return _value(msg).decode()


def _consume(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[Message]], bool],
    isolation: str = "read_committed",
    timeout: float = 30.0,
) -> list[Message]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"sf-smoke-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    consumer.subscribe([topic])
    received: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while not until(received):
            assert time.monotonic() < deadline, (
                f"timed out after {timeout}s with {len(received)} record(s) from {topic}"
            )
            for msg in consumer.consume(num_messages=100, timeout=0.5):
                error = msg.error()
                if error is not None:
                    assert error.code() == KafkaError._PARTITION_EOF, error
                    continue
                received.append(msg)
    finally:
        consumer.close()
    return received


@pytest.fixture
def registry(schema_registry_url: str) -> SchemaRegistryClient:
    return confluent_registry(schema_registry_url)


@pytest.fixture
def subject(registry: SchemaRegistryClient) -> Iterator[str]:
    name = f"sf-smoke-{uuid.uuid4().hex[:10]}-value"
    yield name
    _delete_subject(registry, name)


def _delete_subject(registry: SchemaRegistryClient, subject: str) -> None:
    for permanent in (False, True):  # soft delete first, as the Confluent API requires
        with contextlib.suppress(SchemaRegistryError):
            registry.delete_subject(subject, permanent=permanent)


def test_produce_and_consume(kafka_bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic(partitions=3)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5})
    sent = {f"key-{i}": f"value-{i}" for i in range(50)}
    for key, value in sent.items():
        producer.produce(topic, key=key.encode(), value=value.encode())
    assert producer.flush(30) == 0

    messages = _consume(kafka_bootstrap, topic, until=lambda got: len(got) >= len(sent))
    received = {(m.key() or b"").decode(): _text(m) for m in messages}
    assert received == sent
    assert {m.partition() for m in messages} <= {0, 1, 2}


def test_read_committed_sees_only_committed_transactions(
    kafka_bootstrap: str, new_topic: NewTopic
) -> None:
    topic = new_topic()
    producer = Producer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "transactional.id": f"sf-smoke-tx-{uuid.uuid4().hex[:8]}",
            "enable.idempotence": True,
        }
    )
    producer.init_transactions(30)

    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, value=f"committed-a-{i}".encode())
    producer.commit_transaction(30)

    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, value=f"aborted-{i}".encode())
    producer.flush(30)  # the aborted records really reach the log
    producer.abort_transaction(30)

    producer.begin_transaction()
    for i in range(2):
        producer.produce(topic, value=f"committed-b-{i}".encode())
    producer.commit_transaction(30)

    def saw_last(got: list[Message]) -> bool:
        return any(m.value() == b"committed-b-1" for m in got)

    committed = [_text(m) for m in _consume(kafka_bootstrap, topic, until=saw_last)]
    assert committed == [
        "committed-a-0",
        "committed-a-1",
        "committed-a-2",
        "committed-b-0",
        "committed-b-1",
    ]

    # read_uncommitted also returns the aborted records: the abort really happened in the log
    everything = _consume(kafka_bootstrap, topic, until=saw_last, isolation="read_uncommitted")
    values = [_text(m) for m in everything]
    assert [v for v in values if v.startswith("aborted-")] == [
        "aborted-0",
        "aborted-1",
        "aborted-2",
    ]


def test_avro_roundtrip_through_the_registry(
    kafka_bootstrap: str, new_topic: NewTopic, registry: SchemaRegistryClient
) -> None:
    topic = new_topic()
    subject = f"{topic}-value"
    serializer = confluent_serializer(registry, json.dumps(PAYMENT_V1))
    deserializer = AvroDeserializer(registry)
    records: list[dict[str, Any]] = [{"id": f"p-{i}", "amount": i * 1.5} for i in range(5)]

    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    ctx = SerializationContext(topic, MessageField.VALUE)
    for record in records:
        producer.produce(topic, key=str(record["id"]).encode(), value=serializer(record, ctx))
    assert producer.flush(30) == 0

    try:
        latest = registry.get_latest_version(subject)
        assert latest.schema_id is not None and latest.schema_id > 0
        assert "Payment" in (latest.schema.schema_str or "")

        messages = _consume(kafka_bootstrap, topic, until=lambda got: len(got) >= len(records))
        payloads = [_value(m) for m in messages]
        # Confluent wire format: magic byte 0, then the 4-byte big-endian schema id
        assert all(
            p[0] == 0 and int.from_bytes(p[1:5], "big") == latest.schema_id for p in payloads
        )
        decoded = [deserializer(p, ctx) for p in payloads]
        assert decoded == records
    finally:
        _delete_subject(registry, subject)


def test_backward_incompatible_schema_is_refused(
    registry: SchemaRegistryClient, subject: str
) -> None:
    assert registry.get_compatibility().upper() == "BACKWARD"
    first_id = registry.register_schema(subject, Schema(_payment([]), "AVRO"))
    assert first_id > 0

    # a new field without a default cannot read old data: BACKWARD refuses it
    breaking = Schema(_payment([{"name": "currency", "type": "string"}]), "AVRO")
    assert registry.test_compatibility(subject, breaking) is False
    with pytest.raises(SchemaRegistryError) as refused:
        registry.register_schema(subject, breaking)
    assert refused.value.http_status_code == 409, refused.value
    assert [v for v in registry.get_versions(subject)] == [1]

    # the same field with a default is a compatible evolution
    evolved = Schema(_payment([{"name": "currency", "type": "string", "default": "EUR"}]), "AVRO")
    assert registry.test_compatibility(subject, evolved) is True
    second_id = registry.register_schema(subject, evolved)
    assert second_id != first_id
    assert registry.get_versions(subject) == [1, 2]
