"""Tables keep their rows' timestamps (Kafka Streams' timestamped key-value stores).

An aggregate carries the largest timestamp of the records that made it; a topic table's row
its record's. The timestamp is stored with the row (8 bytes before the value, on disk and in
the changelog), survives a restore, and stores written before timestamps existed still load:
their rows have an unknown time (-1), and a local database without the format in its
checkpoint is rebuilt from the changelog. Through the test driver, on both store backends.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

import streamflow as sf
from streamflow.serde import SerdeContext
from streamflow.state.keys import encode_key
from streamflow.state.store import NO_TIMESTAMP, TimestampedStore, TtlStore
from streamflow.state.task_state import SOURCE_HEADER, TaskState, encode_positions
from streamflow.testing import TopologyTestDriver

BACKENDS = ["memory", "rocksdb"]
CHANGELOG = "shop-p-total-changelog"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _summing(op: str = "reduce") -> sf.Topology:
    t = sf.Topology("shop")
    t.topic("amounts", key=sf.String(), value=sf.Int(), partitions=1, external=True)
    t.topic("out", key=sf.String(), value=sf.Int(), partitions=1)
    grouped = t.processor("p").stream("amounts").group_by_key()
    if op == "reduce":
        table = grouped.reduce(lambda a, b: a + b, name="total", value_serde=sf.Int())
    elif op == "aggregate":
        table = grouped.aggregate(lambda: 0, lambda a, b: a + b, name="total",
                                  value_serde=sf.Int())
    else:
        table = grouped.count(name="total")
    table.to_stream().to("out")
    return t


def _out(d: TopologyTestDriver) -> list[tuple[str, int, int]]:
    return [(r.key, r.value, r.timestamp) for r in d.output("out").read_records()]


@pytest.mark.parametrize("op", ["reduce", "aggregate"])
def test_an_aggregate_carries_the_largest_timestamp_of_its_records(backend: str, op: str
                                                                   ) -> None:
    with TopologyTestDriver(_summing(op), config={"store": backend}) as d:
        d.input("amounts").send(650, key="a", timestamp=103_000)
        d.input("amounts").send(670, key="a", timestamp=99_750)  # out of order
        d.input("amounts").send(5, key="a", timestamp=104_000)
        d.input("amounts").send(1, key="b", timestamp=10)
        assert _out(d) == [("a", 650, 103_000), ("a", 1320, 103_000), ("a", 1325, 104_000),
                           ("b", 1, 10)]
        assert d.store("total").get("a") == 1325  # the store API still gives plain values


def test_a_count_carries_the_largest_timestamp_too(backend: str) -> None:
    with TopologyTestDriver(_summing("count"), config={"store": backend}) as d:
        d.input("amounts").send(1, key="a", timestamp=50)
        d.input("amounts").send(1, key="a", timestamp=20)
        assert _out(d) == [("a", 1, 50), ("a", 2, 50)]


def test_the_timestamp_survives_a_restore_from_the_changelog(backend: str) -> None:
    with TopologyTestDriver(_summing(), config={"store": backend}) as d:
        d.input("amounts").send(650, key="a", timestamp=103_000)
        d.input("amounts").send(670, key="a", timestamp=99_750)
        d.crash(keep_state=False)
        d.input("amounts").send(1, key="a", timestamp=50)
        assert _out(d)[-1] == ("a", 1321, 103_000)


def test_a_topic_table_keeps_its_rows_timestamps_for_a_join(backend: str) -> None:
    t = sf.Topology("shop")
    t.topic("users", key=sf.String(), value=sf.Json(), partitions=1, external=True)
    t.topic("names", key=sf.String(), value=sf.Json(), partitions=1, external=True)
    t.topic("out", key=sf.String(), value=sf.Json(), partitions=1)
    p = t.processor("p")
    users = p.materialize(t.table("users"))
    users.join(t.table("names"), lambda u, n: [u, n]).to_stream().to("out")
    with TopologyTestDriver(t, config={"store": backend}) as d:
        d.input("names").send("Ann", key="u1", timestamp=500)
        d.crash(keep_state=False)  # the row and its timestamp come back from the changelog
        d.input("users").send({"age": 3}, key="u1", timestamp=200)
        records = d.output("out").read_records()
        assert [(r.value, r.timestamp) for r in records] == [([{"age": 3}, "Ann"], 500)]


# -- stores written before rows had timestamps --------------------------------------------
def test_an_old_changelog_without_timestamps_loads_with_unknown_times(backend: str) -> None:
    """Changelog records of an earlier version hold the plain value and no format header: they
    restore as rows of unknown time (-1), so the next record's timestamp wins."""
    with TopologyTestDriver(_summing(), config={"store": backend}) as d:
        d.input("amounts").send(1, key="b", timestamp=7)  # commits offset 1
        plain = [(SOURCE_HEADER, encode_positions({"amounts": 1}))]
        d.cluster.append(CHANGELOG, 0, encode_key("a"), sf.Int().serializer(
            CHANGELOG, False, SerdeContext())(40), 1, plain)
        d.crash(keep_state=False)
        store = d.store("total")
        assert dict(store.items()) == {"a": 40, "b": 1}
        assert store.get_stamped(encode_key("a")) == (40, NO_TIMESTAMP)
        assert store.get_stamped(encode_key("b")) == (1, 7)
        d.input("amounts").send(2, key="a", timestamp=30)
        assert _out(d)[-1] == ("a", 42, 30)


def _spec_state(tmp_path: Path, ttl: bool = False) -> TaskState:
    t = sf.Topology("shop")
    t.topic("amounts", key=sf.String(), value=sf.Int(), partitions=1, external=True)
    g = t.processor("p").stream("amounts").group_by_key()
    g.count(name="total", ttl=1000 if ttl else None)
    return TaskState(t.processors["p"].stores, 0, tmp_path, "rocksdb", SerdeContext())


def test_an_old_local_database_is_rebuilt_not_misread(tmp_path: Path) -> None:
    """A RocksDB store checkpointed by an earlier version (plain values, no format in the
    checkpoint) is not read as timestamped rows: its checkpoint is refused, so the restore
    wipes it and replays the changelog."""
    state = _spec_state(tmp_path)
    store = state.stores["total"]
    assert isinstance(store, TimestampedStore)
    store.backend.write([(encode_key("a"), b"3")])  # an old plain value
    checkpoint = state.paths["total"].parent / "0.checkpoint"
    checkpoint.write_text(json.dumps({"offset": 12, "written_at": 0}))
    assert state.read_checkpoint("total") is None
    state.write_checkpoint("total", 12)  # this version's checkpoint names its format
    assert json.loads(checkpoint.read_text())["format"] == "ts"
    assert state.read_checkpoint("total") == 12
    state.close()


def test_a_ttl_store_of_an_earlier_version_needs_no_migration(tmp_path: Path) -> None:
    """TTL stores already wrote an 8-byte time before the value: the same format."""
    state = _spec_state(tmp_path, ttl=True)
    store = state.stores["total"]
    assert isinstance(store, TtlStore)
    store.backend.write([(encode_key("a"), (70).to_bytes(8, "big") + orjson.dumps(3))])
    checkpoint = state.paths["total"].parent / "0.checkpoint"
    checkpoint.write_text(json.dumps({"offset": 12, "written_at": 0}))
    assert state.read_checkpoint("total") == 12
    assert store.get_stamped(encode_key("a")) == (3, 70)
    assert store.get("a") == 3
    state.close()


def test_process_stores_keep_plain_values_without_a_format(tmp_path: Path) -> None:
    t = sf.Topology("shop")
    t.topic("amounts", key=sf.String(), value=sf.Int(), partitions=1, external=True)
    p = t.processor("p")
    p.stream("amounts").process(lambda r, ctx: None, stores=["seen"])
    state = TaskState(p.stores, 0, tmp_path, "memory", SerdeContext())
    state.stores["seen"].put("a", 1)
    sent: list[tuple[bytes | None, list[tuple[str, bytes]]]] = []
    state.flush(lambda _t, _p, _k, v, h: sent.append((v, h)), {"amounts": 1})
    assert [v for v, _ in sent] == [b"1"]
    assert [k for k, _ in sent[0][1]] == [SOURCE_HEADER]
