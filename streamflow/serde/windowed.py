"""Serdes for ``Windowed`` keys, byte-compatible with Kafka Streams' windowed serdes.

* ``TimeWindowedSerde(inner, window_size=...)``: inner key bytes + the window start as an
  8-byte big-endian long (Kafka's ``TimeWindowedSerializer`` / ``WindowKeySchema.toBinary``).
  The end is not on the wire: the deserializer derives it as ``start + window_size``.
* ``SessionWindowedSerde(inner)``: inner key bytes + the session end + the session start, both
  8-byte big-endian longs (Kafka's ``SessionWindowedSerializer`` /
  ``SessionKeySchema.toBinary``: end first, then start).

>>> from streamflow.serde import String, SerdeContext
>>> from streamflow.windows import Windowed
>>> ser = TimeWindowedSerde(String(), window_size=60_000).serializer("t", True, SerdeContext())
>>> ser(Windowed("a", 60_000, 120_000)).hex()
'61000000000000ea60'
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson

from streamflow.serde.base import Deserializer, Serde, SerdeContext, SerdeError, Serializer
from streamflow.serde.simple import Json
from streamflow.windows import Windowed, to_ms

_LONG = struct.Struct(">q")
_TWO_LONGS = struct.Struct(">qq")
_MAX_LONG = (1 << 63) - 1
_TS = _LONG


def _check(value: Any, what: str) -> Windowed:
    if not isinstance(value, Windowed):
        raise SerdeError(
            f"{what} serializes Windowed keys (the output of a windowed aggregation), got "
            f"{type(value).__name__}: {value!r:.80}"
        )
    return value


@dataclass(frozen=True, init=False)
class TimeWindowedSerde:
    """Kafka Streams' time-windowed key format: ``inner(key) + start (8 bytes, big-endian)``.

    ``window_size`` (ms or timedelta) gives the ``end`` of deserialized keys
    (``start + window_size``, capped at the largest long as Kafka does); use the window size
    of the tumbling, hopping or sliding spec that produced the keys.
    """

    inner: Serde
    window_size: int

    def __init__(self, inner: Serde, *, window_size: int | timedelta) -> None:
        object.__setattr__(self, "inner", inner)
        object.__setattr__(self, "window_size", to_ms("TimeWindowedSerde window_size",
                                                      window_size))

    def serializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Serializer:
        """``Windowed`` -> inner key bytes + start."""
        inner = self.inner.serializer(topic, is_key, ctx)
        pack = _LONG.pack

        def serialize(w: Any) -> bytes | None:
            if w is None:
                return None
            w = _check(w, "TimeWindowedSerde")
            kb = inner(w.key)
            return (kb or b"") + pack(w.start)

        return serialize

    def deserializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Deserializer:
        """Inner key bytes + start -> ``Windowed(key, start, start + window_size)``."""
        inner = self.inner.deserializer(topic, is_key, ctx)
        size = self.window_size
        unpack = _LONG.unpack_from

        def deserialize(data: bytes | None) -> Any:
            if data is None:
                return None
            if len(data) < 8:
                raise SerdeError(f"a time-windowed key has at least 8 bytes, got {len(data)}")
            start = unpack(data, len(data) - 8)[0]
            end = start + size
            return Windowed(inner(bytes(data[:-8])), start, _MAX_LONG if end > _MAX_LONG else end)

        return deserialize

    def describe(self) -> str:
        """e.g. ``TimeWindowed(String, size=60000ms)``."""
        return f"TimeWindowed({self.inner.describe()}, size={self.window_size}ms)"


@dataclass(frozen=True)
class SessionWindowedSerde:
    """Kafka Streams' session-windowed key format:
    ``inner(key) + end (8 bytes) + start (8 bytes)``, big-endian."""

    inner: Serde

    def serializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Serializer:
        """``Windowed`` -> inner key bytes + end + start."""
        inner = self.inner.serializer(topic, is_key, ctx)
        pack = _TWO_LONGS.pack

        def serialize(w: Any) -> bytes | None:
            if w is None:
                return None
            w = _check(w, "SessionWindowedSerde")
            kb = inner(w.key)
            return (kb or b"") + pack(w.end, w.start)

        return serialize

    def deserializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Deserializer:
        """Inner key bytes + end + start -> ``Windowed(key, start, end)``."""
        inner = self.inner.deserializer(topic, is_key, ctx)
        unpack = _TWO_LONGS.unpack_from

        def deserialize(data: bytes | None) -> Any:
            if data is None:
                return None
            if len(data) < 16:
                raise SerdeError(f"a session-windowed key has at least 16 bytes, got {len(data)}")
            end, start = unpack(data, len(data) - 16)
            return Windowed(inner(bytes(data[:-16])), start, end)

        return deserialize

    def describe(self) -> str:
        """e.g. ``SessionWindowed(String)``."""
        return f"SessionWindowed({self.inner.describe()})"


@dataclass(frozen=True)
class WindowValueSerde:
    """The values of window stores (internal): a cell ``[aggregate, max_ts]`` as 1 tag byte
    (1 = an aggregate follows, 0 = it is None), ``max_ts`` (8 bytes, big-endian) and
    ``inner(aggregate)`` (JSON unless the aggregation names a ``value_serde``)."""

    inner: Serde | None = None

    def serializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Serializer:
        """``[aggregate, max_ts]`` -> tag + max_ts + inner(aggregate)."""
        inner_serde = self.inner or Json()
        inner = orjson.dumps if type(inner_serde) is Json else inner_serde.serializer(
            topic, is_key, ctx)
        pack = _TS.pack

        def serialize(cell: Any) -> bytes | None:
            if cell is None:
                return None
            agg = cell[0]
            ts = cell[1]
            if agg is None:
                return b"\x00" + pack(ts)
            try:
                return b"\x01" + pack(ts) + (inner(agg) or b"")
            except orjson.JSONEncodeError as e:
                raise SerdeError(
                    f"window aggregate {agg!r:.80} is not JSON-serializable ({e}); give the "
                    "aggregation a value_serde="
                ) from e

        return serialize

    def deserializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Deserializer:
        """tag + max_ts + inner(aggregate) -> ``[aggregate, max_ts]``."""
        inner = (self.inner or Json()).deserializer(topic, is_key, ctx)
        unpack = _TS.unpack_from

        def deserialize(data: bytes | None) -> Any:
            if data is None:
                return None
            if len(data) < 9 or data[0] not in (0, 1):
                raise SerdeError(f"not a window store value: {bytes(data[:20])!r}")
            ts = unpack(data, 1)[0]
            return [inner(bytes(data[9:])) if data[0] else None, ts]

        return deserialize

    def describe(self) -> str:
        """e.g. ``Window(Json)``."""
        return f"Window({(self.inner or Json()).describe()})"
