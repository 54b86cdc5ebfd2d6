"""The layout of window stores: one ``TaskStore`` entry per key, holding all its open windows.

Key: ``len(key_bytes)`` (4 bytes, big-endian) + ``key_bytes``, where ``key_bytes`` is the
order-preserving ``encode_key(key)``. Keys sort by (length, bytes); windows closing at the same
stream time are emitted in this order, so a restarted task emits them in the same order.

Value: the key's open windows, ``{start: WindowCell}`` in memory (a cell holds the window's
aggregate and the largest event time in it, the end for sessions). On disk and in the
changelog: a format version byte (``WINDOW_FORMAT``), a kind byte, then the windows (see
``WindowValueSerde``); a value in the old one-entry-per-window layout fails to load with an
error that says how to reset the store.

One reserved key, ``META_STREAM_TIME`` (length prefix 0xFFFFFFFF, which no real key can
have), holds the step's ``StreamTime``, so a restarted task knows which windows it closed.

The window step keeps the open windows in memory (rebuilt by ``load()`` when the task
starts) and only *writes* the store: the first change of a key after a commit puts the key's
window dict into the write-back cache (a dict assignment; later changes mutate the same dict).
So a commit flushes at most one changelog record per key touched (plus the stream time),
however many windows of the key changed, and a key whose windows all closed is deleted (a
tombstone, or nothing at all when it was never flushed): state stays bounded.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from streamflow.serde.windowed import WINDOW_FORMAT, StreamTime, WindowCell, WindowValueSerde
from streamflow.state.keys import decode_key

META_STREAM_TIME = b"\xff\xff\xff\xffstream-time"

_LEN = struct.Struct(">I")

__all__ = ["META_STREAM_TIME", "WINDOW_FORMAT", "Loaded", "StreamTime", "WindowCell",
           "WindowValueSerde", "load", "window_prefix"]


def window_prefix(key_bytes: bytes) -> bytes:
    r"""The store key of one key's windows.

    >>> window_prefix(b"sa")
    b'\x00\x00\x00\x02sa'
    """
    return _LEN.pack(len(key_bytes)) + key_bytes


@dataclass
class Loaded:
    """What a window store holds when a task starts.

    The stream time and, in store-key order, ``(store key, key, {start: cell} in start order)``
    per key.
    """

    stream_time: int | None
    keys: list[tuple[bytes, Any, dict[int, WindowCell]]]

    @property
    def windows(self) -> list[tuple[bytes, Any, int, WindowCell]]:
        """Every window as ``(store key, key, start, cell)`` in (key, start) order."""
        return [(sk, key, start, cell) for sk, key, wins in self.keys
                for start, cell in wins.items()]


def load(store: Any) -> Loaded:
    """Read a window store back (task start, after restore)."""
    stream_time: int | None = None
    keys: list[tuple[bytes, Any, dict[int, WindowCell]]] = []
    for skey, value in store.scan_raw(None, None):
        if skey == META_STREAM_TIME:
            stream_time = value.time
            continue
        n = _LEN.unpack_from(skey)[0]
        if len(skey) != n + 4 or not isinstance(value, dict):
            msg = f"not a window store entry: {skey[:40]!r}"
            raise ValueError(msg)
        keys.append((skey, decode_key(skey[4:]), value))
    return Loaded(stream_time, keys)
