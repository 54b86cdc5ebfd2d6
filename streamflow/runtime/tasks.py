"""The tasks of one processor in one worker.

Kafka Streams' ``TaskManager`` and ``StreamTask``: a task is one partition number, with the
compiled chains and the stores of that partition; a route is one assigned ``(topic, partition)``
of a task, with how far it is processed and committed.

The manager opens tasks when partitions are assigned (restoring their stores from the
changelogs first), closes them when they are revoked or lost, processes batches of
consumed records, flushes stores to their changelogs, writes checkpoints, and rewinds every
task to its committed state after a failed transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamflow.kafka import client
from streamflow.plan.compile import StepError, TaskContext, compile_task
from streamflow.runtime.errors import ErrorPolicy, ProcessingFailed
from streamflow.runtime.ports import Admin, ChangelogReader, GroupConsumer, Offsets
from streamflow.runtime.restore import restore_store
from streamflow.serde import SerdeContext
from streamflow.state.task_state import TaskState

if TYPE_CHECKING:
    from streamflow.dsl.topology import Processor

log = logging.getLogger("streamflow.tasks")

ProduceTo = Callable[[str, int, bytes, "bytes | None", "list[tuple[str, bytes]]"], None]
CHECKPOINT_EVERY_S = 30.0


class Route:
    """Where records of one (topic, partition) go, and how far they are processed."""

    __slots__ = ("committed", "ctx", "entry", "position")

    def __init__(self, entry: Any, ctx: TaskContext) -> None:
        self.entry = entry
        self.ctx = ctx
        self.position = -1  # next offset to process; -1 = nothing processed since assignment
        self.committed = -1


class Task:
    """One partition of the processor: its compiled chains and its stores."""

    __slots__ = ("compiled", "partition", "state")

    def __init__(self, partition: int, compiled: Any, state: TaskState) -> None:
        self.partition = partition
        self.compiled = compiled
        self.state = state


class TaskManager:
    """Opens, runs, commits and closes the tasks of one processor."""

    def __init__(self, processor: Processor, *, state_dir: Path, backend: str | None,
                 serde_ctx: SerdeContext, changelogs: ChangelogReader, admin: Admin,
                 cache_entries: int, clock: Callable[[], int] | None = None) -> None:
        self.processor = processor
        self.state_dir = state_dir / processor.topology.name / processor.name
        self.backend = backend or processor.store_backend
        self.serde_ctx = serde_ctx
        self.changelogs = changelogs
        self.admin = admin
        self.cache_entries = cache_entries
        self.clock = clock
        self.routes: dict[tuple[str, int], Route] = {}
        self.tasks: dict[int, Task] = {}
        self.restoring = False
        self.consumer: GroupConsumer | None = None
        self.emit: Any = None  # the collector's emit for newly opened tasks
        # counters for metrics: records consumed per (topic, partition) since the start (not
        # reset by rebalances or rewinds), changelog records sent, restores done
        self.consumed: dict[tuple[str, int], int] = {}
        self.changelog_records = 0
        self.restored_records = 0
        self.restore_seconds = 0.0

    # -- opening and closing ---------------------------------------------------------
    @property
    def assigned(self) -> list[tuple[str, int]]:
        """The assigned ``(topic, partition)`` pairs, sorted."""
        return sorted(self.routes)

    def assign(self, pairs: list[tuple[str, int]]) -> None:
        """Open the tasks of newly assigned partitions (restoring their stores)."""
        for part in sorted({p for _, p in pairs} - set(self.tasks)):
            self.tasks[part] = self._open(part)
        for topic, part in pairs:
            task = self.tasks[part]
            self.routes[(topic, part)] = Route(task.compiled.entries[topic],
                                               task.compiled.context)
        self._share_cache()

    def _open(self, part: int) -> Task:
        state = TaskState(self.processor.stores, part, self.state_dir, self.backend,
                          self.serde_ctx)
        if state.stores:
            self.restoring = True
            try:
                assert self.consumer is not None
                sources = self.processor.source_topics()
                # read_committed: waits for stable offsets, up to the transaction timeout
                committed = {t: o for (t, _), o in self.consumer.committed(
                    [(t, part) for t in sources], 60.0).items()}
                for store in state.stores:
                    done = restore_store(state, store, self.changelogs, committed)
                    self.restored_records += done.applied
                    self.restore_seconds += done.seconds
            except BaseException:
                state.close()
                raise
            finally:
                self.restoring = False
        ctx = TaskContext(self.processor.name, part, self.emit, self.serde_ctx, state.stores)
        if self.clock is not None:
            ctx.clock = self.clock
        return Task(part, compile_task(self.processor, ctx), state)

    def forget(self, pairs: list[tuple[str, int]], *, checkpoint: bool) -> None:
        """Drop revoked or lost partitions; close tasks with no partition left."""
        for tp in pairs:
            self.routes.pop(tp, None)
        live = {p for _, p in self.routes}
        self.close([self.tasks.pop(p) for p in list(self.tasks) if p not in live],
                   checkpoint=checkpoint)
        self._share_cache()

    def close(self, tasks: list[Task] | None = None, *, checkpoint: bool = True) -> None:
        """Close ``tasks`` (default: all), checkpointing their stores first."""
        if tasks is None:
            tasks = [self.tasks.pop(p) for p in list(self.tasks)]
            self.routes.clear()
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
        self.tasks.clear()
        self.routes.clear()

    def _share_cache(self) -> None:
        """Split the cache budget evenly over the stores of the open tasks."""
        stores = [s for t in self.tasks.values() for s in t.state.stores.values()]
        for store in stores:
            store.resize_cache(self.cache_entries // len(stores))

    # -- processing --------------------------------------------------------------------
    def process(self, msgs: list[Any], policy: ErrorPolicy,
                on_error: Callable[[Any], None]) -> None:
        """Run a batch of consumed records through their tasks' chains.

        Records of partitions no longer assigned are dropped; error events go to ``on_error``.
        """
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
                if route is None:
                    continue  # revoked in the meantime
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
        """Record each store's changelog end as restored-up-to, for all ``tasks`` at once."""
        wanted = [(topic, t.partition) for t in tasks for topic in t.state.changelogs.values()]
        if not wanted:
            return
        try:
            ends = self.admin.end_offsets(wanted)
        except Exception as e:  # a checkpoint is an optimisation; never fail on it
            log.warning("no checkpoint for %d changelog partitions: %s", len(wanted), e)
            return
        for task in tasks:
            for store, topic in task.state.changelogs.items():
                task.state.write_checkpoint(store, ends[(topic, task.partition)])

    def rewind(self) -> None:
        """After a failed transaction: reopen every task and rewind every input.

        Drop uncommitted state, reopen every task from its store and changelog, and seek every
        input back to its committed offset.
        """
        consumer = self.consumer
        assert consumer is not None
        parts = list(self.tasks)
        for part in parts:
            task = self.tasks.pop(part)
            task.state.discard_uncommitted()
            task.state.close()
        committed = consumer.committed(list(self.routes), 60.0)
        for part in parts:
            self.tasks[part] = self._open(part)
        for (topic, part) in list(self.routes):
            task = self.tasks[part]
            route = Route(task.compiled.entries[topic], task.compiled.context)
            off = committed.get((topic, part), -1)
            route.position = route.committed = off if off >= 0 else -1
            self.routes[(topic, part)] = route
            consumer.seek(topic, part, off if off >= 0 else client.OFFSET_BEGINNING)
        self._share_cache()
        log.warning("rewound %d tasks to their committed offsets", len(parts))

    def metrics(self) -> dict[str, int]:
        """Task counters (e.g. ``"<window step>.late_records"``) summed over tasks."""
        out: dict[str, int] = {}
        for task in self.tasks.values():
            for name, n in task.compiled.context.metrics.items():
                out[name] = out.get(name, 0) + n
        return out

