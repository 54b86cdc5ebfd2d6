"""Topic tables whose store reuses the source topic as its changelog.

``topology.table(topic, changelog="source")`` is Kafka Streams'
``topology.optimization=reuse.ktable.source.topics``: the table's store gets no changelog topic
of its own (no second copy of the topic on the broker, no write per update); a restore reads
the source topic itself, from the beginning (or the local checkpoint) up to the processor
group's committed offset of that partition, and turns each record into the row the table's
update step would have written (``streamflow.runtime.source_restore``). Records after the
committed offset are processed as usual once the task runs.

That is only right when the topic keeps every key's latest row for good, and when nothing but
the topic's producers change it, so it is refused (:class:`TopologyError`) for a topic not
declared compacted (``config={"cleanup.policy": "compact"}``, which start-up checks against
the cluster) and for a topic the same processor writes (a ``to(topic)`` by name; a
``to(function)`` cannot be followed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamflow.dsl.nodes import ForeignKeyJoin, Node, Sink, TableSource
from streamflow.dsl.topology import TopologyError

if TYPE_CHECKING:
    from streamflow.dsl.topology import Processor, Topic

__all__ = ["check_reusable", "refuse_write"]

CHANGELOGS = ("own", "source")


def check_reusable(processor: Processor, topic: Topic, changelog: str) -> bool:
    """Whether a table of ``topic`` reuses it as changelog (``changelog="source"``), checked."""
    if changelog not in CHANGELOGS:
        msg = f"table({topic.name!r}): changelog must be 'own' or 'source', got {changelog!r}"
        raise TopologyError(msg)
    if changelog == "own":
        return False
    policy = topic.config_dict.get("cleanup.policy", "")
    if "compact" not in policy.split(","):
        msg = (f"table({topic.name!r}, changelog='source'): the store would be restored from "
               f"topic {topic.name!r}, which is not declared compacted (cleanup.policy "
               f"{policy or 'not set'}), so rows it deletes by retention would be lost; declare "
               f"it with topology.topic({topic.name!r}, ..., config={{'cleanup.policy': "
               "'compact'}) or drop changelog='source'")
        raise TopologyError(msg)
    if topic.name in processor.sink_topics():
        raise TopologyError(_written(processor, topic.name))
    return True


def refuse_write(processor: Processor, node: Node) -> None:
    """Refuse a step of ``processor`` that writes a topic one of its tables is restored from."""
    if isinstance(node, Sink):
        written = node.topic
    elif isinstance(node, ForeignKeyJoin):
        written = node.written_topic
    else:
        return
    if written and any(isinstance(n, TableSource) and n.reuse_source and n.topic == written
                       for n in processor.nodes.values()):
        raise TopologyError(_written(processor, written))


def _written(processor: Processor, topic: str) -> str:
    return (f"processor {processor.name!r} writes topic {topic!r} and reads it as a table with "
            "changelog='source': its restore could not tell the table's updates from its own "
            "writes; drop changelog='source' (the table keeps its own changelog) or write "
            "another topic")
