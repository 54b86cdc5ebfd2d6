"""The librdkafka settings of a worker's clients, and the engine's ports over a broker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamflow.config import Config, ConfigError
from streamflow.kafka.ports import (
    KafkaAdmin,
    KafkaChangelogs,
    KafkaGlobalReader,
    KafkaGroupConsumer,
    KafkaProducer,
)
from streamflow.observability.logs import client_log_conf
from streamflow.runtime.alignment import aligned
from streamflow.runtime.ports import OnDelivery, Ports

if TYPE_CHECKING:
    from streamflow.dsl.topology import Processor


def producer_conf(processor: Processor, config: Config, instance_id: str) -> dict[str, Any]:
    """The producer's settings (transactional under exactly-once).

    The transactional id is ``<group>-<instance id>``: stable per worker slot, so a restarted
    worker fences its crashed predecessor. The user's ``[producer]`` settings win over every
    default.
    """
    conf: dict[str, Any] = {
        **_base(config),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "partitioner": "murmur2_random",
        "delivery.report.only.error": True,
        **_statistics(config),
    }
    if processor.guarantee == "exactly_once":
        conf.update({
            "transactional.id": f"{processor.group_id}-{instance_id}",
            "transaction.timeout.ms": 30000,
            # a transaction begun while the previous one's markers are still being written
            # is refused with CONCURRENT_TRANSACTIONS until they are; retry soon (as the Java
            # client does, 20 ms) rather than librdkafka's 100 ms doubling up to 1 s
            "retry.backoff.ms": 20,
            "retry.backoff.max.ms": 200,
        })
    return {**conf, **config.producer}


def consumer_conf(processor: Processor, config: Config, instance_id: str, *,
                  static: bool = False) -> dict[str, Any]:
    """The group consumer's settings; the user's ``[consumer]`` settings win.

    ``static``: join as the static member ``instance_id`` (KIP-345), with the longer
    ``static_session_timeout_ms``.
    """
    return {
        **_base(config),
        "group.id": processor.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        **group_protocol_conf(processor, config),
        "isolation.level": "read_committed",
        "client.id": f"{processor.topology.name}.{processor.name}.{instance_id}",
        # librdkafka >= 2.4 otherwise idles up to 1 s between fetches once its prefetch
        # queue is full, which halves throughput of a loop that drains it in batches
        "fetch.queue.backoff.ms": 10,
        # aligned tasks learn from partition-EOF events that an input has no lag
        **({"enable.partition.eof": True} if aligned(processor) else {}),
        **_statistics(config),
        **(_static_member(config, instance_id) if static else {}),
        **config.consumer,
    }


def group_protocol_conf(processor: Processor, config: Config) -> dict[str, Any]:
    """The rebalance protocol settings of ``config.group_protocol``.

    Stateful processors keep partition N of every input in one task, so their inputs' partition
    N must go to one member: the range assignor does that (client-side under "classic", on the
    broker under "consumer", KIP-848). Under "consumer" the session and heartbeat are the
    broker's settings (``group.consumer.session.timeout.ms``...), not the client's.
    """
    stateful = processor.is_stateful()
    assignor = config.group_assignor
    if assignor and assignor != "range" and stateful and len(processor.source_topics()) > 1:
        msg = (
            f"group_assignor {assignor!r} cannot keep the co-partitioned inputs of processor "
            f"{processor.name!r} ({', '.join(processor.source_topics())}) together: use "
            "\"range\" (the default for stateful processors)"
        )
        raise ConfigError(msg)
    if config.group_protocol == "consumer":
        return {"group.protocol": "consumer",
                "group.remote.assignor": assignor or ("range" if stateful else "uniform")}
    return {
        "partition.assignment.strategy": assignor or (
            "range" if stateful else "cooperative-sticky"),
        # a crashed worker's partitions move on after 10 s, not the 45 s default
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 2000,
    }


def _statistics(config: Config) -> dict[str, Any]:
    # librdkafka's statistics feed the metrics (lag, bytes) and the probes (broker silence);
    # the worker adds the stats_cb that keeps them
    interval = config.statistics_interval_ms
    return {"statistics.interval.ms": interval} if interval > 0 else {}


def _static_member(config: Config, instance_id: str) -> dict[str, Any]:
    # a static member that restarts within the session timeout gets its own partitions back
    # with no rebalance; a crashed one is noticed only after it (and it never sends a
    # LeaveGroup on close: see streamflow.kafka.membership for leaving at once). Under
    # KIP-848 the session timeout is the broker's (group.consumer.session.timeout.ms, 45 s)
    if config.group_protocol == "consumer":
        return {"group.instance.id": instance_id}
    return {
        "group.instance.id": instance_id,
        "session.timeout.ms": config.static_session_timeout_ms,
        "heartbeat.interval.ms": max(1000, min(3000, config.static_session_timeout_ms // 10)),
    }


def _base(config: Config) -> dict[str, Any]:
    # Kafka's Java clients always set TCP_NODELAY; librdkafka leaves Nagle on, which holds
    # back small pipelined requests (the per-partition produces of a transaction) ~40 ms;
    # librdkafka's lines go through Python logging, rate-limited (observability.logs)
    return {"socket.nagle.disable": True, **client_log_conf(config.client_log_interval_s),
            **config.client_conf()}


def kafka_ports(config: Config, cconf: dict[str, Any], pconf: dict[str, Any],
                admin: KafkaAdmin | None = None) -> Ports:
    """The engine's ports over the configured cluster.

    ``cconf`` and ``pconf`` are the group consumer's and the producer's settings
    (``consumer_conf``, ``producer_conf``).
    """

    def producer(on_delivery: OnDelivery) -> KafkaProducer:
        return KafkaProducer({**pconf, "on_delivery": on_delivery})

    outside_group = {**client_log_conf(config.client_log_interval_s), **config.client_conf()}
    return Ports(
        consumer=lambda: KafkaGroupConsumer(cconf),
        producer=producer,
        admin=admin or KafkaAdmin(config.client_conf()),
        # restore consumers log as the group consumer does (an admin client's lines would wait
        # for a poll() nobody makes, so it keeps librdkafka's own logging)
        changelogs=KafkaChangelogs(outside_group),
        # the global tables' topics, read whole (its client is made on first use); its
        # statistics give the global tables' lag
        global_tables=KafkaGlobalReader({**outside_group, **_statistics(config)}),
    )
