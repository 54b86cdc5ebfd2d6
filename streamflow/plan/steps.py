"""Builders of the stateless steps.

``Apply`` (map, filter, flat_map, key_by, map_record, filter_record, peek, validate), ``Split``,
``Branch`` and ``Merge``, and sinks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamflow.dsl.nodes import Apply, Branch, Node, Sink, Split
from streamflow.plan.context import Step, StepError, TaskContext, noop
from streamflow.plan.validation import build_validate
from streamflow.plan.wiring import Wiring
from streamflow.record import Headers, Record
from streamflow.serde import SerdeUnavailable


def _map(name: str, fn: Any, nxt: Step, ctx: TaskContext) -> Step:
    def map_(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        try:
            v = fn(v)
        except Exception as e:
            raise StepError(name, e) from e
        nxt(k, v, ts, h)

    return map_


def _filter(name: str, fn: Any, nxt: Step, ctx: TaskContext) -> Step:
    def filter_(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        try:
            keep = fn(v)
        except Exception as e:
            raise StepError(name, e) from e
        if keep:
            nxt(k, v, ts, h)

    return filter_


def _flat_map(name: str, fn: Any, nxt: Step, ctx: TaskContext) -> Step:
    def flat_map(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        try:
            values = list(fn(v))
        except Exception as e:
            raise StepError(name, e) from e
        for out in values:
            nxt(k, out, ts, h)

    return flat_map


def _key_by(name: str, fn: Any, nxt: Step, ctx: TaskContext) -> Step:
    def key_by(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        try:
            k = fn(v)
        except Exception as e:
            raise StepError(name, e) from e
        nxt(k, v, ts, h)

    return key_by


def record_of(ctx: TaskContext, k: Any, v: Any, ts: int, h: Headers | None) -> Record:
    """The ``Record`` user code sees: the step's key and value, the source's position."""
    return Record(k, v, ts, h, ctx.topic, ctx.partition, ctx.offset)


def _map_record(name: str, fn: Any, nxt: Step, ctx: TaskContext) -> Step:
    def map_record(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        try:
            r = fn(record_of(ctx, k, v, ts, h))
            if not isinstance(r, Record):
                msg = f"map_record function must return a Record, got {type(r).__name__}"
                raise TypeError(msg)
        except Exception as e:
            raise StepError(name, e) from e
        nxt(r.key, r.value, r.timestamp, r.headers)

    return map_record


def _filter_record(name: str, fn: Any, nxt: Step, ctx: TaskContext) -> Step:
    def filter_record(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        try:
            keep = fn(record_of(ctx, k, v, ts, h))
        except Exception as e:
            raise StepError(name, e) from e
        if keep:
            nxt(k, v, ts, h)

    return filter_record


def _peek(name: str, fn: Any, nxt: Step, ctx: TaskContext) -> Step:
    def peek(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        try:
            fn(record_of(ctx, k, v, ts, h))
        except Exception as e:
            raise StepError(name, e) from e
        nxt(k, v, ts, h)

    return peek


APPLY: dict[str, Callable[[str, Any, Step, TaskContext], Step]] = {
    "map": _map,
    "filter": _filter,
    "flat_map": _flat_map,
    "key_by": _key_by,
    "map_record": _map_record,
    "filter_record": _filter_record,
    "peek": _peek,
    "validate": build_validate,
}


def build_apply(w: Wiring, node: Apply) -> Step:
    """A user function applied to each record (``node.op`` says how)."""
    return APPLY[node.op](node.name, node.fn, w.downstream(node), w.ctx)


def build_pass(w: Wiring, node: Node) -> Step:
    """A node that only passes records on (``Branch``, ``Merge``)."""
    return w.downstream(node)


def build_split(w: Wiring, node: Split) -> Step:
    """Each record goes to the first branch whose predicate holds (or the default)."""
    outs: list[Step] = [noop] * (len(node.branches) + (1 if node.default else 0))
    for child in w.children(node):
        if isinstance(child, Branch):
            outs[child.index] = w.step(child)
    preds = node.predicates
    default = outs[len(preds)] if node.default else None
    routes = tuple(zip(preds, outs, strict=False))
    name = node.name

    def split(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        target = default
        try:
            for pred, out in routes:
                if pred(v):
                    target = out
                    break
        except Exception as e:
            raise StepError(name, e) from e
        if target is not None:
            target(k, v, ts, h)

    return split


def build_sink(w: Wiring, node: Sink) -> Step:
    """Serialize and emit to the sink's topic (or the topic its router picks)."""
    emit = w.ctx.emit
    name = node.name
    if node.topic is not None:
        topic = node.topic
        ks, vs = w.serializers_for(topic)

        def sink(k: Any, v: Any, ts: int, h: Headers | None) -> None:
            try:
                kb = ks(k)
                vb = vs(v)
            except SerdeUnavailable:
                raise  # an outage, not a bad record: never skipped or dead-lettered
            except Exception as e:
                raise StepError(name, e, "produce") from e
            emit(topic, kb, vb, ts, h)

        return sink

    router = node.router
    assert router is not None
    ctx = w.ctx
    serializers_for = w.serializers_for

    def route(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        try:  # the router is user code (process phase), serializing its output is produce
            target = router(record_of(ctx, k, v, ts, h))
            topic = target if isinstance(target, str) else target.name
            ks, vs = serializers_for(topic)
        except SerdeUnavailable:
            raise
        except Exception as e:
            raise StepError(name, e) from e
        try:
            kb = ks(k)
            vb = vs(v)
        except SerdeUnavailable:
            raise
        except Exception as e:
            raise StepError(name, e, "produce") from e
        emit(topic, kb, vb, ts, h)

    return route
