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
from typing import Any

from streamflow.kafka import client
from streamflow.state.task_state import SOURCE_HEADER, TaskState, decode_positions

log = logging.getLogger("streamflow.restore")

BATCH = 20_000


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


def restore_store(state: TaskState, store: str, consumer_conf: dict[str, Any],
                  committed: dict[str, int], timeout_s: float = 300.0) -> RestoreResult:
    """Bring ``store`` of ``state`` up to date from its changelog partition."""
    started = time.monotonic()
    topic = state.changelogs[store]
    part = state.partition
    consumer = client.make_consumer({
        **consumer_conf,
        "group.id": f"streamflow-restore-{topic}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed",
        "fetch.max.bytes": 64 * 1024 * 1024,
        "fetch.wait.max.ms": 10,  # a short tail must not wait out the default 500 ms
    })
    try:
        low, high = client.watermarks(consumer, topic, part)
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
            client.assign(consumer, [(topic, part, start)])
            backend = state.stores[store].backend
            batch: list[tuple[bytes, bytes | None]] = []
            verdicts: dict[bytes | None, bool] = {}  # a commit's records share one header
            deadline = time.monotonic() + timeout_s
            done = False
            while not done:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"restoring {topic}[{part}] took over {timeout_s}s")
                for m in consumer.consume(BATCH, 0.05):
                    err = m.error()
                    if err is not None:
                        if client.partition_eof(err):
                            done = True
                            break
                        raise client.KafkaException(err)
                    end = m.offset() + 1
                    headers = m.headers()
                    src = None
                    if headers:
                        for k, v in headers:
                            if k == SOURCE_HEADER:
                                src = v
                    beyond = verdicts.get(src)
                    if beyond is None:
                        beyond = verdicts[src] = _beyond(src, committed)
                    if beyond:
                        skipped += 1
                        continue
                    batch.append((m.key(), m.value()))
                    applied += 1
                if len(batch) >= BATCH or (done and batch):
                    backend.write(batch)
                    batch = []
            end = max(end, high)
        state.write_checkpoint(store, end)
        result = RestoreResult(store, part, start, end, applied, skipped,
                               time.monotonic() - started)
        log.info("restored %s[%d]: %d changes applied, %d uncommitted skipped (offsets %d..%d, "
                 "checkpoint %s) in %.2fs", topic, part, applied, skipped, start, end,
                 checkpoint, result.seconds)
        return result
    finally:
        consumer.close()
