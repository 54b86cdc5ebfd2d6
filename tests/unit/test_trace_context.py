"""Trace context: an input's traceparent/tracestate reach every record produced from it, and
with tracing on a span per batch is the child of (or linked to) the input traces."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import streamflow as sf
from streamflow.observability.tracing import MAX_LINKS, batch_tracer, trace_id
from streamflow.testing import TopologyTestDriver

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def traced(trace_hex: str = TRACE, span: str = PARENT) -> list[tuple[str, bytes]]:
    return [("traceparent", f"00-{trace_hex}-{span}-01".encode()),
            ("tracestate", b"vendor=opaque"), ("other", b"kept")]


def assert_carried(records: list[sf.Record], trace_hex: str = TRACE) -> None:
    assert records, "nothing was produced"
    for r in records:
        assert trace_id(r.headers) == trace_hex, r
        assert r.header("tracestate") == b"vendor=opaque", r


def topology() -> sf.Topology:
    t = sf.Topology("trace")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    users = t.topic("users", key=sf.String(), value=sf.Json(), external=True)
    outs = {n: t.topic(n, key=sf.String(), value=sf.Json()) for n in (
        "mapped", "many", "rekeyed", "records", "big", "small", "joined", "processed", "routed")}
    counts = t.topic("counts", key=sf.String(), value=sf.Long())
    windows = t.topic("windows", key=sf.Json(), value=sf.Long())

    s = t.processor("stateless").stream(src)
    s.map(lambda v: {**v, "m": 1}).filter(lambda v: v["n"] >= 0).to(outs["mapped"])
    s.flat_map(lambda v: [v, v]).to(outs["many"])
    s.key_by(lambda v: str(v["n"])).peek(lambda r: None).to(outs["rekeyed"])
    s.map_record(lambda r: r.with_value({"n": r.value["n"]})).to(outs["records"])
    parts = s.split(big=lambda v: v["n"] > 10, default="small")
    parts["big"].to(outs["big"])
    parts["small"].to(outs["small"])
    s.to(lambda r: outs["routed"])

    p = t.processor("stateful")
    ps = p.stream(src)
    ps.group_by(lambda v: v["user"], name="by-user").count(name="per-user").to_stream().to(counts)
    ps.join(t.table(users), lambda v, u: {**v, "name": u["name"]}, name="enrich").to(
        outs["joined"])

    def forward(record: sf.Record, ctx: Any) -> None:
        ctx.forward(record.key, {"seen": record.value["n"]})

    ps.process(forward, name="fwd").to(outs["processed"])

    w = t.processor("windowed")
    w.stream(src).group_by_key(name="by-key").window(sf.Tumbling(sf.seconds(10))).count(
        name="per-10s").updates().to(windows)

    failing = t.processor("failing", on_error="dead_letter")
    failing.stream(src).map(lambda v: 1 // v["n"]).to(t.topic("inverse", key=sf.String(),
                                                             value=sf.Json()))
    return t


@pytest.fixture
def driver() -> Any:
    with TopologyTestDriver(topology()) as d:
        d.input("users").send({"name": "ann"}, key="u1", timestamp=500)
        yield d


def test_stateless_steps_carry_the_trace_context(driver: TopologyTestDriver) -> None:
    driver.input("in").send({"n": 3, "user": "u1"}, key="u1", timestamp=1000, headers=traced())
    for topic in ("mapped", "many", "rekeyed", "records", "small", "routed"):
        records = driver.output(topic).read_records()
        assert_carried(records)
        assert all(r.header("other") == b"kept" for r in records)
    assert driver.output("big").is_empty()


def test_aggregates_repartitions_joins_and_process_carry_the_trace_context(
        driver: TopologyTestDriver) -> None:
    driver.input("in").send({"n": 1, "user": "u1"}, key="u1", timestamp=1000, headers=traced())
    other = "0af7651916cd43dd8448eb211c80319c"
    driver.input("in").send({"n": 2, "user": "u1"}, key="u1", timestamp=1001,
                            headers=traced(other))
    counts = driver.output("counts").read_records()  # through the repartition topic
    assert [r.value for r in counts] == [1, 2]
    assert [trace_id(r.headers) for r in counts] == [TRACE, other]
    joined = driver.output("joined").read_records()
    assert [trace_id(r.headers) for r in joined] == [TRACE, other]
    processed = driver.output("processed").read_records()
    assert [trace_id(r.headers) for r in processed] == [TRACE, other]


def test_window_updates_carry_the_trace_context(driver: TopologyTestDriver) -> None:
    driver.input("in").send({"n": 1, "user": "u1"}, key="k", timestamp=1000, headers=traced())
    assert_carried(driver.output("windows").read_records())


def test_dead_letters_keep_the_trace_context(driver: TopologyTestDriver) -> None:
    driver.input("in").send({"n": 0, "user": "u1"}, key="k", timestamp=1000, headers=traced())
    dead = driver.output("trace.failing.dlq").read_records()
    assert_carried(dead)
    assert dead[0].header("streamflow.error.type") == b"ZeroDivisionError"


# -- spans (OpenTelemetry SDK) ------------------------------------------------------------


class Msg:
    def __init__(self, headers: list[tuple[str, bytes]] | None) -> None:
        self._headers = headers

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers


@pytest.fixture
def spans() -> Any:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def test_tracing_off_leaves_the_process_function_as_it_is() -> None:
    def process(msgs: list[Any]) -> None:
        pass

    assert batch_tracer(process, enabled=False, processor="p", group_id="g") is process


def test_a_batch_of_one_trace_is_processed_in_a_child_span(spans: Any) -> None:
    provider, exporter = spans
    seen: list[Any] = []

    def process(msgs: list[Any]) -> None:
        seen.append(trace.get_current_span().get_span_context())

    traced_process = batch_tracer(process, enabled=True, processor="enrich", group_id="t.enrich",
                                  tracer_provider=provider)
    traced_process([Msg(traced()), Msg(None), Msg([("x", b"y")])])
    (span,) = exporter.get_finished_spans()
    assert span.name == "process enrich"
    assert span.kind == trace.SpanKind.CONSUMER
    assert format(span.context.trace_id, "032x") == TRACE
    assert format(span.parent.span_id, "016x") == PARENT
    assert span.attributes["messaging.batch.message_count"] == 3
    assert span.attributes["messaging.consumer.group.name"] == "t.enrich"
    assert seen == [span.context]  # the batch runs inside the span


def test_a_batch_of_several_traces_links_each_of_them(spans: Any) -> None:
    provider, exporter = spans
    ids = [f"{i:032x}" for i in range(1, 4)]
    traced_process = batch_tracer(lambda msgs: None, enabled=True, processor="p",
                                  group_id="g", tracer_provider=provider)
    traced_process([Msg(traced(i)) for i in ids] + [Msg(traced(ids[0]))])
    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    assert format(span.context.trace_id, "032x") not in ids
    assert sorted(format(link.context.trace_id, "032x") for link in span.links) == ids


def test_links_are_capped(spans: Any) -> None:
    provider, exporter = spans
    traced_process = batch_tracer(lambda msgs: None, enabled=True, processor="p",
                                  group_id="g", tracer_provider=provider)
    traced_process([Msg(traced(f"{i + 1:032x}")) for i in range(MAX_LINKS + 50)])
    (span,) = exporter.get_finished_spans()
    assert len(span.links) == MAX_LINKS


def test_empty_polls_make_no_span_and_a_failing_batch_ends_its_span_as_error(spans: Any
                                                                           ) -> None:
    provider, exporter = spans

    def fail(msgs: list[Any]) -> None:
        if msgs:
            raise RuntimeError("boom")

    traced_process = batch_tracer(fail, enabled=True, processor="p", group_id="g",
                                  tracer_provider=provider)
    traced_process([])
    assert exporter.get_finished_spans() == ()
    with pytest.raises(RuntimeError):
        traced_process([Msg(None)])
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code == trace.StatusCode.ERROR


def test_tracing_without_opentelemetry_is_a_configuration_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from streamflow.config import ConfigError

    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)
    with pytest.raises(ConfigError, match=r"pip install 'streamflow\[otel\]'"):
        batch_tracer(lambda msgs: None, enabled=True, processor="p", group_id="g")


class Producing:
    """A producer that keeps what it is given."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def produce(self, topic: str, value: Any, key: Any, *, timestamp: int = 0,
                headers: Any = None, partition: int = -1) -> None:
        self.sent.append((topic, headers))

    def poll(self, timeout: float) -> int:
        return 0


def test_outputs_continue_the_trace_from_the_batch_span(spans: Any) -> None:
    from streamflow.observability.tracing import output_tracer
    from streamflow.runtime.collector import Collector

    provider, exporter = spans
    assert output_tracer(False) is None
    collector = Collector(1.0)
    collector.wrap_emit = output_tracer(True)
    producer = Producing()
    collector.producer = producer  # type: ignore[assignment]
    other = "0af7651916cd43dd8448eb211c80319c"

    def process(msgs: list[Any]) -> None:
        collector.emit("out", b"k", b"v", 1, traced())  # the batch's trace: continued
        collector.emit("out", b"k", b"v", 1, traced(other))  # another trace: as it was
        collector.emit("out", b"k", b"v", 1, [("x", b"y")])
        collector.dead_letter("dlq", b"k", b"v", 1, traced())

    batch_tracer(process, enabled=True, processor="p", group_id="g",
                 tracer_provider=provider)([Msg(traced())])
    (span,) = exporter.get_finished_spans()
    own = f"00-{TRACE}-{span.context.span_id:016x}-01".encode()
    assert producer.sent == [
        ("out", [("traceparent", own), ("tracestate", b"vendor=opaque"), ("other", b"kept")]),
        ("out", traced(other)),
        ("out", [("x", b"y")]),
        ("dlq", [("traceparent", own), ("tracestate", b"vendor=opaque"), ("other", b"kept")]),
    ]
    collector.emit("out", b"k", b"v", 1, traced())  # outside any span: as it was
    assert producer.sent[-1] == ("out", traced())
