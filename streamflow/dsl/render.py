"""Render a topology as readable text (and, for tooling, Mermaid or DOT)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamflow.dsl.global_table import global_topics
from streamflow.dsl.nodes import Node, Sink
from streamflow.dsl.policies import phases_label, policy_label

if TYPE_CHECKING:
    from streamflow.dsl.topology import Processor, Topic, Topology


def _topic_line(t: Topic) -> str:
    bits = [f"key={t.key.describe()}", f"value={t.value.describe()}"]
    if t.partitions:
        bits.append(f"partitions={t.partitions}")
    if t.replication:
        bits.append(f"replication={t.replication}")
    if t.config:
        bits.append(", ".join(f"{k}={v}" for k, v in t.config))
    kind = " (external)" if t.external else " (internal)" if t.internal else ""
    return f"  {t.name}{kind}: {', '.join(bits)}"


def _overrides(node: Node) -> str:
    """`` [on_error=...]`` for a step overriding the processor's policy, or ``""``."""
    out = "" if node.on_error is None else f" [on_error={policy_label(node.on_error)}]"
    if isinstance(node, Sink) and node.on_produce_error is not None:
        out += f" [on_produce_error={policy_label(node.on_produce_error)}]"
    return out


def _steps(p: Processor) -> list[str]:
    children: dict[str, list[Node]] = {n: [] for n in p.nodes}
    for node in p.nodes.values():
        for parent in node.parents:
            children[parent].append(node)
    lines: list[str] = []
    seen: set[str] = set()

    def walk(node: Node, depth: int) -> None:
        pad = "    " + "  " * depth
        if node.name in seen:
            lines.append(f"{pad}-> {node.name} (see above)")
            return
        seen.add(node.name)
        lines.append(f"{pad}{node.name}: {node.label()}{_overrides(node)}")
        for c in children[node.name]:
            walk(c, depth + 1)

    for node in p.nodes.values():
        if not node.parents:
            walk(node, 0)
    return lines


def describe_text(topology: Topology) -> str:
    """Topics, then each processor with its settings and step tree."""
    out = [f"Topology {topology.name}", "Topics:"]
    out += [_topic_line(t) for t in topology.topics.values()]
    for p in topology.processors.values():
        out.append(f"Processor {p.name} (group {p.group_id}, {p.guarantee}, "
                   f"{phases_label(p.policies)})")
        reads = [*p.source_topics(), *(f"{g} (global)" for g in global_topics(p))]
        out.append(f"  reads: {', '.join(reads) or '-'}")
        out.append(f"  writes: {', '.join(p.sink_topics()) or '-'}")
        out += _steps(p)
    return "\n".join(out) + "\n"


def dag_edges(topology: Topology) -> list[tuple[str, str, str]]:
    """(from, to, kind) edges between topics and processors.

    ``kind`` is ``reads`` (topic to processor), ``global`` (topic to processor: a global
    table's topic, read whole by every worker of the processor, drawn dashed) or ``writes``
    (processor to topic).
    """
    edges = []
    for p in topology.processors.values():
        for t in dict.fromkeys(p.source_topics()):
            edges.append((t, p.name, "reads"))
        for t in global_topics(p):
            edges.append((t, p.name, "global"))
        for t in dict.fromkeys(p.sink_topics()):
            edges.append((p.name, t, "writes"))
    return edges


def _ident(kind: str, name: str) -> str:
    # injective, so 'a.b' and 'a-b' stay two nodes: other characters become _<hex code>
    safe = (c if c.isascii() and c.isalnum() else f"_{ord(c):02x}" for c in name)
    return f"{kind}_" + "".join(safe)


def _edge_idents(a: str, b: str, kind: str) -> tuple[str, str]:
    """The node identifiers of a :func:`dag_edges` edge: a topic and a processor."""
    if kind == "writes":
        return _ident("p", a), _ident("t", b)
    return _ident("t", a), _ident("p", b)


def drawn_topics(topology: Topology) -> list[Topic]:
    """Topics that are edges of the DAG (changelogs are drawn as their processor's stores)."""
    linked = {b if kind == "writes" else a for a, b, kind in dag_edges(topology)}
    return [t for t in topology.topics.values() if t.name in linked or not t.internal]


def _processor_lines(p: Processor) -> list[str]:
    lines = [p.name, p.guarantee]
    if p.stores:
        lines.append("stores: " + ", ".join(p.stores))
    return lines


def describe_mermaid(topology: Topology) -> str:
    """A Mermaid flowchart: topics as stadiums, processors as boxes (with their stores)."""
    out = ["flowchart LR"]
    for t in drawn_topics(topology):
        out.append(f'  {_ident("t", t.name)}(["{t.name}"])')
    for p in topology.processors.values():
        out.append(f'  {_ident("p", p.name)}["{"<br/>".join(_processor_lines(p))}"]')
    for a, b, kind in dag_edges(topology):
        src, dst = _edge_idents(a, b, kind)
        out.append(f"  {src} -.->|global| {dst}" if kind == "global" else f"  {src} --> {dst}")
    return "\n".join(out) + "\n"


def describe_dot(topology: Topology) -> str:
    """A Graphviz DOT digraph: topics as ellipses, processors as boxes."""
    out = [f'digraph "{topology.name}" {{', "  rankdir=LR;"]
    for t in drawn_topics(topology):
        style = ", style=dashed" if t.internal else ""
        out.append(f'  "{_ident("t", t.name)}" [label="{t.name}", shape=ellipse{style}];')
    for p in topology.processors.values():
        label = "\\n".join(_processor_lines(p))
        out.append(
            f'  "{_ident("p", p.name)}" [label="{label}", shape=box, '
            'style="rounded,filled", fillcolor="#dbe9ff"];'
        )
    for a, b, kind in dag_edges(topology):
        src, dst = _edge_idents(a, b, kind)
        style = ' [style=dashed, label="global"]' if kind == "global" else ""
        out.append(f'  "{src}" -> "{dst}"{style};')
    out.append("}")
    return "\n".join(out) + "\n"


RENDERERS = {"text": describe_text, "mermaid": describe_mermaid, "dot": describe_dot}
