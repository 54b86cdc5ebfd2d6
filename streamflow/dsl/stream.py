"""``Stream``: an immutable handle on a step of a processor's graph, with the operators."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from streamflow.dsl.nodes import Apply, Branch, Merge, Node, Sink, Split
from streamflow.dsl.topology import Topic, TopologyError
from streamflow.record import Record

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

    def _then(self, node_factory: Callable[[str], Node], kind: str, name: str | None) -> Stream:
        node = self._processor.add(node_factory(self._processor.node_name(kind, name)))
        return Stream(self._processor, node.name)

    def _apply(self, op: str, fn: Callable[..., Any], name: str | None) -> Stream:
        if not callable(fn):
            raise TopologyError(f"{op}() needs a function, got {type(fn).__name__}")
        return self._then(lambda n: Apply(n, (self._node,), op, fn), op, name)

    def map(self, fn: Callable[[Any], Any], *, name: str | None = None) -> Stream:
        """Replace each value with ``fn(value)``."""
        return self._apply("map", fn, name)

    def map_record(self, fn: Callable[[Record], Record], *, name: str | None = None) -> Stream:
        """Replace each record with ``fn(record)`` (key, value, timestamp and headers)."""
        return self._apply("map_record", fn, name)

    def filter(self, predicate: Callable[[Any], bool], *, name: str | None = None) -> Stream:
        """Keep the records whose value satisfies ``predicate``."""
        return self._apply("filter", predicate, name)

    def filter_record(
        self, predicate: Callable[[Record], bool], *, name: str | None = None
    ) -> Stream:
        """Keep the records that satisfy ``predicate(record)``."""
        return self._apply("filter_record", predicate, name)

    def flat_map(self, fn: Callable[[Any], Iterable[Any]], *, name: str | None = None) -> Stream:
        """Replace each value with zero or more values (same key and timestamp)."""
        return self._apply("flat_map", fn, name)

    def key_by(self, fn: Callable[[Any], Any], *, name: str | None = None) -> Stream:
        """Set each record's key to ``fn(value)``."""
        return self._apply("key_by", fn, name)

    def peek(self, fn: Callable[[Record], Any], *, name: str | None = None) -> Stream:
        """Call ``fn(record)`` for its side effect; records pass unchanged."""
        return self._apply("peek", fn, name)

    def split(
        self,
        *,
        name: str | None = None,
        default: str | None = None,
        **branches: Callable[[Any], bool],
    ) -> dict[str, Stream]:
        """Route each record to the first branch whose predicate accepts its value.

        ``default`` names an extra branch for records no predicate accepts (else they are
        dropped)::

            parts = stream.split(big=lambda v: v > 100, default="small")
            parts["big"].to(big_topic)
        """
        if not branches:
            raise TopologyError("split() needs at least one branch, e.g. split(big=lambda v: ...)")
        for b, pred in branches.items():
            if not callable(pred):
                raise TopologyError(f"split branch {b!r} needs a predicate function")
        if default is not None and default in branches:
            raise TopologyError(f"split default branch {default!r} also has a predicate")
        split_name = self._processor.node_name("split", name)
        names = tuple(branches)
        self._processor.add(
            Split(split_name, (self._node,), names, tuple(branches.values()), default)
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
                raise TopologyError(
                    "merge() joins streams of one processor; to combine processors, write to a "
                    "topic and read it"
                )
        parents = (self._node, *(o._node for o in others))
        return self._then(lambda n: Merge(n, parents), "merge", name)

    def to(self, topic: Topic | str | Callable[[Record], Topic | str], *,
           name: str | None = None) -> None:
        """Produce the records to a declared topic, or to ``fn(record)``'s topic per record."""
        topology = self._processor.topology
        if isinstance(topic, (Topic, str)):
            resolved = topology.resolve_topic(topic).name
            self._then(lambda n: Sink(n, (self._node,), resolved, None), "to", name)
        elif callable(topic):
            self._then(lambda n: Sink(n, (self._node,), None, topic), "to", name)
        else:
            raise TopologyError(f"to() needs a Topic, a topic name or a function, got {topic!r}")

    def __repr__(self) -> str:
        return f"Stream({self._processor.name}/{self._node})"
