"""Count by key: JSON decode -> count per key (durable state) -> every update out.

Input: ~200-byte JSON payments like the stateless scenario's,
``{"id", "user", "amount", "currency", "ts", "note"}``, keyed by ``user`` (100,000 distinct
users, ``u0``..``u99999``, drawn at random with seed 42). Output: one record per input
record, keyed by the user, whose value is the user's running count as a JSON integer
(``1``, ``2``, ...): the update stream of a count table.

No repartition: the input is already keyed by what is counted (streamflow
``group_by_key()``, Quix's state is keyed by the message key, raw keeps a dict per process).

Two registered variants:

- ``count_by_key``: 100k distinct keys;
- ``count_distinct``: every record has its own key (``k0000000``...), so the state holds as
  many keys as there are records: the "10M distinct keys on disk" scenario (streamflow only).

The checker verifies, per key, that the updates are exactly ``1..n`` (each once, no gaps, no
duplicates) where ``n`` is the number of input records of that key, so the final count per key
equals the truth and nothing was counted twice.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import orjson

from bench.scenarios import InputRecord, RecordErrors

BASE_TS_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z; topics use retention.ms=-1
CURRENCIES = ("EUR", "USD", "GBP", "CHF")
TARGET_BYTES = 200


class CountByKeyScenario:
    impls = {
        "raw": "count_by_key/raw_confluent.py",
        "streamflow": "count_by_key/streamflow_topology",
        "quix": "count_by_key/quix_app.py",
    }

    def __init__(self, name: str, keys: int | None) -> None:
        self.name = name
        self.keys = keys  # None: every record its own key
        what = f"{keys:,} keys" if keys else "every record a distinct key"
        self.description = (
            f"json decode -> count per key ({what}; durable state) -> every update "
            "(key, running count) out"
        )

    def records(self, n: int, seed: int) -> Iterator[InputRecord]:
        rng = random.Random(seed)
        dumps = orjson.dumps
        keys = self.keys
        for i in range(n):
            user = f"u{rng.randrange(keys)}" if keys else f"k{i:08d}"
            ts = BASE_TS_MS + i
            v = {
                "id": i,
                "user": user,
                "amount": round(rng.uniform(0.0, 100.0), 2),
                "currency": CURRENCIES[i % len(CURRENCIES)],
                "ts": ts,
                "note": "",
            }
            v["note"] = "x" * max(0, TARGET_BYTES - len(dumps(v)))
            yield InputRecord(user.encode(), dumps(v), ts, None)

    def expectation(self) -> CountExpectation:
        return CountExpectation()


class CountExpectation:
    def __init__(self) -> None:
        self.truth: dict[bytes, int] = {}
        self.n = 0

    def add_input(self, record: InputRecord) -> None:
        t = self.truth
        t[record.key] = t.get(record.key, 0) + 1
        self.n += 1

    @property
    def expected_count(self) -> int:
        return self.n  # one update per input record

    def checker(self) -> CountChecker:
        return CountChecker(self.truth, self.n)


class CountChecker(RecordErrors):
    def __init__(self, truth: dict[bytes, int], n: int) -> None:
        super().__init__()
        self.truth = truth
        self.n = n
        # per key: number of updates seen, and the sum of the values (1+..+k when exact)
        self.seen: dict[bytes, list[int]] = {}
        self.count = 0

    def add_output(self, key: bytes | None, value: bytes | None) -> None:
        self.count += 1
        try:
            c = orjson.loads(value or b"")
        except orjson.JSONDecodeError as e:
            self._error(f"undecodable output value {value!r:.80}: {e}")
            return
        if not isinstance(c, int) or isinstance(c, bool):
            self._error(f"key {key!r}: value {c!r} is not an integer count")
            return
        k = key or b""
        s = self.seen.get(k)
        if s is None:
            s = self.seen[k] = [0, 0, 0]  # updates, sum of values, max value
        s[0] += 1
        s[1] += c
        if c > s[2]:
            s[2] = c

    def problems(self) -> list[str]:
        out = self.reported()
        wrong = 0
        for k, n in self.truth.items():
            s = self.seen.get(k)
            # exactly 1..n, each once: n updates, max n, sum n(n+1)/2
            if s is None or s[0] != n or s[2] != n or s[1] != n * (n + 1) // 2:
                wrong += 1
                if len(out) < self.MAX_REPORTED + 3:
                    got = "nothing" if s is None else f"{s[0]} updates, max {s[2]}"
                    out.append(f"key {k!r}: expected updates 1..{n}, got {got}")
        if wrong:
            out.append(f"{wrong} of {len(self.truth):,} keys with a wrong update sequence")
        extra = len(self.seen.keys() - self.truth.keys())
        if extra:
            out.append(f"{extra} unexpected keys in the output")
        if self.count != self.n:
            out.append(f"output holds {self.count} records, expected {self.n}")
        return out
