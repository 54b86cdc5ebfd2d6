"""Async I/O scenario: JSON decode -> a simulated 20 ms service call per record -> JSON encode.

The input is the stateless scenario's payments; every record comes out with
``"looked_up": true`` added, keyed by the same user. The call is ``await asyncio.sleep(0.02)``
in ``map_async(concurrency=100)`` (the default), or ``time.sleep(0.02)`` in a plain ``map``
with ``BENCH_ASYNC_MODE=blocking`` (the contrast: one call at a time). ``bench/async_io.py``
runs both.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from bench.scenarios import InputRecord
from bench.scenarios.stateless import StatelessScenario


class AsyncIOScenario:
    name = "async_io"
    description = "json decode -> map_async: a 20 ms simulated I/O call per record -> json encode"
    impls = {"streamflow": "async_io/streamflow_topology"}

    def records(self, n: int, seed: int) -> Iterator[InputRecord]:
        return StatelessScenario().records(n, seed)

    def expectation(self) -> AsyncIOExpectation:
        return AsyncIOExpectation()


class AsyncIOExpectation:
    def __init__(self) -> None:
        self.users: dict[int, str] = {}  # id -> user (the key)

    def add_input(self, record: InputRecord) -> None:
        self.users[record.obj["id"]] = record.obj["user"]

    @property
    def expected_count(self) -> int:
        return len(self.users)

    def checker(self) -> AsyncIOChecker:
        return AsyncIOChecker(self.users)


class AsyncIOChecker:
    """Every input once, marked looked up, under its own key."""

    def __init__(self, users: dict[int, str]) -> None:
        self.users = users
        self.seen: set[int] = set()
        self.errors: list[str] = []

    def add_output(self, key: bytes | None, value: bytes | None) -> None:
        v = orjson.loads(value or b"null")
        i = v.get("id") if isinstance(v, dict) else None
        if i in self.seen:
            self.errors.append(f"duplicate output id {i}")
        elif i not in self.users or not v.get("looked_up"):
            self.errors.append(f"unexpected output {value!r:.80}")
        elif key is None or key.decode() != self.users[i]:
            self.errors.append(f"id {i}: key {key!r}, expected {self.users[i]!r}")
        self.seen.add(i)

    def problems(self) -> list[str]:
        missing = len(self.users) - len(self.seen & self.users.keys())
        return self.errors[:5] + ([f"{missing} inputs missing from the output"] if missing else [])
