r"""Readable messages for Avro payloads and values that cannot be (de)serialized.

Each function returns the text of a :class:`~streamflow.serde.base.SerdeError`: what was
wrong, where (serde, topic, key or value, schema id) and a hex preview of the bytes.

>>> preview(b"\x01\x02\x03", n=2)
'01 02 ... (3 bytes)'
"""

from __future__ import annotations

import contextlib
import struct
from typing import Any

from fastavro.validation import validate as _fastavro_validate

from streamflow.serde import compat
from streamflow.serde.avro_schema import LoadedSchema

__all__ = ["header_problem", "preview", "read_problem", "write_problem"]


def header_problem(name: str, topic: str, side: str, data: Any) -> str:
    """Why ``data`` has no usable Confluent wire-format header."""
    head = f"{name} cannot deserialize a {side} from topic {topic!r}: "
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return head + f"expected bytes, got {type(data).__name__}"
    if len(data) < 5:
        return head + (f"only {len(data)} byte(s); Confluent wire format needs a 5-byte header "
                       f"(magic byte 0 + schema id): {preview(data)}")
    first = data[0]
    hint = ""
    if first in b"{[\"":
        hint = " (it looks like JSON: was it written with the Json serde?)"
    elif 0x20 <= first < 0x7F:
        hint = " (it looks like text: was it written with a non-registry serializer?)"
    return head + (f"first byte is 0x{first:02x}, expected magic byte 0x00 of Confluent wire "
                   f"format{hint}: {preview(data)}")


def read_problem(
    name: str, topic: str, side: str, data: Any, schema_id: int, e: Exception,
    writer: Any, reader: LoadedSchema,
) -> str:
    """Why the Avro payload ``data`` could not be decoded with its writer schema."""
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
            return head + detail + f": {preview(data)}\n" + compat.explain(issues)
    elif isinstance(e, (MemoryError, OverflowError, RecursionError)):
        detail = f"the bytes do not match the writer schema (absurd length or depth: {kind})"
    else:
        detail = f"the bytes do not match the writer schema ({kind}: {e})"
    return head + detail + f": {preview(data)}"


def write_problem(name: str, topic: str, parsed: Any, value: Any, e: Exception) -> str:
    """Why ``value`` does not fit the schema ``parsed``, field by field when fastavro says."""
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


def preview(data: Any, n: int = 24) -> str:
    """The first ``n`` bytes of ``data`` in hex, and its length."""
    b = bytes(data[:n])
    return b.hex(" ") + (" ..." if len(data) > n else "") + f" ({len(data)} bytes)"
