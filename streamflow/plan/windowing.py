"""Compile a windowed aggregation (``WindowAggregate``) into one per-task closure.

Semantics are documented in ``streamflow.windows``; the store layout in
``streamflow.state.window_store``. Per task the step keeps:

* the open windows' cells ``[aggregate, max_ts]`` in memory (a dict for tumbling and hopping
  windows; per key a sorted list of starts plus a dict for sliding windows and sessions), so a
  record touching ten hopping windows does ten dict updates and ten write-back-cache
  assignments — no store reads on the hot path;
* an index of windows by close time (buckets of a heap of close times for time windows,
  which share close times; a heap with lazy invalidation for sliding windows and sessions), so
  closing is ``O(closed windows)`` whatever the number of open ones;
* the stream time, also written to the store so that a restarted task knows which windows it
  already closed.

Everything is rebuilt from the store (after its changelog restore) when the task is compiled.
Closed windows are deleted from the store when they close (tombstones in the changelog), so
state stays bounded. Sliding windows are the exception: a closed sliding window stays (and keeps
absorbing accepted records, without emitting) until it can no longer seed a new window — new
sliding windows start from a copy of an existing window with the same records, as in Kafka
Streams — i.e. until stream time passes ``end + 3 * size + grace``.
"""

from __future__ import annotations

import copy
import heapq
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streamflow.dsl.nodes import Node, WindowAggregate, WindowEmit
from streamflow.plan.compile import StepError
from streamflow.record import Headers
from streamflow.serde.base import SerdeUnavailable
from streamflow.state.keys import encode_key
from streamflow.state.window_store import META_STREAM_TIME, load, pack_len, pack_start
from streamflow.windows import Hopping, Session, Sliding, Tumbling, Windowed

if TYPE_CHECKING:
    from streamflow.plan.compile import _Compiler

Step = Callable[[Any, Any, int, "Headers | None"], None]

_NO_TIME = -(1 << 63)
_IMMUTABLE = frozenset((int, float, str, bool, bytes, type(None), tuple, frozenset))
_EMPTY: Any = object()


def _fanout(steps: list[Step]) -> Step | None:
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]
    all_steps = tuple(steps)

    def fanout(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        for s in all_steps:
            s(k, v, ts, h)

    return fanout


def _copy(agg: Any) -> Any:
    """A private copy of an aggregate that two windows would otherwise share."""
    return agg if type(agg) in _IMMUTABLE else copy.deepcopy(agg)


class _Env:
    """What every window algorithm needs, gathered once at compile time."""

    def __init__(self, c: _Compiler, node: WindowAggregate) -> None:
        ctx = c.ctx
        self.name = node.name
        self.spec = node.spec
        self.store = ctx.store(node.store)
        self.put = self.store.put_raw_key
        finals: list[Step] = []
        updates: list[Step] = []
        self.late: Step | None = None
        for child in c.children[node.name]:
            if isinstance(child, WindowEmit):
                (finals if child.mode == "final" else updates).append(c.downstream(child))
            elif child.name == node.late_sink:
                self.late = c.step(child)
        self.emit_final = _fanout(finals)
        self.emit_update = _fanout(updates)
        self.metrics: dict[str, int] = ctx.metrics
        self.late_metric = f"{node.name}.late_records"
        self.skipped_metric = f"{node.name}.skipped_records"
        self.metrics.setdefault(self.late_metric, 0)
        self.metrics.setdefault(self.skipped_metric, 0)
        self.clock = ctx.clock
        self.punctuators = ctx.punctuators
        self.extractor = node.timestamp
        init, adder = node.initializer, node.adder
        assert adder is not None
        self.adder: Callable[[Any, Any], Any] = adder
        self.merger = node.merger
        self.counting = node.op == "count"  # adder known: inline it
        if init is None:  # reduce: the first value is the first aggregate
            self.first: Callable[[Any], Any] = _identity
        else:
            def first(v: Any) -> Any:
                return adder(init(), v)

            self.first = first
        self.loaded = load(self.store)
        self.meta: list[Any] = [None, self.loaded.stream_time, -1]

    def dropped(self, k: Any, v: Any, ts: int, h: Headers | None) -> None:
        """A record late for every window it belongs to."""
        self.metrics[self.late_metric] += 1
        if self.late is not None:
            self.late(k, v, ts, h)


def _identity(v: Any) -> Any:
    return v


def build_window(c: _Compiler, node: Node) -> Step:
    """The step of a ``WindowAggregate`` (``WindowEmit`` nodes are wired by it)."""
    if isinstance(node, WindowEmit):
        return c.downstream(node)
    assert isinstance(node, WindowAggregate)
    env = _Env(c, node)
    spec = node.spec
    if isinstance(spec, (Tumbling, Hopping)):
        step, close_all = _time_windows(env, spec.size, spec.advance, spec.grace)
    elif isinstance(spec, Sliding):
        step, close_all = _sliding(env, spec.size, spec.grace)
    elif isinstance(spec, Session):
        step, close_all = _sessions(env, spec.gap, spec.grace)
    else:  # pragma: no cover - the DSL validates specs
        raise TypeError(f"unknown window spec {spec!r}")
    idle = spec.close_after_idle
    if idle is None:
        return step
    return _with_idle_close(env, step, close_all, idle)


def _with_idle_close(env: _Env, step: Step, close_all: Callable[[], bool], idle: int) -> Step:
    """Close every open window once the step has seen nothing for ``idle`` ms (wall clock)."""
    clock = env.clock
    last_seen = clock()
    name = env.name

    def watched(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        nonlocal last_seen
        last_seen = clock()
        step(k, v, ts, h)

    def punctuate(now: int) -> None:
        if now - last_seen >= idle:
            try:
                close_all()
            except (StepError, SerdeUnavailable):
                raise
            except Exception as e:
                raise StepError(name, e) from e

    env.punctuators.append(punctuate)
    return watched


# -- tumbling and hopping ----------------------------------------------------------------
class _Key:
    """One key's open windows: cells ``[aggregate, max_ts, generation, Windowed or None]`` by
    start. ``generation`` is the store generation of the cell's last put, or ``-g - 1`` when
    the window was opened in generation ``g`` (then, closed before the next flush, it is
    dropped from the write-back cache instead of deleted: it never reaches the changelog).
    The ``Windowed`` key is kept only when updates are emitted."""

    __slots__ = ("key", "prefix", "wins")

    def __init__(self, key: Any, prefix: bytes) -> None:
        self.key = key
        self.prefix = prefix
        self.wins: dict[int, list[Any]] = {}


def _dict_key(key: Any, kb: bytes) -> Any:
    """The in-memory dict key of a grouping key: str keys as themselves (hashing is cached,
    no encoding per record), any other key by its store encoding (1, 1.0 and True differ)."""
    return key if type(key) is str else kb


def _time_windows(env: _Env, size: int, adv: int, grace: int
                  ) -> tuple[Step, Callable[[], bool]]:
    store = env.store
    put = env.put
    drop_unflushed = store.drop_unflushed
    first = env.first
    adder = env.adder
    emit_final = env.emit_final
    emit_update = env.emit_update
    extractor = env.extractor
    metrics = env.metrics
    skipped = env.skipped_metric
    name = env.name
    dropped = env.dropped
    meta = env.meta
    keys: dict[Any, _Key] = {}
    buckets: dict[int, list[tuple[Any, int]]] = {}  # close time -> [(dict key, start)]
    closes: list[int] = []  # heap of the buckets' close times
    stream_time = env.loaded.stream_time if env.loaded.stream_time is not None else _NO_TIME

    def track(close: int, entry: tuple[Any, int]) -> None:
        b = buckets.get(close)
        if b is None:
            buckets[close] = b = []
            heapq.heappush(closes, close)
        b.append(entry)

    for kb, key, start, cell in env.loaded.windows:
        prefix = pack_len(len(kb)) + kb
        if start + size + grace <= stream_time:
            put(prefix + pack_start(start), None)  # closed before the last commit
            continue
        dk = _dict_key(key, kb)
        kc = keys.get(dk)
        if kc is None:
            kc = keys[dk] = _Key(key, prefix)
        kc.wins[start] = [cell[0], cell[1], None, None]  # stored: never "fresh"
        track(start + size + grace, (dk, start))

    def close_due(now: int) -> None:
        while closes and closes[0] <= now:
            due = buckets.pop(heapq.heappop(closes))
            if len(due) > 1:  # in store-key order: the same after a restart
                due.sort(key=lambda e: keys[e[0]].prefix)
            fresh = -store.generation - 1
            for dk, start in due:
                kc = keys[dk]
                cell = kc.wins.pop(start)
                if cell[2] == fresh:  # opened since the last flush: never stored
                    drop_unflushed(kc.prefix + pack_start(start))
                else:
                    put(kc.prefix + pack_start(start), None)
                if not kc.wins:
                    del keys[dk]
                if emit_final is not None:
                    w = cell[3] or Windowed(kc.key, start, start + size)
                    emit_final(w, cell[0], cell[1], None)

    def set_time(now: int) -> None:
        nonlocal stream_time
        stream_time = now
        meta[1] = now
        if meta[2] != store.generation:
            meta[2] = store.generation
            put(META_STREAM_TIME, meta)

    def close_all() -> bool:
        if not closes:
            return False
        set_time(max(closes))
        close_due(stream_time)
        return True

    counting = env.counting

    def step(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        if k is None or v is None:
            metrics[skipped] += 1
            return
        try:
            if extractor is not None:
                ts = int(extractor(v))
            if ts > stream_time:
                set_time(ts)
                if closes and closes[0] <= ts:
                    close_due(ts)
            last = ts - ts % adv
            if last + size + grace <= stream_time:
                dropped(k, v, ts, h)
                return
            kc = keys.get(k if type(k) is str else encode_key(k))
            if kc is None:
                kb = encode_key(k)
                kc = keys[_dict_key(k, kb)] = _Key(k, pack_len(len(kb)) + kb)
            wins = kc.wins
            gen = store.generation
            s = last - ((last - ts + size - 1) // adv) * adv
            if s + size + grace <= stream_time:  # skip the windows already closed
                s = last - ((last + size + grace - stream_time - 1) // adv) * adv
            while s <= last:
                cell = wins.get(s)
                if cell is None:
                    wins[s] = cell = [first(v), ts, -gen - 1, None]
                    put(kc.prefix + pack_start(s), cell)
                    track(s + size + grace, (k if type(k) is str else encode_key(k), s))
                else:
                    if counting:
                        cell[0] += 1
                    else:
                        cell[0] = adder(cell[0], v)
                    if ts > cell[1]:
                        cell[1] = ts
                    if cell[2] != gen and cell[2] != -gen - 1:
                        cell[2] = gen
                        put(kc.prefix + pack_start(s), cell)
                if emit_update is not None:
                    if cell[3] is None:
                        cell[3] = Windowed(k, s, s + size)
                    emit_update(cell[3], cell[0], cell[1], h)
                s += adv
        except (StepError, SerdeUnavailable):
            raise
        except Exception as e:
            raise StepError(name, e) from e

    return step, close_all


# -- sliding -------------------------------------------------------------------------------
class _SlidingKey:
    """One key's sliding windows: starts in order, cells ``[aggregate, max_ts, generation,
    Windowed]`` by start, and its record times (the ends of its left windows)."""

    __slots__ = ("key", "prefix", "starts", "times", "wins")

    def __init__(self, key: Any, prefix: bytes) -> None:
        self.key = key
        self.prefix = prefix
        self.starts: list[int] = []
        self.wins: dict[int, list[Any]] = {}
        self.times: list[int] = []


def _sliding(env: _Env, size: int, grace: int) -> tuple[Step, Callable[[], bool]]:
    store = env.store
    counting = env.counting
    put = env.put
    first = env.first
    adder = env.adder
    emit_final = env.emit_final
    emit_update = env.emit_update
    extractor = env.extractor
    metrics = env.metrics
    skipped = env.skipped_metric
    name = env.name
    dropped = env.dropped
    meta = env.meta
    keys: dict[Any, _SlidingKey] = {}
    # (close or expiry time, store-key prefix (orders ties), start, dict key)
    closing: list[tuple[int, bytes, int, Any]] = []
    expiring: list[tuple[int, bytes, int, Any]] = []
    keep = 3 * size + 2 + grace  # a window may seed new ones until stream time > end + keep
    stream_time = env.loaded.stream_time if env.loaded.stream_time is not None else _NO_TIME

    def add_window(sk: _SlidingKey, dk: Any, start: int, cell: list[Any], now: int,
                   restoring: bool = False) -> None:
        sk.wins[start] = cell
        insort(sk.starts, start)
        end = start + size
        if restoring:
            if cell[1] == end:  # the left window of a record at `end`
                insort(sk.times, end)
        else:
            put(sk.prefix + pack_start(start), cell)
        if end + 1 + grace > now:
            heapq.heappush(closing, (end + 1 + grace, sk.prefix, start, dk))
        heapq.heappush(expiring, (end + 1 + keep, sk.prefix, start, dk))

    for kb, key, start, cell in env.loaded.windows:
        dk = _dict_key(key, kb)
        sk = keys.get(dk)
        if sk is None:
            sk = keys[dk] = _SlidingKey(key, pack_len(len(kb)) + kb)
        add_window(sk, dk, start, [cell[0], cell[1], -1, None], stream_time, restoring=True)

    def set_time(now: int) -> None:
        nonlocal stream_time
        stream_time = now
        meta[1] = now
        if meta[2] != store.generation:
            meta[2] = store.generation
            put(META_STREAM_TIME, meta)

    def close_due(now: int) -> None:
        while closing and closing[0][0] <= now:
            _, _, start, dk = heapq.heappop(closing)
            sk = keys[dk]
            cell = sk.wins[start]
            if emit_final is not None:
                w = cell[3] or Windowed(sk.key, start, start + size)
                emit_final(w, cell[0], cell[1], None)
        while expiring and expiring[0][0] <= now:
            _, _, start, dk = heapq.heappop(expiring)
            sk = keys[dk]
            cell = sk.wins.pop(start)
            del sk.starts[bisect_left(sk.starts, start)]
            if cell[1] == start + size:
                del sk.times[bisect_left(sk.times, start + size)]
            put(sk.prefix + pack_start(start), None)
            if not sk.wins:
                del keys[dk]

    def close_all() -> bool:
        if not closing:
            return False
        set_time(max(c[0] for c in closing))
        close_due(stream_time)
        return True

    def source(sk: _SlidingKey, lo: int, hi: int) -> tuple[Any, int]:
        """A copy of the aggregate over the records in ``[lo, hi]`` (before the current
        record), taken from the existing window holding exactly those records."""
        times = sk.times
        i = bisect_left(times, lo)
        j = bisect_right(times, hi)
        if i == j:
            return _EMPTY, _NO_TIME
        last = times[j - 1]
        # the left window of the last record, unless it reaches back to an earlier record
        cell = sk.wins.get(last - size)
        if cell is not None and bisect_left(times, last - size) == i:
            return _copy(cell[0]), cell[1]
        if i > 0:  # else the right window of the record before the range
            prev = times[i - 1]
            cell = sk.wins.get(prev + 1)
            if cell is not None and bisect_right(times, prev + 1 + size) == j:
                return _copy(cell[0]), cell[1]
        for s in sk.starts:  # not reached while the invariants hold; kept as a safety net
            if (bisect_left(times, s) == i and bisect_right(times, s + size) == j):
                cell = sk.wins[s]
                return _copy(cell[0]), cell[1]
        raise RuntimeError(
            f"sliding window state of {sk.key!r} has no window holding the records in "
            f"[{lo}, {hi}]; this is a bug in streamflow, please report it"
        )

    def step(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        if k is None or v is None:
            metrics[skipped] += 1
            return
        try:
            if extractor is not None:
                ts = int(extractor(v))
            if ts > stream_time:
                set_time(ts)
                if (closing and closing[0][0] <= ts) or (expiring and expiring[0][0] <= ts):
                    close_due(ts)
            if ts + size + 1 + grace <= stream_time:
                dropped(k, v, ts, h)
                return
            now = stream_time
            dk = k if type(k) is str else encode_key(k)
            sk = keys.get(dk)
            if sk is None:
                kb = encode_key(k)
                sk = keys[dk] = _SlidingKey(k, pack_len(len(kb)) + kb)
            wins = sk.wins
            times = sk.times
            # 1. the windows this record creates, seeded from the state before it
            new: list[tuple[int, Any, int, bool]] = []
            if ts - size not in wins:  # its left window [ts - size, ts]
                agg, mx = source(sk, ts - size, ts - 1)
                new.append((ts - size, agg, mx, True))
            if ts + 1 not in wins:  # its right window (ts, ts + 1 + size], if not empty
                agg, mx = source(sk, ts + 1, ts + 1 + size)
                if agg is not _EMPTY:
                    new.append((ts + 1, agg, mx, False))
            i = bisect_left(times, ts)
            if i > 0:  # the right window of the previous record, if this one is its first
                prev = times[i - 1]
                if prev + 1 + size >= ts and prev + 1 not in wins and prev + 1 != ts - size:
                    agg, mx = source(sk, prev + 1, prev + 1 + size)
                    new.append((prev + 1, agg, mx, True))
            # 2. every existing window holding ts absorbs the record
            starts = sk.starts
            lo = bisect_left(starts, ts - size)
            hi = bisect_right(starts, ts)
            prefix = sk.prefix
            gen = store.generation
            for s in starts[lo:hi]:
                cell = wins[s]
                if counting:
                    cell[0] += 1
                else:
                    cell[0] = adder(cell[0], v)
                if ts > cell[1]:
                    cell[1] = ts
                if cell[2] != gen:
                    cell[2] = gen
                    put(prefix + pack_start(s), cell)
                if emit_update is not None and s + size + 1 + grace > now:
                    if cell[3] is None:
                        cell[3] = Windowed(k, s, s + size)
                    emit_update(cell[3], cell[0], cell[1], h)
            # 3. then the new windows join
            for s, agg, mx, holds in new:
                if holds:
                    agg = first(v) if agg is _EMPTY else adder(agg, v)
                    mx = max(mx, ts)
                cell = [agg, mx, gen, None]
                add_window(sk, dk, s, cell, now)
                if emit_update is not None and s + size + 1 + grace > now:
                    cell[3] = Windowed(k, s, s + size)
                    emit_update(cell[3], agg, mx, h)
            if i == len(times) or times[i] != ts:
                times.insert(i, ts)
        except (StepError, SerdeUnavailable):
            raise
        except Exception as e:
            raise StepError(name, e) from e

    return step, close_all


# -- sessions ------------------------------------------------------------------------------
class _SessionKey:
    """One key's sessions (disjoint, more than ``gap`` apart): starts in order and cells
    ``[aggregate, end, generation]`` by start."""

    __slots__ = ("key", "prefix", "starts", "wins")

    def __init__(self, key: Any, prefix: bytes) -> None:
        self.key = key
        self.prefix = prefix
        self.starts: list[int] = []
        self.wins: dict[int, list[Any]] = {}


def _sessions(env: _Env, gap: int, grace: int) -> tuple[Step, Callable[[], bool]]:
    store = env.store
    put = env.put
    first = env.first
    adder = env.adder
    merger = env.merger
    assert merger is not None, "session aggregations need a merger"
    emit_final = env.emit_final
    emit_update = env.emit_update
    extractor = env.extractor
    metrics = env.metrics
    skipped = env.skipped_metric
    name = env.name
    dropped = env.dropped
    meta = env.meta
    keys: dict[Any, _SessionKey] = {}
    # (close, store-key prefix (orders ties), start, end, dict key); entries of sessions
    # merged away or extended since are skipped when popped
    closing: list[tuple[int, bytes, int, int, Any]] = []
    after = gap + 1 + grace  # a session [s, e] closes when stream time reaches e + after
    stream_time = env.loaded.stream_time if env.loaded.stream_time is not None else _NO_TIME

    for kb, key, start, cell in env.loaded.windows:
        prefix = pack_len(len(kb)) + kb
        if cell[1] + after <= stream_time:
            put(prefix + pack_start(start), None)
            continue
        dk = _dict_key(key, kb)
        sk = keys.get(dk)
        if sk is None:
            sk = keys[dk] = _SessionKey(key, prefix)
        sk.wins[start] = [cell[0], cell[1], -1]
        insort(sk.starts, start)
        heapq.heappush(closing, (cell[1] + after, prefix, start, cell[1], dk))

    def close_due(now: int) -> None:
        while closing and closing[0][0] <= now:
            _, _, start, end, dk = heapq.heappop(closing)
            sk = keys.get(dk)
            cell = None if sk is None else sk.wins.get(start)
            if sk is None or cell is None or cell[1] != end:
                continue  # merged away or extended since
            del sk.wins[start]
            del sk.starts[bisect_left(sk.starts, start)]
            put(sk.prefix + pack_start(start), None)
            if not sk.wins:
                del keys[dk]
            if emit_final is not None:
                emit_final(Windowed(sk.key, start, end), cell[0], end, None)

    def set_time(now: int) -> None:
        nonlocal stream_time
        stream_time = now
        meta[1] = now
        if meta[2] != store.generation:
            meta[2] = store.generation
            put(META_STREAM_TIME, meta)

    def close_all() -> bool:
        live = [c[0] for c in closing if (sk := keys.get(c[4])) is not None
                and (cell := sk.wins.get(c[2])) is not None and cell[1] == c[3]]
        if not live:
            closing.clear()
            return False
        set_time(max(live))
        close_due(stream_time)
        return True

    def step(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        if k is None or v is None:
            metrics[skipped] += 1
            return
        try:
            if extractor is not None:
                ts = int(extractor(v))
            if ts > stream_time:
                set_time(ts)
                if closing and closing[0][0] <= ts:
                    close_due(ts)
            dk = k if type(k) is str else encode_key(k)
            sk = keys.get(dk)
            gen = store.generation
            if sk is not None:
                starts = sk.starts
                wins = sk.wins
                j = bisect_right(starts, ts + gap) - 1
                if j >= 0:
                    s0 = starts[j]
                    cell = wins[s0]
                    end0 = cell[1]
                    if end0 >= ts - gap and (j == 0 or wins[starts[j - 1]][1] < ts - gap):
                        # the common case: the record joins one session
                        agg = adder(cell[0], v)
                        if s0 <= ts:
                            cell[0] = agg
                            if ts > end0:
                                cell[1] = ts
                                heapq.heappush(closing, (ts + after, sk.prefix, s0, ts, dk))
                                if emit_update is not None:
                                    emit_update(Windowed(k, s0, end0), None, end0, h)
                            if cell[2] != gen:
                                cell[2] = gen
                                put(sk.prefix + pack_start(s0), cell)
                            if emit_update is not None:
                                emit_update(Windowed(k, s0, cell[1]), agg, cell[1], h)
                            return
                        merge_into(k, dk, sk, [s0], agg, ts, end0, h)
                        return
                    merged: list[int] = []
                    while j >= 0 and wins[starts[j]][1] >= ts - gap:
                        merged.append(starts[j])
                        j -= 1
                    if merged:
                        merged.reverse()
                        agg = wins[merged[0]][0]
                        for s in merged[1:]:
                            agg = merger(agg, wins[s][0])
                        agg = adder(agg, v)
                        end = max(ts, wins[merged[-1]][1])
                        merge_into(k, dk, sk, merged, agg, min(ts, merged[0]), end, h)
                        return
            if ts + after <= stream_time:
                dropped(k, v, ts, h)
                return
            if sk is None:
                kb = encode_key(k)
                sk = keys[dk] = _SessionKey(k, pack_len(len(kb)) + kb)
            agg = first(v)
            add_session(k, dk, sk, ts, [agg, ts, gen], h)
        except (StepError, SerdeUnavailable):
            raise
        except Exception as e:
            raise StepError(name, e) from e

    def merge_into(k: Any, dk: Any, sk: _SessionKey, merged: list[int], agg: Any,
                   start: int, end: int, h: Headers | None) -> None:
        """Replace the sessions starting at ``merged`` by ``[start, end]`` holding ``agg``."""
        for s in merged:
            old = sk.wins.pop(s)
            del sk.starts[bisect_left(sk.starts, s)]
            if s != start:
                put(sk.prefix + pack_start(s), None)
            if emit_update is not None:
                emit_update(Windowed(k, s, old[1]), None, old[1], h)
        add_session(k, dk, sk, start, [agg, end, store.generation], h)

    def add_session(k: Any, dk: Any, sk: _SessionKey, start: int, cell: list[Any],
                    h: Headers | None) -> None:
        sk.wins[start] = cell
        insort(sk.starts, start)
        put(sk.prefix + pack_start(start), cell)
        heapq.heappush(closing, (cell[1] + after, sk.prefix, start, cell[1], dk))
        if emit_update is not None:
            emit_update(Windowed(k, start, cell[1]), cell[0], cell[1], h)

    return step, close_all


__all__ = ["build_window"]
