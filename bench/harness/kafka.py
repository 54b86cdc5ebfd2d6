"""The benchmark's Kafka side, on the shared admin helper
(:class:`streamflow.testing.admin.TopicAdmin`): topics for a run, end offsets polled while it
runs, the seeded input, reading an output back, and deleting everything a run left."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, Producer

from bench.scenarios import Expectation, Scenario
from streamflow.testing.admin import TopicAdmin
from streamflow.testing.cluster import ClusterUnavailable


class Kafka:
    """The benchmark's view of the broker."""

    def __init__(self, bootstrap: str, conf: dict[str, Any] | None = None,
                 env: dict[str, str] | None = None) -> None:
        """``conf``: the harness's extra client settings (SASL, TLS); ``env``: the
        implementation's (``STREAMFLOW_KAFKA_*``)."""
        self.bootstrap = bootstrap
        self.conf = dict(conf or {})
        self.env = dict(env or {})
        # log_level 4: no "partition count changed" notices when our topics get deleted.
        self.admin = TopicAdmin(bootstrap, conf={"log_level": 4, **self.conf})

    def wait_ready(self, timeout: float) -> None:
        try:
            self.admin.wait_ready(timeout)
        except ClusterUnavailable as e:
            raise SystemExit(f"broker at {self.bootstrap} not reachable: {e}") from e

    def create_topic(self, name: str, partitions: int) -> None:
        # retention.ms=-1: the seeded data carries 2024 timestamps; don't let retention eat it.
        self.admin.create_topic(name, partitions, {"retention.ms": "-1"}, replication_factor=1)
        deadline = time.monotonic() + 30
        while self.end_offsets(name, partitions) is None:  # the leaders answer offset requests
            if time.monotonic() > deadline:
                raise SystemExit(f"topic {name} not ready after 30 s")
            time.sleep(0.1)

    def end_offsets(self, topic: str, partitions: int) -> list[int] | None:
        """The high watermark of each partition, or None while the broker cannot tell."""
        try:
            ends = self.admin.end_offsets(topic, range(partitions), timeout=10)
        except KafkaException:
            return None
        return [ends[p] for p in range(partitions)]

    def count(self, topic: str, partitions: int) -> int | None:
        offs = self.end_offsets(topic, partitions)
        return None if offs is None else sum(offs)

    def delete_prefixed(self, prefix: str) -> list[str]:
        """Delete every topic and consumer group whose name starts with prefix, and every
        topic that contains it (Quix names its internal topics ``changelog__<group>--...``)."""
        topics = sorted(t for t in self.admin.topics() if prefix in t)
        try:
            self.admin.delete_topics(topics)
        except KafkaException as e:
            print(f"bench: could not delete topic: {e}", file=sys.stderr)
        try:
            # a group whose members are still closing (or already gone) stays
            self.admin.delete_groups(self.admin.groups(prefix))
        except KafkaException as e:
            print(f"bench: could not delete consumer groups: {e}", file=sys.stderr)
        return topics

    def produce_dataset(
        self, topic: str, scenario: Scenario, n: int, seed: int, exp: Expectation
    ) -> dict[str, float]:
        """Produce the scenario's ``n`` records; those with a ``side`` go to ``<topic>-<side>``."""
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "linger.ms": 50,
                "batch.size": 1_000_000,
                "compression.type": "none",
                "queue.buffering.max.messages": 1_000_000,
                "queue.buffering.max.kbytes": 1_048_576,
                "partitioner": "murmur2_random",  # Java-compatible key hashing
                "acks": "all",
                **self.conf,
            }
        )
        errors: list[str] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        t0 = time.monotonic()
        nbytes = 0
        produce, poll = producer.produce, producer.poll
        for i, rec in enumerate(scenario.records(n, seed)):
            exp.add_input(rec)
            nbytes += len(rec.value)
            while True:
                try:
                    produce(
                        f"{topic}-{rec.side}" if rec.side else topic,
                        rec.value,
                        rec.key,
                        timestamp=rec.timestamp_ms,
                        on_delivery=on_delivery,
                    )
                    break
                except BufferError:
                    poll(0.05)
            if i % 10_000 == 0:
                poll(0)
        remaining = producer.flush(120)
        elapsed = time.monotonic() - t0
        if remaining or errors:
            raise SystemExit(f"producing the input failed: {remaining} undelivered, {errors[:3]}")
        return {"seconds": elapsed, "avg_value_bytes": nbytes / max(n, 1)}

    def read_all(self, topic: str, sink: Callable[[Any, Any], None]) -> int:
        """Read the whole topic (to its current end, read_committed) into sink(key, value)."""
        try:
            return self.admin.read_topic(topic, lambda m: sink(m.key(), m.value()), timeout=300)
        except TimeoutError as e:  # the checker reports what is missing
            print(f"bench: {e}", file=sys.stderr)
            return -1
