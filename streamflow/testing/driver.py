"""``TopologyTestDriver``: run a topology on the production task engine, without a broker.

Each driven processor runs in an ``Engine`` (the same tasks, committers, collector and error
policy as a worker) over an in-memory Kafka (``streamflow.testing.memory``): topics have
partitions, keyed records go to the partition Kafka's partitioner picks, consumer groups
assign partitions and commit offsets, and exactly-once processors write in transactions that
readers only see once committed. Records are serialized with the topics' serdes exactly as
in production, so serde problems show up in unit tests. Output of one processor that another
driven processor reads is piped to it, so a whole DAG can be tested in one driver.

By default every ``send`` is processed and committed at once. With ``auto_commit=False``
records are processed but committed only by ``commit()``, so a test can ``crash()`` a
processor between the two and see what is processed again, ``scale()`` it to several
instances (a rebalance moves tasks and their state), or inject broker failures through
``cluster.fail_next(...)``.

Stores are restored as a worker restores them: in chunks of ``restore_chunk_records`` between
polls, with the task's inputs paused. Driver calls run every restore to its end, unless
``scale()`` or ``crash()`` is told ``settle=False``: then ``step()`` turns every instance's
loop once (a batch processed, a chunk restored), so a test can look at an instance midway.

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
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from streamflow.dsl.global_table import global_stores, global_topics
from streamflow.dsl.topology import Processor, Topic, Topology, TopologyError
from streamflow.record import Headers, Record
from streamflow.runtime.engine import Engine
from streamflow.runtime.ports import Ports
from streamflow.runtime.topics import processor_topics
from streamflow.serde import Bytes, SerdeContext
from streamflow.serde.keyfile import provider_from_setting
from streamflow.state.store import TaskStore
from streamflow.testing.memory import (
    InMemoryCluster,
    MemoryAdmin,
    MemoryChangelogs,
    MemoryConsumer,
    MemoryProducer,
)

_ids = itertools.count()


class TestInput:
    """Sends records into one topic of the driven topology."""

    def __init__(self, driver: TopologyTestDriver, topic: Topic) -> None:
        self._driver = driver
        self._topic = topic
        self._ks = topic.key.serializer(topic.name, True, driver.serde_context)
        self._vs = topic.value.serializer(topic.name, False, driver.serde_context)

    def send(self, value: Any, *, key: Any = None, timestamp: int | None = None,
             headers: Headers | None = None, partition: int | None = None) -> None:
        """Serialize and process one record.

        ``timestamp`` defaults to the driver's wall clock, ``partition`` to the one Kafka's
        partitioner picks for the key.
        """
        self.send_raw(self._vs(value), key=self._ks(key), timestamp=timestamp, headers=headers,
                      partition=partition)

    def send_raw(self, value: bytes | None, *, key: bytes | None = None,
                 timestamp: int | None = None, headers: Headers | None = None,
                 partition: int | None = None) -> None:
        """Process already-serialized bytes, e.g. to test how poison messages are handled."""
        ts = self._driver.wall_clock_ms if timestamp is None else int(timestamp)
        self._driver._deliver(self._topic.name, -1 if partition is None else partition,
                              key, value, ts, headers)

    def send_many(self, items: Iterable[Any]) -> None:
        """Send several records.

        Each item is a ``Record`` (key, value, timestamp, headers and partition are used) or a
        bare value.
        """
        for item in items:
            if isinstance(item, Record):
                self.send(item.value, key=item.key, timestamp=item.timestamp or None,
                          headers=item.headers, partition=item.partition)
            else:
                self.send(item)


class TestOutput:
    """Reads what the topology produced to one topic; each record is read once.

    Committed records only, in the order they were written.
    """

    def __init__(self, driver: TopologyTestDriver, topic: Topic) -> None:
        self._driver = driver
        self._topic = topic
        self._kd = topic.key.deserializer(topic.name, True, driver.serde_context)
        self._vd = topic.value.deserializer(topic.name, False, driver.serde_context)

    def read_records(self) -> list[Record]:
        """All records produced since the last read, deserialized with the topic's serdes."""
        return [Record(self._kd(r.key), self._vd(r.value), r.ts, r.headers, r.topic,
                       r.partition, r.offset) for r in self._driver._drain(self._topic.name)]

    def read_values(self) -> list[Any]:
        """The values of ``read_records()``."""
        return [r.value for r in self.read_records()]

    def read_key_values(self) -> list[tuple[Any, Any]]:
        """``(key, value)`` pairs of ``read_records()``."""
        return [(r.key, r.value) for r in self.read_records()]

    def is_empty(self) -> bool:
        """True when nothing unread is waiting in this topic."""
        return not self._driver._pending(self._topic.name)


class TopologyTestDriver:
    """Drive a topology (or one of its processors) with explicit records and time.

    ``config`` may set ``schema_registry.url`` (default: a fresh ``mock://`` registry, so
    Avro topics work out of the box), ``schemas_dir``, ``store`` (``memory`` or ``rocksdb``
    for every store), ``state_dir``, ``wall_clock_ms`` (the start time), ``partitions``
    (of topics that declare none; default 1), ``restore_chunk_records`` (changelog records
    restored per loop turn; default 1000), ``max_task_idle_ms`` (how long a task reading
    several topics waits for an input with nothing buffered, on the driver's wall clock;
    default 0, see ``streamflow.runtime.alignment``) and ``group_protocol`` (``classic``:
    eager range rebalances, the default; ``consumer``: incremental ones, as KIP-848 and
    cooperative-sticky do) and ``encryption_keys`` (field-level encryption: a key provider
    such as ``streamflow.serde.keyfile.StaticKeys``, or a key file path; default none, so
    encrypted fields pass through as ciphertext).
    """

    __test__ = False  # not a pytest test class

    def __init__(self, topology: Topology, *, processor: str | None = None,
                 config: dict[str, Any] | None = None, auto_commit: bool = True) -> None:
        self.topology = topology
        cfg = dict(config or {})
        url = cfg.get("schema_registry.url") or f"mock://streamflow-driver-{next(_ids)}"
        keys = cfg.get("encryption_keys")
        self.serde_context = SerdeContext(
            registry_factory=lambda: _registry(url),
            schemas_dir=Path(cfg.get("schemas_dir", "schemas")),
            keys=provider_from_setting(str(keys)) if isinstance(keys, (str, Path)) else keys,
        )
        if processor is not None and processor not in topology.processors:
            msg = (
                f"topology {topology.name!r} has no processor {processor!r}; "
                f"it has {sorted(topology.processors)}"
            )
            raise TopologyError(msg)
        self.processors = (
            [topology.processors[processor]] if processor else list(topology.processors.values())
        )
        self.wall_clock_ms: int = int(cfg.get("wall_clock_ms", 0))
        self.auto_commit = auto_commit
        protocol = cfg.get("group_protocol", "classic")
        if protocol not in ("classic", "consumer"):
            msg = f"group_protocol must be 'classic' or 'consumer', got {protocol!r}"
            raise ValueError(msg)
        self.cluster = InMemoryCluster(int(cfg.get("partitions", 1)),
                                       incremental=protocol == "consumer")
        self._restore_chunk = int(cfg.get("restore_chunk_records", 1000))
        self._max_task_idle_ms = int(cfg.get("max_task_idle_ms", 0))
        self._backend: str | None = cfg.get("store")
        self._tmp_state: str | None = None
        state_dir = cfg.get("state_dir")
        if state_dir is None:
            state_dir = self._tmp_state = tempfile.mkdtemp(prefix="streamflow-driver-")
        self._state_dir = Path(state_dir)
        self._cursors: dict[str, int] = {}
        self._closed = False
        self._held = False  # inside backlog(): sends are written, not processed
        self._create_topics()
        self.engines: dict[str, list[Engine]] = {p.name: [] for p in self.processors}
        self._members: dict[int, str] = {}  # id(engine) -> its group member id
        try:
            for p in self.processors:
                self._start_instance(p)
            self._pump()  # restore the stores (from local state in ``state_dir``, if any)
        except BaseException:
            self.close()
            raise

    # -- set-up ------------------------------------------------------------------------
    def _create_topics(self) -> None:
        """Every topic with its declared partitions.

        Internal ones as wide as their processor's widest declared input (as a worker creates them).
        """
        for t in self.topology.topics.values():
            if not t.internal:
                self.cluster.create_topic(t.name, t.partitions)
        for p in self.processors:
            topics = processor_topics(p)
            width = max([self.cluster.partitions(n) for n in p.source_topics()
                         if not self.topology.topics[n].internal] or [1])
            for t in topics:
                self.cluster.create_topic(t.name, t.partitions or width)

    def _ports(self, p: Processor, member: str) -> Ports:
        cluster = self.cluster
        tid = f"{p.group_id}-{member}" if p.guarantee == "exactly_once" else None
        return Ports(
            consumer=lambda: MemoryConsumer(cluster, p.group_id, member),
            producer=lambda on_delivery: MemoryProducer(cluster, on_delivery, tid),
            admin=MemoryAdmin(cluster),
            changelogs=MemoryChangelogs(cluster),
            global_tables=MemoryChangelogs(cluster),
        )

    def _start_instance(self, p: Processor, member: str | None = None) -> Engine:
        instances = self.engines[p.name]
        if member is None:
            taken = {self._members[id(e)] for e in instances}
            member = next(str(i) for i in itertools.count() if str(i) not in taken)
        engine = Engine(p, self._ports(p, member), serde_ctx=self.serde_context,
                        state_dir=self._state_dir / member, backend=self._backend,
                        clock=self._wall_clock, restore_chunk=self._restore_chunk,
                        max_task_idle_ms=self._max_task_idle_ms)
        instances.append(engine)
        self._members[id(engine)] = member
        engine.start()
        return engine

    def _wall_clock(self) -> int:
        return self.wall_clock_ms

    # -- inputs and outputs ------------------------------------------------------------
    def input(self, topic: Topic | str) -> TestInput:
        """The input side of a topic that a driven processor reads (global tables' too).

        Records sent to a global table's topic update the global store of every instance
        before their next stream record.
        """
        t = self.topology.resolve_topic(topic)
        readers = {p.name for p in self.processors
                   if t.name in p.source_topics() or t.name in global_topics(p)}
        if not readers:
            msg = (
                f"no driven processor reads topic {t.name!r}; it is read by none of "
                f"{sorted(p.name for p in self.processors)}"
            )
            raise TopologyError(msg)
        return TestInput(self, t)

    def output(self, topic: Topic | str) -> TestOutput:
        """The output side of a topic (including dead-letter topics)."""
        name = topic.name if isinstance(topic, Topic) else topic
        if name in self.topology.topics:
            return TestOutput(self, self.topology.topics[name])
        return TestOutput(self, Topic(name, Bytes(), Bytes()))

    def _deliver(self, topic: str, partition: int, k: bytes | None, v: bytes | None,
                 ts: int, h: Headers | None) -> None:
        if self._closed:
            msg = "the TopologyTestDriver is closed"
            raise RuntimeError(msg)
        self.cluster.append(topic, partition, k, v, ts, h)
        if not self._held:
            self._run()

    @contextmanager
    def backlog(self) -> Iterator[None]:
        """Write the records sent inside the block to their topics without processing them.

        They are processed when the block ends, as a worker started on topics that already
        hold them would: consumed in batches, each task taking its inputs' records in timestamp
        order (``streamflow.runtime.alignment``)::

            with driver.backlog():
                driver.input("devices").send_many(rows)      # a table's backlog
                driver.input("readings").send_many(readings)  # then a stream's
        """
        if self._held:
            msg = "backlog() blocks do not nest"
            raise RuntimeError(msg)
        self._held = True
        try:
            yield
        finally:
            self._held = False
        self._run()

    def _drain(self, topic: str) -> list[Any]:
        records = self.cluster.order.get(topic, [])
        i = self._cursors.get(topic, 0)
        out = []
        while i < len(records):
            rec = records[i]
            if rec.txn is not None and rec.txn.state == "open":
                break  # read_committed: nothing past an open transaction
            if rec.visible:
                out.append(rec)
            i += 1
        self._cursors[topic] = i
        return out

    def _pending(self, topic: str) -> bool:
        records = self.cluster.order.get(topic, [])
        return any(r.visible for r in records[self._cursors.get(topic, 0):])

    # -- running -----------------------------------------------------------------------
    def _engines(self) -> Iterator[Engine]:
        for instances in self.engines.values():
            yield from instances

    def step(self) -> int:
        """Turn every instance's loop once: process one consumed batch, restore one chunk.

        Return how many records were processed. Nothing is committed (see ``commit()``).
        """
        n = 0
        for engine in list(self._engines()):
            assert engine.consumer is not None
            if engine.globals is not None:  # as the worker's loop: global news first
                engine.globals.poll()
            msgs = engine.consumer.consume(1000, 0)
            before = engine.tasks.buffered  # records of aligned tasks waiting for an input
            if msgs or before:
                engine.process(msgs)
                n += len(msgs) or before - engine.tasks.buffered
            if engine.restoring:
                engine.restore()
        return n

    def _pump(self) -> int:
        """Process what every instance can consume and restore, until none has anything new."""
        total = 0
        while True:
            restoring = any(e.restoring for e in self._engines())
            n = self.step()
            if not n and not restoring:  # a restore that ended resumes partitions: go on
                return total
            total += n

    def _run(self) -> None:
        self._pump()
        if self.auto_commit:
            while True:
                self._commit_all()
                if not self._pump():
                    break

    def _commit_all(self) -> None:
        for engine in list(self._engines()):
            engine.commit()

    def commit(self) -> None:
        """Commit every instance, as a worker does on its commit interval.

        Then go on processing what the commit made visible (exactly-once outputs that other
        tasks read, e.g. through a repartition topic), as the worker's loop would.
        """
        self._commit_all()
        self._pump()

    def advance_wall_clock(self, ms: int) -> None:
        """Move the driver's wall clock forward by ``ms`` milliseconds and run what is due.

        E.g. windows closed on idleness.
        """
        if ms < 0:
            msg = "the wall clock only moves forward"
            raise ValueError(msg)
        self.wall_clock_ms += int(ms)
        for engine in list(self._engines()):
            engine.punctuate(self.wall_clock_ms)
        self._run()

    # -- failures and fleets -----------------------------------------------------------
    def crash(self, processor: str | None = None, *, keep_state: bool = False,
              settle: bool = True) -> None:
        """Kill every instance of ``processor`` as kill -9 would.

        ``processor`` defaults to the only driven one. Nothing is committed, an open transaction
        is left to be fenced. New instances start at once and restore their stores from the
        changelogs (from the local state too, with ``keep_state=True``); with ``settle=False``
        they are only started, and ``step()`` runs them.
        """
        p = self._processor(processor)
        members = [self._members.pop(id(e)) for e in self.engines[p.name]]
        for engine in self.engines[p.name]:
            engine.tasks.abandon()
            if engine.globals is not None:  # its files are released, its offsets kept
                engine.globals.close()
            assert isinstance(engine.consumer, MemoryConsumer)
            engine.consumer.crash()
        self.engines[p.name] = []
        for member in members:
            if not keep_state:
                shutil.rmtree(self._state_dir / member, ignore_errors=True)
            self._start_instance(p, member)
        if settle:
            self._run()

    def scale(self, instances: int, processor: str | None = None, *,
              settle: bool = True) -> None:
        """Run ``instances`` instances of ``processor`` in its consumer group.

        Every change rebalances the group: revoked tasks commit and close, assigned ones
        restore their state from the changelogs. With ``settle=False`` nothing more runs:
        ``step()`` turns the instances' loops.
        """
        if instances < 1:
            msg = "a processor needs at least one instance"
            raise ValueError(msg)
        p = self._processor(processor)
        running = self.engines[p.name]
        while len(running) > instances:
            engine = running.pop()
            del self._members[id(engine)]
            engine.close()
        while len(running) < instances:
            self._start_instance(p)
        if settle:
            self._run()

    def _processor(self, name: str | None) -> Processor:
        if name is None:
            if len(self.processors) != 1:
                msg = f"name the processor: the driver runs {[p.name for p in self.processors]}"
                raise TopologyError(msg)
            return self.processors[0]
        for p in self.processors:
            if p.name == name:
                return p
        msg = f"the driver runs no processor {name!r}"
        raise TopologyError(msg)

    # -- inspection --------------------------------------------------------------------
    def metrics(self, processor: str | None = None) -> dict[str, int]:
        """Task counters of the driven processors, e.g. ``"<window step>.late_records"``.

        Summed over processors, instances and tasks unless ``processor`` names one.
        """
        out: dict[str, int] = {}
        for name, instances in self.engines.items():
            if processor is not None and name != processor:
                continue
            for engine in instances:
                for key, n in engine.tasks.metrics().items():
                    out[key] = out.get(key, 0) + n
        return out

    def store(self, name: str, *, processor: str | None = None,
              partition: int | None = None) -> Any:
        """A processor's store, to inspect state in tests.

        The store of ``partition``, or (by default) a read-only view over every partition's
        store. A global table's store (``global-<topic>`` unless named) is the first
        instance's, whole.
        """
        for p in self.processors:
            if name in global_stores(p) and (processor is None or p.name == processor):
                engine = self.engines[p.name][0]
                assert engine.globals is not None
                return engine.globals.stores[name]
        owners = [p for p in self.processors
                  if name in p.stores and (processor is None or p.name == processor)]
        if len(owners) != 1:
            raise KeyError(
                f"no single driven processor has a store {name!r}"
                + (" (several do: name the processor)" if owners else "")
            )
        stores = {task.partition: task.state.stores[name]
                  for engine in self.engines[owners[0].name]
                  for task in engine.tasks.tasks.values()}
        if partition is not None:
            return stores[partition]
        if len(stores) == 1:
            return next(iter(stores.values()))
        return StoreView([stores[p] for p in sorted(stores)])

    # -- closing -----------------------------------------------------------------------
    def close(self) -> None:
        """Release the driver's resources (stores, temporary state directory)."""
        if self._closed:
            return
        self._closed = True
        for engine in list(self._engines()):
            engine.failed = True  # close without committing what a failed send left
            engine.close()
        if self._tmp_state:
            shutil.rmtree(self._tmp_state, ignore_errors=True)

    def __enter__(self) -> TopologyTestDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StoreView:
    """Read-only access to one store across the partitions of a processor."""

    def __init__(self, stores: list[TaskStore]) -> None:
        self._stores = stores

    def get(self, key: Any, default: Any = None) -> Any:
        """The value of ``key`` in whichever partition holds it."""
        for s in self._stores:
            v = s.get(key, _MISSING)
            if v is not _MISSING:
                return v
        return default

    def __contains__(self, key: Any) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def items(self) -> Iterator[tuple[Any, Any]]:
        """Every entry, partition by partition."""
        for s in self._stores:
            yield from s.items()

    def range(self, start: Any = None, end: Any = None) -> Iterator[tuple[Any, Any]]:
        """Entries with ``start <= key < end``, partition by partition."""
        for s in self._stores:
            yield from s.range(start, end)

    def prefix(self, prefix: str | bytes) -> Iterator[tuple[Any, Any]]:
        """Entries whose key starts with ``prefix``, partition by partition."""
        for s in self._stores:
            yield from s.prefix(prefix)


_MISSING = object()


def _registry(url: str) -> Any:
    from streamflow.kafka.registry import make_registry_client

    return make_registry_client({"url": url})
