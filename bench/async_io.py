#!/usr/bin/env python
"""Async I/O steps: a simulated 20 ms call per record in ``map_async(concurrency=100)``, against
the same call blocking in a plain ``map`` (``time.sleep``), runs alternating; and, for scale,
what plain asyncio alone does with the same calls on this machine at the time.

The ``async_io`` scenario (``bench/scenarios/async_io.py``) on the local broker; each run is
``bench/harness/runner.run_once`` (a fresh output topic and group, completion observed from
outside, every output checked once). The blocking variant gets fewer records, since it does
about 50 a second. Prints a table of medians::

    .venv/bin/python bench/async_io.py --records 30000 --blocking-records 500 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # so `python bench/async_io.py` can import bench.*
    sys.path.insert(0, str(ROOT))

from bench.harness import RESULTS  # noqa: E402
from bench.harness.frameworks import FRAMEWORKS  # noqa: E402
from bench.harness.kafka import Kafka  # noqa: E402
from bench.harness.meter import local_broker_pid  # noqa: E402
from bench.harness.runner import RunResult, run_once  # noqa: E402
from bench.run import parse_args as bench_args  # noqa: E402
from bench.scenarios import SCENARIOS  # noqa: E402
from streamflow.testing.admin import discover_bootstrap  # noqa: E402


def asyncio_floor(calls: int, concurrency: int, io_s: float) -> float:
    """Calls per second of plain asyncio alone: ``concurrency`` coroutines awaiting ``io_s``
    sleeps one after another, no Kafka and no streamflow (the most any async step can do on
    this machine now)."""

    async def worker(todo: list[int]) -> None:
        while todo:
            todo.pop()
            await asyncio.sleep(io_s)

    async def run() -> float:
        todo = list(range(calls))
        started = time.perf_counter()
        await asyncio.gather(*(worker(todo) for _ in range(concurrency)))
        return calls / (time.perf_counter() - started)

    return asyncio.run(run())


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/async_io.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=30_000, help="input records of map_async")
    p.add_argument("--blocking-records", type=int, default=500,
                   help="input records of the blocking map")
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--io-ms", type=int, default=20, help="the simulated call's latency")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--partitions", type=int, default=6)
    ours = p.parse_args(argv)
    bootstrap = discover_bootstrap(ROOT)
    if bootstrap is None:
        raise SystemExit("start the local stack first: deploy/local/stack up")
    kafka = Kafka(bootstrap)
    scenario = SCENARIOS["async_io"]
    fw = FRAMEWORKS["streamflow"]
    versions, why = fw.probe(scenario)
    if versions is None:
        raise SystemExit(f"streamflow not runnable: {why}")
    variants = {"map_async": ("async", ours.records),
                "blocking map": ("blocking", ours.blocking_records)}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    prefix = f"bench-{stamp}-async"
    log_dir = RESULTS / "logs" / f"async_io-{stamp}"
    log_dir.mkdir(parents=True, exist_ok=True)
    args = {name: bench_args(["--records", str(n), "--partitions", str(ours.partitions),
                              "--scenario", "async_io", "--verify", "full"])
            for name, (_, n) in variants.items()}
    expectations = {}
    results: dict[str, list[RunResult]] = {name: [] for name in variants}
    floors: list[float] = []  # plain asyncio's calls/s, measured after each round
    os.environ["BENCH_ASYNC_CONCURRENCY"] = str(ours.concurrency)
    os.environ["BENCH_IO_MS"] = str(ours.io_ms)
    try:
        kafka.wait_ready(30)
        for i, (name, (_, n)) in enumerate(variants.items()):
            kafka.create_topic(f"{prefix}-in{i}", ours.partitions)
            exp = expectations[name] = scenario.expectation()
            kafka.produce_dataset(f"{prefix}-in{i}", scenario, n, args[name].seed, exp)
        for run_no in range(1, ours.runs + 1):
            for i, (name, (mode, _)) in enumerate(variants.items()):
                os.environ["BENCH_ASYNC_MODE"] = mode  # read by the topology's process
                a = args[name]
                a.broker_pid = local_broker_pid(kafka.bootstrap)
                logs = log_dir / mode  # run_once names its logs by framework and run
                logs.mkdir(exist_ok=True)
                r = run_once(kafka, fw, versions, scenario, a, f"{prefix}-{i}", f"{prefix}-in{i}",
                             expectations[name].expected_count, run_no,
                             expectations[name].checker, logs)
                results[name].append(r)
                print(f"bench: {name} run {run_no}: "
                      + (f"{r.records_per_s:,.0f} rec/s, cpu {r.cpu_s:.2f}s"
                         if r.ok and r.records_per_s and r.cpu_s is not None else
                         f"FAILED {'; '.join(r.problems)} ({r.log})"), file=sys.stderr)
            floors.append(asyncio_floor(ours.records // 10, ours.concurrency,
                                        ours.io_ms / 1000))
    finally:
        kafka.delete_prefixed(prefix)
    print(f"async_io scenario: a {ours.io_ms} ms simulated call per record, {ours.partitions} "
          f"partitions, one worker, median of {ours.runs} alternating runs\n")
    print("| step | records | records/s | CPU µs/rec |")
    print("|---|---:|---:|---:|")
    for name, runs in results.items():
        ok = [r for r in runs if r.ok and r.records_per_s and r.cpu_s is not None]
        label = (f"`map_async(concurrency={ours.concurrency})`" if name == "map_async"
                 else "blocking `map` (`time.sleep`)")
        if not ok:
            print(f"| {label} | {args[name].records:,} | failed | |")
            continue
        rate = statistics.median(r.records_per_s or 0.0 for r in ok)
        cpu = statistics.median((r.cpu_s or 0.0) / args[name].records * 1e6 for r in ok)
        print(f"| {label} | {args[name].records:,} | {rate:,.0f} | {cpu:.0f} |")
    if floors:
        print(f"| plain asyncio alone ({ours.concurrency} coroutines, no Kafka) | "
              f"{ours.records // 10:,} calls | {statistics.median(floors):,.0f} | |")
    return 0 if all(r.ok for runs in results.values() for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
