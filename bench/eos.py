"""Exactly-once vs at-least-once, streamflow beside Quix Streams: throughput on a stateful
scenario and end-to-end latency at a fixed rate.

The scenario (``bench/impls/eos/``): JSON records ``{"user": ...}`` keyed by record, a
``group_by`` user (through a repartition topic), a count per user, every update to an output
topic with 12 partitions. Both frameworks use the same commit interval for a guarantee:
streamflow's defaults (1 s at-least-once, 100 ms exactly-once; ``--commit-interval-ms``
changes the exactly-once one for both).

1. Throughput: N records (100k users) are written first; the framework is started and the
   time from the first to the last of its N outputs (read with ``read_committed``) gives
   records/s. Start-up and group joins are outside that window.
2. Latency: a producer writes ``--rate`` records/s to a running framework. Records of the
   first ``--warmup`` seconds (and until the pipeline delivers) are not measured; for the
   next ``--seconds`` a ``read_committed`` consumer takes, per output, its arrival time minus
   the input's timestamp (both frameworks keep the input timestamp): p50 / p99 / max.

Run: ``.venv/bin/python bench/eos.py --records 300000 --rate 2000 --seconds 20``
(Quix needs ``bench/setup_peers.sh``; ``--frameworks streamflow`` runs without it).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from streamflow.testing.admin import TopicAdmin, discover_bootstrap

ROOT = Path(__file__).resolve().parents[1]
QUIX_PYTHON = ROOT / "bench" / ".venvs" / "quix" / "bin" / "python"
PARTITIONS = 12


def _bootstrap() -> str:
    found = discover_bootstrap(ROOT)
    if not found:
        sys.exit("set STREAMFLOW_BOOTSTRAP_SERVERS or run deploy/local/stack up")
    return found


def _consumer(bootstrap: str, topic: str) -> Consumer:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}",
                  "isolation.level": "read_committed", "enable.auto.commit": False,
                  "fetch.queue.backoff.ms": 10, "socket.nagle.disable": True})
    # assigned, not subscribed: a subscription made right after the topic's creation can
    # miss it and wait for the next metadata refresh (minutes), reading nothing meanwhile
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    return c


@dataclass
class Run:
    """One framework process under test, and what to clean up after it."""

    proc: subprocess.Popen[bytes]
    group: str  # every topic the framework created has this in its name


def _launch(bootstrap: str, framework: str, guarantee: str, interval_ms: int, tmp: Path,
            tin: str, tout: str) -> Run:
    group = f"eosb-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "BENCH_INPUT": tin, "BENCH_OUTPUT": tout, "BENCH_GUARANTEE": guarantee}
    if framework == "streamflow":
        env.update(BENCH_APP=group, STREAMFLOW_BOOTSTRAP_SERVERS=bootstrap,
                   STREAMFLOW_STATE_DIR=str(tmp / group), STREAMFLOW_LOG_LEVEL="WARNING",
                   PYTHONPATH=str(ROOT))
        if guarantee == "exactly_once":
            env["STREAMFLOW_EOS_COMMIT_INTERVAL_MS"] = str(interval_ms)
        cmd = [sys.executable, "-m", "streamflow", "run", "bench.impls.eos.streamflow_topology"]
    else:
        env.update(BENCH_BOOTSTRAP=bootstrap, BENCH_GROUP=group,
                   BENCH_STATE_DIR=str(tmp / group), PYTHONPATH=str(ROOT),
                   BENCH_COMMIT_INTERVAL_S=str(interval_ms / 1000
                                               if guarantee == "exactly_once" else 1.0))
        cmd = [str(QUIX_PYTHON), "-m", "bench.impls.eos.quix_app"]
    return Run(subprocess.Popen(cmd, cwd=tmp, env=env), group)


def _stop(run: Run, bootstrap: str) -> None:
    run.proc.send_signal(signal.SIGTERM)
    try:
        run.proc.wait(60)
    except subprocess.TimeoutExpired:
        run.proc.kill()
        run.proc.wait()
    admin = TopicAdmin(bootstrap)
    admin.delete_topics(t for t in admin.topics() if run.group in t)


def throughput(bootstrap: str, framework: str, guarantee: str, interval_ms: int, n: int,
               tmp: Path, tin: str) -> float:
    admin = TopicAdmin(bootstrap)
    tout = f"eosb-out-{uuid.uuid4().hex[:6]}"
    admin.create_topic(tout, PARTITIONS, replication_factor=1)
    run = _launch(bootstrap, framework, guarantee, interval_ms, tmp, tin, tout)
    c = _consumer(bootstrap, tout)
    seen, first, last = 0, 0.0, 0.0
    deadline = time.monotonic() + 300
    while seen < n and time.monotonic() < deadline and run.proc.poll() is None:
        for m in c.consume(5000, 0.5):
            if m.error() is None:
                seen += 1
                last = time.monotonic()
                first = first or last
    _stop(run, bootstrap)
    c.close()
    admin.delete_topics([tout])
    if seen < n or last <= first:
        print(f"  {framework} {guarantee}: only {seen} of {n} outputs", file=sys.stderr)
        return 0.0
    return n / (last - first)


def latency(bootstrap: str, framework: str, guarantee: str, interval_ms: int, rate: int,
            seconds: float, warmup: float, tmp: Path) -> tuple[float, float, float, int]:
    admin = TopicAdmin(bootstrap)
    tin, tout = f"eosl-in-{uuid.uuid4().hex[:6]}", f"eosl-out-{uuid.uuid4().hex[:6]}"
    admin.create_topics([tin, tout], PARTITIONS, replication_factor=1)
    run = _launch(bootstrap, framework, guarantee, interval_ms, tmp, tin, tout)
    c = _consumer(bootstrap, tout)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "socket.nagle.disable": True})
    lat: list[float] = []
    start = time.monotonic()
    measure_from = 0  # wall-clock ms; 0 = still warming up
    end = 0.0
    sent = warm_sent = warm_seen = measured = 0
    while run.proc.poll() is None:
        now = time.monotonic()
        if end and now > end + 30:
            break
        if not end or now < end:
            while sent < (now - start) * rate:
                ts = int(time.time() * 1000)
                p.produce(tin, orjson.dumps({"user": f"u{sent % 1000}"}), f"k{sent}".encode(),
                          timestamp=ts)
                sent += 1
                if measure_from:
                    measured += 1
                else:
                    warm_sent += 1
            p.poll(0)
        elif len(lat) >= measured:
            break
        for m in c.consume(1000, 0.005):
            if m.error() is not None:
                continue
            if measure_from and m.timestamp()[1] >= measure_from:
                lat.append(time.time() * 1000 - m.timestamp()[1])
            else:
                warm_seen += 1
        # measure once the warm-up has lasted long enough and the pipeline delivers
        if (not measure_from and now - start >= warmup and warm_seen >= 0.95 * warm_sent) or (
                not measure_from and now - start > 120):
            measure_from = int(time.time() * 1000) + 1
            end = now + seconds
    p.flush(10)
    _stop(run, bootstrap)
    c.close()
    admin.delete_topics([tin, tout])
    if not lat:
        return 0.0, 0.0, 0.0, 0
    lat.sort()
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))]  # noqa: E731
    return q(0.5), q(0.99), lat[-1], len(lat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--runs", type=int, default=3, help="throughput runs (median reported)")
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=5, help="seconds not measured")
    ap.add_argument("--commit-interval-ms", type=int, default=100,
                    help="exactly-once commit interval, for both frameworks")
    ap.add_argument("--frameworks", default="streamflow,quix")
    ap.add_argument("--guarantees", default="at_least_once,exactly_once")
    ap.add_argument("--no-throughput", action="store_true", help="measure latency only")
    ap.add_argument("--no-latency", action="store_true", help="measure throughput only")
    args = ap.parse_args()
    bootstrap = _bootstrap()
    tmp = Path(tempfile.mkdtemp(prefix="eos-bench-"))
    admin = TopicAdmin(bootstrap)
    tin = f"eosb-in-{uuid.uuid4().hex[:6]}"
    admin.create_topic(tin, PARTITIONS, replication_factor=1)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i in range(args.records):
        while True:
            try:
                p.produce(tin, orjson.dumps({"user": f"u{i % 100_000}", "n": i}), f"k{i}".encode())
                break
            except BufferError:
                p.poll(0.05)
    p.flush(60)
    print(f"records={args.records:,} runs={args.runs} rate={args.rate}/s seconds={args.seconds} "
          f"exactly-once commit interval={args.commit_interval_ms} ms")
    print("| framework | guarantee | records/s (median) | runs | latency p50 ms | p99 ms | "
          "max ms | measured outputs |")
    print("|---|---|---:|---|---:|---:|---:|---:|")
    for fw in args.frameworks.split(","):
        for g in args.guarantees.split(","):
            rs = [] if args.no_throughput else [
                throughput(bootstrap, fw, g, args.commit_interval_ms, args.records, tmp, tin)
                for _ in range(args.runs)]
            p50 = p99 = mx = 0.0
            n = 0
            if not args.no_latency:
                p50, p99, mx, n = latency(bootstrap, fw, g, args.commit_interval_ms, args.rate,
                                          args.seconds, args.warmup, tmp)
            med = statistics.median(rs) if rs else 0.0
            runs = ", ".join(f"{r / 1000:.0f}k" for r in rs)
            print(f"| {fw} | {g} | {med:,.0f} | {runs} | {p50:.0f} | {p99:.0f} | {mx:.0f} "
                  f"| {n:,} |", flush=True)
    admin.delete_topics([tin])


if __name__ == "__main__":
    main()
