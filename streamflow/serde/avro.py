r"""Avro values in Confluent wire format, with schemas held in a schema registry.

Wire format (the same as confluent-kafka's ``AvroSerializer`` and the Java serializers):
one magic byte ``0``, the schema id as a 4-byte big-endian integer, then the Avro binary
encoding of the value.

Producing: :meth:`Avro.serializer` (or :meth:`Avro.prepare`, which it calls) looks the
declared schema up under its subject — registering it when ``auto_register`` is on — once,
when the serializer is created; the per-record path is a 5-byte header plus a fastavro
write. Consuming: the writer's schema is fetched by id on first sight and cached; records
are decoded with it and resolved to the declared (reader) schema, so added fields with
defaults, removed fields and type promotions just work. Logical types come out as Python
values (``datetime``, ``date``, ``Decimal``, ``UUID``) and may be passed back in.

Errors: undecodable bytes (wrong magic byte, unknown schema id, truncated or corrupt
payloads) raise :class:`~streamflow.serde.base.SerdeError` with a readable message, as do
values that don't fit the schema and refused registrations. A registry that cannot be
reached raises :class:`~streamflow.serde.base.SerdeUnavailable` after its retries (caused
by the client's :class:`~streamflow.kafka.registry.RegistryUnavailable`): that is an
outage, not a bad record, so callers must not skip the record.

>>> from streamflow.kafka.registry import make_registry_client
>>> ctx = SerdeContext(registry_factory=lambda: make_registry_client({"url": "mock://avro-doc"}))
>>> serde = Avro({"type": "record", "name": "Hello", "fields": [{"name": "n", "type": "int"}]})
>>> data = serde.serializer("greetings", False, ctx)({"n": 7})
>>> data
b'\x00\x00\x00\x00\x01\x0e'
>>> serde.deserializer("greetings", False, ctx)(data)
{'n': 7}
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from io import BytesIO
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from streamflow.kafka.registry import (
    RegisteredSchema,
    RegistryClient,
    RegistryError,
    RegistryUnavailable,
    SchemaNotFound,
    SchemaRejected,
    as_registry_client,
)
from streamflow.serde import compat
from streamflow.serde.avro_guard import MAX_NESTING, payload_guard
from streamflow.serde.avro_messages import header_problem, preview, read_problem, write_problem
from streamflow.serde.avro_schema import LoadedSchema, load_schema
from streamflow.serde.base import (
    Deserializer,
    SerdeContext,
    SerdeError,
    SerdeUnavailable,
    Serializer,
)
from streamflow.serde.encryption import (
    FieldCrypter,
    avro_kinds,
    encrypt_fields,
    key_ring,
    mark_schema,
)
from streamflow.serde.models import ModelCodec, check_against_record, model_codec

__all__ = ["MAGIC_BYTE", "MAX_NESTING", "SUBJECT_STRATEGIES", "Avro"]

MAGIC_BYTE = 0
SUBJECT_STRATEGIES = ("topic", "record", "topic_record")

_HEADER = struct.Struct(">bI")
_REGISTER_HINT = "streamflow schemas register MODULE"


@dataclass(frozen=True, eq=False)
class Avro:
    """Avro values in Confluent wire format, schema in a registry; for keys or values.

    ``schema`` is a path to an ``.avsc`` file, the schema itself (a dict, or JSON text), or
    the name of a schema in ``ctx.schemas_dir`` — a file stem (``payment``) or the record's
    name or full name (``Payment``, ``com.example.Payment``).

    ``subject_strategy`` chooses the registry subject: ``"topic"`` → ``<topic>-key`` /
    ``<topic>-value`` (default); ``"record"`` → the record's full name;
    ``"topic_record"`` → ``<topic>-<full name>``.

    With ``auto_register`` (default) producing registers the schema if the subject lacks
    it; without, it must already be registered (``streamflow schemas register MODULE``).

    ``model`` (a dataclass or pydantic model class) makes the values typed: records decode
    into instances and instances encode. Its fields must match the record's (checked when
    the topic is bound, at start-up); a record that does not fit the model is a
    :class:`SerdeError`.

    ``encrypt`` names top-level fields to encrypt (AES-256-GCM, see
    :mod:`streamflow.serde.encryption`): each must be a ``string`` or ``bytes`` field
    (optionally nullable), checked when the schema loads; the registered schema marks them
    with the field property ``"streamflow.encrypted": true``. Without a key provider in the
    context, those fields pass through as ciphertext.

    >>> Avro("schemas/payment.avsc").describe()
    'Avro(com.example.Payment)'
    >>> Avro("payment", subject_strategy="record").subject("payments", False)
    'com.example.Payment'
    """

    schema: str | Path | Mapping[str, Any] | list[Any]
    subject_strategy: str = field(default="topic", kw_only=True)
    auto_register: bool = field(default=True, kw_only=True)
    model: Any = field(default=None, kw_only=True)
    encrypt: tuple[str, ...] = field(default=(), kw_only=True)
    _cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.subject_strategy not in SUBJECT_STRATEGIES:
            msg = (
                f"unknown subject_strategy {self.subject_strategy!r}; "
                f"use one of {', '.join(SUBJECT_STRATEGIES)}"
            )
            raise ValueError(msg)
        if not isinstance(self.schema, (str, Path, Mapping, list)):
            msg = (
                "Avro(schema) takes a path to an .avsc, a schema dict, or a schema name; "
                f"got {type(self.schema).__name__}"
            )
            raise TypeError(msg)
        if self.model is not None:
            model_codec(self.model, json=False)  # TypeError now, not at the first record
        object.__setattr__(self, "encrypt", encrypt_fields(self.encrypt, "Avro"))
        if self.encrypt:
            self._check_encrypted()

    def _check_encrypted(self) -> None:
        """Refuse encrypted fields of unsupported types now, when the schema can be found."""
        try:
            loaded = load_schema(self.schema, Path("schemas"))
        except SerdeError:
            return  # found only with the runtime's schemas_dir: checked when it binds
        try:
            avro_kinds(loaded.schema, self.encrypt, loaded.source)
        except SerdeError as e:
            raise ValueError(str(e)) from None

    # -- identity ------------------------------------------------------------------------

    def _key(self) -> tuple[Any, ...]:
        s = self.schema
        spec = json.dumps(s, sort_keys=True) if isinstance(s, (Mapping, list)) else str(s)
        return (spec, self.subject_strategy, self.auto_register, self.model, self.encrypt)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Avro) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        opts = ""
        if self.subject_strategy != "topic":
            opts += f", subject_strategy={self.subject_strategy!r}"
        if not self.auto_register:
            opts += ", auto_register=False"
        if self.model is not None:
            opts += f", model={self.model.__name__}"
        if self.encrypt:
            opts += f", encrypt={list(self.encrypt)!r}"
        s = self.schema
        shown = f"{str(s)!r}" if isinstance(s, (str, Path)) else "{...}"
        return f"Avro({shown}{opts})"

    def describe(self, ctx: SerdeContext | None = None) -> str:
        """``Avro(<full record name>)``, or ``Avro(<source>)`` if the schema can't be loaded.

        Encrypted fields follow: ``Avro(com.example.Payment, encrypted: card_number)``.
        """
        marks = f", encrypted: {', '.join(self.encrypt)}" if self.encrypt else ""
        try:
            loaded = self._load(ctx or SerdeContext())
        except SerdeError:
            shown = self.schema if isinstance(self.schema, (str, Path)) else "?"
            return f"Avro({shown}{marks})"
        return f"Avro({loaded.fullname or loaded.canonical}{marks})"

    # -- tooling -------------------------------------------------------------------------

    def schema_dict(self, ctx: SerdeContext | None = None) -> Any:
        """The declared schema as JSON data (a dict for records), as written in the .avsc."""
        return self._load(ctx or SerdeContext()).schema

    def schema_str(self, ctx: SerdeContext | None = None) -> str:
        """The schema text this serde registers (compact JSON of :meth:`schema_dict`)."""
        return self._load(ctx or SerdeContext()).schema_str

    def record_name(self, ctx: SerdeContext | None = None) -> str | None:
        """Full name of the declared record (None for an unnamed schema such as ``"long"``)."""
        return self._load(ctx or SerdeContext()).fullname

    def subject(self, topic: str, is_key: bool, ctx: SerdeContext | None = None) -> str:
        """The registry subject for ``topic``'s key or value under the subject strategy."""
        if self.subject_strategy == "topic":
            return f"{topic}-{'key' if is_key else 'value'}"
        loaded = self._load(ctx or SerdeContext())
        if loaded.fullname is None:
            msg = (
                f"subject_strategy={self.subject_strategy!r} needs a named schema (record, "
                f"enum or fixed), but {loaded.source} is {loaded.canonical}; use "
                "subject_strategy='topic'"
            )
            raise SerdeError(msg)
        if self.subject_strategy == "record":
            return loaded.fullname
        return f"{topic}-{loaded.fullname}"

    # -- binding -------------------------------------------------------------------------

    def prepare(self, topic: str, is_key: bool, ctx: SerdeContext) -> int:
        """Make sure the schema is registered under its subject; return its schema id.

        Looks the schema up; if absent, registers it (``auto_register``) or raises
        :class:`SerdeError` naming the subject and the command to run. A refusal by the
        registry (incompatible change) raises :class:`SerdeError` with the registry's
        message and streamflow's own explanation. The result is cached per subject and
        registry, so calling it again is free. :meth:`serializer` calls it, so creating the
        serializers at start-up verifies every produced topic's contract.
        """
        subject = self.subject(topic, is_key, ctx)
        hit = self._cache.get(("id", subject))
        if hit is not None and hit[0] is ctx.registry():
            return int(hit[1])
        return self._ensure(subject, ctx, register=self.auto_register)[0].schema_id

    def register(
        self, topic: str, is_key: bool, ctx: SerdeContext
    ) -> tuple[RegisteredSchema, bool]:
        """Register the schema under its subject, whatever ``auto_register`` says.

        Returns the registration and whether it is new (False when the subject already
        held this schema). A refusal raises :class:`SerdeError` with the registry's message
        and streamflow's explanation (as :meth:`prepare`); an unreachable registry raises
        :class:`SerdeUnavailable`. This is what ``streamflow schemas register`` does.
        """
        return self._ensure(self.subject(topic, is_key, ctx), ctx, register=True)

    def _ensure(
        self, subject: str, ctx: SerdeContext, *, register: bool
    ) -> tuple[RegisteredSchema, bool]:
        """Look the schema up under ``subject``, registering it if allowed; cache its id."""
        loaded = self._load(ctx)
        raw = ctx.registry()
        registry = as_registry_client(raw)
        what = loaded.fullname or loaded.canonical
        created = False
        try:
            found = registry.lookup(subject, loaded.schema_str)
            if found is None:
                if not register:
                    msg = (
                        f"schema {what} (from {loaded.source}) is not registered under subject "
                        f"{subject!r} in the schema registry at {registry.url}, and "
                        f"auto_register is off; register it with `{_REGISTER_HINT}` "
                        "(or use Avro(..., auto_register=True))"
                    )
                    raise SerdeError(msg)
                found = registry.register(subject, loaded.schema_str)
                created = True
        except SchemaRejected as e:
            raise SerdeError(self._refusal(registry, subject, loaded, e)) from e
        except RegistryUnavailable as e:
            raise SerdeUnavailable(str(e), url=registry.url) from e
        except RegistryError as e:
            msg = f"cannot register schema {what} under subject {subject!r}: {e}"
            raise SerdeError(msg) from e
        self._cache[("id", subject)] = (raw, found.schema_id)
        return found, created

    def serializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Serializer:
        """Return the serializer; registers/verifies the schema now (see :meth:`prepare`)."""
        loaded = self._load(ctx)
        header = _HEADER.pack(MAGIC_BYTE, self.prepare(topic, is_key, ctx))
        parsed = loaded.parsed
        write = fastavro.schemaless_writer
        name = self.describe(ctx)
        to_data = self._codec(loaded, name).to_data if self.model is not None else None
        seal = self._crypter(loaded, topic, ctx).seal if self.encrypt else None

        def serialize(value: Any) -> bytes | None:
            if value is None:
                return None
            if to_data is not None:
                try:
                    value = to_data(value)
                except SerdeError as e:
                    msg = f"{name} cannot serialize a value for topic {topic!r}: {e}"
                    raise SerdeError(msg) from e
            if seal is not None:
                value = seal(value)
            buf = BytesIO()
            buf.write(header)
            try:
                write(buf, parsed, value)
            except Exception as e:
                raise SerdeError(write_problem(name, topic, parsed, value, e)) from e
            return buf.getvalue()

        return serialize

    def deserializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Deserializer:
        """Return the deserializer; writer schemas are fetched by id on first sight."""
        loaded = self._load(ctx)
        name = self.describe(ctx)
        side = "key" if is_key else "value"
        entries: dict[int, tuple[Any, Any, Callable[[Any], None] | None]] = {}
        read = fastavro.schemaless_reader
        unpack = _HEADER.unpack_from
        from_data = self._codec(loaded, name).from_data if self.model is not None else None
        unseal = self._crypter(loaded, topic, ctx).open if self.encrypt else None

        def resolve(schema_id: int) -> tuple[Any, Any, Callable[[Any], None] | None]:
            who = f"{name} cannot deserialize a {side} from topic {topic!r}"
            entry = _writer_entry(as_registry_client(ctx.registry()), schema_id, loaded, who)
            entries[schema_id] = entry
            return entry

        def problem(data: Any, schema_id: int, e: Exception) -> SerdeError:
            return SerdeError(read_problem(name, topic, side, data, schema_id, e,
                                            entries[schema_id][0], loaded))

        def deserialize(data: bytes | None) -> Any:
            if data is None:
                return None
            try:
                magic, schema_id = unpack(data)
            except (struct.error, TypeError):
                raise SerdeError(header_problem(name, topic, side, data)) from None
            if magic != MAGIC_BYTE:
                raise SerdeError(header_problem(name, topic, side, data))
            writer, reader, guard = entries.get(schema_id) or resolve(schema_id)
            buf = BytesIO(data)
            buf.seek(5)
            try:
                if guard is not None:
                    guard(data)
                value = read(buf, writer, reader)
            except SerdeError:
                raise
            except Exception as e:  # fastavro raises many types on corrupt input
                raise problem(data, schema_id, e) from e
            if buf.tell() != len(data):
                msg = (
                    f"{name} cannot deserialize a {side} from topic {topic!r}: "
                    f"{len(data) - buf.tell()} unexpected byte(s) after the record (schema id "
                    f"{schema_id}; the bytes do not match the writer schema): {preview(data)}"
                )
                raise SerdeError(msg)
            if unseal is not None:
                value = unseal(value)
            if from_data is not None:
                try:
                    return from_data(value)
                except SerdeError as e:
                    msg = f"{name} cannot deserialize a {side} from topic {topic!r}: {e}"
                    raise SerdeError(msg) from e
            return value

        return deserialize

    def _crypter(self, loaded: LoadedSchema, topic: str, ctx: SerdeContext) -> FieldCrypter:
        kinds = avro_kinds(loaded.schema, self.encrypt, loaded.source)
        return FieldCrypter(kinds, key_ring(ctx), f"{self.describe(ctx)} on topic {topic!r}")

    def _codec(self, loaded: LoadedSchema, name: str) -> ModelCodec:
        codec = model_codec(self.model, json=False)
        check_against_record(codec, loaded.schema, name)
        return codec

    # -- loading -------------------------------------------------------------------------

    def _load(self, ctx: SerdeContext) -> LoadedSchema:
        key = ("schema", str(ctx.schemas_dir))
        hit = self._cache.get(key)
        if hit is not None:
            return hit  # type: ignore[no-any-return]
        loaded = load_schema(self.schema, Path(ctx.schemas_dir))
        if self.encrypt:  # the registered schema marks the encrypted fields
            avro_kinds(loaded.schema, self.encrypt, loaded.source)
            marked = load_schema(mark_schema(loaded.schema, self.encrypt), Path(ctx.schemas_dir))
            loaded = replace(marked, source=loaded.source)
        self._cache[key] = loaded
        return loaded

    def _refusal(
        self, registry: RegistryClient, subject: str, loaded: LoadedSchema, e: RegistryError
    ) -> str:
        what = loaded.fullname or loaded.canonical
        msg = (f"the schema registry at {registry.url} refused schema {what} (from "
               f"{loaded.source}) under subject {subject!r}: {e.registry_message or e}")
        try:  # best effort: explain it locally
            level = registry.compatibility(subject)
            previous = {v.version or i + 1: v.schema_str
                        for i, v in enumerate(registry.versions(subject))}
            issues = compat.check(loaded.schema, previous, level)
        except (RegistryError, ValueError):
            return msg
        if issues:
            msg += (f"\nincompatible with the subject's history under {level}:\n"
                    f"{compat.explain(issues)}")
        return msg + (
            "\nfix the schema (see `streamflow schemas check`), or if the break is intended, "
            "produce to a new topic or subject"
        )


# -- decoding support --------------------------------------------------------------------


def _writer_entry(
    registry: RegistryClient, schema_id: int, reader: LoadedSchema, who: str
) -> tuple[Any, Any, Callable[[Any], None] | None]:
    """(writer schema, reader schema or None when identical, guard) for ``schema_id``."""
    try:
        text = registry.schema_by_id(schema_id)
    except SchemaNotFound as e:
        msg = (
            f"{who}: unknown schema id {schema_id}: the schema registry at {registry.url} has "
            "no schema with that id (written against another registry, or not Avro in "
            "Confluent wire format?)"
        )
        raise SerdeError(msg) from e
    except RegistryUnavailable as e:
        msg = f"{who} yet: its writer schema (id {schema_id}) must be fetched, and {e}"
        raise SerdeUnavailable(msg, url=registry.url) from e
    except RegistryError as e:
        msg = f"{who}: cannot fetch writer schema id {schema_id}: {e}"
        raise SerdeError(msg) from e
    try:
        writer = fastavro.parse_schema(json.loads(text))
        canonical = to_parsing_canonical_form(writer)
    except Exception as e:
        msg = f"{who}: schema id {schema_id} in the registry is not a usable Avro schema: {e}"
        raise SerdeError(msg) from e
    if canonical == reader.canonical:
        return reader.parsed, None, payload_guard(reader.parsed)
    return writer, reader.parsed, payload_guard(writer)
