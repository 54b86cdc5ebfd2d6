"""Stateless scenario on Faust (faust-streaming): one agent, its JSON codec (orjson-backed).

Run with ``bench/.venvs/faust/bin/python bench/impls/stateless/faust_app.py worker -l warn``.
The web server is disabled (no port needed); the leader-assignor topic is disabled so the
app only touches the harness's topics. Stops on SIGTERM (mode's worker handles it).
Environment: BENCH_BOOTSTRAP, BENCH_INPUT, BENCH_OUTPUT, BENCH_GROUP, BENCH_STATE_DIR,
BENCH_PARTITIONS.
"""

from __future__ import annotations

import os

import faust

app = faust.App(
    os.environ["BENCH_GROUP"],
    broker=f"kafka://{os.environ['BENCH_BOOTSTRAP']}",
    key_serializer="raw",
    value_serializer="json",
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
    topic_disable_leader=True,
    topic_partitions=int(os.environ.get("BENCH_PARTITIONS", "12")),
    datadir=os.environ.get("BENCH_STATE_DIR", "faust-data"),
    # librdkafka (raw, streamflow, quix) lingers 5 ms and batches up to 1 MB by default;
    # aiokafka's defaults are 0 ms and 16 KB.
    producer_linger=float(os.environ.get("BENCH_FAUST_LINGER", "0.005")),
    producer_max_batch_size=int(os.environ.get("BENCH_FAUST_BATCH", "1000000")),
)

src = app.topic(os.environ["BENCH_INPUT"], key_serializer="raw", value_serializer="json")
out = app.topic(os.environ["BENCH_OUTPUT"], key_serializer="raw", value_serializer="json")


@app.agent(src)
async def stateless(stream):  # type: ignore[no-untyped-def]
    async for key, v in stream.items():
        if v["amount"] > 10:
            await out.send(key=key, value={**v, "amount_cents": int(v["amount"] * 100)})


if __name__ == "__main__":
    app.main()
