"""Read librdkafka's statistics (``statistics.interval.ms`` + ``stats_cb``).

The clients hand the runtime a JSON document every interval; the runtime only keeps the
latest string. It is parsed here (with orjson) when a scrape or a probe asks, on the HTTP
thread, so the loop never pays for it. What is read:

- per partition of a consumer: the end offset (``ls_offset``, the last stable offset, since
  the group reads ``read_committed``; ``hi_offset`` otherwise), ``app_offset`` (the next offset
  handed to the application) and the bytes fetched;
- per partition of a producer: the bytes sent;
- per broker: how long nothing has been received from it (``rxidle``), which is how a frozen
  or unreachable broker shows (a SIGSTOPped broker keeps its TCP connections open, so the
  connection ``state`` stays ``UP``).

>>> raw = '{"ts": 1, "brokers": {"b:9092/1": {"nodeid": 1, "state": "UP", "rxidle": 2500000,'
>>> raw += ' "stateage": 9000000}}, "topics": {"t": {"partitions": {"0": {"partition": 0,'
>>> raw += ' "ls_offset": 10, "hi_offset": 12, "app_offset": 7, "committed_offset": 5,'
>>> raw += ' "rxbytes": 640, "txbytes": 0}}}}}'
>>> s = parse(raw)
>>> partitions(s)[("t", 0)].end, topic_bytes(s, "rxbytes"), broker_quiet_s(s)
(10, {'t': 640}, 2.5)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["PartitionStats", "broker_quiet_s", "parse", "partitions", "topic_bytes"]


@dataclass(frozen=True)
class PartitionStats:
    """What librdkafka knows of one partition (offsets are -1001 when unknown)."""

    end: int
    app_offset: int
    committed: int


def parse(raw: str | None) -> dict[str, Any]:
    """The statistics document (empty when there is none or it is not JSON)."""
    if not raw:
        return {}
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _partitions(stats: dict[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
    out = []
    for topic, t in (stats.get("topics") or {}).items():
        for p in (t.get("partitions") or {}).values():
            part = int(p.get("partition", -1))
            if part >= 0:  # -1 is librdkafka's internal "unassigned" partition
                out.append((str(topic), part, p))
    return out


def partitions(stats: dict[str, Any], *, read_committed: bool = True
               ) -> dict[tuple[str, int], PartitionStats]:
    """Offsets per ``(topic, partition)`` of a consumer's statistics."""
    key = "ls_offset" if read_committed else "hi_offset"
    return {(t, p): PartitionStats(int(s.get(key, -1001)), int(s.get("app_offset", -1001)),
                                   int(s.get("committed_offset", -1001)))
            for t, p, s in _partitions(stats)}


def topic_bytes(stats: dict[str, Any], field: str) -> dict[str, int]:
    """``rxbytes`` (consumer) or ``txbytes`` (producer) summed per topic."""
    out: dict[str, int] = {}
    for t, _, s in _partitions(stats):
        out[t] = out.get(t, 0) + int(s.get(field, 0))
    return out


def broker_quiet_s(stats: dict[str, Any]) -> float | None:
    """Seconds since anything was received from the most recently heard broker.

    For a broker whose connection is not up, the time since its state changed (it has been
    down at least that long). None without statistics or brokers.
    """
    quiet: list[float] = []
    for b in (stats.get("brokers") or {}).values():
        if int(b.get("nodeid", -1)) < 0 or b.get("source") == "logical":
            continue  # bootstrap placeholders and the coordinator alias
        rxidle = int(b.get("rxidle", -1))
        if b.get("state") == "UP" and rxidle >= 0:
            quiet.append(rxidle / 1e6)
        else:
            quiet.append(int(b.get("stateage", 0)) / 1e6)
    return min(quiet) if quiet else None
