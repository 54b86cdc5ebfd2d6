"""A stream-table join started on a backlog of both topics enriches every stream record.

The table's backlog is written first, transactionally as an upstream exactly-once processor
would (so its partitions hold transaction markers), then the stream's, with later
timestamps; only then does the processor start. Its tasks take both inputs in timestamp
order (``streamflow.runtime.alignment``), so every reading finds its device row: no sleep
before the readings, as a user with existing topics would run it.
"""

from __future__ import annotations

import time
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
readings = topology.topic(os.environ["T_READINGS"], key=sf.String(), value=sf.Json(),
                          external=True)
devices = topology.topic(os.environ["T_DEVICES"], key=sf.String(), value=sf.Json(),
                         external=True)
inner = topology.topic(os.environ["T_INNER"], key=sf.String(), value=sf.Json())
left = topology.topic(os.environ["T_LEFT"], key=sf.String(), value=sf.Json())
p = topology.processor("enrich", guarantee=os.environ["T_GUARANTEE"])
table = topology.table(devices)
stream = p.stream(readings)
stream.join(table, lambda r, d: {**r, "room": d["room"]}, name="inner").to(inner)
stream.left_join(table, lambda r, d: {**r, "room": d and d["room"]}, name="left").to(left)
"""

DEVICES = 20
READINGS = 1_000
T0 = 1_700_000_000_000


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_join_started_on_a_table_backlog_then_a_stream_backlog_enriches_every_reading(
        tmp_path: Path, kafka_bootstrap: str, new_topic: Any, guarantee: str) -> None:
    env = {
        "T_APP": f"bl-{uuid.uuid4().hex[:8]}",
        "T_READINGS": new_topic(partitions=3),
        "T_DEVICES": new_topic(partitions=3, compacted=True),
        "T_INNER": new_topic(partitions=3),
        "T_LEFT": new_topic(partitions=3),
        "T_GUARANTEE": guarantee,
        "STREAMFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMFLOW_STATE_DIR": str(tmp_path / "state"),
    }
    # the table first, in two transactions (markers after each), then the stream
    tx = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random",
                   "transactional.id": env["T_APP"]})
    tx.init_transactions(30)
    for half in (range(DEVICES // 2), range(DEVICES // 2, DEVICES)):
        tx.begin_transaction()
        for i in half:
            tx.produce(env["T_DEVICES"], orjson.dumps({"room": f"room-{i}"}), f"dev-{i}".encode(),
                       timestamp=T0 + i)
        tx.commit_transaction(30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random",
                         "linger.ms": 5})
    for i in range(READINGS):
        producer.produce(env["T_READINGS"], orjson.dumps({"n": i}), f"dev-{i % DEVICES}".encode(),
                         timestamp=T0 + 1_000 + i)
    assert producer.flush(30) == 0

    module = write_module(tmp_path, "backlog_topology", MODULE)
    started = time.monotonic()
    proc = StreamflowProcess(["run", module], tmp_path, env, tmp_path / "run.log")
    try:
        got = {name: read_all(kafka_bootstrap, env[name], expect=READINGS, timeout=90,
                              settle=1)
               for name in ("T_INNER", "T_LEFT")}
    finally:
        assert proc.terminate() == 0, proc.output()
    elapsed = time.monotonic() - started
    for name, msgs in got.items():
        values = [orjson.loads(m.value()) for m in msgs]
        assert sorted(v["n"] for v in values) == list(range(READINGS)), name  # each once
        assert all(v["room"] == f"room-{v['n'] % DEVICES}" for v in values), name
    # the wait for the table's fetch is short: no input hit the 5 s bound
    assert "goes on without" not in proc.output(), proc.output()
    assert elapsed < 60
