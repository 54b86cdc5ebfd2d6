"""Sliding windows of ``size`` ms, computed as Kafka Streams computes them.

Kafka Streams' algorithm (``KStreamSlidingWindowAggregate``), step for step, so the windows,
their aggregates and the order of the updates are Kafka Streams' own (the conformance suite in
``tests/conformance`` checks it against Kafka Streams itself):

- a record at ``ts >= size`` has a left window ``[ts - size, ts]`` and, once a later record
  falls within ``size`` after it, a right window ``[ts + 1, ts + 1 + size]``;
- a record at ``ts < size`` goes into the single **early window** ``[0, size]`` instead of a left
  window (no window starts before 0), plus its right window as above;
- windows are created from records only, never empty; a new window starts from a copy of the
  aggregate of an existing window that holds exactly its records (the left window of the record
  before, or the right window of one that holds the same later records);
- a record updates every open window holding it: the windows of the key that start within
  ``2 * size`` before it are looked at, latest start first, then the new windows are created:
  the right window of the record before it, its own left (or early) window, its own right
  window. A closed window is not updated, though it may still seed a new one.

A record that arrives after its left window closed, when no open window holds it yet, is in no
window at all (Kafka Streams drops it without a trace). streamflow counts it as late, as one
too late for every window: ``<step>.late_records`` and the ``late_topic``. The windows are
Kafka Streams' all the same (its right window is still created).

A window closes once stream time passes ``end + grace``; it is forgotten once no accepted record
can look at it any more (stream time past ``start + 3 * size + grace``). Closing and expiry are
indexed by heaps.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right, insort
from typing import Any

from streamflow.plan.guard import copy_agg
from streamflow.plan.windows.env import NEVER, KeyWindows, WindowEnv, dict_key, emit_order
from streamflow.record import Headers
from streamflow.state.keys import encode_key
from streamflow.state.window_store import WindowCell
from streamflow.windows import Windowed

# (close or expiry time, key bytes (orders ties), start, dict key)
_Due = tuple[int, bytes, int, Any]
# an aggregate and its largest timestamp, taken from a window before the record changed it
_Seed = tuple[Any, int]
# what a record changes: (start, the window it updates (None: one to create), the new
# aggregate, the new largest timestamp, whether the window holds the record (a right window
# holds only later records))
_Change = tuple[int, WindowCell | None, Any, int, bool]
_NO_WINDOWS: dict[int, WindowCell] = {}  # a key without windows (never written)
_NO_STARTS: list[int] = []


class SlidingWindows:
    """The sliding windows of one task (see the module docstring)."""

    def __init__(self, env: WindowEnv, size: int, grace: int) -> None:
        self.env = env
        self.size = size
        self.after = size + 1 + grace  # a window starting at s closes at s + after
        # a window starting at s is looked at by no accepted record from s + forget on
        self.forget = 3 * size + grace + 1
        self.keys: dict[Any, KeyWindows] = {}
        self.closing: list[_Due] = []
        self.expiring: list[_Due] = []
        self.due_at = NEVER
        now = env.clock.now
        for skey, key, wins in env.loaded.keys:
            dk = dict_key(key, skey[4:])
            kw = self.keys[dk] = KeyWindows(key, skey)
            for start, cell in wins.items():
                self._place(kw, dk, start, cell, now)

    def _place(self, kw: KeyWindows, dk: Any, start: int, cell: WindowCell, now: int) -> None:
        kw.wins[start] = cell
        insort(kw.starts, start)
        order = emit_order(kw.prefix)
        close = start + self.after
        if close > now:
            heapq.heappush(self.closing, (close, order, start, dk))
            if close < self.due_at:
                self.due_at = close
        expiry = start + self.forget
        heapq.heappush(self.expiring, (expiry, order, start, dk))
        if expiry < self.due_at:
            self.due_at = expiry

    def close_due(self, now: int) -> None:
        """Emit the windows closing by ``now``; forget those no record can look at any more."""
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
            del kw.wins[start]
            del kw.starts[bisect_left(kw.starts, start)]
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

    def add(self, k: Any, v: Any, ts: int, h: Headers | None) -> None:
        """Fold a record into the open windows holding it and create its windows.

        Every change is computed before any is made, so a record whose adder raises leaves
        the key's windows as they were (``streamflow.plan.guard``). A record no open window
        holds (its left window closed, and no open window holds it yet; Kafka Streams loses
        it silently) is counted as late: ``<step>.late_records`` and the ``late_topic``. Its
        right window is still created, as in Kafka Streams, so the windows do not change.
        """
        env = self.env
        if ts + self.after <= env.clock.now:
            env.dropped(k, v, ts, h)
            return
        dk = k if type(k) is str else encode_key(k)
        kw = self.keys.get(dk)
        wins, starts = (_NO_WINDOWS, _NO_STARTS) if kw is None else (kw.wins, kw.starts)
        if ts < self.size:
            changes = self._early_changes(wins, starts, v, ts)
        else:
            changes = self._changes(wins, starts, v, ts)
        if not changes:
            env.dropped(k, v, ts, h)
            return
        if kw is None or kw.written != env.store.generation:
            kw = env.key_state(self.keys, dk, k)
        self._apply(kw, dk, k, changes, h)
        if len(changes) == 1 and not changes[0][4]:  # its right window alone (holding no record)
            env.dropped(k, v, ts, h)

    def _changes(self, wins: dict[int, WindowCell], starts: list[int], v: Any,
                 ts: int) -> list[_Change]:
        """What a record at ``ts >= size`` changes (Kafka Streams' ``processReverse``)."""
        size = self.size
        changes: list[_Change] = []
        near = starts[bisect_left(starts, ts - 2 * size):bisect_right(starts, ts + 1)]
        right: _Seed | None = None  # what the record's right window would start from
        left: _Seed | None = None  # the window ending last before ts
        has_left = has_right = False
        prev: int | None = None  # the time of the record before ts, when known
        for s in reversed(near):
            cell = wins[s]
            end = s + size
            if s == ts + 1:
                has_right = True
            elif end > ts:
                if right is None and not has_right:  # (ts + 1 comes first, if it exists)
                    right = (copy_agg(cell.agg), cell.max_ts)
                self._update(changes, s, cell, v, ts)
            elif end == ts:
                has_left = True
                before = cell.max_ts
                self._update(changes, s, cell, v, ts)
                if before >= ts:  # a record at ts came before: its windows exist
                    return changes
                prev = before
            else:
                left = (cell.agg, cell.max_ts)
                prev = cell.max_ts
                break
        if prev is not None and prev + 1 + size >= ts and (prev + 1) not in wins:
            self._create(changes, prev + 1, None, v, ts)
        if not has_left:
            seed = None
            if left is not None and prev is not None and prev >= ts - size:
                seed = (copy_agg(left[0]), ts)
            self._create(changes, ts - size, seed, v, ts)
        if not has_right and right is not None and right[1] > ts:
            changes.append((ts + 1, None, right[0], right[1], False))  # the right window
        return changes

    def _early_changes(self, wins: dict[int, WindowCell], starts: list[int], v: Any,
                       ts: int) -> list[_Change]:
        """What a record at ``ts < size`` changes: the early window ``[0, size]`` and others.

        Kafka Streams' ``processEarly``.
        """
        changes: list[_Change] = []
        early: WindowCell | None = None
        right: _Seed | None = None
        has_right = False
        prev: int | None = None
        for s in starts[:bisect_right(starts, ts + 1)]:
            cell = wins[s]
            if s == 0:
                early = cell
                if cell.max_ts < ts:
                    prev = cell.max_ts
            elif s <= ts:
                right = (copy_agg(cell.agg), cell.max_ts)
                self._update(changes, s, cell, v, ts)
            else:  # s == ts + 1
                has_right = True
        if right is None and early is not None and early.max_ts > ts:
            # no record before ts but later ones: the early window holds just those
            right = (copy_agg(early.agg), early.max_ts)
        if not has_right and right is not None and right[1] > ts:
            changes.append((ts + 1, None, right[0], right[1], False))  # the right window
        if prev is not None and prev + 1 not in wins:
            self._create(changes, prev + 1, None, v, ts)
        if early is None:
            self._create(changes, 0, None, v, ts)
        else:
            self._update(changes, 0, early, v, ts)
        return changes

    def _update(self, changes: list[_Change], s: int, cell: WindowCell, v: Any,
                ts: int) -> None:
        """The record folded into the existing window at ``s``, if it is still open."""
        env = self.env
        if s + self.after <= env.clock.now:
            return  # closed: Kafka Streams leaves it as it is
        agg = cell.agg + 1 if env.counting else env.adder(cell.agg, v)
        changes.append((s, cell, agg, ts if ts > cell.max_ts else cell.max_ts, True))

    def _create(self, changes: list[_Change], s: int, seed: _Seed | None, v: Any,
                ts: int) -> None:
        """A new window at ``s`` holding the record (and ``seed``), if it is open."""
        if s + self.after <= self.env.clock.now:
            return
        env = self.env
        if seed is None:
            changes.append((s, None, env.first(v), ts, True))
        else:
            changes.append((s, None, env.adder(seed[0], v), max(seed[1], ts), True))

    def _apply(self, kw: KeyWindows, dk: Any, k: Any, changes: list[_Change],
               h: Headers | None) -> None:
        """Make the changes, in order, emitting each window's update.

        A window to create may exist already: the right window of the record before may be
        the record's left window (when they are ``size + 1`` apart); Kafka Streams then
        writes (and emits) it twice, the same.
        """
        emit_update = self.env.emit_update
        size = self.size
        now = self.env.clock.now
        wins = kw.wins
        for s, cell, agg, max_ts, _ in changes:
            fresh = cell is None
            if cell is None:
                cell = wins.get(s)
                if cell is None:
                    cell = WindowCell(agg, max_ts)
                    self._place(kw, dk, s, cell, now)
            cell.agg = agg
            cell.max_ts = max_ts
            if emit_update is not None:
                if fresh or cell.windowed is None:
                    cell.windowed = Windowed(k, s, s + size)
                emit_update(cell.windowed, agg, max_ts, h)
