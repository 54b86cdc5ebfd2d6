"""The topics on the two sides of a table-table or foreign-key join, for ``streamflow check``.

A table-table join is two steps (``<join>.left`` and ``<join>.right``, each reading its own
table) and a foreign-key join four (``streamflow.dsl.foreign_key``), so the checks that look
at one join step at a time (stream-table and stream-stream joins) do not see their two
tables. :func:`table_join_sides` gives them, once per join:

- a table-table join needs co-partitioned tables: the same partition count and the same key
  serde (task N joins partition N of both);
- a foreign-key join's tables are keyed differently by design, but their topics need the
  partition count of its subscription and response topics, which is that of the processor's
  widest input: the same count on both sides (``Processor.joined_topics``, which the worker's
  start-up check uses too).

>>> import streamflow as sf
>>> t = sf.Topology("shop")
>>> orders = t.topic("orders", key=sf.String(), partitions=3, external=True)
>>> customers = t.topic("customers", key=sf.String(), partitions=6, external=True)
>>> p = t.processor("enrich")
>>> _ = p.materialize(t.table(orders)).join(t.table(customers), lambda o, c: o,
...                                         foreign_key=lambda o: o["customer"], name="oc")
>>> [(n, table_join_sides(p, p.nodes[n])) for n in p.nodes if table_join_sides(p, p.nodes[n])]
[('oc.subscribe', ('oc', ['orders'], ['customers'], False))]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamflow.dsl.nodes import ForeignKeyJoin, Node, TableJoin

if TYPE_CHECKING:
    from streamflow.dsl.topology import Processor

__all__ = ["table_join_sides"]


def table_join_sides(p: Processor, node: Node
                     ) -> tuple[str, list[str], list[str], bool] | None:
    """``(join name, left topics, right topics, keys must match)`` of the join at ``node``.

    None for every other step, and for the other steps of the same join (its right side, a
    foreign-key join's lookup, update and resolve steps), so each join is checked once.
    """
    if isinstance(node, TableJoin) and node.side == "left":
        name = node.name.rpartition(".")[0]
        right = p.nodes.get(f"{name}.right")
        keyed = True
    elif isinstance(node, ForeignKeyJoin) and node.role == "subscribe":
        name = node.result
        right = p.nodes.get(f"{name}.update")
        keyed = False
    else:
        return None
    if right is None or not node.parents or not right.parents:
        return None
    return (name, p.upstream_sources(node.parents[0]), p.upstream_sources(right.parents[0]),
            keyed)
