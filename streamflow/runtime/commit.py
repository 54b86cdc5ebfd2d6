"""Committers: how a processor makes its progress durable, behind one interface.

**At-least-once**: write the stores' changes to their changelogs, flush the producer and
check every delivery, then commit the consumer offsets. A failure stops the processor
before the offsets are committed: the records are processed again after a restart.

**Exactly-once** (the KIP-447 model, as Kafka Streams' ``exactly_once_v2``): one
transactional producer per worker; every commit interval is one transaction holding the
outputs, the changelog records and the input offsets (sent with the consumer group's
metadata). The transactional id is stable per worker, so a restarted worker fences its
crashed predecessor and aborts its open transaction at once. After an abortable error the
transaction is aborted; after a fatal, fenced or ambiguous one (a commit that timed out may
still land later) the producer is closed and a new one created, as the Jepsen analysis of
Kafka transactions recommends. Either way the engine rewinds its tasks to the committed
offsets (``recover()`` returns, the caller rewinds).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from streamflow.kafka.client import KafkaException, TxnError, txn_error
from streamflow.runtime.collector import Collector
from streamflow.runtime.ports import GroupConsumer, Offsets, Producer

log = logging.getLogger("streamflow.commit")

MakeProducer = Callable[[], Producer]


class AtLeastOnce:
    """Flush, check deliveries, then commit offsets."""

    eos = False

    def __init__(self, make_producer: MakeProducer, collector: Collector) -> None:
        self._make = make_producer
        self.collector = collector
        self.open = False  # never a transaction at least once
        self.begun_at = 0.0
        self.commits = 0
        self.aborts = 0
        self.last_commit: float | None = None  # time.monotonic() of the last commit

    def start(self) -> None:
        """Create the producer."""
        self.collector.producer = self._make()

    def begin(self) -> None:
        """Nothing to begin at least once."""

    def commit(self, consumer: GroupConsumer, offsets: Offsets,
               flush_stores: Callable[[], None]) -> None:
        """Changelogs, then every delivery acknowledged, then the offsets."""
        flush_stores()
        self.collector.flush()
        consumer.commit(offsets)
        self.commits += 1
        self.last_commit = time.monotonic()

    def recoverable(self, error: BaseException) -> bool:
        """At least once nothing is retried in place: the worker stops uncommitted."""
        return False

    def recover(self, error: BaseException, what: str) -> None:
        """Never called (nothing is recoverable)."""
        raise error

    def lost(self) -> bool:
        """Partitions were lost: nothing to abort. Returns whether to rewind (no)."""
        return False

    def close(self) -> None:
        """Wait for what is still queued (best effort) and drop the producer."""
        producer = self.collector.producer
        if producer is not None:
            producer.flush(self.collector.shutdown_timeout_s)
        self.collector.producer = None


class ExactlyOnce:
    """One transaction per commit interval through a transactional producer."""

    eos = True

    def __init__(self, make_producer: MakeProducer, collector: Collector,
                 timeout_s: float) -> None:
        self._make = make_producer
        self.collector = collector
        self.timeout_s = timeout_s
        self.open = False
        self.begun_at = 0.0  # time.monotonic() of the open transaction's begin
        self.commits = 0
        self.aborts = 0
        self.recreated = 0
        self.last_commit: float | None = None  # time.monotonic() of the last commit

    def start(self) -> None:
        """Create the producer and register its transactional id."""
        producer = self._make()
        producer.init_transactions(self.timeout_s)
        self.collector.producer = producer
        self.open = False

    def begin(self) -> None:
        """Begin a transaction unless one is open."""
        if not self.open:
            self.collector.producer.begin_transaction()
            self.open = True
            self.begun_at = time.monotonic()

    def commit(self, consumer: GroupConsumer, offsets: Offsets,
               flush_stores: Callable[[], None]) -> None:
        """Changelogs and offsets into the transaction, then commit it.

        Raises ``TxnError`` or ``KafkaException``; the caller then calls ``recover()``.
        """
        self.begin()
        flush_stores()
        try:
            self.collector.producer.commit_transaction(offsets, consumer.group_metadata(),
                                                       self.timeout_s)
        finally:
            self.open = False
        self.commits += 1
        self.last_commit = time.monotonic()

    def recoverable(self, error: BaseException) -> bool:
        """Errors of the producer or the transaction are: abort and rewind."""
        return isinstance(error, (TxnError, KafkaException))

    def recover(self, error: BaseException, what: str) -> None:
        """Abort (abortable errors) or recreate the producer (everything else)."""
        err = error if isinstance(error, TxnError) else (
            txn_error(error, what) if isinstance(error, KafkaException)
            else TxnError(f"{what}: {error}", abortable=False))
        self.aborts += 1
        self.collector.clear()
        if err.abortable:
            try:
                self.collector.producer.abort_transaction(self.timeout_s)
                log.warning("transaction aborted: %s", err)
                self.open = False
                return
            except TxnError as e:
                log.warning("abort failed (%s); recreating the producer", e)
        log.warning("recreating the transactional producer after: %s", err)
        self.close()
        self.recreated += 1
        self.start()

    def lost(self) -> bool:
        """Partitions were lost: the open transaction holds their outputs too, so abort it.

        Returns whether the remaining tasks must rewind.
        """
        if not self.open:
            return False
        self.recover(TxnError("partitions lost", abortable=True), "lost")
        return True

    def close(self) -> None:
        """Abort what is open (best effort) and drop the producer."""
        producer = self.collector.producer
        if producer is not None and self.open:
            try:
                producer.abort_transaction(min(self.timeout_s, 5.0))
            except TxnError as e:
                log.warning("abort on close failed: %s", e)
        self.collector.producer = None
        self.open = False


Committer = AtLeastOnce | ExactlyOnce


def make_committer(eos: bool, make_producer: MakeProducer, collector: Collector,
                   timeout_s: float) -> Committer:
    """The committer of a processor's guarantee."""
    if eos:
        return ExactlyOnce(make_producer, collector, timeout_s)
    return AtLeastOnce(make_producer, collector)


__all__ = ["AtLeastOnce", "Committer", "ExactlyOnce", "make_committer"]
