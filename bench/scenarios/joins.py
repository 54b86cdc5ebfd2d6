"""Join scenarios: two input topics, produced as a backlog before the implementation starts.

``join_table`` (stream-table enrichment): ``<input>-table`` holds 10,000 user rows
``{"user", "tier", "country", "since"}`` keyed by user, all stamped a minute before the first
payment; ``<input>`` holds the rest of ``--records``: ~200-byte JSON payments like the stateless
scenario's, keyed by user. Output: one record per payment, keyed by user, the payment plus its
user's ``tier`` and ``country``. Every user has a row, so an inner join enriches every payment;
a payment processed before its user's row is loaded is lost (an inner join drops it), so the
run fails unless the implementation reads the table first (streamflow and Quix by taking the
two topics in timestamp order, the raw loop by loading the table before it starts).

``join_window`` (stream-stream, windowed): ``<input>`` holds orders ``{"id", "user",
"amount", "currency", "ts", "note"}`` keyed by order id (``o00000017``), one every 2 ms;
``<input>-right`` holds one payment per order ``{"order", "method", "ts"}``, keyed by the same
id, 1 to 3,000 ms after it; the records of both topics are produced in timestamp order, as
they would arrive live. The join pairs an order with the payments of its key from 0 to 5 s after
it (Kafka Streams' ``JoinWindows`` with before=0, after=5 s; Quix's ``join_interval`` with
backward 0, forward 5 s). Output: one record per order, keyed by its id,
``{"id", "user", "amount", "method", "delay_ms"}``. ``--records`` counts orders and payments.

The checkers verify every output record against the truth: each payment (order) exactly once,
with the right row's (payment's) fields.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from typing import Any

import orjson

from bench.scenarios import InputRecord, RecordErrors

BASE_TS_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z; topics use retention.ms=-1
USERS = 10_000
TIERS = ("gold", "silver", "bronze")
COUNTRIES = ("DE", "FR", "GB", "CH", "US", "NL")
CURRENCIES = ("EUR", "USD", "GBP", "CHF")
METHODS = ("card", "sepa", "paypal")
TARGET_BYTES = 200
ORDER_EVERY_MS = 2
WINDOW_AFTER_MS = 5_000
MAX_DELAY_MS = 3_000


def padded(v: dict[str, Any]) -> bytes:
    """``v`` as JSON, its ``note`` padded so the value is about TARGET_BYTES long."""
    v["note"] = "x" * max(0, TARGET_BYTES - len(orjson.dumps(v)))
    return orjson.dumps(v)


def enrich(payment: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """The stream-table joiner every implementation uses."""
    return {**payment, "tier": user["tier"], "country": user["country"]}


def match(order: dict[str, Any], payment: dict[str, Any]) -> dict[str, Any]:
    """The stream-stream joiner every implementation uses."""
    return {"id": order["id"], "user": order["user"], "amount": order["amount"],
            "method": payment["method"], "delay_ms": payment["ts"] - order["ts"]}


class JoinTableScenario:
    name = "join_table"
    description = (f"stream-table join: {USERS:,} user rows (a second topic) then payments, "
                   "json -> inner join on the user key (+tier, +country) -> json; all a backlog")
    inputs = ("table",)
    impls = {
        "raw": "join_table/raw_confluent.py",
        "streamflow": "join_table/streamflow_topology",
        "quix": "join_table/quix_app.py",
    }

    def records(self, n: int, seed: int) -> Iterator[InputRecord]:
        if n <= USERS:
            raise SystemExit(f"join_table needs more than {USERS:,} records (the table's rows)")
        rng = random.Random(seed)
        for j in range(USERS):
            user = f"u{j}"
            row = {"user": user, "tier": rng.choice(TIERS), "country": rng.choice(COUNTRIES),
                   "since": 2000 + j % 25}
            ts = BASE_TS_MS - 60_000 + j
            yield InputRecord(user.encode(), orjson.dumps(row), ts, row, "table")
        for i in range(n - USERS):
            user = f"u{rng.randrange(USERS)}"
            ts = BASE_TS_MS + i
            v = {"id": i, "user": user, "amount": round(rng.uniform(0.0, 100.0), 2),
                 "currency": CURRENCIES[i % len(CURRENCIES)], "ts": ts, "note": ""}
            value = padded(v)
            yield InputRecord(user.encode(), value, ts, v)

    def expectation(self) -> JoinExpectation:
        return JoinExpectation(self.name)


class JoinWindowScenario:
    name = "join_window"
    description = ("stream-stream join: orders and their payments (a second topic) 1-3,000 ms "
                   "later, json -> inner join within 0..5 s on the order key -> json")
    inputs = ("right",)
    impls = {
        "raw": "join_window/raw_confluent.py",
        "streamflow": "join_window/streamflow_topology",
        "quix": "join_window/quix_app.py",
    }

    def records(self, n: int, seed: int) -> Iterator[InputRecord]:
        rng = random.Random(seed)
        pending: list[tuple[int, int, InputRecord]] = []  # payments by timestamp
        orders, payments = (n + 1) // 2, n // 2
        for i in range(orders):
            ts = BASE_TS_MS + ORDER_EVERY_MS * i
            key = f"o{i:08d}".encode()
            while pending and pending[0][0] <= ts:
                yield heapq.heappop(pending)[2]
            order = {"id": i, "user": f"u{rng.randrange(USERS)}",
                     "amount": round(rng.uniform(0.0, 100.0), 2),
                     "currency": CURRENCIES[i % len(CURRENCIES)], "ts": ts, "note": ""}
            value = padded(order)
            yield InputRecord(key, value, ts, order)
            if i < payments:
                pts = ts + rng.randint(1, MAX_DELAY_MS)
                pay = {"order": i, "method": rng.choice(METHODS), "ts": pts}
                heapq.heappush(pending, (pts, i, InputRecord(key, orjson.dumps(pay), pts, pay,
                                                             "right")))
        while pending:
            yield heapq.heappop(pending)[2]

    def expectation(self) -> JoinExpectation:
        return JoinExpectation(self.name)


class JoinExpectation:
    """The exact join result, by payment id (join_table) or order id (join_window)."""

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        self.rows: dict[str, dict[str, Any]] = {}  # join_table: user -> row
        self.orders: dict[int, dict[str, Any]] = {}  # join_window: unpaid orders
        self.truth: dict[int, dict[str, Any]] = {}

    def add_input(self, record: InputRecord) -> None:
        v = record.obj
        if self.scenario == "join_table":
            if record.side == "table":
                self.rows[v["user"]] = v
            else:
                self.truth[v["id"]] = enrich(v, self.rows[v["user"]])
        elif record.side == "right":
            self.truth[v["order"]] = match(self.orders.pop(v["order"]), v)
        else:
            self.orders[v["id"]] = v

    @property
    def expected_count(self) -> int:
        return len(self.truth)

    def checker(self) -> JoinChecker:
        return JoinChecker(self.truth)


class JoinChecker(RecordErrors):
    def __init__(self, truth: dict[int, dict[str, Any]]) -> None:
        super().__init__()
        self.truth = truth
        self.seen: set[int] = set()

    def add_output(self, key: bytes | None, value: bytes | None) -> None:
        try:
            got = orjson.loads(value or b"")
            rid = got["id"]
        except (orjson.JSONDecodeError, TypeError, KeyError) as e:
            self._error(f"undecodable output value {value!r:.80}: {e!r}")
            return
        want = self.truth.get(rid)
        if want is None:
            self._error(f"output for unknown id {rid!r}")
        elif rid in self.seen:
            self._error(f"id {rid} came out twice")
        elif got != want:
            self._error(f"id {rid}: got {got!r:.120}, expected {want!r:.120}")
        self.seen.add(rid)

    def problems(self) -> list[str]:
        out = self.reported()
        missing = len(self.truth.keys() - self.seen)
        if missing:
            out.append(f"{missing:,} of {len(self.truth):,} join results missing")
        return out
