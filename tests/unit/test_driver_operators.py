"""Every ``Stream`` operator, run through ``TopologyTestDriver`` (the same compiled plan as
production): values, keys, timestamps, headers, routing and multi-processor DAGs."""

from __future__ import annotations

from typing import Any

import pytest

import streamflow as sf
from streamflow import Record
from streamflow.testing import TopologyTestDriver


def topology(
    build: Any, *, value: sf.Serde | None = None, out_value: sf.Serde | None = None
) -> sf.Topology:
    """``in`` (String key) -> [p: build(stream, out)] -> ``out``."""
    t = sf.Topology("ops")
    src = t.topic("in", key=sf.String(), value=value or sf.Json(), external=True)
    out = t.topic("out", key=sf.String(), value=out_value or value or sf.Json())
    build(t.processor("p").stream(src), out)
    return t


def run(t: sf.Topology, values: list[Any], *, key: Any = "k") -> list[Record]:
    with TopologyTestDriver(t) as driver:
        inp = driver.input("in")
        for i, v in enumerate(values):
            inp.send(v, key=key, timestamp=1000 + i)
        return driver.output("out").read_records()


# -- one-function operators ----------------------------------------------------------------

def test_map_replaces_each_value_and_keeps_key_and_timestamp() -> None:
    t = topology(lambda s, out: s.map(lambda v: v * 10).to(out), value=sf.Int())
    records = run(t, [1, 2, 3])
    assert [(r.key, r.value, r.timestamp) for r in records] == [
        ("k", 10, 1000), ("k", 20, 1001), ("k", 30, 1002),
    ]


def test_map_can_change_the_value_type_between_serdes() -> None:
    t = topology(lambda s, out: s.map(str).to(out), value=sf.Int(), out_value=sf.String())
    assert [r.value for r in run(t, [7, -1])] == ["7", "-1"]


def test_map_record_can_change_key_value_timestamp_and_headers() -> None:
    def rewrite(r: Record) -> Record:
        return (
            r.with_key(r.key.upper())
            .with_value(r.value + 1)
            .with_timestamp(r.timestamp * 2)
            .with_headers([("seen", b"1")])
        )

    t = topology(lambda s, out: s.map_record(rewrite).to(out), value=sf.Int())
    (r,) = run(t, [41], key="abc")
    assert (r.key, r.value, r.timestamp, r.headers) == ("ABC", 42, 2000, [("seen", b"1")])


def test_map_record_sees_the_source_topic_partition_and_offset() -> None:
    seen: list[tuple[Any, ...]] = []

    def look(r: Record) -> Record:
        seen.append((r.topic, r.partition, r.offset, r.key, r.value, r.timestamp))
        return r

    t = topology(lambda s, out: s.map_record(look).to(out))
    run(t, [{"a": 1}, {"a": 2}])
    assert seen == [("in", 0, 0, "k", {"a": 1}, 1000), ("in", 0, 1, "k", {"a": 2}, 1001)]


def test_map_record_must_return_a_record() -> None:
    from streamflow.runtime.errors import ProcessingFailed

    t = topology(lambda s, out: s.map_record(lambda r: r.value).to(out), value=sf.Int())
    with TopologyTestDriver(t) as driver, pytest.raises(
        ProcessingFailed, match="map_record function must return a Record, got int"
    ):
        driver.input("in").send(1)


def test_filter_keeps_only_values_matching_the_predicate() -> None:
    t = topology(lambda s, out: s.filter(lambda v: v % 2 == 0).to(out), value=sf.Int())
    assert [r.value for r in run(t, [1, 2, 3, 4, 5, 6])] == [2, 4, 6]


def test_filter_uses_truthiness_of_the_predicate_result() -> None:
    t = topology(lambda s, out: s.filter(lambda v: v.get("tags")).to(out))
    values = [{"tags": []}, {"tags": ["x"]}, {}, {"tags": None}]
    assert [r.value for r in run(t, values)] == [{"tags": ["x"]}]


def test_filter_record_can_decide_on_key_and_timestamp() -> None:
    t = topology(
        lambda s, out: s.filter_record(lambda r: r.key == "keep" and r.timestamp >= 1001).to(out)
    )
    with TopologyTestDriver(t) as driver:
        inp = driver.input("in")
        inp.send(1, key="keep", timestamp=1000)
        inp.send(2, key="drop", timestamp=2000)
        inp.send(3, key="keep", timestamp=2000)
        assert driver.output("out").read_key_values() == [("keep", 3)]


def test_flat_map_emits_zero_or_more_values_with_the_same_key_and_timestamp() -> None:
    t = topology(lambda s, out: s.flat_map(lambda v: v.split()).to(out), value=sf.String())
    records = run(t, ["a b c", "", "d"])
    assert [(r.key, r.value, r.timestamp) for r in records] == [
        ("k", "a", 1000), ("k", "b", 1000), ("k", "c", 1000), ("k", "d", 1002),
    ]


def test_flat_map_accepts_any_iterable_including_generators() -> None:
    def explode(n: int) -> Any:
        yield from range(n)

    t = topology(lambda s, out: s.flat_map(explode).to(out), value=sf.Int())
    assert [r.value for r in run(t, [3, 0, 1])] == [0, 1, 2, 0]


def test_key_by_sets_the_key_from_the_value_and_keeps_the_value() -> None:
    t = topology(lambda s, out: s.key_by(lambda v: v["customer"]).to(out))
    records = run(t, [{"customer": "c1", "n": 1}, {"customer": "c2", "n": 2}], key=None)
    assert [(r.key, r.value) for r in records] == [
        ("c1", {"customer": "c1", "n": 1}), ("c2", {"customer": "c2", "n": 2}),
    ]


def test_peek_sees_each_record_and_passes_it_unchanged() -> None:
    seen: list[Record] = []
    t = topology(lambda s, out: s.peek(seen.append).to(out), value=sf.Int())
    records = run(t, [1, 2])
    assert [(r.key, r.value, r.timestamp) for r in seen] == [("k", 1, 1000), ("k", 2, 1001)]
    assert [r.value for r in records] == [1, 2]


def test_peek_return_value_is_ignored() -> None:
    t = topology(lambda s, out: s.peek(lambda r: "ignored").to(out), value=sf.Int())
    assert [r.value for r in run(t, [5])] == [5]


def test_operators_chain_in_declaration_order() -> None:
    t = topology(
        lambda s, out: s.filter(lambda v: v > 0)
        .map(lambda v: v * 2)
        .flat_map(lambda v: [v, v + 1])
        .key_by(lambda v: f"k{v}")
        .to(out),
        value=sf.Int(),
    )
    assert [(r.key, r.value) for r in run(t, [-1, 1, 5])] == [
        ("k2", 2), ("k3", 3), ("k10", 10), ("k11", 11),
    ]


# -- split and merge -----------------------------------------------------------------------

def split_topology(*, default: str | None) -> sf.Topology:
    t = sf.Topology("router")
    src = t.topic("in", key=sf.String(), value=sf.Int(), external=True)
    big = t.topic("big", key=sf.String(), value=sf.Int())
    even = t.topic("even", key=sf.String(), value=sf.Int())
    rest = t.topic("rest", key=sf.String(), value=sf.Int())
    parts = t.processor("p").stream(src).split(
        big=lambda v: v >= 100, even=lambda v: v % 2 == 0, default=default
    )
    parts["big"].to(big)
    parts["even"].to(even)
    if default:
        parts[default].to(rest)
    return t


def test_split_routes_to_first_matching_branch_and_default() -> None:
    with TopologyTestDriver(split_topology(default="other")) as driver:
        for v in [1, 2, 100, 101, 3, 4]:
            driver.input("in").send(v, key="k")
        # 100 is both big and even: the first matching branch (big) wins, once
        assert driver.output("big").read_values() == [100, 101]
        assert driver.output("even").read_values() == [2, 4]
        assert driver.output("rest").read_values() == [1, 3]


def test_split_without_default_drops_records_no_branch_accepts() -> None:
    with TopologyTestDriver(split_topology(default=None)) as driver:
        for v in [1, 2, 100, 3]:
            driver.input("in").send(v, key="k")
        assert driver.output("big").read_values() == [100]
        assert driver.output("even").read_values() == [2]
        assert driver.output("rest").is_empty()


def test_split_branch_without_downstream_steps_drops_its_records() -> None:
    t = sf.Topology("router")
    src = t.topic("in", key=sf.String(), value=sf.Int(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Int())
    parts = t.processor("p").stream(src).split(small=lambda v: v < 10, default="large")
    parts["large"].to(out)  # nothing reads "small"
    with TopologyTestDriver(t) as driver:
        for v in [1, 50]:
            driver.input("in").send(v)
        assert driver.output("out").read_values() == [50]


def test_split_branches_can_continue_with_more_operators() -> None:
    t = sf.Topology("router")
    src = t.topic("in", key=sf.String(), value=sf.Int(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Int())
    parts = t.processor("p").stream(src).split(neg=lambda v: v < 0, default="pos")
    parts["neg"].map(lambda v: -v).merge(parts["pos"].map(lambda v: v * 10)).to(out)
    with TopologyTestDriver(t) as driver:
        for v in [-3, 4]:
            driver.input("in").send(v)
        assert driver.output("out").read_values() == [3, 40]


def test_merge_combines_streams_of_two_source_topics() -> None:
    t = sf.Topology("m")
    a = t.topic("a", key=sf.String(), value=sf.Int(), external=True)
    b = t.topic("b", key=sf.String(), value=sf.Int(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Int())
    p = t.processor("p")
    p.stream(a).map(lambda v: v + 1000).merge(p.stream(b)).to(out)
    with TopologyTestDriver(t) as driver:
        driver.input("a").send(1, key="x", timestamp=1)
        driver.input("b").send(2, key="y", timestamp=2)
        driver.input("a").send(3, key="z", timestamp=3)
        assert [(r.key, r.value, r.timestamp) for r in driver.output("out").read_records()] == [
            ("x", 1001, 1), ("y", 2, 2), ("z", 1003, 3),
        ]


def test_one_stream_reading_several_topics_gets_records_of_each() -> None:
    t = sf.Topology("m")
    a = t.topic("a", key=sf.String(), value=sf.Int(), external=True)
    b = t.topic("b", key=sf.String(), value=sf.Int(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Int())
    seen: list[str | None] = []
    t.processor("p").stream(a, b).peek(lambda r: seen.append(r.topic)).to(out)
    with TopologyTestDriver(t) as driver:
        driver.input("b").send(2)
        driver.input("a").send(1)
        assert driver.output("out").read_values() == [2, 1]
    assert seen == ["b", "a"]


def test_reusing_a_stream_fans_records_out_to_every_branch() -> None:
    t = sf.Topology("fan")
    src = t.topic("in", key=sf.String(), value=sf.Int(), external=True)
    x = t.topic("x", key=sf.String(), value=sf.Int())
    y = t.topic("y", key=sf.String(), value=sf.Int())
    s = t.processor("p").stream(src).map(lambda v: v + 1)
    s.to(x)
    s.map(lambda v: v * 2).to(y)
    with TopologyTestDriver(t) as driver:
        driver.input("in").send(1)
        assert driver.output("x").read_values() == [2]
        assert driver.output("y").read_values() == [4]


# -- sinks ---------------------------------------------------------------------------------

def test_to_topic_serializes_with_the_sink_topics_serdes() -> None:
    t = sf.Topology("s")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("out", key=sf.Bytes(), value=sf.Long())
    t.processor("p").stream(src).map_record(
        lambda r: r.with_key(r.key.encode()).with_value(r.value["n"])
    ).to(out)
    with TopologyTestDriver(t) as driver:
        driver.input("in").send({"n": 2**40}, key="k")
        assert driver.output(out).read_key_values() == [(b"k", 2**40)]


def test_to_accepts_a_topic_name() -> None:
    t = topology(lambda s, out: s.to("out"), value=sf.Int())
    assert [r.value for r in run(t, [1])] == [1]


def test_to_function_routes_each_record_to_the_topic_it_names() -> None:
    t = sf.Topology("dyn")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    eu = t.topic("orders.eu", key=sf.String(), value=sf.Json())
    us = t.topic("orders.us", key=sf.String(), value=sf.Json())
    t.processor("p").stream(src).to(lambda r: eu if r.value["region"] == "eu" else "orders.us")
    with TopologyTestDriver(t) as driver:
        driver.input("in").send({"region": "eu", "n": 1}, key="a")
        driver.input("in").send({"region": "us", "n": 2}, key="b")
        driver.input("in").send({"region": "eu", "n": 3}, key="c")
        assert driver.output(eu).read_key_values() == [
            ("a", {"region": "eu", "n": 1}), ("c", {"region": "eu", "n": 3}),
        ]
        assert driver.output(us).read_key_values() == [("b", {"region": "us", "n": 2})]


def test_to_function_uses_each_target_topics_own_serdes() -> None:
    t = sf.Topology("dyn")
    src = t.topic("in", key=sf.String(), value=sf.Int(), external=True)
    as_int = t.topic("as-int", key=sf.String(), value=sf.Int())
    as_str = t.topic("as-str", key=sf.String(), value=sf.String())
    t.processor("p").stream(src).map(
        lambda v: v if v < 10 else str(v)
    ).to(lambda r: "as-int" if isinstance(r.value, int) else "as-str")
    with TopologyTestDriver(t) as driver:
        driver.input("in").send(1)
        driver.input("in").send(20)
        assert driver.output(as_int).read_values() == [1]
        assert driver.output(as_str).read_values() == ["20"]


def test_a_stream_can_write_to_several_topics() -> None:
    t = sf.Topology("two")
    src = t.topic("in", key=sf.String(), value=sf.Int(), external=True)
    a = t.topic("a", key=sf.String(), value=sf.Int())
    b = t.topic("b", key=sf.String(), value=sf.Int())
    s = t.processor("p").stream(src)
    s.to(a)
    s.to(b)
    with TopologyTestDriver(t) as driver:
        driver.input("in").send(9)
        assert driver.output(a).read_values() == [9]
        assert driver.output(b).read_values() == [9]


# -- names ---------------------------------------------------------------------------------

def test_named_and_derived_step_names_show_in_describe() -> None:
    t = topology(
        lambda s, out: s.map(lambda v: v, name="identity").filter(bool).map(str).to(out),
        value=sf.Json(),
    )
    text = t.describe()
    for step in ["source-1: source(in)", "identity: map(", "filter-1: filter(bool)",
                 "map-1: map(str)", "to-1: to(out)"]:
        assert step in text


def test_step_error_names_the_explicitly_named_step() -> None:
    from streamflow.runtime.errors import ProcessingFailed

    t = topology(lambda s, out: s.map(lambda v: 1 / v, name="invert").to(out), value=sf.Int())
    with TopologyTestDriver(t) as driver, pytest.raises(ProcessingFailed, match="'invert'"):
        driver.input("in").send(0)


def test_step_error_names_the_derived_step() -> None:
    from streamflow.runtime.errors import ProcessingFailed

    t = topology(
        lambda s, out: s.map(lambda v: v).map(lambda v: 1 / v).to(out), value=sf.Int()
    )
    with TopologyTestDriver(t) as driver, pytest.raises(ProcessingFailed, match="'map-2'"):
        driver.input("in").send(0)


# -- headers, timestamps, offsets ----------------------------------------------------------

def test_headers_and_timestamps_pass_through_value_operators() -> None:
    t = topology(
        lambda s, out: s.map(lambda v: v + 1)
        .filter(lambda v: True)
        .flat_map(lambda v: [v])
        .key_by(lambda v: "new")
        .peek(lambda r: None)
        .to(out),
        value=sf.Int(),
    )
    headers = [("trace", b"abc"), ("trace", b"def"), ("bin", b"\x00\xff")]
    with TopologyTestDriver(t) as driver:
        driver.input("in").send(1, key="k", timestamp=123_456, headers=headers)
        (r,) = driver.output("out").read_records()
    assert (r.key, r.value, r.timestamp, r.headers) == ("new", 2, 123_456, headers)
    assert r.header("trace") == b"def"


def test_headers_pass_through_a_split_and_a_dynamic_route() -> None:
    t = sf.Topology("h")
    src = t.topic("in", key=sf.String(), value=sf.Int(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Int())
    parts = t.processor("p").stream(src).split(any=lambda v: True)
    parts["any"].to(lambda r: out)
    with TopologyTestDriver(t) as driver:
        driver.input("in").send(1, timestamp=77, headers=[("h", b"1")])
        (r,) = driver.output("out").read_records()
    assert (r.timestamp, r.headers) == (77, [("h", b"1")])


def test_records_without_headers_come_out_without_headers() -> None:
    t = topology(lambda s, out: s.to(out), value=sf.Int())
    (r,) = run(t, [1])
    assert r.headers is None


def test_timestamp_defaults_to_the_driver_wall_clock() -> None:
    t = topology(lambda s, out: s.to(out), value=sf.Int())
    with TopologyTestDriver(t, config={"wall_clock_ms": 5_000}) as driver:
        driver.input("in").send(1)
        driver.advance_wall_clock(250)
        driver.input("in").send(2)
        assert [r.timestamp for r in driver.output("out").read_records()] == [5_000, 5_250]


def test_wall_clock_only_moves_forward() -> None:
    t = topology(lambda s, out: s.to(out), value=sf.Int())
    with TopologyTestDriver(t) as driver, pytest.raises(ValueError, match="only moves forward"):
        driver.advance_wall_clock(-1)


def test_output_records_carry_topic_partition_and_increasing_offsets() -> None:
    t = topology(lambda s, out: s.flat_map(lambda v: [v, v]).to(out), value=sf.Int())
    records = run(t, [1, 2])
    assert [(r.topic, r.partition, r.offset) for r in records] == [
        ("out", 0, 0), ("out", 0, 1), ("out", 0, 2), ("out", 0, 3),
    ]


def test_each_output_record_is_read_once() -> None:
    t = topology(lambda s, out: s.to(out), value=sf.Int())
    with TopologyTestDriver(t) as driver:
        out = driver.output("out")
        assert out.is_empty()
        driver.input("in").send(1)
        assert not out.is_empty()
        assert out.read_values() == [1]
        assert out.is_empty()
        assert out.read_values() == []


def test_send_many_accepts_records_and_bare_values() -> None:
    t = topology(lambda s, out: s.to(out), value=sf.Int())
    with TopologyTestDriver(t, config={"wall_clock_ms": 9}) as driver:
        driver.input("in").send_many(
            [Record("a", 1, 100, [("h", b"x")]), 2, Record("b", 3)]
        )
        records = driver.output("out").read_records()
    assert [(r.key, r.value, r.timestamp, r.headers) for r in records] == [
        ("a", 1, 100, [("h", b"x")]), (None, 2, 9, None), ("b", 3, 9, None),
    ]


def test_send_raw_skips_the_input_serializer() -> None:
    t = topology(lambda s, out: s.to(out), value=sf.Int())
    with TopologyTestDriver(t) as driver:
        driver.input("in").send_raw(b"\x00\x00\x00\x2a", key=b"k", timestamp=3)
        assert driver.output("out").read_key_values() == [("k", 42)]


def test_driver_refuses_records_after_close() -> None:
    t = topology(lambda s, out: s.to(out), value=sf.Int())
    driver = TopologyTestDriver(t)
    inp = driver.input("in")
    driver.close()
    with pytest.raises(RuntimeError, match="closed"):
        inp.send(1)


# -- multi-processor topologies ------------------------------------------------------------

def pipeline() -> sf.Topology:
    """raw -> [parse] -> numbers -> [square] -> squares -> [label] -> labels"""
    t = sf.Topology("dag")
    raw = t.topic("raw", key=sf.String(), value=sf.String(), external=True)
    numbers = t.topic("numbers", key=sf.String(), value=sf.Int())
    squares = t.topic("squares", key=sf.String(), value=sf.Long())
    labels = t.topic("labels", key=sf.String(), value=sf.Json())
    t.processor("parse").stream(raw).map(int).to(numbers)
    t.processor("square").stream(numbers).map(lambda n: n * n).to(squares)
    t.processor("label").stream(squares).map_record(
        lambda r: r.with_value({"n": r.value, "from": r.topic, "at": r.offset})
    ).to(labels)
    return t


def test_driver_pipes_one_processors_output_into_the_next() -> None:
    with TopologyTestDriver(pipeline()) as driver:
        driver.input("raw").send("3", key="a", timestamp=10, headers=[("h", b"1")])
        driver.input("raw").send("4", key="b", timestamp=11)
        assert driver.output("numbers").read_values() == [3, 4]
        assert driver.output("squares").read_values() == [9, 16]
        labels = driver.output("labels").read_records()
    assert [(r.key, r.value, r.timestamp) for r in labels] == [
        ("a", {"n": 9, "from": "squares", "at": 0}, 10),
        ("b", {"n": 16, "from": "squares", "at": 1}, 11),
    ]
    assert labels[0].headers == [("h", b"1")]


def test_driver_with_one_processor_does_not_run_the_others() -> None:
    with TopologyTestDriver(pipeline(), processor="square") as driver:
        driver.input("numbers").send(5)
        assert driver.output("squares").read_values() == [25]
        assert driver.output("labels").is_empty()
        with pytest.raises(sf.TopologyError, match="no driven processor reads topic 'raw'"):
            driver.input("raw")


def test_two_processors_reading_one_topic_both_get_every_record() -> None:
    t = sf.Topology("fan")
    src = t.topic("in", key=sf.String(), value=sf.Int(), external=True)
    a = t.topic("a", key=sf.String(), value=sf.Int())
    b = t.topic("b", key=sf.String(), value=sf.Int())
    t.processor("pa").stream(src).map(lambda v: v + 1).to(a)
    t.processor("pb").stream(src).map(lambda v: v - 1).to(b)
    with TopologyTestDriver(t) as driver:
        driver.input("in").send(10)
        assert driver.output(a).read_values() == [11]
        assert driver.output(b).read_values() == [9]


def test_piped_records_are_processed_in_the_order_they_were_produced() -> None:
    t = sf.Topology("order")
    src = t.topic("in", key=sf.String(), value=sf.Int(), external=True)
    mid = t.topic("mid", key=sf.String(), value=sf.Int())
    out = t.topic("out", key=sf.String(), value=sf.Int())
    t.processor("explode").stream(src).flat_map(lambda n: range(n)).to(mid)
    t.processor("tag").stream(mid).map(lambda v: v * 100).to(out)
    with TopologyTestDriver(t) as driver:
        driver.input("in").send(3)
        driver.input("in").send(2)
        assert driver.output(out).read_values() == [0, 100, 200, 0, 100]


def test_example_orders_topology_runs_end_to_end() -> None:
    from topologies.orders import topology as orders_topology

    lines = [{"qty": 2, "unit_price": 300.0}]
    with TopologyTestDriver(orders_topology) as driver:
        orders = driver.input("orders")
        orders.send({"customer": "c1", "status": "new", "country": "US", "lines": lines}, key="o1")
        orders.send({"customer": "c2", "status": "cancelled", "country": "US", "lines": lines},
                    key="o2")
        orders.send({"customer": "c3", "status": "new", "country": "DE",
                     "lines": [{"qty": 1, "unit_price": 10.0}]}, key="o3")
        large = driver.output("orders.large").read_key_values()
        small = driver.output("orders.small").read_key_values()
    assert [(k, v["gross"]) for k, v in large] == [("c1", 600.0)]
    assert [(k, v["gross"]) for k, v in small] == [("c3", 11.9)]
