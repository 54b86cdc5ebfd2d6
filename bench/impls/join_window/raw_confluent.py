"""Stream-stream join, plain confluent-kafka loop: the ceiling, NOT durable, NOT bounded.

Subscribes to both topics; each record is kept in a dict of its side (key -> [(ts, value)])
and paired with the other side's records of its key whose timestamps fall in the window
(payment 0..5 s after the order, :func:`bench.scenarios.joins.match`). Nothing is ever
expired (memory grows with the input), nothing survives a restart, and records are taken in
whatever order the consumer returns them, with no timestamp alignment: a real join needs all
three. What pairing costs when they are free.

Environment: BENCH_BOOTSTRAP, BENCH_INPUT, BENCH_INPUT_RIGHT, BENCH_OUTPUT, BENCH_GROUP,
BENCH_BATCH (default 1000).
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

from bench.impls.raw_loop import RawLoop
from bench.scenarios.joins import WINDOW_AFTER_MS, match


def main() -> int:
    loop = RawLoop("raw_confluent", extra_inputs=("right",))
    orders: dict[bytes, list[tuple[int, Any]]] = {}
    payments: dict[bytes, list[tuple[int, Any]]] = {}
    loads, dumps = orjson.loads, orjson.dumps
    produce, dst, left_topic = loop.producer.produce, loop.output, loop.input
    after = WINDOW_AFTER_MS

    def emit(out: bytes, k: bytes) -> None:
        try:
            produce(dst, out, k)
        except BufferError:
            loop.produce_slow(out, k)

    def on_batch(msgs: list[Any]) -> None:
        for msg in msgs:
            if msg.error() is not None:
                loop.consume_error(msg)
                continue
            k, v = msg.key(), loads(msg.value())
            ts = msg.timestamp()[1]
            if msg.topic() == left_topic:
                orders.setdefault(k, []).append((ts, v))
                for pts, pay in payments.get(k, ()):
                    if 0 <= pts - ts <= after:
                        emit(dumps(match(v, pay)), k)
            else:
                payments.setdefault(k, []).append((ts, v))
                for ots, order in orders.get(k, ()):
                    if 0 <= ts - ots <= after:
                        emit(dumps(match(order, v)), k)

    return loop.run(on_batch)


if __name__ == "__main__":
    sys.exit(main())
