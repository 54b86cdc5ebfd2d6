"""The DSL: graph structure, step names, and ``TopologyError`` messages that say what to do."""

from __future__ import annotations

import pytest

import streamflow as sf
from streamflow.dsl.nodes import Apply, Branch, Merge, Sink, Source, Split
from streamflow.testing import TopologyTestDriver


def base() -> tuple[sf.Topology, sf.Topic, sf.Topic]:
    t = sf.Topology("app")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Json())
    return t, src, out


# -- structure and names -------------------------------------------------------------------

def test_every_operator_returns_a_new_stream_and_leaves_the_old_one_unchanged() -> None:
    t, src, _ = base()
    s = t.processor("p").stream(src)
    before = s.node
    m = s.map(str)
    f = s.filter(bool)
    assert m is not s and f is not s
    assert s.node is before
    assert m.node.parents == (s.node.name,) == f.node.parents


def test_derived_step_names_count_per_kind_in_declaration_order() -> None:
    t, src, out = base()
    p = t.processor("p")
    s = p.stream(src).map(str).map(str).filter(bool).key_by(str).peek(print)
    s.flat_map(list).map_record(lambda r: r).filter_record(bool).to(out)
    assert list(p.nodes) == [
        "source-1", "map-1", "map-2", "filter-1", "key_by-1", "peek-1",
        "flat_map-1", "map_record-1", "filter_record-1", "to-1",
    ]


def test_explicit_step_names_are_used_as_given() -> None:
    t, src, out = base()
    p = t.processor("p")
    p.stream(src, name="read").map(str, name="stringify").to(out, name="write")
    assert list(p.nodes) == ["read", "stringify", "write"]


def test_derived_names_do_not_depend_on_other_processors() -> None:
    t, src, out = base()
    mid = t.topic("mid", value=sf.Json())
    t.processor("a").stream(src).map(str).to(mid)
    b = t.processor("b")
    b.stream(mid).map(str).to(out)
    assert list(b.nodes) == ["source-1", "map-1", "to-1"]


def test_derived_name_skips_a_name_already_taken_explicitly() -> None:
    t, src, out = base()
    p = t.processor("p")
    p.stream(src).filter(bool, name="map-1").map(str).to(out)
    assert list(p.nodes) == ["source-1", "map-1", "map-2", "to-1"]
    assert isinstance(p.nodes["map-2"], Apply) and p.nodes["map-2"].op == "map"


def test_graph_nodes_are_frozen_descriptions() -> None:
    t, src, out = base()
    p = t.processor("p")
    p.stream(src).map(str).to(out)
    node = p.nodes["map-1"]
    with pytest.raises(AttributeError):
        node.name = "other"  # type: ignore[misc]


def test_node_kinds_and_parents_describe_the_graph() -> None:
    t, src, out = base()
    p = t.processor("p")
    parts = p.stream(src).split(big=lambda v: v > 1, default="rest")
    parts["big"].merge(parts["rest"]).to(out)
    n = p.nodes
    assert isinstance(n["source-1"], Source) and n["source-1"].topics == ("in",)
    assert isinstance(n["split-1"], Split) and n["split-1"].branches == ("big",)
    assert n["split-1"].default == "rest"
    assert isinstance(n["split-1.big"], Branch) and n["split-1.big"].index == 0
    assert isinstance(n["split-1.rest"], Branch) and n["split-1.rest"].index == 1
    assert isinstance(n["merge-1"], Merge)
    assert n["merge-1"].parents == ("split-1.big", "split-1.rest")
    assert isinstance(n["to-1"], Sink) and n["to-1"].topic == "out"


def test_split_returns_one_stream_per_branch_and_the_default() -> None:
    t, src, _ = base()
    parts = t.processor("p").stream(src).split(a=bool, b=bool, default="c", name="route")
    assert list(parts) == ["a", "b", "c"]
    assert [s.node.name for s in parts.values()] == ["route.a", "route.b", "route.c"]


def test_source_and_sink_topics_are_listed_per_processor() -> None:
    t, src, out = base()
    other = t.topic("other", value=sf.Json(), external=True)
    p = t.processor("p")
    s = p.stream(src, other)
    s.to(out)
    s.to(lambda r: "out")
    assert p.source_topics() == ["in", "other"]
    assert p.sink_topics() == ["out"]


def test_processor_defaults_derive_group_and_dead_letter_topic_from_names() -> None:
    t, _, _ = base()
    p = t.processor("enrich")
    assert p.group_id == "app.enrich"
    assert p.dead_letter_topic == "app.enrich.dlq"
    assert (p.guarantee, p.on_error) == ("at_least_once", "fail")
    q = t.processor("q", group_id="g", dead_letter_topic="bad", guarantee="exactly_once",
                    on_error="dead_letter")
    assert q.options().items() >= {"guarantee": "exactly_once", "on_error": "dead_letter",
                                   "dead_letter_topic": "bad", "group_id": "g"}.items()


def test_declaring_an_identical_topic_twice_returns_an_equal_topic() -> None:
    t, src, _ = base()
    again = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    assert again == src
    assert list(t.topics) == ["in", "out"]


def test_topic_defaults_to_bytes_serdes_and_keeps_config() -> None:
    t = sf.Topology("app")
    topic = t.topic("c", partitions=3, replication=2, config={"cleanup.policy": "compact"})
    assert (topic.key, topic.value) == (sf.Bytes(), sf.Bytes())
    assert topic.config_dict == {"cleanup.policy": "compact"}
    assert (topic.partitions, topic.replication, topic.external) == (3, 2, False)
    assert str(topic) == "c"


def test_streams_accept_topic_names_as_well_as_topics() -> None:
    t, _, _ = base()
    p = t.processor("p")
    p.stream("in").to("out")
    assert p.source_topics() == ["in"]
    assert p.sink_topics() == ["out"]


# -- validation errors ---------------------------------------------------------------------

def test_reading_an_undeclared_topic_says_how_to_declare_it() -> None:
    t, _, _ = base()
    with pytest.raises(sf.TopologyError, match=r"topic 'nope' is not declared in topology 'app'"
                       r".*topology\.topic\('nope', key=\.\.\., value=\.\.\.\)"):
        t.processor("p").stream("nope")


def test_writing_to_an_undeclared_topic_says_how_to_declare_it() -> None:
    t, src, _ = base()
    with pytest.raises(sf.TopologyError, match="topic 'nowhere' is not declared"):
        t.processor("p").stream(src).to("nowhere")


def test_using_a_different_topic_of_another_topology_is_refused() -> None:
    t, _, _ = base()
    other = sf.Topology("other")
    foreign = other.topic("in", key=sf.Bytes(), value=sf.Bytes())
    with pytest.raises(sf.TopologyError, match="topic 'in' belongs to another topology"):
        t.processor("p").stream(foreign)


def test_duplicate_processor_is_refused() -> None:
    t, _, _ = base()
    t.processor("p")
    with pytest.raises(sf.TopologyError, match="processor 'p' is declared twice in topology 'app'"):
        t.processor("p")


def test_duplicate_step_name_is_refused_and_says_why_names_matter() -> None:
    t, src, _ = base()
    s = t.processor("p").stream(src).map(str, name="clean")
    with pytest.raises(sf.TopologyError, match=r"already has a step named 'clean'.*must be unique"):
        s.filter(bool, name="clean")


def test_same_step_name_in_two_processors_is_fine() -> None:
    t, src, out = base()
    mid = t.topic("mid", value=sf.Json())
    t.processor("a").stream(src).map(str, name="clean").to(mid)
    t.processor("b").stream(mid).map(str, name="clean").to(out)


def test_bad_guarantee_lists_the_valid_ones() -> None:
    t, _, _ = base()
    with pytest.raises(sf.TopologyError,
                       match="guarantee must be 'at_least_once' or 'exactly_once', not 'maybe'"):
        t.processor("p", guarantee="maybe")  # type: ignore[arg-type]
    assert "p" not in t.processors


def test_bad_on_error_lists_the_valid_ones() -> None:
    t, _, _ = base()
    with pytest.raises(sf.TopologyError,
                       match="on_error must be 'fail', 'skip' or 'dead_letter', or a function"):
        t.processor("p", on_error="ignore")  # type: ignore[arg-type]


def test_merge_across_processors_says_to_go_through_a_topic() -> None:
    t, src, _ = base()
    other = t.topic("in2", value=sf.Json(), external=True)
    a = t.processor("a").stream(src)
    b = t.processor("b").stream(other)
    with pytest.raises(sf.TopologyError, match=r"merge\(\) joins streams of one processor.*topic"):
        a.merge(b)


def test_split_with_no_branches_shows_an_example() -> None:
    t, src, _ = base()
    with pytest.raises(sf.TopologyError, match=r"split\(\) needs at least one branch, e\.g\."):
        t.processor("p").stream(src).split()


def test_split_with_only_a_default_still_needs_a_branch() -> None:
    t, src, _ = base()
    with pytest.raises(sf.TopologyError, match="at least one branch"):
        t.processor("p").stream(src).split(default="all")


def test_split_branch_without_a_function_is_refused() -> None:
    t, src, _ = base()
    with pytest.raises(sf.TopologyError, match="split branch 'big' needs a predicate function"):
        t.processor("p").stream(src).split(big=True)  # type: ignore[arg-type]


def test_split_default_that_is_also_a_branch_is_refused() -> None:
    t, src, _ = base()
    with pytest.raises(sf.TopologyError, match="default branch 'big' also has a predicate"):
        t.processor("p").stream(src).split(big=bool, default="big")


def test_topic_declared_twice_with_different_settings_says_to_reuse_it() -> None:
    t, _, _ = base()
    with pytest.raises(sf.TopologyError,
                       match=r"topic 'in' is declared twice with different settings.*reuse"):
        t.topic("in", key=sf.String(), value=sf.String(), external=True)
    with pytest.raises(sf.TopologyError, match="declared twice"):
        t.topic("in", key=sf.String(), value=sf.Json(), external=True, partitions=3)
    assert t.topics["in"].value == sf.Json()


@pytest.mark.parametrize("bad", ["", "has space", "a/b", "ümlaut", "x" * 250, "tab\t"])
@pytest.mark.parametrize("what", ["topology", "topic", "processor", "step"])
def test_invalid_names_are_refused_with_the_allowed_characters(what: str, bad: str) -> None:
    t, src, _ = base()
    with pytest.raises(sf.TopologyError, match=f"{what} name .* is not valid: use letters, digits"):
        if what == "topology":
            sf.Topology(bad)
        elif what == "topic":
            t.topic(bad)
        elif what == "processor":
            t.processor(bad)
        else:
            t.processor("p").stream(src).map(str, name=bad)


@pytest.mark.parametrize("bad", [".", ".."])
def test_topic_names_kafka_forbids_are_refused(bad: str) -> None:
    t, _, _ = base()
    with pytest.raises(sf.TopologyError, match="not valid"):
        t.topic(bad)


def test_invalid_dead_letter_topic_name_is_refused() -> None:
    t, _, _ = base()
    with pytest.raises(sf.TopologyError, match="dead-letter topic name 'bad dlq' is not valid"):
        t.processor("p", on_error="dead_letter", dead_letter_topic="bad dlq")


def test_non_string_name_is_refused() -> None:
    with pytest.raises(sf.TopologyError, match="not valid"):
        sf.Topology(42)  # type: ignore[arg-type]


def test_names_with_dots_dashes_and_underscores_are_valid() -> None:
    t = sf.Topology("my_app-1.v2")
    t.topic("orders.priced-v1_x")
    t.processor("en.rich-1_a")


def test_zero_partitions_is_refused() -> None:
    t, _, _ = base()
    with pytest.raises(sf.TopologyError, match="partitions must be >= 1, got 0"):
        t.topic("x", partitions=0)


def test_stream_without_topics_is_refused() -> None:
    t, _, _ = base()
    with pytest.raises(sf.TopologyError, match=r"stream\(\) needs at least one topic"):
        t.processor("p").stream()


def test_reading_a_topic_twice_in_one_processor_says_to_reuse_the_stream() -> None:
    t, src, _ = base()
    p = t.processor("p")
    p.stream(src)
    with pytest.raises(sf.TopologyError, match=r"reads \['in'\] in two streams.*split"):
        p.stream(src)


@pytest.mark.parametrize("op", ["map", "map_record", "filter", "filter_record", "flat_map",
                                "key_by", "peek"])
def test_operator_without_a_function_names_the_operator(op: str) -> None:
    t, src, _ = base()
    s = t.processor("p").stream(src)
    with pytest.raises(sf.TopologyError, match=f"{op}\\(\\) needs a function, got int"):
        getattr(s, op)(42)


def test_to_with_something_that_is_not_a_topic_or_function_is_refused() -> None:
    t, src, _ = base()
    with pytest.raises(sf.TopologyError, match=r"to\(\) needs a Topic, a topic name or a function"):
        t.processor("p").stream(src).to(42)  # type: ignore[arg-type]


def test_topology_error_is_a_value_error() -> None:
    assert issubclass(sf.TopologyError, ValueError)


def test_driver_refuses_an_unknown_processor_and_lists_the_known_ones() -> None:
    t, src, out = base()
    t.processor("p").stream(src).to(out)
    with pytest.raises(sf.TopologyError, match=r"has no processor 'q'; it has \['p'\]"):
        TopologyTestDriver(t, processor="q")


def test_driver_refuses_input_to_a_topic_no_driven_processor_reads() -> None:
    t, src, out = base()
    t.processor("p").stream(src).to(out)
    with TopologyTestDriver(t) as driver, pytest.raises(
        sf.TopologyError, match="no driven processor reads topic 'out'"
    ):
        driver.input("out")


def test_a_name_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(sf.TopologyError, match="not valid"):
        sf.Topology("shop").topic("orders\n")
