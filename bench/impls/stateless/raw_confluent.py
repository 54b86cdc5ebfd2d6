"""Stateless scenario, plain confluent-kafka loop: the ceiling the frameworks are measured against.

json decode -> keep amount > 10 -> add amount_cents -> json encode -> produce, in the shared
raw loop (:mod:`bench.impls.raw_loop`: batches, auto-commit, a final flush on SIGTERM).

Environment: BENCH_BOOTSTRAP, BENCH_INPUT, BENCH_OUTPUT, BENCH_GROUP, BENCH_BATCH (default 1000).
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

from bench.impls.raw_loop import RawLoop


def main() -> int:
    loop = RawLoop("raw_confluent")
    loads, dumps = orjson.loads, orjson.dumps
    produce, dst = loop.producer.produce, loop.output

    def on_batch(msgs: list[Any]) -> None:
        for msg in msgs:
            if msg.error() is not None:
                loop.consume_error(msg)
                continue
            v = loads(msg.value())
            if v["amount"] > 10:
                v["amount_cents"] = int(v["amount"] * 100)
                try:
                    produce(dst, dumps(v), msg.key())
                except BufferError:
                    loop.produce_slow(dumps(v), msg.key())

    return loop.run(on_batch)


if __name__ == "__main__":
    sys.exit(main())
