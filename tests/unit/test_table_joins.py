"""Table-table joins (inner, left, outer) against Kafka Streams' semantics table.

The table is the developer guide's "Semantics of table-table equi-joins": one key, records in
timestamp order, what the joiner is called with (or a tombstone) after each update of either
side. Through the test driver on both store backends, with deletes, result timestamps (the
larger of the two rows'), views on either side, and a restore from the changelogs.
"""

from __future__ import annotations

from typing import Any

import pytest

import streamflow as sf
from streamflow.dsl.topology import TopologyError
from streamflow.testing import TopologyTestDriver

BACKENDS = ["memory", "rocksdb"]
DELETE = object()  # a tombstone in the expected outputs

# (timestamp, side, value) then what inner, left and outer joins emit (None: nothing)
KS_TABLE: list[tuple[int, str, str | None, Any, Any, Any]] = [
    (1, "L", None, None, None, None),
    (2, "R", None, None, None, None),
    (3, "L", "A", None, ["A", None], ["A", None]),
    (4, "R", "a", ["A", "a"], ["A", "a"], ["A", "a"]),
    (5, "L", "B", ["B", "a"], ["B", "a"], ["B", "a"]),
    (6, "R", "b", ["B", "b"], ["B", "b"], ["B", "b"]),
    (7, "L", None, DELETE, DELETE, [None, "b"]),
    (8, "R", None, None, None, DELETE),
    (9, "L", "C", None, ["C", None], ["C", None]),
    (10, "R", "c", ["C", "c"], ["C", "c"], ["C", "c"]),
    (11, "R", None, DELETE, ["C", None], ["C", None]),
    (12, "L", None, None, DELETE, DELETE),
    (13, "R", None, None, None, None),
    (14, "R", "d", None, None, [None, "d"]),
    (15, "L", "D", ["D", "d"], ["D", "d"], ["D", "d"]),
]
COLUMN = {"join": 3, "left_join": 4, "outer_join": 5}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _topology(how: str, *, view: bool = False) -> sf.Topology:
    t = sf.Topology("shop")
    for name in ("left", "right"):
        t.topic(name, key=sf.String(), value=sf.Json(), partitions=1, external=True)
    t.topic("out", key=sf.String(), value=sf.Json(), partitions=1)
    p = t.processor("p")
    left = p.materialize(t.table("left"))
    if view:  # a view on the left side is kept in a store of its own
        left = left.map_values(lambda v: v, name="same")
    getattr(left, how)(t.table("right"), lambda lv, rv: [lv, rv], name="j") \
        .to_stream().to("out")
    return t


def _emitted(d: TopologyTestDriver) -> Any:
    records = d.output("out").read_records()
    assert len(records) <= 1
    if not records:
        return None
    return DELETE if records[0].value is None else records[0].value


@pytest.mark.parametrize("how", ["join", "left_join", "outer_join"])
@pytest.mark.parametrize("view", [False, True], ids=["tables", "view"])
def test_table_joins_follow_the_kafka_streams_semantics_table(backend: str, how: str,
                                                              view: bool) -> None:
    with TopologyTestDriver(_topology(how, view=view), config={"store": backend}) as d:
        for row in KS_TABLE:
            ts, side, value = row[:3]
            topic = "left" if side == "L" else "right"
            d.input(topic).send(value, key="k", timestamp=ts)
            assert _emitted(d) == row[COLUMN[how]], f"{how} at timestamp {ts}"


def test_a_join_result_has_the_larger_timestamp_of_its_two_rows(backend: str) -> None:
    with TopologyTestDriver(_topology("left_join"), config={"store": backend}) as d:
        d.input("right").send("r", key="k", timestamp=900)
        d.input("left").send("l", key="k", timestamp=100)
        d.input("left").send("m", key="x", timestamp=300)  # no right row: its own time
        d.input("right").send("s", key="k", timestamp=950)
        out = [(r.key, r.value, r.timestamp) for r in d.output("out").read_records()]
        assert out == [("k", ["l", "r"], 900), ("x", ["m", None], 300),
                       ("k", ["l", "s"], 950)]


def test_a_join_of_aggregations_joins_their_running_results(backend: str) -> None:
    t = sf.Topology("shop")
    t.topic("clicks", key=sf.String(), value=sf.Int(), partitions=1, external=True)
    t.topic("buys", key=sf.String(), value=sf.Int(), partitions=1, external=True)
    t.topic("out", key=sf.String(), value=sf.Json(), partitions=1)
    p = t.processor("p")
    clicks = p.stream("clicks").group_by_key(name="c").count(name="clicks")
    buys = p.stream("buys").group_by_key(name="b").count(name="buys")
    clicks.join(buys, lambda c, b: {"clicks": c, "buys": b}, name="rate") \
        .to_stream().to("out")
    with TopologyTestDriver(t, config={"store": backend}) as d:
        d.input("clicks").send(1, key="u", timestamp=1)
        d.input("clicks").send(1, key="u", timestamp=2)
        d.input("buys").send(1, key="u", timestamp=3)
        d.input("clicks").send(1, key="u", timestamp=4)
        assert d.output("out").read_values() == [{"clicks": 2, "buys": 1},
                                                 {"clicks": 3, "buys": 1}]


def test_a_join_result_joined_again_is_materialized(backend: str) -> None:
    t = sf.Topology("shop")
    for name in ("a", "b", "c"):
        t.topic(name, key=sf.String(), value=sf.Json(), partitions=1, external=True)
    t.topic("out", key=sf.String(), value=sf.Json(), partitions=1)
    p = t.processor("p")
    ab = p.materialize(t.table("a")).join(t.table("b"), lambda x, y: x + y, name="ab")
    ab.outer_join(t.table("c"), lambda xy, z: [xy, z], name="abc").to_stream().to("out")
    assert "ab.materialized" in p.stores
    with TopologyTestDriver(t, config={"store": backend}) as d:
        d.input("a").send("1", key="k", timestamp=1)
        d.input("c").send("3", key="k", timestamp=2)
        d.input("b").send("2", key="k", timestamp=3)
        d.input("a").send(None, key="k", timestamp=4)
        assert d.output("out").read_values() == [[None, "3"], ["12", "3"], [None, "3"]]


def test_table_joins_restore_from_the_changelogs(backend: str) -> None:
    with TopologyTestDriver(_topology("outer_join"), config={"store": backend}) as d:
        d.input("left").send("A", key="k", timestamp=10)
        d.input("right").send("a", key="k", timestamp=20)
        d.input("left").send("B", key="gone", timestamp=21)
        d.input("left").send(None, key="gone", timestamp=22)
        d.output("out").read_records()
        d.crash(keep_state=False)
        d.input("left").send("A2", key="k", timestamp=15)
        d.input("right").send(None, key="gone", timestamp=30)  # neither side has it
        out = [(r.value, r.timestamp) for r in d.output("out").read_records()]
        assert out == [(["A2", "a"], 20)]


def test_a_table_join_checks_its_arguments() -> None:
    t = sf.Topology("shop")
    t.topic("a", key=sf.String(), value=sf.Json(), external=True)
    p, q = t.processor("p"), t.processor("q")
    a = p.materialize(t.table("a"))
    with pytest.raises(TopologyError, match="with itself"):
        a.join(a, lambda x, y: x)
    with pytest.raises(TopologyError, match="two tables of processor 'p'"):
        a.join(q.materialize(t.table("a")), lambda x, y: x)
    with pytest.raises(TopologyError, match="joiner function"):
        a.left_join(t.table("a", name="again"), "not a function")  # type: ignore[arg-type]


def test_the_joined_topics_must_be_co_partitioned() -> None:
    t = _topology("join")
    assert set(t.processors["p"].joined_topics()) == {"left", "right"}
    assert "table.join(left side" in t.describe()
