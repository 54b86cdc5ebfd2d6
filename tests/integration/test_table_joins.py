"""A table-table join on the broker, restored from its changelogs after a restart.

A count per user (an aggregation) is left-joined with a topic table of names. The results
carry the larger of the two rows' timestamps, the count's being its newest click's. The
processor is stopped, its local state deleted, and started again: both stores come back from
their changelogs with their rows' timestamps, so a late click (older than the count's
newest) counts on from the restored count and keeps the count's timestamp, and a name's
delete gives the count with no name.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from streamflow.testing.admin import TopicAdmin
from tests.integration.kafka_helpers import read_all

pytestmark = pytest.mark.integration

TOPOLOGY = '''
import streamflow as sf

topology = sf.Topology("ttjoin")
clicks = topology.topic("ttjoin-clicks", key=sf.String(), value=sf.Json(), external=True)
names = topology.topic("ttjoin-names", key=sf.String(), value=sf.Json(), external=True)
out = topology.topic("ttjoin-out", key=sf.String(), value=sf.Json())
p = topology.processor("p")
counts = p.stream(clicks).group_by_key(name="by-user").count(name="clicks")
(counts.left_join(topology.table(names), lambda n, name: {"clicks": n, "name": name},
                  name="named")
    .to_stream()
    .to(out))
'''

USERS = 5
T0 = 1_700_000_000_000


def test_a_table_join_restores_its_rows_and_their_timestamps_from_the_changelogs(
        tmp_path: Path, streamflow_app: Any, name_suffix: str, kafka_admin: TopicAdmin,
        kafka_bootstrap: str) -> None:
    (tmp_path / "ttjoin_topology.py").write_text(textwrap.dedent(TOPOLOGY))
    clicks, names, out = (f"ttjoin-{t}{name_suffix}" for t in ("clicks", "names", "out"))
    kafka_admin.create_topic(clicks, 2, {})
    kafka_admin.create_topic(names, 2, {"cleanup.policy": "compact"})
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})

    def send(topic: str, user: int, value: Any, ts: int) -> None:
        producer.produce(topic, None if value is None else orjson.dumps(value),
                         f"u{user}".encode(), timestamp=ts)

    for u in range(USERS):
        send(names, u, f"name-{u}", T0 + u)
        send(clicks, u, {}, T0 + 100 + u)
        send(clicks, u, {}, T0 + 200 + u)
    assert producer.flush(30) == 0
    env = {"STREAMFLOW_COMMIT_INTERVAL_MS": "100"}
    app = streamflow_app("ttjoin_topology", "p", cwd=tmp_path, name_suffix=name_suffix, env=env)
    first = read_all(kafka_bootstrap, out, expect=2 * USERS, timeout=30, settle=0.5)
    assert app.stop() == 0, app.logs()[-3000:]
    shutil.rmtree(tmp_path / "apps" / "state")  # restore from the changelogs alone

    app = streamflow_app("ttjoin_topology", "p", cwd=tmp_path, name_suffix=name_suffix, env=env)
    for u in range(USERS):
        send(clicks, u, {}, T0 + 50)  # late: the count keeps its newest click's time
    send(names, 0, None, T0 + 300)
    assert producer.flush(30) == 0
    got = read_all(kafka_bootstrap, out, expect=3 * USERS + 1, timeout=30, settle=0.5)
    assert app.stop() == 0, app.logs()[-3000:]

    def results(msgs: list[Any]) -> list[tuple[str, Any, int]]:
        return [(m.key().decode(), orjson.loads(m.value()), m.timestamp()[1]) for m in msgs]

    expected = [(f"u{u}", {"clicks": n, "name": f"name-{u}"}, T0 + 100 * n + u)
                for u in range(USERS) for n in (1, 2)]
    assert sorted(results(first), key=repr) == sorted(expected, key=repr)
    expected += [(f"u{u}", {"clicks": 3, "name": f"name-{u}"}, T0 + 200 + u)
                 for u in range(USERS)]
    expected.append(("u0", {"clicks": 3, "name": None}, T0 + 300))
    assert sorted(results(got), key=repr) == sorted(expected, key=repr)
    restored = re.findall(r"restored \S*-clicks-changelog\S*\[\d+\]: (\d+) changes applied",
                          app.logs())
    assert sum(map(int, restored)) >= USERS, app.logs()[-3000:]
