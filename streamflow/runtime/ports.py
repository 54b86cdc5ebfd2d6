"""The small client interfaces the task engine runs on.

``streamflow.kafka`` implements them over confluent-kafka; ``streamflow.testing`` implements
them in memory, so ``TopologyTestDriver`` runs the same engine (tasks, committers, collector)
as a worker does against a broker. Positions are plain ``(topic, partition)`` pairs and
``(topic, partition, offset)`` triples; no client type crosses this boundary.

A ``Message`` is whatever the consumer hands out, read through the methods confluent-kafka's
``Message`` has (the hot loop calls them directly: no wrapper per record).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from streamflow.record import Headers

TopicPartitions = list[tuple[str, int]]
Offsets = list[tuple[str, int, int]]
OnPartitions = Callable[[TopicPartitions], None]
OnDelivery = Callable[[Any, Any], None]


class Message(Protocol):
    """One consumed record (or an error event when ``error()`` is not None)."""

    def error(self) -> Any:
        """The error of an error event, None for a record."""

    def topic(self) -> str:
        """The record's topic."""

    def partition(self) -> int:
        """The record's partition."""

    def offset(self) -> int:
        """The record's offset."""

    def key(self) -> bytes | None:
        """The record's key bytes."""

    def value(self) -> bytes | None:
        """The record's value bytes (None for a tombstone)."""

    def timestamp(self) -> tuple[int, int]:
        """``(timestamp type, milliseconds)``, as confluent-kafka gives it."""

    def headers(self) -> Headers | None:
        """The record's headers."""


class GroupConsumer(Protocol):
    """A member of the processor's consumer group.

    Partition callbacks run inside ``consume()``, as librdkafka runs them inside its poll.
    """

    def subscribe(self, topics: list[str], *, on_assign: OnPartitions,
                  on_revoke: OnPartitions, on_lost: OnPartitions) -> None:
        """Join the group for ``topics``, with the partition callbacks."""

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        """Up to ``num_messages`` messages, waiting at most ``timeout`` seconds."""

    def commit(self, offsets: Offsets) -> None:
        """Commit ``offsets`` (next offsets to read) for the group, synchronously."""

    def committed(self, partitions: TopicPartitions, timeout: float
                  ) -> dict[tuple[str, int], int]:
        """The group's committed offsets of ``partitions``."""

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Continue reading a partition from ``offset``."""

    def lag(self, topic: str, partition: int) -> int | None:
        """Records of an assigned partition not handed out yet, as of the last fetch.

        None when not known (nothing fetched or consumed since the assignment). Cheap: no
        request to the broker.
        """

    def pause(self, partitions: TopicPartitions) -> None:
        """Stop fetching ``partitions`` (they stay assigned; the member stays in the group)."""

    def resume(self, partitions: TopicPartitions) -> None:
        """Fetch ``partitions`` again."""

    def group_metadata(self) -> Any:
        """The group metadata a transactional commit of offsets needs."""

    def close(self) -> None:
        """Leave the group."""


class Producer(Protocol):
    """Sends records.

    ``produce`` raises ``BufferError`` when its local queue is full. A transactional producer also
    has the transaction methods, which raise ``streamflow.kafka.client.TxnError``.
    """

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                partition: int = -1, timestamp: int = 0,
                headers: Headers | None = None) -> None:
        """Queue one record for sending."""

    def poll(self, timeout: float) -> int:
        """Serve delivery reports; return how many were served."""

    def flush(self, timeout: float) -> int:
        """Wait for queued records; return how many are still queued."""

    def init_transactions(self, timeout: float) -> None:
        """Fence older producers with the same transactional id."""

    def begin_transaction(self) -> None:
        """Start a transaction."""

    def commit_transaction(self, offsets: Offsets, group_metadata: Any,
                           timeout: float) -> None:
        """Commit the transaction with the consumer ``offsets`` in it."""

    def abort_transaction(self, timeout: float) -> None:
        """Abort the open transaction."""


class Admin(Protocol):
    """Cluster metadata the engine needs while running."""

    def end_offsets(self, partitions: TopicPartitions, timeout: float = 10.0
                    ) -> dict[tuple[str, int], int]:
        """The end offset (last stable offset) of each partition."""


class RestoreConsumer(Protocol):
    """One long-lived consumer outside any group (``read_committed``) reading changelogs.

    Changelog partitions are added and removed as restores start and end; ``consume`` reads
    from all of them at once, between polls of the group consumer.
    """

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        """``(low, high)`` watermarks of a partition."""

    def partitions(self, topic: str) -> int:
        """How many partitions ``topic`` has."""
        ...

    def add(self, topic: str, partition: int, start: int) -> None:
        """Read ``partition`` of ``topic`` from offset ``start``."""

    def remove(self, pairs: TopicPartitions) -> None:
        """Stop reading these partitions."""

    def consume(self, num_messages: int, timeout: float) -> tuple[list[Any], Offsets]:
        """Up to ``num_messages`` records, and the partitions found at their end (and where)."""
        ...

    def close(self) -> None:
        """Release the client."""


@dataclass(frozen=True)
class Ports:
    """How one processor's engine reaches the cluster."""

    consumer: Callable[[], GroupConsumer]
    producer: Callable[[OnDelivery], Producer]
    admin: Admin
    changelogs: RestoreConsumer
    # a second consumer outside any group, reading the global tables' topics whole
    # (streamflow.runtime.global_tables); None for an engine that joins no global table
    global_tables: RestoreConsumer | None = None
