"""Field-level encryption: Avro and Json serdes with encrypt=[...], key files, rotation."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

import streamflow as sf
from streamflow.kafka.registry import make_registry_client
from streamflow.serde import SerdeContext, SerdeError
from streamflow.serde.encryption import MARK, TEXT_PREFIX, FieldCrypter
from streamflow.serde.keyfile import (
    KeyFileError,
    LocalKeyFile,
    StaticKeys,
    new_key_file,
    provider_from_setting,
    rotate_key_file,
)
from streamflow.testing import TopologyTestDriver

SCHEMA: dict[str, Any] = {
    "type": "record", "name": "Customer", "namespace": "test.enc",
    "fields": [
        {"name": "id", "type": "int"},
        {"name": "card_number", "type": "string"},
        {"name": "email", "type": ["null", "string"], "default": None},
        {"name": "photo", "type": "bytes"},
        {"name": "score", "type": "double"},
    ],
}
RECORD = {"id": 7, "card_number": "4111111111111111", "email": "ada@example.com",
          "photo": b"\x89PNG-secret-bytes", "score": 0.5}
PLAINTEXTS = (b"4111111111111111", b"ada@example.com", b"PNG-secret-bytes")
_n = iter(range(1_000_000))


def keys(*versions: str, current: str | None = None) -> StaticKeys:
    return StaticKeys({v: os.urandom(32) for v in versions}, current or versions[-1])


def registry_ctx(keys: Any = None, url: str | None = None) -> SerdeContext:
    url = url or f"mock://enc-{next(_n)}"
    return SerdeContext(registry_factory=lambda: make_registry_client({"url": url}), keys=keys)


def with_keys(ctx: SerdeContext, keys: Any) -> SerdeContext:
    """The same registry client, another key provider (or none)."""
    return SerdeContext(registry_factory=ctx.registry, keys=keys)


def pair(serde: Any, ctx: SerdeContext, topic: str = "customers"
         ) -> tuple[Callable[[Any], bytes | None], Callable[[bytes | None], Any]]:
    return serde.serializer(topic, False, ctx), serde.deserializer(topic, False, ctx)


AVRO = sf.Avro(SCHEMA, encrypt=["card_number", "email", "photo"])
JSON = sf.Json(encrypt=["card_number", "email", "photo"])
JSON_RECORD = {**RECORD, "photo": {"bytes": [1, 2, 3]}}


# -- round trips ---------------------------------------------------------------------------


def test_avro_round_trip_hides_the_plaintext_bytes_and_decodes_with_the_key() -> None:
    ctx = registry_ctx(keys("k1"))
    ser, de = pair(AVRO, ctx)
    raw = ser(RECORD)
    assert raw is not None
    for plain in PLAINTEXTS:
        assert plain not in raw
    assert de(raw) == RECORD
    clear = sf.Avro(SCHEMA).deserializer("customers", False, ctx)(raw)  # the envelope shape
    assert clear["card_number"].startswith(TEXT_PREFIX)
    assert clear["photo"][:3] == b"SFE"
    assert clear["id"] == 7 and clear["score"] == 0.5


def test_json_round_trip_encrypts_any_json_value_as_a_text_envelope() -> None:
    ser, de = pair(JSON, SerdeContext(keys=keys("k1")))
    raw = ser(JSON_RECORD)
    assert raw is not None
    for plain in (b"4111111111111111", b"ada@example.com", b"[1,2,3]"):
        assert plain not in raw
    stored = orjson.loads(raw)
    assert all(stored[f].startswith(TEXT_PREFIX) for f in ("card_number", "email", "photo"))
    assert stored["id"] == 7
    assert de(raw) == JSON_RECORD


@pytest.mark.parametrize("serde", [AVRO, JSON], ids=["avro", "json"])
def test_a_null_field_stays_null_and_each_record_gets_a_fresh_nonce(serde: Any) -> None:
    record = {**(RECORD if serde is AVRO else JSON_RECORD), "email": None}
    ser, de = pair(serde, registry_ctx(keys("k1")))
    a, b = ser(record), ser(record)
    assert a != b  # random nonces: equal plaintexts do not give equal ciphertexts
    assert de(a) == de(b) == record


def test_one_data_key_per_kek_version_is_wrapped_not_one_per_record() -> None:
    provider = keys("k1")
    wraps: list[str] = []
    real = provider.wrap
    provider.wrap = lambda kid, dk: wraps.append(kid) or real(kid, dk)  # type: ignore[method-assign]
    ctx = registry_ctx(provider)
    ser, _ = pair(AVRO, ctx)
    other = JSON.serializer("other", False, ctx)
    for _ in range(50):
        ser(RECORD)
        other(JSON_RECORD)
    assert wraps == ["k1"]  # one data key for the whole context, both serdes


def test_typed_values_encrypt_through_the_model() -> None:
    from dataclasses import dataclass

    @dataclass
    class Card:
        id: int
        card_number: str

    serde = sf.Json(Card, encrypt=["card_number"])
    ser, de = pair(serde, SerdeContext(keys=keys("k1")))
    raw = ser(Card(1, "5500000000000004"))
    assert raw is not None and b"5500000000000004" not in raw
    assert de(raw) == Card(1, "5500000000000004")
    # without the key the envelope text fits a str field: the record passes through
    keyless = serde.deserializer("customers", False, SerdeContext())(raw)
    assert keyless.card_number.startswith(TEXT_PREFIX)


# -- rotation --------------------------------------------------------------------------------


@pytest.mark.parametrize("serde", [AVRO, JSON], ids=["avro", "json"])
def test_records_written_before_a_rotation_still_decrypt_after_it(
        serde: Any, tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    new_key_file(path)
    record = RECORD if serde is AVRO else JSON_RECORD
    provider = LocalKeyFile(path)
    ctx = registry_ctx(provider)
    before = pair(serde, ctx)[0](record)
    assert rotate_key_file(path) == "v2"
    ser, de = pair(serde, with_keys(ctx, LocalKeyFile(path)))  # a processor started after it
    after = ser(record)
    assert de(before) == de(after) == record
    keyless = pair(serde, with_keys(ctx, None))[1]
    sealed_before, sealed_after = keyless(before)["card_number"], keyless(after)["card_number"]
    assert _key_id(sealed_before) == "v1" and _key_id(sealed_after) == "v2"
    # the provider loaded before the rotation reads the file again for the unknown version
    assert pair(serde, ctx)[1](after) == record


def _key_id(text_envelope: str) -> str:
    env = base64.b64decode(text_envelope[len(TEXT_PREFIX):])
    n = int.from_bytes(env[4:6], "big")
    return env[6:6 + n].decode()


def test_a_running_writer_moves_to_the_new_version_after_its_refresh(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keys.json"
    new_key_file(path)
    crypter = FieldCrypter({"email": "text"}, LocalKeyFile(path), "test")
    assert _key_id(crypter.seal({"email": "a"})["email"]) == "v1"
    rotate_key_file(path)
    assert _key_id(crypter.seal({"email": "a"})["email"]) == "v1"  # not before the refresh
    monkeypatch.setattr("streamflow.serde.encryption.REFRESH_S", 0.0)
    assert _key_id(crypter.seal({"email": "a"})["email"]) == "v2"


# -- tampering and misuse ----------------------------------------------------------------------


def _flip(text_envelope: str, at: int = -3) -> str:
    env = bytearray(base64.b64decode(text_envelope[len(TEXT_PREFIX):]))
    env[at] ^= 0x01
    return TEXT_PREFIX + base64.b64encode(bytes(env)).decode()


@pytest.mark.parametrize("serde", [AVRO, JSON], ids=["avro", "json"])
def test_tampered_ciphertext_is_a_deserialize_error_naming_the_field(serde: Any) -> None:
    record = RECORD if serde is AVRO else JSON_RECORD
    ctx = registry_ctx(keys("k1"))
    raw = pair(serde, ctx)[0](record)
    keyless = with_keys(ctx, None)
    ser0, de0 = pair(serde, keyless)
    sealed = de0(raw)
    tampered = ser0({**sealed, "card_number": _flip(sealed["card_number"])})
    with pytest.raises(SerdeError, match=r"field 'card_number' fails authentication"):
        pair(serde, ctx)[1](tampered)


@pytest.mark.parametrize("serde", [AVRO, JSON], ids=["avro", "json"])
def test_a_ciphertext_moved_to_another_field_fails_authentication(serde: Any) -> None:
    record = RECORD if serde is AVRO else JSON_RECORD
    ctx = registry_ctx(keys("k1"))
    raw = pair(serde, ctx)[0](record)
    ser0, de0 = pair(serde, with_keys(ctx, None))
    sealed = de0(raw)
    swapped = ser0({**sealed, "card_number": sealed["email"], "email": sealed["card_number"]})
    with pytest.raises(SerdeError, match=r"field '(card_number|email)' fails authentication.*"
                       "another field"):
        pair(serde, ctx)[1](swapped)


def test_a_plaintext_in_an_encrypted_field_is_refused_when_read_with_the_key() -> None:
    de = JSON.deserializer("customers", False, SerdeContext(keys=keys("k1")))
    with pytest.raises(SerdeError, match=r"'card_number' holds no readable envelope"):
        de(orjson.dumps({"id": 1, "card_number": "4111111111111111"}))


def test_a_ciphertext_under_an_unknown_kek_version_is_a_deserialize_error() -> None:
    raw = JSON.serializer("t", False, SerdeContext(keys=keys("k9")))(JSON_RECORD)
    with pytest.raises(SerdeError, match=r"no key-encryption key 'k9'"):
        JSON.deserializer("t", False, SerdeContext(keys=keys("k1")))(raw)


# -- pass-through without the key -----------------------------------------------------------


@pytest.mark.parametrize("serde", [AVRO, JSON], ids=["avro", "json"])
def test_without_the_key_ciphertext_passes_through_unchanged(serde: Any) -> None:
    record = RECORD if serde is AVRO else JSON_RECORD
    ctx = registry_ctx(keys("k1"))
    raw = pair(serde, ctx)[0](record)
    ser0, de0 = pair(serde, with_keys(ctx, None))
    seen = de0(raw)
    assert seen["card_number"].startswith(TEXT_PREFIX) and seen["id"] == 7
    again = ser0(seen)
    assert again == raw  # re-serialized byte for byte
    assert pair(serde, ctx)[1](again) == record
    with pytest.raises(SerdeError, match=r"cannot encrypt field 'card_number': no encryption "
                       r"key is configured.*STREAMFLOW_ENCRYPTION_KEYS"):
        ser0(record)


# -- declaring ---------------------------------------------------------------------------------


def test_an_encrypted_field_of_another_type_is_refused_at_declaration_naming_it() -> None:
    with pytest.raises(ValueError, match=r"encrypted field 'score' .* has Avro type \"double\"; "
                       r"an encrypted field must be a string .* or bytes"):
        sf.Avro(SCHEMA, encrypt=["card_number", "score"])
    with pytest.raises(ValueError, match=r"'nope' is not a field of the Avro record"):
        sf.Avro(SCHEMA, encrypt=["nope"])
    with pytest.raises(TypeError, match=r"takes a list of field names"):
        sf.Json(encrypt="email")  # type: ignore[arg-type]


def test_a_schema_found_only_at_binding_is_checked_then(tmp_path: Path) -> None:
    (tmp_path / "customer.avsc").write_text(json.dumps(SCHEMA))
    serde = sf.Avro("customer", encrypt=["score"])  # not under ./schemas: checked later
    ctx = SerdeContext(registry_factory=lambda: make_registry_client({"url": "mock://late"}),
                       schemas_dir=tmp_path, keys=keys("k1"))
    with pytest.raises(SerdeError, match=r"encrypted field 'score'"):
        serde.serializer("t", False, ctx)


def test_the_registered_schema_marks_encrypted_fields_and_describe_names_them() -> None:
    ctx = registry_ctx(keys("k1"))
    AVRO.serializer("customers", False, ctx)
    latest = ctx.registry().latest("customers-value")
    registered = json.loads(latest.schema_str)
    marked = {f["name"] for f in registered["fields"] if f.get(MARK) is True}
    assert marked == {"card_number", "email", "photo"}
    assert AVRO.describe() == "Avro(test.enc.Customer, encrypted: card_number, email, photo)"
    assert JSON.describe() == "Json(encrypted: card_number, email, photo)"
    assert sf.Json().describe() == "Json"
    assert sf.Avro(SCHEMA) != AVRO and sf.Json() != JSON
    assert "encrypt=" in repr(AVRO) and "encrypt=" in repr(JSON)


# -- key files -------------------------------------------------------------------------------


def test_key_files_are_owner_only_and_refused_when_others_may_read_them(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    new_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    rotate_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["current"] == "v2"
    with pytest.raises(KeyFileError, match=r"already exists.*keys rotate"):
        new_key_file(path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match=r"may be read by other users.*chmod 600"):
        LocalKeyFile(path)
    with pytest.raises(KeyFileError, match=r"cannot read key file .*keys new"):
        LocalKeyFile(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"current": "v1", "keys": {"v1": "c2hvcnQ="}}')
    bad.chmod(0o600)
    with pytest.raises(KeyFileError, match=r"'v1' has 5 bytes; AES-256 needs 32"):
        LocalKeyFile(bad)


def test_a_provider_never_shows_its_keys() -> None:
    provider = StaticKeys({"k1": b"\x01" * 32}, "k1")
    assert "\\x01" not in repr(provider) and "AQEB" not in repr(provider)
    assert "keys" not in repr(SerdeContext(keys=provider))


PLUGIN = StaticKeys({"p1": bytes(32)}, "p1")


def make_plugin() -> StaticKeys:
    return PLUGIN


def test_the_setting_names_a_key_file_or_a_plugin(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    new_key_file(path)
    assert isinstance(provider_from_setting(str(path)), LocalKeyFile)
    assert provider_from_setting("") is None
    assert provider_from_setting(f"{__name__}:PLUGIN") is PLUGIN
    assert provider_from_setting(f"{__name__}:make_plugin") is PLUGIN
    with pytest.raises(KeyFileError, match=r"plug-in 'no_such_mod:x', which cannot be loaded"):
        provider_from_setting("no_such_mod:x")


# -- in a topology (the real engine, through the test driver) --------------------------------


def customers_topology() -> sf.Topology:
    """customers (Avro, 3 encrypted fields) -> [p: tag] -> tagged (same serde) -> dead letters."""
    t = sf.Topology("enc")
    src = t.topic("customers", key=sf.String(), value=AVRO, external=True)
    out = t.topic("tagged", key=sf.String(), value=AVRO)
    t.processor("p", on_deserialize_error="dead_letter").stream(src).map(
        lambda v: {**v, "id": v["id"] + 1000, "seen": v["card_number"][:4]}, name="tag").map(
        lambda v: {k: v[k] for k in RECORD}, name="shape").to(out, name="to-tagged")
    return t


def test_a_processor_with_the_key_sees_plaintext_and_one_without_passes_ciphertext() -> None:
    provider = keys("k1")
    seen: list[str] = []
    t = sf.Topology("enc")
    src = t.topic("customers", key=sf.String(), value=AVRO, external=True)
    out = t.topic("tagged", key=sf.String(), value=AVRO)
    (t.processor("p").stream(src)
     .peek(lambda r: seen.append(r.value["card_number"]), name="look")
     .map(lambda v: {**v, "id": v["id"] + 1000}, name="tag").to(out, name="to-tagged"))
    with TopologyTestDriver(t, config={"encryption_keys": provider}) as driver:
        driver.input("customers").send(RECORD, key="c1")
        assert driver.output("tagged").read_values() == [{**RECORD, "id": 1007}]
    assert seen == ["4111111111111111"]
    with TopologyTestDriver(t) as keyless:
        keyed = with_keys(keyless.serde_context, provider)
        sealed = pair(AVRO, keyed)[0](RECORD)
        keyless.input("customers").send_raw(sealed, key=b"c1")
        (rec,) = keyless.output("tagged").read_records()
        assert seen[1].startswith(TEXT_PREFIX)
        assert rec.value["id"] == 1007 and rec.value["card_number"] == seen[1]
        # the passed-through ciphertext still opens downstream with the key
        raw = AVRO.serializer("tagged", False, keyless.serde_context)(rec.value)
        assert AVRO.deserializer("tagged", False, keyed)(raw) == {**RECORD, "id": 1007}


def test_a_tampered_record_is_dead_lettered_with_its_original_bytes() -> None:
    provider = keys("k1")
    with TopologyTestDriver(customers_topology(), config={"encryption_keys": provider}
                            ) as driver:
        ctx = driver.serde_context
        good = pair(AVRO, ctx)[0](RECORD)
        ser0, de0 = pair(AVRO, with_keys(ctx, None))
        sealed = de0(good)
        bad = ser0({**sealed, "email": _flip(sealed["email"])})
        driver.input("customers").send_raw(good, key=b"c1")
        driver.input("customers").send_raw(bad, key=b"c2")
        assert [v["id"] for v in driver.output("tagged").read_values()] == [1007]
        (dead,) = driver.output("enc.p.dlq").read_records()
    headers = dict(dead.headers or [])
    assert dead.value == bad
    assert headers["streamflow.error.phase"] == b"deserialize"
    assert b"fails authentication" in headers["streamflow.error.message"]


def test_the_driver_takes_a_key_file_path(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    new_key_file(path)
    with TopologyTestDriver(customers_topology(), config={
            "encryption_keys": str(path)}) as driver:
        driver.input("customers").send(RECORD, key="c1")
        assert driver.output("tagged").read_values() == [{**RECORD, "id": 1007}]


def test_keys_cli_creates_and_rotates_the_file_with_audit_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from streamflow.cli import main

    audit = tmp_path / "audit.jsonl"
    monkeypatch.setenv("STREAMFLOW_AUDIT_LOG", str(audit))
    path = tmp_path / "keys.json"
    monkeypatch.setenv("STREAMFLOW_ENCRYPTION_KEYS", str(path))
    assert main(["keys", "new"]) == 0
    assert main(["keys", "rotate", str(path)]) == 0
    assert main(["keys", "new", str(path)]) == 3
    out = capsys.readouterr()
    assert "created with key version v1" in out.out and "now use key version v2" in out.out
    assert "already exists" in out.err
    entries = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(e["action"], e["result"][:6], e.get("key_version")) for e in entries] == [
        ("keys.new", "ok", "v1"), ("keys.rotate", "ok", "v2"), ("keys.new", "failed", None)]
    secrets = json.loads(path.read_text())["keys"].values()
    assert not any(s in audit.read_text() for s in secrets)


def test_describe_shows_the_encrypted_fields_of_each_topic() -> None:
    from streamflow.dsl.render import describe_text

    text = describe_text(customers_topology())
    assert "customers (external): key=String, value=Avro(test.enc.Customer, encrypted: " \
        "card_number, email, photo)" in text
