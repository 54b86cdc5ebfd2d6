"""Count by key, plain confluent-kafka loop with a Python dict: the ceiling, NOT durable.

The counts live in a dict of this process only (no changelog, no local database, nothing
survives a restart): what counting costs when durability is free. Same loop as the stateless
raw implementation (``consume(num_messages=N)``, ``produce()`` per record, ``poll(0)`` per
batch, auto-commit, ``fetch.queue.backoff.ms=10``). The value is decoded (orjson), as the
frameworks do with their JSON value serde, although the count needs only the key.

Environment: BENCH_BOOTSTRAP, BENCH_INPUT, BENCH_OUTPUT, BENCH_GROUP, BENCH_BATCH (default 1000).
"""

from __future__ import annotations

import os
import signal
import sys

import orjson
from confluent_kafka import Consumer, KafkaError, Producer


def main() -> int:
    bootstrap = os.environ["BENCH_BOOTSTRAP"]
    src = os.environ["BENCH_INPUT"]
    dst = os.environ["BENCH_OUTPUT"]
    batch = int(os.environ.get("BENCH_BATCH", "1000"))
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": os.environ["BENCH_GROUP"],
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "enable.partition.eof": False,
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

    counts: dict[bytes, int] = {}
    get, loads = counts.get, orjson.loads
    produce, poll = producer.produce, producer.poll
    consumer.subscribe([src])
    try:
        while running:
            for msg in consumer.consume(num_messages=batch, timeout=0.5):
                if msg.error() is not None:
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        print(f"raw_confluent: consume error {msg.error()}", file=sys.stderr)
                    continue
                loads(msg.value())
                k = msg.key()
                c = get(k, 0) + 1
                counts[k] = c
                out = str(c).encode()  # a JSON integer
                try:
                    produce(dst, out, k)
                except BufferError:
                    poll(0.05)
                    produce(dst, out, k)
            poll(0)
    finally:
        producer.flush(30)
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
