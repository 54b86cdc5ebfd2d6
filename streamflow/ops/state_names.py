"""Stable state names: stateful steps named by position, and state a deploy would orphan.

Stores, changelog topics (``<topology>-<processor>-<store>-changelog``), repartition
topics (``<topology>-<processor>-<step>-repartition``) and a foreign-key join's
subscription and response topics (``<topology>-<processor>-<step>-subscription-registration``
and ``-subscription-response``) are named after their steps. A step given no ``name=`` is
named ``<kind>-<n>`` in declaration order, so inserting a step before it in a new version
renames its state, and the deployed state is silently left behind.

:func:`unnamed_state` lists such steps (``streamflow check`` warns, ``--strict`` fails,
``streamflow run`` logs them once): aggregations and windowed aggregations, repartitions
(``group_by``), stream-stream joins (their window stores), foreign-key joins, and table views
kept in a store for a table-table join (named after the view's step). A table read with
``topology.table(topic)`` is named after its topic, and a global table after its topic or
its ``name=``, which do not move, so they are not listed.

:func:`state_diff` compares this version's internal topics with those in the cluster
(``streamflow check --against-cluster``).

>>> import streamflow as sf
>>> t = sf.Topology("shop")
>>> orders = t.topic("orders", external=True)
>>> _ = t.processor("totals").stream(orders).group_by_key().count()
>>> [(s.step, s.topic) for s in unnamed_state(t)]
[('count-1', 'shop-totals-count-1-changelog')]
>>> d = state_diff(t, ["orders", "shop-totals-count-changelog"])
>>> d.orphaned, d.to_create
(['shop-totals-count-changelog'], ['shop-totals-count-1-changelog'])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from streamflow.dsl.nodes import (
    Aggregate,
    ForeignKeyJoin,
    Merge,
    Source,
    StreamJoin,
    TableMaterialize,
    TableOp,
    WindowAggregate,
)
from streamflow.dsl.topology import Processor, Topology
from streamflow.ops.internal_names import InternalName, internal_name

__all__ = ["StateDiff", "UnnamedState", "orphan_fix", "state_diff", "unnamed_state"]

# the stores a join names after its step (dsl/joins.py and dsl/foreign_key.py)
_JOIN_STORES = ("-left", "-right", "-unmatched", "-subscriptions")
_JOIN_OPS = {"inner": "join", "left": "left_join", "outer": "outer_join"}


@dataclass(frozen=True)
class UnnamedState:
    """A stateful step of ``processor`` whose ``step`` name was derived by position.

    So was its ``topic``; ``fix`` is the call that names it as it is named today.
    """

    processor: str
    step: str
    what: str  # "store and changelog topic", "repartition topic", ...
    topic: str
    fix: str

    def message(self) -> str:
        """Which step, and what its derived name names."""
        return (f"processor {self.processor!r}: step {self.step!r} has no explicit name, so "
                f"its {self.what} {self.topic!r} is named by position and moves when a step "
                "is inserted before it (orphaning the deployed state)")

    def advice(self) -> str:
        """What to write."""
        return f"name the step explicitly; {self.fix} keeps today's state"

    def warning(self) -> str:
        """One line: :meth:`message` and :meth:`advice`."""
        return f"{self.message()}. Fix: {self.advice()}"


def _fix(node: Aggregate | WindowAggregate | Source, step: str) -> str:
    if isinstance(node, Aggregate):
        return f'.{node.op}(..., name="{step}")' if node.op != "count" else \
            f'.count(name="{step}")'
    if isinstance(node, WindowAggregate):
        return f'.window(...).{node.op}({"" if node.op == "count" else "..., "}name="{step}")'
    if step.startswith("group-by-key-"):
        return f'.group_by_key(name="{step}")'
    return f'.group_by(..., name="{step}")'


def _view_fix(p: Processor, step: str) -> str:
    """The call that names the table view ``step`` (a table op or a table-table join)."""
    node = p.nodes.get(step)
    if isinstance(node, TableOp):
        return f'.{node.op}(..., name="{step}")'
    if isinstance(node, Merge) and f"{step}.left" in p.nodes:
        how = getattr(p.nodes[f"{step}.left"], "how", "join")
        return f'.{how}(..., name="{step}")'
    return f'name="{step}" on the step that makes it'


def _unnamed(p: Processor) -> Iterable[UnnamedState]:
    for node in p.nodes.values():
        if node.named:
            continue
        if isinstance(node, StreamJoin):
            changelog = p.stores[node.stores[0]].changelog
            fix = f'.{_JOIN_OPS[node.how]}(..., window=..., name="{node.name}")'
            yield UnnamedState(p.name, node.name, "left window store and changelog topic (its "
                               "other stores alike)", changelog, fix)
        elif isinstance(node, TableMaterialize):
            view = node.name.removesuffix(".materialized")
            yield UnnamedState(p.name, view, "store and changelog topic (a table view kept "
                               "for a join)", p.stores[node.store].changelog,
                               _view_fix(p, view))
        elif isinstance(node, Aggregate | WindowAggregate):
            changelog = p.stores[node.store].changelog
            yield UnnamedState(p.name, node.name, "store and changelog topic", changelog,
                               _fix(node, node.name))
        elif isinstance(node, ForeignKeyJoin) and node.role == "resolve":
            changelog = p.stores[node.stores[0]].changelog
            yield UnnamedState(p.name, node.name, "stores and internal topics", changelog,
                               f'foreign_key_join(..., name="{node.name}")')
        elif isinstance(node, Source) and node.name.endswith(".from-repartition"):
            step = node.name.removesuffix(".from-repartition")
            yield UnnamedState(p.name, step, "repartition topic", node.topics[0],
                               _fix(node, step))


def unnamed_state(topology: Topology) -> list[UnnamedState]:
    """Every stateful step of ``topology`` whose state is named by position."""
    return [s for p in topology.processors.values() for s in _unnamed(p)]


@dataclass(frozen=True)
class StateDiff:
    """This version's internal topics against the cluster's.

    ``orphaned`` exist in the cluster (they look like this topology's changelog, repartition or
    foreign-key subscription topics) but this version does not use them; ``to_create`` it uses
    but the cluster lacks; ``kept`` both.
    """

    orphaned: list[str]
    to_create: list[str]
    kept: list[str]


def state_diff(topology: Topology, cluster_topics: Iterable[str]) -> StateDiff:
    """Compare the internal topics of ``topology`` with the topic names in the cluster.

    A topic is this topology's when :func:`~streamflow.ops.internal_names.internal_name`
    says so (its name suffix included); one it declares (internal or not) is never orphaned.
    Topics of another topology whose name starts with this one's and a dash (``shop`` and
    ``shop-eu``) look like this topology's: give topologies names that are not prefixes of
    each other.
    """
    used = [t.name for t in topology.topics.values() if t.internal]
    existing = set(cluster_topics)
    orphaned = sorted(t for t in existing
                      if internal_name(topology, t) and t not in topology.topics)
    return StateDiff(orphaned, [t for t in used if t not in existing],
                     [t for t in used if t in existing])


def orphan_fix(topology: Topology, topic: str) -> str:
    """What to do about an orphaned ``topic``.

    The name to give the step back, if the topic names a processor of this version, else how to
    drop the state.
    """
    drop = f"if that state is no longer needed, delete the topic {topic!r}"
    name = internal_name(topology, topic)
    for p in sorted(topology.processors.values(), key=lambda p: -len(p.name)):
        if name is not None and name.owner.startswith(f"{p.name}-"):
            return (f"if a step of processor {p.name!r} was renamed (or a step inserted "
                    f"before an unnamed one), give it its old name, "
                    f"{_old_name(name, len(p.name) + 1)}, to keep this state; {drop}")
    return f"no processor of this version owns it (removed or renamed processor); {drop}"


def _old_name(name: InternalName, at: int) -> str:
    """``name=...`` of the step whose internal topic is ``name``; its step starts at ``at``."""
    step = name.owner[at:]
    if name.kind == "changelog":
        join = next((step.removesuffix(s) for s in _JOIN_STORES if step.endswith(s)), None)
        if join:  # a join's store, or a step named so
            return f"name={join!r} (a join, whose store was {step!r}) or name={step!r}"
    return f"name={step!r}"
