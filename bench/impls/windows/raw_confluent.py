"""Windowed count + sum, plain confluent-kafka loop with dicts: the ceiling, NOT durable.

Tumbling/hopping: per input partition, stream time (max timestamp seen) and the open windows
bucketed by end time (``end -> {key: [count, sum]}``) with a heap of ends; a bucket is emitted
when stream time reaches ``end + grace`` (streamflow's and Kafka Streams' rule). Sessions:
per partition, the open session per key and a heap of close times (``last + gap + grace``,
lazily invalidated); a record ``gap`` or more after a key's session starts a new one (the old
one is emitted at once: in-order data only, no merging). Nothing is durable (no changelog, no
local database): what windowing costs when durability is free. Same consumer/producer loop as
the other raw implementations. No sliding windows.

Environment: BENCH_WINDOW, BENCH_WINDOW_SIZE, BENCH_WINDOW_ADVANCE, BENCH_WINDOW_GRACE,
BENCH_BOOTSTRAP, BENCH_INPUT, BENCH_OUTPUT, BENCH_GROUP, BENCH_BATCH (default 1000).
"""

from __future__ import annotations

import heapq
import os
import signal
import sys

import orjson
from confluent_kafka import Consumer, KafkaError, Producer


def main() -> int:
    kind = os.environ.get("BENCH_WINDOW", "tumbling")
    size = int(os.environ.get("BENCH_WINDOW_SIZE", "60000"))
    advance = int(os.environ.get("BENCH_WINDOW_ADVANCE", "0")) or size
    grace = int(os.environ.get("BENCH_WINDOW_GRACE", "0"))
    if kind not in ("tumbling", "hopping", "session"):
        raise SystemExit(f"raw_confluent: no {kind} windows")
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

    loads, dumps = orjson.loads, orjson.dumps
    produce, poll = producer.produce, producer.poll
    heappush, heappop = heapq.heappush, heapq.heappop

    def emit(key: bytes, start: int, end: int, count: int, total: int) -> None:
        out = dumps({"start": start, "end": end, "count": count, "sum": total})
        try:
            produce(dst, out, key)
        except BufferError:
            poll(0.05)
            produce(dst, out, key)

    # per partition: [stream_time, buckets or sessions, heap]
    parts: dict[int, list] = {}

    def time_window(p: list, key: bytes, ts: int, amount: int) -> None:
        if ts > p[0]:
            p[0] = ts
        st = p[0]
        buckets, heap = p[1], p[2]
        start = ts - ts % advance
        while start > ts - size:
            end = start + size
            if end + grace > st:  # else: late for this window
                b = buckets.get(end)
                if b is None:
                    b = buckets[end] = {}
                    heappush(heap, end)
                c = b.get(key)
                if c is None:
                    b[key] = [1, amount]
                else:
                    c[0] += 1
                    c[1] += amount
            start -= advance
        while heap and heap[0] + grace <= st:
            end = heappop(heap)
            for k, (count, total) in buckets.pop(end).items():
                emit(k, end - size, end, count, total)

    def session_window(p: list, key: bytes, ts: int, amount: int) -> None:
        if ts > p[0]:
            p[0] = ts
        st = p[0]
        sessions, heap = p[1], p[2]
        s = sessions.get(key)
        if s is not None and ts - s[1] < size:
            s[1] = ts
            s[2] += 1
            s[3] += amount
            heappush(heap, (ts + size + grace, key, ts))
        else:
            if s is not None:
                emit(key, s[0], s[1], s[2], s[3])
            sessions[key] = [ts, ts, 1, amount]
            heappush(heap, (ts + size + grace, key, ts))
        while heap and heap[0][0] <= st:
            _, k, last = heappop(heap)
            s = sessions.get(k)
            if s is not None and s[1] == last:
                del sessions[k]
                emit(k, s[0], s[1], s[2], s[3])

    step = session_window if kind == "session" else time_window
    consumer.subscribe([src])
    try:
        while running:
            for msg in consumer.consume(num_messages=batch, timeout=0.5):
                if msg.error() is not None:
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        print(f"raw_confluent: consume error {msg.error()}", file=sys.stderr)
                    continue
                part = parts.get(msg.partition())
                if part is None:
                    part = parts[msg.partition()] = [-(1 << 62), {}, []]
                step(part, msg.key(), msg.timestamp()[1], loads(msg.value())["amount"])
            poll(0)
    finally:
        producer.flush(30)
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
