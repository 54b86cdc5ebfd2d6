"""Windowed stream-stream joins through the test driver, on both store backends.

Expected outputs follow Kafka Streams' documented semantics (the "Semantics of stream-stream
joins" table of its DSL guide) and its ``KStreamKStreamJoin`` source (3.1+: records without a
partner come out only once their window has closed).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamflow as sf
from streamflow.ops.check import check_topology
from streamflow.plan.joins import MIN_TIME, SHARED_TIME
from streamflow.runtime.alignment import aligned, input_groups
from streamflow.state.keys import encode_key
from streamflow.state.window_store import META_STREAM_TIME, window_prefix
from streamflow.testing import TopologyTestDriver

S = 1000  # the guide's table counts in seconds


def pair(left: Any, right: Any) -> list[Any]:
    return [left, right]


def _topology(how: str, window: sf.JoinWindows, *, partitions: int | None = None
              ) -> sf.Topology:
    t = sf.Topology("ssj")
    left = t.topic("left", key=sf.String(), value=sf.Json(), external=True,
                   partitions=partitions)
    right = t.topic("right", key=sf.String(), value=sf.Json(), external=True,
                    partitions=partitions)
    out = t.topic("out", key=sf.String(), value=sf.Json())
    p = t.processor("p")
    a, b = p.stream(left), p.stream(right)
    getattr(a, how)(b, pair, window=window, name="j").to(out)
    return t


@pytest.fixture(params=["memory", "rocksdb"])
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _driver(t: sf.Topology, store: str) -> TopologyTestDriver:
    return TopologyTestDriver(t, config={"store": store})


def _send(d: TopologyTestDriver, side: str, value: Any, ts: int, key: str | None = "k"
          ) -> list[tuple[Any, Any, int]]:
    d.input(side).send(value, key=key, timestamp=ts)
    return [(r.key, r.value, r.timestamp) for r in d.output("out").read_records()]


# The guide's table: a window of 15 s each way, grace 5 s, one key, records in time order.
# "null" rows are records with a null value (skipped). In the guide's last rows the records
# sit exactly on a window's close time; Kafka Streams' code keeps a window open while
# ``t + after + grace >= stream time`` (KStreamKStreamJoin.isOuterJoinWindowOpen), so F, f and
# G come here 1, 2 and 3 seconds later than in the guide, to be strictly past each close.
GUIDE: list[tuple[int, str, str | None, dict[str, list[list[Any]]]]] = [
    (1, "left", None, {}),
    (2, "right", None, {}),
    (3, "left", "A", {}),
    (4, "right", "a", {"all": [["A", "a"]]}),
    (5, "left", "B", {"all": [["B", "a"]]}),
    (6, "right", "b", {"all": [["A", "b"], ["B", "b"]]}),
    (7, "left", None, {}),
    (8, "right", None, {}),
    (9, "left", "C", {"all": [["C", "a"], ["C", "b"]]}),
    (10, "right", "c", {"all": [["A", "c"], ["B", "c"], ["C", "c"]]}),
    (11, "right", None, {}),
    (12, "left", None, {}),
    (13, "right", None, {}),
    (14, "right", "d", {"all": [["A", "d"], ["B", "d"], ["C", "d"]]}),
    (15, "left", "D", {"all": [["D", "a"], ["D", "b"], ["D", "c"], ["D", "d"]]}),
    (40, "left", "E", {}),
    (61, "left", "F", {"left_join": [["E", None]], "outer_join": [["E", None]]}),
    (82, "right", "f", {"left_join": [["F", None]], "outer_join": [["F", None]]}),
    (103, "left", "G", {"outer_join": [[None, "f"]]}),
]


@pytest.mark.parametrize("how", ["join", "left_join", "outer_join"])
def test_join_kinds_follow_the_kafka_streams_guide_table(how: str, store: str) -> None:
    t = _topology(how, sf.JoinWindows(15 * S, grace=5 * S))
    with _driver(t, store) as d:
        for second, side, value, expected in GUIDE:
            got = [v for _k, v, _ts in _send(d, side, value, second * S)]
            want = expected.get("all", []) + expected.get(how, [])
            assert got == want, f"at {second} s ({side} {value})"


def test_results_carry_the_later_timestamp_and_the_common_key(store: str) -> None:
    t = _topology("join", sf.JoinWindows(100))
    with _driver(t, store) as d:
        assert _send(d, "left", "x", 500) == []
        assert _send(d, "right", "y", 450) == [("k", ["x", "y"], 500)]
        assert _send(d, "right", "z", 580) == [("k", ["x", "z"], 580)]
        assert _send(d, "left", "w", 600, key="other") == []


def test_before_and_after_bound_each_side_in_mirror(store: str) -> None:
    # a left record at t joins right records in [t - 0, t + 10]; a right record at t joins
    # left records in [t - 10, t]
    t = _topology("join", sf.JoinWindows(before=0, after=10))
    with _driver(t, store) as d:
        assert _send(d, "left", "L100", 100) == []
        assert _send(d, "right", "r99", 99) == []  # before the left record: out of window
        assert _send(d, "right", "r110", 110) == [("k", ["L100", "r110"], 110)]
        assert _send(d, "right", "r111", 111) == []
        # a later left record looks forward only: r110 and r111 are behind it by 1 and 0 ms
        assert [v for _k, v, _ts in _send(d, "left", "L111", 111)] == [["L111", "r111"]]
        assert [v for _k, v, _ts in _send(d, "left", "L105", 105)] == [
            ["L105", "r110"], ["L105", "r111"]]


def test_unmatched_left_record_comes_out_only_once_its_window_closes(store: str) -> None:
    t = _topology("left_join", sf.JoinWindows(10, grace=5))
    with _driver(t, store) as d:
        assert _send(d, "left", "A", 0) == []
        # A's window closes when stream time passes 0 + 10 + 5; the other key moves time
        assert _send(d, "right", "x", 15, key="o") == []
        assert _send(d, "right", "y", 16, key="o") == [("k", ["A", None], 0)]
        assert _send(d, "right", "z", 100, key="o") == []  # emitted once only


def test_a_record_matched_late_never_comes_out_unmatched(store: str) -> None:
    t = _topology("outer_join", sf.JoinWindows(10, grace=20))
    with _driver(t, store) as d:
        assert _send(d, "left", "A", 100) == []
        assert _send(d, "left", "B", 125, key="o") == []  # stream time 125: A's window ended
        # a right record within grace still joins A, which then never comes out alone
        assert _send(d, "right", "a", 105) == [("k", ["A", "a"], 105)]
        out = _send(d, "left", "C", 1000, key="o")
        assert [v for _k, v, _ts in out] == [["B", None]]


def test_out_of_order_record_whose_window_ended_comes_out_at_once(store: str) -> None:
    # Kafka Streams: a left record without a partner whose window already ended (t + after
    # behind stream time) is not held back
    t = _topology("left_join", sf.JoinWindows(10, grace=50))
    with _driver(t, store) as d:
        assert _send(d, "right", "x", 100, key="o") == []
        assert _send(d, "left", "late", 20) == [("k", ["late", None], 20)]


def test_records_behind_the_retention_are_not_buffered(store: str) -> None:
    t = _topology("join", sf.JoinWindows(10, grace=5))  # stores keep 10 + 10 + 5 ms
    with _driver(t, store) as d:
        assert _send(d, "left", "A", 100) == []
        assert _send(d, "left", "B", 200) == []  # left time 200: A (100) has left the store
        assert _send(d, "right", "a", 100) == []
        assert d.metrics()["j.late_records"] == 0  # the right side's time is only 100
        assert _send(d, "right", "b", 300) == []
        # 190 < 300 - 25: too old for the right store, but it joins what the left holds
        assert _send(d, "right", "old", 190) == [("k", ["B", "old"], 200)]
        assert d.metrics()["j.late_records"] == 1
        # a left record it would match finds nothing: it was not kept
        assert _send(d, "left", "C", 195) == []


def test_expired_records_leave_the_stores(store: str) -> None:
    t = _topology("outer_join", sf.JoinWindows(10, grace=5))
    with _driver(t, store) as d:
        for i in range(5):
            _send(d, "left", f"L{i}", i, key=f"k{i}")
            _send(d, "right", f"R{i}", i, key=f"k{i}")
        d.input("left").send("later", key="x", timestamp=1000)
        d.input("right").send("later", key="y", timestamp=1000)
        d.commit()
        left = [k for k, _v in d.store("j-left").scan_raw(None, None)]
        right = [k for k, _v in d.store("j-right").scan_raw(None, None)]
        unmatched = dict(d.store("j-unmatched").scan_raw(None, None))
        # "x" (or "y") and the side's stream time
        assert left == [window_prefix(encode_key("x")), META_STREAM_TIME]
        assert right == [window_prefix(encode_key("y")), META_STREAM_TIME]
        # the two "later" records wait for a partner, beside the join's stream time and the
        # hint of the oldest of them
        assert unmatched.pop(SHARED_TIME) == unmatched.pop(MIN_TIME) == 1000
        assert list(unmatched.values()) == [["later"], ["later"]]


def test_null_keys_and_values(store: str) -> None:
    t = _topology("outer_join", sf.JoinWindows(10))
    with _driver(t, store) as d:
        assert _send(d, "left", "A", 5, key=None) == [(None, ["A", None], 5)]  # KIP-962
        assert _send(d, "right", "b", 6, key=None) == [(None, [None, "b"], 6)]
        assert _send(d, "left", None, 7) == []
        assert d.metrics()["j.skipped_records"] == 1
    t = _topology("join", sf.JoinWindows(10))
    with _driver(t, store) as d:
        assert _send(d, "left", "A", 5, key=None) == []
        assert d.metrics()["j.skipped_records"] == 1


def test_self_join_pairs_every_record_with_each_within_the_window(store: str) -> None:
    t = sf.Topology("self")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Json())
    p = t.processor("p")
    s = p.stream(src)
    s.join(s, pair, window=sf.JoinWindows(10), name="j").to(out)
    with _driver(t, store) as d:
        d.input("in").send("a1", key="k", timestamp=0)
        d.input("in").send("a2", key="k", timestamp=5)
        d.input("in").send("a3", key="k", timestamp=50)
        got = d.output("out").read_values()
        # Kafka Streams' order: a record meets the right store first, then the left one
        assert got == [["a1", "a1"], ["a2", "a1"], ["a1", "a2"], ["a2", "a2"], ["a3", "a3"]]


@pytest.mark.parametrize("keep_state", [False, True])
def test_join_restores_its_buffers_after_a_crash(store: str, keep_state: bool) -> None:
    t = _topology("outer_join", sf.JoinWindows(100, grace=10))
    with _driver(t, store) as d:
        assert _send(d, "left", "A", 1000) == []
        assert _send(d, "right", "alone", 1010, key="other") == []
        d.commit()
        d.crash(keep_state=keep_state)
        assert _send(d, "right", "a", 1050) == [("k", ["A", "a"], 1050)]
        # the unmatched record and the join's stream time came back from the changelog too
        out = _send(d, "left", "B", 1121, key="z")
        assert out == [("other", [None, "alone"], 1010)]


@pytest.mark.parametrize("crash", [False, True], ids=["straight", "restored-halfway"])
def test_a_restore_keeps_when_unmatched_records_come_out(store: str, crash: bool) -> None:
    # As Kafka Streams, records without a partner are looked at only once stream time is past
    # a hint of the oldest one, which a look leaves at the last record visited (c at 6, though
    # b at 5 still waits). Restored from the changelog, the hint must be 6 again, not 5.
    t = _topology("left_join", sf.JoinWindows(10))
    with _driver(t, store) as d:
        got = [_send(d, "left", "A", 0, key="a"), _send(d, "left", "B", 5, key="b"),
               _send(d, "left", "C", 6, key="c"), _send(d, "left", "D", 11, key="d")]
        if crash:
            d.commit()
            d.crash(keep_state=False)
        got += [_send(d, "left", "E", 16, key="e"), _send(d, "left", "F", 17, key="f")]
    assert got == [[], [], [], [("a", ["A", None], 0)],
                   [], [("b", ["B", None], 5), ("c", ["C", None], 6)]]


def test_uncommitted_buffer_is_replayed_from_the_input_after_a_crash(store: str) -> None:
    t = _topology("join", sf.JoinWindows(100))
    with _driver(t, store) as d:
        d.commit()
        d.input("left").send("A", key="k", timestamp=1000)  # not committed
        d.crash()
        assert _send(d, "right", "a", 1001) == [("k", ["A", "a"], 1001)]


def test_joiner_errors_follow_the_step_policy(store: str) -> None:
    t = sf.Topology("err")
    a = t.topic("a", key=sf.String(), value=sf.Json(), external=True)
    b = t.topic("b", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Json())
    p = t.processor("p")
    p.stream(a).join(p.stream(b), lambda x, y: x // y, window=sf.JoinWindows(10),
                     name="j", on_error="skip").to(out)
    with _driver(t, store) as d:
        d.input("a").send(6, key="k", timestamp=1)
        d.input("b").send(0, key="k", timestamp=2)
        d.input("b").send(3, key="k", timestamp=3)
        assert d.output("out").read_values() == [2]


# -- the topology side ----------------------------------------------------------------------
def test_describe_renders_the_join_and_its_two_inputs() -> None:
    text = _topology("left_join", sf.JoinWindows(5000, grace=1000)).describe()
    assert "j.left: join.left(store=j-left)" in text
    assert "j: left_join(pair, window=join(before=5s, after=5s, grace=1s))" in text
    assert "j.right: join.right(store=j-right)" in text
    assert "ssj-p-j-unmatched-changelog" in text


def test_inner_join_has_no_unmatched_store_and_joins_are_aligned_tasks() -> None:
    t = _topology("join", sf.JoinWindows(10))
    p = t.processors["p"]
    assert sorted(p.stores) == ["j-left", "j-right"]
    assert p.joined_topics() == ["left", "right"]
    assert aligned(p)
    assert input_groups(p) == {"left": 0, "right": 0}


def test_check_reports_joined_streams_that_are_not_copartitioned() -> None:
    t = _topology("join", sf.JoinWindows(10), partitions=3)
    assert check_topology(t).problems == []
    t.topics["right"] = t.topics["right"].__class__(
        "right", sf.String(), sf.Json(), 6, external=True)
    problems = check_topology(t).problems
    assert [x.code for x in problems] == ["co-partitioning"]
    assert "'left' has 3 but 'right' has 6" in problems[0].message


def test_dsl_errors_say_what_to_do() -> None:
    t = sf.Topology("e")
    a = t.topic("a", external=True)
    b = t.topic("b", external=True)
    p, q = t.processor("p"), t.processor("q")
    sa, sb = p.stream(a), p.stream(b)
    with pytest.raises(sf.TopologyError, match=r"window=sf.JoinWindows"):
        sa.join(sb, pair)
    with pytest.raises(sf.TopologyError, match="one processor"):
        sa.join(q.stream(b), pair, window=sf.JoinWindows(1))
    with pytest.raises(sf.TopologyError, match="table join takes no window"):
        sa.join(t.table(b), pair, window=sf.JoinWindows(1))
    with pytest.raises(sf.TopologyError, match="outer_join"):
        sa.outer_join(t.table(b), pair, window=sf.JoinWindows(1))  # type: ignore[arg-type]
    with pytest.raises(sf.TopologyError, match="joiner"):
        sa.left_join(sb, None, window=sf.JoinWindows(1))  # type: ignore[arg-type]


def test_join_windows_spec() -> None:
    w = sf.JoinWindows(before=2, after=7, grace=1)
    assert (w.before, w.after, w.grace, w.retention) == (2, 7, 1, 10)
    assert sf.JoinWindows(5).before == sf.JoinWindows(5).after == 5
    with pytest.raises(ValueError, match="before= and after="):
        sf.JoinWindows(before=3)
    with pytest.raises(ValueError, match=">= 0"):
        sf.JoinWindows(-1)


def test_a_joiner_failing_on_an_unmatched_record_fails_once(store: str) -> None:
    t = sf.Topology("err1")
    a = t.topic("a", key=sf.String(), value=sf.Json(), external=True)
    b = t.topic("b", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Json())
    p = t.processor("p")
    p.stream(a).outer_join(p.stream(b), lambda x, y: x + y, window=sf.JoinWindows(10),
                           name="j", on_error="skip").to(out)
    with _driver(t, store) as d:
        d.input("a").send(1, key="k", timestamp=0)
        d.input("b").send(2, key="o", timestamp=100)  # 1 + None fails: this record is skipped
        d.input("a").send(3, key="m", timestamp=105)
        d.input("b").send(4, key="m", timestamp=106)
        assert d.output("out").read_values() == [7]


# -- against a brute-force reference ----------------------------------------------------------
# Records in time order across both streams: every pair of a key within the window meets
# (neither has left its store yet), and after a record far in the future every record without
# a partner has come out once. The join's output as a multiset must equal the reference's.
EVENTS = st.lists(st.tuples(st.sampled_from(["left", "right"]), st.sampled_from("abc"),
                            st.integers(0, 30)), max_size=40)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=EVENTS, before=st.integers(0, 12), after=st.integers(0, 12),
       grace=st.integers(0, 5), how=st.sampled_from(["join", "left_join", "outer_join"]))
def test_in_order_records_join_as_the_brute_force_reference(
        events: list[tuple[str, str, int]], before: int, after: int, grace: int,
        how: str) -> None:
    records, ts = [], 0
    for i, (side, key, gap) in enumerate(events):
        ts += gap
        records.append((side, key, ts, f"{side[0]}{i}"))
    lefts = [r for r in records if r[0] == "left"]
    rights = [r for r in records if r[0] == "right"]
    want = [([lv, rv], k) for _s, k, lt, lv in lefts for _s2, k2, rt, rv in rights
            if k == k2 and lt - before <= rt <= lt + after]
    paired = {v for pair, _k in want for v in pair}
    if how != "join":
        want += [([lv, None], k) for _s, k, _t, lv in lefts if lv not in paired]
    if how == "outer_join":
        want += [([None, rv], k) for _s, k, _t, rv in rights if rv not in paired]
    t = _topology(how, sf.JoinWindows(before=before, after=after, grace=grace))
    with _driver(t, "memory") as d:
        for side, key, ts, value in records:
            d.input(side).send(value, key=key, timestamp=ts)
        d.input("left").send("end", key="end", timestamp=ts + 1000)
        got = [(r.value, r.key) for r in d.output("out").read_records() if r.key != "end"]
    assert sorted(got, key=repr) == sorted(want, key=repr)


def test_a_record_exactly_at_the_retention_still_joins(store: str) -> None:
    # stores keep 0 + 5 + 0 ms: the left record at 0 is exactly 5 behind when the right
    # record at 5 (whose window [0, 5] is open) looks for it
    t = _topology("join", sf.JoinWindows(before=0, after=5))
    with _driver(t, store) as d:
        assert _send(d, "left", "L0", 0) == []
        assert _send(d, "left", "x", 5, key="other") == []
        assert _send(d, "right", "R5", 5) == [("k", ["L0", "R5"], 5)]
        assert _send(d, "left", "y", 6, key="other") == []
        assert _send(d, "right", "R5b", 5) == []  # now 6 behind: gone


def test_a_value_json_cannot_keep_names_the_join_and_what_to_do(store: str) -> None:
    from decimal import Decimal

    t = sf.Topology("ssj")
    left = t.topic("left", key=sf.String(), value=sf.Json(), external=True)
    right = t.topic("right", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Json())
    p = t.processor("p")
    (p.stream(left).map(lambda v: {"amount": Decimal(v)}, name="to-decimal")
     .join(p.stream(right), pair, window=sf.JoinWindows(S), name="j").to(out))
    with _driver(t, store) as d, pytest.raises(
            sf.SerdeError, match=r"Decimal.*the stream-stream join 'j' keeps its records' values "
                                 r"as JSON: give it value_serde= / other_value_serde="):
        d.input("left").send("1.5", key="k", timestamp=10)


ORDER = {"type": "record", "name": "Order", "fields": [
    {"name": "id", "type": "string"},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10,
                                "scale": 2}}]}
PAYMENT = {"type": "record", "name": "Payment", "fields": [
    {"name": "order", "type": "string"},
    {"name": "paid", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}


def _avro_join(how: str) -> sf.Topology:
    """Orders and payments as Avro (a decimal, a timestamp), joined on their Avro serdes."""
    t = sf.Topology("ssj")
    orders = t.topic("orders", key=sf.String(), value=sf.Avro(ORDER), external=True)
    payments = t.topic("payments", key=sf.String(), value=sf.Avro(PAYMENT), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Json())
    p = t.processor("p")

    def joined(o: Any, pay: Any) -> Any:
        return {"amount": None if o is None else str(o["amount"]),
                "paid": None if pay is None else pay["paid"].isoformat()}

    getattr(p.stream(orders), how)(p.stream(payments), joined, name="j",
                                   window=sf.JoinWindows(before=0, after=10 * S),
                                   value_serde=sf.Avro(ORDER), other_value_serde=sf.Avro(PAYMENT)
                                   ).to(out)
    return t


def test_a_join_with_serdes_keeps_avro_values_across_a_restore(store: str) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    paid = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    with _driver(_avro_join("outer_join"), store) as d:
        d.input("orders").send({"id": "o1", "amount": Decimal("12.50")}, key="o1", timestamp=1 * S)
        d.input("orders").send({"id": "o2", "amount": Decimal("3.10")}, key="o2", timestamp=2 * S)
        d.input("payments").send({"order": "p9", "paid": paid}, key="p9", timestamp=3 * S)
        d.crash(keep_state=False)  # both stores and the unmatched one come back from changelogs
        d.input("payments").send({"order": "o1", "paid": paid}, key="o1", timestamp=4 * S)
        d.input("orders").send({"id": "o3", "amount": Decimal("1.00")}, key="o3",
                               timestamp=20 * S)  # o2 and p9 wait no more
        got = [(r.key, r.value) for r in d.output("out").read_records()]
    assert got == [  # p9's window (before=0) closed at 3 s: out once time passed it, at 4 s
        ("p9", {"amount": None, "paid": "2026-01-01T12:00:00+00:00"}),
        ("o1", {"amount": "12.50", "paid": "2026-01-01T12:00:00+00:00"}),
        ("o2", {"amount": "3.10", "paid": None}),
    ]


def test_serdes_are_for_stream_joins_only() -> None:
    t = sf.Topology("t")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    rows = t.topic("rows", key=sf.String(), value=sf.Json(), external=True)
    with pytest.raises(sf.TopologyError, match=r"value_serde=.*is for joining two streams"):
        t.processor("p").stream(src).join(t.table(rows), pair, value_serde=sf.Json())


def test_describe_shows_the_serdes_the_join_keeps_values_with() -> None:
    specs = _avro_join("left_join").processors["p"].stores
    assert specs["j-left"].value_serde.describe() == "Window(List(Avro(Order)))"
    assert specs["j-unmatched"].value_serde.describe() == "Unmatched(Avro(Order), Avro(Payment))"
