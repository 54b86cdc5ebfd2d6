"""Stateless scenario: JSON decode -> amount > 10 (keeps ~90%) -> +amount_cents -> JSON encode.

Input: ~200-byte JSON payments keyed by user, e.g.
``{"id": 17, "user": "u4821", "amount": 63.27, "currency": "EUR", "ts": 1704067200017,
"note": "xxxx..."}``. Output: the same object plus ``"amount_cents": int(amount * 100)``,
keyed by the same user, for every record with amount > 10.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import orjson

from bench.scenarios import InputRecord, RecordErrors

BASE_TS_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z; topics use retention.ms=-1
USERS = 10_000
CURRENCIES = ("EUR", "USD", "GBP", "CHF")
TARGET_BYTES = 200


def keep(v: dict) -> bool:
    return v["amount"] > 10


def transform(v: dict) -> dict:
    return {**v, "amount_cents": int(v["amount"] * 100)}


class StatelessScenario:
    name = "stateless"
    description = "json decode -> filter amount > 10 -> map (+amount_cents) -> json encode"
    impls = {
        "raw": "stateless/raw_confluent.py",
        "streamflow": "stateless/streamflow_topology",
        "quix": "stateless/quix_app.py",
        "faust": "stateless/faust_app.py",
    }

    def records(self, n: int, seed: int) -> Iterator[InputRecord]:
        rng = random.Random(seed)
        dumps = orjson.dumps
        for i in range(n):
            user = f"u{rng.randrange(USERS)}"
            ts = BASE_TS_MS + i
            v = {
                "id": i,
                "user": user,
                "amount": round(rng.uniform(0.0, 100.0), 2),
                "currency": CURRENCIES[i % len(CURRENCIES)],
                "ts": ts,
                "note": "",
            }
            # Pad "note" so every value is ~TARGET_BYTES long, whatever the digits above.
            v["note"] = "x" * max(0, TARGET_BYTES - len(dumps(v)))
            yield InputRecord(user.encode(), dumps(v), ts, v)

    def expectation(self) -> StatelessExpectation:
        return StatelessExpectation()


class StatelessExpectation:
    def __init__(self) -> None:
        self.kept: dict[int, int] = {}  # id -> amount_cents

    def add_input(self, record: InputRecord) -> None:
        v = record.obj
        if keep(v):
            self.kept[v["id"]] = transform(v)["amount_cents"]

    @property
    def expected_count(self) -> int:
        return len(self.kept)

    def checker(self) -> StatelessChecker:
        return StatelessChecker(self.kept)


class StatelessChecker(RecordErrors):
    def __init__(self, kept: dict[int, int]) -> None:
        super().__init__()
        self.kept = kept
        self.seen: set[int] = set()
        self.count = 0

    def add_output(self, key: bytes | None, value: bytes | None) -> None:
        self.count += 1
        try:
            v = orjson.loads(value or b"")
        except orjson.JSONDecodeError as e:
            self._error(f"undecodable output value {value!r:.80}: {e}")
            return
        i = v.get("id")
        if i in self.seen:
            self._error(f"duplicate output id {i}")
            return
        self.seen.add(i)
        want = self.kept.get(i)
        if want is None:
            self._error(
                f"unexpected output id {i} (amount {v.get('amount')!r}: filtered out or unknown)"
            )
        elif v.get("amount_cents") != want:
            self._error(f"id {i}: amount_cents {v.get('amount_cents')!r}, expected {want}")
        if key is None or key.decode(errors="replace") != v.get("user"):
            self._error(f"id {i}: key {key!r} does not match user {v.get('user')!r}")

    def problems(self) -> list[str]:
        out = self.reported()
        missing = len(self.kept) - len(self.seen & self.kept.keys())
        if missing:
            out.append(f"{missing} expected records missing from the output")
        if self.count != len(self.kept):
            out.append(f"output holds {self.count} records, expected {len(self.kept)}")
        return out
