"""confluent-kafka behind the engine's client interfaces (``streamflow.runtime.ports``).

The hot methods (``consume``, ``produce``, ``poll``, ``flush``) are the client's own bound
methods, so the per-record path pays nothing for the adapter; the rest turns ``(topic,
partition, offset)`` tuples into ``TopicPartition`` objects and client errors into
``TxnError``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from streamflow.kafka import client

log = logging.getLogger("streamflow.kafka")

Pairs = list[tuple[str, int]]


class KafkaGroupConsumer:
    """A group member over ``confluent_kafka.Consumer``."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self._consumer = client.make_consumer(conf)
        self.consume = self._consumer.consume  # (num_messages, timeout)
        # cooperative protocols hand out (and take back) only the partitions that move
        self._incremental = (conf.get("group.protocol") == "consumer"
                             or "cooperative" in str(conf.get("partition.assignment.strategy")))

    def subscribe(self, topics: list[str], *, on_assign: Callable[[Pairs], None],
                  on_revoke: Callable[[Pairs], None], on_lost: Callable[[Pairs], None]) -> None:
        """Join the group; the callbacks get ``(topic, partition)`` pairs."""

        def assigned(_c: Any, parts: list[Any]) -> None:
            # take the partitions before the engine sees them, so that it can pause the
            # ones whose state must be restored first (the client would only assign them
            # after the callback, and a pause of a partition not yet assigned is not kept)
            client.assign_group_partitions(self._consumer, parts, self._incremental)
            on_assign(client.tp_pairs(parts))

        self._consumer.subscribe(
            topics,
            on_assign=assigned,
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

    def lag(self, topic: str, partition: int) -> int | None:
        """The cached high watermark less the position (None when either is not known yet).

        Under read_committed the watermark counts records of open transactions too: those
        look like lag until the transaction ends.
        """
        return client.lag(self._consumer, topic, partition)

    def pause(self, partitions: Pairs) -> None:
        """Stop fetching assigned partitions (polling goes on, so the member stays)."""
        client.pause(self._consumer, partitions)

    def resume(self, partitions: Pairs) -> None:
        """Fetch paused partitions again."""
        client.resume(self._consumer, partitions)

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

    def poll(self) -> None:
        """Serve the client's queued log lines and error callbacks (when it exists)."""
        if self._admin is not None:
            self._admin.poll(0)

    def close(self) -> None:
        """Drop the client (librdkafka stops its threads and reconnect attempts)."""
        self._admin = None

    def end_offsets(self, partitions: Pairs, timeout: float = 10.0
                    ) -> dict[tuple[str, int], int]:
        """End offsets of many partitions in one ListOffsets round."""
        return client.end_offsets(self.client, partitions, timeout=timeout)


class KafkaChangelogs:
    """One long-lived consumer that reads the changelogs of every restore.

    It belongs to no group: changelog partitions are assigned to it by hand as restores start
    and taken away as they end. Created on first use.
    """

    def __init__(self, conf: dict[str, Any]) -> None:
        self._conf = conf
        self._client: Any = None
        self._assigned: set[tuple[str, int]] = set()

    @property
    def _consumer(self) -> Any:
        if self._client is None:
            self._client = client.make_consumer({
                **self._conf,
                "group.id": "streamflow-restore",  # never joined; nothing is committed
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
                "fetch.max.bytes": 64 * 1024 * 1024,
                "fetch.wait.max.ms": 10,  # a short tail must not wait out the default 500 ms
                # librdkafka >= 2.4 otherwise idles up to 1 s between fetches once its
                # prefetch queue is full (as for the group consumer, runtime/clients.py)
                "fetch.queue.backoff.ms": 10,
            })
        return self._client

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        """Low and high watermark of one partition."""
        return client.watermarks(self._consumer, topic, partition)

    def partitions(self, topic: str) -> int:
        """How many partitions ``topic`` has (from the cluster's metadata)."""
        return client.partition_count(self._consumer, topic)

    def add(self, topic: str, partition: int, start: int) -> None:
        """Read a changelog partition from ``start``."""
        client.assign(self._consumer, [(topic, partition, start)])
        self._assigned.add((topic, partition))

    def remove(self, pairs: Pairs) -> None:
        """Stop reading changelog partitions."""
        gone = sorted(set(pairs) & self._assigned)  # librdkafka aborts on any other
        if gone:
            client.unassign(self._consumer, gone)
            self._assigned.difference_update(gone)

    def consume(self, num_messages: int, timeout: float
                ) -> tuple[list[Any], list[tuple[str, int, int]]]:
        """Records of the assigned partitions, and the partitions found at their end (where).

        The end is the last stable offset (``read_committed``).
        """
        if not self._assigned:
            return [], []
        records = []
        ends: list[tuple[str, int, int]] = []
        for m in self._consumer.consume(num_messages, timeout):
            err = m.error()
            if err is None:
                records.append(m)
            elif client.partition_eof(err):
                ends.append((m.topic(), m.partition(), m.offset()))
            else:
                self._on_error(err)
        return records, ends

    def _on_error(self, err: Any) -> None:
        """A restore stops at any error."""
        raise client.KafkaException(err)

    def close(self) -> None:
        """Close the consumer (a later restore opens a new one)."""
        if self._client is not None:
            self._client.close()
            self._client = None
            self._assigned.clear()


class KafkaGlobalReader(KafkaChangelogs):
    """The consumer of the global tables' topics (``streamflow.runtime.global_tables``).

    It lives as long as the worker, so an error that passes by itself (a broker restarting)
    is logged, not raised: librdkafka reconnects and goes on from its position, and the
    records consumed with the error are kept. Others stop the worker.

    With ``statistics.interval.ms`` in ``conf``, ``statistics`` holds librdkafka's latest
    statistics (JSON, kept by the ``stats_cb`` inside ``consume()``): the global tables' lag.
    """

    def __init__(self, conf: dict[str, Any]) -> None:
        self.statistics: str | None = None
        if conf.get("statistics.interval.ms"):
            conf = {**conf, "stats_cb": self._on_stats}
        super().__init__(conf)

    def _on_stats(self, raw: str) -> None:
        self.statistics = raw

    def _on_error(self, err: Any) -> None:
        if not client.error_is_transient(err):
            raise client.KafkaException(err)
        log.warning("global tables' consumer: %s", err)
