"""How much does streamflow's Avro serde cost over bare fastavro?

Measures, for the same records and schema (``schemas/payment.avsc`` by default):

- bare: ``BytesIO`` + ``fastavro.schemaless_writer`` + ``getvalue()``, then
  ``fastavro.schemaless_reader`` over the bytes (what any Avro code must do at least);
- serde: ``Avro(...).serializer(...)`` then ``.deserializer(...)`` — Confluent wire format,
  5-byte header, schema id lookup — with the in-memory ``mock://`` registry (the registry is
  only touched once, before timing).

Prints per-record times and the ratio serde / bare for write, read and the round trip.
Each figure is the best of ``--repeat`` interleaved runs (min is the least noisy
estimator for micro-benchmarks). Run from the repository root::

    .venv/bin/python bench/avro_serde_overhead.py [--records 20000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streamflow.kafka.registry import make_registry_client
from streamflow.serde.avro import Avro
from streamflow.serde.base import SerdeContext


def make_records(n: int) -> list[dict[str, Any]]:
    """Payment-like records (the default schema); vary values so nothing is cached."""
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return [
        {
            "id": f"pay-{i:08d}",
            "card_id": f"card-{i % 997:04d}",
            "amount": round(1 + (i * 7.31) % 500, 2),
            "currency": ("EUR", "USD", "GBP")[i % 3],
            "ts": base + dt.timedelta(milliseconds=i * 37),
        }
        for i in range(n)
    ]


def best(fns: list[Callable[[], None]], repeat: int) -> list[float]:
    """Best wall time of each of ``fns`` over ``repeat`` interleaved rounds.

    Interleaving (a, b, c, d, a, b, ...) keeps machine-load drift from favouring one side.
    """
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, acc in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    return [min(t) for t in times]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--schema", default="schemas/payment.avsc")
    args = ap.parse_args(argv)

    records = make_records(args.records)
    serde = Avro(args.schema)
    ctx = SerdeContext(registry_factory=lambda: make_registry_client({"url": "mock://bench"}))
    parsed = fastavro.parse_schema(serde.schema_dict(ctx))

    serialize = serde.serializer("bench", False, ctx)
    deserialize = serde.deserializer("bench", False, ctx)
    framed = [serialize(r) for r in records]
    deserialize(framed[0])  # fetch + cache the writer schema before timing

    writer, reader = fastavro.schemaless_writer, fastavro.schemaless_reader
    BytesIO = io.BytesIO

    def bare_write() -> None:
        for r in records:
            buf = BytesIO()
            writer(buf, parsed, r)
            buf.getvalue()

    raw = []
    for r in records:
        buf = BytesIO()
        writer(buf, parsed, r)
        raw.append(buf.getvalue())

    def bare_read() -> None:
        for b in raw:
            reader(BytesIO(b), parsed)

    def serde_write() -> None:
        for r in records:
            serialize(r)

    def serde_read() -> None:
        for b in framed:
            deserialize(b)

    assert all(
        deserialize(f) == reader(BytesIO(b), parsed)
        for f, b in zip(framed[:100], raw[:100], strict=True)
    )
    n = len(records)
    bw, sw, br, sr = best([bare_write, serde_write, bare_read, serde_read], args.repeat)
    us = 1e6 / n
    print(f"schema {args.schema}, {n} records, best of {args.repeat}")
    print(f"{'':10}{'bare fastavro':>16}{'streamflow Avro':>18}{'ratio':>8}")
    for label, b, s in (("write", bw, sw), ("read", br, sr), ("round trip", bw + br, sw + sr)):
        print(f"{label:10}{b * us:13.2f} µs{s * us:15.2f} µs{s / b:8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
