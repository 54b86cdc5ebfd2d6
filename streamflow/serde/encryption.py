r"""Field-level encryption: AES-256-GCM envelopes for chosen fields of Avro and JSON values.

``Avro(schema, encrypt=["card_number", "email"])`` and ``Json(encrypt=[...])`` encrypt those
top-level fields when serializing and decrypt them when deserializing, with keys from a
:class:`KeyProvider` handed to the serdes through :class:`~streamflow.serde.base.SerdeContext`
(``keys``; a worker builds it from the ``encryption_keys`` setting).

**Envelope encryption.** A process draws one random 256-bit *data key* per key-encryption-key
(KEK) version and keeps it (a new one after :data:`DATA_KEY_USES` encryptions); the provider
*wraps* it with the KEK (a local key file, or a cloud KMS). Each ciphertext carries the KEK
version and the wrapped data key, so any holder of the KEKs can open it, and a rotation (a new
current KEK version) leaves old ciphertexts readable. A reader unwraps each distinct data key
once and caches it.

**Binary layout** (an *envelope*)::

    b"SFE" | format version (1) | len(key id) (2, big-endian) | key id (UTF-8)
          | len(wrapped data key) (2) | wrapped data key | nonce (12) | ciphertext + GCM tag (16)

The GCM associated data is the envelope's header (everything before the nonce, so the format
version byte and key id) followed by ``b"\x00"`` and the field's name: a ciphertext copied into
another field, or a changed header, fails authentication.

**Field types.** Avro ``bytes`` fields hold the binary envelope; Avro ``string`` fields hold
it as text, ``"sfe:" + base64(envelope)`` (also nullable unions of those: ``null`` stays
``null``, unencrypted). Any other Avro type is refused when the schema loads, naming the field.
JSON fields may hold any JSON value: it is encrypted as its JSON text and the field holds the
text envelope.

**Without a key** (``SerdeContext.keys`` is None) a serde passes envelopes through: decoding
leaves the field as the envelope, encoding writes an envelope back unchanged, and refuses a
plaintext value. **A tampered ciphertext** (or one moved to another field, or one whose data
key no KEK opens) is a :class:`~streamflow.serde.base.SerdeError`: a deserialize error that
goes through ``on_deserialize_error`` like any undecodable record.

>>> from streamflow.serde.keyfile import StaticKeys
>>> fields = FieldCrypter({"email": "text"}, StaticKeys({"k1": bytes(32)}, "k1"), "Json")
>>> sealed = fields.seal({"id": 1, "email": "ada@example.com"})
>>> sealed["email"][:4], "ada" in sealed["email"]
('sfe:', False)
>>> fields.open(dict(sealed))
{'id': 1, 'email': 'ada@example.com'}
>>> FieldCrypter({"email": "text"}, None, "Json").open(dict(sealed)) == sealed  # no key
True
"""

from __future__ import annotations

import binascii
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol, runtime_checkable

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from streamflow.serde.base import SerdeError

__all__ = [
    "DATA_KEY_USES",
    "MARK",
    "TEXT_PREFIX",
    "FieldCrypter",
    "KeyProvider",
    "KeyRing",
    "Kind",
    "avro_kinds",
    "encrypt_fields",
    "mark_schema",
]

MAGIC = b"SFE"
VERSION = 1
TEXT_PREFIX = "sfe:"
MARK = "streamflow.encrypted"  # the field property in registered Avro schemas
NONCE = 12
DATA_KEY_USES = 1 << 30  # random 96-bit nonces: stay far below 2**32 uses of one key
REFRESH_S = 30.0  # how often a writer asks the provider for its current KEK version
_MAX_OPENERS = 4096

Kind = Literal["text", "bytes", "json"]


@runtime_checkable
class KeyProvider(Protocol):
    """Where key-encryption keys (KEKs) live: a local key file, or a cloud KMS plug-in.

    The provider never hands out a KEK: it wraps and unwraps data keys. ``key_id`` names a
    KEK version (stored in every ciphertext, at most 65,535 UTF-8 bytes); new data keys are
    wrapped with :meth:`current_key_id`'s version, old ones are unwrapped with theirs. A KMS
    plug-in maps ``wrap``/``unwrap`` to the KMS's encrypt/decrypt of a small payload.

    ``unwrap`` raises :class:`~streamflow.serde.base.SerdeError` for a key id it does not
    know or a wrapped key that does not open (the record is bad, or the key is gone), and
    :class:`~streamflow.serde.base.SerdeUnavailable` when the KMS cannot be reached (an
    outage: the worker stops and retries instead of dead-lettering records).
    """

    def current_key_id(self) -> str:
        """The KEK version that new data keys are wrapped with."""
        ...

    def wrap(self, key_id: str, data_key: bytes) -> bytes:
        """``data_key`` (32 bytes) encrypted with KEK version ``key_id``."""
        ...

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        """The data key that :meth:`wrap` turned into ``wrapped`` under ``key_id``."""
        ...


def _header(key_id: str, wrapped: bytes) -> bytes:
    kid = key_id.encode("utf-8")
    if len(kid) > 0xFFFF or len(wrapped) > 0xFFFF:
        msg = f"key id or wrapped data key too long for an envelope (key id {key_id[:80]!r})"
        raise SerdeError(msg)
    return (MAGIC + bytes((VERSION,)) + len(kid).to_bytes(2, "big") + kid
            + len(wrapped).to_bytes(2, "big") + wrapped)


def _split(envelope: bytes) -> tuple[bytes, str, bytes, int]:
    """(header, key id, wrapped data key, offset of the nonce) of an envelope."""
    if envelope[:3] != MAGIC:
        msg = "not an encrypted value (no envelope marker)"
        raise ValueError(msg)
    if envelope[3:4] != bytes((VERSION,)):
        msg = f"unknown envelope format version {envelope[3:4].hex() or '(none)'}"
        raise ValueError(msg)
    at = 4
    n = int.from_bytes(envelope[at:at + 2], "big")
    kid = envelope[at + 2:at + 2 + n].decode("utf-8")
    at += 2 + n
    w = int.from_bytes(envelope[at:at + 2], "big")
    wrapped = envelope[at + 2:at + 2 + w]
    at += 2 + w
    if len(wrapped) != w or len(envelope) < at + NONCE + 16:
        msg = "truncated envelope"
        raise ValueError(msg)
    return envelope[:at], kid, wrapped, at


class KeyRing:
    """The data keys of one process: the current one for writing, opened ones for reading.

    Shared by every serde bound with the same :class:`SerdeContext` (see :func:`key_ring`),
    so a worker wraps one data key per KEK version, not one per topic or record.
    """

    def __init__(self, provider: KeyProvider) -> None:
        self.provider = provider
        self._key_id: str | None = None
        self._writer: tuple[bytes, AESGCM] | None = None
        self._uses = 0
        self._checked = 0.0
        self._openers: dict[bytes, AESGCM] = {}

    def writer(self, uses: int = 1) -> tuple[bytes, AESGCM]:
        """(envelope header, cipher) for the next ``uses`` encryptions; new data key when due."""
        now = time.monotonic()
        w = self._writer
        if w is not None and self._uses < DATA_KEY_USES and now - self._checked < REFRESH_S:
            self._uses += uses
            return w
        self._checked = now
        key_id = self.provider.current_key_id()
        if w is None or key_id != self._key_id or self._uses >= DATA_KEY_USES:
            data_key = AESGCM.generate_key(bit_length=256)
            header = _header(key_id, self.provider.wrap(key_id, data_key))
            w = (header, AESGCM(data_key))
            self._openers[header] = w[1]
            self._writer, self._key_id, self._uses = w, key_id, 0
        self._uses += uses
        return w

    def opener(self, header: bytes, key_id: str, wrapped: bytes) -> AESGCM:
        """The cipher of the data key in ``header`` (unwrapped once, then cached)."""
        aead = self._openers.get(header)
        if aead is None:
            data_key = self.provider.unwrap(key_id, wrapped)
            if len(data_key) != 32:
                msg = f"key provider unwrapped a {len(data_key)}-byte data key, expected 32"
                raise SerdeError(msg)
            if len(self._openers) >= _MAX_OPENERS:
                self._openers.clear()
            aead = self._openers[header] = AESGCM(data_key)
        return aead


def key_ring(ctx: Any) -> KeyRing | None:
    """The context's shared :class:`KeyRing`, or None when it holds no key provider."""
    provider = getattr(ctx, "keys", None)
    if provider is None:
        return None
    ring = ctx._cache.get("key_ring")
    if ring is None or ring.provider is not provider:
        ring = ctx._cache["key_ring"] = KeyRing(provider)
    return ring  # type: ignore[no-any-return]


class FieldCrypter:
    """Seals and opens the chosen fields of dict values (one serde side of one topic).

    ``fields`` maps a field name to its :data:`Kind`; ``keys`` is a :class:`KeyRing` or a
    :class:`KeyProvider` (None: pass-through, see the module doc); ``who`` names the serde
    and topic in error messages.
    """

    def __init__(self, fields: Mapping[str, Kind], keys: KeyRing | KeyProvider | None,
                 who: str) -> None:
        self.fields = dict(fields)
        # (name, kind, the associated data after the header)
        self._plan = [(n, k, b"\x00" + n.encode("utf-8")) for n, k in self.fields.items()]
        self.ring = keys if isinstance(keys, KeyRing) or keys is None else KeyRing(keys)
        self.who = who
        # the last data key read: most records of a topic share it, so skip parsing its header
        self._last: tuple[bytes, str, AESGCM] | None = None

    # -- writing -------------------------------------------------------------------------

    def seal(self, value: Any) -> Any:
        """A copy of the dict ``value`` with its chosen fields encrypted."""
        if not isinstance(value, dict):
            return value  # the serde's own check reports a non-record
        if self.ring is None:
            for name, kind in self.fields.items():
                plain = value.get(name)
                if plain is not None and not _is_envelope(kind, plain):
                    msg = (f"{self.who} cannot encrypt field {name!r}: no encryption key is "
                           "configured (set encryption_keys / STREAMFLOW_ENCRYPTION_KEYS to a key "
                           "file, or pass a key provider); a processor without the key can only "
                           "pass ciphertexts through")
                    raise SerdeError(msg)
            return value  # ciphertexts read without the key go back out unchanged
        out = dict(value)
        header, aead = self.ring.writer(len(self._plan))
        encrypt, urandom, b2a = aead.encrypt, os.urandom, binascii.b2a_base64
        for name, kind, suffix in self._plan:
            plain = out.get(name)
            if plain is None:
                continue
            data = plain.encode() if kind == "text" and plain.__class__ is str else \
                self._bytes(name, kind, plain)
            nonce = urandom(NONCE)
            envelope = header + nonce + encrypt(nonce, data, header + suffix)
            out[name] = envelope if kind == "bytes" else \
                TEXT_PREFIX + b2a(envelope, newline=False).decode("ascii")
        return out

    def _bytes(self, name: str, kind: Kind, plain: Any) -> bytes:
        """The bytes to encrypt for a field's value (its JSON text for ``json``)."""
        if kind == "json":
            data = orjson.dumps(plain)
        elif kind == "text":
            if not isinstance(plain, str):
                msg = (f"{self.who} cannot encrypt field {name!r}: expected a string, got "
                       f"{type(plain).__name__}")
                raise SerdeError(msg)
            data = plain.encode("utf-8")
        elif isinstance(plain, (bytes, bytearray, memoryview)):
            data = bytes(plain)
        else:
            msg = (f"{self.who} cannot encrypt field {name!r}: expected bytes, got "
                   f"{type(plain).__name__}")
            raise SerdeError(msg)
        return data

    # -- reading -------------------------------------------------------------------------

    def open(self, value: Any) -> Any:
        """The decoded dict ``value`` with its chosen fields decrypted in place."""
        if self.ring is None or not isinstance(value, dict):
            return value
        for name, kind, suffix in self._plan:
            sealed = value.get(name)
            if sealed is not None:
                value[name] = self._open_one(name, kind, suffix, sealed)
        return value

    def _open_one(self, name: str, kind: Kind, suffix: bytes, sealed: Any) -> Any:
        assert self.ring is not None
        try:
            envelope = _envelope_bytes(kind, sealed)
            last = self._last
            if last is not None and envelope.startswith(last[0]) and \
                    len(envelope) >= len(last[0]) + NONCE + 16:
                header, kid, aead = last
                at = len(header)
            else:
                header, kid, wrapped, at = _split(envelope)
                aead = self.ring.opener(header, kid, wrapped)
                self._last = (header, kid, aead)
        except (ValueError, UnicodeDecodeError, binascii.Error, TypeError) as e:
            msg = f"{self.who}: encrypted field {name!r} holds no readable envelope: {e}"
            raise SerdeError(msg) from e
        try:
            data = aead.decrypt(envelope[at:at + NONCE], envelope[at + NONCE:], header + suffix)
        except InvalidTag:
            msg = (f"{self.who}: encrypted field {name!r} fails authentication (key id "
                   f"{kid!r}): the ciphertext was altered, or moved here from another field")
            raise SerdeError(msg) from None
        if kind == "bytes":
            return data
        if kind == "text":
            return data.decode("utf-8")
        return orjson.loads(data)


def _envelope_bytes(kind: Kind, sealed: Any) -> bytes:
    if kind == "bytes":
        if not isinstance(sealed, (bytes, bytearray)):
            msg = f"expected bytes, got {type(sealed).__name__}"
            raise TypeError(msg)
        return bytes(sealed)
    if not isinstance(sealed, str) or not sealed.startswith(TEXT_PREFIX):
        msg = f"not an encrypted value (a text envelope starts with {TEXT_PREFIX!r})"
        raise ValueError(msg)
    return binascii.a2b_base64(sealed[len(TEXT_PREFIX):], strict_mode=True)


def _is_envelope(kind: Kind, value: Any) -> bool:
    try:
        _split(_envelope_bytes(kind, value))
    except (ValueError, UnicodeDecodeError, binascii.Error, TypeError):
        return False
    return True


# -- declaring encrypted fields -----------------------------------------------------------


def encrypt_fields(names: Iterable[str] | str | None, owner: str) -> tuple[str, ...]:
    """``encrypt=`` normalised: a tuple of distinct, non-empty field names (TypeError else)."""
    if names is None:
        return ()
    if isinstance(names, str):
        msg = f"{owner}(encrypt=...) takes a list of field names, e.g. encrypt=[{names!r}]"
        raise TypeError(msg)
    out = tuple(dict.fromkeys(names))
    for n in out:
        if not isinstance(n, str) or not n:
            msg = f"{owner}(encrypt=...) takes field names (non-empty strings), got {n!r}"
            raise TypeError(msg)
    return out


def avro_kinds(schema: Any, names: Iterable[str], source: str) -> dict[str, Kind]:
    """Each encrypted field's kind in the Avro record ``schema``; SerdeError if unsupported.

    ``string`` (text envelope) and ``bytes`` (binary envelope), alone or in a union with
    ``null``; any other type cannot hold a ciphertext.
    """
    names = list(names)
    if not isinstance(schema, Mapping) or schema.get("type") not in ("record", "error"):
        msg = (f"encrypt={names} needs an Avro record schema, but {source} is not a record")
        raise SerdeError(msg)
    fields = {f.get("name"): f.get("type") for f in schema.get("fields", [])
              if isinstance(f, Mapping)}
    kinds: dict[str, Kind] = {}
    for name in names:
        if name not in fields:
            msg = (f"encrypted field {name!r} is not a field of the Avro record in {source} "
                   f"(its fields: {', '.join(str(f) for f in fields)})")
            raise SerdeError(msg)
        kind = _avro_kind(fields[name])
        if kind is None:
            msg = (f"encrypted field {name!r} in {source} has Avro type "
                   f"{orjson.dumps(fields[name]).decode()}; an encrypted field must be a string "
                   "(it holds a text envelope) or bytes (a binary envelope), optionally in a "
                   "union with null: change its type, or do not encrypt it")
            raise SerdeError(msg)
        kinds[name] = kind
    return kinds


def _avro_kind(tp: Any) -> Kind | None:
    if isinstance(tp, Mapping) and "logicalType" not in tp:
        tp = tp.get("type")
    if isinstance(tp, list):
        rest = [t for t in tp if t != "null"]
        return _avro_kind(rest[0]) if len(rest) == 1 else None
    if tp == "string":
        return "text"
    if tp == "bytes":
        return "bytes"
    return None


def mark_schema(schema: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """A copy of the record ``schema`` with its encrypted fields marked.

    Each carries the field property ``"streamflow.encrypted": true``: registered with the
    schema, ignored by Avro's resolution.
    """
    wanted = set(names)
    out = dict(schema)
    out["fields"] = [
        {**f, MARK: True} if isinstance(f, Mapping) and f.get("name") in wanted else f
        for f in schema.get("fields", [])
    ]
    return out
