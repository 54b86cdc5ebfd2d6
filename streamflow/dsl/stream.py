"""``Stream``: an immutable handle on a step of a processor's graph, with the operators."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from streamflow.dsl.async_ops import async_node
from streamflow.dsl.global_table import GlobalTableRef, global_join
from streamflow.dsl.joins import stream_join
from streamflow.dsl.nodes import Apply, Branch, Join, Merge, Node, Process, Sink, Source, Split
from streamflow.dsl.policies import OnError
from streamflow.dsl.table import GroupedStream, Table, TableRef
from streamflow.dsl.topology import Topic, TopologyError, check_on_error
from streamflow.dsl.validation import Rules
from streamflow.record import Record
from streamflow.serde import Serde
from streamflow.windows import JoinWindows

if TYPE_CHECKING:
    from streamflow.dsl.topology import Processor


class Stream:
    """A lazily described flow of records inside one processor.

    Every operator returns a new ``Stream``; nothing runs until the processor is started
    (``streamflow run``) or driven by ``streamflow.testing.TopologyTestDriver``.
    """

    __slots__ = ("_node", "_processor")

    def __init__(self, processor: Processor, node: str) -> None:
        self._processor = processor
        self._node = node

    @property
    def processor(self) -> Processor:
        """The processor this stream belongs to."""
        return self._processor

    @property
    def node(self) -> Node:
        """The graph node this handle points at."""
        return self._processor.nodes[self._node]

    def _then(self, node_factory: Callable[[str], Node], kind: str, name: str | None,
              on_error: OnError | None = None) -> Stream:
        node = node_factory(self._processor.node_name(kind, name))
        if on_error is not None:
            self._processor.check_step_on_error(node.name, on_error)
            node = replace(node, on_error=on_error)
        node = self._processor.add(node)
        return Stream(self._processor, node.name)

    def _apply(self, op: str, fn: Callable[..., Any], name: str | None,
               on_error: OnError | None) -> Stream:
        if not callable(fn):
            msg = f"{op}() needs a function, got {type(fn).__name__}"
            raise TopologyError(msg)
        return self._then(lambda n: Apply(n, (self._node,), op, fn), op, name, on_error)

    # Each operator running user code takes ``on_error=``: what happens to a record whose
    # function raises in this step ("fail", "skip", "dead_letter" or a function deciding;
    # see streamflow.dsl.policies), instead of the processor's on_processing_error.

    def map(self, fn: Callable[[Any], Any], *, name: str | None = None,
            on_error: OnError | None = None) -> Stream:
        """Replace each value with ``fn(value)``."""
        return self._apply("map", fn, name, on_error)

    def map_record(self, fn: Callable[[Record], Record], *, name: str | None = None,
                   on_error: OnError | None = None) -> Stream:
        """Replace each record with ``fn(record)`` (key, value, timestamp and headers)."""
        return self._apply("map_record", fn, name, on_error)

    def filter(self, predicate: Callable[[Any], bool], *, name: str | None = None,
               on_error: OnError | None = None) -> Stream:
        """Keep the records whose value satisfies ``predicate``."""
        return self._apply("filter", predicate, name, on_error)

    def filter_record(self, predicate: Callable[[Record], bool], *, name: str | None = None,
                      on_error: OnError | None = None) -> Stream:
        """Keep the records that satisfy ``predicate(record)``."""
        return self._apply("filter_record", predicate, name, on_error)

    def flat_map(self, fn: Callable[[Any], Iterable[Any]], *, name: str | None = None,
                 on_error: OnError | None = None) -> Stream:
        """Replace each value with zero or more values (same key and timestamp)."""
        return self._apply("flat_map", fn, name, on_error)

    def validate(self, rules: Mapping[str, Callable[[Any], object]], *,
                 on_invalid: OnError = "dead_letter", name: str | None = None) -> Stream:
        """Check each value against named data-quality rules; pass the records that hold.

        ``rules`` maps a name to a predicate of the value; every rule is checked. A record
        failing any rule raises ``sf.InvalidRecord`` naming them, and ``on_invalid`` decides
        (``"dead_letter"``, the default, ``"skip"``, ``"fail"`` or a function, as ``on_error``).
        ``streamflow_records_invalid_total{step, rule}`` counts failures per rule::

            stream.validate({"positive amount": lambda v: v["amount"] > 0,
                             "known currency": lambda v: v["currency"] in CURRENCIES})

        See ``streamflow.dsl.validation``.
        """
        checks = Rules(rules)
        return self._then(lambda n: Apply(n, (self._node,), "validate", checks), "validate",
                          name, on_invalid)

    def map_async(self, fn: Callable[[Any], Awaitable[Any]], *, concurrency: int = 100,
                  timeout: float | None = 10.0, retries: int = 0, backoff: float = 0.1,
                  name: str | None = None, on_error: OnError | None = None) -> Stream:
        """Replace each value with ``await fn(value)``: I/O (HTTP, a database) in parallel.

        At most ``concurrency`` calls are in flight per processor; results leave in input
        order per partition, and a batch's offsets are committed only once all its calls are
        done. Each attempt gets ``timeout`` seconds; a failed one is tried again ``retries``
        times after ``backoff * 2**attempt`` seconds, then ``on_error`` decides::

            async def lookup(order):
                return {**order, "customer": await customers.get(order["customer_id"])}

            stream.map_async(lookup, concurrency=100, timeout=2.0, retries=3)

        See ``streamflow.plan.async_steps`` for how batches are run.
        """
        return self._async("map_async", fn, concurrency, timeout, retries, backoff, name,
                           on_error)

    def flat_map_async(self, fn: Callable[[Any], Awaitable[Iterable[Any]]], *,
                       concurrency: int = 100, timeout: float | None = 10.0, retries: int = 0,
                       backoff: float = 0.1, name: str | None = None,
                       on_error: OnError | None = None) -> Stream:
        """Replace each value with the values of ``await fn(value)`` (zero or more).

        Same key and timestamp; in-flight bound, order, timeouts and retries as ``map_async``.
        """
        return self._async("flat_map_async", fn, concurrency, timeout, retries, backoff, name,
                           on_error)

    def _async(self, op: str, fn: Callable[..., Any], concurrency: int,
               timeout: float | None, retries: int, backoff: float, name: str | None,
               on_error: OnError | None) -> Stream:
        return self._then(
            lambda n: async_node(n, self._node, op, fn, concurrency=concurrency,
                                 timeout=timeout, retries=retries, backoff=backoff),
            op, name, on_error)

    def key_by(self, fn: Callable[[Any], Any], *, name: str | None = None,
               on_error: OnError | None = None) -> Stream:
        """Set each record's key to ``fn(value)``."""
        return self._apply("key_by", fn, name, on_error)

    def peek(self, fn: Callable[[Record], Any], *, name: str | None = None,
             on_error: OnError | None = None) -> Stream:
        """Call ``fn(record)`` for its side effect; records pass unchanged."""
        return self._apply("peek", fn, name, on_error)

    def split(
        self,
        *,
        name: str | None = None,
        default: str | None = None,
        on_error: OnError | None = None,
        **branches: Callable[[Any], bool],
    ) -> dict[str, Stream]:
        """Route each record to the first branch whose predicate accepts its value.

        ``default`` names an extra branch for records no predicate accepts (else they are
        dropped)::

            parts = stream.split(big=lambda v: v > 100, default="small")
            parts["big"].to(big_topic)
        """
        if not branches:
            msg = "split() needs at least one branch, e.g. split(big=lambda v: ...)"
            raise TopologyError(msg)
        for b, pred in branches.items():
            if not callable(pred):
                msg = f"split branch {b!r} needs a predicate function"
                raise TopologyError(msg)
        if default is not None and default in branches:
            msg = f"split default branch {default!r} also has a predicate"
            raise TopologyError(msg)
        if on_error is not None:
            check_on_error(f"processor {self._processor.name!r}: split on_error", on_error)
        split_name = self._processor.node_name("split", name)
        names = tuple(branches)
        self._processor.add(
            Split(split_name, (self._node,), names, tuple(branches.values()), default,
                  on_error=on_error)
        )
        out: dict[str, Stream] = {}
        for i, b in enumerate([*names, *([default] if default else [])]):
            node = self._processor.add(Branch(f"{split_name}.{b}", (split_name,), i))
            out[b] = Stream(self._processor, node.name)
        return out

    def merge(self, *others: Stream, name: str | None = None) -> Stream:
        """Combine this stream with others of the same processor."""
        for o in others:
            if o._processor is not self._processor:
                msg = (
                    "merge() joins streams of one processor; to combine processors, write to a "
                    "topic and read it"
                )
                raise TopologyError(msg)
        parents = (self._node, *(o._node for o in others))
        return self._then(lambda n: Merge(n, parents), "merge", name)

    # -- stateful ---------------------------------------------------------------------
    def _key_changed(self) -> bool:
        """True when a step between the source and here may have changed the key."""
        stack, seen = [self._node], set()
        while stack:
            n = self._processor.nodes[stack.pop()]
            if n.name in seen:
                continue
            seen.add(n.name)
            if isinstance(n, Apply) and n.op in ("key_by", "map_record"):
                return True
            if isinstance(n, Source):
                continue
            stack.extend(n.parents)
        return False

    def group_by(self, fn: Callable[[Any], Any], *, name: str | None = None,
                 key_serde: Any = None, value_serde: Any = None) -> GroupedStream:
        """Re-key by ``fn(value)`` and group.

        Records are repartitioned through the internal topic
        ``<topology>-<processor>-<name>-repartition``, so each key's records meet in one task.
        Its keys are JSON and its values too, unless they are a topic's values unchanged (then
        that topic's serde: ``Processor.value_serde_at``) or serdes are given.
        """
        step = self._processor.node_name("group-by", name)
        keyed = self._then(lambda n: Apply(n, (self._node,), "key_by", fn), "key_by",
                           f"{step}.key")
        src = self._processor.repartition(keyed._node, step, key_serde, value_serde)
        return GroupedStream(self._processor, src, step)

    def group_by_key(self, *, name: str | None = None, key_serde: Any = None,
                     value_serde: Any = None) -> GroupedStream:
        """Group by the current key; repartitions only when a step upstream changed the key."""
        step = self._processor.node_name("group-by-key", name)
        if self._key_changed():
            src = self._processor.repartition(self._node, step, key_serde, value_serde)
            return GroupedStream(self._processor, src, step)
        return GroupedStream(self._processor, self._node, step)

    def _join(self, table: Table | TableRef | GlobalTableRef, joiner: Callable[[Any, Any], Any],
              name: str | None, left: bool, on_error: OnError | None,
              key: Callable[[Any, Any], Any] | None) -> Stream:
        if not callable(joiner):
            msg = "join() needs a joiner function (stream_value, table_value)"
            raise TopologyError(msg)
        if isinstance(table, GlobalTableRef):
            return global_join(self, table, joiner, key, name, left, on_error)
        if key is not None:
            msg = ("join(key=...) is for a topology.global_table(); a table is joined by the "
                   "record's key (re-key the stream with key_by() first)")
            raise TopologyError(msg)
        if isinstance(table, TableRef):
            table = self._processor.materialize(table)
        if not isinstance(table, Table) or table.processor is not self._processor:
            msg = "join() needs topology.table(topic) or a Table of the same processor"
            raise TopologyError(msg)
        if table.store is None:
            msg = "join() needs a materialized table (an aggregation or a topic)"
            raise TopologyError(msg)
        right = self._processor.upstream_sources(table.node.name)
        lefts = tuple(self._processor.upstream_sources(self._node))
        kind = "left_join" if left else "join"
        return self._then(
            lambda n: Join(n, (self._node,), table.store or "", right[0] if right else "",
                           lefts, joiner, left),
            kind, name, on_error,
        )

    def join(self, table: Table | TableRef | GlobalTableRef | Stream,
             joiner: Callable[[Any, Any], Any], *, window: JoinWindows | None = None,
             key: Callable[[Any, Any], Any] | None = None, name: str | None = None,
             on_error: OnError | None = None, value_serde: Serde | None = None,
             other_value_serde: Serde | None = None) -> Stream:
        """Enrich each record with the table row of the same key: ``joiner(value, table_value)``.

        Records without a row are dropped, and so are records with a null value (as in Kafka
        Streams). Each record meets the table as it was at the record's timestamp: a task
        takes its stream and table records in timestamp order (see
        ``streamflow.runtime.alignment``).

        With a ``topology.global_table(topic)``, ``key(stream_key, stream_value)`` gives the
        row's key (records for which it returns None are dropped); see
        ``streamflow.dsl.global_table``.

        With another ``Stream`` and ``window=sf.JoinWindows(...)``, a windowed stream-stream
        join: ``joiner(left_value, right_value)`` for each pair of records of the same key
        close enough in time (see ``streamflow.plan.joins``)::

            clicks.join(views, lambda c, v: {**c, **v}, window=sf.JoinWindows(sf.seconds(10)))

        Its stores keep each side's values through ``value_serde`` (this stream's) and
        ``other_value_serde`` (the other's), as Kafka Streams' ``StreamJoined``. By default,
        a side whose values are a topic's unchanged uses that topic's serde, others JSON: give
        them when a step made values JSON cannot keep (decimals, bytes, timestamps).
        """
        if isinstance(table, Stream):
            _no_key("join", key)
            return stream_join(self, table, joiner, window, "join", name, on_error,
                               value_serde, other_value_serde)
        _no_serdes("join", value_serde, other_value_serde)
        _no_window("join", window)
        return self._join(table, joiner, name, False, on_error, key)

    def left_join(self, table: Table | TableRef | GlobalTableRef | Stream,
                  joiner: Callable[[Any, Any], Any], *, window: JoinWindows | None = None,
                  key: Callable[[Any, Any], Any] | None = None, name: str | None = None,
                  on_error: OnError | None = None, value_serde: Serde | None = None,
                  other_value_serde: Serde | None = None) -> Stream:
        """Like ``join`` but records without a row pass with ``table_value=None``.

        Records with a null value are dropped; records with a null key pass with ``None``.
        With a global table (``key=`` given), as in Kafka Streams: a record whose extracted
        key is None is dropped, unless its own key is None too (then it passes).
        With another ``Stream``, a left record that found no partner within the window comes
        out as ``joiner(left_value, None)`` once its window has closed.
        """
        if isinstance(table, Stream):
            _no_key("left_join", key)
            return stream_join(self, table, joiner, window, "left_join", name, on_error,
                               value_serde, other_value_serde)
        _no_serdes("left_join", value_serde, other_value_serde)
        _no_window("left_join", window)
        return self._join(table, joiner, name, True, on_error, key)

    def outer_join(self, other: Stream, joiner: Callable[[Any, Any], Any], *,
                   window: JoinWindows, name: str | None = None,
                   on_error: OnError | None = None, value_serde: Serde | None = None,
                   other_value_serde: Serde | None = None) -> Stream:
        """A windowed stream-stream outer join.

        Like ``left_join`` of two streams, and a right record without a partner comes out as
        ``joiner(None, right_value)`` once its window has closed.
        """
        if not isinstance(other, Stream):
            msg = "outer_join() joins two streams; for a table, use join() or left_join()"
            raise TopologyError(msg)
        return stream_join(self, other, joiner, window, "outer_join", name, on_error,
                           value_serde, other_value_serde)

    def process(self, fn: Callable[..., Any], *, stores: list[str] | tuple[str, ...] = (),
                name: str | None = None, on_error: OnError | None = None) -> Stream:
        """A low-level stateful step: ``fn(record, ctx)``.

        ``ctx.store(name)`` gives get/put/delete/range/prefix, ``ctx.forward(key, value)`` emits
        downstream.
        """
        for s in stores:
            if s not in self._processor.stores:
                self._processor.add_store(s)
        return self._then(lambda n: Process(n, (self._node,), fn, tuple(stores)), "process",
                          name, on_error)

    def to(self, topic: Topic | str | Callable[[Record], Topic | str], *,
           name: str | None = None, on_produce_error: OnError | None = None) -> None:
        """Produce the records to a declared topic, or to ``fn(record)``'s topic per record.

        ``on_produce_error`` is what happens to a record whose key or value cannot be
        serialized for this sink, instead of the processor's ``on_produce_error`` (same
        values: ``"fail"``, ``"skip"``, ``"dead_letter"`` or a function deciding)::

            stream.to(archive, on_produce_error="dead_letter")  # unfit records: dead letters
            stream.to(billing)  # the processor's policy (by default: fail)
        """
        topology = self._processor.topology
        policy = None
        if on_produce_error is not None:
            policy = check_on_error(f"processor {self._processor.name!r}: to() "
                                    "on_produce_error", on_produce_error)
        if isinstance(topic, (Topic, str)):
            resolved = topology.resolve_topic(topic).name
            self._then(lambda n: Sink(n, (self._node,), resolved, None,
                                      on_produce_error=policy), "to", name)
        elif callable(topic):
            self._then(lambda n: Sink(n, (self._node,), None, topic, on_produce_error=policy),
                       "to", name)
        else:
            msg = f"to() needs a Topic, a topic name or a function, got {topic!r}"
            raise TopologyError(msg)

    def __repr__(self) -> str:
        return f"Stream({self._processor.name}/{self._node})"


def _no_window(op: str, window: JoinWindows | None) -> None:
    if window is not None:
        msg = f"{op}(window=...) is for joining two streams; a table join takes no window"
        raise TopologyError(msg)


def _no_key(op: str, key: Callable[[Any, Any], Any] | None) -> None:
    if key is not None:
        msg = (f"{op}(key=...) is for a topology.global_table(); two streams are joined by "
               "their records' keys (re-key a stream with key_by() first)")
        raise TopologyError(msg)


def _no_serdes(op: str, value_serde: Serde | None, other_value_serde: Serde | None) -> None:
    if value_serde is not None or other_value_serde is not None:
        msg = (f"{op}(value_serde=..., other_value_serde=...) is for joining two streams (how "
               "the join keeps their records); a table join keeps nothing of the stream")
        raise TopologyError(msg)
