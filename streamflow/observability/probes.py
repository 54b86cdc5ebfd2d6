"""Liveness and readiness of a worker, from its status snapshots.

Liveness is about the loop only: it turned recently (or is restoring state, which blocks it).
Readiness also turns false when the worker cannot do its job although the loop turns:

- the broker has been silent (nothing received, per librdkafka's statistics) for longer than
  ``broker_timeout_s``: unreachable, or frozen;
- a partition has lag but its position has not moved for ``stall_timeout_s`` (a partition
  that silently stopped while the process looks healthy).

>>> from streamflow.observability.status import PartitionStatus, WorkerStatus
>>> now = [100.0]
>>> s = WorkerStatus(processor="p", worker_id="0", last_loop=99.5, assigned=(("in", 0),),
...                  ready=True, partitions=(PartitionStatus("in", 0, consumed=3, position=3),))
>>> probe = worker_probe(lambda: s, clock=lambda: now[0])
>>> state = probe()
>>> state["alive"], state["ready"], state["reasons"]
(True, True, [])
>>> now[0] = 200.0
>>> probe()["alive"], probe()["reasons"]
(False, ['the loop has not turned for 100.5s'])
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from streamflow.observability import stats as rdstats
from streamflow.observability.metrics import partition_lag
from streamflow.observability.status import WorkerStatus

__all__ = ["StallWatch", "worker_probe"]


class StallWatch:
    """Remembers since when each partition's position has not moved.

    ``stalled()`` names the partitions with lag whose position has stayed the same for
    longer than ``timeout_s``; positions are observed whenever it is called (each probe).
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._seen: dict[tuple[str, int], tuple[int, float]] = {}

    def stalled(self, positions: dict[tuple[str, int], int],
                lag: dict[tuple[str, int], int], now: float) -> list[str]:
        """``topic[partition] (lag N)`` of each stalled partition."""
        out = []
        seen: dict[tuple[str, int], tuple[int, float]] = {}
        for tp, pos in positions.items():
            last = self._seen.get(tp)
            since = last[1] if last is not None and last[0] == pos else now
            seen[tp] = (pos, since)
            behind = lag.get(tp, 0)
            if behind > 0 and now - since > self.timeout_s:
                out.append(f"{tp[0]}[{tp[1]}] (lag {behind}, no progress for "
                           f"{now - since:.0f}s)")
        self._seen = seen
        return out


def worker_probe(status: Callable[[], WorkerStatus], *, stale_after_s: float = 60.0,
                 broker_timeout_s: float = 0.0, stall_timeout_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> Callable[[], dict[str, Any]]:
    """A probe over a worker's status snapshots.

    - alive: the loop's last turn (``last_loop``) is at most ``stale_after_s`` old; before
      the first turn, alive for ``stale_after_s`` after the probe was made (start-up:
      connecting, checking topics); always alive while restoring state, which blocks the
      loop inside the assignment callback;
    - ready: alive, partitions assigned, ``ready`` and not restoring; the broker heard from
      within ``broker_timeout_s``; no partition stalled for ``stall_timeout_s`` (each check
      off when its timeout is 0);
    - also reports the processor, worker id, assigned partitions, records processed, commits
      and aborts, the loop's age, the broker's silence and ``reasons`` when not ready; the
      records consumed per input topic and produced per output topic, the last commit's age
      and the restore's progress (what ``streamflow status`` shows; it derives rates from
      two answers).
    """
    made = clock()
    watch = StallWatch(stall_timeout_s)

    def probe() -> dict[str, Any]:
        s = status()
        now = clock()
        age = now - (s.last_loop if s.last_loop is not None else made)
        alive = s.restoring or age <= stale_after_s
        reasons = []
        if not alive:
            reasons.append(f"the loop has not turned for {age:.1f}s")
        if not s.assigned:
            reasons.append("no partitions assigned")
        if s.restoring or (s.assigned and not s.ready):
            reasons.append("restoring state")
        quiet = rdstats.broker_quiet_s(rdstats.parse(s.consumer_stats))
        if quiet is not None and s.consumer_stats_at is not None:
            quiet += max(0.0, now - s.consumer_stats_at)
            if broker_timeout_s and quiet > broker_timeout_s:
                reasons.append(f"no answer from the brokers for {quiet:.1f}s "
                               f"(broker_timeout_s {broker_timeout_s:g})")
        lag = partition_lag(s)
        consumed: dict[str, int] = {}
        for p in s.partitions:
            consumed[p.topic] = consumed.get(p.topic, 0) + p.consumed
        if stall_timeout_s:
            positions = {(p.topic, p.partition): max(p.position, p.committed)
                         for p in s.partitions if p.assigned}
            stalled = watch.stalled(positions, lag, now)
            if stalled:
                reasons.append(f"stalled partitions (stall_timeout_s {stall_timeout_s:g}): "
                               + ", ".join(stalled))
        return {
            "alive": alive,
            "ready": alive and not reasons,
            "reasons": reasons,
            "processor": s.processor,
            "worker_id": s.worker_id,
            "assigned": len(s.assigned),
            "restoring": s.restoring,
            "processed": s.processed,
            "commits": s.commits,
            "aborts": s.aborts,
            "skipped": s.skipped,
            "dead_lettered": s.dead_lettered,
            "lag": sum(lag.values()),
            "loop_age_s": round(age, 3),
            "broker_quiet_s": None if quiet is None else round(quiet, 3),
            "consumed": consumed,
            "produced": dict(s.produced),
            "last_commit_age_s": None if s.last_commit is None else round(now - s.last_commit, 3),
            "restore": {"records": s.restore.records, "remaining": s.restore.remaining,
                        "seconds": round(s.restore.seconds, 3)},
        }

    return probe
