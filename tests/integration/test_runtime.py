"""The worker runtime against a real broker, driven through the ``streamflow`` CLI."""

from __future__ import annotations

import re
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

SLOW = bool(os.environ.get("T_SLOW"))


def slow(v):
    if SLOW and v["n"] % 50 == 0:
        time.sleep(0.005)
    return True


topology = sf.Topology(os.environ["T_APP"])
src = topology.topic(os.environ["T_IN"], key=sf.String(), value=sf.Json(), external=True)
out = topology.topic(os.environ["T_OUT"], key=sf.String(), value=sf.Json())
p = topology.processor("p", on_error=os.environ.get("T_ON_ERROR", "fail"))
(p.stream(src)
    .filter(slow, name="pace")
    .filter(lambda v: v["n"] % 10 != 0, name="drop-tens")
    .map(lambda v: {**v, "sq": v["n"] * v["n"], "inv": 1 // (v["n"] - 13) if v["n"] == 13 else 0,
                    "pid": os.getpid()}, name="square")
    .to(out))
"""


def _inputs(n: int, start: int = 0) -> list[tuple[bytes, bytes]]:
    return [(f"k{i % 97}".encode(), orjson.dumps({"n": i})) for i in range(start, start + n)]


def _expected(ns: range) -> set[int]:
    return {i for i in ns if i % 10 != 0 and i != 13}


@pytest.fixture
def app(tmp_path: Path, kafka_bootstrap: str, new_topic: Any) -> dict[str, Any]:
    name = write_module(tmp_path, "rt_topology", MODULE)
    env = {
        "T_APP": f"rt-{uuid.uuid4().hex[:8]}",
        "T_IN": new_topic(partitions=4),
        "T_OUT": new_topic(partitions=4),
        "STREAMFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMFLOW_COMMIT_INTERVAL_MS": "200",
    }
    return {"module": name, "env": env, "tmp": tmp_path, "bootstrap": kafka_bootstrap}


def _start(app: dict[str, Any], *extra: str, env: dict[str, str] | None = None,
           log: str = "run.log") -> StreamflowProcess:
    return StreamflowProcess(["run", app["module"], *extra], app["tmp"],
                             {**app["env"], **(env or {})}, app["tmp"] / log)


def _values(msgs: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(m.value()) for m in msgs]


def test_cli_processor_turns_inputs_into_expected_outputs(app: dict[str, Any]) -> None:
    produce(app["bootstrap"], app["env"]["T_IN"], _inputs(2000, start=20))
    proc = _start(app, env={"T_ON_ERROR": "dead_letter"})
    try:
        out = _values(read_all(app["bootstrap"], app["env"]["T_OUT"],
                               expect=len(_expected(range(20, 2020)))))
    finally:
        rc = proc.terminate()
    assert rc == 0, proc.output()
    assert sorted(v["n"] for v in out) == sorted(_expected(range(20, 2020)))
    assert all(v["sq"] == v["n"] ** 2 for v in out)
    assert "stopped cleanly" in proc.output()


def test_sigterm_mid_stream_then_restart_loses_nothing(app: dict[str, Any]) -> None:
    total = 60_000
    produce(app["bootstrap"], app["env"]["T_IN"], _inputs(total, start=20))
    expected = _expected(range(20, 20 + total))
    proc = _start(app, env={"T_ON_ERROR": "skip", "T_SLOW": "1"})
    # stop it while it is part-way through
    first = read_all(app["bootstrap"], app["env"]["T_OUT"], expect=5000, timeout=60, settle=0.0)
    rc = proc.terminate()
    assert rc == 0, proc.output()
    partial = len(read_all(app["bootstrap"], app["env"]["T_OUT"], expect=len(first), settle=1))
    assert 0 < partial < len(expected), "the first run was not stopped mid-stream"
    proc2 = _start(app, env={"T_ON_ERROR": "skip"}, log="run2.log")
    try:
        out = _values(read_all(app["bootstrap"], app["env"]["T_OUT"], expect=len(expected),
                               timeout=180))
    finally:
        assert proc2.terminate() == 0, proc2.output()
    counts = Counter(v["n"] for v in out)
    missing = expected - set(counts)
    duplicates = sum(c - 1 for c in counts.values())
    print(f"first run produced {partial} of {len(expected)}; duplicates after restart: "
          f"{duplicates}")
    assert not missing, f"{len(missing)} inputs lost, e.g. {sorted(missing)[:5]}"
    # a graceful stop commits what it produced: nothing is processed twice
    assert duplicates == 0


def test_sigkill_then_restart_loses_nothing_and_duplicates_stay_within_a_commit(
    app: dict[str, Any],
) -> None:
    total = 60_000
    produce(app["bootstrap"], app["env"]["T_IN"], _inputs(total, start=20))
    expected = _expected(range(20, 20 + total))
    proc = _start(app, env={"T_ON_ERROR": "skip", "T_SLOW": "1"})
    read_all(app["bootstrap"], app["env"]["T_OUT"], expect=5000, timeout=60, settle=0.0)
    proc.kill()
    proc2 = _start(app, env={"T_ON_ERROR": "skip"}, log="run2.log")
    try:
        out = _values(read_all(app["bootstrap"], app["env"]["T_OUT"], expect=len(expected),
                               timeout=180))
    finally:
        assert proc2.terminate() == 0, proc2.output()
    counts = Counter(v["n"] for v in out)
    missing = expected - set(counts)
    duplicates = sum(c - 1 for c in counts.values())
    print(f"duplicates after SIGKILL and restart: {duplicates}")
    assert not missing, f"{len(missing)} inputs lost, e.g. {sorted(missing)[:5]}"
    assert duplicates <= total // 2


def test_poison_messages_go_to_the_dead_letter_topic_while_processing_continues(
    app: dict[str, Any],
) -> None:
    good_before = _inputs(100, start=20)
    poison = [
        (b"bad-json", b'{"n": 1,,,'),
        (b"wrong-type", orjson.dumps({"n": "seven"})),
        (b"user-error", orjson.dumps({"n": 13})),
    ]
    good_after = _inputs(100, start=200)
    produce(app["bootstrap"], app["env"]["T_IN"], [*good_before, *poison, *good_after],
            partition=0)
    proc = _start(app, env={"T_ON_ERROR": "dead_letter"})
    dlq_topic = f"{app['env']['T_APP']}.p.dlq"
    try:
        expected = _expected(range(20, 120)) | _expected(range(200, 300))
        out = _values(read_all(app["bootstrap"], app["env"]["T_OUT"], expect=len(expected)))
        dead = read_all(app["bootstrap"], dlq_topic, expect=3)
    finally:
        assert proc.terminate() == 0, proc.output()
    assert sorted(v["n"] for v in out) == sorted(expected)
    assert [m.key() for m in dead] == [b"bad-json", b"wrong-type", b"user-error"]
    assert [m.value() for m in dead] == [v for _, v in poison]
    for m, step in zip(dead, ["source-1:deserialize", "drop-tens", "square"], strict=True):
        h = dict(m.headers())
        assert h["streamflow.error.step"].decode() == step
        assert h["streamflow.source.topic"].decode() == app["env"]["T_IN"]
        assert h["streamflow.source.partition"] == b"0"
        assert int(h["streamflow.source.offset"]) in (100, 101, 102)
        assert h["streamflow.error.type"] and h["streamflow.error.traceback"]
        assert h["streamflow.error.processor"] == b"p"


def test_on_error_fail_stops_with_a_message_naming_the_record(app: dict[str, Any]) -> None:
    produce(app["bootstrap"], app["env"]["T_IN"], [(b"k", b"not json")], partition=0)
    proc = _start(app, env={"T_ON_ERROR": "fail"})
    rc = proc.proc.wait(90)
    out = proc.output()
    assert rc == 1, out
    assert f"{app['env']['T_IN']}[0]@0" in out
    assert "source-1:deserialize" in out


def test_two_workers_split_the_partitions_and_both_process(app: dict[str, Any]) -> None:
    total = 40_000
    proc = _start(app, "--processor", "p", "--workers", "2", env={"T_ON_ERROR": "skip"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the group has settled on both members
        log = proc.output()
        # each child's log prefix names its instance id, <hostname>-<index>
        if all(re.search(rf"p#\S*-{i}\] streamflow.engine: assigned (?!nothing)", log)
               for i in (0, 1)):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"both workers never got partitions: {proc.output()[-2000:]}")
    produce(app["bootstrap"], app["env"]["T_IN"], _inputs(total, start=20))
    try:
        expected = _expected(range(20, 20 + total))
        msgs = read_all(app["bootstrap"], app["env"]["T_OUT"], expect=len(expected), timeout=180)
    finally:
        assert proc.terminate() == 0, proc.output()
    by_pid: dict[int, set[int]] = {}
    for m in msgs:
        by_pid.setdefault(orjson.loads(m.value())["pid"], set()).add(m.partition())
    assert {orjson.loads(m.value())["n"] for m in msgs} == expected
    assert len(by_pid) >= 2, f"only {len(by_pid)} worker produced output: {proc.output()[-2000:]}"


def test_unreachable_broker_exits_4_with_a_clear_message(app: dict[str, Any]) -> None:
    proc = _start(app, env={"STREAMFLOW_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                            "STREAMFLOW_STARTUP_TIMEOUT_S": "3"})
    rc = proc.proc.wait(60)
    assert rc == 4, proc.output()
    assert "cannot reach Kafka at 127.0.0.1:1" in proc.output()


def test_missing_external_topic_exits_3_and_says_how_to_fix(app: dict[str, Any]) -> None:
    proc = _start(app, env={"T_IN": f"missing-{uuid.uuid4().hex[:6]}"})
    rc = proc.proc.wait(60)
    assert rc == 3, proc.output()
    assert "does not exist" in proc.output() and "external" in proc.output()


def test_partition_count_that_differs_from_the_declaration_is_refused(
    tmp_path: Path, kafka_bootstrap: str, new_topic: Any
) -> None:
    body = MODULE.replace('external=True)', 'external=True, partitions=8)')
    name = write_module(tmp_path, "rt_mismatch", body)
    app = {"module": name, "tmp": tmp_path, "bootstrap": kafka_bootstrap,
           "env": {"T_APP": f"rt-{uuid.uuid4().hex[:8]}", "T_IN": new_topic(partitions=4),
                   "T_OUT": new_topic(partitions=4),
                   "STREAMFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap}}
    proc = _start(app)
    rc = proc.proc.wait(60)
    assert rc == 3, proc.output()
    assert "has 4 partitions but is declared with 8" in proc.output()
    time.sleep(0)
