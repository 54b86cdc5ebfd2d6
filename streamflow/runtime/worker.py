"""The worker loop for one processor: batch consume, process, commit on the interval.

The engine (``streamflow.runtime.engine``) does the work: tasks, committers and the
collector. This module connects it to a broker, checks the topics and contracts at start,
serves the health probes, and turns the loop until SIGTERM/SIGINT or ``stop()``.
"""

from __future__ import annotations

import gc
import logging
import signal
import time
from pathlib import Path
from typing import Any

from streamflow.config import Config, ConfigError
from streamflow.dsl.topology import Processor
from streamflow.kafka import client
from streamflow.kafka.ports import KafkaAdmin
from streamflow.observability.health import serve_worker_health
from streamflow.observability.lineage import LineageEmitter, start_lineage, with_provenance
from streamflow.observability.status import WorkerStatus
from streamflow.observability.tracing import batch_tracer, output_tracer
from streamflow.runtime.clients import consumer_conf, kafka_ports, producer_conf
from streamflow.runtime.collector import DeliveryFailed
from streamflow.runtime.contracts import check_processor as check_contracts
from streamflow.runtime.counters import worker_status
from streamflow.runtime.engine import ConsumerFatal, Engine
from streamflow.runtime.errors import ProcessingFailed, error_budget
from streamflow.runtime.topics import ensure_topics, processor_topics
from streamflow.serde import SerdeContext

log = logging.getLogger("streamflow.worker")

PUNCTUATE_EVERY_S = 0.1


def serde_context(config: Config) -> SerdeContext:
    """The serde context for a worker: a registry client built lazily from the config."""

    def registry() -> Any:
        from streamflow.kafka.registry import make_registry_client

        return make_registry_client(dict(config.schema_registry))

    # without a URL, SerdeContext.registry() raises a SerdeError saying what to set
    return SerdeContext(registry_factory=registry if config.registry_url else None,
                        schemas_dir=Path(config.schemas_dir))


class Worker:
    """Runs one processor of a topology in this process until stopped."""

    engine: Engine

    def __init__(self, processor: Processor, config: Config, *, worker_id: str = "0") -> None:
        self.processor = processor
        self.config = config
        self.worker_id = worker_id
        self.producer_conf = producer_conf(processor, config, worker_id)
        self.consumer_conf = consumer_conf(processor, config, worker_id)
        if config.statistics_interval_ms > 0:  # kept for metrics and probes (observability)
            self.consumer_conf["stats_cb"] = lambda raw: self.engine.counters.on_consumer_stats(
                raw)
            self.producer_conf["stats_cb"] = lambda raw: self.engine.counters.on_producer_stats(
                raw)
        self._admin = KafkaAdmin(config.client_conf())
        self.engine = Engine(
            processor, kafka_ports(config, self.consumer_conf, self.producer_conf, self._admin),
            serde_ctx=serde_context(config), state_dir=Path(config.state_dir),
            cache_entries=config.store_cache_entries, timeout_s=config.shutdown_timeout_s,
            restore_chunk=config.restore_chunk_records, restore_max_rate=config.restore_max_rate,
            metrics=config.metrics)
        self.engine.policy.budget = error_budget(config.max_error_ratio, config.error_window)
        # with tracing on, outputs continue the batch span's trace
        self.engine.collector.wrap_emit = output_tracer(config.tracing)
        self._stop = False
        self.last_loop: float | None = None
        self.health: Any = None
        self.lineage: LineageEmitter | None = None  # run events, when the setting is on
        self.failure: BaseException | None = None

    @property
    def processed(self) -> int:
        """Records processed since the worker started."""
        return self.engine.processed

    def status(self) -> WorkerStatus:
        """A snapshot for probes and metrics (read from another thread)."""
        return worker_status(self.engine, self.worker_id, self.last_loop)

    def stop(self, *_: Any) -> None:
        """Ask the loop to finish its batch, commit and exit."""
        self._stop = True

    def start(self) -> None:
        """Serve the probes, connect, check topics and contracts, and join the group."""
        try:  # probes answer while we connect
            c = self.config
            self.health = serve_worker_health(
                self.status, int(c.health_port), c.shutdown_timeout_s,
                broker_timeout_s=c.broker_timeout_s, stall_timeout_s=c.stall_timeout_s,
                metrics=c.metrics)
        except OSError as e:
            msg = (
                f"health_port {self.config.health_port}: cannot listen for health probes: "
                f"{e}; choose a free port (STREAMFLOW_HEALTH_PORT) or 0 to disable"
            )
            raise ConfigError(msg) from e
        admin = self._admin.client
        client.ping(admin, self.config.startup_timeout_s)
        ensure_topics(admin, processor_topics(self.processor), self.config,
                      self.processor.source_topics(),
                      copartitioned=self.processor.joined_topics())
        check_contracts(self.processor, self.engine.tasks.serde_ctx)  # may refuse
        self.engine.start()
        self.lineage = start_lineage(self.processor, self.config)
        log.info(
            "processor %s started: reading %s as group %s (%s)",
            self.processor.name, ", ".join(self.processor.source_topics()),
            self.processor.group_id, self.processor.guarantee,
        )

    def run(self, install_signals: bool = True) -> None:
        """Run until SIGTERM/SIGINT (or ``stop()``); then commit and close."""
        if install_signals:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        try:
            self.start()
            # the per-record path allocates many short-lived dicts and almost never cycles:
            # collect less often, and move start-up objects out of the collector's view
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 20, 100)
            self.run_loop()
            self.engine.commit()
        except BaseException as e:
            self.engine.failed = True  # never commit past a failure
            self.failure = e
            raise
        finally:
            self.close()

    def run_loop(self) -> None:
        """Consume in batches and process until stopped."""
        engine = self.engine
        consumer = engine.consumer
        assert consumer is not None
        committer = engine.committer
        batch = self.config.batch_size
        timeout = self.config.poll_timeout_ms / 1000.0
        eos = engine.eos
        process = with_provenance(
            batch_tracer(engine.process, enabled=self.config.tracing,
                         processor=self.processor.name, group_id=self.processor.group_id),
            enabled=self.config.provenance_headers)
        default_ms = self.config.eos_commit_interval_ms if eos else self.config.commit_interval_ms
        interval = (self.processor.commit_interval_ms or default_ms) / 1000.0
        # exactly-once: commit early once the input is drained (see Config)
        early = min(interval, self.config.eos_min_commit_interval_ms / 1000.0) if eos else None
        next_commit = time.monotonic() + interval
        next_punctuate = 0.0
        while not self._stop:
            self.last_loop = time.monotonic()
            # take what has arrived without waiting; when nothing has, wait for the first
            # record only: consume(n, t) would hold early records back until n arrive or t
            # passes, adding up to the poll timeout to every record's latency. While tasks
            # restore, never wait here: the restore consumer waits for its records instead.
            msgs = consumer.consume(batch, 0)
            if not msgs and not engine.restoring:
                msgs = consumer.consume(1, timeout)
            process(msgs)
            if engine.restoring:  # one chunk of changelog records between two polls
                engine.restore()
            now = time.monotonic()
            if now >= next_punctuate:
                engine.punctuate(int(time.time() * 1000))
                next_punctuate = now + PUNCTUATE_EVERY_S
            engine.check_deliveries()
            if now >= next_commit or (
                early is not None and committer.open and len(msgs) < batch
                and now - committer.begun_at >= early
            ):
                engine.commit()
                next_commit = now + interval

    def close(self) -> None:
        """Stop the probes, then close the engine (tasks, consumer, producer)."""
        if self.health is not None:
            self.health.stop()
            self.health = None
        self.engine.close()
        self._admin.close()
        if self.lineage is not None:  # COMPLETE, or FAIL with the error
            self.lineage.stop(self.failure)
            self.lineage = None


__all__ = ["ConsumerFatal", "DeliveryFailed", "ProcessingFailed", "Worker"]
