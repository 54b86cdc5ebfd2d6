"""Frozen node descriptions: the graph a processor's streams are built from.

Nodes only describe. ``streamflow.plan`` compiles them into closures; nothing here holds a
consumer, producer or store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Node:
    """A step in a processor's graph. ``parents`` name the steps feeding it."""

    name: str
    parents: tuple[str, ...]

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
        return f"source({', '.join(self.topics)})"


@dataclass(frozen=True)
class Apply(Node):
    """A one-function stateless step: map, map_record, filter, filter_record, flat_map,
    key_by or peek. ``op`` says which; ``fn`` is the user function."""

    op: str = "map"
    fn: Callable[..., Any] | None = None
    kind: ClassVar[str] = "apply"

    def label(self) -> str:
        return f"{self.op}({_fn_name(self.fn)})"


@dataclass(frozen=True)
class Split(Node):
    """Routes each record to the first branch whose predicate matches (else the default)."""

    branches: tuple[str, ...] = ()
    predicates: tuple[Callable[[Any], bool], ...] = ()
    default: str | None = None
    kind: ClassVar[str] = "split"

    def label(self) -> str:
        names = list(self.branches) + ([f"{self.default} (default)"] if self.default else [])
        return f"split({', '.join(names)})"


@dataclass(frozen=True)
class Branch(Node):
    """One named output of a ``Split``."""

    index: int = 0
    kind: ClassVar[str] = "branch"

    def label(self) -> str:
        return f"branch #{self.index}"


@dataclass(frozen=True)
class Merge(Node):
    """The union of several streams of the same processor."""

    kind: ClassVar[str] = "merge"


@dataclass(frozen=True)
class Sink(Node):
    """Produce to a declared topic, or to the topic a function picks per record."""

    topic: str | None = None
    router: Callable[[Any], Any] | None = None
    kind: ClassVar[str] = "sink"

    def label(self) -> str:
        return f"to({self.topic})" if self.topic else f"to({_fn_name(self.router)})"


def _fn_name(fn: Callable[..., Any] | None) -> str:
    if fn is None:
        return "?"
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
