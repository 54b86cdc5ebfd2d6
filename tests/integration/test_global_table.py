"""A global table on the real broker: loaded whole before the first stream record, kept up to
date while running, and read again after a restart only from where the worker left it.

The customers (the global topic, 3 partitions, written in transactions so its partitions end
with markers) and the orders (1 partition, keyed by order: no co-partitioning) are both
written before the processor starts; every order must come out enriched, with no sleep.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer

from tests.integration.kafka_helpers import StreamflowProcess, produce, write_module
from tests.integration.test_metrics import free_port, get

pytestmark = pytest.mark.integration

MODULE = """
import os
import streamflow as sf

topology = sf.Topology(os.environ["T_APP"])
orders = topology.topic(os.environ["T_ORDERS"], key=sf.String(), value=sf.Json(),
                        external=True)
customers = topology.global_table(topology.topic(os.environ["T_CUSTOMERS"], key=sf.String(),
                                                 value=sf.Json(), external=True))
out = topology.topic(os.environ["T_OUT"], key=sf.String(), value=sf.Json())
(topology.processor("enrich").stream(orders)
    .join(customers, lambda o, c: {**o, "name": c["name"]}, key=lambda _k, o: o["customer"],
          name="with-customer")
    .to(out))
"""

CUSTOMERS = 30
ORDERS = 300


class Reader:
    """Reads an output topic from its start, incrementally (read_committed)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"v-{uuid.uuid4()}",
                           "auto.offset.reset": "earliest", "enable.auto.commit": False,
                           "isolation.level": "read_committed"})
        self.c.subscribe([topic])
        self.values: list[Any] = []

    def until(self, done: Any, timeout: float, proc: StreamflowProcess) -> list[Any]:
        deadline = time.monotonic() + timeout
        while (not done(self.values) and time.monotonic() < deadline
               and proc.poll() is None):
            self.values += [orjson.loads(m.value()) for m in self.c.consume(500, 0.2)
                            if m.error() is None]
        return self.values

    def close(self) -> None:
        self.c.close()


def _global_metrics(port: int, applied: int) -> dict[str, list[float]]:
    """The worker's streamflow_global_* samples, once it applied ``applied`` rows and its
    global consumer's statistics give a lag for every partition (polled, at most 10 s)."""
    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + 10
    while True:
        body = get(port, "/metrics")[1].decode()
        found: dict[str, list[float]] = {}
        for fam in text_string_to_metric_families(body):
            for sample in fam.samples:
                if sample.name.startswith("streamflow_global_"):
                    found.setdefault(sample.name, []).append(sample.value)
        done = (found.get("streamflow_global_records_applied_total") == [applied]
                and len(found.get("streamflow_global_lag_records", [])) == 3)
        if done or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_a_global_table_is_loaded_before_the_backlog_and_followed_while_running(
        tmp_path: Path, kafka_bootstrap: str, new_topic: Any) -> None:
    env = {
        "T_APP": f"gt-{uuid.uuid4().hex[:8]}",
        "T_ORDERS": new_topic(partitions=1),
        "T_CUSTOMERS": new_topic(partitions=3, compacted=True),
        "T_OUT": new_topic(partitions=1),
        "STREAMFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMFLOW_STATE_DIR": str(tmp_path / "state"),
        "STREAMFLOW_LOG_LEVEL": "INFO",
        "STREAMFLOW_HEALTH_PORT": str(port := free_port()),
        "STREAMFLOW_STATISTICS_INTERVAL_MS": "500",
    }
    tx = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random",
                   "transactional.id": env["T_APP"]})
    tx.init_transactions(30)
    for half in (range(CUSTOMERS // 2), range(CUSTOMERS // 2, CUSTOMERS)):
        tx.begin_transaction()
        for i in half:
            tx.produce(env["T_CUSTOMERS"], orjson.dumps({"name": f"name-{i}"}),
                       f"c{i}".encode())
        tx.commit_transaction(30)
    produce(kafka_bootstrap, env["T_ORDERS"],
            ((f"o{n}".encode(), orjson.dumps({"n": n, "customer": f"c{n % CUSTOMERS}"}))
             for n in range(ORDERS)))

    module = write_module(tmp_path, "global_topology", MODULE)
    out = Reader(kafka_bootstrap, env["T_OUT"])
    try:
        started = time.monotonic()
        proc = StreamflowProcess(["run", module], tmp_path, env, tmp_path / "run1.log")
        try:
            got = out.until(lambda v: len(v) >= ORDERS, 45, proc)
            # the whole backlog, each order once, every one enriched by its customer's row
            assert sorted(v["n"] for v in got) == list(range(ORDERS)), proc.output()
            assert all(v["name"] == f"name-{v['n'] % CUSTOMERS}" for v in got)

            # an update while running: orders sent after it come out with the new row
            produce(kafka_bootstrap, env["T_CUSTOMERS"], [(b"c0", orjson.dumps({"name": "new"}))])
            probes = 0

            def renamed(values: list[Any]) -> bool:
                nonlocal probes
                if any(v["name"] == "new" for v in values):
                    return True
                if len(values) >= ORDERS + probes:  # every probe answered: send another
                    probes += 1
                    produce(kafka_bootstrap, env["T_ORDERS"],
                            [(b"probe", orjson.dumps({"n": -probes, "customer": "c0"}))])
                return False

            got = out.until(renamed, 20, proc)
            assert any(v["name"] == "new" for v in got), proc.output()
            # /metrics: every row applied, each partition read to its end (past its
            # transaction marker: no lag of 1; librdkafka's position), the bootstrap's records
            metrics = _global_metrics(port, CUSTOMERS + 1)
            assert metrics["streamflow_global_records_applied_total"] == [CUSTOMERS + 1]
            assert metrics["streamflow_global_lag_records"] == [0.0, 0.0, 0.0], metrics
            assert metrics["streamflow_global_restore_records_total"] == [CUSTOMERS]
        finally:
            assert proc.terminate() == 0, proc.output()
        first_run = time.monotonic() - started
        assert f"{CUSTOMERS} records read" in proc.output(), proc.output()

        # a restart: rows and orders written while it was down; it reads only the new row
        produce(kafka_bootstrap, env["T_CUSTOMERS"], [(b"c99", orjson.dumps({"name": "late"}))])
        before = len(out.values)
        produce(kafka_bootstrap, env["T_ORDERS"],
                [(b"r1", orjson.dumps({"n": 1000, "customer": "c99"})),
                 (b"r2", orjson.dumps({"n": 1001, "customer": "c0"}))])
        proc = StreamflowProcess(["run", module], tmp_path, env, tmp_path / "run2.log")
        try:
            got = out.until(lambda v: len(v) >= before + 2, 30, proc)
        finally:
            assert proc.terminate() == 0, proc.output()
        assert [(v["n"], v["name"]) for v in got[before:]] == [(1000, "late"), (1001, "new")]
        assert "loaded: 1 records read" in proc.output(), proc.output()
    finally:
        out.close()
    assert first_run < 40
