"""Windowed stream-stream joins: ``stream.join(other, joiner, window=sf.JoinWindows(...))``.

What ``Stream.join``, ``left_join`` and ``outer_join`` call when the other side is a stream.
The graph gets three steps: ``<name>.left`` and ``<name>.right`` (each buffers its side's
records in a window store with a changelog) and ``<name>``, the join whose children receive
the results. Left and outer joins also get a store of the records still without a partner.
The semantics are in ``streamflow.plan.joins``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streamflow.dsl.nodes import StreamJoin, StreamJoinSide
from streamflow.dsl.policies import OnError
from streamflow.dsl.topology import TopologyError
from streamflow.serde.base import Serde
from streamflow.serde.join_values import UnmatchedSerde, ValueList
from streamflow.serde.stored import kept_serde
from streamflow.serde.windowed import WindowValueSerde
from streamflow.windows import JoinWindows

if TYPE_CHECKING:
    from streamflow.dsl.stream import Stream

HOW = {"join": "inner", "left_join": "left", "outer_join": "outer"}


def stream_join(left: Stream, right: Stream, joiner: Callable[[Any, Any], Any],
                window: JoinWindows | None, op: str, name: str | None,
                on_error: OnError | None, value_serde: Serde | None = None,
                other_value_serde: Serde | None = None) -> Stream:
    """Add a windowed join of ``left`` and ``right`` (``op``: join, left_join or outer_join).

    ``value_serde`` / ``other_value_serde``: how the join's stores keep the left / right
    records' values (Kafka Streams' ``StreamJoined``); JSON when neither is given.
    """
    from streamflow.dsl.stream import Stream

    if not callable(joiner):
        msg = f"{op}() needs a joiner function (left_value, right_value)"
        raise TopologyError(msg)
    if not isinstance(window, JoinWindows):
        msg = (
            f"{op}() of two streams needs window=sf.JoinWindows(...): how far apart in time "
            "two records may be to join, e.g. window=sf.JoinWindows(sf.seconds(10))"
        )
        raise TopologyError(msg)
    p = left.processor
    if right.processor is not p:
        msg = (
            f"{op}() joins two streams of one processor; read both topics in processor "
            f"{p.name!r} (processor.stream(topic)) and join them there"
        )
        raise TopologyError(msg)
    step = p.node_name(op, name)
    p.check_step_on_error(step, on_error)
    how = HOW[op]
    if value_serde is None:  # the values' own serdes, when they are a topic's unchanged
        value_serde = kept_serde(p.value_serde_at(left.node.name))
    if other_value_serde is None:
        other_value_serde = kept_serde(p.value_serde_at(right.node.name))
    # a key's records by timestamp, as window stores keep them
    serdes = value_serde is not None or other_value_serde is not None
    fix = (f"the stream-stream join {step!r} keeps its records' values as JSON: give it "
           "value_serde= / other_value_serde= (e.g. the topics' sf.Avro), or turn the values "
           "into JSON ones with a map() before the join")
    stores = [p.add_store(f"{step}-{side}", value_serde=WindowValueSerde(
                  None if s is None else ValueList(s), fix=fix))
              for side, s in (("left", value_serde), ("right", other_value_serde))]
    if how != "inner":
        stores.append(p.add_store(f"{step}-unmatched", value_serde=UnmatchedSerde(
            value_serde, other_value_serde) if serdes else None))
    p.add(StreamJoinSide(f"{step}.left", (left.node.name,), side=0, store=stores[0]))
    p.add(StreamJoinSide(f"{step}.right", (right.node.name,), side=1, store=stores[1]))
    node = p.add(StreamJoin(step, (f"{step}.left", f"{step}.right"), how=how, window=window,
                            joiner=joiner, stores=tuple(stores), serdes=serdes,
                            on_error=on_error))
    return Stream(p, node.name)
