"""Session windows.

A key's records less than ``gap`` apart form one session ``[start, end]`` (a record bridging two
sessions merges them with the ``merger``); a session closes when stream time reaches
``end + gap + 1 + grace``.

A record's new aggregate (its adder, and the merger when it bridges sessions) is computed
before its key's sessions change, so a record whose function raises leaves them as they were
(``streamflow.plan.guard``).

A key's sessions are disjoint and kept with their starts in order; closing is indexed by a
heap of ``(close time, store key, start, dict key)``. Extending a session does not touch the
heap: an entry popped before its session's close time (the session grew since) goes back with
the right one, and entries of sessions merged away are skipped. So sessions close in the order
of (close time, store key, start), before and after a restart.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right, insort
from typing import Any

from streamflow.plan.windows.env import NEVER, KeyWindows, WindowEnv, emit_order
from streamflow.record import Headers
from streamflow.state.keys import encode_key
from streamflow.state.window_store import WindowCell
from streamflow.windows import Windowed


class Sessions:
    """The open sessions of one task (see the module docstring)."""

    def __init__(self, env: WindowEnv, gap: int, grace: int) -> None:
        assert env.merger is not None, "session aggregations need a merger"
        self.env = env
        self.merger = env.merger
        self.gap = gap
        self.after = gap + 1 + grace  # a session [s, e] closes when stream time reaches e + after
        self.keys: dict[Any, KeyWindows] = {}
        # (close time or earlier, key bytes (orders ties), start, dict key)
        self.closing: list[tuple[int, bytes, int, Any]] = []
        self.due_at = NEVER
        after = self.after
        for dk, kw in env.restored(lambda s, cell: cell.max_ts + after):
            self.keys[dk] = kw
            kw.starts = sorted(kw.wins)
            for s, cell in kw.wins.items():
                self._due(cell.max_ts + after, emit_order(kw.prefix), s, dk)

    def _due(self, close: int, order: bytes, start: int, dk: Any) -> None:
        """Index the session at ``start`` of ``dk`` by its close time."""
        heapq.heappush(self.closing, (close, order, start, dk))
        if close < self.due_at:
            self.due_at = close

    def close_due(self, now: int) -> None:
        """Close (and emit) the sessions whose close time is at most ``now``."""
        closing = self.closing
        env = self.env
        keys = self.keys
        after = self.after
        while closing and closing[0][0] <= now:
            close, order, start, dk = heapq.heappop(closing)
            kw = keys.get(dk)
            cell = None if kw is None else kw.wins.get(start)
            if kw is None or cell is None:
                continue  # merged away
            if cell.max_ts + after != close:  # extended since: back with its close time
                heapq.heappush(closing, (cell.max_ts + after, order, start, dk))
                continue
            del kw.wins[start]
            del kw.starts[bisect_left(kw.starts, start)]
            if kw.wins:
                env.touched(kw)
            else:
                del keys[dk]
                env.emptied(kw)
            if env.emit_final is not None:
                env.emit_final(Windowed(kw.key, start, cell.max_ts), cell.agg, cell.max_ts,
                               None)
        self.due_at = closing[0][0] if closing else NEVER

    def last_close(self) -> int | None:
        """The close time of the last session."""
        ends = [cell.max_ts for kw in self.keys.values() for cell in kw.wins.values()]
        if not ends:
            self.closing.clear()
            self.due_at = NEVER
            return None
        return max(ends) + self.after

    def add(self, k: Any, v: Any, ts: int, h: Headers | None) -> None:
        """Extend, merge or start a session with the record."""
        env = self.env
        dk = k if type(k) is str else encode_key(k)
        kw = self.keys.get(dk)
        if kw is not None:
            starts = kw.starts
            wins = kw.wins
            gap = self.gap
            j = bisect_right(starts, ts + gap) - 1  # the last session starting in reach
            if j >= 0 and wins[starts[j]].max_ts >= ts - gap:
                start = starts[j]
                if start <= ts and (j == 0 or wins[starts[j - 1]].max_ts < ts - gap):
                    self._extend(k, kw, start, v, ts, h)  # the common case
                else:
                    self._merge(k, dk, kw, j, v, ts, h)
                return
        if ts + self.after <= env.clock.now:
            env.dropped(k, v, ts, h)
            return
        cell = WindowCell(env.first(v), ts)
        self._add(k, dk, env.key_state(self.keys, dk, k), ts, cell, h)

    def _extend(self, k: Any, kw: KeyWindows, start: int, v: Any, ts: int,
                h: Headers | None) -> None:
        """The common case: the record falls in or after one session starting before it.

        As in Kafka Streams, the session is replaced (its old value deleted: ``None``), unless
        it is exactly ``[ts, ts]``.
        """
        env = self.env
        emit_update = env.emit_update
        cell = kw.wins[start]
        agg = env.adder(cell.agg, v)  # first: a record whose adder raises changes nothing
        if kw.written != env.store.generation:
            env.touched(kw)
        cell.agg = agg
        end0 = cell.max_ts
        if ts > end0:
            cell.max_ts = ts  # its heap entry is now early: close_due moves it
        if emit_update is not None and (start != ts or end0 != ts):
            emit_update(Windowed(k, start, end0), None, end0, h)
        if emit_update is not None:
            emit_update(Windowed(k, start, cell.max_ts), cell.agg, cell.max_ts, h)

    def _merge(self, k: Any, dk: Any, kw: KeyWindows, j: int, v: Any, ts: int,
               h: Headers | None) -> None:
        """Replace the sessions within ``gap`` of ``ts`` by one holding them and the record.

        The last of them is the ``j``-th.
        """
        starts = kw.starts
        wins = kw.wins
        merged: list[int] = []
        while j >= 0 and wins[starts[j]].max_ts >= ts - self.gap:
            merged.append(starts[j])
            j -= 1
        merged.reverse()
        agg = wins[merged[0]].agg
        for s in merged[1:]:
            agg = self.merger(agg, wins[s].agg)
        cell = WindowCell(self.env.adder(agg, v), max(ts, wins[merged[-1]].max_ts))
        if kw.written != self.env.store.generation:  # nothing failed: now change the key
            self.env.touched(kw)
        emit_update = self.env.emit_update
        for s in merged:
            old = wins.pop(s)
            del starts[bisect_left(starts, s)]
            if emit_update is not None:
                emit_update(Windowed(k, s, old.max_ts), None, old.max_ts, h)
        self._add(k, dk, kw, min(ts, merged[0]), cell, h)

    def _add(self, k: Any, dk: Any, kw: KeyWindows, start: int, cell: WindowCell,
             h: Headers | None) -> None:
        kw.wins[start] = cell
        insort(kw.starts, start)
        self._due(cell.max_ts + self.after, emit_order(kw.prefix), start, dk)
        if self.env.emit_update is not None:
            self.env.emit_update(Windowed(k, start, cell.max_ts), cell.agg, cell.max_ts, h)
