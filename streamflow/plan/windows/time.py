"""Tumbling and hopping windows.

``[start, start + size)`` every ``advance`` ms (tumbling: ``advance == size``), closing when
stream time reaches ``end + grace``. Windows start at 0 or later: a record at ``ts < size``
is in the windows starting at ``0 .. ts`` only (Kafka Streams clips them the same way).

Windows of one key sharing a close time share a start, so the open windows are indexed by
close time in buckets (a heap of the buckets' close times): closing is ``O(closed windows)``
whatever the number of open ones, and a record touching ten hopping windows does ten cell
updates and at most one write-back-cache assignment.
"""

from __future__ import annotations

import heapq
from typing import Any

from streamflow.plan.windows.env import NEVER, KeyWindows, WindowEnv, emit_order
from streamflow.record import Headers
from streamflow.state.keys import encode_key
from streamflow.state.window_store import WindowCell
from streamflow.windows import Windowed


class TimeWindows:
    """The open tumbling or hopping windows of one task."""

    def __init__(self, env: WindowEnv, size: int, advance: int, grace: int) -> None:
        self.env = env
        self.size = size
        self.advance = advance
        self.span = size + grace  # a window starting at s closes at s + span
        self.keys: dict[Any, KeyWindows] = {}
        self.buckets: dict[int, list[tuple[Any, int]]] = {}  # close time -> [(dict key, start)]
        self.closes: list[int] = []  # heap of the buckets' close times
        self.due_at = NEVER
        self._restore()

    def _restore(self) -> None:
        span = self.span
        for dk, kw in self.env.restored(lambda s, cell: s + span):
            self.keys[dk] = kw
            for s in kw.wins:
                self._track(s + span, (dk, s))

    def _track(self, close: int, entry: tuple[Any, int]) -> None:
        b = self.buckets.get(close)
        if b is None:
            self.buckets[close] = b = []
            heapq.heappush(self.closes, close)
            if close < self.due_at:
                self.due_at = close
        b.append(entry)

    def add(self, k: Any, v: Any, ts: int, h: Headers | None) -> None:
        """Fold a record into each open window holding ``ts``.

        The new aggregates are all computed before any window changes, so a record whose
        adder raises leaves the key's windows as they were (``streamflow.plan.guard``).
        """
        env = self.env
        now = env.clock.now
        size = self.size
        adv = self.advance
        span = self.span
        last = ts - ts % adv  # the start of the last window holding ts
        if last + span <= now:
            env.dropped(k, v, ts, h)
            return
        first = last - ((last - ts + size - 1) // adv) * adv  # the first window holding ts
        if first < 0:  # no window starts before 0 (as Kafka Streams)
            first = 0
        if first + span <= now:  # skip the windows already closed
            first = last - ((last + span - now - 1) // adv) * adv
        dk = k if type(k) is str else encode_key(k)
        kw = self.keys.get(dk)
        aggs: list[Any] | None = None  # a count cannot fail: counted in the one pass below
        if not env.counting:
            aggs = self._aggregates(kw, first, last, v)
        if kw is None or kw.written != env.store.generation:
            kw = env.key_state(self.keys, dk, k)
        wins = kw.wins
        emit_update = env.emit_update
        for i, s in enumerate(range(first, last + 1, adv)):
            cell = wins.get(s)
            if cell is None:
                wins[s] = cell = WindowCell(1 if aggs is None else aggs[i], ts)
                self._track(s + span, (dk, s))
            else:
                cell.agg = cell.agg + 1 if aggs is None else aggs[i]
                if ts > cell.max_ts:
                    cell.max_ts = ts
            if emit_update is not None:
                if cell.windowed is None:
                    cell.windowed = Windowed(k, s, s + size)
                emit_update(cell.windowed, cell.agg, cell.max_ts, h)

    def _aggregates(self, kw: KeyWindows | None, first: int, last: int, v: Any) -> list[Any]:
        """The new aggregates of the windows from ``first`` to ``last``, with ``v``."""
        new = self.env.first
        adder = self.env.adder
        get = ({} if kw is None else kw.wins).get
        out = []
        for s in range(first, last + 1, self.advance):
            cell = get(s)
            out.append(new(v) if cell is None else adder(cell.agg, v))
        return out

    def close_due(self, now: int) -> None:
        """Close the windows whose close time is at most ``now``.

        By key within a close time (all end together), the same order after a restart.
        """
        closes = self.closes
        if not closes or closes[0] > now:
            return
        env = self.env
        keys = self.keys
        emit_final = env.emit_final
        size = self.size
        while closes and closes[0] <= now:
            due = self.buckets.pop(heapq.heappop(closes))
            if len(due) > 1:
                due.sort(key=lambda e: emit_order(keys[e[0]].prefix))
            for dk, start in due:
                kw = keys[dk]
                cell = kw.wins.pop(start)
                if kw.wins:
                    env.touched(kw)
                else:
                    del keys[dk]
                    env.emptied(kw)
                if emit_final is not None:
                    w = cell.windowed or Windowed(kw.key, start, start + size)
                    emit_final(w, cell.agg, cell.max_ts, None)
        self.due_at = closes[0] if closes else NEVER

    def last_close(self) -> int | None:
        """The close time of the last open window."""
        return max(self.closes) if self.closes else None
