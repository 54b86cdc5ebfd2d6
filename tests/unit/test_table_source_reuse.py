"""Topic tables that reuse their source topic as changelog (``changelog="source"``).

Kafka Streams' ``reuse.ktable.source.topics``: the table's store has no changelog topic; a
restore reads the source topic up to the group's committed offset and writes the rows the
update step would have written. Through the test driver (a wiped state dir restores) and the
restorer itself, on both store backends; the refusals; what the operating tools see.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import streamflow as sf
from streamflow.config import Config
from streamflow.dsl.rename import with_name_suffix
from streamflow.dsl.topology import TopologyError
from streamflow.kafka import groups
from streamflow.ops import reset as ops_reset
from streamflow.ops.check import check_topology
from streamflow.runtime.errors import ProcessingFailed
from streamflow.runtime.permissions import topic_roles
from streamflow.runtime.restore import Restorer
from streamflow.runtime.topics import processor_topics
from streamflow.serde import SerdeContext
from streamflow.state.keys import encode_key
from streamflow.state.task_state import TaskState
from streamflow.testing import TopologyTestDriver
from streamflow.testing.memory import InMemoryCluster, MemoryChangelogs

BACKENDS = ["memory", "rocksdb"]
COMPACT = {"cleanup.policy": "compact"}
OWN_CHANGELOG = "shop-p-table-devices-changelog"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _enrich(changelog: str, *, on_deserialize_error: str = "fail",
            guarantee: str = "at_least_once") -> sf.Topology:
    """readings joined with the devices table (its values kept with String: 0xFE-marked)."""
    t = sf.Topology("shop")
    t.topic("devices", key=sf.String(), value=sf.String(), partitions=1, external=True,
            config=COMPACT)
    t.topic("readings", key=sf.String(), value=sf.Int(), partitions=1, external=True)
    t.topic("out", key=sf.String(), value=sf.Json(), partitions=1)
    p = t.processor("p", on_deserialize_error=on_deserialize_error,  # type: ignore[arg-type]
                    guarantee=guarantee)  # type: ignore[arg-type]
    devices = t.table("devices", changelog=changelog)  # type: ignore[arg-type]
    p.stream("readings").left_join(devices, lambda r, d: [r, d]).to("out")
    return t


def _run_history(d: TopologyTestDriver) -> None:
    """Rows, a join, a wipe-and-restore, an update and a delete, another wipe, more joins."""
    d.input("devices").send("hall", key="a", timestamp=1)
    d.input("devices").send("roof", key="b", timestamp=2)
    d.input("readings").send(1, key="a", timestamp=3)
    d.crash(keep_state=False)
    d.input("readings").send(2, key="b", timestamp=4)
    d.input("devices").send("cellar", key="b", timestamp=5)
    d.input("devices").send(None, key="a", timestamp=6)  # a tombstone deletes the row
    d.crash(keep_state=False)
    d.input("readings").send(3, key="a", timestamp=7)
    d.input("readings").send(4, key="b", timestamp=8)


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_wiped_table_store_restores_from_its_source_topic_and_joins_the_same(
        backend: str, guarantee: str) -> None:
    outputs = {}
    for changelog in ("own", "source"):
        with TopologyTestDriver(_enrich(changelog, guarantee=guarantee),
                                config={"store": backend}) as d:
            _run_history(d)
            outputs[changelog] = d.output("out").read_key_values()
            if changelog == "source":
                assert OWN_CHANGELOG not in d.cluster.logs  # never created, nothing written
                assert sorted(d.cluster.logs) == ["devices", "out", "readings"]
            else:
                assert OWN_CHANGELOG in d.cluster.logs
    assert outputs["source"] == outputs["own"] == [
        ("a", [1, "hall"]), ("b", [2, "roof"]), ("a", [3, None]), ("b", [4, "cellar"])]


def test_restored_rows_are_the_bytes_the_update_step_writes(backend: str) -> None:
    """Timestamp first, then the topic's serde bytes after the 0xFE mark (serde/stored.py)."""
    def rows(d: TopologyTestDriver) -> list[tuple[bytes, bytes]]:
        store = d.engines["p"][0].tasks.tasks[0].state.stores["table-devices"]
        return list(store.backend.scan(None, None))

    with TopologyTestDriver(_enrich("source"), config={"store": backend}) as d:
        d.input("devices").send("hall", key="a", timestamp=11)
        d.input("devices").send("roof", key="b", timestamp=12)
        d.input("devices").send(None, key="b", timestamp=13)
        written = rows(d)
        d.crash(keep_state=False)
        assert rows(d) == written
    assert written == [(encode_key("a"), (11).to_bytes(8, "big") + b"\xfehall")]


def test_table_records_past_the_committed_offset_are_processed_again(backend: str) -> None:
    """The restore stops at the committed offset; the rest is input, joined in time order."""
    outputs = {}
    for changelog in ("own", "source"):
        with TopologyTestDriver(_enrich(changelog), auto_commit=False,
                                config={"store": backend}) as d:
            d.input("devices").send("hall", key="a", timestamp=1)
            d.commit()
            d.input("devices").send("attic", key="a", timestamp=2)  # processed, not committed
            d.input("readings").send(1, key="a", timestamp=3)
            d.crash(keep_state=False)
            d.input("readings").send(2, key="a", timestamp=4)
            d.commit()
            outputs[changelog] = d.output("out").read_key_values()
    # before the crash, then the uncommitted reading again, then the new one
    assert outputs["source"] == outputs["own"] == [
        ("a", [1, "attic"]), ("a", [1, "attic"]), ("a", [2, "attic"])]


# -- the restorer itself: up to the committed offset, from the checkpoint -------------------

def _source_cluster() -> tuple[InMemoryCluster, sf.Topology]:
    t = _enrich("source", on_deserialize_error="skip")
    cluster = InMemoryCluster()
    cluster.create_topic("devices", 1)
    for i, (k, v) in enumerate([(b"a", b"hall"), (b"b", b"roof"), (None, b"keyless"),
                                (b"a", None), (b"c", b"attic"), (b"d", b"late")]):
        cluster.append("devices", 0, k, v, 100 + i, None)
    return cluster, t


def _restore(t: sf.Topology, cluster: InMemoryCluster, tmp_path: Path, backend: str,
             committed: int, *, fail: bool = False) -> tuple[TaskState, Any]:
    state = TaskState(t.processors["p"].stores, 0, tmp_path, backend, SerdeContext())
    restorer = Restorer(MemoryChangelogs(cluster), chunk=2, fail_undecodable=fail)
    (r,) = restorer.begin(state, {"devices": committed, "readings": -1})
    while restorer.active:
        restorer.step()
    return state, r


def test_the_restore_reads_the_source_up_to_the_committed_offset(tmp_path: Path,
                                                                  backend: str) -> None:
    cluster, t = _source_cluster()
    state, r = _restore(t, cluster, tmp_path, backend, committed=5)
    store = state.stores["table-devices"]
    assert dict(store.items()) == {"b": "roof", "c": "attic"}  # "a" deleted, "d" not yet
    assert store.get_stamped(encode_key("c")) == ("attic", 104)
    assert (r.start, r.position, r.applied) == (0, 5, 4)
    assert state.read_checkpoint("table-devices") == 5
    state.close()


def test_a_restore_goes_on_from_the_checkpoint_and_nothing_committed_restores_nothing(
        tmp_path: Path) -> None:
    cluster, t = _source_cluster()
    state, _ = _restore(t, cluster, tmp_path, "rocksdb", committed=2)
    state.close()
    state, r = _restore(t, cluster, tmp_path, "rocksdb", committed=6)
    assert (r.start, r.position) == (2, 6)
    assert dict(state.stores["table-devices"].items()) == {"b": "roof", "c": "attic",
                                                            "d": "late"}
    state.close()
    # offsets gone (nothing committed): the checkpoint is past them, the store starts empty
    state, r = _restore(t, cluster, tmp_path / "other", "memory", committed=-1001)
    assert (r.start, r.position, r.applied) == (0, 0, 0)
    assert dict(state.stores["table-devices"].items()) == {}
    state.close()


def test_an_undecodable_source_record_follows_on_deserialize_error(tmp_path: Path) -> None:
    cluster, t = _source_cluster()
    cluster.append("devices", 0, b"e", b"\xff\xfe not utf-8", 200, None)
    state, r = _restore(t, cluster, tmp_path / "skip", "memory", committed=7)
    assert r.skipped == 1 and "e" not in dict(state.stores["table-devices"].items())
    state.close()
    with pytest.raises(ProcessingFailed, match=r"devices\[0\]@6.*on_deserialize_error"):
        _restore(t, cluster, tmp_path / "fail", "memory", committed=7, fail=True)


# -- refusals ------------------------------------------------------------------------------

def test_a_topic_not_declared_compacted_is_refused() -> None:
    t = sf.Topology("shop")
    t.topic("devices", partitions=1, external=True, config={"cleanup.policy": "delete"})
    t.topic("readings", partitions=1, external=True)
    with pytest.raises(TopologyError, match=r"not declared compacted.*cleanup\.policy"):
        t.processor("p").stream("readings").join(t.table("devices", changelog="source"),
                                                 lambda r, d: d)


def test_a_topic_the_processor_writes_is_refused_whichever_comes_first() -> None:
    t = _enrich("source")
    t.topic("more", partitions=1, external=True)
    with pytest.raises(TopologyError, match="writes topic 'devices'"):
        t.processors["p"].stream("more").to("devices")
    t = sf.Topology("shop")
    t.topic("devices", partitions=1, config=COMPACT)
    t.topic("readings", partitions=1, external=True)
    readings = t.processor("p").stream("readings")
    readings.to("devices")
    with pytest.raises(TopologyError, match="writes topic 'devices'"):
        readings.join(t.table("devices", changelog="source"), lambda r, d: d)


def test_changelog_must_be_own_or_source() -> None:
    t = sf.Topology("shop")
    t.topic("devices", partitions=1, external=True, config=COMPACT)
    t.topic("readings", partitions=1, external=True)
    with pytest.raises(TopologyError, match="'own' or 'source'"):
        t.processor("p").stream("readings").join(
            t.table("devices", changelog="topic"),  # type: ignore[arg-type]
            lambda r, d: d)


# -- what the operating tools see ----------------------------------------------------------

def test_no_changelog_topic_is_declared_created_or_granted() -> None:
    t = _enrich("source")
    p = t.processors["p"]
    assert OWN_CHANGELOG not in t.topics
    assert p.changelog_topics() == []
    assert [x.name for x in processor_topics(p)] == ["readings", "devices", "out"]
    assert topic_roles(p) == {"readings": "input", "devices": "input", "out": "output"}
    assert check_topology(t).problems == []
    assert "table(devices, store=table-devices, changelog=source)" in t.describe()
    renamed = with_name_suffix(t, "-t1")  # the store's changelog is the renamed topic
    assert renamed.processors["p"].stores["table-devices"].changelog == "devices-t1"
    assert renamed.processors["p"].changelog_topics() == []


def test_reset_keeps_the_source_topic_and_wipes_the_local_state(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    parts = {"devices": [0], "readings": [0]}
    monkeypatch.setattr(groups, "describe_group", lambda _a, g, _t=0: groups.GroupInfo(
        g, "Empty", "classic", "", ()))
    monkeypatch.setattr(groups, "partitions_of", lambda _a, topics, _t=0: {
        t: parts[t] for t in topics if t in parts})
    monkeypatch.setattr(groups, "group_offsets", lambda _a, _g, pairs, _t=0: {
        p: 42 for p in pairs})
    monkeypatch.setattr(groups, "list_offsets", lambda _a, pairs, at, **_k: {
        p: 0 for p in pairs})
    folder = tmp_path / "host-0" / "shop" / "p"
    (folder / "table-devices" / "0").mkdir(parents=True)
    plan = ops_reset.plan_reset(_enrich("source"), "p", Config(state_dir=str(tmp_path)),
                                "earliest", admin=object())
    assert plan.delete_topics == () and plan.create_topics == ()
    assert plan.folders == (folder,)
    assert plan.offsets == {("readings", 0): 0, ("devices", 0): 0}


def test_the_checkpoint_of_a_reused_table_is_its_committed_source_offset() -> None:
    with TopologyTestDriver(_enrich("source"), auto_commit=False,
                            config={"store": "rocksdb"}) as d:
        d.input("devices").send("hall", key="a", timestamp=1)
        d.input("devices").send("roof", key="b", timestamp=2)
        d.commit()
        d.input("devices").send("attic", key="a", timestamp=3)  # not committed
        tasks = d.engines["p"][0].tasks
        tasks.checkpoint(list(tasks.tasks.values()))
        assert tasks.tasks[0].state.read_checkpoint("table-devices") == 2
        d.crash(keep_state=True)
        restorer = d.engines["p"][0].tasks.restorer
        assert restorer.records_done == 0  # nothing to read: the checkpoint is the commit
        d.input("readings").send(1, key="a", timestamp=4)
        d.commit()
        assert d.output("out").read_key_values() == [("a", [1, "attic"])]
