"""The transactional producer of an exactly-once worker (the KIP-447 model).

One transactional producer per worker process; every commit interval is one transaction
holding the output records, repartition and changelog records, and the input offsets
(``send_offsets_to_transaction`` with the consumer's group metadata). The transactional id
is stable per worker (``<group>-<worker id>``), so a restarted worker fences its crashed
predecessor and aborts its open transaction at once instead of waiting for the timeout.

After an abortable error the transaction is aborted; after a fatal, fenced or ambiguous
one (a commit that timed out may still land later) the producer is closed and a new one
is created, as the Jepsen analysis of Kafka transactions recommends. Either way the
worker rewinds its tasks to the committed offsets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from streamflow.kafka import client

log = logging.getLogger("streamflow.transactions")


class Transactions:
    """Owns the transactional producer and the state of the current transaction."""

    def __init__(self, make_producer: Callable[[], Any], timeout_s: float) -> None:
        self._make = make_producer
        self.timeout_s = timeout_s
        self.producer: Any = None
        self.open = False
        self.begun_at = 0.0  # time.monotonic() of the open transaction's begin
        self.commits = 0
        self.aborts = 0
        self.recreated = 0

    def start(self) -> Any:
        """Create the producer and register its transactional id; return the producer."""
        self.producer = self._make()
        client.init_transactions(self.producer, self.timeout_s)
        self.open = False
        return self.producer

    def ensure_begun(self) -> None:
        """Begin a transaction unless one is open."""
        if not self.open:
            client.begin_transaction(self.producer)
            self.open = True
            self.begun_at = time.monotonic()

    def commit(self, consumer: Any, offsets: list[tuple[str, int, int]]) -> None:
        """Commit the open transaction with ``offsets``; raises ``client.TxnError``."""
        if not self.open:
            return
        try:
            client.commit_transaction(self.producer, consumer, offsets, self.timeout_s)
        finally:
            self.open = False
        self.commits += 1

    def recover(self, error: client.TxnError) -> Any:
        """Abort (abortable errors) or recreate the producer (everything else); return the
        producer to use from now on."""
        self.aborts += 1
        if error.abortable:
            try:
                client.abort_transaction(self.producer, self.timeout_s)
                log.warning("transaction aborted: %s", error)
                self.open = False
                return self.producer
            except client.TxnError as e:
                log.warning("abort failed (%s); recreating the producer", e)
        log.warning("recreating the transactional producer after: %s", error)
        self.close()
        self.recreated += 1
        return self.start()

    def close(self) -> None:
        """Abort what is open (best effort) and drop the producer."""
        if self.producer is not None and self.open:
            try:
                client.abort_transaction(self.producer, min(self.timeout_s, 5.0))
            except client.TxnError as e:
                log.warning("abort on close failed: %s", e)
        self.producer = None
        self.open = False
