r"""How a table's store keeps the rows of the topic it reads: with the topic's own value serde.

``topology.table(topic)`` materializes the topic in a store with a changelog. Its rows are the
topic's values, so the store encodes them as the topic does (Kafka Streams' source tables
inherit the topic's serdes): Avro decimals, timestamps and bytes, ``Json(model)`` instances and
encrypted fields come back from a restore as they went in, and an encrypted field stays
encrypted in the changelog. ``StoredAs(serde)`` marks each value with a ``0xFE`` byte before
the serde's bytes; a value without the mark is JSON, as stores wrote before (JSON text never
starts with ``0xFE``), so existing state stays readable.

>>> from streamflow.serde import SerdeContext, String
>>> s = StoredAs(String())
>>> s.serializer("t", False, SerdeContext())("abc")
b'\xfeabc'
>>> de = s.deserializer("t", False, SerdeContext())
>>> de(b'\xfeabc'), de(b'"abc"')
('abc', 'abc')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from streamflow.serde.base import Deserializer, Serde, SerdeContext, SerdeError, Serializer
from streamflow.serde.simple import Json

__all__ = ["StoredAs", "kept_serde", "row_serde"]

_MARK = b"\xfe"


@dataclass(frozen=True)
class StoredAs:
    """``inner``'s bytes after a mark; unmarked bytes are read as JSON."""

    inner: Serde

    def serializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Serializer:
        """Value -> ``0xFE`` + ``inner``'s bytes."""
        encode = self.inner.serializer(topic, is_key, ctx)

        def serialize(value: Any) -> bytes | None:
            if value is None:
                return None
            data = encode(value)
            return None if data is None else _MARK + data

        return serialize

    def deserializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Deserializer:
        """Marked bytes through ``inner``; others as JSON (rows written before)."""
        decode = self.inner.deserializer(topic, is_key, ctx)
        loads = orjson.loads
        name = self.describe()

        def deserialize(data: bytes | None) -> Any:
            if data is None:
                return None
            if data[:1] == _MARK:
                return decode(data[1:])
            try:
                return loads(data)
            except orjson.JSONDecodeError as e:
                msg = f"{name} cannot read the stored row {bytes(data[:40])!r}: {e}"
                raise SerdeError(msg) from e

        return deserialize

    def describe(self) -> str:
        """The inner serde's name."""
        return self.inner.describe()


def kept_serde(value_serde: Serde | None) -> Serde | None:
    """The serde that keeps values a topic encodes with ``value_serde``.

    None when that is plain JSON, what streamflow keeps values as anyway. A schema-registry
    serde writes under the store's or internal topic's own subject (``<changelog>-value``):
    registered by the first write, or with ``auto_register=False`` by ``streamflow schemas
    register``, which lists those subjects too (:mod:`streamflow.ops.subjects`).
    """
    if isinstance(value_serde, StoredAs):
        return value_serde.inner
    if value_serde is None or (type(value_serde) is Json and value_serde.model is None
                               and not value_serde.encrypt):
        return None
    return value_serde


def row_serde(value_serde: Serde | None) -> Serde | None:
    """The store (or internal topic) serde for values a topic encodes with ``value_serde``.

    ``StoredAs`` it, or None for JSON (byte for byte what was kept before).
    """
    kept = kept_serde(value_serde)
    return None if kept is None else StoredAs(kept)
