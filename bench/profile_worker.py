#!/usr/bin/env python
"""Profile a streamflow bench topology in-process, on the real broker, with cProfile.

Produces a scenario's seeded input (as bench/run.py does), then runs the scenario's streamflow
topology as a ``Worker`` in this process under cProfile until the output topic holds the
expected count, stops it (commit, close) and prints the top functions by own time and by
cumulative time. The profile is written to ``bench/results/profile-<scenario>-<stamp>.prof``
(open with ``python -m pstats`` or snakeviz).

    .venv/bin/python bench/profile_worker.py --scenario count_by_key --records 300000

cProfile adds a fixed cost per Python call (roughly doubling the run time here), so read the
shares, not the absolute seconds. ``--no-profile`` runs the same thing unprofiled (the
records/s it prints is then comparable to bench/run.py's figures).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib
import io
import os
import pstats
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import RESULTS  # noqa: E402
from bench.harness.frameworks import impl_module  # noqa: E402
from bench.harness.kafka import Kafka  # noqa: E402
from bench.scenarios import SCENARIOS, extra_inputs, input_env  # noqa: E402
from streamflow.testing.admin import discover_bootstrap  # noqa: E402


def status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="count_by_key", choices=sorted(SCENARIOS))
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--rss-trace", action="store_true",
                    help="print RSS and output progress every second while the worker runs")
    ap.add_argument("--store-cache", type=int, default=None,
                    help="diagnosis: override TaskStore's cache_size (decoded values per task)")
    args = ap.parse_args()

    scenario = SCENARIOS[args.scenario]
    bootstrap = discover_bootstrap(ROOT)
    if not bootstrap:
        raise SystemExit("no broker (STREAMFLOW_BOOTSTRAP_SERVERS or deploy/local stack)")
    kafka = Kafka(bootstrap)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    prefix = f"bench-{stamp}-prof-{args.scenario}"
    src, dst = f"{prefix}-in", f"{prefix}-out"
    state_dir = tempfile.mkdtemp(prefix="bench-profile-")
    try:
        for topic in (src, *extra_inputs(scenario, src).values(), dst):
            kafka.create_topic(topic, args.partitions)
        exp = scenario.expectation()
        kafka.produce_dataset(src, scenario, args.records, args.seed, exp)
        expected = exp.expected_count
        del exp  # the expectation's dicts are not the worker's memory
        gc.collect()
        rss_before = status_mb("VmRSS")
        os.environ.update(
            {
                "BENCH_INPUT": src,
                **input_env(scenario, src),  # a join's second input topic
                "BENCH_OUTPUT": dst,
                "BENCH_APP": prefix,
                "STREAMFLOW_BOOTSTRAP_SERVERS": bootstrap,
                "STREAMFLOW_STATE_DIR": state_dir,
                "STREAMFLOW_LOG_LEVEL": "WARNING",
                **getattr(scenario, "env", dict)(),
            }
        )
        from streamflow.config import load_config
        from streamflow.runtime.worker import Worker

        if args.store_cache is not None:
            from streamflow.state.store import TaskStore

            TaskStore.__init__.__kwdefaults__["cache_size"] = args.store_cache

        module = importlib.import_module(impl_module(scenario.impls["streamflow"]))
        topology = module.topology
        (processor,) = topology.processors.values()
        worker = Worker(processor, load_config())
        times: dict[str, float] = {}

        def watch() -> None:
            while True:
                n = kafka.count(dst, args.partitions) or 0
                if n and "first" not in times:
                    times["first"] = time.monotonic()
                if n >= expected:
                    times["done"] = time.monotonic()
                    worker.stop()
                    return
                time.sleep(0.05)

        threading.Thread(target=watch, daemon=True).start()

        def trace() -> None:
            t0 = time.monotonic()
            while "done" not in times:
                n = kafka.count(dst, args.partitions) or 0
                print(f"  t={time.monotonic() - t0:5.1f}s out={n:>10,} "
                      f"RSS={status_mb('VmRSS'):,.0f} MB", file=sys.stderr)
                time.sleep(1)

        if args.rss_trace:
            threading.Thread(target=trace, daemon=True).start()
        prof = None if args.no_profile else cProfile.Profile()
        t0 = time.monotonic()
        if prof:
            prof.enable()
        worker.run(install_signals=False)
        if prof:
            prof.disable()
        total = time.monotonic() - t0
        span = times.get("done", 0) - times.get("first", 0)
        print(f"{args.scenario}: {args.records:,} records, {expected:,} out; worker ran "
              f"{total:.1f} s, first output -> done {span:.1f} s "
              f"({args.records / span if span > 0 else 0:,.0f} records/s"
              f"{', profiled' if prof else ''}); RSS {rss_before:,.0f} MB before the worker, "
              f"{status_mb('VmRSS'):,.0f} MB at the end (peak {status_mb('VmHWM'):,.0f} MB)")
        if prof:
            out = RESULTS / f"profile-{args.scenario}-{stamp}.prof"
            RESULTS.mkdir(parents=True, exist_ok=True)
            prof.dump_stats(out)
            for key in ("tottime", "cumulative"):
                buf = io.StringIO()
                pstats.Stats(prof, stream=buf).sort_stats(key).print_stats(args.top)
                print(buf.getvalue())
            print(f"profile written to {out}")
    finally:
        kafka.delete_prefixed(prefix)
        shutil.rmtree(state_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
