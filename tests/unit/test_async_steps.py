"""Async I/O steps (map_async, flat_map_async) through the TopologyTestDriver.

The driver runs the production engine, so these tests see the same flush after each batch as a
worker: records sent inside ``driver.backlog()`` are consumed as one batch.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

import streamflow as sf
from streamflow.dsl.topology import TopologyError
from streamflow.runtime.errors import ProcessingFailed
from streamflow.testing import TopologyTestDriver

DLQ = "t.p.dlq"


def build(step: Callable[[sf.Stream], sf.Stream], *, guarantee: str = "at_least_once",
          **policies: Any) -> sf.Topology:
    """``in`` (String/Int) -> [p: step, to out (Json)]."""
    t = sf.Topology("t")
    src = t.topic("in", key=sf.String(), value=sf.Int(), external=True, partitions=2)
    out = t.topic("out", key=sf.String(), value=sf.Json(), partitions=2)
    step(t.processor("p", guarantee=guarantee, **policies).stream(src)).to(out)
    return t


def send_batch(driver: TopologyTestDriver, values: list[int], keys: int = 4) -> None:
    """Send ``values`` as one consumed batch, keyed ``k0..k<keys-1>`` round robin."""
    with driver.backlog():
        for i, v in enumerate(values):
            driver.input("in").send(v, key=f"k{i % keys}", timestamp=1000 + i)


async def slow_for_small(v: int) -> int:
    """Earlier records take longer, so completion order is the reverse of input order."""
    await asyncio.sleep(0.001 * (40 - v % 40))
    return v


def test_map_async_keeps_input_order_per_partition() -> None:
    t = build(lambda s: s.map_async(slow_for_small, concurrency=40))
    with TopologyTestDriver(t) as driver:
        send_batch(driver, list(range(80)))
        records = driver.output("out").read_records()
    assert sorted(r.value for r in records) == list(range(80))
    by_partition: dict[int | None, list[int]] = {}
    for r in records:
        by_partition.setdefault(r.partition, []).append(r.value)
    assert len(by_partition) == 2  # both partitions had records
    for values in by_partition.values():
        assert values == sorted(values)


def test_concurrency_bounds_the_calls_in_flight_across_tasks() -> None:
    in_flight = 0
    most = 0

    async def count(v: int) -> int:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.005)
        in_flight -= 1
        return v

    t = build(lambda s: s.map_async(count, concurrency=7))
    with TopologyTestDriver(t) as driver:
        send_batch(driver, list(range(60)))
        assert len(driver.output("out").read_values()) == 60
    assert most == 7  # parallel, and never more than the bound (two tasks share it)


def test_a_timed_out_call_goes_to_the_dead_letter_topic_with_its_original_bytes() -> None:
    async def stuck_on_13(v: int) -> int:
        await asyncio.sleep(5 if v == 13 else 0)
        return v

    t = build(lambda s: s.map_async(stuck_on_13, timeout=0.05, name="lookup",
                                    on_error="dead_letter"))
    with TopologyTestDriver(t) as driver:
        send_batch(driver, [12, 13, 14], keys=1)
        assert driver.output("out").read_values() == [12, 14]
        [letter] = driver.output(DLQ).read_records()
    headers = dict(letter.headers or [])
    assert letter.value == sf.Int().serializer("in", False, None)(13)
    assert headers["streamflow.error.step"] == b"lookup"
    assert headers["streamflow.error.type"] == b"TimeoutError"
    assert b"no result within 0.05 s" in headers["streamflow.error.message"]
    assert headers["streamflow.source.offset"] == b"1"


def test_a_failing_call_is_retried_with_backoff_then_succeeds() -> None:
    attempts: dict[int, int] = {}

    async def flaky(v: int) -> int:
        attempts[v] = attempts.get(v, 0) + 1
        if attempts[v] < 3:
            raise ConnectionError(f"try {attempts[v]}")
        return v * 10

    t = build(lambda s: s.map_async(flaky, retries=2, backoff=0.001))
    with TopologyTestDriver(t) as driver:
        send_batch(driver, [1, 2, 3])
        assert sorted(driver.output("out").read_values()) == [10, 20, 30]
        assert driver.metrics() == {"map_async-1.retries": 6}
    assert attempts == {1: 3, 2: 3, 3: 3}


def test_retries_used_up_go_to_the_policy_which_names_the_step() -> None:
    async def down(v: int) -> int:
        raise ConnectionError("service down")

    t = build(lambda s: s.map_async(down, retries=1, backoff=0.0, name="enrich"))
    with TopologyTestDriver(t) as driver:
        with pytest.raises(ProcessingFailed, match=r"failed in step 'enrich': ConnectionError: "
                           r"service down") as e:
            send_batch(driver, [1])
        assert driver.output("out").read_values() == []
    assert "(after 2 attempts)" in getattr(e.value.__cause__, "__notes__", [])


def test_an_error_handler_sees_the_failed_record_of_the_async_step() -> None:
    seen: list[sf.ErrorContext] = []

    def decide(ctx: sf.ErrorContext) -> sf.ErrorAction:
        seen.append(ctx)
        return "skip"

    async def odd_fails(v: int) -> int:
        if v % 2:
            raise ValueError(f"odd {v}")
        return v

    t = build(lambda s: s.map_async(odd_fails, name="check"), on_processing_error=decide)
    with TopologyTestDriver(t) as driver:
        send_batch(driver, [2, 3, 4, 5], keys=1)
        assert driver.output("out").read_values() == [2, 4]
    assert [(c.step, c.offset, str(c.exception)) for c in seen] == [
        ("check", 1, "odd 3"), ("check", 3, "odd 5")]
    assert {c.topic for c in seen} == {"in"} and {c.timestamp for c in seen} == {1001, 1003}


def test_a_plain_function_returning_no_awaitable_fails_naming_the_step() -> None:
    class NotAsync:
        def __call__(self, v: int) -> int:
            return v

    t = build(lambda s: s.map_async(NotAsync(), name="oops", on_error="dead_letter"))
    with TopologyTestDriver(t) as driver:
        send_batch(driver, [1])
        [letter] = driver.output(DLQ).read_records()
    headers = dict(letter.headers or [])
    assert headers["streamflow.error.step"] == b"oops"
    assert b"needs an async function" in headers["streamflow.error.message"]


def test_flat_map_async_emits_each_value_in_input_order() -> None:
    async def explode(v: int) -> list[int]:
        await asyncio.sleep(0.001 * (5 - v))
        return [v] * v

    t = build(lambda s: s.flat_map_async(explode, concurrency=3))
    with TopologyTestDriver(t) as driver:
        send_batch(driver, [0, 1, 2, 3, 4], keys=1)
        assert driver.output("out").read_key_values() == [
            ("k0", 1), ("k0", 2), ("k0", 2), ("k0", 3), ("k0", 3), ("k0", 3),
            *[("k0", 4)] * 4]


def test_chained_async_steps_and_a_failure_after_them_keep_order_and_policy() -> None:
    async def plus_one(v: int) -> int:
        await asyncio.sleep(0.001 * (10 - v))
        return v + 1

    def no_fives(v: int) -> int:
        if v == 5:
            raise ValueError("five")
        return v

    t = build(lambda s: s.map_async(plus_one).map_async(plus_one)
              .map(no_fives, name="no-fives", on_error="dead_letter"))
    with TopologyTestDriver(t) as driver:
        send_batch(driver, list(range(8)), keys=1)
        assert driver.output("out").read_values() == [2, 3, 4, 6, 7, 8, 9]
        [letter] = driver.output(DLQ).read_records()
    assert dict(letter.headers or [])["streamflow.error.step"] == b"no-fives"
    assert letter.value == sf.Int().serializer("in", False, None)(3)


@pytest.mark.parametrize("backend", ["memory", "rocksdb"])
def test_async_results_count_once_under_exactly_once_after_a_crash(backend: str) -> None:
    async def tag(v: int) -> str:
        await asyncio.sleep(0)
        return f"g{v % 3}"

    t = sf.Topology("t")
    src = t.topic("in", key=sf.String(), value=sf.Int(), external=True)
    counts = t.topic("counts", key=sf.String(), value=sf.Int())
    (t.processor("p", guarantee="exactly_once").stream(src)
     .map_async(tag, concurrency=4).group_by(lambda g: g, name="by-tag").count(name="n")
     .to_stream().to(counts))
    with TopologyTestDriver(t, auto_commit=False, config={"store": backend}) as driver:
        send_batch(driver, list(range(6)))
        driver.commit()
        send_batch(driver, list(range(6, 9)))
        driver.crash()  # processed, not committed: the aborted outputs are never read
        driver.commit()  # the repartition records, then the counts they lead to
        driver.commit()
        latest = dict(driver.output("counts").read_key_values())
        assert latest == {"g0": 3, "g1": 3, "g2": 3}
        assert driver.store("n").get("g0") == 3


def test_the_event_loop_thread_ends_with_the_driver() -> None:
    async def same(v: int) -> int:
        return v

    t = build(lambda s: s.map_async(same))
    with TopologyTestDriver(t) as driver:
        send_batch(driver, [1])
        assert any(th.name == "streamflow-async-p" for th in threading.enumerate())
        driver.crash()  # the killed instance's loop stops too
        send_batch(driver, [2])
    assert not any(th.name.startswith("streamflow-async-") for th in threading.enumerate())


def test_map_async_options_are_checked_when_the_topology_is_defined() -> None:
    t = sf.Topology("t")
    s = t.processor("p").stream(t.topic("in", external=True))

    async def fn(v: Any) -> Any:
        return v

    with pytest.raises(TopologyError, match=r"plain function; use map\(\) for it"):
        s.map_async(lambda v: v)
    with pytest.raises(TopologyError, match=r"concurrency=...\) must be an int of at least 1"):
        s.map_async(fn, concurrency=0)
    with pytest.raises(TopologyError, match=r"timeout=...\) must be a number of seconds"):
        s.flat_map_async(fn, timeout=0)
    with pytest.raises(TopologyError, match=r"retries=...\) must be an int of at least 0"):
        s.map_async(fn, retries=-1)
    assert "map_async(" in s.map_async(fn, concurrency=5).node.label()


def test_a_rebalance_between_batches_finds_no_call_in_flight() -> None:
    async def slow(v: int) -> int:
        await asyncio.sleep(0.002)
        return v

    t = build(lambda s: s.map_async(slow, concurrency=3))
    with TopologyTestDriver(t, auto_commit=False) as driver:
        send_batch(driver, list(range(10)))
        driver.scale(2)  # revoked tasks commit what they processed: every result was sent
        send_batch(driver, list(range(10, 20)))
        driver.commit()
        assert sorted(driver.output("out").read_values()) == list(range(20))
