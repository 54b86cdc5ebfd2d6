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
from collections.abc import Callable
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
        msg = (
            f"{what} serializes Windowed keys (the output of a windowed aggregation), got "
            f"{type(value).__name__}: {value!r:.80}"
        )
        raise SerdeError(msg)
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
                msg = f"a time-windowed key has at least 8 bytes, got {len(data)}"
                raise SerdeError(msg)
            start = unpack(data, len(data) - 8)[0]
            end = start + size
            return Windowed(inner(bytes(data[:-8])), start, _MAX_LONG if end > _MAX_LONG else end)

        return deserialize

    def describe(self) -> str:
        """e.g. ``TimeWindowed(String, size=60000ms)``."""
        return f"TimeWindowed({self.inner.describe()}, size={self.window_size}ms)"


@dataclass(frozen=True)
class SessionWindowedSerde:
    """Kafka Streams' session-windowed key format.

    ``inner(key) + end (8 bytes) + start (8 bytes)``, big-endian.
    """

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
                msg = f"a session-windowed key has at least 16 bytes, got {len(data)}"
                raise SerdeError(msg)
            end, start = unpack(data, len(data) - 16)
            return Windowed(inner(bytes(data[:-16])), start, end)

        return deserialize

    def describe(self) -> str:
        """e.g. ``SessionWindowed(String)``."""
        return f"SessionWindowed({self.inner.describe()})"


class WindowCell:
    """One open window in memory and in a window store entry.

    Its aggregate and the largest event time in it (the end, for sessions). ``windowed`` caches
    the window's ``Windowed`` key while updates are emitted (never stored).
    """

    __slots__ = ("agg", "max_ts", "windowed")

    def __init__(self, agg: Any, max_ts: int, windowed: Windowed | None = None) -> None:
        self.agg = agg
        self.max_ts = max_ts
        self.windowed = windowed

    def __repr__(self) -> str:
        return f"WindowCell({self.agg!r}, max_ts={self.max_ts})"


class StreamTime:
    """The stream time of a window step, held in its store.

    A mutable box: the step updates ``time`` in place and puts the box once per commit.
    """

    __slots__ = ("time",)

    def __init__(self, time: int | None) -> None:
        self.time = time


WINDOW_FORMAT = 2  # 0 and 1 were the tags of the one-entry-per-window format
_STREAM_TIME, _WINDOWS_JSON, _WINDOWS_FRAMED = 0, 1, 2
_FRAME = struct.Struct(">qqI")  # start, max_ts, length of the aggregate (0xFFFFFFFF: None)
_NONE_LEN = 0xFFFFFFFF


@dataclass(frozen=True)
class WindowValueSerde:
    r"""The values of window stores (internal; the layout is in ``streamflow.state.window_store``).

    Every value starts with the format version (``WINDOW_FORMAT``) and a kind byte:

    * 0, stream time: 8 bytes, big-endian, signed;
    * 1, a key's windows with JSON aggregates: ``orjson([start, max_ts, agg, start, ...])``;
    * 2, a key's windows with ``inner`` aggregates: per window ``start``, ``max_ts`` (8 bytes
      each, signed), the aggregate's length (4 bytes, 0xFFFFFFFF = None) and its bytes.

    In memory a key's windows are a ``dict`` of ``WindowCell`` by start, in start order when
    read back; the stream time is a ``StreamTime``.

    >>> from streamflow.serde import SerdeContext
    >>> serde = WindowValueSerde()
    >>> ser = serde.serializer("c", False, SerdeContext())
    >>> de = serde.deserializer("c", False, SerdeContext())
    >>> ser({0: WindowCell({"n": 1}, 7)})
    b'\x02\x01[0,7,{"n":1}]'
    >>> de(ser({0: WindowCell({"n": 1}, 7)}))
    {0: WindowCell({'n': 1}, max_ts=7)}
    """

    inner: Serde | None = None
    # what to do when a JSON aggregate cannot be encoded (a stream-stream join has no
    # value_serde= to give)
    fix: str = "give the aggregation a value_serde="

    def serializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Serializer:
        """A key's ``{start: WindowCell}`` or a ``StreamTime`` -> bytes."""
        inner_serde = self.inner or Json()
        encode = (_encode_json if type(inner_serde) is Json
                  else _framed_encoder(inner_serde.serializer(topic, is_key, ctx)))
        fix = self.fix
        stream_time = bytes((WINDOW_FORMAT, _STREAM_TIME))
        pack_ts = _TS.pack

        def serialize(value: Any) -> bytes | None:
            if value is None:
                return None
            if type(value) is StreamTime:
                return stream_time + pack_ts(value.time)
            try:
                return encode(value)
            except _NotJson as e:
                msg = f"{e}; {fix}"
                raise SerdeError(msg) from e.__cause__

        return serialize

    def deserializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Deserializer:
        """Bytes -> ``{start: WindowCell}`` (in start order) or a ``StreamTime``."""
        inner = (self.inner or Json()).deserializer(topic, is_key, ctx)
        loads = orjson.loads
        unpack_ts = _TS.unpack_from
        unpack = _FRAME.unpack_from
        frame = _FRAME.size

        def deserialize(data: bytes | None) -> Any:
            if data is None:
                return None
            if len(data) < 2 or data[0] != WINDOW_FORMAT:
                raise _unknown_format(topic, bytes(data[:20]))
            kind = data[1]
            if kind == _STREAM_TIME:
                return StreamTime(unpack_ts(data, 2)[0])
            cells: dict[int, WindowCell] = {}
            if kind == _WINDOWS_JSON:
                flat = loads(data[2:])
                for i in range(0, len(flat), 3):
                    cells[flat[i]] = WindowCell(flat[i + 2], flat[i + 1])
            elif kind == _WINDOWS_FRAMED:
                view = memoryview(data)
                pos = 2
                while pos < len(data):
                    start, max_ts, n = unpack(data, pos)
                    pos += frame
                    agg = None
                    if n != _NONE_LEN:
                        agg = inner(bytes(view[pos:pos + n]))
                        pos += n
                    cells[start] = WindowCell(agg, max_ts)
            else:
                raise _unknown_format(topic, bytes(data[:20]))
            return dict(sorted(cells.items())) if len(cells) > 1 else cells

        return deserialize

    def describe(self) -> str:
        """e.g. ``Window(Json)``."""
        return f"Window({(self.inner or Json()).describe()})"


_JSON_HEAD = bytes((WINDOW_FORMAT, _WINDOWS_JSON))


class _NotJson(SerdeError):
    """An aggregate JSON cannot encode (the serializer adds what to do about it)."""


def _encode_json(wins: dict[int, WindowCell]) -> bytes:
    flat: list[Any] = []
    for start, cell in wins.items():
        flat += (start, cell.max_ts, cell.agg)
    try:
        return _JSON_HEAD + orjson.dumps(flat)
    except orjson.JSONEncodeError as e:
        msg = f"a window aggregate in {flat[2::3]!r:.80} is not JSON-serializable ({e})"
        raise _NotJson(msg) from e


def _framed_encoder(inner: Serializer) -> Callable[[dict[int, WindowCell]], bytes]:
    head = bytes((WINDOW_FORMAT, _WINDOWS_FRAMED))
    pack = _FRAME.pack

    def encode(wins: dict[int, WindowCell]) -> bytes:
        parts = [head]
        for start, cell in wins.items():
            agg = None if cell.agg is None else inner(cell.agg)
            if agg is None:
                parts.append(pack(start, cell.max_ts, _NONE_LEN))
            else:
                parts += (pack(start, cell.max_ts, len(agg)), agg)
        return b"".join(parts)

    return encode


def _unknown_format(topic: str, head: bytes) -> SerdeError:
    if head[:1] in (b"\x00", b"\x01") and len(head) >= 9:
        return SerdeError(
            f"the window store changelog {topic!r} holds values in the old layout (one entry "
            f"per window; this version keeps a key's windows in one entry, format "
            f"{WINDOW_FORMAT}). The old state cannot be read: stop every worker of the "
            f"processor, delete the changelog topic {topic!r} and the store's local state "
            f"directory, then restart (reset the consumer group's offsets too if the windows "
            f"must be rebuilt from the input)"
        )
    return SerdeError(f"not a window store value (changelog {topic!r}): {head!r}")
