"""A schema registry outage is not a bad record: it propagates, nothing is dead-lettered.

The serde raises ``SerdeUnavailable``; the compiled plan re-raises it unwrapped (never a
``StepError``), so the ``on_error`` policy does not see it.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest

import streamflow as sf
from streamflow.plan.compile import StepError
from streamflow.serde import SerdeContext, SerdeError, SerdeUnavailable
from streamflow.testing import TopologyTestDriver

DOWN = {"schema_registry.url": "http://127.0.0.1:1"}  # nothing listens on port 1
READING = {"type": "record", "name": "Reading", "namespace": "test",
           "fields": [{"name": "n", "type": "int"}]}
FRAMED = struct.pack(">bI", 0, 7) + b"\x02"  # magic 0, schema id 7, {"n": 1}


class _AvroIn:
    """Avro for reading, bytes as they are for the driver's input side: only decoding (the
    path under test) needs the registry."""

    def serializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Any:
        return lambda v: v

    def deserializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Any:
        return sf.Avro(READING).deserializer(topic, is_key, ctx)

    def describe(self) -> str:
        return "Avro(test.Reading)"


def _reading_topology(build: Any = None) -> sf.Topology:
    t = sf.Topology("outage")
    src = t.topic("readings", key=sf.String(), value=_AvroIn(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Json())
    stream = t.processor("p", on_error="dead_letter").stream(src)
    (build(stream) if build else stream).to(out)
    return t


def _assert_nothing_dead_lettered(driver: TopologyTestDriver) -> None:
    assert driver.output("outage.p.dlq").read_records() == []
    assert driver.output("out").read_records() == []


def test_unreachable_registry_while_decoding_propagates_and_dead_letters_nothing() -> None:
    with TopologyTestDriver(_reading_topology(), config=DOWN) as driver:
        with pytest.raises(SerdeUnavailable) as e:
            driver.input("readings").send_raw(FRAMED, key=b"k")
        assert not isinstance(e.value, (StepError, SerdeError))
        assert e.value.url == "http://127.0.0.1:1"
        assert "schema registry at http://127.0.0.1:1 is unavailable" in str(e.value)
        assert "topic 'readings'" in str(e.value)
        _assert_nothing_dead_lettered(driver)
        # a poison record is still a bad record: it is dead-lettered, the registry untouched
        driver.input("readings").send_raw(b"\x01garbage", key=b"k")
        assert [r.value for r in driver.output("outage.p.dlq").read_records()] == [b"\x01garbage"]


def test_outage_passes_through_process_steps_unwrapped() -> None:
    def forward(record: sf.Record, ctx: Any) -> None:
        ctx.forward(record.key, record.value)

    t = sf.Topology("outage")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    t.topic("out", key=sf.String(), value=sf.Avro(READING))
    # to(function): the Avro serializer (and its registry lookup) is made on first use
    t.processor("p", on_error="dead_letter").stream(src).process(forward).to(lambda r: "out")
    with TopologyTestDriver(t, config=DOWN) as driver:
        with pytest.raises(SerdeUnavailable):
            driver.input("in").send({"n": 1}, key="k")
        _assert_nothing_dead_lettered(driver)


def test_unreachable_registry_when_serializers_are_made_fails_at_once() -> None:
    t = sf.Topology("outage")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    t.processor("p").stream(src).to(t.topic("out", key=sf.String(), value=sf.Avro(READING)))
    with pytest.raises(SerdeUnavailable, match=r"127\.0\.0\.1:1"):
        TopologyTestDriver(t, config=DOWN)


def test_on_error_fail_does_not_turn_an_outage_into_a_processing_failure() -> None:
    t = _reading_topology()
    t.processors["p"].on_error = "fail"
    with TopologyTestDriver(t, config=DOWN) as driver, pytest.raises(SerdeUnavailable):
        driver.input("readings").send_raw(FRAMED, key=b"k")
