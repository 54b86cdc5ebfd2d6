"""Table-table joins (inner, left, outer) and the materialization of table views.

Kafka Streams' KTable-KTable equi-join (``KTableKTableInnerJoin``, ``-LeftJoin``,
``-OuterJoin`` and their right-hand halves): a join is two steps, one per side, feeding one
``Merge``. An update of either side (a new row, or a delete) looks the key up in the other
side's store and emits the new join result for that key:

- the result's timestamp is the larger of the two rows' timestamps (the update's own when
  the other side has no row);
- inner: nothing when the other side has no row; otherwise ``joiner(left, right)``, or a
  tombstone when the update deletes;
- left: as inner for updates of the right side; an update of the left side with no right
  row gives ``joiner(left, None)``; a right delete with a left row gives ``joiner(left,
  None)``;
- outer: either side may be missing (``joiner(None, right)``, ``joiner(left, None)``);
- a delete when the other side has no row emits a tombstone only if this side had the row
  (a join result existed); deleting a key neither side has emits nothing.

This is the semantics table of Kafka Streams' developer guide row for row. Kafka Streams
tells "had the row" from the old value it sends (``enableSendingOldValues``); here the table
step before the join passes a delete on before applying it (``plan.stateful.materialize``),
so the join reads the row still in its store. As in Kafka Streams, a delete of a key this
side never had still emits a tombstone when the other side has a row (inner and left joins).
"""

from __future__ import annotations

from typing import Any

from streamflow.dsl.nodes import TableJoin, TableMaterialize
from streamflow.plan.context import Step, StepError
from streamflow.plan.stateful import materialize
from streamflow.plan.wiring import Wiring
from streamflow.record import Headers
from streamflow.state.keys import encode_key


def build_table_join(w: Wiring, node: TableJoin) -> Step:
    """One side of a table-table join (see the module docstring)."""
    get_this = w.store(node.this_store).get_stamped
    get_other = w.store(node.other_store).get_stamped
    joiner = node.joiner
    name = node.name
    nxt = w.downstream(node)
    is_left = node.side == "left"
    outer = node.how == "outer_join"
    # the side updated here, and the other one, keep their rows without a match
    this_kept = outer or (node.how == "left_join" and is_left)
    other_kept = outer or (node.how == "left_join" and not is_left)

    def table_join(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        if k is None:
            return
        kb = encode_key(k)
        row = get_other(kb)
        if row is None:
            if not this_kept:
                return
            if v is None:
                if get_this(kb) is not None:  # the row being deleted: its result goes
                    nxt(k, None, ts, h)
                return
            other = None
        else:
            other = row[0]
            if row[1] > ts:
                ts = row[1]
            if v is None and not other_kept:
                nxt(k, None, ts, h)
                return
        try:
            out = joiner(v, other) if is_left else joiner(other, v)  # type: ignore[misc]
        except Exception as e:
            raise StepError(name, e) from e
        nxt(k, out, ts, h)

    return table_join


def build_table_materialize(w: Wiring, node: TableMaterialize) -> Step:
    """Keep a table view's rows (with their timestamps) in the node's store."""
    return materialize(w.store(node.store), w.downstream(node))
