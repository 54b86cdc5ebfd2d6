"""One Kafka admin helper for tests, the chaos harness and the benchmarks.

:func:`discover_bootstrap` finds the cluster: ``STREAMFLOW_TEST_BOOTSTRAP_SERVERS``, else
``STREAMFLOW_BOOTSTRAP_SERVERS``, else the ``deploy/local`` stack's ``.run/stack.env``.
:class:`TopicAdmin` creates, lists and deletes topics, reads end offsets (high watermark or
last stable offset), deletes consumer groups and reads a topic to its end.

The runtime has its own wrapper (:mod:`streamflow.kafka.client`); this one is for code that
sets up and checks a cluster around streamflow. ``confluent_kafka`` is imported lazily.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from streamflow.testing.cluster import (
    ENV_BOOTSTRAP,
    STACK_ENV_BOOTSTRAP,
    ClusterUnavailable,
    LocalStack,
    find_local_stack,
    read_env_file,
)

__all__ = ["OFFSET_BEGINNING", "TopicAdmin", "discover_bootstrap"]

OFFSET_BEGINNING = -2
"""librdkafka's logical offset for "the first record of the partition"."""


def discover_bootstrap(start: Path | None = None) -> str | None:
    """Bootstrap servers of the cluster to use, or ``None`` when nothing names one.

    In order: ``STREAMFLOW_TEST_BOOTSTRAP_SERVERS``, ``STREAMFLOW_BOOTSTRAP_SERVERS``, then
    ``STREAMFLOW_BOOTSTRAP_SERVERS`` in the local stack's ``stack.env`` (the stack found from
    ``start`` or the working directory, see :func:`~streamflow.testing.cluster.find_local_stack`).
    """
    for name in (ENV_BOOTSTRAP, STACK_ENV_BOOTSTRAP):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    try:
        script = find_local_stack(start)
    except ClusterUnavailable:
        return None
    env_file = LocalStack(script).env_file
    if not env_file.is_file():
        return None
    return read_env_file(env_file).get(STACK_ENV_BOOTSTRAP) or None


class TopicAdmin:
    """A thin AdminClient wrapper: topics, end offsets, consumer groups, reading a topic."""

    def __init__(self, bootstrap_servers: str, *, conf: Mapping[str, Any] | None = None) -> None:
        from confluent_kafka.admin import AdminClient

        self.bootstrap_servers = bootstrap_servers
        config: dict[str, Any] = {"bootstrap.servers": bootstrap_servers, "log_level": 3}
        config.update(conf or {})
        self._conf = config  # read_topic's consumer connects the same way (SASL, TLS)
        self._admin: Any = AdminClient(config)

    # -- cluster and topics ---------------------------------------------------------------
    def ping(self, timeout: float = 10.0) -> int:
        """Number of brokers in the cluster; raises :class:`ClusterUnavailable` if unreachable."""
        try:
            metadata = self._admin.list_topics(timeout=timeout)
        except Exception as exc:
            msg = f"Kafka at {self.bootstrap_servers} does not answer metadata requests: {exc}"
            raise ClusterUnavailable(msg) from exc
        if not metadata.brokers:
            msg = f"Kafka at {self.bootstrap_servers} reports no brokers"
            raise ClusterUnavailable(msg)
        return len(metadata.brokers)

    def wait_ready(self, timeout: float) -> None:
        """Retry :meth:`ping` until the cluster answers or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ping(timeout=5.0)
                return
            except ClusterUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def topics(self, timeout: float = 10.0) -> set[str]:
        """The names of every topic in the cluster."""
        return set(self._admin.list_topics(timeout=timeout).topics)

    def app_topics(self, app: str, timeout: float = 15.0) -> list[str]:
        """The topics named after ``app``, sorted.

        Its internal topics (``<app>-...``, e.g. changelogs and repartition topics) and
        ``<app>.<name>`` ones.
        """
        return sorted(t for t in self.topics(timeout) if t.startswith((f"{app}-", f"{app}.")))

    def partitions(self, topic: str, timeout: float = 15.0) -> list[int]:
        """The partition numbers of ``topic``, sorted."""
        metadata = self._admin.list_topics(topic=topic, timeout=timeout)
        return sorted(metadata.topics[topic].partitions)

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        config: Mapping[str, str] | None = None,
        *,
        replication_factor: int = -1,
        timeout: float = 30.0,
    ) -> str:
        """Create ``name`` and wait until every partition has a leader.

        ``replication_factor=-1`` uses the broker's ``default.replication.factor``.
        """
        self.create_topics([name], partitions, config, replication_factor=replication_factor,
                           timeout=timeout)
        return name

    def create_topics(
        self,
        names: Iterable[str],
        partitions: int = 1,
        config: Mapping[str, str] | None = None,
        *,
        replication_factor: int = -1,
        timeout: float = 30.0,
    ) -> None:
        """Create topics (one request; existing ones are kept) and wait until all are led."""
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined,unused-ignore]

        names = list(names)
        settings = {k: str(v) for k, v in (config or {}).items()}
        specs = [NewTopic(n, num_partitions=partitions, replication_factor=replication_factor,
                          config=settings) for n in names]
        futures = self._admin.create_topics(specs, operation_timeout=timeout,
                                            request_timeout=timeout)
        for future in futures.values():
            try:
                future.result(timeout=timeout)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        for name in names:
            self.wait_for_topic(name, partitions, timeout=timeout)

    def wait_for_topic(
        self, name: str, partitions: int | None = None, timeout: float = 30.0
    ) -> None:
        """Wait until ``name`` is in the metadata with ``partitions`` partitions, all led."""
        deadline = time.monotonic() + timeout
        last = "not in the metadata"
        while True:
            metadata = self._admin.list_topics(topic=name, timeout=max(1.0, min(5.0, timeout)))
            topic = metadata.topics.get(name)
            if topic is not None and topic.error is None:
                parts = topic.partitions
                led = all(p.leader >= 0 and p.error is None for p in parts.values())
                if parts and led and (partitions is None or len(parts) == partitions):
                    return
                last = f"{len(parts)} partition(s), all led: {led}"
            elif topic is not None:
                last = str(topic.error)
            if time.monotonic() >= deadline:
                msg = f"topic {name!r} not ready after {timeout:.0f}s ({last})"
                raise TimeoutError(msg)
            time.sleep(0.1)

    def delete_topics(self, names: Iterable[str], timeout: float = 30.0) -> None:
        """Delete topics; topics that do not exist are ignored."""
        from confluent_kafka import KafkaError, KafkaException

        names = list(names)
        if not names:
            return
        futures = self._admin.delete_topics(
            names, operation_timeout=timeout, request_timeout=timeout
        )
        for future in futures.values():
            try:
                future.result(timeout=timeout)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise

    # -- offsets and groups -----------------------------------------------------------------
    def end_offsets(
        self,
        topic: str,
        partitions: Iterable[int] | None = None,
        *,
        committed_only: bool = False,
        timeout: float = 30.0,
    ) -> dict[int, int]:
        """Per partition: the high watermark, or the last stable offset.

        The last stable offset with ``committed_only``: the end a ``read_committed`` consumer
        sees; below the high watermark while a transaction is open. ``partitions`` defaults to
        all of them (one metadata request).
        """
        from confluent_kafka import IsolationLevel, TopicPartition
        from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined,unused-ignore]

        parts = self.partitions(topic) if partitions is None else list(partitions)
        level = (IsolationLevel.READ_COMMITTED if committed_only
                 else IsolationLevel.READ_UNCOMMITTED)
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call,unused-ignore]
        request = {TopicPartition(topic, p): latest for p in parts}
        futures = self._admin.list_offsets(request, isolation_level=level,
                                           request_timeout=timeout)
        return {tp.partition: f.result(timeout=2 * timeout).offset for tp, f in futures.items()}

    def groups(self, prefix: str = "", timeout: float = 10.0) -> list[str]:
        """The consumer groups whose id starts with ``prefix``."""
        listed = self._admin.list_consumer_groups(request_timeout=timeout).result()
        return sorted(g.group_id for g in listed.valid if g.group_id.startswith(prefix))

    def delete_groups(self, groups: Iterable[str], timeout: float = 15.0) -> None:
        """Delete consumer groups, best effort.

        A group that is gone or still has members closing stays as it is.
        """
        from confluent_kafka import KafkaException

        groups = list(groups)
        if not groups:
            return
        with contextlib.suppress(KafkaException):
            futures = self._admin.delete_consumer_groups(groups, request_timeout=timeout)
            for future in futures.values():
                with contextlib.suppress(KafkaException):
                    future.result(timeout=2 * timeout)

    # -- reading ------------------------------------------------------------------------------
    def read_topic(
        self,
        topic: str,
        on_message: Callable[[Any], None],
        *,
        starts: Mapping[int, int] | None = None,
        committed_only: bool = True,
        timeout: float = 300.0,
    ) -> int:
        """Read every partition of ``topic`` from ``starts`` to its current end.

        ``starts`` defaults to the beginning. Calls ``on_message`` with each
        ``confluent_kafka.Message`` in offset order per partition; returns how many were read.
        ``committed_only`` reads as ``read_committed`` (records of open or aborted transactions
        are skipped).
        """
        from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

        consumer = Consumer({
            **self._conf,
            "group.id": f"streamflow-read-{uuid.uuid4().hex}",  # assign() never joins it
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed" if committed_only else "read_uncommitted",
            "auto.offset.reset": "earliest",
            "fetch.max.bytes": 64 * 1024 * 1024,
            "fetch.wait.max.ms": 10,  # the end of a partition shows up at once
        })
        try:
            parts = self.partitions(topic)
            starts = starts or {}
            consumer.assign([TopicPartition(topic, p, starts.get(p, OFFSET_BEGINNING))
                             for p in parts])
            pending = set(parts)
            n = 0
            deadline = time.monotonic() + timeout
            while pending:
                if time.monotonic() > deadline:
                    msg = (
                        f"reading {topic}: partitions {sorted(pending)} never "
                        f"ended within {timeout:.0f}s"
                    )
                    raise TimeoutError(msg)
                for message in consumer.consume(10_000, 0.1):
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            pending.discard(message.partition())
                            continue
                        raise KafkaException(error)
                    on_message(message)
                    n += 1
            return n
        finally:
            consumer.close()
