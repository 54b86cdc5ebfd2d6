"""``on_error=`` on aggregations: a record whose aggregator raises is skipped or dead-lettered
and leaves the state as it was (nothing stored, nothing in the changelog, nothing downstream),
windowed or not, on both store backends, through a restore."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

import streamflow as sf
from streamflow.plan.guard import copy_agg
from streamflow.runtime.errors import ProcessingFailed
from streamflow.state.window_store import META_STREAM_TIME
from streamflow.testing import TopologyTestDriver

BACKENDS = ["memory", "rocksdb"]
DLQ = "t.p.dlq"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def add_amount(total: dict[str, Any], v: dict[str, Any]) -> dict[str, Any]:
    """Changes the aggregate in place before it can fail: the worst case for a skip."""
    total["n"] += 1
    total["sum"] += v["amount"]  # KeyError or TypeError on a bad record
    return total


def grouped(**policies: Any) -> tuple[sf.Topology, Any]:
    t = sf.Topology("t")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    t.topic("out", key=sf.Json(), value=sf.Json())
    return t, t.processor("p", **policies).stream(src).group_by_key(name="g")


def changelog_keys(d: TopologyTestDriver, topic: str) -> list[bytes | None]:
    """The keys of the changelog records so far (the window stores' stream time left out)."""
    return [r.key for r in d.cluster.stable(topic, 0, 0) if r.key != META_STREAM_TIME]


def send(d: TopologyTestDriver, *records: tuple[str, Any, int]) -> None:
    for key, value, ts in records:
        d.input("in").send(value, key=key, timestamp=ts)


# -- aggregate and reduce -------------------------------------------------------------------

def test_a_skipped_record_leaves_the_aggregate_and_its_changelog_untouched(
        backend: str) -> None:
    t, g = grouped()
    g.aggregate(lambda: {"n": 0, "sum": 0}, add_amount, name="totals",
                on_error="skip").to_stream().to("out")
    changelog = "t-p-totals-changelog"
    with TopologyTestDriver(t, config={"store": backend}) as d:
        send(d, ("a", {"amount": 5}, 1))
        before = changelog_keys(d, changelog)
        send(d, ("a", {"amount": "five"}, 2), ("a", {}, 3))  # both fail after n += 1
        assert d.engines["p"][0].policy.skipped == 2
        assert changelog_keys(d, changelog) == before
        assert d.store("totals").get("a") == {"n": 1, "sum": 5}
        send(d, ("a", {"amount": 2}, 4))
        assert d.output("out").read_values() == [{"n": 1, "sum": 5}, {"n": 2, "sum": 7}]
        d.crash(keep_state=False)  # the state comes back from the changelog alone
        send(d, ("a", {"amount": 1}, 5))
        assert d.output("out").read_values() == [{"n": 3, "sum": 8}]


def test_a_reducer_failing_dead_letters_the_record_named_by_its_step(backend: str) -> None:
    t, g = grouped()
    g.reduce(lambda a, v: {"max": max(a["max"], v["max"])}, name="max",
             on_error="dead_letter").to_stream().to("out")
    with TopologyTestDriver(t, config={"store": backend}) as d:
        send(d, ("a", {"max": 3}, 1), ("a", {"min": 1}, 2), ("a", {"max": 9}, 3))
        assert d.output("out").read_values() == [{"max": 3}, {"max": 9}]
        (dead,) = d.output(DLQ).read_records()
        headers = dict(dead.headers or [])
        assert (dead.value, headers["streamflow.error.step"],
                headers["streamflow.error.phase"]) == (b'{"min":1}', b"max", b"process")


def test_the_processors_policy_that_goes_on_protects_the_state_too(backend: str) -> None:
    t, g = grouped(on_processing_error="skip")
    g.aggregate(lambda: {"n": 0, "sum": 0}, add_amount, name="totals").to_stream().to("out")
    with TopologyTestDriver(t, config={"store": backend}) as d:
        send(d, ("a", {"amount": 1}, 1), ("a", {}, 2), ("a", {"amount": 1}, 3))
        assert d.output("out").read_values() == [{"n": 1, "sum": 1}, {"n": 2, "sum": 2}]


def test_a_step_fail_policy_overrides_the_processors_skip() -> None:
    t, g = grouped(on_error="skip")
    g.aggregate(lambda: {"n": 0, "sum": 0}, add_amount, name="totals", on_error="fail")
    with TopologyTestDriver(t) as d, pytest.raises(
            ProcessingFailed, match=r"failed in step 'totals': KeyError.*set on_error of step "
                                    r"'totals'='dead_letter'"):
        send(d, ("a", {}, 1))


def test_an_aggregation_on_error_is_checked_and_described() -> None:
    t, g = grouped()
    g.reduce(max, name="r", on_error="skip")
    assert "r: reduce(store=r) [on_error=skip]" in t.describe()
    with pytest.raises(sf.TopologyError, match="step 'a': on_error must be"):
        g.aggregate(dict, lambda a, v: a, name="a", on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(sf.TopologyError, match="step 'w': on_error must be"):
        g.window(sf.Tumbling(10)).reduce(max, name="w", on_error="drop")  # type: ignore[arg-type]


# -- windowed aggregations ------------------------------------------------------------------

def append_unless_bad(agg: list[Any], v: Any) -> list[Any]:
    """Fails for ``"bad"`` in an empty window only, after changing the aggregate in place."""
    agg.append(v)
    if v == "bad" and len(agg) == 1:
        raise ValueError("bad record")
    return agg


def concat_unless_bad(agg: list[Any], v: Any) -> list[Any]:
    """Fails for ``"bad"`` in an empty window only; leaves the aggregate as it is."""
    if v == "bad" and not agg:
        raise ValueError("bad record")
    return [*agg, v]


def append_but_bad(agg: list[Any], v: Any) -> list[Any]:
    """Fails for ``"bad"`` in any window, after changing the aggregate in place."""
    agg.append(v)
    if v == "bad":
        raise ValueError("bad record")
    return agg


def windowed(spec: Any, adder: Any = append_unless_bad, **kw: Any) -> sf.Topology:
    t, g = grouped()
    table = g.window(spec).aggregate(list, adder, name="w", merger=lambda a, b: [*a, *b], **kw)
    table.updates().to("out")
    return t


def updates(d: TopologyTestDriver) -> list[tuple[str, int, int, Any]]:
    return [(r.key["key"], r.key["start"], r.key["end"], r.value)
            for r in d.output("out").read_records()]


@pytest.mark.parametrize(("spec", "first", "seen", "after"), [
    # "bad"@7 fails in the new [5,10) (the one-window path): a's windows stay as they were
    (sf.Tumbling(5, grace=100), [("a", "x", 3)], [("a", 0, 5, ["x"])], [("a", 5, 10, ["y"])]),
    # "bad"@7 updates a's [0,10) first, then fails in the new [5,15): neither changes
    (sf.Hopping(10, 5), [("a", "x", 3), ("b", "x", 8)],
     [("a", 0, 10, ["x"]), ("b", 0, 10, ["x"]), ("b", 5, 15, ["x"])],
     [("a", 0, 10, ["x", "y"]), ("a", 5, 15, ["y"])]),
    # "bad"@7 updates [4,9] (z's right window) first, then fails creating [7,12]
    (sf.Sliding(5), [("a", "x", 3), ("a", "z", 6)],
     [("a", 0, 5, ["x"]), ("a", 4, 9, ["z"]), ("a", 1, 6, ["x", "z"])],
     [("a", 4, 9, ["z", "y"]), ("a", 7, 12, ["y"]), ("a", 3, 8, ["x", "z", "y"])]),
], ids=["tumbling", "hopping", "sliding"])
@pytest.mark.parametrize("adder", [append_unless_bad, concat_unless_bad],
                         ids=["in-place", "pure"])
@pytest.mark.parametrize("restore", [False, True], ids=["running", "restored"])
def test_a_record_failing_in_one_of_its_windows_changes_none_of_them(
        backend: str, spec: Any, first: list[Any], seen: list[Any], after: list[Any],
        adder: Any, restore: bool) -> None:
    changelog = "t-p-w-changelog"
    with TopologyTestDriver(windowed(spec, adder, on_error="skip"),
                            config={"store": backend}) as d:
        send(d, *first)
        assert updates(d) == seen
        keys = changelog_keys(d, changelog)
        send(d, ("a", "bad", 7))
        assert d.engines["p"][0].policy.skipped == 1
        assert updates(d) == []
        assert changelog_keys(d, changelog) == keys
        if restore:
            d.crash(keep_state=False)  # the windows come back from the changelog alone
        send(d, ("a", "y", 8))
        assert updates(d) == after


def test_a_session_record_failing_leaves_its_session_as_it_was(backend: str) -> None:
    spec = sf.Session(10, grace=100)
    with TopologyTestDriver(windowed(spec, append_but_bad, on_error="dead_letter"),
                            config={"store": backend}) as d:
        send(d, ("a", "x", 1))
        keys = changelog_keys(d, "t-p-w-changelog")
        send(d, ("a", "bad", 3))  # would extend [1, 1]: appends, then raises
        assert changelog_keys(d, "t-p-w-changelog") == keys
        send(d, ("a", "y", 5))
        assert updates(d) == [("a", 1, 1, ["x"]), ("a", 1, 1, None), ("a", 1, 5, ["x", "y"])]
        (dead,) = d.output(DLQ).read_records()
        assert dict(dead.headers or [])["streamflow.error.step"] == b"w"


@dataclass
class _Totals:
    n: int
    seen: list[str]


@pytest.mark.parametrize("agg", [
    {"n": 1, "seen": ["a"], "by": {"x": [1]}, "tags": {"t"}},
    [{"n": 1}, [2], ("pair", [3])],
    (1, ["inside a tuple"]),
    _Totals(1, ["a"]),
    {"d": Decimal("1.50"), "at": datetime(2026, 11, 26, tzinfo=UTC), "id": UUID(int=7)},
])
def test_a_private_copy_shares_nothing_mutable_with_the_aggregate(agg: Any) -> None:
    before = copy.deepcopy(agg)
    mine = copy_agg(agg)
    assert mine == agg and mine is not agg

    def mutate(x: Any) -> None:  # every mutable thing in the copy, changed in place
        if isinstance(x, dict):
            for v in x.values():
                mutate(v)
            x["new"] = 1
        elif isinstance(x, list):
            for v in x:
                mutate(v)
            x.append("new")
        elif isinstance(x, set):
            x.add("new")
        elif isinstance(x, tuple):
            for v in x:
                mutate(v)
        elif isinstance(x, _Totals):
            x.n += 1
            x.seen.append("new")

    mutate(mine)
    assert agg == before


def test_deep_or_unusual_aggregates_fall_back_to_deepcopy() -> None:
    deep: list[Any] = []
    cur = deep
    for _ in range(40):  # deeper than the plain walk goes
        cur.append([])
        cur = cur[0]
    mine = copy_agg(deep)
    assert mine == deep and mine is not deep and mine[0] is not deep[0]
    odd = frozenset([_Frozen(1)])  # a frozenset of objects is not plain data
    assert copy_agg(odd) == odd and next(iter(copy_agg(odd))) is not next(iter(odd))
    assert copy_agg(5) == 5 and copy_agg("s") == "s" and copy_agg(None) is None
    t = (1, "a", Decimal(1))
    assert copy_agg(t) is t  # a tuple of immutable values is its own copy


@dataclass(frozen=True)
class _Frozen:
    v: int
