"""Standalone chaos soak: ``python -m tests.chaos.run --records 2000000 --kills 50``.

Runs the harness of :mod:`tests.chaos.harness` once (or ``--runs N`` times) against a real
Kafka, prints one summary line per run and exits non-zero when a run failed verification.
The bootstrap servers come from ``--bootstrap``, else ``STREAMFLOW_TEST_BOOTSTRAP_SERVERS``,
else ``STREAMFLOW_BOOTSTRAP_SERVERS``, else ``deploy/local/.run/stack.env``
(:func:`streamflow.testing.admin.discover_bootstrap`).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from streamflow.testing.admin import discover_bootstrap
from tests.chaos.harness import ROOT, run
from tests.chaos.inputs import ChaosConfig


def _bootstrap(arg: str | None) -> str:
    found = arg or discover_bootstrap(ROOT)
    if not found:
        sys.exit("chaos: no Kafka: give --bootstrap or set STREAMFLOW_TEST_BOOTSTRAP_SERVERS "
                 "(or start deploy/local/stack)")
    return found


def build_parser() -> argparse.ArgumentParser:
    d = ChaosConfig(bootstrap="", seed=0)
    p = argparse.ArgumentParser(
        prog="python -m tests.chaos.run",
        description="Chaos verification of streamflow: worker processes are SIGKILLed and "
        "SIGTERM-restarted while they process seeded input; every output is then recomputed "
        "from the input and compared (read_committed).",
        epilog="Exit status: 0 every run verified, 1 a run failed verification, 2 usage.",
    )
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: from the environment "
                   "or deploy/local/.run/stack.env)")
    p.add_argument("--seed", type=int, help="RNG seed (default: random, printed)")
    p.add_argument("--guarantee", choices=["exactly_once", "at_least_once"],
                   default=d.guarantee)
    p.add_argument("--records", type=int, default=d.records, help="input records (default "
                   "%(default)s)")
    p.add_argument("--rate", type=float, default=d.rate,
                   help="input records per second (default %(default)s); event time advances "
                   "at the same pace")
    p.add_argument("--partitions", type=int, default=d.partitions)
    p.add_argument("--users", type=int, default=d.users)
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--kills", type=int, default=d.kills,
                   help="SIGKILLs, spread over the input at random moments (default "
                   "%(default)s)")
    p.add_argument("--sigterm-rounds", type=int, default=d.sigterm_rounds,
                   help="rolling SIGTERM restarts of every worker (default %(default)s)")
    p.add_argument("--pauses", type=int, default=d.pauses,
                   help="SIGSTOP a worker for 12-25 s (past its session timeout) and SIGCONT it: "
                   "a zombie that must be fenced (default %(default)s)")
    p.add_argument("--window-ms", type=int, default=d.window_ms)
    p.add_argument("--grace-ms", type=int, default=d.grace_ms)
    p.add_argument("--jitter-ms", type=int, default=d.jitter_ms)
    p.add_argument("--no-windows", action="store_true", help="skip the windowed branch")
    p.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the workers, e.g. "
                   "STREAMFLOW_CONSUMER_SESSION_TIMEOUT_MS=6000 (repeatable)")
    p.add_argument("--drain-timeout", type=float, default=d.drain_timeout_s)
    p.add_argument("--runs", type=int, default=1, help="repeat with seeds seed, seed+1, ...")
    p.add_argument("--workdir", type=Path, help="keep module, logs and state here")
    p.add_argument("--keep-topics", action="store_true", help="do not delete the topics")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1, 1_000_000)
    env = {}
    for item in args.worker_env:
        name, sep, value = item.partition("=")
        if not sep:
            sys.exit(f"chaos: --worker-env needs NAME=VALUE, got {item!r}")
        env[name] = value
    summaries = []
    failed = False
    for k in range(args.runs):
        cfg = ChaosConfig(
            bootstrap=_bootstrap(args.bootstrap), seed=seed + k, guarantee=args.guarantee,
            records=args.records, rate=args.rate, partitions=args.partitions, users=args.users,
            workers=args.workers, kills=args.kills, sigterm_rounds=args.sigterm_rounds,
            pauses=args.pauses,
            window_ms=args.window_ms, grace_ms=args.grace_ms, jitter_ms=args.jitter_ms,
            windows=not args.no_windows, worker_env=env, drain_timeout_s=args.drain_timeout,
            workdir=(args.workdir / f"run-{seed + k}") if args.workdir else None,
            keep_topics=args.keep_topics,
            log=lambda s: print(s, flush=True),
        )
        report = run(cfg)
        summaries.append(report.summary_line())
        failed |= not report.ok
    print("\n".join(summaries))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
