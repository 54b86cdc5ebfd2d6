"""The small client interfaces the task engine runs on.

``streamflow.kafka`` implements them over confluent-kafka; ``streamflow.testing`` implements
them in memory, so ``TopologyTestDriver`` runs the same engine (tasks, committers, collector)
as a worker does against a broker. Positions are plain ``(topic, partition)`` pairs and
``(topic, partition, offset)`` triples; no client type crosses this boundary.

A ``Message`` is whatever the consumer hands out, read through the methods confluent-kafka's
``Message`` has (the hot loop calls them directly: no wrapper per record).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from streamflow.record import Headers

TopicPartitions = list[tuple[str, int]]
Offsets = list[tuple[str, int, int]]
OnPartitions = Callable[[TopicPartitions], None]
OnDelivery = Callable[[Any, Any], None]


class Message(Protocol):
    """One consumed record (or an error event when ``error()`` is not None)."""

    def error(self) -> Any: ...
    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def timestamp(self) -> tuple[int, int]: ...
    def headers(self) -> Headers | None: ...


class GroupConsumer(Protocol):
    """A member of the processor's consumer group. Partition callbacks run inside
    ``consume()``, as librdkafka runs them inside its poll."""

    def subscribe(self, topics: list[str], *, on_assign: OnPartitions,
                  on_revoke: OnPartitions, on_lost: OnPartitions) -> None: ...
    def consume(self, num_messages: int, timeout: float) -> list[Any]: ...
    def commit(self, offsets: Offsets) -> None: ...
    def committed(self, partitions: TopicPartitions, timeout: float
                  ) -> dict[tuple[str, int], int]: ...
    def seek(self, topic: str, partition: int, offset: int) -> None: ...
    def group_metadata(self) -> Any: ...
    def close(self) -> None: ...


class Producer(Protocol):
    """Sends records; ``produce`` raises ``BufferError`` when its local queue is full.
    A transactional producer also has the transaction methods, which raise
    ``streamflow.kafka.client.TxnError``."""

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                partition: int = -1, timestamp: int = 0,
                headers: Headers | None = None) -> None: ...
    def poll(self, timeout: float) -> int: ...
    def flush(self, timeout: float) -> int: ...
    def init_transactions(self, timeout: float) -> None: ...
    def begin_transaction(self) -> None: ...
    def commit_transaction(self, offsets: Offsets, group_metadata: Any,
                           timeout: float) -> None: ...
    def abort_transaction(self, timeout: float) -> None: ...


class Admin(Protocol):
    """Cluster metadata the engine needs while running."""

    def end_offsets(self, partitions: TopicPartitions, timeout: float = 10.0
                    ) -> dict[tuple[str, int], int]: ...


class ChangelogReader(Protocol):
    """Reads a changelog partition outside any group (``read_committed``), for restores."""

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]: ...
    def read(self, topic: str, partition: int, start: int) -> Iterator[list[Any]]:
        """Batches of messages from ``start`` to the end of the partition."""
        ...


@dataclass(frozen=True)
class Ports:
    """How one processor's engine reaches the cluster."""

    consumer: Callable[[], GroupConsumer]
    producer: Callable[[OnDelivery], Producer]
    admin: Admin
    changelogs: ChangelogReader
