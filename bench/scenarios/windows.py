"""Windowed aggregations: count and sum per key and event-time window, final results only.

Five registered scenarios, one per window type, sharing the data set and the implementations
(``bench/impls/windows/``; the window type and its parameters reach them through
``BENCH_WINDOW*`` environment variables from :meth:`WindowScenario.env`):

==========  ============================================  ====================================
scenario    streamflow                                    Quix Streams
==========  ============================================  ====================================
tumbling    ``Tumbling(60 s, grace=5 s)``                 ``tumbling_window(60 s, 5 s)``
hopping     ``Hopping(10 min, 1 min, grace=5 s)``         ``hopping_window(10 min, 1 min, 5 s)``
sliding     ``Sliding(60 s, grace=5 s)``                  ``sliding_window(60 s, 5 s)``
sliding_ks  ``Sliding(60 s, grace=5 s)``, all windows     (none)
session     ``Session(30.001 s, grace=5 s)``              ``session_window(30.001 s, 5 s)``
==========  ============================================  ====================================

streamflow: ``group_by_key().window(spec).aggregate(init, adder, merger=).final()``;
Quix: ``.agg(count=Count(), sum=Sum("amount")).final()`` (its default closing strategy, per
key). Output: one record per closed window, keyed by the user, value
``{"start", "end", "count", "sum"}``.

Input (``n`` records): ``n - 10,000`` ~200-byte JSON payments, keyed by user
(``u0``..``u9999``, 10k keys, seeded), ``amount`` in integer cents (sums are exact), in
event-time order with timestamps spread evenly over one hour (all even milliseconds; the
session gap is odd, so no two records of a key are ever exactly one gap apart), followed by
**one end marker per key**, timestamped one day later. The markers close every window of
the data in every framework whatever its closing rule (stream time per partition in
streamflow, per key in Quix's default), and their own windows never close. So completion is
well defined: the output must hold exactly one final record per (key, window) of the data,
counted while the input is produced (a brute-force computation from the records; for sliding
windows a window ``[t - size, t]`` per record, and for ``sliding_ks`` also
``[t + 1, t + 1 + size]`` per record with a later one within ``size``; sessions split where
a key is silent for a gap or more), and the checker compares every (key, start) -> count,
sum, end.

Sliding windows: Quix's ``.final()`` emits only the windows that end at a record
(``[t - size, t]``, one per record; it keeps the right windows ``[t + 1, t + 1 + size]`` as
internal state), while streamflow emits every Kafka Streams window. ``sliding`` compares like
with like: the output is the windows ending at a record, and the streamflow topology keeps
those (``filter_record``: output timestamp, the window's largest event time, == window end).
``sliding_ks`` (streamflow only) emits every Kafka Streams window, right windows included.

Session windows: streamflow reports ``end`` = the last record's timestamp (inclusive, as
Kafka Streams), Quix the last timestamp + 1 (half-open); the checker accepts both.
"""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right
from collections.abc import Iterator

import orjson

from bench.scenarios import InputRecord, RecordErrors

BASE_TS_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z, minute-aligned; retention.ms=-1
SPAN_MS = 3_600_000  # the data covers one hour of event time
END_MARKER_TS_MS = BASE_TS_MS + 86_400_000  # one day later: closes every window of the data
KEYS = 10_000
TARGET_BYTES = 200
CURRENCIES = ("EUR", "USD", "GBP", "CHF")

# kind -> (size or gap, advance, grace), milliseconds
PARAMS: dict[str, tuple[int, int, int]] = {
    "tumbling": (60_000, 60_000, 5_000),
    "hopping": (600_000, 60_000, 5_000),
    "sliding": (60_000, 0, 5_000),
    "sliding_ks": (60_000, 0, 5_000),
    "session": (30_001, 0, 5_000),
}
DESCRIPTIONS = {
    "tumbling": "tumbling 1 min windows (grace 5 s)",
    "hopping": "hopping 10 min windows advancing by 1 min (grace 5 s)",
    "sliding": "sliding 1 min windows (grace 5 s), the windows ending at a record (Quix's output)",
    "sliding_ks": "sliding 1 min windows (grace 5 s), every Kafka Streams window",
    "session": "session windows, gap 30.001 s (grace 5 s)",
}


class WindowScenario:
    def __init__(self, kind: str) -> None:
        self.name = kind
        self.kind = "sliding" if kind == "sliding_ks" else kind
        self.all_sliding = kind == "sliding_ks"  # also the right windows (Kafka Streams)
        self.size, self.advance, self.grace = PARAMS[kind]
        self.description = (
            f"json decode -> {DESCRIPTIONS[kind]}, count and sum per user (10k keys) -> one "
            "final record per closed window"
        )
        self.impls = {
            "raw": "windows/raw_confluent.py",
            "streamflow": "windows/streamflow_topology",
            "quix": "windows/quix_app.py",
        }
        if kind.startswith("sliding"):
            del self.impls["raw"]  # no hand-written sliding loop
        if kind == "sliding_ks":
            del self.impls["quix"]  # Quix emits only the windows that end at a record

    def env(self) -> dict[str, str]:
        return {
            "BENCH_WINDOW": self.kind,
            "BENCH_WINDOW_EMIT": "all" if self.all_sliding else "record-ended",
            "BENCH_WINDOW_SIZE": str(self.size),
            "BENCH_WINDOW_ADVANCE": str(self.advance),
            "BENCH_WINDOW_GRACE": str(self.grace),
        }

    def records(self, n: int, seed: int) -> Iterator[InputRecord]:
        real = n - KEYS
        if real < KEYS:
            raise SystemExit(f"{self.name}: needs --records >= {2 * KEYS} (10k end markers)")
        rng = random.Random(seed)
        dumps = orjson.dumps
        half = SPAN_MS // 2
        for i in range(n):
            if i < real:
                user = f"u{rng.randrange(KEYS)}"
                ts = BASE_TS_MS + 2 * (i * half // real)
                amount = rng.randrange(10_001)
            else:
                user = f"u{i - real}"
                ts = END_MARKER_TS_MS
                amount = 0
            v = {"id": i, "user": user, "amount": amount, "currency": CURRENCIES[i % 4],
                 "ts": ts, "note": ""}
            v["note"] = "x" * max(0, TARGET_BYTES - len(dumps(v)))
            yield InputRecord(user.encode(), dumps(v), ts, (ts, amount, i >= real))

    def expectation(self) -> WindowExpectation:
        return WindowExpectation(self)


class WindowExpectation:
    def __init__(self, scenario: WindowScenario) -> None:
        self.s = scenario
        self.by_key: dict[bytes, list[tuple[int, int]]] = {}  # key -> [(ts, amount)], in order
        self._windows: dict[tuple[bytes, int], tuple[int, int, int]] | None = None

    def add_input(self, record: InputRecord) -> None:
        ts, amount, marker = record.obj
        if not marker:
            self.by_key.setdefault(record.key, []).append((ts, amount))

    @property
    def windows(self) -> dict[tuple[bytes, int], tuple[int, int, int]]:
        """(key, start) -> (end, count, sum) of every window the data closes."""
        if self._windows is None:
            self._windows = self._compute()
        return self._windows

    def _compute(self) -> dict[tuple[bytes, int], tuple[int, int, int]]:
        s = self.s
        size, adv = s.size, s.advance
        out: dict[tuple[bytes, int], tuple[int, int, int]] = {}
        for key, recs in self.by_key.items():
            if s.kind in ("tumbling", "hopping"):
                cells: dict[int, list[int]] = {}
                for ts, amount in recs:
                    start = ts - ts % adv
                    while start > ts - size:
                        c = cells.get(start)
                        if c is None:
                            cells[start] = [1, amount]
                        else:
                            c[0] += 1
                            c[1] += amount
                        start -= adv
                for start, (cnt, total) in cells.items():
                    out[(key, start)] = (start + size, cnt, total)
            elif s.kind == "sliding":
                tss = [ts for ts, _ in recs]
                prefix = [0]
                for _, amount in recs:
                    prefix.append(prefix[-1] + amount)
                bounds = {(t - size, t) for t in tss}
                if self.s.all_sliding:
                    for j, t in enumerate(tss[:-1]):
                        if tss[j + 1] - t <= size:
                            bounds.add((t + 1, t + 1 + size))
                for lo, hi in bounds:
                    a, b = bisect_left(tss, lo), bisect_right(tss, hi)
                    if b > a:
                        out[(key, lo)] = (hi, b - a, prefix[b] - prefix[a])
            else:  # session
                first = last = None
                cnt = total = 0
                for ts, amount in recs:
                    if last is not None and ts - last >= size:
                        out[(key, first)] = (last, cnt, total)
                        first, cnt, total = None, 0, 0
                    if first is None:
                        first = ts
                    last = ts
                    cnt += 1
                    total += amount
                if first is not None:
                    out[(key, first)] = (last, cnt, total)
        return out

    @property
    def expected_count(self) -> int:
        return len(self.windows)

    def checker(self) -> WindowChecker:
        return WindowChecker(self.windows, self.s.kind)


class WindowChecker(RecordErrors):
    def __init__(self, windows: dict[tuple[bytes, int], tuple[int, int, int]], kind: str):
        super().__init__()
        self.windows = windows
        self.kind = kind
        self.seen: set[tuple[bytes, int]] = set()
        self.count = 0
        self.end_forms: set[str] = set()

    def add_output(self, key: bytes | None, value: bytes | None) -> None:
        self.count += 1
        try:
            v = orjson.loads(value or b"")
            wk = (key or b"", v["start"])
            end, cnt, total = v["end"], v["count"], v["sum"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as e:
            self._error(f"bad output record {key!r} {value!r:.100}: {type(e).__name__} {e}")
            return
        if wk in self.seen:
            self._error(f"duplicate window {wk}")
            return
        self.seen.add(wk)
        want = self.windows.get(wk)
        if want is None:
            self._error(f"unexpected window {wk} (end {end}, count {cnt})")
            return
        w_end, w_cnt, w_sum = want
        ok_ends = (w_end, w_end + 1) if self.kind == "session" else (w_end,)
        if end not in ok_ends or cnt != w_cnt or total != w_sum:
            self._error(f"window {wk}: end/count/sum {end}/{cnt}/{total}, expected "
                        f"{w_end}/{w_cnt}/{w_sum}")

    def problems(self) -> list[str]:
        out = self.reported()
        missing = len(self.windows) - len(self.seen & self.windows.keys())
        if missing:
            out.append(f"{missing} expected windows missing from the output")
        if self.count != len(self.windows):
            out.append(f"output holds {self.count} records, expected {len(self.windows)}")
        return out
