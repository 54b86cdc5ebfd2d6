"""The test driver's partitioner picks the partition the real producer picks."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from streamflow.testing.memory import partition_for
from streamflow.testing.plugin import NewTopic

from .kafka_helpers import read_all

pytestmark = pytest.mark.integration


def test_the_drivers_partitioner_agrees_with_librdkafkas_murmur2(
        kafka_bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic(partitions=7)
    keys = [f"key-{i}".encode() for i in range(200)] + [b"", b"x", "ключ".encode()]
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    for k in keys:
        producer.produce(topic, b"v", k)
    assert producer.flush(30) == 0
    msgs = read_all(kafka_bootstrap, topic, expect=len(keys))
    placed = {m.key(): m.partition() for m in msgs}
    assert len(placed) == len(keys)
    assert {k: partition_for(k, 7) for k in keys} == placed
