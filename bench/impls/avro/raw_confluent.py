"""Avro scenario, plain confluent-kafka loop with fastavro: the ceiling.

Consumes Confluent-framed Avro (magic byte, 4-byte schema id, Avro binary), decodes it with
``fastavro.schemaless_reader`` against the writer schema (fetched from the registry once per
schema id), adds ``amount_cents``, encodes with ``fastavro.schemaless_writer`` behind the
5-byte header of the output schema (registered once at start under ``<output>-value``) and
produces, in the shared raw loop (:mod:`bench.impls.raw_loop`).

Environment: BENCH_BOOTSTRAP, BENCH_INPUT, BENCH_OUTPUT, BENCH_GROUP,
BENCH_SCHEMA_REGISTRY_URL, BENCH_BATCH (default 1000).
"""

from __future__ import annotations

import json
import os
import struct
import sys
from io import BytesIO
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from bench.impls.avro.schemas import PAYMENT_CENTS
from bench.impls.raw_loop import RawLoop


def main() -> int:
    loop = RawLoop("raw avro")
    dst = loop.output
    registry = SchemaRegistryClient({"url": os.environ["BENCH_SCHEMA_REGISTRY_URL"]})

    out_id = registry.register_schema(f"{dst}-value", Schema(json.dumps(PAYMENT_CENTS), "AVRO"))
    header = struct.pack(">bI", 0, out_id)
    out_schema = fastavro.parse_schema(PAYMENT_CENTS)
    writers: dict[int, Any] = {}

    def writer_schema(schema_id: int) -> Any:
        parsed = fastavro.parse_schema(json.loads(registry.get_schema(schema_id).schema_str))
        writers[schema_id] = parsed
        return parsed

    read, write = fastavro.schemaless_reader, fastavro.schemaless_writer
    produce = loop.producer.produce

    def on_batch(msgs: list[Any]) -> None:
        for msg in msgs:
            if msg.error() is not None:
                loop.consume_error(msg)
                continue
            data = msg.value()
            magic, schema_id = struct.unpack_from(">bI", data)
            if magic != 0:
                print(f"raw avro: not Confluent Avro: {data[:8]!r}", file=sys.stderr)
                continue
            inp = BytesIO(data)
            inp.seek(5)
            v = read(inp, writers.get(schema_id) or writer_schema(schema_id), None)
            v["amount_cents"] = int(v["amount"] * 100)
            out = BytesIO()
            out.write(header)
            write(out, out_schema, v)
            try:
                produce(dst, out.getvalue(), msg.key())
            except BufferError:
                loop.produce_slow(out.getvalue(), msg.key())

    return loop.run(on_batch)


if __name__ == "__main__":
    sys.exit(main())
