#!/usr/bin/env python
"""Restore side by side: streamflow vs Quix Streams rebuilding lost local state from the changelog.

For each framework, with its count_by_key implementation (bench/impls/count_by_key/):

1. a fresh single-partition input topic holds N records with N distinct keys (the
   ``count_distinct`` data), so the count's changelog ends up with N records (one per key);
2. run the app until its output holds N updates, then SIGTERM it (both commit on a clean
   stop) and check the changelog topic's size;
3. delete its local state directory and start it again with the same consumer group: it
   finds no local state and rebuilds the store from the changelog. Timed from the process
   start to its "recovery done" log line (streamflow: ``restored <changelog>[0]: ...``, which
   also reports the restore's own seconds; Quix: ``Recovery process complete``, with
   ``Beginning recovery check`` as the start of its recovery), then stopped.

    .venv/bin/python bench/restore_peers.py --records 1000000

``bench/restore.py`` measures streamflow's ``restore_store`` alone (no process start, no
group join); this one measures what a user sees: a worker restarted on an empty disk.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness.frameworks import FRAMEWORKS  # noqa: E402
from bench.harness.kafka import Kafka  # noqa: E402
from bench.scenarios import SCENARIOS  # noqa: E402
from streamflow.testing.admin import discover_bootstrap  # noqa: E402

DONE = {
    "streamflow": re.compile(r"restored \S+\[0\]: (\d+) changes applied.* in ([\d.]+)s"),
    "quix": re.compile(r"Recovery process complete"),
}
BEGIN = {
    "streamflow": re.compile(r"assigned "),
    "quix": re.compile(r"Beginning recovery check"),
}


class Child:
    """A framework process whose output lines are collected with arrival times."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: str, log: Path) -> None:
        self.t0 = time.monotonic()
        self.lines: list[tuple[float, str]] = []
        self.log = open(log, "a")  # noqa: SIM115
        self.log.write(f"\n$ {' '.join(cmd)}\n")
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1,
                                     start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic() - self.t0, line.rstrip()))
            self.log.write(line)

    def find(self, pattern: re.Pattern[str]) -> tuple[float, re.Match[str]] | None:
        for t, line in list(self.lines):
            m = pattern.search(line)
            if m:
                return t, m
        return None

    def stop(self, grace: float = 30) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.flush()


def measure(kafka: Kafka, name: str, records: int, prefix: str, src: str,
            log_dir: Path, run_no: int = 1) -> dict[str, object]:
    fw = FRAMEWORKS[name]
    scenario = SCENARIOS["count_by_key"]  # only its implementations
    run = f"{prefix}-{name}-{run_no}"
    out = f"{run}-out"
    kafka.create_topic(out, 1)
    work = tempfile.mkdtemp(prefix=f"restore-{name}-")
    state_dir = os.path.join(work, "state")
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(ROOT),
        "BENCH_BOOTSTRAP": kafka.bootstrap,
        "STREAMFLOW_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "BENCH_INPUT": src,
        "BENCH_OUTPUT": out,
        "BENCH_GROUP": run,
        "BENCH_APP": run,
        "BENCH_STATE_DIR": state_dir,
        "STREAMFLOW_STATE_DIR": state_dir,
        "BENCH_QUIX_LOGLEVEL": "INFO",
        "STREAMFLOW_LOG_LEVEL": "INFO",
    }
    for k in ("VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(k, None)
    versions, why = fw.probe(scenario)
    if versions is None:
        raise SystemExit(f"{name} not available: {why}")
    cmd = fw.command(scenario, versions)
    log = log_dir / f"{name}-{run_no}.log"
    res: dict[str, object] = {"impl": name}
    try:
        # 1. build the state
        t0 = time.monotonic()
        child = Child(cmd, env, work, log)
        while (kafka.count(out, 1) or 0) < records:
            if child.proc.poll() is not None:
                raise SystemExit(f"{name} exited early (see {log})")
            if time.monotonic() - t0 > 1800:
                raise SystemExit(f"{name}: timeout building the state")
            time.sleep(0.2)
        res["build_s"] = time.monotonic() - t0
        time.sleep(1)
        child.stop()
        changelogs = [t for t in kafka.admin.topics() if run in t and "changelog" in t]
        if len(changelogs) != 1:
            raise SystemExit(f"{name}: expected one changelog topic, found {changelogs}")
        res["changelog"] = changelogs[0]
        res["changelog_records"] = kafka.count(changelogs[0], 1)
        # 2. lose the disk, restart, time the recovery
        shutil.rmtree(state_dir)
        child = Child(cmd, env, work, log)
        deadline = time.monotonic() + 900
        done = None
        while done is None:
            if child.proc.poll() is not None:
                raise SystemExit(f"{name} exited during recovery (see {log})")
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: recovery not finished after 900 s (see {log})")
            done = child.find(DONE[name])
            time.sleep(0.05)
        begin = child.find(BEGIN[name])
        res["restart_to_recovered_s"] = done[0]
        res["recovery_s"] = done[0] - begin[0] if begin else None
        if name == "streamflow":
            res["applied"] = int(done[1].group(1))
            res["reported_restore_s"] = float(done[1].group(2))
        time.sleep(1)
        child.stop()
    finally:
        kafka.delete_prefixed(run)
        shutil.rmtree(work, ignore_errors=True)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--only", default="streamflow,quix")
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    bootstrap = discover_bootstrap(ROOT)
    if not bootstrap:
        raise SystemExit("no broker")
    kafka = Kafka(bootstrap)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    prefix = f"bench-{stamp}-restore"
    log_dir = ROOT / "bench" / "results" / "logs" / f"restore-{stamp}"
    log_dir.mkdir(parents=True, exist_ok=True)
    src = f"{prefix}-in"
    results = []
    try:
        kafka.create_topic(src, 1)
        exp = SCENARIOS["count_distinct"].expectation()
        kafka.produce_dataset(src, SCENARIOS["count_distinct"], args.records, 42, exp)
        for run_no in range(1, args.runs + 1):
            for name in args.only.split(","):
                r = measure(kafka, name, args.records, prefix, src, log_dir, run_no)
                print(r, file=sys.stderr)
                results.append(r)
    finally:
        kafka.delete_prefixed(prefix)
    lines = [
        f"# restore: {args.records:,} keys, one partition — {stamp}",
        "",
        "| impl | changelog records | build s | restart -> recovered s | recovery s "
        "| restore s (own log) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        def f(k: str, spec: str = ".1f", r: dict = r) -> str:
            v = r.get(k)
            return "-" if v is None else format(v, spec)
        lines.append(f"| {r['impl']} | {f('changelog_records', ',')} | {f('build_s')} "
                     f"| {f('restart_to_recovered_s')} | {f('recovery_s')} "
                     f"| {f('reported_restore_s', '.2f')} |")
    for impl in dict.fromkeys(r["impl"] for r in results):
        rs = [r for r in results if r["impl"] == impl]
        if len(rs) > 1:
            def med(k: str, rs: list = rs) -> str:
                vals = [r[k] for r in rs if r.get(k) is not None]
                return f"{statistics.median(vals):.1f}" if vals else "-"
            lines.append(f"| **{impl} (median of {len(rs)})** | | {med('build_s')} "
                         f"| **{med('restart_to_recovered_s')}** | **{med('recovery_s')}** "
                         f"| {med('reported_restore_s')} |")
    table = "\n".join(lines) + "\n"
    print(table)
    (ROOT / "bench" / "results" / f"restore-{stamp}.md").write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
