"""Time-aligned tasks: a task with several inputs takes their records in timestamp order.

Kafka Streams' ``PartitionGroup`` and ``max.task.idle.ms`` (KIP-695). A task reads partition
N of each of its input topics (a stream and the table it joins, two merged streams). Records
are buffered per input partition, and the task always takes the buffered record with the
lowest timestamp, so a backlog of both topics is processed as if the records had arrived
live: a table row is in the store before the stream records that come after it in time.

The rules, for a task whose inputs are not all buffered:

- An empty input whose consumer has fetched to its end (a partition-EOF event, or the
  consumer's position at its cached high watermark) has no lag. The task waits
  ``max_task_idle_ms`` for it (default 0: it does not wait), then processes the others
  anyway (Kafka Streams' "enforced processing", logged once per wait).
- An empty input with lag (records on the broker not fetched yet), or whose lag is not known
  yet (just assigned), is waited for: the next fetch brings its records.
- ``max_task_idle_ms = -1`` never waits: records are taken in timestamp order among those
  buffered.

Deliberate differences from Kafka Streams:

- A wait for an input with lag (or unknown lag) ends after ``LAG_WAIT_MS`` (Kafka Streams
  waits for the fetch however long it takes). librdkafka's cached high watermark is not the
  last stable offset, so a record in an upstream transaction still open looks like lag until
  the transaction ends or the consumer reports the partition's end; the bound keeps a hung
  upstream transaction from stalling the task.
- At equal timestamps, table records come before stream records, then inputs in topic name
  order (Kafka Streams leaves ties to its priority queue's order).

An input buffering more than ``BUFFER_MAX`` records is paused until its task has taken half
of them (Kafka Streams' ``buffered.records.per.partition``).

Only inputs whose records meet are aligned (``input_groups``: Kafka Streams' sub-topologies).
A processor reading a single topic, or a topic and the repartition topic of its own
``group_by``, is not aligned: its records are processed as consumed, and it pays nothing for
this module.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streamflow.kafka.client import partition_eof

if TYPE_CHECKING:
    from streamflow.dsl.topology import Processor
    from streamflow.runtime.ports import GroupConsumer
    from streamflow.runtime.tasks import Route

log = logging.getLogger("streamflow.alignment")

LAG_WAIT_MS = 5_000
BUFFER_MAX = 5_000

RunRecords = Callable[["Route", list[Any]], None]


def input_groups(processor: Processor) -> dict[str, int]:
    """Each input topic's group: topics whose records meet (Kafka Streams' sub-topologies).

    Steps are connected by their edges and by the stores they share (a table joined by a
    stream); a repartition cuts a processor in two, so its input and its repartition topic
    are in different groups and are not aligned with each other.
    """
    from streamflow.dsl.nodes import Source, TableSource

    root = {name: name for name in processor.nodes}

    def find(n: str) -> str:
        while root[n] != n:
            root[n] = root[root[n]]
            n = root[n]
        return n

    by_store: dict[str, str] = {}
    for node in processor.nodes.values():
        for parent in node.parents:
            root[find(node.name)] = find(parent)
        stores = [getattr(node, "store", ""), *getattr(node, "stores", ())]
        for store in filter(None, stores):
            if store in by_store:
                root[find(node.name)] = find(by_store[store])
            else:
                by_store[store] = node.name
    groups: dict[str, int] = {}
    ids: dict[str, int] = {}
    for node in processor.nodes.values():
        topics = (node.topics if isinstance(node, Source)
                  else (node.topic,) if isinstance(node, TableSource) else ())
        for topic in topics:
            groups.setdefault(topic, ids.setdefault(find(node.name), len(ids)))
    return groups


def aligned(processor: Processor) -> bool:
    """Whether some task of ``processor`` takes records of several topics in one group."""
    groups = list(input_groups(processor).values())
    return len(groups) > len(set(groups))


def input_ranks(processor: Processor) -> dict[str, int]:
    """The tie-break order of a processor's inputs: tables first, then by topic name."""
    from streamflow.dsl.nodes import TableSource

    tables = {n.topic for n in processor.nodes.values() if isinstance(n, TableSource)}
    order = sorted(processor.source_topics(), key=lambda t: (t not in tables, t))
    return {t: i for i, t in enumerate(order)}


class Aligner:
    """Buffers the records of aligned tasks and hands them out in timestamp order.

    The buffer of an input lives on its ``Route``, so it goes when the route goes (revoked,
    lost, rewound).
    """

    def __init__(self, processor: Processor, max_task_idle_ms: int,
                 now_ms: Callable[[], int] | None = None) -> None:
        self.max_idle_ms = max_task_idle_ms
        self.ranks = input_ranks(processor)
        self.groups = input_groups(processor)
        self.now_ms = now_ms or _monotonic_ms
        self.consumer: GroupConsumer | None = None
        self.buffered = 0  # records buffered over every route
        self.enforced = 0  # times a task went on without an input (a metric)

    def add(self, routes: dict[tuple[str, int], Route], msgs: list[Any],
            on_error: Callable[[Any], None],
            dropped: Callable[[str, int, int], None]) -> int:
        """Buffer consumed records on their routes; partition-EOF events mark an input's end.

        Return how many of ``msgs`` were partition-EOF events.
        """
        full = []
        eofs = 0
        for m in msgs:
            err = m.error()
            if err is not None:
                if partition_eof(err):
                    eofs += 1
                    route = routes.get((m.topic(), m.partition()))
                    if route is not None:
                        route.eof = True
                else:
                    on_error(err)
                continue
            tp = (m.topic(), m.partition())
            route = routes.get(tp)
            if route is None:  # revoked in the meantime, or restoring
                dropped(tp[0], tp[1], m.offset())
                continue
            route.buffer.append(m)
            route.eof = False
            if len(route.buffer) > BUFFER_MAX and not route.paused:
                route.paused = True
                full.append(tp)
        self.buffered += len(msgs)  # recounted exactly by drain()
        if full:
            assert self.consumer is not None
            self.consumer.pause(full)
        return eofs

    def drain(self, routes: dict[tuple[str, int], Route], run: RunRecords) -> None:
        """Run every task's buffered records that may run now, lowest timestamp first."""
        if not self.buffered:
            return
        tasks: dict[tuple[int, int], list[Route]] = {}  # a task's routes, by input group
        groups = self.groups
        for route in routes.values():
            tasks.setdefault((route.partition, groups.get(route.topic, -1)), []).append(route)
        now = self.now_ms()
        resume: list[tuple[str, int]] = []
        left = 0
        for group in tasks.values():
            if any(r.buffer for r in group):
                group.sort(key=lambda r: self.ranks.get(r.topic, len(self.ranks)))
                self._drain_task(group, now, run)
                for r in group:
                    left += len(r.buffer)
                    if r.paused and len(r.buffer) <= BUFFER_MAX // 2:
                        r.paused = False
                        resume.append((r.topic, r.partition))
        self.buffered = left
        if resume:
            assert self.consumer is not None
            self.consumer.resume(resume)

    def _drain_task(self, group: list[Route], now: int, run: RunRecords) -> None:
        while True:
            best: Route | None = None
            best_ts = 0
            # the lowest head timestamp of the other inputs, and whether ``best`` comes
            # first at that timestamp (it precedes that input in the tie-break order)
            limit: int | None = None
            first = True
            for r in group:
                if r.buffer:
                    r.idle_deadline = r.lag_since = None
                    r.enforced = False
                    ts = r.buffer[0].timestamp()[1]
                    if best is None or ts < best_ts:
                        if best is not None:
                            limit, first = best_ts, False
                        best, best_ts = r, ts
                    elif limit is None or ts < limit:
                        limit, first = ts, True
                elif not self._may_skip(r, now):
                    return
            if best is None:
                return
            buf = best.buffer
            # take the run of records that stay below the other inputs' heads
            if limit is None:
                taken = list(buf)
                buf.clear()
            else:
                taken = []
                while buf:
                    ts = buf[0].timestamp()[1]
                    if ts > limit or (ts == limit and not first):
                        break
                    taken.append(buf.popleft())
            run(best, taken)

    def _may_skip(self, r: Route, now: int) -> bool:
        """Whether the task may go on while input ``r`` has nothing buffered."""
        if self.max_idle_ms < 0:
            return True
        if r.eof or (self.consumer is not None
                     and self.consumer.lag(r.topic, r.partition) == 0):
            r.lag_since = None
            if r.idle_deadline is None:
                r.idle_deadline = now + self.max_idle_ms
            if now < r.idle_deadline:
                return False
            if self.max_idle_ms > 0 and not r.enforced:
                r.enforced = True
                self.enforced += 1
                log.debug("task %d goes on without %s[%d]: no new records for "
                          "max_task_idle_ms=%d", r.partition, r.topic, r.partition,
                          self.max_idle_ms)
            return True
        # records on the broker not fetched yet, or not known: the next fetch brings them
        r.idle_deadline = None
        if r.lag_since is None:
            r.lag_since = now
        if now - r.lag_since < LAG_WAIT_MS:
            return False
        if not r.enforced:
            r.enforced = True
            self.enforced += 1
            log.info("task %d goes on without %s[%d], whose records were not fetched within "
                     "%d ms: records of the task may be processed out of timestamp order",
                     r.partition, r.topic, r.partition, LAG_WAIT_MS)
        return True


def _monotonic_ms() -> int:
    return int(time.monotonic() * 1000)
