"""Stateful operators through the TopologyTestDriver, over both store backends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import streamflow as sf
from streamflow.state.backends import MemoryBackend, RocksBackend
from streamflow.state.store import TaskStore
from streamflow.state.task_state import decode_positions, encode_positions
from streamflow.testing import TopologyTestDriver

BACKENDS = ["memory", "rocksdb"]


def _clicks() -> tuple[sf.Topology, sf.Processor]:
    t = sf.Topology("shop")
    t.topic("clicks", key=sf.String(), value=sf.Json(), external=True)
    t.topic("users", key=sf.String(), value=sf.Json(), external=True)
    t.topic("out", key=sf.String(), value=sf.Json())
    return t, t.processor("p")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _driver(t: sf.Topology, backend: str) -> TopologyTestDriver:
    return TopologyTestDriver(t, config={"store": backend})


def test_group_by_count_emits_running_counts_per_new_key(backend: str) -> None:
    t, p = _clicks()
    p.stream("clicks").group_by(lambda v: v["page"], name="by-page").count(name="n") \
        .to_stream().to("out")
    with _driver(t, backend) as d:
        for page in ["a", "b", "a", "a"]:
            d.input("clicks").send({"page": page}, key="user-1")
        assert d.output("out").read_key_values() == [("a", 1), ("b", 1), ("a", 2), ("a", 3)]
        assert dict(d.store("n").items()) == {"a": 3, "b": 1}


def test_group_by_routes_through_a_named_repartition_topic(backend: str) -> None:
    t, p = _clicks()
    p.stream("clicks").group_by(lambda v: v["page"], name="by-page").count(name="n")
    assert "shop-p-by-page-repartition" in t.topics
    assert t.topics["shop-p-by-page-repartition"].internal
    assert "shop-p-n-changelog" in t.topics
    assert t.topics["shop-p-n-changelog"].config_dict == {"cleanup.policy": "compact"}
    with _driver(t, backend) as d:
        d.input("clicks").send({"page": "x"}, key="u")
        assert d.output("shop-p-by-page-repartition").read_key_values() == [("x", {"page": "x"})]


def test_group_by_key_does_not_repartition_an_unchanged_key(backend: str) -> None:
    t, p = _clicks()
    p.stream("clicks").group_by_key().count(name="n").to_stream().to("out")
    assert not [n for n in t.topics if n.endswith("-repartition")]
    with _driver(t, backend) as d:
        d.input("clicks").send({}, key="u1")
        d.input("clicks").send({}, key="u1")
        assert d.output("out").read_key_values() == [("u1", 1), ("u1", 2)]


def test_group_by_key_after_key_by_repartitions() -> None:
    t, p = _clicks()
    p.stream("clicks").key_by(lambda v: v["page"]).group_by_key(name="g").count(name="n")
    assert "shop-p-g-repartition" in t.topics


def test_reduce_starts_from_the_first_value(backend: str) -> None:
    t, p = _clicks()
    p.stream("clicks").group_by_key().reduce(lambda a, v: {"max": max(a["max"], v["max"])},
                                            name="max").to_stream().to("out")
    with _driver(t, backend) as d:
        for x in [3, 9, 4]:
            d.input("clicks").send({"max": x}, key="k")
        assert d.output("out").read_values() == [{"max": 3}, {"max": 9}, {"max": 9}]


def test_aggregate_folds_values_and_skips_null_keys_and_values(backend: str) -> None:
    t, p = _clicks()
    p.stream("clicks").group_by_key().aggregate(lambda: {"n": 0, "sum": 0},
                                               lambda a, v: {"n": a["n"] + 1,
                                                             "sum": a["sum"] + v["x"]},
                                               name="agg").to_stream().to("out")
    with _driver(t, backend) as d:
        d.input("clicks").send({"x": 2}, key="k")
        d.input("clicks").send({"x": 5}, key=None)
        d.input("clicks").send(None, key="k")
        d.input("clicks").send({"x": 3}, key="k")
        assert d.output("out").read_values() == [{"n": 1, "sum": 2}, {"n": 2, "sum": 5}]


def test_table_filter_turns_rejected_rows_into_deletes(backend: str) -> None:
    t, p = _clicks()
    (p.stream("clicks").group_by_key().count(name="n")
        .filter(lambda c: c >= 2).to_stream().to("out"))
    with _driver(t, backend) as d:
        for _ in range(3):
            d.input("clicks").send({}, key="k")
        assert d.output("out").read_values() == [None, 2, 3]


def test_table_map_values_transforms_updates(backend: str) -> None:
    t, p = _clicks()
    p.stream("clicks").group_by_key().count(name="n").map_values(lambda c: {"count": c}) \
        .to_stream().to("out")
    with _driver(t, backend) as d:
        d.input("clicks").send({}, key="k")
        assert d.output("out").read_values() == [{"count": 1}]


def test_stream_table_join_enriches_and_drops_records_without_a_row(backend: str) -> None:
    t, p = _clicks()
    p.stream("clicks").join(t.table("users"), lambda c, u: {**c, "name": u["name"]}).to("out")
    with _driver(t, backend) as d:
        d.input("clicks").send({"page": "a"}, key="u1")  # no user yet: dropped
        d.input("users").send({"name": "Ann"}, key="u1")
        d.input("clicks").send({"page": "b"}, key="u1")
        d.input("users").send(None, key="u1")  # tombstone deletes the row
        d.input("clicks").send({"page": "c"}, key="u1")
        assert d.output("out").read_values() == [{"page": "b", "name": "Ann"}]
        assert d.store("table-users").get("u1") is None


def test_left_join_passes_records_without_a_row_with_none(backend: str) -> None:
    t, p = _clicks()
    p.stream("clicks").left_join(t.table("users"), lambda c, u: [c["page"], u]).to("out")
    with _driver(t, backend) as d:
        d.input("clicks").send({"page": "a"}, key="u9")
        d.input("users").send({"name": "Bo"}, key="u9")
        d.input("clicks").send({"page": "b"}, key="u9")
        assert d.output("out").read_values() == [["a", None], ["b", {"name": "Bo"}]]


@pytest.mark.parametrize("left", [False, True])
def test_stream_records_with_a_null_value_are_dropped_by_joins(backend: str, left: bool) -> None:
    t, p = _clicks()
    stream = p.stream("clicks")
    (stream.left_join if left else stream.join)(t.table("users"), lambda c, u: [c, u]).to("out")
    with _driver(t, backend) as d:
        d.input("users").send({"name": "Ann"}, key="u1")
        d.input("clicks").send(None, key="u1")  # Kafka Streams drops it, row or not
        d.input("clicks").send(None, key="u2")
        d.input("clicks").send({"page": "a"}, key="u1")
        assert d.output("out").read_values() == [[{"page": "a"}, {"name": "Ann"}]]


def test_join_against_an_aggregation_of_the_same_processor(backend: str) -> None:
    t, p = _clicks()
    counts = p.stream("users").group_by_key().count(name="logins")
    p.stream("clicks").join(counts, lambda c, n: {**c, "logins": n}).to("out")
    with _driver(t, backend) as d:
        d.input("users").send({}, key="u1")
        d.input("users").send({}, key="u1")
        d.input("clicks").send({"page": "a"}, key="u1")
        assert d.output("out").read_values() == [{"page": "a", "logins": 2}]


def test_join_needs_a_materialized_table() -> None:
    _t, p = _clicks()
    filtered = p.stream("users").group_by_key().count(name="n").filter(lambda c: c > 1)
    with pytest.raises(sf.TopologyError, match="materialized"):
        p.stream("clicks").join(filtered, lambda a, b: a)


def test_process_has_explicit_store_access_and_forwards(backend: str) -> None:
    t, p = _clicks()

    def dedupe(record: sf.Record, ctx: Any) -> None:
        seen = ctx.store("seen")
        if record.value["id"] in seen:
            return
        seen.put(record.value["id"], record.timestamp)
        ctx.forward(record.key, record.value)

    p.stream("clicks").process(dedupe, stores=["seen"]).to("out")
    with _driver(t, backend) as d:
        for i in [1, 2, 1, 3, 2]:
            d.input("clicks").send({"id": f"e{i}"}, key="k", timestamp=i * 10)
        assert [v["id"] for v in d.output("out").read_values()] == ["e1", "e2", "e3"]
        assert dict(d.store("seen").items()) == {"e1": 10, "e2": 20, "e3": 30}


def test_changelog_gets_one_record_per_dirty_key_per_commit_with_source_offsets(
    backend: str,
) -> None:
    t, p = _clicks()
    p.stream("clicks").group_by_key().count(name="n")
    with _driver(t, backend) as d:
        d.input("clicks").send({}, key="k", timestamp=7)
        d.input("clicks").send({}, key="k", timestamp=9)
        records = d.output("shop-p-n-changelog").read_records()
    # the driver commits after each send; a table's row is its timestamp (8 bytes), then value
    assert [r.value for r in records] == [(7).to_bytes(8, "big") + b"1",
                                          (9).to_bytes(8, "big") + b"2"]
    assert decode_positions(records[-1].header("streamflow.source")) == {"clicks": 2}
    assert records[-1].header("streamflow.format") == b"ts"


# -- the store itself ---------------------------------------------------------------------
@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[TaskStore]:
    import orjson

    be = MemoryBackend() if request.param == "memory" else RocksBackend(tmp_path / "db")
    s = TaskStore("s", be, orjson.dumps, orjson.loads)
    yield s
    s.close()


def test_store_range_prefix_and_items_merge_unflushed_changes(store: TaskStore) -> None:
    for k in ["apple", "apricot", "banana", "cherry"]:
        store.put(k, len(k))
    store.flush()
    store.write_pending()
    store.put("avocado", 7)
    store.delete("banana")
    assert [k for k, _ in store.prefix("ap")] == ["apple", "apricot"]
    assert [k for k, _ in store.range("apricot", "cherry")] == ["apricot", "avocado"]
    assert dict(store.items()) == {"apple": 5, "apricot": 7, "avocado": 7, "cherry": 6}


def test_store_int_keys_scan_in_numeric_order(store: TaskStore) -> None:
    for k in [10, -5, 3, 2**40]:
        store.put(k, k)
    assert [k for k, _ in store.range(-10, 11)] == [-5, 3, 10]


def test_store_flush_batches_last_value_per_key_and_deletes(store: TaskStore) -> None:
    store.put("a", 1)
    store.put("a", 2)
    store.put("b", 1)
    store.delete("b")
    batch = dict(store.flush())
    assert batch == {b"sa": b"2", b"sb": None}
    assert store.flush() == []
    store.write_pending()
    assert store.backend.get(b"sa") == b"2"


def test_store_resize_cache_keeps_the_newest_values_and_reads_the_rest_from_the_backend(
        store: TaskStore) -> None:
    for i in range(10):
        store.put(f"k{i}", i)
    store.flush()
    store.write_pending()
    store.resize_cache(3)
    assert list(store._cache) == [b"sk7", b"sk8", b"sk9"]
    assert [store.get(f"k{i}") for i in range(10)] == list(range(10))
    assert len(store._cache) <= 3


def test_store_discard_uncommitted_forgets_pending_changes(store: TaskStore) -> None:
    store.put("a", 1)
    store.flush()
    store.write_pending()
    store.put("a", 2)
    store.flush()
    store.discard_uncommitted()
    store.write_pending()
    assert store.get("a") == 1


def test_source_positions_header_round_trips() -> None:
    pos = {"orders": 17, "shop-p-g-repartition": 3}
    assert decode_positions(encode_positions(pos)) == pos
    assert decode_positions(None) == {}


# -- event-time TTL ---------------------------------------------------------------------
def test_count_with_ttl_forgets_keys_quiet_for_longer_than_the_ttl(backend: str) -> None:
    t, p = _clicks()
    p.stream("clicks").group_by_key().count(name="n", ttl=1000).to_stream().to("out")
    with _driver(t, backend) as d:
        d.input("clicks").send({}, key="a", timestamp=0)
        d.input("clicks").send({}, key="a", timestamp=900)  # within the TTL: 2
        d.input("clicks").send({}, key="b", timestamp=2500)  # a has been quiet for 1600 ms
        d.input("clicks").send({}, key="a", timestamp=2600)  # so it starts again
        assert d.output("out").read_key_values() == [("a", 1), ("a", 2), ("b", 1), ("a", 1)]


def test_ttl_sweep_deletes_expired_entries_with_changelog_tombstones(backend: str) -> None:
    t, p = _clicks()
    p.stream("clicks").group_by_key().count(name="n", ttl=1000)
    with _driver(t, backend) as d:
        d.input("clicks").send({}, key="old", timestamp=0)
        d.output("shop-p-n-changelog").read_records()
        d.input("clicks").send({}, key="new", timestamp=5000)  # the commit sweeps "old"
        changes = dict(d.output("shop-p-n-changelog").read_key_values())
        assert changes[b"sold"] is None
        assert [k for k, _ in d.store("n").items()] == ["new"]


def test_ttl_entries_keep_their_write_time_through_the_changelog_bytes(tmp_path: Any) -> None:
    import orjson

    from streamflow.state.store import TtlStore

    s = TtlStore("s", MemoryBackend(), orjson.dumps, orjson.loads, ttl_ms=100)
    s.observe(50)
    s.put("k", {"v": 1})
    (kb, vb), = s.flush()
    s.write_pending()
    assert vb is not None and int.from_bytes(vb[:8], "big") == 50 and vb[8:] == b'{"v":1}'
    restored = TtlStore("s", MemoryBackend(), orjson.dumps, orjson.loads, ttl_ms=100)
    restored.backend.write([(kb, vb)])
    restored.observe(140)
    assert restored.get("k") == {"v": 1}
    restored.observe(151)
    assert restored.get("k") is None


def test_ttl_must_be_positive() -> None:
    _t, p = _clicks()
    with pytest.raises(sf.TopologyError, match="ttl must be positive"):
        p.add_store("s", ttl=0)
