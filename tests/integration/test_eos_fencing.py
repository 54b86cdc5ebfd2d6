"""Exactly-once under group-membership faults, one deterministic scenario each: a
cooperative revocation followed by a SIGKILL, and a worker paused (SIGSTOP) past its session
timeout that comes back as a zombie. Found with the chaos harness (tests/chaos); each test
failed before its fix."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamflow.testing.admin import TopicAdmin
from tests.integration.kafka_helpers import StreamflowProcess, produce, read_all, write_module

pytestmark = pytest.mark.integration


@pytest.fixture
def app(kafka_bootstrap: str) -> Any:
    """A unique topology name; its internal topics and consumer groups go afterwards."""
    name = f"fence-{uuid.uuid4().hex[:8]}"
    yield name
    admin = TopicAdmin(kafka_bootstrap)
    admin.delete_topics(admin.app_topics(name))
    admin.delete_groups([f"{name}.{processor}" for processor in ("copy", "count")])


# these scenarios need a transaction that stays open for the whole commit interval: no
# early commit when the worker has drained its input
INTERVAL_ONLY = {"STREAMFLOW_EOS_MIN_COMMIT_INTERVAL_MS": "60000"}


# -- a targeted scenario: a cooperative revocation under exactly-once -----------------------
STATELESS_EOS = """
import os
import streamflow as sf

topology = sf.Topology(os.environ["T_APP"])
src = topology.topic(os.environ["T_IN"], key=sf.String(), value=sf.Json(), external=True)
out = topology.topic(os.environ["T_OUT"], key=sf.String(), value=sf.Json())
# stateless, so the group uses the cooperative-sticky assignor; a long commit interval makes
# the revocation's commit the only commit before the kill
p = topology.processor("copy", guarantee="exactly_once", commit_interval_ms=20000)
p.stream(src).map(lambda v: v, name="same").to(out)
"""


def test_exactly_once_revocation_commit_carries_the_offsets_of_what_it_commits(
        tmp_path: Path, kafka_bootstrap: str, new_topic: Any, app: str) -> None:
    """Worker 0 processes everything, worker 1 joins (worker 0 gives up some partitions and
    commits its transaction), then worker 0 is SIGKILLed. Every output that transaction
    committed must have its input offset committed with it, or the partitions worker 0 kept
    are processed again after the kill: duplicates under exactly-once."""
    total = 4000
    module = write_module(tmp_path, "stateless_eos", STATELESS_EOS)
    env = {"T_APP": app, "T_IN": new_topic(partitions=4),
           "T_OUT": new_topic(partitions=4), "STREAMFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "STREAMFLOW_STATE_DIR": str(tmp_path / "state"), **INTERVAL_ONLY}
    produce(kafka_bootstrap, env["T_IN"],
            [(f"k{i}".encode(), orjson.dumps({"n": i})) for i in range(total)])
    args = ["run", module, "--processor", "copy", "--worker-id"]
    first = StreamflowProcess([*args, "0"], tmp_path, env, tmp_path / "w0.log")
    second = None
    try:
        # worker 0 has processed everything (uncommitted: the interval is 20 s)
        deadline = time.monotonic() + 60
        while "assigned" not in first.output() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)
        second = StreamflowProcess([*args, "1"], tmp_path, env, tmp_path / "w1.log")
        while "revoking" not in first.output() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "revoking" in first.output(), "worker 0 gave nothing up: no scenario"
        time.sleep(2)
        first.kill()
        copies = read_all(kafka_bootstrap, env["T_OUT"], expect=total, timeout=90, settle=25)
    finally:
        if second is not None:
            second.terminate()
        if first.proc.poll() is None:
            first.kill()
    seen = Counter(orjson.loads(m.value())["n"] for m in copies)
    dupes = sum(c - 1 for c in seen.values() if c > 1)
    missing = total - len(seen)
    print(f"cooperative revocation then SIGKILL: {len(copies)} committed copies, {dupes} "
          f"duplicates, {missing} missing")
    assert missing == 0
    assert dupes == 0, (first.output()[-3000:], second.output()[-3000:] if second else "")


# -- a targeted scenario: a paused worker (zombie) and its state checkpoint -----------------
COUNTER_EOS = """
import os
import streamflow as sf

topology = sf.Topology(os.environ["T_APP"])
src = topology.topic(os.environ["T_IN"], key=sf.String(), value=sf.Json(), external=True)
counts = topology.topic(os.environ["T_COUNTS"], key=sf.String(), value=sf.Long())
p = topology.processor("count", guarantee="exactly_once")
(p.stream(src).group_by(lambda v: "k", name="all", key_serde=sf.String()).count(name="n")
 .to_stream().to(counts))
"""


@pytest.mark.parametrize("checkpoint_due_at_resume", [
    False,
    True,
])
def test_exactly_once_state_survives_a_paused_worker_getting_its_partition_back(
        tmp_path: Path, kafka_bootstrap: str, new_topic: Any, app: str,
        checkpoint_due_at_resume: bool) -> None:
    """Worker 0 counts 50 records, then is paused (SIGSTOP) past its session timeout; worker 1
    takes the partition over and counts 50 more; worker 0 resumes (its partitions are lost),
    worker 1 stops, worker 0 gets the partition back and counts one more record: 101.
    With ``checkpoint_due_at_resume`` worker 0 idles first so that its 30-second periodic
    checkpoint falls due while it is paused."""
    module = write_module(tmp_path, "counter_eos", COUNTER_EOS)
    env = {"T_APP": app, "T_IN": new_topic(partitions=1),
           "T_COUNTS": new_topic(partitions=1), "STREAMFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap}
    args = ["run", module, "--processor", "count", "--worker-id"]

    def batch(start: int, n: int) -> None:
        produce(kafka_bootstrap, env["T_IN"],
                [(f"r{i}".encode(), orjson.dumps({"i": i})) for i in range(start, start + n)])

    def last_count(expect: int) -> int:
        updates = read_all(kafka_bootstrap, env["T_COUNTS"], expect=expect, timeout=60,
                           settle=1)
        return int.from_bytes(updates[-1].value(), "big", signed=True) if updates else 0

    def wait_for(proc: StreamflowProcess, text: str, after: int = 0, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in proc.output()[after:]:
            assert time.monotonic() < deadline, f"no {text!r} in:\n{proc.output()[-3000:]}"
            time.sleep(0.2)

    zero = StreamflowProcess([*args, "0"], tmp_path, {**env, "STREAMFLOW_STATE_DIR":
                             str(tmp_path / "state-0")}, tmp_path / "w0.log")
    one = None
    try:
        wait_for(zero, "restored")
        opened = time.monotonic()  # the task's checkpoint clock starts about here
        batch(0, 50)
        assert last_count(50) == 50
        if checkpoint_due_at_resume:  # pause 15 s after the periodic checkpoint at 30 s
            time.sleep(max(0.0, opened + 45 - time.monotonic()))
        paused = time.monotonic()
        zero.proc.send_signal(signal.SIGSTOP)
        one = StreamflowProcess([*args, "1"], tmp_path, {**env, "STREAMFLOW_STATE_DIR":
                                str(tmp_path / "state-1")}, tmp_path / "w1.log")
        wait_for(one, "restored")  # after worker 0's session timed out
        batch(50, 50)
        assert last_count(100) == 100
        if checkpoint_due_at_resume:  # 30 s since that checkpoint at resume
            time.sleep(max(0.0, paused + 17 - time.monotonic()))
        mark = len(zero.output())
        zero.proc.send_signal(signal.SIGCONT)
        wait_for(zero, "lost", mark)
        wait_for(zero, "assigned", mark)
        mark = len(zero.output())
        assert one.terminate() == 0
        wait_for(zero, "restored", mark)  # worker 0 owns the partition again
        batch(100, 1)
        final = last_count(101)
    finally:
        if zero.proc.poll() is None:
            zero.proc.send_signal(signal.SIGCONT)
            zero.terminate()
        if one is not None and one.proc.poll() is None:
            one.terminate()
    assert final == 101, zero.output()[-4000:]


PACED_COPY = """
import os
import streamflow as sf

topology = sf.Topology(os.environ["T_APP"])
src = topology.topic(os.environ["T_IN"], key=sf.String(), value=sf.Json(), external=True)
out = topology.topic(os.environ["T_OUT"], key=sf.String(), value=sf.Json())
# a long commit interval (legal: below the 30 s transaction timeout) keeps a transaction open,
# so the pause below lands inside one, and the zombie notices the lost partition (at its next
# poll) before its next commit is due
p = topology.processor("copy", guarantee="exactly_once", commit_interval_ms=25000)
p.stream(src).map(lambda v: v, name="same").to(out)
"""


class PacedFeeder:
    """A thread producing ``{"n": i}`` records to ``topic`` every ``gap`` seconds until
    ``stop()``; ``produced`` counts them (all acknowledged once ``stop()`` returns)."""

    def __init__(self, bootstrap: str, topic: str, gap: float) -> None:
        self.produced = 0
        self._args = (bootstrap, topic, gap)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        from confluent_kafka import Producer

        bootstrap, topic, gap = self._args
        p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
        while not self._stop.is_set():
            n = self.produced
            p.produce(topic, orjson.dumps({"n": n}), f"r{n}".encode())
            self.produced = n + 1
            p.poll(0)
            time.sleep(gap)
        assert p.flush(30) == 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def test_exactly_once_zombie_does_not_commit_outputs_of_partitions_it_lost(
        tmp_path: Path, kafka_bootstrap: str, new_topic: Any, app: str) -> None:
    """The owner of the only partition is paused (SIGSTOP) for 16 s, past its 10 s session
    timeout, in the middle of a transaction; the other worker takes over from the committed
    offset. When the zombie resumes, its partition is lost (``on_lost``) and its transaction
    must not commit: the other worker has processed those inputs again. (A commit that comes
    before the zombie notices is fenced by the group generation; after ``on_lost`` the worker
    commits the transaction with no offsets, so nothing fences it.)"""
    module = write_module(tmp_path, "paced_copy", PACED_COPY)
    env = {"T_APP": app, "T_IN": new_topic(partitions=1),
           "T_OUT": new_topic(partitions=1), "STREAMFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap,
           **INTERVAL_ONLY}
    feeder = PacedFeeder(kafka_bootstrap, env["T_IN"], 0.01)

    def owns(w: StreamflowProcess) -> bool:
        lines = [ln for ln in w.output().splitlines()
                 if ("assigned" in ln and env["T_IN"] + "[" in ln) or "revoking" in ln
                 or " lost " in ln]
        return bool(lines) and "assigned" in lines[-1]

    args = ["run", module, "--processor", "copy", "--worker-id"]
    feeder.start()
    workers = [StreamflowProcess([*args, "0"], tmp_path, env, tmp_path / "w0.log")]
    try:
        time.sleep(4)
        workers.append(StreamflowProcess([*args, "1"], tmp_path, env, tmp_path / "w1.log"))
        time.sleep(4)
        owner = next(w for w in workers if owns(w))
        owner.proc.send_signal(signal.SIGSTOP)
        time.sleep(16)
        owner.proc.send_signal(signal.SIGCONT)
        time.sleep(8)
    finally:
        feeder.stop()
        time.sleep(12)  # the zombie's commit is due 25 s after its start
        for w in workers:
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGCONT)
                w.terminate()
    produced = feeder.produced
    copies = read_all(kafka_bootstrap, env["T_OUT"], expect=produced, timeout=60, settle=2)
    seen = Counter(orjson.loads(m.value())["n"] for m in copies)
    dupes = sum(c - 1 for c in seen.values() if c > 1)
    print(f"zombie: {produced} inputs, {len(copies)} committed copies, {dupes} duplicates, "
          f"{produced - len(seen)} missing")
    assert produced == len(seen)
    assert dupes == 0, owner.output()[-3000:]


# -- a transaction the coordinator aborted while its worker was paused ----------------------
def test_exactly_once_worker_recovers_from_a_transaction_aborted_while_it_was_paused(
        tmp_path: Path, kafka_bootstrap: str, new_topic: Any, app: str) -> None:
    """The only worker is paused (SIGSTOP) mid-transaction for 16 s: past its 3 s transaction
    timeout and the coordinator's 10 s abort sweep, but within its 45 s session. The
    coordinator aborts the transaction and bumps the producer epoch; when the worker resumes,
    its producer is refused. The worker must abort or replace its producer, rewind, and carry
    on (not exit), and every input must still be copied exactly once."""
    module = write_module(tmp_path, "paced_copy_short", PACED_COPY.replace(
        ", commit_interval_ms=25000", ""))
    env = {"T_APP": app, "T_IN": new_topic(partitions=1),
           "T_OUT": new_topic(partitions=1), "STREAMFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "STREAMFLOW_PRODUCER_TRANSACTION_TIMEOUT_MS": "3000",
           "STREAMFLOW_CONSUMER_SESSION_TIMEOUT_MS": "45000",
           # commits every 100 ms, each transaction open for the whole interval
           "STREAMFLOW_EOS_COMMIT_INTERVAL_MS": "100", **INTERVAL_ONLY}
    feeder = PacedFeeder(kafka_bootstrap, env["T_IN"], 0.002)
    worker = StreamflowProcess(["run", module], tmp_path, env, tmp_path / "w.log")
    try:
        deadline = time.monotonic() + 60
        while "assigned" not in worker.output():
            assert time.monotonic() < deadline, worker.output()
            time.sleep(0.2)
        feeder.start()
        time.sleep(3)
        worker.proc.send_signal(signal.SIGSTOP)
        time.sleep(16)
        worker.proc.send_signal(signal.SIGCONT)
        time.sleep(6)
        assert worker.proc.poll() is None, worker.output()[-3000:]
        feeder.stop()
        # the worker, still running, catches up with everything produced
        copies = read_all(kafka_bootstrap, env["T_OUT"], expect=feeder.produced, timeout=60,
                          settle=2)
    finally:
        feeder.stop()
        worker.proc.send_signal(signal.SIGCONT)
        rc = worker.terminate()
    log = worker.output()
    assert rc == 0, log[-3000:]
    assert "transaction aborted" in log or "recreating the transactional producer" in log, (
        log[-3000:])
    seen = Counter(orjson.loads(m.value())["n"] for m in copies)
    dupes = sum(c - 1 for c in seen.values() if c > 1)
    produced = feeder.produced
    print(f"aborted while paused: {produced} inputs, {len(copies)} committed copies, "
          f"{dupes} duplicates, {produced - len(seen)} missing")
    assert produced == len(seen)
    assert dupes == 0
