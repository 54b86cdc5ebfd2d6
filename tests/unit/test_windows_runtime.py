"""Windows over time and restarts: closing quiet partitions on wall-clock idleness, state
kept bounded in the store, and a task restarted from its store carrying on exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import streamflow as sf
from streamflow.state.window_store import META_STREAM_TIME, load
from streamflow.testing import TopologyTestDriver

BACKENDS = pytest.mark.parametrize("store", ["memory", "rocksdb"])


def _topology(spec: Any, *, late: bool = False) -> sf.Topology:
    t = sf.Topology("rt")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    key = (sf.SessionWindowedSerde(sf.String()) if isinstance(spec, sf.Session)
           else sf.TimeWindowedSerde(sf.String(), window_size=spec.size))
    out = t.topic("out", key=key, value=sf.Long())
    late_topic = t.topic("late", key=sf.String(), value=sf.Json()) if late else None
    (t.processor("p").stream(src).group_by_key()
     .window(spec, late_topic=late_topic).count(name="w").final().to(out))
    return t


def _out(d: TopologyTestDriver) -> list[tuple[Any, int, int, int]]:
    return [(r.key.key, r.key.start, r.key.end, r.value)
            for r in d.output("out").read_records()]


# -- close_after_idle ----------------------------------------------------------------------
@BACKENDS
def test_close_after_idle_emits_open_windows_of_a_quiet_partition(store: str) -> None:
    t = _topology(sf.Tumbling(10, grace=100, close_after_idle=1000), late=True)
    with TopologyTestDriver(t, config={"store": store}) as d:
        inp = d.input("in")
        inp.send({}, key="a", timestamp=1)
        inp.send({}, key="b", timestamp=3)
        d.advance_wall_clock(999)
        assert _out(d) == []
        d.advance_wall_clock(1)  # nothing for 1000 ms: every open window closes
        assert _out(d) == [("a", 0, 10, 1), ("b", 0, 10, 1)]
        # stream time moved to the last close time (10 + 100): those windows stay closed
        inp.send({}, key="a", timestamp=5)
        assert d.metrics()["w.late_records"] == 1
        assert [r.key for r in d.output("late").read_records()] == ["a"]
        inp.send({}, key="a", timestamp=112)  # [110,120) closes at 220: open
        d.advance_wall_clock(500)
        assert _out(d) == []
        d.advance_wall_clock(500)  # 1000 ms after that record
        assert _out(d) == [("a", 110, 120, 1)]
        d.advance_wall_clock(10_000)  # nothing open: nothing more
        assert _out(d) == []


@BACKENDS
def test_close_after_idle_works_for_sliding_and_session_windows(store: str) -> None:
    sliding = _topology(sf.Sliding(10, close_after_idle=50))
    with TopologyTestDriver(sliding, config={"store": store}) as d:
        d.input("in").send({}, key="a", timestamp=100)
        d.input("in").send({}, key="a", timestamp=105)
        d.advance_wall_clock(50)
        assert _out(d) == [("a", 90, 100, 1), ("a", 95, 105, 2), ("a", 101, 111, 1)]
    session = _topology(sf.Session(10, close_after_idle=50))
    with TopologyTestDriver(session, config={"store": store}) as d:
        d.input("in").send({}, key="a", timestamp=100)
        d.input("in").send({}, key="a", timestamp=105)
        d.advance_wall_clock(49)
        assert _out(d) == []
        d.advance_wall_clock(1)
        assert _out(d) == [("a", 100, 105, 2)]


def test_windows_without_close_after_idle_wait_for_stream_time() -> None:
    with TopologyTestDriver(_topology(sf.Tumbling(10))) as d:
        d.input("in").send({}, key="a", timestamp=1)
        d.advance_wall_clock(10**9)
        assert _out(d) == []


# -- bounded state -------------------------------------------------------------------------
def _store_keys(d: TopologyTestDriver) -> list[bytes]:
    return [k for k, _ in d.store("w").scan_raw(None, None) if k != META_STREAM_TIME]


@BACKENDS
@pytest.mark.parametrize("spec", [sf.Tumbling(10), sf.Hopping(10, 2), sf.Session(5)],
                         ids=["tumbling", "hopping", "session"])
def test_closed_windows_are_deleted_from_the_store(store: str, spec: Any) -> None:
    with TopologyTestDriver(_topology(spec), config={"store": store}) as d:
        inp = d.input("in")
        for i in range(200):
            inp.send({}, key=f"k{i % 7}", timestamp=i * 3)
        # only windows that are still open remain (plus the stream time)
        loaded = load(d.store("w"))
        assert loaded.stream_time == 199 * 3
        per_key = 1 if isinstance(spec, sf.Session) else spec.size // spec.advance
        assert 0 < len(_store_keys(d)) <= 7 * per_key
        assert all(start + 10 > 199 * 3 for _, _, start, _ in loaded.windows)


@BACKENDS
def test_sliding_windows_are_deleted_once_they_cannot_seed_new_windows(store: str) -> None:
    with TopologyTestDriver(_topology(sf.Sliding(10)), config={"store": store}) as d:
        inp = d.input("in")
        for i in range(300):
            inp.send({}, key="k", timestamp=i * 4)
        # windows end at most 3 * size + 2 (+ grace) behind stream time
        ends = [start + 10 for _, _, start, _ in load(d.store("w")).windows]
        assert ends and min(ends) >= 299 * 4 - 3 * 10 - 2


# -- restarts ------------------------------------------------------------------------------
SPECS = [sf.Tumbling(10, grace=3), sf.Hopping(12, 4, grace=2), sf.Sliding(8, grace=3),
         sf.Session(6, grace=2)]


def _records() -> list[tuple[str, int]]:
    out = []
    for i in range(120):
        ts = i * 2 - (7 if i % 5 == 0 else 0)  # every fifth record 7 ms out of order
        out.append((f"k{i % 3}", ts))
    return out


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.describe())
@pytest.mark.parametrize("cut", [1, 37, 80, 119])
def test_a_task_restarted_from_its_store_continues_exactly(
        tmp_path: Path, spec: Any, cut: int) -> None:
    records = _records()
    with TopologyTestDriver(_topology(spec)) as d:
        for key, ts in records:
            d.input("in").send({}, key=key, timestamp=ts)
        uninterrupted = _out(d)
        late = d.metrics()["w.late_records"]
    got: list[Any] = []
    late_after = 0
    for part in (records[:cut], records[cut:]):  # same state dir: RocksDB persists
        with TopologyTestDriver(_topology(spec),
                                config={"store": "rocksdb", "state_dir": str(tmp_path)}) as d:
            for key, ts in part:
                d.input("in").send({}, key=key, timestamp=ts)
            got += _out(d)
            late_after += d.metrics()["w.late_records"]
    assert uninterrupted and got == uninterrupted
    assert late_after == late
