"""The global tables of one processor in one worker: whole topics in local stores.

Kafka Streams' global state (``GlobalStateManager`` and the global stream thread). Each global
table of the processor (``streamflow.dsl.global_table``) is held in one store per worker,
shared by every task: a RocksDB database under ``<state>/<topology>/<processor>/global/``
(or memory). One consumer outside any group, with all partitions of every global topic
assigned by hand (``read_committed``, nothing committed), feeds them:

- ``bootstrap()`` (when the engine starts, before it joins the group) reads each partition
  to the end offset it had when the bootstrap began, so no stream record is processed
  against a table that is not loaded;
- ``poll()`` (from the engine, before each batch of stream records, in the worker's own
  thread: no locking) applies what was written since, in offset order per partition.

The topic is the store's changelog. Rows are the topic's value bytes under the decoded key
(``streamflow.state.keys.encode_key``), decoded with the topic's serde on lookup; a
tombstone deletes its row and a record with a null key is ignored. A RocksDB store also
holds, in the same write batch as the rows, the next offset of each partition: a restarted
worker reads only what is new. A checkpoint outside a partition's offsets (the topic was
recreated or compacted past it) rebuilds the store from the beginning; a memory store is
always read from the beginning.

Metrics (``status()``, read by ``streamflow.observability.metrics`` on a scrape): records
applied and skipped per store (counted per consumed batch), the bootstrap's records and
duration, and each partition's position. The lag needs end offsets: the bootstrap's targets
while it loads, then the global consumer's librdkafka statistics (``statistics_interval_ms``),
which the engine never asks for (the consumer's ``statistics`` attribute, when it has one).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from streamflow.dsl.global_table import global_stores
from streamflow.observability.status import GlobalTablesStatus, GlobalTableStatus
from streamflow.runtime.errors import ProcessingFailed
from streamflow.runtime.ports import RestoreConsumer
from streamflow.serde import SerdeContext, SerdeUnavailable
from streamflow.state.backends import Backend, open_backend
from streamflow.state.keys import decode_key, encode_key

if TYPE_CHECKING:
    from streamflow.dsl.topology import Processor

log = logging.getLogger("streamflow.global")

__all__ = ["GlobalStore", "GlobalTables", "global_tables"]

# the next offset of each partition, stored with the rows (user keys never start with 0x00)
_OFFSETS_KEY = b"\x00offsets"
POLL_RECORDS = 10_000
PROGRESS_EVERY_S = 5.0


class GlobalStore:
    """One global table: its rows by key, read by every task of the processor."""

    def __init__(self, name: str, topic: str, backend: Backend,
                 key_deserializer: Callable[[bytes | None], Any],
                 value_deserializer: Callable[[bytes | None], Any]) -> None:
        self.name = name
        self.topic = topic
        self.backend = backend
        self._kd = key_deserializer
        self._vd = value_deserializer
        raw = backend.get(_OFFSETS_KEY)
        self.offsets: dict[int, int] = (
            {int(p): int(o) for p, o in orjson.loads(raw).items()} if raw else {})
        self.skipped = 0  # records with an undecodable key that the policy let pass
        self.applied = 0  # rows written or deleted (records with a usable key)

    # -- reading (the join steps) -------------------------------------------------------
    def get(self, key: Any, default: Any = None) -> Any:
        """The row of ``key`` (decoded with the topic's value serde), or ``default``."""
        vb = self.backend.get(encode_key(key))
        return default if vb is None else self._vd(vb)

    def __contains__(self, key: Any) -> bool:
        return self.backend.get(encode_key(key)) is not None

    def items(self) -> Iterator[tuple[Any, Any]]:
        """Every row, in key order."""
        for kb, vb in self.backend.scan(b"\x01", None):
            yield decode_key(kb), self._vd(vb)

    # -- writing (the global consumer) ------------------------------------------------
    def apply(self, msgs: list[Any], on_bad_key: Callable[[Any, BaseException], None]) -> None:
        """Write records of the topic in offset order, with the offsets, as one batch."""
        batch: list[tuple[bytes, bytes | None]] = []
        offsets = self.offsets
        kd = self._kd
        for m in msgs:
            offsets[m.partition()] = m.offset() + 1
            kb = m.key()
            if kb is None:
                continue  # as Kafka Streams: a row needs a key
            try:
                k = kd(kb)
            except SerdeUnavailable:
                raise
            except Exception as e:
                on_bad_key(m, e)
                self.skipped += 1
                continue
            if k is not None:
                batch.append((encode_key(k), m.value()))
        self.applied += len(batch)
        batch.append(self._offsets_item())
        self.backend.write(batch)

    def _offsets_item(self) -> tuple[bytes, bytes]:
        return _OFFSETS_KEY, orjson.dumps({str(p): o for p, o in self.offsets.items()})

    def save_offsets(self) -> None:
        """Write the offsets alone (e.g. of partitions that had nothing to read)."""
        self.backend.write([self._offsets_item()])

    def wipe(self) -> None:
        """Delete every row and offset (the topic rebuilds it)."""
        self.backend.wipe()
        self.offsets = {}

    def close(self) -> None:
        """Release the database."""
        self.backend.close()


class GlobalTables:
    """The global stores of one processor in this worker, and the consumer feeding them.

    ``reader`` is a consumer outside any group (the port a restore uses); ``stores`` maps
    store names to ``GlobalStore`` and is what the tasks' join steps read.
    """

    def __init__(self, processor: Processor, reader: RestoreConsumer, *, state_dir: Path,
                 backend: str, serde_ctx: SerdeContext) -> None:
        self.processor = processor
        self.reader = reader
        self.state_dir = state_dir
        self.backend = backend
        self.serde_ctx = serde_ctx
        # filled when the bootstrap opens the databases (after the worker took its state
        # folder's lock); the tasks hold this very dict
        self.stores: dict[str, GlobalStore] = {}
        self._by_topic: dict[str, list[GlobalStore]] = {}
        self.fail_on_bad_key = processor.policies["deserialize"] == "fail"
        self.bootstrapped = False
        self.applied = 0  # records read from the global topics since the start
        # for status(): when the bootstrap began, what it read and how long it took, and the
        # end offsets it reads up to
        self.restore_began: float | None = None
        self.restore_records = 0
        self.restore_seconds = 0.0
        self._targets: dict[tuple[str, int], int] = {}

    def _open(self) -> None:
        for name, topic in global_stores(self.processor).items():
            t = self.processor.topology.resolve_topic(topic)
            be = open_backend(self.backend, self.state_dir / "global" / name)
            store = GlobalStore(name, topic, be,
                                t.key.deserializer(topic, True, self.serde_ctx),
                                t.value.deserializer(topic, False, self.serde_ctx))
            self.stores[name] = store
            self._by_topic.setdefault(topic, []).append(store)

    def bootstrap(self, stop: Callable[[], bool] | None = None) -> bool:
        """Open the stores, assign every partition and read each to its current end offset.

        Return False when ``stop()`` became true first (the tables are then incomplete).
        """
        began = self.restore_began = time.monotonic()
        self._open()
        targets: dict[tuple[str, int], int] = {}
        for topic, stores in self._by_topic.items():
            marks = [self.reader.watermarks(topic, p)
                     for p in range(self.reader.partitions(topic))]
            starts = self._starts(topic, stores, marks)
            for p, ((_low, high), start) in enumerate(zip(marks, starts, strict=True)):
                self.reader.add(topic, p, start)
                if start < high:
                    targets[(topic, p)] = high
        self._targets = targets
        done_at = dict.fromkeys(targets, False)
        logged = began
        while not all(done_at.values()):
            if stop is not None and stop():
                return False
            msgs, ends = self.reader.consume(POLL_RECORDS, 0.1)
            self._apply(msgs)
            for topic, p, _off in ends:  # at the last stable offset: nothing more to read
                if (topic, p) in done_at:
                    done_at[(topic, p)] = True
            for tp in done_at:
                if not done_at[tp] and self._position(*tp) >= targets[tp]:
                    done_at[tp] = True
            now = time.monotonic()
            if now - logged >= PROGRESS_EVERY_S:
                logged = now
                log.info("global tables of %s: %d records read, %d of %d partitions at their "
                         "end", self.processor.name, self.applied, sum(done_at.values()),
                         len(done_at))
        for store in self.stores.values():
            store.save_offsets()  # partitions with nothing read yet included
        self.restore_records = self.applied
        self.restore_seconds = time.monotonic() - began
        self.bootstrapped = True
        log.info("global tables %s of %s loaded: %d records read in %.2fs",
                 ", ".join(self.stores), self.processor.name, self.applied,
                 self.restore_seconds)
        return True

    def _starts(self, topic: str, stores: list[GlobalStore],
                marks: list[tuple[int, int]]) -> list[int]:
        """Where to read each partition from: the stores' checkpoint, when it fits the topic.

        Else (no checkpoint, or one outside the partitions' offsets) the stores are wiped and
        read from the beginning.
        """
        kept = [[s.offsets.get(p) for p in range(len(marks))] for s in stores]
        fits = (all(k == kept[0] for k in kept)
                and all(set(s.offsets) <= set(range(len(marks))) for s in stores)
                and all(o is not None and low <= o <= high
                        for o, (low, high) in zip(kept[0], marks, strict=True)))
        if fits:
            return [int(o) for o in kept[0] if o is not None]
        if any(s.offsets for s in stores):
            log.warning("global table of topic %s: the checkpoint does not fit the topic's "
                        "offsets %s; reading it from the beginning", topic, marks)
        starts = [low for low, _ in marks]
        for s in stores:
            s.wipe()
            s.offsets = dict(enumerate(starts))
        return starts

    def _position(self, topic: str, partition: int) -> int:
        return self._by_topic[topic][0].offsets.get(partition, -1)

    def poll(self) -> int:
        """Apply what was written to the global topics since the last call (no waiting)."""
        msgs, _ends = self.reader.consume(POLL_RECORDS, 0)
        if msgs:
            self._apply(msgs)
        return len(msgs)

    def status(self, now: float | None = None) -> GlobalTablesStatus:
        """A snapshot for metrics (safe to call from another thread)."""
        positions = {(topic, p): off for topic, stores in list(self._by_topic.items())
                     for p, off in dict(stores[0].offsets).items()}
        loaded = self.bootstrapped
        if loaded or self.restore_began is None:
            records, seconds = self.restore_records, self.restore_seconds
        else:  # loading: so far
            records = self.applied
            seconds = (time.monotonic() if now is None else now) - self.restore_began
        tables = tuple(GlobalTableStatus(st.name, st.topic, st.applied, st.skipped)
                       for st in list(self.stores.values()))
        return GlobalTablesStatus(tables, positions, {} if loaded else dict(self._targets),
                                  loaded, records, seconds,
                                  getattr(self.reader, "statistics", None))

    def _apply(self, msgs: list[Any]) -> None:
        """Apply consumed records, one write batch per run of one topic."""
        i, n = 0, len(msgs)
        while i < n:
            topic = msgs[i].topic()
            j = i + 1
            while j < n and msgs[j].topic() == topic:
                j += 1
            for store in self._by_topic.get(topic, ()):
                store.apply(msgs[i:j], self._bad_key)
            i = j
        self.applied += n

    def _bad_key(self, m: Any, e: BaseException) -> None:
        where = f"{m.topic()}[{m.partition()}]@{m.offset()}"
        if self.fail_on_bad_key:
            msg = (f"processor {self.processor.name!r}: the key of global table record {where} "
                   f"cannot be decoded: {e}; fix the record or set on_deserialize_error to "
                   "'skip' to ignore such records")
            raise ProcessingFailed(msg) from e
        log.warning("global table record %s skipped: its key cannot be decoded: %s", where, e)

    def close(self) -> None:
        """Release the stores and the consumer."""
        for store in self.stores.values():
            store.close()
        self.stores.clear()
        self._by_topic.clear()
        self.reader.close()


def global_tables(processor: Processor, reader: RestoreConsumer | None, *, state_dir: Path,
                  backend: str, serde_ctx: SerdeContext) -> GlobalTables | None:
    """The processor's global tables (None when it joins none).

    ``state_dir`` is the processor's own folder.
    """
    if not global_stores(processor):
        return None
    if reader is None:
        msg = (f"processor {processor.name!r} joins global tables, but its engine was given "
               "no consumer for them (Ports.global_tables)")
        raise ValueError(msg)
    return GlobalTables(processor, reader, state_dir=state_dir, backend=backend,
                        serde_ctx=serde_ctx)
