"""Brute-force window semantics, for checking the incremental implementation.

Each function takes the records in arrival order ``[(key, ts, value), ...]`` and returns a
``Result``: the windows whose final result is due (closed by the end of the input) with their
values, the current value of every window that was open at some point (for ``updates()``),
and the dropped (late) records. Stream time is shared by all keys (it is per task).

The definitions are written from the documented rules, as directly as possible and with no
incremental state beyond the list of records seen:

* a record is *accepted* unless every window it belongs to is closed at its arrival (stream
  time including the record); an accepted record belongs to a window's result iff the window
  was not closed at the record's arrival;
* a window is emitted by ``final()`` iff it was open when it came into existence and stream
  time reached its close time by the end of the input.

Records with a negative timestamp never reach a window step (they are skipped): callers leave
them out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Rec = tuple[Any, int, Any]
Fold = Callable[[list[Any]], Any]
WKey = tuple[Any, int, int]


@dataclass
class Result:
    finals: dict[WKey, Any] = field(default_factory=dict)
    current: dict[WKey, Any] = field(default_factory=dict)
    dropped: list[Rec] = field(default_factory=list)


def time_windows(records: Sequence[Rec], size: int, advance: int, grace: int,
                 fold: Fold) -> Result:
    """Tumbling (advance == size) and hopping windows ``[start, start + size)``."""
    out = Result()
    stream_time: int | None = None
    content: dict[tuple[Any, int], list[Any]] = defaultdict(list)
    for k, ts, v in records:
        stream_time = ts if stream_time is None else max(stream_time, ts)
        first = (ts - size) // advance * advance - advance
        # windows start at 0 or later (clipped, as Kafka Streams)
        starts = [s for s in range(first, ts + 1, advance) if s <= ts < s + size and s >= 0]
        live = [s for s in starts if s + size + grace > stream_time]
        if not live:
            out.dropped.append((k, ts, v))
            continue
        for s in live:
            content[(k, s)].append(v)
    assert stream_time is not None or not records
    for (k, s), values in content.items():
        out.current[(k, s, s + size)] = fold(values)
        if stream_time is not None and s + size + grace <= stream_time:
            out.finals[(k, s, s + size)] = fold(values)
    return out


def sliding(records: Sequence[Rec], size: int, grace: int, fold: Fold) -> Result:
    """Kafka Streams' sliding windows ``[start, start + size]`` (inclusive).

    A record at ``t >= size`` has the left window ``[t - size, t]``; records before ``size``
    share the early window ``[0, size]`` instead; a record has a right window ``[t + 1, t + 1 +
    size]`` when a later one falls in it."""
    out = Result()
    stream_time: int | None = None
    accepted: dict[Any, list[tuple[int, Any, int]]] = defaultdict(list)  # ts, value, S after
    created: dict[tuple[Any, int], int] = {}  # (key, start) -> stream time at creation
    for k, ts, v in records:
        stream_time = ts if stream_time is None else max(stream_time, ts)
        if ts + size + 1 + grace <= stream_time:
            out.dropped.append((k, ts, v))
            continue
        accepted[k].append((ts, v, stream_time))
        times = {t for t, _, _ in accepted[k]}
        windows = {max(0, t - size) for t in times} | {
            t + 1 for t in times if any(t < u <= t + 1 + size for u in times)
        }
        for s in windows:
            created.setdefault((k, s), stream_time)
    for (k, s), born in created.items():
        close = s + size + 1 + grace
        if born >= close:
            continue  # closed before it existed: never emitted
        values = [v for t, v, after in accepted[k] if s <= t <= s + size and after < close]
        out.current[(k, s, s + size)] = fold(values)
        if stream_time is not None and stream_time >= close:
            out.finals[(k, s, s + size)] = fold(values)
    return out


def sessions(records: Sequence[Rec], gap: int, grace: int, fold: Fold) -> Result:
    """Sessions ``[first, last]`` of records less than ``gap`` apart; a session closes at
    ``last + gap + 1 + grace``; a closed session never merges again."""
    out = Result()
    stream_time: int | None = None
    after = gap + 1 + grace
    open_: dict[Any, list[tuple[int, int, list[Any]]]] = defaultdict(list)
    for k, ts, v in records:
        stream_time = ts if stream_time is None else max(stream_time, ts)
        for key, sess in open_.items():
            for s in list(sess):
                if s[1] + after <= stream_time:
                    out.finals[(key, s[0], s[1])] = fold(s[2])
                    sess.remove(s)
        sess = open_[k]
        near = [s for s in sess if s[1] >= ts - gap and s[0] <= ts + gap]
        if not near and ts + after <= stream_time:
            out.dropped.append((k, ts, v))
            continue
        for s in near:
            sess.remove(s)
        values = [x for s in sorted(near) for x in s[2]] + [v]
        sess.append((min([ts, *(s[0] for s in near)]), max([ts, *(s[1] for s in near)]), values))
    out.current = dict(out.finals)
    for key, sess in open_.items():
        for s in sess:
            out.current[(key, s[0], s[1])] = fold(s[2])
    return out
