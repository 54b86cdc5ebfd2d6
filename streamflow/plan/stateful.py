"""Builders of the key-value stateful steps.

``Aggregate``, ``TableOp``, ``Join``, ``Process`` (user code with stores) and table
materialization.
"""

from __future__ import annotations

from typing import Any

from streamflow.dsl.nodes import Aggregate, Join, Process, TableOp
from streamflow.plan.context import Step, StepError, TaskContext
from streamflow.plan.guard import copy_agg, on_copies
from streamflow.plan.steps import record_of
from streamflow.plan.wiring import Wiring
from streamflow.record import Headers
from streamflow.serde import SerdeUnavailable
from streamflow.state.keys import encode_key
from streamflow.state.store import TtlStore


def observing(stores: list[Any], step: Step) -> Step:
    """``step``, telling the TTL stores among ``stores`` each record's event time first.

    No wrapper at all when none has a TTL.
    """
    observers = tuple(s.observe for s in stores if isinstance(s, TtlStore))
    if not observers:
        return step

    def observed(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        for observe in observers:
            observe(ts)
        step(k, v, ts, h)

    return observed


def build_aggregate(w: Wiring, node: Aggregate) -> Step:
    """Fold each key's values into its store entry; emit every new aggregate.

    The aggregate's timestamp is the largest of the records that contributed to it (Kafka
    Streams' ``KStreamAggregate``): ``a=650@103000`` then ``a=670@99750`` gives
    ``a->1320@103000``. A row of unknown time (a store written before rows had timestamps,
    ``NO_TIMESTAMP``) takes the next record's. A record whose initializer or adder raises
    changes nothing (see ``streamflow.plan.guard``); its step's ``on_error`` decides.
    """
    store = w.store(node.store)
    get = store.get_stamped
    put = store.put_stamped
    init = node.initializer
    first = node.adder  # a fresh initial aggregate needs no copy
    assert first is not None
    # a record whose adder raises leaves its key's row as it was (streamflow.plan.guard)
    adder = first if node.op == "count" else on_copies(first, w, node)
    name = node.name
    nxt = w.downstream(node)

    def aggregate(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        if k is None or v is None:
            return  # as Kafka Streams: null keys and values do not aggregate
        kb = encode_key(k)
        row = get(kb)
        try:
            if row is None:
                new = v if init is None else first(init(), v)
            else:
                new = adder(row[0], v)
                if row[1] > ts:
                    ts = row[1]
        except Exception as e:
            raise StepError(name, e) from e
        put(kb, (new, ts))
        nxt(k, new, ts, h)

    return observing([store], aggregate)


def materialize(store: Any, nxt: Step) -> Step:
    """Keep a table's latest value per key in ``store`` (None deletes), then pass it on.

    Each row keeps its record's timestamp. A delete is passed on before it is applied, so
    the steps after it still find the row being deleted (a table-table join tells a delete
    of a row from a delete of nothing this way, as Kafka Streams does with old values).
    """
    put = store.put_stamped

    def materialize_(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        if k is None:
            return
        kb = encode_key(k)
        if v is None:
            try:
                nxt(k, None, ts, h)
            finally:
                put(kb, None)
            return
        put(kb, (v, ts))
        nxt(k, v, ts, h)

    return observing([store], materialize_)


def build_table_op(w: Wiring, node: TableOp) -> Step:
    """``filter`` or ``map_values`` of a table (deletions pass through).

    ``map_values``' function is given a private copy of the row (``plan.guard.copy_agg``), so
    one that changes its argument in place and returns it leaves the table before it intact.
    """
    fn = node.fn
    name = node.name
    is_filter = node.op == "filter"
    nxt = w.downstream(node)

    def table_op(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        if v is not None:
            try:  # map_values' fn gets its own copy: the row is the table's before this step
                out = (v if fn(v) else None) if is_filter else fn(copy_agg(v))  # type: ignore[misc]
            except Exception as e:
                raise StepError(name, e) from e
        else:
            out = None
        nxt(k, out, ts, h)

    return table_op


def build_join(w: Wiring, node: Join) -> Step:
    """A stream-table join: look the record's key up in the table's store.

    As in Kafka Streams, stream records with a null value are dropped by ``join`` and
    ``left_join`` alike (a null value is no event to enrich). A null key finds no row:
    ``join`` drops the record, ``left_join`` passes it with ``None`` (Kafka Streams since
    3.7, KIP-962).
    """
    get = w.store(node.store).get_stamped
    joiner = node.joiner
    left = node.left
    name = node.name
    nxt = w.downstream(node)

    def join(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        if v is None:
            return
        row = None if k is None else get(encode_key(k))
        if row is None:
            if not left:
                return
            right = None
        else:
            right = row[0]
        try:
            out = joiner(v, right)  # type: ignore[misc]
        except Exception as e:
            raise StepError(name, e) from e
        nxt(k, out, ts, h)

    return join


class ProcessContext:
    """What a ``process()`` function gets besides the record: its stores and ``forward``."""

    __slots__ = ("_h", "_nxt", "_task", "_ts")

    def __init__(self, task: TaskContext, nxt: Step) -> None:
        self._task = task
        self._nxt = nxt
        self._ts = 0
        self._h: Headers | None = None

    @property
    def partition(self) -> int:
        """The task's partition."""
        return self._task.partition

    def store(self, name: str) -> Any:
        """A store declared in ``process(..., stores=[...])``."""
        return self._task.store(name)

    def forward(self, key: Any, value: Any, *, timestamp: int | None = None,
                headers: Headers | None = None) -> None:
        """Send a record downstream (timestamp and headers default to the input's)."""
        self._nxt(key, value, self._ts if timestamp is None else timestamp,
                  self._h if headers is None else headers)


def build_process(w: Wiring, node: Process) -> Step:
    """User code called with each record and a ``ProcessContext``."""
    fn = node.fn
    name = node.name
    ctx = w.ctx
    pctx = ProcessContext(ctx, w.downstream(node))

    def process(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        pctx._ts = ts
        pctx._h = h
        try:
            fn(record_of(ctx, k, v, ts, h), pctx)  # type: ignore[misc]
        except (StepError, SerdeUnavailable):  # from steps downstream of forward()
            raise
        except Exception as e:
            raise StepError(name, e) from e

    return observing([w.store(n) for n in node.stores], process)
