"""Prometheus metrics of a worker, built at scrape time from its ``WorkerStatus``.

A PULL design: the loop only updates plain counters (per batch); the HTTP thread asks for a
``WorkerStatus`` when Prometheus scrapes and this collector turns it into metric families
through ``prometheus_client`` (the loop never calls ``prometheus_client``). Every metric is
labelled ``topology``, ``processor`` and ``instance`` (the worker id); ``docs/metrics.md``
lists them with their Kafka Streams equivalents.

>>> from streamflow.observability.status import PartitionStatus, WorkerStatus
>>> s = WorkerStatus(processor="p", worker_id="0", last_loop=None, topology="t",
...                  partitions=(PartitionStatus("in", 0, consumed=5, position=5),))
>>> text = exposition(StatusCollector(lambda: s)).decode()
>>> 'streamflow_records_consumed_total{instance="0",partition="0",processor="p",' in text
True
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from streamflow.dsl.validation import RULE_METRIC
from streamflow.observability import stats as rdstats
from streamflow.observability.status import GlobalTablesStatus, HistogramSnapshot, WorkerStatus

__all__ = ["CONTENT_TYPE", "StatusCollector", "exposition", "global_lag", "partition_lag"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BASE = ("topology", "processor", "instance")


def partition_lag(s: WorkerStatus) -> dict[tuple[str, int], int]:
    """Records behind the end of each assigned partition (from the consumer's statistics).

    The end is the last stable offset; the position is how far this worker processed
    (else how far librdkafka handed records out, else the committed offset). Partitions the
    statistics do not know yet have no lag.
    """
    known = rdstats.partitions(rdstats.parse(s.consumer_stats))
    out: dict[tuple[str, int], int] = {}
    for p in s.partitions:
        st = known.get((p.topic, p.partition))
        if not p.assigned or st is None or st.end < 0:
            continue
        pos = max(p.position, p.committed, st.app_offset, st.committed)
        if pos >= 0:
            out[(p.topic, p.partition)] = max(0, st.end - pos)
    return out


def global_lag(g: GlobalTablesStatus) -> dict[tuple[str, int], int]:
    """Records behind the end of each partition of the global tables' topics.

    The end is the last stable offset from the global consumer's statistics, else (while the
    bootstrap loads) the end offset it reads up to; partitions with neither have no lag.
    """
    known = rdstats.partitions(rdstats.parse(g.stats))
    out: dict[tuple[str, int], int] = {}
    for tp, pos in g.positions.items():
        st = known.get(tp)
        end = st.end if st is not None and st.end >= 0 else g.ends.get(tp, -1)
        if end >= 0:
            app = st.app_offset if st is not None else -1
            out[tp] = max(0, end - max(pos, app))
    return out


class StatusCollector(Collector):
    """A ``prometheus_client`` collector over a worker's status snapshots."""

    def __init__(self, status: Callable[[], WorkerStatus],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._status = status
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        """The metric families of one snapshot."""
        s = self._status()
        base = [s.topology, s.processor, s.worker_id]
        yield from _records(s, base)
        yield from _progress(s, base, self._clock())
        yield from _state(s, base)
        yield from _global_tables(s, base)
        yield from _async_steps(s, base)


def _counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=[*BASE, *labels])


def _gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=[*BASE, *labels])


def _single(family: CounterMetricFamily | GaugeMetricFamily, base: list[str],
            value: float) -> Metric:
    """``family`` with its one sample, labelled ``base`` (the worker's labels)."""
    family.add_metric(base, value)
    return family


def _lag(name: str, doc: str, lags: dict[tuple[str, int], int], base: list[str]) -> Metric:
    """A gauge of records behind per ``(topic, partition)``."""
    family = _gauge(name, doc, ("topic", "partition"))
    for (topic, part), n in sorted(lags.items()):
        family.add_metric([*base, topic, str(part)], n)
    return family


def _histogram(name: str, doc: str, h: HistogramSnapshot | None,
               base: list[str]) -> Iterator[Metric]:
    if h is None:
        return
    fam = HistogramMetricFamily(name, doc, labels=list(BASE))
    buckets = [(repr(float(b)), float(n)) for b, n in zip(h.bounds, h.counts, strict=True)]
    fam.add_metric(base, [*buckets, ("+Inf", float(h.count))], h.sum)
    yield fam


def _records(s: WorkerStatus, base: list[str]) -> Iterator[Metric]:
    consumed = _counter("streamflow_records_consumed", "Records consumed per input partition.",
                        ("topic", "partition"))
    for p in s.partitions:
        consumed.add_metric([*base, p.topic, str(p.partition)], p.consumed)
    yield consumed
    produced = _counter("streamflow_records_produced",
                        "Records produced per output topic (dead letters and changelogs apart).",
                        ("topic",))
    for topic, n in sorted(s.produced.items()):
        produced.add_metric([*base, topic], n)
    yield produced
    yield _single(_counter("streamflow_records_skipped",
                           "Failed records skipped (on_error='skip')."),
                  base, s.skipped)
    dead = _counter("streamflow_records_dead_lettered",
                    "Failed records sent to the dead-letter topic.", ("topic",))
    dead.add_metric([*base, s.dead_letter_topic], s.dead_lettered)
    yield dead
    late = _counter("streamflow_records_late",
                    "Records too late for every window they belong to (or in no open sliding "
                    "window).", ("step",))
    dropped = _counter("streamflow_records_window_skipped",
                       "Records a window step dropped (no timestamp or key).", ("step",))
    invalid = _counter("streamflow_records_invalid",
                       "Records that failed a validate() rule, by step and rule.",
                       ("step", "rule"))
    for name, n in sorted(s.task_metrics.items()):
        if RULE_METRIC in name:
            step, _, rule = name.partition(RULE_METRIC)
            invalid.add_metric([*base, step, rule], n)
            continue
        step, _, kind = name.rpartition(".")
        if kind == "late_records":
            late.add_metric([*base, step], n)
        elif kind == "skipped_records":
            dropped.add_metric([*base, step], n)
    yield late
    yield dropped
    yield invalid
    errors = _counter("streamflow_errors", "Records that failed, by step and exception type.",
                      ("step", "exception"))
    for (step, exc), n in sorted(s.errors.items()):
        errors.add_metric([*base, step, exc], n)
    yield errors
    yield from _histogram("streamflow_record_e2e_latency_seconds",
                          "Output wall time minus the output record's timestamp.",
                          s.latency, base)
    yield from _histogram("streamflow_batch_duration_seconds",
                          "Time to process one consumed batch.", s.batch, base)
    stats = rdstats.parse(s.consumer_stats)
    bytes_in = _counter("streamflow_bytes_consumed", "Bytes fetched per input topic.",
                        ("topic",))
    for topic, n in sorted(rdstats.topic_bytes(stats, "rxbytes").items()):
        bytes_in.add_metric([*base, topic], n)
    yield bytes_in
    bytes_out = _counter("streamflow_bytes_produced",
                         "Bytes sent per topic (outputs, dead letters, changelogs).", ("topic",))
    for topic, n in sorted(rdstats.topic_bytes(rdstats.parse(s.producer_stats),
                                               "txbytes").items()):
        bytes_out.add_metric([*base, topic], n)
    yield bytes_out


def _progress(s: WorkerStatus, base: list[str], now: float) -> Iterator[Metric]:
    yield _lag("streamflow_consumer_lag_records",
               "Records behind the end of each assigned input partition.",
               partition_lag(s), base)
    yield _single(_counter("streamflow_commits", "Commits (offsets, or transactions)."),
                  base, s.commits)
    yield from _histogram("streamflow_commit_duration_seconds", "Duration of one commit.",
                          s.commit, base)
    if s.guarantee == "exactly_once":
        yield _single(_counter("streamflow_transactions_committed", "Transactions committed."),
                      base, s.commits)
        yield _single(_counter("streamflow_transactions_aborted",
                               "Transactions aborted (the tasks rewound to the last commit)."),
                      base, s.aborts)
    rebalances = _counter("streamflow_rebalances", "Partition assignment changes, by kind.",
                          ("kind",))
    for kind in ("assigned", "revoked", "lost"):
        rebalances.add_metric([*base, kind], s.rebalances.get(kind, 0))
    yield rebalances
    yield _single(_gauge("streamflow_assigned_partitions", "Input partitions assigned."),
                  base, len(s.assigned))
    yield _single(_gauge("streamflow_loop_age_seconds", "Seconds since the loop's last turn."),
                  base, now - s.last_loop if s.last_loop is not None else 0.0)
    quiet = rdstats.broker_quiet_s(rdstats.parse(s.consumer_stats))
    if quiet is not None and s.consumer_stats_at is not None:
        yield _single(_gauge("streamflow_broker_quiet_seconds",
                             "Seconds since anything was received from the brokers."),
                      base, quiet + max(0.0, now - s.consumer_stats_at))


def _state(s: WorkerStatus, base: list[str]) -> Iterator[Metric]:
    yield _single(_counter("streamflow_restore_records", "Changelog records restored."),
                  base, s.restore.records)
    yield _single(_gauge("streamflow_restore_remaining_records",
                         "Changelog records left to restore."),
                  base, s.restore.remaining)
    yield _single(_counter("streamflow_restore_seconds", "Time spent restoring stores."),
                  base, s.restore.seconds)
    yield _single(_counter("streamflow_changelog_records", "Records written to store changelogs."),
                  base, s.changelog_records)
    hits = _counter("streamflow_store_cache_hits", "Store reads served by the cache.",
                    ("store",))
    misses = _counter("streamflow_store_cache_misses",
                      "Store reads that went to the backend (RocksDB).", ("store",))
    for st in s.stores:
        hits.add_metric([*base, st.name], st.hits)
        misses.add_metric([*base, st.name], st.misses)
    yield hits
    yield misses


def _global_tables(s: WorkerStatus, base: list[str]) -> Iterator[Metric]:
    g = s.global_tables
    if g is None:
        return
    applied = _counter("streamflow_global_records_applied",
                       "Records of a global table's topic applied to its store.",
                       ("store", "topic"))
    skipped = _counter("streamflow_global_records_skipped",
                       "Global table records skipped: their key could not be decoded.",
                       ("store",))
    for t in g.tables:
        applied.add_metric([*base, t.store, t.topic], t.applied)
        skipped.add_metric([*base, t.store], t.skipped)
    yield applied
    yield skipped
    yield _lag("streamflow_global_lag_records",
               "Records behind the end of each partition of the global tables' topics.",
               global_lag(g), base)
    yield _single(_counter("streamflow_global_restore_records",
                           "Records read by the global tables' bootstrap."),
                  base, g.restore_records)
    yield _single(_gauge("streamflow_global_restore_seconds",
                         "Duration of the global tables' bootstrap (so far, while loading)."),
                  base, g.restore_seconds)


def _async_steps(s: WorkerStatus, base: list[str]) -> Iterator[Metric]:
    if not s.async_steps:
        return
    families: list[tuple[CounterMetricFamily | GaugeMetricFamily, str]] = [
        (_counter("streamflow_async_calls", "Calls an async step started.", ("step",)),
         "calls"),
        (_gauge("streamflow_async_calls_in_flight", "Calls of an async step not ended yet.",
                ("step",)), "in_flight"),
        (_counter("streamflow_async_retries", "Attempts of an async step tried again.",
                  ("step",)), "retried"),
        (_counter("streamflow_async_timeouts", "Attempts of an async step that timed out.",
                  ("step",)), "timed_out"),
        (_counter("streamflow_async_failures",
                  "Calls of an async step that failed after their last attempt.", ("step",)),
         "failed"),
    ]
    for family, field in families:
        for st in s.async_steps:
            family.add_metric([*base, st.step], getattr(st, field))
        yield family


def exposition(collector: Collector) -> bytes:
    """The Prometheus text format of ``collector``'s metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
