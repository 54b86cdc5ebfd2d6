"""One measured run: start an implementation on a fresh output topic and consumer group, watch
the output's end offsets until it holds the expected count, meter it, stop it, verify."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import ROOT
from bench.harness.frameworks import Framework
from bench.harness.kafka import Kafka
from bench.harness.meter import (
    exited,
    pid_cpu,
    proc_tree_cpu,
    proc_tree_hwm_mb,
    stop_process,
    wait_quiet,
)
from bench.harness.scrape import Scraper, free_port
from bench.scenarios import Scenario, input_env


@dataclass
class RunResult:
    impl: str
    run: int
    ok: bool
    records_in: int
    expected: int
    output_count: int | None = None
    startup_s: float | None = None  # process start -> first output record visible
    process_s: float | None = None  # first output -> expected count reached
    wall_s: float | None = None  # process start -> expected count reached
    records_per_s: float | None = None  # records_in / process_s
    records_per_s_wall: float | None = None  # records_in / wall_s
    cpu_s: float | None = None  # user+sys of the process tree during process_s
    cpu_total_s: float | None = None  # user+sys over the whole process life (wait4)
    broker_cpu_s: float | None = None  # broker's user+sys during process_s (local stack only)
    peak_rss_mb: float | None = None  # VmHWM of the process tree just before the stop
    busy_before: float | None = None  # machine CPU busy fraction just before the run (noise)
    exit: str = ""
    problems: list[str] = field(default_factory=list)
    log: str = ""


def run_once(
    kafka: Kafka,
    fw: Framework,
    versions: dict[str, str],
    scenario: Scenario,
    args: argparse.Namespace,
    prefix: str,
    input_topic: str,
    expected: int,
    run_no: int,
    checker_factory: Callable[[], Any] | None,
    log_dir: Path,
) -> RunResult:
    name = f"{prefix}-{fw.name}-{run_no}"
    output_topic = f"{name}-out"
    res = RunResult(fw.name, run_no, False, args.records, expected)
    res.busy_before = wait_quiet(args.quiet, args.quiet_wait)
    kafka.create_topic(output_topic, args.partitions)
    state_dir = tempfile.mkdtemp(prefix=f"bench-{fw.name}-")
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(ROOT),
        "BENCH_BOOTSTRAP": kafka.bootstrap,
        "STREAMFLOW_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "BENCH_INPUT": input_topic,
        **input_env(scenario, input_topic),  # a join's second input topic
        "BENCH_OUTPUT": output_topic,
        "BENCH_GROUP": name,
        "BENCH_APP": name,
        "BENCH_PARTITIONS": str(args.partitions),
        "BENCH_STATE_DIR": state_dir,
        "BENCH_SCENARIO": scenario.name,
        **getattr(scenario, "env", dict)(),  # optional: e.g. the avro scenario's registry URL
        **kafka.env,  # a secured broker's STREAMFLOW_KAFKA_* settings
    }
    env.update(fw.env)  # e.g. streamflow's metrics settings
    scraper = None
    if fw.scrape_s:
        port = free_port()
        env["STREAMFLOW_HEALTH_PORT"] = str(port)
        scraper = Scraper(port, fw.scrape_s).start()
    for k in ("VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(k, None)
    # BENCH_WRAP runs the implementation under a tool, e.g. valgrind's callgrind
    # (bench/metrics_instructions.sh); runs under it are slow and their rates meaningless
    cmd = [*shlex.split(os.environ.get("BENCH_WRAP", "")), *fw.command(scenario, versions)]
    log_path = log_dir / f"{fw.name}-{run_no}.log"
    res.log = str(log_path.relative_to(ROOT)) if log_path.is_relative_to(ROOT) else str(log_path)
    with open(log_path, "wb") as log:
        log.write(f"$ {shlex.join(cmd)}\n".encode())
        log.flush()
        t_start = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            cwd=state_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    t_first = t_done = None
    cpu_first = cpu_done = 0.0
    broker_first = broker_done = None
    last_count, last_change = 0, t_start
    try:
        while True:
            now = time.monotonic()
            if exited(proc):
                res.problems.append(
                    f"process exited early at {now - t_start:.1f}s "
                    f"with {last_count}/{expected} records out"
                )
                break
            count = kafka.count(output_topic, args.partitions)
            now = time.monotonic()
            if count is not None:
                if count != last_count:
                    last_count, last_change = count, now
                if count > 0 and t_first is None:
                    t_first, cpu_first = now, proc_tree_cpu(proc.pid)
                    broker_first = pid_cpu(args.broker_pid)
                if count >= expected:
                    t_done, cpu_done = now, proc_tree_cpu(proc.pid)
                    broker_done = pid_cpu(args.broker_pid)
                    res.peak_rss_mb = proc_tree_hwm_mb(proc.pid)
                    break
            if now - t_start > args.timeout:
                res.problems.append(f"timeout after {args.timeout}s ({last_count}/{expected})")
                break
            if t_first is not None and now - last_change > args.stall_timeout:
                res.problems.append(
                    f"no progress for {args.stall_timeout}s ({last_count}/{expected})"
                )
                break
            time.sleep(args.poll_interval)
    finally:
        res.exit, rusage = stop_process(proc, args.stop_grace)
        if scraper is not None:
            scraper.stop()
            with open(log_path, "ab") as log:
                log.write(f"\n[bench] {scraper.scrapes} scrapes of /metrics every "
                          f"{scraper.interval}s ({scraper.failures} failed); the last:\n".encode())
                log.write(scraper.last)
    res.cpu_total_s = rusage.ru_utime + rusage.ru_stime
    if t_first is not None:
        res.startup_s = t_first - t_start
    if t_done is not None and t_first is not None:
        res.process_s = t_done - t_first
        res.wall_s = t_done - t_start
        res.records_per_s = args.records / res.process_s if res.process_s > 0 else None
        res.records_per_s_wall = args.records / res.wall_s
        res.cpu_s = cpu_done - cpu_first
        if broker_first is not None and broker_done is not None:
            res.broker_cpu_s = broker_done - broker_first
    # After the stop: nothing more may arrive (duplicates would show here).
    res.output_count = kafka.count(output_topic, args.partitions)
    if t_done is not None and res.output_count != expected:
        res.problems.append(
            f"output holds {res.output_count} records after stop, expected {expected}"
        )
    if t_done is not None and checker_factory is not None and not res.problems:
        checker = checker_factory()
        kafka.read_all(output_topic, checker.add_output)
        res.problems.extend(checker.problems())
    res.ok = t_done is not None and not res.problems
    if not args.keep_topics:
        kafka.delete_prefixed(name)
    subprocess.run(["rm", "-rf", state_dir], check=False)
    return res
