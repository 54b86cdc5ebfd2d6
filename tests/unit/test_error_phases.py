"""Error handling per phase: deserialize, process and produce policies, step overrides, handlers."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

import streamflow as sf
from streamflow.runtime.errors import ProcessingFailed
from streamflow.testing import TopologyTestDriver

DLQ = "t.p.dlq"


def build(**policies: Any) -> sf.Topology:
    """``in`` (String/Json) -> [p: parse (x["n"] * 2), to out (Int)] with ``policies``."""
    t = sf.Topology("t")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Int())
    t.processor("p", **policies).stream(src).map(lambda v: v["n"] * 2, name="double").to(
        out, name="to-out")
    return t


GOOD = {"n": 1}
UNDECODABLE = b"{not json"
USER_BUG = orjson.dumps({"m": 1})  # KeyError in double
UNSERIALIZABLE = orjson.dumps({"n": "ab"})  # "abab" is no Int


def send_all(driver: TopologyTestDriver, *raws: bytes) -> None:
    for i, raw in enumerate(raws):
        driver.input("in").send_raw(raw, key=f"k{i}".encode())


def phases(driver: TopologyTestDriver) -> list[tuple[bytes | None, bytes]]:
    return [(r.value, dict(r.headers or [])["streamflow.error.phase"])
            for r in driver.output(DLQ).read_records()]


def test_poison_input_is_dead_lettered_while_a_user_bug_fails_the_processor() -> None:
    t = build(on_deserialize_error="dead_letter", on_processing_error="fail")
    with TopologyTestDriver(t) as driver:
        send_all(driver, orjson.dumps(GOOD), UNDECODABLE)
        assert phases(driver) == [(UNDECODABLE, b"deserialize")]
        with pytest.raises(ProcessingFailed, match=r"in\[0\]@2 failed in step 'double': "
                           r"KeyError: 'n'.*set on_processing_error='dead_letter'"):
            send_all(driver, USER_BUG)
        assert driver.output("out").read_values() == [2]


def test_a_specific_phase_overrides_the_on_error_shorthand() -> None:
    t = build(on_error="skip", on_produce_error="dead_letter")
    with TopologyTestDriver(t) as driver:
        send_all(driver, UNDECODABLE, USER_BUG, UNSERIALIZABLE, orjson.dumps(GOOD))
        assert driver.output("out").read_values() == [2]
        assert phases(driver) == [(UNSERIALIZABLE, b"produce")]


RAW_OF_PHASE = {"on_deserialize_error": UNDECODABLE, "on_processing_error": USER_BUG,
                "on_produce_error": UNSERIALIZABLE}


@pytest.mark.parametrize("phase", list(RAW_OF_PHASE))
def test_each_phase_policy_covers_only_the_failures_of_its_phase(phase: str) -> None:
    with TopologyTestDriver(build(on_error="skip", **{phase: "fail"})) as driver:
        send_all(driver, *(raw for p, raw in RAW_OF_PHASE.items() if p != phase))
        assert driver.engines["p"][0].policy.skipped == 2
        with pytest.raises(ProcessingFailed, match=f"set {phase}="):
            driver.input("in").send_raw(RAW_OF_PHASE[phase], key=b"x")


def routed(**sink: Any) -> sf.Topology:
    """``in`` -> [p (on_error=dead_letter): to the ``out`` (Int) topic a router picks].

    The router raises for ``"boom"``; ``sink`` are more arguments of ``to()``.
    """
    t = sf.Topology("t")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Int())

    def route(r: sf.Record) -> str:
        if r.value == "boom":
            raise ValueError("no route")
        return out.name

    t.processor("p", on_error="dead_letter").stream(src).to(route, name="route", **sink)
    return t


def test_a_router_failing_is_a_processing_error_its_output_not_serializing_a_produce_error(
) -> None:
    with TopologyTestDriver(routed()) as driver:
        for v in ["boom", "text", 7]:
            driver.input("in").send(v, key="k")
        assert driver.output("out").read_values() == [7]
        assert phases(driver) == [(b'"boom"', b"process"), (b'"text"', b"produce")]


# -- per-step overrides --------------------------------------------------------------------

def step_topology(**step: Any) -> sf.Topology:
    t = sf.Topology("t")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Json())
    (t.processor("p", on_error="fail").stream(src)
     .map(lambda v: 10 // v, name="tolerant", **step)
     .map(lambda v: 100 // (v - 5), name="strict")
     .to(out))
    return t


def test_a_step_on_error_overrides_the_processing_policy_for_that_step_only() -> None:
    with TopologyTestDriver(step_topology(on_error="dead_letter")) as driver:
        for v in [1, 0, 5]:
            driver.input("in").send(v, key="k")
        (dead,) = driver.output(DLQ).read_records()
        assert dict(dead.headers or [])["streamflow.error.step"] == b"tolerant"
        assert driver.output("out").read_values() == [20, -34]
        with pytest.raises(ProcessingFailed, match="failed in step 'strict'"):
            driver.input("in").send(2, key="k")  # 10 // 2 == 5, then 100 // 0


def test_a_step_on_error_does_not_cover_decoding_the_input() -> None:
    with TopologyTestDriver(step_topology(on_error="skip")) as driver, \
            pytest.raises(ProcessingFailed, match="on_deserialize_error="):
        driver.input("in").send_raw(b"{", key=b"k")


@pytest.mark.parametrize("op", ["filter", "flat_map", "key_by", "peek", "map_record",
                                "filter_record"])
def test_every_user_function_step_takes_on_error(op: str) -> None:
    t = sf.Topology("t")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("out", key=sf.Json(), value=sf.Json())

    def boom(x: Any) -> Any:
        raise RuntimeError("boom")

    getattr(t.processor("p").stream(src), op)(boom, name="s", on_error="skip").to(out)
    with TopologyTestDriver(t) as driver:
        driver.input("in").send(1, key="k")
        assert driver.output("out").is_empty()
        assert driver.engines["p"][0].policy.skipped == 1


def test_a_bad_step_on_error_is_a_topology_error() -> None:
    t = sf.Topology("t")
    src = t.topic("in", external=True)
    with pytest.raises(sf.TopologyError, match="step 'm': on_error must be"):
        t.processor("p").stream(src).map(str, name="m", on_error="ignore")  # type: ignore[arg-type]


# -- handlers ------------------------------------------------------------------------------

def test_a_handler_sees_the_failure_and_decides() -> None:
    seen: list[sf.ErrorContext] = []

    def decide(ctx: sf.ErrorContext) -> sf.ErrorAction:
        seen.append(ctx)
        return "dead_letter" if isinstance(ctx.exception, KeyError) else "skip"

    with TopologyTestDriver(build(on_error=decide)) as driver:
        driver.input("in").send_raw(USER_BUG, key=b"k1", timestamp=5, headers=[("h", b"1")])
        driver.input("in").send_raw(UNDECODABLE, key=b"k2", timestamp=6)
        assert phases(driver) == [(USER_BUG, b"process")]
    first, second = seen
    assert (first.phase, first.processor, first.step, first.topic, first.partition,
            first.offset, first.key, first.value, first.timestamp, first.headers) == (
        "process", "p", "double", "in", 0, 0, b"k1", USER_BUG, 5, [("h", b"1")])
    assert isinstance(first.exception, KeyError)
    assert (second.phase, second.step, second.offset) == ("deserialize", "source-1:deserialize", 1)


def test_a_handler_deciding_fail_stops_the_processor_saying_who_decided() -> None:
    def never(ctx: sf.ErrorContext) -> sf.ErrorAction:
        return "fail"

    expected = (r"KeyError: 'n'\. Fix the data or the code, or change the on_processing_error "
                r"handler .*never\(\), which decided 'fail'")
    with TopologyTestDriver(build(on_processing_error=never)) as driver, \
            pytest.raises(ProcessingFailed, match=expected):
        driver.input("in").send_raw(USER_BUG, key=b"k")


@pytest.mark.parametrize(("handler", "message"), [
    (lambda ctx: "ignore", r"returned 'ignore' for record in\[0\]@0; it must return"),
    (lambda ctx: 1 / 0, r"raised ZeroDivisionError: division by zero while deciding about "
                        r"record in\[0\]@0 \(which failed in step 'double': KeyError: 'n'\)"),
])
def test_a_broken_handler_stops_the_processor(handler: Any, message: str) -> None:
    with TopologyTestDriver(build(on_error=handler)) as driver, \
            pytest.raises(ProcessingFailed, match=message):
        driver.input("in").send_raw(USER_BUG, key=b"k")


# -- description ---------------------------------------------------------------------------

def test_describe_and_options_show_each_phase_and_step_overrides() -> None:
    def decide(ctx: sf.ErrorContext) -> sf.ErrorAction:
        return "skip"

    t = build(on_error="dead_letter", on_processing_error=decide)
    t.processors["p"].stream(t.topic("more", external=True)).map(str, name="m", on_error="skip")
    text = t.describe()
    assert ("Processor p (group t.p, at_least_once, on_deserialize_error=dead_letter, "
            "on_processing_error=test_describe_and_options_show_each_phase_and_step_overrides."
            "<locals>.decide(), on_produce_error=dead_letter)") in text
    assert "m: map(str) [on_error=skip]" in text
    options = t.processors["p"].options()
    assert (options["on_error"], options["on_deserialize_error"], options["on_produce_error"]) \
        == ("dead_letter", "dead_letter", "dead_letter")
    assert "Processor p (group t.p, at_least_once, on_error=skip)" in build(
        on_error="skip").describe()


@pytest.mark.parametrize(("policies", "step", "expected"), [
    ({}, None, False),
    ({"on_error": "skip"}, None, False),
    ({"on_produce_error": "dead_letter"}, None, True),
    ({"on_deserialize_error": lambda ctx: "skip"}, None, True),  # a handler may dead-letter
    ({}, "dead_letter", True),
])
def test_dead_letters_says_whether_any_policy_may_write_the_dead_letter_topic(
    policies: dict[str, Any], step: str | None, expected: bool
) -> None:
    t = build(**policies)
    if step is not None:
        t.processors["p"].stream(t.topic("more", external=True)).map(str, on_error=step)
    assert t.processors["p"].dead_letters is expected


def test_split_and_process_take_on_error_too() -> None:
    t = sf.Topology("t")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Json())
    p = t.processor("p")
    parts = p.stream(src).split(name="sign", on_error="skip", neg=lambda v: v["n"] < 0,
                                default="pos")

    def forward_inverse(record: sf.Record, ctx: Any) -> None:
        ctx.forward(record.key, 1 / record.value["n"])

    parts["pos"].process(forward_inverse, name="inverse", on_error="dead_letter").to(out)
    with TopologyTestDriver(t) as driver:
        for v in [{"n": 2}, {"m": 1}, {"n": 0}, {"n": -1}]:
            driver.input("in").send(v, key="k")
        assert driver.output("out").read_values() == [0.5]
        (dead,) = driver.output(DLQ).read_records()
        assert dict(dead.headers or [])["streamflow.error.step"] == b"inverse"
        assert driver.engines["p"][0].policy.skipped == 1  # {"m": 1} in sign
    assert "sign: split(neg, pos (default)) [on_error=skip]" in t.describe()
