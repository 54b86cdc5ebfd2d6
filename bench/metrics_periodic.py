#!/usr/bin/env python
"""The metrics' periodic costs, in CPU seconds: a ``/metrics`` scrape, and a worker at rest.

What ``bench/metrics_instructions.sh`` cannot see, because it happens per interval and not
per record: librdkafka's statistics (``statistics_interval_ms``), the health server, and the
scrape itself (collect + text format, stats JSON parsed). For each variant (metrics off,
metrics on) a worker of the ``stateless`` scenario drains a seeded input, then:

1. rests ``--rest`` seconds (its CPU over that time is the idle cost: loop, stats, server);
2. with metrics on, is scraped ``--scrapes`` times back to back; its CPU beyond the idle rate,
   divided by the scrapes, is one scrape's cost.

The costs are then a share of one core at Prometheus' default 15 s interval, which is the
share of a saturated worker's throughput they take::

    .venv/bin/python bench/metrics_periodic.py --records 50000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # so `python bench/metrics_periodic.py` can import bench.*
    sys.path.insert(0, str(ROOT))

from bench.harness.frameworks import FRAMEWORKS  # noqa: E402
from bench.harness.kafka import Kafka  # noqa: E402
from bench.harness.meter import proc_tree_cpu, stop_process  # noqa: E402
from bench.harness.scrape import free_port  # noqa: E402
from bench.scenarios import SCENARIOS  # noqa: E402
from streamflow.testing.admin import discover_bootstrap  # noqa: E402


def measure(kafka: Kafka, variant: str, topic: str, records: int, expected: int,
            partitions: int, rest: float, scrapes: int) -> dict[str, float]:
    import subprocess

    fw = FRAMEWORKS[variant]
    out = f"{topic}-{variant}-out"
    kafka.create_topic(out, partitions)
    port = free_port()
    state = tempfile.mkdtemp(prefix="bench-periodic-")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_BOOTSTRAP": kafka.bootstrap,
           "STREAMFLOW_BOOTSTRAP_SERVERS": kafka.bootstrap, "BENCH_INPUT": topic,
           "BENCH_OUTPUT": out, "BENCH_GROUP": out, "BENCH_APP": out,
           "BENCH_PARTITIONS": str(partitions), "BENCH_STATE_DIR": state,
           "BENCH_SCENARIO": "stateless", **fw.env,
           "STREAMFLOW_HEALTH_PORT": str(port) if fw.env.get("STREAMFLOW_METRICS") == "true"
           else "0"}
    proc = subprocess.Popen(fw.command(SCENARIOS["stateless"], {}), cwd=state, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while (kafka.count(out, partitions) or 0) < expected:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{variant}: the worker did not drain the input")
            time.sleep(0.5)
        time.sleep(2.0)  # the last commit
        c0, t0 = proc_tree_cpu(proc.pid), time.monotonic()
        time.sleep(rest)
        c1, t1 = proc_tree_cpu(proc.pid), time.monotonic()
        idle = (c1 - c0) / (t1 - t0)
        res = {"idle_cpu_per_s": idle}
        if env["STREAMFLOW_HEALTH_PORT"] != "0":
            url = f"http://127.0.0.1:{port}/metrics"
            size = 0
            c0, t0 = proc_tree_cpu(proc.pid), time.monotonic()
            for _ in range(scrapes):
                with urllib.request.urlopen(url, timeout=10) as r:
                    size = len(r.read())
            c1, t1 = proc_tree_cpu(proc.pid), time.monotonic()
            res["scrape_cpu_s"] = max(0.0, (c1 - c0) - idle * (t1 - t0)) / scrapes
            res["scrape_bytes"] = float(size)
        return res
    finally:
        stop_process(proc, 20.0)
        kafka.delete_prefixed(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--rest", type=float, default=20.0, help="seconds at rest per variant")
    ap.add_argument("--scrapes", type=int, default=200)
    ap.add_argument("--interval", type=float, default=15.0, help="scrape interval to report")
    args = ap.parse_args()
    bootstrap = discover_bootstrap(ROOT)
    if bootstrap is None:
        raise SystemExit("no broker: start deploy/local/stack up")
    kafka = Kafka(bootstrap)
    kafka.wait_ready(30)
    scenario = SCENARIOS["stateless"]
    topic = f"bench-periodic-{int(time.time())}"
    kafka.create_topic(topic, args.partitions)
    exp = scenario.expectation()
    kafka.produce_dataset(topic, scenario, args.records, 42, exp)
    try:
        off = measure(kafka, "streamflow_off", topic, args.records, exp.expected_count,
                      args.partitions, args.rest, args.scrapes)
        on = measure(kafka, "streamflow_metrics_15s", topic, args.records,
                     exp.expected_count, args.partitions, args.rest, args.scrapes)
    finally:
        kafka.delete_prefixed(topic)
    idle = on["idle_cpu_per_s"] - off["idle_cpu_per_s"]
    scrape = on["scrape_cpu_s"] / args.interval
    print("| what | CPU | share of one core |")
    print("|---|---:|---:|")
    print(f"| worker at rest, metrics off | {off['idle_cpu_per_s'] * 1000:.2f} ms/s | "
          f"{off['idle_cpu_per_s']:.2%} |")
    print(f"| worker at rest, metrics on (statistics every 5 s, health server) | "
          f"{on['idle_cpu_per_s'] * 1000:.2f} ms/s | {on['idle_cpu_per_s']:.2%} |")
    print(f"| one /metrics scrape ({on['scrape_bytes'] / 1024:.0f} KiB) | "
          f"{on['scrape_cpu_s'] * 1000:.2f} ms | {scrape:.3%} at one per {args.interval:g} s |")
    print(f"| metrics' periodic cost (at rest on - off, plus scrapes) | | {idle + scrape:.2%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
