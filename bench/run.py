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

Run ``bench/setup_peers.sh`` first (``make bench`` does both).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
IMPLS = BENCH / "impls"
RESULTS = BENCH / "results"
STACK_ENV = ROOT / "deploy" / "local" / ".run" / "stack.env"

if str(ROOT) not in sys.path:  # so `python bench/run.py` can import bench.scenarios
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec  # noqa: E402

from bench.scenarios import SCENARIOS, Expectation, Scenario  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------
# Frameworks: how to start each one, in which interpreter
# --------------------------------------------------------------------------------------------

VERSIONS_SNIPPET = r"""
import importlib.metadata as m, json, sys
out = {"python": sys.version.split()[0]}
for d in @DISTS@:
    try:
        out[d] = m.version(d)
    except m.PackageNotFoundError:
        pass
try:
    import confluent_kafka
    out["librdkafka"] = confluent_kafka.libversion()[0]
except Exception:
    pass
@EXTRA@
print(json.dumps(out))
"""

STREAMFLOW_PROBE = r"""
import importlib.util, os
os.environ.setdefault("BENCH_INPUT", "probe-in")
os.environ.setdefault("BENCH_OUTPUT", "probe-out")
import streamflow
missing = [n for n in ("Topology", "String", "Json") if not hasattr(streamflow, n)]
if missing:
    raise SystemExit("streamflow lacks " + ", ".join(missing))
import importlib
importlib.import_module(@MODULE@)
if importlib.util.find_spec("streamflow.__main__") is not None:
    out["launcher"] = "module"
elif importlib.util.find_spec("streamflow.cli") is not None:
    import streamflow.cli
    if not hasattr(streamflow.cli, "main"):
        raise SystemExit("streamflow.cli has no main()")
    out["launcher"] = "cli"
else:
    raise SystemExit("no streamflow CLI (streamflow.__main__ or streamflow.cli.main)")
"""


@dataclass(frozen=True)
class Framework:
    name: str
    python: Path
    dists: tuple[str, ...]
    setup_hint: str

    def probe(self, scenario: Scenario) -> tuple[dict[str, str] | None, str]:
        """Return (versions, "") if runnable here, else (None, reason)."""
        if not self.python.exists():
            return None, f"{self.python} missing ({self.setup_hint})"
        extra = ""
        if self.name == "streamflow":
            extra = STREAMFLOW_PROBE.replace(
                "@MODULE@", repr(impl_module(scenario.impls[self.name]))
            )
        code = VERSIONS_SNIPPET.replace("@DISTS@", repr(list(self.dists))).replace("@EXTRA@", extra)
        proc = subprocess.run(
            [str(self.python), "-c", code],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            return None, (lines[-1] if lines else f"probe exited {proc.returncode}")
        return json.loads(proc.stdout.strip().splitlines()[-1]), ""

    def command(self, scenario: Scenario, versions: dict[str, str]) -> list[str]:
        target = scenario.impls[self.name]
        py = str(self.python)
        if self.name == "streamflow":
            module = impl_module(target)
            if versions.get("launcher") == "module":
                return [py, "-m", "streamflow", "run", module]
            return [
                py,
                "-c",
                "import sys; from streamflow.cli import main; sys.exit(main())",
                "run",
                module,
            ]
        script = str(IMPLS / target)
        if self.name == "faust":
            return [py, script, "worker", "-l", "info"]
        return [py, script]


def impl_module(target: str) -> str:
    return "bench.impls." + target.removesuffix(".py").replace("/", ".")


MAIN_PY = ROOT / ".venv" / "bin" / "python"
FRAMEWORKS: dict[str, Framework] = {
    f.name: f
    for f in (
        Framework("raw", MAIN_PY, ("confluent-kafka", "orjson"), "create the project .venv"),
        Framework(
            "streamflow",
            MAIN_PY,
            ("streamflow", "confluent-kafka", "orjson"),
            "create the project .venv",
        ),
        Framework(
            "quix",
            BENCH / ".venvs" / "quix" / "bin" / "python",
            ("quixstreams", "confluent-kafka", "orjson"),
            "run bench/setup_peers.sh",
        ),
        Framework(
            "faust",
            BENCH / ".venvs" / "faust" / "bin" / "python",
            ("faust-streaming", "aiokafka", "orjson"),
            "run bench/setup_peers.sh",
        ),
    )
}


# --------------------------------------------------------------------------------------------
# Kafka helpers
# --------------------------------------------------------------------------------------------


class Kafka:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        # log_level 4: no "partition count changed" notices when our topics get deleted.
        self.admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.admin.list_topics(timeout=5)
                return
            except KafkaException as e:
                if time.monotonic() > deadline:
                    raise SystemExit(f"broker at {self.bootstrap} not reachable: {e}") from e
                time.sleep(1)

    def create_topic(self, name: str, partitions: int) -> None:
        # retention.ms=-1: the seeded data carries 2024 timestamps; don't let retention eat it.
        topic = NewTopic(name, partitions, 1, config={"retention.ms": "-1"})
        self.admin.create_topics([topic], operation_timeout=30)[name].result()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until metadata shows every partition
            md = self.admin.list_topics(name, timeout=5).topics.get(name)
            complete = md is not None and md.error is None and len(md.partitions) == partitions
            if complete and self.end_offsets(name, partitions) is not None:
                return
            time.sleep(0.1)
        raise SystemExit(f"topic {name} not ready after 30 s")

    def end_offsets(self, topic: str, partitions: int) -> list[int] | None:
        req = {TopicPartition(topic, p): OffsetSpec.latest() for p in range(partitions)}
        try:
            futs = self.admin.list_offsets(req, request_timeout=10)
            return [f.result().offset for f in futs.values()]
        except KafkaException:
            return None

    def count(self, topic: str, partitions: int) -> int | None:
        offs = self.end_offsets(topic, partitions)
        return None if offs is None else sum(offs)

    def delete_prefixed(self, prefix: str) -> list[str]:
        """Delete every topic and consumer group whose name starts with prefix, and every
        topic that contains it (Quix names its internal topics ``changelog__<group>--...``)."""
        topics = [t for t in self.admin.list_topics(timeout=10).topics if prefix in t]
        if topics:
            for fut in self.admin.delete_topics(topics, operation_timeout=30).values():
                try:
                    fut.result()
                except KafkaException as e:
                    print(f"bench: could not delete topic: {e}", file=sys.stderr)
        try:
            listed = self.admin.list_consumer_groups(request_timeout=10).result()
            groups = [g.group_id for g in listed.valid if g.group_id.startswith(prefix)]
            if groups:
                for fut in self.admin.delete_consumer_groups(groups, request_timeout=10).values():
                    with contextlib.suppress(KafkaException):
                        fut.result()  # fails if members are still closing, or already gone
        except KafkaException as e:
            print(f"bench: could not delete consumer groups: {e}", file=sys.stderr)
        return topics

    def produce_dataset(
        self, topic: str, scenario: Scenario, n: int, seed: int, exp: Expectation
    ) -> dict[str, float]:
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "linger.ms": 50,
                "batch.size": 1_000_000,
                "compression.type": "none",
                "queue.buffering.max.messages": 1_000_000,
                "queue.buffering.max.kbytes": 1_048_576,
                "partitioner": "murmur2_random",  # Java-compatible key hashing
                "acks": "all",
            }
        )
        errors: list[str] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        t0 = time.monotonic()
        nbytes = 0
        produce, poll = producer.produce, producer.poll
        for i, rec in enumerate(scenario.records(n, seed)):
            exp.add_input(rec)
            nbytes += len(rec.value)
            while True:
                try:
                    produce(
                        topic,
                        rec.value,
                        rec.key,
                        timestamp=rec.timestamp_ms,
                        on_delivery=on_delivery,
                    )
                    break
                except BufferError:
                    poll(0.05)
            if i % 10_000 == 0:
                poll(0)
        remaining = producer.flush(120)
        elapsed = time.monotonic() - t0
        if remaining or errors:
            raise SystemExit(f"producing the input failed: {remaining} undelivered, {errors[:3]}")
        return {"seconds": elapsed, "avg_value_bytes": nbytes / max(n, 1)}

    def read_all(self, topic: str, partitions: int, sink: Callable[[Any, Any], None]) -> int:
        """Read the whole topic (up to its current end offsets) into sink(key, value)."""
        ends = self.end_offsets(topic, partitions) or [0] * partitions
        todo = {p: e for p, e in enumerate(ends) if e > 0}
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": "bench-verifier",  # never commits; assign() needs no group
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
            }
        )
        consumer.assign([TopicPartition(topic, p, 0) for p in todo])
        n = 0
        idle_deadline = time.monotonic() + 30
        try:
            while todo and time.monotonic() < idle_deadline:
                for msg in consumer.consume(num_messages=5000, timeout=1.0):
                    if msg.error() is not None:
                        continue
                    p = msg.partition()
                    if p not in todo:
                        continue
                    sink(msg.key(), msg.value())
                    n += 1
                    idle_deadline = time.monotonic() + 30
                    if msg.offset() + 1 >= todo[p]:
                        del todo[p]
        finally:
            consumer.close()
        return n


# --------------------------------------------------------------------------------------------
# One measured run
# --------------------------------------------------------------------------------------------


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
    pid_file = STACK_ENV.parent / "kafka.pid"
    if not pid_file.exists() or stack_bootstrap() != bootstrap:
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
        "BENCH_OUTPUT": output_topic,
        "BENCH_GROUP": name,
        "BENCH_APP": name,
        "BENCH_PARTITIONS": str(args.partitions),
        "BENCH_STATE_DIR": state_dir,
        "BENCH_SCENARIO": scenario.name,
        **getattr(scenario, "env", dict)(),  # optional: e.g. the avro scenario's registry URL
    }
    for k in ("VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(k, None)
    cmd = fw.command(scenario, versions)
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
        kafka.read_all(output_topic, args.partitions, checker.add_output)
        res.problems.extend(checker.problems())
    res.ok = t_done is not None and not res.problems
    if not args.keep_topics:
        kafka.delete_prefixed(name)
    subprocess.run(["rm", "-rf", state_dir], check=False)
    return res


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


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


def version_label(name: str, versions: dict[str, str] | None) -> str:
    if not versions:
        return ""
    keys = {
        "raw": ["confluent-kafka", "librdkafka"],
        "streamflow": ["streamflow", "confluent-kafka", "librdkafka"],
        "quix": ["quixstreams", "confluent-kafka", "librdkafka"],
        "faust": ["faust-streaming", "aiokafka"],
    }.get(name, [])
    return ", ".join(f"{k} {versions[k]}" for k in keys if k in versions)


def render(
    scenario: Scenario,
    args: argparse.Namespace,
    meta: dict[str, Any],
    results: list[RunResult],
    order: list[str],
    versions: dict[str, dict[str, str] | None],
    unavailable: dict[str, str],
) -> str:
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


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def stack_bootstrap() -> str | None:
    """STREAMFLOW_BOOTSTRAP_SERVERS from deploy/local/.run/stack.env, if the stack is up."""
    if STACK_ENV.exists():
        for line in STACK_ENV.read_text().splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and key.strip() == "STREAMFLOW_BOOTSTRAP_SERVERS":
                return value.strip().strip("'\"")
    return None


def default_bootstrap() -> str | None:
    return os.environ.get("STREAMFLOW_BOOTSTRAP_SERVERS") or stack_bootstrap()


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
        help="Kafka bootstrap servers (default: $STREAMFLOW_BOOTSTRAP_SERVERS, else "
        "STREAMFLOW_BOOTSTRAP_SERVERS from deploy/local/.run/stack.env)",
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
    unknown = [n for n in order if n not in FRAMEWORKS or n not in scenario.impls]
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
        kafka.create_topic(input_topic, args.partitions)
        exp = scenario.expectation()
        print(f"bench: producing {args.records:,} records to {input_topic} ...", file=sys.stderr)
        meta.update(kafka.produce_dataset(input_topic, scenario, args.records, args.seed, exp))
        have = kafka.count(input_topic, args.partitions)
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

    table = render(scenario, args, meta, results, order, versions, unavailable)
    out_md = args.out / f"{scenario.name}-{stamp}.md"
    out_md.write_text(table)
    out_json = out_md.with_suffix(".json")
    out_json.write_bytes(
        orjson.dumps(
            {
                "meta": meta,
                "args": {k: str(v) for k, v in vars(args).items()},
                "versions": versions,
                "unavailable": unavailable,
                "runs": [asdict(r) for r in results],
            },
            option=orjson.OPT_INDENT_2,
        )
    )
    print(table)
    print(
        f"bench: wrote {out_md.relative_to(ROOT) if out_md.is_relative_to(ROOT) else out_md}",
        file=sys.stderr,
    )
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
