#!/usr/bin/env python
"""The cost of TLS + SASL/SCRAM: streamflow's stateless scenario against the plaintext local
broker and against the secured one (``deploy/local/stack up --secure``), runs alternating.

Both brokers get the same seeded input; each run is ``bench/harness/runner.run_once`` (a fresh
output topic and group, completion observed from outside, CPU from /proc). The secured runs log
in as the stack's admin (SASL_SSL, SCRAM-SHA-512, the authorizer on). Prints a table of medians::

    .venv/bin/python bench/security.py --records 300000 --runs 3
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # so `python bench/security.py` can import bench.*
    sys.path.insert(0, str(ROOT))

from bench.harness import RESULTS  # noqa: E402
from bench.harness.frameworks import FRAMEWORKS  # noqa: E402
from bench.harness.kafka import Kafka  # noqa: E402
from bench.harness.meter import local_broker_pid  # noqa: E402
from bench.harness.report import rate_and_cpu  # noqa: E402
from bench.harness.runner import RunResult, run_once  # noqa: E402
from bench.run import parse_args as bench_args  # noqa: E402
from bench.scenarios import SCENARIOS  # noqa: E402
from streamflow.config import load_config  # noqa: E402
from streamflow.testing.admin import discover_bootstrap  # noqa: E402
from streamflow.testing.cluster import read_env_file  # noqa: E402

SECURE_ENV = ROOT / "deploy" / "local" / ".run-secure" / "stack.env"


def secured_kafka(env_file: Path) -> Kafka:
    """The secured broker, as its admin: the harness's settings and the child's env."""
    env = read_env_file(env_file)
    config = load_config(env=env)
    child = {k: v for k, v in env.items() if k.startswith("STREAMFLOW_KAFKA_")}
    return Kafka(config.bootstrap_servers, conf=dict(config.kafka), env=child)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/security.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=300_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument("--secure-env", type=Path, default=SECURE_ENV,
                   help="the secured stack's admin env file")
    p.add_argument("--quiet", type=float, default=0.0,
                   help="wait before each run until machine CPU use is below this fraction")
    ours = p.parse_args(argv)
    args = bench_args(["--records", str(ours.records), "--partitions", str(ours.partitions),
                       "--verify", "count", "--quiet", str(ours.quiet)])
    bootstrap = discover_bootstrap(ROOT)
    if bootstrap is None or not ours.secure_env.is_file():
        raise SystemExit("start both stacks first: deploy/local/stack up; "
                         "deploy/local/stack up --secure")
    brokers = {"plaintext": Kafka(bootstrap), "tls-sasl": secured_kafka(ours.secure_env)}
    scenario = SCENARIOS["stateless"]
    fw = FRAMEWORKS["streamflow"]
    versions, why = fw.probe(scenario)
    if versions is None:
        raise SystemExit(f"streamflow not runnable: {why}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    prefix = f"bench-{stamp}-security"
    log_dir = RESULTS / "logs" / f"security-{stamp}"
    log_dir.mkdir(parents=True, exist_ok=True)
    expected = {}
    results: dict[str, list[RunResult]] = {name: [] for name in brokers}
    try:
        for name, kafka in brokers.items():
            kafka.wait_ready(30)
            kafka.create_topic(f"{prefix}-in", args.partitions)
            exp = scenario.expectation()
            kafka.produce_dataset(f"{prefix}-in", scenario, args.records, args.seed, exp)
            expected[name] = exp.expected_count
        for run_no in range(1, ours.runs + 1):
            for name, kafka in brokers.items():
                args.broker_pid = local_broker_pid(kafka.bootstrap)
                r = run_once(kafka, fw, versions, scenario, args, f"{prefix}-{name}",
                             f"{prefix}-in", expected[name], run_no, None, log_dir)
                results[name].append(r)
                print(f"bench: {name} run {run_no}: "
                      + (f"{r.records_per_s:,.0f} rec/s, cpu {r.cpu_s:.2f}s"
                         if r.ok and r.records_per_s and r.cpu_s else
                         f"FAILED {'; '.join(r.problems)} ({r.log})"), file=sys.stderr)
    finally:
        for kafka in brokers.values():
            kafka.delete_prefixed(prefix)
    print(f"stateless scenario, streamflow, {args.records:,} records, {args.partitions} "
          f"partitions, median of {ours.runs} alternating runs\n")
    print("| broker | records/s | CPU µs/rec | vs plaintext |")
    print("|---|---:|---:|---:|")
    base = None
    for name, runs in results.items():
        medians = rate_and_cpu(runs, args.records)
        if medians is None:
            print(f"| {name} | failed | | |")
            continue
        rate, cpu = medians
        base = base or rate
        print(f"| {name} | {rate:,.0f} | {cpu:.1f} | {rate / base:.2f}x |")
    return 0 if all(r.ok for runs in results.values() for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
