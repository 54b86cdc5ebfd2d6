"""The loop's own cost per record, without a broker: metrics on, off, and the code before them.

Drives one ``Engine`` (the worker's task engine) over stub clients: batches of 1000 prepared
messages through a stateless topology (JSON in, filter, map, JSON out, like the ``stateless``
bench scenario) and a count-by-key topology (in-memory store), with a producer whose
``produce`` does nothing. What is left is the per-record Python work of the engine: the entry
(deserialize, steps, serialize), ``TaskManager.process`` and the collector's emitter, plus the
per-batch accounting. Run it from a checkout (``PYTHONPATH=<checkout>``) to compare commits::

    PYTHONPATH=. .venv/bin/python bench/metrics_micro.py                  # on and off
    PYTHONPATH=/path/to/before .venv/bin/python bench/metrics_micro.py    # before (no switch)

Prints, per topology and mode, the best of ``--repeat`` timings (CPU time of this process)
in µs per record.

Timings on a shared 2-core VM scatter by more than the few per cent asked about, so
``bench/metrics_instructions.sh`` runs this script under valgrind's callgrind instead and
counts instructions, which do not depend on other load: ``--kinds``, ``--rounds 1`` and
``--repeat 1`` make one measured pass, and mode ``none`` only prepares the data (its count is
subtracted).
"""

from __future__ import annotations

import argparse
import gc
import inspect
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

import streamflow as sf
from streamflow.runtime.engine import Engine
from streamflow.runtime.ports import Ports
from streamflow.serde import SerdeContext


class Msg:
    __slots__ = ("_k", "_off", "_part", "_ts", "_v")

    def __init__(self, part: int, off: int, k: bytes, v: bytes, ts: int) -> None:
        self._part, self._off, self._k, self._v, self._ts = part, off, k, v, ts

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return "in"

    def partition(self) -> int:
        return self._part

    def offset(self) -> int:
        return self._off

    def key(self) -> bytes:
        return self._k

    def value(self) -> bytes:
        return self._v

    def timestamp(self) -> tuple[int, int]:
        return (1, self._ts)

    def headers(self) -> None:
        return None


class NullProducer:
    def produce(self, *args: Any, **kwargs: Any) -> None:
        return None

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


class NullConsumer:
    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        return None

    def committed(self, parts: list[tuple[str, int]], timeout: float) -> dict[Any, int]:
        return {p: -1001 for p in parts}

    def pause(self, parts: list[tuple[str, int]]) -> None:
        return None

    def resume(self, parts: list[tuple[str, int]]) -> None:
        return None

    def close(self) -> None:
        return None


class NullAdmin:
    def end_offsets(self, parts: list[tuple[str, int]], timeout: float = 10.0
                    ) -> dict[tuple[str, int], int]:
        return dict.fromkeys(parts, 0)


class NullChangelogs:
    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        return (0, 0)

    def read(self, topic: str, partition: int, start: int) -> Any:  # before the restore change
        return iter(())

    def add(self, topic: str, partition: int, start: int) -> None:
        return None

    def remove(self, pairs: list[tuple[str, int]]) -> None:
        return None

    def consume(self, num_messages: int, timeout: float) -> tuple[list[Any], list[Any]]:
        return [], []

    def close(self) -> None:
        return None


def topology(kind: str) -> sf.Topology:
    t = sf.Topology(f"micro-{kind}")
    src = t.topic("in", key=sf.String(), value=sf.Json(), partitions=4, external=True)
    if kind == "stateless":
        out = t.topic("out", key=sf.String(), value=sf.Json(), partitions=4)
        (t.processor("p", store="memory").stream(src).filter(lambda v: v["amount"] > 10)
         .map(lambda v: {**v, "fee": v["amount"] * 0.01}).to(out))
    else:
        out = t.topic("out", key=sf.String(), value=sf.Long(), partitions=4)
        (t.processor("p", store="memory").stream(src).group_by_key().count(name="n")
         .to_stream().to(out))
    return t


def batches(n: int, size: int = 1000) -> list[list[Msg]]:
    now = int(time.time() * 1000)
    msgs = [Msg(i % 4, i // 4, f"u{i % 10_000}".encode(),
                orjson.dumps({"id": i, "user": f"u{i % 10_000}", "amount": i % 100,
                              "note": "x" * 120}), now) for i in range(n)]
    msgs.sort(key=lambda m: m.partition())  # consumed batches come in partition runs
    return [msgs[i:i + size] for i in range(0, n, size)]


def measure(kind: str, mode: str, records: int, repeat: int) -> float:
    t = topology(kind)
    processor = t.processors["p"]
    ports = Ports(consumer=NullConsumer, producer=lambda cb: NullProducer(),  # type: ignore[arg-type,return-value]
                  admin=NullAdmin(), changelogs=NullChangelogs())  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    if "metrics" in inspect.signature(Engine).parameters:
        kwargs["metrics"] = mode == "on"
    elif mode != "before":
        raise SystemExit("this checkout has no metrics switch: use mode 'before'")
    best = float("inf")
    data = batches(records)
    if mode == "none":  # the data only: the baseline of an instruction count
        return 0.0
    with tempfile.TemporaryDirectory() as d:
        for _ in range(repeat):
            e = Engine(processor, ports, serde_ctx=SerdeContext(), state_dir=Path(d), **kwargs)
            e.start()
            e.on_assign([("in", p) for p in range(4)])
            while getattr(e, "restoring", False):  # empty changelogs: restored at once
                e.restore()
            if gc.isenabled():
                gc.collect()
            started = time.process_time()  # CPU time: other work on the machine matters less
            for b in data:
                e.process(b)
            best = min(best, time.process_time() - started)
            e.tasks.close(checkpoint=False)
    return best / records * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--modes", default="")
    ap.add_argument("--kinds", default="stateless,count_by_key")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the modes")
    ap.add_argument("--no-gc", action="store_true",
                    help="disable the cycle collector (instruction counts: a collection more "
                         "or less in one run would outweigh the metrics)")
    args = ap.parse_args()
    has_switch = "metrics" in inspect.signature(Engine).parameters
    modes = args.modes.split(",") if args.modes else (["off", "on"] if has_switch
                                                       else ["before"])
    gc.set_threshold(50_000, 20, 100)  # as the worker sets it
    if args.no_gc:
        gc.disable()
    for kind in args.kinds.split(","):
        for mode in modes * args.rounds:  # interleaved
            us = measure(kind, mode, args.records, args.repeat)
            print(f"{kind:13} {mode:7} {us:6.3f} µs/record", flush=True)


if __name__ == "__main__":
    main()
