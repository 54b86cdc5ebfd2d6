"""Grouped streams and tables: keyed, stateful views of a stream."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streamflow.dsl.nodes import Aggregate, Node, TableOp

if TYPE_CHECKING:
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
                   value_serde: Any, ttl: Any = None) -> Table:
        p = self._processor
        step = p.node_name(op, name)
        store = p.add_store(step, value_serde=value_serde, ttl=ttl, timestamped=True)
        p.add(Aggregate(step, (self._node,), store, initializer, adder, op))
        return Table(p, step, store)

    def count(self, *, name: str | None = None, ttl: Any = None) -> Table:
        """Count records per key.

        ``ttl``: forget keys not seen for that long (see ``Processor.add_store``).
        """
        return self._aggregate("count", lambda: 0, _count, name, None, ttl)

    def reduce(self, fn: Callable[[Any, Any], Any], *, name: str | None = None,
               value_serde: Any = None, ttl: Any = None) -> Table:
        """Combine the values of each key with ``fn(aggregate, value)``.

        The first value of a key is its first aggregate.
        """
        return self._aggregate("reduce", None, fn, name, value_serde, ttl)

    def aggregate(self, initializer: Callable[[], Any], adder: Callable[[Any, Any], Any], *,
                  name: str | None = None, value_serde: Any = None, ttl: Any = None) -> Table:
        """Fold the values of each key: ``initializer()`` then ``adder(aggregate, value)``."""
        return self._aggregate("aggregate", initializer, adder, name, value_serde, ttl)

    def window(self, spec: Any, *, timestamp: Callable[[Any], int] | None = None,
               late_topic: Topic | str | None = None) -> WindowedStream:
        """Window the grouped stream by event time.

        ``spec`` is ``sf.Tumbling``, ``sf.Hopping``, ``sf.Sliding`` or ``sf.Session``;
        ``timestamp(value) -> ms`` extracts event time (default: the record timestamp); records
        too late for every window go to the declared ``late_topic`` (serialized with its
        serdes), if given. See ``streamflow.windows`` for the rules::

            grouped.window(sf.Tumbling(sf.minutes(1), grace=sf.seconds(10))).count().final()
        """
        from streamflow.dsl.windowed import window

        return window(self._processor, self._node, spec, timestamp, late_topic)


def _count(aggregate: int, _value: Any) -> int:
    return aggregate + 1


class Table:
    """A keyed, continuously updated view: an aggregation result or a materialized topic."""

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

    def _op(self, op: str, fn: Callable[[Any], Any], name: str | None) -> Table:
        p = self._processor
        step = p.node_name(f"table-{op}", name)
        p.add(TableOp(step, (self._node,), op, fn))
        return Table(p, step, None)

    def filter(self, predicate: Callable[[Any], bool], *, name: str | None = None) -> Table:
        """Keep rows whose value satisfies ``predicate``; others become deletes."""
        return self._op("filter", predicate, name)

    def map_values(self, fn: Callable[[Any], Any], *, name: str | None = None) -> Table:
        """Transform each row's value."""
        return self._op("map_values", fn, name)


class TableRef:
    """A topic to be read as a table (``topology.table(topic)``).

    Each processor that joins against it materializes it in its own store, co-partitioned with its
    stream.
    """

    def __init__(self, topic: Topic, name: str | None) -> None:
        self.topic = topic
        self.name = name or f"table-{topic.name}"
        self.named = name is not None  # else named after the topic (stable, not positional)

    def __repr__(self) -> str:
        return f"TableRef({self.topic.name})"
