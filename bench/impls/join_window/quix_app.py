"""Stream-stream join on Quix Streams: ``join_interval`` (its windowed join).

Orders (left) and payments (right) both go to Quix's RocksDB store; a payment at ``t`` pairs
with the orders of its key in ``[t - 5 s, t]`` (``backward_ms=0, forward_ms=5000``), an order
with payments at its own timestamp. ``grace_ms`` (how long records stay in the store) is 6 s,
streamflow's retention for the same window. Quix reads the two topics in timestamp order when
a join is present. Quix's defaults otherwise: changelog topics ON, at-least-once, 5 s commits.

Environment: BENCH_BOOTSTRAP, BENCH_INPUT, BENCH_INPUT_RIGHT, BENCH_OUTPUT, BENCH_GROUP,
BENCH_STATE_DIR.
"""

from __future__ import annotations

import os

from quixstreams import Application

from bench.scenarios.joins import WINDOW_AFTER_MS, match


def main() -> None:
    app = Application(
        broker_address=os.environ["BENCH_BOOTSTRAP"],
        consumer_group=os.environ["BENCH_GROUP"],
        auto_offset_reset="earliest",
        state_dir=os.environ.get("BENCH_STATE_DIR", "state"),
        loglevel=os.environ.get("BENCH_QUIX_LOGLEVEL", "WARNING"),
    )
    orders = app.dataframe(app.topic(os.environ["BENCH_INPUT"], key_deserializer="str",
                                     value_deserializer="json"))
    payments = app.dataframe(app.topic(os.environ["BENCH_INPUT_RIGHT"], key_deserializer="str",
                                       value_deserializer="json"))
    out = app.topic(os.environ["BENCH_OUTPUT"], key_serializer="str", value_serializer="json")
    orders.join_interval(payments, how="inner", on_merge=match, grace_ms=WINDOW_AFTER_MS + 1000,
                         backward_ms=0, forward_ms=WINDOW_AFTER_MS).to_topic(out)
    app.run()


if __name__ == "__main__":
    main()
