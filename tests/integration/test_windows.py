"""Windowed aggregation on a real broker: a tumbling count with ``final()``, SIGKILLed
mid-stream and restarted, against the uninterrupted expectation.

Semantics measured here:

* at-least-once: no window may be missing and the *last* value emitted for each window must
  be right. A window whose final result was produced after the last commit is emitted again
  after the restart (its state and the stream time are restored from the committed
  changelog, the input after the committed offset is replayed, and the window closes
  again). Replay is deterministic per partition, so a duplicate carries the *same* value: the
  test asserts that too, and prints how many duplicates it saw;
* exactly-once: the same, with no duplicate at all (read_committed).
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from tests.integration.kafka_helpers import StreamflowProcess, read_all, write_module

pytestmark = pytest.mark.integration

MODULE = """
import os
import time
import streamflow as sf

topology = sf.Topology(os.environ["T_APP"])
src = topology.topic(os.environ["T_IN"], key=sf.String(), value=sf.Json(), external=True)
out = topology.topic(os.environ["T_OUT"],
                     key=sf.TimeWindowedSerde(sf.String(), window_size=1000), value=sf.Long())
p = topology.processor("windows", guarantee=os.environ["T_GUARANTEE"])


seen = [0]


def pace(v):
    # every partition at about 4000 records/s, so the kill lands between commits
    seen[0] += 1
    if seen[0] % 20 == 0:
        time.sleep(0.005)
    return True


(p.stream(src)
    .filter(pace, name="pace")
    .group_by_key()
    .window(sf.Tumbling(1000, grace=200))
    .count(name="per-second")
    .final()
    .to(out))
"""

USERS = 40
TOTAL = 24_000
STEP_MS = 5  # event time advances 5 ms per record: 200 records per one-second window
T0 = 1_700_000_000_000
PARTITIONS = 4
KEEP = {"retention.ms": "-1"}


def _produce_inputs(bootstrap: str, topic: str) -> Counter[tuple[str, int]]:
    """Records keyed by user (each user stays in one partition, in event-time order), then
    one far-future marker per partition so every real window closes; returns the expected
    count per (user, window start)."""
    import orjson

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                  "partitioner": "murmur2_random"})
    truth: Counter[tuple[str, int]] = Counter()
    for n in range(TOTAL):
        user = f"u{(n * 7) % USERS}"
        ts = T0 + n * STEP_MS
        truth[(user, ts - ts % 1000)] += 1
        while True:
            try:
                p.produce(topic, orjson.dumps({"n": n + 1}), user.encode(), timestamp=ts)
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(60) == 0
    for part in range(PARTITIONS):
        p.produce(topic, orjson.dumps({"n": 1}), f"end-{part}".encode(), partition=part,
                  timestamp=T0 + 10_000_000)
    assert p.flush(60) == 0
    return truth


@pytest.fixture
def app(tmp_path: Path, kafka_bootstrap: str, new_topic: Any) -> dict[str, Any]:
    name = write_module(tmp_path, "windows_topology", MODULE)
    env = {
        "T_APP": f"win-{uuid.uuid4().hex[:8]}",
        # event times are in 2023: without retention.ms=-1 the broker's time retention
        # deletes the records (segments older than 7 days) in the middle of the test
        "T_IN": new_topic(partitions=PARTITIONS, config=KEEP),
        "T_OUT": new_topic(partitions=PARTITIONS, config=KEEP),
        "STREAMFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMFLOW_COMMIT_INTERVAL_MS": "300",
        "STREAMFLOW_STATE_DIR": str(tmp_path / "state"),
    }
    return {"module": name, "env": env, "tmp": tmp_path, "bootstrap": kafka_bootstrap}


def _windows(msgs: list[Any]) -> list[tuple[tuple[str, int], int]]:
    out = []
    for m in msgs:
        key = m.key()
        user, start = key[:-8].decode(), int.from_bytes(key[-8:], "big", signed=True)
        out.append(((user, start), int.from_bytes(m.value(), "big", signed=True)))
    return out


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_tumbling_final_counts_survive_sigkill(app: dict[str, Any], guarantee: str) -> None:
    env = {**app["env"], "T_GUARANTEE": guarantee}
    truth = _produce_inputs(app["bootstrap"], env["T_IN"])
    first = StreamflowProcess(["run", app["module"]], app["tmp"], env, app["tmp"] / "run1.log")
    try:
        before = read_all(app["bootstrap"], env["T_OUT"], expect=len(truth) // 4, timeout=120,
                          settle=0)
    finally:
        first.kill()
    assert len(before) < len(truth), "finished before the kill; slow the topology down"
    second = StreamflowProcess(["run", app["module"]], app["tmp"], env, app["tmp"] / "run2.log")
    try:
        msgs = read_all(app["bootstrap"], env["T_OUT"], expect=len(truth), timeout=240, settle=4)
    finally:
        assert second.terminate() == 0, second.output()
    emitted = _windows(msgs)
    seen = Counter(w for w, _ in emitted)
    last: dict[tuple[str, int], int] = {}
    values: dict[tuple[str, int], set[int]] = {}
    for w, n in emitted:
        last[w] = n
        values.setdefault(w, set()).add(n)
    duplicated = {w: c for w, c in seen.items() if c > 1}
    missing = set(truth) - set(last)
    unexpected = set(last) - set(truth)
    wrong = {w: (last[w], truth[w]) for w in truth if w in last and last[w] != truth[w]}
    print(f"{guarantee}: {len(truth)} windows expected, {len(emitted)} final records read "
          f"({len(before)} before the SIGKILL), {len(duplicated)} windows emitted more than "
          f"once ({sum(duplicated.values()) - len(duplicated)} extra records), "
          f"{len(missing)} missing, {len(wrong)} wrong")
    assert "restored" in second.output() or len(before) == 0
    assert not missing, f"windows never emitted: {sorted(missing)[:5]}"
    assert not unexpected, f"windows that should not exist: {sorted(unexpected)[:5]}"
    assert not wrong, f"wrong final counts (got, want): {list(wrong.items())[:5]}"
    assert all(len(v) == 1 for v in values.values()), (
        "a window was emitted twice with different values: "
        f"{[(w, v) for w, v in values.items() if len(v) > 1][:5]}")
    if guarantee == "exactly_once":
        assert not duplicated, f"duplicated finals under exactly-once: {list(duplicated)[:5]}"
