"""A foreign-key join's output, read as a table, is the join of its two input tables.

Whatever the sequence of inserts, updates, foreign-key moves and deletes on either side, and
whether each change is processed as it comes or a batch of them is written first (so
answers come back to left rows that changed since: the hash check drops them), the latest
result per left key once everything is processed is what joining the final tables gives.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamflow as sf
from streamflow.dsl.foreign_key import foreign_key_join
from streamflow.testing import TopologyTestDriver

LEFT_KEYS = [f"o{i}" for i in range(4)]
RIGHT_KEYS = [f"c{i}" for i in range(3)]

# ("L", order, customer | None, deleted) or ("R", customer, name, deleted)
deletes = st.sampled_from([False, False, False, True])
left_ops = st.tuples(st.just("L"), st.sampled_from(LEFT_KEYS),
                     st.sampled_from([*RIGHT_KEYS, None]), deletes)
right_ops = st.tuples(st.just("R"), st.sampled_from(RIGHT_KEYS), st.integers(0, 9), deletes)
batches = st.lists(st.tuples(st.booleans(), st.lists(st.one_of(left_ops, right_ops),
                                                     min_size=1, max_size=8)),
                   min_size=1, max_size=5)


def _topology(left: bool) -> sf.Topology:
    t = sf.Topology("shop")
    orders = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    customers = t.topic("customers", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Json())
    p = t.processor("p")
    foreign_key_join(p.materialize(t.table(orders)), p.materialize(t.table(customers)),
                     lambda o: o["c"], lambda o, c: [o["v"], c and c["n"]], left=left,
                     name="j").to_stream().to(out)
    return t


def _expected(left_rows: dict[str, dict[str, Any]], right_rows: dict[str, dict[str, Any]],
              left: bool) -> dict[str, Any]:
    out = {}
    for k, order in left_rows.items():
        customer = right_rows.get(order["c"]) if order["c"] is not None else None
        if customer is not None or left:
            out[k] = [order["v"], customer and customer["n"]]
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=batches, left=st.booleans())
def test_the_output_read_as_a_table_is_the_join_of_the_final_tables(
        batches: list[tuple[bool, list[tuple[str, str, Any, bool]]]], left: bool) -> None:
    left_rows: dict[str, dict[str, Any]] = {}
    right_rows: dict[str, dict[str, Any]] = {}
    folded: dict[str, Any] = {}
    ts = 0
    with TopologyTestDriver(_topology(left), config={"store": "memory", "partitions": 3}) as d:
        for held, ops in batches:
            with d.backlog() if held else nullcontext():
                for side, key, value, deleted in ops:
                    ts += 1
                    if side == "L":
                        row = None if deleted else {"c": value, "v": ts}
                        _apply(left_rows, key, row)
                        d.input("orders").send(row, key=key, timestamp=ts)
                    else:
                        row = None if deleted else {"n": value}
                        _apply(right_rows, key, row)
                        d.input("customers").send(row, key=key, timestamp=ts)
            for k, v in d.output("out").read_key_values():
                _apply(folded, k, v)
            assert folded == _expected(left_rows, right_rows, left)


def _apply(table: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value
