"""Event-time windows: the window specs, the ``Windowed`` output key, and helpers.

A spec is small frozen config; the per-partition logic lives in ``streamflow.plan.windows``::

    import streamflow as sf

    (processor.stream(clicks)
        .group_by(lambda c: c["user"], key_serde=sf.String())
        .window(sf.Tumbling(sf.minutes(1), grace=sf.seconds(10)))
        .count()
        .final()                       # one record per (user, minute), when the minute closes
        .map_record(sf.with_window_in_value)
        .to(per_minute))

Durations are ``int`` milliseconds or ``datetime.timedelta``; ``seconds(n)``, ``minutes(n)``
and ``hours(n)`` return milliseconds.

Time
    Event time is the record timestamp, or ``timestamp=fn(value) -> ms`` given to
    ``.window(...)``. *Stream time* is the largest event time a task's window step has seen.
    A window is **closed** once stream time reaches its *close time*:

    ==========  ============================  =====================================
    spec        window                        close time
    ==========  ============================  =====================================
    Tumbling    ``[start, end)``              ``end + grace``
    Hopping     ``[start, end)``              ``end + grace``
    Sliding     ``[start, end]`` (inclusive)  ``end + 1 + grace``
    Session     ``[first, last]`` (inclusive) ``last + gap + 1 + grace``
    ==========  ============================  =====================================

    These are Kafka Streams' rules exactly: ``streamTime >= end + grace`` closes a time
    window, a sliding window closes when ``streamTime > end + grace``, and a session when
    ``streamTime > last + gap + grace`` (since Kafka 3.0, KAFKA-8289 and KAFKA-12718; before,
    Kafka Streams closed it at ``last + grace``, while a record up to ``gap`` later could
    still extend it). A session closes only once its inactivity gap has run out (plus grace),
    so ``.final()`` really is final.

    A record is **late** for a window that is closed when it arrives (stream time already
    includes the record): it is not added to that window. A record late for *all* its windows
    is dropped, counted in the task metric ``<step>.late_records`` (see
    ``TopologyTestDriver.metrics()``) and, with ``late_topic=``, produced unchanged to that
    topic. So is a sliding-window record that no open window holds (see ``Sliding``).
    Records with a null key or value, or a negative event time, are skipped
    (``<step>.skipped_records``), as in Kafka Streams.

Quiet partitions (``close_after_idle``)
    Kafka Streams and Quix Streams only close windows when a newer record arrives, so the last
    windows of a quiet partition never emit. With ``close_after_idle=`` on the spec, a window
    step that has received nothing for that long (wall-clock time, checked about every
    100 ms, and on ``TopologyTestDriver.advance_wall_clock``) closes *every* open window: it
    moves its stream time to the latest open window's close time, so the final results are
    emitted and records for those windows that arrive afterwards count as late (a window is
    never finalized twice).

Emission
    ``.final()`` emits each window once, when it closes, with the window's last aggregate.
    ``.updates()`` emits every change of an open window, in Kafka Streams' order (a session
    that changes is first deleted: ``None`` for its old window, and for each session merged
    away). Output keys are ``Windowed(key, start, end)``; output
    timestamps are the largest event time in the window (as Kafka Streams). Windows of
    different keys that close at the same moment come out ordered by window end, then key
    (strings by their UTF-8 bytes, integers by value), as Kafka Streams emits them.

Windows are aligned to the epoch (``start = ts - ts % advance``) and, as in Kafka Streams, no
window starts before 0: hopping windows are clipped at 0, and sliding-window records with a
timestamp below ``size`` share one early window ``[0, size]`` instead of their left windows.

State
    A window step keeps one store entry per key, holding all the key's open windows (and one
    entry for its stream time; layout in ``streamflow.state.window_store``): a commit sends
    at most one changelog record per key touched, however many windows the key's records
    changed. Windows leave the store when they close (sliding windows once they can no longer
    seed a new window), so state stays bounded; a restarted task rebuilds its open windows
    from the store after the changelog restore.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from streamflow.record import Record

Duration = int | timedelta

__all__ = [
    "Duration",
    "Hopping",
    "JoinWindows",
    "Session",
    "Sliding",
    "Tumbling",
    "WindowSpec",
    "Windowed",
    "hours",
    "minutes",
    "plain_key",
    "seconds",
    "with_window_in_value",
]


def seconds(n: float) -> int:
    """``n`` seconds in milliseconds: ``seconds(1.5) == 1500``."""
    return round(n * 1000)


def minutes(n: float) -> int:
    """``n`` minutes in milliseconds: ``minutes(1) == 60_000``."""
    return round(n * 60_000)


def hours(n: float) -> int:
    """``n`` hours in milliseconds: ``hours(1) == 3_600_000``."""
    return round(n * 3_600_000)


def to_ms(what: str, value: Any, *, allow_zero: bool = False) -> int:
    """Validate a duration (``int`` ms or ``timedelta``) and return it in milliseconds."""
    if isinstance(value, timedelta):
        ms = value / timedelta(milliseconds=1)
        if ms != int(ms):
            msg = f"{what} must be a whole number of milliseconds, got {value!r}"
            raise ValueError(msg)
        ms = int(ms)
    elif isinstance(value, int) and not isinstance(value, bool):
        ms = value
    else:
        msg = (
            f"{what} must be milliseconds (int) or a datetime.timedelta, got "
            f"{type(value).__name__} {value!r}; e.g. sf.seconds(10) or timedelta(seconds=10)"
        )
        raise TypeError(msg)
    if ms < 0 or (ms == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        msg = f"{what} must be {bound} milliseconds, got {ms}"
        raise ValueError(msg)
    return ms


def fmt_ms(ms: int) -> str:
    """A short human form of a duration: ``60000 -> '1m'``, ``1500 -> '1500ms'``."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _idle(value: Any) -> int | None:
    return None if value is None else to_ms("close_after_idle", value)


def _tail(grace: int, idle: int | None) -> str:
    out = f", grace={fmt_ms(grace)}" if grace else ""
    return out + (f", close_after_idle={fmt_ms(idle)}" if idle is not None else "")


@dataclass(frozen=True, init=False)
class Tumbling:
    """Fixed-size, non-overlapping windows ``[start, start + size)`` aligned to the epoch.

    >>> Tumbling(minutes(1), grace=seconds(10))
    Tumbling(size=60000, grace=10000, close_after_idle=None)
    """

    size: int
    grace: int
    close_after_idle: int | None

    def __init__(self, size: Duration, *, grace: Duration = 0,
                 close_after_idle: Duration | None = None) -> None:
        object.__setattr__(self, "size", to_ms("Tumbling size", size))
        object.__setattr__(self, "grace", to_ms("grace", grace, allow_zero=True))
        object.__setattr__(self, "close_after_idle", _idle(close_after_idle))

    @property
    def advance(self) -> int:
        """Distance between window starts (= size)."""
        return self.size

    def describe(self) -> str:
        """e.g. ``tumbling(1m, grace=10s)``."""
        return f"tumbling({fmt_ms(self.size)}{_tail(self.grace, self.close_after_idle)})"


@dataclass(frozen=True, init=False)
class Hopping:
    """Fixed-size windows that overlap: one starts every ``advance``.

    Windows are ``[start, start + size)``, aligned to the epoch; a record falls into
    ``size / advance`` of them (``advance <= size``; ``advance == size`` is tumbling).

    >>> Hopping(minutes(5), minutes(1)).describe()
    'hopping(5m, advance=1m)'
    """

    size: int
    advance: int
    grace: int
    close_after_idle: int | None

    def __init__(self, size: Duration, advance: Duration, *, grace: Duration = 0,
                 close_after_idle: Duration | None = None) -> None:
        size_ms = to_ms("Hopping size", size)
        advance_ms = to_ms("Hopping advance", advance)
        if advance_ms > size_ms:
            msg = (
                f"Hopping advance ({advance_ms} ms) must not exceed the size ({size_ms} ms): "
                "records between windows would belong to none"
            )
            raise ValueError(msg)
        object.__setattr__(self, "size", size_ms)
        object.__setattr__(self, "advance", advance_ms)
        object.__setattr__(self, "grace", to_ms("grace", grace, allow_zero=True))
        object.__setattr__(self, "close_after_idle", _idle(close_after_idle))

    def describe(self) -> str:
        """e.g. ``hopping(5m, advance=1m)``."""
        return (f"hopping({fmt_ms(self.size)}, advance={fmt_ms(self.advance)}"
                f"{_tail(self.grace, self.close_after_idle)})")


@dataclass(frozen=True, init=False)
class Sliding:
    """Kafka Streams' sliding windows.

    Every distinct set of records whose timestamps lie within ``size`` of each other. Windows
    are ``[start, start + size]``, inclusive at both ends; a record at ``t`` creates at most two
    windows: ``[t - size, t]`` and, when a later record falls within ``size`` after it, ``[t +
    1, t + 1 + size]``. Records with ``t < size`` share the early window ``[0, size]`` instead
    of ``[t - size, t]``. The windows and aggregates are Kafka Streams' own, computed by its
    algorithm (``streamflow.plan.windows.sliding``), including where it loses a record: one
    arriving after its left window closed, with no open window holding it yet. Kafka Streams
    drops such a record silently; streamflow counts it as late (``<step>.late_records``, and
    the ``late_topic`` when there is one), which changes no window.

    >>> Sliding(seconds(30)).describe()
    'sliding(30s)'
    """

    size: int
    grace: int
    close_after_idle: int | None

    def __init__(self, size: Duration, *, grace: Duration = 0,
                 close_after_idle: Duration | None = None) -> None:
        object.__setattr__(self, "size", to_ms("Sliding size", size))
        object.__setattr__(self, "grace", to_ms("grace", grace, allow_zero=True))
        object.__setattr__(self, "close_after_idle", _idle(close_after_idle))

    def describe(self) -> str:
        """e.g. ``sliding(30s)``."""
        return f"sliding({fmt_ms(self.size)}{_tail(self.grace, self.close_after_idle)})"


@dataclass(frozen=True, init=False)
class Session:
    """Sessions of activity.

    Records of a key less than ``gap`` apart share a session ``[first, last]``; a record that
    bridges two sessions merges them (aggregates are combined with the ``merger``). A session
    closes once stream time passes ``last + gap + grace``.

    >>> Session(minutes(30)).describe()
    'session(gap=30m)'
    """

    gap: int
    grace: int
    close_after_idle: int | None

    def __init__(self, gap: Duration, *, grace: Duration = 0,
                 close_after_idle: Duration | None = None) -> None:
        object.__setattr__(self, "gap", to_ms("Session gap", gap))
        object.__setattr__(self, "grace", to_ms("grace", grace, allow_zero=True))
        object.__setattr__(self, "close_after_idle", _idle(close_after_idle))

    def describe(self) -> str:
        """e.g. ``session(gap=30m)``."""
        return f"session(gap={fmt_ms(self.gap)}{_tail(self.grace, self.close_after_idle)})"


WindowSpec = Tumbling | Hopping | Sliding | Session


@dataclass(frozen=True, init=False)
class JoinWindows:
    """How far apart in event time two records of a stream-stream join may be.

    A record of the left stream at ``t`` joins the right stream's records of the same key with
    timestamps in ``[t - before, t + after]``; a right record at ``t`` joins the left records in
    ``[t - after, t + before]`` (Kafka Streams' ``JoinWindows``). ``time_difference`` sets both
    bounds (``JoinWindows.ofTimeDifferenceAndGrace``); ``before=`` / ``after=`` set one each.
    ``grace`` is how long after a window's end records may still arrive out of order and join:
    left and outer joins emit a record that found no partner only once stream time has passed
    its ``t + after + grace`` (``t + before + grace`` for a right record). The join's stores keep
    records for ``before + after + grace``.

    >>> JoinWindows(seconds(5), grace=seconds(1)).describe()
    'join(before=5s, after=5s, grace=1s)'
    >>> JoinWindows(before=0, after=minutes(1)).retention
    60000
    """

    before: int
    after: int
    grace: int

    def __init__(self, time_difference: Duration | None = None, *,
                 before: Duration | None = None, after: Duration | None = None,
                 grace: Duration = 0) -> None:
        if time_difference is None and (before is None or after is None):
            msg = ("JoinWindows needs a time difference, or both before= and after=: e.g. "
                   "sf.JoinWindows(sf.seconds(10)) or "
                   "sf.JoinWindows(before=0, after=sf.minutes(1))")
            raise ValueError(msg)
        both = None if time_difference is None else to_ms(
            "JoinWindows time_difference", time_difference, allow_zero=True)
        object.__setattr__(self, "before", both if before is None
                           else to_ms("JoinWindows before", before, allow_zero=True))
        object.__setattr__(self, "after", both if after is None
                           else to_ms("JoinWindows after", after, allow_zero=True))
        object.__setattr__(self, "grace", to_ms("grace", grace, allow_zero=True))

    @property
    def retention(self) -> int:
        """How long (event time) the join's stores keep a record: ``before + after + grace``."""
        return self.before + self.after + self.grace

    def describe(self) -> str:
        """e.g. ``join(before=5s, after=5s, grace=1s)``."""
        return (f"join(before={fmt_ms(self.before) if self.before else 0}, "
                f"after={fmt_ms(self.after) if self.after else 0}, "
                f"grace={fmt_ms(self.grace) if self.grace else 0})")


@dataclass(frozen=True, slots=True)
class Windowed:
    """The key of a windowed aggregation's output: the grouping key and the window.

    ``end`` is exclusive for tumbling and hopping windows and inclusive for sliding windows
    and sessions (as Kafka Streams' ``Window.end()``).

    >>> w = Windowed("alice", 0, 60_000)
    >>> w.key, w.start, w.end
    ('alice', 0, 60000)
    """

    key: Any
    start: int
    end: int


def plain_key(record: Record) -> Record:
    """Replace a ``Windowed`` key by the plain grouping key (for ``map_record``).

    The value is unchanged; the window is dropped::

        table.final().map_record(sf.plain_key).to(topic_keyed_by_user)
    """
    key = record.key
    return record.with_key(key.key if isinstance(key, Windowed) else key)


def with_window_in_value(record: Record) -> Record:
    """Key the record by the plain grouping key and move the window into the value.

    For ``map_record``; the value becomes ``{"key": k, "start": s, "end": e, "value":
    aggregate}`` (JSON-friendly)::

        table.final().map_record(sf.with_window_in_value).to(per_minute_json)
    """
    w = record.key
    if not isinstance(w, Windowed):
        msg = (
            f"with_window_in_value() needs a Windowed key, got {type(w).__name__}; use it "
            "right after .final() or .updates() of a windowed aggregation"
        )
        raise TypeError(msg)
    return record.with_key(w.key).with_value(
        {"key": w.key, "start": w.start, "end": w.end, "value": record.value}
    )
