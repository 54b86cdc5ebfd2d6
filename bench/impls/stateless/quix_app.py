"""Stateless scenario on Quix Streams (Application + StreamingDataFrame, its JSON serdes).

Run with bench/.venvs/quix/bin/python. Stops cleanly on SIGTERM (Application.run handles it).
Environment: BENCH_BOOTSTRAP, BENCH_INPUT, BENCH_OUTPUT, BENCH_GROUP, BENCH_STATE_DIR.
"""

from __future__ import annotations

import os

from quixstreams import Application


def main() -> None:
    app = Application(
        broker_address=os.environ["BENCH_BOOTSTRAP"],
        consumer_group=os.environ["BENCH_GROUP"],
        auto_offset_reset="earliest",
        state_dir=os.environ.get("BENCH_STATE_DIR", "state"),
        loglevel="WARNING",
        # Topics are created by the harness; don't let Quix create or reconfigure them.
        auto_create_topics=False,
        use_changelog_topics=False,
    )
    src = app.topic(os.environ["BENCH_INPUT"], key_deserializer="str", value_deserializer="json")
    out = app.topic(os.environ["BENCH_OUTPUT"], key_serializer="str", value_serializer="json")

    sdf = app.dataframe(src)
    sdf = sdf.filter(lambda v: v["amount"] > 10)
    sdf = sdf.apply(lambda v: {**v, "amount_cents": int(v["amount"] * 100)})
    sdf.to_topic(out)
    app.run()


if __name__ == "__main__":
    main()
