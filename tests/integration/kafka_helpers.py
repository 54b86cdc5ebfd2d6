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

from streamflow.testing.processes import StreamflowProcess

__all__ = ["ROOT", "StreamflowProcess", "produce", "read_all", "wait_for", "write_module"]

ROOT = Path(__file__).resolve().parents[2]


def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes | None]],
            partition: int | None = None) -> int:
    """Produce ``(key, value)`` pairs and wait for all acknowledgements."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10, "partitioner": "murmur2_random"})
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
             settle: float = 2.0) -> list[Any]:
    """Read ``topic`` from the start (read_committed) until at least ``expect`` records have
    arrived and nothing new came for ``settle`` seconds, or ``timeout`` passes."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"verify-{uuid.uuid4()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
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
