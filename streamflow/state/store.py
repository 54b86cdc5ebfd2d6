"""A task's view of one store: a write-back cache in front of a backend.

Reads hit the cache, then the backend. Writes only touch the cache; at commit ``flush()``
turns the dirty keys into one batch (one entry per key, last value wins, None = deleted)
which the runtime sends to the changelog and, once the commit is done, writes to the
backend as a single WriteBatch (``write_pending()``). Not one RocksDB write per record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from streamflow.state.backends import Backend
from streamflow.state.keys import decode_key, encode_key, prefix_end

_DELETED = object()

Batch = list[tuple[bytes, bytes | None]]


class TaskStore:
    """Key-value state of one store for one partition.

    >>> from streamflow.state.backends import MemoryBackend
    >>> import orjson
    >>> s = TaskStore("counts", MemoryBackend(), orjson.dumps, orjson.loads)
    >>> s.put("a", 1); s.get("a"), s.get("b", 0)
    (1, 0)
    """

    def __init__(
        self,
        name: str,
        backend: Backend,
        dumps: Callable[[Any], bytes],
        loads: Callable[[bytes], Any],
        *,
        cache_size: int = 500_000,
    ) -> None:
        self.name = name
        self.backend = backend
        self._dumps = dumps
        self._loads = loads
        self._dirty: dict[bytes, Any] = {}
        self._cache: dict[bytes, Any] = {}
        self._cache_size = cache_size
        # +1 at every flush (and discard): a caller that mutates a value it already put
        # need not put it again while the generation is unchanged (it is in the batch)
        self.generation = 0
        self._pending: Batch = []
        # reads of a key, and those the caches could not serve (metrics read them)
        self.reads = 0
        self.misses = 0

    # -- key-level API (what processors see) ------------------------------------------
    def get(self, key: Any, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default``."""
        return self.get_raw_key(encode_key(key), default)

    def put(self, key: Any, value: Any) -> None:
        """Store ``value`` under ``key`` (``None`` deletes)."""
        self.put_raw_key(encode_key(key), value)

    def delete(self, key: Any) -> None:
        """Delete ``key``."""
        self.put_raw_key(encode_key(key), None)

    def range(self, start: Any = None, end: Any = None) -> Iterator[tuple[Any, Any]]:
        """``(key, value)`` with ``start <= key < end`` in key order (keys of one type)."""
        lo = None if start is None else encode_key(start)
        hi = None if end is None else encode_key(end)
        if hi is None and lo is not None:
            hi = prefix_end(lo[:1])
        for kb, v in self.scan_raw(lo, hi):
            yield decode_key(kb), v

    def prefix(self, prefix: str | bytes) -> Iterator[tuple[Any, Any]]:
        """``(key, value)`` whose str/bytes key starts with ``prefix``, in key order."""
        lo = encode_key(prefix)
        for kb, v in self.scan_raw(lo, prefix_end(lo)):
            yield decode_key(kb), v

    def items(self) -> Iterator[tuple[Any, Any]]:
        """Every ``(key, value)`` in key order."""
        for kb, v in self.scan_raw(None, None):
            yield decode_key(kb), v

    def __contains__(self, key: Any) -> bool:
        return self.get(key, _DELETED) is not _DELETED

    # -- byte-key API (window stores and the runtime) ---------------------------------
    def get_raw_key(self, kb: bytes, default: Any = None) -> Any:
        """Like ``get`` with an already-encoded key."""
        self.reads += 1
        v = self._dirty.get(kb, _DELETED)
        if v is _DELETED:
            if kb in self._dirty:  # dirty delete
                return default
            v = self._cache.get(kb, _DELETED)
            if v is _DELETED:
                self.misses += 1
                raw = self.backend.get(kb)
                if raw is None:
                    return default
                v = self._loads(raw)
                self._remember(kb, v)
        return default if v is None else v

    def put_raw_key(self, kb: bytes, value: Any) -> None:
        """Like ``put`` with an already-encoded key."""
        self._dirty[kb] = value

    def unflushed(self, kb: bytes) -> bool:
        """Whether ``kb`` has a change (a value or a deletion) not flushed yet."""
        return kb in self._dirty

    def drop_unflushed(self, kb: bytes) -> None:
        """Forget the unflushed changes of a key that did not exist before them.

        E.g. a window opened and closed between two commits: neither the changelog nor the
        backend hears of it. Only for keys never flushed, or they would reappear.
        """
        self._dirty.pop(kb, None)

    def scan_raw(self, lo: bytes | None, hi: bytes | None) -> Iterator[tuple[bytes, Any]]:
        """Decoded values of keys in ``[lo, hi)``, merging unflushed changes over the backend."""
        merged: dict[bytes, Any] = {kb: self._loads(raw) for kb, raw in self.backend.scan(lo, hi)}
        for kb, v in self._dirty.items():
            if (lo is None or kb >= lo) and (hi is None or kb < hi):
                merged[kb] = v
        for kb in sorted(merged):
            v = merged[kb]
            if v is not None:
                yield kb, v

    def resize_cache(self, entries: int) -> None:
        """Keep at most ``entries`` decoded values (the oldest go first)."""
        self._cache_size = max(1, entries)
        excess = len(self._cache) - self._cache_size
        if excess > 0:
            for old in list(islice(self._cache, excess)):
                del self._cache[old]

    def _remember(self, kb: bytes, v: Any) -> None:
        if len(self._cache) >= self._cache_size:
            # drop the older half (dicts keep insertion order)
            for old in list(self._cache)[: self._cache_size // 2]:
                del self._cache[old]
        self._cache[kb] = v

    # -- commit protocol ----------------------------------------------------------------
    @property
    def dirty_count(self) -> int:
        """Keys changed since the last flush."""
        return len(self._dirty)

    def flush(self) -> Batch:
        """Serialize the dirty keys into a batch (kept pending until ``write_pending``)."""
        self.generation += 1
        if not self._dirty:
            return []
        dumps = self._dumps
        # copied to their exact size: orjson backs every result with >= 4 KiB, and these are
        # held until the commit (and for good by the memory backend): 4 KiB per dirty key
        batch: Batch = [(kb, None if v is None else bytes(memoryview(dumps(v))))
                        for kb, v in self._dirty.items()]
        for kb, v in self._dirty.items():
            self._remember(kb, v)
        self._dirty.clear()
        self._pending.extend(batch)
        return batch

    def write_pending(self) -> None:
        """Write the flushed batches to the backend (after the commit succeeded)."""
        if self._pending:
            self.backend.write(self._pending)
            self._pending = []

    def discard_uncommitted(self) -> None:
        """Forget changes that were not committed (after an aborted transaction)."""
        self.generation += 1
        self._dirty.clear()
        self._pending = []
        self._cache.clear()

    def close(self) -> None:
        """Close the backend (unflushed changes are lost; flush and commit first)."""
        self.backend.close()


class TtlStore(TaskStore):
    """A key-value store whose entries expire ``ttl_ms`` of event time after their last write.

    Event time is the largest record timestamp the store has seen (``observe``); expired entries
    read as missing, are deleted when read, and are swept (deleted, with a changelog tombstone) once
    per ``ttl_ms`` of event time at commit.

    Values are kept as ``(written_at, value)``; on disk and in the changelog the value bytes
    are prefixed with the 8-byte timestamp.
    """

    def __init__(self, name: str, backend: Backend, dumps: Callable[[Any], bytes],
                 loads: Callable[[bytes], Any], ttl_ms: int, **kw: Any) -> None:
        def dumps_pair(pair: tuple[int, Any]) -> bytes:
            return pair[0].to_bytes(8, "big", signed=True) + dumps(pair[1])

        def loads_pair(data: bytes) -> tuple[int, Any]:
            return int.from_bytes(data[:8], "big", signed=True), loads(data[8:])

        super().__init__(name, backend, dumps_pair, loads_pair, **kw)
        self.ttl_ms = ttl_ms
        self.stream_time = -(2**63)
        self.current_ts: int | None = None
        self._swept_at = -(2**63)

    def observe(self, ts: int) -> None:
        """The record being processed has event time ``ts`` (writes are stamped with it)."""
        self.current_ts = ts
        if ts > self.stream_time:
            self.stream_time = ts

    def _expired(self, written_at: int) -> bool:
        return self.stream_time - written_at > self.ttl_ms

    def get_raw_key(self, kb: bytes, default: Any = None) -> Any:
        """The live value of ``kb`` (expired entries are deleted and read as missing)."""
        pair = super().get_raw_key(kb, None)
        if pair is None:
            return default
        if self._expired(pair[0]):
            super().put_raw_key(kb, None)
            return default
        return pair[1]

    def put_raw_key(self, kb: bytes, value: Any) -> None:
        """Store ``value`` stamped with the current record's event time."""
        if value is None:
            super().put_raw_key(kb, None)
            return
        ts = self.current_ts if self.current_ts is not None else max(self.stream_time, 0)
        super().put_raw_key(kb, (ts, value))

    def scan_raw(self, lo: bytes | None, hi: bytes | None) -> Iterator[tuple[bytes, Any]]:
        """Live entries in ``[lo, hi)``."""
        for kb, pair in super().scan_raw(lo, hi):
            if not self._expired(pair[0]):
                yield kb, pair[1]

    def flush(self) -> Batch:
        """Sweep expired entries (once per ``ttl_ms`` of event time), then flush."""
        if self.stream_time - self._swept_at >= self.ttl_ms:
            self._swept_at = self.stream_time
            expired = [kb for kb, pair in super().scan_raw(None, None) if self._expired(pair[0])]
            for kb in expired:
                super().put_raw_key(kb, None)
        return super().flush()
