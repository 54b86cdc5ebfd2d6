"""Primitive serdes, byte-compatible with Kafka's Java serializers, and JSON (orjson)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import orjson

from streamflow.serde.base import Deserializer, SerdeContext, SerdeError, Serializer


def _codec(
    name: str, enc: Any, dec: Any, *, encode_types: tuple[type, ...] | None = None
) -> tuple[Serializer, Deserializer]:
    def serialize(value: Any) -> bytes | None:
        if value is None:
            return None
        # bool is an int subclass, but True in an Int/Long/Double topic is a bug, not a 1
        if encode_types is not None and (
            type(value) is bool or not isinstance(value, encode_types)
        ):
            msg = f"{name} cannot serialize {type(value).__name__}: {value!r:.80}"
            raise SerdeError(msg)
        try:
            return enc(value)  # type: ignore[no-any-return]
        except (TypeError, ValueError, struct.error, UnicodeError, orjson.JSONEncodeError) as e:
            msg = f"{name} cannot serialize {value!r:.80}: {e}"
            raise SerdeError(msg) from e

    def deserialize(data: bytes | None) -> Any:
        if data is None:
            return None
        try:
            return dec(data)
        except (TypeError, ValueError, struct.error, UnicodeError, orjson.JSONDecodeError) as e:
            msg = f"{name} cannot deserialize {bytes(data[:40])!r}: {e}"
            raise SerdeError(msg) from e

    return serialize, deserialize


class _Simple:
    _name = "?"

    def _pair(self) -> tuple[Serializer, Deserializer]:
        raise NotImplementedError

    def serializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Serializer:
        """Return the serializer for this topic."""
        return self._pair()[0]

    def deserializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Deserializer:
        """Return the deserializer for this topic."""
        return self._pair()[1]

    def describe(self) -> str:
        """Return the serde's name."""
        return self._name

    def __repr__(self) -> str:
        return f"{self._name}()"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash(type(self))


@dataclass(frozen=True, eq=False, repr=False)
class String(_Simple):
    r"""UTF-8 text, as Kafka's ``StringSerializer``.

    >>> String().serializer("t", False, SerdeContext())("hé")
    b'h\xc3\xa9'
    """

    encoding: str = "utf-8"
    _name = "String"

    def _pair(self) -> tuple[Serializer, Deserializer]:
        # hand-written rather than through _codec: keys go through here twice per record
        enc = self.encoding

        def serialize(value: Any) -> bytes | None:
            if value is None:
                return None
            if value.__class__ is str:
                try:
                    return value.encode(enc)
                except UnicodeError as e:
                    msg = f"String cannot serialize {value!r:.80}: {e}"
                    raise SerdeError(msg) from e
            if isinstance(value, str):
                return str(value).encode(enc)
            msg = f"String cannot serialize {type(value).__name__}: {value!r:.80}"
            raise SerdeError(msg)

        def deserialize(data: bytes | None) -> Any:
            if data is None:
                return None
            try:
                return str(data, enc)
            except (UnicodeError, TypeError) as e:
                msg = f"String cannot deserialize {bytes(data[:40])!r}: {e}"
                raise SerdeError(msg) from e

        return serialize, deserialize


@dataclass(frozen=True, eq=False, repr=False)
class Bytes(_Simple):
    """Raw bytes, unchanged."""

    _name = "Bytes"

    def _pair(self) -> tuple[Serializer, Deserializer]:
        return _codec("Bytes", bytes, bytes, encode_types=(bytes, bytearray, memoryview))


def _fixed(name: str, fmt: str, types: tuple[type, ...]) -> tuple[Serializer, Deserializer]:
    st = struct.Struct(fmt)

    def dec(b: bytes) -> Any:
        if len(b) != st.size:
            msg = f"{name} expects {st.size} bytes, got {len(b)}"
            raise SerdeError(msg)
        return st.unpack(b)[0]

    return _codec(name, st.pack, dec, encode_types=types)


@dataclass(frozen=True, eq=False, repr=False)
class Int(_Simple):
    """32-bit signed big-endian integer, as Kafka's ``IntegerSerializer``."""

    _name = "Int"

    def _pair(self) -> tuple[Serializer, Deserializer]:
        return _fixed("Int", ">i", (int,))


@dataclass(frozen=True, eq=False, repr=False)
class Long(_Simple):
    """64-bit signed big-endian integer, as Kafka's ``LongSerializer``."""

    _name = "Long"

    def _pair(self) -> tuple[Serializer, Deserializer]:
        return _fixed("Long", ">q", (int,))


@dataclass(frozen=True, eq=False, repr=False)
class Double(_Simple):
    """IEEE-754 64-bit big-endian float, as Kafka's ``DoubleSerializer``."""

    _name = "Double"

    def _pair(self) -> tuple[Serializer, Deserializer]:
        return _fixed("Double", ">d", (float, int))


@dataclass(frozen=True, eq=False, repr=False)
class Json(_Simple):
    """JSON via orjson: dicts, lists, strings, numbers, booleans.

    >>> Json().deserializer("t", False, SerdeContext())(b'{"a":1}')
    {'a': 1}
    """

    _name = "Json"

    def _pair(self) -> tuple[Serializer, Deserializer]:
        return _codec("Json", orjson.dumps, orjson.loads)
