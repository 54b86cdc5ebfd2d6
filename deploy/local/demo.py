"""The streamflow demo: feed generated orders through ``topologies.orders`` and show the output.

Started by ``make demo`` (after ``deploy/local/stack up``). It creates the input topic,
starts ``streamflow run topologies.orders`` (both processors, supervised), produces a few
orders per second (with the odd malformed one, which lands in the dead-letter topic), and
prints what comes out of ``orders.large``, ``orders.small`` and ``orders.enrich.dlq`` as it
flows. Ctrl-C (or ``--seconds N``) stops everything cleanly.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
import uuid

import orjson
from confluent_kafka import Consumer, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _order(rng: random.Random, n: int) -> tuple[str, bytes]:
    customer = f"c{rng.randint(1, 20):03d}"
    if n % 40 == 39:
        return customer, b'{"id": "broken", "lines": [oops'  # malformed: goes to the DLQ
    lines = [{"sku": f"sku-{rng.randint(1, 99)}", "qty": rng.randint(1, 5),
              "unit_price": round(rng.uniform(2, 60), 2)} for _ in range(rng.randint(1, 4))]
    order = {"id": f"o{n}", "customer": customer, "country": rng.choice(["DE", "FR", "NL", "US"]),
             "status": rng.choice(["new"] * 9 + ["cancelled"]), "lines": lines}
    return customer, orjson.dumps(order)


def _show(msgs: list[Message], since_ms: int) -> int:
    """Print this run's results among ``msgs``; return how many there were."""
    shown = 0
    for m in msgs:
        if m.error() or m.timestamp()[1] < since_ms:
            continue
        shown += 1
        if m.topic() == "orders.enrich.dlq":
            err = dict(m.headers() or []).get("streamflow.error.message", b"").decode()
            print(f"  DLQ    {m.value()[:40]!r}  <- {err[:60]}", flush=True)
        else:
            o = orjson.loads(m.value())
            size = "LARGE" if m.topic() == "orders.large" else "small"
            print(f"  {size:6} {o['id']:>6} {o['customer']} {o['country']} "
                  f"gross={o['gross']:>8.2f}", flush=True)
    return shown


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", default=os.environ.get("STREAMFLOW_BOOTSTRAP_SERVERS"))
    ap.add_argument("--rate", type=float, default=5.0, help="orders per second")
    ap.add_argument("--seconds", type=float, default=0, help="stop after N seconds (0: Ctrl-C)")
    args = ap.parse_args()
    if not args.bootstrap:
        ap.error("set STREAMFLOW_BOOTSTRAP_SERVERS or --bootstrap "
                 "(deploy/local/stack up prints it)")
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    admin.create_topics([NewTopic("orders", 3, 1)])
    time.sleep(1)

    env = {**os.environ, "STREAMFLOW_BOOTSTRAP_SERVERS": args.bootstrap,
           "STREAMFLOW_COMMIT_INTERVAL_MS": "500"}
    app = subprocess.Popen([sys.executable, "-m", "streamflow", "run", "topologies.orders"],
                           cwd=ROOT, env=env)
    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 5})
    # from the beginning: the output topics may not exist yet (the app creates them), and a
    # consumer starting at "latest" of a topic created later misses its first results; the
    # results of earlier demo runs are told apart by their timestamps (an output keeps its
    # order's timestamp)
    since_ms = int(time.time() * 1000)
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"demo-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "topic.metadata.refresh.interval.ms": 1000})
    consumer.subscribe(["orders.large", "orders.small", "orders.enrich.dlq"])

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    rng = random.Random(7)
    n = 0
    started = time.monotonic()
    next_send = started
    seen = 0
    print("demo: producing orders; Ctrl-C to stop", flush=True)
    while not stopping and app.poll() is None:
        now = time.monotonic()
        if args.seconds and now - started > args.seconds:
            break
        while next_send <= now:
            key, value = _order(rng, n)
            producer.produce("orders", value, key.encode())
            n += 1
            next_send += 1.0 / args.rate
        producer.poll(0)
        seen += _show(consumer.consume(100, 0.2), since_ms)
    producer.flush(10)
    # the last orders are still on their way through the pipeline: wait for their results
    # until none has come for two seconds (at most 20 s)
    quiet_until = time.monotonic() + 2
    deadline = time.monotonic() + 20
    while not stopping and app.poll() is None and time.monotonic() < min(quiet_until, deadline):
        got = _show(consumer.consume(100, 0.2), since_ms)
        if got:
            seen += got
            quiet_until = time.monotonic() + 2
    consumer.close()
    if app.poll() is None:
        app.send_signal(signal.SIGTERM)
        app.wait(60)
    print(f"demo: produced {n} orders, saw {seen} results; streamflow exited with "
          f"{app.returncode}", flush=True)
    return 0 if app.returncode == 0 and seen > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
