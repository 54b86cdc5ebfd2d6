#!/usr/bin/env python
"""Side-by-side benchmark: streamflow vs a plain confluent-kafka loop, Quix Streams and Faust.

Every framework runs the same scenario against the same real broker and the same seeded input:

1. the input topic is produced once per invocation (fast confluent Producer);
2. each framework runs as its own subprocess with its own interpreter (bench/.venvs/ for the
   peers), alternately (A B C D A B C D ...), each run with a fresh output topic and a fresh
   consumer group, consuming the input from the beginning;
3. the harness watches the output topic's end offsets (AdminClient.list_offsets every
   --poll-interval seconds) until they sum to the expected count, then stops the process
   (SIGTERM, then SIGKILL after a grace period);
4. it records wall time from process start and from the first output record, CPU seconds in
   the processing window (from /proc, process tree) and in total (wait4 rusage), peak RSS
   (VmHWM of the process tree), and checks the output (count, and content unless --verify count);
5. medians over runs go to a markdown table in bench/results/<scenario>-<timestamp>.md
   (plus a .json with every run), which is also printed.

Run ``bench/setup_peers.sh`` first (``make bench`` does both). This file is the command line;
the harness itself is in ``bench/harness/``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # so `python bench/run.py` can import bench.*
    sys.path.insert(0, str(ROOT))

from bench.harness import RESULTS  # noqa: E402
from bench.harness.frameworks import FRAMEWORKS, version_label  # noqa: E402
from bench.harness.kafka import Kafka  # noqa: E402
from bench.harness.meter import local_broker_pid  # noqa: E402
from bench.harness.report import (  # noqa: E402
    Outcome,
    fmt,
    git_state,
    machine_info,
    write_report,
)
from bench.harness.runner import RunResult, run_once  # noqa: E402
from bench.scenarios import SCENARIOS, extra_inputs  # noqa: E402
from streamflow.testing.admin import discover_bootstrap  # noqa: E402


def default_bootstrap() -> str | None:
    """The broker to measure against (:func:`streamflow.testing.admin.discover_bootstrap`)."""
    return discover_bootstrap(ROOT)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Benchmark streamflow side by side with a raw confluent-kafka loop, "
        "Quix Streams and Faust on a real broker. Run bench/setup_peers.sh first.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--bootstrap",
        default=None,
        help="Kafka bootstrap servers (default: $STREAMFLOW_TEST_BOOTSTRAP_SERVERS, else "
        "$STREAMFLOW_BOOTSTRAP_SERVERS, else STREAMFLOW_BOOTSTRAP_SERVERS from "
        "deploy/local/.run/stack.env)",
    )
    p.add_argument("--records", type=int, default=1_000_000, help="input records")
    p.add_argument("--partitions", type=int, default=12, help="partitions of input and output")
    p.add_argument("--runs", type=int, default=3, help="runs per implementation (alternating)")
    p.add_argument("--scenario", default="stateless", choices=sorted(SCENARIOS))
    p.add_argument(
        "--only",
        default="raw,streamflow,quix,faust",
        help="comma-separated implementations, in run order",
    )
    p.add_argument("--seed", type=int, default=42, help="data set seed")
    p.add_argument(
        "--verify",
        choices=("full", "count"),
        default="full",
        help="full: read back every output record and check it; count: end offsets",
    )
    p.add_argument("--timeout", type=float, default=900, help="max seconds per run")
    p.add_argument(
        "--stall-timeout",
        type=float,
        default=60,
        help="fail a run when the output stops growing for this long",
    )
    p.add_argument(
        "--poll-interval", type=float, default=0.05, help="seconds between output end-offset polls"
    )
    p.add_argument(
        "--stop-grace",
        type=float,
        default=20,
        help="seconds between SIGTERM and SIGKILL when stopping an implementation",
    )
    p.add_argument(
        "--wait-broker",
        type=float,
        default=60,
        help="seconds to wait for the broker (and stack.env) to appear",
    )
    p.add_argument(
        "--quiet",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="before each run, wait until machine-wide CPU use is below FRACTION "
        "(e.g. 0.25 on a shared machine); 0 disables",
    )
    p.add_argument("--quiet-wait", type=float, default=300, help="max seconds to wait for --quiet")
    p.add_argument("--keep-topics", action="store_true", help="don't delete topics (debugging)")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    scenario = SCENARIOS[args.scenario]
    order = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [n for n in order if n not in FRAMEWORKS
               or FRAMEWORKS[n].impl_name not in scenario.impls]
    if unknown:
        raise SystemExit(
            f"unknown implementation(s) {unknown} for scenario {scenario.name}; "
            f"choose from {sorted(scenario.impls)}"
        )

    deadline = time.monotonic() + args.wait_broker
    args.bootstrap = args.bootstrap or default_bootstrap()
    while args.bootstrap is None and time.monotonic() < deadline:
        time.sleep(2)
        args.bootstrap = default_bootstrap()
    if args.bootstrap is None:
        raise SystemExit(
            "no broker: pass --bootstrap, set STREAMFLOW_BOOTSTRAP_SERVERS, or start the local "
            "stack (`deploy/local/stack up` writes deploy/local/.run/stack.env)"
        )
    kafka = Kafka(args.bootstrap)
    args.broker_pid = local_broker_pid(args.bootstrap)
    kafka.wait_ready(max(10.0, deadline - time.monotonic()))

    versions: dict[str, dict[str, str] | None] = {}
    unavailable: dict[str, str] = {}
    for n in order:
        v, why = FRAMEWORKS[n].probe(scenario)
        versions[n] = v
        if v is None:
            unavailable[n] = why
            print(f"bench: {n} not available: {why}", file=sys.stderr)
        else:
            print(f"bench: {n}: {version_label(n, v)}", file=sys.stderr)
    runnable = [n for n in order if n not in unavailable]

    stamp = time.strftime("%Y%m%d-%H%M%S")
    prefix = f"bench-{stamp}-{scenario.name}"
    args.out.mkdir(parents=True, exist_ok=True)
    log_dir = args.out / "logs" / f"{scenario.name}-{stamp}"
    log_dir.mkdir(parents=True, exist_ok=True)
    input_topic = f"{prefix}-in"
    meta: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": shlex.join([".venv/bin/python", "bench/run.py", *(argv or sys.argv[1:])]),
        "machine": machine_info(),
        "git": git_state(),
    }
    results: list[RunResult] = []
    try:
        inputs = [input_topic, *extra_inputs(scenario, input_topic).values()]
        for topic in inputs:
            kafka.create_topic(topic, args.partitions)
        exp = scenario.expectation()
        print(f"bench: producing {args.records:,} records to {input_topic} ...", file=sys.stderr)
        meta.update(kafka.produce_dataset(input_topic, scenario, args.records, args.seed, exp))
        have = sum(kafka.count(t, args.partitions) or 0 for t in inputs)
        if have != args.records:
            raise SystemExit(f"input topic holds {have} records, expected {args.records}")
        meta["expected"] = exp.expected_count
        print(
            f"bench: produced in {meta['seconds']:.1f}s (avg value "
            f"{meta['avg_value_bytes']:.0f} B); expected output {exp.expected_count:,}",
            file=sys.stderr,
        )
        checker_factory = exp.checker if args.verify == "full" else None
        for run_no in range(1, args.runs + 1):
            for n in runnable:
                fw = FRAMEWORKS[n]
                print(
                    f"bench: run {run_no}/{args.runs} {n} ...", file=sys.stderr, end="", flush=True
                )
                r = run_once(
                    kafka,
                    fw,
                    versions[n] or {},
                    scenario,
                    args,
                    prefix,
                    input_topic,
                    exp.expected_count,
                    run_no,
                    checker_factory,
                    log_dir,
                )
                results.append(r)
                status = (
                    f" {fmt(r.records_per_s, ',.0f')} rec/s, cpu {fmt(r.cpu_s, '.2f')}s, "
                    f"rss {fmt(r.peak_rss_mb, '.0f')} MB, startup "
                    f"{fmt(r.startup_s, '.1f')}s"
                    if r.ok
                    else f" FAILED: {'; '.join(r.problems)} (log: {r.log})"
                )
                print(status, file=sys.stderr)
    finally:
        if not args.keep_topics:
            deleted = kafka.delete_prefixed(prefix)
            print(f"bench: deleted {len(deleted)} topic(s) with prefix {prefix}", file=sys.stderr)

    outcome = Outcome(scenario, args, meta, results, order, versions, unavailable)
    out_md, table = write_report(outcome, args.out, stamp)
    print(table)
    print(
        f"bench: wrote {out_md.relative_to(ROOT) if out_md.is_relative_to(ROOT) else out_md}",
        file=sys.stderr,
    )
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
