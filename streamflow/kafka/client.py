"""Thin wrappers over confluent-kafka's Consumer, Producer and AdminClient.

This package is the only one in streamflow that imports ``confluent_kafka``. The runtime
gets plain client objects from here and calls their methods; everything that needs a
confluent type (``TopicPartition``, ``NewTopic``, ...) is built here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
    OffsetSpec,
)

from streamflow.errors import ProcessingError, UnreachableError

log = logging.getLogger("streamflow.kafka")

# librdkafka's own lines go to this Python logger (and its handlers, text or JSON, with the
# worker's rate limit: streamflow.observability.logs) rather than raw to stderr, where they
# would interleave with a command's output (``%6|...|BGQUEUE|...`` after ``streamflow acls``)
CLIENT_LOGGER = "streamflow.librdkafka"

__all__ = [
    "CLIENT_LOGGER",
    "KafkaError",
    "KafkaException",
    "TopicState",
    "Unreachable",
    "commit",
    "committed",
    "create_topics",
    "delete_topics",
    "describe_topics",
    "error_is_fatal",
    "is_buffer_full",
    "make_admin",
    "make_consumer",
    "make_producer",
    "ping",
    "topic_names",
]


class Unreachable(UnreachableError):
    """The Kafka cluster did not answer in time."""


def logged(conf: dict[str, Any]) -> dict[str, Any]:
    """``conf`` with librdkafka's lines sent to ``CLIENT_LOGGER``, unless it names a logger.

    The lines are handed over when the client is polled (a consumer's ``consume``, a producer's
    ``poll`` or ``flush``); an admin client's lines at its destruction are dropped rather than
    printed.
    """
    return conf if "logger" in conf else {**conf, "logger": logging.getLogger(CLIENT_LOGGER)}


def make_consumer(conf: dict[str, Any]) -> Any:
    """A Consumer; ``conf`` is librdkafka configuration."""
    return Consumer(logged(conf))


def make_producer(conf: dict[str, Any]) -> Any:
    """A Producer; ``conf`` is librdkafka configuration (may hold ``on_delivery``)."""
    return Producer(logged(conf))


def make_admin(conf: dict[str, Any]) -> Any:
    """An AdminClient built from the client settings that apply to it."""
    return AdminClient(logged(admin_conf(conf)))


_NOT_ADMIN_PREFIXES = ("group.", "enable.auto", "auto.", "isolation.", "partition.assignment",
                       "session.timeout", "max.poll", "fetch.", "enable.idempotence", "acks",
                       "linger", "batch.", "compression", "transactional", "queue.buffering",
                       "partitioner", "delivery.report", "on_delivery", "message.timeout",
                       "enable.partition.eof", "heartbeat", "enable.gapless")


def admin_conf(conf: dict[str, Any]) -> dict[str, Any]:
    """Drop consumer/producer-only settings from ``conf``."""
    return {k: v for k, v in conf.items() if not k.startswith(_NOT_ADMIN_PREFIXES)}


def error_is_fatal(err: Any) -> bool:
    """True for errors a client cannot recover from.

    librdkafka hands a consumer's fatal error (e.g. a static member fenced by another with its
    ``group.instance.id``) out as a ``_FATAL`` event whose ``fatal()`` is False.
    """
    if hasattr(err, "code") and err.code() == KafkaError._FATAL:
        return True
    return bool(err.fatal()) if hasattr(err, "fatal") else False


# what a consumer reports while brokers restart or move leaders; librdkafka reconnects itself
_TRANSIENT = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN,
                        KafkaError._TIMED_OUT, KafkaError._RESOLVE,
                        KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE})


def error_is_transient(err: Any) -> bool:
    """True for consumer errors that pass by themselves (a broker restarting, a leader moving)."""
    if error_is_fatal(err):
        return False
    return bool(err.retriable()) or err.code() in _TRANSIENT


def is_buffer_full(exc: BaseException) -> bool:
    """True when ``produce()`` refused because the local queue is full."""
    return isinstance(exc, BufferError)


def partition_eof(err: Any) -> bool:
    """True for the end-of-partition pseudo error."""
    return bool(err.code() == KafkaError._PARTITION_EOF)


def commit(consumer: Any, offsets: Iterable[tuple[str, int, int]]) -> None:
    """Synchronously commit ``(topic, partition, next_offset)`` triples."""
    tps = [TopicPartition(t, p, o) for t, p, o in offsets]
    if tps:
        consumer.commit(offsets=tps, asynchronous=False)


def committed(consumer: Any, partitions: Iterable[tuple[str, int]], timeout: float = 10.0
              ) -> dict[tuple[str, int], int]:
    """Committed offsets of the group for ``(topic, partition)`` pairs (-1001 when none)."""
    tps = [TopicPartition(t, p) for t, p in partitions]
    return {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(tps, timeout=timeout)}


def tp_pairs(partitions: Iterable[Any]) -> list[tuple[str, int]]:
    """Turn confluent ``TopicPartition``s into ``(topic, partition)`` pairs."""
    return [(tp.topic, tp.partition) for tp in partitions]


@dataclass(frozen=True)
class TopicState:
    """What the cluster says about a topic."""

    name: str
    partitions: int
    replication: int
    config: dict[str, str]


def describe_topics(admin: Any, names: Iterable[str], timeout: float = 15.0,
                    with_config: bool = True) -> dict[str, TopicState]:
    """Partition count, replication and (optionally) configs of the topics that exist."""
    try:
        md = admin.list_topics(timeout=timeout)
    except KafkaException as e:
        raise Unreachable(str(e)) from e
    wanted = [n for n in names if n in md.topics and md.topics[n].error is None]
    configs: dict[str, dict[str, str]] = {n: {} for n in wanted}
    if with_config and wanted:
        futures = admin.describe_configs([ConfigResource("topic", n) for n in wanted])
        for res, fut in futures.items():
            entries = fut.result(timeout=timeout)
            configs[res.name] = {k: str(e.value) for k, e in entries.items()}
    out = {}
    for n in wanted:
        parts = md.topics[n].partitions
        repl = len(next(iter(parts.values())).replicas) if parts else 0
        out[n] = TopicState(n, len(parts), repl, configs[n])
    return out


def create_topics(admin: Any, specs: Iterable[tuple[str, int, int, dict[str, str]]],
                  timeout: float = 30.0) -> list[str]:
    """Create ``(name, partitions, replication, config)`` topics.

    Return those created. Topics that already exist are left alone.
    """
    new = [NewTopic(n, num_partitions=p, replication_factor=r, config=c) for n, p, r, c in specs]
    if not new:
        return []
    created = []
    for name, fut in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            fut.result(timeout=timeout)
            created.append(name)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created


def delete_topics(admin: Any, names: Iterable[str], timeout: float = 30.0) -> None:
    """Delete topics (missing ones are ignored; a name given twice is deleted once)."""
    names = list(dict.fromkeys(names))  # librdkafka crashes on a repeated name
    if not names:
        return
    for _name, fut in admin.delete_topics(names, operation_timeout=timeout).items():
        try:
            fut.result(timeout=timeout)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise


def ping(admin: Any, timeout: float) -> None:
    """Raise ``Unreachable`` unless the cluster answers a metadata request in ``timeout``."""
    topic_names(admin, timeout)


def topic_names(admin: Any, timeout: float) -> list[str]:
    """The names of the cluster's topics; ``Unreachable`` unless it answers in ``timeout``."""
    try:
        return sorted(admin.list_topics(timeout=timeout).topics)
    except KafkaException as e:
        raise Unreachable(str(e)) from e


OnDelivery = Callable[[Any, Any], None]


# a partition created a moment ago may answer these before its leader is known, and
# librdkafka does not always flag them retriable
_LEADERSHIP_MOVING = frozenset({
    KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION,
})


def watermarks(consumer: Any, topic: str, partition: int, timeout: float = 10.0
               ) -> tuple[int, int]:
    """Low and high watermark offsets of one partition."""
    for attempt in range(5):  # a topic created a moment ago may not have a leader yet
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                       timeout=timeout, cached=False)
            return int(low), int(high)
        except KafkaException as e:
            if attempt == 4 or not (e.args[0].retriable()
                                    or e.args[0].code() in _LEADERSHIP_MOVING):
                raise
            time.sleep(0.5 * (attempt + 1))
    msg = "unreachable"
    raise AssertionError(msg)


def partition_count(consumer: Any, topic: str, timeout: float = 10.0) -> int:
    """How many partitions ``topic`` has; ``Unreachable`` when the metadata does not say."""
    meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        why = meta.error if meta is not None else "no metadata"
        msg = f"cannot read the partitions of topic {topic!r}: {why}"
        raise Unreachable(msg)
    return len(meta.partitions)


def end_offsets(admin: Any, partitions: Iterable[tuple[str, int]], timeout: float = 10.0
                ) -> dict[tuple[str, int], int]:
    """The end (high watermark) of many partitions in one ListOffsets round.

    Through an admin client: a group consumer's own connection is busy with its long-poll fetch.
    """
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    request = {TopicPartition(t, p): latest for t, p in partitions}
    if not request:
        return {}
    futures = admin.list_offsets(request, request_timeout=timeout)
    return {(tp.topic, tp.partition): int(f.result().offset) for tp, f in futures.items()}


def assign(consumer: Any, partitions: Iterable[tuple[str, int, int]]) -> None:
    """Add ``(topic, partition, offset)`` to a consumer outside any group protocol."""
    consumer.incremental_assign([TopicPartition(t, p, o) for t, p, o in partitions])


def assign_group_partitions(consumer: Any, partitions: Iterable[Any], incremental: bool
                            ) -> None:
    """Take the partitions a rebalance gives, inside the assignment callback.

    ``incremental`` for the cooperative protocols (cooperative-sticky, KIP-848), which give
    only the added partitions; the eager ones give the whole new assignment.
    """
    parts = list(partitions)
    if incremental:
        consumer.incremental_assign(parts)
    else:
        consumer.assign(parts)


def lag(consumer: Any, topic: str, partition: int) -> int | None:
    """The high watermark of the last fetch less the consumer's position, None if unknown.

    No request: both come from librdkafka's cache. The position is past transaction markers.
    """
    tp = TopicPartition(topic, partition)
    try:
        high: int = consumer.get_watermark_offsets(tp, cached=True)[1]
        position: int = consumer.position([tp])[0].offset
    except KafkaException:
        return None
    if high < 0 or position < 0:
        return None
    return max(high - position, 0)


def pause(consumer: Any, partitions: Iterable[tuple[str, int]]) -> None:
    """Stop fetching ``(topic, partition)`` pairs; they stay assigned."""
    tps = [TopicPartition(t, p) for t, p in partitions]
    if tps:
        consumer.pause(tps)


def resume(consumer: Any, partitions: Iterable[tuple[str, int]]) -> None:
    """Fetch paused ``(topic, partition)`` pairs again."""
    tps = [TopicPartition(t, p) for t, p in partitions]
    if tps:
        consumer.resume(tps)


def unassign(consumer: Any, partitions: Iterable[tuple[str, int]]) -> None:
    """Remove ``(topic, partition)`` pairs from a manually assigned consumer."""
    tps = [TopicPartition(t, p) for t, p in partitions]
    if tps:
        consumer.incremental_unassign(tps)


def seek(consumer: Any, topic: str, partition: int, offset: int) -> None:
    """Move a consumer's position (negative offsets: -2 beginning, -1 end)."""
    consumer.seek(TopicPartition(topic, partition, offset))


OFFSET_BEGINNING = -2


class TxnError(ProcessingError):
    """A transaction failed.

    ``abortable``: abort and retry with the same producer; otherwise (fatal, fenced or ambiguous)
    the producer must be recreated.
    """

    def __init__(self, message: str, abortable: bool) -> None:
        super().__init__(message)
        self.abortable = abortable


def txn_error(e: KafkaException, what: str) -> TxnError:
    """The ``TxnError`` for a client error raised while a transaction was open."""
    err = e.args[0] if e.args else None
    abortable = bool(err is not None and hasattr(err, "txn_requires_abort")
                     and err.txn_requires_abort())
    return TxnError(f"{what}: {err}", abortable)


def init_transactions(producer: Any, timeout: float) -> None:
    """Register the transactional id (fencing older producers with the same id)."""
    try:
        producer.init_transactions(timeout)
    except KafkaException as e:
        raise txn_error(e, "init_transactions") from e


def begin_transaction(producer: Any) -> None:
    """Start a transaction."""
    try:
        producer.begin_transaction()
    except KafkaException as e:
        raise txn_error(e, "begin_transaction") from e


def commit_transaction(producer: Any, group_metadata: Any,
                       offsets: Iterable[tuple[str, int, int]], timeout: float) -> None:
    """Add the input offsets to the transaction and commit it (KIP-447)."""
    try:
        tps = [TopicPartition(t, p, o) for t, p, o in offsets]
        if tps:
            producer.send_offsets_to_transaction(tps, group_metadata, timeout)
        producer.commit_transaction(timeout)
    except KafkaException as e:
        raise txn_error(e, "commit_transaction") from e


def abort_transaction(producer: Any, timeout: float) -> None:
    """Abort the open transaction."""
    try:
        producer.abort_transaction(timeout)
    except KafkaException as e:
        raise txn_error(e, "abort_transaction") from e
