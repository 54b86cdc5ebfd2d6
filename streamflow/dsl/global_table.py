"""Global tables: a whole topic in every worker, joined by a key taken from each record.

Kafka Streams' ``GlobalKTable``. ``topology.global_table(topic)`` declares one; a stream joins
it with ``stream.join(table, joiner, key=fn)`` or ``stream.left_join(...)``, where
``key(stream_key, stream_value)`` gives the global table's key (Kafka Streams'
``KeyValueMapper``). Unlike ``topology.table(topic)``:

- every worker holds *all* partitions of the topic in one store that every task of the
  processor reads, so the topic needs no co-partitioning with the stream and nothing is
  repartitioned;
- the topic is the store's changelog: no changelog topic is made, and the worker reads the
  topic to its end offsets before it processes any stream record, then keeps reading it
  while it runs (``streamflow.runtime.global_tables``);
- a stream record does not wait for the table in event time: it meets the table as far as
  the worker has read it (as in Kafka Streams, global tables are not time-aligned).

>>> import streamflow as sf
>>> t = sf.Topology("shop")
>>> orders = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
>>> countries = t.global_table(t.topic("countries", key=sf.String(), value=sf.Json(),
...                                    external=True))
>>> out = t.topic("orders-enriched", key=sf.String(), value=sf.Json())
>>> p = t.processor("enrich")
>>> (p.stream(orders)
...   .left_join(countries, lambda o, c: {**o, "country": c and c["name"]},
...              key=lambda _k, o: o["country_code"], name="with-country")
...   .to(out))
>>> print(p.nodes["with-country"].label())
left_join(global countries, <lambda>, key=<lambda>)
>>> global_topics(p), p.source_topics()
(['countries'], ['orders'])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streamflow.dsl.nodes import GlobalJoin

if TYPE_CHECKING:
    from streamflow.dsl.policies import OnError
    from streamflow.dsl.stream import Stream
    from streamflow.dsl.topology import Processor, Topic

__all__ = ["GlobalTableRef", "global_join", "global_stores", "global_topics"]


class GlobalTableRef:
    """A topic read whole into every worker (``topology.global_table(topic)``).

    ``name`` names its store (default ``global-<topic>``), which lives in the worker's state
    folder under ``global/``.
    """

    def __init__(self, topic: Topic, name: str | None) -> None:
        self.topic = topic
        self.name = name or f"global-{topic.name}"

    def __repr__(self) -> str:
        return f"GlobalTableRef({self.topic.name})"


def global_join(stream: Stream, table: GlobalTableRef, joiner: Callable[[Any, Any], Any],
                key: Callable[[Any, Any], Any] | None, name: str | None, left: bool,
                on_error: OnError | None) -> Stream:
    """The step joining ``stream`` with the global ``table`` (``Stream.join`` delegates here)."""
    from streamflow.dsl.topology import TopologyError, _check_name

    p = stream.processor
    if not callable(key):
        msg = (f"join() with global table {table.topic.name!r} needs key=fn, where "
               "fn(stream_key, stream_value) returns the table's key, e.g. "
               "key=lambda k, v: v['customer_id']")
        raise TopologyError(msg)
    if p.topology.resolve_topic(table.topic) is not table.topic:
        msg = f"global table {table.topic.name!r} belongs to another topology"
        raise TopologyError(msg)
    _check_name("global table", table.name)
    other = global_stores(p).get(table.name)
    if other is not None and other != table.topic.name:
        msg = (f"processor {p.name!r} already has a global table named {table.name!r} (of "
               f"topic {other!r}); name this one with global_table(..., name=...)")
        raise TopologyError(msg)
    if table.topic.name in p.source_topics():
        msg = (f"processor {p.name!r} reads topic {table.topic.name!r} as a stream or table "
               "already; a topic is read either way or as a global table, not both")
        raise TopologyError(msg)
    topic, store = table.topic.name, table.name
    return stream._then(
        lambda n: GlobalJoin(n, (stream.node.name,), topic, store, key, joiner, left),
        "left_join" if left else "join", name, on_error)


def global_stores(processor: Processor) -> dict[str, str]:
    """The processor's global tables: store name -> topic, in declaration order."""
    return {n.store: n.global_topic for n in processor.nodes.values()
            if isinstance(n, GlobalJoin)}


def global_topics(processor: Processor) -> list[str]:
    """The topics the processor reads as global tables (no group, all partitions)."""
    return list(dict.fromkeys(global_stores(processor).values()))
