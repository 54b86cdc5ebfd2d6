"""Per-record cost of windowed aggregations in the compiled plan, without a broker.

Compiles one task of a processor ``in (String key, Json value) -> group_by_key -> window ->
count -> final -> out`` with a memory store, and calls the task's entry directly with
pre-serialized records (so deserialization is included, as in production), flushing the
stores every ``--commit-every`` records as a commit would (serializing the dirty store entries;
the changelog produce is a no-op, counted in the ``changelog`` column). Outputs go to a no-op
emit after serialization. Each line gives wall-clock and CPU (process time) per record; on a
shared machine compare the CPU column.

    .venv/bin/python bench/windows_micro.py                # all scenarios
    .venv/bin/python bench/windows_micro.py --records 200000 --only tumbling,hopping

To compare with another commit, run that checkout's copy of this script (it imports the
streamflow beside it): ``.venv/bin/python /tmp/wt-before/bench/windows_micro.py``.

Scenarios (10k keys, event time advancing ~1 ms per record (``--ms-per-record``), 5 % of
records out of order by up to 2 s, grace 5 s): ``baseline`` (the same pipeline with a plain
``count()``, no window), ``tumbling`` (1 min), ``hopping`` (10 min advancing 1 min: 10
windows per record), ``sliding`` (1 min), ``session`` (gap 30 s), each with ``final()``;
``tumbling-updates`` emits every change; ``aggregate`` and ``tumbling-aggregate`` keep a dict
changed in place by the adder (``--on-error skip`` shows what the private copies cost).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

# the streamflow of this script's checkout, not the installed one (a worktree measures itself)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamflow as sf
from streamflow.plan.compile import TaskContext, compile_task
from streamflow.serde import SerdeContext
from streamflow.state.task_state import TaskState

Build = Callable[[Any], Any]

SCENARIOS: dict[str, tuple[Build, str]] = {
    "baseline": (lambda g: g.count().to_stream(), "plain count(), every update emitted"),
    "tumbling": (lambda g: g.window(sf.Tumbling(sf.minutes(1), grace=sf.seconds(5)))
                 .count().final(), "1 min, final"),
    "tumbling-updates": (lambda g: g.window(sf.Tumbling(sf.minutes(1), grace=sf.seconds(5)))
                         .count().updates(), "1 min, every update emitted"),
    "hopping": (lambda g: g.window(sf.Hopping(sf.minutes(10), sf.minutes(1),
                                              grace=sf.seconds(5))).count().final(),
                "10 min / 1 min (10 windows per record), final"),
    "sliding": (lambda g: g.window(sf.Sliding(sf.minutes(1), grace=sf.seconds(5)))
                .count().final(), "1 min, final"),
    "session": (lambda g: g.window(sf.Session(sf.seconds(30), grace=sf.seconds(5)))
                .count().final(), "gap 30 s, final"),
    "aggregate": (lambda g: g.aggregate(_zero, _add).to_stream(),
                  "plain aggregate() of a dict, every update emitted"),
    "tumbling-aggregate": (lambda g: g.window(sf.Tumbling(sf.minutes(1), grace=sf.seconds(5)))
                           .aggregate(_zero, _add).final(), "1 min, a dict, final"),
}
COUNTS = {"baseline", "tumbling", "tumbling-updates", "hopping", "sliding", "session"}


def _zero() -> dict[str, Any]:
    return {"n": 0, "sum": 0, "last": 0}


def _add(agg: dict[str, Any], v: dict[str, Any]) -> dict[str, Any]:
    agg["n"] += 1  # in place, as users write adders
    agg["sum"] += v["amount"]
    agg["last"] = v["n"]
    return agg


def make_records(n: int, keys: int, seed: int = 42, ms_per_record: int = 1
                 ) -> list[tuple[bytes, bytes, int]]:
    rng = random.Random(seed)
    out = []
    t = 1_700_000_000_000
    for i in range(n):
        t += rng.randint(0, 2 * ms_per_record)
        ts = t - rng.randint(0, 2000) if rng.random() < 0.05 else t
        user = f"u{rng.randrange(keys)}"
        out.append((user.encode(), orjson.dumps({"user": user, "amount": i % 100, "n": i}), ts))
    return out


def run(name: str, records: list[tuple[bytes, bytes, int]], commit_every: int,
        on_error: str = "fail") -> float:
    build, _ = SCENARIOS[name]
    t = sf.Topology("bench")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    windowed = name not in ("baseline", "aggregate")
    key = sf.TimeWindowedSerde(sf.String(), window_size=1) if windowed else sf.String()
    if name == "session":
        key = sf.SessionWindowedSerde(sf.String())
    out = t.topic("out", key=key, value=sf.Long() if name in COUNTS else sf.Json())
    p = t.processor("p", store="memory", on_processing_error=on_error)
    build(p.stream(src).group_by_key()).to(out)
    emitted = 0

    def emit(topic: str, k: Any, v: Any, ts: int, h: Any) -> None:
        nonlocal emitted
        emitted += 1

    with tempfile.TemporaryDirectory() as tmp:
        ctx0 = SerdeContext()
        state = TaskState(p.stores, 0, Path(tmp), "memory", ctx0)
        ctx = TaskContext("p", 0, emit, ctx0, state.stores)
        entry = compile_task(p, ctx).entries["in"]
        flushed = 0

        def changelog(*_: Any) -> None:
            nonlocal flushed
            flushed += 1

        started = time.perf_counter()
        cpu_started = time.process_time()
        for i, (kb, vb, ts) in enumerate(records, 1):
            entry(kb, vb, ts, None)
            if i % commit_every == 0:
                state.flush(changelog, {})
                state.write_pending()
        state.flush(changelog, {})
        state.write_pending()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    rate = len(records) / elapsed
    print(f"{name:17s} {rate:>11,.0f} rec/s  {elapsed / len(records) * 1e6:6.2f} us/rec  "
          f"{cpu / len(records) * 1e6:6.2f} us CPU/rec  "
          f"emitted {emitted:>8,}  changelog {flushed:>9,}  ({SCENARIOS[name][1]})")
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--commit-every", type=int, default=20_000,
                    help="records between store flushes (a commit interval)")
    ap.add_argument("--only", default=",".join(SCENARIOS))
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--on-error", default="fail", choices=("fail", "skip", "dead_letter"),
                    help="the processor's on_processing_error (a policy that goes on gives "
                         "aggregators a private copy of a mutable aggregate)")
    ap.add_argument("--ms-per-record", type=int, default=1,
                    help="average event-time step between records (60: sparse, as a catch-up "
                         "over an hour of 60k records)")
    args = ap.parse_args()
    records = make_records(args.records, args.keys, ms_per_record=args.ms_per_record)
    print(f"{args.records:,} records, {args.keys:,} keys, ~{args.ms_per_record} ms of event "
          f"time per record, flush every {args.commit_every:,}")
    for name in args.only.split(","):
        best = max(run(name, records, args.commit_every, args.on_error)
                   for _ in range(args.runs))
        if args.runs > 1:
            print(f"{name:17s} best {best:,.0f} rec/s")


if __name__ == "__main__":
    main()
