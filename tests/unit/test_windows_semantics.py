"""Windowed aggregations through ``TopologyTestDriver`` with hand-computed expectations,
on both store backends.

Close times (see ``streamflow.windows``): tumbling/hopping ``[s, e)`` close at ``e + grace``;
sliding ``[s, e]`` at ``e + 1 + grace``; sessions ``[first, last]`` at
``last + gap + 1 + grace``. Stream time includes the record being processed; windows due to
close are emitted before the record is applied.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import streamflow as sf
from streamflow.testing import TopologyTestDriver

BACKENDS = pytest.mark.parametrize("store", ["memory", "rocksdb"])

Out = tuple[Any, int, int, Any, int]  # key, start, end, value, timestamp


def _key_serde(spec: Any) -> sf.Serde:
    if isinstance(spec, sf.Session):
        return sf.SessionWindowedSerde(sf.String())
    return sf.TimeWindowedSerde(sf.String(), window_size=spec.size)


class Harness:
    """``in`` (String key, Json value) -> group_by_key -> window(spec) -> agg -> out."""

    def __init__(self, spec: Any, *, store: str, agg: str = "count", emit: str = "final",
                 late: bool = False, timestamp: Callable[[Any], int] | None = None,
                 on_error: str = "fail") -> None:
        t = sf.Topology("win")
        src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
        out = t.topic("out", key=_key_serde(spec), value=sf.Json())
        late_topic = t.topic("late", key=sf.String(), value=sf.Json()) if late else None
        windowed = (t.processor("p", on_error=on_error)  # type: ignore[arg-type]
                    .stream(src).group_by_key()
                    .window(spec, timestamp=timestamp, late_topic=late_topic))
        if agg == "count":
            table = windowed.count(name="w")
        elif agg == "sum":
            table = windowed.reduce(lambda a, b: a + b, name="w")
        else:
            table = windowed.aggregate(list, lambda a, v: [*a, v], name="w",
                                       merger=lambda a, b: [*a, *b])
        (table.final() if emit == "final" else table.updates()).to(out)
        self.driver = TopologyTestDriver(t, config={"store": store})
        self.inp = self.driver.input("in")

    def send(self, *records: tuple[str | None, int, Any]) -> None:
        for key, ts, value in records:
            self.inp.send(value, key=key, timestamp=ts)

    def out(self) -> list[Out]:
        return [(r.key.key, r.key.start, r.key.end, r.value, r.timestamp)
                for r in self.driver.output("out").read_records()]

    def late(self) -> list[tuple[Any, Any, int]]:
        return [(r.key, r.value, r.timestamp) for r in self.driver.output("late").read_records()]

    def late_count(self) -> int:
        return self.driver.metrics()["w.late_records"]

    def close(self) -> None:
        self.driver.close()


@pytest.fixture
def harnesses() -> Any:
    made: list[Harness] = []

    def make(spec: Any, **kw: Any) -> Harness:
        h = Harness(spec, **kw)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


# -- tumbling ------------------------------------------------------------------------------
@BACKENDS
def test_tumbling_accepts_out_of_order_records_within_grace_and_drops_later_ones(
        harnesses: Any, store: str) -> None:
    h = harnesses(sf.Tumbling(10, grace=5), store=store, late=True)
    h.send(("a", 1, 1), ("a", 12, 2), ("a", 8, 3), ("a", 14, 4), ("a", 3, 5))
    assert h.out() == []  # [0,10) closes at 15
    h.send(("a", 15, 6))
    assert h.out() == [("a", 0, 10, 3, 8)]  # 1, 8, 3; timestamp = the latest in the window
    h.send(("a", 4, 7))  # its window has closed: late
    assert h.out() == [] and h.late() == [("a", 7, 4)] and h.late_count() == 1
    h.send(("a", 30, 8))
    # [10,20) = 12, 14, 15; [20,30) had no records: nothing; [30,40) still open
    assert h.out() == [("a", 10, 20, 3, 15)]
    assert h.late_count() == 1


@BACKENDS
def test_tumbling_window_closes_exactly_when_stream_time_reaches_end_plus_grace(
        harnesses: Any, store: str) -> None:
    h = harnesses(sf.Tumbling(10), store=store)
    h.send(("a", 5, 0), ("a", 9, 0))
    assert h.out() == []
    h.send(("b", 10, 0))  # any key moves stream time: 10 >= 10 + 0 closes [0,10)
    assert h.out() == [("a", 0, 10, 2, 9)]
    h.send(("a", 9, 0))
    assert h.late_count() == 1
    g = harnesses(sf.Tumbling(10, grace=2), store=store)
    g.send(("a", 5, 0), ("a", 11, 0))
    assert g.out() == []
    g.send(("a", 12, 0))
    assert g.out() == [("a", 0, 10, 1, 5)]


@BACKENDS
def test_tumbling_final_emits_each_key_once_per_window_with_keys_interleaved(
        harnesses: Any, store: str) -> None:
    h = harnesses(sf.Tumbling(10), store=store, agg="sum")
    h.send(("a", 1, 10), ("b", 2, 20), ("a", 5, 1), ("c", 11, 300))
    assert h.out() == [("a", 0, 10, 11, 5), ("b", 0, 10, 20, 2)]
    h.send(("b", 12, 2), ("a", 13, 3), ("b", 19, 4))
    assert h.out() == []
    h.send(("c", 25, 0))
    # windows closing together come out in key order
    assert h.out() == [("a", 10, 20, 3, 13), ("b", 10, 20, 6, 19), ("c", 10, 20, 300, 11)]


@BACKENDS
def test_tumbling_updates_emit_every_change_and_final_only_the_last(
        harnesses: Any, store: str) -> None:
    u = harnesses(sf.Tumbling(10), store=store, emit="updates")
    f = harnesses(sf.Tumbling(10), store=store, emit="final")
    for h in (u, f):
        h.send(("a", 1, 0), ("a", 3, 0), ("a", 12, 0), ("a", 2, 0))  # 2 is late
    assert u.out() == [("a", 0, 10, 1, 1), ("a", 0, 10, 2, 3), ("a", 10, 20, 1, 12)]
    assert f.out() == [("a", 0, 10, 2, 3)]
    assert u.late_count() == f.late_count() == 1


@BACKENDS
def test_aggregate_folds_values_in_arrival_order(harnesses: Any, store: str) -> None:
    h = harnesses(sf.Tumbling(10), store=store, agg="list")
    h.send(("a", 7, "x"), ("a", 2, "y"), ("a", 9, "z"), ("a", 10, "next"))
    assert h.out() == [("a", 0, 10, ["x", "y", "z"], 9)]


# -- hopping -------------------------------------------------------------------------------
@BACKENDS
def test_hopping_windows_overlap_and_close_one_by_one(harnesses: Any, store: str) -> None:
    h = harnesses(sf.Hopping(10, 5), store=store, late=True)
    # 103 is in [95,105) and [100,110); 107 in [100,110) and [105,115)
    h.send(("a", 103, 0), ("a", 107, 0))  # stream time 107 closes [95,105)
    assert h.out() == [("a", 95, 105, 1, 103)]
    h.send(("a", 112, 0))  # closes [100,110)
    assert h.out() == [("a", 100, 110, 2, 107)]
    # 109: [100,110) has closed but [105,115) is open: it counts there, it is not late
    h.send(("a", 109, 0))
    assert h.late_count() == 0 and h.late() == []
    h.send(("a", 120, 0))  # closes [105,115) = 107, 112, 109 and [110,120) = 112
    assert h.out() == [("a", 105, 115, 3, 112), ("a", 110, 120, 1, 112)]
    h.send(("a", 104, 0))  # [95,105) and [100,110) both closed: late
    assert h.late_count() == 1 and h.late() == [("a", 0, 104)]


@BACKENDS
def test_hopping_with_size_ten_advances_puts_a_record_in_ten_windows(
        harnesses: Any, store: str) -> None:
    h = harnesses(sf.Hopping(10, 1), store=store, emit="updates")
    h.send(("a", 25, 0))
    assert h.out() == [("a", s, s + 10, 1, 25) for s in range(16, 26)]
    f = harnesses(sf.Hopping(10, 1), store=store)
    f.send(("a", 25, 0), ("a", 27, 0), ("b", 100, 0))
    expected = [("a", s, s + 10, 1, 25) for s in (16, 17)]
    expected += [("a", s, s + 10, 2, 27) for s in range(18, 26)]
    expected += [("a", s, s + 10, 1, 27) for s in (26, 27)]
    assert f.out() == expected


def test_hopping_windows_are_clipped_at_zero() -> None:
    h = Harness(sf.Hopping(10, 5), store="memory", emit="updates")
    try:
        h.send(("a", 3, 0))  # [-5, 5) would hold it too: Kafka Streams creates no such window
        assert h.out() == [("a", 0, 10, 1, 3)]
        h.send(("a", 7, 0))
        assert h.out() == [("a", 0, 10, 2, 7), ("a", 5, 15, 1, 7)]
    finally:
        h.close()


@pytest.mark.parametrize("spec", [sf.Tumbling(10), sf.Hopping(10, 5), sf.Sliding(10),
                                  sf.Session(10)])
@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_windows_closing_together_come_out_by_end_then_key(spec: Any, store: str) -> None:
    # the store orders keys by length first ("b" before "aa"); Kafka Streams by key bytes
    h = Harness(spec, store=store)
    try:
        h.send(("b", 1, 0), ("aa", 1, 0), ("ab", 1, 0), ("a", 1, 0), ("c", 1_000, 0))
        closed = [(key, start, end) for key, start, end, _, _ in h.out()]
        assert closed == sorted(closed, key=lambda w: (w[2], w[0]))
        assert [k for k, _, _ in closed][:4] == ["a", "aa", "ab", "b"]
    finally:
        h.close()


@pytest.mark.parametrize("spec", [sf.Tumbling(10), sf.Hopping(10, 5), sf.Sliding(10),
                                  sf.Session(10)])
def test_records_with_a_negative_timestamp_are_skipped(spec: Any) -> None:
    h = Harness(spec, store="memory", emit="updates")
    try:
        h.send(("a", -1, 0))
        assert h.out() == []
        assert h.driver.metrics()["w.skipped_records"] == 1
    finally:
        h.close()


# -- sliding -------------------------------------------------------------------------------
@BACKENDS
def test_sliding_windows_include_both_ends(harnesses: Any, store: str) -> None:
    h = harnesses(sf.Sliding(10), store=store)
    h.send(("a", 10, 0), ("a", 20, 0))  # exactly `size` apart: together in [10,20]
    assert h.out() == [("a", 0, 10, 1, 10)]
    h.send(("a", 21, 0))
    assert h.out() == [("a", 10, 20, 2, 20)]
    h.send(("a", 40, 0))
    # [11,21] is both the right window of 10 and the left window of 21: emitted once
    assert h.out() == [("a", 11, 21, 2, 21), ("a", 21, 31, 1, 21)]


@BACKENDS
def test_sliding_records_one_more_than_size_apart_share_no_window(
        harnesses: Any, store: str) -> None:
    h = harnesses(sf.Sliding(10), store=store)
    h.send(("a", 10, 0), ("a", 21, 0), ("a", 50, 0))
    assert h.out() == [("a", 0, 10, 1, 10), ("a", 11, 21, 1, 21)]


@BACKENDS
def test_sliding_out_of_order_record_creates_its_windows_and_updates_others(
        harnesses: Any, store: str) -> None:
    h = harnesses(sf.Sliding(10, grace=10), store=store, agg="list")
    h.send(("a", 10, "p"), ("a", 30, "q"))
    assert h.out() == [("a", 0, 10, ["p"], 10)]  # closes at 10 + 1 + 10
    h.send(("a", 25, "r"))  # joins [20,30]; creates [15,25] and its right window [26,36]
    assert h.out() == []
    h.send(("a", 60, "s"))
    assert h.out() == [
        ("a", 15, 25, ["r"], 25),
        ("a", 20, 30, ["q", "r"], 30),
        ("a", 26, 36, ["q"], 30),
    ]


@BACKENDS
def test_sliding_updates_show_each_window_as_it_changes(harnesses: Any, store: str) -> None:
    h = harnesses(sf.Sliding(10), store=store, emit="updates")
    h.send(("a", 10, 0), ("a", 15, 0))
    assert h.out() == [  # in Kafka Streams' order
        ("a", 0, 10, 1, 10),   # 10: its left window
        ("a", 11, 21, 1, 15),  # 15: the right window of 10 now exists
        ("a", 5, 15, 2, 15),   # and its left window holds 10 and 15
    ]


@BACKENDS
def test_sliding_records_before_size_share_the_early_window_from_0(
        harnesses: Any, store: str) -> None:
    """Kafka Streams' processEarly: no window starts before 0; records at ts < size go into
    [0, size] (not [ts - size, ts]) and still get right windows."""
    h = harnesses(sf.Sliding(10), store=store, emit="updates")
    h.send(("a", 3, 0), ("a", 7, 0), ("a", 12, 0))
    assert h.out() == [
        ("a", 0, 10, 1, 3),    # 3: the early window
        ("a", 4, 14, 1, 7),    # 7: the right window of 3
        ("a", 0, 10, 2, 7),    # and the early window again
        ("a", 4, 14, 2, 12),   # 12: falls into the right window of 3
        ("a", 8, 18, 1, 12),   # the right window of 7
        ("a", 2, 12, 3, 12),   # its own left window, from the early window's aggregate
    ]


@BACKENDS
def test_sliding_out_of_order_early_record_takes_the_later_ones_into_its_right_window(
        harnesses: Any, store: str) -> None:
    h = harnesses(sf.Sliding(10, grace=20), store=store, agg="list")
    h.send(("a", 8, "x"), ("a", 2, "y"), ("a", 40, "z"))
    assert h.out() == [
        ("a", 0, 10, ["x", "y"], 8),
        ("a", 3, 13, ["x"], 8),  # the right window of 2 holds 8 only
    ]


@BACKENDS
def test_sliding_record_late_for_its_left_window_is_kept_only_by_open_windows(
        harnesses: Any, store: str) -> None:
    """Kafka Streams' rule, followed as is: a record whose left window has closed but whose
    right window could still open is added to the open windows holding it, and nowhere else."""
    h = harnesses(sf.Sliding(10), store=store, agg="list")
    h.send(("b", 30, "s"), ("a", 22, "p"))  # [12,22] closed at 23: p is in no window
    h.send(("a", 30, "q"), ("b", 60, "t"))
    assert h.out() == [("a", 20, 30, ["q"], 30), ("b", 20, 30, ["s"], 30)]


# -- sessions ------------------------------------------------------------------------------
@BACKENDS
def test_session_includes_records_exactly_gap_apart_and_splits_beyond(
        harnesses: Any, store: str) -> None:
    h = harnesses(sf.Session(10), store=store)
    h.send(("a", 0, 0), ("a", 10, 0))
    assert h.out() == []
    h.send(("a", 21, 0))  # 11 after the last: a new session; [0,10] closes at 10 + 11
    assert h.out() == [("a", 0, 10, 2, 10)]
    h.send(("a", 35, 0))
    assert h.out() == [("a", 21, 21, 1, 21)]


@BACKENDS
def test_session_stays_open_for_its_gap_so_a_later_record_extends_it(
        harnesses: Any, store: str) -> None:
    h = harnesses(sf.Session(10), store=store)
    # Kafka Streams would have closed [0,5] at stream time 6; here it closes at 16
    h.send(("a", 0, 0), ("a", 5, 0), ("b", 14, 0), ("a", 14, 0))
    h.send(("b", 40, 0))
    assert h.out() == [("a", 0, 14, 3, 14), ("b", 14, 14, 1, 14)]


@BACKENDS
def test_session_update_replaces_the_session_with_a_delete_first(
        harnesses: Any, store: str) -> None:
    """As Kafka Streams: an update deletes the old session (``None``), even when the record
    falls inside it, unless the session is exactly ``[ts, ts]``."""
    h = harnesses(sf.Session(300), store=store, emit="updates")
    h.send(("a", 1000, 0), ("a", 1000, 0), ("a", 1200, 0), ("a", 1100, 0))
    assert h.out() == [
        ("a", 1000, 1000, 1, 1000),
        ("a", 1000, 1000, 2, 1000),
        ("a", 1000, 1000, None, 1000),
        ("a", 1000, 1200, 3, 1200),
        ("a", 1000, 1200, None, 1200),
        ("a", 1000, 1200, 4, 1200),
    ]


@BACKENDS
def test_a_record_bridging_two_sessions_merges_them(harnesses: Any, store: str) -> None:
    u = harnesses(sf.Session(10, grace=20), store=store, emit="updates", agg="list")
    f = harnesses(sf.Session(10, grace=20), store=store, agg="list")
    for h in (u, f):
        h.send(("a", 0, "x"), ("a", 18, "y"), ("a", 9, "z"))  # 9 is within 10 of both
    assert u.out() == [
        ("a", 0, 0, ["x"], 0),
        ("a", 18, 18, ["y"], 18),
        ("a", 0, 0, None, 0),      # both merged away...
        ("a", 18, 18, None, 18),
        ("a", 0, 18, ["x", "y", "z"], 18),  # ...into one (merger, then the adder)
    ]
    f.send(("a", 49, "w"))  # [0,18] closes at 18 + 10 + 1 + 20 = 49
    assert f.out() == [("a", 0, 18, ["x", "y", "z"], 18)]


@BACKENDS
def test_session_late_records_are_dropped_but_may_start_or_join_open_sessions(
        harnesses: Any, store: str) -> None:
    h = harnesses(sf.Session(10), store=store, late=True)
    h.send(("a", 0, 1), ("a", 30, 2))
    assert h.out() == [("a", 0, 0, 1, 0)]
    h.send(("a", 5, 3))  # its session [5,5] would close at 16 <= 30: late
    assert h.late() == [("a", 3, 5)] and h.late_count() == 1
    h.send(("a", 25, 4), ("a", 22, 5))  # out of order, but they join the open [30,30]
    h.send(("a", 100, 6))
    assert h.out() == [("a", 22, 30, 3, 30)]
    assert h.late_count() == 1


@BACKENDS
def test_session_reduce_merges_with_the_reducer(harnesses: Any, store: str) -> None:
    h = harnesses(sf.Session(5, grace=10), store=store, agg="sum")
    h.send(("k", 0, 1), ("k", 8, 10), ("k", 4, 100), ("k", 50, 0))
    assert h.out() == [("k", 0, 8, 111, 8)]


# -- time, keys and failures ---------------------------------------------------------------
@BACKENDS
def test_timestamp_extractor_gives_event_time(harnesses: Any, store: str) -> None:
    h = harnesses(sf.Tumbling(10), store=store, timestamp=lambda v: v["t"], agg="list")
    h.send(("a", 999, {"t": 15}), ("a", 0, {"t": 18}), ("a", 0, {"t": 21}))
    assert h.out() == [("a", 10, 20, [{"t": 15}, {"t": 18}], 18)]


def test_null_keys_and_values_are_skipped_and_counted() -> None:
    h = Harness(sf.Tumbling(10), store="memory")
    try:
        h.send((None, 1, 1), ("a", 2, None), ("a", 3, 1), ("a", 20, 1))
        assert h.out() == [("a", 0, 10, 1, 3)]
        assert h.driver.metrics()["w.skipped_records"] == 2
    finally:
        h.close()


def test_a_failing_aggregator_names_the_step_and_follows_on_error() -> None:
    from streamflow.runtime.errors import ProcessingFailed

    def build(on_error: str) -> TopologyTestDriver:
        t = sf.Topology("err")
        src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
        out = t.topic("out", key=sf.TimeWindowedSerde(sf.String(), window_size=10),
                      value=sf.Json())
        (t.processor("p", on_error=on_error)  # type: ignore[arg-type]
         .stream(src).group_by_key().window(sf.Tumbling(10))
         .reduce(lambda a, b: a + b["n"] if isinstance(a, int) else a["n"] + b["n"],
                 name="sum").final().to(out))
        return TopologyTestDriver(t)

    with build("fail") as d, pytest.raises(ProcessingFailed, match="step 'sum'"):
        d.input("in").send({"n": 1}, key="a", timestamp=1)
        d.input("in").send({"x": 1}, key="a", timestamp=2)
    with build("skip") as d:
        inp = d.input("in")
        inp.send({"n": 1}, key="a", timestamp=1)
        inp.send({"x": 1}, key="a", timestamp=2)
        inp.send({"n": 5}, key="a", timestamp=3)
        inp.send({"n": 0}, key="b", timestamp=10)
        assert d.output("out").read_key_values() == [(sf.Windowed("a", 0, 10), 6)]


def test_results_map_to_plain_keys_for_downstream_topics() -> None:
    t = sf.Topology("plain")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Json())
    (t.processor("p").stream(src).group_by_key().window(sf.Tumbling(60_000)).count()
     .final().map_record(sf.with_window_in_value).to(out))
    with TopologyTestDriver(t) as d:
        d.input("in").send({}, key="u1", timestamp=1_000)
        d.input("in").send({}, key="u1", timestamp=61_000)
        assert d.output("out").read_key_values() == [
            ("u1", {"key": "u1", "start": 0, "end": 60_000, "value": 1})]


@pytest.mark.parametrize("spec", [sf.Tumbling(10), sf.Hopping(10, 5), sf.Sliding(10),
                                  sf.Session(10)], ids=lambda s: s.describe())
def test_keys_of_different_types_stay_apart(spec: Any) -> None:
    t = sf.Topology("mixed")
    src = t.topic("in", key=sf.Json(), value=sf.Json(), external=True)
    got: list[tuple[Any, int]] = []
    (t.processor("p").stream(src).group_by_key().window(spec).count().final()
     .peek(lambda r: got.append((r.key.key, r.value))))
    with TopologyTestDriver(t) as d:
        for key in ["1", 1, "1", 1.5, [1, 2], 1]:
            d.input("in").send({}, key=key, timestamp=5)
        d.input("in").send({}, key="z", timestamp=100)
    counts: dict[str, int] = {}
    for key, n in got:
        counts[repr(key)] = max(counts.get(repr(key), 0), n)
    assert counts == {"'1'": 2, "1": 2, "1.5": 1, "[1, 2]": 1}


def test_sliding_windows_never_share_a_mutable_aggregate() -> None:
    def append(agg: list[int], v: int) -> list[int]:
        agg.append(v)  # mutates its input: new windows must start from a copy
        return agg

    t = sf.Topology("mut")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    got: list[tuple[int, int, Any]] = []
    (t.processor("p").stream(src).group_by_key().window(sf.Sliding(10))
     .aggregate(list, append).final()
     .peek(lambda r: got.append((r.key.start, r.key.end, r.value))))
    with TopologyTestDriver(t) as d:
        for ts, v in [(10, 1), (15, 2), (18, 3), (100, 0)]:
            d.input("in").send(v, key="a", timestamp=ts)
    assert got == [(0, 10, [1]), (5, 15, [1, 2]), (8, 18, [1, 2, 3]),
                   (11, 21, [2, 3]), (16, 26, [3])]
