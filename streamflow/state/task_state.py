"""All stores of one processor for one task (partition), and their commit protocol."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, cast

from streamflow.serde import Json, SerdeContext
from streamflow.state.backends import open_backend
from streamflow.state.store import TaskStore, TimestampedStore, TtlStore

log = logging.getLogger("streamflow.state")

SOURCE_HEADER = "streamflow.source"
# the format of a changelog value when it is not the serde's bytes alone ("ts": an 8-byte
# timestamp first); records written before the header existed have none
FORMAT_HEADER = "streamflow.format"

Dumps = Callable[[Any], bytes]
ProduceTo = Callable[[str, int, bytes, "bytes | None", "list[tuple[str, bytes]]"], None]


class StoreSpec(Protocol):
    """What the state layer needs to know of a declared store."""

    @property
    def changelog(self) -> str:
        """The changelog topic that backs the store."""
    @property
    def value_serde(self) -> Any:
        """The serde of the store's values (keys are bytes already)."""
    @property
    def backend(self) -> str | None:
        """``"rocksdb"``, ``"memory"``, or None for the configured default."""
    @property
    def ttl_ms(self) -> int | None:
        """How long an entry lives without updates, or None to keep it."""
    @property
    def timestamped(self) -> bool:
        """Whether each row keeps its event time (a table's store)."""
    @property
    def source_serdes(self) -> tuple[Any, Any] | None:
        """A table's store restored from its source topic (``changelog``): its serdes."""


def store_path(state_dir: Path, store: str, partition: int) -> Path:
    """``<state_dir>/<store>/<partition>``.

    ``state_dir`` is the processor's own folder (``<state root>/<topology>/<processor>``).
    """
    return state_dir / store / str(partition)


def encode_positions(positions: dict[str, int]) -> bytes:
    """The source positions a changelog record reflects, as a header value."""
    return ";".join(f"{t}:{o}" for t, o in sorted(positions.items())).encode()


def decode_positions(raw: bytes | None) -> dict[str, int]:
    """Inverse of ``encode_positions``."""
    out: dict[str, int] = {}
    if raw:
        for part in raw.decode().split(";"):
            topic, _, off = part.rpartition(":")
            out[topic] = int(off)
    return out


class TaskState:
    """The stores of a processor for one partition, with their changelog topics.

    ``specs`` are the processor's declared stores by name, ``state_dir`` its own folder and
    ``backend`` the default backend of stores that do not choose one.
    """

    def __init__(self, specs: Mapping[str, StoreSpec], partition: int, state_dir: Path,
                 backend: str, serde_ctx: SerdeContext) -> None:
        self.partition = partition
        self.stores: dict[str, TaskStore] = {}
        self.changelogs: dict[str, str] = {}
        self.paths: dict[str, Path] = {}
        # stores restored from their table's source topic, never written to it: its serdes
        self.sources: dict[str, tuple[Any, Any]] = {}
        self.serde_ctx = serde_ctx
        self._last_checkpoint = time.monotonic()
        for name, spec in specs.items():
            serde = spec.value_serde or Json()
            dumps = serde.serializer(spec.changelog, False, serde_ctx)
            loads = serde.deserializer(spec.changelog, False, serde_ctx)
            path = store_path(state_dir, name, partition)
            self.paths[name] = path
            be = open_backend(spec.backend or backend, path)
            self.stores[name] = (
                TtlStore(name, be, cast(Dumps, dumps), loads, spec.ttl_ms)
                if spec.ttl_ms is not None
                else TimestampedStore(name, be, cast(Dumps, dumps), loads) if spec.timestamped
                else TaskStore(name, be, cast(Dumps, dumps), loads)
            )
            self.changelogs[name] = spec.changelog
            if spec.source_serdes is not None:
                self.sources[name] = spec.source_serdes

    def flush(self, produce_to: ProduceTo, positions: dict[str, int]) -> int:
        """Send every dirty key of every store to its changelog; return how many.

        A store restored from its source topic keeps its batch for ``write_pending`` alone.
        """
        n = 0
        source = (SOURCE_HEADER, encode_positions(positions))
        headers = [source]
        for name, store in self.stores.items():
            if name in self.sources:
                store.flush()
                continue
            topic = self.changelogs[name]
            fmt = store.value_format
            marked = headers if fmt is None else [source, (FORMAT_HEADER, fmt.encode())]
            for kb, vb in store.flush():
                produce_to(topic, self.partition, kb, vb, marked)
                n += 1
        return n

    def write_pending(self) -> None:
        """Write flushed changes to the local databases (after the commit succeeded)."""
        for store in self.stores.values():
            store.write_pending()

    def discard_uncommitted(self) -> None:
        """Drop changes not yet committed (after an aborted transaction)."""
        for store in self.stores.values():
            store.discard_uncommitted()

    # -- checkpoints: the changelog offset the local database reflects ------------------
    def read_checkpoint(self, store: str) -> int | None:
        """The next changelog offset to replay into ``store``, if a checkpoint exists.

        None as well when the checkpoint names another value format than the store's (a
        database written by an earlier version): the restore then rebuilds it from the
        changelog. A checkpoint without a format is fine for a store whose older data has
        the same format (``legacy_prefix`` is None).
        """
        try:
            data = json.loads(self._checkpoint_file(store).read_text())
            offset = int(data["offset"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        s = self.stores[store]
        fmt = data.get("format")
        if fmt != s.value_format and (fmt is not None or s.legacy_prefix is not None):
            log.info("store %s[%d] was written in another format (%s); rebuilding it from its "
                     "changelog", store, self.partition, fmt or "plain values")
            return None
        return offset

    def write_checkpoint(self, store: str, offset: int) -> None:
        """Record that the local database of ``store`` reflects the changelog below ``offset``."""
        path = self._checkpoint_file(store)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        data: dict[str, Any] = {"offset": offset, "written_at": time.time()}
        fmt = self.stores[store].value_format
        if fmt is not None:
            data["format"] = fmt
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)

    def _checkpoint_file(self, store: str) -> Path:
        p = self.paths[store]
        return p.parent / f"{p.name}.checkpoint"

    def checkpoint_due(self, every_s: float) -> bool:
        """True at most once per ``every_s`` seconds."""
        now = time.monotonic()
        if now - self._last_checkpoint >= every_s:
            self._last_checkpoint = now
            return True
        return False

    def wipe(self, store: str) -> None:
        """Delete the local data (and checkpoint) of ``store``; the changelog rebuilds it."""
        self.stores[store].backend.wipe()
        self._checkpoint_file(store).unlink(missing_ok=True)

    def close(self) -> None:
        """Close every store."""
        for store in self.stores.values():
            store.close()


def store_value_serde(spec: Any) -> Any:
    """The serde of a store's values (JSON unless the store declares one)."""
    return spec.value_serde or Json()
