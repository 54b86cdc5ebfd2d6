"""Restores off the poll loop, through ``TopologyTestDriver`` (no broker): a task with stores
restores in chunks between polls with its inputs paused while the other tasks keep running;
a revocation, a loss or a crash midway abandons it cleanly; readiness waits for it; and the
group protocol settings (classic / KIP-848) give librdkafka what each protocol allows."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

import streamflow as sf
from streamflow.config import Config, ConfigError
from streamflow.runtime.clients import consumer_conf
from streamflow.runtime.engine import Engine
from streamflow.runtime.restore import Restorer
from streamflow.serde import SerdeContext
from streamflow.state.task_state import SOURCE_HEADER, TaskState, encode_positions
from streamflow.testing import TopologyTestDriver
from streamflow.testing.memory import InMemoryCluster, MemoryChangelogs, MemoryConsumer, Message
from tests.unit.test_engine import KEYS, counting

# the changelog of store "n", per partition, gets one record per key and commit
CHUNK = 2


def _driver(guarantee: str, **config: object) -> TopologyTestDriver:
    return TopologyTestDriver(counting(guarantee), auto_commit=False, config={
        "group_protocol": "consumer", "restore_chunk_records": CHUNK, **config})


def _build_state(d: TopologyTestDriver, rounds: int) -> None:
    """``rounds`` commits of one record per key: ``rounds`` changelog records per key."""
    for _ in range(rounds):
        for k in KEYS:
            d.input("in").send(1, key=k)
        d.commit()


def _append(d: TopologyTestDriver, keys: list[str]) -> None:
    """Records into the input topic without running the instances (``step()`` runs them)."""
    topic = d.topology.topics["in"]
    ks = topic.key.serializer("in", True, d.serde_context)
    vs = topic.value.serializer("in", False, d.serde_context)
    for k in keys:
        d.cluster.append("in", -1, ks(k), vs(1), 0, None)


def _steps_until_ready(d: TopologyTestDriver, engine: Engine, limit: int = 1000) -> int:
    turns = 0
    while not engine.ready:
        d.step()
        turns += 1
        assert turns < limit, "the restore never ended"
    return turns


def test_a_restore_spreads_over_many_loop_turns_while_other_partitions_keep_processing(
) -> None:
    with _driver("at_least_once") as d:
        _build_state(d, rounds=3)
        first = d.engines["p"][0]
        kept = {p: first.tasks.tasks[p] for p in (0, 1)}
        d.scale(2, settle=False)  # incremental: the first member keeps partitions 0 and 1
        second = d.engines["p"][1]
        assert first.tasks.tasks == kept  # not revoked, not reopened
        assert sorted(second.tasks.restores) == [2, 3] and not second.ready
        assert second.consumer is not None and isinstance(second.consumer, MemoryConsumer)
        assert second.consumer.paused == {("in", 2), ("in", 3)}
        processed_before = first.processed
        _append(d, KEYS)
        turns = _steps_until_ready(d, second)
        # 3 changelog records per key of partitions 2 and 3, CHUNK per turn
        restored = second.tasks.restore_records_done
        assert restored == 3 * sum(1 for k in KEYS if d.store("n").get(k) is not None
                                   and _part(k) in (2, 3))
        assert turns >= restored // CHUNK
        assert first.processed - processed_before == sum(1 for k in KEYS if _part(k) < 2)
        assert second.consumer.paused == set()
        d.commit()  # the restored tasks process their waiting records now
        assert dict(d.store("n").items()) == {k: 4 for k in KEYS}
        assert Counter(r.key for r in d.output("echo").read_records()) == {k: 4 for k in KEYS}


def _part(key: str) -> int:
    from streamflow.testing.memory import partition_for

    return partition_for(key.encode(), 4)


def test_readiness_stays_false_until_every_assigned_task_is_restored() -> None:
    with _driver("exactly_once") as d:
        _build_state(d, rounds=2)
        d.crash(settle=False)
        engine = d.engines["p"][0]
        assert engine.joined and engine.restoring and not engine.ready
        d.step()
        assert not engine.ready and engine.tasks.restore_records_remaining > 0
        _steps_until_ready(d, engine)
        assert engine.ready and engine.tasks.restore_records_remaining == 0
        assert engine.tasks.restore_seconds > 0
        assert dict(d.store("n").items()) == {k: 2 for k in KEYS}


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_revocation_during_a_restore_abandons_it_and_the_next_owner_restores(
        guarantee: str) -> None:
    with _driver(guarantee) as d:
        _build_state(d, rounds=4)
        d.scale(2, settle=False)
        second = d.engines["p"][1]
        d.step()
        d.step()
        assert second.restoring
        d.scale(1)  # the second member leaves midway through its restore
        first = d.engines["p"][0]
        assert sorted(first.tasks.tasks) == [0, 1, 2, 3] and first.ready
        assert second.tasks.restores == {} and second.tasks.restorer.active == {}
        _append(d, KEYS)
        d.commit()
        d.commit()
        assert dict(d.store("n").items()) == {k: 5 for k in KEYS}
        assert Counter(r.key for r in d.output("echo").read_records()) == {k: 5 for k in KEYS}


def test_an_abandoned_restore_checkpoints_how_far_it_got_and_goes_on_from_there() -> None:
    """A revoked restore leaves a checkpoint at its position (the database holds exactly the
    changelog below it); when the partition comes back, the restore starts there."""
    with _driver("at_least_once") as d:
        _build_state(d, rounds=4)
        d.scale(2, settle=False)
        second = d.engines["p"][1]
        for _ in range(3):
            d.step()
        reached = {r.partition: r.position for r in second.tasks.restorer.active.values()
                   if 0 < r.position < r.end}  # midway
        assert reached
        assert isinstance(second.consumer, MemoryConsumer)
        second.consumer.revoke(sorted(second.consumer.positions))
        second.consumer.assign([("in", 2), ("in", 3)])  # say the group hands them back
        d.step()
        starts = {r.partition: r.start for r in second.tasks.restorer.active.values()}
        assert {p: starts.get(p, pos) for p, pos in reached.items()} == reached
        _steps_until_ready(d, second)
        d.commit()
        assert dict(d.store("n").items()) == {k: 4 for k in KEYS}


def test_lost_partitions_during_a_restore_are_abandoned_without_a_checkpoint() -> None:
    with _driver("exactly_once") as d:
        _build_state(d, rounds=3)
        d.scale(2, settle=False)
        second = d.engines["p"][1]
        d.step()
        state = second.tasks.restores[2].state
        assert isinstance(second.consumer, MemoryConsumer)
        second.consumer.lose_all()
        assert second.tasks.restores == {} and not second.restoring
        assert state.read_checkpoint("n") is None  # the database was wiped: no checkpoint yet


def test_a_crash_during_a_restore_restores_again_and_loses_nothing() -> None:
    with _driver("exactly_once", store="rocksdb") as d:
        _build_state(d, rounds=3)
        d.crash(settle=False)
        d.step()
        d.step()
        d.crash(keep_state=True, settle=False)  # kill -9 midway: no checkpoint written
        engine = d.engines["p"][0]
        _steps_until_ready(d, engine)
        _append(d, KEYS)
        d.commit()
        d.commit()
        assert dict(d.store("n").items()) == {k: 4 for k in KEYS}
        assert dict(d.output("counts").read_key_values()) == {k: 4 for k in KEYS}


def test_records_fetched_before_the_pause_are_processed_once_after_the_restore() -> None:
    """librdkafka may hand out records of a partition before it is paused; they are dropped
    and the partition goes back to its committed offset when its task starts running."""
    with _driver("exactly_once") as d:
        _build_state(d, rounds=2)
        d.scale(2, settle=False)
        second = d.engines["p"][1]
        consumer = second.consumer
        assert isinstance(consumer, MemoryConsumer) and second.restoring
        _append(d, KEYS)
        early = [Message(r) for r in d.cluster.logs["in"][2][consumer.positions[("in", 2)]:]]
        assert early
        consumer.positions[("in", 2)] += len(early)  # as if fetched just before the pause
        second.process(early)
        assert second.processed == len(early) and second.tasks.tasks == {}  # dropped
        _steps_until_ready(d, second)
        d.commit()
        d.commit()
        assert dict(d.store("n").items()) == {k: 3 for k in KEYS}
        assert Counter(r.key for r in d.output("echo").read_records()) == {k: 3 for k in KEYS}


def test_a_rewind_restores_through_the_loop_and_processes_the_aborted_records_again() -> None:
    with _driver("exactly_once") as d:
        _build_state(d, rounds=2)
        engine = d.engines["p"][0]
        _append(d, ["a", "b"])
        d.step()
        d.cluster.fail_next("commit_transaction")
        assert engine.commit() is False
        assert engine.restoring and not engine.ready  # rewound: restoring, inputs paused
        d.commit()
        d.commit()
        assert engine.committer.aborts == 1
        assert dict(d.store("n").items()) == {**{k: 2 for k in KEYS}, "a": 1, "b": 1}


def test_the_restorer_applies_at_most_a_chunk_per_step_and_honours_its_rate_cap(
        tmp_path: Path) -> None:
    t = counting("at_least_once", partitions=1)
    p = t.processors["p"]
    cluster = InMemoryCluster()
    changelog = p.stores["n"].changelog
    header = [(SOURCE_HEADER, encode_positions({"in": 1}))]
    for i in range(300):
        cluster.append(changelog, 0, f"k{i}".encode(), b"1", 0, header)
    state = TaskState(p.stores, 0, tmp_path, "memory", SerdeContext())
    restorer = Restorer(MemoryChangelogs(cluster), chunk=50, max_rate=1000)
    began = time.monotonic()
    restorer.begin(state, {"in": 1})
    steps = 0
    ended = []
    while restorer.active:
        before = restorer.records_done
        ended += restorer.step()
        assert restorer.records_done - before <= 50
        steps += 1
    assert [r.store for r in ended] == ["n"]  # ended once, though its end was also reported
    assert time.monotonic() - began >= 0.25  # 300 records at 1000/s
    assert steps >= 6 and restorer.records_done == 300
    assert sum(1 for _ in state.stores["n"].backend.scan(None, None)) == 300
    assert state.read_checkpoint("n") == 300


# -- group protocols ----------------------------------------------------------------------
def test_the_classic_protocol_keeps_todays_assignors_and_client_side_session() -> None:
    t = counting("at_least_once")
    stateless = t.processor("q")
    stateless.stream(t.topics["echo"]).to(t.topic("out", key=sf.String(), value=sf.Int()))
    stateful = consumer_conf(t.processors["p"], Config(), "0")
    assert stateful["partition.assignment.strategy"] == "range"
    assert stateful["session.timeout.ms"] == 10000 and "group.protocol" not in stateful
    assert consumer_conf(stateless, Config(), "0")["partition.assignment.strategy"] == (
        "cooperative-sticky")


def test_the_consumer_protocol_uses_the_brokers_range_assignor_and_no_client_session() -> None:
    conf = consumer_conf(counting("exactly_once").processors["p"],
                         Config(group_protocol="consumer"), "0")
    assert conf["group.protocol"] == "consumer" and conf["group.remote.assignor"] == "range"
    # librdkafka refuses these under group.protocol=consumer: they are the broker's
    for key in ("session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy"):
        assert key not in conf


def test_group_settings_that_would_break_co_partitioning_are_refused() -> None:
    t = sf.Topology("eng")
    a = t.topic("a", key=sf.String(), value=sf.Json(), external=True)
    b = t.topic("b", key=sf.String(), value=sf.Json(), external=True)
    p = t.processor("join")
    p.stream(a).left_join(t.table(b), lambda x, y: x).to(t.topic("o", key=sf.String(),
                                                                 value=sf.Json()))
    with pytest.raises(ConfigError, match="co-partitioned inputs"):
        consumer_conf(p, Config(group_assignor="cooperative-sticky"), "0")
    with pytest.raises(ConfigError, match="group_protocol must be one of"):
        consumer_conf(p, Config(group_protocol="eager"), "0")
    assert consumer_conf(p, Config(group_assignor="range"), "0")[
        "partition.assignment.strategy"] == "range"
