"""``WorkerStatus``: a snapshot of one worker, the only thing probes and metrics read.

The runtime keeps plain counters (updated per batch, never per record through a metrics
library) and builds a ``WorkerStatus`` when a probe or a scrape asks, on the HTTP thread.
``Histogram`` is the one mutable piece this module offers the runtime: fixed buckets that
take a whole batch of observations at once.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["AsyncStepStatus", "GlobalTableStatus", "GlobalTablesStatus", "Histogram",
           "HistogramSnapshot", "PartitionStatus", "RestoreStatus", "StoreStatus", "WorkerStatus"]

# end-to-end latency (output wall time - the record's timestamp): 1 ms to 10 min
LATENCY_BOUNDS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0, 300.0, 600.0)
# one batch through the tasks, one commit
DURATION_BOUNDS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                     2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class HistogramSnapshot:
    """Cumulative bucket counts at one moment: ``counts[i]`` observations ``<= bounds[i]``."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float
    count: int


class Histogram:
    """Fixed-bucket histogram fed once per batch (plain Python, no metrics library).

    >>> h = Histogram((0.1, 1.0))
    >>> h.observe(0.05); h.observe(2.0)
    >>> h.observe_ages(10_000.0, [9_950, 9_500, 9_990])  # ms stamps: ages 0.05 s, 0.5 s, 0.01 s
    >>> s = h.snapshot()
    >>> s.counts, s.count, round(s.sum, 2)
    ((3, 4), 5, 2.61)
    """

    __slots__ = ("bounds", "buckets", "count", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.buckets = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Add one observation (seconds)."""
        self.buckets[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def observe_ages(self, now_ms: float, stamps_ms: list[int]) -> None:
        """Add ``now_ms - s`` (in seconds) for every stamp; sorts ``stamps_ms`` in place.

        One sort and one bisect per bucket bound, whatever the number of stamps: an age is
        ``<= b`` exactly when its stamp is ``>= now - b``.
        """
        n = len(stamps_ms)
        if not n:
            return
        stamps_ms.sort()
        below = 0  # cumulative count of the previous bound
        buckets = self.buckets
        for i, b in enumerate(self.bounds):
            cum = n - bisect_left(stamps_ms, now_ms - b * 1000.0)
            buckets[i] += cum - below
            below = cum
        buckets[-1] += n - below
        self.sum += (n * now_ms - sum(stamps_ms)) / 1000.0
        self.count += n

    def snapshot(self) -> HistogramSnapshot:
        """Cumulative counts per bound (the ``+Inf`` bucket is ``count``)."""
        cum = 0
        counts = []
        buckets = list(self.buckets)
        for n in buckets[:-1]:
            cum += n
            counts.append(cum)
        return HistogramSnapshot(self.bounds, tuple(counts), self.sum, cum + buckets[-1])


@dataclass(frozen=True)
class PartitionStatus:
    """One input partition: records consumed, and how far it is processed and committed.

    ``position`` and ``committed`` are next offsets (-1: none since the assignment);
    ``assigned`` is False for a partition this worker consumed earlier but no longer owns.
    """

    topic: str
    partition: int
    consumed: int
    position: int = -1
    committed: int = -1
    assigned: bool = True


@dataclass(frozen=True)
class StoreStatus:
    """One store name (summed over its partitions): reads served by the cache or not."""

    name: str
    hits: int
    misses: int


@dataclass(frozen=True)
class RestoreStatus:
    """Restores from changelogs since the worker started (remaining: of the running one)."""

    records: int = 0
    remaining: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class GlobalTableStatus:
    """One global table's store: records of its topic applied, and those skipped (bad key)."""

    store: str
    topic: str
    applied: int
    skipped: int


@dataclass(frozen=True)
class GlobalTablesStatus:
    """The global tables of the worker's processor (``streamflow.runtime.global_tables``).

    ``positions``: the next offset to read per ``(topic, partition)``; ``ends``: the end
    offsets the bootstrap reads up to (only while ``loaded`` is False); ``stats``: the global
    consumer's latest librdkafka statistics (its end offsets once loaded). The bootstrap read
    ``restore_records`` in ``restore_seconds`` (so far, while loading).
    """

    tables: tuple[GlobalTableStatus, ...] = ()
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    ends: dict[tuple[str, int], int] = field(default_factory=dict)
    loaded: bool = False
    restore_records: int = 0
    restore_seconds: float = 0.0
    stats: str | None = None


@dataclass(frozen=True)
class AsyncStepStatus:
    """One async step (``map_async``, ``flat_map_async``) over the worker's tasks.

    ``calls`` started, ``in_flight`` now, attempts ``retried`` and ``timed_out``, and calls
    that ``failed`` after their last attempt (handed to the error policy).
    """

    step: str
    calls: int = 0
    in_flight: int = 0
    retried: int = 0
    timed_out: int = 0
    failed: int = 0


@dataclass(frozen=True)
class WorkerStatus:
    """What a worker reports about itself at one moment.

    >>> s = WorkerStatus(processor="enrich", worker_id="0", last_loop=None)
    >>> s.ready, s.assigned
    (False, ())
    """

    processor: str
    worker_id: str
    last_loop: float | None  # time.monotonic() of the loop's last turn; None before the first
    assigned: tuple[tuple[str, int], ...] = ()
    ready: bool = False  # partitions assigned and their state restored
    restoring: bool = False
    processed: int = 0
    commits: int = 0
    aborts: int = 0
    last_commit: float | None = None  # time.monotonic() of the last commit; None before it
    skipped: int = 0
    dead_lettered: int = 0
    task_metrics: dict[str, int] = field(default_factory=dict)
    topology: str = ""
    guarantee: str = "at_least_once"
    dead_letter_topic: str = ""
    partitions: tuple[PartitionStatus, ...] = ()
    produced: dict[str, int] = field(default_factory=dict)  # output topic -> records
    errors: dict[tuple[str, str], int] = field(default_factory=dict)  # (step, exception) -> n
    rebalances: dict[str, int] = field(default_factory=dict)  # assigned / revoked / lost -> n
    changelog_records: int = 0
    latency: HistogramSnapshot | None = None  # end-to-end, seconds
    batch: HistogramSnapshot | None = None  # processing time of one batch, seconds
    commit: HistogramSnapshot | None = None  # duration of one commit, seconds
    restore: RestoreStatus = RestoreStatus()
    stores: tuple[StoreStatus, ...] = ()
    # librdkafka statistics (raw JSON, parsed only when read) and when they arrived
    consumer_stats: str | None = None
    consumer_stats_at: float | None = None  # time.monotonic()
    producer_stats: str | None = None
    global_tables: GlobalTablesStatus | None = None  # None: the processor joins none
    async_steps: tuple[AsyncStepStatus, ...] = ()
