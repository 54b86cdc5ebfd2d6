"""The engine's counters, kept as plain Python values, and the status snapshot built from them.

Nothing here calls a metrics library: the loop updates these per batch (the per-record path
only appends each output's topic and timestamp to two lists), and ``worker_status()`` copies
them into a ``WorkerStatus`` when the HTTP thread asks (a scrape or a probe).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

from streamflow.observability.status import (
    DURATION_BOUNDS_S,
    LATENCY_BOUNDS_S,
    AsyncStepStatus,
    Histogram,
    PartitionStatus,
    RestoreStatus,
    StoreStatus,
    WorkerStatus,
)

if TYPE_CHECKING:
    from streamflow.plan.async_steps import AsyncRunner
    from streamflow.runtime.engine import Engine

__all__ = ["Counters", "Outputs", "worker_status"]


class Outputs:
    """The topic and timestamp of each record produced since the last batch was accounted.

    The collector's emitter appends to both lists (two C calls per output); ``account()``
    counts them per topic and into the latency histogram, once per batch.
    """

    __slots__ = ("stamps", "topics")

    def __init__(self) -> None:
        self.stamps: list[int] = []
        self.topics: list[str] = []


class Counters:
    """What one engine counts; read from another thread through ``worker_status()``."""

    def __init__(self, *, outputs: bool = True) -> None:
        self.outputs: Outputs | None = Outputs() if outputs else None
        self.produced: dict[str, int] = {}
        self.latency = Histogram(LATENCY_BOUNDS_S)
        self.batch = Histogram(DURATION_BOUNDS_S)
        self.commit = Histogram(DURATION_BOUNDS_S)
        self.rebalances: dict[str, int] = {"assigned": 0, "revoked": 0, "lost": 0}
        # the latest librdkafka statistics (JSON, parsed only when read)
        self.consumer_stats: str | None = None
        self.consumer_stats_at: float | None = None
        self.producer_stats: str | None = None

    def on_consumer_stats(self, raw: str) -> None:
        """The consumer's ``stats_cb`` (runs inside ``consume()``): keep the document."""
        self.consumer_stats = raw
        self.consumer_stats_at = time.monotonic()

    def on_producer_stats(self, raw: str) -> None:
        """The producer's ``stats_cb`` (runs inside ``poll()``/``flush()``)."""
        self.producer_stats = raw

    def account(self, now_ms: float) -> None:
        """Count the outputs since the last call per topic and into the latency histogram."""
        out = self.outputs
        if out is None or not out.topics:
            return
        produced = self.produced
        topics = out.topics
        first = topics[0]
        n = len(topics)
        if topics.count(first) == n:  # one output topic: no per-record dict work
            produced[first] = produced.get(first, 0) + n
        else:
            for topic, k in Counter(topics).items():
                produced[topic] = produced.get(topic, 0) + k
        self.latency.observe_ages(now_ms, out.stamps)
        out.topics.clear()  # in place: the emitter holds the lists' append methods
        out.stamps.clear()


def worker_status(engine: Engine, worker_id: str, last_loop: float | None) -> WorkerStatus:
    """A snapshot of ``engine`` for probes and metrics (safe to call from another thread)."""
    e = engine
    c = e.counters
    tasks = e.tasks
    routes = dict(tasks.routes)
    parts = []
    for (topic, part), n in sorted(dict(tasks.consumed).items()):
        r = routes.get((topic, part))
        parts.append(PartitionStatus(topic, part, n, -1 if r is None else r.position,
                                     -1 if r is None else r.committed, r is not None))
    for (topic, part), r in sorted(routes.items()):
        if (topic, part) not in tasks.consumed:
            parts.append(PartitionStatus(topic, part, 0, r.position, r.committed))
    assigned = set(routes)  # running, and restoring (their inputs paused)
    for restore in list(tasks.restores.values()):
        assigned.update(list(restore.pairs))
    stores: dict[str, list[int]] = {}
    task_metrics: dict[str, int] = {}
    for task in list(tasks.tasks.values()):
        for name, n in list(task.compiled.context.metrics.items()):
            task_metrics[name] = task_metrics.get(name, 0) + n
        for name, store in list(task.state.stores.items()):
            hm = stores.setdefault(name, [0, 0])
            hm[0] += store.reads - store.misses
            hm[1] += store.misses
    p = e.processor
    return WorkerStatus(
        processor=p.name, worker_id=worker_id, last_loop=last_loop,
        assigned=tuple(sorted(assigned)), ready=e.ready, restoring=tasks.restoring,
        processed=e.processed, commits=e.committer.commits, aborts=e.committer.aborts,
        last_commit=e.committer.last_commit,
        skipped=e.policy.skipped, dead_lettered=e.policy.dead_lettered,
        task_metrics=task_metrics, topology=p.topology.name, guarantee=p.guarantee,
        dead_letter_topic=p.dead_letter_topic, partitions=tuple(parts),
        produced=dict(c.produced), errors=dict(e.policy.errors),
        rebalances=dict(c.rebalances), changelog_records=tasks.changelog_records,
        latency=c.latency.snapshot(), batch=c.batch.snapshot(), commit=c.commit.snapshot(),
        restore=RestoreStatus(tasks.restore_records_done, tasks.restore_records_remaining,
                              tasks.restore_seconds),
        stores=tuple(StoreStatus(n, hm[0], hm[1]) for n, hm in sorted(stores.items())),
        consumer_stats=c.consumer_stats, consumer_stats_at=c.consumer_stats_at,
        producer_stats=c.producer_stats,
        global_tables=None if e.globals is None else e.globals.status(),
        async_steps=_async_steps(tasks.runner))


def _async_steps(runner: AsyncRunner | None) -> tuple[AsyncStepStatus, ...]:
    if runner is None:
        return ()
    return tuple(AsyncStepStatus(name, c.calls, c.in_flight, c.retried, c.timed_out, c.failed)
                 for name, c in sorted(dict(runner.counts).items()))
