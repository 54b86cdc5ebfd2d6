"""The exactly-once bench scenario on Quix Streams: ``group_by`` (a repartition topic) then a
stateful count per user, every update to the output topic (``bench/eos.py``).

Same data, same partitions and the same commit interval as the streamflow processor; the
guarantee is Quix's ``processing_guarantee`` ("at-least-once" or "exactly-once"). State is
Quix's default RocksDB with changelog topics.

Environment: BENCH_BOOTSTRAP, BENCH_INPUT, BENCH_OUTPUT, BENCH_GROUP, BENCH_STATE_DIR,
BENCH_GUARANTEE (streamflow's spelling: at_least_once / exactly_once), BENCH_COMMIT_INTERVAL_S.
"""

from __future__ import annotations

import os

from quixstreams import Application

from bench.impls.count_by_key.quix_app import count


def main() -> None:
    app = Application(
        broker_address=os.environ["BENCH_BOOTSTRAP"],
        consumer_group=os.environ["BENCH_GROUP"],
        auto_offset_reset="earliest",
        state_dir=os.environ.get("BENCH_STATE_DIR", "state"),
        loglevel="WARNING",
        processing_guarantee=os.environ["BENCH_GUARANTEE"].replace("_", "-"),  # type: ignore[arg-type]
        commit_interval=float(os.environ["BENCH_COMMIT_INTERVAL_S"]),
    )
    src = app.topic(os.environ["BENCH_INPUT"], key_deserializer="str", value_deserializer="json")
    out = app.topic(os.environ["BENCH_OUTPUT"], key_serializer="str", value_serializer="json")
    sdf = app.dataframe(src)
    sdf = sdf.group_by(lambda v: v["user"], name="by-user")
    sdf = sdf.apply(count, stateful=True)
    sdf.to_topic(out)
    app.run()


if __name__ == "__main__":
    main()
