"""A windowed stream-stream left join on a real broker, across a restart with its state wiped.

Two co-partitioned topics; the processor joins them, stops, loses its local state, and comes
back: its buffers are restored from the changelogs, so right records written after the
restart still join left records read before it, and the left records that never found a
partner come out joined with None once a later record closes their windows. Run twice: with
the stores' default JSON, and with ``value_serde=`` an Avro record holding a decimal, kept
through the real schema registry (the value must come back a ``Decimal`` after the restore).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from tests.integration.kafka_helpers import StreamflowProcess, read_all, write_module

pytestmark = pytest.mark.integration

MODULE = """
import os
import streamflow as sf

topology = sf.Topology(os.environ["T_APP"])
left = topology.topic(os.environ["T_LEFT"], key=sf.String(), value=sf.Json(), external=True)
right = topology.topic(os.environ["T_RIGHT"], key=sf.String(), value=sf.Json(), external=True)
out = topology.topic(os.environ["T_OUT"], key=sf.String(), value=sf.Json())
p = topology.processor("match")
if os.environ.get("T_SERDES") == "avro":
    from decimal import Decimal

    NUMBER = sf.Avro({"type": "record", "name": "Number", "fields": [
        {"name": "n", "type": {"type": "bytes", "logicalType": "decimal", "precision": 6,
                               "scale": 1}}]})

    def pair(l, r):
        assert isinstance(l["n"], Decimal), l  # as stored, and as restored
        return [int(l["n"]), r]

    (p.stream(left).map(lambda v: {"n": Decimal(v)}, name="to-decimal")
        .left_join(p.stream(right), pair, window=sf.JoinWindows(10_000), name="pairs",
                   value_serde=NUMBER, other_value_serde=sf.Json())
        .to(out))
else:
    (p.stream(left)
        .left_join(p.stream(right), lambda l, r: [l, r], window=sf.JoinWindows(10_000),
                   name="pairs")
        .to(out))
"""

T0 = 1_700_000_000_000
KEYS = 20


def _send(bootstrap: str, topic: str, records: list[tuple[str, Any, int, int | None]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for key, value, ts, partition in records:
        extra = {} if partition is None else {"partition": partition}
        producer.produce(topic, orjson.dumps(value), key.encode(), timestamp=ts, **extra)
    assert producer.flush(30) == 0


def _values(msgs: list[Any]) -> list[list[Any]]:
    return sorted((orjson.loads(m.value()) for m in msgs), key=lambda v: (v[0], v[1] or ""))


@pytest.mark.parametrize("serdes", ["json", "avro"])
def test_left_join_of_two_streams_survives_a_restart_with_its_state_wiped(
        tmp_path: Path, kafka_bootstrap: str, schema_registry_url: str, new_topic: Any,
        serdes: str) -> None:
    env = {
        "T_SERDES": serdes,
        "STREAMFLOW_SCHEMA_REGISTRY_URL": schema_registry_url,
        "T_APP": f"ssj-{uuid.uuid4().hex[:8]}",
        "T_LEFT": new_topic(partitions=2),
        "T_RIGHT": new_topic(partitions=2),
        "T_OUT": new_topic(partitions=2),
        "STREAMFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMFLOW_STATE_DIR": str(tmp_path / "state"),
        "STREAMFLOW_COMMIT_INTERVAL_MS": "200",
    }
    module = write_module(tmp_path, "ssj_topology", MODULE)
    _send(kafka_bootstrap, env["T_LEFT"], [(f"k{i}", i, T0 + i, None) for i in range(KEYS)])
    # keys 0-9 find a partner before the restart
    _send(kafka_bootstrap, env["T_RIGHT"],
          [(f"k{i}", f"r{i}", T0 + 100 + i, None) for i in range(10)])
    proc = StreamflowProcess(["run", module], tmp_path, env, tmp_path / "run1.log")
    try:
        first = read_all(kafka_bootstrap, env["T_OUT"], expect=10, timeout=30, settle=1)
    finally:
        assert proc.terminate() == 0, proc.output()
    assert _values(first) == [[i, f"r{i}"] for i in range(10)]

    shutil.rmtree(tmp_path / "state")
    # keys 10-14 find theirs after it, in the restored left buffer; then a record on each
    # partition moves stream time past every window: keys 15-19 come out alone
    _send(kafka_bootstrap, env["T_RIGHT"],
          [(f"k{i}", f"r{i}", T0 + 200 + i, None) for i in range(10, 15)]
          + [("tick", "tick", T0 + 60_000, part) for part in (0, 1)])
    proc = StreamflowProcess(["run", module], tmp_path, env, tmp_path / "run2.log")
    try:
        every = read_all(kafka_bootstrap, env["T_OUT"], expect=KEYS, timeout=30, settle=1)
    finally:
        assert proc.terminate() == 0, proc.output()
    assert "restored" in proc.output(), proc.output()
    assert _values(every) == ([[i, f"r{i}"] for i in range(15)]
                              + [[i, None] for i in range(15, KEYS)])
