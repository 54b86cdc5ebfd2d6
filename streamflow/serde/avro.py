"""Avro values in Confluent wire format, with schemas held in a schema registry.

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
b'\\x00\\x00\\x00\\x00\\x01\\x0e'
>>> serde.deserializer("greetings", False, ctx)(data)
{'n': 7}
"""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form
from fastavro.validation import validate as _fastavro_validate

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
from streamflow.serde.base import (
    Deserializer,
    SerdeContext,
    SerdeError,
    SerdeUnavailable,
    Serializer,
)

__all__ = ["MAGIC_BYTE", "MAX_NESTING", "SUBJECT_STRATEGIES", "Avro"]

MAGIC_BYTE = 0
SUBJECT_STRATEGIES = ("topic", "record", "topic_record")
#: deepest nesting of complex values accepted when decoding recursive schemas (fastavro's
#: C decoder recurses per level and would overflow the C stack on hostile input)
MAX_NESTING = 400
#: most items accepted per payload in arrays whose items take no bytes (e.g. array<null>)
MAX_ZERO_WIDTH_ITEMS = 1_000_000

_HEADER = struct.Struct(">bI")
_REGISTER_HINT = "streamflow schemas register MODULE"


@dataclass(frozen=True)
class _Loaded:
    """A declared schema, loaded and parsed once."""

    schema: Any  # the JSON value, as in the .avsc
    schema_str: str  # the text registered in the registry
    parsed: Any  # fastavro's parsed form
    canonical: str  # Avro parsing canonical form
    fullname: str | None  # full name of a named (record/enum/fixed) schema
    source: str  # where it came from, for messages


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

    >>> Avro("schemas/payment.avsc").describe()
    'Avro(com.example.Payment)'
    >>> Avro("payment", subject_strategy="record").subject("payments", False)
    'com.example.Payment'
    """

    schema: str | Path | Mapping[str, Any] | list[Any]
    subject_strategy: str = field(default="topic", kw_only=True)
    auto_register: bool = field(default=True, kw_only=True)
    _cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.subject_strategy not in SUBJECT_STRATEGIES:
            raise ValueError(
                f"unknown subject_strategy {self.subject_strategy!r}; "
                f"use one of {', '.join(SUBJECT_STRATEGIES)}"
            )
        if not isinstance(self.schema, (str, Path, Mapping, list)):
            raise TypeError(
                "Avro(schema) takes a path to an .avsc, a schema dict, or a schema name; "
                f"got {type(self.schema).__name__}"
            )

    # -- identity ------------------------------------------------------------------------

    def _key(self) -> tuple[Any, ...]:
        s = self.schema
        spec = json.dumps(s, sort_keys=True) if isinstance(s, (Mapping, list)) else str(s)
        return (spec, self.subject_strategy, self.auto_register)

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
        s = self.schema
        shown = f"{str(s)!r}" if isinstance(s, (str, Path)) else "{...}"
        return f"Avro({shown}{opts})"

    def describe(self, ctx: SerdeContext | None = None) -> str:
        """``Avro(<full record name>)``, or ``Avro(<source>)`` if the schema can't be loaded."""
        try:
            loaded = self._load(ctx or SerdeContext())
        except SerdeError:
            return f"Avro({self.schema})" if isinstance(self.schema, (str, Path)) else "Avro(?)"
        return f"Avro({loaded.fullname or loaded.canonical})"

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
            raise SerdeError(
                f"subject_strategy={self.subject_strategy!r} needs a named schema (record, "
                f"enum or fixed), but {loaded.source} is {loaded.canonical}; use "
                "subject_strategy='topic'"
            )
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
                    raise SerdeError(
                        f"schema {what} (from {loaded.source}) is not registered under subject "
                        f"{subject!r} in the schema registry at {registry.url}, and "
                        f"auto_register is off; register it with `{_REGISTER_HINT}` "
                        "(or use Avro(..., auto_register=True))"
                    )
                found = registry.register(subject, loaded.schema_str)
                created = True
        except SchemaRejected as e:
            raise SerdeError(self._refusal(registry, subject, loaded, e)) from e
        except RegistryUnavailable as e:
            raise SerdeUnavailable(str(e), url=registry.url) from e
        except RegistryError as e:
            raise SerdeError(f"cannot register schema {what} under subject {subject!r}: {e}") from e
        self._cache[("id", subject)] = (raw, found.schema_id)
        return found, created

    def serializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Serializer:
        """Return the serializer; registers/verifies the schema now (see :meth:`prepare`)."""
        loaded = self._load(ctx)
        header = _HEADER.pack(MAGIC_BYTE, self.prepare(topic, is_key, ctx))
        parsed = loaded.parsed
        write = fastavro.schemaless_writer
        name = self.describe(ctx)

        def serialize(value: Any) -> bytes | None:
            if value is None:
                return None
            buf = BytesIO()
            buf.write(header)
            try:
                write(buf, parsed, value)
            except Exception as e:
                raise SerdeError(_write_problem(name, topic, parsed, value, e)) from e
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

        def resolve(schema_id: int) -> tuple[Any, Any, Callable[[Any], None] | None]:
            who = f"{name} cannot deserialize a {side} from topic {topic!r}"
            entry = _writer_entry(as_registry_client(ctx.registry()), schema_id, loaded, who)
            entries[schema_id] = entry
            return entry

        def problem(data: Any, schema_id: int, e: Exception) -> SerdeError:
            return SerdeError(_read_problem(name, topic, side, data, schema_id, e,
                                            entries[schema_id][0], loaded))

        def deserialize(data: bytes | None) -> Any:
            if data is None:
                return None
            try:
                magic, schema_id = unpack(data)
            except (struct.error, TypeError):
                raise SerdeError(_header_problem(name, topic, side, data)) from None
            if magic != MAGIC_BYTE:
                raise SerdeError(_header_problem(name, topic, side, data))
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
                raise SerdeError(
                    f"{name} cannot deserialize a {side} from topic {topic!r}: "
                    f"{len(data) - buf.tell()} unexpected byte(s) after the record (schema id "
                    f"{schema_id}; the bytes do not match the writer schema): {_preview(data)}"
                )
            return value

        return deserialize

    # -- loading -------------------------------------------------------------------------

    def _load(self, ctx: SerdeContext) -> _Loaded:
        key = ("schema", str(ctx.schemas_dir))
        hit = self._cache.get(key)
        if hit is not None:
            return hit  # type: ignore[no-any-return]
        schema, source = _locate(self.schema, Path(ctx.schemas_dir))
        loaded = _parse_declared(schema, source)
        self._cache[key] = loaded
        return loaded

    def _refusal(
        self, registry: RegistryClient, subject: str, loaded: _Loaded, e: RegistryError
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


# -- schema loading ----------------------------------------------------------------------


def _locate(spec: Any, schemas_dir: Path) -> tuple[Any, str]:
    """Find the schema JSON for ``spec``: (schema, description of its source)."""
    if isinstance(spec, (Mapping, list)):
        return spec, "an inline schema"
    text = str(spec)
    if isinstance(spec, str) and text.lstrip()[:1] in ("{", "[", '"'):
        try:
            return json.loads(text), "an inline schema"
        except ValueError as e:
            raise SerdeError(f"inline Avro schema is not valid JSON: {e}") from e
    if isinstance(spec, Path) or text.endswith((".avsc", ".json")) or "/" in text or "\\" in text:
        p = Path(text)
        tries = [p] if p.is_absolute() else [p, schemas_dir / p, schemas_dir.parent / p]
        for candidate in tries:
            if candidate.is_file():
                return _read_avsc(candidate), str(candidate)
        raise SerdeError(
            f"Avro schema file {text!r} not found (looked at "
            f"{', '.join(str(t) for t in dict.fromkeys(tries))})"
        )
    return _by_name(text, schemas_dir)


def _by_name(name: str, schemas_dir: Path) -> tuple[Any, str]:
    direct = schemas_dir / f"{name}.avsc"
    if direct.is_file():
        return _read_avsc(direct), str(direct)
    if not schemas_dir.is_dir():
        raise SerdeError(
            f"Avro schema {name!r} not found: schemas directory {schemas_dir} does not exist "
            "(set schemas_dir, or pass a path to the .avsc)"
        )
    files = sorted(schemas_dir.rglob("*.avsc"))
    full, short, stem = [], [], []
    for path in files:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        fullname = _fullname(data)
        if fullname == name:
            full.append((data, path))
        elif fullname is not None and fullname.rpartition(".")[2] == name:
            short.append((data, path))
        elif path.stem.lower() == name.lower():
            stem.append((data, path))
    for matches in (full, short, stem):
        if len(matches) == 1:
            return matches[0][0], str(matches[0][1])
        if len(matches) > 1:
            raise SerdeError(
                f"Avro schema name {name!r} is ambiguous in {schemas_dir}: "
                f"{', '.join(str(p) for _, p in matches)}; use the full name or a path"
            )
    known = ", ".join(sorted(filter(None, (_fullname_of(p) for p in files)))) or "none"
    raise SerdeError(
        f"Avro schema {name!r} not found in {schemas_dir} (no {name}.avsc, and no .avsc "
        f"defines that name; schemas there: {known})"
    )


def _fullname(data: Any) -> str | None:
    if not isinstance(data, Mapping) or data.get("type") not in ("record", "error", "enum",
                                                                  "fixed"):
        return None
    name = data.get("name")
    if not isinstance(name, str):
        return None
    ns = data.get("namespace")
    return name if "." in name or not ns else f"{ns}.{name}"


def _fullname_of(path: Path) -> str | None:
    try:
        return _fullname(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def _read_avsc(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise SerdeError(f"cannot read Avro schema file {path}: {e}") from e
    except ValueError as e:
        raise SerdeError(f"Avro schema file {path} is not valid JSON: {e}") from e


def _parse_declared(schema: Any, source: str) -> _Loaded:
    try:
        parsed = fastavro.parse_schema(schema)
        canonical = to_parsing_canonical_form(parsed)
    except Exception as e:  # fastavro: SchemaParseException, UnknownType, ValueError, ...
        raise SerdeError(f"invalid Avro schema in {source}: {e}") from e
    fullname = parsed.get("name") if isinstance(parsed, dict) and parsed.get("type") in (
        "record", "error", "enum", "fixed") else None
    return _Loaded(schema=schema, schema_str=json.dumps(schema, separators=(",", ":")),
                   parsed=parsed, canonical=canonical, fullname=fullname, source=source)


# -- decoding support --------------------------------------------------------------------


def _writer_entry(
    registry: RegistryClient, schema_id: int, reader: _Loaded, who: str
) -> tuple[Any, Any, Callable[[Any], None] | None]:
    """(writer schema, reader schema or None when identical, guard) for ``schema_id``."""
    try:
        text = registry.schema_by_id(schema_id)
    except SchemaNotFound as e:
        raise SerdeError(
            f"{who}: unknown schema id {schema_id}: the schema registry at {registry.url} has "
            "no schema with that id (written against another registry, or not Avro in "
            "Confluent wire format?)"
        ) from e
    except RegistryUnavailable as e:
        raise SerdeUnavailable(
            f"{who} yet: its writer schema (id {schema_id}) must be fetched, and {e}",
            url=registry.url,
        ) from e
    except RegistryError as e:
        raise SerdeError(f"{who}: cannot fetch writer schema id {schema_id}: {e}") from e
    try:
        writer = fastavro.parse_schema(json.loads(text))
        canonical = to_parsing_canonical_form(writer)
    except Exception as e:
        raise SerdeError(
            f"{who}: schema id {schema_id} in the registry is not a usable Avro schema: {e}"
        ) from e
    if canonical == reader.canonical:
        return reader.parsed, None, _guard(reader.parsed)
    return writer, reader.parsed, _guard(writer)


def _header_problem(name: str, topic: str, side: str, data: Any) -> str:
    head = f"{name} cannot deserialize a {side} from topic {topic!r}: "
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return head + f"expected bytes, got {type(data).__name__}"
    if len(data) < 5:
        return head + (f"only {len(data)} byte(s); Confluent wire format needs a 5-byte header "
                       f"(magic byte 0 + schema id): {_preview(data)}")
    first = data[0]
    hint = ""
    if first in b"{[\"":
        hint = " (it looks like JSON: was it written with the Json serde?)"
    elif 0x20 <= first < 0x7F:
        hint = " (it looks like text: was it written with a non-registry serializer?)"
    return head + (f"first byte is 0x{first:02x}, expected magic byte 0x00 of Confluent wire "
                   f"format{hint}: {_preview(data)}")


def _read_problem(
    name: str, topic: str, side: str, data: Any, schema_id: int, e: Exception,
    writer: Any, reader: _Loaded,
) -> str:
    head = f"{name} cannot deserialize a {side} from topic {topic!r} (writer schema id " \
           f"{schema_id}): "
    kind = type(e).__name__
    if isinstance(e, (EOFError, struct.error, IndexError)):
        detail = "the payload is truncated or corrupt (it ended while decoding)"
    elif isinstance(e, UnicodeDecodeError):
        detail = "a string field holds invalid UTF-8, so the bytes are corrupt"
    elif kind == "SchemaResolutionError":
        issues: list[compat.Incompatibility] = []
        with contextlib.suppress(ValueError):
            issues = compat.can_read(reader.schema, writer)
        detail = f"the writer schema cannot be resolved to {reader.fullname or 'the reader'}: {e}"
        if issues:
            return head + detail + f": {_preview(data)}\n" + compat.explain(issues)
    elif isinstance(e, (MemoryError, OverflowError, RecursionError)):
        detail = f"the bytes do not match the writer schema (absurd length or depth: {kind})"
    else:
        detail = f"the bytes do not match the writer schema ({kind}: {e})"
    return head + detail + f": {_preview(data)}"


def _write_problem(name: str, topic: str, parsed: Any, value: Any, e: Exception) -> str:
    detail = f"{type(e).__name__}: {e}"
    try:
        _fastavro_validate(value, parsed, raise_errors=True)
    except Exception as v:  # fastavro's ValidationError lists the failing fields
        errors = getattr(v, "errors", None)
        if errors:
            detail = "; ".join(_field_problem(err) for err in errors[:5])
    return f"{name} cannot serialize a value for topic {topic!r}: {detail}; value: {value!r:.200}"


def _field_problem(err: Any) -> str:
    where = getattr(err, "field", None) or "the value"
    expected = _type_name(getattr(err, "schema", None))
    datum = getattr(err, "datum", None)
    if datum is None:
        return f"{where} is missing or None, expected {expected}"
    return f"{where} is {type(datum).__name__} {datum!r:.60}, expected {expected}"


def _type_name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "one of [" + ", ".join(_type_name(s) for s in schema) + "]"
    if isinstance(schema, dict):
        base = str(schema.get("name") or schema.get("type"))
        logical = schema.get("logicalType")
        return f"{base} ({logical})" if logical else base
    return repr(schema)


def _preview(data: Any, n: int = 24) -> str:
    b = bytes(data[:n])
    return b.hex(" ") + (" ..." if len(data) > n else "") + f" ({len(data)} bytes)"


# -- guarding fastavro against hostile input ---------------------------------------------
#
# fastavro's decoder trusts counts and recurses in C. Two inputs break it: a huge block
# count for an array whose items take no bytes (array<null>: allocates forever), and a very
# deep value of a recursive schema (overflows the C stack: a crash, not an exception). For
# schemas that allow either, a Python walker checks the payload first. Other schemas
# (nearly all) take no extra work.


def _guard(parsed: Any) -> Callable[[Any], None] | None:
    named: dict[str, Any] = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
    info = _Shape(named)
    info.visit(parsed)
    if not info.zero_width_arrays and not info.recursive:
        return None
    threshold = MAX_NESTING // max(1, info.complex_nodes)
    always = info.zero_width_arrays

    def check(data: Any) -> None:
        if always or len(data) - 5 > threshold:
            _Walker(named, bytes(data)).run(parsed)

    return check


class _Shape:
    """Finds zero-width-item arrays and recursion in a parsed schema."""

    def __init__(self, named: dict[str, Any]) -> None:
        self.named = named
        self.zero_width_arrays = False
        self.recursive = False
        self.complex_nodes = 0
        self._stack: list[str] = []
        self._done: set[str] = set()

    def visit(self, s: Any) -> None:
        if isinstance(s, str):
            if s in self.named:
                if s in self._stack:
                    self.recursive = True
                elif s not in self._done:
                    self.visit(self.named[s])
            return
        if isinstance(s, list):
            self.complex_nodes += 1
            for b in s:
                self.visit(b)
            return
        t = s.get("type")
        if isinstance(t, (dict, list)):
            self.visit(t)
            return
        if t in ("record", "error", "enum", "fixed"):
            self._stack.append(s["name"])
            if t in ("record", "error"):
                self.complex_nodes += 1
                for f in s.get("fields", ()):
                    self.visit(f["type"])
            self._stack.pop()
            self._done.add(s["name"])
        elif t == "array":
            self.complex_nodes += 1
            if _zero_width(s["items"], self.named, set()):
                self.zero_width_arrays = True
            self.visit(s["items"])
        elif t == "map":
            self.complex_nodes += 1
            self.visit(s["values"])
        elif isinstance(t, str) and t in self.named:
            self.visit(t)


def _zero_width(s: Any, named: dict[str, Any], seen: set[str]) -> bool:
    if isinstance(s, str):
        if s == "null":
            return True
        if s in named and s not in seen:
            return _zero_width(named[s], named, seen | {s})
        return False
    if isinstance(s, list):
        return False  # the branch index takes a byte
    t = s.get("type")
    if isinstance(t, (dict, list)):
        return _zero_width(t, named, seen)
    if t == "null":
        return True
    if t == "fixed":
        return int(s.get("size", 1)) == 0
    if t in ("record", "error"):
        name = s.get("name", "")
        return name not in seen and all(
            _zero_width(f["type"], named, seen | {name}) for f in s.get("fields", ())
        )
    if isinstance(t, str) and t in named:
        return _zero_width(t, named, seen)
    return False


class _Walker:
    """Skips over an Avro payload, enforcing MAX_NESTING and MAX_ZERO_WIDTH_ITEMS."""

    _SIZES = {"null": 0, "boolean": 1, "float": 4, "double": 8}

    def __init__(self, named: dict[str, Any], data: bytes) -> None:
        self.named = named
        self.data = data
        self.pos = 5
        self.zero_items = 0

    def run(self, schema: Any) -> None:
        self.skip(schema, 0)

    def fail(self, why: str) -> SerdeError:
        return SerdeError(f"rejected payload: {why} (at byte {self.pos}): {_preview(self.data)}")

    def long(self) -> int:
        data, pos, shift, acc = self.data, self.pos, 0, 0
        while True:
            if pos >= len(data):
                raise self.fail("payload truncated inside a number")
            b = data[pos]
            pos += 1
            acc |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 63:
                raise self.fail("malformed variable-length number")
        self.pos = pos
        return (acc >> 1) ^ -(acc & 1)

    def advance(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"length {n} exceeds the payload")
        self.pos += n

    def skip(self, s: Any, depth: int) -> None:
        if depth > MAX_NESTING:
            raise self.fail(f"value nested deeper than {MAX_NESTING} levels")
        if isinstance(s, list):
            index = self.long()
            if not 0 <= index < len(s):
                raise self.fail(f"union branch {index} out of range")
            self.skip(s[index], depth + 1)
            return
        t = s.get("type") if isinstance(s, dict) else s
        if isinstance(t, (dict, list)):
            self.skip(t, depth)
            return
        if t in self._SIZES:
            self.advance(self._SIZES[t])
        elif t in ("int", "long", "enum"):
            self.long()
        elif t in ("bytes", "string"):
            self.advance(self.long())
        elif t == "fixed":
            self.advance(int(s["size"]))
        elif t in ("record", "error"):
            for f in s.get("fields", ()):
                self.skip(f["type"], depth + 1)
        elif t in ("array", "map"):
            self.blocks(s, t, depth)
        elif t in self.named:
            self.skip(self.named[t], depth)
        else:
            raise self.fail(f"unknown type {t!r}")

    def blocks(self, s: Any, t: str, depth: int) -> None:
        inner = s["items"] if t == "array" else s["values"]
        zero = t == "array" and _zero_width(inner, self.named, set())
        while True:
            count = self.long()
            if count == 0:
                return
            if count < 0:
                count = -count
                self.long()  # block size in bytes
            if zero:
                self.zero_items += count
                if self.zero_items > MAX_ZERO_WIDTH_ITEMS:
                    raise self.fail(f"more than {MAX_ZERO_WIDTH_ITEMS} items of a zero-size type")
                continue
            if count > len(self.data) - self.pos:
                raise self.fail(f"block of {count} items exceeds the payload")
            for _ in range(count):
                if t == "map":
                    self.advance(self.long())
                self.skip(inner, depth + 1)
