"""A topic table that reuses its source topic as changelog, on the real broker.

``topology.table(devices, changelog="source")``: a table backlog and a stream backlog, a run
that enriches every reading and commits, a kill -9, the state dir wiped, more readings, a
second run: its table store is restored from the devices topic itself (up to the committed
offsets) and every new reading is enriched. No changelog topic exists on the cluster.
"""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.integration.kafka_helpers import (
    StreamflowProcess,
    produce,
    read_all,
    wait_for,
    write_module,
)

pytestmark = pytest.mark.integration

MODULE = """
import os
import streamflow as sf

topology = sf.Topology(os.environ["T_APP"])
readings = topology.topic(os.environ["T_READINGS"], key=sf.String(), value=sf.Json(),
                          external=True)
devices = topology.topic(os.environ["T_DEVICES"], key=sf.String(), value=sf.Json(),
                         external=True, config={"cleanup.policy": "compact"})
out = topology.topic(os.environ["T_OUT"], key=sf.String(), value=sf.Json())
table = topology.table(devices, changelog="source")
(topology.processor("enrich").stream(readings)
 .join(table, lambda r, d: {**r, "room": d["room"]}).to(out))
"""

DEVICES = 12
READINGS = 120
PARTITIONS = 2


def _readings(first: int, n: int) -> list[tuple[bytes, bytes]]:
    return [(f"dev-{i % DEVICES}".encode(), orjson.dumps({"n": i}))
            for i in range(first, first + n)]


def test_a_reused_table_restores_from_its_topic_after_a_kill_and_a_wiped_state_dir(
        tmp_path: Path, kafka_bootstrap: str, new_topic: Any) -> None:
    app = f"reuse-{uuid.uuid4().hex[:8]}"
    env = {
        "T_APP": app,
        "T_READINGS": new_topic(partitions=PARTITIONS),
        "T_DEVICES": new_topic(partitions=PARTITIONS, compacted=True),
        "T_OUT": new_topic(partitions=PARTITIONS),
        "STREAMFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMFLOW_STATE_DIR": str(tmp_path / "state"),
        "STREAMFLOW_COMMIT_INTERVAL_MS": "200",
    }
    devices = [(f"dev-{i}".encode(), orjson.dumps({"room": f"room-{i}"}))
               for i in range(DEVICES)]
    produce(kafka_bootstrap, env["T_DEVICES"], devices)  # stamped before the readings
    produce(kafka_bootstrap, env["T_READINGS"], _readings(0, READINGS))
    module = write_module(tmp_path, "reuse_topology", MODULE)

    first = StreamflowProcess(["run", module], tmp_path, env, tmp_path / "run1.log")
    try:
        got = read_all(kafka_bootstrap, env["T_OUT"], expect=READINGS, timeout=60, settle=0)
        assert len(got) >= READINGS, first.output()
        wait_for("the devices topic committed to its end", lambda: _committed_to_end(
            kafka_bootstrap, f"{app}.enrich", env["T_DEVICES"]), timeout=20)
    finally:
        first.kill()
    shutil.rmtree(tmp_path / "state")  # the table store is gone: only the topic has it

    produce(kafka_bootstrap, env["T_READINGS"], _readings(READINGS, READINGS))
    second = StreamflowProcess(["run", module], tmp_path, env, tmp_path / "run2.log")
    try:
        got = read_all(kafka_bootstrap, env["T_OUT"], expect=2 * READINGS, timeout=60,
                       settle=1)
    finally:
        assert second.terminate() == 0, second.output()
    values = [orjson.loads(m.value()) for m in got]
    assert {v["n"] for v in values} == set(range(2 * READINGS)), second.output()
    assert all(v["room"] == f"room-{v['n'] % DEVICES}" for v in values)
    # the second run restored the rows from the devices topic, not from a changelog
    restored = re.findall(rf"restored {env['T_DEVICES']}\[\d\]: (\d+) changes applied",
                          second.output())
    assert sum(map(int, restored)) == DEVICES, second.output()
    topics = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    assert not [t for t in topics if t.startswith(app)]  # no changelog topic was created


def _committed_to_end(bootstrap: str, group: str, topic: str) -> bool:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        committed = c.committed(parts, timeout=5)
        ends = [c.get_watermark_offsets(tp, timeout=5)[1] for tp in parts]
        return [tp.offset for tp in committed] == ends
    finally:
        c.close()
