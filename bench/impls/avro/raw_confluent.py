"""Avro scenario, plain confluent-kafka loop with fastavro: the ceiling.

Consumes Confluent-framed Avro (magic byte, 4-byte schema id, Avro binary), decodes it with
``fastavro.schemaless_reader`` against the writer schema (fetched from the registry once per
schema id), adds ``amount_cents``, encodes with ``fastavro.schemaless_writer`` behind the
5-byte header of the output schema (registered once at start under ``<output>-value``) and
produces. Batches as in the stateless raw loop: ``consume(num_messages=N)``, ``produce()``
per record, ``poll(0)`` per batch, auto-commit, ``fetch.queue.backoff.ms`` 10, a final flush
on SIGTERM.

Environment: BENCH_BOOTSTRAP, BENCH_INPUT, BENCH_OUTPUT, BENCH_GROUP,
BENCH_SCHEMA_REGISTRY_URL, BENCH_BATCH (default 1000).
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
from io import BytesIO
from typing import Any

import fastavro
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from bench.impls.avro.schemas import PAYMENT_CENTS


def main() -> int:
    bootstrap = os.environ["BENCH_BOOTSTRAP"]
    src = os.environ["BENCH_INPUT"]
    dst = os.environ["BENCH_OUTPUT"]
    batch = int(os.environ.get("BENCH_BATCH", "1000"))
    registry = SchemaRegistryClient({"url": os.environ["BENCH_SCHEMA_REGISTRY_URL"]})

    out_id = registry.register_schema(f"{dst}-value", Schema(json.dumps(PAYMENT_CENTS), "AVRO"))
    header = struct.pack(">bI", 0, out_id)
    out_schema = fastavro.parse_schema(PAYMENT_CENTS)
    writers: dict[int, Any] = {}

    def writer_schema(schema_id: int) -> Any:
        parsed = fastavro.parse_schema(json.loads(registry.get_schema(schema_id).schema_str))
        writers[schema_id] = parsed
        return parsed

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": os.environ["BENCH_GROUP"],
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "enable.partition.eof": False,
            # as the stateless raw loop: don't idle up to 1 s once the prefetch queue is full
            "fetch.queue.backoff.ms": 10,
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 5,
            "compression.type": "none",
            "queue.buffering.max.messages": 500_000,
        }
    )

    running = True

    def stop(_signum: int, _frame: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    read, write = fastavro.schemaless_reader, fastavro.schemaless_writer
    produce, poll = producer.produce, producer.poll
    consumer.subscribe([src])
    try:
        while running:
            msgs = consumer.consume(num_messages=batch, timeout=0.5)
            for msg in msgs:
                if msg.error() is not None:
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        print(f"raw avro: consume error {msg.error()}", file=sys.stderr)
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
                    poll(0.05)
                    produce(dst, out.getvalue(), msg.key())
            poll(0)
    finally:
        producer.flush(30)
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
