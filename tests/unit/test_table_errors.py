"""``on_error=`` on table steps: ``filter``, ``map_values``, table-table and foreign-key joins.

An update whose user function raises is skipped or dead-lettered under the step's policy: the
steps before the failing one keep what they did (the table the update came from has the new
row), the steps after it never see the update (a view keeps the key's previous row, a joined
table its previous result). Through the test driver, on both store backends, and after a
restore from the changelogs alone.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import streamflow as sf
from streamflow.dsl.topology import TopologyError
from streamflow.observability.metrics import StatusCollector, exposition
from streamflow.ops.dlq import _dead_letter_topic
from streamflow.runtime.counters import worker_status
from streamflow.runtime.errors import ProcessingFailed
from streamflow.testing import TopologyTestDriver

BACKENDS = ["memory", "rocksdb"]
DLQ = "t.p.dlq"
RESPONSES = "t-p-oc-subscription-response"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def topology(**policies: Any) -> tuple[sf.Topology, sf.Processor]:
    """Tables read from ``in`` and ``other``; results go to ``out``."""
    t = sf.Topology("t")
    for name in ("in", "other"):
        t.topic(name, key=sf.String(), value=sf.Json(), external=True)
    t.topic("out", key=sf.String(), value=sf.Json())
    return t, t.processor("p", **policies)


def send(d: TopologyTestDriver, topic: str, key: str, value: Any, ts: int) -> None:
    d.input(topic).send(value, key=key, timestamp=ts)


def out(d: TopologyTestDriver) -> list[tuple[Any, Any]]:
    return d.output("out").read_key_values()


def letters(d: TopologyTestDriver) -> list[tuple[bytes | None, bytes | None, dict[str, Any]]]:
    """The dead letters so far: key, value and headers."""
    return [(r.key, r.value, dict(r.headers or [])) for r in d.output(DLQ).read_records()]


def positive(v: dict[str, Any]) -> bool:
    return bool(v["x"] > 0)  # KeyError for a row without "x"


def double(v: dict[str, Any]) -> int:
    return int(v["x"]) * 2


def pair(a: Any, b: Any) -> list[Any]:
    return [a, b]


# -- filter and map_values ------------------------------------------------------------------

def test_a_filter_that_raises_leaves_the_view_with_its_previous_row(backend: str) -> None:
    t, p = topology()
    view = p.materialize(t.table("in")).filter(positive, name="pos", on_error="skip")
    view.join(t.table("other"), pair, name="j").to_stream().to("out")
    with TopologyTestDriver(t, config={"store": backend}) as d:
        send(d, "other", "k", {"y": 1}, 1)
        send(d, "in", "k", {"x": 1}, 2)
        assert out(d) == [("k", [{"x": 1}, {"y": 1}])]
        send(d, "in", "k", {"z": 0}, 3)  # KeyError in pos: skipped, nothing emitted
        assert d.engines["p"][0].policy.skipped == 1
        assert out(d) == []
        rows = {"table-in": {"z": 0}, "pos.materialized": {"x": 1}}
        assert {s: d.store(s).get("k") for s in rows} == rows
        d.crash(keep_state=False)  # the stores come back from their changelogs alone
        assert {s: d.store(s).get("k") for s in rows} == rows
        send(d, "other", "k", {"y": 2}, 4)  # joins the view's previous (stale) row
        assert out(d) == [("k", [{"x": 1}, {"y": 2}])]
        send(d, "in", "k", {"x": 5}, 5)  # the next update that gets through mends it
        assert out(d) == [("k", [{"x": 5}, {"y": 2}])]


def test_a_failing_map_values_dead_letters_the_update_named_by_its_step(backend: str) -> None:
    t, p = topology()
    p.materialize(t.table("in")).map_values(double, name="double", on_error="dead_letter") \
        .to_stream().to("out")
    with TopologyTestDriver(t, config={"store": backend}) as d:
        send(d, "in", "a", {"x": 1}, 1)
        send(d, "in", "a", {"y": 1}, 2)
        send(d, "in", "b", {"x": 3}, 3)
        assert out(d) == [("a", 2), ("b", 6)]
        ((key, value, h),) = letters(d)
        assert (key, value) == (b"a", b'{"y":1}')
        assert (h["streamflow.error.step"], h["streamflow.error.phase"],
                h["streamflow.error.type"], h["streamflow.source.topic"]) == (
            b"double", b"process", b"KeyError", b"in")
        assert d.store("table-in").get("a") == {"y": 1}  # the table before the step has it
    # the processor itself fails, yet `streamflow dlq list|replay` find its step's letters
    assert _dead_letter_topic(t, "p") == DLQ


def test_a_map_values_that_returns_none_instead_of_raising_deletes_the_row() -> None:
    def double_or_delete(v: dict[str, Any]) -> int | None:
        return None if "x" not in v else double(v)

    t, p = topology()
    view = p.materialize(t.table("in")).map_values(double_or_delete, name="double")
    view.join(t.table("other"), pair, name="j").to_stream().to("out")
    with TopologyTestDriver(t) as d:
        send(d, "other", "k", 0, 1)
        send(d, "in", "k", {"x": 1}, 2)
        send(d, "in", "k", {"y": 1}, 3)  # the documented alternative to a stale row
        assert out(d) == [("k", [2, 0]), ("k", None)]
        assert d.store("double.materialized").get("k") is None


def test_a_table_steps_fail_overrides_the_processors_skip() -> None:
    t, p = topology(on_error="skip")
    p.materialize(t.table("in")).filter(positive, name="pos", on_error="fail") \
        .to_stream().to("out")
    with TopologyTestDriver(t) as d, pytest.raises(
            ProcessingFailed, match=r"failed in step 'pos': KeyError.*set on_error of step "
                                    r"'pos'='dead_letter'"):
        send(d, "in", "k", {}, 1)


def test_without_a_step_policy_the_processors_decides() -> None:
    t, p = topology(on_processing_error="dead_letter")
    p.materialize(t.table("in")).map_values(double, name="double").to_stream().to("out")
    with TopologyTestDriver(t) as d:
        send(d, "in", "a", {}, 1)
        send(d, "in", "a", {"x": 2}, 2)
        assert out(d) == [("a", 4)]
        assert [h["streamflow.error.step"] for _, _, h in letters(d)] == [b"double"]


def test_a_handler_decides_about_a_table_step() -> None:
    seen: list[tuple[str, str, str, str]] = []

    def decide(ctx: sf.ErrorContext) -> sf.ErrorAction:
        seen.append((ctx.step, ctx.phase, ctx.topic, type(ctx.exception).__name__))
        return "skip" if isinstance(ctx.exception, KeyError) else "fail"

    t, p = topology()
    p.materialize(t.table("in")).map_values(lambda v: 10 // v["x"], name="inv",
                                            on_error=decide).to_stream().to("out")
    with TopologyTestDriver(t) as d:
        send(d, "in", "a", {"x": 2}, 1)
        send(d, "in", "a", {}, 2)
        assert out(d) == [("a", 5)]
        with pytest.raises(ProcessingFailed, match=r"step 'inv': ZeroDivisionError.*handler "
                                                   r"\S*decide\(\), which decided 'fail'"):
            send(d, "in", "a", {"x": 0}, 3)
    assert seen == [("inv", "process", "in", "KeyError"),
                    ("inv", "process", "in", "ZeroDivisionError")]


def test_table_step_failures_are_counted_like_the_other_steps() -> None:
    t, p = topology()
    p.materialize(t.table("in")).map_values(double, name="double", on_error="skip") \
        .to_stream().to("out")
    with TopologyTestDriver(t) as d:
        for ts, value in enumerate([{}, {"x": 1}, {"y": 0}]):
            send(d, "in", "a", value, ts)
        assert out(d) == [("a", 2)]
        text = exposition(StatusCollector(
            lambda: worker_status(d.engines["p"][0], "0", time.monotonic()))).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    errors = {(s.labels["step"], s.labels["exception"]): s.value
              for s in families["streamflow_errors"].samples if s.name.endswith("_total")}
    skipped = [s.value for s in families["streamflow_records_skipped"].samples
               if s.name.endswith("_total")]
    assert (errors, skipped) == ({("double", "KeyError"): 2.0}, [2.0])


def test_an_update_fails_as_a_whole_for_the_views_declared_after_the_failing_one() -> None:
    t, p = topology()
    t.topic("copy", key=sf.String(), value=sf.Json())
    table = p.materialize(t.table("in"))
    table.map_values(double, name="double", on_error="skip").to_stream().to("out")
    table.map_values(dict, name="same").to_stream().to("copy")  # declared after: not reached
    with TopologyTestDriver(t) as d:
        send(d, "in", "a", {"x": 1}, 1)
        send(d, "in", "a", {"y": 1}, 2)
        assert (out(d), d.output("copy").read_values()) == ([("a", 2)], [{"x": 1}])


# -- table-table joins ----------------------------------------------------------------------

def add(a: dict[str, Any], b: dict[str, Any] | None) -> int:
    return int(a["x"]) + (0 if b is None else int(b["y"]))  # KeyError without "x" / "y"


def test_a_table_join_that_raises_keeps_both_rows_but_emits_nothing(backend: str) -> None:
    t, p = topology()
    p.materialize(t.table("in")).left_join(t.table("other"), add, name="j",
                                           on_error="dead_letter").to_stream().to("out")
    with TopologyTestDriver(t, config={"store": backend}) as d:
        send(d, "in", "k", {"x": 1}, 1)
        send(d, "other", "k", {"y": 10}, 2)
        assert out(d) == [("k", 1), ("k", 11)]
        send(d, "other", "k", {"z": 0}, 3)  # the right side's update fails
        send(d, "in", "k", {"x": 2}, 4)  # and so does the left one, joined with it
        assert out(d) == []
        assert [(h["streamflow.error.step"], h["streamflow.source.topic"])
                for _, _, h in letters(d)] == [(b"j.right", b"other"), (b"j.left", b"in")]
        d.crash(keep_state=False)
        assert (d.store("table-in").get("k"), d.store("table-other").get("k")) == (
            {"x": 2}, {"z": 0})
        send(d, "other", "k", {"y": 20}, 5)  # joins the left row whose update failed
        assert out(d) == [("k", 22)]


# -- foreign-key joins ----------------------------------------------------------------------

def customer_of(order: dict[str, Any]) -> Any:
    return order["customer"]  # KeyError for an order naming none


def named(order: dict[str, Any], customer: dict[str, Any] | None) -> str:
    return f"{order['id']}:{'-' if customer is None else customer['name']}"


def fk_topology(joiner: Any = named, *, left: bool = False,
                on_error: Any = "dead_letter") -> sf.Topology:
    t, p = topology()
    orders = p.materialize(t.table("in"))
    how = orders.left_join if left else orders.join
    how(t.table("other"), joiner, foreign_key=customer_of, name="oc",
        on_error=on_error).to_stream().to("out")
    return t


def test_a_foreign_key_that_raises_leaves_the_join_following_the_previous_row(
        backend: str) -> None:
    with TopologyTestDriver(fk_topology(on_error="skip"), config={"store": backend}) as d:
        send(d, "other", "c1", {"name": "ann"}, 1)
        send(d, "in", "o1", {"id": "o1", "customer": "c1"}, 2)
        assert out(d) == [("o1", "o1:ann")]
        send(d, "in", "o1", {"id": "o1", "note": "no customer"}, 3)  # KeyError in customer_of
        assert out(d) == []
        assert d.store("oc-left").get("o1") == {"id": "o1", "customer": "c1"}
        d.crash(keep_state=False)
        assert d.store("oc-left").get("o1") == {"id": "o1", "customer": "c1"}
        send(d, "other", "c1", {"name": "bob"}, 4)  # still subscribed to c1
        assert out(d) == [("o1", "o1:bob")]


def test_a_foreign_key_failure_dead_letters_the_left_update(backend: str) -> None:
    with TopologyTestDriver(fk_topology(), config={"store": backend}) as d:
        send(d, "in", "o1", {"id": "o1"}, 1)
        ((key, value, h),) = letters(d)
        assert (key, value, h["streamflow.error.step"], h["streamflow.source.topic"]) == (
            b"o1", b'{"id":"o1"}', b"oc.subscribe", b"in")


def test_a_joiner_failure_dead_letters_the_response_which_a_replay_joins_again(
        backend: str) -> None:
    fixed: list[bool] = []

    def joiner(order: dict[str, Any], customer: dict[str, Any] | None) -> str:
        assert customer is not None
        name = customer["nick"] if fixed and "nick" in customer else customer["name"]
        return f"{order['id']}:{name}"

    with TopologyTestDriver(fk_topology(joiner), config={"store": backend}) as d:
        send(d, "other", "c1", {"name": "ann"}, 1)
        send(d, "in", "o1", {"id": "o1", "customer": "c1"}, 2)
        send(d, "other", "c1", {"nick": "an"}, 3)  # the joiner raises KeyError on its answer
        assert out(d) == [("o1", "o1:ann")]
        ((key, value, h),) = letters(d)
        assert (h["streamflow.error.step"], h["streamflow.source.topic"]) == (
            b"oc", RESPONSES.encode())
        assert d.store("oc-left").get("o1") == {"id": "o1", "customer": "c1"}
        fixed.append(True)  # the code is fixed; `streamflow dlq replay` re-sends the letter:
        d.input(RESPONSES).send_raw(value, key=key, timestamp=4)
        assert out(d) == [("o1", "o1:an")]
        send(d, "in", "o1", {"id": "o1", "customer": "c1", "n": 2}, 5)
        assert out(d) == [("o1", "o1:an")]
        d.input(RESPONSES).send_raw(value, key=key, timestamp=6)  # the row changed since
        assert out(d) == []
        assert d.metrics()["oc.stale_responses"] == 1


def test_a_left_joiner_failing_on_a_row_without_foreign_key_keeps_the_new_row(
        backend: str) -> None:
    def joiner(order: dict[str, Any], customer: dict[str, Any] | None) -> str:
        return f"{order['id']}:{'-' if customer is None else customer['name']}"

    def customer(order: dict[str, Any]) -> Any:
        return order.get("customer")

    t, p = topology()
    p.materialize(t.table("in")).left_join(t.table("other"), joiner, foreign_key=customer,
                                           name="oc", on_error="skip").to_stream().to("out")
    with TopologyTestDriver(t, config={"store": backend}) as d:
        send(d, "other", "c1", {"name": "ann"}, 1)
        send(d, "in", "o1", {"id": "o1", "customer": "c1"}, 2)
        send(d, "in", "o1", {"note": "no id, no customer"}, 3)  # joiner(row, None): KeyError
        assert out(d) == [("o1", "o1:ann")]
        d.crash(keep_state=False)
        assert d.store("oc-left").get("o1") == {"note": "no id, no customer"}
        send(d, "other", "c1", {"name": "bob"}, 4)  # o1 follows c1 no more
        assert out(d) == []


# -- described ------------------------------------------------------------------------------

def test_table_step_policies_are_checked_when_the_topology_is_described() -> None:
    t, p = topology()
    table = p.materialize(t.table("in"))
    calls = [
        lambda: table.filter(positive, name="f", on_error="ignore"),
        lambda: table.map_values(double, name="f", on_error=3),
        lambda: table.join(t.table("other"), pair, name="f", on_error="drop"),
        lambda: table.outer_join(t.table("other"), pair, name="f", on_error="no"),
        lambda: table.left_join(t.table("other"), pair, foreign_key=customer_of, name="f",
                                on_error="later"),
    ]
    for call in calls:
        with pytest.raises(TopologyError, match="processor 'p': step 'f': on_error must be"):
            call()
    assert "f" not in p.nodes and "f.left" not in p.nodes and "f.subscribe" not in p.nodes


def test_table_step_policies_are_shown_and_kept_by_a_renamed_topology() -> None:
    t, p = topology()
    table = p.materialize(t.table("in"))
    table.filter(positive, name="pos", on_error="skip") \
        .map_values(double, name="double", on_error="dead_letter").to_stream().to("out")
    table.join(t.table("other"), pair, name="j", on_error="skip")
    table.left_join(t.table("other"), named, foreign_key=customer_of, name="oc",
                    on_error="dead_letter")
    text = t.describe()
    for line in ("pos: table.filter(positive) [on_error=skip]",
                 "double: table.map_values(double) [on_error=dead_letter]",
                 "j.left: table.join(left side, pair) [on_error=skip]",
                 "j.right: table.join(right side, pair) [on_error=skip]",
                 "oc.subscribe: fk_left_join.subscribe(customer_of -> ",
                 "oc: fk_left_join(named, stale responses dropped) [on_error=dead_letter]"):
        assert line in text
    policies = {"pos": "skip", "double": "dead_letter", "j.left": "skip", "j.right": "skip",
                "oc.subscribe": "dead_letter", "oc": "dead_letter"}
    assert p.step_policies() == policies
    assert t.with_name_suffix("-x").processors["p"].step_policies() == policies


def test_map_values_changing_its_argument_in_place_leaves_the_table_before_it_intact(
        backend: str) -> None:
    """``fn`` gets its own copy of the row: the idiom ``v["x"] = ...; return v`` does not
    rewrite the row the table before it keeps (and joins against)."""
    def tag(v: dict[str, Any]) -> dict[str, Any]:
        v["tagged"] = True
        return v

    t, p = topology()
    t.topic("joined", key=sf.String(), value=sf.Json())
    base = p.materialize(t.table("in"))
    base.map_values(tag, name="tag").to_stream().to("out")
    base.join(t.table("other"), pair, name="j").to_stream().to("joined")
    with TopologyTestDriver(t, config={"store": backend}) as d:
        send(d, "in", "k", {"x": 1}, 1)
        send(d, "other", "k", {"y": 1}, 2)
        assert out(d) == [("k", {"x": 1, "tagged": True})]
        assert d.output("joined").read_key_values() == [("k", [{"x": 1}, {"y": 1}])]
