"""Window specs, ``Windowed``, the helpers and the DSL: validation, messages, describe()."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import streamflow as sf
from streamflow import Record
from streamflow.dsl.nodes import WindowAggregate, WindowEmit


def test_duration_helpers_return_milliseconds() -> None:
    assert sf.seconds(1.5) == 1500
    assert sf.minutes(2) == 120_000
    assert sf.hours(1) == 3_600_000


def test_specs_take_milliseconds_or_timedeltas() -> None:
    assert sf.Tumbling(timedelta(minutes=1), grace=timedelta(seconds=5)) == sf.Tumbling(
        60_000, grace=5_000)
    h = sf.Hopping(sf.minutes(10), sf.minutes(1), grace=10, close_after_idle=timedelta(seconds=3))
    assert (h.size, h.advance, h.grace, h.close_after_idle) == (600_000, 60_000, 10, 3_000)
    assert sf.Tumbling(10).advance == 10
    assert sf.Sliding(5).grace == 0
    assert sf.Session(timedelta(minutes=30)).gap == 1_800_000


@pytest.mark.parametrize(("make", "message"), [
    (lambda: sf.Tumbling(0), "Tumbling size must be > 0 milliseconds, got 0"),
    (lambda: sf.Tumbling(-5), "Tumbling size must be > 0"),
    (lambda: sf.Tumbling(10, grace=-1), "grace must be >= 0 milliseconds, got -1"),
    (lambda: sf.Hopping(10, 20), r"advance \(20 ms\) must not exceed the size \(10 ms\)"),
    (lambda: sf.Hopping(10, 0), "Hopping advance must be > 0"),
    (lambda: sf.Sliding(timedelta(microseconds=1500)), "whole number of milliseconds"),
    (lambda: sf.Session(0), "Session gap must be > 0"),
    (lambda: sf.Tumbling(10, close_after_idle=0), "close_after_idle must be > 0"),
])
def test_invalid_specs_say_what_is_wrong(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("bad", [1.5, "10s", True, None])
def test_durations_must_be_ints_or_timedeltas(bad: Any) -> None:
    with pytest.raises(TypeError, match=r"milliseconds \(int\) or a datetime.timedelta"):
        sf.Tumbling(bad)


def test_specs_are_frozen_and_hashable() -> None:
    spec = sf.Tumbling(10)
    with pytest.raises(AttributeError):
        spec.size = 20  # type: ignore[misc]
    assert len({sf.Tumbling(10), sf.Tumbling(10), sf.Tumbling(10, grace=1)}) == 2


def test_specs_describe_themselves_briefly() -> None:
    assert sf.Tumbling(sf.minutes(1), grace=sf.seconds(10)).describe() == (
        "tumbling(1m, grace=10s)")
    assert sf.Hopping(sf.minutes(10), sf.minutes(1)).describe() == "hopping(10m, advance=1m)"
    assert sf.Sliding(1500).describe() == "sliding(1500ms)"
    assert sf.Session(sf.hours(1), close_after_idle=sf.seconds(30)).describe() == (
        "session(gap=1h, close_after_idle=30s)")


def test_windowed_is_a_frozen_value() -> None:
    w = sf.Windowed("alice", 0, 60_000)
    assert (w.key, w.start, w.end) == ("alice", 0, 60_000)
    assert w == sf.Windowed("alice", 0, 60_000)
    assert {w: 1}[sf.Windowed("alice", 0, 60_000)] == 1
    with pytest.raises(AttributeError):
        w.start = 5  # type: ignore[misc]


def test_plain_key_drops_the_window() -> None:
    r = Record(sf.Windowed("alice", 0, 10), 3, 9)
    assert sf.plain_key(r) == Record("alice", 3, 9)
    assert sf.plain_key(Record("bob", 1, 1)) == Record("bob", 1, 1)


def test_with_window_in_value_moves_the_window_into_the_value() -> None:
    r = Record(sf.Windowed("alice", 0, 10), 3, 9)
    out = sf.with_window_in_value(r)
    assert (out.key, out.value, out.timestamp) == (
        "alice", {"key": "alice", "start": 0, "end": 10, "value": 3}, 9)
    with pytest.raises(TypeError, match="needs a Windowed key"):
        sf.with_window_in_value(Record("alice", 3, 9))


# -- DSL ----------------------------------------------------------------------------------
def _grouped() -> tuple[sf.Topology, Any]:
    t = sf.Topology("dsl")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    return t, t.processor("p").stream(src).group_by_key()


def test_window_needs_a_spec() -> None:
    _, g = _grouped()
    with pytest.raises(sf.TopologyError, match=r"needs a window spec \(sf.Tumbling"):
        g.window(60_000)


def test_session_aggregate_needs_a_merger() -> None:
    _, g = _grouped()
    with pytest.raises(sf.TopologyError, match="merger=lambda agg1, agg2"):
        g.window(sf.Session(10)).aggregate(list, lambda a, v: [*a, v])
    # count and reduce bring their own merger
    g.window(sf.Session(10)).count(name="c")
    g.window(sf.Session(10)).reduce(lambda a, b: a + b, name="r")


def test_late_topic_must_be_declared() -> None:
    _, g = _grouped()
    with pytest.raises(sf.TopologyError, match="topic 'nowhere' is not declared"):
        g.window(sf.Tumbling(10), late_topic="nowhere")


def test_timestamp_extractor_must_be_callable() -> None:
    _, g = _grouped()
    with pytest.raises(sf.TopologyError, match=r"timestamp=\.\.\.\) must be a function"):
        g.window(sf.Tumbling(10), timestamp=5)


def test_windowed_aggregation_builds_named_nodes_and_a_window_store() -> None:
    t, g = _grouped()
    late = t.topic("late", key=sf.String(), value=sf.Json())
    out = t.topic("out", key=sf.TimeWindowedSerde(sf.String(), window_size=10), value=sf.Long())
    table = g.window(sf.Tumbling(10), late_topic=late).count(name="per-10ms")
    table.final(name="closed").to(out)
    p = t.processors["p"]
    node = p.nodes["per-10ms"]
    assert isinstance(node, WindowAggregate) and node.store == "per-10ms" == table.store
    assert isinstance(p.nodes["closed"], WindowEmit)
    assert p.nodes["per-10ms.late"].parents == ("per-10ms",)
    assert p.stores["per-10ms"].changelog == "dsl-p-per-10ms-changelog"
    assert sorted(p.sink_topics()) == ["late", "out"]
    assert p.is_stateful()


def test_describe_renders_the_window_steps() -> None:
    t, g = _grouped()
    late = t.topic("late", key=sf.String(), value=sf.Json())
    out = t.topic("out", key=sf.TimeWindowedSerde(sf.String(), window_size=60_000),
                  value=sf.Long())
    table = g.window(sf.Tumbling(sf.minutes(1), grace=sf.seconds(10)), late_topic=late).count()
    table.final().to(out)
    table.updates().map_record(sf.plain_key).peek(print)
    text = t.describe()
    assert "window-count-1: window.count(tumbling(1m, grace=10s), store=window-count-1)" in text
    assert "window-count-1.late: to(late)" in text
    assert "final-1: final (once per window, on close)" in text
    assert "updates-1: updates" in text
    assert "out: key=TimeWindowed(String, size=60000ms), value=Long" in text
    assert "dsl-p-window-count-1-changelog (internal)" in text


def test_windowed_keys_are_json_objects_under_the_json_serde() -> None:
    from streamflow.serde import SerdeContext

    ser = sf.Json().serializer("t", True, SerdeContext())
    assert ser(sf.Windowed("a", 0, 10)) == b'{"key":"a","start":0,"end":10}'
