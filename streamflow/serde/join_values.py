r"""The stored values of a stream-stream join given serdes.

``value_serde=`` and ``other_value_serde=``, as Kafka Streams' ``StreamJoined.with(keySerde,
valueSerde, otherValueSerde)``. A join keeps, per key and timestamp, the list of the
records' values (``ValueList``, the ``inner`` of the side's ``WindowValueSerde``), and for
left and outer joins the records still without a partner, by (timestamp, side, key), with
the join's stream time (``Unmatched``).
Without serdes both are JSON; with them:

* ``ValueList(inner)``: the count is implied; per value a 4-byte big-endian length
  (``0xFFFFFFFF``: None) and the inner serde's bytes;
* ``UnmatchedSerde(left, right)``: ``0x00`` + 8 bytes for a time (an ``int``), ``0x01`` + the
  side byte + a ``ValueList`` of that side's serde for a ``SideValues``. A value starting
  with neither byte is JSON, as written before the serdes were given (JSON never starts with
  either), so adding serdes to a running join keeps its state readable. The right side's
  serde is bound to ``<topic>-right`` (``UnmatchedSerde.parts``): a schema-registry serde
  then writes each side's schema under a subject of its own, where one subject holding two
  unrelated record schemas would be refused by a registry checking compatibility.

>>> from streamflow.serde import Json, SerdeContext, String
>>> ctx = SerdeContext()
>>> lst = ValueList(String())
>>> lst.serializer("t", False, ctx)(["a", None, "bc"])
b'\x00\x00\x00\x01a\xff\xff\xff\xff\x00\x00\x00\x02bc'
>>> lst.deserializer("t", False, ctx)(lst.serializer("t", False, ctx)(["a", None, "bc"]))
['a', None, 'bc']
>>> un = UnmatchedSerde(String(), Json())
>>> de, ser = un.deserializer("t", False, ctx), un.serializer("t", False, ctx)
>>> de(ser(SideValues(1, [{"n": 1}]))), de(ser(1_700_000_000_000)), de(b'[{"n":2}]')
(SideValues(side=1, values=[{'n': 1}]), 1700000000000, [{'n': 2}])
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from streamflow.serde.base import Deserializer, Serde, SerdeContext, SerdeError, Serializer
from streamflow.serde.simple import Json

__all__ = ["SideValues", "UnmatchedSerde", "ValueList"]

_LEN = struct.Struct(">I")
_TS = struct.Struct(">q")
_NONE = 0xFFFFFFFF
_TIME, _VALUES = 0, 1


class SideValues(NamedTuple):
    """Records of one side without a partner yet (``side`` 0: left, 1: right)."""

    side: int
    values: list[Any]


@dataclass(frozen=True)
class ValueList:
    """A list of values, each through ``inner``."""

    inner: Serde

    def serializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Serializer:
        """``[value, ...]`` -> bytes."""
        encode = self.inner.serializer(topic, is_key, ctx)
        pack = _LEN.pack

        def serialize(values: Any) -> bytes | None:
            if values is None:
                return None
            parts = []
            for v in values:
                b = None if v is None else encode(v)
                if b is None:
                    parts.append(pack(_NONE))
                else:
                    parts += (pack(len(b)), b)
            return b"".join(parts)

        return serialize

    def deserializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Deserializer:
        """Bytes -> ``[value, ...]``."""
        decode = self.inner.deserializer(topic, is_key, ctx)
        unpack = _LEN.unpack_from

        def deserialize(data: bytes | None) -> Any:
            if data is None:
                return None
            out: list[Any] = []
            pos, end = 0, len(data)
            while pos < end:
                (n,) = unpack(data, pos)
                pos += 4
                if n == _NONE:
                    out.append(None)
                    continue
                out.append(decode(data[pos:pos + n]))
                pos += n
            return out

        return deserialize

    def describe(self) -> str:
        """e.g. ``List(Avro(payment))``."""
        return f"List({self.inner.describe()})"


@dataclass(frozen=True)
class UnmatchedSerde:
    """The store of a left or outer join's records without a partner, given serdes."""

    left: Serde | None
    right: Serde | None

    def parts(self, topic: str) -> tuple[tuple[str, Serde], tuple[str, Serde]]:
        """``(topic, serde)`` each side's values are bound to: ``topic`` and ``topic-right``.

        >>> UnmatchedSerde(None, Json()).parts("j-unmatched-changelog")[1][0]
        'j-unmatched-changelog-right'
        """
        return (topic, self.left or Json()), (f"{topic}-right", self.right or Json())

    def serializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Serializer:
        """A time (``int``) or a ``SideValues`` -> bytes."""
        lists = [ValueList(s).serializer(t, is_key, ctx) for t, s in self.parts(topic)]
        pack_ts = _TS.pack

        def serialize(value: Any) -> bytes | None:
            if value is None:
                return None
            if type(value) is int:
                return bytes((_TIME,)) + pack_ts(value)
            if isinstance(value, SideValues):
                return bytes((_VALUES, value.side)) + (lists[value.side](value.values) or b"")
            msg = f"not a join's unmatched records or time: {type(value).__name__}"
            raise SerdeError(msg)

        return serialize

    def deserializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Deserializer:
        """Bytes -> a time (``int``) or a ``SideValues``; JSON as written without serdes."""
        lists = [ValueList(s).deserializer(t, is_key, ctx) for t, s in self.parts(topic)]
        unpack_ts = _TS.unpack_from

        def deserialize(data: bytes | None) -> Any:
            if data is None:
                return None
            kind = data[0] if data else None
            if kind == _TIME:
                return unpack_ts(data, 1)[0]
            if kind == _VALUES:
                side = data[1]
                return SideValues(side, lists[side](data[2:]))
            return orjson.loads(data)

        return deserialize

    def describe(self) -> str:
        """e.g. ``Unmatched(Avro(order), Json)``."""
        return f"Unmatched({(self.left or Json()).describe()}, {(self.right or Json()).describe()})"
