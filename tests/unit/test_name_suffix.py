"""Per-test names: ``Topology.with_name_suffix``, the ``name_suffix`` setting and fixture."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest

import streamflow as sf
from streamflow.config import load_config
from streamflow.ops.load import load_topology
from streamflow.testing import TopologyTestDriver, unique_suffix
from streamflow.testing.processes import TopologyApp


def shop() -> sf.Topology:
    """Declared, repartition, changelog and dead-letter topics, a router and a custom group."""
    t = sf.Topology("shop")
    orders = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    counts = t.topic("counts", key=sf.String(), value=sf.Long())
    big = t.topic("big", key=sf.String(), value=sf.Json())
    t.topic("small", key=sf.String(), value=sf.Json())
    p = t.processor("count", on_error="dead_letter")
    s = p.stream(orders).map(lambda o: o if o["qty"] else 1 / 0, name="check")
    (s.group_by(lambda o: o["customer"], name="by-customer", key_serde=sf.String())
     .count(name="n").to_stream().to(counts))
    t.processor("route", group_id="router").stream(orders).to(
        lambda r: big if r.value["qty"] > 5 else "small")
    return t


def test_every_topic_group_and_the_topology_name_get_the_suffix() -> None:
    t = shop()
    c = t.with_name_suffix("-t1")
    assert c.name == "shop-t1"
    assert sorted(c.topics) == sorted(f"{n}-t1" for n in t.topics)
    assert all(topic.name in c.topics for topic in c.topics.values())
    count = c.processors["count"]
    assert (count.group_id, count.dead_letter_topic) == ("shop.count-t1", "shop.count.dlq-t1")
    assert c.processors["route"].group_id == "router-t1"
    assert count.stores["n"].changelog == "shop-count-n-changelog-t1"
    assert set(count.source_topics()) == {"orders-t1", "shop-count-by-customer-repartition-t1"}
    named = {t for p in c.processors.values()
             for t in (*p.source_topics(), *p.sink_topics())}
    assert named <= set(c.topics)
    # the original is untouched
    assert sorted(t.topics)[0] == "big" and t.processors["count"].group_id == "shop.count"
    assert t.processors["count"].topology is t and count.topology is c


def test_a_renamed_topology_runs_under_its_new_names() -> None:
    c = shop().with_name_suffix("-x")
    with TopologyTestDriver(c) as driver:
        orders = driver.input("orders-x")
        for customer, qty in [("ann", 1), ("bob", 9), ("ann", 2), ("eve", 0)]:
            orders.send({"customer": customer, "qty": qty}, key=customer)
        assert driver.output("counts-x").read_key_values() == [("ann", 1), ("bob", 1),
                                                               ("ann", 2)]
        # the router's Topic and its str, renamed
        assert [k for k, _ in driver.output("big-x").read_key_values()] == ["bob"]
        assert [k for k, _ in driver.output("small-x").read_key_values()] == ["ann", "ann", "eve"]
        (dead,) = driver.output("shop.count.dlq-x").read_records()
        assert dead.key == b"eve"


def test_no_suffix_is_the_topology_itself_and_a_bad_one_is_a_topology_error() -> None:
    t = shop()
    assert t.with_name_suffix("") is t
    with pytest.raises(sf.TopologyError, match=r"topic name 'orders/1' is not valid"):
        t.with_name_suffix("/1")


def test_unique_suffixes_are_legal_distinct_and_name_the_test() -> None:
    a, b = unique_suffix("test_x[case-1]"), unique_suffix("test_x[case-1]")
    assert a != b
    assert re.fullmatch(r"-test_x-case-1-[0-9a-f]{8}", a)
    assert re.fullmatch(r"-[0-9a-f]{8}", unique_suffix())
    shop().with_name_suffix(unique_suffix("x" * 300))  # long hints are cut to legal names


def test_the_name_suffix_fixture_is_unique_to_the_test(name_suffix: str) -> None:
    assert re.fullmatch(r"-test_the_name_suffix_fixture_is_unique_t-[0-9a-f]{8}",
                        name_suffix)


def test_commands_load_the_topology_with_the_name_suffix_setting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "suffixed_shop.py").write_text(textwrap.dedent('''
        import streamflow as sf
        topology = sf.Topology("shop")
        orders = topology.topic("orders", external=True)
        topology.processor("p").stream(orders).to(topology.topic("out"))
    '''))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = load_config(env={"STREAMFLOW_NAME_SUFFIX": "-pr42"})
    assert config.name_suffix == "-pr42"
    t = load_topology("suffixed_shop", name_suffix=config.name_suffix)
    assert (sorted(t.topics), t.processors["p"].group_id) == (["orders-pr42", "out-pr42"],
                                                              "shop.p-pr42")
    assert sorted(load_topology("suffixed_shop").topics) == ["orders", "out"]
    sys.modules.pop("suffixed_shop", None)


def test_a_managed_app_passes_its_name_suffix_to_the_process(tmp_path: Path) -> None:
    app = TopologyApp("m", bootstrap="b:9092", workdir=tmp_path, name_suffix="-t9")
    assert app.env["STREAMFLOW_NAME_SUFFIX"] == "-t9"
    assert "STREAMFLOW_NAME_SUFFIX" not in TopologyApp("m", bootstrap="b", workdir=tmp_path).env
