"""``streamflow check``: validate a topology's DAG before anything runs.

Each check returns :class:`Problem` items, one per thing to fix, each saying what is wrong
and how to fix it:

- ``undeclared-source``: a topic is read but no processor writes it and it is not
  declared ``external=True``;
- ``external-produced``: a topic declared ``external=True`` is written by a processor of
  the topology;
- ``name-collision``: two processors share a consumer group id; a dead-letter topic is
  also a data or internal topic; an internal topic (changelog, repartition) is shared by
  processors or clashes with a declared topic;
- ``cycle``: processors feed each other through topics and the topology was not declared
  with ``Topology(..., allow_cycles=True)``;
- ``schema``: an Avro topic's declared schema does not fit what the schema registry holds
  for its subject (the latest version for topics written outside the topology, the
  subject's compatibility level for topics written inside it, and for the subjects of
  stores and internal topics that keep a topic's Avro values); a subject missing while
  ``auto_register=False`` is a note (``streamflow schemas register`` must run first);
- ``co-partitioning``: the topics on the two sides of a join have different partition
  counts or key serdes (a foreign-key join: different partition counts).

>>> import streamflow as sf
>>> t = sf.Topology("shop")
>>> orders = t.topic("orders")
>>> out = t.topic("big")
>>> t.processor("big").stream(orders).to(out)
>>> [p.code for p in check_topology(t).problems]
['undeclared-source']
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamflow.dsl.global_table import global_topics
from streamflow.dsl.nodes import Node, Sink, Source
from streamflow.dsl.topology import Processor, Topic, Topology
from streamflow.ops.internal_names import declared_name
from streamflow.ops.join_sides import table_join_sides
from streamflow.runtime.contracts import (
    READER_FIX,
    WRITER_FIX,
    AvroSide,
    RegistryReader,
    avro_sides,
    evaluate,
)
from streamflow.serde.base import SerdeError

__all__ = ["CheckResult", "Problem", "RegistryReader", "check_topology"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a topology.

    ``code`` names the class, ``message`` what is wrong, ``fix`` what to change.
    """

    code: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}. Fix: {self.fix}"


@dataclass(frozen=True)
class CheckResult:
    """The problems found, notes about checks that could not run, and a summary line."""

    topology: str
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: str = ""

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems


def check_topology(
    topology: Topology,
    registry: RegistryReader | None = None,
    *,
    schemas_dir: str | Path = "schemas",
) -> CheckResult:
    """Run every check on ``topology``.

    ``registry`` enables the Avro schema check; without it that check is skipped with a
    note. ``schemas_dir`` is where ``Avro("name")`` schemas are looked up. Registry errors
    (unreachable, denied) propagate to the caller.
    """
    notes: list[str] = []
    problems = [
        *_check_sources(topology, notes),
        *_check_collisions(topology),
        *_check_cycles(topology),
        *_check_joins(topology, notes),
    ]
    if registry is None:
        if avro_sides(topology):
            notes.append(
                "schema compatibility not checked: no schema registry configured (set "
                "STREAMFLOW_SCHEMA_REGISTRY_URL or [schema_registry] url)"
            )
    else:
        problems += _check_schemas(topology, registry, notes, Path(schemas_dir))
    n_topics = len(topology.topics)
    n_edges = sum(len(set(p.source_topics())) + len(set(p.sink_topics()))
                  for p in topology.processors.values())
    summary = (
        f"topology {topology.name!r}: {len(topology.processors)} processor(s), {n_topics} "
        f"topic(s), {n_edges} edge(s)"
    )
    return CheckResult(topology.name, problems, notes, summary)


# -- who reads and writes what ------------------------------------------------------------


def _readers(topology: Topology) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in topology.processors.values():
        for t in dict.fromkeys([*p.source_topics(), *global_topics(p)]):
            out.setdefault(t, []).append(p.name)
    return out


def _writers(topology: Topology) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in topology.processors.values():
        for t in dict.fromkeys(p.sink_topics()):
            out.setdefault(t, []).append(p.name)
    return out


def _dynamic_routers(topology: Topology) -> list[str]:
    return [p.name for p in topology.processors.values()
            if any(isinstance(n, Sink) and n.topic is None for n in p.nodes.values())]


def _names(items: Iterable[str]) -> str:
    return ", ".join(repr(i) for i in items)


# -- sources: undeclared and wrongly external -------------------------------------------------


def _check_sources(topology: Topology, notes: list[str]) -> list[Problem]:
    readers, writers = _readers(topology), _writers(topology)
    routers = _dynamic_routers(topology)
    out: list[Problem] = []
    for name, procs in readers.items():
        topic = topology.topics.get(name)
        if topic is None or topic.external or topic.internal or name in writers:
            continue
        if routers:
            notes.append(
                f"topic {name!r} is read by {_names(procs)} and written by no to(topic); "
                f"processor(s) {_names(routers)} route records with to(function), which check "
                "cannot follow: declare it external=True if it comes from outside the topology"
            )
            continue
        out.append(Problem(
            "undeclared-source",
            f"topic {name!r} is read by processor(s) {_names(procs)} but no processor of "
            f"topology {topology.name!r} writes it",
            f"if it is produced outside this topology declare it with "
            f"topology.topic({name!r}, ..., external=True); otherwise add the processor that "
            "writes it (or fix the topic name)",
        ))
    for name, procs in writers.items():
        topic = topology.topics.get(name)
        if topic is not None and topic.external:
            out.append(Problem(
                "external-produced",
                f"topic {name!r} is declared external=True (produced outside the topology) but "
                f"processor(s) {_names(procs)} write it",
                f"remove external=True from topology.topic({name!r}, ...) so streamflow "
                "creates and owns it, or stop writing it from this topology",
            ))
    return out


# -- name collisions ------------------------------------------------------------------------


def _claimed_internal(topology: Topology, p: Processor) -> list[str]:
    """Internal topics a processor owns.

    Its stores' changelogs and the internal topics its steps read or write (repartition topics).
    """
    names = p.changelog_topics()  # a table restored from its source topic has none
    for t in [*p.source_topics(), *p.sink_topics()]:
        decl = topology.topics.get(t)
        if decl is not None and decl.internal:
            names.append(t)
    return [n for n in dict.fromkeys(names) if n]


def _check_collisions(topology: Topology) -> list[Problem]:
    out: list[Problem] = []
    procs = list(topology.processors.values())

    groups: dict[str, list[str]] = {}
    for p in procs:
        groups.setdefault(p.group_id, []).append(p.name)
    for gid, names in groups.items():
        if len(names) > 1:
            out.append(Problem(
                "name-collision",
                f"processors {_names(names)} share the consumer group id {gid!r}, so Kafka "
                "would split one set of partitions between different programs",
                "give each processor its own group_id= (or drop group_id= to get the default "
                f"'{declared_name(topology)}.<processor>')",
            ))

    data_users: dict[str, list[str]] = {}
    for p in procs:
        for t in dict.fromkeys([*p.source_topics(), *p.sink_topics()]):
            data_users.setdefault(t, []).append(p.name)

    claims: dict[str, list[str]] = {}
    for p in procs:
        for t in _claimed_internal(topology, p):
            claims.setdefault(t, []).append(p.name)
    for t, owners in claims.items():
        if len(owners) > 1:
            out.append(Problem(
                "name-collision",
                f"internal topic {t!r} (a changelog or repartition topic) is used by "
                f"processors {_names(owners)}; each processor needs its own",
                "rename a processor, store or step (name=...): internal topic names are "
                "'<topology>-<processor>-<step>-...', so names containing '-' can collide",
            ))
        declared = topology.topics.get(t)
        if declared is not None and not declared.internal:
            out.append(Problem(
                "name-collision",
                f"declared topic {t!r} has the name of an internal topic of processor "
                f"{owners[0]!r}",
                "rename the declared topic, or the store or step (name=...)",
            ))

    for p in procs:
        if not p.dead_letters:
            continue
        dlq = p.dead_letter_topic
        users = data_users.get(dlq, [])
        declared = topology.topics.get(dlq)
        if users or (declared is not None and declared.internal):
            what = (f"which processor(s) {_names(users)} also read or write as data" if users
                    else "which is an internal topic")
            out.append(Problem(
                "name-collision",
                f"processor {p.name!r} sends failed records to dead-letter topic {dlq!r}, {what}",
                f"pass a distinct dead_letter_topic= to processor {p.name!r} (the default is "
                f"'{declared_name(topology)}.{p.name}.dlq')",
            ))
    return out


# -- cycles ---------------------------------------------------------------------------------


def _processor_graph(topology: Topology) -> dict[str, dict[str, list[str]]]:
    """``graph[p][q]`` = topics through which processor p feeds processor q.

    Internal topics, which a processor writes and reads itself, are not edges.
    """
    readers = _readers(topology)
    graph: dict[str, dict[str, list[str]]] = {p: {} for p in topology.processors}
    for p in topology.processors.values():
        for t in dict.fromkeys(p.sink_topics()):
            decl = topology.topics.get(t)
            if decl is not None and decl.internal:
                continue
            for q in readers.get(t, []):
                graph[p.name].setdefault(q, []).append(t)
    return graph


def _strongly_connected(graph: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components in discovery order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            advanced = False
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(graph[w])))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
            if low[v] == index[v]:
                comp: list[str] = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp[::-1])
    return out


def _cycle_path(graph: Mapping[str, Mapping[str, list[str]]], comp: list[str]) -> str:
    """One cycle through the component, as ``a -[topic]-> b -[topic]-> a``."""
    members = set(comp)
    start = comp[0]
    path = [start]
    seen = {start}
    node = start
    while True:
        nexts = [q for q in graph[node] if q in members]
        closing = [q for q in nexts if q == start]
        nxt = closing[0] if closing else next((q for q in nexts if q not in seen), nexts[0])
        path.append(nxt)
        if nxt == start or nxt in seen:
            break
        seen.add(nxt)
        node = nxt
    if path[-1] != start:  # closed on an inner node: show the loop from there
        path = path[path.index(path[-1]):]
    bits = [path[0]]
    for a, b in itertools.pairwise(path):
        bits.append(f"-[{', '.join(graph[a][b])}]-> {b}")
    return " ".join(bits)


def _check_cycles(topology: Topology) -> list[Problem]:
    if getattr(topology, "allow_cycles", False):
        return []
    graph = _processor_graph(topology)
    out: list[Problem] = []
    for comp in _strongly_connected(graph):
        if len(comp) == 1 and comp[0] not in graph[comp[0]]:
            continue
        out.append(Problem(
            "cycle",
            f"processors feed each other in a cycle: {_cycle_path(graph, comp)}",
            "break the cycle (write to a different topic), or if the feedback loop is "
            f"intended declare it: Topology({declared_name(topology)!r}, allow_cycles=True)",
        ))
    return out


# -- joins ----------------------------------------------------------------------------------


def _upstream_topics(p: Processor, start: str) -> list[str]:
    """Topics read by the Source steps that feed step ``start``."""
    out: list[str] = []
    todo, seen = [start], set()
    while todo:
        name = todo.pop()
        if name in seen or name not in p.nodes:
            continue
        seen.add(name)
        node = p.nodes[name]
        if isinstance(node, Source):
            out += node.topics
        todo += node.parents
    return list(dict.fromkeys(out))


def _as_topics(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, Topic)):
        return [str(value)]
    return [str(v) for v in value]


def _join_sides(p: Processor, node: Node) -> tuple[list[str], list[str]]:
    left = _as_topics(getattr(node, "left_topics", None))
    right = _as_topics(getattr(node, "right_topic", None) or getattr(node, "table_topic", None))
    if not left and node.parents:
        left = _upstream_topics(p, node.parents[0])
    if not right and len(node.parents) > 1:
        right = [t for parent in node.parents[1:] for t in _upstream_topics(p, parent)]
    return left, right


def _check_joins(topology: Topology, notes: list[str]) -> list[Problem]:
    out: list[Problem] = []
    for p in topology.processors.values():
        for node in p.nodes.values():
            sides = table_join_sides(p, node)  # table-table and foreign-key joins
            if sides is None:
                if getattr(node, "kind", None) != "join":
                    continue
                sides = (node.name, *_join_sides(p, node), True)
            name, left, right, same_keys = sides
            names = list(dict.fromkeys([*left, *right]))
            topics = [topology.topics[n] for n in names if n in topology.topics]
            where = f"join {name!r} of processor {p.name!r}"
            # internal (repartition) topics get their partition count from the runtime
            declared = [t for t in topics if not t.internal]
            unknown = [t.name for t in declared if t.partitions is None]
            if unknown:
                notes.append(
                    f"{where}: co-partitioning not checked for {_names(unknown)} (no declared "
                    "partitions); declare partitions=N on these topics"
                )
            known = [t for t in declared if t.partitions is not None]
            if len({t.partitions for t in known}) > 1:
                counts = " but ".join(f"{t.name!r} has {t.partitions}" for t in known)
                out.append(Problem(
                    "co-partitioning",
                    f"{where}: topic {counts} partitions; joins need co-partitioned topics",
                    "give the topics the same number of partitions, or repartition one side "
                    "with .group_by(...) before the join",
                ))
            key_serdes = {t.key.describe() for t in topics}
            if same_keys and len(key_serdes) > 1:
                shown = ", ".join(f"{t.name!r} key={t.key.describe()}" for t in topics)
                out.append(Problem(
                    "co-partitioning",
                    f"{where}: the joined topics serialize keys differently ({shown}), so equal "
                    "keys land in different partitions",
                    "use the same key serde on both sides, or re-key one side with "
                    ".group_by(...)",
                ))
    return out


# -- Avro schemas against the registry -------------------------------------------------------


def _unregistered(side: AvroSide, subject: str) -> str:
    """The note on a subject with no version: the first write registers it, or the command."""
    if side.external or not side.writers or getattr(side.serde, "auto_register", True):
        return (f"subject {subject!r} has no registered version yet (it is registered when "
                "first written)")
    return (f"subject {subject!r} ({side.where}) has no registered version yet, and "
            "auto_register is off: workers refuse to start until `streamflow schemas register "
            "MODULE` registers it")


def _check_schemas(topology: Topology, registry: RegistryReader, notes: list[str],
                   schemas_dir: Path) -> list[Problem]:
    from streamflow.serde import SerdeContext, compat

    ctx = SerdeContext(schemas_dir=schemas_dir)
    out: list[Problem] = []
    for side in avro_sides(topology):
        topic, what = side.topic, side.side
        # topics written here: would the registry accept the declared schema (its level)?
        # topics read here or from outside: can the declared schema read the latest version?
        written = bool(side.writers) and not side.external
        try:
            verdict = evaluate(side, registry, ctx, registration=written,
                               reading=not written or bool(side.readers))
        except compat.InvalidSchema as e:
            out.append(Problem(
                "schema", f"topic {topic!r} ({what}): invalid Avro schema: {e}",
                "fix the schema so it is valid Avro",
            ))
            continue
        except SerdeError as e:
            out.append(Problem(
                "schema",
                f"topic {topic!r}: cannot load its {what} schema: {e}",
                "fix the schema file or the Avro(...) declaration",
            ))
            continue
        subject, label = verdict.subject, verdict.latest_label
        if verdict.new:
            notes.append(_unregistered(side, subject))
            continue
        head = (f"{side.where} (subject {subject!r})" if side.store else
                f"topic {topic!r} ({what}, subject {subject!r})")
        out += [Problem(
            "schema",
            f"{head}: processor(s) {_names(side.writers)} would write a schema the registry "
            f"rejects under {verdict.level} against {label}: {i}",
            WRITER_FIX,
        ) for i in verdict.registration]
        who = _names(side.readers) or "the topology"
        out += [Problem(
            "schema",
            f"{head}: {who} read with the declared "
            f"schema, which cannot read data written with the registered {label}: {i}",
            READER_FIX,
        ) for i in verdict.extra_reading]
    return out
