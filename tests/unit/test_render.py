"""``Topology.describe()`` and the Mermaid / DOT renderings."""

from __future__ import annotations

import re

import streamflow as sf
from streamflow.dsl.render import RENDERERS, describe_dot, describe_mermaid, describe_text


def route_by_region(record: sf.Record) -> str:
    return f"orders.{record.value['region']}"


def shop() -> sf.Topology:
    t = sf.Topology("shop")
    orders = t.topic("orders", key=sf.String(), value=sf.Json(), partitions=3, external=True)
    priced = t.topic("orders.priced", key=sf.String(), value=sf.Json(), partitions=3,
                     replication=2, config={"cleanup.policy": "compact", "retention.ms": "1000"})
    t.topic("orders.eu", key=sf.String(), value=sf.Json())
    large = t.topic("orders-large", key=sf.String(), value=sf.Long())
    t.processor("enrich", on_error="dead_letter").stream(orders, name="read").filter(
        lambda o: o["ok"], name="valid"
    ).map(str.upper).to(priced)
    route = t.processor("route", guarantee="exactly_once", group_id="custom-group")
    parts = route.stream(priced).split(big=lambda o: o["total"] > 100, default="small")
    parts["big"].map(lambda o: o["total"]).to(large)
    parts["big"].merge(parts["small"], name="all").to(route_by_region, name="by-region")
    return t


def test_describe_lists_topics_with_serdes_partitions_and_config() -> None:
    text = shop().describe()
    assert text.startswith("Topology shop\nTopics:\n")
    assert "  orders (external): key=String, value=Json, partitions=3\n" in text
    assert ("  orders.priced: key=String, value=Json, partitions=3, replication=2, "
            "cleanup.policy=compact, retention.ms=1000\n") in text
    assert "  orders-large: key=String, value=Long\n" in text


def test_describe_lists_each_processor_with_settings_reads_and_writes() -> None:
    text = shop().describe()
    assert "Processor enrich (group shop.enrich, at_least_once, on_error=dead_letter)" in text
    assert "Processor route (group custom-group, exactly_once, on_error=fail)" in text
    enrich = text[text.index("Processor enrich"):text.index("Processor route")]
    assert "  reads: orders\n" in enrich
    assert "  writes: orders.priced\n" in enrich
    route = text[text.index("Processor route"):]
    assert "  reads: orders.priced\n" in route
    assert "  writes: orders-large\n" in route  # dynamic routes are not listed


def test_describe_shows_the_step_tree_with_names_and_labels() -> None:
    text = shop().describe()
    enrich = text[text.index("Processor enrich"):text.index("Processor route")]
    assert enrich.splitlines()[3:] == [
        "    read: source(orders)",
        "      valid: filter(shop.<locals>.<lambda>)",
        "        map-1: map(str.upper)",
        "          to-1: to(orders.priced)",
    ]


def test_describe_shows_split_branches_merges_once_and_dynamic_routes() -> None:
    text = shop().describe()
    route = text[text.index("Processor route"):].splitlines()[3:]
    assert route == [
        "    source-1: source(orders.priced)",
        "      split-1: split(big, small (default))",
        "        split-1.big: branch #0",
        "          map-1: map(shop.<locals>.<lambda>)",
        "            to-1: to(orders-large)",
        "          all: merge",
        "            by-region: to(route_by_region)",
        "        split-1.small: branch #1",
        "          -> all (see above)",
    ]


def test_describe_of_a_topology_without_processors_lists_only_topics() -> None:
    t = sf.Topology("empty")
    t.topic("a")
    assert t.describe() == "Topology empty\nTopics:\n  a: key=Bytes, value=Bytes\n"


def test_processor_without_sinks_says_it_writes_nothing() -> None:
    t = sf.Topology("sinkless")
    src = t.topic("in", external=True)
    t.processor("p").stream(src).peek(print)
    assert "  writes: -\n" in t.describe()


def test_describe_text_is_the_text_renderer() -> None:
    t = shop()
    assert describe_text(t) == t.describe() == RENDERERS["text"](t)
    assert set(RENDERERS) == {"text", "mermaid", "dot"}


def _mermaid_graph(text: str) -> tuple[dict[str, str], set[tuple[str, str]]]:
    labels = {m[0]: m[1] for m in re.findall(r'^  (\w+)\(\["([^"]+)"\]\)$', text, re.M)}
    labels |= {m[0]: m[1].split("<br/>")[0]
               for m in re.findall(r'^  (\w+)\["([^"]+)"\]$', text, re.M)}
    edges = {(labels[a], labels[b]) for a, b in re.findall(r"^  (\w+) --> (\w+)$", text, re.M)}
    return labels, edges


def test_mermaid_draws_topics_processors_and_their_edges() -> None:
    text = describe_mermaid(shop())
    assert text.startswith("flowchart LR\n")
    labels, edges = _mermaid_graph(text)
    assert sorted(labels.values()) == sorted(
        ["orders", "orders.priced", "orders.eu", "orders-large", "enrich", "route"]
    )
    assert edges == {
        ("orders", "enrich"), ("enrich", "orders.priced"),
        ("orders.priced", "route"), ("route", "orders-large"),
    }
    assert '["route<br/>exactly_once"]' in text


def _dot_graph(text: str) -> tuple[dict[str, str], set[tuple[str, str]]]:
    labels = dict(re.findall(r'^  "(\w+)" \[label="([^"\\]+)', text, re.M))
    edges = {(labels[a], labels[b]) for a, b in re.findall(r'^  "(\w+)" -> "(\w+)";$', text, re.M)}
    return labels, edges


def test_dot_draws_topics_processors_and_their_edges() -> None:
    text = describe_dot(shop())
    assert text.startswith('digraph "shop" {\n  rankdir=LR;\n')
    assert text.endswith("}\n")
    labels, edges = _dot_graph(text)
    assert sorted(labels.values()) == sorted(
        ["orders", "orders.priced", "orders.eu", "orders-large", "enrich", "route"]
    )
    assert edges == {
        ("orders", "enrich"), ("enrich", "orders.priced"),
        ("orders.priced", "route"), ("route", "orders-large"),
    }
    assert "shape=ellipse" in text and "shape=box" in text


def test_topics_differing_only_in_punctuation_stay_separate_nodes() -> None:
    t = sf.Topology("clash")
    a = t.topic("a.b", external=True)
    b = t.topic("a-b")
    c = t.topic("a_b")
    t.processor("p").stream(a).to(b)
    t.processor("q").stream(b).to(c)
    for render, parse in [(describe_mermaid, _mermaid_graph), (describe_dot, _dot_graph)]:
        labels, edges = parse(render(t))
        assert len(labels) == 5, render.__name__
        assert edges == {("a.b", "p"), ("p", "a-b"), ("a-b", "q"), ("q", "a_b")}


def test_a_topic_and_a_processor_with_the_same_name_stay_separate_nodes() -> None:
    t = sf.Topology("same")
    src = t.topic("enrich", external=True)
    out = t.topic("out")
    t.processor("enrich").stream(src).to(out)
    labels, edges = _mermaid_graph(describe_mermaid(t))
    assert len(labels) == 3
    assert len(edges) == 2
