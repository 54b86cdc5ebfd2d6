"""Foreign-key table-table joins (KIP-213) through the TopologyTestDriver, on both backends.

Orders (the left table, keyed by order id) name a customer (the right table's key) in their
value. The tables are read from topics of three partitions, so left rows and the right rows
they name mostly sit in different tasks and meet through the subscription and response topics.
"""

from __future__ import annotations

from typing import Any

import pytest

import streamflow as sf
from streamflow.dsl.foreign_key import foreign_key_join
from streamflow.dsl.topology import TopologyError
from streamflow.plan.foreign_key import PROPAGATE, response, subscription, value_hash
from streamflow.runtime.permissions import required_acls
from streamflow.testing import TopologyTestDriver

BACKENDS = ["memory", "rocksdb"]
SUBSCRIPTIONS = "shop-enrich-oc-subscription-registration"
RESPONSES = "shop-enrich-oc-subscription-response"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _joiner(order: dict[str, Any], customer: dict[str, Any] | None) -> str:
    return f"{order['id']}:{customer['name'] if customer else '-'}"


def _topology(*, left: bool = False) -> sf.Topology:
    t = sf.Topology("shop")
    orders = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    customers = t.topic("customers", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("enriched", key=sf.String(), value=sf.Json())
    p = t.processor("enrich")
    joined = foreign_key_join(p.materialize(t.table(orders)), p.materialize(t.table(customers)),
                              lambda o: o.get("customer"), _joiner, left=left, name="oc")
    joined.to_stream().to(out)
    return t


def _driver(t: sf.Topology, backend: str, partitions: int = 3) -> TopologyTestDriver:
    return TopologyTestDriver(t, config={"store": backend, "partitions": partitions})


class Shop:
    """Sends orders and customers with increasing timestamps; reads the joined output."""

    def __init__(self, driver: TopologyTestDriver) -> None:
        self.d = driver
        self.ts = 0

    def _ts(self) -> int:
        self.ts += 10
        return self.ts

    def order(self, oid: str, customer: str | None) -> None:
        self.d.input("orders").send({"id": oid, "customer": customer}, key=oid,
                                    timestamp=self._ts())

    def delete_order(self, oid: str) -> None:
        self.d.input("orders").send(None, key=oid, timestamp=self._ts())

    def customer(self, cid: str, name: str | None) -> None:
        self.d.input("customers").send(None if name is None else {"name": name}, key=cid,
                                       timestamp=self._ts())

    def out(self) -> list[tuple[str, Any]]:
        return self.d.output("enriched").read_key_values()


def test_inner_join_emits_once_both_rows_exist_and_follows_right_updates(backend: str) -> None:
    with _driver(_topology(), backend) as d:
        s = Shop(d)
        s.order("o1", "c1")
        assert s.out() == []  # no customer c1 yet: an inner join emits nothing
        s.customer("c1", "ann")
        assert s.out() == [("o1", "o1:ann")]
        s.customer("c1", "anna")
        assert s.out() == [("o1", "o1:anna")]
        s.order("o1", "c1")  # same foreign key, new left value: joined again
        assert s.out() == [("o1", "o1:anna")]
        s.customer("c9", "nobody's")  # no subscriber
        assert s.out() == []


def test_left_join_emits_rows_without_a_right_row_with_none(backend: str) -> None:
    with _driver(_topology(left=True), backend) as d:
        s = Shop(d)
        s.order("o1", "c1")
        assert s.out() == [("o1", "o1:-")]
        s.customer("c1", "ann")
        assert s.out() == [("o1", "o1:ann")]
        s.order("o2", None)  # no foreign key at all
        assert s.out() == [("o2", "o2:-")]


def test_several_left_rows_sharing_a_foreign_key_all_follow_its_row(backend: str) -> None:
    with _driver(_topology(), backend) as d:
        s = Shop(d)
        s.customer("c1", "ann")
        for i in range(6):
            s.order(f"o{i}", "c1")
        assert sorted(s.out()) == [(f"o{i}", f"o{i}:ann") for i in range(6)]
        s.customer("c1", "anna")
        assert sorted(s.out()) == [(f"o{i}", f"o{i}:anna") for i in range(6)]


def test_a_foreign_key_change_unsubscribes_from_the_old_right_row(backend: str) -> None:
    with _driver(_topology(), backend) as d:
        s = Shop(d)
        s.customer("c1", "ann")
        s.customer("c2", "bob")
        s.order("o1", "c1")
        assert s.out() == [("o1", "o1:ann")]
        s.order("o1", "c2")
        assert s.out() == [("o1", "o1:bob")]
        s.customer("c1", "anna")  # the old right row no longer contributes
        assert s.out() == []
        s.order("o1", "c3")  # moved to a missing row: the inner join retracts its result
        assert s.out() == [("o1", None)]
        s.customer("c2", "bobby")
        assert s.out() == []
        s.customer("c3", "cy")
        assert s.out() == [("o1", "o1:cy")]
        subs = d.store("oc-subscriptions")
        assert len(list(subs.items())) == 1  # only (c3, o1) is left


def test_an_inner_join_insert_without_a_right_row_emits_nothing(backend: str) -> None:
    with _driver(_topology(), backend) as d:
        s = Shop(d)
        s.order("o1", "c1")
        assert s.out() == []
        s.order("o1", "c1")  # an update asks for an answer either way: a harmless tombstone
        assert s.out() == [("o1", None)]


def test_a_move_to_a_missing_row_then_an_update_still_retracts_the_result(
        backend: str) -> None:
    with _driver(_topology(), backend) as d:
        s = Shop(d)
        s.customer("c1", "ann")
        s.order("o1", "c1")
        assert s.out() == [("o1", "o1:ann")]
        with d.backlog():  # the move's answer comes back after the update: it is stale
            s.order("o1", "c0")
            d.input("orders").send({"id": "o1-v2", "customer": "c0"}, key="o1",
                                   timestamp=s._ts())
        assert s.out() == [("o1", None)]
        assert d.metrics()["oc.stale_responses"] == 1


def test_a_left_delete_deletes_the_result_and_its_subscription(backend: str) -> None:
    with _driver(_topology(), backend) as d:
        s = Shop(d)
        s.customer("c1", "ann")
        s.order("o1", "c1")
        s.order("o2", "c1")
        assert sorted(s.out()) == [("o1", "o1:ann"), ("o2", "o2:ann")]
        s.delete_order("o1")
        assert s.out() == [("o1", None)]
        s.customer("c1", "anna")
        assert s.out() == [("o2", "o2:anna")]
        s.delete_order("o9")  # deleting a row that never was emits nothing
        assert s.out() == []
        assert d.store("oc-left").get("o1") is None


def test_a_right_delete_retracts_inner_results(backend: str) -> None:
    with _driver(_topology(), backend) as d:
        s = Shop(d)
        s.customer("c1", "ann")
        s.order("o1", "c1")
        s.order("o2", "c1")
        s.out()
        s.customer("c1", None)
        assert sorted(s.out()) == [("o1", None), ("o2", None)]
        s.customer("c1", "ann again")  # the subscriptions stay: the row comes back
        assert sorted(s.out()) == [("o1", "o1:ann again"), ("o2", "o2:ann again")]


def test_a_right_delete_keeps_left_join_rows_with_none(backend: str) -> None:
    with _driver(_topology(left=True), backend) as d:
        s = Shop(d)
        s.customer("c1", "ann")
        s.order("o1", "c1")
        assert s.out() == [("o1", "o1:ann")]
        s.customer("c1", None)
        assert s.out() == [("o1", "o1:-")]
        s.delete_order("o1")
        assert s.out() == [("o1", None)]


def test_a_none_foreign_key_retracts_an_inner_result(backend: str) -> None:
    with _driver(_topology(), backend) as d:
        s = Shop(d)
        s.customer("c1", "ann")
        s.order("o1", "c1")
        s.out()
        s.order("o1", None)
        assert s.out() == [("o1", None)]
        s.customer("c1", "anna")
        assert s.out() == []


def test_responses_to_an_older_left_value_are_dropped(backend: str) -> None:
    with _driver(_topology(), backend) as d:
        s = Shop(d)
        s.customer("c1", "ann")
        s.customer("c2", "bob")
        s.out()
        with d.backlog():  # both versions are processed before any response comes back
            s.order("o1", "c1")
            d.input("orders").send({"id": "o1-v2", "customer": "c2"}, key="o1",
                                   timestamp=s._ts())
        assert s.out() == [("o1", "o1-v2:bob")]  # never the stale o1:ann
        assert d.metrics()["oc.stale_responses"] == 1


def test_a_response_whose_hash_does_not_match_is_dropped(backend: str) -> None:
    with _driver(_topology(left=True), backend) as d:
        s = Shop(d)
        s.order("o1", "c1")
        assert s.out() == [("o1", "o1:-")]
        stale = response(value_hash({"id": "o1", "customer": "c0"}), b'{"name":"old"}')
        d.input(RESPONSES).send_raw(stale, key=b"o1", timestamp=s._ts())
        assert s.out() == []
        fresh = response(value_hash({"id": "o1", "customer": "c1"}), b'{"name":"new"}')
        d.input(RESPONSES).send_raw(fresh, key=b"o1", timestamp=s._ts())
        assert s.out() == [("o1", "o1:new")]
        assert d.metrics()["oc.stale_responses"] == 1


def test_a_subscription_for_a_missing_right_row_answers_none_when_asked(backend: str) -> None:
    with _driver(_topology(left=True), backend) as d:
        digest = value_hash({"id": "o1", "customer": "c1"})
        d.input(SUBSCRIPTIONS).send_raw(subscription(PROPAGATE, digest, b"o1"), key=b"c1",
                                        timestamp=5)
        assert d.output(RESPONSES).read_key_values() == [("o1", response(digest, None))]


def test_state_is_restored_from_the_changelogs_after_a_crash(backend: str) -> None:
    with TopologyTestDriver(_topology(), config={"store": backend, "partitions": 3},
                            auto_commit=False) as d:
        s = Shop(d)
        s.customer("c1", "ann")
        s.customer("c2", "bob")
        s.order("o1", "c1")
        s.order("o2", "c1")
        d.commit()
        assert sorted(s.out()) == [("o1", "o1:ann"), ("o2", "o2:ann")]
        d.crash(keep_state=False)
        s.customer("c1", "anna")  # the subscriptions were restored
        d.commit()
        assert sorted(s.out()) == [("o1", "o1:anna"), ("o2", "o2:anna")]
        s.order("o1", "c2")  # the left rows were restored: o1 leaves c1
        d.commit()
        assert s.out() == [("o1", "o1:bob")]
        s.customer("c1", "annie")
        d.commit()
        assert s.out() == [("o2", "o2:annie")]


def test_the_right_table_may_be_an_aggregation(backend: str) -> None:
    t = sf.Topology("shop")
    orders = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    visits = t.topic("visits", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("enriched", key=sf.String(), value=sf.Json())
    p = t.processor("enrich")
    counts = p.stream(visits).group_by_key().count(name="visits-per-customer")
    joined = foreign_key_join(p.materialize(t.table(orders)), counts, lambda o: o["customer"],
                              lambda o, n: f"{o['id']}:{n}", name="oc")
    joined.to_stream().to(out)
    with _driver(t, backend) as d:
        d.input(orders).send({"id": "o1", "customer": "c1"}, key="o1", timestamp=1)
        d.input(visits).send({}, key="c1", timestamp=2)
        d.input(visits).send({}, key="c1", timestamp=3)
        assert d.output(out).read_key_values() == [("o1", "o1:1"), ("o1", "o1:2")]


def test_a_single_partition_works_too(backend: str) -> None:
    with _driver(_topology(), backend, partitions=1) as d:
        s = Shop(d)
        s.customer("c1", "ann")
        s.order("o1", "c1")
        assert s.out() == [("o1", "o1:ann")]


def test_describe_shows_the_join_and_its_internal_topics() -> None:
    text = _topology().describe()
    assert f"{SUBSCRIPTIONS} (internal): key=String, value=Bytes" in text
    assert f"{RESPONSES} (internal): key=String, value=Bytes" in text
    assert f"oc.subscribe: fk_join.subscribe(_topology.<locals>.<lambda> -> {SUBSCRIPTIONS})" \
        in text
    assert "oc.lookup: fk_join.lookup(store=table-customers" in text
    assert "oc: fk_join(_joiner, stale responses dropped)" in text
    assert "fk_left_join(_joiner" in _topology(left=True).describe()
    assert f"  writes: enriched, {SUBSCRIPTIONS}, {RESPONSES}\n" in text  # drawn as edges too


def test_acls_cover_the_internal_topics_and_stores() -> None:
    p = _topology().processors["enrich"]
    acls = {(a.name, a.operation) for a in required_acls(p, "User:app", create_topics=True)}
    for topic in (SUBSCRIPTIONS, RESPONSES, "shop-enrich-oc-left-changelog",
                  "shop-enrich-oc-subscriptions-changelog"):
        for op in ("READ", "WRITE", "DESCRIBE", "CREATE", "DESCRIBE_CONFIGS"):
            assert (topic, op) in acls


def test_a_name_suffix_renames_the_internal_topics(backend: str) -> None:
    t = _topology().with_name_suffix("-t1")
    assert f"{SUBSCRIPTIONS}-t1" in t.topics
    with _driver(t, backend) as d:
        d.input("customers-t1").send({"name": "ann"}, key="c1", timestamp=1)
        d.input("orders-t1").send({"id": "o1", "customer": "c1"}, key="o1", timestamp=2)
        assert d.output("enriched-t1").read_key_values() == [("o1", "o1:ann")]


def test_a_failing_joiner_is_a_step_error_naming_the_join() -> None:
    t = sf.Topology("shop")
    orders = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    customers = t.topic("customers", key=sf.String(), value=sf.Json(), external=True)
    p = t.processor("enrich", on_error="skip")
    foreign_key_join(p.materialize(t.table(orders)), p.materialize(t.table(customers)),
                     lambda o: o["customer"], lambda o, c: 1 / 0, name="oc")
    with TopologyTestDriver(t) as d:
        d.input(customers).send({"name": "ann"}, key="c1", timestamp=1)
        d.input(orders).send({"id": "o1", "customer": "c1"}, key="o1", timestamp=2)
        d.input(orders).send({"id": "o2"}, key="o2", timestamp=3)  # no "customer": KeyError
        assert d.metrics() == {}  # skipped records are not task counters
        assert d.store("oc-left").get("o1") == {"id": "o1", "customer": "c1"}
        assert d.store("oc-left").get("o2") is None


def test_misuse_is_refused_with_what_to_do() -> None:
    t = sf.Topology("shop")
    orders = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    customers = t.topic("customers", key=sf.String(), value=sf.Json(), external=True)
    p, q = t.processor("p"), t.processor("q")
    lt = p.materialize(t.table(orders))
    with pytest.raises(TopologyError, match=r"processor.materialize\(topology.table"):
        foreign_key_join(lt, t.table(customers), str, _joiner)  # type: ignore[arg-type]
    with pytest.raises(TopologyError, match="one processor"):
        foreign_key_join(lt, q.materialize(t.table(customers)), str, _joiner)
    rt = p.materialize(t.table(customers)).filter(bool)
    with pytest.raises(TopologyError, match="must be materialized"):
        foreign_key_join(lt, rt, str, _joiner)
    with pytest.raises(TopologyError, match="foreign_key function"):
        foreign_key_join(lt, p.materialize(t.table(customers)), "customer",  # type: ignore[arg-type]
                         _joiner)


def test_both_tables_topics_must_have_the_internal_topics_width() -> None:
    from streamflow.kafka.client import TopicState
    from streamflow.runtime.topics import _copartitioning, processor_topics

    p = _topology().processors["enrich"]
    assert p.joined_topics() == ["orders", "customers"]  # the start-up check compares them
    state = {"orders": TopicState("orders", 3, 1, {}),
             "customers": TopicState("customers", 6, 1, {})}
    problems = _copartitioning(processor_topics(p), state, p.joined_topics())
    assert problems and "topic 'orders' has 3 partitions but 'customers' has 6" in problems[0]


def test_check_warns_about_a_join_whose_state_is_named_by_position() -> None:
    from streamflow.ops.state_names import unnamed_state

    t = sf.Topology("shop")
    orders = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    customers = t.topic("customers", key=sf.String(), value=sf.Json(), external=True)
    p = t.processor("enrich")
    foreign_key_join(p.materialize(t.table(orders)), p.materialize(t.table(customers)),
                     lambda o: o["customer"], _joiner)
    (found,) = unnamed_state(t)
    assert (found.step, found.topic) == ("fk-join-1", "shop-enrich-fk-join-1-left-changelog")
    assert found.fix == 'foreign_key_join(..., name="fk-join-1")'
    assert unnamed_state(_topology()) == []  # named "oc"
