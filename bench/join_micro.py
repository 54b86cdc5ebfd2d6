"""CPU per record of a join task, in process (no broker).

Feeds batches of consumed records (timestamps increasing) straight to one task's
``TaskManager.process``, as the worker loop does, and reports records/s of CPU time.

``--kind table`` (the default): a stream-table left join, 1 table row per ``--ratio``
readings. ``--kind stream``: a windowed stream-stream left join (``JoinWindows(10 s)``) of
two topics taking turns, 4,999 keys, one record per millisecond, so each record meets about
one record of the other side (the key's previous one) and nearly every record comes out
joined once. Run it against two trees to compare, e.g. before and after time-aligned tasks::

    PYTHONPATH=. .venv/bin/python bench/join_micro.py --records 300000
    PYTHONPATH=. .venv/bin/python bench/join_micro.py --kind stream --records 300000
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import orjson

import streamflow as sf
from streamflow.testing import TopologyTestDriver
from streamflow.testing.memory import Message, _Rec

STREAM_KEYS = 4_999  # odd: a key's records alternate between the two topics


def _topology(kind: str) -> sf.Topology:
    if kind == "stream":
        t = sf.Topology("sjm")
        for name in ("impressions", "clicks"):
            t.topic(name, key=sf.String(), value=sf.Json(), external=True)
        t.topic("out", key=sf.String(), value=sf.Json())
        p = t.processor("enrich")
        (p.stream("impressions")
            .left_join(p.stream("clicks"), lambda i, c: {**i, "clicked": c is not None},
                       window=sf.JoinWindows(10_000), name="pairs")
            .to("out"))
        return t
    t = sf.Topology("jm")
    t.topic("readings", key=sf.String(), value=sf.Json(), external=True)
    t.topic("devices", key=sf.String(), value=sf.Json(), external=True)
    t.topic("out", key=sf.String(), value=sf.Json())
    (t.processor("enrich").stream("readings")
        .left_join(t.table("devices"), lambda r, d: {**r, "room": d and d["room"]})
        .to("out"))
    return t


def _batches(kind: str, records: int, ratio: int, batch: int) -> list[list[Any]]:
    msgs: list[Any] = []
    first, then = ("impressions", "clicks") if kind == "stream" else ("devices", "readings")
    offsets = {first: 0, then: 0}
    for i in range(records):
        if kind == "stream":
            topic = first if i % 2 == 0 else then
            key = f"u{i % STREAM_KEYS}".encode()
            value = orjson.dumps({"n": i})
        else:
            topic = first if i % ratio == 0 else then
            key = f"d{i % 500}".encode()
            value = orjson.dumps({"room": f"r{i}"} if topic == first else {"n": i})
        msgs.append(Message(_Rec(topic, 0, offsets[topic], key, value, 1_000 + i, None)))
        offsets[topic] += 1
    # as a consumer hands them out: a run of one partition, then of the other
    out = []
    for start in range(0, records, batch):
        chunk = msgs[start:start + batch]
        out.append([m for m in chunk if m.topic() == first]
                   + [m for m in chunk if m.topic() == then])
    return out


def run(kind: str, records: int, ratio: int, batch: int) -> float:
    """Records per CPU second for one pass."""
    with TopologyTestDriver(_topology(kind), config={"store": "memory"}) as d:
        engine = d.engines["enrich"][0]
        tasks = engine.tasks
        if getattr(tasks, "aligner", None) is not None:  # nothing to wait for: no lag
            tasks.aligner.consumer = None
            tasks.aligner.max_idle_ms = -1
        batches = _batches(kind, records, ratio, batch)
        started = time.process_time()
        for msgs in batches:
            tasks.process(msgs, engine.policy, print)
        spent = time.process_time() - started
        engine.collector.producer.flush(0)
    return records / spent


def main() -> None:
    """Parse the options, run the passes, print the median."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kind", choices=["table", "stream"], default="table",
                    help="a stream-table or a windowed stream-stream join")
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--ratio", type=int, default=50, help="readings per table row")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    rates = [run(args.kind, args.records, args.ratio, args.batch) for _ in range(args.runs)]
    print(f"{args.kind} join task: median {statistics.median(rates):,.0f} records/CPU-s "
          f"({', '.join(f'{r:,.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
