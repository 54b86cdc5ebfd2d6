"""Async I/O scenario as a streamflow topology.

``BENCH_ASYNC_MODE``: ``async`` (default) awaits ``asyncio.sleep`` in ``map_async`` with
``BENCH_ASYNC_CONCURRENCY`` calls in flight (default 100); ``blocking`` calls ``time.sleep`` in a
plain ``map``. ``BENCH_IO_MS`` is the simulated call's latency (default 20).
"""

import asyncio
import os
import time

import streamflow as sf

IO_S = int(os.environ.get("BENCH_IO_MS", "20")) / 1000.0

topology = sf.Topology(os.environ.get("BENCH_APP", "bench"))
src = topology.topic(os.environ["BENCH_INPUT"], key=sf.String(), value=sf.Json(), external=True)
out = topology.topic(os.environ["BENCH_OUTPUT"], key=sf.String(), value=sf.Json())


async def lookup(v: dict) -> dict:
    await asyncio.sleep(IO_S)  # a service call
    return {**v, "looked_up": True}


def lookup_blocking(v: dict) -> dict:
    time.sleep(IO_S)
    return {**v, "looked_up": True}


stream = topology.processor("async_io").stream(src)
if os.environ.get("BENCH_ASYNC_MODE", "async") == "blocking":
    stream.map(lookup_blocking).to(out)
else:
    stream.map_async(lookup, concurrency=int(os.environ.get("BENCH_ASYNC_CONCURRENCY", "100"))
                     ).to(out)
