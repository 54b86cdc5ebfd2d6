"""Field-level encryption on the real broker and registry.

Customers are produced with two encrypted fields, two records under key version v1, then
(after ``keys rotate``) two under v2, then one whose ciphertext was altered. Two processors
read them: ``mask`` holds the key file, sees plaintext and writes masked cards, dead-lettering
the altered record; ``route`` has no key and relays the records, ciphertext untouched.
"""

from __future__ import annotations

import base64
import json
import textwrap
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamflow.kafka.registry import make_registry_client
from streamflow.serde import Avro, SerdeContext
from streamflow.serde.encryption import MARK, TEXT_PREFIX
from streamflow.serde.keyfile import LocalKeyFile, new_key_file, rotate_key_file
from streamflow.testing.admin import TopicAdmin

pytestmark = pytest.mark.integration

SCHEMA = {
    "type": "record", "name": "Customer", "namespace": "test.encryption",
    "fields": [{"name": "id", "type": "int"},
               {"name": "card_number", "type": "string"},
               {"name": "email", "type": ["null", "string"], "default": None}],
}

TOPOLOGY = f'''
import streamflow as sf

SCHEMA = {SCHEMA!r}
topology = sf.Topology("enc")
customers = topology.topic("enc-customers", key=sf.String(), external=True,
                           value=sf.Avro(SCHEMA, encrypt=["card_number", "email"]))
masked = topology.topic("enc-masked", key=sf.String(), value=sf.Json())
relay = topology.topic("enc-relay", key=sf.String(),
                       value=sf.Avro(SCHEMA, encrypt=["card_number", "email"]))
(topology.processor("mask", on_deserialize_error="dead_letter").stream(customers)
    .map(lambda c: {{"id": c["id"], "card": "*" + c["card_number"][-4:],
                    "domain": c["email"].split("@")[1]}}, name="mask")
    .to(masked))
topology.processor("route").stream(customers).to(relay)
'''

CARDS = ["4111111111111111", "5500000000000004", "340000000000009", "6011000000000004"]


def customer(i: int) -> dict[str, Any]:
    return {"id": i, "card_number": CARDS[i], "email": f"user{i}@example{i}.org"}


def read_n(admin: TopicAdmin, topic: str, n: int, timeout: float = 30) -> list[Any]:
    deadline = time.monotonic() + timeout
    messages: list[Any] = []
    while time.monotonic() < deadline:
        messages = []
        admin.read_topic(topic, messages.append, timeout=5)
        if len(messages) >= n:
            break
        time.sleep(0.2)
    return messages


def test_encrypted_fields_on_a_real_broker_rotation_pass_through_and_tampering(
        tmp_path: Path, streamflow_app: Any, name_suffix: str, kafka_admin: TopicAdmin,
        kafka_bootstrap: str, schema_registry_url: str) -> None:
    from confluent_kafka import Producer

    (tmp_path / "enc_topology.py").write_text(textwrap.dedent(TOPOLOGY))
    keys = tmp_path / "keys.json"
    new_key_file(keys)
    source, relay = f"enc-customers{name_suffix}", f"enc-relay{name_suffix}"
    masked, dlq = f"enc-masked{name_suffix}", f"enc.mask.dlq{name_suffix}"
    kafka_admin.create_topic(source)
    registry = make_registry_client({"url": schema_registry_url})
    serde = Avro(SCHEMA, encrypt=["card_number", "email"])

    def ctx(with_keys: bool) -> SerdeContext:
        return SerdeContext(registry_factory=lambda: registry,
                            keys=LocalKeyFile(keys) if with_keys else None)

    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    values = [serde.serializer(source, False, ctx(True))(customer(i)) for i in (0, 1)]
    assert rotate_key_file(keys) == "v2"
    values += [serde.serializer(source, False, ctx(True))(customer(i)) for i in (2, 3)]
    keyless = ctx(False)
    sealed = serde.deserializer(source, False, keyless)(values[0])
    env = bytearray(base64.b64decode(sealed["card_number"][len(TEXT_PREFIX):]))
    env[-1] ^= 1
    tampered = serde.serializer(source, False, keyless)(
        {**sealed, "card_number": TEXT_PREFIX + base64.b64encode(bytes(env)).decode()})
    for i, value in enumerate([*values, tampered]):
        producer.produce(source, value, f"c{i}".encode())
    assert producer.flush(30) == 0

    # the topic holds no plaintext; the registered contract marks the encrypted fields
    raw = [m.value() for m in read_n(kafka_admin, source, 5)]
    assert len(raw) == 5
    for i in range(4):
        for plain in (CARDS[i].encode(), f"user{i}@example{i}".encode()):
            assert not any(plain in r for r in raw)
    latest = registry.latest(f"{source}-value")
    assert latest is not None
    marked = {f["name"] for f in json.loads(latest.schema_str)["fields"] if f.get(MARK)}
    assert marked == {"card_number", "email"}

    env_vars = {"STREAMFLOW_COMMIT_INTERVAL_MS": "100", "STREAMFLOW_SCHEMAS_DIR": str(tmp_path)}
    streamflow_app("enc_topology", "mask", cwd=tmp_path, name_suffix=name_suffix,
                   env={**env_vars, "STREAMFLOW_ENCRYPTION_KEYS": str(keys)})
    streamflow_app("enc_topology", "route", cwd=tmp_path, name_suffix=name_suffix,
                   env=env_vars)

    # with the key: plaintext, before and after the rotation; the altered record dead-lettered
    out = [orjson.loads(m.value()) for m in read_n(kafka_admin, masked, 4)]
    assert out == [{"id": i, "card": "*" + CARDS[i][-4:], "domain": f"example{i}.org"}
                   for i in range(4)]
    (dead,) = read_n(kafka_admin, dlq, 1)
    assert dead.value() == tampered
    headers = dict(dead.headers())
    assert headers["streamflow.error.phase"] == b"deserialize"
    assert b"'card_number' fails authentication" in headers["streamflow.error.message"]

    # without the key: the ciphertexts relayed unchanged (the altered one too: it cannot tell)
    relayed = read_n(kafka_admin, relay, 5)
    read_keyless = serde.deserializer(relay, False, keyless)
    read_source = serde.deserializer(source, False, keyless)
    assert [read_keyless(m.value()) for m in relayed] == [read_source(v) for v in raw]
    read_keyed = serde.deserializer(relay, False, ctx(True))
    assert [read_keyed(m.value()) for m in relayed[:4]] == [customer(i) for i in range(4)]
