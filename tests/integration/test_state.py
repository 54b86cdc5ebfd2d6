"""Stateful processing on a real broker: counts survive kill -9, lost state is rebuilt from
the changelog, state follows its partition when workers rebalance (under the classic and the
KIP-848 consumer protocol), and a restore longer than ``max.poll.interval.ms`` keeps the
member in its group."""

from __future__ import annotations

import re
import shutil
import socket
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamflow.state.backends import RocksBackend
from streamflow.state.keys import decode_key
from tests.integration.kafka_helpers import StreamflowProcess, produce, read_all, write_module

pytestmark = pytest.mark.integration

MODULE = """
import os
import time
import streamflow as sf

SLOW = bool(os.environ.get("T_SLOW"))

topology = sf.Topology(os.environ["T_APP"])
src = topology.topic(os.environ["T_IN"], key=sf.String(), value=sf.Json(), external=True)
out = topology.topic(os.environ["T_OUT"], key=sf.String(), value=sf.Long())
p = topology.processor("counter", guarantee=os.environ.get("T_GUARANTEE", "at_least_once"))


def add(count, v):
    if SLOW and v["n"] % 50 == 0:
        time.sleep(0.005)  # slow enough to be killed mid-stream, after some commits
    return count + 1


stream = p.stream(src)
grouped = (stream.group_by_key() if os.environ.get("T_BY_KEY")  # inputs keyed by user
           else stream.group_by(lambda v: v["user"], name="by-user", key_serde=sf.String()))
grouped.aggregate(lambda: 0, add, name="clicks").to_stream().to(out)
"""

KEYS = 500


def _inputs(n: int, start: int = 0, *, by_user: bool = False) -> list[tuple[bytes, bytes]]:
    """Records ``r<i>`` (or keyed by their user) of users ``u<j>``."""
    out = []
    for i in range(start, start + n):
        user = f"u{(i * 7919) % KEYS}"
        out.append(((user if by_user else f"r{i}").encode(),
                     orjson.dumps({"n": i, "user": user})))
    return out


def _truth(n: int, start: int = 0) -> Counter[str]:
    return Counter(f"u{(i * 7919) % KEYS}" for i in range(start, start + n))


@pytest.fixture
def app(tmp_path: Path, kafka_bootstrap: str, new_topic: Any) -> dict[str, Any]:
    name = write_module(tmp_path, "state_topology", MODULE)
    topo = f"st-{uuid.uuid4().hex[:8]}"
    env = {
        "T_APP": topo,
        "T_IN": new_topic(partitions=4),
        "T_OUT": new_topic(partitions=4),
        "STREAMFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMFLOW_COMMIT_INTERVAL_MS": "200",
        "STREAMFLOW_STATE_DIR": str(tmp_path / "state"),
    }
    return {"module": name, "env": env, "tmp": tmp_path, "bootstrap": kafka_bootstrap,
            "topology": topo}


def _start(app: dict[str, Any], *extra: str, log: str = "run.log",
           env: dict[str, str] | None = None) -> StreamflowProcess:
    return StreamflowProcess(["run", app["module"], *extra], app["tmp"],
                             {**app["env"], **(env or {})}, app["tmp"] / log)


def _final_counts(app: dict[str, Any], expect_keys: int) -> dict[str, int]:
    """The latest count per key in the output topic (per partition order)."""
    msgs = read_all(app["bootstrap"], app["env"]["T_OUT"], expect=expect_keys, settle=3)
    latest: dict[str, int] = {}
    for m in msgs:
        latest[m.key().decode()] = int.from_bytes(m.value(), "big", signed=True)
    return latest


def _wait_until_counts(app: dict[str, Any], truth: Counter[str], timeout: float = 180
                       ) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    latest: dict[str, int] = {}
    while time.monotonic() < deadline:
        latest = _final_counts(app, len(truth))
        if all(latest.get(k, 0) >= v for k, v in truth.items()):
            return latest
        time.sleep(1)
    return latest


def _local_state(app: dict[str, Any]) -> dict[str, int]:
    # the worker's own folder: <state_dir>/<instance id>/<topology>/<processor>; without
    # POD_NAME or STREAMFLOW_INSTANCE_ID the instance id is <hostname>-0
    instance = f"{socket.gethostname()}-0"
    root = (Path(app["env"]["STREAMFLOW_STATE_DIR"]) / instance / app["topology"] / "counter"
            / "clicks")
    state: dict[str, int] = {}
    for part in sorted(p for p in root.iterdir() if p.is_dir()):
        db = RocksBackend(part)
        try:
            for kb, vb in db.scan(None, None):
                # a table's row on disk: its 8-byte timestamp, then the value (TimestampedStore)
                state[decode_key(kb)] = orjson.loads(vb[8:])
        finally:
            db.close()
    return state


def test_count_by_key_survives_sigkill_with_no_input_lost(app: dict[str, Any]) -> None:
    total = 40_000
    truth = _truth(total)
    produce(app["bootstrap"], app["env"]["T_IN"], _inputs(total))
    proc = _start(app, env={"T_SLOW": "1"})
    read_all(app["bootstrap"], app["env"]["T_OUT"], expect=15000, timeout=60, settle=0)
    proc.kill()
    proc2 = _start(app, log="run2.log")
    try:
        latest = _wait_until_counts(app, truth)
    finally:
        assert proc2.terminate() == 0, proc2.output()
    lost = {k: truth[k] - latest.get(k, 0) for k in truth if latest.get(k, 0) < truth[k]}
    over = sum(latest[k] - truth[k] for k in truth if latest.get(k, 0) > truth[k])
    restored = [(int(a), int(s)) for a, s in re.findall(
        r"restored .*?: (\d+) changes applied, (\d+) uncommitted skipped", proc2.output())]
    print(f"after SIGKILL: inputs counted twice: {over} of {total}; restore: {restored}")
    assert not lost, f"counts too low (input lost) for {len(lost)} keys: {list(lost.items())[:5]}"
    assert sum(a for a, _ in restored) > 0, "the restart restored nothing from the changelog"


def test_deleted_local_state_is_rebuilt_from_the_changelog(app: dict[str, Any]) -> None:
    total = 20_000
    truth = _truth(total)
    produce(app["bootstrap"], app["env"]["T_IN"], _inputs(total))
    proc = _start(app)
    try:
        _wait_until_counts(app, truth)
    finally:
        assert proc.terminate() == 0, proc.output()
    before = _local_state(app)
    assert before == dict(truth)
    shutil.rmtree(app["env"]["STREAMFLOW_STATE_DIR"])
    proc2 = _start(app, log="run2.log")
    try:
        deadline = time.monotonic() + 60
        while "assigned" not in proc2.output() and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)
    finally:
        assert proc2.terminate() == 0, proc2.output()
    assert _local_state(app) == before
    # and counting goes on from the restored state
    produce(app["bootstrap"], app["env"]["T_IN"], _inputs(1000, start=total))
    proc3 = _start(app, log="run3.log")
    try:
        latest = _wait_until_counts(app, _truth(total + 1000))
    finally:
        assert proc3.terminate() == 0, proc3.output()
    assert latest == dict(_truth(total + 1000))


def _sequences(app: dict[str, Any], expect: int) -> dict[str, list[int]]:
    """Every count the output holds per key, in order (read_committed)."""
    seqs: dict[str, list[int]] = {}
    for m in read_all(app["bootstrap"], app["env"]["T_OUT"], expect=expect, settle=3):
        seqs.setdefault(m.key().decode(), []).append(
            int.from_bytes(m.value(), "big", signed=True))
    return seqs


def _exactly_once(seqs: dict[str, list[int]], truth: Counter[str]) -> None:
    """Each input counted once: every key's counts go 1, 2, ... its number of inputs."""
    wrong = {k: seqs.get(k) for k in truth if seqs.get(k) != list(range(1, truth[k] + 1))}
    assert not wrong, f"{len(wrong)} keys not counted exactly once: {list(wrong.items())[:3]}"


@pytest.mark.parametrize("protocol, assignor, guarantee", [
    ("classic", "", "at_least_once"),  # today's eager range
    ("classic", "cooperative-sticky", "exactly_once"),  # one input: no co-partitioning
    ("consumer", "", "exactly_once"),  # KIP-848, the broker's range assignor
])
def test_state_moves_with_its_partition_when_a_second_worker_joins(
        app: dict[str, Any], protocol: str, assignor: str, guarantee: str) -> None:
    """The second worker restores the state of the partitions it takes over. Under the KIP-848
    consumer protocol the broker's range assignor keeps co-partitioned inputs together; under
    it and cooperative-sticky the engine takes incremental assignments (only the moved
    partitions are revoked)."""
    by_user = bool(assignor)  # cooperative-sticky cannot keep co-partitioned inputs together
    env = {"STREAMFLOW_GROUP_PROTOCOL": protocol, "STREAMFLOW_GROUP_ASSIGNOR": assignor,
           "T_GUARANTEE": guarantee, "T_BY_KEY": "1" if by_user else ""}
    first = _truth(10_000)
    produce(app["bootstrap"], app["env"]["T_IN"], _inputs(10_000, by_user=by_user))
    w0 = _start(app, "--worker-id", "0", log="w0.log",
                env={**env, "STREAMFLOW_STATE_DIR": str(app["tmp"] / "state-w0")})
    try:
        _wait_until_counts(app, first)
        w1 = _start(app, "--worker-id", "1", log="w1.log",
                    env={**env, "STREAMFLOW_STATE_DIR": str(app["tmp"] / "state-w1")})
        try:
            deadline = time.monotonic() + 90
            while not re.search(r"task \d+ restored", w1.output()):
                assert time.monotonic() < deadline, w1.output()
                time.sleep(0.5)
            produce(app["bootstrap"], app["env"]["T_IN"],
                    _inputs(10_000, start=10_000, by_user=by_user))
            truth = _truth(20_000)
            latest = _wait_until_counts(app, truth)
            moved = re.findall(r"revoking (.*)", w0.output())  # before either stops
        finally:
            assert w1.terminate() == 0, w1.output()
    finally:
        assert w0.terminate() == 0, w0.output()
    assert latest == dict(truth)
    # the second worker restored the partitions it took over from the changelog
    applied = [int(a) for a in re.findall(r"restored .*?: (\d+) changes applied", w1.output())]
    assert sum(applied) > 0, w1.output()
    assert "lost" not in w0.output()
    if guarantee == "exactly_once":
        _exactly_once(_sequences(app, 20_000), truth)
    # 8 partitions (input and repartition topic, 4 each; 4 when keyed by user): eager range
    # revokes all of them, the incremental protocols only those that move
    owned = 4 if by_user else 8
    revoked = len(moved[0].split(", ")) if moved else 0
    incremental = protocol == "consumer" or "cooperative" in assignor
    assert 0 < revoked < owned if incremental else revoked == owned, w0.output()


def test_a_restore_longer_than_max_poll_interval_keeps_the_member_in_the_group(
        app: dict[str, Any]) -> None:
    """The restore runs in chunks between polls: 30,000 changelog records at 2,000 records/s
    (~15 s) with max.poll.interval.ms = 10 s. The member is never evicted (one assignment, no
    revocation, no poll-interval error) and the output stays exactly-once."""
    env = {"T_GUARANTEE": "exactly_once"}
    users = 30_000
    inputs = [(f"r{i}".encode(), orjson.dumps({"n": i, "user": f"w{i}"})) for i in range(users)]
    produce(app["bootstrap"], app["env"]["T_IN"], inputs)
    proc = _start(app, env=env)
    try:
        _wait_until_counts(app, Counter(f"w{i}" for i in range(users)))
    finally:
        assert proc.terminate() == 0, proc.output()
    shutil.rmtree(app["env"]["STREAMFLOW_STATE_DIR"])
    proc2 = _start(app, log="run2.log", env={
        **env, "STREAMFLOW_RESTORE_MAX_RATE": "2000",
        "STREAMFLOW_CONSUMER_MAX_POLL_INTERVAL_MS": "10000"})
    more = [(f"s{i}".encode(), orjson.dumps({"n": i, "user": f"w{i}"})) for i in range(2000)]
    try:
        deadline = time.monotonic() + 60
        while "assigned" not in proc2.output():
            assert time.monotonic() < deadline, proc2.output()
            time.sleep(0.5)
        produce(app["bootstrap"], app["env"]["T_IN"], more)  # arrives while restoring
        truth = Counter(f"w{i}" for i in range(users)) + Counter(f"w{i}" for i in range(2000))
        latest = _wait_until_counts(app, truth, timeout=240)
        log = proc2.output()
    finally:
        assert proc2.terminate() == 0, proc2.output()
    assert latest == dict(truth)
    took = [float(s) for s in re.findall(r"restored .*? in ([\d.]+)s", log)]
    assert max(took) > 10, log  # longer than max.poll.interval.ms
    assert re.search(r"restoring \d+ changelog partitions: .* remaining", log), log
    assert len(re.findall(r"\bassigned ", log)) == 1, log
    assert "revoking" not in log and "lost" not in log, log
    assert "poll interval" not in log, log
    _exactly_once(_sequences(app, users + 2000), truth)


JOIN_MODULE = """
import os
import streamflow as sf

topology = sf.Topology(os.environ["T_APP"])
clicks = topology.topic(os.environ["T_CLICKS"], key=sf.String(), value=sf.Json(), external=True)
users = topology.topic(os.environ["T_USERS"], key=sf.String(), value=sf.Json(), external=True)
out = topology.topic(os.environ["T_OUT"], key=sf.String(), value=sf.Json())
p = topology.processor("enrich")
(p.stream(clicks)
    .left_join(topology.table(users), lambda c, u: {**c, "name": u and u["name"]})
    .to(out))
"""


def _join_app(tmp_path: Path, bootstrap: str, new_topic: Any, users_partitions: int
              ) -> dict[str, Any]:
    name = write_module(tmp_path, "join_topology", JOIN_MODULE)
    env = {
        "T_APP": f"jn-{uuid.uuid4().hex[:8]}",
        "T_CLICKS": new_topic(partitions=3),
        "T_USERS": new_topic(partitions=users_partitions, compacted=True),
        "T_OUT": new_topic(partitions=3),
        "STREAMFLOW_BOOTSTRAP_SERVERS": bootstrap,
        "STREAMFLOW_STATE_DIR": str(tmp_path / "state"),
    }
    return {"module": name, "env": env, "tmp": tmp_path, "bootstrap": bootstrap}


def test_stream_table_join_on_the_broker_enriches_every_click(
    tmp_path: Path, kafka_bootstrap: str, new_topic: Any
) -> None:
    app = _join_app(tmp_path, kafka_bootstrap, new_topic, 3)
    users = [(f"u{i}".encode(), orjson.dumps({"name": f"User {i}"})) for i in range(50)]
    produce(kafka_bootstrap, app["env"]["T_USERS"], users)
    proc = _start(app)
    try:  # the clicks come after the users in time: no need to wait for the table
        clicks = [(f"u{i % 60}".encode(), orjson.dumps({"click": i})) for i in range(600)]
        produce(kafka_bootstrap, app["env"]["T_CLICKS"], clicks)
        out = read_all(kafka_bootstrap, app["env"]["T_OUT"], expect=600)
    finally:
        assert proc.terminate() == 0, proc.output()
    values = {orjson.loads(m.value())["click"]: orjson.loads(m.value()) for m in out}
    assert len(out) == 600 and set(values) == set(range(600))
    for i, v in values.items():
        expected = f"User {i % 60}" if i % 60 < 50 else None
        assert v["name"] == expected, v


def test_join_of_topics_with_different_partition_counts_refuses_to_start(
    tmp_path: Path, kafka_bootstrap: str, new_topic: Any
) -> None:
    app = _join_app(tmp_path, kafka_bootstrap, new_topic, 2)
    proc = _start(app)
    rc = proc.proc.wait(60)
    assert rc == 3, proc.output()
    assert "co-partitioned" in proc.output() and "has 2 partitions" in proc.output()
