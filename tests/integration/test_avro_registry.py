"""Avro serde against a real Confluent-compatible schema registry (Apicurio ccompat locally).

Interoperability with confluent-kafka's own Avro serializers, registration and schema
evolution under the registry's compatibility rules, and failure when it is unreachable.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streamflow.kafka.registry import (
    RegistryClient,
    RegistryUnavailable,
    RetryPolicy,
    SchemaRejected,
    make_registry_client,
)
from streamflow.serde import compat
from streamflow.serde.avro import Avro
from streamflow.serde.base import SerdeContext, SerdeError, SerdeUnavailable
from tests.integration.kafka_helpers import confluent_registry, confluent_serializer

pytestmark = pytest.mark.integration

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
UTC = dt.UTC


def rec(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "Reading", "namespace": "it.streamflow",
            "fields": list(fields)}


def f(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


V1 = rec(f("sensor", "string"), f("value", "int"))
V2 = rec(f("sensor", "string"), f("value", "long"), f("unit", "string", default="C"))
V3_BREAKING = rec(f("sensor", "string"), f("value", "long"), f("unit", "string", default="C"),
                  f("site", "string"))


@pytest.fixture
def registry(schema_registry_url: str) -> Iterator[RegistryClient]:
    client = make_registry_client({"url": schema_registry_url, "max.retries": 2,
                                   "retries.wait.ms": 100})
    yield client
    client.close()


@pytest.fixture
def topic(registry: RegistryClient) -> Iterator[str]:
    name = f"avro-it-{uuid.uuid4().hex[:12]}"
    yield name
    for subject in registry.subjects():
        if name in subject:
            registry.delete_subject(subject, permanent=True)


@pytest.fixture
def ctx(registry: RegistryClient) -> SerdeContext:
    return SerdeContext(registry_factory=lambda: registry, schemas_dir=SCHEMAS)


@pytest.fixture
def confluent(schema_registry_url: str) -> SchemaRegistryClient:
    return confluent_registry(schema_registry_url)


def payment(i: int) -> dict[str, Any]:
    return {"id": f"p-{i}", "card_id": f"c-{i % 3}", "amount": 10.0 + i, "currency": "EUR",
            "ts": dt.datetime(2024, 6, 1, 12, 0, i, tzinfo=UTC)}


def test_streamflow_bytes_are_read_by_confluent_and_are_identical_to_its_own(
    ctx: SerdeContext, confluent: SchemaRegistryClient, topic: str
) -> None:
    serde = Avro("payment")
    ours = serde.serializer(topic, False, ctx)
    sctx = SerializationContext(topic, MessageField.VALUE)
    theirs = confluent_serializer(confluent, serde.schema_str(ctx))
    reader = AvroDeserializer(confluent)
    for i in range(5):
        data = ours(payment(i))
        assert reader(data, sctx) == payment(i)
        assert theirs(payment(i), sctx) == data


def test_confluent_bytes_are_read_by_streamflow_with_a_preregistered_schema(
    ctx: SerdeContext, confluent: SchemaRegistryClient, topic: str
) -> None:
    schema_str = (SCHEMAS / "fraud_alert.avsc").read_text()  # registered as confluent would
    value = {"card_id": "c-1", "window_start": dt.datetime(2024, 1, 1, tzinfo=UTC),
             "window_end": dt.datetime(2024, 1, 1, 0, 1, tzinfo=UTC), "payments": 7,
             "total": 420.0, "severity": "MEDIUM", "reason": None}
    sctx = SerializationContext(topic, MessageField.VALUE)
    data = confluent_serializer(confluent, schema_str)(value, sctx)
    serde = Avro("fraud_alert", auto_register=False)  # must find confluent's registration
    assert serde.deserializer(topic, False, ctx)(data) == value
    assert serde.serializer(topic, False, ctx)(value) == data


def test_without_auto_register_a_missing_registration_names_subject_and_command(
    ctx: SerdeContext, topic: str
) -> None:
    with pytest.raises(SerdeError) as e:
        Avro("page_view", auto_register=False).serializer(topic, False, ctx)
    assert f"'{topic}-value'" in str(e.value)
    assert "streamflow schemas register" in str(e.value)


def test_compatible_evolution_is_accepted_and_both_versions_interoperate(
    ctx: SerdeContext, registry: RegistryClient, topic: str
) -> None:
    v1, v2 = Avro(V1), Avro(V2)
    old_bytes = v1.serializer(topic, False, ctx)({"sensor": "s1", "value": 21})
    new_bytes = v2.serializer(topic, False, ctx)({"sensor": "s2", "value": 2**40, "unit": "F"})
    versions = registry.versions(f"{topic}-value")
    assert [v.version for v in versions] == [1, 2]
    assert compat.check(V2, [v.schema_str for v in versions[:1]], "BACKWARD") == []
    # the new reader resolves old data (int -> long, default for the added field) ...
    new_reader = v2.deserializer(topic, False, ctx)
    assert new_reader(old_bytes) == {"sensor": "s1", "value": 21, "unit": "C"}
    assert new_reader(new_bytes) == {"sensor": "s2", "value": 2**40, "unit": "F"}
    # ... but BACKWARD is not FORWARD: an old reader cannot narrow long to int, and says why
    old_reader = v1.deserializer(topic, False, ctx)
    assert old_reader(old_bytes) == {"sensor": "s1", "value": 21}
    with pytest.raises(SerdeError, match=r"Reading\.value: type changed: writer has long"):
        old_reader(new_bytes)


def test_incompatible_change_is_refused_by_the_registry_and_explained(
    ctx: SerdeContext, registry: RegistryClient, topic: str
) -> None:
    subject = f"{topic}-value"
    Avro(V1).serializer(topic, False, ctx)
    Avro(V2).serializer(topic, False, ctx)
    level = registry.compatibility(subject)
    assert level == "BACKWARD"

    verdict = registry.test_compatibility(subject, json.dumps(V3_BREAKING))
    assert not verdict.is_compatible
    with pytest.raises(SchemaRejected) as refused:
        registry.register(subject, json.dumps(V3_BREAKING))
    assert refused.value.status == 409 and refused.value.registry_message

    previous = [v.schema_str for v in registry.versions(subject)]
    [issue] = compat.check(V3_BREAKING, previous, level)
    assert (issue.path, issue.change) == ("Reading.site", "field added without a default")

    with pytest.raises(SerdeError) as e:
        Avro(V3_BREAKING).serializer(topic, False, ctx)
    msg = str(e.value)
    assert "refused schema it.streamflow.Reading" in msg and f"'{subject}'" in msg
    assert refused.value.registry_message in msg
    assert "Reading.site: field added without a default" in msg


def test_subject_level_compatibility_overrides_the_global_one(
    ctx: SerdeContext, registry: RegistryClient, topic: str
) -> None:
    subject = f"{topic}-value"
    Avro(V2).serializer(topic, False, ctx)
    assert registry.compatibility(subject) == registry.compatibility()
    registry.set_compatibility("FORWARD", subject)
    assert registry.compatibility(subject) == "FORWARD"
    # dropping the defaulted field is fine for FORWARD; dropping a required one is not
    narrower = rec(f("sensor", "string"), f("value", "long"))
    assert registry.test_compatibility(subject, json.dumps(narrower)).is_compatible
    no_value = rec(f("sensor", "string"))
    assert not registry.test_compatibility(subject, json.dumps(no_value)).is_compatible
    assert [i.change for i in compat.check(no_value, [V2], "FORWARD")] == [
        "field removed that has no default in the older schema"]


def test_unknown_schema_id_is_a_serde_error(ctx: SerdeContext, topic: str) -> None:
    with pytest.raises(SerdeError, match="unknown schema id 2147483000"):
        Avro(V1).deserializer(topic, False, ctx)(b"\x00\x7f\xff\xfd\x78\x02\x61\x02")


def test_unreachable_registry_fails_clearly_after_short_retries() -> None:
    client = make_registry_client({"url": "http://127.0.0.1:1", "timeout": 2},
                                  retry=RetryPolicy(attempts=4, initial_backoff_s=0.1,
                                                    max_backoff_s=0.5))
    ctx = SerdeContext(registry_factory=lambda: client, schemas_dir=SCHEMAS)
    start = time.monotonic()
    with pytest.raises(SerdeUnavailable) as e:
        Avro("payment").serializer("payments", False, ctx)
    elapsed = time.monotonic() - start
    assert elapsed < 5, elapsed
    msg = str(e.value)
    assert "http://127.0.0.1:1" in msg and "after 4 attempt(s)" in msg
    assert "reachable" in msg
    assert isinstance(e.value.__cause__, RegistryUnavailable)
