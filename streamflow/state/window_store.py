"""The layout of window stores: a ``TaskStore`` whose keys sort by (key, window start).

Key: ``len(key_bytes)`` (4 bytes, big-endian) + ``key_bytes`` + ``start + 2**63`` (8 bytes,
big-endian), where ``key_bytes`` is the order-preserving ``encode_key(key)``. The length prefix
keeps one key's windows contiguous (no key is a prefix of another's range) and the biased
start makes negative starts sort before positive ones, so a range scan over
``window_prefix(key_bytes)`` yields a key's windows in start order.

Value: a *cell* ``[aggregate, max_ts]`` — the window's aggregate and the largest event time
in it (the session end, for sessions). On disk and in the changelog: 1 tag byte (1 = an
aggregate follows, 0 = the aggregate is None), ``max_ts`` (8 bytes, big-endian, signed), then
the aggregate serialized by the store's value serde (JSON unless one is given).

One reserved key, ``META_STREAM_TIME`` (length prefix 0xFFFFFFFF, which no real key can
have), holds ``[None, stream_time]``, so a restarted task knows which windows it closed.

The window step keeps the open windows in memory (rebuilt by ``load()`` when the task
starts) and only *writes* the store (``put_raw_key``: a dict assignment in the write-back
cache); the cache is flushed to the changelog and RocksDB at commit, one entry per window
touched since the previous commit.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from streamflow.serde.windowed import WindowValueSerde
from streamflow.state.keys import decode_key

BIAS = 1 << 63
META_STREAM_TIME = b"\xff\xff\xff\xffstream-time"

_LEN = struct.Struct(">I")
_START = struct.Struct(">Q")

pack_len = _LEN.pack

__all__ = ["BIAS", "META_STREAM_TIME", "Loaded", "WindowValueSerde", "iter_windows", "load",
           "pack_len", "pack_start", "split_window_key", "window_key", "window_prefix"]


def window_prefix(key_bytes: bytes) -> bytes:
    """The common prefix of every window key of one key."""
    return _LEN.pack(len(key_bytes)) + key_bytes


def pack_start(start: int) -> bytes:
    """The 8 trailing bytes of a window key."""
    return _START.pack(start + BIAS)


def window_key(key_bytes: bytes, start: int) -> bytes:
    """The store key of the window of ``key_bytes`` starting at ``start``."""
    return _LEN.pack(len(key_bytes)) + key_bytes + _START.pack(start + BIAS)


def split_window_key(wkey: bytes) -> tuple[bytes, int]:
    """Inverse of ``window_key``: ``(key_bytes, start)``."""
    n = _LEN.unpack_from(wkey)[0]
    if len(wkey) != n + 12:
        raise ValueError(f"not a window key: {wkey[:40]!r}")
    return wkey[4:4 + n], _START.unpack_from(wkey, 4 + n)[0] - BIAS


@dataclass
class Loaded:
    """What a window store holds when a task starts."""

    stream_time: int | None
    windows: list[tuple[bytes, Any, int, list[Any]]]  # (key_bytes, key, start, cell)


def load(store: Any) -> Loaded:
    """Read a window store back (task start, after restore), windows in (key, start) order."""
    stream_time: int | None = None
    windows: list[tuple[bytes, Any, int, list[Any]]] = []
    keys: dict[bytes, Any] = {}
    for wkey, cell in store.scan_raw(None, None):
        if wkey == META_STREAM_TIME:
            stream_time = cell[1]
            continue
        kb, start = split_window_key(wkey)
        key = keys.get(kb)
        if key is None:
            key = keys[kb] = decode_key(kb)
        windows.append((kb, key, start, cell))
    return Loaded(stream_time, windows)


def iter_windows(store: Any, key_bytes: bytes) -> Iterator[tuple[int, list[Any]]]:
    """``(start, cell)`` of one key's windows in start order (a range scan)."""
    lo = window_prefix(key_bytes)
    hi = lo + b"\xff" * 9
    for wkey, cell in store.scan_raw(lo, hi):
        yield _START.unpack_from(wkey, len(lo))[0] - BIAS, cell
