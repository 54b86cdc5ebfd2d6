"""Restoring stores from their changelog topics, in chunks between polls of the group consumer.

Kafka Streams' ``StoreChangelogReader``: one long-lived restore consumer (outside the group,
``read_committed``) reads every changelog partition being restored. ``Restorer.step`` applies at
most one chunk of records per turn of the worker's loop, so the group consumer keeps polling
(the member stays in the group and can rebalance) and the tasks that are already running keep
processing while others restore.

Only the tail after the local checkpoint is replayed, in large WriteBatches. Changelog records
carry the source positions that produced them; records beyond the committed source offsets
(written just before a crash, for input that will be processed again) are skipped, so the
restored state matches the committed input exactly.

A restore ends when the changelog partition's end (its high watermark, taken when the restore
began) is reached, or when the consumer reports the end of the partition (the last stable
offset, below which every record is read). A restore abandoned midway (its task revoked or lost)
may checkpoint how far it got: the local database then holds exactly the changelog below that
offset, filtered as a complete restore would have, so a later restore goes on from there.

A topic table's store that reuses its source topic as changelog is restored from that topic up
to the group's committed offset instead, each record turned into the row the table's update
step writes (:mod:`streamflow.runtime.source_restore`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from streamflow.runtime.ports import RestoreConsumer
from streamflow.runtime.source_restore import SourceRows
from streamflow.state.backends import MemoryBackend
from streamflow.state.store import TimestampedStore
from streamflow.state.task_state import FORMAT_HEADER, SOURCE_HEADER, TaskState, decode_positions

log = logging.getLogger("streamflow.restore")

PROGRESS_EVERY_S = 5.0


@dataclass
class RestoreResult:
    """What the restore of one store did."""

    store: str
    partition: int
    start: int
    end: int
    applied: int
    skipped: int
    seconds: float


@dataclass(eq=False)
class StoreRestore:
    """One store being brought up to date from one changelog partition."""

    state: TaskState
    store: str
    topic: str
    committed: dict[str, int]
    start: int
    end: int  # the high watermark when the restore began (a source topic: the committed offset)
    checkpoint: int | None
    position: int = 0  # the next changelog offset to apply
    applied: int = 0
    skipped: int = 0
    began: float = field(default_factory=time.monotonic)
    done: bool = False
    verdicts: dict[bytes | None, bool] = field(default_factory=dict)  # by source header
    rows: SourceRows | None = None  # the topic is the table's source, not a changelog

    @property
    def partition(self) -> int:
        """The task's (and the changelog's) partition."""
        return self.state.partition


def _beyond(raw: bytes | None, committed: dict[str, int]) -> bool:
    for topic, pos in decode_positions(raw).items():
        c = committed.get(topic)
        if c is not None and c >= 0 and pos > c:
            return True
        if (c is None or c < 0) and pos > 0:
            # nothing committed yet for this source: every change is uncommitted
            return True
    return False


class Restorer:
    """Restores the stores of many tasks at once, one chunk per call of ``step``.

    ``chunk`` caps the records applied per step; ``max_rate`` (records per second, 0 for no
    cap) throttles restores, e.g. to leave a shared broker room.

    Counters for metrics: ``records_done`` (changelog records read by restores since start,
    applied or skipped), ``seconds`` (time spent in restore steps since start) and
    ``remaining`` (changelog records still to read by the restores under way).
    """

    def __init__(self, changelogs: RestoreConsumer, *, chunk: int = 20_000,
                 max_rate: float = 0.0, fail_undecodable: bool = True) -> None:
        self.changelogs = changelogs
        # a table's source record that cannot be decoded fails the restore (else skipped)
        self.fail_undecodable = fail_undecodable
        self.chunk = max(1, chunk)
        self.max_rate = max_rate
        self.active: dict[tuple[str, int], StoreRestore] = {}
        self.records_done = 0
        self.seconds = 0.0
        self._rate_since = 0.0
        self._rate_done = 0
        self._logged_at = 0.0
        self._logged_done = 0

    @property
    def remaining(self) -> int:
        """Changelog offsets still to read by the restores under way."""
        return sum(max(r.end - r.position, 0) for r in self.active.values())

    # -- starting and ending -----------------------------------------------------------
    def begin(self, state: TaskState, committed: dict[str, int]) -> list[StoreRestore]:
        """Start restoring every store of ``state``; those already up to date end at once.

        ``committed`` holds the task's committed source offsets (changes past them are skipped).
        """
        out = []
        for store, topic in state.changelogs.items():
            part = state.partition
            low, high = self.changelogs.watermarks(topic, part)
            rows = self._source_rows(state, store, topic)
            if rows is not None:  # up to the committed offset: the rest is the task's input
                high = min(max(committed.get(topic, low), low), high)
            # a store in memory starts empty whatever its checkpoint file says
            in_memory = isinstance(state.stores[store].backend, MemoryBackend)
            start = checkpoint = None if in_memory else state.read_checkpoint(store)
            if start is None or start < low or start > high:
                if start is not None:
                    log.warning("checkpoint of %s[%d] (%d) is outside the changelog [%d, %d]; "
                                "rebuilding", topic, part, start, low, high)
                state.wipe(store)
                start = low
            r = StoreRestore(state, store, topic, committed, start, high, checkpoint,
                             position=start, rows=rows)
            out.append(r)
            if start >= high:
                self._finish(r, start)
            else:
                if not self.active:  # a new round: its rate and progress count from now
                    now = time.monotonic()
                    self._rate_since, self._rate_done = now, 0
                    self._logged_at, self._logged_done = now, self.records_done
                self.active[(topic, part)] = r
                self.changelogs.add(topic, part, start)
        return out

    def _source_rows(self, state: TaskState, store: str, topic: str) -> SourceRows | None:
        serdes = state.sources.get(store)
        if serdes is None:
            return None
        s = state.stores[store]
        assert isinstance(s, TimestampedStore)  # a table's store
        return SourceRows(s, topic, serdes, state.serde_ctx, self.fail_undecodable)

    def abandon(self, state: TaskState, *, checkpoint: bool) -> None:
        """Stop the restores of ``state``'s stores (its task was revoked or lost).

        With ``checkpoint``, record how far each got: the database holds exactly that.
        """
        gone = [tp for tp, r in self.active.items() if r.state is state]
        for tp in gone:
            r = self.active.pop(tp)
            if checkpoint and r.position > r.start:
                state.write_checkpoint(r.store, r.position)
            log.info("abandoned the restore of %s[%d] at offset %d of %d (%d changes applied)",
                     r.topic, r.partition, r.position, r.end, r.applied)
        self.changelogs.remove(gone)

    def _finish(self, r: StoreRestore, end: int) -> None:
        r.done = True
        r.position = max(r.position, end)
        r.state.write_checkpoint(r.store, r.position)
        log.info("restored %s[%d]: %d changes applied, %d uncommitted skipped (offsets %d..%d, "
                 "checkpoint %s) in %.2fs", r.topic, r.partition, r.applied, r.skipped, r.start,
                 r.position, r.checkpoint, time.monotonic() - r.began)

    def close(self) -> None:
        """Forget every restore and release the restore consumer."""
        self.active.clear()
        self.changelogs.close()

    # -- reading -----------------------------------------------------------------------
    def step(self, timeout: float = 0.05) -> list[StoreRestore]:
        """Apply at most one chunk of changelog records; return the restores that ended.

        Waits at most ``timeout`` for records that are not fetched yet.
        """
        if not self.active:
            return []
        began = time.monotonic()
        budget = self._budget(began)
        if budget <= 0:
            time.sleep(min(timeout, 1.0 / self.max_rate))
            return []
        msgs, ends = self.changelogs.consume(budget, timeout)
        finished = self._apply(msgs)
        for topic, part, off in ends:
            r = self.active.get((topic, part))
            if r is not None and not r.done and off >= r.position:
                finished.append(r)
                self._finish(r, off if r.rows is None else min(off, r.end))
        for r in finished:
            self.active.pop((r.topic, r.partition), None)
        self.changelogs.remove([(r.topic, r.partition) for r in finished])
        self.records_done += len(msgs)
        self._rate_done += len(msgs)
        now = time.monotonic()
        self.seconds += now - began
        if now - self._logged_at >= PROGRESS_EVERY_S and self.active:
            self._progress(now)
        return finished

    def _budget(self, now: float) -> int:
        if not self.max_rate:
            return self.chunk
        allowed = int(self.max_rate * (now - self._rate_since)) - self._rate_done
        return min(self.chunk, allowed)

    def _apply(self, msgs: list[Any]) -> list[StoreRestore]:
        """Write ``msgs`` to their stores, one batch per run of one changelog partition."""
        finished: list[StoreRestore] = []
        # runs are found by partition number alone (a record's topic costs a string each
        # time) when no two changelogs being read share one, checking each run's ends
        numbers = [p for _, p in self.active]
        by_number = len(numbers) == len(set(numbers))
        i, n = 0, len(msgs)
        while i < n:
            topic, part = msgs[i].topic(), msgs[i].partition()
            j = i + 1
            if by_number:
                while j < n and msgs[j].partition() == part:
                    j += 1
                by_number = msgs[j - 1].topic() == topic
            if not by_number:
                j = i + 1
                while j < n and msgs[j].partition() == part and msgs[j].topic() == topic:
                    j += 1
            r = self.active.get((topic, part))
            if r is not None and not r.done:  # else abandoned (or ended) since the fetch
                self._apply_run(r, msgs[i:j])
                if r.position >= r.end:
                    finished.append(r)
                    self._finish(r, r.position)
            i = j
        return finished

    @staticmethod
    def _apply_run(r: StoreRestore, msgs: list[Any]) -> None:
        """Write a run of one partition's records, but those past the committed input.

        A record written before its store's value format existed (no format header) is
        converted: its value gets the store's ``legacy_prefix`` (a timestamped store's rows
        of unknown time).
        """
        if r.rows is not None:
            Restorer._apply_source(r, r.rows, msgs)
            return
        verdicts = r.verdicts  # a commit's records share one source header
        legacy = r.state.stores[r.store].legacy_prefix
        batch: list[tuple[bytes, bytes | None]] = []
        append = batch.append
        skipped = 0
        for m in msgs:
            src = None
            marked = False
            for k, v in m.headers() or ():
                if k == SOURCE_HEADER:
                    src = v
                elif k == FORMAT_HEADER:
                    marked = True
            beyond = verdicts.get(src)
            if beyond is None:
                beyond = verdicts[src] = _beyond(src, r.committed)
            if beyond:
                skipped += 1
                continue
            value = m.value()
            if legacy is not None and not marked and value is not None:
                value = legacy + value
            append((m.key(), value))
        if batch:
            r.state.stores[r.store].backend.write(batch)
        r.applied += len(batch)
        r.skipped += skipped
        r.position = msgs[-1].offset() + 1

    @staticmethod
    def _apply_source(r: StoreRestore, rows: SourceRows, msgs: list[Any]) -> None:
        """Write the rows of a run of source records below the committed offset."""
        end = r.end
        if msgs[-1].offset() >= end:
            msgs = [m for m in msgs if m.offset() < end]
            r.position = end
        else:
            r.position = msgs[-1].offset() + 1
        batch = rows.rows(msgs)
        if batch:
            r.state.stores[r.store].backend.write(batch)
        r.applied += len(batch)
        r.skipped = rows.skipped

    def _progress(self, now: float) -> None:
        rate = (self.records_done - self._logged_done) / max(now - self._logged_at, 1e-3)
        remaining = self.remaining
        eta = f"~{remaining / rate:.0f}s left" if rate > 0 else "no progress"
        log.info("restoring %d changelog partitions: %d records restored, %d remaining, "
                 "%.0f records/s, %s", len(self.active), self.records_done, remaining, rate, eta)
        self._logged_at = now
        self._logged_done = self.records_done


def restore_store(state: TaskState, store: str, changelogs: RestoreConsumer,
                  committed: dict[str, int], *, chunk: int = 20_000) -> RestoreResult:
    """Bring every store of ``state`` up to date at once; return the result for ``store``.

    The engine restores through ``Restorer.step`` between polls; this runs the same steps
    back to back (benchmarks, tools).
    """
    restorer = Restorer(changelogs, chunk=chunk)
    started = time.monotonic()
    restores = restorer.begin(state, committed)
    while restorer.active:
        restorer.step()
    r = next(x for x in restores if x.store == store)
    return RestoreResult(store, state.partition, r.start, r.position, r.applied, r.skipped,
                         time.monotonic() - started)
