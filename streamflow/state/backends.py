"""Store backends: RocksDB (rocksdict, the default) and memory (tests, same semantics).

A backend holds one store's data for one partition as sorted bytes -> bytes, written in
batches. The write-back cache in ``streamflow.state.store`` sits in front of it.
"""

from __future__ import annotations

import bisect
import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol


class Backend(Protocol):
    """Sorted bytes -> bytes, written in batches."""

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key`` or None."""
        ...

    def write(self, items: list[tuple[bytes, bytes | None]]) -> None:
        """Apply puts (value) and deletes (None) atomically."""
        ...

    def scan(self, start: bytes | None, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """Items with ``start <= key < end`` in key order."""
        ...

    def close(self) -> None:
        """Release files and handles."""
        ...

    def wipe(self) -> None:
        """Delete all data."""
        ...


class MemoryBackend:
    """A dict with sorted scans. Same semantics as RocksDB, nothing on disk."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key`` or None."""
        return self._data.get(key)

    def write(self, items: list[tuple[bytes, bytes | None]]) -> None:
        """Apply puts and deletes."""
        data = self._data
        for k, v in items:
            if v is None:
                data.pop(k, None)
            else:
                data[k] = v

    def scan(self, start: bytes | None, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """Items in ``[start, end)`` in key order."""
        keys = sorted(self._data)
        i = 0 if start is None else bisect.bisect_left(keys, start)
        for k in keys[i:]:
            if end is not None and k >= end:
                break
            yield k, self._data[k]

    def close(self) -> None:
        """Nothing to release."""

    def wipe(self) -> None:
        """Delete all data."""
        self._data.clear()


class RocksBackend:
    """One RocksDB database (rocksdict, raw bytes mode) per store and partition."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = self._open()

    def _open(self) -> Any:
        from rocksdict import Options, Rdict

        self.path.parent.mkdir(parents=True, exist_ok=True)
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        return Rdict(str(self.path), options=opts)

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key`` or None."""
        return self._db.get(key)  # type: ignore[no-any-return]

    def write(self, items: list[tuple[bytes, bytes | None]]) -> None:
        """Apply puts and deletes as one WriteBatch."""
        from rocksdict import WriteBatch

        wb = WriteBatch(raw_mode=True)
        for k, v in items:
            if v is None:
                wb.delete(k)
            else:
                wb.put(k, v)
        self._db.write(wb)

    def scan(self, start: bytes | None, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """Items in ``[start, end)`` in key order."""
        it = self._db.iter()
        if start is None:
            it.seek_to_first()
        else:
            it.seek(start)
        while it.valid():
            k = it.key()
            if end is not None and k >= end:
                break
            yield k, it.value()
            it.next()

    def close(self) -> None:
        """Flush and close the database."""
        with contextlib.suppress(Exception):  # already closed
            self._db.close()

    def wipe(self) -> None:
        """Close and delete the database directory, then open an empty one."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)
        self._db = self._open()


def open_backend(kind: str, path: Path) -> Backend:
    """Open a backend.

    A RocksDB directory that cannot be opened is wiped and recreated (the changelog rebuilds it).
    """
    if kind == "memory":
        return MemoryBackend()
    if kind != "rocksdb":
        msg = f"unknown store backend {kind!r}; use 'rocksdb' or 'memory'"
        raise ValueError(msg)
    try:
        return RocksBackend(path)
    except Exception:
        shutil.rmtree(path, ignore_errors=True)
        return RocksBackend(path)
