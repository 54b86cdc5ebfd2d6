"""``TopologyTestDriver``: run a topology's compiled plan without a broker.

Records are serialized and deserialized with the topics' serdes exactly as in production,
so serde problems show up in unit tests. Output of one processor that another processor of
the topology reads is piped to it, so a whole DAG can be tested in one driver.

>>> import streamflow as sf
>>> from streamflow.testing import TopologyTestDriver
>>> t = sf.Topology("demo")
>>> src = t.topic("in", key=sf.String(), value=sf.Int(), external=True)
>>> out = t.topic("out", key=sf.String(), value=sf.Int())
>>> t.processor("double").stream(src).map(lambda v: v * 2).to(out)
>>> with TopologyTestDriver(t) as driver:
...     driver.input("in").send(21, key="a", timestamp=1000)
...     driver.output("out").read_values()
[42]
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from streamflow.dsl.topology import Processor, Topic, Topology, TopologyError
from streamflow.plan.compile import CompiledTask, StepError, TaskContext, compile_task
from streamflow.record import Headers, Record
from streamflow.runtime.errors import ErrorPolicy
from streamflow.serde import SerdeContext
from streamflow.state.store import TaskStore
from streamflow.state.task_state import TaskState

_ids = itertools.count()

_Raw = tuple[bytes | None, bytes | None, int, "Headers | None", int]
_Queued = tuple[str, bytes | None, bytes | None, int, "Headers | None", int]


class TestInput:
    """Sends records into one topic of the driven topology."""

    def __init__(self, driver: TopologyTestDriver, topic: Topic) -> None:
        self._driver = driver
        self._topic = topic
        self._ks = topic.key.serializer(topic.name, True, driver.serde_context)
        self._vs = topic.value.serializer(topic.name, False, driver.serde_context)

    def send(
        self,
        value: Any,
        *,
        key: Any = None,
        timestamp: int | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Serialize and process one record (timestamp defaults to the wall clock)."""
        ts = self._driver.wall_clock_ms if timestamp is None else int(timestamp)
        self._driver._deliver(self._topic.name, self._ks(key), self._vs(value), ts, headers)

    def send_raw(
        self,
        value: bytes | None,
        *,
        key: bytes | None = None,
        timestamp: int | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Process already-serialized bytes, e.g. to test how poison messages are handled."""
        ts = self._driver.wall_clock_ms if timestamp is None else int(timestamp)
        self._driver._deliver(self._topic.name, key, value, ts, headers)

    def send_many(self, items: Iterable[Any]) -> None:
        """Send several records: each item is a ``Record`` (key, value, timestamp, headers
        are used) or a bare value."""
        for item in items:
            if isinstance(item, Record):
                self.send(
                    item.value, key=item.key, timestamp=item.timestamp or None, headers=item.headers
                )
            else:
                self.send(item)


class TestOutput:
    """Reads what the topology produced to one topic; each record is read once."""

    def __init__(self, driver: TopologyTestDriver, topic: Topic) -> None:
        self._driver = driver
        self._topic = topic
        self._kd = topic.key.deserializer(topic.name, True, driver.serde_context)
        self._vd = topic.value.deserializer(topic.name, False, driver.serde_context)

    def read_records(self) -> list[Record]:
        """All records produced since the last read, deserialized with the topic's serdes."""
        raw = self._driver._drain(self._topic.name)
        name = self._topic.name
        return [Record(self._kd(k), self._vd(v), ts, h, name, 0, off) for k, v, ts, h, off in raw]

    def read_values(self) -> list[Any]:
        """The values of ``read_records()``."""
        return [r.value for r in self.read_records()]

    def read_key_values(self) -> list[tuple[Any, Any]]:
        """``(key, value)`` pairs of ``read_records()``."""
        return [(r.key, r.value) for r in self.read_records()]

    def is_empty(self) -> bool:
        """True when nothing unread is waiting in this topic."""
        return not self._driver._outputs.get(self._topic.name)


class TopologyTestDriver:
    """Drive a topology (or one of its processors) with explicit records and time.

    ``config`` may set ``schema_registry.url`` (default: a fresh ``mock://`` registry, so
    Avro topics work out of the box) and ``schemas_dir``.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        topology: Topology,
        *,
        processor: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.topology = topology
        cfg = dict(config or {})
        url = cfg.get("schema_registry.url") or f"mock://streamflow-driver-{next(_ids)}"

        self.serde_context = SerdeContext(
            registry_factory=lambda: _registry(url),
            schemas_dir=Path(cfg.get("schemas_dir", "schemas")),
        )
        if processor is not None and processor not in topology.processors:
            raise TopologyError(
                f"topology {topology.name!r} has no processor {processor!r}; "
                f"it has {sorted(topology.processors)}"
            )
        chosen = (
            [topology.processors[processor]] if processor else list(topology.processors.values())
        )
        self.wall_clock_ms: int = int(cfg.get("wall_clock_ms", 0))
        self._outputs: dict[str, list[_Raw]] = {}
        self._offsets: dict[str, int] = {}
        self._queue: deque[tuple[str, bytes | None, bytes | None, int, Headers | None, int]] = (
            deque()
        )
        self._readers: dict[str, list[tuple[Processor, CompiledTask, ErrorPolicy]]] = {}
        self._busy = False
        self._closed = False
        self._tmp_state: str | None = None
        backend = cfg.get("store")
        state_dir = cfg.get("state_dir")
        if state_dir is None and any(
            p.stores and (backend or p.store_backend) == "rocksdb" for p in chosen
        ):
            import tempfile

            state_dir = self._tmp_state = tempfile.mkdtemp(prefix="streamflow-driver-")
        self._states: dict[str, TaskState] = {}
        for p in chosen:
            state = TaskState(p, 0, Path(state_dir or "."), backend or p.store_backend,
                              self.serde_context)
            self._states[p.name] = state
            ctx = TaskContext(p.name, 0, self._emit, self.serde_context, state.stores)
            ctx.clock = self._wall_clock
            task = compile_task(p, ctx)
            policy = ErrorPolicy(p.on_error, p.name, p.dead_letter_topic, self._emit)
            for topic in task.entries:
                self._readers.setdefault(topic, []).append((p, task, policy))

    # -- inputs and outputs -------------------------------------------------------------
    def input(self, topic: Topic | str) -> TestInput:
        """The input side of a topic that a driven processor reads."""
        t = self.topology.resolve_topic(topic)
        if t.name not in self._readers:
            raise TopologyError(
                f"no driven processor reads topic {t.name!r}; it is read by none of "
                f"{sorted({p.name for rs in self._readers.values() for p, _, _ in rs})}"
            )
        return TestInput(self, t)

    def output(self, topic: Topic | str) -> TestOutput:
        """The output side of a topic (including dead-letter topics)."""
        name = topic.name if isinstance(topic, Topic) else topic
        if name in self.topology.topics:
            return TestOutput(self, self.topology.topics[name])
        from streamflow.serde import Bytes

        return TestOutput(self, Topic(name, Bytes(), Bytes()))

    def advance_wall_clock(self, ms: int) -> None:
        """Move the driver's wall clock forward by ``ms`` milliseconds and run what is due
        (e.g. windows closed on idleness)."""
        if ms < 0:
            raise ValueError("the wall clock only moves forward")
        self.wall_clock_ms += int(ms)
        self._busy = True
        try:
            tasks = {id(t): t for rs in self._readers.values() for _, t, _ in rs}
            for task in tasks.values():
                task.context.punctuate(self.wall_clock_ms)
            while self._queue:
                self._process(*self._queue.popleft())
            self._commit()
        finally:
            self._busy = False
            self._queue.clear()

    def metrics(self, processor: str | None = None) -> dict[str, int]:
        """Task counters of the driven processors, e.g. ``"<window step>.late_records"``
        (summed over processors unless ``processor`` names one)."""
        out: dict[str, int] = {}
        seen: set[int] = set()
        for rs in self._readers.values():
            for p, task, _ in rs:
                if id(task) in seen or (processor is not None and p.name != processor):
                    continue
                seen.add(id(task))
                for name, n in task.context.metrics.items():
                    out[name] = out.get(name, 0) + n
        return out

    # -- internals ----------------------------------------------------------------------
    def _wall_clock(self) -> int:
        return self.wall_clock_ms

    def _next_offset(self, topic: str) -> int:
        off = self._offsets.get(topic, 0)
        self._offsets[topic] = off + 1
        return off

    def _emit(
        self, topic: str, k: bytes | None, v: bytes | None, ts: int, h: Headers | None
    ) -> None:
        off = self._next_offset(topic)
        self._outputs.setdefault(topic, []).append((k, v, ts, list(h) if h else None, off))
        if topic in self._readers:
            self._queue.append((topic, k, v, ts, h, off))

    def _deliver(
        self, topic: str, k: bytes | None, v: bytes | None, ts: int, h: Headers | None
    ) -> None:
        if self._closed:
            raise RuntimeError("the TopologyTestDriver is closed")
        self._queue.append((topic, k, v, ts, h, self._next_offset(topic)))
        if self._busy:
            return
        self._busy = True
        try:
            while self._queue:
                self._process(*self._queue.popleft())
            self._commit()
        finally:
            self._busy = False
            self._queue.clear()

    def _commit(self) -> None:
        """As the runtime does at commit: stores to changelogs, then to the local databases."""
        for state in self._states.values():
            sources = state.processor.source_topics()
            state.flush(self._emit_to, {t: o for t, o in self._offsets.items() if t in sources})
            state.write_pending()

    def _emit_to(self, topic: str, partition: int, k: bytes, v: bytes | None,
                 h: Headers) -> None:
        self._emit(topic, k, v, self.wall_clock_ms, h)

    def store(self, name: str, *, processor: str | None = None) -> TaskStore:
        """A processor's store (partition 0), to inspect state in tests."""
        owners = [s for p, s in self._states.items()
                  if name in s.stores and (processor is None or p == processor)]
        if len(owners) != 1:
            raise KeyError(
                f"no single driven processor has a store {name!r}"
                + (" (several do: name the processor)" if owners else "")
            )
        return owners[0].stores[name]

    def _process(
        self, topic: str, k: bytes | None, v: bytes | None, ts: int, h: Headers | None, off: int
    ) -> None:
        for _p, task, policy in self._readers.get(topic, ()):
            ctx = task.context
            ctx.topic = topic
            ctx.offset = off
            try:
                task.entries[topic](k, v, ts, h)
            except StepError as e:
                policy.handle(e, topic, ctx.partition, off, k, v, ts, h)

    def _drain(self, topic: str) -> list[_Raw]:
        return self._outputs.pop(topic, [])

    def close(self) -> None:
        """Release the driver's resources (stores, temporary state directory)."""
        if self._closed:
            return
        self._closed = True
        for state in self._states.values():
            state.close()
        if self._tmp_state:
            import shutil

            shutil.rmtree(self._tmp_state, ignore_errors=True)

    def __enter__(self) -> TopologyTestDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _registry(url: str) -> Any:
    from streamflow.kafka.registry import make_registry_client

    return make_registry_client({"url": url})
