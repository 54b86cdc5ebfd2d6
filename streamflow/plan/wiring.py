"""The walker that compiles a processor's graph: the public API node builders use.

A builder is ``builder(wiring, node) -> Step``, registered per node class. It reads the
node, gets its stores (``wiring.store``), its serializers (``wiring.serializers_for``) and
the step that follows it (``wiring.downstream``), and returns the node's step. The wiring
builds each node once, on first demand, so a node reached from several parents (a merge) is
shared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from streamflow.dsl.nodes import Node
from streamflow.plan.context import Step, TaskContext, fanout

if TYPE_CHECKING:
    from streamflow.dsl.topology import Processor, Topology

Serializer = Callable[[Any], Any]
Builder = Callable[["Wiring", Any], Step]


class Wiring:
    """One processor's graph being compiled for one task (see the module docstring)."""

    def __init__(self, processor: Processor, ctx: TaskContext,
                 builders: Mapping[type[Node], Builder]) -> None:
        self.processor = processor
        self.topology: Topology = processor.topology
        self.ctx = ctx
        self._builders = builders
        self._children: dict[str, list[Node]] = {n: [] for n in processor.nodes}
        for node in processor.nodes.values():
            for p in node.parents:
                self._children[p].append(node)
        self._done: dict[str, Step] = {}
        self._serializers: dict[str, tuple[Serializer, Serializer]] = {}

    def children(self, node: Node) -> list[Node]:
        """The nodes fed by ``node``, in declaration order."""
        return self._children[node.name]

    def step(self, node: Node) -> Step:
        """The step of ``node`` (built by its builder on first demand)."""
        done = self._done.get(node.name)
        if done is None:
            builder = self._builders.get(type(node))
            if builder is None:
                msg = f"cannot compile step {node.name!r} of kind {node.kind!r}"
                raise TypeError(msg)
            done = self._done[node.name] = builder(self, node)
        return done

    def downstream(self, node: Node) -> Step:
        """One step feeding every child of ``node`` (a no-op when it has none)."""
        return fanout([self.step(c) for c in self._children[node.name]])

    def store(self, name: str) -> Any:
        """The task's store called ``name``."""
        return self.ctx.store(name)

    def serializers_for(self, topic: str) -> tuple[Serializer, Serializer]:
        """The key and value serializers of ``topic`` (made once per task)."""
        pair = self._serializers.get(topic)
        if pair is None:
            t = self.topology.resolve_topic(topic)
            sc = self.ctx.serde_ctx
            pair = self._serializers[topic] = (t.key.serializer(topic, True, sc),
                                               t.value.serializer(topic, False, sc))
        return pair

    def deserializers_for(self, topic: str) -> tuple[Serializer, Serializer]:
        """The key and value deserializers of ``topic``."""
        t = self.topology.resolve_topic(topic)
        sc = self.ctx.serde_ctx
        return t.key.deserializer(topic, True, sc), t.value.deserializer(topic, False, sc)
