"""Rebalance benchmark: the processing pause of each scale-out and rolling-restart step.

One stateful exactly-once processor (a running count per key, one source topic of 6
partitions, so every group protocol may assign it) runs as StatefulSet pods from the rendered
``deploy k8s`` manifests (:mod:`tests.fleet.pods`), while input arrives at a steady rate. The
fleet goes 1 -> 2 -> 3 pods (a scale-out step waits for the new pod's readiness), then each
pod is restarted in turn (SIGTERM, back under its name, ready). A read_committed consumer
notes when each output record arrives; a step's **pause** is the longest gap between two
arrivals on one output partition (= one input partition) in the step's window, and its
**stop** the longest gap in all output (every partition paused at once). A steady run's
gaps are about one commit interval.

Per protocol (``--protocols``):

- ``range-dynamic``: eager range, dynamic members (streamflow before issue 19);
- ``range-static``: eager range, static members (``group.instance.id`` = pod name);
- ``cooperative-static``: cooperative-sticky (incremental), static members;
- ``consumer-static``: Kafka 4's KIP-848 protocol with the broker's range assignor.

Run: ``.venv/bin/python bench/rebalance.py --out bench/results/issue19``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamflow.testing.admin import TopicAdmin, discover_bootstrap  # noqa: E402
from tests.fleet.pods import Pod, PodFleet, render_pods  # noqa: E402

TOPOLOGY = '''
import os
import streamflow as sf

E = os.environ
topology = sf.Topology(E["RB_APP"])
src = topology.topic(E["RB_IN"], key=sf.String(), value=sf.Json(), external=True)
out = topology.topic(E["RB_OUT"], key=sf.String(), value=sf.Json())
p = topology.processor("count", guarantee="exactly_once")
p.stream(src, name="in").group_by_key(name="by-key").count(name="n").to_stream().to(out)
'''

# group settings per protocol; the consumer protocol's settings come from the
# ``group_protocol`` setting when this streamflow has it, else librdkafka's pass-through
PROTOCOLS: dict[str, dict[str, str]] = {
    "range-dynamic": {"STREAMFLOW_STATIC_MEMBERSHIP": "off",
                      "STREAMFLOW_CONSUMER_PARTITION_ASSIGNMENT_STRATEGY": "range"},
    "range-static": {"STREAMFLOW_CONSUMER_PARTITION_ASSIGNMENT_STRATEGY": "range"},
    "cooperative-static": {
        "STREAMFLOW_CONSUMER_PARTITION_ASSIGNMENT_STRATEGY": "cooperative-sticky",
        "STREAMFLOW_GROUP_ASSIGNOR": "cooperative-sticky"},
    "consumer-static": {"STREAMFLOW_GROUP_PROTOCOL": "consumer",
                        "STREAMFLOW_GROUP_ASSIGNOR": "range"},
}


class Arrivals(threading.Thread):
    """Reads the output (read_committed) and notes each record's arrival per partition."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"rb-{uuid.uuid4()}",
                                  "isolation.level": "read_committed",
                                  "auto.offset.reset": "earliest", "fetch.wait.max.ms": 10,
                                  "enable.auto.commit": False})
        self.consumer.subscribe([topic])
        self.times: dict[int, list[float]] = defaultdict(list)
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            for m in self.consumer.consume(1000, 0.05):
                if m.error() is None:
                    self.times[m.partition()].append(time.monotonic())
        self.consumer.close()


def longest_gaps(times: dict[int, list[float]], start: float, end: float
                 ) -> tuple[float, float]:
    """(longest gap on one partition, longest gap in all output) within [start, end]."""
    per = 0.0
    every: list[float] = []
    for ts in times.values():
        window = [start] + [t for t in ts if start <= t <= end] + [end]
        every += window[1:-1]
        per = max(per, max(b - a for a, b in itertools.pairwise(window)))
    merged = [start, *sorted(every), end]
    return per, max(b - a for a, b in itertools.pairwise(merged))


def paced_input(bootstrap: str, topic: str, rate: float, keys: int, halt: threading.Event
                ) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True,
                  "partitioner": "murmur2_random"})
    began = time.monotonic()
    sent = 0
    while not halt.is_set():
        due = int((time.monotonic() - began) * rate)
        while sent < due:
            p.produce(topic, orjson.dumps({"i": sent}), f"k{sent % keys}".encode())
            sent += 1
        p.poll(0)
        time.sleep(0.005)
    p.flush(30)


def run_protocol(name: str, bootstrap: str, args: argparse.Namespace, log: Any
                 ) -> list[dict[str, Any]]:
    import runpy

    workdir = Path(tempfile.mkdtemp(prefix=f"rebalance-{name}-"))
    app = f"rb-{name}-{uuid.uuid4().hex[:6]}"
    env = {"RB_APP": app, "RB_IN": f"{app}.in", "RB_OUT": f"{app}.out"}
    (workdir / "rebalance_topology.py").write_text(TOPOLOGY)
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        topology = runpy.run_path(str(workdir / "rebalance_topology.py"))["topology"]
    finally:
        os.environ.clear()
        os.environ.update(saved)
    template = render_pods(topology, "rebalance_topology", bootstrap, 3)["count"]
    base = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFLOW_")}
    base.update(env, PYTHONPATH=os.pathsep.join([str(workdir), str(ROOT)]),
                STREAMFLOW_LOG_LEVEL="INFO")
    admin = TopicAdmin(bootstrap)
    admin.create_topics([env["RB_IN"], env["RB_OUT"]], args.partitions, replication_factor=1)
    fleet = PodFleet(template, workdir, base, log)
    arrivals = Arrivals(bootstrap, env["RB_OUT"])
    halt = threading.Event()
    producer = threading.Thread(target=paced_input,
                                args=(bootstrap, env["RB_IN"], args.rate, args.keys, halt),
                                daemon=True)
    rows: list[dict[str, Any]] = []

    def measure(step: str, action: Any, pod: Pod | None = None) -> None:
        began = time.monotonic()
        action()
        ready = time.monotonic() - began
        fleet.wait(args.settle)
        per, stop = longest_gaps(arrivals.times, began, time.monotonic())
        rows.append({"protocol": name, "step": step, "pause_s": round(per, 2),
                     "stop_s": round(stop, 2), "ready_s": round(ready, 2)})
        log(f"  {name:18s} {step:22s} pause {per:6.2f}s  stop {stop:6.2f}s  "
            f"(ready after {ready:.1f}s)")

    try:
        arrivals.start()
        producer.start()
        # the protocol's settings win over the ConfigMap's (as a pod's own env would)
        pods = [fleet.pod(i, env=PROTOCOLS[name]) for i in range(3)]
        fleet.start(pods[0], "first")
        fleet.wait_ready(pods[0])
        fleet.wait(args.settle)
        per, stop = longest_gaps(arrivals.times, time.monotonic() - args.settle,
                                 time.monotonic())
        rows.append({"protocol": name, "step": "steady (1 pod)", "pause_s": round(per, 2),
                     "stop_s": round(stop, 2), "ready_s": 0.0})
        for n in (1, 2):
            def out(p: Pod = pods[n]) -> None:
                fleet.start(p, "scale out")
                fleet.wait_ready(p)
            measure(f"scale-out {n}->{n + 1}", out)
        for p in pods:
            def restart(p: Pod = p) -> None:
                fleet.terminate(p, "rolling restart")
                fleet.start(p, "rolling restart")
                fleet.wait_ready(p)
            measure(f"restart {p.name.rsplit('-', 1)[1]}", restart)
        if fleet.crashes or fleet.unclean_stops:
            log(f"  {name}: crashes {fleet.crashes} unclean {fleet.unclean_stops}")
    finally:
        halt.set()
        fleet.kill_all()
        arrivals.halt.set()
        with contextlib.suppress(Exception):
            admin.delete_topics(admin.app_topics(app))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocols", nargs="*", default=list(PROTOCOLS), choices=list(PROTOCOLS))
    ap.add_argument("--rate", type=float, default=3000.0, help="input records/s")
    ap.add_argument("--keys", type=int, default=5000)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--settle", type=float, default=8.0,
                    help="seconds measured after each step's pod is ready")
    ap.add_argument("--out", type=Path, help="write rebalance-<time>.json and .md here")
    args = ap.parse_args()
    bootstrap = discover_bootstrap(ROOT)
    if not bootstrap:
        sys.exit("set STREAMFLOW_BOOTSTRAP_SERVERS or run deploy/local/stack up")
    rows: list[dict[str, Any]] = []
    for name in args.protocols:
        print(f"{name}:", flush=True)
        rows += run_protocol(name, bootstrap, args, lambda s: print(s, flush=True)
                             if s.startswith("  ") else None)
    table = ["| protocol | step | pause (longest gap, one partition) | stop (all output) "
             "| pod ready after |", "|---|---|---|---|---|"]
    table += [f"| {r['protocol']} | {r['step']} | {r['pause_s']:.2f} s | {r['stop_s']:.2f} s "
              f"| {r['ready_s']:.1f} s |" for r in rows]
    print("\n".join(table))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        (args.out / f"rebalance-{stamp}.json").write_text(json.dumps(
            {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=1))
        (args.out / f"rebalance-{stamp}.md").write_text(
            f"# bench/rebalance.py, {stamp}\n\n`{' '.join(sys.argv)}`\n\n" + "\n".join(table)
            + "\n")


if __name__ == "__main__":
    main()
