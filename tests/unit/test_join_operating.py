"""The operating tools know the joins' state: unnamed-state warnings for every stateful join,
the foreign-key join's subscription topics in ``check --against-cluster`` and ``reset``, and
``check``'s co-partitioning of table-table and foreign-key joins."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import streamflow as sf
from streamflow.config import Config
from streamflow.kafka import groups
from streamflow.ops import reset as ops_reset
from streamflow.ops.check import check_topology
from streamflow.ops.state_names import orphan_fix, state_diff, unnamed_state

SUBSCRIPTIONS = "shop-enrich-oc-subscription-registration"
RESPONSES = "shop-enrich-oc-subscription-response"


def _fk(name: str | None = "oc", *, orders_partitions: int | None = None,
        customers_partitions: int | None = None) -> sf.Topology:
    t = sf.Topology("shop")
    orders = t.topic("orders", key=sf.String(), value=sf.Json(), external=True,
                     partitions=orders_partitions)
    customers = t.topic("customers", key=sf.Long(), value=sf.Json(), external=True,
                        partitions=customers_partitions)
    p = t.processor("enrich")
    (p.materialize(t.table(orders))
     .join(t.table(customers), lambda o, c: o, foreign_key=lambda o: o["customer"], name=name)
     .to_stream().to(t.topic("enriched", value=sf.Json())))
    return t


def _stream_join(op: str, name: str | None) -> sf.Topology:
    t = sf.Topology("shop")
    views = t.topic("views", key=sf.String(), value=sf.Json(), external=True)
    clicks = t.topic("clicks", key=sf.String(), value=sf.Json(), external=True)
    p = t.processor("match")
    joined = getattr(p.stream(views), op)(p.stream(clicks), lambda v, c: [v, c],
                                         window=sf.JoinWindows(sf.seconds(10)), name=name)
    joined.to(t.topic("matched", value=sf.Json()))
    return t


# -- unnamed state: every stateful join ---------------------------------------------------


@pytest.mark.parametrize("op", ["join", "left_join", "outer_join"])
def test_an_unnamed_stream_stream_join_is_listed_with_its_window_stores(op: str) -> None:
    (found,) = unnamed_state(_stream_join(op, None))
    assert found.processor == "match"
    assert found.step == f"{op}-1"
    assert found.topic == f"shop-match-{found.step}-left-changelog"
    assert found.fix == f'.{op}(..., window=..., name="{found.step}")'
    assert "window store" in found.message() and "named by position" in found.message()
    assert unnamed_state(_stream_join(op, "views-clicks")) == []


def test_an_unnamed_foreign_key_join_is_listed() -> None:
    (found,) = unnamed_state(_fk(None))
    assert (found.step, found.topic) == ("fk-join-1", "shop-enrich-fk-join-1-left-changelog")
    assert unnamed_state(_fk("oc")) == []


def _table_join(view_name: str | None, join_name: str | None) -> sf.Topology:
    t = sf.Topology("shop")
    users = t.topic("users", key=sf.String(), value=sf.Json(), external=True)
    cities = t.topic("cities", key=sf.String(), value=sf.Json(), external=True)
    p = t.processor("people")
    active = p.materialize(t.table(users)).filter(lambda u: u["active"], name=view_name)
    joined = active.join(t.table(cities), lambda u, c: u, name=join_name)
    # joining the join's result again keeps it in a store named after the join
    joined.left_join(p.materialize(t.table(t.topic("teams", key=sf.String(), external=True))),
                     lambda a, b: a, name="with-team").to_stream().to(t.topic("out"))
    return t


def test_table_views_kept_in_a_store_for_a_table_join_are_listed_when_unnamed() -> None:
    found = {s.step: s for s in unnamed_state(_table_join(None, None))}
    assert sorted(found) == ["table-filter-1", "table-join-1"]
    assert found["table-filter-1"].fix == '.filter(..., name="table-filter-1")'
    assert found["table-filter-1"].topic == "shop-people-table-filter-1.materialized-changelog"
    assert found["table-join-1"].fix == '.join(..., name="table-join-1")'
    assert "table view kept for a join" in found["table-join-1"].message()
    assert unnamed_state(_table_join("active", "with-city")) == []


def test_check_strict_fails_on_an_unnamed_stream_join(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from streamflow.cli import main

    for var in ("STREAMFLOW_CONFIG", "STREAMFLOW_SCHEMA_REGISTRY_URL"):
        monkeypatch.delenv(var, raising=False)
    assert main(["check", f"{__name__}:UNNAMED_JOIN", "--strict"]) == 3
    out = capsys.readouterr().out
    assert "problem: [unnamed-state] processor 'match': step 'left_join-1'" in out


UNNAMED_JOIN = _stream_join("left_join", None)


# -- the foreign-key join's topics: check --against-cluster, reset ------------------------


def test_state_diff_knows_the_subscription_topics_as_internal() -> None:
    t = _fk("oc")
    old = ["shop-enrich-old-subscription-registration", "shop-enrich-old-subscription-response"]
    diff = state_diff(t, [*t.topics, *old])
    assert diff.orphaned == old
    assert SUBSCRIPTIONS in diff.kept and RESPONSES in diff.kept
    assert "name='old'," in orphan_fix(t, old[1])
    assert state_diff(t, ["orders"]).to_create[-4:] == [
        SUBSCRIPTIONS, RESPONSES, "shop-enrich-oc-left-changelog",
        "shop-enrich-oc-subscriptions-changelog"]


def test_orphan_fix_names_the_join_of_an_orphaned_join_store() -> None:
    t = _stream_join("join", "now")
    fix = orphan_fix(t, "shop-match-before-right-changelog")
    assert "name='before' (a join, whose store was 'before-right') or name='before-right'" in fix
    assert "name='per-user'," in orphan_fix(t, "shop-match-per-user-changelog")


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> None:
    t = _fk("oc")
    monkeypatch.setattr(groups, "describe_group", lambda _a, g, _t=0: groups.GroupInfo(
        g, "Empty", "classic", "", ()))
    monkeypatch.setattr(groups, "partitions_of", lambda _a, topics, _t=0: {
        name: [0, 1] for name in topics if name in t.topics})
    monkeypatch.setattr(groups, "group_offsets", lambda _a, _g, pairs, _t=0: {
        p: 42 for p in pairs})
    monkeypatch.setattr(groups, "list_offsets", lambda _a, pairs, at, **_k: {
        p: {"earliest": 0, "latest": 100}[str(at)] for p in pairs})


def test_reset_truncates_the_subscription_topics_and_deletes_the_join_stores(
        broker: None, tmp_path: Path) -> None:
    plan = ops_reset.plan_reset(_fk("oc"), "enrich", Config(state_dir=str(tmp_path)),
                                "earliest", admin=object())
    assert plan.truncate == {(t, n): 100 for t in (SUBSCRIPTIONS, RESPONSES) for n in (0, 1)}
    assert {plan.offsets[(t, 0)] for t in (SUBSCRIPTIONS, RESPONSES)} == {100}
    assert plan.offsets[("orders", 0)] == plan.offsets[("customers", 1)] == 0
    assert set(plan.delete_topics) == {
        "shop-enrich-table-orders-changelog", "shop-enrich-table-customers-changelog",
        "shop-enrich-oc-left-changelog", "shop-enrich-oc-subscriptions-changelog"}
    assert f"truncate {RESPONSES}[1]: delete the records below 100" in "\n".join(
        str(s) for s in plan.steps)


# -- check: co-partitioning of table-table and foreign-key joins --------------------------


def _codes(t: sf.Topology) -> list[tuple[str, str]]:
    return [(p.code, p.message) for p in check_topology(t).problems]


def test_check_refuses_foreign_key_tables_of_different_widths_but_not_their_keys() -> None:
    (problem,) = _codes(_fk("oc", orders_partitions=3, customers_partitions=6))
    assert problem == ("co-partitioning", "join 'oc' of processor 'enrich': topic 'orders' has 3 "
                       "but 'customers' has 6 partitions; joins need co-partitioned topics")
    # String keys on the left, Long keys on the right: a foreign-key join's tables differ
    assert _codes(_fk("oc", orders_partitions=3, customers_partitions=3)) == []


def _tables(left: dict[str, Any], right: dict[str, Any]) -> sf.Topology:
    t = sf.Topology("shop")
    users = t.topic("users", value=sf.Json(), external=True, **left)
    cities = t.topic("cities", value=sf.Json(), external=True, **right)
    p = t.processor("people")
    (p.materialize(t.table(users)).join(t.table(cities), lambda u, c: u, name="with-city")
     .to_stream().to(t.topic("out")))
    return t


def test_check_refuses_table_join_sides_of_different_widths_or_key_serdes() -> None:
    (width,) = _codes(_tables({"key": sf.String(), "partitions": 2},
                              {"key": sf.String(), "partitions": 4}))
    assert width[0] == "co-partitioning"
    assert "join 'with-city' of processor 'people': topic 'users' has 2 but 'cities' has 4" \
        in width[1]
    (keys,) = _codes(_tables({"key": sf.String(), "partitions": 2},
                             {"key": sf.Long(), "partitions": 2}))
    assert "serialize keys differently" in keys[1]
    assert _codes(_tables({"key": sf.String(), "partitions": 2},
                          {"key": sf.String(), "partitions": 2})) == []


# -- drawings: a global table's topic is an edge into the processor that joins it -----------


def _global() -> sf.Topology:
    t = sf.Topology("shop")
    orders = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    countries = t.global_table(t.topic("countries", key=sf.String(), value=sf.Json(),
                                       external=True))
    p = t.processor("enrich")
    (p.stream(orders).left_join(countries, lambda o, c: o, key=lambda _k, o: o["country"],
                                name="with-country")
     .to(t.topic("enriched", value=sf.Json())))
    return t


def test_dag_edges_draw_a_global_tables_topic_into_its_processor() -> None:
    from streamflow.dsl.render import dag_edges, describe_dot, describe_mermaid

    assert dag_edges(_global()) == [("orders", "enrich", "reads"),
                                    ("countries", "enrich", "global"),
                                    ("enrich", "enriched", "writes")]
    mermaid = describe_mermaid(_global())
    assert "  t_countries -.->|global| p_enrich\n" in mermaid
    assert "  t_orders --> p_enrich\n" in mermaid
    dot = describe_dot(_global())
    assert '  "t_countries" -> "p_enrich" [style=dashed, label="global"];\n' in dot
    assert '  "t_orders" -> "p_enrich";\n' in dot


def test_the_dashboard_graph_has_the_global_edge() -> None:
    from streamflow.dashboard.graph import topology_graph

    g = topology_graph(_global())
    (edge,) = [e for e in g["edges"] if e["kind"] == "global"]
    assert edge == {"id": "topic:countries->processor:enrich", "source": "topic:countries",
                    "target": "processor:enrich", "kind": "global", "topic": "countries",
                    "processor": "enrich"}
    (proc,) = [n for n in g["nodes"] if n["kind"] == "processor"]
    assert proc["globals"] == ["countries"] and proc["reads"] == ["orders"]
    script = (Path(__file__).resolve().parents[2] / "streamflow" / "dashboard" / "static"
              / "dashboard.js").read_text()
    assert "edge[kind = 'global']" in script  # drawn dashed


def test_graphviz_draws_the_global_edge_dashed() -> None:
    import shutil
    import subprocess

    from streamflow.dsl.render import describe_dot

    if shutil.which("dot") is None:
        pytest.fail("Graphviz `dot` is not installed (apt-get install graphviz)")
    svg = subprocess.run(["dot", "-Tsvg"], input=describe_dot(_global()).encode(),
                         capture_output=True, check=True).stdout.decode()
    edges = re.findall(r'<g id="edge\d+" class="edge">(.*?)</g>', svg, re.S)
    (global_edge,) = [e for e in edges if "<title>t_countries&#45;&gt;p_enrich" in e]
    assert "stroke-dasharray" in global_edge and ">global<" in global_edge
