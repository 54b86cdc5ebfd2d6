"""Async I/O steps on a real broker: an exactly-once processor with ``map_async`` is killed with
SIGKILL while calls are in flight, restarted, and every input comes out exactly once
(read_committed): no in-flight record is lost and none is written twice."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.kafka_helpers import (
    StreamflowProcess,
    produce,
    read_all,
    wait_for,
    write_module,
)

pytestmark = pytest.mark.integration

MODULE = """
import asyncio
import os
import streamflow as sf

topology = sf.Topology(os.environ["T_APP"])
src = topology.topic(os.environ["T_IN"], key=sf.String(), value=sf.Json(), external=True)
out = topology.topic(os.environ["T_OUT"], key=sf.String(), value=sf.Json())


async def lookup(v):
    await asyncio.sleep(0.02)  # a simulated 20 ms service call
    return {**v, "looked_up": True}


(topology.processor("enrich", guarantee="exactly_once").stream(src)
 .map_async(lookup, concurrency=20, timeout=5.0, name="lookup").to(out))
"""

TOTAL = 6000  # at 20 calls of 20 ms at a time: about 6 s of work, killed after about 1.5 s


def test_async_step_under_exactly_once_survives_sigkill_without_loss_or_duplicates(
        tmp_path: Path, kafka_bootstrap: str, new_topic: Any) -> None:
    name = write_module(tmp_path, "async_topology", MODULE)
    env = {"T_APP": f"async-{uuid.uuid4().hex[:8]}", "T_IN": new_topic(partitions=4),
           "T_OUT": new_topic(partitions=4), "STREAMFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "STREAMFLOW_STATE_DIR": str(tmp_path / "state"), "STREAMFLOW_BATCH_SIZE": "200"}
    produce(kafka_bootstrap, env["T_IN"],
            [(f"r{i}".encode(), orjson.dumps({"n": i})) for i in range(TOTAL)])

    first = StreamflowProcess(["run", name], tmp_path, env, tmp_path / "first.log")
    try:
        wait_for("the first worker joins its group",
                 lambda: "assigned" in first.output() or first.poll() is not None, 60)
        assert first.poll() is None, first.tail()
        # some results committed: the worker is mid-stream, with calls in flight
        done = read_all(kafka_bootstrap, env["T_OUT"], expect=1500, timeout=60, settle=0)
        assert len(done) >= 1500, first.tail()
    finally:
        first.kill()
    at_kill = len(read_all(kafka_bootstrap, env["T_OUT"], expect=0, timeout=10, settle=1))
    assert at_kill < TOTAL, "the run finished before the kill; slow the lookup down"

    second = StreamflowProcess(["run", name], tmp_path, env, tmp_path / "second.log")
    try:
        outputs = read_all(kafka_bootstrap, env["T_OUT"], expect=TOTAL, timeout=60, settle=2)
    finally:
        assert second.terminate() == 0, second.tail()
    seen = Counter(orjson.loads(m.value())["n"] for m in outputs)
    missing = set(range(TOTAL)) - set(seen)
    dupes = {n: c for n, c in seen.items() if c > 1}
    print(f"killed with {at_kill} of {TOTAL} committed; after the restart {len(outputs)} "
          f"outputs, {len(missing)} missing, {len(dupes)} duplicated")
    assert not missing, f"lost {len(missing)} inputs"
    assert not dupes, f"{len(dupes)} inputs written more than once"
    assert all(orjson.loads(m.value())["looked_up"] for m in outputs)
    assert "Traceback" not in second.output(), second.tail()
