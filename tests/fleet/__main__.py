"""Fleet soak: ``python -m tests.fleet rolling scale kill hosts --records 500000``.

``kill-restore`` (kill -9 during a full restore) and ``long-restore`` (a restore longer than
``max.poll.interval.ms``) slow restores down with ``restore_max_rate``.

Runs each named scenario of :mod:`tests.fleet.harness` (default: all) against a real Kafka,
prints a summary per scenario and exits non-zero when one failed. The bootstrap servers come
from ``--bootstrap``, else the environment, else ``deploy/local/.run/stack.env``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streamflow.testing.admin import discover_bootstrap
from tests.chaos.harness import ROOT
from tests.fleet.harness import SCENARIOS, config_for, run_scenario


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fleet", description=__doc__)
    p.add_argument("scenarios", nargs="*", default=[],
                   help=f"scenarios to run (default: all of {', '.join(SCENARIOS)})")
    p.add_argument("--bootstrap")
    p.add_argument("--seed", type=int)
    p.add_argument("--records", type=int, default=300_000)
    p.add_argument("--rate", type=float, default=2500.0)
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument("--kills", type=int, default=3, help="kill -9s in the kill scenario")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds between fleet changes")
    p.add_argument("--guarantee", choices=["exactly_once", "at_least_once"],
                   default="exactly_once")
    p.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--workdir", type=Path)
    args = p.parse_args(argv)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s) {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    bootstrap = args.bootstrap or discover_bootstrap(ROOT)
    if not bootstrap:
        sys.exit("fleet: no Kafka: give --bootstrap or set STREAMFLOW_TEST_BOOTSTRAP_SERVERS")
    env = dict(item.split("=", 1) for item in args.worker_env)
    results = []
    for name in args.scenarios or list(SCENARIOS):
        kw = {"seed": args.seed} if args.seed is not None else {}
        cfg = config_for(bootstrap, records=args.records, rate=args.rate,
                         partitions=args.partitions, kills=args.kills, warmup_s=args.warmup,
                         guarantee=args.guarantee, worker_env=env,
                         workdir=args.workdir / name if args.workdir else None, **kw)
        results.append(run_scenario(cfg, name))
    print("\n".join(r.summary().splitlines()[0] for r in results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
