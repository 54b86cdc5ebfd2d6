"""Exactly-once vs at-least-once: throughput on a stateful scenario and end-to-end latency.

1. Throughput: N JSON records (100k keys) are counted per key (group_by + count, updates to
   an output topic) by ``streamflow run`` with each guarantee; the time from the first to the
   last output record (read with ``read_committed``) gives records/s.
2. Latency: a producer writes a fixed rate of records for a while to a running worker; a
   ``read_committed`` consumer measures, per output record, arrival time minus the input's
   timestamp (the output keeps the input timestamp): p50 / p99 / max.

Run: ``.venv/bin/python bench/eos.py --records 300000 --rate 2000 --seconds 20``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from confluent_kafka import Consumer, Producer

from streamflow.kafka import client

ROOT = Path(__file__).resolve().parents[1]
MODULE = """
import os
import streamflow as sf
topology = sf.Topology(os.environ["B_APP"])
src = topology.topic(os.environ["B_IN"], key=sf.String(), value=sf.Json(), external=True)
out = topology.topic(os.environ["B_OUT"], key=sf.String(), value=sf.Long())
p = topology.processor("count", guarantee=os.environ["B_GUARANTEE"])
(p.stream(src).group_by(lambda v: v["user"], name="by-user", key_serde=sf.String())
  .count(name="n").to_stream().to(out))
"""


def _bootstrap() -> str:
    if os.environ.get("STREAMFLOW_BOOTSTRAP_SERVERS"):
        return os.environ["STREAMFLOW_BOOTSTRAP_SERVERS"]
    for line in (ROOT / "deploy/local/.run/stack.env").read_text().splitlines():
        if line.startswith("STREAMFLOW_BOOTSTRAP_SERVERS="):
            return line.split("=", 1)[1]
    sys.exit("set STREAMFLOW_BOOTSTRAP_SERVERS or run deploy/local/stack up")


def _consumer(bootstrap: str, topic: str) -> Consumer:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}",
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                  "enable.auto.commit": False, "fetch.queue.backoff.ms": 10})
    c.subscribe([topic])
    return c


def _run(bootstrap: str, guarantee: str, tmp: Path, tin: str, tout: str) -> subprocess.Popen[bytes]:
    app = f"eosb-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "B_APP": app, "B_IN": tin, "B_OUT": tout, "B_GUARANTEE": guarantee,
           "STREAMFLOW_BOOTSTRAP_SERVERS": bootstrap, "STREAMFLOW_STATE_DIR": str(tmp / app),
           "PYTHONPATH": f"{tmp}{os.pathsep}{ROOT}", "STREAMFLOW_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "streamflow", "run", "eos_bench"], cwd=tmp,
                            env=env)


def throughput(bootstrap: str, guarantee: str, n: int, tmp: Path, tin: str) -> float:
    admin = client.make_admin({"bootstrap.servers": bootstrap})
    tout = f"eosb-out-{uuid.uuid4().hex[:6]}"
    client.create_topics(admin, [(tout, 12, 1, {})])
    proc = _run(bootstrap, guarantee, tmp, tin, tout)
    c = _consumer(bootstrap, tout)
    seen, first, last = 0, 0.0, 0.0
    deadline = time.monotonic() + 600
    while seen < n and time.monotonic() < deadline:
        for m in c.consume(5000, 0.5):
            if m.error() is None:
                seen += 1
                last = time.monotonic()
                first = first or last
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    c.close()
    client.delete_topics(admin, [tout])
    return n / (last - first) if seen >= n and last > first else 0.0


def latency(bootstrap: str, guarantee: str, rate: int, seconds: float, tmp: Path
            ) -> tuple[float, float, float, int]:
    admin = client.make_admin({"bootstrap.servers": bootstrap})
    tin, tout = f"eosl-in-{uuid.uuid4().hex[:6]}", f"eosl-out-{uuid.uuid4().hex[:6]}"
    client.create_topics(admin, [(tin, 12, 1, {}), (tout, 12, 1, {})])
    proc = _run(bootstrap, guarantee, tmp, tin, tout)
    c = _consumer(bootstrap, tout)
    time.sleep(6)  # the worker joins its group
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
    lat: list[float] = []
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < seconds or len(lat) < sent * 0.99:
        now = time.monotonic()
        if now - start < seconds:
            while sent < (now - start) * rate:
                p.produce(tin, orjson.dumps({"user": f"u{sent % 1000}"}), f"k{sent}".encode(),
                          timestamp=int(time.time() * 1000))
                sent += 1
            p.poll(0)
        elif now - start > seconds + 30:
            break
        for m in c.consume(1000, 0.005):
            if m.error() is None:
                lat.append(time.time() * 1000 - m.timestamp()[1])
    p.flush(10)
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    c.close()
    client.delete_topics(admin, [tin, tout])
    lat.sort()
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))]  # noqa: E731
    return q(0.5), q(0.99), lat[-1], len(lat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=20)
    args = ap.parse_args()
    bootstrap = _bootstrap()
    tmp = Path(tempfile.mkdtemp(prefix="eos-bench-"))
    (tmp / "eos_bench.py").write_text(MODULE)
    admin = client.make_admin({"bootstrap.servers": bootstrap})
    tin = f"eosb-in-{uuid.uuid4().hex[:6]}"
    client.create_topics(admin, [(tin, 12, 1, {})])
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i in range(args.records):
        while True:
            try:
                p.produce(tin, orjson.dumps({"user": f"u{i % 100_000}", "n": i}), f"k{i}".encode())
                break
            except BufferError:
                p.poll(0.05)
    p.flush(60)
    print("| guarantee | count-by-key records/s | latency p50 ms | p99 ms | max ms | outputs |")
    print("|---|---:|---:|---:|---:|---:|")
    for g in ("at_least_once", "exactly_once"):
        rps = throughput(bootstrap, g, args.records, tmp, tin)
        p50, p99, mx, n = latency(bootstrap, g, args.rate, args.seconds, tmp)
        print(f"| {g} | {rps:,.0f} | {p50:.0f} | {p99:.0f} | {mx:.0f} | {n:,} |", flush=True)
    client.delete_topics(admin, [tin])


if __name__ == "__main__":
    main()
