"""A task's view of one store: a write-back cache in front of a backend.

Reads hit the cache, then the backend. Writes only touch the cache; at commit ``flush()``
turns the dirty keys into one batch (one entry per key, last value wins, None = deleted)
which the runtime sends to the changelog and, once the commit is done, writes to the
backend as a single WriteBatch (``write_pending()``). Not one RocksDB write per record.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from streamflow.serde.base import SerdeError
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

    # the format of values on disk and in the changelog (None: the serde's bytes), and what
    # to put before a changelog value written without this format's header (None: nothing)
    value_format: str | None = None
    legacy_prefix: bytes | None = None

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
        try:
            batch = self._serialize()
        except SerdeError as e:
            raise _unkeepable(self.name, e) from e
        for kb, v in self._dirty.items():
            self._remember(kb, v)
        self._dirty.clear()
        self._pending.extend(batch)
        return batch

    def _serialize(self) -> Batch:
        """The dirty keys and their values' bytes (None: deleted)."""
        dumps = self._dumps
        # copied to their exact size: orjson backs every result with >= 4 KiB, and these are
        # held until the commit (and for good by the memory backend): 4 KiB per dirty key
        return [(kb, None if v is None else bytes(memoryview(dumps(v))))
                for kb, v in self._dirty.items()]

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


NO_TIMESTAMP = -1
"""The timestamp of a row whose time is not known (written by a version without timestamps)."""

_TS = struct.Struct(">q")
NO_TIMESTAMP_PREFIX = _TS.pack(NO_TIMESTAMP)


class TimestampedStore(TaskStore):
    """A table's store: each row keeps its value's event time (a timestamped key-value store).

    Rows are kept as ``(value, timestamp)``: ``get_stamped`` / ``put_stamped`` read and write
    them (the table steps); ``get``, ``range``, ``items`` and ``put`` see plain values, as
    ``driver.store(...)`` and ``process()`` do. On disk and in the changelog a row is the
    8-byte big-endian timestamp, then the value's serde bytes (format ``"ts"``).

    Stores written before timestamps existed hold plain values: a changelog record without
    the ``streamflow.format`` header is read as a row of unknown time (``NO_TIMESTAMP``, -1,
    as Kafka Streams' upgrade of a plain store does), and a local database whose checkpoint
    names no format is rebuilt from the changelog (``legacy_prefix``, ``value_format``).
    """

    value_format: str | None = "ts"
    # prepended to the value of a changelog record written without the format header
    legacy_prefix: bytes | None = NO_TIMESTAMP_PREFIX

    def __init__(self, name: str, backend: Backend, dumps: Callable[[Any], bytes],
                 loads: Callable[[bytes], Any], **kw: Any) -> None:
        unpack_from = _TS.unpack_from

        def loads_row(data: bytes) -> tuple[Any, int]:
            return loads(data[8:]), unpack_from(data)[0]

        # ``dumps`` stays the value's: ``_serialize`` puts the timestamp before its bytes
        super().__init__(name, backend, dumps, loads_row, **kw)

    def _serialize(self) -> Batch:
        """The dirty rows' bytes, timestamp first (inlined: a flush is one key per row)."""
        dumps = self._dumps
        pack = _TS.pack  # the concatenation is a new bytes of its exact size
        return [(kb, None if row is None else pack(row[1]) + dumps(row[0]))
                for kb, row in self._dirty.items()]

    def encode_row(self, value: Any, ts: int) -> bytes:
        """The bytes ``put_stamped(kb, (value, ts))`` keeps (a restore from a source topic)."""
        return _TS.pack(ts) + self._dumps(value)

    # the rows themselves: (value, timestamp), or ``default``; ``put_stamped(kb, None)`` deletes
    get_stamped = TaskStore.get_raw_key
    put_stamped = TaskStore.put_raw_key
    scan_stamped = TaskStore.scan_raw

    def stamp(self) -> int:
        """The timestamp of a plain ``put`` (unknown here; TTL stores use event time)."""
        return NO_TIMESTAMP

    def get_raw_key(self, kb: bytes, default: Any = None) -> Any:
        """The value of row ``kb`` (without its timestamp), or ``default``."""
        row = self.get_stamped(kb)
        return default if row is None else row[0]

    def put_raw_key(self, kb: bytes, value: Any) -> None:
        """Store ``value`` stamped with ``stamp()`` (``None`` deletes)."""
        TaskStore.put_raw_key(self, kb, None if value is None else (value, self.stamp()))

    def scan_raw(self, lo: bytes | None, hi: bytes | None) -> Iterator[tuple[bytes, Any]]:
        """Values (without timestamps) of the rows in ``[lo, hi)``."""
        for kb, row in self.scan_stamped(lo, hi):
            yield kb, row[0]


class TtlStore(TimestampedStore):
    """A key-value store whose entries expire ``ttl_ms`` of event time after their row's time.

    Event time is the largest record timestamp the store has seen (``observe``); expired entries
    read as missing, are deleted when read, and are swept (deleted, with a changelog tombstone) once
    per ``ttl_ms`` of event time at commit. A plain ``put`` stamps the row with the current
    record's event time; a table's row keeps its own timestamp (an aggregate's is the newest
    record that contributed), so it expires ``ttl_ms`` after that.

    The on-disk and changelog format is the timestamped store's, which is also what TTL
    stores wrote before timestamps existed (the time of the last write first): nothing to
    migrate.
    """

    legacy_prefix = None

    def __init__(self, name: str, backend: Backend, dumps: Callable[[Any], bytes],
                 loads: Callable[[bytes], Any], ttl_ms: int, **kw: Any) -> None:
        super().__init__(name, backend, dumps, loads, **kw)
        self.ttl_ms = ttl_ms
        self.stream_time = -(2**63)
        self.current_ts: int | None = None
        self._swept_at = -(2**63)

    def observe(self, ts: int) -> None:
        """The record being processed has event time ``ts`` (writes are stamped with it)."""
        self.current_ts = ts
        if ts > self.stream_time:
            self.stream_time = ts

    def stamp(self) -> int:
        """The current record's event time."""
        return self.current_ts if self.current_ts is not None else max(self.stream_time, 0)

    def _expired(self, written_at: int) -> bool:
        return self.stream_time - written_at > self.ttl_ms

    def get_stamped(self, kb: bytes, default: Any = None) -> Any:
        """The live row of ``kb`` (expired entries are deleted and read as missing)."""
        row = TaskStore.get_raw_key(self, kb, None)
        if row is None:
            return default
        if self._expired(row[1]):
            TaskStore.put_raw_key(self, kb, None)
            return default
        return row

    def scan_stamped(self, lo: bytes | None, hi: bytes | None
                     ) -> Iterator[tuple[bytes, Any]]:
        """Live rows in ``[lo, hi)``."""
        for kb, row in TaskStore.scan_raw(self, lo, hi):
            if not self._expired(row[1]):
                yield kb, row

    def flush(self) -> Batch:
        """Sweep expired entries (once per ``ttl_ms`` of event time), then flush."""
        if self.stream_time - self._swept_at >= self.ttl_ms:
            self._swept_at = self.stream_time
            expired = [kb for kb, row in TaskStore.scan_raw(self, None, None)
                       if self._expired(row[1])]
            for kb in expired:
                TaskStore.put_raw_key(self, kb, None)
        return super().flush()


def _unkeepable(store: str, e: SerdeError) -> SerdeError:
    """A value the store's serde cannot encode: say which store, and what to do about it."""
    msg = f"store {store!r} cannot keep a value: {e}"
    if "value_serde" not in msg:
        msg += ("; give the step that writes it a value_serde= that can (e.g. the topic's "
                "sf.Avro), or turn the values into ones its serde knows")
    return SerdeError(msg)
