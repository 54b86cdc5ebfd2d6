"""Stream-table join, plain confluent-kafka loop: the ceiling, NOT durable.

Loads the whole table topic into a dict first (:meth:`bench.impls.raw_loop.RawLoop.load`),
then runs the shared raw loop over the payments: json decode -> dict lookup by key -> merge
(:func:`bench.scenarios.joins.enrich`) -> json encode -> produce. Nothing survives a restart,
table updates after the start are not seen, and the table is the whole topic in every process
(a global table, not a partitioned one): what enrichment costs when all of that is free.

Environment: BENCH_BOOTSTRAP, BENCH_INPUT, BENCH_INPUT_TABLE, BENCH_OUTPUT, BENCH_GROUP,
BENCH_BATCH (default 1000).
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

from bench.impls.raw_loop import RawLoop
from bench.scenarios.joins import enrich


def main() -> int:
    loop = RawLoop("raw_confluent")
    rows: dict[bytes, Any] = {}
    loads, dumps = orjson.loads, orjson.dumps
    loop.load("table", lambda msg: rows.__setitem__(msg.key(), loads(msg.value())))
    get = rows.get
    produce, dst = loop.producer.produce, loop.output

    def on_batch(msgs: list[Any]) -> None:
        for msg in msgs:
            if msg.error() is not None:
                loop.consume_error(msg)
                continue
            k = msg.key()
            row = get(k)
            if row is None:  # inner join
                continue
            out = dumps(enrich(loads(msg.value()), row))
            try:
                produce(dst, out, k)
            except BufferError:
                loop.produce_slow(out, k)

    return loop.run(on_batch)


if __name__ == "__main__":
    sys.exit(main())
