"""topologies/clickstream.py end to end on the real broker and schema registry: Avro page
views written by confluent-kafka's own AvroSerializer, three processors connected by a topic,
a table join, session and hopping windows; results equal the TopologyTestDriver's on the same
input."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.serialization import MessageField, SerializationContext

from streamflow.testing import TopologyTestDriver
from tests.integration.kafka_helpers import (
    ROOT,
    StreamflowProcess,
    confluent_registry,
    confluent_serializer,
    read_all,
)
from topologies import clickstream

pytestmark = pytest.mark.integration

MIN = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % (10 * MIN)
USERS = {f"user-{i}": {"country": ["NL", "DE", "FR"][i % 3], "plan": ["free", "pro"][i % 2]}
         for i in range(12)}


def _views() -> list[list[dict[str, Any]]]:
    """Three bursts of views, each in event-time order, 90 minutes apart."""
    out = []
    for burst in range(3):
        out.append([])
        for step in range(5):
            for i, user in enumerate(USERS):
                ts = T0 + burst * 90 * MIN + step * 2 * MIN + i * 1000
                out[-1].append({"user_id": user, "url": f"/page/{(i + step) % 4}", "referrer": None,
                            "ts": dt.datetime.fromtimestamp(ts / 1000, dt.UTC),
                            "duration_ms": 1000 + step, "tags": {}})
    return out


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamflow", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def _expected(views: list[dict[str, Any]]) -> dict[str, list[Any]]:
    with TopologyTestDriver(clickstream.topology, config={"store": "memory"}) as d:
        for user, profile in USERS.items():
            d.input("clickstream.users").send(profile, key=user)
        for v in views:
            d.input("clickstream.page-views").send(v, key=v["user_id"],
                                                   timestamp=clickstream.event_time(v))
        d.advance_wall_clock(clickstream.IDLE_MS + 1)
        return {t: d.output(t).read_values() for t in
                ("clickstream.views-enriched", "clickstream.sessions",
                 "clickstream.popular-pages")}


def _canon(values: list[Any]) -> Counter[bytes]:
    return Counter(orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in values)


def test_clickstream_end_to_end(kafka_bootstrap: str, schema_registry_url: str,
                                tmp_path: Path) -> None:
    env = {**os.environ, "STREAMFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "STREAMFLOW_SCHEMA_REGISTRY_URL": schema_registry_url,
           "STREAMFLOW_STATE_DIR": str(tmp_path / "state"), "CLICKSTREAM_IDLE_MS": "5000",
           "PYTHONPATH": str(ROOT)}
    _cli("topics", "delete", "topologies.clickstream", "--yes", "--include-external", env=env)
    created = _cli("topics", "create", "topologies.clickstream", env=env)
    assert created.returncode == 0, created.stderr
    checked = _cli("check", "topologies.clickstream", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    views = _views()
    registry = confluent_registry(schema_registry_url)
    serializer = confluent_serializer(registry, (ROOT / "schemas/page_view.avsc").read_text())
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    # the profiles hold from before the first view: the enrich tasks take the users table's
    # records first, however the two topics are fetched (time-aligned tasks)
    for user, profile in USERS.items():
        producer.produce("clickstream.users", orjson.dumps(profile), user.encode(),
                         timestamp=T0 - 60_000)
    producer.flush(30)

    app = StreamflowProcess(["run", "topologies.clickstream"], ROOT, env, tmp_path / "run.log")
    try:
        # the bursts are paced to pass every stage before the next one: the three processors
        # must be running before the first (the popularity counts are grouped through a
        # repartition topic written by several tasks; bursts piled up before the processors
        # start would reach it out of order, beyond its grace)
        deadline = time.monotonic() + 60
        while not all(_running(app.output(), p) for p in ("enrich", "sessions", "popularity")):
            assert time.monotonic() < deadline, app.output()
            time.sleep(0.2)
        ctx = SerializationContext("clickstream.page-views", MessageField.VALUE)
        for burst in views:
            for v in burst:
                producer.produce("clickstream.page-views", serializer(v, ctx),
                                 v["user_id"].encode(), timestamp=clickstream.event_time(v))
            producer.flush(30)
            time.sleep(4)  # a burst passes every stage before the next one starts
        expected = _expected([v for burst in views for v in burst])
        got = {t: [orjson.loads(m.value()) for m in
                   read_all(kafka_bootstrap, t, expect=len(want), timeout=120, settle=5)]
               for t, want in expected.items()}
    finally:
        rc = app.terminate()
    assert rc == 0, app.output()[-3000:]
    assert len(expected["clickstream.sessions"]) == 3 * len(USERS)
    assert expected["clickstream.popular-pages"]
    for topic, want in expected.items():
        assert _canon(got[topic]) == _canon(want), topic
    _cli("topics", "delete", "topologies.clickstream", "--yes", "--include-external", env=env)


def _running(log: str, processor: str) -> bool:
    """Whether ``log`` says a task of ``processor`` runs (its stores restored)."""
    return any(f"[clickstream/{processor}#" in ln and "restored: running" in ln
               for ln in log.splitlines())
