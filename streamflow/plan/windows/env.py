"""What every window kind shares.

The prologue gathered at compile time, stream time, the per-record step around a kind's ``add``
(skips, event time, closing, errors), per-key state and closing on wall-clock idleness.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from streamflow.dsl.nodes import WindowAggregate, WindowEmit
from streamflow.plan.context import Step, StepError, fanout
from streamflow.plan.guard import goes_on, on_copies
from streamflow.record import Headers
from streamflow.serde.base import SerdeUnavailable
from streamflow.state.keys import encode_key
from streamflow.state.window_store import (
    META_STREAM_TIME,
    Loaded,
    StreamTime,
    WindowCell,
    load,
    window_prefix,
)

if TYPE_CHECKING:
    from streamflow.plan.wiring import Wiring

NO_TIME = -(1 << 63)
NEVER = 1 << 63  # the due time of a kind without open windows


def dict_key(key: Any, kb: bytes) -> Any:
    """The in-memory dict key of a grouping key.

    Str keys as themselves (hashing is cached, no encoding per record), any other key by its
    store encoding (1, 1.0 and True differ).
    """
    return key if type(key) is str else kb


def emit_order(prefix: bytes) -> bytes:
    r"""What orders windows of different keys that close at the same moment: the key's bytes.

    Windows of one step closing together end together (one grace), so they come out by end,
    then key, as in Kafka Streams; not by store key, whose length prefix puts shorter keys
    first.

    >>> sorted([b"\x00\x00\x00\x02sb", b"\x00\x00\x00\x03saa"], key=emit_order)[0]
    b'\x00\x00\x00\x03saa'
    """
    return prefix[4:]


def _identity(v: Any) -> Any:
    return v


def _one(v: Any) -> int:
    """A count's first aggregate."""
    return 1


class StreamClock:
    """A window step's stream time: the largest event time it has seen.

    Kept in its store under ``META_STREAM_TIME`` (put once per commit; the box is updated in
    place).
    """

    __slots__ = ("_box", "_put", "_store", "_written", "now")

    def __init__(self, store: Any, stream_time: int | None) -> None:
        self.now = NO_TIME if stream_time is None else stream_time
        self._box = StreamTime(stream_time)
        self._store = store
        self._put = store.put_raw_key
        self._written = -1

    def advance(self, now: int) -> None:
        """Stream time moves to ``now``."""
        self.now = now
        self._box.time = now
        gen = self._store.generation
        if self._written != gen:
            self._written = gen
            self._put(META_STREAM_TIME, self._box)


class KeyWindows:
    """One key's open windows.

    Cells by start (the store entry of the key), the generation of the store when the entry was
    last put (``written``) and whether the entry was created since the last flush (``fresh_in``:
    that generation, else -1), when it can vanish from the write-back cache instead of leaving a
    tombstone. ``starts`` (sliding windows and sessions: starts in order) is kept by the kinds
    that need it.
    """

    __slots__ = ("fresh_in", "key", "prefix", "starts", "wins", "written")

    def __init__(self, key: Any, prefix: bytes, wins: dict[int, WindowCell] | None = None,
                 fresh_in: int = -1) -> None:
        self.key = key
        self.prefix = prefix
        self.wins: dict[int, WindowCell] = {} if wins is None else wins
        self.written = -1
        self.fresh_in = fresh_in
        self.starts: list[int] = []


class WindowKind(Protocol):
    """A window algorithm (time windows, sliding windows, sessions).

    ``due_at`` is at most the earliest close (or expiry) time of its windows, ``NEVER`` when it
    has none: the step calls ``close_due`` only once stream time reaches it.
    """

    due_at: int

    def add(self, k: Any, v: Any, ts: int, h: Headers | None) -> None:
        """Fold a record (stream time already advanced to include it)."""

    def close_due(self, now: int) -> None:
        """Close (and emit) every window whose close time is at most ``now``."""

    def last_close(self) -> int | None:
        """The close time of the last open window, or None when none is open."""


class WindowEnv:
    """What every window kind needs, gathered once at compile time."""

    def __init__(self, w: Wiring, node: WindowAggregate) -> None:
        ctx = w.ctx
        self.name = node.name
        self.spec = node.spec
        self.store = w.store(node.store)
        finals: list[Step] = []
        updates: list[Step] = []
        self.late: Step | None = None
        for child in w.children(node):
            if isinstance(child, WindowEmit):
                (finals if child.mode == "final" else updates).append(w.downstream(child))
            elif child.name == node.late_sink:
                self.late = w.step(child)
        self.emit_final = fanout(finals) if finals else None
        self.emit_update = fanout(updates) if updates else None
        self.metrics: dict[str, int] = ctx.metrics
        self.late_metric = f"{node.name}.late_records"
        self.skipped_metric = f"{node.name}.skipped_records"
        self.metrics.setdefault(self.late_metric, 0)
        self.metrics.setdefault(self.skipped_metric, 0)
        self.wall_clock = ctx.clock
        self.punctuators = ctx.punctuators
        self.extractor = node.timestamp
        init, adder = node.initializer, node.adder
        assert adder is not None
        self.counting = node.op == "count"  # adder known: inline it
        # under a policy that goes on, the kinds compute a record's every change before
        # making any (``staged``) and the user's functions get copies: a failed record leaves
        # no trace. A count cannot fail half-way, and under ``fail`` nothing is kept after a
        # failure: their changes are made as they are computed.
        self.staged = not self.counting and goes_on(w, node)
        self.adder: Callable[[Any, Any], Any] = (
            adder if self.counting else on_copies(adder, w, node))
        self.merger = (node.merger if node.merger is None or self.counting
                       else on_copies(node.merger, w, node))
        if self.counting:  # one call, not the initializer's and the adder's
            self.first: Callable[[Any], Any] = _one
        elif init is None:  # reduce: the first value is the first aggregate
            self.first = _identity
        else:
            def first(v: Any) -> Any:
                return adder(init(), v)

            self.first = first
        self.loaded: Loaded = load(self.store)
        self.clock = StreamClock(self.store, self.loaded.stream_time)

    def dropped(self, k: Any, v: Any, ts: int, h: Headers | None) -> None:
        """A record late for every window it belongs to."""
        self.metrics[self.late_metric] += 1
        if self.late is not None:
            self.late(k, v, ts, h)

    def restored(self, close_time: Callable[[int, WindowCell], int]
                 ) -> Iterator[tuple[Any, KeyWindows]]:
        """The stored keys as ``(dict key, state)``, without the windows closed before a restart.

        A window is closed when ``close_time(start, cell)`` is at most the stream time; keys
        left without a window are deleted.
        """
        now = self.clock.now
        for skey, key, wins in self.loaded.keys:
            kw = KeyWindows(key, skey, wins)
            closed = [s for s, cell in wins.items() if close_time(s, cell) <= now]
            for s in closed:
                del wins[s]
            if not wins:
                self.emptied(kw)
                continue
            if closed:
                self.touched(kw)
            yield dict_key(key, skey[4:]), kw

    def key_state(self, keys: dict[Any, KeyWindows], dk: Any, k: Any) -> KeyWindows:
        """The state of the record key ``k`` (dict key ``dk``) in ``keys``.

        It is put into the write-back cache, as the caller is about to change it. A key without
        open windows gets new state, fresh unless a change of its entry is still unflushed (a
        tombstone must then reach the changelog). Callers first try ``keys.get(dk)`` and its
        ``written`` themselves: this is the slow path, once per key and commit.
        """
        kw = keys.get(dk)
        store = self.store
        if kw is None:
            prefix = window_prefix(encode_key(k))
            kw = keys[dk] = KeyWindows(k, prefix, fresh_in=-1 if store.unflushed(prefix)
                                       else store.generation)
        self.touched(kw)
        return kw

    def touched(self, kw: KeyWindows) -> None:
        """``kw``'s windows change.

        Its entry goes into the write-back cache (once per commit: later changes mutate the same
        dict).
        """
        gen = self.store.generation
        if kw.written != gen:
            kw.written = gen
            self.store.put_raw_key(kw.prefix, kw.wins)

    def emptied(self, kw: KeyWindows) -> None:
        """``kw`` has no open window left: delete its entry."""
        if kw.fresh_in == self.store.generation:  # never flushed: no tombstone needed
            self.store.drop_unflushed(kw.prefix)
        else:
            self.store.put_raw_key(kw.prefix, None)
        kw.written = -1


def make_step(env: WindowEnv, kind: WindowKind) -> Step:
    """The step of a window aggregation.

    Skip records without key or value, take the event time, skip records with a negative one
    (as Kafka Streams, which drops them before any window), advance stream time (closing what
    is due), then let ``kind`` fold the record.
    """
    metrics = env.metrics
    skipped = env.skipped_metric
    extractor = env.extractor
    clock = env.clock
    advance = clock.advance
    close_due = kind.close_due
    add = kind.add
    name = env.name

    def step(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        if k is None or v is None:
            metrics[skipped] += 1
            return
        try:
            if extractor is not None:
                ts = int(extractor(v))
            if ts < 0:
                metrics[skipped] += 1
                return
            if ts > clock.now:
                advance(ts)
                if ts >= kind.due_at:
                    close_due(ts)
            add(k, v, ts, h)
        except (StepError, SerdeUnavailable):
            raise
        except Exception as e:
            raise StepError(name, e) from e

    return step


def with_idle_close(env: WindowEnv, kind: WindowKind, step: Step, idle: int) -> Step:
    """Close every open window once the step has seen nothing for ``idle`` ms (wall clock)."""
    clock = env.wall_clock
    last_seen = clock()
    name = env.name

    def watched(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        nonlocal last_seen
        last_seen = clock()
        step(k, v, ts, h)

    def punctuate(now: int) -> None:
        if now - last_seen < idle:
            return
        try:
            last = kind.last_close()
            if last is not None:
                env.clock.advance(last)
                kind.close_due(last)
        except (StepError, SerdeUnavailable):
            raise
        except Exception as e:
            raise StepError(name, e) from e

    env.punctuators.append(punctuate)
    return watched
