"""Count by key, plain confluent-kafka loop with a Python dict: the ceiling, NOT durable.

The counts live in a dict of this process only (no changelog, no local database, nothing
survives a restart): what counting costs when durability is free. Same loop as the other raw
implementations (:mod:`bench.impls.raw_loop`). The value is decoded (orjson), as the
frameworks do with their JSON value serde, although the count needs only the key.

Environment: BENCH_BOOTSTRAP, BENCH_INPUT, BENCH_OUTPUT, BENCH_GROUP, BENCH_BATCH (default 1000).
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

from bench.impls.raw_loop import RawLoop


def main() -> int:
    loop = RawLoop("raw_confluent")
    counts: dict[bytes, int] = {}
    get, loads = counts.get, orjson.loads
    produce, dst = loop.producer.produce, loop.output

    def on_batch(msgs: list[Any]) -> None:
        for msg in msgs:
            if msg.error() is not None:
                loop.consume_error(msg)
                continue
            loads(msg.value())
            k = msg.key()
            c = get(k, 0) + 1
            counts[k] = c
            out = str(c).encode()  # a JSON integer
            try:
                produce(dst, out, k)
            except BufferError:
                loop.produce_slow(out, k)

    return loop.run(on_batch)


if __name__ == "__main__":
    sys.exit(main())
