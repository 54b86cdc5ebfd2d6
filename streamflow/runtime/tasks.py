"""The tasks of one processor in one worker.

Kafka Streams' ``TaskManager`` and ``StreamTask``: a task is one partition number, with the
compiled chains and the stores of that partition; a route is one assigned ``(topic, partition)``
of a task, with how far it is processed and committed.

The manager opens tasks when partitions are assigned, closes them when they are revoked or
lost, processes batches of consumed records, flushes stores to their changelogs, writes
checkpoints, and rewinds every task to its committed state after a failed transaction.

A task with stores opens in a restoring state (Kafka Streams' RESTORING): its input partitions
are paused while the group consumer keeps polling, and ``restore()`` (called on every turn of
the loop) looks up its committed offsets, then brings its stores up to date from their
changelogs one chunk at a time. When every store has reached its changelog's end the task
runs: its inputs are moved back to the committed offsets if records of them were fetched
before the pause (they were dropped, never processed), and resumed.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamflow.dsl.nodes import AsyncApply
from streamflow.kafka import client
from streamflow.plan.async_steps import AsyncRunner, Handle, flush
from streamflow.plan.compile import StepError, TaskContext, compile_task
from streamflow.runtime.alignment import Aligner, aligned
from streamflow.runtime.errors import ErrorPolicy, ProcessingFailed
from streamflow.runtime.ports import Admin, GroupConsumer, Offsets, RestoreConsumer
from streamflow.runtime.restore import Restorer, StoreRestore
from streamflow.serde import SerdeContext
from streamflow.state.task_state import TaskState

if TYPE_CHECKING:
    from streamflow.dsl.topology import Processor

log = logging.getLogger("streamflow.tasks")

ProduceTo = Callable[[str, int, bytes, "bytes | None", "list[tuple[str, bytes]]"], None]
CHECKPOINT_EVERY_S = 30.0
# committed offsets are read with read_committed: the broker answers once the transactions
# that hold them are complete. Each turn of the loop asks for at most COMMITTED_WAIT_S and
# asks again on the next turn, for COMMITTED_TIMEOUT_S in all.
COMMITTED_WAIT_S = 2.0
COMMITTED_TIMEOUT_S = 60.0


class Route:
    """Where records of one (topic, partition) go, and how far they are processed.

    The routes of an aligned task also buffer their records (``streamflow.runtime.alignment``).
    """

    __slots__ = ("buffer", "committed", "ctx", "enforced", "entry", "eof", "idle_deadline",
                 "lag_since", "partition", "paused", "position", "topic")

    def __init__(self, topic: str, partition: int, entry: Any, ctx: TaskContext) -> None:
        self.topic = topic
        self.partition = partition
        self.entry = entry
        self.ctx = ctx
        self.position = -1  # next offset to process; -1 = nothing processed since assignment
        self.committed = -1
        # alignment: consumed records not processed yet, the consumer at the partition's end,
        # when an idle wait ends, since when a fetch is awaited, paused for a full buffer,
        # the task went on without it (logged)
        self.buffer: deque[Any] = deque()
        self.eof = False
        self.idle_deadline: int | None = None
        self.lag_since: int | None = None
        self.paused = False
        self.enforced = False


class Task:
    """One partition of the processor: its compiled chains and its stores."""

    __slots__ = ("compiled", "partition", "state")

    def __init__(self, partition: int, compiled: Any, state: TaskState) -> None:
        self.partition = partition
        self.compiled = compiled
        self.state = state


class TaskRestore:
    """A task whose stores are being restored before it runs."""

    __slots__ = ("committed", "dropped", "pairs", "partition", "rewound", "since", "state",
                 "stores")

    def __init__(self, partition: int, state: TaskState, pairs: list[tuple[str, int]],
                 *, rewound: bool) -> None:
        self.partition = partition
        self.state = state
        self.pairs = set(pairs)  # its assigned inputs, paused
        self.rewound = rewound  # reopened after a failed transaction: inputs go back
        self.committed: dict[str, int] | None = None  # source topic -> committed offset
        self.stores: list[StoreRestore] | None = None  # None until the restore began
        self.dropped: dict[tuple[str, int], int] = {}  # first offset fetched before the pause
        self.since = time.monotonic()

    @property
    def done(self) -> bool:
        """True when every store has reached the end of its changelog."""
        return self.stores is not None and all(r.done for r in self.stores)


class TaskManager:
    """Opens, runs, commits and closes the tasks of one processor."""

    def __init__(self, processor: Processor, *, state_dir: Path, backend: str | None,
                 serde_ctx: SerdeContext, changelogs: RestoreConsumer, admin: Admin,
                 cache_entries: int, clock: Callable[[], int] | None = None,
                 restore_chunk: int = 20_000, restore_max_rate: float = 0.0,
                 max_task_idle_ms: int = 0) -> None:
        self.processor = processor
        self.state_dir = state_dir / processor.topology.name / processor.name
        self.backend = backend or processor.store_backend
        self.serde_ctx = serde_ctx
        self.restorer = Restorer(changelogs, chunk=restore_chunk, max_rate=restore_max_rate,
                                 fail_undecodable=processor.policies["deserialize"] == "fail")
        self.admin = admin
        self.cache_entries = cache_entries
        self.clock = clock
        self.routes: dict[tuple[str, int], Route] = {}
        self.tasks: dict[int, Task] = {}  # running
        self.restores: dict[int, TaskRestore] = {}  # restoring, by partition
        self._consumer: GroupConsumer | None = None
        # tasks reading several topics take their records in timestamp order
        self.aligner = (Aligner(processor, max_task_idle_ms, clock)
                        if aligned(processor) else None)
        self.emit: Any = None  # the collector's emit for newly opened tasks
        self.global_stores: dict[str, Any] = {}  # the worker's global tables, for every task
        # the event loop of the async steps (map_async), flushed after every batch; None
        # when the processor has none, so other processors' batches do not pay for it
        self.runner = (AsyncRunner(processor.name)
                       if any(isinstance(n, AsyncApply) for n in processor.nodes.values())
                       else None)
        # counters for metrics: records consumed per (topic, partition) since the start (not
        # reset by rebalances or rewinds), changelog records sent
        self.consumed: dict[tuple[str, int], int] = {}
        self.changelog_records = 0

    @property
    def consumer(self) -> GroupConsumer | None:
        """The group consumer (set by the engine once started, None once closed)."""
        return self._consumer

    @consumer.setter
    def consumer(self, consumer: GroupConsumer | None) -> None:
        self._consumer = consumer
        if self.aligner is not None:
            self.aligner.consumer = consumer

    @property
    def buffered(self) -> int:
        """Records consumed for aligned tasks and not processed yet."""
        return self.aligner.buffered if self.aligner is not None else 0

    # -- opening and closing ---------------------------------------------------------
    @property
    def assigned(self) -> list[tuple[str, int]]:
        """The assigned ``(topic, partition)`` pairs (running or restoring), sorted."""
        return sorted({*self.routes, *(tp for r in self.restores.values() for tp in r.pairs)})

    @property
    def restoring(self) -> bool:
        """True while any assigned task is restoring its stores."""
        return bool(self.restores)

    # simple counters for metrics (see Restorer)
    @property
    def restore_records_done(self) -> int:
        """Changelog records read by restores since the start (applied or skipped)."""
        return self.restorer.records_done

    @property
    def restore_records_remaining(self) -> int:
        """Changelog records still to read by the restores under way."""
        return self.restorer.remaining

    @property
    def restore_seconds(self) -> float:
        """Seconds spent restoring since the start."""
        return self.restorer.seconds

    def assign(self, pairs: list[tuple[str, int]]) -> None:
        """Open the tasks of newly assigned partitions.

        Tasks with stores start restoring: their inputs are paused until ``restore()`` has
        brought the stores up to date. Partitions may come in several assignments (the
        cooperative protocols give only the partitions that move).
        """
        for part in sorted({p for _, p in pairs} - set(self.tasks) - set(self.restores)):
            state = self._state(part)
            if state.stores:
                self.restores[part] = TaskRestore(part, state, [], rewound=False)
            else:
                self.tasks[part] = self._task(part, state)
        paused = []
        for topic, part in pairs:
            restore = self.restores.get(part)
            if restore is not None:
                restore.pairs.add((topic, part))
                paused.append((topic, part))
            else:
                task = self.tasks[part]
                self.routes[(topic, part)] = Route(topic, part, task.compiled.entries[topic],
                                                   task.compiled.context)
        if paused:
            assert self.consumer is not None
            self.consumer.pause(paused)
        self._share_cache()

    def _state(self, part: int) -> TaskState:
        return TaskState(self.processor.stores, part, self.state_dir, self.backend,
                         self.serde_ctx)

    def _task(self, part: int, state: TaskState) -> Task:
        ctx = TaskContext(self.processor.name, part, self.emit, self.serde_ctx, state.stores)
        ctx.globals = self.global_stores
        if self.clock is not None:
            ctx.clock = self.clock
        return Task(part, compile_task(self.processor, ctx), state)

    # -- restoring ---------------------------------------------------------------------
    def restore(self) -> int:
        """One turn of restoring: begin the restores that can, apply one chunk.

        Tasks whose stores are all restored start running. Return how many started.
        """
        if not self.restores:
            return 0
        self._begin_restores()
        self.restorer.step()
        ready = [r for r in self.restores.values() if r.done]
        for r in ready:
            self._run(r)
        if ready:
            self._share_cache()
        return len(ready)

    def _begin_restores(self) -> None:
        """Look up the committed offsets of new restores (outside any callback) and begin."""
        waiting = [r for r in self.restores.values() if r.committed is None]
        if not waiting:
            return
        consumer = self.consumer
        assert consumer is not None
        sources = self.processor.source_topics()
        wanted = [(t, r.partition) for r in waiting for t in sources]
        try:
            committed = consumer.committed(wanted, COMMITTED_WAIT_S)
        except client.KafkaException as e:
            if time.monotonic() - min(r.since for r in waiting) > COMMITTED_TIMEOUT_S:
                raise
            log.info("committed offsets not known yet (%s); asking again", e)
            return
        for r in waiting:
            r.committed = {t: committed[(t, r.partition)] for t in sources}
            r.stores = self.restorer.begin(r.state, r.committed)

    def _run(self, r: TaskRestore) -> None:
        """A task's stores are restored: route its inputs to it and resume them."""
        consumer = self.consumer
        assert consumer is not None and r.committed is not None
        del self.restores[r.partition]
        task = self.tasks[r.partition] = self._task(r.partition, r.state)
        for topic, part in sorted(r.pairs):
            route = self.routes[(topic, part)] = Route(topic, part,
                                                       task.compiled.entries[topic],
                                                       task.compiled.context)
            route.committed = max(r.committed.get(topic, -1), -1)
            # records fetched before the pause were dropped, and after a rewind the
            # processed ones must be processed again: both go back to the committed offset
            off = r.committed.get(topic, -1)
            if off < 0:
                off = r.dropped.get((topic, part), client.OFFSET_BEGINNING)
            if r.rewound or (topic, part) in r.dropped:
                consumer.seek(topic, part, off)
        consumer.resume(sorted(r.pairs))
        log.info("task %d restored: running %s", r.partition,
                 ", ".join(f"{t}[{p}]" for t, p in sorted(r.pairs)))

    def forget(self, pairs: list[tuple[str, int]], *, checkpoint: bool) -> None:
        """Drop revoked or lost partitions; close tasks with no partition left.

        A restore whose task has no partition left is abandoned (see ``Restorer.abandon``).
        """
        unpause = []
        for tp in pairs:
            route = self.routes.pop(tp, None)
            if route is not None and route.paused:
                unpause.append(tp)
        live = {p for _, p in self.routes}
        self.close([self.tasks.pop(p) for p in list(self.tasks) if p not in live],
                   checkpoint=checkpoint)
        gone = set(pairs)
        paused = unpause + [tp for r in self.restores.values() for tp in r.pairs if tp in gone]
        for r in list(self.restores.values()):
            r.pairs -= gone
            if not r.pairs:
                self._abandon(r, checkpoint=checkpoint)
        if paused and self.consumer is not None:
            self.consumer.resume(paused)  # a pause must not outlive the assignment
        self._share_cache()

    def _abandon(self, r: TaskRestore, *, checkpoint: bool) -> None:
        del self.restores[r.partition]
        self.restorer.abandon(r.state, checkpoint=checkpoint)
        r.state.close()

    def close(self, tasks: list[Task] | None = None, *, checkpoint: bool = True) -> None:
        """Close ``tasks`` (default: all, restoring ones too), checkpointing their stores first."""
        if tasks is None:
            tasks = [self.tasks.pop(p) for p in list(self.tasks)]
            self.routes.clear()
            for r in list(self.restores.values()):
                self._abandon(r, checkpoint=checkpoint)
            self.restorer.close()
            if self.runner is not None:
                self.runner.close()
        if checkpoint:
            self.checkpoint(tasks)
        for task in tasks:
            task.state.close()

    def abandon(self) -> None:
        """Drop every task as a killed process would.

        Nothing is flushed, committed or checkpointed; the stores' files are released.
        """
        for task in self.tasks.values():
            task.state.discard_uncommitted()
            task.state.close()
        for r in list(self.restores.values()):
            self._abandon(r, checkpoint=False)
        self.tasks.clear()
        self.routes.clear()
        if self.runner is not None:
            self.runner.close()

    def _share_cache(self) -> None:
        """Split the cache budget evenly over the stores of the open tasks."""
        stores = [s for t in self.tasks.values() for s in t.state.stores.values()]
        for store in stores:
            store.resize_cache(self.cache_entries // len(stores))

    # -- processing --------------------------------------------------------------------
    def process(self, msgs: list[Any], policy: ErrorPolicy,
                on_error: Callable[[Any], None]) -> int:
        """Run a batch of consumed records through their tasks' chains.

        Records of partitions no longer assigned are dropped; error events go to ``on_error``.
        Tasks reading several topics buffer the records and take them in timestamp order
        (``streamflow.runtime.alignment``): a call without records may process buffered ones.
        Return how many records (and error events) were consumed, partition-EOF events aside.
        """
        if self.aligner is not None:
            eofs = self.aligner.add(self.routes, msgs, on_error, self._dropped)
            self.aligner.drain(self.routes, lambda route, ms: self._run_records(route, ms, policy))
            if self.runner is not None:
                self._flush(policy)
            return len(msgs) - eofs
        routes = self.routes
        consumed = self.consumed
        route: Any = None
        ctx: Any = None
        entry: Any = None
        last_part = -1
        last_topic = ""
        n = 0  # records of the current partition run (counted once per run)
        for m in msgs:
            if m.error() is not None:
                on_error(m.error())
                continue
            part = m.partition()
            topic = m.topic()
            if part != last_part or topic != last_topic:  # partition runs
                if n:
                    tp = (last_topic, last_part)
                    consumed[tp] = consumed.get(tp, 0) + n
                    n = 0
                route = routes.get((topic, part))
                last_part, last_topic = part, topic
                if route is None:  # revoked in the meantime, or restoring
                    self._dropped(topic, part, m.offset())
                    continue
                entry = route.entry
                ctx = route.ctx
                ctx.topic = topic
            elif route is None:
                continue
            n += 1
            off = m.offset()
            ctx.offset = off
            try:
                entry(m.key(), m.value(), m.timestamp()[1], m.headers())
            except StepError as e:
                policy.handle(e, topic, part, off, m.key(), m.value(), m.timestamp()[1],
                              m.headers())
            route.position = off + 1
        if n:
            tp = (last_topic, last_part)
            consumed[tp] = consumed.get(tp, 0) + n
        if self.runner is not None:
            self._flush(policy)
        return len(msgs)

    def _flush(self, policy: ErrorPolicy | None) -> None:
        """Run the async steps' calls of the batch and pass their results on, in order.

        Before the batch counts as processed (its offsets are committed, its transaction
        commits). A failed call goes to ``policy`` with its source record; records that the
        wall clock produced (``policy`` None) stop the processor, as their other failures do.
        """
        assert self.runner is not None

        def failed(e: StepError, topic: str | None, part: int, off: int | None,
                   source: tuple[Any, Any, int, Any] | None) -> None:
            if policy is None or topic is None or off is None or source is None:
                msg = (f"processor {self.processor.name!r}: step {e.step!r} failed on a "
                       f"record the wall clock produced: {e.cause}")
                raise ProcessingFailed(msg) from e.cause
            policy.handle(e, topic, part, off, *source)

        handle: Handle = failed
        flush([t.compiled.context for t in self.tasks.values()], self.runner, handle)

    def _run_records(self, route: Route, msgs: list[Any], policy: ErrorPolicy) -> None:
        """Process records of one route of an aligned task (the batch loop above, one run)."""
        ctx = route.ctx
        ctx.topic = topic = route.topic
        part = route.partition
        entry = route.entry
        for m in msgs:
            ctx.offset = off = m.offset()
            try:
                entry(m.key(), m.value(), m.timestamp()[1], m.headers())
            except StepError as e:
                policy.handle(e, topic, part, off, m.key(), m.value(), m.timestamp()[1],
                              m.headers())
            route.position = off + 1
        tp = (topic, part)
        self.consumed[tp] = self.consumed.get(tp, 0) + len(msgs)

    def _dropped(self, topic: str, part: int, offset: int) -> None:
        """A record of a partition that is not running was fetched: it is not processed."""
        r = self.restores.get(part)
        if r is not None and (topic, part) in r.pairs:
            r.dropped.setdefault((topic, part), offset)

    def punctuate(self, wall_ms: int, before: Callable[[], None]) -> None:
        """Let time-driven steps (windows closing on idleness) act on the wall clock.

        ``before`` runs first when any task has such a step (a transaction begins).
        """
        for task in self.tasks.values():
            ctx = task.compiled.context
            if ctx.punctuators:
                before()
                ctx.topic = None
                ctx.offset = None
                try:
                    ctx.punctuate(wall_ms)
                except StepError as e:
                    msg = (
                        f"processor {self.processor.name!r}: step {e.step!r} failed while "
                        f"acting on the wall clock: {e.cause}"
                    )
                    raise ProcessingFailed(msg) from e.cause
        if self.runner is not None:
            self._flush(None)

    # -- committing --------------------------------------------------------------------
    def offsets(self, only: set[tuple[str, int]] | None = None) -> Offsets:
        """``(topic, partition, next offset)`` of the routes processed past their commit.

        Past their committed offset; of ``only`` those routes, when given.
        """
        return [(tp[0], tp[1], r.position) for tp, r in self.routes.items()
                if r.position > r.committed and (only is None or tp in only)]

    def flush_stores(self, produce_to: ProduceTo) -> None:
        """Every store's changes since the last commit to its changelog.

        Each record with the source positions it reflects.
        """
        for task in self.tasks.values():
            if task.state.stores:
                positions = {t: r.position for (t, p), r in self.routes.items()
                             if p == task.partition and r.position >= 0}
                n = task.state.flush(produce_to, positions)
                self.changelog_records += n
                log.debug("task %d: %d changelog records", task.partition, n)

    def committed(self, offsets: Offsets) -> None:
        """The commit of ``offsets`` succeeded: apply and checkpoint.

        Write the stores' batches to the local databases and checkpoint the tasks it proved this
        worker owns.
        """
        for t, p, off in offsets:
            self.routes[(t, p)].committed = off
        for task in self.tasks.values():
            task.state.write_pending()
        # a commit that carried a task's offsets proves this worker still owns it, so the
        # changelog's end is this worker's own writes: only then may it be checkpointed
        proven = {p for _, p, _ in offsets}
        self.checkpoint([t for t in self.tasks.values() if t.state.stores
                         and t.partition in proven and t.state.checkpoint_due(CHECKPOINT_EVERY_S)])

    def checkpoint(self, tasks: list[Task]) -> None:
        """Record each store's changelog end as restored-up-to, for all ``tasks`` at once.

        A store restored from its table's source topic reflects it up to the committed offset.
        """
        wanted = [(topic, t.partition) for t in tasks
                  for store, topic in t.state.changelogs.items() if store not in t.state.sources]
        ends = {}
        if wanted:
            try:
                ends = self.admin.end_offsets(wanted)
            except Exception as e:  # a checkpoint is an optimisation; never fail on it
                log.warning("no checkpoint for %d changelog partitions: %s", len(wanted), e)
        for task in tasks:
            for store, topic in task.state.changelogs.items():
                route = self.routes.get((topic, task.partition))
                if store not in task.state.sources:
                    off = ends.get((topic, task.partition), -1)
                else:
                    off = -1 if route is None else route.committed
                if off >= 0:
                    task.state.write_checkpoint(store, off)

    def rewind(self) -> None:
        """After a failed transaction: reopen every running task and rewind its inputs.

        Uncommitted state is dropped; each task restores again (through ``restore()``, like a
        newly assigned one: the changelog's tail after its checkpoint) with its inputs paused,
        then goes back to its committed offsets. Nothing of this runs here, so a rewind inside
        a rebalance callback does not hold up the rebalance.
        """
        consumer = self.consumer
        assert consumer is not None
        parts = list(self.tasks)
        paused = []
        for part in parts:
            task = self.tasks.pop(part)
            task.state.discard_uncommitted()
            task.state.close()
            pairs = [tp for tp in self.routes if tp[1] == part]
            for tp in pairs:
                del self.routes[tp]
            self.restores[part] = TaskRestore(part, self._state(part), pairs, rewound=True)
            paused += pairs
        if paused:
            consumer.pause(paused)
        log.warning("rewinding %d tasks to their committed offsets", len(parts))

    def metrics(self) -> dict[str, int]:
        """Task counters (e.g. ``"<window step>.late_records"``) summed over tasks."""
        out: dict[str, int] = {}
        for task in self.tasks.values():
            for name, n in task.compiled.context.metrics.items():
                out[name] = out.get(name, 0) + n
        return out

