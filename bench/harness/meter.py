"""Metering from procfs: machine-wide CPU use, CPU seconds and peak RSS of a process tree, the
local broker's CPU; and stopping an implementation's process group with its rusage."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from typing import Any

from bench.harness import ROOT
from streamflow.testing.cluster import (
    STACK_ENV_BOOTSTRAP,
    LocalStack,
    find_local_stack,
    read_env_file,
)

CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_busy(seconds: float = 1.0) -> float:
    """Fraction of all CPUs busy over the next `seconds` (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
        idle = vals[3] + vals[4]  # idle + iowait
        return sum(vals) - idle, sum(vals)

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(1, total1 - total0)


def wait_quiet(threshold: float, max_wait: float) -> float:
    """Wait (up to max_wait s) until the machine is less than `threshold` busy; return busy."""
    deadline = time.monotonic() + max_wait
    busy = machine_busy()
    while threshold > 0 and busy > threshold and time.monotonic() < deadline:
        busy = machine_busy(2.0)
    return busy


def proc_tree(root_pid: int) -> list[tuple[int, float]]:
    """(pid, user+sys seconds) of root_pid and its live descendants, from /proc/*/stat."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        rest = raw[raw.rfind(b")") + 2 :].split()
        # fields after "(comm)": state(3) ppid(4) ... utime(14) stime(15)
        stats[int(entry)] = (int(rest[1]), (int(rest[11]) + int(rest[12])) / CLK_TCK)
    out: list[tuple[int, float]] = []
    frontier, seen = [root_pid], set()
    while frontier:
        pid = frontier.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        out.append((pid, stats[pid][1]))
        frontier.extend(c for c, (ppid, _) in stats.items() if ppid == pid)
    return out


def pid_cpu(pid: int | None) -> float | None:
    """user+sys seconds of one process (all its threads), None if unknown or gone."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            rest = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(rest[11]) + int(rest[12])) / CLK_TCK  # utime, stime


def local_broker_pid(bootstrap: str) -> int | None:
    """PID of the deploy/local broker when `bootstrap` points at it (for broker CPU)."""
    stack = LocalStack(find_local_stack(ROOT))
    pid_file = stack.run_dir / "kafka.pid"
    if not pid_file.exists() or not stack.env_file.is_file():
        return None
    if read_env_file(stack.env_file).get(STACK_ENV_BOOTSTRAP) != bootstrap:
        return None
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_cpu(pid) is not None else None


def proc_tree_cpu(root_pid: int) -> float:
    return sum(cpu for _, cpu in proc_tree(root_pid))


def proc_tree_hwm_mb(root_pid: int) -> float | None:
    """Sum of VmHWM (peak RSS since exec) over the live process tree, in MiB.

    Not wait4's ru_maxrss: on Linux that also counts the harness's own RSS copied at fork,
    before exec.
    """
    total, found = 0, False
    for pid, _ in proc_tree(root_pid):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])  # kB
                        found = True
                        break
        except OSError:
            continue
    return total / 1024 if found else None


def stop_process(proc: subprocess.Popen[bytes], grace: float) -> tuple[str, Any]:
    """SIGTERM the process group, SIGKILL after grace seconds; reap with wait4 for rusage."""
    how = "exited"
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        how = "sigterm"
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            how = "sigkill"
            pid, status, rusage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group (forked workers)
    return f"{how}, exit {proc.returncode}", rusage


def exited(proc: subprocess.Popen[bytes]) -> bool:
    """Non-reaping liveness check (reaping here would lose the rusage)."""
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None
