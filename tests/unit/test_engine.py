"""The task engine through ``TopologyTestDriver``: partitions, commits, exactly-once abort
and rewind, crashes with restore from the changelog, rebalances and lost partitions, all
without a broker (the engine is the worker's; only the clients are in memory)."""

from __future__ import annotations

from collections import Counter

import pytest

import streamflow as sf
from streamflow.runtime.collector import DeliveryFailed
from streamflow.testing import TopologyTestDriver
from streamflow.testing.memory import MemoryConsumer, murmur2, partition_for

KEYS = [f"user-{i}" for i in range(12)]


def counting(guarantee: str, partitions: int = 4) -> sf.Topology:
    """Counts per key into a table topic; every input record also goes out as it is."""
    t = sf.Topology("eng")
    src = t.topic("in", key=sf.String(), value=sf.Int(), partitions=partitions, external=True)
    counts = t.topic("counts", key=sf.String(), value=sf.Long(), partitions=partitions)
    echo = t.topic("echo", key=sf.String(), value=sf.Int(), partitions=partitions)
    p = t.processor("p", guarantee=guarantee)
    stream = p.stream(src)
    stream.to(echo)
    stream.group_by_key().count(name="n").to_stream().to(counts)
    return t


def last_counts(driver: TopologyTestDriver) -> dict[str, int]:
    return dict(driver.output("counts").read_key_values())


@pytest.mark.parametrize("data, expected", [
    (b"21", -973932308), (b"foobar", -790332482), (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971), (b"abc", 479470107),
])
def test_murmur2_matches_kafkas_reference_values(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_keyed_records_go_to_the_partition_kafkas_partitioner_picks() -> None:
    with TopologyTestDriver(counting("at_least_once")) as d:
        for k in KEYS:
            d.input("in").send(1, key=k)
        echoed = d.output("echo").read_records()
        assert [r.key for r in echoed] != []
        for r in echoed:
            assert r.partition == partition_for(r.key.encode(), 4)
        assert {r.partition for r in echoed} == {0, 1, 2, 3}  # 12 keys spread out
        # each partition's task owns its keys: the store of a partition holds only those
        for part in range(4):
            keys = [k for k, _ in d.store("n", partition=part).items()]
            assert all(partition_for(k.encode(), 4) == part for k in keys)
        assert dict(d.store("n").items()) == {k: 1 for k in KEYS}


def test_an_explicit_partition_is_kept() -> None:
    t = sf.Topology("eng")
    src = t.topic("in", key=sf.String(), value=sf.Int(), partitions=3, external=True)
    seen: list[int | None] = []
    t.processor("p").stream(src).peek(lambda r: seen.append(r.partition))
    with TopologyTestDriver(t) as d:
        d.input("in").send(1, key="a", partition=2)
        d.input("in").send(1, key="a", partition=0)
    assert seen == [2, 0]


@pytest.mark.parametrize("abortable", [True, False])
def test_a_failed_exactly_once_commit_rewinds_and_the_outputs_stay_exactly_once(
        abortable: bool) -> None:
    with TopologyTestDriver(counting("exactly_once"), auto_commit=False) as d:
        engine = d.engines["p"][0]
        for k in ["a", "b", "a"]:
            d.input("in").send(1, key=k)
        d.commit()
        assert last_counts(d) == {"a": 2, "b": 1}
        for k in ["a", "c"]:
            d.input("in").send(1, key=k)
        assert d.output("counts").read_records() == []  # read_committed: not yet visible
        d.cluster.fail_next("commit_transaction", abortable=abortable)
        d.commit()  # fails: aborted (or the producer replaced) and rewound
        assert engine.committer.aborts == 1
        assert engine.committer.recreated == (0 if abortable else 1)
        assert d.output("counts").read_records() == []  # the aborted outputs never show
        d._pump()  # the rewound tasks process the same records again
        d.commit()
        assert d.output("counts").read_key_values() == [("a", 3), ("c", 1)]
        assert Counter(r.key for r in d.output("echo").read_records()) == {
            "a": 3, "b": 1, "c": 1}
        assert dict(d.store("n").items()) == {"a": 3, "b": 1, "c": 1}


def test_a_broken_transaction_while_producing_rewinds_instead_of_stopping() -> None:
    with TopologyTestDriver(counting("exactly_once"), auto_commit=False) as d:
        d.input("in").send(1, key="a")
        d.cluster.fail_next("produce", abortable=True)
        d.input("in").send(1, key="a")  # the produce fails: abort, rewind, reprocess both
        d._pump()
        d.commit()
        assert last_counts(d) == {"a": 2}
        assert [r.key for r in d.output("echo").read_records()] == ["a", "a"]


def test_at_least_once_a_refused_delivery_fails_the_commit_and_nothing_is_committed() -> None:
    with TopologyTestDriver(counting("at_least_once"), auto_commit=False) as d:
        d.cluster.fail_next("delivery")
        d.input("in").send(1, key="a")
        with pytest.raises(DeliveryFailed, match="injected delivery failure"):
            d.commit()
        assert d.engines["p"][0].consumer is not None
        group = d.cluster.group(d.processors[0].group_id)
        assert group.committed == {}


@pytest.mark.parametrize("guarantee, echoed", [("at_least_once", 5), ("exactly_once", 3)])
def test_a_crash_before_the_commit_replays_uncommitted_input_and_restores_state(
        guarantee: str, echoed: int) -> None:
    """kill -9 after processing, before committing: the new instance restores the counts
    from the changelog (local state lost), then processes the uncommitted records again.
    At least once the echo shows them twice; exactly once the aborted outputs never show."""
    with TopologyTestDriver(counting(guarantee), auto_commit=False) as d:
        for k in ["a", "a", "b"]:
            d.input("in").send(1, key=k)
        d.commit()
        for k in ["a", "b"]:
            d.input("in").send(1, key=k)
        d.crash()  # nothing of the last two records is committed
        d.commit()
        assert dict(d.store("n").items()) == {"a": 3, "b": 2}  # not 4 and 3
        assert len(d.output("echo").read_records()) == echoed + 2
        assert last_counts(d) == {"a": 3, "b": 2}


def test_a_restart_with_local_state_replays_only_the_changelog_tail() -> None:
    with TopologyTestDriver(counting("exactly_once"), config={"store": "rocksdb"}) as d:
        for k in KEYS:
            d.input("in").send(1, key=k)
        d.crash(keep_state=True)
        d.input("in").send(1, key="user-1")
        assert d.store("n").get("user-1") == 2
        assert sum(v for _, v in d.store("n").items()) == len(KEYS) + 1


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_rebalance_commits_revoked_work_and_moves_state_with_the_partitions(
        guarantee: str) -> None:
    with TopologyTestDriver(counting(guarantee), auto_commit=False) as d:
        for k in KEYS:
            d.input("in").send(1, key=k)
        d.scale(2)  # revocation commits what was processed; the new member restores
        first, second = d.engines["p"]
        assert sorted(first.tasks.tasks) == [0, 1] and sorted(second.tasks.tasks) == [2, 3]
        for k in KEYS:
            d.input("in").send(1, key=k)
        d.commit()
        assert dict(d.store("n").items()) == {k: 2 for k in KEYS}
        assert Counter(r.key for r in d.output("echo").read_records()) == {k: 2 for k in KEYS}
        d.scale(1)
        assert sorted(d.engines["p"][0].tasks.tasks) == [0, 1, 2, 3]
        d.input("in").send(1, key="user-3")
        d.commit()
        assert d.store("n").get("user-3") == 3


def test_lost_partitions_abort_the_open_transaction_and_rewind_the_rest() -> None:
    """A member that missed its session timeout must not commit outputs of partitions that
    now belong to another: its open transaction (holding outputs of every partition) is
    aborted and the partitions it still owns go back to their committed offsets."""
    with TopologyTestDriver(counting("exactly_once"), auto_commit=False) as d:
        d.scale(2)
        first, second = d.engines["p"]
        for k in KEYS:
            d.input("in").send(1, key=k)
        assert first.committer.open and second.committer.open
        consumer = first.consumer
        assert isinstance(consumer, MemoryConsumer)
        lost = sorted(consumer.positions)
        consumer.lose_all()  # the group has already given them away
        assert first.committer.aborts == 1 and not first.committer.open
        assert first.tasks.tasks == {}
        consumer.assign(lost)  # say the group hands them back in the next generation
        d._pump()
        d.commit()
        assert Counter(r.key for r in d.output("echo").read_records()) == {k: 1 for k in KEYS}
        assert dict(d.store("n").items()) == {k: 1 for k in KEYS}


def test_the_driver_refuses_to_crash_an_ambiguous_processor() -> None:
    t = counting("at_least_once")
    t.processor("q").stream(t.topics["echo"]).to(t.topic("out", key=sf.String(), value=sf.Int()))
    with TopologyTestDriver(t) as d, pytest.raises(sf.TopologyError, match="name the processor"):
        d.crash()


def test_exactly_once_through_a_repartition_counts_every_record_once_across_crashes() -> None:
    """A record crosses two transactions (input -> repartition topic -> count); crashes
    between and after them must neither lose nor double a count."""
    t = sf.Topology("eng")
    src = t.topic("in", key=sf.String(), value=sf.Int(), partitions=3, external=True)
    out = t.topic("totals", key=sf.String(), value=sf.Long(), partitions=3)
    p = t.processor("p", guarantee="exactly_once")
    (p.stream(src).group_by(lambda v: f"g{v % 2}", name="by-parity", key_serde=sf.String())
     .count(name="per-parity").to_stream().to(out))
    with TopologyTestDriver(t, auto_commit=False) as d:
        for i in range(10):
            d.input("in").send(i, key=f"k{i}")
            if i % 3 == 0:
                d.commit()
            if i % 4 == 1:
                d.crash()
        d.commit()
        d.commit()
        assert dict(d.store("per-parity").items()) == {"g0": 5, "g1": 5}
        finals = dict(d.output("totals").read_key_values())
        assert finals == {"g0": 5, "g1": 5}
