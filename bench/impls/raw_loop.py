"""The plain confluent-kafka loop the raw implementations share: the ceiling the frameworks are
measured against.

``consume(num_messages=N)``, a per-batch hook that does the scenario's work and calls
``produce()`` per output record, ``poll(0)`` per batch, a final flush on SIGTERM,
``fetch.queue.backoff.ms`` lowered (see below). Offsets are auto-committed (at-least-once-ish,
no delivery checks): what a careful hand-written loop costs, not a framework. A hook looks
like this (the error check and the ``BufferError`` retry stay inline: they cost nothing on the
hot path)::

    loop = RawLoop("raw_confluent")
    produce, dst = loop.producer.produce, loop.output

    def on_batch(msgs):
        for msg in msgs:
            if msg.error() is not None:
                loop.consume_error(msg)
                continue
            out = work(msg.value())
            try:
                produce(dst, out, msg.key())
            except BufferError:
                loop.produce_slow(out, msg.key())

    sys.exit(loop.run(on_batch))

Environment: BENCH_BOOTSTRAP, BENCH_INPUT, BENCH_OUTPUT, BENCH_GROUP, BENCH_BATCH (default 1000).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition


class RawLoop:
    """Consumer, producer and signal handling of one raw implementation process."""

    def __init__(self, name: str, extra_inputs: tuple[str, ...] = ()) -> None:
        """``extra_inputs``: sides of a join scenario's other topics (``BENCH_INPUT_<SIDE>``),
        subscribed together with ``BENCH_INPUT``; ``msg.topic()`` tells them apart."""
        self.name = name
        bootstrap = os.environ["BENCH_BOOTSTRAP"]
        self.input = os.environ["BENCH_INPUT"]
        self.inputs = [self.input, *(os.environ[f"BENCH_INPUT_{s.upper()}"] for s in extra_inputs)]
        self.output = os.environ["BENCH_OUTPUT"]
        self.batch = int(os.environ.get("BENCH_BATCH", "1000"))
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": os.environ["BENCH_GROUP"],
                "auto.offset.reset": "earliest",
                "enable.auto.commit": True,
                "enable.partition.eof": False,
                # librdkafka >= 2.4 waits fetch.queue.backoff.ms (default 1000 ms) before
                # fetching again once its prefetch queue is over queued.min.messages/kbytes; a
                # loop that drains faster than that idles for up to a second at a time (1M
                # records: 135k/s at the default, ~370k/s at 10 ms on the dev box).
                "fetch.queue.backoff.ms": 10,
            }
        )
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 5,
                "compression.type": "none",
                "queue.buffering.max.messages": 500_000,
            }
        )

    def load(self, side: str, on_record: Callable[[Any], None]) -> int:
        """Read the ``BENCH_INPUT_<SIDE>`` topic from the beginning to its current end (all
        partitions, no group) into ``on_record(msg)``, before the loop starts: how a hand-written
        enrichment loads its lookup table. Returns the number of records read."""
        topic = os.environ[f"BENCH_INPUT_{side.upper()}"]
        reader = Consumer({"bootstrap.servers": os.environ["BENCH_BOOTSTRAP"],
                           "group.id": f"{os.environ['BENCH_GROUP']}-load",
                           "enable.auto.commit": False, "enable.partition.eof": False})
        try:
            parts = reader.list_topics(topic, timeout=30).topics[topic].partitions
            ends = {p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                    for p in parts}
            reader.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0])
            left, n = sum(ends.values()), 0
            while left > 0:
                for msg in reader.consume(num_messages=self.batch, timeout=1.0):
                    if msg.error() is not None:
                        self.consume_error(msg)
                        continue
                    on_record(msg)
                    n += 1
                    left -= 1
            return n
        finally:
            reader.close()

    def produce_slow(self, value: bytes, key: bytes | None) -> None:
        """Produce after the producer's queue was full: serve deliveries, then retry once."""
        self.producer.poll(0.05)
        self.producer.produce(self.output, value, key)

    def consume_error(self, msg: Any) -> None:
        """Report an error the consumer returned in place of a record."""
        if msg.error().code() != KafkaError._PARTITION_EOF:
            print(f"{self.name}: consume error {msg.error()}", file=sys.stderr)

    def run(self, on_batch: Callable[[list[Any]], None]) -> int:
        """Feed every batch to ``on_batch`` until SIGTERM or SIGINT; flush and close."""
        running = True

        def stop(_signum: int, _frame: object) -> None:
            nonlocal running
            running = False

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        consume, poll = self.consumer.consume, self.producer.poll
        batch = self.batch
        self.consumer.subscribe(self.inputs)
        try:
            while running:
                on_batch(consume(num_messages=batch, timeout=0.5))
                poll(0)
        finally:
            self.producer.flush(30)
            self.consumer.close()
        return 0
