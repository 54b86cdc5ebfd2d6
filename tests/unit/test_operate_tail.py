"""``streamflow.ops.tail``'s decoding without a broker: declared serdes, windowed keys, dead
letters read with their source topic's serdes, undecodable records shown raw."""

from __future__ import annotations

import json

import streamflow as sf
from streamflow.kafka.registry import make_registry_client
from streamflow.ops.tail import Decoder
from streamflow.serde import SerdeContext
from streamflow.serde.windowed import TimeWindowedSerde
from streamflow.windows import Windowed

SCHEMA = {"type": "record", "name": "Order", "fields": [{"name": "id", "type": "string"},
                                                        {"name": "total", "type": "double"}]}


def test_avro_values_and_windowed_keys_decode_with_the_declared_serdes() -> None:
    t = sf.Topology("shop")
    t.topic("orders", key=sf.String(), value=sf.Avro(SCHEMA), external=True)
    t.topic("per-minute", key=TimeWindowedSerde(sf.String(), window_size=60_000),
            value=sf.Long())
    ctx = SerdeContext(registry_factory=lambda: make_registry_client(
        {"url": "mock://tail-avro"}))
    value = sf.Avro(SCHEMA).serializer("orders", False, ctx)({"id": "o-1", "total": 9.5})
    key = TimeWindowedSerde(sf.String(), window_size=60_000).serializer(
        "per-minute", True, ctx)(Windowed("alice", 60_000, 120_000))
    d = Decoder(t, ctx=ctx)
    r = d.decode("orders", 2, 11, 1000, b"o-1", value, [("trace", b"abc")])
    assert (r.key, r.value, r.key_error, r.value_error) == ("o-1", {"id": "o-1", "total": 9.5},
                                                            None, None)
    assert r.to_dict()["headers"] == [["trace", "abc"]]
    w = d.decode("per-minute", 0, 0, None, key, sf.Long().serializer("x", False, ctx)(3), None)
    assert w.key == Windowed("alice", 60_000, 120_000) and w.value == 3
    assert w.to_dict()["key"] == {"key": "alice", "start": 60_000, "end": 120_000}


def test_a_record_that_does_not_decode_is_returned_raw_with_the_error() -> None:
    t = sf.Topology("shop")
    t.topic("orders", key=sf.String(), value=sf.Avro(SCHEMA), external=True)
    ctx = SerdeContext(registry_factory=lambda: make_registry_client(
        {"url": "mock://tail-bad"}))
    r = Decoder(t, ctx=ctx).decode("orders", 0, 1, 0, b"k", b"\x01garbage", None)
    assert r.value == b"\x01garbage" and r.key == "k"
    assert r.value_error is not None and r.value_error.startswith("SerdeError")
    assert r.to_dict()["value"] == "\x01garbage"
    json.dumps(r.to_dict())


def test_without_a_registry_avro_topics_show_raw_bytes_and_say_why() -> None:
    t = sf.Topology("shop")
    t.topic("orders", key=sf.String(), value=sf.Avro(SCHEMA), external=True)
    r = Decoder(t, ctx=SerdeContext()).decode("orders", 0, 1, 0, b"k", b"\x00\x00\x00\x00"
                                                 b"\x01\x02", None)
    assert r.value == b"\x00\x00\x00\x00\x01\x02"
    assert "registry" in (r.value_error or "")


def test_dead_letters_decode_with_their_source_topics_serdes_and_show_error_headers() -> None:
    t = sf.Topology("shop")
    orders = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    t.processor("p", on_error="dead_letter").stream(orders).to(t.topic("out"))
    headers = [("streamflow.error.type", b"KeyError"), ("streamflow.error.step", b"map-1"),
               ("streamflow.source.topic", b"orders"), ("streamflow.source.partition", b"1")]
    d = Decoder(t, ctx=SerdeContext())
    r = d.decode("shop.p.dlq", 0, 3, 0, b"k1", b'{"n": 1}', headers)
    assert (r.key, r.value, r.decoded_with) == ("k1", {"n": 1}, "orders")
    assert r.error_headers == {"type": "KeyError", "step": "map-1"}
    assert r.header("streamflow.source.partition") == "1"
    # an undeclared topic without source headers: bytes as they are
    raw = d.decode("elsewhere", 0, 0, 0, None, b"\xff\x00", [])
    assert raw.value == b"\xff\x00" and raw.value_error is None
    assert raw.to_dict()["value"] == "base64:/wA="
