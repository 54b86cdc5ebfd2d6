"""From one observation of a running topology to the frame the page shows: rates and health.

An *observation* is what one poll of the broker and the instances saw, as plain JSON-ready
dicts (see :class:`FrameBuilder` for its keys). A *frame* is that observation plus what only
two polls tell: records/s per processor and per topic, whether lag keeps growing, whether
errors are new, and from all of it each processor's health:

- ``down``: the group has no members, or none of its instances that should answer does;
- ``warn``: an instance is not ready (restoring, stalled, broker silent), the lag grew over
  the last polls, or errors and dead letters were added since the last poll;
- ``ok``: members present, instances ready, lag not growing, no new errors;
- ``unknown``: nothing known yet (the broker did not answer).

>>> b = FrameBuilder(lag_polls=1)
>>> obs = {"processors": {"pay": {"state": "Stable", "members": [{"instance_id": "h-0"}],
...        "partitions": [{"topic": "orders", "partition": 0, "committed": 10, "end": 10,
...                        "lag": 0}]}},
...        "topics": {"orders": {"end": 10}}}
>>> f = b.update(obs, now=100.0)
>>> f["processors"]["pay"]["health"], f["processors"]["pay"]["lag"]
('ok', 0)
>>> obs["processors"]["pay"]["partitions"][0].update(committed=30, end=50, lag=20)
>>> obs["topics"]["orders"]["end"] = 50
>>> f = b.update(obs, now=102.0)
>>> f["topics"]["orders"]["rate"], f["processors"]["pay"]["rate"]
(20.0, 10.0)
>>> f["processors"]["pay"]["health"], f["processors"]["pay"]["reasons"]
('warn', ['lag grew 1 poll(s) in a row: 0 -> 20'])
"""

from __future__ import annotations

import time
from collections import deque
from itertools import pairwise
from typing import Any

__all__ = ["DOWN", "OK", "UNKNOWN", "WARN", "FrameBuilder", "processor_health"]

OK, WARN, DOWN, UNKNOWN = "ok", "warn", "down", "unknown"


def _total(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _rate(now_value: int | None, before: int | None, dt: float) -> float | None:
    if now_value is None or before is None or dt <= 0:
        return None
    # a counter that went back (an instance restarted, a topic recreated) says nothing
    return round(max(0, now_value - before) / dt, 1)


def processor_lag(p: dict[str, Any]) -> int | None:
    """Records behind on all inputs: ``lag``, else summed over ``partitions`` (None: unknown)."""
    if p.get("lag") is not None:
        return int(p["lag"])
    return _total([None if part.get("lag") is None else max(0, int(part["lag"]))
                   for part in p.get("partitions", [])])


def processor_errors(p: dict[str, Any]) -> int | None:
    """Failed records: dead letters plus the records the instances skipped.

    Dead letters are the dead-letter topic's size, else what the instances counted.
    """
    answering = [i for i in p.get("instances", []) if i.get("reachable", True)]
    dead = p.get("dead_letters")
    if dead is None:
        dead = _total([i.get("dead_lettered") for i in answering])
    return _total([dead, *(i.get("skipped") for i in answering)])


def processor_health(p: dict[str, Any], *, lag_growing: str | None = None,
                     new_errors: int = 0) -> tuple[str, list[str]]:
    """``(health, reasons)`` of one processor's observation (see the module's rules)."""
    state = p.get("state")
    members = p.get("members") or []
    instances = p.get("instances") or []
    if state is None and not instances:
        return UNKNOWN, ["no figures yet"]
    if not members:
        return DOWN, [f"no members in its consumer group (state {state or 'unknown'})"]
    reasons: list[str] = []
    answering = [i for i in instances if i.get("reachable", True)]
    if instances and not answering:
        return DOWN, ["none of its instances answers /status"]
    for i in instances:
        name = i.get("instance_id") or i.get("url") or "an instance"
        if not i.get("reachable", True):
            reasons.append(f"{name} does not answer /status")
        elif not i.get("ready", False):
            why = "; ".join(i.get("reasons") or []) or "not ready"
            reasons.append(f"{name}: {why}")
    if lag_growing:
        reasons.append(lag_growing)
    if new_errors > 0:
        reasons.append(f"{new_errors} new error(s) or dead letter(s) since the last poll")
    return (WARN if reasons else OK), reasons


class FrameBuilder:
    """Turns successive observations into frames (keeps what the rates need).

    An observation: ``{"processors": {name: P}, "topics": {name: {"end": int | None}},
    "error": str | None}`` where ``P`` is a processor of
    :meth:`streamflow.ops.status.TopologyStatus.to_dict` (``state``, ``members``,
    ``partitions`` with their ``lag``, ``dead_letters``, ``instances`` with ``reachable``,
    ``ready``, ``reasons``, ``skipped``..., ``records_in_per_s``), each instance possibly with
    ``error_kinds`` (``[{"step", "exception", "count"}]``, from its ``/metrics``).
    ``records_in_per_s`` is the rate when the instances answered twice; else it comes from
    the group's committed offsets between two observations.
    ``lag_polls`` increases of a processor's lag in a row make it ``warn``.
    """

    def __init__(self, *, lag_polls: int = 3) -> None:
        self._lag_polls = max(1, lag_polls)
        self._seq = 0
        self._last_time: float | None = None
        self._topic_ends: dict[str, int | None] = {}
        self._committed: dict[str, int | None] = {}
        self._errors: dict[str, int | None] = {}
        self._lags: dict[str, deque[int | None]] = {}

    def update(self, obs: dict[str, Any], *, now: float | None = None) -> dict[str, Any]:
        """The frame of ``obs``, with rates against the previous observation."""
        now = time.time() if now is None else now
        dt = 0.0 if self._last_time is None else now - self._last_time
        if obs.get("processors") or obs.get("topics"):
            self._last_time = now  # a failed poll leaves the rates' baseline where it was
        self._seq += 1
        topics = {}
        for name, t in (obs.get("topics") or {}).items():
            end = t.get("end")
            topics[name] = {**t, "rate": _rate(end, self._topic_ends.get(name), dt)}
            self._topic_ends[name] = end
        processors = {name: self._processor(name, p, dt)
                      for name, p in (obs.get("processors") or {}).items()}
        return {"seq": self._seq, "time": now, "interval": round(dt, 3),
                "error": obs.get("error"), "processors": processors, "topics": topics}

    def _processor(self, name: str, p: dict[str, Any], dt: float) -> dict[str, Any]:
        lag = processor_lag(p)
        history = self._lags.setdefault(name, deque(maxlen=self._lag_polls + 1))
        history.append(lag)
        growing = None
        seen = list(history)
        if (len(seen) == self._lag_polls + 1 and None not in seen
                and all(a is not None and b is not None and b > a
                        for a, b in pairwise(seen))):
            growing = f"lag grew {self._lag_polls} poll(s) in a row: {seen[0]} -> {seen[-1]}"
        committed = _total([None if part.get("end") is None
                            else part.get("committed") or part.get("start") or 0
                            for part in p.get("partitions", [])])
        rate = p.get("records_in_per_s")
        if rate is None:
            rate = _rate(committed, self._committed.get(name), dt)
        self._committed[name] = committed
        errors = processor_errors(p)
        before = self._errors.get(name)
        new_errors = errors - before if errors is not None and before is not None else 0
        self._errors[name] = errors
        health, reasons = processor_health(p, lag_growing=growing, new_errors=new_errors)
        return {**p, "lag": lag, "lag_growing": growing is not None,
                "rate": None if rate is None else round(rate, 1),
                "errors": errors, "health": health, "reasons": reasons}
