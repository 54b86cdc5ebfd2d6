"""Primitive serdes, byte-compatible with Kafka's Java serializers, and JSON (orjson)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import orjson

from streamflow.serde.base import Deserializer, SerdeContext, SerdeError, Serializer
from streamflow.serde.encryption import FieldCrypter, encrypt_fields, key_ring
from streamflow.serde.models import is_pydantic, model_codec


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
    """JSON via orjson: dicts, lists, strings, numbers, booleans; or typed values.

    >>> Json().deserializer("t", False, SerdeContext())(b'{"a":1}')
    {'a': 1}

    With a model (a dataclass or a pydantic model class), records decode into instances and
    only instances encode; data that does not fit the model is a :class:`SerdeError` naming
    the fields (dead-lettered or skipped like any undecodable record):

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Reading:
    ...     device: str
    ...     celsius: float
    >>> Json(Reading).deserializer("t", False, SerdeContext())(b'{"device":"d1","celsius":21.5}')
    Reading(device='d1', celsius=21.5)
    >>> Json(Reading).serializer("t", False, SerdeContext())(Reading("d2", 19.0))
    b'{"device":"d2","celsius":19.0}'
    >>> Json(Reading).deserializer("t", False, SerdeContext())(b'{"device":"d1"}')
    Traceback (most recent call last):
    ...
    streamflow.serde.base.SerdeError: Json(Reading) cannot deserialize b'{"device":"d1"}': \
does not fit Reading: missing celsius

    ``encrypt`` names top-level fields to encrypt (AES-256-GCM, see
    :mod:`streamflow.serde.encryption`): any JSON value, held as a text envelope. With a
    model, a processor without the key sees the envelope text in those fields, so type them
    ``str`` there (or read without a model).
    """

    model: Any = None
    encrypt: tuple[str, ...] = field(default=(), kw_only=True)
    _name = "Json"

    def __post_init__(self) -> None:
        if self.model is not None:
            model_codec(self.model, json=True)  # TypeError now, not at the first record
        object.__setattr__(self, "encrypt", encrypt_fields(self.encrypt, "Json"))

    def describe(self) -> str:
        """``Json``, ``Json(Model)`` for typed values, then any encrypted fields."""
        args = [] if self.model is None else [self.model.__name__]
        if self.encrypt:
            args.append(f"encrypted: {', '.join(self.encrypt)}")
        return f"Json({', '.join(args)})" if args else "Json"

    def __repr__(self) -> str:
        args = [] if self.model is None else [self.model.__name__]
        if self.encrypt:
            args.append(f"encrypt={list(self.encrypt)!r}")
        return f"Json({', '.join(args)})"

    def serializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Serializer:
        """Return the serializer (encrypting the ``encrypt`` fields with ``ctx.keys``)."""
        if not self.encrypt:
            return self._pair()[0]
        seal = self._crypter(topic, ctx).seal
        to_data = model_codec(self.model, json=True).to_data if self.model is not None else None
        name = self.describe()

        def serialize(value: Any) -> bytes | None:
            if value is None:
                return None
            try:
                data = value if to_data is None else to_data(value)
            except SerdeError as e:
                msg = f"{name} cannot serialize {value!r:.80}: {e}"
                raise SerdeError(msg) from e
            try:
                return orjson.dumps(seal(data))
            except (TypeError, orjson.JSONEncodeError) as e:
                msg = f"{name} cannot serialize {value!r:.80}: {e}"
                raise SerdeError(msg) from e

        return serialize

    def deserializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Deserializer:
        """Return the deserializer (decrypting the ``encrypt`` fields with ``ctx.keys``)."""
        if not self.encrypt:
            return self._pair()[1]
        unseal = self._crypter(topic, ctx).open
        from_data = model_codec(self.model, json=True).from_data if self.model else None
        name = self.describe()

        def deserialize(data: bytes | None) -> Any:
            if data is None:
                return None
            try:
                value = unseal(orjson.loads(data))
            except (orjson.JSONDecodeError, UnicodeError) as e:
                msg = f"{name} cannot deserialize {bytes(data[:40])!r}: {e}"
                raise SerdeError(msg) from e
            if from_data is None:
                return value
            try:
                return from_data(value)
            except SerdeError as e:
                msg = f"{name} cannot deserialize {bytes(data[:40])!r}: {e}"
                raise SerdeError(msg) from e

        return deserialize

    def _crypter(self, topic: str, ctx: SerdeContext) -> FieldCrypter:
        return FieldCrypter(dict.fromkeys(self.encrypt, "json"), key_ring(ctx),
                            f"{self.describe()} on topic {topic!r}")

    def _pair(self) -> tuple[Serializer, Deserializer]:
        if self.model is None:
            return _codec("Json", orjson.dumps, orjson.loads)
        codec = model_codec(self.model, json=True)
        name = self.describe()
        to_data, from_data = codec.to_data, codec.from_data
        native = not is_pydantic(self.model)  # orjson writes dataclasses itself

        def serialize(value: Any) -> bytes | None:
            if value is None:
                return None
            try:
                if native:
                    if not isinstance(value, self.model):
                        to_data(value)  # raises, naming the expected class
                    return orjson.dumps(value)
                return orjson.dumps(to_data(value))
            except (SerdeError, TypeError, orjson.JSONEncodeError) as e:
                msg = f"{name} cannot serialize {value!r:.80}: {e}"
                raise SerdeError(msg) from e

        def deserialize(data: bytes | None) -> Any:
            if data is None:
                return None
            try:
                return from_data(orjson.loads(data))
            except (SerdeError, orjson.JSONDecodeError, UnicodeError) as e:
                msg = f"{name} cannot deserialize {bytes(data[:40])!r}: {e}"
                raise SerdeError(msg) from e

        return serialize, deserialize
