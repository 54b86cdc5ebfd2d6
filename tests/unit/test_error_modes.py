"""``on_error``: fail, skip and dead_letter, driven with poison records (``send_raw``)."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

import streamflow as sf
from streamflow.runtime.errors import ProcessingFailed
from streamflow.testing import TopologyTestDriver

from .topologies_fixture import order, orders

DLQ = "shop.enrich.dlq"
ERROR_HEADERS = [
    "streamflow.error.type",
    "streamflow.error.message",
    "streamflow.error.traceback",
    "streamflow.error.step",
    "streamflow.error.processor",
    "streamflow.source.topic",
    "streamflow.source.partition",
    "streamflow.source.offset",
    "streamflow.error.phase",
]


def js(value: Any) -> bytes:
    return orjson.dumps(value)


def headers_of(record: sf.Record) -> dict[str, bytes]:
    return dict(record.headers or [])


# poison records: (id, raw value bytes, failing step, exception type, message fragment)
POISON = [
    ("invalid-json", b"{not json", "source-1:deserialize", "SerdeError", "Json cannot deserialize"),
    ("missing-field", js({"id": "x", "qty": 1, "status": "new"}), "price", "KeyError",
     "unit_price"),
    ("wrong-type", js(order("x", qty="two", unit_price=2.5)), "price", "TypeError",
     "can't multiply sequence"),
    ("not-an-object", js([1, 2, 3]), "not-cancelled", "TypeError", "list indices"),
]


# -- fail ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("case", "raw", "step", "etype", "fragment"), POISON,
                         ids=[p[0] for p in POISON])
def test_fail_raises_processing_failed_naming_position_step_and_cause(
    case: str, raw: bytes, step: str, etype: str, fragment: str
) -> None:
    with TopologyTestDriver(orders(on_error="fail")) as driver:
        inp = driver.input("orders")
        inp.send(order("ok"), key="a")
        with pytest.raises(ProcessingFailed) as e:
            inp.send_raw(raw, key=b"b")
    message = str(e.value)
    assert "processor 'enrich'" in message
    assert "record orders[0]@1 failed" in message
    assert f"in step {step!r}" in message
    assert f"{etype}: " in message and fragment in message
    # says what to do next, naming the setting of the phase that failed
    setting = "on_deserialize_error" if step.endswith(":deserialize") else "on_processing_error"
    assert f"{setting}='dead_letter'" in message
    assert type(e.value.__cause__).__name__ == etype


def test_fail_is_the_default_and_writes_nothing_for_the_failed_record() -> None:
    with TopologyTestDriver(orders()) as driver:
        with pytest.raises(ProcessingFailed):
            driver.input("orders").send_raw(b"oops", key=b"k")
        assert driver.output("priced").is_empty()
        assert driver.output(DLQ).is_empty()


def test_fail_on_a_sink_serialize_error_names_the_sink_step() -> None:
    with TopologyTestDriver(orders(out_value=sf.Int())) as driver, pytest.raises(
        ProcessingFailed, match=r"record orders\[0\]@0 failed in step 'to-priced': SerdeError: "
        r"Int cannot serialize dict"
    ):
        driver.input("orders").send(order("a"), key="a")


def test_fail_on_a_key_that_cannot_be_decoded_names_the_deserialize_step() -> None:
    with TopologyTestDriver(orders()) as driver, pytest.raises(
        ProcessingFailed, match="'source-1:deserialize': SerdeError: String cannot deserialize"
    ):
        driver.input("orders").send_raw(js(order("a")), key=b"\xff\xfe")


# -- skip ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("case", "raw", "step", "etype", "fragment"), POISON,
                         ids=[p[0] for p in POISON])
def test_skip_drops_the_failed_record_and_continues(
    case: str, raw: bytes, step: str, etype: str, fragment: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="streamflow.errors")
    with TopologyTestDriver(orders(on_error="skip")) as driver:
        inp = driver.input("orders")
        inp.send(order("a"), key="a")
        inp.send_raw(raw, key=b"b")
        inp.send(order("c", qty=3), key="c")
        priced = driver.output("priced").read_key_values()
        assert driver.output(DLQ).is_empty()
    assert [(k, v["total"]) for k, v in priced] == [("a", 10), ("c", 30)]
    assert f"skipped record orders[0]@1: step {step!r}" in caplog.text


def test_skip_drops_a_record_that_fails_to_serialize_at_the_sink() -> None:
    t = sf.Topology("s")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Int())
    t.processor("p", on_error="skip").stream(src).to(out)
    with TopologyTestDriver(t) as driver:
        for v in [1, "two", 3]:
            driver.input("in").send(v)
        assert driver.output("out").read_values() == [1, 3]


# -- dead_letter ---------------------------------------------------------------------------

@pytest.mark.parametrize(("case", "raw", "step", "etype", "fragment"), POISON,
                         ids=[p[0] for p in POISON])
def test_dead_letter_writes_original_bytes_and_error_headers_then_continues(
    case: str, raw: bytes, step: str, etype: str, fragment: str
) -> None:
    with TopologyTestDriver(orders(on_error="dead_letter")) as driver:
        inp = driver.input("orders")
        inp.send(order("a"), key="a", timestamp=100)
        inp.send_raw(raw, key=b"bad-key", timestamp=200, headers=[("trace", b"t-1")])
        inp.send(order("c", qty=3), key="c", timestamp=300)
        priced = driver.output("priced").read_key_values()
        (dead,) = driver.output(DLQ).read_records()
    assert [(k, v["total"]) for k, v in priced] == [("a", 10), ("c", 30)]
    assert (dead.key, dead.value, dead.timestamp) == (b"bad-key", raw, 200)
    h = headers_of(dead)
    assert h["trace"] == b"t-1"  # the original headers are kept
    assert list(h)[1:] == ERROR_HEADERS
    assert h["streamflow.error.type"].decode() == etype
    assert fragment in h["streamflow.error.message"].decode()
    assert h["streamflow.error.traceback"].startswith(b"Traceback")
    assert etype.encode() in h["streamflow.error.traceback"]
    assert h["streamflow.error.step"].decode() == step
    phase = b"deserialize" if step.endswith(":deserialize") else b"process"
    assert h["streamflow.error.phase"] == phase
    assert h["streamflow.error.processor"] == b"enrich"
    assert h["streamflow.source.topic"] == b"orders"
    assert h["streamflow.source.partition"] == b"0"
    assert h["streamflow.source.offset"] == b"1"


def test_dead_letter_on_a_sink_serialize_error_keeps_the_input_bytes() -> None:
    with TopologyTestDriver(orders(on_error="dead_letter", out_value=sf.Int())) as driver:
        driver.input("orders").send(order("a"), key="a")
        (dead,) = driver.output(DLQ).read_records()
        assert driver.output("priced").is_empty()
    assert (dead.key, orjson.loads(dead.value)) == (b"a", order("a"))
    h = headers_of(dead)
    assert h["streamflow.error.step"] == b"to-priced"
    assert h["streamflow.error.type"] == b"SerdeError"
    assert b"Int cannot serialize dict" in h["streamflow.error.message"]


def test_dead_letter_on_a_key_serialize_error_at_the_sink() -> None:
    t = sf.Topology("shop")
    src = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("priced", key=sf.String(), value=sf.Json())
    t.processor("enrich", on_error="dead_letter").stream(src).key_by(
        lambda o: o["customer"], name="by-customer"
    ).to(out, name="write")
    with TopologyTestDriver(t) as driver:
        driver.input("orders").send({"customer": 7}, key="a")  # an int key for a String topic
        driver.input("orders").send({"customer": "c"}, key="b")
        assert driver.output(out).read_key_values() == [("c", {"customer": "c"})]
        (dead,) = driver.output(DLQ).read_records()
    assert (dead.key, dead.value) == (b"a", b'{"customer":7}')
    h = headers_of(dead)
    assert (h["streamflow.error.step"], h["streamflow.error.type"]) == (b"write", b"SerdeError")
    assert b"String cannot serialize int" in h["streamflow.error.message"]


def test_dead_letter_when_flat_map_returns_something_not_iterable() -> None:
    t = sf.Topology("shop")
    src = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("priced", key=sf.String(), value=sf.Json())
    t.processor("enrich", on_error="dead_letter").stream(src).flat_map(
        lambda o: o["lines"], name="lines"
    ).to(out)
    with TopologyTestDriver(t) as driver:
        driver.input("orders").send({"lines": 3}, key="a")
        driver.input("orders").send({"lines": [1, 2]}, key="b")
        assert driver.output(out).read_values() == [1, 2]
        (dead,) = driver.output(DLQ).read_records()
    h = headers_of(dead)
    assert (h["streamflow.error.step"], h["streamflow.error.type"]) == (b"lines", b"TypeError")


def test_dead_letter_uses_the_configured_dead_letter_topic() -> None:
    with TopologyTestDriver(
        orders(on_error="dead_letter", dead_letter_topic="poison.orders")
    ) as driver:
        driver.input("orders").send_raw(b"{", key=b"k")
        assert driver.output(DLQ).is_empty()
        (dead,) = driver.output("poison.orders").read_records()
    assert (dead.key, dead.value) == (b"k", b"{")
    assert headers_of(dead)["streamflow.error.step"] == b"source-1:deserialize"


def test_dead_letter_keeps_tombstones_and_null_keys_as_none() -> None:
    t = sf.Topology("shop")
    src = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("priced", key=sf.String(), value=sf.Json())
    t.processor("enrich", on_error="dead_letter").stream(src).map(lambda o: o["id"]).to(out)
    with TopologyTestDriver(t) as driver:
        driver.input("orders").send_raw(None, key=None)
        (dead,) = driver.output(DLQ).read_records()
    assert (dead.key, dead.value) == (None, None)
    assert headers_of(dead)["streamflow.error.type"] == b"TypeError"


def test_dead_letter_offsets_count_every_record_of_the_source_topic() -> None:
    with TopologyTestDriver(orders(on_error="dead_letter")) as driver:
        inp = driver.input("orders")
        for i in range(5):
            if i in (1, 3):
                inp.send_raw(b"bad", key=str(i).encode())
            else:
                inp.send(order(str(i)), key=str(i))
        dead = driver.output(DLQ).read_records()
        assert len(driver.output("priced").read_records()) == 3
    assert [headers_of(d)["streamflow.source.offset"] for d in dead] == [b"1", b"3"]
    assert [d.key for d in dead] == [b"1", b"3"]


def test_dead_letter_from_a_split_predicate_and_a_dynamic_route() -> None:
    t = sf.Topology("r")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    t.topic("out", key=sf.String(), value=sf.Json())
    parts = t.processor("p", on_error="dead_letter").stream(src).split(
        route=lambda v: v["go"], name="pick"
    )
    parts["route"].to(lambda r: r.value["to"], name="dispatch")
    with TopologyTestDriver(t) as driver:
        inp = driver.input("in")
        inp.send({"go": True, "to": "out"}, key="1")
        inp.send({}, key="2")  # the predicate raises KeyError
        inp.send({"go": True, "to": "undeclared"}, key="3")  # the router names an unknown topic
        inp.send({"go": False}, key="4")  # dropped: no default
        assert driver.output("out").read_key_values() == [("1", {"go": True, "to": "out"})]
        dead = driver.output("r.p.dlq").read_records()
    assert [(d.key, headers_of(d)["streamflow.error.step"]) for d in dead] == [
        (b"2", b"pick"), (b"3", b"dispatch"),
    ]
    assert b"'undeclared' is not declared" in headers_of(dead[1])["streamflow.error.message"]


def test_dead_letter_in_a_downstream_processor_names_the_intermediate_topic() -> None:
    t = sf.Topology("dag")
    src = t.topic("in", key=sf.String(), value=sf.Int(), external=True)
    mid = t.topic("mid", key=sf.String(), value=sf.Int())
    out = t.topic("out", key=sf.String(), value=sf.Int())
    t.processor("first").stream(src).to(mid)
    t.processor("second", on_error="dead_letter").stream(mid).map(lambda v: 100 // v).to(out)
    with TopologyTestDriver(t) as driver:
        for v in [5, 0, 4]:
            driver.input("in").send(v, key=str(v))
        assert driver.output(out).read_values() == [20, 25]
        (dead,) = driver.output("dag.second.dlq").read_records()
    h = headers_of(dead)
    assert (dead.key, dead.value) == (b"0", b"\x00\x00\x00\x00")
    assert (h["streamflow.source.topic"], h["streamflow.source.offset"]) == (b"mid", b"1")
    assert (h["streamflow.error.processor"], h["streamflow.error.type"]) == (
        b"second", b"ZeroDivisionError",
    )


def test_dead_letter_logs_a_warning_naming_the_record_and_topic(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="streamflow.errors")
    with TopologyTestDriver(orders(on_error="dead_letter")) as driver:
        driver.input("orders").send_raw(b"bad", key=b"k")
    assert f"dead-lettered record orders[0]@0 to {DLQ}" in caplog.text


def test_dead_letter_message_header_is_capped_for_huge_errors() -> None:
    t = sf.Topology("big")
    src = t.topic("in", key=sf.String(), value=sf.Int(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Int())

    def explode(v: int) -> int:
        raise ValueError("x" * 100_000)

    t.processor("p", on_error="dead_letter").stream(src).map(explode).to(out)
    with TopologyTestDriver(t) as driver:
        driver.input("in").send(1)
        (dead,) = driver.output("big.p.dlq").read_records()
    h = headers_of(dead)
    assert len(h["streamflow.error.message"]) <= 4000
    assert len(h["streamflow.error.traceback"]) <= 8000
