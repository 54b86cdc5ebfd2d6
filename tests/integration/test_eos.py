"""Exactly-once on a real broker: killed mid-transaction, restarted, and still every input
counted once and every output written once (read_committed)."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.kafka_helpers import StreamflowProcess, produce, read_all, write_module

pytestmark = pytest.mark.integration

MODULE = """
import os
import time
import streamflow as sf

topology = sf.Topology(os.environ["T_APP"])
src = topology.topic(os.environ["T_IN"], key=sf.String(), value=sf.Json(), external=True)
copies = topology.topic(os.environ["T_COPY"], key=sf.String(), value=sf.Json())
counts = topology.topic(os.environ["T_COUNTS"], key=sf.String(), value=sf.Long())
p = topology.processor("eos", guarantee="exactly_once")


def pace(v):
    if v["n"] % 10 == 0:
        time.sleep(0.004)
    return True


s = p.stream(src).filter(pace, name="pace")
s.map(lambda v: {**v, "copied": True}, name="copy").to(copies)
by_user = s.group_by(lambda v: v["user"], name="by-user", key_serde=sf.String())
by_user.count(name="n").to_stream().to(counts)
"""

KEYS = 300


def _inputs(n: int) -> list[tuple[bytes, bytes]]:
    return [(f"r{i}".encode(), orjson.dumps({"n": i, "user": f"u{(i * 31) % KEYS}"}))
            for i in range(n)]


@pytest.fixture
def app(tmp_path: Path, kafka_bootstrap: str, new_topic: Any) -> dict[str, Any]:
    name = write_module(tmp_path, "eos_topology", MODULE)
    env = {
        "T_APP": f"eos-{uuid.uuid4().hex[:8]}",
        "T_IN": new_topic(partitions=4),
        "T_COPY": new_topic(partitions=4),
        "T_COUNTS": new_topic(partitions=4),
        "STREAMFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMFLOW_STATE_DIR": str(tmp_path / "state"),
    }
    return {"module": name, "env": env, "tmp": tmp_path, "bootstrap": kafka_bootstrap}


def test_exactly_once_survives_repeated_sigkill(app: dict[str, Any]) -> None:
    total = 30_000
    produce(app["bootstrap"], app["env"]["T_IN"], _inputs(total))
    truth = Counter(f"u{(i * 31) % KEYS}" for i in range(total))
    kills = 0
    progress = []
    for round_ in range(3):
        proc = StreamflowProcess(["run", app["module"]], app["tmp"], app["env"],
                                 app["tmp"] / f"run{round_}.log")
        time.sleep(4 + round_)
        proc.kill()
        kills += 1
        progress.append(len(read_all(app["bootstrap"], app["env"]["T_COPY"], expect=0,
                                     timeout=10, settle=1)))
    print(f"committed copies after each kill: {progress}")
    assert progress[-1] < total, "the runs finished before being killed; slow them down"
    final = StreamflowProcess(["run", app["module"]], app["tmp"], app["env"],
                              app["tmp"] / "final.log")
    try:
        copies = read_all(app["bootstrap"], app["env"]["T_COPY"], expect=total, timeout=240,
                          settle=3)
        counts = read_all(app["bootstrap"], app["env"]["T_COUNTS"], expect=total, timeout=120,
                          settle=3)
    finally:
        assert final.terminate() == 0, final.output()
    seen = Counter(orjson.loads(m.value())["n"] for m in copies)
    dupes = {n: c for n, c in seen.items() if c > 1}
    missing = set(range(total)) - set(seen)
    latest: dict[str, int] = {}
    for m in counts:
        latest[m.key().decode()] = int.from_bytes(m.value(), "big", signed=True)
    print(f"EOS after {kills} SIGKILLs: {len(copies)} copies, {len(dupes)} duplicated, "
          f"{len(missing)} missing; {len(counts)} count updates")
    assert not missing, f"lost {len(missing)} inputs"
    assert not dupes, f"{len(dupes)} inputs copied more than once"
    assert latest == dict(truth)
    # each count update is the next integer: no update was written twice or skipped
    per_key: dict[str, list[int]] = {}
    for m in counts:
        per_key.setdefault(m.key().decode(), []).append(
            int.from_bytes(m.value(), "big", signed=True))
    for key, values in per_key.items():
        assert values == list(range(1, truth[key] + 1)), key


LATENCY_MODULE = """
import os
import streamflow as sf

topology = sf.Topology(os.environ["T_APP"])
src = topology.topic(os.environ["T_IN"], key=sf.String(), value=sf.Json(), external=True)
out = topology.topic(os.environ["T_OUT"], key=sf.String(), value=sf.Json())
p = topology.processor("relay", guarantee="exactly_once", commit_interval_ms=60_000)
p.stream(src).map(lambda v: {**v, "seen": True}, name="mark").to(out)
"""


@pytest.mark.parametrize("early", [True, False], ids=["drained-commits", "interval-only"])
def test_exactly_once_commits_when_its_input_is_drained(
        tmp_path: Path, kafka_bootstrap: str, new_topic: Any, early: bool) -> None:
    """With a 60 s commit interval, an output still becomes visible (read_committed) within
    seconds: the worker commits once it has drained its input. Setting the minimum to the
    interval turns that off, and the output then waits for the interval."""
    name = write_module(tmp_path, "eos_latency", LATENCY_MODULE)
    env = {"T_APP": f"eosl-{uuid.uuid4().hex[:8]}", "T_IN": new_topic(partitions=2),
           "T_OUT": new_topic(partitions=2), "STREAMFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "STREAMFLOW_STATE_DIR": str(tmp_path / "state")}
    if not early:
        env["STREAMFLOW_EOS_MIN_COMMIT_INTERVAL_MS"] = "60000"
    proc = StreamflowProcess(["run", name], tmp_path, env, tmp_path / "run.log")
    try:
        deadline = time.monotonic() + 60
        while "assigned" not in proc.output():  # joined its group, owns the partitions
            assert time.monotonic() < deadline and proc.proc.poll() is None, proc.output()
            time.sleep(0.2)
        produce(kafka_bootstrap, env["T_IN"], [(b"k", orjson.dumps({"n": 1}))])
        got = read_all(kafka_bootstrap, env["T_OUT"], expect=1, timeout=8, settle=0)
    finally:
        assert proc.terminate() == 0, proc.output()
    if early:
        assert len(got) == 1, proc.output()
        assert orjson.loads(got[0].value()) == {"n": 1, "seen": True}
    else:
        assert got == [], "committed before the interval although early commits are off"
        # the graceful stop committed it
        assert len(read_all(kafka_bootstrap, env["T_OUT"], expect=1, timeout=20, settle=0)) == 1
