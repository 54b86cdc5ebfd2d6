"""Sliding windows of ``size`` ms (Kafka Streams' semantics).

Each record has a left window ``[ts - size, ts]`` and, when a later record falls in it, a right
window ``(ts, ts + 1 + size]``; windows are only ever created from records, never empty.

A closed sliding window stays (and keeps absorbing accepted records, without emitting) until
it can no longer seed a new window — new windows start from a copy of an existing window
holding the same records, as in Kafka Streams — i.e. until stream time passes
``end + 3 * size + 2 + grace``. Closing and expiry are indexed by heaps.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right, insort
from typing import Any

from streamflow.plan.windows.env import (
    NEVER,
    NO_TIME,
    KeyWindows,
    WindowEnv,
    copy_agg,
    dict_key,
    emit_order,
)
from streamflow.record import Headers
from streamflow.state.keys import encode_key
from streamflow.state.window_store import WindowCell
from streamflow.windows import Windowed

_EMPTY: Any = object()

# (close or expiry time, key bytes (orders ties), start, dict key)
_Due = tuple[int, bytes, int, Any]


class SlidingWindows:
    """The sliding windows of one task (see the module docstring)."""

    def __init__(self, env: WindowEnv, size: int, grace: int) -> None:
        self.env = env
        self.size = size
        self.after = size + 1 + grace  # a window starting at s closes at s + after
        # a window may seed new ones until stream time passes its end + keep
        self.keep = 3 * size + 2 + grace
        self.keys: dict[Any, KeyWindows] = {}
        self.closing: list[_Due] = []
        self.expiring: list[_Due] = []
        self.due_at = NEVER
        now = env.clock.now
        for skey, key, wins in env.loaded.keys:
            dk = dict_key(key, skey[4:])
            kw = self.keys[dk] = KeyWindows(key, skey)
            for start, cell in wins.items():
                if cell.max_ts == start + size:  # the left window of a record at its end
                    insort(kw.times, cell.max_ts)
                self._place(kw, dk, start, cell, now)

    def _place(self, kw: KeyWindows, dk: Any, start: int, cell: WindowCell, now: int) -> None:
        kw.wins[start] = cell
        insort(kw.starts, start)
        if start + self.after > now:
            heapq.heappush(self.closing, (start + self.after, emit_order(kw.prefix), start, dk))
            self.due_at = min(self.due_at, start + self.after)
        expiry = start + self.size + 1 + self.keep
        heapq.heappush(self.expiring, (expiry, emit_order(kw.prefix), start, dk))
        self.due_at = min(self.due_at, expiry)

    def close_due(self, now: int) -> None:
        """Emit the windows closing by ``now``; forget those that can seed no new window."""
        closing = self.closing
        expiring = self.expiring
        if (not closing or closing[0][0] > now) and (not expiring or expiring[0][0] > now):
            return
        env = self.env
        emit_final = env.emit_final
        size = self.size
        while closing and closing[0][0] <= now:
            _, _, start, dk = heapq.heappop(closing)
            kw = self.keys[dk]
            cell = kw.wins[start]
            if emit_final is not None:
                w = cell.windowed or Windowed(kw.key, start, start + size)
                emit_final(w, cell.agg, cell.max_ts, None)
        while expiring and expiring[0][0] <= now:
            _, _, start, dk = heapq.heappop(expiring)
            kw = self.keys[dk]
            cell = kw.wins.pop(start)
            del kw.starts[bisect_left(kw.starts, start)]
            if cell.max_ts == start + size:
                del kw.times[bisect_left(kw.times, start + size)]
            if kw.wins:
                env.touched(kw)
            else:
                del self.keys[dk]
                env.emptied(kw)
        self.due_at = min(closing[0][0] if closing else NEVER,
                          expiring[0][0] if expiring else NEVER)

    def last_close(self) -> int | None:
        """The close time of the last window not closed yet."""
        return max(c[0] for c in self.closing) if self.closing else None

    def _source(self, kw: KeyWindows, lo: int, hi: int) -> tuple[Any, int]:
        """A copy of the aggregate over the records in ``[lo, hi]`` before the current one.

        Taken from the existing window holding exactly those records.
        """
        times = kw.times
        size = self.size
        i = bisect_left(times, lo)
        j = bisect_right(times, hi)
        if i == j:
            return _EMPTY, NO_TIME
        last = times[j - 1]
        # the left window of the last record, unless it reaches back to an earlier record
        cell = kw.wins.get(last - size)
        if cell is not None and bisect_left(times, last - size) == i:
            return copy_agg(cell.agg), cell.max_ts
        if i > 0:  # else the right window of the record before the range
            prev = times[i - 1]
            cell = kw.wins.get(prev + 1)
            if cell is not None and bisect_right(times, prev + 1 + size) == j:
                return copy_agg(cell.agg), cell.max_ts
        for s in kw.starts:  # not reached while the invariants hold; kept as a safety net
            if bisect_left(times, s) == i and bisect_right(times, s + size) == j:
                cell = kw.wins[s]
                return copy_agg(cell.agg), cell.max_ts
        msg = (
            f"sliding window state of {kw.key!r} has no window holding the records in "
            f"[{lo}, {hi}]; this is a bug in streamflow, please report it"
        )
        raise RuntimeError(msg)

    def _created(self, kw: KeyWindows, ts: int) -> list[tuple[int, Any, int, bool]]:
        """The windows a record at ``ts`` creates, seeded from the state before it.

        ``(start, aggregate, max_ts, holds the record)``.
        """
        size = self.size
        wins = kw.wins
        times = kw.times
        new: list[tuple[int, Any, int, bool]] = []
        if ts - size not in wins:  # its left window [ts - size, ts]
            agg, mx = self._source(kw, ts - size, ts - 1)
            new.append((ts - size, agg, mx, True))
        if ts + 1 not in wins:  # its right window (ts, ts + 1 + size], if not empty
            agg, mx = self._source(kw, ts + 1, ts + 1 + size)
            if agg is not _EMPTY:
                new.append((ts + 1, agg, mx, False))
        i = bisect_left(times, ts)
        if i > 0:  # the right window of the previous record, if this one is its first
            prev = times[i - 1]
            if prev + 1 + size >= ts and prev + 1 not in wins and prev + 1 != ts - size:
                agg, mx = self._source(kw, prev + 1, prev + 1 + size)
                new.append((prev + 1, agg, mx, True))
        return new

    def add(self, k: Any, v: Any, ts: int, h: Headers | None) -> None:
        """Create the record's windows, fold it into every window holding it."""
        env = self.env
        now = env.clock.now
        size = self.size
        after = self.after
        if ts + after <= now:
            env.dropped(k, v, ts, h)
            return
        dk = k if type(k) is str else encode_key(k)
        kw = self.keys.get(dk)
        if kw is None or kw.written != env.store.generation:
            kw = env.key_state(self.keys, dk, k)
        new = self._created(kw, ts)
        emit_update = env.emit_update
        # every existing window holding ts absorbs the record
        wins = kw.wins
        starts = kw.starts
        counting = env.counting
        adder = env.adder
        for s in starts[bisect_left(starts, ts - size):bisect_right(starts, ts)]:
            cell = wins[s]
            cell.agg = cell.agg + 1 if counting else adder(cell.agg, v)
            if ts > cell.max_ts:
                cell.max_ts = ts
            if emit_update is not None and s + after > now:
                if cell.windowed is None:
                    cell.windowed = Windowed(k, s, s + size)
                emit_update(cell.windowed, cell.agg, cell.max_ts, h)
        # then the new windows join
        for s, agg, mx, holds in new:
            if holds:
                agg = env.first(v) if agg is _EMPTY else adder(agg, v)
                mx = max(mx, ts)
            cell = WindowCell(agg, mx)
            self._place(kw, dk, s, cell, now)
            if emit_update is not None and s + after > now:
                cell.windowed = Windowed(k, s, s + size)
                emit_update(cell.windowed, agg, mx, h)
        times = kw.times
        i = bisect_left(times, ts)
        if i == len(times) or times[i] != ts:
            times.insert(i, ts)
