"""Count by key on Quix Streams: a stateful ``apply`` (state keyed by the message key).

State: Quix's defaults — RocksDB (rocksdict) with changelog topics ON (its default), so Quix
creates its changelog topic (``changelog__<group>--<input>--default``; the harness deletes it
afterwards) and at-least-once with its 5 s commit interval. ``auto_create_topics`` stays on
(the default) because Quix must create that changelog topic; input and output already exist.
Every update is sent (``to_topic`` after the apply), like ``Table.to_stream()``.

Environment: BENCH_BOOTSTRAP, BENCH_INPUT, BENCH_OUTPUT, BENCH_GROUP, BENCH_STATE_DIR,
BENCH_QUIX_CHANGELOG=0 to turn the changelog off (for comparison only).
"""

from __future__ import annotations

import os

from quixstreams import Application, State


def count(_value: dict, state: State) -> int:
    n = state.get("count", 0) + 1
    state.set("count", n)
    return n


def main() -> None:
    app = Application(
        broker_address=os.environ["BENCH_BOOTSTRAP"],
        consumer_group=os.environ["BENCH_GROUP"],
        auto_offset_reset="earliest",
        state_dir=os.environ.get("BENCH_STATE_DIR", "state"),
        loglevel=os.environ.get("BENCH_QUIX_LOGLEVEL", "WARNING"),
        use_changelog_topics=os.environ.get("BENCH_QUIX_CHANGELOG", "1") != "0",
    )
    src = app.topic(os.environ["BENCH_INPUT"], key_deserializer="str", value_deserializer="json")
    out = app.topic(os.environ["BENCH_OUTPUT"], key_serializer="str", value_serializer="json")

    sdf = app.dataframe(src)
    sdf = sdf.apply(count, stateful=True)
    sdf.to_topic(out)
    app.run()


if __name__ == "__main__":
    main()
