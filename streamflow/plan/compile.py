"""Compile one processor's graph into per-source chains of plain closures.

The compiled form is what both the worker runtime and ``TopologyTestDriver`` execute:
an ``entry`` per source topic taking raw ``(key_bytes, value_bytes, timestamp, headers)``,
which deserializes once and calls a chain of closures, ending in ``emit`` calls that hand
serialized records to the producer (or to the test driver's buffers).

Per record there is no dispatch through node objects; user-function exceptions are wrapped
in ``StepError`` naming the step, at no cost when nothing fails. ``SerdeUnavailable`` (the
schema registry is unreachable) is never wrapped: it is an outage, not a bad record, so it
must stop the worker rather than reach the ``on_error`` policy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamflow.dsl.nodes import (
    Aggregate,
    Apply,
    Branch,
    Join,
    Merge,
    Node,
    Process,
    Sink,
    Source,
    Split,
    TableOp,
    TableSource,
    WindowAggregate,
    WindowEmit,
)
from streamflow.record import Headers, Record
from streamflow.serde import SerdeContext, SerdeUnavailable
from streamflow.state.keys import encode_key
from streamflow.state.store import TtlStore

if TYPE_CHECKING:
    from streamflow.dsl.topology import Processor

Step = Callable[[Any, Any, int, "Headers | None"], None]
Entry = Callable[[bytes | None, bytes | None, int, "Headers | None"], None]
Emit = Callable[[str, bytes | None, bytes | None, int, "Headers | None"], None]


class StepError(Exception):
    """A record failed in a named step (deserialize, a user function, serialize)."""

    def __init__(self, step: str, cause: BaseException) -> None:
        super().__init__(f"step {step!r} failed: {type(cause).__name__}: {cause}")
        self.step = step
        self.cause = cause


class TaskContext:
    """Explicit per-task context: which partition, and which source record is current.

    The runtime sets ``topic`` and ``offset`` before calling an entry; steps that hand a
    ``Record`` to user code read them from here (never from a global).
    """

    __slots__ = ("clock", "emit", "metrics", "offset", "partition", "processor", "punctuators",
                 "serde_ctx", "stores", "topic")

    def __init__(self, processor: str, partition: int, emit: Emit, serde_ctx: SerdeContext,
                 stores: dict[str, Any] | None = None) -> None:
        self.processor = processor
        self.partition = partition
        self.emit = emit
        self.serde_ctx = serde_ctx
        self.stores: dict[str, Any] = stores or {}
        self.topic: str | None = None
        self.offset: int | None = None
        # called with the wall-clock time (ms) by the runtime's loop and by the test
        # driver's advance_wall_clock(); steps that act on time (windows) register here
        self.punctuators: list[Callable[[int], None]] = []
        # the wall clock in ms (the test driver substitutes its own) and task counters
        # such as "<step>.late_records"
        self.clock: Callable[[], int] = _wall_clock_ms
        self.metrics: dict[str, int] = {}

    def punctuate(self, wall_clock_ms: int) -> None:
        """Run every registered punctuator."""
        for p in self.punctuators:
            p(wall_clock_ms)

    def store(self, name: str) -> Any:
        """The task's store called ``name``."""
        try:
            return self.stores[name]
        except KeyError:
            raise KeyError(
                f"processor {self.processor!r} has no store {name!r}; declare it in "
                f"process(..., stores=[{name!r}])"
            ) from None


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class CompiledTask:
    """The closures of one processor for one partition: ``entries[topic]`` per source."""

    entries: dict[str, Entry]
    context: TaskContext


def _noop(k: Any, v: Any, ts: int, h: Headers | None) -> None:
    return None


def _fanout(steps: list[Step]) -> Step:
    if not steps:
        return _noop
    if len(steps) == 1:
        return steps[0]
    all_steps = tuple(steps)

    def fanout(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        for s in all_steps:
            s(k, v, ts, h)

    return fanout


class _Compiler:
    def __init__(self, processor: Processor, ctx: TaskContext) -> None:
        self.processor = processor
        self.topology = processor.topology
        self.ctx = ctx
        self.children: dict[str, list[Node]] = {n: [] for n in processor.nodes}
        for node in processor.nodes.values():
            for p in node.parents:
                self.children[p].append(node)
        self.done: dict[str, Step] = {}
        self.serializers: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {}

    def downstream(self, node: Node) -> Step:
        return _fanout([self.step(c) for c in self.children[node.name]])

    def step(self, node: Node) -> Step:
        if node.name not in self.done:
            self.done[node.name] = self._build(node)
        return self.done[node.name]

    def serializers_for(self, topic: str) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
        if topic not in self.serializers:
            t = self.topology.resolve_topic(topic)
            sc = self.ctx.serde_ctx
            self.serializers[topic] = (
                t.key.serializer(topic, True, sc),
                t.value.serializer(topic, False, sc),
            )
        return self.serializers[topic]

    def _build(self, node: Node) -> Step:
        if isinstance(node, Apply):
            return _APPLY[node.op](node.name, node.fn, self.downstream(node), self.ctx)
        if isinstance(node, Split):
            return self._split(node)
        if isinstance(node, (Branch, Merge)):
            return self.downstream(node)
        if isinstance(node, Sink):
            return self._sink(node)
        if isinstance(node, Aggregate):
            store = self.ctx.store(node.store)
            return _observing([store], _aggregate(node, store, self.downstream(node)))
        if isinstance(node, TableOp):
            return _table_op(node, self.downstream(node))
        if isinstance(node, Join):
            return _join(node, self.ctx.store(node.store), self.downstream(node))
        if isinstance(node, Process):
            return _observing([self.ctx.store(n) for n in node.stores],
                              _process(node, self.ctx, self.downstream(node)))
        if isinstance(node, (WindowAggregate, WindowEmit)):
            from streamflow.plan.windowing import build_window

            return build_window(self, node)
        raise TypeError(f"cannot compile step {node.name!r} of kind {node.kind!r}")

    def _split(self, node: Split) -> Step:
        outs: list[Step] = [_noop] * (len(node.branches) + (1 if node.default else 0))
        for child in self.children[node.name]:
            if isinstance(child, Branch):
                outs[child.index] = self.step(child)
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

    def _sink(self, node: Sink) -> Step:
        emit = self.ctx.emit
        name = node.name
        if node.topic is not None:
            topic = node.topic
            ks, vs = self.serializers_for(topic)

            def sink(k: Any, v: Any, ts: int, h: Headers | None) -> None:
                try:
                    kb = ks(k)
                    vb = vs(v)
                except SerdeUnavailable:
                    raise  # an outage, not a bad record: never skipped or dead-lettered
                except Exception as e:
                    raise StepError(name, e) from e
                emit(topic, kb, vb, ts, h)

            return sink

        router = node.router
        assert router is not None
        ctx = self.ctx
        serializers_for = self.serializers_for

        def route(k: Any, v: Any, ts: int, h: Headers | None) -> None:
            try:
                target = router(Record(k, v, ts, h, ctx.topic, ctx.partition, ctx.offset))
                topic = target if isinstance(target, str) else target.name
                ks, vs = serializers_for(topic)
                kb = ks(k)
                vb = vs(v)
            except SerdeUnavailable:
                raise
            except Exception as e:
                raise StepError(name, e) from e
            emit(topic, kb, vb, ts, h)

        return route

    def _fused_entry(self, source: Source, name: str, kd: Any, vd: Any) -> Entry | None:
        """The hot path of the common case, as one function: deserialize, a straight run of
        map / filter / key_by steps, then serialize and emit (or hand over to the next
        step). The same semantics as the chained closures (each user function's errors are
        wrapped with its step name), one Python frame instead of one per step."""
        chain: list[Apply] = []
        node: Node = source
        while len(self.children[node.name]) == 1:
            child = self.children[node.name][0]
            if not (isinstance(child, Apply) and child.op in _FUSABLE):
                break
            chain.append(child)
            node = child
        if not chain:
            return None
        tail = self.children[node.name]
        sink = tail[0] if len(tail) == 1 else None
        ns: dict[str, Any] = {"StepError": StepError, "SerdeUnavailable": SerdeUnavailable,
                              "kd": kd, "vd": vd, "n_src": name}
        body = [
            "def entry(kb, vb, ts, h):",
            "    try:",
            "        k = kd(kb)",
            "        v = vd(vb)",
            "    except SerdeUnavailable:",
            "        raise",
            "    except Exception as e:",
            "        raise StepError(n_src, e) from e",
        ]
        for i, step in enumerate(chain):
            ns[f"f{i}"] = step.fn
            ns[f"n{i}"] = step.name
            call = {"map": f"v = f{i}(v)", "filter": f"keep = f{i}(v)",
                    "key_by": f"k = f{i}(v)"}[step.op]
            body += ["    try:", f"        {call}", "    except Exception as e:",
                     f"        raise StepError(n{i}, e) from e"]
            if step.op == "filter":
                body.append("    if not keep:\n        return")
        if isinstance(sink, Sink) and sink.topic is not None and not self.children[sink.name]:
            ns["ks"], ns["vs"] = self.serializers_for(sink.topic)
            ns.update(emit=self.ctx.emit, topic=sink.topic, n_sink=sink.name)
            self.done[sink.name] = self._build(sink)  # describe/other paths still see it
            body += ["    try:", "        kb = ks(k)", "        vb = vs(v)",
                     "    except SerdeUnavailable:", "        raise",
                     "    except Exception as e:", "        raise StepError(n_sink, e) from e",
                     "    emit(topic, kb, vb, ts, h)"]
        else:
            ns["nxt"] = self.downstream(node)
            body.append("    nxt(k, v, ts, h)")
        exec(compile("\n".join(body), f"<streamflow fused {source.name}>", "exec"), ns)
        return ns["entry"]  # type: ignore[no-any-return]

    def entry(self, source: Source | TableSource, topic: str) -> Entry:
        t = self.topology.resolve_topic(topic)
        sc = self.ctx.serde_ctx
        kd = t.key.deserializer(topic, True, sc)
        vd = t.value.deserializer(topic, False, sc)
        name = f"{source.name}:deserialize"
        if isinstance(source, Source):
            fused = self._fused_entry(source, name, kd, vd)
            if fused is not None:
                return fused
        nxt = self.downstream(source)
        if isinstance(source, TableSource):
            store = self.ctx.store(source.store)
            nxt = _observing([store], _materialize(store, nxt))

        def entry(kb: bytes | None, vb: bytes | None, ts: int, h: Headers | None) -> None:
            try:
                k = kd(kb)
                v = vd(vb)
            except SerdeUnavailable:
                raise  # an outage, not a bad record: never skipped or dead-lettered
            except Exception as e:
                raise StepError(name, e) from e
            nxt(k, v, ts, h)

        return entry


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


def _record(ctx: TaskContext, k: Any, v: Any, ts: int, h: Headers | None) -> Record:
    return Record(k, v, ts, h, ctx.topic, ctx.partition, ctx.offset)


def _map_record(name: str, fn: Any, nxt: Step, ctx: TaskContext) -> Step:
    def map_record(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        try:
            r = fn(_record(ctx, k, v, ts, h))
            if not isinstance(r, Record):
                raise TypeError(f"map_record function must return a Record, got {type(r).__name__}")
        except Exception as e:
            raise StepError(name, e) from e
        nxt(r.key, r.value, r.timestamp, r.headers)

    return map_record


def _filter_record(name: str, fn: Any, nxt: Step, ctx: TaskContext) -> Step:
    def filter_record(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        try:
            keep = fn(_record(ctx, k, v, ts, h))
        except Exception as e:
            raise StepError(name, e) from e
        if keep:
            nxt(k, v, ts, h)

    return filter_record


def _peek(name: str, fn: Any, nxt: Step, ctx: TaskContext) -> Step:
    def peek(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        try:
            fn(_record(ctx, k, v, ts, h))
        except Exception as e:
            raise StepError(name, e) from e
        nxt(k, v, ts, h)

    return peek


_FUSABLE = frozenset({"map", "filter", "key_by"})

_APPLY: dict[str, Callable[[str, Any, Step, TaskContext], Step]] = {
    "map": _map,
    "filter": _filter,
    "flat_map": _flat_map,
    "key_by": _key_by,
    "map_record": _map_record,
    "filter_record": _filter_record,
    "peek": _peek,
}


def compile_task(processor: Processor, ctx: TaskContext) -> CompiledTask:
    """Compile ``processor`` for one task (partition); see the module docstring."""
    c = _Compiler(processor, ctx)
    entries: dict[str, Entry] = {}
    for node in processor.nodes.values():
        if isinstance(node, Source):
            for topic in node.topics:
                entries[topic] = c.entry(node, topic)
        elif isinstance(node, TableSource):
            entries[node.topic] = c.entry(node, node.topic)
    return CompiledTask(entries, ctx)


# -- stateful steps --------------------------------------------------------------------
def _aggregate(node: Aggregate, store: Any, nxt: Step) -> Step:
    get = store.get_raw_key
    put = store.put_raw_key
    init = node.initializer
    adder = node.adder
    name = node.name

    def aggregate(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        if k is None or v is None:
            return  # as Kafka Streams: null keys and values do not aggregate
        kb = encode_key(k)
        current = get(kb)
        try:
            if current is None:
                new = v if init is None else adder(init(), v)  # type: ignore[misc]
            else:
                new = adder(current, v)  # type: ignore[misc]
        except Exception as e:
            raise StepError(name, e) from e
        put(kb, new)
        nxt(k, new, ts, h)

    return aggregate


def _observing(stores: list[Any], step: Step) -> Step:
    """``step``, telling the TTL stores among ``stores`` each record's event time first (no
    wrapper at all when none has a TTL)."""
    observers = tuple(s.observe for s in stores if isinstance(s, TtlStore))
    if not observers:
        return step

    def observed(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        for observe in observers:
            observe(ts)
        step(k, v, ts, h)

    return observed


def _materialize(store: Any, nxt: Step) -> Step:
    put = store.put_raw_key

    def materialize(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        if k is None:
            return
        put(encode_key(k), v)  # None deletes
        nxt(k, v, ts, h)

    return materialize


def _table_op(node: TableOp, nxt: Step) -> Step:
    fn = node.fn
    name = node.name
    is_filter = node.op == "filter"

    def table_op(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        if v is not None:
            try:
                out = (v if fn(v) else None) if is_filter else fn(v)  # type: ignore[misc]
            except Exception as e:
                raise StepError(name, e) from e
        else:
            out = None
        nxt(k, out, ts, h)

    return table_op


def _join(node: Join, store: Any, nxt: Step) -> Step:
    get = store.get_raw_key
    joiner = node.joiner
    left = node.left
    name = node.name

    def join(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        right = None if k is None else get(encode_key(k))
        if right is None and not left:
            return
        try:
            out = joiner(v, right)  # type: ignore[misc]
        except Exception as e:
            raise StepError(name, e) from e
        nxt(k, out, ts, h)

    return join


class ProcessContext:
    """What a ``process()`` function gets besides the record: its stores and ``forward``."""

    __slots__ = ("_h", "_nxt", "_task", "_ts")

    def __init__(self, task: TaskContext, nxt: Step) -> None:
        self._task = task
        self._nxt = nxt
        self._ts = 0
        self._h: Headers | None = None

    @property
    def partition(self) -> int:
        """The task's partition."""
        return self._task.partition

    def store(self, name: str) -> Any:
        """A store declared in ``process(..., stores=[...])``."""
        return self._task.store(name)

    def forward(self, key: Any, value: Any, *, timestamp: int | None = None,
                headers: Headers | None = None) -> None:
        """Send a record downstream (timestamp and headers default to the input's)."""
        self._nxt(key, value, self._ts if timestamp is None else timestamp,
                  self._h if headers is None else headers)


def _process(node: Process, ctx: TaskContext, nxt: Step) -> Step:
    fn = node.fn
    name = node.name
    pctx = ProcessContext(ctx, nxt)

    def process(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        pctx._ts = ts
        pctx._h = h
        try:
            fn(_record(ctx, k, v, ts, h), pctx)  # type: ignore[misc]
        except (StepError, SerdeUnavailable):  # from steps downstream of forward()
            raise
        except Exception as e:
            raise StepError(name, e) from e

    return process
