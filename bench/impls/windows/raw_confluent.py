"""Windowed count + sum, plain confluent-kafka loop with dicts: the ceiling, NOT durable.

Tumbling/hopping: per input partition, stream time (max timestamp seen) and the open windows
bucketed by end time (``end -> {key: [count, sum]}``) with a heap of ends; a bucket is emitted
when stream time reaches ``end + grace`` (streamflow's and Kafka Streams' rule). Sessions:
per partition, the open session per key and a heap of close times (``last + gap + grace``,
lazily invalidated); a record ``gap`` or more after a key's session starts a new one (the old
one is emitted at once: in-order data only, no merging). Nothing is durable (no changelog, no
local database): what windowing costs when durability is free. Same consumer/producer loop as
the other raw implementations (:mod:`bench.impls.raw_loop`). No sliding windows.

Environment: BENCH_WINDOW, BENCH_WINDOW_SIZE, BENCH_WINDOW_ADVANCE, BENCH_WINDOW_GRACE,
BENCH_BOOTSTRAP, BENCH_INPUT, BENCH_OUTPUT, BENCH_GROUP, BENCH_BATCH (default 1000).
"""

from __future__ import annotations

import heapq
import os
import sys
from typing import Any

import orjson

from bench.impls.raw_loop import RawLoop


def main() -> int:
    kind = os.environ.get("BENCH_WINDOW", "tumbling")
    size = int(os.environ.get("BENCH_WINDOW_SIZE", "60000"))
    advance = int(os.environ.get("BENCH_WINDOW_ADVANCE", "0")) or size
    grace = int(os.environ.get("BENCH_WINDOW_GRACE", "0"))
    if kind not in ("tumbling", "hopping", "session"):
        raise SystemExit(f"raw_confluent: no {kind} windows")
    loop = RawLoop("raw_confluent")
    dst = loop.output
    loads, dumps = orjson.loads, orjson.dumps
    produce = loop.producer.produce
    heappush, heappop = heapq.heappush, heapq.heappop

    def emit(key: bytes, start: int, end: int, count: int, total: int) -> None:
        out = dumps({"start": start, "end": end, "count": count, "sum": total})
        try:
            produce(dst, out, key)
        except BufferError:
            loop.produce_slow(out, key)

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

    def on_batch(msgs: list[Any]) -> None:
        for msg in msgs:
            if msg.error() is not None:
                loop.consume_error(msg)
                continue
            part = parts.get(msg.partition())
            if part is None:
                part = parts[msg.partition()] = [-(1 << 62), {}, []]
            step(part, msg.key(), msg.timestamp()[1], loads(msg.value())["amount"])

    return loop.run(on_batch)


if __name__ == "__main__":
    sys.exit(main())
