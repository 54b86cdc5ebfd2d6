"""Time-aligned tasks: a task reading several topics takes their records in timestamp order."""

from __future__ import annotations

from typing import Any

import pytest

import streamflow as sf
from streamflow.kafka.client import KafkaError
from streamflow.runtime.alignment import (
    BUFFER_MAX,
    LAG_WAIT_MS,
    Aligner,
    aligned,
    input_groups,
    input_ranks,
)
from streamflow.runtime.tasks import Route
from streamflow.testing import TopologyTestDriver


def _devices(*, left: bool = False, partitions: int = 1) -> sf.Topology:
    t = sf.Topology("iot")
    # the stream's topic sorts before the table's: consumed in topic order, a backlog of
    # readings would reach the join before any device row
    t.topic("a-readings", key=sf.String(), value=sf.Int(), partitions=partitions,
            external=True)
    t.topic("z-devices", key=sf.String(), value=sf.String(), partitions=partitions,
            external=True)
    t.topic("out", key=sf.String(), value=sf.Json())
    readings = t.processor("enrich").stream("a-readings")
    joined = (readings.left_join if left else readings.join)(
        t.table("z-devices"), lambda v, d: [v, d])
    joined.to("out")
    return t


@pytest.mark.parametrize("left", [False, True])
@pytest.mark.parametrize("partitions", [1, 3])
def test_a_table_backlog_then_a_stream_backlog_enriches_every_record(
        left: bool, partitions: int) -> None:
    t = _devices(left=left, partitions=partitions)
    with TopologyTestDriver(t) as d:
        with d.backlog():
            for i in range(20):
                d.input("z-devices").send(f"room-{i}", key=f"dev-{i}", timestamp=1_000 + i)
            for i in range(1_000):
                d.input("a-readings").send(i, key=f"dev-{i % 20}", timestamp=2_000 + i)
        out = d.output("out").read_key_values()
    assert len(out) == 1_000
    assert all(v == [int(v[0]), f"room-{int(k[4:])}"] for k, v in out)


def test_a_table_update_in_a_backlog_applies_to_later_readings_only() -> None:
    with TopologyTestDriver(_devices(left=True)) as d:
        with d.backlog():
            d.input("z-devices").send("old", key="k", timestamp=100)
            d.input("z-devices").send("new", key="k", timestamp=250)
            for ts in (50, 150, 200, 250, 300):
                d.input("a-readings").send(ts, key="k", timestamp=ts)
        assert d.output("out").read_values() == [
            [50, None], [150, "old"], [200, "old"], [250, "new"], [300, "new"]]


def test_without_alignment_a_backlog_would_join_nothing() -> None:
    # -1: records are ordered within what was fetched, but no input is waited for. The
    # first batch holds only readings (the topic sorting first), so none finds its row.
    with TopologyTestDriver(_devices(), config={"max_task_idle_ms": -1}) as d:
        with d.backlog():
            d.input("z-devices").send("room", key="k", timestamp=1)
            for i in range(1_000):
                d.input("a-readings").send(i, key="k", timestamp=2 + i)
        assert d.output("out").read_values() == []


def test_a_reading_waits_max_task_idle_ms_for_an_idle_table() -> None:
    with TopologyTestDriver(_devices(left=True), config={"max_task_idle_ms": 500}) as d:
        d.input("a-readings").send(1, key="k", timestamp=10)
        assert d.output("out").is_empty()  # the table has no lag: wait 500 ms for it
        d.advance_wall_clock(499)
        assert d.output("out").is_empty()
        d.input("z-devices").send("room", key="k", timestamp=5)  # an earlier row arrives
        d.input("a-readings").send(2, key="k", timestamp=20)
        # the row is taken; the table is empty again, so a new 500 ms wait begins
        assert d.output("out").is_empty()
        d.advance_wall_clock(499)
        assert d.output("out").is_empty()
        d.advance_wall_clock(1)
        assert d.output("out").read_values() == [[1, "room"], [2, "room"]]


def test_a_stateless_processor_is_not_aligned() -> None:
    t = sf.Topology("plain")
    t.topic("in", key=sf.String(), value=sf.Int(), external=True)
    t.topic("out", key=sf.String(), value=sf.Int())
    t.processor("p").stream("in").to("out")
    with TopologyTestDriver(t) as d:
        assert d.engines["p"][0].tasks.aligner is None
    with TopologyTestDriver(_devices()) as d:
        assert d.engines["enrich"][0].tasks.aligner is not None


def test_only_inputs_whose_records_meet_are_aligned() -> None:
    t = sf.Topology("g")
    t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    t.topic("users", key=sf.String(), value=sf.Json(), external=True)
    counted = t.processor("count")  # its input and its repartition topic never meet
    counted.stream("in").group_by(lambda v: v["k"], name="by-k").count(name="n")
    assert not aligned(counted)
    enrich = t.processor("enrich")  # a join, then a repartition of the joined stream
    (enrich.stream("in").join(t.table("users"), lambda v, u: v)
        .group_by(lambda v: v["k"], name="by-k").count(name="n"))
    groups = input_groups(enrich)
    assert aligned(enrich) and groups["in"] == groups["users"]
    assert groups["g-enrich-by-k-repartition"] != groups["in"]


def test_tables_come_first_at_equal_timestamps() -> None:
    assert input_ranks(_devices().processors["enrich"]) == {"z-devices": 0, "a-readings": 1}
    with TopologyTestDriver(_devices()) as d:
        with d.backlog():
            d.input("a-readings").send(1, key="k", timestamp=100)
            d.input("z-devices").send("room", key="k", timestamp=100)
        assert d.output("out").read_values() == [[1, "room"]]


# -- the aligner on its own: lag, partition-EOF events, the wait bound, backpressure -------

class _Msg:
    def __init__(self, topic: str, ts: int, offset: int, err: Any = None) -> None:
        self._topic, self._ts, self._offset, self._err = topic, ts, offset, err

    def error(self) -> Any:
        return self._err

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return 1, self._ts


class _Consumer:
    def __init__(self) -> None:
        self.lags: dict[str, int | None] = {}
        self.paused: list[tuple[str, int]] = []

    def lag(self, topic: str, partition: int) -> int | None:
        return self.lags.get(topic)

    def pause(self, pairs: list[tuple[str, int]]) -> None:
        self.paused += pairs

    def resume(self, pairs: list[tuple[str, int]]) -> None:
        self.paused = [tp for tp in self.paused if tp not in pairs]


def _aligner(idle_ms: int = 0) -> tuple[Aligner, _Consumer, dict[tuple[str, int], Route],
                                        list[int], list[int]]:
    clock = [0]
    aligner = Aligner(_devices().processors["enrich"], idle_ms, lambda: clock[0])
    consumer = _Consumer()
    aligner.consumer = consumer  # type: ignore[assignment]
    routes = {(t, 0): Route(t, 0, None, None) for t in ("a-readings", "z-devices")}  # type: ignore[arg-type]
    return aligner, consumer, routes, clock, []


def test_an_input_with_unknown_lag_is_waited_for_at_most_lag_wait_ms() -> None:
    aligner, consumer, routes, clock, ran = _aligner()
    consumer.lags = {"z-devices": None}
    aligner.add(routes, [_Msg("a-readings", 5, 0)], _fail, _fail)
    run = lambda route, ms: ran.extend(m.offset() for m in ms)  # noqa: E731
    aligner.drain(routes, run)
    assert ran == [] and aligner.buffered == 1
    clock[0] = LAG_WAIT_MS - 1
    aligner.drain(routes, run)
    assert ran == []
    clock[0] = LAG_WAIT_MS
    aligner.drain(routes, run)
    assert ran == [0] and aligner.enforced == 1 and aligner.buffered == 0


def test_a_partition_eof_event_ends_the_wait_for_an_input() -> None:
    aligner, consumer, routes, _clock, ran = _aligner()
    consumer.lags = {"z-devices": 3}  # the cached watermark says records are coming
    run = lambda route, ms: ran.extend(m.offset() for m in ms)  # noqa: E731
    aligner.add(routes, [_Msg("a-readings", 5, 0)], _fail, _fail)
    aligner.drain(routes, run)
    assert ran == []
    eof = KafkaError(KafkaError._PARTITION_EOF)
    assert aligner.add(routes, [_Msg("z-devices", -1, 9, eof)], _fail, _fail) == 1  # one event
    aligner.drain(routes, run)
    assert ran == [0] and routes[("z-devices", 0)].eof


def test_an_input_buffering_too_many_records_is_paused_until_half_is_taken() -> None:
    aligner, consumer, routes, _clock, ran = _aligner()
    consumer.lags = {"z-devices": 1}
    run = lambda route, ms: ran.extend(m.offset() for m in ms)  # noqa: E731
    aligner.add(routes, [_Msg("a-readings", i, i) for i in range(BUFFER_MAX + 1)], _fail, _fail)
    assert consumer.paused == [("a-readings", 0)]
    aligner.drain(routes, run)
    assert consumer.paused == [("a-readings", 0)]
    aligner.add(routes, [_Msg("z-devices", BUFFER_MAX // 2 + 1, 0)], _fail, _fail)
    aligner.drain(routes, run)  # the readings before the device row, then the row
    assert ran == [*range(BUFFER_MAX // 2 + 1), 0]
    assert len(routes[("a-readings", 0)].buffer) == BUFFER_MAX // 2
    assert consumer.paused == []


def _fail(*args: Any) -> None:
    raise AssertionError(args)
