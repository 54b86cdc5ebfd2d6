"""Error handling per phase on a real broker, with per-test names.

A processor dead-letters undecodable input (``on_deserialize_error="dead_letter"``) but fails
on a bug in its own code (``on_processing_error="fail"``): run as ``streamflow run`` under
the test's ``name_suffix``, it writes the poison record to its dead-letter topic with the
phase header, then exits 1 on the user-code exception without committing that record.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamflow.testing.admin import TopicAdmin

pytestmark = pytest.mark.integration

TOPOLOGY = '''
import streamflow as sf

topology = sf.Topology("phases")
readings = topology.topic("phases-in", key=sf.String(), value=sf.Json(), external=True)
out = topology.topic("phases-out", key=sf.String(), value=sf.Json())
(topology.processor("p", on_deserialize_error="dead_letter", on_processing_error="fail")
    .stream(readings)
    .map(lambda r: {"f": r["celsius"] * 9 / 5 + 32}, name="to-fahrenheit")
    .to(out))
'''


POISON = b"\x00not json"


def read_all(admin: TopicAdmin, topic: str) -> list[Any]:
    messages: list[Any] = []
    admin.read_topic(topic, messages.append, timeout=30)
    return messages


def test_poison_input_is_dead_lettered_and_a_user_bug_fails_the_processor_uncommitted(
        tmp_path: Path, streamflow_app: Any, name_suffix: str, kafka_admin: TopicAdmin,
        kafka_bootstrap: str) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    (tmp_path / "phases_topology.py").write_text(textwrap.dedent(TOPOLOGY))
    source, output = f"phases-in{name_suffix}", f"phases-out{name_suffix}"
    dlq, group = f"phases.p.dlq{name_suffix}", f"phases.p{name_suffix}"
    kafka_admin.create_topic(source)
    app = streamflow_app("phases_topology", "p", cwd=tmp_path, name_suffix=name_suffix,
                         env={"STREAMFLOW_COMMIT_INTERVAL_MS": "50"})
    topics = kafka_admin.topics()
    assert {output, dlq} <= topics and not {"phases-out", "phases.p.dlq"} & topics
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})

    def committed() -> int:
        (tp,) = consumer.committed([TopicPartition(source, 0)], timeout=15)
        return int(tp.offset)

    producer = Producer({"bootstrap.servers": kafka_bootstrap})

    def produce(*values: bytes) -> None:
        for value in values:
            producer.produce(source, value, f"r{value!r}".encode())
        assert producer.flush(30) == 0

    try:
        produce(orjson.dumps({"celsius": 0}), POISON, orjson.dumps({"celsius": 100}))
        deadline = time.monotonic() + 30
        while committed() != 3 and time.monotonic() < deadline:  # the dead letter included
            time.sleep(0.1)
        assert committed() == 3
        produce(orjson.dumps({"kelvin": 1}), orjson.dumps({"celsius": 10}))
        assert app.process is not None
        deadline = time.monotonic() + 60
        while app.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert app.stop() == 1, app.logs()[-3000:]
        # the record that failed (offset 3) and the one after it are not committed
        assert committed() == 3
    finally:
        consumer.close()
    assert "failed in step 'to-fahrenheit': KeyError: 'celsius'" in app.logs()
    assert "on_processing_error='dead_letter'" in app.logs()

    (dead,) = read_all(kafka_admin, dlq)
    assert dead.value() == POISON
    headers = dict(dead.headers())
    assert headers["streamflow.error.phase"] == b"deserialize"
    assert headers["streamflow.source.offset"] == b"1"
    assert [orjson.loads(m.value()) for m in read_all(kafka_admin, output)] == [
        {"f": 32.0}, {"f": 212.0}]
