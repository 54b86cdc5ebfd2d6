"""The join bench scenarios (bench/scenarios/joins.py): the data and the checker that decides
whether a run's output is right."""

from __future__ import annotations

import orjson
import pytest

from bench.scenarios import SCENARIOS, extra_inputs, input_env
from bench.scenarios.joins import USERS, JoinExpectation


def _feed(name: str, n: int) -> tuple[list, JoinExpectation]:
    scenario = SCENARIOS[name]
    exp = scenario.expectation()
    records = list(scenario.records(n, 42))
    for r in records:
        exp.add_input(r)
    return records, exp


def _outputs(exp: JoinExpectation) -> list[bytes]:
    return [orjson.dumps(v) for v in exp.truth.values()]


@pytest.mark.parametrize("name", ["join_table", "join_window"])
def test_the_true_output_passes_and_every_kind_of_wrong_output_is_named(name: str) -> None:
    _, exp = _feed(name, USERS + 2_000)
    right = _outputs(exp)

    ok = exp.checker()
    for value in right:
        ok.add_output(b"k", value)
    assert ok.problems() == []

    short = exp.checker()
    for value in right[1:]:
        short.add_output(b"k", value)
    assert short.problems() == [f"1 of {len(right):,} join results missing"]

    twice = exp.checker()
    for value in [*right, right[5]]:
        twice.add_output(b"k", value)
    assert any("came out twice" in p for p in twice.problems())

    wrong = exp.checker()
    bad = orjson.loads(right[0])
    bad["amount"] = -1
    for value in [orjson.dumps(bad), *right[1:]]:
        wrong.add_output(b"k", value)
    assert any("expected" in p for p in wrong.problems())

    garbage = exp.checker()
    garbage.add_output(b"k", b"not json")
    assert any("undecodable" in p for p in garbage.problems())


def test_join_table_writes_every_row_before_the_first_payment() -> None:
    records, exp = _feed("join_table", USERS + 1_000)
    table = [r for r in records if r.side == "table"]
    stream = [r for r in records if r.side == ""]
    assert len(table) == USERS and len(stream) == 1_000 == exp.expected_count
    assert max(r.timestamp_ms for r in table) < min(r.timestamp_ms for r in stream)
    some = orjson.loads(stream[0].value)
    row = next(r.obj for r in table if r.obj["user"] == some["user"])
    assert exp.truth[some["id"]]["tier"] == row["tier"]


def test_join_window_pairs_every_order_with_its_payment_in_timestamp_order() -> None:
    records, exp = _feed("join_window", 5_001)  # odd: the last order has no payment
    assert [r.timestamp_ms for r in records] == sorted(r.timestamp_ms for r in records)
    assert sum(r.side == "right" for r in records) == 2_500 == exp.expected_count
    assert all(1 <= v["delay_ms"] <= 3_000 for v in exp.truth.values())


def test_join_table_refuses_fewer_records_than_the_table_has_rows() -> None:
    with pytest.raises(SystemExit, match="more than 10,000"):
        list(SCENARIOS["join_table"].records(USERS, 42))


def test_a_second_input_topic_is_named_after_the_first() -> None:
    assert extra_inputs(SCENARIOS["join_window"], "in") == {"right": "in-right"}
    assert input_env(SCENARIOS["join_table"], "in") == {"BENCH_INPUT_TABLE": "in-table"}
    assert input_env(SCENARIOS["stateless"], "in") == {}
