"""Compile one processor's graph into per-source chains of plain closures.

The compiled form is what both the worker runtime and ``TopologyTestDriver`` execute:
an ``entry`` per source topic taking raw ``(key_bytes, value_bytes, timestamp, headers)``,
which deserializes once and calls a chain of closures, ending in ``emit`` calls that hand
serialized records to the producer (or to the test driver's buffers).

The compiler is a walker (``plan.wiring.Wiring``) with one builder per node class
(``BUILDERS``): stateless steps in ``plan.steps``, key-value state in ``plan.stateful``,
windows in ``plan.windows``, async I/O steps in ``plan.async_steps``, and the fused fast path
of map / filter / key_by runs in ``plan.fused``. Per record there is no dispatch through node
objects; user-function exceptions are wrapped in ``StepError`` naming the step, at no cost when
nothing fails.
``SerdeUnavailable`` (the schema registry is unreachable) is never wrapped: it is an outage,
not a bad record, so it must stop the worker rather than reach the ``on_error`` policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from streamflow.dsl.nodes import (
    Aggregate,
    Apply,
    AsyncApply,
    Branch,
    ForeignKeyJoin,
    GlobalJoin,
    Join,
    Merge,
    Node,
    Process,
    Sink,
    Source,
    Split,
    StreamJoin,
    StreamJoinSide,
    TableJoin,
    TableMaterialize,
    TableOp,
    TableSource,
    WindowAggregate,
    WindowEmit,
)
from streamflow.plan.async_steps import build_async, keep_source
from streamflow.plan.context import CompiledTask, Emit, Entry, Step, StepError, TaskContext
from streamflow.plan.foreign_key import build_foreign_key_join
from streamflow.plan.fused import fused_entry
from streamflow.plan.global_join import build_global_join
from streamflow.plan.joins import build_join_side, build_stream_join
from streamflow.plan.stateful import (
    ProcessContext,
    build_aggregate,
    build_join,
    build_process,
    build_table_op,
    materialize,
)
from streamflow.plan.steps import build_apply, build_pass, build_sink, build_split
from streamflow.plan.table_joins import build_table_join, build_table_materialize
from streamflow.plan.windows import build_window, build_window_emit
from streamflow.plan.wiring import Builder, Wiring
from streamflow.record import Headers
from streamflow.serde import SerdeUnavailable

if TYPE_CHECKING:
    from streamflow.dsl.topology import Processor

__all__ = ["BUILDERS", "CompiledTask", "Emit", "Entry", "ProcessContext", "Step", "StepError",
           "TaskContext", "Wiring", "compile_task"]

BUILDERS: Mapping[type[Node], Builder] = {
    Apply: build_apply,
    AsyncApply: build_async,
    Split: build_split,
    Branch: build_pass,
    Merge: build_pass,
    Sink: build_sink,
    Aggregate: build_aggregate,
    TableOp: build_table_op,
    Join: build_join,
    GlobalJoin: build_global_join,
    StreamJoin: build_stream_join,
    StreamJoinSide: build_join_side,
    ForeignKeyJoin: build_foreign_key_join,
    TableJoin: build_table_join,
    TableMaterialize: build_table_materialize,
    Process: build_process,
    WindowAggregate: build_window,
    WindowEmit: build_window_emit,
}


def _entry(w: Wiring, source: Source | TableSource, topic: str, fuse: bool) -> Entry:
    """The entry of ``topic``: deserialize, then the source's steps."""
    kd, vd = w.deserializers_for(topic)
    name = f"{source.name}:deserialize"
    if fuse and isinstance(source, Source):
        fused = fused_entry(w, source, name, kd, vd)
        if fused is not None:
            return fused
    nxt = w.downstream(source)
    if isinstance(source, TableSource):
        nxt = materialize(w.store(source.store), nxt)

    def entry(kb: bytes | None, vb: bytes | None, ts: int, h: Headers | None) -> None:
        try:
            k = kd(kb)
            v = vd(vb)
        except SerdeUnavailable:
            raise  # an outage, not a bad record: never skipped or dead-lettered
        except Exception as e:
            raise StepError(name, e, "deserialize") from e
        nxt(k, v, ts, h)

    return entry


def compile_task(processor: Processor, ctx: TaskContext, *, fuse: bool = True,
                 builders: Mapping[type[Node], Builder] = BUILDERS) -> CompiledTask:
    """Compile ``processor`` for one task (partition); see the module docstring.

    ``fuse=False`` builds every step as its own closure (the reference the fused fast path
    is tested against).
    """
    w = Wiring(processor, ctx, builders)
    entries: dict[str, Entry] = {}
    for node in processor.nodes.values():
        if isinstance(node, Source):
            for topic in node.topics:
                entries[topic] = _entry(w, node, topic, fuse)
        elif isinstance(node, TableSource):
            entries[node.topic] = _entry(w, node, node.topic, fuse)
    if ctx.flushers:  # async steps report failures with the source record's bytes
        entries = {t: keep_source(e, ctx) for t, e in entries.items()}
    return CompiledTask(entries, ctx)
