"""Windowed count + sum on Quix Streams (tumbling, hopping, sliding or session windows).

``sdf.<kind>_window(...).agg(count=Count(), sum=Sum("amount")).final()`` — Quix's own
aggregations, its default closing strategy ("key"), RocksDB window state with changelog topics
ON (its default; ``auto_create_topics`` stays on so it can create them). Output: Quix's final
window record ``{"count", "sum", "start", "end"}`` keyed by the message key (the user).

Environment: BENCH_WINDOW, BENCH_WINDOW_SIZE, BENCH_WINDOW_ADVANCE, BENCH_WINDOW_GRACE (ms),
BENCH_BOOTSTRAP, BENCH_INPUT, BENCH_OUTPUT, BENCH_GROUP, BENCH_STATE_DIR.
"""

from __future__ import annotations

import os

from quixstreams import Application
from quixstreams.dataframe.windows import Count, Sum


def main() -> None:
    kind = os.environ.get("BENCH_WINDOW", "tumbling")
    size = int(os.environ.get("BENCH_WINDOW_SIZE", "60000"))
    advance = int(os.environ.get("BENCH_WINDOW_ADVANCE", "0"))
    grace = int(os.environ.get("BENCH_WINDOW_GRACE", "0"))
    app = Application(
        broker_address=os.environ["BENCH_BOOTSTRAP"],
        consumer_group=os.environ["BENCH_GROUP"],
        auto_offset_reset="earliest",
        state_dir=os.environ.get("BENCH_STATE_DIR", "state"),
        loglevel=os.environ.get("BENCH_QUIX_LOGLEVEL", "WARNING"),
    )
    src = app.topic(os.environ["BENCH_INPUT"], key_deserializer="str", value_deserializer="json")
    out = app.topic(os.environ["BENCH_OUTPUT"], key_serializer="str", value_serializer="json")

    sdf = app.dataframe(src)
    if kind == "tumbling":
        w = sdf.tumbling_window(size, grace_ms=grace)
    elif kind == "hopping":
        w = sdf.hopping_window(size, advance, grace_ms=grace)
    elif kind == "sliding":
        w = sdf.sliding_window(size, grace_ms=grace)
    else:
        w = sdf.session_window(size, grace_ms=grace)
    sdf = w.agg(count=Count(), sum=Sum("amount")).final()
    sdf.to_topic(out)
    app.run()


if __name__ == "__main__":
    main()
