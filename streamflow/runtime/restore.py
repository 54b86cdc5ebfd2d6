"""Restoring a store from its changelog topic.

Only the tail after the local checkpoint is replayed, in large WriteBatches. Changelog
records carry the source positions that produced them; records beyond the committed
source offsets (written just before a crash, for input that will be processed again)
are skipped, so the restored state matches the committed input exactly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from streamflow.runtime.ports import ChangelogReader
from streamflow.state.task_state import SOURCE_HEADER, TaskState, decode_positions

log = logging.getLogger("streamflow.restore")


@dataclass
class RestoreResult:
    """What a restore did."""

    store: str
    partition: int
    start: int
    end: int
    applied: int
    skipped: int
    seconds: float


def _beyond(raw: bytes | None, committed: dict[str, int]) -> bool:
    for topic, pos in decode_positions(raw).items():
        c = committed.get(topic)
        if c is not None and c >= 0 and pos > c:
            return True
        if (c is None or c < 0) and pos > 0:
            # nothing committed yet for this source: every change is uncommitted
            return True
    return False


def restore_store(state: TaskState, store: str, changelogs: ChangelogReader,
                  committed: dict[str, int], timeout_s: float = 300.0) -> RestoreResult:
    """Bring ``store`` of ``state`` up to date from its changelog partition."""
    started = time.monotonic()
    topic = state.changelogs[store]
    part = state.partition
    low, high = changelogs.watermarks(topic, part)
    start = checkpoint = state.read_checkpoint(store)
    if start is None or start < low or start > high:
        if start is not None:
            log.warning("checkpoint of %s[%d] (%d) is outside the changelog [%d, %d]; "
                        "rebuilding", topic, part, start, low, high)
        state.wipe(store)
        start = low
    applied = skipped = 0
    end = start
    if start < high:
        backend = state.stores[store].backend
        verdicts: dict[bytes | None, bool] = {}  # a commit's records share one header
        deadline = time.monotonic() + timeout_s
        for msgs in changelogs.read(topic, part, start):
            if time.monotonic() > deadline:
                msg = f"restoring {topic}[{part}] took over {timeout_s}s"
                raise TimeoutError(msg)
            batch: list[tuple[bytes, bytes | None]] = []
            for m in msgs:
                end = m.offset() + 1
                src = None
                for k, v in m.headers() or ():
                    if k == SOURCE_HEADER:
                        src = v
                beyond = verdicts.get(src)
                if beyond is None:
                    beyond = verdicts[src] = _beyond(src, committed)
                if beyond:
                    skipped += 1
                    continue
                batch.append((m.key(), m.value()))
            applied += len(batch)
            if batch:
                backend.write(batch)
        end = max(end, high)
    state.write_checkpoint(store, end)
    result = RestoreResult(store, part, start, end, applied, skipped, time.monotonic() - started)
    log.info("restored %s[%d]: %d changes applied, %d uncommitted skipped (offsets %d..%d, "
             "checkpoint %s) in %.2fs", topic, part, applied, skipped, start, end,
             checkpoint, result.seconds)
    return result
