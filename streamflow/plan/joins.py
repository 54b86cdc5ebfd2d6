"""Windowed stream-stream joins, as Kafka Streams' ``KStreamKStreamJoin`` (since 3.1).

A record of the left stream at ``t`` joins each right record of the same key with a timestamp
in ``[t - before, t + after]``; a right record at ``t`` joins the left records in
``[t - after, t + before]`` (``sf.JoinWindows``). Per record, in this order:

1. Records with a negative timestamp are skipped, and so are records with a null key or
   value (``<join>.skipped_records``); in a left join a left record with a null key, and in
   an outer join any such record, comes out at once joined with ``None`` (KIP-962).
2. Left and outer joins: when the record does not go back in time (its timestamp is the
   join's stream time, the largest timestamp either side has seen), the records without a
   partner whose window has closed come out: a left record at ``t`` once stream time is past
   ``t + after + grace`` as ``joiner(value, None)``, a right one past ``t + before + grace`` as
   ``joiner(None, value)``, with their own timestamp, in (timestamp, left before right, key)
   order. A record that found a partner never comes out so.
3. The record is joined with the other side's buffered records, oldest first: one result
   ``joiner(left_value, right_value)`` each, keyed by the common key, at the larger of the
   two timestamps, with the record's headers.
4. Left and outer joins, when nothing matched: the record waits for a partner among the
   records without one; if its window has already ended (``t + after`` before stream time,
   an out-of-order record) it comes out at once, joined with ``None``, as in Kafka Streams.
5. The record is buffered in its side's store, unless it is older than the store keeps
   (more than ``before + after + grace`` behind the side's latest timestamp:
   ``<join>.late_records``); older records leave the stores as time advances.

A stream joined with itself works: each record meets the others and itself.

State: each side's records live in a window store (``streamflow.state.window_store`` layout,
one entry per key holding the key's records by timestamp; values as JSON, or through the
join's ``value_serde=`` / ``other_value_serde=``: ``streamflow.serde.join_values``), the
records still without a partner in a third store keyed by (timestamp, side, key) as Kafka
Streams' outer join store, with the join's stream time. All three have changelogs; a task
keeps their contents in memory and rebuilds them from the stores when it starts.

Deliberate differences from Kafka Streams: records without a partner are looked at on every
record that advances stream time (Kafka Streams throttles this to once a second of wall-clock
time by default, an internal setting its own tests turn off), they come out without headers
(Kafka Streams gives them the headers of the record that happened to trigger them), the
join's stream time and its hint of the oldest record without a partner survive a restart
(Kafka Streams starts both again from the next records, so a restart there changes when
records without a partner come out; here it changes nothing), and a store keeps a record
until it is *more* than ``before + after + grace`` behind (Kafka Streams' window stores drop
it 1 ms earlier, ``observed - retention + 1``, so with no grace a record exactly ``after``
behind, whose window is still open, no longer joins there).
"""

from __future__ import annotations

import struct
from bisect import bisect_left
from collections.abc import Callable
from heapq import heapify, heappop, heappush
from typing import Any

from streamflow.dsl.nodes import StreamJoin, StreamJoinSide
from streamflow.plan.context import Step, StepError
from streamflow.plan.windows.env import NO_TIME, StreamClock
from streamflow.plan.wiring import Wiring
from streamflow.record import Headers
from streamflow.serde.join_values import SideValues
from streamflow.state.keys import decode_key, encode_key
from streamflow.state.window_store import WindowCell, load, window_prefix

__all__ = ["JoinCore", "build_join_side", "build_stream_join"]

_TS = struct.Struct(">q")
SHARED_TIME = b"\xff" * 8 + b"stream-time"  # sorts after every (timestamp >= 0, side, key)
MIN_TIME = b"\xff" * 8 + b"min-time"  # the oldest-entry hint (deleted with no entry)
_NEVER = 1 << 63


class JoinBuffer:
    """One side's buffered records: ``{store key: {timestamp: WindowCell([values], ts)}}``.

    Kept in memory and mirrored to the side's store (one entry per key); ``clock`` is the
    largest timestamp the side has seen, ``expiry`` a heap of ``(timestamp, store key)`` that
    says which records leave the store next.
    """

    __slots__ = ("clock", "expiry", "keys", "retention", "slack", "store")

    def __init__(self, store: Any, retention: int) -> None:
        loaded = load(store)
        self.store = store
        self.retention = retention
        # expired records are dropped in batches, once the oldest is this far past the
        # retention (fetch never returns them meanwhile): not one heap pop per record
        self.slack = retention // 8
        self.clock = StreamClock(store, loaded.stream_time)
        self.keys: dict[bytes, dict[int, WindowCell]] = {}
        self.expiry: list[tuple[int, bytes]] = []
        for skey, _key, wins in loaded.keys:
            self.keys[skey] = wins
            self.expiry += ((ts, skey) for ts in wins)
        heapify(self.expiry)

    def observe(self, ts: int) -> None:
        """The side saw a record at ``ts`` later than its time: advance, drop what expired."""
        self.clock.advance(ts)
        cutoff = ts - self.retention
        if self.expiry and self.expiry[0][0] < cutoff - self.slack:
            self._purge(cutoff)

    def _purge(self, cutoff: int) -> None:
        expiry, keys = self.expiry, self.keys
        touched: set[bytes] = set()
        while expiry and expiry[0][0] < cutoff:
            ts, skey = heappop(expiry)
            wins = keys.get(skey)
            if wins is not None and wins.pop(ts, None) is not None:
                touched.add(skey)
        put = self.store.put_raw_key
        for skey in touched:
            wins = keys[skey]
            if not wins:
                del keys[skey]
            put(skey, wins or None)

    def put(self, skey: bytes, ts: int, value: Any) -> bool:
        """Buffer a record; False when it is too old for the store."""
        if ts < self.clock.now - self.retention:
            return False
        wins = self.keys.get(skey)
        if wins is None:
            wins = self.keys[skey] = {}
        cell = wins.get(ts)
        if cell is None:
            wins[ts] = WindowCell([value], ts)
            heappush(self.expiry, (ts, skey))
        else:
            cell.agg.append(value)
        self.store.put_raw_key(skey, wins)
        return True

    def fetch(self, skey: bytes, lo: int, hi: int) -> list[tuple[int, list[Any]]]:
        """The key's records with a timestamp in ``[lo, hi]``: ``(ts, values)``, oldest first."""
        wins = self.keys.get(skey)
        if not wins:
            return []
        lo = max(lo, self.clock.now - self.retention)
        found = [(ts, c.agg) for ts, c in wins.items() if lo <= ts <= hi]
        if len(found) > 1:
            found.sort(key=_first)
        return found


def _first(item: tuple[int, list[Any]]) -> int:
    return item[0]


class Unmatched:
    """Records of a left or outer join without a partner yet, and the join's stream time.

    Entries by ``timestamp (8 bytes) + side (1 byte) + key bytes``, the order of Kafka Streams'
    outer join store, each a list of values (records of one key, side and timestamp).
    ``min_time`` is Kafka Streams' hint of the oldest entry: entries are looked at only once
    stream time is past it. It is not always the oldest entry's timestamp (a look at the
    entries leaves it at the last one visited, which may be newer than entries still waiting),
    so it is kept in the store too: a restore rebuilt from the entries alone would look at
    them, and let them out, at other moments than the run it restores.
    """

    __slots__ = ("entries", "min_time", "order", "store", "tagged", "time")

    def __init__(self, store: Any, tagged: bool = False) -> None:
        self.store = store
        # the store keeps SideValues (a join with serdes, streamflow.serde.join_values)
        self.tagged = tagged
        self.time = NO_TIME
        self.entries: dict[bytes, list[Any]] = {}
        self.order: list[bytes] = []
        hint: int | None = None
        for skey, values in store.scan_raw(None, None):
            if skey == SHARED_TIME:
                self.time = values
            elif skey == MIN_TIME:
                hint = values
            else:
                self.entries[skey] = values.values if type(values) is SideValues else values
                self.order.append(skey)
        if hint is None:  # none stored: no entry, or a store from before the hint was kept
            hint = _TS.unpack_from(self.order[0])[0] if self.order else _NEVER
        self.min_time: int = hint

    def _keep_min_time(self, ts: int) -> None:
        """Set the oldest-entry hint, in memory and in the store."""
        self.min_time = ts
        self.store.put_raw_key(MIN_TIME, None if ts == _NEVER else ts)

    def advance(self, ts: int) -> None:
        """The join saw a record at ``ts``."""
        if ts > self.time:
            self.time = ts
            self.store.put_raw_key(SHARED_TIME, ts)

    def add(self, ts: int, side: int, kb: bytes, value: Any) -> None:
        """A record found no partner: keep it until its window closes or a partner comes."""
        skey = _TS.pack(ts) + bytes((side,)) + kb
        values = self.entries.get(skey)
        if values is None:
            values = self.entries[skey] = []
            order = self.order
            if order and order[-1] > skey:
                order.insert(bisect_left(order, skey), skey)
            else:
                order.append(skey)
        values.append(value)
        self.store.put_raw_key(skey, SideValues(side, values) if self.tagged else values)
        if ts < self.min_time:
            self._keep_min_time(ts)

    def matched(self, ts: int, side: int, kb: bytes) -> None:
        """The records of ``side`` at ``ts`` with key ``kb`` found a partner."""
        skey = _TS.pack(ts) + bytes((side,)) + kb
        if self.entries.pop(skey, None) is not None:
            del self.order[bisect_left(self.order, skey)]
            self.store.put_raw_key(skey, None)

    def emit_closed(self, after_this: int, grace: int, lookback: tuple[int, int],
                    emit: Callable[[Any, int, Any, int], None]) -> None:
        """Emit and drop every entry whose window has closed (``emit(key, side, value, ts)``).

        ``lookback`` is how long each side's records wait for a partner (left: ``after``,
        right: ``before``); entries are visited in store order until an open one of each side
        is met, as Kafka Streams does.
        """
        now = self.time
        if self.min_time + after_this + grace >= now:
            return
        min_time = _NEVER  # as Kafka Streams: the last entry looked at
        open_sides = [False, False]
        done: set[bytes] = set()
        try:
            for skey in self.order:
                ts = min_time = _TS.unpack_from(skey)[0]
                if open_sides[0] and open_sides[1]:
                    break
                side = skey[8]
                if ts + lookback[side] + grace >= now:
                    open_sides[side] = True
                    continue
                # dropped before it is emitted: a joiner failing on it fails once, not on
                # every record after (its error policy decides about the record at hand)
                values = self.entries.pop(skey)
                self.store.put_raw_key(skey, None)
                done.add(skey)
                key = decode_key(skey[9:])
                for value in values:
                    emit(key, side, value, ts)
        finally:
            if done:
                self.order = [s for s in self.order if s not in done]
            if min_time != self.min_time:
                self._keep_min_time(min_time)


class JoinCore:
    """The state of one join for one task, shared by its two sides' steps.

    Called as a step it passes results on to the join's children.
    """

    def __init__(self, w: Wiring, node: StreamJoin) -> None:
        spec = node.window
        self.node = node
        self.before: int = spec.before
        self.after: int = spec.after
        self.grace: int = spec.grace
        assert node.joiner is not None
        self.joiner: Callable[[Any, Any], Any] = node.joiner
        self.nxt = w.downstream(node)
        self.left = JoinBuffer(w.store(node.stores[0]), spec.retention)
        self.right = JoinBuffer(w.store(node.stores[1]), spec.retention)
        self.unmatched = (Unmatched(w.store(node.stores[2]), node.serdes)
                          if len(node.stores) > 2 else None)
        self.metrics: dict[str, int] = w.ctx.metrics
        self.skipped = f"{node.name}.skipped_records"
        self.late = f"{node.name}.late_records"
        self.metrics.setdefault(self.skipped, 0)
        self.metrics.setdefault(self.late, 0)

    def __call__(self, k: Any, v: Any, ts: int, h: Headers | None) -> None:
        """Pass a result on to the join's children."""
        self.nxt(k, v, ts, h)

    def join(self, side: int, value: Any, other: Any) -> Any:
        """``joiner(left, right)`` with ``value`` on ``side`` (errors name the join step)."""
        joiner = self.joiner
        try:
            return joiner(value, other) if side == 0 else joiner(other, value)
        except Exception as e:
            raise StepError(self.node.name, e) from e

    def emit_alone(self, key: Any, side: int, value: Any, ts: int) -> None:
        """A record without a partner comes out joined with None."""
        self.nxt(key, self.join(side, value, None), ts, None)

    def side_step(self, side: int) -> Step:
        """The step of the left (0) or right (1) input."""
        before, after = (self.before, self.after) if side == 0 else (self.after, self.before)
        this, other = (self.left, self.right) if side == 0 else (self.right, self.left)
        how = self.node.how
        alone_too = how == "outer" or (how == "left" and side == 0)
        unmatched = self.unmatched
        grace = self.grace
        lookback = (self.after, self.before)
        metrics, skipped, late = self.metrics, self.skipped, self.late
        join, nxt, emit_alone = self.join, self.nxt, self.emit_alone
        other_side = 1 - side
        this_clock = this.clock

        def step(k: Any, v: Any, ts: int, h: Headers | None) -> None:
            if ts < 0:
                metrics[skipped] += 1
                return
            if unmatched is not None:
                unmatched.advance(ts)
            if k is None or v is None:
                if alone_too and k is None and v is not None:
                    nxt(k, join(side, v, None), ts, h)
                else:
                    metrics[skipped] += 1
                if k is not None and ts > this_clock.now:
                    this.observe(ts)
                return
            kb = encode_key(k)
            skey = window_prefix(kb)
            if unmatched is not None and ts == unmatched.time:
                unmatched.emit_closed(after, grace, lookback, emit_alone)
            matches = other.fetch(skey, ts - before, ts + after)
            for other_ts, values in matches:
                if unmatched is not None:
                    unmatched.matched(other_ts, other_side, kb)
                out_ts = ts if ts > other_ts else other_ts
                for ov in values:
                    nxt(k, join(side, v, ov), out_ts, h)
            if not matches and alone_too:
                assert unmatched is not None
                if ts + after < unmatched.time:
                    nxt(k, join(side, v, None), ts, h)
                else:
                    unmatched.add(ts, side, kb, v)
            if ts > this_clock.now:
                this.observe(ts)
            if not this.put(skey, ts, v):
                metrics[late] += 1

        return step


def build_stream_join(w: Wiring, node: StreamJoin) -> Step:
    """The join's shared state; as a step, it passes results to the join's children."""
    return JoinCore(w, node)


def build_join_side(w: Wiring, node: StreamJoinSide) -> Step:
    """The step of one input of a stream-stream join."""
    (join_node,) = w.children(node)
    core = w.step(join_node)
    assert isinstance(core, JoinCore)
    return core.side_step(node.side)
