"""A sink's own ``on_produce_error=``: per-sink policies for outputs that cannot be serialized."""

from __future__ import annotations

from typing import Any

import pytest

import streamflow as sf
from streamflow.runtime.errors import ProcessingFailed
from streamflow.testing import TopologyTestDriver
from tests.unit.test_error_phases import routed

DLQ = "t.p.dlq"


def two_sinks(**policies: Any) -> sf.Topology:
    """``in`` -> [p: to ``counts`` (Int values), then 5 spelled out, to ``copies`` (Int)].

    The ``counts`` sink dead-letters what it cannot serialize; ``copies`` keeps the
    processor's policy (a 5 is spelled ``"five"`` on its way there: no Int).
    """
    t = sf.Topology("t")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    counts = t.topic("counts", key=sf.String(), value=sf.Int())
    copies = t.topic("copies", key=sf.String(), value=sf.Int())
    stream = t.processor("p", **policies).stream(src).map(lambda v: v["n"], name="n")
    stream.to(counts, name="to-counts", on_produce_error="dead_letter")
    stream.map(lambda n: "five" if n == 5 else n, name="spell").to(copies, name="to-copies")
    return t


def letters(driver: TopologyTestDriver) -> list[tuple[bytes | None, str, str]]:
    out = []
    for r in driver.output(DLQ).read_records():
        h = dict(r.headers or [])
        out.append((r.value, h["streamflow.error.phase"].decode(),
                    h["streamflow.error.step"].decode()))
    return out


def test_one_sink_dead_letters_what_it_cannot_serialize_while_another_fails() -> None:
    with TopologyTestDriver(two_sinks()) as driver:
        driver.input("in").send({"n": 1}, key="a")
        driver.input("in").send({"n": "x"}, key="b")  # no Int for counts: a dead letter
        assert driver.output("counts").read_values() == [1]
        assert driver.output("copies").read_values() == [1]  # a failed record goes no further
        assert letters(driver) == [(b'{"n":"x"}', "produce", "to-counts")]
        with pytest.raises(ProcessingFailed, match=r"failed in step 'to-copies': SerdeError.*"
                           r"set on_produce_error='dead_letter'"):
            driver.input("in").send({"n": 5}, key="c")  # "five" for copies: the processor's
        assert letters(driver) == []


def test_the_sink_policy_is_more_specific_than_the_processors() -> None:
    with TopologyTestDriver(two_sinks(on_produce_error="skip")) as driver:
        driver.input("in").send({"n": "x"}, key="a")
        assert letters(driver) == [(b'{"n":"x"}', "produce", "to-counts")]  # not skipped
        driver.input("in").send({"n": 5}, key="b")
        assert letters(driver) == []
        assert driver.engines["p"][0].policy.skipped == 1  # in to-copies: the processor's
        assert driver.output("counts").read_values() == [5]


def test_a_sink_failing_under_its_own_fail_policy_names_that_policy() -> None:
    t = sf.Topology("t")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Int())
    # one straight run: the fused fast path serializes for the sink
    t.processor("p", on_error="dead_letter").stream(src).map(lambda v: v, name="same").to(
        out, name="to-out", on_produce_error="fail")
    with TopologyTestDriver(t) as driver:
        driver.input("in").send(3, key="a")
        assert driver.output("out").read_values() == [3]
        with pytest.raises(ProcessingFailed, match=r"failed in step 'to-out'.*set "
                           r"on_produce_error of step 'to-out'='dead_letter'"):
            driver.input("in").send("three", key="a")
        assert driver.output(DLQ).is_empty()


def test_a_sink_policy_may_be_a_handler_and_covers_a_routed_sinks_outputs_only() -> None:
    seen: list[sf.ErrorContext] = []

    def decide(ctx: sf.ErrorContext) -> sf.ErrorAction:
        seen.append(ctx)
        return "skip"

    with TopologyTestDriver(routed(on_produce_error=decide)) as driver:
        for v in ["text", 7, "boom"]:
            driver.input("in").send(v, key="k")
        assert driver.output("out").read_values() == [7]
        # the router raising is user code: the processor's on_processing_error
        assert letters(driver) == [(b'"boom"', "process", "route")]
    assert [(c.phase, c.step, c.value) for c in seen] == [("produce", "route", b'"text"')]


def test_describe_shows_a_sink_policy_and_it_may_dead_letter() -> None:
    t = two_sinks()
    assert "to-counts: to(counts) [on_produce_error=dead_letter]" in t.describe()
    assert "to-copies: to(copies)\n" in t.describe() + "\n"
    assert t.processors["p"].dead_letters
    assert t.processors["p"].step_policies("produce") == {"to-counts": "dead_letter"}


def test_a_bad_sink_policy_is_a_topology_error() -> None:
    t = sf.Topology("t")
    src = t.topic("in", external=True)
    out = t.topic("out")
    with pytest.raises(sf.TopologyError, match=r"to\(\) on_produce_error must be"):
        t.processor("p").stream(src).to(out, on_produce_error="drop")  # type: ignore[arg-type]


def test_a_renamed_topology_keeps_the_sink_policy() -> None:
    t = two_sinks().with_name_suffix("-x")
    assert t.processors["p"].step_policies("produce") == {"to-counts": "dead_letter"}


def test_dlq_commands_accept_a_processor_whose_only_dead_letters_come_from_a_sink() -> None:
    from streamflow.errors import ConfigurationError
    from streamflow.ops.dlq import _dead_letter_topic

    assert _dead_letter_topic(two_sinks(), "p") == DLQ  # on_error="fail", to-counts letters
    with pytest.raises(ConfigurationError, match=r"'p' has on_error=skip and no step or sink "
                                                 r"that dead-letters"):
        _dead_letter_topic(build_plain(on_error="skip"), "p")


def build_plain(**policies: Any) -> sf.Topology:
    t = sf.Topology("t")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    t.processor("p", **policies).stream(src).to(t.topic("out"))
    return t
