"""Avro serde (Confluent wire format) and the registry client, against the mock registry."""

from __future__ import annotations

import datetime as dt
import io
import json
import struct
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streamflow.kafka.registry import (
    RegistryClient,
    RegistryUnavailable,
    RetryPolicy,
    SchemaRejected,
    make_registry_client,
)
from streamflow.serde.avro import MAX_NESTING, Avro
from streamflow.serde.base import Serde, SerdeContext, SerdeError, SerdeUnavailable

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"


def record(name: str, *fields: dict[str, Any], namespace: str = "com.example") -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": namespace, "fields": list(fields)}


def f(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


@pytest.fixture
def registry() -> RegistryClient:
    return make_registry_client({"url": f"mock://{uuid.uuid4().hex}"})


@pytest.fixture
def ctx(registry: RegistryClient) -> SerdeContext:
    return SerdeContext(registry_factory=lambda: registry, schemas_dir=SCHEMAS)


def payment(**overrides: Any) -> dict[str, Any]:
    value = {
        "id": "p-1",
        "card_id": "c-9",
        "amount": 12.5,
        "currency": "EUR",
        "ts": dt.datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=dt.UTC),
    }
    value.update(overrides)
    return value


# -- round trips ---------------------------------------------------------------------------


def test_avro_is_a_serde_and_round_trips_a_payment(ctx: SerdeContext) -> None:
    serde = Avro("schemas/payment.avsc")
    assert isinstance(serde, Serde)
    data = serde.serializer("payments", False, ctx)(payment())
    assert data is not None and data[0] == 0
    assert serde.deserializer("payments", False, ctx)(data) == payment()


def test_tombstones_pass_through_both_ways(ctx: SerdeContext) -> None:
    serde = Avro("payment")
    assert serde.serializer("payments", False, ctx)(None) is None
    assert serde.deserializer("payments", False, ctx)(None) is None


LOGICAL_CASES: list[tuple[dict[str, Any], Any]] = [
    ({"type": "long", "logicalType": "timestamp-millis"},
     dt.datetime(2023, 3, 4, 5, 6, 7, 8000, tzinfo=dt.UTC)),
    ({"type": "long", "logicalType": "timestamp-micros"},
     dt.datetime(2023, 3, 4, 5, 6, 7, 891011, tzinfo=dt.UTC)),
    ({"type": "int", "logicalType": "date"}, dt.date(1999, 12, 31)),
    ({"type": "int", "logicalType": "time-millis"}, dt.time(23, 59, 58, 999000)),
    ({"type": "long", "logicalType": "time-micros"}, dt.time(1, 2, 3, 456789)),
    ({"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 3},
     Decimal("-123456789.012")),
    ({"type": "fixed", "name": "Money", "size": 8, "logicalType": "decimal", "precision": 15,
      "scale": 2}, Decimal("1234567.89")),
    ({"type": "string", "logicalType": "uuid"}, uuid.UUID("12345678-1234-5678-1234-567812345678")),
]


@pytest.mark.parametrize(("type_", "value"), LOGICAL_CASES,
                         ids=[f"{c[0]['logicalType']}-{c[0]['type']}" for c in LOGICAL_CASES])
def test_logical_types_round_trip_as_python_values(
    ctx: SerdeContext, type_: dict[str, Any], value: Any
) -> None:
    again = type_.get("name", type_)  # a named type is defined once
    serde = Avro(record("Logical", f("v", type_), f("opt", ["null", again], default=None)))
    ser = serde.serializer("logical", False, ctx)
    de = serde.deserializer("logical", False, ctx)
    for v in ({"v": value, "opt": value}, {"v": value, "opt": None}):
        out = de(ser(v))
        assert out == v
        assert type(out["v"]) is type(value)


def test_naive_datetimes_are_written_as_utc(ctx: SerdeContext) -> None:
    serde = Avro("payment")
    naive = dt.datetime(2024, 1, 1, 8, 0)
    out = serde.deserializer("p", False, ctx)(serde.serializer("p", False, ctx)(payment(ts=naive)))
    assert out["ts"] == naive.replace(tzinfo=dt.UTC)


def test_primitive_schemas_work_as_keys(ctx: SerdeContext, registry: RegistryClient) -> None:
    serde = Avro({"type": "string"})
    data = serde.serializer("payments", True, ctx)("card-1")
    assert serde.deserializer("payments", True, ctx)(data) == "card-1"
    assert registry.latest("payments-key") is not None
    assert registry.latest("payments-value") is None


def test_serializer_writes_header_then_plain_avro(
    ctx: SerdeContext, registry: RegistryClient
) -> None:
    serde = Avro("payment")
    data = serde.serializer("payments", False, ctx)(payment())
    assert data is not None
    reg = registry.lookup("payments-value", serde.schema_str(ctx))
    assert reg is not None
    assert data[:5] == b"\x00" + struct.pack(">I", reg.schema_id)
    parsed = fastavro.parse_schema(serde.schema_dict(ctx))
    assert fastavro.schemaless_reader(io.BytesIO(data[5:]), parsed) == payment()


# -- wire compatibility with confluent-kafka ----------------------------------------------


def test_wire_bytes_identical_to_confluent_avro_serializer(
    ctx: SerdeContext, registry: RegistryClient
) -> None:
    serde = Avro("payment")
    ours = serde.serializer("payments", False, ctx)
    theirs = AvroSerializer(registry.confluent_client, serde.schema_str(ctx))
    sctx = SerializationContext("payments", MessageField.VALUE)
    for i in range(20):
        value = payment(id=f"p-{i}", amount=i * 1.25, currency="USD" if i % 2 else "EUR")
        assert ours(value) == theirs(value, sctx)


def test_confluent_deserializer_reads_our_bytes_and_we_read_theirs(
    ctx: SerdeContext, registry: RegistryClient
) -> None:
    serde = Avro("fraud_alert")
    value = {
        "card_id": "c-1",
        "window_start": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        "window_end": dt.datetime(2024, 1, 1, 0, 1, tzinfo=dt.UTC),
        "payments": 12,
        "total": 999.5,
        "severity": "HIGH",
        "reason": "velocity",
    }
    sctx = SerializationContext("alerts", MessageField.VALUE)
    ours = serde.serializer("alerts", False, ctx)(value)
    assert AvroDeserializer(registry.confluent_client)(ours, sctx) == value
    theirs = AvroSerializer(registry.confluent_client, serde.schema_str(ctx))(value, sctx)
    assert serde.deserializer("alerts", False, ctx)(theirs) == value


# -- schema location, naming, identity ------------------------------------------------------


@pytest.mark.parametrize("spec", [
    "schemas/payment.avsc", str(SCHEMAS / "payment.avsc"), SCHEMAS / "payment.avsc",
    "payment", "Payment", "com.example.Payment", "payment.avsc",
])
def test_schema_is_found_by_path_stem_or_record_name(ctx: SerdeContext, spec: Any) -> None:
    serde = Avro(spec)
    assert serde.record_name(ctx) == "com.example.Payment"
    assert serde.describe(ctx) == "Avro(com.example.Payment)"
    assert serde.schema_dict(ctx)["fields"][0]["name"] == "id"


def test_inline_json_text_schema(ctx: SerdeContext) -> None:
    serde = Avro('{"type": "record", "name": "T", "fields": [{"name": "x", "type": "long"}]}')
    assert serde.describe(ctx) == "Avro(T)"
    assert serde.deserializer("t", False, ctx)(serde.serializer("t", False, ctx)({"x": 5})) == {
        "x": 5}


def test_unknown_schema_name_lists_what_exists(ctx: SerdeContext) -> None:
    with pytest.raises(SerdeError, match=r"'Nope' not found in .*com\.example\.Payment"):
        Avro("Nope").serializer("t", False, ctx)


def test_missing_schema_file_says_where_it_looked(ctx: SerdeContext) -> None:
    with pytest.raises(SerdeError, match=r"not found \(looked at"):
        Avro("schemas/missing.avsc").serializer("t", False, ctx)


def test_ambiguous_short_name_is_refused(tmp_path: Path, registry: RegistryClient) -> None:
    (tmp_path / "a.avsc").write_text(json.dumps(record("Thing", f("x", "int"), namespace="a")))
    (tmp_path / "b.avsc").write_text(json.dumps(record("Thing", f("x", "int"), namespace="b")))
    local = SerdeContext(registry_factory=lambda: registry, schemas_dir=tmp_path)
    with pytest.raises(SerdeError, match="ambiguous"):
        Avro("Thing").serializer("t", False, local)
    assert Avro("b.Thing").record_name(local) == "b.Thing"


def test_invalid_schema_is_reported_with_its_source(tmp_path: Path) -> None:
    (tmp_path / "bad.avsc").write_text('{"type": "record", "name": "Bad", "fields": [{"name": '
                                       '"x", "type": "nosuchtype"}]}')
    (tmp_path / "broken.avsc").write_text("{not json")
    local = SerdeContext(schemas_dir=tmp_path)
    with pytest.raises(SerdeError, match=r"invalid Avro schema in .*bad\.avsc"):
        Avro("bad").schema_dict(local)
    with pytest.raises(SerdeError, match="not valid JSON"):
        Avro("broken").schema_dict(local)


@pytest.mark.parametrize(("strategy", "is_key", "expected"), [
    ("topic", False, "payments-value"),
    ("topic", True, "payments-key"),
    ("record", False, "com.example.Payment"),
    ("topic_record", True, "payments-com.example.Payment"),
])
def test_subject_strategies(
    ctx: SerdeContext, registry: RegistryClient, strategy: str, is_key: bool, expected: str
) -> None:
    serde = Avro("payment", subject_strategy=strategy)
    assert serde.subject("payments", is_key, ctx) == expected
    serde.serializer("payments", is_key, ctx)
    assert registry.latest(expected) is not None


def test_record_strategy_needs_a_named_schema(ctx: SerdeContext) -> None:
    with pytest.raises(SerdeError, match="needs a named schema"):
        Avro({"type": "long"}, subject_strategy="record").subject("t", False, ctx)


def test_unknown_subject_strategy_is_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="subject_strategy"):
        Avro("payment", subject_strategy="wild")


def test_avro_is_frozen_comparable_and_hashable() -> None:
    a, b = Avro("payment"), Avro("payment")
    assert a == b and hash(a) == hash(b)
    assert a != Avro("payment", auto_register=False)
    d, e = Avro(record("X", f("a", "int"))), Avro(record("X", f("a", "int")))
    assert d == e and hash(d) == hash(e)
    assert repr(Avro("payment", subject_strategy="record")) == (
        "Avro('payment', subject_strategy='record')")
    with pytest.raises(AttributeError):
        a.schema = "other"  # type: ignore[misc]


# -- registration ------------------------------------------------------------------------------


def test_serializer_registers_once_and_never_calls_the_registry_per_record(
    ctx: SerdeContext, registry: RegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    for name in ("lookup", "register", "schema_by_id"):
        original = getattr(registry, name)

        def spy(*args: Any, _n: str = name, _o: Any = original) -> Any:
            calls.append(_n)
            return _o(*args)

        monkeypatch.setattr(registry, name, spy)
    serde = Avro("payment")
    ser = serde.serializer("payments", False, ctx)
    assert calls == ["lookup", "register"]
    for i in range(100):
        ser(payment(id=str(i)))
    serde.serializer("payments", False, ctx)  # cached: no second look-up
    assert calls == ["lookup", "register"]
    de = serde.deserializer("payments", False, ctx)
    for i in range(100):
        de(ser(payment(id=str(i))))
    assert calls == ["lookup", "register", "schema_by_id"]


def test_prepare_returns_the_registered_id(ctx: SerdeContext, registry: RegistryClient) -> None:
    serde = Avro("payment")
    schema_id = serde.prepare("payments", False, ctx)
    reg = registry.latest("payments-value")
    assert reg is not None and reg.schema_id == schema_id


def test_without_auto_register_an_unregistered_schema_is_a_clear_error(ctx: SerdeContext) -> None:
    serde = Avro("payment", auto_register=False)
    with pytest.raises(SerdeError) as e:
        serde.serializer("payments", False, ctx)
    msg = str(e.value)
    assert "'payments-value'" in msg and "com.example.Payment" in msg
    assert "streamflow schemas register" in msg


def test_without_auto_register_a_registered_schema_is_used(
    ctx: SerdeContext, registry: RegistryClient
) -> None:
    reg = registry.register("payments-value", Avro("payment").schema_str(ctx))
    data = Avro("payment", auto_register=False).serializer("payments", False, ctx)(payment())
    assert data is not None and struct.unpack(">I", data[1:5])[0] == reg.schema_id


def test_refused_registration_gives_registry_message_and_explanation(
    ctx: SerdeContext, registry: RegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = record("Payment", f("id", "string"), f("amount", "double"))
    registry.register("payments-value", json.dumps(v1))

    def refuse(subject: str, schema_str: str) -> Any:
        raise SchemaRejected("refused", status=409, code=409,
                             registry_message="Schema being registered is incompatible")

    monkeypatch.setattr(registry, "register", refuse)
    v2 = record("Payment", f("id", "string"), f("amount", "string"))
    with pytest.raises(SerdeError) as e:
        Avro(v2).serializer("payments", False, ctx)
    msg = str(e.value)
    assert "refused schema com.example.Payment" in msg
    assert "Schema being registered is incompatible" in msg
    assert "Payment.amount: type changed from double to string" in msg


# -- evolution -----------------------------------------------------------------------------

V1 = record("Payment", f("id", "string"), f("amount", "int"), f("note", "string"))


@pytest.mark.parametrize(("reader", "expected"), [
    (record("Payment", f("id", "string"), f("amount", "int"), f("note", "string"),
            f("currency", "string", default="EUR")),
     {"id": "a", "amount": 5, "note": "n", "currency": "EUR"}),
    (record("Payment", f("id", "string"), f("amount", "int")), {"id": "a", "amount": 5}),
    (record("Payment", f("id", "string"), f("amount", "long"), f("note", "string")),
     {"id": "a", "amount": 5, "note": "n"}),
    (record("Payment", f("id", "string"), f("amount", "double"), f("note", "bytes")),
     {"id": "a", "amount": 5.0, "note": b"n"}),
], ids=["added-field-with-default", "removed-field", "int-to-long", "double-and-bytes"])
def test_reader_schema_resolves_older_writer_schema(
    ctx: SerdeContext, reader: dict[str, Any], expected: dict[str, Any]
) -> None:
    data = Avro(V1).serializer("evolve", False, ctx)({"id": "a", "amount": 5, "note": "n"})
    out = Avro(reader, auto_register=False).deserializer("evolve", False, ctx)(data)
    assert out == expected
    assert type(out["amount"]) is type(expected["amount"])


def test_unresolvable_writer_schema_is_explained(ctx: SerdeContext) -> None:
    data = Avro(V1).serializer("evolve", False, ctx)({"id": "a", "amount": 5, "note": "n"})
    reader = record("Payment", f("id", "string"), f("amount", "int"), f("country", "string"))
    with pytest.raises(SerdeError) as e:
        Avro(reader).deserializer("evolve", False, ctx)(data)
    assert "Payment.country" in str(e.value) and "no default" in str(e.value)


# -- bad input -------------------------------------------------------------------------------


@pytest.fixture
def framed(ctx: SerdeContext) -> bytes:
    data = Avro("payment").serializer("payments", False, ctx)(payment())
    assert data is not None
    return data


def deserialize(ctx: SerdeContext, data: bytes) -> Any:
    return Avro("payment").deserializer("payments", False, ctx)(data)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: b"\x01" + d[1:], "expected magic byte 0x00"),
    (lambda d: b'{"id": "p-1"}', "looks like JSON"),
    (lambda d: d[:3], "Confluent wire format needs a 5-byte header"),
    (lambda d: b"", "only 0 byte"),
    (lambda d: d[:5] + b"", "truncated or corrupt"),
    (lambda d: d[:-3], "truncated or corrupt"),
    (lambda d: d + b"\x00garbage", "unexpected byte(s) after the record"),
    (lambda d: d[:5] + b"\x06\xff\xfe\xfd" + d[9:], "invalid UTF-8"),
    (lambda d: d[:5] + b"\x7f" + d[6:], "truncated or corrupt"),
    (lambda d: b"\x00\x00\x0f\x42\x3f" + d[5:], "unknown schema id 999999"),
], ids=["magic", "json", "short-header", "empty", "no-body", "truncated", "trailing",
        "bad-utf8", "huge-length", "unknown-id"])
def test_bad_bytes_raise_serde_error_with_a_helpful_message(
    ctx: SerdeContext, framed: bytes, mutate: Any, message: str
) -> None:
    with pytest.raises(SerdeError) as e:
        deserialize(ctx, mutate(framed))
    assert message in str(e.value)
    assert "Avro(com.example.Payment)" in str(e.value) and "'payments'" in str(e.value)


def test_bytes_written_with_another_schema_do_not_decode_silently(ctx: SerdeContext) -> None:
    other = Avro(record("Other", f("a", "double"), f("b", "double"), namespace="x"))
    data = other.serializer("payments", False, ctx)({"a": 1.0, "b": 2.0})
    assert data is not None
    forged = b"\x00" + struct.pack(">I", Avro("payment").prepare("payments", False, ctx)) + data[5:]
    with pytest.raises(SerdeError, match=r"do not match|truncated|UTF-8|unexpected byte"):
        deserialize(ctx, forged)


@pytest.mark.parametrize(("value", "message"), [
    ({"id": "p"}, "card_id"),
    (payment(amount="twelve"), "amount"),
    (payment(ts="yesterday"), "ts"),
    ("not a record", "not a record"),
])
def test_values_that_do_not_fit_the_schema_raise_serde_error(
    ctx: SerdeContext, value: Any, message: str
) -> None:
    with pytest.raises(SerdeError) as e:
        Avro("payment").serializer("payments", False, ctx)(value)
    assert "cannot serialize" in str(e.value) and message in str(e.value)


def test_deep_values_of_recursive_schemas_are_refused_not_crashing(ctx: SerdeContext) -> None:
    node = record("Node", f("next", ["null", "Node"]), namespace="t")
    serde = Avro(node)
    ser, de = serde.serializer("deep", False, ctx), serde.deserializer("deep", False, ctx)
    shallow: dict[str, Any] = {"next": None}
    for _ in range(50):
        shallow = {"next": shallow}
    assert de(ser(shallow)) == shallow
    header = ser({"next": None})[:5]  # type: ignore[index]
    with pytest.raises(SerdeError, match=f"deeper than {MAX_NESTING}"):
        de(header + b"\x02" * 100_000 + b"\x00")


def test_huge_counts_of_zero_size_items_are_refused_quickly(ctx: SerdeContext) -> None:
    serde = Avro(record("Nulls", f("xs", {"type": "array", "items": "null"}), namespace="t"))
    ser, de = serde.serializer("nulls", False, ctx), serde.deserializer("nulls", False, ctx)
    assert de(ser({"xs": [None] * 3})) == {"xs": [None] * 3}
    header = ser({"xs": []})[:5]  # type: ignore[index]
    count = (2**62 << 1).to_bytes(9, "little")  # not a valid varint: rejected either way
    huge = bytearray()
    n = (10**15) << 1
    while n > 0x7F:
        huge.append((n & 0x7F) | 0x80)
        n >>= 7
    huge.append(n)
    with pytest.raises(SerdeError, match="zero-size"):
        de(header + bytes(huge) + b"\x00")
    with pytest.raises(SerdeError):
        de(header + count)


# -- registry client -----------------------------------------------------------------------


class _Down:
    """A confluent-like client whose every call fails like a refused connection."""

    def __init__(self) -> None:
        self.calls = 0

    def get_schema(self, schema_id: int) -> Any:
        self.calls += 1
        raise ConnectionRefusedError(111, "Connection refused")

    def lookup_schema(self, subject: str, schema: Any) -> Any:
        self.calls += 1
        raise SchemaRegistryError(503, 50301, "Service Unavailable")


def test_unreachable_registry_is_retried_with_backoff_then_named(ctx: SerdeContext) -> None:
    down, sleeps = _Down(), list[float]()
    client = RegistryClient(down, url="http://registry.invalid:8081",
                            retry=RetryPolicy(attempts=4, initial_backoff_s=0.1),
                            sleep=sleeps.append)
    with pytest.raises(RegistryUnavailable) as e:
        client.schema_by_id(3)
    assert down.calls == 4 and len(sleeps) == 3
    assert all(0 <= s <= 0.1 * 2**i for i, s in enumerate(sleeps))
    msg = str(e.value)
    assert "http://registry.invalid:8081" in msg and "after 4 attempt(s)" in msg
    assert "Connection refused" in msg and "STREAMFLOW_SCHEMA_REGISTRY_URL" in msg
    with pytest.raises(RegistryUnavailable, match="HTTP 503"):
        client.lookup("s", '"string"')


def test_registry_outage_while_decoding_is_not_a_serde_error(framed: bytes) -> None:
    """Skipping a record because the registry is down would lose data: it must propagate."""
    client = RegistryClient(_Down(), url="http://r:1", retry=RetryPolicy(attempts=2),
                            sleep=lambda s: None)
    down_ctx = SerdeContext(registry_factory=lambda: client, schemas_dir=SCHEMAS)
    with pytest.raises(SerdeUnavailable) as e:
        Avro("payment").deserializer("payments", False, down_ctx)(framed)
    assert not isinstance(e.value, SerdeError)
    assert isinstance(e.value.__cause__, RegistryUnavailable)
    assert e.value.url == "http://r:1" and "http://r:1 is unavailable" in str(e.value)
    assert "topic 'payments'" in str(e.value)
    with pytest.raises(SerdeUnavailable):  # producing side: looking the schema up
        Avro("payment").serializer("payments", False, down_ctx)


def test_make_registry_client_reads_settings() -> None:
    client = make_registry_client({"url": "mock://x", "max.retries": "2",
                                   "retries.wait.ms": "10", "retries.max.wait.ms": 40})
    assert client.retry == RetryPolicy(attempts=3, initial_backoff_s=0.01, max_backoff_s=0.04)
    assert client.is_mock
    with pytest.raises(ValueError, match="no schema registry URL"):
        make_registry_client({})
    with pytest.raises(ValueError, match="must be a number"):
        make_registry_client({"url": "mock://x", "max.retries": "lots"})
    with pytest.raises(ValueError, match="invalid schema registry settings"):
        make_registry_client({"url": "http://r:8081", "ssl.ca.location": "/nonexistent/ca.pem"})
    remote = make_registry_client({"url": "https://r:8081", "basic.auth.user.info": "u:p"})
    assert remote.url == "https://r:8081" and not remote.is_mock


def test_mock_registry_versions_and_compatibility(registry: RegistryClient) -> None:
    assert registry.versions("s") == [] and registry.latest("s") is None
    a = registry.register("s", '"string"')
    b = registry.register("s", '"bytes"')
    assert [v.version for v in registry.versions("s")] == [1, 2]
    assert registry.latest("s") == b and registry.schema_by_id(a.schema_id) == '"string"'
    assert registry.compatibility("s") == "BACKWARD"
    registry.set_compatibility("full_transitive", "s")
    assert registry.compatibility("s") == "FULL_TRANSITIVE"
    with pytest.raises(ValueError, match="unknown compatibility level"):
        registry.set_compatibility("SOMETIMES")
