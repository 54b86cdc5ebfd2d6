"""The topology's DAG as the JSON the dashboard page draws: the graph ``describe`` draws.

Nodes are the topics and processors that ``describe --format mermaid|dot`` shows (changelogs
appear as their processor's stores), edges the same ``reads`` / ``global`` / ``writes`` links
(``global``: a global table's topic, read whole by the processor; the page draws it dashed).

>>> import streamflow as sf
>>> t = sf.Topology("shop")
>>> orders, paid = t.topic("orders"), t.topic("paid")
>>> t.processor("pay").stream(orders).to(paid)
>>> g = topology_graph(t)
>>> [n["id"] for n in g["nodes"]]
['topic:orders', 'topic:paid', 'processor:pay']
>>> [(e["source"], e["target"]) for e in g["edges"]]
[('topic:orders', 'processor:pay'), ('processor:pay', 'topic:paid')]
"""

from __future__ import annotations

from typing import Any

from streamflow.dsl.global_table import global_topics
from streamflow.dsl.render import dag_edges, drawn_topics
from streamflow.dsl.topology import Topology

__all__ = ["node_id", "topology_graph"]


def node_id(kind: str, name: str) -> str:
    """The page's id of a topic (``kind="topic"``) or processor node."""
    return f"{kind}:{name}"


def topology_graph(topology: Topology) -> dict[str, Any]:
    """Nodes (topics, then processors) and edges of the topology, JSON-ready."""
    nodes: list[dict[str, Any]] = []
    for t in drawn_topics(topology):
        nodes.append({
            "id": node_id("topic", t.name), "kind": "topic", "name": t.name,
            "internal": t.internal, "external": t.external,
            "key": t.key.describe(), "value": t.value.describe(),
        })
    for p in topology.processors.values():
        nodes.append({
            "id": node_id("processor", p.name), "kind": "processor", "name": p.name,
            "group": p.group_id, "guarantee": p.guarantee, "on_error": p.on_error,
            "dead_letter_topic": p.dead_letter_topic, "stores": list(p.stores),
            "reads": list(dict.fromkeys(p.source_topics())),
            "globals": global_topics(p),
            "writes": list(dict.fromkeys(p.sink_topics())),
        })
    edges: list[dict[str, Any]] = []
    for a, b, kind in dag_edges(topology):
        topic, processor = (b, a) if kind == "writes" else (a, b)
        src = node_id("processor" if kind == "writes" else "topic", a)
        dst = node_id("topic" if kind == "writes" else "processor", b)
        edges.append({"id": f"{src}->{dst}", "source": src, "target": dst, "kind": kind,
                      "topic": topic, "processor": processor})
    return {"topology": topology.name, "nodes": nodes, "edges": edges}
