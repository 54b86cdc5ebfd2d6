"""Metrics through the test driver: the engine's counters, their Prometheus exposition, the
latency histogram, librdkafka statistics, stall-aware probes and the error budget."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

import streamflow as sf
from streamflow.config import ConfigError
from streamflow.observability.metrics import StatusCollector, exposition, partition_lag
from streamflow.observability.probes import worker_probe
from streamflow.observability.status import Histogram, PartitionStatus, WorkerStatus
from streamflow.runtime.counters import worker_status
from streamflow.runtime.engine import Engine
from streamflow.runtime.errors import ErrorBudget, ProcessingFailed, error_budget
from streamflow.testing import TopologyTestDriver


def parsing(on_error: str = "dead_letter", partitions: int = 3) -> sf.Topology:
    """Parses ints; "bad" values fail in the map step; counts per key too."""
    t = sf.Topology("m")
    src = t.topic("in", key=sf.String(), value=sf.String(), partitions=partitions,
                  external=True)
    out = t.topic("out", key=sf.String(), value=sf.Int(), partitions=partitions)
    counts = t.topic("counts", key=sf.String(), value=sf.Long(), partitions=partitions)
    p = t.processor("parse", on_error=on_error)
    ints = p.stream(src).map(int, name="to-int")
    ints.to(out)
    ints.group_by_key().count(name="n").to_stream().to(counts)
    return t


def engine(driver: TopologyTestDriver, name: str = "parse") -> Engine:
    return driver.engines[name][0]


def families(s: WorkerStatus) -> dict[str, Any]:
    text = exposition(StatusCollector(lambda: s)).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def total(fams: dict[str, Any], name: str, suffix: str = "_total", **labels: str) -> float:
    fam = fams[name]
    return sum(s.value for s in fam.samples if s.name == name + suffix
               and all(s.labels.get(k) == v for k, v in labels.items()))


def test_counters_match_what_was_sent_and_produced() -> None:
    keys = [f"k{i}" for i in range(10)]
    with TopologyTestDriver(parsing()) as driver:
        for i in range(50):  # each record 1.5 s old when sent
            driver.input("in").send(str(i), key=keys[i % 10],
                                    timestamp=int(time.time() * 1000) - 1500)
        for i in range(4):
            driver.input("in").send("bad", key=keys[i])
        s = worker_status(engine(driver), "0", time.monotonic())
        fams = families(s)
    assert sum(p.consumed for p in s.partitions) == 54
    assert total(fams, "streamflow_records_consumed") == 54
    assert {p.partition for p in s.partitions} == {0, 1, 2}  # per input partition
    assert total(fams, "streamflow_records_produced", topic="out") == 50
    assert total(fams, "streamflow_records_produced", topic="counts") == 50
    assert total(fams, "streamflow_records_dead_lettered", topic=s.dead_letter_topic) == 4
    assert s.dead_letter_topic
    assert total(fams, "streamflow_errors", step="to-int", exception="ValueError") == 4
    assert total(fams, "streamflow_records_skipped") == 0
    # every output is in the latency histogram, between 1 and 2.5 s old
    lat = fams["streamflow_record_e2e_latency_seconds"]
    count = total(fams, "streamflow_record_e2e_latency_seconds", "_count")
    assert count == 100
    le = {s.labels["le"]: s.value for s in lat.samples if s.name.endswith("_bucket")}
    assert le["1.0"] == 0 and le["2.5"] == 100 and le["+Inf"] == 100
    assert total(fams, "streamflow_commits") >= 1
    assert total(fams, "streamflow_commit_duration_seconds", "_count") >= 1
    assert total(fams, "streamflow_batch_duration_seconds", "_count") >= 54
    assert total(fams, "streamflow_rebalances", kind="assigned") == 1
    assert total(fams, "streamflow_assigned_partitions", "") == 3
    assert total(fams, "streamflow_changelog_records") > 0
    hits = total(fams, "streamflow_store_cache_hits", store="n")
    misses = total(fams, "streamflow_store_cache_misses", store="n")
    assert hits + misses == 50 and misses >= 10  # each key was read from the backend once
    sample = next(s for s in fams["streamflow_records_consumed"].samples)
    assert {"topology": "m", "processor": "parse", "instance": "0"}.items() <= \
        sample.labels.items()


def test_skipped_records_and_late_records_are_counted() -> None:
    t = sf.Topology("late")
    src = t.topic("in", key=sf.String(), value=sf.Int(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Long())
    p = t.processor("w", on_error="skip")
    (p.stream(src).map(lambda v: 10 // v, name="div").group_by_key()
     .window(sf.Tumbling(10_000)).count(name="c").final().to(out))
    with TopologyTestDriver(t) as driver:
        driver.input("in").send(1, key="a", timestamp=50_000)
        driver.input("in").send(0, key="a", timestamp=50_000)  # ZeroDivisionError: skipped
        driver.input("in").send(1, key="a", timestamp=1_000)  # late
        fams = families(worker_status(engine(driver, "w"), "0", None))
    assert total(fams, "streamflow_records_skipped") == 1
    assert total(fams, "streamflow_errors", step="div", exception="ZeroDivisionError") == 1
    assert total(fams, "streamflow_records_late", step="c") == 1


def test_exactly_once_exposes_transactions() -> None:
    t = sf.Topology("eos")
    src = t.topic("in", key=sf.String(), value=sf.Int(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Int())
    t.processor("p", guarantee="exactly_once").stream(src).to(out)
    with TopologyTestDriver(t) as driver:
        driver.input("in").send(1, key="a")
        driver.cluster.fail_next("commit_transaction")
        driver.input("in").send(2, key="a")
        fams = families(worker_status(engine(driver, "p"), "0", None))
    assert total(fams, "streamflow_transactions_committed") >= 1
    assert total(fams, "streamflow_transactions_aborted") == 1


def test_metrics_off_counts_no_outputs_but_still_consumed() -> None:
    with TopologyTestDriver(parsing()) as driver:
        e = engine(driver)
        off = Engine(e.processor, e.ports, serde_ctx=driver.serde_context,
                     state_dir=driver._state_dir / "off", metrics=False)
        assert off.counters.outputs is None and off.collector._outputs is None
        driver.input("in").send("1", key="a")
        assert worker_status(e, "0", None).produced == {"out": 1, "counts": 1}


@given(st.lists(st.integers(min_value=-5_000, max_value=2_000_000), max_size=200),
       st.floats(min_value=0, max_value=10_000_000))
def test_histogram_of_ages_matches_one_observation_at_a_time(stamps: list[int],
                                                             now: float) -> None:
    bounds = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
    batch, single = Histogram(bounds), Histogram(bounds)
    for s in stamps:
        # an age equal to a bound counts in that bound's bucket (le), as observe() does
        single.observe((now - s) / 1000.0)
    batch.observe_ages(now, list(stamps))
    a, b = batch.snapshot(), single.snapshot()
    assert a.count == b.count == len(stamps)
    assert a.sum == pytest.approx(b.sum, rel=1e-9, abs=1e-6)
    # float rounding at a bucket edge may move one observation; none do in practice
    assert a.counts == b.counts


def _stats(end: int, app: int, rxidle_us: int, state: str = "UP") -> str:
    return json.dumps({
        "brokers": {
            "localhost:9092/bootstrap": {"nodeid": -1, "state": "UP", "rxidle": 0},
            "GroupCoordinator": {"nodeid": 1, "source": "logical", "state": "UP", "rxidle": 0},
            "127.0.0.1:9092/1": {"nodeid": 1, "state": state, "rxidle": rxidle_us,
                                 "stateage": 7_000_000},
        },
        "topics": {"in": {"partitions": {
            "0": {"partition": 0, "ls_offset": end, "hi_offset": end, "app_offset": app,
                  "committed_offset": -1001, "rxbytes": 100},
            "-1": {"partition": -1, "ls_offset": -1001},
        }}},
    })


class Fake:
    """A worker's status, changed field by field, and a clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.s = WorkerStatus(processor="p", worker_id="0", last_loop=self.now,
                              assigned=(("in", 0),), ready=True,
                              partitions=(PartitionStatus("in", 0, consumed=5, position=5),),
                              consumer_stats=_stats(5, 5, 100_000),
                              consumer_stats_at=self.now)

    def status(self) -> WorkerStatus:
        return self.s

    def clock(self) -> float:
        return self.now

    def turn(self, seconds: float, **changes: Any) -> None:
        from dataclasses import replace

        self.now += seconds
        self.s = replace(self.s, last_loop=self.now, **changes)


def test_lag_is_the_end_offset_minus_the_processed_position() -> None:
    f = Fake()
    assert partition_lag(f.s) == {("in", 0): 0}
    f.turn(1, consumer_stats=_stats(12, 5, 0))
    assert partition_lag(f.s) == {("in", 0): 7}
    fams = families(f.s)
    assert total(fams, "streamflow_consumer_lag_records", "", partition="0") == 7
    assert total(fams, "streamflow_bytes_consumed", topic="in") == 100


def test_readiness_turns_false_while_the_broker_is_silent() -> None:
    f = Fake()
    probe = worker_probe(f.status, broker_timeout_s=10, clock=f.clock)
    assert probe()["ready"] is True
    # stats arrive every interval while the loop turns; the broker stopped answering
    f.turn(5, consumer_stats=_stats(5, 5, 9_000_000), consumer_stats_at=f.now + 5)
    assert probe()["ready"] is True
    f.turn(3)  # 9 s at the last statistics + 3 s since
    state = probe()
    assert state["alive"] is True and state["ready"] is False
    assert "no answer from the brokers for 12.0s" in state["reasons"][0]
    f.turn(1, consumer_stats=_stats(5, 5, 200_000), consumer_stats_at=f.now + 1)
    assert probe()["ready"] is True
    # a connection that is down counts from when it went down
    f.turn(1, consumer_stats=_stats(5, 5, -1, state="DOWN"), consumer_stats_at=f.now + 1)
    assert probe()["ready"] is True  # down for 7 s
    f.turn(4)
    assert probe()["ready"] is False


def test_readiness_turns_false_when_a_partition_with_lag_stops_progressing() -> None:
    f = Fake()
    probe = worker_probe(f.status, stall_timeout_s=30, clock=f.clock)
    f.turn(1, consumer_stats=_stats(500, 5, 0), consumer_stats_at=f.now + 1)
    assert probe()["ready"] is True
    f.turn(20)
    assert probe()["ready"] is True
    f.turn(11)  # 31 s at position 5 with 495 records behind
    state = probe()
    assert state["ready"] is False and state["alive"] is True
    assert "in[0] (lag 495" in state["reasons"][0]
    f.turn(1, partitions=(PartitionStatus("in", 0, consumed=9, position=9),))
    assert probe()["ready"] is True  # it moves again
    f.turn(40, consumer_stats=_stats(9, 9, 0), consumer_stats_at=f.now + 40)
    assert probe()["ready"] is True  # no progress, but no lag either: idle, not stalled


def test_liveness_only_follows_the_loop() -> None:
    f = Fake()
    probe = worker_probe(f.status, stale_after_s=60, broker_timeout_s=1, stall_timeout_s=1,
                         clock=f.clock)
    f.turn(0, consumer_stats=_stats(500, 5, 50_000_000))
    f.now += 30
    assert probe()["alive"] is True and probe()["ready"] is False
    f.now += 31
    assert probe()["alive"] is False


# -- error budget -----------------------------------------------------------------------------


def budgeted(driver: TopologyTestDriver, ratio: float, window: str) -> None:
    engine(driver).policy.budget = error_budget(ratio, window)


def test_error_budget_stops_a_processor_that_dead_letters_too_much() -> None:
    rng = random.Random(7)
    with TopologyTestDriver(parsing()) as driver:
        budgeted(driver, 0.2, "100")
        for i in range(300):  # ~5 % poison: within budget
            driver.input("in").send("bad" if rng.random() < 0.05 else str(i), key=f"k{i}")
        with pytest.raises(ProcessingFailed) as e:
            for i in range(100):  # a mapping bug: everything fails
                driver.input("in").send("bad", key=f"k{i}")
    msg = str(e.value)
    assert "max_error_ratio 0.2" in msg and "dead-lettered" in msg and "to-int" in msg
    assert e.value.exit_code == 1
    dead = engine(driver).policy.dead_lettered
    assert 300 * 0.05 < dead < 300 * 0.05 + 40  # stopped once the window was over 20 %


def test_error_budget_is_off_by_default() -> None:
    with TopologyTestDriver(parsing(on_error="skip")) as driver:
        assert engine(driver).policy.budget is None
        for i in range(200):
            driver.input("in").send("bad", key=f"k{i}")
        assert engine(driver).policy.skipped == 200


def test_error_budget_over_seconds() -> None:
    now = [0.0]
    b = ErrorBudget(0.5, 10, seconds=True, clock=lambda: now[0])
    assert b.add(90, 80) is False  # under MIN_SAMPLE records
    now[0] = 5
    assert b.add(20, 0) is True  # 80 of 110
    now[0] = 12  # the first batch left the window
    assert b.add(100, 10) is False
    assert (b.records, b.failed) == (120, 10)


@pytest.mark.parametrize("ratio, window", [(1.0, "100"), (-0.1, "100"), (0.1, "x"),
                                           (0.1, "0"), (0.1, "-5s")])
def test_error_budget_settings_are_checked(ratio: float, window: str) -> None:
    with pytest.raises(ConfigError):
        error_budget(ratio, window)


def test_deploy_k8s_annotates_pods_for_a_prometheus_scrape() -> None:
    from streamflow.config import Config
    from streamflow.ops import k8s

    t = sf.Topology("shop")
    src = t.topic("orders", partitions=2, external=True)
    t.processor("count").stream(src).to(t.topic("out"))
    opts = k8s.K8sOptions(health_port=9100)
    (sts,) = [d for d in k8s.render(t, "topologies.shop", opts).documents
              if d["kind"] == "StatefulSet"]
    notes = sts["spec"]["template"]["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    assert notes["prometheus.io/port"] == "9100" and notes["prometheus.io/path"] == "/metrics"
    (sts,) = [d for d in k8s.render(t, "m", opts, Config(metrics=False)).documents
              if d["kind"] == "StatefulSet"]
    assert "prometheus.io/scrape" not in sts["spec"]["template"]["metadata"]["annotations"]


def test_restore_progress_is_exposed_while_and_after_a_restore() -> None:
    with TopologyTestDriver(parsing(partitions=1), auto_commit=False,
                            config={"restore_chunk_records": 10}) as driver:
        for i in range(60):
            driver.input("in").send(str(i), key=f"k{i}")
        driver.commit()
        driver.crash(settle=False)  # the new instance restores 60 changelog records
        driver.step()
        midway = worker_status(engine(driver), "0", None)
        assert midway.restoring and midway.assigned == (("in", 0),) and not midway.ready
        assert 0 < midway.restore.records < 60 and midway.restore.remaining > 0
        fams = families(midway)
        assert total(fams, "streamflow_restore_remaining_records", "") == \
            midway.restore.remaining
        for _ in range(10):
            driver.step()
        done = worker_status(engine(driver), "0", None)
    assert not done.restoring and done.restore.remaining == 0
    assert done.restore.records == 60 and done.restore.seconds > 0
