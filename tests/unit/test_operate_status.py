"""``streamflow.ops.status`` without a broker: the figures it derives from the broker's and
the instances' answers (the broker calls are replaced; instances answer over real HTTP)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import streamflow as sf
from streamflow.config import Config
from streamflow.kafka import groups
from streamflow.observability.health import HealthServer
from streamflow.ops import status as ops_status
from streamflow.ops.status import (
    InstanceStatus,
    PartitionLag,
    ProcessorStatus,
    collect_status,
    fetch_instances,
)


def topology() -> sf.Topology:
    t = sf.Topology("shop")
    orders = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("big", key=sf.String(), value=sf.Json())
    t.processor("filter", on_error="dead_letter").stream(orders).filter(
        lambda o: o["n"] > 1, name="big").to(out)
    t.processor("audit").stream(out).map(lambda v: v, name="same").to(
        t.topic("audited", value=sf.Json()))
    return t


class FakeBroker:
    """What the broker answers: partitions, offsets, groups."""

    def __init__(self) -> None:
        self.partitions = {"orders": [0, 1], "big": [0], "shop.filter.dlq": [0]}
        self.start = {("orders", 0): 0, ("orders", 1): 5, ("big", 0): 0,
                      ("shop.filter.dlq", 0): 2}
        self.end = {("orders", 0): 10, ("orders", 1): 20, ("big", 0): 7,
                    ("shop.filter.dlq", 0): 5}
        self.groups: dict[str, groups.GroupInfo] = {}
        self.committed: dict[str, dict[tuple[str, int], int]] = {}

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(groups, "partitions_of", lambda _a, topics, _t=0: {
            t: self.partitions[t] for t in topics if t in self.partitions})
        monkeypatch.setattr(groups, "list_offsets", lambda _a, pairs, at, **_k: {
            p: (self.start if at == groups.EARLIEST else self.end)[p] for p in pairs})
        monkeypatch.setattr(groups, "describe_group", lambda _a, g, _t=0: self.groups.get(
            g, groups.GroupInfo(g, "Dead", "classic", "", ())))
        monkeypatch.setattr(groups, "group_offsets", lambda _a, g, pairs, _t=0: {
            p: o for p, o in self.committed.get(g, {}).items() if p in list(pairs)})


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> FakeBroker:
    b = FakeBroker()
    b.install(monkeypatch)
    return b


def test_lag_counts_from_the_log_start_when_the_group_committed_nothing() -> None:
    assert PartitionLag("t", 0, start=5, end=20, committed=None, owner=None).lag == 15
    assert PartitionLag("t", 0, start=5, end=20, committed=12, owner=None).lag == 8
    # a committed offset below a truncated log start: the group restarts at the start
    assert PartitionLag("t", 0, start=5, end=20, committed=2, owner=None).lag == 15
    assert PartitionLag("t", 0, start=0, end=3, committed=9, owner=None).lag == 0


def test_problems_name_processors_without_members_and_with_too_much_lag() -> None:
    lags = (PartitionLag("t", 0, 0, 100, 40, "a"),)
    member = ops_status.MemberStatus("a", "h", (("t", 0),))
    ok = ProcessorStatus("p", "g", "Stable", members=(member,), partitions=lags)
    assert ok.problems() == []
    assert ok.problems(max_lag=59) == ["processor p: lag 60 exceeds --max-lag 59"]
    assert ok.problems(max_lag=60) == []
    idle = ProcessorStatus("q", "g2", "Empty")
    assert idle.problems() == ["processor q: no members (group g2 is Empty)"]


def test_status_without_members_shows_lag_committed_offsets_and_dead_letters(
        broker: FakeBroker) -> None:
    broker.committed["shop.filter"] = {("orders", 0): 4}
    s = collect_status(topology(), Config(), admin=object())
    f = s.processor("filter")
    assert f.state == "Dead" and f.members == ()
    assert [(p.topic, p.partition, p.committed, p.lag) for p in f.partitions] == [
        ("orders", 0, 4, 6), ("orders", 1, None, 15)]
    assert f.lag == 21 and f.lag_by_topic() == {"orders": 21}
    assert f.dead_letter_topic == "shop.filter.dlq" and f.dead_letters == 3
    audit = s.processor("audit")
    assert audit.dead_letter_topic is None and audit.lag == 7
    assert s.problems() == ["processor filter: no members (group shop.filter is Dead)",
                            "processor audit: no members (group shop.audit is Dead)"]
    json.dumps(s.to_dict())  # JSON-able as it is


def test_members_are_named_by_instance_id_and_own_their_partitions(broker: FakeBroker) -> None:
    broker.groups["shop.filter"] = groups.GroupInfo("shop.filter", "Stable", "classic", "range", (
        groups.GroupMember("m-1", "shop.filter.host-a-0", None, "10.0.0.1", (("orders", 0),)),
        groups.GroupMember("m-2", "shop.filter.pod-1", "pod-1", "10.0.0.2", (("orders", 1),)),
    ))
    s = collect_status(topology(), Config(), ["filter"], admin=object())
    f = s.processor("filter")
    assert [(m.instance_id, m.host, m.static) for m in f.members] == [
        ("host-a-0", "10.0.0.1", False), ("pod-1", "10.0.0.2", True)]
    assert [p.owner for p in f.partitions] == ["host-a-0", "pod-1"]
    assert f.notes == ("instances not asked: set health_port (or --instances URL,...)",)
    assert [p.name for p in s.processors] == ["filter"]


@pytest.fixture
def instance() -> Iterator[dict[str, Any]]:
    doc: dict[str, Any] = {
        "alive": True, "ready": True, "reasons": [], "processor": "filter",
        "worker_id": "host-a-0", "processed": 100, "commits": 3, "dead_lettered": 1,
        "consumed": {"orders": 100}, "produced": {"big": 40}, "last_commit_age_s": 0.4,
        "restore": {"records": 0, "remaining": 0, "seconds": 0.0},
    }
    server = HealthServer(0, lambda: doc, host="127.0.0.1").start()
    try:
        yield {"doc": doc, "url": f"http://127.0.0.1:{server.port}"}
    finally:
        server.stop()


def test_rates_come_from_two_answers_of_an_instance(broker: FakeBroker,
                                                    instance: dict[str, Any]) -> None:
    first = collect_status(topology(), Config(), ["filter"], instances=[instance["url"]],
                           admin=object())
    i1 = first.processor("filter").instances[0]
    assert (i1.instance_id, i1.reachable, i1.processed, i1.last_commit_age_s) == (
        "host-a-0", True, 100, 0.4)
    assert i1.records_in_per_s is None  # one answer: no rate yet
    instance["doc"].update(consumed={"orders": 300}, produced={"big": 90})
    second = collect_status(topology(), Config(), ["filter"], instances=[instance["url"]],
                            previous=first, admin=object())
    i2 = second.processor("filter").instances[0]
    seconds = i2.fetched_at - i1.fetched_at
    assert i2.records_in_per_s == pytest.approx(200 / seconds)
    assert i2.records_out_per_s == pytest.approx(50 / seconds)
    assert second.processor("filter").records_in_per_s == i2.records_in_per_s
    # a restarted instance's counters begin again: no negative rate
    instance["doc"].update(consumed={"orders": 5}, produced={"big": 1})
    third = collect_status(topology(), Config(), ["filter"], instances=[instance["url"]],
                           previous=second, admin=object())
    assert third.processor("filter").instances[0].records_in_per_s is None


def test_an_unreachable_instance_is_shown_not_raised(broker: FakeBroker) -> None:
    s = collect_status(topology(), Config(), ["filter"], instances=["http://127.0.0.1:1"],
                       admin=object())
    assert [(i.url, i.reachable) for i in s.unreachable] == [("http://127.0.0.1:1", False)]
    assert "Connection refused" in (s.unreachable[0].error or "")


def test_members_hosts_and_health_port_find_the_instances(broker: FakeBroker,
                                                          instance: dict[str, Any]) -> None:
    port = int(instance["url"].rsplit(":", 1)[1])
    broker.groups["shop.filter"] = groups.GroupInfo("shop.filter", "Stable", "classic", "", (
        groups.GroupMember("m-1", "shop.filter.host-a-0", None, "127.0.0.1", (("orders", 0),)),
    ))
    s = collect_status(topology(), Config(health_port=port), ["filter"], admin=object())
    assert [(i.instance_id, i.reachable) for i in s.processor("filter").instances] == [
        ("host-a-0", True)]
    # the same member on a port nobody listens on: unreachable, under its instance id
    s = collect_status(topology(), Config(health_port=1), ["filter"], admin=object())
    assert [(i.instance_id, i.reachable) for i in s.processor("filter").instances] == [
        ("host-a-0", False)]


def test_a_supervisor_answers_for_each_of_its_workers() -> None:
    fleet = {"alive": True, "ready": True, "reasons": [], "workers": [
        {"processor": "filter", "instance": "pod-0", "processed": 1},
        {"processor": "audit", "instance": "pod-1", "processed": 2},
    ]}
    server = HealthServer(0, lambda: fleet, host="127.0.0.1").start()
    try:
        answers = fetch_instances([f"http://127.0.0.1:{server.port}/"])
    finally:
        server.stop()
    (docs,) = answers.values()
    assert isinstance(docs, list)
    assert [(d["processor"], d["instance"]) for d in docs] == [("filter", "pod-0"),
                                                               ("audit", "pod-1")]


def test_instance_status_to_dict_has_rates() -> None:
    i = InstanceStatus("a", "u", True, consumed_per_s={"x": 1.5, "y": 2.0}, rated=True)
    p = ProcessorStatus("p", "g", "Stable", instances=(i,))
    d = p.to_dict()
    assert d["instances"][0]["records_in_per_s"] == 3.5
    assert "fetched_at" not in d["instances"][0]
    assert d["records_in_per_s"] == 3.5 and d["records_out_per_s"] == 0  # nothing produced
    assert InstanceStatus("a", "u", True).records_in_per_s is None  # one answer: no rate
