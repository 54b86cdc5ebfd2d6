"""A sliding-window record that no open window holds is counted as late.

Kafka Streams' sliding-window algorithm (which streamflow follows, checked by the conformance
suite) puts a record that arrives after its left window closed, when no open window holds it,
in no window at all, and drops it without a trace. streamflow counts it like a record too late
for every window: ``<step>.late_records`` and the ``late_topic``. The windows do not change.
"""

from __future__ import annotations

from typing import Any

import pytest

import streamflow as sf
from streamflow.testing import TopologyTestDriver


def topology(late_topic: bool = True) -> sf.Topology:
    t = sf.Topology("t")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    t.topic("out", key=sf.Json(), value=sf.Json())
    t.topic("late", key=sf.String(), value=sf.Json())
    (t.processor("p").stream(src).group_by_key(name="g")
     .window(sf.Sliding(5), late_topic="late" if late_topic else None)  # closes at end + 1
     .aggregate(list, lambda a, v: [*a, v], name="w")
     .updates().to("out"))
    return t


def run(d: TopologyTestDriver, *records: tuple[str, str, int]) -> list[tuple[Any, ...]]:
    for key, value, ts in records:
        d.input("in").send(value, key=key, timestamp=ts)
    return [(r.key["key"], r.key["start"], r.key["end"], r.value)
            for r in d.output("out").read_records()]


def test_a_record_in_no_window_is_counted_late_and_goes_to_the_late_topic() -> None:
    with TopologyTestDriver(topology()) as d:
        run(d, ("a", "x", 10), ("b", "y", 20))  # a: [5,10]; stream time 20
        # 16: [5,10] does not hold it, its left window [11,16] closed at 17
        assert run(d, ("a", "lost", 16)) == []
        assert d.metrics()["w.late_records"] == 1
        assert d.output("late").read_key_values() == [("a", "lost")]
        assert run(d, ("a", "z", 20)) == [("a", 15, 20, ["z"])]  # in no window, then or later


def test_a_record_whose_right_window_opens_but_no_window_holds_it_is_late_too() -> None:
    with TopologyTestDriver(topology()) as d:
        run(d, ("a", "x", 22), ("b", "y", 25))  # a: [17,22], closed at 24
        # 20: in [17,22] (closed) and its closed left window only; its right window [21,26]
        # opens all the same, with x alone, as Kafka Streams makes it
        assert run(d, ("a", "lost", 20)) == [("a", 21, 26, ["x"])]
        assert d.metrics()["w.late_records"] == 1
        assert d.output("late").read_values() == ["lost"]


def test_a_record_an_open_window_holds_is_not_late() -> None:
    with TopologyTestDriver(topology()) as d:
        run(d, ("a", "x", 20))  # a: [15,20], open until stream time 21
        # 16: its left window [11,16] closed at 17, but the open [15,20] holds it
        assert run(d, ("a", "in", 16)) == [("a", 15, 20, ["x", "in"]), ("a", 17, 22, ["x"])]
        assert d.metrics()["w.late_records"] == 0
        assert d.output("late").is_empty()


@pytest.mark.parametrize("backend", ["memory", "rocksdb"])
def test_counted_without_a_late_topic_and_after_a_restore(backend: str) -> None:
    with TopologyTestDriver(topology(late_topic=False), config={"store": backend}) as d:
        run(d, ("a", "x", 10), ("b", "y", 20))
        d.crash(keep_state=False)  # stream time and windows come back from the changelog
        assert run(d, ("a", "lost", 16)) == []
        assert d.metrics()["w.late_records"] == 1
