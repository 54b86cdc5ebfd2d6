"""Helpers for integration tests: produce, read back, and run ``streamflow`` as a subprocess."""

from __future__ import annotations

import textwrap
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroSerializer

from streamflow.testing.processes import StreamflowProcess

__all__ = ["ROOT", "StreamflowProcess", "produce", "read_all", "wait_for", "write_module"]

ROOT = Path(__file__).resolve().parents[2]


def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes | None]],
            partition: int | None = None, *, conf: dict[str, Any] | None = None) -> int:
    """Produce ``(key, value)`` pairs and wait for all acknowledgements.

    ``conf``: more client settings (a secured cluster's SASL and TLS ones).
    """
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10, "partitioner": "murmur2_random",
                  **(conf or {})})
    n = 0
    errors: list[str] = []

    def cb(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for key, value in records:
        while True:
            try:
                if partition is None:
                    p.produce(topic, value, key, on_delivery=cb)
                else:
                    p.produce(topic, value, key, partition=partition, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.1)
        n += 1
        if n % 10000 == 0:
            p.poll(0)
    assert p.flush(60) == 0, "records not acknowledged"
    assert not errors, errors
    return n


def read_all(bootstrap: str, topic: str, *, expect: int, timeout: float = 120.0,
             settle: float = 2.0, conf: dict[str, Any] | None = None) -> list[Any]:
    """Read ``topic`` from the start (read_committed) until at least ``expect`` records have
    arrived and nothing new came for ``settle`` seconds, or ``timeout`` passes.

    ``conf``: more client settings (a secured cluster's SASL and TLS ones)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"verify-{uuid.uuid4()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": "read_committed", **(conf or {})})
    c.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msgs = c.consume(1000, 0.5)
            for m in msgs:
                if m.error() is None:
                    out.append(m)
            if msgs:
                last_new = time.monotonic()
                if settle <= 0 and len(out) >= expect:
                    break
            elif len(out) >= expect and time.monotonic() - last_new >= settle:
                break
    finally:
        c.close()
    return out


def write_module(tmp: Path, name: str, body: str) -> str:
    """Write a topology module into ``tmp`` and return its module name."""
    (tmp / f"{name}.py").write_text(textwrap.dedent(body))
    return name


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``check()`` held (polled every 0.2 s); fails the test after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout}s")


def confluent_registry(url: str) -> SchemaRegistryClient:
    """confluent-kafka's own registry client, as a user's producer builds it, with a timeout.

    Its default timeout is none: a request the registry never answers (seen once in CI, on a
    kept-alive connection) would hang the test for ten minutes instead of being retried.
    """
    return SchemaRegistryClient({"url": url, "timeout": 10})


def confluent_serializer(registry: SchemaRegistryClient, schema_str: str) -> AvroSerializer:
    """confluent-kafka's AvroSerializer with the topic name strategy stated.

    Since 2.16 its default first asks the registry for the topic's "associations" (an endpoint
    Apicurio does not have: a 404, then the topic name anyway); stating the strategy skips that
    extra request, which is the one that hung.
    """
    return AvroSerializer(registry, schema_str,
                          conf={"subject.name.strategy": topic_subject_name_strategy})
