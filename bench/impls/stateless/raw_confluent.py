"""Stateless scenario, plain confluent-kafka loop: the ceiling the frameworks are measured against.

json decode -> keep amount > 10 -> add amount_cents -> json encode -> produce, in batches:
``consume(num_messages=N)``, orjson, ``produce()`` per record, ``poll(0)`` per batch, a final
flush on SIGTERM, ``fetch.queue.backoff.ms`` lowered (see below). Offsets are auto-committed
(at-least-once-ish, no delivery checks): what a careful hand-written loop costs, not a framework.

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
            # librdkafka >= 2.4 waits fetch.queue.backoff.ms (default 1000 ms) before fetching
            # again once its prefetch queue is over queued.min.messages/kbytes; a loop that
            # drains faster than that idles for up to a second at a time (1M records: 135k/s
            # at the default, ~370k/s at 10 ms on the dev box).
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

    loads, dumps = orjson.loads, orjson.dumps
    produce, poll = producer.produce, producer.poll
    consumer.subscribe([src])
    try:
        while running:
            msgs = consumer.consume(num_messages=batch, timeout=0.5)
            for msg in msgs:
                if msg.error() is not None:
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        print(f"raw_confluent: consume error {msg.error()}", file=sys.stderr)
                    continue
                v = loads(msg.value())
                if v["amount"] > 10:
                    v["amount_cents"] = int(v["amount"] * 100)
                    try:
                        produce(dst, dumps(v), msg.key())
                    except BufferError:
                        poll(0.05)
                        produce(dst, dumps(v), msg.key())
            poll(0)
    finally:
        producer.flush(30)
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
