"""Global tables (Kafka Streams' GlobalKTable) through the test driver, on both store backends.

Every instance holds the whole global topic, loaded before any stream record is processed
and kept up to date; joins take a key extractor and need no co-partitioning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import streamflow as sf
from streamflow.dsl.topology import TopologyError
from streamflow.ops.check import check_topology
from streamflow.runtime.permissions import required_acls
from streamflow.testing import TopologyTestDriver
from streamflow.testing.memory import partition_for

BACKENDS = pytest.mark.parametrize("store", ["memory", "rocksdb"])


def _topology(*, left: bool = False, global_partitions: int = 1,
              stream_partitions: int = 1) -> sf.Topology:
    t = sf.Topology("gt")
    orders = t.topic("orders", key=sf.String(), value=sf.Json(), partitions=stream_partitions,
                     external=True)
    customers = t.global_table(t.topic("customers", key=sf.String(), value=sf.Json(),
                                       partitions=global_partitions, external=True))
    out = t.topic("out", key=sf.String(), value=sf.Json())
    s = t.processor("enrich").stream(orders)
    join = s.left_join if left else s.join
    join(customers, lambda o, c: [o["id"], c and c["name"]],
         key=lambda _k, o: o["customer"], name="with-customer").to(out)
    return t


def _values(d: TopologyTestDriver) -> list[Any]:
    return d.output("out").read_values()


@BACKENDS
def test_stream_records_are_enriched_by_the_row_of_the_extracted_key(store: str) -> None:
    with TopologyTestDriver(_topology(), config={"store": store}) as d:
        d.input("customers").send({"name": "Ada"}, key="c1", timestamp=5_000)
        d.input("customers").send({"name": "Bob"}, key="c2", timestamp=5_000)
        orders = d.input("orders")
        # the order key is not the customer: no co-partitioning, no repartition
        orders.send({"id": 1, "customer": "c2"}, key="o1", timestamp=1_000)
        orders.send({"id": 2, "customer": "c1"}, key="o2", timestamp=1_000)
        orders.send({"id": 3, "customer": "c9"}, key="o3", timestamp=1_000)  # no row: dropped
        assert _values(d) == [[1, "Bob"], [2, "Ada"]]
        keys = [r.key for r in d.output("out").read_records()]
        assert keys == []  # read once
        assert d.store("global-customers").get("c1") == {"name": "Ada"}


@BACKENDS
def test_left_join_passes_records_without_a_row_with_none(store: str) -> None:
    with TopologyTestDriver(_topology(left=True), config={"store": store}) as d:
        d.input("customers").send({"name": "Ada"}, key="c1")
        d.input("orders").send({"id": 1, "customer": "c9"}, key="o1")
        d.input("orders").send({"id": 2, "customer": "c1"}, key="o2")
        d.input("orders").send(None, key="o3")  # a null value is no event: dropped
        assert _values(d) == [[1, None], [2, "Ada"]]


@BACKENDS
def test_updates_and_tombstones_after_start_are_seen_by_the_next_record(store: str) -> None:
    with TopologyTestDriver(_topology(left=True), config={"store": store}) as d:
        customers, orders = d.input("customers"), d.input("orders")
        orders.send({"id": 1, "customer": "c1"}, key="o")
        customers.send({"name": "Ada"}, key="c1")
        orders.send({"id": 2, "customer": "c1"}, key="o")
        customers.send({"name": "Ada L."}, key="c1")
        orders.send({"id": 3, "customer": "c1"}, key="o")
        customers.send(None, key="c1")  # tombstone: the row is deleted
        orders.send({"id": 4, "customer": "c1"}, key="o")
        assert _values(d) == [[1, None], [2, "Ada"], [3, "Ada L."], [4, None]]
        assert "c1" not in d.store("global-customers")


@BACKENDS
def test_every_partition_of_the_global_topic_is_seen_by_a_single_partition_stream(
        store: str) -> None:
    t = _topology(global_partitions=3, stream_partitions=1)
    with TopologyTestDriver(t, config={"store": store}) as d:
        keys = [f"c{i}" for i in range(12)]
        for k in keys:
            d.input("customers").send({"name": k.upper()}, key=k)
        assert {partition_for(k.encode(), 3) for k in keys} == {0, 1, 2}
        for i, k in enumerate(keys):
            d.input("orders").send({"id": i, "customer": k}, key="same")
        assert _values(d) == [[i, k.upper()] for i, k in enumerate(keys)]


@BACKENDS
def test_every_task_of_a_wide_stream_reads_the_same_global_store(store: str) -> None:
    t = _topology(global_partitions=2, stream_partitions=4)
    with TopologyTestDriver(t, config={"store": store}) as d:
        d.input("customers").send({"name": "Ada"}, key="c1")
        for i in range(4):
            d.input("orders").send({"id": i, "customer": "c1"}, key=f"o{i}", partition=i)
        assert sorted(_values(d)) == [[i, "Ada"] for i in range(4)]
        engine = d.engines["enrich"][0]
        assert len(engine.tasks.tasks) == 4
        assert {id(task.compiled.context.globals["global-customers"])
                for task in engine.tasks.tasks.values()} == {id(d.store("global-customers"))}


@BACKENDS
def test_a_backlog_of_both_topics_is_enriched_as_the_table_is_loaded_first(store: str) -> None:
    with TopologyTestDriver(_topology(global_partitions=2), config={"store": store}) as d:
        with d.backlog():
            for i in range(5):
                d.input("orders").send({"id": i, "customer": f"c{i}"}, key="o",
                                       timestamp=1_000)
            for i in range(5):  # written after the orders, and stamped later
                d.input("customers").send({"name": f"n{i}"}, key=f"c{i}", timestamp=9_000)
        assert _values(d) == [[i, f"n{i}"] for i in range(5)]


@BACKENDS
def test_an_instance_loads_the_whole_table_before_its_first_record(store: str,
                                                                   tmp_path: Path) -> None:
    t = _topology()
    config = {"store": store, "state_dir": str(tmp_path)}
    with TopologyTestDriver(t, config=config, auto_commit=False) as d:
        for i in range(30):
            d.input("customers").send({"name": f"n{i}"}, key=f"c{i}")
        # a new instance, its global store empty: started, not yet turned once
        d.crash(keep_state=False, settle=False)
        globals_ = d.engines["enrich"][0].globals
        assert globals_ is not None and globals_.applied == 30
        assert d.store("global-customers").get("c29") == {"name": "n29"}
        d.input("orders").send({"id": 1, "customer": "c29"}, key="o")
        d.commit()
        assert _values(d) == [[1, "n29"]]


def test_a_restarted_rocksdb_instance_reads_only_what_is_new(tmp_path: Path) -> None:
    config = {"store": "rocksdb", "state_dir": str(tmp_path)}
    with TopologyTestDriver(_topology(global_partitions=2), config=config,
                            auto_commit=False) as d:
        for i in range(10):
            d.input("customers").send({"name": f"n{i}"}, key=f"c{i}")
        d.crash(keep_state=True)
        d.input("customers").send({"name": "new"}, key="c0")
        d.input("orders").send({"id": 1, "customer": "c0"}, key="o")
        d.input("orders").send({"id": 2, "customer": "c9"}, key="o")
        d.commit()
        assert _values(d) == [[1, "new"], [2, "n9"]]
        globals_ = d.engines["enrich"][0].globals
        assert globals_ is not None and globals_.applied == 1  # not the 10 it had


def test_a_checkpoint_that_does_not_fit_the_topic_rebuilds_the_store(tmp_path: Path) -> None:
    config = {"store": "rocksdb", "state_dir": str(tmp_path)}
    with TopologyTestDriver(_topology(), config=config, auto_commit=False) as d:
        d.input("customers").send({"name": "Ada"}, key="c1")
        engine = d.engines["enrich"][0]
        assert engine.globals is not None
        store = engine.globals.stores["global-customers"]
        store.offsets[0] = 99  # past the partition's end: as if the topic were recreated
        store.save_offsets()
        d.crash(keep_state=True)
        d.input("orders").send({"id": 1, "customer": "c1"}, key="o")
        d.commit()
        assert _values(d) == [[1, "Ada"]]
        assert d.engines["enrich"][0].globals.applied == 1  # type: ignore[union-attr]


@pytest.mark.parametrize("left", [False, True])
def test_an_extracted_key_of_none_drops_the_record_unless_left_with_a_null_key(
        left: bool) -> None:
    with TopologyTestDriver(_topology(left=left)) as d:
        d.input("orders").send({"id": 1, "customer": None}, key="o")
        d.input("orders").send({"id": 2, "customer": None}, key=None)
        assert _values(d) == ([[2, None]] if left else [])


def test_a_failing_key_extractor_goes_through_the_step_policy() -> None:
    t = sf.Topology("gt")
    orders = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    table = t.global_table(t.topic("customers", key=sf.String(), value=sf.Json(),
                                   external=True), name="cust")
    out = t.topic("out", key=sf.String(), value=sf.Json())
    (t.processor("p").stream(orders)
     .join(table, lambda o, c: c, key=lambda _k, o: o["customer"], on_error="skip")
     .to(out))
    with TopologyTestDriver(t) as d:
        d.input("customers").send({"n": 1}, key="c1")
        d.input("orders").send({"no": "customer"}, key="o")
        d.input("orders").send({"customer": "c1"}, key="o")
        assert _values(d) == [{"n": 1}]
        assert d.store("cust").get("c1") == {"n": 1}


def test_a_global_join_needs_a_key_extractor_and_a_table_join_refuses_one() -> None:
    t = sf.Topology("gt")
    orders = t.topic("orders", external=True)
    g = t.global_table(t.topic("customers", external=True))
    s = t.processor("p").stream(orders)
    with pytest.raises(TopologyError, match="needs key=fn"):
        s.join(g, lambda o, c: c)
    with pytest.raises(TopologyError, match="global_table"):
        s.join(t.table(t.topic("t", external=True)), lambda o, c: c, key=lambda k, v: k)


def test_a_topic_read_as_a_stream_cannot_also_be_a_global_table() -> None:
    t = sf.Topology("gt")
    orders = t.topic("orders", external=True)
    s = t.processor("p").stream(orders)
    with pytest.raises(TopologyError, match="read either way"):
        s.join(t.global_table(orders), lambda o, c: c, key=lambda k, v: k)


def test_check_does_not_ask_a_global_topic_to_be_co_partitioned() -> None:
    t = _topology(global_partitions=3, stream_partitions=6)
    result = check_topology(t)
    assert [p for p in result.problems if p.code == "co-partitioning"] == []
    assert t.processors["enrich"].joined_topics() == []


def test_check_reports_a_global_topic_that_nothing_writes_and_is_not_external() -> None:
    t = sf.Topology("gt")
    orders = t.topic("orders", external=True)
    table = t.global_table(t.topic("customers"))
    t.processor("p").stream(orders).join(table, lambda o, c: c, key=lambda k, v: k).to(
        t.topic("out"))
    problems = check_topology(t).problems
    assert [(p.code, "'customers'" in p.message) for p in problems] == [
        ("undeclared-source", True)]


def test_acls_grant_read_and_describe_on_the_global_topic_without_a_group() -> None:
    t = _topology()
    acls = required_acls(t.processors["enrich"], "User:app", create_topics=False)
    on_customers = sorted(a.operation for a in acls if a.name == "customers")
    assert on_customers == ["DESCRIBE", "DESCRIBE_CONFIGS", "READ"]
    groups = {a.name for a in acls if a.resource == "group"}
    assert groups == {"gt.enrich"}  # the processor's own group only


def test_describe_renders_the_global_table_and_its_key() -> None:
    text = _topology().describe()
    assert "reads: orders, customers (global)" in text
    assert ("with-customer: join(global customers, _topology.<locals>.<lambda>, "
            "key=_topology.<locals>.<lambda>)") in text


def test_name_suffix_renames_the_global_topic() -> None:
    t = _topology().with_name_suffix("-x")
    node = t.processors["enrich"].nodes["with-customer"]
    assert node.global_topic == "customers-x"  # type: ignore[attr-defined]
    with TopologyTestDriver(t) as d:
        d.input("customers-x").send({"name": "Ada"}, key="c1")
        d.input("orders-x").send({"id": 1, "customer": "c1"}, key="o")
        assert d.output("out-x").read_values() == [[1, "Ada"]]


def test_the_global_reader_logs_a_passing_broker_error_and_raises_the_others(
        caplog: pytest.LogCaptureFixture) -> None:
    from confluent_kafka import KafkaError, KafkaException

    from streamflow.kafka.ports import KafkaGlobalReader

    reader = KafkaGlobalReader({"bootstrap.servers": "127.0.0.1:9"})
    reader._on_error(KafkaError(KafkaError._TRANSPORT))  # a broker restarting: go on
    assert "global tables' consumer" in caplog.text
    with pytest.raises(KafkaException):
        reader._on_error(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))


@BACKENDS
def test_every_instance_of_a_scaled_processor_holds_the_whole_table(store: str) -> None:
    t = _topology(global_partitions=2, stream_partitions=2)
    with TopologyTestDriver(t, config={"store": store}) as d:
        d.input("customers").send({"name": "Ada"}, key="c1")
        d.scale(2)
        d.input("customers").send({"name": "Bob"}, key="c2")
        for i in range(2):
            d.input("orders").send({"id": i, "customer": f"c{i + 1}"}, key="o", partition=i)
        assert sorted(_values(d)) == [[0, "Ada"], [1, "Bob"]]
        engines = d.engines["enrich"]
        assert [sorted(e.tasks.tasks) for e in engines] == [[0], [1]]  # one task each
        for e in engines:
            assert e.globals is not None
            assert dict(e.globals.stores["global-customers"].items()) == {
                "c1": {"name": "Ada"}, "c2": {"name": "Bob"}}


def test_the_start_up_contract_check_reads_the_global_topic_as_an_input() -> None:
    import json
    import uuid

    from streamflow.kafka.registry import make_registry_client
    from streamflow.runtime.contracts import ContractError, check_processor
    from streamflow.serde import SerdeContext

    registry = make_registry_client({"url": f"mock://global-{uuid.uuid4().hex}"})
    written = {"type": "record", "name": "Customer",
               "fields": [{"name": "name", "type": "string"}]}
    registry.register("customers-value", json.dumps(written))
    wants_tier = {"type": "record", "name": "Customer",
                  "fields": [{"name": "name", "type": "string"},
                             {"name": "tier", "type": "int"}]}
    t = sf.Topology("gt")
    orders = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    table = t.global_table(t.topic("customers", key=sf.String(), value=sf.Avro(wants_tier),
                                   external=True))
    t.processor("p").stream(orders).join(table, lambda o, c: c, key=lambda k, v: k).to(
        t.topic("out", key=sf.String(), value=sf.Json()))
    with pytest.raises(ContractError, match="topic 'customers' \\(value\\)"):
        check_processor(t.processors["p"], SerdeContext(registry_factory=lambda: registry))
