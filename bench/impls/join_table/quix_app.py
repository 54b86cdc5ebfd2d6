"""Stream-table join on Quix Streams: ``join_asof`` (its enrichment join).

The right side (the user rows) goes to Quix's timestamped RocksDB store; each payment takes
the latest row of its key stamped at or before it (inner). Quix reads the two topics in
timestamp order when a join is present, so the rows are stored before the payments arrive.
Quix's defaults otherwise: changelog topics ON (so ``auto_create_topics`` stays on for them),
at-least-once, 5 s commits.

Environment: BENCH_BOOTSTRAP, BENCH_INPUT, BENCH_INPUT_TABLE, BENCH_OUTPUT, BENCH_GROUP,
BENCH_STATE_DIR.
"""

from __future__ import annotations

import os

from quixstreams import Application

from bench.scenarios.joins import enrich


def main() -> None:
    app = Application(
        broker_address=os.environ["BENCH_BOOTSTRAP"],
        consumer_group=os.environ["BENCH_GROUP"],
        auto_offset_reset="earliest",
        state_dir=os.environ.get("BENCH_STATE_DIR", "state"),
        loglevel=os.environ.get("BENCH_QUIX_LOGLEVEL", "WARNING"),
    )
    payments = app.dataframe(app.topic(os.environ["BENCH_INPUT"], key_deserializer="str",
                                       value_deserializer="json"))
    users = app.dataframe(app.topic(os.environ["BENCH_INPUT_TABLE"], key_deserializer="str",
                                    value_deserializer="json"))
    out = app.topic(os.environ["BENCH_OUTPUT"], key_serializer="str", value_serializer="json")
    payments.join_asof(users, how="inner", on_merge=enrich).to_topic(out)
    app.run()


if __name__ == "__main__":
    main()
