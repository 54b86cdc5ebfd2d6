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
        # ``WindowKind.add``: a record is in one tumbling window, in several hopping ones
        self.add = self._add_one if advance == size else self._add_many
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

    def _add_one(self, k: Any, v: Any, ts: int, h: Headers | None) -> None:
        """Tumbling windows: fold a record into its one window.

        The new aggregate is computed before the window (or the key's store entry) changes, so
        a record whose adder raises leaves it as it was (``streamflow.plan.guard``).
        """
        env = self.env
        s = ts - ts % self.size
        if s + self.span <= env.clock.now:
            env.dropped(k, v, ts, h)
            return
        dk = k if type(k) is str else encode_key(k)
        kw = self.keys.get(dk)
        cell = None if kw is None else kw.wins.get(s)
        if env.counting:
            agg = 1 if cell is None else cell.agg + 1
        else:
            agg = env.first(v) if cell is None else env.adder(cell.agg, v)
        if kw is None or kw.written != env.store.generation:
            kw = env.key_state(self.keys, dk, k)
        if cell is None:
            kw.wins[s] = cell = WindowCell(agg, ts)
            self._track(s + self.span, (dk, s))
        else:
            cell.agg = agg
            if ts > cell.max_ts:
                cell.max_ts = ts
        emit_update = env.emit_update
        if emit_update is not None:
            if cell.windowed is None:
                cell.windowed = Windowed(k, s, s + self.size)
            emit_update(cell.windowed, agg, cell.max_ts, h)

    def _add_many(self, k: Any, v: Any, ts: int, h: Headers | None) -> None:
        """Hopping windows: fold a record into each open window holding ``ts``.

        When a failure may leave the processor running (``env.staged``), the new aggregates
        are all computed before any window changes, so a record whose adder raises leaves the
        key's windows as they were (``streamflow.plan.guard``); otherwise each window is
        folded as it is reached.
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
        aggs = self._aggregates(kw, first, last, v) if env.staged else None
        if kw is None or kw.written != env.store.generation:
            kw = env.key_state(self.keys, dk, k)
        wins = kw.wins
        emit_update = env.emit_update
        counting = env.counting  # (never staged)
        new = env.first
        adder = env.adder
        for i, s in enumerate(range(first, last + 1, adv)):
            cell = wins.get(s)
            if cell is None:
                wins[s] = cell = WindowCell(
                    1 if counting else new(v) if aggs is None else aggs[i], ts)
                self._track(s + span, (dk, s))
            else:
                cell.agg = (cell.agg + 1 if counting else adder(cell.agg, v) if aggs is None
                            else aggs[i])
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
