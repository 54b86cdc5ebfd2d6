"""Grouped streams and tables: keyed, stateful views of a stream."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streamflow.dsl.nodes import Aggregate, Merge, Node, TableJoin, TableMaterialize, TableOp
from streamflow.dsl.topology import TopologyError
from streamflow.serde.stored import row_serde

if TYPE_CHECKING:
    from streamflow.dsl.policies import OnError
    from streamflow.dsl.stream import Stream
    from streamflow.dsl.topology import Processor, Topic
    from streamflow.dsl.windowed import WindowedStream


class GroupedStream:
    """A stream partitioned by its key, ready to aggregate into a ``Table``.

    With ``count``, ``reduce`` or ``aggregate``.
    """

    def __init__(self, processor: Processor, node: str, name: str) -> None:
        self._processor = processor
        self._node = node
        self._name = name

    def _aggregate(self, op: str, initializer: Callable[[], Any] | None,
                   adder: Callable[[Any, Any], Any], name: str | None,
                   value_serde: Any, ttl: Any = None, on_error: OnError | None = None) -> Table:
        p = self._processor
        step = p.node_name(op, name)
        p.check_step_on_error(step, on_error)
        store = p.add_store(step, value_serde=value_serde, ttl=ttl, timestamped=True)
        p.add(Aggregate(step, (self._node,), store, initializer, adder, op, on_error=on_error))
        return Table(p, step, store)

    def count(self, *, name: str | None = None, ttl: Any = None) -> Table:
        """Count records per key.

        ``ttl``: forget keys not seen for that long (see ``Processor.add_store``).
        """
        return self._aggregate("count", lambda: 0, _count, name, None, ttl)

    def reduce(self, fn: Callable[[Any, Any], Any], *, name: str | None = None,
               value_serde: Any = None, ttl: Any = None,
               on_error: OnError | None = None) -> Table:
        """Combine the values of each key with ``fn(aggregate, value)``.

        The first value of a key is its first aggregate. ``on_error`` as ``aggregate``'s. The
        store keeps them with ``value_serde``: by default the topic's serde when the values are
        a topic's unchanged (``Processor.value_serde_at``), else JSON.
        """
        if value_serde is None:  # the values' own serde (streamflow.serde.stored)
            value_serde = row_serde(self._processor.value_serde_at(self._node))
        return self._aggregate("reduce", None, fn, name, value_serde, ttl, on_error)

    def aggregate(self, initializer: Callable[[], Any], adder: Callable[[Any, Any], Any], *,
                  name: str | None = None, value_serde: Any = None, ttl: Any = None,
                  on_error: OnError | None = None) -> Table:
        """Fold the values of each key: ``initializer()`` then ``adder(aggregate, value)``.

        ``on_error`` (``"fail"``, ``"skip"``, ``"dead_letter"`` or a function deciding;
        default: the processor's ``on_processing_error``) is what happens to a record whose
        ``initializer`` or ``adder`` raises. Its key's aggregate is then left as it was: nothing
        is stored, nothing goes to the changelog or downstream. Under a policy that may go on
        (not ``"fail"``), ``adder`` is given a copy of a mutable aggregate, so an adder that
        changes it in place before raising cannot corrupt it either::

            grouped.aggregate(dict, add_payment, name="totals", on_error="dead_letter")
        """
        return self._aggregate("aggregate", initializer, adder, name, value_serde, ttl,
                               on_error)

    def window(self, spec: Any, *, timestamp: Callable[[Any], int] | None = None,
               late_topic: Topic | str | None = None) -> WindowedStream:
        """Window the grouped stream by event time.

        ``spec`` is ``sf.Tumbling``, ``sf.Hopping``, ``sf.Sliding`` or ``sf.Session``;
        ``timestamp(value) -> ms`` extracts event time (default: the record timestamp); records
        too late for every window (or, sliding, in no open window) go to the declared
        ``late_topic`` (serialized with its serdes), if given. See ``streamflow.windows`` for
        the rules::

            grouped.window(sf.Tumbling(sf.minutes(1), grace=sf.seconds(10))).count().final()
        """
        from streamflow.dsl.windowed import window

        return window(self._processor, self._node, spec, timestamp, late_topic)


def _count(aggregate: int, _value: Any) -> int:
    return aggregate + 1


class Table:
    """A keyed, continuously updated view: an aggregation result or a materialized topic.

    Or a view of one (``filter``, ``map_values``, a join of two tables). Each row keeps a
    timestamp: a topic row its record's, an aggregate the largest of the records that made
    it, a join result the larger of its two rows'.
    """

    def __init__(self, processor: Processor, node: str, store: str | None) -> None:
        self._processor = processor
        self._node = node
        self.store = store

    @property
    def processor(self) -> Processor:
        """The processor that owns the table."""
        return self._processor

    @property
    def node(self) -> Node:
        """The graph node whose output is this table's updates."""
        return self._processor.nodes[self._node]

    def to_stream(self) -> Stream:
        """The stream of the table's updates (one record per change)."""
        from streamflow.dsl.stream import Stream

        return Stream(self._processor, self._node)

    def _op(self, op: str, fn: Callable[[Any], Any], name: str | None,
            on_error: OnError | None) -> Table:
        p = self._processor
        step = p.node_name(f"table-{op}", name)
        p.check_step_on_error(step, on_error)
        p.add(TableOp(step, (self._node,), op, fn, on_error=on_error))
        return Table(p, step, None)

    def filter(self, predicate: Callable[[Any], bool], *, name: str | None = None,
               on_error: OnError | None = None) -> Table:
        """Keep rows whose value satisfies ``predicate``; others become deletes.

        ``on_error`` (default: the processor's ``on_processing_error``) is what happens to an
        update whose ``predicate`` raises. Under ``"skip"`` or ``"dead_letter"`` the update
        stops here: the rows after this step keep their previous value for the key (a value
        the table before it no longer has) until the key's next update gets through; nothing
        is emitted. ``predicate`` must not change the value in place: it is that table's row::

            accounts.filter(lambda v: v["balance"] > 0, name="in-credit", on_error="skip")
        """
        return self._op("filter", predicate, name, on_error)

    def map_values(self, fn: Callable[[Any], Any], *, name: str | None = None,
                   on_error: OnError | None = None) -> Table:
        """Transform each row's value (``fn`` returning None deletes the row).

        ``fn`` gets its own copy of the row: it may change it in place and return it.

        ``on_error`` as ``filter``'s: an update whose ``fn`` raises is not applied after this
        step, so the rows after it keep the key's previous, possibly stale, value. To delete
        the row instead, catch the exception in ``fn`` and return None::

            users.map_values(lambda u: u["email"].lower(), name="email", on_error="dead_letter")
        """
        return self._op("map_values", fn, name, on_error)

    # -- table-table joins (streamflow.plan.table_joins) ----------------------------------
    def join(self, other: Table | TableRef, joiner: Callable[[Any, Any], Any], *,
             foreign_key: Callable[[Any], Any] | None = None, name: str | None = None,
             on_error: OnError | None = None) -> Table:
        """The table of ``joiner(value, other_value)`` for the keys both tables have.

        Kafka Streams' KTable-KTable inner join: every update of either table looks the key
        up in the other and emits the new result (its timestamp is the larger of the two
        rows'); a delete on either side deletes the result. ``other`` is a table of the same
        processor, or ``topology.table(topic)`` (co-partitioned)::

            users.join(t.table(addresses), lambda user, address: {**user, **address})

        With ``foreign_key(value) -> other_key``, a foreign-key join (Kafka Streams' KIP-213):
        each row meets the row of ``other`` that its value names; the result is keyed by this
        table's key (see ``streamflow.dsl.foreign_key``)::

            orders.join(t.table(customers), lambda o, c: {**o, "name": c["name"]},
                        foreign_key=lambda o: o["customer"])

        ``on_error`` (default: the processor's ``on_processing_error``) is what happens to an
        update whose ``joiner`` (or ``foreign_key``) raises. Under ``"skip"`` or
        ``"dead_letter"`` no result is emitted for it: the joined table keeps the key's
        previous, possibly stale, result until a later update of either side joins again.
        The join still keeps the new row, so the other side's next update joins with it; only
        a ``foreign_key`` that raises leaves the join's rows as they were (it cannot know
        which row to follow, so it goes on following the previous one).
        """
        if foreign_key is not None:
            return self._foreign_key_join(other, foreign_key, joiner, False, name, on_error)
        return self._join(other, joiner, "join", name, on_error)

    def left_join(self, other: Table | TableRef, joiner: Callable[[Any, Any], Any], *,
                  foreign_key: Callable[[Any], Any] | None = None, name: str | None = None,
                  on_error: OnError | None = None) -> Table:
        """Like ``join``, but every key of this table has a result.

        ``joiner(value, None)`` while ``other`` has no row for the key (with ``foreign_key``:
        no row for the key the value names).
        """
        if foreign_key is not None:
            return self._foreign_key_join(other, foreign_key, joiner, True, name, on_error)
        return self._join(other, joiner, "left_join", name, on_error)

    def _foreign_key_join(self, other: Table | TableRef, foreign_key: Callable[[Any], Any],
                          joiner: Callable[[Any, Any], Any], left: bool, name: str | None,
                          on_error: OnError | None) -> Table:
        from streamflow.dsl.foreign_key import foreign_key_join

        if isinstance(other, TableRef):
            other = self._processor.materialize(other)
        return foreign_key_join(self, other, foreign_key, joiner, left=left, name=name,
                                on_error=on_error)

    def outer_join(self, other: Table | TableRef, joiner: Callable[[Any, Any], Any], *,
                   name: str | None = None, on_error: OnError | None = None) -> Table:
        """Like ``join``, but every key of either table has a result.

        The missing side is ``None``: ``joiner(value, None)`` or ``joiner(None, other_value)``.
        """
        return self._join(other, joiner, "outer_join", name, on_error)

    def _join(self, other: Table | TableRef, joiner: Callable[[Any, Any], Any], how: str,
              name: str | None, on_error: OnError | None) -> Table:
        p = self._processor
        if not callable(joiner):
            msg = f"{how}() needs a joiner function (value, other_value)"
            raise TopologyError(msg)
        if isinstance(other, TableRef):
            other = p.materialize(other)
        if not isinstance(other, Table) or other.processor is not p:
            msg = (f"{how}() joins two tables of processor {p.name!r}: pass topology.table(topic) "
                   "or a Table this processor made; a table of another processor is a topic "
                   "it writes, read it with topology.table(topic)")
            raise TopologyError(msg)
        if other._node == self._node:
            msg = f"{how}() of a table with itself: use map_values() instead"
            raise TopologyError(msg)
        step = p.node_name(f"table-{how.replace('_', '-')}", name)
        p.check_step_on_error(step, on_error)  # before views are kept in stores for the join
        left, right = self._materialized(), other._materialized()
        sides = []
        for side, this, that in (("left", left, right), ("right", right, left)):
            node: Node = TableJoin(f"{step}.{side}", (this._node,), how=how, side=side,
                                   this_store=this.store or "", other_store=that.store or "",
                                   joiner=joiner, on_error=on_error)
            sides.append(p.add(node).name)
        p.add(Merge(step, tuple(sides)))
        return Table(p, step, None)

    def _materialized(self) -> Table:
        """This table with a store: itself, or its view kept in a store (made once)."""
        if self.store is not None:
            return self
        p = self._processor
        step = f"{self._node}.materialized"
        if step not in p.nodes:
            p.add_store(step, timestamped=True)
            p.add(TableMaterialize(step, (self._node,), store=step))
        return Table(p, step, step)


class TableRef:
    """A topic to be read as a table (``topology.table(topic)``).

    Each processor that joins against it materializes it in its own store, co-partitioned with its
    stream.
    """

    def __init__(self, topic: Topic, name: str | None, changelog: str = "own") -> None:
        self.topic = topic
        self.name = name or f"table-{topic.name}"
        self.named = name is not None  # else named after the topic (stable, not positional)
        self.changelog = changelog  # "source": restored from the topic (dsl.source_reuse)

    def __repr__(self) -> str:
        return f"TableRef({self.topic.name})"
