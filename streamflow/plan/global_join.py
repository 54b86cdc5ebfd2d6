"""The builder of the stream-global-table join (``streamflow.dsl.global_table``).

The row is looked up in the worker's global store (``TaskContext.globals``), shared by every
task, under the key ``key(stream_key, stream_value)`` gives.
"""

from __future__ import annotations

from typing import Any

from streamflow.dsl.nodes import GlobalJoin
from streamflow.plan.context import Step, StepError
from streamflow.plan.wiring import Wiring
from streamflow.record import Headers
from streamflow.serde import SerdeUnavailable


def build_global_join(w: Wiring, node: GlobalJoin) -> Step:
    """Join each stream record with the global table's row of its extracted key.

    As Kafka Streams' ``KStreamGlobalKTableJoin``: a record with a null value is dropped (by
    ``join`` and ``left_join``); a record whose extracted key is None is dropped, except by
    ``left_join`` when its own key is None too (it then passes with ``None``); ``join``
    drops records without a row, ``left_join`` passes them with ``None``. A row that cannot
    be decoded fails the record in the ``deserialize`` phase.
    """
    try:
        store = w.ctx.globals[node.store]
    except KeyError:
        msg = (f"step {node.name!r}: the engine holds no global table {node.store!r}; global "
               "joins run in a worker or the TopologyTestDriver")
        raise TypeError(msg) from None
    get = store.get
    key = node.key
    joiner = node.joiner
    left = node.left
    name = node.name
    nxt = w.downstream(node)

    def global_join(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        if v is None:
            return
        try:
            gk = key(k, v)  # type: ignore[misc]
        except Exception as e:
            raise StepError(name, e) from e
        if gk is None:
            if not (left and k is None):
                return
            right = None
        else:
            try:
                right = get(gk)
            except SerdeUnavailable:
                raise
            except Exception as e:
                raise StepError(name, e, "deserialize") from e
            if right is None and not left:
                return
        try:
            out = joiner(v, right)  # type: ignore[misc]
        except Exception as e:
            raise StepError(name, e) from e
        nxt(k, out, ts, h)

    return global_join
