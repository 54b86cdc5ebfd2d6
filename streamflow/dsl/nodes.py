"""Frozen node descriptions: the graph a processor's streams are built from.

Nodes only describe. ``streamflow.plan`` compiles them into closures; nothing here holds a
consumer, producer or store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from streamflow.dsl.policies import OnError


@dataclass(frozen=True)
class Node:
    """A step in a processor's graph. ``parents`` name the steps feeding it.

    ``named`` is False when the step's name was derived (``<kind>-<n>`` in declaration
    order) rather than given with ``name=...``; ``streamflow check`` warns about stateful
    steps whose state is named that way, because inserting a step before them renames it.
    ``on_error`` (a :data:`~streamflow.dsl.policies.OnError`, None for the processor's
    ``on_processing_error``) is what happens to a record whose user code fails in this step.
    """

    name: str
    parents: tuple[str, ...]
    named: bool = field(default=True, kw_only=True)
    on_error: OnError | None = field(default=None, kw_only=True)

    kind: ClassVar[str] = "node"

    def label(self) -> str:
        """A short description for ``describe()``."""
        return self.kind


@dataclass(frozen=True)
class Source(Node):
    """Records read from one or more declared topics."""

    topics: tuple[str, ...] = ()
    kind: ClassVar[str] = "source"

    def label(self) -> str:
        """``source(<topics>)``."""
        return f"source({', '.join(self.topics)})"


@dataclass(frozen=True)
class Apply(Node):
    """A one-function stateless step.

    map, map_record, filter, filter_record, flat_map, key_by, peek or validate: ``op`` says
    which; ``fn`` is the user function (for validate, the ``Rules``).
    """

    op: str = "map"
    fn: Callable[..., Any] | None = None
    kind: ClassVar[str] = "apply"

    def label(self) -> str:
        """``<op>(<function>)``."""
        return f"{self.op}({_fn_name(self.fn)})"


@dataclass(frozen=True)
class AsyncApply(Node):
    """An I/O step running a coroutine function per record: map_async or flat_map_async.

    At most ``concurrency`` calls of a processor's step are in flight at once; each attempt
    gets ``timeout`` seconds (None: no limit), a failed one is retried ``retries`` times after
    ``backoff * 2**attempt`` seconds (see ``streamflow.plan.async_steps``).
    """

    op: str = "map_async"
    fn: Callable[..., Any] | None = None
    concurrency: int = 100
    timeout: float | None = 10.0
    retries: int = 0
    backoff: float = 0.1
    kind: ClassVar[str] = "async_apply"

    def label(self) -> str:
        """``<op>(<function>, concurrency=<n>)``."""
        return f"{self.op}({_fn_name(self.fn)}, concurrency={self.concurrency})"


@dataclass(frozen=True)
class Split(Node):
    """Routes each record to the first branch whose predicate matches (else the default)."""

    branches: tuple[str, ...] = ()
    predicates: tuple[Callable[[Any], bool], ...] = ()
    default: str | None = None
    kind: ClassVar[str] = "split"

    def label(self) -> str:
        """``split(<branches>)``."""
        names = list(self.branches) + ([f"{self.default} (default)"] if self.default else [])
        return f"split({', '.join(names)})"


@dataclass(frozen=True)
class Branch(Node):
    """One named output of a ``Split``."""

    index: int = 0
    kind: ClassVar[str] = "branch"

    def label(self) -> str:
        """``branch #<index>``."""
        return f"branch #{self.index}"


@dataclass(frozen=True)
class Merge(Node):
    """The union of several streams of the same processor."""

    kind: ClassVar[str] = "merge"


@dataclass(frozen=True)
class Sink(Node):
    """Produce to a declared topic, or to the topic a function picks per record.

    ``on_produce_error`` (None for the processor's) is what happens to a record whose key or
    value cannot be serialized for this sink's topic.
    """

    topic: str | None = None
    router: Callable[[Any], Any] | None = None
    on_produce_error: OnError | None = field(default=None, kw_only=True)
    kind: ClassVar[str] = "sink"

    def label(self) -> str:
        """``to(<topic>)``, or ``to(<router>)`` for a topic chosen per record."""
        return f"to({self.topic})" if self.topic else f"to({_fn_name(self.router)})"


def _fn_name(fn: Callable[..., Any] | None) -> str:
    if fn is None:
        return "?"
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


@dataclass(frozen=True)
class StoreSpec:
    """A named per-partition store of a processor, made durable by a changelog topic."""

    name: str
    changelog: str
    value_serde: Any = None  # a Serde; None = JSON
    backend: str | None = None  # None = the processor's default
    kind: str = "kv"
    ttl_ms: int | None = None  # entries expire this long (event time) after their last write
    timestamped: bool = False  # a table's store: each row keeps its event time
    # a topic table reusing its source topic as changelog (``changelog`` names it): the
    # topic's key and value serdes, to restore rows as the table's updates write them
    source_serdes: tuple[Any, Any] | None = None


@dataclass(frozen=True)
class Aggregate(Node):
    """A keyed aggregation into a store: count, reduce or aggregate.

    ``initializer()`` gives the first aggregate; ``adder(aggregate, value)`` the next one.
    For ``reduce`` the initializer is None and the first value is the aggregate.
    """

    store: str = ""
    initializer: Callable[[], Any] | None = None
    adder: Callable[[Any, Any], Any] | None = None
    op: str = "aggregate"
    kind: ClassVar[str] = "aggregate"

    def label(self) -> str:
        """``<op>(store=<store>)``."""
        return f"{self.op}(store={self.store})"


@dataclass(frozen=True)
class TableSource(Node):
    """Materializes a (compacted) topic into a store and emits its updates."""

    topic: str = ""
    store: str = ""
    reuse_source: bool = False  # the store is restored from the topic (no changelog)
    kind: ClassVar[str] = "table"

    def label(self) -> str:
        """``table(<topic>, store=<store>)``, ``, changelog=source`` when it reuses the topic."""
        reuse = ", changelog=source" if self.reuse_source else ""
        return f"table({self.topic}, store={self.store}{reuse})"


@dataclass(frozen=True)
class TableOp(Node):
    """``Table.filter`` (non-matching updates become deletes) or ``Table.map_values``."""

    op: str = "map_values"
    fn: Callable[[Any], Any] | None = None
    kind: ClassVar[str] = "table_op"

    def label(self) -> str:
        """``table.<op>(<function>)``."""
        return f"table.{self.op}({_fn_name(self.fn)})"


@dataclass(frozen=True)
class Join(Node):
    """Stream-table lookup join: ``joiner(stream_value, table_value)`` per stream record."""

    store: str = ""
    right_topic: str = ""
    left_topics: tuple[str, ...] = ()
    joiner: Callable[[Any, Any], Any] | None = None
    left: bool = False
    kind: ClassVar[str] = "join"

    def label(self) -> str:
        """``<join>(<table topic>, <joiner>)``."""
        op = "left_join" if self.left else "join"
        return f"{op}({self.right_topic}, {_fn_name(self.joiner)})"


@dataclass(frozen=True)
class StreamJoin(Node):
    """A windowed stream-stream join (``join``, ``left_join`` or ``outer_join``).

    Its two parents are the ``StreamJoinSide`` steps of the left and right streams; ``how`` is
    ``inner``, ``left`` or ``outer``; ``window`` a ``streamflow.windows.JoinWindows``;
    ``stores`` the left, right and (left and outer joins) unmatched-records stores;
    ``serdes`` True when the stores keep values through the join's ``value_serde=`` /
    ``other_value_serde=`` (``streamflow.serde.join_values``) instead of JSON.
    """

    how: str = "inner"
    window: Any = None
    joiner: Callable[[Any, Any], Any] | None = None
    stores: tuple[str, ...] = ()
    serdes: bool = False
    kind: ClassVar[str] = "join"

    def label(self) -> str:
        """``<join>(<joiner>, window=<window>)``."""
        op = {"inner": "join", "left": "left_join", "outer": "outer_join"}[self.how]
        return f"{op}({_fn_name(self.joiner)}, window={self.window.describe()})"


@dataclass(frozen=True)
class StreamJoinSide(Node):
    """One input of a ``StreamJoin``: ``side`` 0 (left) or 1 (right), buffered in ``store``."""

    side: int = 0
    store: str = ""
    kind: ClassVar[str] = "join_side"

    def label(self) -> str:
        """``join.<left|right>(store=<store>)``."""
        return f"join.{'right' if self.side else 'left'}(store={self.store})"


@dataclass(frozen=True)
class TableJoin(Node):
    """One side of a table-table join: an update of this side looks up the other side's row.

    ``how`` is ``join``, ``left_join`` or ``outer_join``; ``side`` is ``left`` or ``right``;
    ``joiner(left_value, right_value)``. Both sides feed a ``Merge`` named after the join,
    whose output is the joined table (``streamflow.plan.table_joins``).
    """

    how: str = "join"
    side: str = "left"
    this_store: str = ""
    other_store: str = ""
    joiner: Callable[[Any, Any], Any] | None = None
    kind: ClassVar[str] = "table_join"

    def label(self) -> str:
        """``table.<how>(<side> side, <joiner>)``."""
        return f"table.{self.how}({self.side} side, {_fn_name(self.joiner)})"


@dataclass(frozen=True)
class TableMaterialize(Node):
    """Keeps the rows of a table view (a filter, map_values or join result) in a store."""

    store: str = ""
    kind: ClassVar[str] = "materialize"

    def label(self) -> str:
        """``materialize(store=<store>)``."""
        return f"materialize(store={self.store})"


@dataclass(frozen=True)
class Process(Node):
    """A low-level stateful step: ``fn(record, ctx)`` with explicit store access."""

    fn: Callable[..., Any] | None = None
    stores: tuple[str, ...] = ()
    kind: ClassVar[str] = "process"

    def label(self) -> str:
        """``process(<function>, stores=[...])``."""
        return f"process({_fn_name(self.fn)}, stores={list(self.stores)})"


@dataclass(frozen=True)
class WindowAggregate(Node):
    """A windowed aggregation (count, reduce or aggregate) into a window store.

    ``spec`` is a ``streamflow.windows`` spec; ``merger(agg1, agg2)`` combines sessions;
    ``timestamp(value)`` extracts event time (else the record timestamp); ``late_sink`` names
    the ``Sink`` child that receives late records, if any. Its ``WindowEmit`` children say how
    results leave it (``final`` or ``updates``).
    """

    spec: Any = None
    store: str = ""
    initializer: Callable[[], Any] | None = None
    adder: Callable[[Any, Any], Any] | None = None
    merger: Callable[[Any, Any], Any] | None = None
    op: str = "aggregate"
    timestamp: Callable[[Any], int] | None = None
    late_sink: str | None = None
    kind: ClassVar[str] = "window_aggregate"

    def label(self) -> str:
        """``window.<op>(<window spec>, store=<store>)``."""
        extra = f", timestamp={_fn_name(self.timestamp)}" if self.timestamp else ""
        return f"window.{self.op}({self.spec.describe()}{extra}, store={self.store})"


@dataclass(frozen=True)
class WindowEmit(Node):
    """How a windowed aggregation's results leave it.

    ``final`` (once per window, when it closes) or ``updates`` (every change).
    """

    mode: str = "final"
    kind: ClassVar[str] = "window_emit"

    def label(self) -> str:
        """How results leave: once per window on close, or every update."""
        return "final (once per window, on close)" if self.mode == "final" else "updates"


@dataclass(frozen=True)
class GlobalJoin(Node):
    """Stream-global-table join: ``joiner(value, row)`` where row is ``key(k, value)``'s row.

    The global table (``global_topic``, held whole in every worker's store ``store``) needs no
    co-partitioning: see :mod:`streamflow.dsl.global_table`.
    """

    global_topic: str = ""
    store: str = ""
    key: Callable[[Any, Any], Any] | None = None
    joiner: Callable[[Any, Any], Any] | None = None
    left: bool = False
    kind: ClassVar[str] = "global_join"

    def label(self) -> str:
        """``<join>(global <topic>, <joiner>, key=<key>)``."""
        op = "left_join" if self.left else "join"
        return (f"{op}(global {self.global_topic}, {_fn_name(self.joiner)}, "
                f"key={_fn_name(self.key)})")


@dataclass(frozen=True)
class ForeignKeyJoin(Node):
    """One of the four steps of a foreign-key table-table join (KIP-213).

    Built by ``streamflow.dsl.foreign_key.foreign_key_join``; ``role`` says which step:
    ``subscribe`` (left-table updates -> subscriptions to ``subscription_topic``, keyed by the
    foreign key), ``lookup`` (a subscription meets the right table: kept in the subscription
    store, answered on ``response_topic``), ``update`` (a right-table update answers every
    subscriber) and ``resolve`` (a response whose hash still matches the left row is joined).
    ``stores`` are the stores the step itself uses.
    """

    role: str = "resolve"
    foreign_key: Callable[[Any], Any] | None = None
    joiner: Callable[[Any, Any], Any] | None = None
    left: bool = False
    stores: tuple[str, ...] = ()
    right_store: str = ""
    subscription_topic: str = ""
    response_topic: str = ""
    result: str = ""  # the resolve step, whose children also get the subscribe step's results
    kind: ClassVar[str] = "fk_join"

    @property
    def written_topic(self) -> str:
        """The internal topic this step produces to ("" for the resolve step)."""
        if self.role == "subscribe":
            return self.subscription_topic
        return self.response_topic if self.role in ("lookup", "update") else ""

    def label(self) -> str:
        """What the step does, e.g. ``fk_join.subscribe(<foreign key> -> <topic>)``."""
        op = "fk_left_join" if self.left else "fk_join"
        if self.role == "subscribe":
            return f"{op}.subscribe({_fn_name(self.foreign_key)} -> {self.subscription_topic})"
        if self.role == "lookup":
            return f"{op}.lookup(store={self.right_store} -> {self.response_topic})"
        if self.role == "update":
            return f"{op}.update(subscribers -> {self.response_topic})"
        return f"{op}({_fn_name(self.joiner)}, stale responses dropped)"
