"""Property tests: the Avro deserializer returns a value or raises SerdeError, nothing else.

Random bytes and mutated valid payloads (bit flips, truncations, appended garbage, inserted
and deleted bytes, overwritten ranges) go through deserializers for several schemas:
logical types, nested records, enums, fixed, unions, arrays and maps, a recursive schema,
an array of zero-size items, and a writer/reader pair that needs schema resolution.
Any other exception type, a crash or a hang is a bug.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamflow.kafka.registry import make_registry_client
from streamflow.serde.avro import Avro
from streamflow.serde.base import SerdeContext, SerdeError

pytestmark = pytest.mark.timeout(300)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
UTC = dt.UTC
FUZZ = settings(max_examples=400, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

INNER = {"type": "record", "name": "Inner", "fields": [
    {"name": "k", "type": "string"}, {"name": "v", "type": "long"}]}
COMPLEX = {
    "type": "record", "name": "Complex", "namespace": "fuzz", "fields": [
        {"name": "flag", "type": "boolean"},
        {"name": "small", "type": "int"},
        {"name": "ratio", "type": "float"},
        {"name": "blob", "type": "bytes"},
        {"name": "status", "type": {"type": "enum", "name": "Status",
                                     "symbols": ["NEW", "PAID", "VOID"]}},
        {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 4}},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10,
                                    "scale": 2}},
        {"name": "uid", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "choice", "type": ["null", "string", "long", INNER]},
        {"name": "items", "type": {"type": "array", "items": "Inner"}},
        {"name": "scores", "type": {"type": "map", "values": "double"}},
    ],
}
TREE = {"type": "record", "name": "Tree", "namespace": "fuzz", "fields": [
    {"name": "label", "type": "string"},
    {"name": "children", "type": {"type": "array", "items": "Tree"}},
    {"name": "parent", "type": ["null", "Tree"], "default": None},
]}
NULLS = {"type": "record", "name": "Nulls", "namespace": "fuzz", "fields": [
    {"name": "n", "type": "int"},
    {"name": "gaps", "type": {"type": "array", "items": "null"}},
    {"name": "empties", "type": {"type": "array", "items": {
        "type": "record", "name": "Empty", "fields": []}}},
]}
V1 = {"type": "record", "name": "Event", "namespace": "fuzz", "fields": [
    {"name": "id", "type": "string"}, {"name": "count", "type": "int"},
    {"name": "dropped", "type": ["null", "string"]}]}
V2 = {"type": "record", "name": "Event", "namespace": "fuzz", "fields": [
    {"name": "id", "type": "string"}, {"name": "count", "type": "long"},
    {"name": "added", "type": "string", "default": "x"}]}

# -- valid values ---------------------------------------------------------------------------

texts = st.text(max_size=12)
longs = st.integers(-(2**63), 2**63 - 1)
ints = st.integers(-(2**31), 2**31 - 1)


def _millis(d: dt.datetime) -> dt.datetime:
    return d.replace(microsecond=d.microsecond // 1000 * 1000)


datetimes = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1),
                         timezones=st.just(UTC))
payments = st.fixed_dictionaries({
    "id": texts, "card_id": texts,
    "amount": st.floats(allow_nan=False),
    "currency": st.sampled_from(["EUR", "USD", "GBP"]),
    "ts": datetimes.map(_millis),
})
inners = st.fixed_dictionaries({"k": texts, "v": longs})
complexes = st.fixed_dictionaries({
    "flag": st.booleans(),
    "small": ints,
    "ratio": st.floats(width=32, allow_nan=False),
    "blob": st.binary(max_size=16),
    "status": st.sampled_from(["NEW", "PAID", "VOID"]),
    "hash": st.binary(min_size=4, max_size=4),
    "price": st.decimals(min_value=-(10**7), max_value=10**7, places=2, allow_nan=False,
                         allow_infinity=False),
    "uid": st.uuids(),
    "day": st.dates(),
    "at": datetimes,
    "choice": st.one_of(st.none(), texts, longs, inners),
    "items": st.lists(inners, max_size=3),
    "scores": st.dictionaries(texts, st.floats(allow_nan=False), max_size=3),
})
trees = st.recursive(
    st.fixed_dictionaries({"label": texts, "children": st.just([]), "parent": st.none()}),
    lambda kids: st.fixed_dictionaries({
        "label": texts, "children": st.lists(kids, max_size=3),
        "parent": st.one_of(st.none(), kids)}),
    max_leaves=10,
)
nulls = st.fixed_dictionaries({
    "n": ints, "gaps": st.lists(st.none(), max_size=5), "empties": st.lists(st.just({}),
                                                                             max_size=5)})
events = st.fixed_dictionaries({"id": texts, "count": ints,
                                "dropped": st.one_of(st.none(), texts)})

CASES: dict[str, tuple[Any, Any, st.SearchStrategy[Any]]] = {
    # name: (writer schema, reader schema, values)
    "payment": ("payment", "payment", payments),
    "complex": (COMPLEX, COMPLEX, complexes),
    "tree": (TREE, TREE, trees),
    "nulls": (NULLS, NULLS, nulls),
    "evolved": (V1, V2, events),
}


class Bound:
    """One case bound to a mock registry: a serializer and a deserializer."""

    def __init__(self, name: str) -> None:
        writer, reader, self.values = CASES[name]
        registry = make_registry_client({"url": f"mock://fuzz-{name}-{uuid.uuid4().hex}"})
        ctx = SerdeContext(registry_factory=lambda: registry, schemas_dir=SCHEMAS)
        self.serialize = Avro(writer).serializer("fuzz", False, ctx)
        self.deserialize = Avro(reader, auto_register=False).deserializer("fuzz", False, ctx)
        self.header = bytes(self.serialize(_any_value(name)) or b"")[:5]


def _any_value(name: str) -> Any:
    return {
        "payment": {"id": "", "card_id": "", "amount": 0.0, "currency": "EUR",
                    "ts": dt.datetime(2020, 1, 1, tzinfo=UTC)},
        "complex": {"flag": True, "small": 1, "ratio": 0.5, "blob": b"", "status": "NEW",
                    "hash": b"abcd", "price": Decimal("1.00"), "uid": uuid.UUID(int=1),
                    "day": dt.date(2020, 1, 1), "at": dt.datetime(2020, 1, 1, tzinfo=UTC),
                    "choice": None, "items": [], "scores": {}},
        "tree": {"label": "", "children": [], "parent": None},
        "nulls": {"n": 0, "gaps": [], "empties": []},
        "evolved": {"id": "", "count": 0, "dropped": None},
    }[name]


_bound: dict[str, Bound] = {}


def bound(name: str) -> Bound:
    if name not in _bound:
        _bound[name] = Bound(name)
    return _bound[name]


def value_or_serde_error(deserialize: Callable[[bytes], Any], data: bytes) -> None:
    try:
        deserialize(data)
    except SerdeError as e:
        assert str(e)  # always a message


# -- mutations --------------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, data: bytes, keep_header: bool) -> bytes:
    buf = bytearray(data)
    lo = 5 if keep_header and len(buf) > 5 else 0
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "append", "insert", "delete", "set"]))
        if kind == "append" or len(buf) <= lo:
            buf += draw(st.binary(min_size=1, max_size=16))
            continue
        i = draw(st.integers(lo, len(buf) - 1))
        if kind == "flip":
            buf[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del buf[i:]
        elif kind == "insert":
            buf[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del buf[i:i + draw(st.integers(1, 8))]
        else:
            buf[i] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE]))
    return bytes(buf)


# -- properties --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_valid_values_round_trip(name: str) -> None:
    case = bound(name)

    @FUZZ
    @given(value=case.values)
    def run(value: Any) -> None:
        out = case.deserialize(case.serialize(value))
        if name == "evolved":
            assert out == {"id": value["id"], "count": value["count"], "added": "x"}
        else:
            assert out == value

    run()


@pytest.mark.parametrize("name", list(CASES))
def test_random_bytes_give_a_value_or_serde_error(name: str) -> None:
    case = bound(name)

    @FUZZ
    @given(body=st.binary(max_size=300), framed=st.booleans())
    def run(body: bytes, framed: bool) -> None:
        value_or_serde_error(case.deserialize, (case.header + body) if framed else body)

    run()


@pytest.mark.parametrize("name", list(CASES))
def test_mutated_payloads_give_a_value_or_serde_error(name: str) -> None:
    case = bound(name)

    @FUZZ
    @given(st.data())
    def run(data: st.DataObject) -> None:
        valid = case.serialize(data.draw(case.values, label="value"))
        assert valid is not None
        keep = data.draw(st.booleans(), label="keep header")
        bad = data.draw(mutated(valid, keep), label="mutated")
        value_or_serde_error(case.deserialize, bad)

    run()


@pytest.mark.parametrize("name", ["tree", "nulls"])
def test_hostile_counts_and_depths_are_refused(name: str) -> None:
    case = bound(name)

    @FUZZ
    @given(unit=st.sampled_from([b"\x02", b"\x01\x02", b"\xfe\xff\xff\xff\x0f", b"\x80"]),
           n=st.integers(1, 50_000))
    def run(unit: bytes, n: int) -> None:
        value_or_serde_error(case.deserialize, case.header + b"\x00" + unit * n)

    run()
