"""Typed values: ``Json(Model)`` and ``Avro(schema, model=Model)`` for dataclasses and pydantic."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
import pydantic
import pytest

import streamflow as sf
from streamflow.kafka.registry import make_registry_client
from streamflow.serde.base import SerdeContext, SerdeError
from streamflow.testing import TopologyTestDriver


@dataclass
class Line:
    sku: str
    qty: int


@dataclass
class Order:
    id: str
    lines: list[Line]
    note: str | None = None
    tags: dict[str, int] = field(default_factory=dict)


class Reading(pydantic.BaseModel):
    device: str
    celsius: float = pydantic.Field(ge=-273.15)


CTX = SerdeContext()


def pair(serde: Any, ctx: SerdeContext = CTX) -> tuple[Any, Any]:
    return serde.serializer("t", False, ctx), serde.deserializer("t", False, ctx)


# -- Json ----------------------------------------------------------------------------------

def test_json_dataclass_round_trip_builds_nested_dataclasses() -> None:
    enc, dec = pair(sf.Json(Order))
    order = Order("o1", [Line("a", 2), Line("b", 1)], tags={"x": 1})
    data = enc(order)
    assert orjson.loads(data) == {"id": "o1", "lines": [{"sku": "a", "qty": 2},
                                                        {"sku": "b", "qty": 1}],
                                  "note": None, "tags": {"x": 1}}
    back = dec(data)
    assert back == order
    assert isinstance(back.lines[0], Line)
    assert dec(b'{"id":"o2","lines":[]}') == Order("o2", [])  # defaults apply
    assert enc(None) is None and dec(None) is None


def test_json_dataclass_mismatch_names_the_fields() -> None:
    _, dec = pair(sf.Json(Order))
    with pytest.raises(SerdeError, match=r"Json\(Order\) cannot deserialize .*does not fit "
                                         r"Order: missing lines; unknown extra"):
        dec(b'{"id":"o1","extra":1}')
    with pytest.raises(SerdeError, match="does not fit Line: missing qty"):
        dec(b'{"id":"o1","lines":[{"sku":"a"}]}')
    with pytest.raises(SerdeError, match="expected an object"):
        dec(b"[1,2]")
    with pytest.raises(SerdeError, match=r"Json\(Order\) cannot deserialize"):
        dec(b"{not json")


def test_json_model_serializes_only_instances() -> None:
    enc, _ = pair(sf.Json(Order))
    with pytest.raises(SerdeError, match="expected a Order, got dict"):
        enc({"id": "o1", "lines": []})


def test_json_pydantic_round_trip_and_validation_errors() -> None:
    enc, dec = pair(sf.Json(Reading))
    r = Reading(device="d1", celsius=21.5)
    assert orjson.loads(enc(r)) == {"device": "d1", "celsius": 21.5}
    assert dec(enc(r)) == r
    with pytest.raises(SerdeError, match=r"does not fit Reading: .*celsius"):
        dec(b'{"device":"d1","celsius":-300}')
    with pytest.raises(SerdeError, match="expected a Reading, got str"):
        enc("d1")


def test_a_model_that_is_not_a_dataclass_or_pydantic_is_refused_at_declaration() -> None:
    class Plain:
        pass

    with pytest.raises(TypeError, match="Plain is neither a dataclass nor a pydantic model"):
        sf.Json(Plain)
    with pytest.raises(TypeError, match="must be a dataclass or pydantic model class"):
        sf.Avro({"type": "string"}, model=Line("a", 1))


def test_json_model_describes_itself_and_compares_by_model() -> None:
    assert sf.Json(Order).describe() == "Json(Order)"
    assert repr(sf.Json(Order)) == "Json(Order)"
    assert sf.Json(Order) == sf.Json(Order)
    assert sf.Json(Order) != sf.Json()
    assert sf.Json().describe() == "Json"


# -- Avro ----------------------------------------------------------------------------------

LINE = {"type": "record", "name": "Line", "fields": [{"name": "sku", "type": "string"},
                                                      {"name": "qty", "type": "int"}]}
ORDER = {"type": "record", "name": "Order", "namespace": "com.example", "fields": [
    {"name": "id", "type": "string"},
    {"name": "lines", "type": {"type": "array", "items": LINE}},
    {"name": "note", "type": ["null", "string"], "default": None},
    {"name": "tags", "type": {"type": "map", "values": "int"}, "default": {}},
]}


@pytest.fixture
def avro_ctx() -> SerdeContext:
    registry = make_registry_client({"url": f"mock://{uuid.uuid4().hex}"})
    return SerdeContext(registry_factory=lambda: registry)


def test_avro_dataclass_round_trip(avro_ctx: SerdeContext) -> None:
    enc, dec = pair(sf.Avro(ORDER, model=Order), avro_ctx)
    order = Order("o1", [Line("a", 2)], note="n", tags={"x": 3})
    assert dec(enc(order)) == order
    plain_enc, plain_dec = pair(sf.Avro(ORDER), avro_ctx)
    assert plain_dec(enc(order))["lines"] == [{"sku": "a", "qty": 2}]  # the same bytes
    assert dec(plain_enc({"id": "o2", "lines": []})) == Order("o2", [])


def test_avro_pydantic_round_trip(avro_ctx: SerdeContext) -> None:
    schema = {"type": "record", "name": "Reading", "fields": [
        {"name": "device", "type": "string"}, {"name": "celsius", "type": "double"}]}
    enc, dec = pair(sf.Avro(schema, model=Reading), avro_ctx)
    assert dec(enc(Reading(device="d", celsius=1.5))) == Reading(device="d", celsius=1.5)
    plain_enc, _ = pair(sf.Avro(schema), avro_ctx)
    with pytest.raises(SerdeError, match=r"cannot deserialize a value from topic 't'.*"
                                         r"does not fit Reading"):
        dec(plain_enc({"device": "d", "celsius": -500.0}))


def test_avro_model_that_differs_from_the_schema_is_refused_when_bound(
        avro_ctx: SerdeContext) -> None:
    @dataclass
    class Short:
        id: str
        extra: int

    serde = sf.Avro(ORDER, model=Short)
    with pytest.raises(SerdeError, match=r"model and schema differ: Short has extra, not in the "
                                         r"schema; the schema's lines \(no default\) not in Short"):
        serde.serializer("t", False, avro_ctx)
    with pytest.raises(SerdeError, match="model and schema differ"):
        serde.deserializer("t", False, avro_ctx)
    assert "model=Short" in repr(serde)
    assert serde != sf.Avro(ORDER)


# -- in a topology ------------------------------------------------------------------------

def test_typed_values_flow_through_a_topology_and_misfits_are_dead_lettered() -> None:
    t = sf.Topology("typed")
    src = t.topic("orders", key=sf.String(), value=sf.Json(Order))
    out = t.topic("totals", key=sf.String(), value=sf.Json(Line))
    p = t.processor("total", on_error="dead_letter", dead_letter_topic="orders.dlq")
    p.stream(src).map(lambda o: Line(o.id, sum(x.qty for x in o.lines))).to(out)
    with TopologyTestDriver(t) as driver:
        inp = driver.input("orders")
        inp.send(Order("o1", [Line("a", 2), Line("b", 3)]), key="o1")
        inp.send_raw(b'{"id":"o2","lines":[{"sku":"a"}]}', key=b"o2")
        assert driver.output("totals").read_key_values() == [("o1", Line("o1", 5))]
        (dead,) = driver.output("orders.dlq").read_records()
    assert b"does not fit Line: missing qty" in dict(dead.headers or [])[
        "streamflow.error.message"]
