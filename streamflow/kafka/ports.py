"""confluent-kafka behind the engine's client interfaces (``streamflow.runtime.ports``).

The hot methods (``consume``, ``produce``, ``poll``, ``flush``) are the client's own bound
methods, so the per-record path pays nothing for the adapter; the rest turns ``(topic,
partition, offset)`` tuples into ``TopicPartition`` objects and client errors into
``TxnError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from streamflow.kafka import client

Pairs = list[tuple[str, int]]


class KafkaGroupConsumer:
    """A group member over ``confluent_kafka.Consumer``."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self._consumer = client.make_consumer(conf)
        self.consume = self._consumer.consume  # (num_messages, timeout)

    def subscribe(self, topics: list[str], *, on_assign: Callable[[Pairs], None],
                  on_revoke: Callable[[Pairs], None], on_lost: Callable[[Pairs], None]) -> None:
        """Join the group; the callbacks get ``(topic, partition)`` pairs."""
        self._consumer.subscribe(
            topics,
            on_assign=lambda _c, parts: on_assign(client.tp_pairs(parts)),
            on_revoke=lambda _c, parts: on_revoke(client.tp_pairs(parts)),
            on_lost=lambda _c, parts: on_lost(client.tp_pairs(parts)),
        )

    def commit(self, offsets: list[tuple[str, int, int]]) -> None:
        """Synchronously commit ``(topic, partition, next offset)`` triples."""
        client.commit(self._consumer, offsets)

    def committed(self, partitions: Pairs, timeout: float) -> dict[tuple[str, int], int]:
        """The group's committed offsets (negative when none)."""
        return client.committed(self._consumer, partitions, timeout=timeout)

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Move the fetch position of an assigned partition."""
        client.seek(self._consumer, topic, partition, offset)

    def group_metadata(self) -> Any:
        """What a transaction needs to commit this group's offsets (KIP-447)."""
        return self._consumer.consumer_group_metadata()

    def close(self) -> None:
        """Leave the group."""
        self._consumer.close()


class KafkaProducer:
    """A (possibly transactional) producer over ``confluent_kafka.Producer``."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self._producer = client.make_producer(conf)
        self.produce = self._producer.produce
        self.poll = self._producer.poll
        self.flush = self._producer.flush

    def init_transactions(self, timeout: float) -> None:
        """Register the transactional id, fencing older producers with it."""
        client.init_transactions(self._producer, timeout)

    def begin_transaction(self) -> None:
        """Start a transaction."""
        client.begin_transaction(self._producer)

    def commit_transaction(self, offsets: list[tuple[str, int, int]], group_metadata: Any,
                           timeout: float) -> None:
        """Add the input offsets to the transaction and commit it."""
        client.commit_transaction(self._producer, group_metadata, offsets, timeout)

    def abort_transaction(self, timeout: float) -> None:
        """Abort the open transaction."""
        client.abort_transaction(self._producer, timeout)


class KafkaAdmin:
    """The admin calls the engine makes while running (created on first use)."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self._conf = conf
        self._admin: Any = None

    @property
    def client(self) -> Any:
        """The underlying ``AdminClient``."""
        if self._admin is None:
            self._admin = client.make_admin(self._conf)
        return self._admin

    def close(self) -> None:
        """Drop the client (librdkafka stops its threads and reconnect attempts)."""
        self._admin = None

    def end_offsets(self, partitions: Pairs, timeout: float = 10.0
                    ) -> dict[tuple[str, int], int]:
        """End offsets of many partitions in one ListOffsets round."""
        return client.end_offsets(self.client, partitions, timeout=timeout)


class KafkaChangelogs:
    """Reads changelog partitions with a short-lived assigned consumer per read."""

    def __init__(self, conf: dict[str, Any], batch: int = 20_000) -> None:
        self._conf = conf
        self._batch = batch

    def _consumer(self, topic: str) -> Any:
        return client.make_consumer({
            **self._conf,
            "group.id": f"streamflow-restore-{topic}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "fetch.max.bytes": 64 * 1024 * 1024,
            "fetch.wait.max.ms": 10,  # a short tail must not wait out the default 500 ms
        })

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        """Low and high watermark of one partition."""
        consumer = self._consumer(topic)
        try:
            return client.watermarks(consumer, topic, partition)
        finally:
            consumer.close()

    def read(self, topic: str, partition: int, start: int) -> Iterator[list[Any]]:
        """Batches of messages from ``start`` until the end of the partition.

        The end is the last stable offset (``read_committed``).
        """
        consumer = self._consumer(topic)
        try:
            client.assign(consumer, [(topic, partition, start)])
            while True:
                batch = []
                for m in consumer.consume(self._batch, 0.05):
                    err = m.error()
                    if err is None:
                        batch.append(m)
                    elif client.partition_eof(err):
                        yield batch
                        return
                    else:
                        raise client.KafkaException(err)
                yield batch
        finally:
            consumer.close()
