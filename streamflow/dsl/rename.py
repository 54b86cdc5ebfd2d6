"""A copy of a topology whose every Kafka name carries a suffix: per-test (or per-branch) names.

``with_name_suffix(topology, "-t1")`` renames every topic (declared, internal, dead-letter),
every consumer group (and with it the transactional ids, which derive from it) and the
topology itself (state folders, client ids), so that runs with different suffixes share
nothing on a cluster: Kafka Streams users get the same from a unique ``application.id`` per
test. Node fields that name topics follow one convention: ``topic``, ``topics`` or a name
ending in ``_topic`` / ``_topics``; a sink's router is wrapped so the topic it picks is renamed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

from streamflow.dsl.nodes import Node, Sink

if TYPE_CHECKING:
    from streamflow.dsl.topology import Processor, Topic, Topology

__all__ = ["with_name_suffix"]


def _is_topic_field(name: str) -> bool:
    return name in ("topic", "topics") or name.endswith(("_topic", "_topics"))


def with_name_suffix(topology: Topology, suffix: str) -> Topology:
    """A copy of ``topology`` with ``suffix`` appended to every topic, group and its own name.

    The copy is for running and testing, not for adding steps to. An empty suffix returns
    ``topology`` itself.

    >>> import streamflow as sf
    >>> t = sf.Topology("shop")
    >>> orders = t.topic("orders", external=True)
    >>> _ = t.processor("count").stream(orders).group_by_key(name="k").count(name="n")
    >>> c = with_name_suffix(t, "-t1")
    >>> sorted(c.topics), c.processors["count"].group_id
    (['orders-t1', 'shop-count-n-changelog-t1'], 'shop.count-t1')
    """
    from streamflow.dsl.topology import TopologyError, _check_name

    if not suffix:
        return topology
    rename = {name: _check_name("topic", name + suffix) for name in topology.topics}
    for p in topology.processors.values():
        rename.setdefault(p.dead_letter_topic, _check_name("topic", p.dead_letter_topic + suffix))

    def topic(name: str) -> str:
        try:
            return rename[name]
        except KeyError:
            msg = (f"topic {name!r} is not declared in topology {topology.name!r}, so it "
                   f"cannot be renamed with suffix {suffix!r}")
            raise TopologyError(msg) from None

    out = copy.copy(topology)
    out.name = _check_name("topology", topology.name + suffix)
    out.name_suffix = topology.name_suffix + suffix
    out.topics = {rename[n]: replace(t, name=rename[n]) for n, t in topology.topics.items()}
    out.processors = {n: _processor(p, out, topic, suffix)
                      for n, p in topology.processors.items()}
    return out


def _processor(p: Processor, topology: Topology, topic: Callable[[str], str],
               suffix: str) -> Processor:
    q = copy.copy(p)
    q.topology = topology
    q.dead_letter_topic = topic(p.dead_letter_topic)
    q.group_id = p.group_id + suffix
    q.nodes = {n: _node(node, topic, topology) for n, node in p.nodes.items()}
    q.stores = {n: replace(s, changelog=topic(s.changelog)) for n, s in p.stores.items()}
    q.policies = dict(p.policies)
    q._counters, q._derived = dict(p._counters), set(p._derived)
    return q


def _node(node: Node, topic: Callable[[str], str], topology: Topology) -> Node:
    changes: dict[str, Any] = {}
    for f in fields(node):
        value = getattr(node, f.name)
        if not _is_topic_field(f.name) or not value:
            continue
        changes[f.name] = topic(value) if isinstance(value, str) else tuple(map(topic, value))
    if isinstance(node, Sink) and node.router is not None:
        changes["router"] = _renamed_router(node.router, topic, topology)
    return replace(node, **changes) if changes else node


def _renamed_router(router: Callable[[Any], Any], topic: Callable[[str], str],
                    topology: Topology) -> Callable[[Any], Any]:
    def route(record: Any) -> Topic:
        target = router(record)
        return topology.topics[topic(target if isinstance(target, str) else target.name)]

    route.__qualname__ = getattr(router, "__qualname__", route.__qualname__)
    return route
