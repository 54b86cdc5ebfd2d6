"""Reporting: medians over runs, the markdown table (bench/results/<scenario>-<stamp>.md) and
the JSON with every run next to it."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.harness import ROOT
from bench.harness.frameworks import version_label
from bench.harness.runner import RunResult
from bench.scenarios import Scenario


def median(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def machine_info() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({model or platform.processor()}), {mem_gib:.0f} GiB, "
        f"{platform.system()} {platform.release()}"
    )


def git_state() -> str:
    """Commit of the checkout plus "+dirty" when streamflow/ has uncommitted changes."""

    def git(*a: str) -> str:
        proc = subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    sha = git("rev-parse", "--short", "HEAD") or "no commit"
    dirty = git("status", "--porcelain", "--", "streamflow")
    return sha + ("+dirty" if dirty else "")


@dataclass
class Outcome:
    """What one invocation of bench/run.py measured: the report is made of it."""

    scenario: Scenario
    args: argparse.Namespace
    meta: dict[str, Any]  # started, command, machine, git, input figures
    results: list[RunResult]
    order: list[str]  # implementations, in run order
    versions: dict[str, dict[str, str] | None]
    unavailable: dict[str, str]  # implementation -> why it could not run


def render(outcome: Outcome) -> str:
    """The markdown report: medians table, ratios, versions, how to read, every run."""
    scenario, args, meta = outcome.scenario, outcome.args, outcome.meta
    results, order, versions = outcome.results, outcome.order, outcome.versions
    unavailable = outcome.unavailable
    by_impl: dict[str, list[RunResult]] = {n: [r for r in results if r.impl == n] for n in order}
    med: dict[str, dict[str, float | None]] = {}
    for n, rs in by_impl.items():
        ok = [r for r in rs if r.ok]
        med[n] = {
            k: median([getattr(r, k) for r in ok])
            for k in (
                "records_per_s",
                "records_per_s_wall",
                "cpu_s",
                "cpu_total_s",
                "broker_cpu_s",
                "peak_rss_mb",
                "startup_s",
                "process_s",
                "wall_s",
            )
        }
    raw_rps = med.get("raw", {}).get("records_per_s")
    lines = [
        f"# streamflow bench: `{scenario.name}` — {meta['started']}",
        "",
        f"{scenario.description}.",
        "",
        f"- command: `{meta['command']}`",
        f"- input: {args.records:,} records (avg value {meta['avg_value_bytes']:.0f} B, "
        f"seed {args.seed}), {args.partitions} partitions; expected output "
        f"{meta['expected']:,} records",
        f"- {args.runs} run(s) per implementation, alternating; medians of successful runs",
        f"- broker: {args.bootstrap}; machine: {meta['machine']}",
        f"- streamflow checkout: {meta.get('git', '?')}",
        "",
        "| impl | records/s | vs raw | CPU s | CPU µs/rec | total CPU s | peak RSS MB "
        "| startup s | wall s | broker CPU s | ok runs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in order:
        if n in unavailable:
            lines.append(f"| {n} | not available | | | | | | | | | |")
            continue
        m, rs = med[n], by_impl[n]
        rps, cpu = m["records_per_s"], m["cpu_s"]
        ratio = f"{rps / raw_rps:.2f}x" if rps and raw_rps else "-"
        us = cpu * 1e6 / args.records if cpu is not None else None
        lines.append(
            f"| {n} | {fmt(rps, ',.0f')} | {ratio} | {fmt(cpu, '.2f')} | {fmt(us, '.1f')} "
            f"| {fmt(m['cpu_total_s'], '.2f')} | {fmt(m['peak_rss_mb'], '.0f')} "
            f"| {fmt(m['startup_s'], '.1f')} | {fmt(m['wall_s'], '.1f')} "
            f"| {fmt(m['broker_cpu_s'], '.2f')} | {sum(r.ok for r in rs)}/{len(rs)} |"
        )
    sf = med.get("streamflow", {}).get("records_per_s")
    lines.append("")
    if "streamflow" in order:
        if sf:
            for n in order:
                peer = med.get(n, {}).get("records_per_s")
                if n != "streamflow" and peer:
                    sf_cpu, peer_cpu = med["streamflow"]["cpu_s"], med[n]["cpu_s"]
                    cpu_ratio = (
                        f", {sf_cpu / peer_cpu:.2f}x the CPU per record"
                        if sf_cpu and peer_cpu
                        else ""
                    )
                    lines.append(f"- streamflow vs {n}: **{sf / peer:.2f}x** records/s{cpu_ratio}")
        else:
            why = unavailable.get("streamflow", "no successful run")
            lines.append(f"- streamflow: pending ({why})")
    for n, why in unavailable.items():
        if n != "streamflow":
            lines.append(f"- {n}: not available ({why})")
    lines += ["", "Versions:", ""]
    for n in order:
        v = versions.get(n)
        if v:
            lines.append(f"- {n}: {version_label(n, v)} (Python {v.get('python', '?')})")
    lines += [
        "",
        "How to read: *records/s* = input records / (time from the first output record "
        "visible to the output topic holding the expected count); *CPU s* = user+sys of the "
        "implementation's process tree over that same window (so CPU µs/rec is the cost per "
        "input record); *total CPU s* covers the whole process life (startup and shutdown "
        "included); *peak RSS* = VmHWM of the process tree; *startup s* = process start to "
        "first output record; "
        "*wall s* = process start to done; *broker CPU s* = the local broker's user+sys over "
        "the *CPU s* window (the broker shares the machine); *busy %* = machine-wide CPU use "
        "in the second before the run (other work on the machine skews a run; see --quiet).",
        "",
        "## Runs",
        "",
        "| impl | run | ok | records/s | CPU s | total CPU s | RSS MB | startup s | "
        "process s | broker CPU s | out | busy % | stop | problems |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        busy = None if r.busy_before is None else 100 * r.busy_before
        problems = "; ".join(r.problems).replace("|", "/")
        lines.append(
            f"| {r.impl} | {r.run} | {'yes' if r.ok else 'NO'} | {fmt(r.records_per_s, ',.0f')} "
            f"| {fmt(r.cpu_s, '.2f')} | {fmt(r.cpu_total_s, '.2f')} "
            f"| {fmt(r.peak_rss_mb, '.0f')} | {fmt(r.startup_s, '.1f')} "
            f"| {fmt(r.process_s, '.2f')} | {fmt(r.broker_cpu_s, '.2f')} "
            f"| {'-' if r.output_count is None else r.output_count} "
            f"| {fmt(busy, '.0f')} | {r.exit} | {problems} |"
        )
    return "\n".join(lines) + "\n"


def write_report(outcome: Outcome, out_dir: Path, stamp: str) -> tuple[Path, str]:
    """Write ``<scenario>-<stamp>.md`` (the table) and ``.json`` (every run) under
    ``out_dir``; return the markdown's path and text."""
    table = render(outcome)
    out_md = out_dir / f"{outcome.scenario.name}-{stamp}.md"
    out_md.write_text(table)
    out_json = out_md.with_suffix(".json")
    out_json.write_bytes(
        orjson.dumps(
            {
                "meta": outcome.meta,
                "args": {k: str(v) for k, v in vars(outcome.args).items()},
                "versions": outcome.versions,
                "unavailable": outcome.unavailable,
                "runs": [asdict(r) for r in outcome.results],
            },
            option=orjson.OPT_INDENT_2,
        )
    )
    return out_md, table


def rate_and_cpu(runs: Sequence[Any], records: int) -> tuple[float, float] | None:
    """Median records/s and CPU µs per record of the successful runs; None if none succeeded."""
    ok = [r for r in runs if r.ok and r.records_per_s and r.cpu_s is not None]
    if not ok:
        return None
    return (statistics.median(r.records_per_s or 0.0 for r in ok),
            statistics.median((r.cpu_s or 0.0) / records * 1e6 for r in ok))
