"""Values are kept as their topic encodes them (``streamflow.serde.stored``).

A table read from a topic, a repartition, a ``reduce`` (plain and windowed) and a
stream-stream join of a topic's values unchanged use the topic's value serde, as Kafka
Streams' serdes inherited from upstream: Avro decimals and timestamps, ``Json(model)``
instances and encrypted fields survive a restore as they went in, encrypted fields stay
encrypted in the changelog, and values stored as JSON before stay readable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

import streamflow as sf
from streamflow.serde import SerdeContext
from streamflow.serde.keyfile import StaticKeys
from streamflow.serde.stored import StoredAs, row_serde
from streamflow.testing import TopologyTestDriver

PRICE = {"type": "record", "name": "Price", "fields": [
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 8,
                                "scale": 2}},
    {"name": "since", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}
SINCE = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Customer:
    name: str
    card: str


@pytest.fixture(params=["memory", "rocksdb"])
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def enrich(table_value: sf.Serde) -> sf.Topology:
    t = sf.Topology("rows")
    events = t.topic("events", key=sf.String(), value=sf.Json(), external=True)
    rows = t.topic("rows", key=sf.String(), value=table_value, external=True)
    out = t.topic("out", key=sf.String(), value=sf.Json())
    t.processor("p").stream(events).join(t.table(rows, name="rows"),
                                         lambda e, r: {"e": e, "row": repr(r)}).to(out)
    return t


def _rows_after_a_restore(t: sf.Topology, store: str, row: Any, **config: Any) -> list[Any]:
    with TopologyTestDriver(t, config={"store": store, **config}) as d:
        d.input("rows").send(row, key="a", timestamp=1)
        d.input("events").send(1, key="a", timestamp=2)
        d.crash(keep_state=False)  # the table comes back from its changelog
        d.input("events").send(2, key="a", timestamp=3)
        return d.output("out").read_values()


def test_avro_decimals_and_timestamps_come_back_as_they_went_in(store: str) -> None:
    row = {"amount": Decimal("9.99"), "since": SINCE}
    got = _rows_after_a_restore(enrich(sf.Avro(PRICE)), store, row)
    assert got == [{"e": 1, "row": repr(row)}, {"e": 2, "row": repr(row)}]


def test_json_model_rows_come_back_as_instances(store: str) -> None:
    row = Customer("Ada", "4111")
    got = _rows_after_a_restore(enrich(sf.Json(Customer)), store, row)
    assert got == [{"e": 1, "row": repr(row)}, {"e": 2, "row": repr(row)}]


def test_an_encrypted_field_stays_encrypted_in_the_table_changelog(store: str) -> None:
    keys = StaticKeys({"k1": os.urandom(32)}, "k1")
    t = enrich(sf.Json(encrypt=["card"]))
    row = {"name": "Ada", "card": "4111111111111111"}
    with TopologyTestDriver(t, config={"store": store, "encryption_keys": keys}) as d:
        d.input("rows").send(row, key="a", timestamp=1)
        d.input("events").send(1, key="a", timestamp=2)
        d.crash(keep_state=False)
        d.input("events").send(2, key="a", timestamp=3)
        assert d.output("out").read_values() == [{"e": 1, "row": repr(row)},
                                                 {"e": 2, "row": repr(row)}]
        changelog = [r.value for r in d.output("rows-p-rows-changelog").read_records()]
    assert changelog and not any(b"4111111111111111" in (v or b"") for v in changelog)
    assert all(b"Ada" in (v or b"") for v in changelog)


def test_rows_written_as_json_before_stay_readable() -> None:
    ctx = SerdeContext()
    stored = StoredAs(sf.String())
    assert stored.deserializer("c", False, ctx)(b'"written before"') == "written before"
    assert stored.deserializer("c", False, ctx)(
        stored.serializer("c", False, ctx)("written now")) == "written now"
    with pytest.raises(sf.SerdeError, match="cannot read the stored row"):
        stored.deserializer("c", False, ctx)(b"\x00 neither")


def test_plain_json_tables_keep_their_bytes_and_others_get_their_topics_serde() -> None:
    assert row_serde(None) is None
    assert row_serde(sf.Json()) is None
    assert isinstance(row_serde(sf.Json(Customer)), StoredAs)
    assert isinstance(row_serde(sf.Json(encrypt=["card"])), StoredAs)
    avro = sf.Avro(PRICE)
    assert row_serde(avro) == StoredAs(avro)
    assert row_serde(StoredAs(avro)) == StoredAs(avro)
    # its store's subject is registered by `streamflow schemas register` (test_internal_subjects)
    no_auto = sf.Avro(PRICE, auto_register=False)
    assert row_serde(no_auto) == StoredAs(no_auto)
    spec = enrich(avro).processors["p"].stores["rows"]
    assert spec.value_serde == StoredAs(avro)


def test_a_value_a_store_cannot_keep_names_the_store_and_the_fix(store: str) -> None:
    t = sf.Topology("r")
    src = t.topic("a", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("o", key=sf.String(), value=sf.String())
    (t.processor("p").stream(src).map(lambda v: {"d": Decimal(v)}, name="to-decimal")
     .group_by_key().reduce(lambda _old, new: new, name="latest")
     .to_stream().map(str, name="text").to(out))
    with TopologyTestDriver(t, config={"store": store}) as d, pytest.raises(
            sf.SerdeError, match=r"store 'latest' cannot keep a value: Json cannot serialize .*"
                                 r"Decimal.*give the step that writes it a value_serde="):
        d.input("a").send("1.5", key="k")


def avro_steps() -> sf.Topology:
    """An Avro topic (a decimal) grouped by a field, reduced, window-reduced and joined."""
    t = sf.Topology("kept")
    a = t.topic("a", key=sf.String(), value=sf.Avro(PRICE), external=True)
    b = t.topic("b", key=sf.String(), value=sf.Avro(PRICE), external=True)
    outs = {n: t.topic(n, key=sf.String(), value=sf.String())
            for n in ("counts", "latest", "windowed", "joined")}
    p = t.processor("p")
    s = p.stream(a)
    (s.group_by(lambda v: str(v["amount"]), name="by-amount").count(name="n")
     .to_stream().map(str, name="n-text").to(outs["counts"]))
    (s.filter(lambda v: True, name="all").group_by_key(name="same-key")
     .reduce(lambda _old, new: new, name="latest").to_stream()
     .map(repr, name="latest-text").to(outs["latest"]))
    (s.group_by_key(name="wkey").window(sf.Tumbling(10_000))
     .reduce(lambda _old, new: new, name="wlatest").to_stream().key_by(str, name="wkey-text")
     .map(repr, name="w-text").to(outs["windowed"]))
    s.join(p.stream(b), lambda x, y: repr((x, y)), window=sf.JoinWindows(10_000),
           name="pair").to(outs["joined"])
    return t


def test_repartitions_reduces_and_joins_keep_avro_values_without_being_told(store: str
                                                                              ) -> None:
    one = {"amount": Decimal("1.50"), "since": SINCE}
    two = {"amount": Decimal("2.50"), "since": SINCE}
    with TopologyTestDriver(avro_steps(), config={"store": store}) as d:
        d.input("a").send(one, key="k", timestamp=1)
        d.crash(keep_state=False)  # every store comes back from its changelog
        d.input("b").send(two, key="k", timestamp=2)
        d.input("a").send(one, key="k", timestamp=3)
        assert d.output("counts").read_values() == ["1", "2"]
        assert d.output("latest").read_values() == [repr(one)] * 2
        assert d.output("windowed").read_values() == [repr(one)] * 2
        assert d.output("joined").read_values() == [repr((one, two))] * 2


def test_a_step_that_makes_new_values_keeps_json() -> None:
    t = avro_steps()
    p = t.processors["p"]
    assert p.value_serde_at("all") == sf.Avro(PRICE)
    assert t.topics["kept-p-by-amount-repartition"].value == StoredAs(sf.Avro(PRICE))
    assert p.stores["latest"].value_serde == StoredAs(sf.Avro(PRICE))
    assert p.stores["pair-left"].value_serde.describe() == "Window(List(Avro(Price)))"
    assert p.value_serde_at("n-text") is None  # a map made new values
    assert p.stores["n"].value_serde is None  # a count is JSON
