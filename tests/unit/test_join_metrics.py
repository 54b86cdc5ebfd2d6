"""Metrics of global tables and async steps: the values after a driver run, their Prometheus
families, and the global consumer's lag from its librdkafka statistics."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import streamflow as sf
from streamflow.config import Config
from streamflow.observability.metrics import StatusCollector, exposition, global_lag
from streamflow.observability.status import GlobalTablesStatus, WorkerStatus
from streamflow.runtime.counters import worker_status
from streamflow.testing import TopologyTestDriver


def families(s: WorkerStatus) -> dict[str, Any]:
    text = exposition(StatusCollector(lambda: s)).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(fams: dict[str, Any], name: str, suffix: str = "_total") -> dict[tuple[str, ...],
                                                                               float]:
    """Values by the labels beyond topology, processor and instance."""
    base = {"topology", "processor", "instance"}
    return {tuple(v for k, v in sorted(s.labels.items()) if k not in base): s.value
            for s in fams[name].samples if s.name == name + suffix}


# -- global tables --------------------------------------------------------------------------


def _global(partitions: int = 2) -> sf.Topology:
    t = sf.Topology("gm")
    orders = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    customers = t.global_table(t.topic("customers", key=sf.String(), value=sf.Json(),
                                       partitions=partitions, external=True))
    p = t.processor("enrich", on_deserialize_error="skip")
    (p.stream(orders).left_join(customers, lambda o, c: [o, c], key=lambda _k, o: o["c"],
                                name="with-customer")
     .to(t.topic("out", key=sf.String(), value=sf.Json())))
    return t


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_global_table_metrics_count_the_bootstrap_then_what_is_applied(
        store: str, tmp_path: Path) -> None:
    config = {"store": store, "state_dir": str(tmp_path)}
    with TopologyTestDriver(_global(), config=config, auto_commit=False) as d:
        for i in range(12):
            d.input("customers").send({"name": f"n{i}"}, key=f"c{i}")
        d.crash(keep_state=False, settle=False)  # a new instance loads the 12 rows
        d.input("customers").send(None, key="c0")  # a delete is applied too
        d.input("customers").send({"name": "x"}, key="c1")
        d.input("customers").send_raw(b"{}", key=b"\xff")  # not UTF-8: skipped
        d.input("orders").send({"c": "c1"}, key="o1")
        d.commit()
        engine = d.engines["enrich"][0]
        s = worker_status(engine, "0", time.monotonic())
        ends = {(r.topic, r.partition) for r in d.output("out").read_records()}
    assert ends  # the order was joined
    g = s.global_tables
    assert g is not None and g.loaded
    assert g.restore_records == 12 and g.restore_seconds > 0
    fams = families(s)
    assert samples(fams, "streamflow_global_records_applied") == {
        ("global-customers", "customers"): 14}  # 12 rows, a delete, an update
    assert samples(fams, "streamflow_global_records_skipped") == {("global-customers",): 1}
    assert samples(fams, "streamflow_global_restore_records") == {(): 12}
    assert samples(fams, "streamflow_global_restore_seconds", "") == {
        (): pytest.approx(g.restore_seconds)}
    # every record of both partitions read: positions at the ends, and no statistics in the
    # driver, so no lag is claimed once the bootstrap is over
    assert sum(g.positions.values()) == 15
    assert samples(fams, "streamflow_global_lag_records", "") == {}


def test_a_processor_without_global_tables_or_async_steps_has_no_such_families() -> None:
    t = sf.Topology("plain")
    t.processor("p").stream(t.topic("in", external=True)).to(t.topic("out"))
    with TopologyTestDriver(t) as d:
        s = worker_status(d.engines["p"][0], "0", time.monotonic())
    assert s.global_tables is None and s.async_steps == ()
    assert not [n for n in families(s) if n.startswith(("streamflow_global",
                                                        "streamflow_async"))]


def _stats(parts: dict[int, tuple[int, int]]) -> str:
    """librdkafka statistics of topic ``customers``: partition -> (ls_offset, app_offset)."""
    return json.dumps({"topics": {"customers": {"partitions": {
        str(p): {"partition": p, "ls_offset": ls, "hi_offset": ls + 1, "app_offset": app}
        for p, (ls, app) in parts.items()}}}})


def test_global_lag_is_the_statistics_end_minus_the_position() -> None:
    g = GlobalTablesStatus(positions={("customers", 0): 40, ("customers", 1): 7,
                                      ("customers", 2): 5},
                           loaded=True, stats=_stats({0: (100, 40), 1: (7, -1001), 2: (9, 6)}))
    # partition 2: librdkafka handed out up to 6 (a record with an unusable key skipped)
    assert global_lag(g) == {("customers", 0): 60, ("customers", 1): 0, ("customers", 2): 3}
    fams = families(WorkerStatus(processor="p", worker_id="0", last_loop=None, topology="t",
                                 global_tables=g))
    assert samples(fams, "streamflow_global_lag_records", "") == {
        ("0", "customers"): 60, ("1", "customers"): 0, ("2", "customers"): 3}


def test_global_lag_while_loading_is_measured_against_the_bootstrap_targets() -> None:
    g = GlobalTablesStatus(positions={("customers", 0): 10, ("customers", 1): 0},
                           ends={("customers", 0): 250, ("customers", 1): 0})
    assert global_lag(g) == {("customers", 0): 240, ("customers", 1): 0}
    assert global_lag(GlobalTablesStatus(positions={("customers", 0): 3}, loaded=True)) == {}


def test_the_global_consumer_keeps_its_statistics_when_they_are_on() -> None:
    from streamflow.kafka.ports import KafkaAdmin, KafkaGlobalReader
    from streamflow.runtime.clients import kafka_ports

    reader = KafkaGlobalReader({"bootstrap.servers": "127.0.0.1:9",
                                "statistics.interval.ms": 1000})
    reader._conf["stats_cb"]('{"topics": {}}')  # what librdkafka calls inside consume()
    assert reader.statistics == '{"topics": {}}'
    assert "stats_cb" not in KafkaGlobalReader({"bootstrap.servers": "x"})._conf
    admin = KafkaAdmin({})
    on = kafka_ports(Config(statistics_interval_ms=2000), {}, {}, admin).global_tables
    off = kafka_ports(Config(statistics_interval_ms=0), {}, {}, admin).global_tables
    assert isinstance(on, KafkaGlobalReader) and isinstance(off, KafkaGlobalReader)
    assert on._conf["statistics.interval.ms"] == 2000 and "stats_cb" in on._conf
    assert "stats_cb" not in off._conf


# -- async steps ----------------------------------------------------------------------------


def _async(fn: Any, **options: Any) -> sf.Topology:
    t = sf.Topology("am")
    src = t.topic("in", key=sf.String(), value=sf.Int(), external=True, partitions=2)
    p = t.processor("p", on_processing_error="skip")
    p.stream(src).map_async(fn, name="lookup", **options).to(
        t.topic("out", key=sf.String(), value=sf.Int(), partitions=2))
    return t


def test_async_step_metrics_count_calls_retries_timeouts_and_failures() -> None:
    attempts: dict[int, int] = {}

    async def lookup(v: int) -> int:
        attempts[v] = attempts.get(v, 0) + 1
        if v == 7:  # every attempt times out: a failure after 2 attempts
            await asyncio.sleep(5)
        if v % 3 == 0 and attempts[v] == 1:  # fails once, then succeeds
            raise ConnectionError("try again")
        if v == 10:
            raise ValueError("never")  # fails both attempts
        return v

    t = _async(lookup, retries=1, backoff=0.0, timeout=0.05, concurrency=4)
    with TopologyTestDriver(t) as d:
        with d.backlog():
            for v in range(12):
                d.input("in").send(v, key=f"k{v % 4}")
        out = d.output("out").read_values()
        s = worker_status(d.engines["p"][0], "0", time.monotonic())
    assert sorted(out) == [v for v in range(12) if v not in (7, 10)]
    (step,) = s.async_steps
    assert step.step == "lookup"
    # 0, 3, 6, 9 retried once; 7 and 10 retried once and failed; 7 timed out twice
    assert (step.calls, step.retried, step.timed_out, step.failed, step.in_flight) == (
        12, 6, 2, 2, 0)
    fams = families(s)
    assert samples(fams, "streamflow_async_calls") == {("lookup",): 12}
    assert samples(fams, "streamflow_async_retries") == {("lookup",): 6}
    assert samples(fams, "streamflow_async_timeouts") == {("lookup",): 2}
    assert samples(fams, "streamflow_async_failures") == {("lookup",): 2}
    assert samples(fams, "streamflow_async_calls_in_flight", "") == {("lookup",): 0}


def test_in_flight_counts_the_calls_running_now_up_to_the_concurrency() -> None:
    seen: list[int] = []
    holder: dict[str, Any] = {}

    async def slow(v: int) -> int:
        await asyncio.sleep(0.01)
        runner = holder["engine"].tasks.runner
        seen.append(runner.counts["lookup"].in_flight)  # as a scrape would read it
        return v

    with TopologyTestDriver(_async(slow, concurrency=3)) as d:
        holder["engine"] = d.engines["p"][0]
        with d.backlog():
            for v in range(20):
                d.input("in").send(v, key=f"k{v % 4}")
        assert len(d.output("out").read_values()) == 20
        s = worker_status(d.engines["p"][0], "0", time.monotonic())
    assert max(seen) == 3 and min(seen) >= 1
    assert s.async_steps[0].in_flight == 0 and s.async_steps[0].calls == 20


def test_async_counts_belong_to_the_processor_and_survive_a_rebalance() -> None:
    async def same(v: int) -> int:
        return v

    with TopologyTestDriver(_async(same)) as d:
        for v in range(8):
            d.input("in").send(v, key=f"k{v}")  # both partitions
        first = d.engines["p"][0]
        d.scale(2)  # the first instance gives a task away
        assert len(first.tasks.tasks) == 1
        s = worker_status(first, "0", time.monotonic())
        assert s.async_steps[0].calls == 8
        for v in range(8):
            d.input("in").send(v, key=f"k{v}")
        calls = [worker_status(e, "0", time.monotonic()).async_steps[0].calls
                 for e in d.engines["p"]]
    assert calls[0] > 8 and sum(calls) == 16
