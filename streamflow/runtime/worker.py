"""The worker loop for one processor: batch consume, process, commit on the interval.

The engine (``streamflow.runtime.engine``) does the work: tasks, committers and the
collector. This module connects it to a broker, checks the topics and contracts at start,
serves the health probes, and turns the loop until SIGTERM/SIGINT or ``stop()``.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from streamflow.config import Config, ConfigError
from streamflow.dsl.global_table import global_topics
from streamflow.dsl.topology import Processor
from streamflow.kafka import client
from streamflow.kafka.ports import KafkaAdmin
from streamflow.observability.health import serve_worker_health
from streamflow.observability.lineage import LineageEmitter, start_lineage, with_provenance
from streamflow.observability.logs import client_log_conf
from streamflow.observability.status import WorkerStatus
from streamflow.observability.tracing import batch_tracer, output_tracer
from streamflow.runtime import preflight
from streamflow.runtime.clients import consumer_conf, kafka_ports, producer_conf
from streamflow.runtime.collector import DeliveryFailed
from streamflow.runtime.contracts import check_processor as check_contracts
from streamflow.runtime.counters import worker_status
from streamflow.runtime.engine import ConsumerFatal, Engine
from streamflow.runtime.errors import ProcessingFailed, error_budget
from streamflow.runtime.identity import (
    InstanceLock,
    instance_in_use,
    resolve_identity,
    static_membership,
)
from streamflow.runtime.topics import ensure_topics, processor_topics
from streamflow.serde import SerdeContext
from streamflow.serde.encryption import KeyProvider
from streamflow.serde.keyfile import KeyFileError, provider_from_setting

log = logging.getLogger("streamflow.worker")

PUNCTUATE_EVERY_S = 0.1


def serde_context(config: Config, *, keys: KeyProvider | None = None) -> SerdeContext:
    """The serde context for a worker: a registry client built lazily from the config.

    ``keys`` (field-level encryption) defaults to the provider the ``encryption_keys``
    setting names; a bad key file raises a ConfigError naming the setting.
    """
    if keys is None:
        try:
            keys = provider_from_setting(config.encryption_keys)
        except KeyFileError as e:
            msg = f"encryption_keys: {e}"
            raise ConfigError(msg) from e

    def registry() -> Any:
        from streamflow.kafka.registry import make_registry_client

        return make_registry_client(dict(config.schema_registry))

    # without a URL, SerdeContext.registry() raises a SerdeError saying what to set
    return SerdeContext(registry_factory=registry if config.registry_url else None,
                        schemas_dir=Path(config.schemas_dir), keys=keys)


class Worker:
    """Runs one processor of a topology in this process until stopped.

    ``worker_id`` is the local index a supervisor gives its children (``--worker-id``), None
    for an unsupervised worker; with the ``instance_id`` setting and ``env`` (``POD_NAME``;
    default ``os.environ``) it makes the worker's instance id
    (:mod:`streamflow.runtime.identity`). ``keys`` is a key provider for field-level
    encryption (default: the one the ``encryption_keys`` setting names).
    """

    engine: Engine

    def __init__(self, processor: Processor, config: Config, *, worker_id: str | None = None,
                 env: Mapping[str, str] | None = None,
                 keys: KeyProvider | None = None) -> None:
        self.processor = processor
        self.config = config
        self.worker_id = worker_id
        self.identity = resolve_identity(config.instance_id,
                                         os.environ if env is None else env, worker_id)
        self.instance_id = self.identity.instance_id
        self.static = static_membership(config, self.identity)
        self.producer_conf = producer_conf(processor, config, self.instance_id)
        self.consumer_conf = consumer_conf(processor, config, self.instance_id,
                                           static=self.static)
        if config.statistics_interval_ms > 0:  # kept for metrics and probes (observability)
            self.consumer_conf["stats_cb"] = lambda raw: self.engine.counters.on_consumer_stats(
                raw)
            self.producer_conf["stats_cb"] = lambda raw: self.engine.counters.on_producer_stats(
                raw)
        # its librdkafka lines go through logging, rate-limited, served by poll() in the loop
        self._admin = KafkaAdmin({**client_log_conf(config.client_log_interval_s),
                                  **config.client_conf()})
        # the instance's own folder: two workers on one host never share a RocksDB directory
        state_dir = Path(config.state_dir) / self.instance_id
        self.lock = InstanceLock(state_dir / processor.topology.name / processor.name,
                                 self.instance_id, processor.name)
        self.engine = Engine(
            processor, kafka_ports(config, self.consumer_conf, self.producer_conf, self._admin),
            serde_ctx=serde_context(config, keys=keys), state_dir=state_dir,
            cache_entries=config.store_cache_entries, timeout_s=config.shutdown_timeout_s,
            restore_chunk=config.restore_chunk_records, restore_max_rate=config.restore_max_rate,
            max_task_idle_ms=config.max_task_idle_ms, metrics=config.metrics)
        self.engine.policy.budget = error_budget(config.max_error_ratio, config.error_window)
        # with tracing on, outputs continue the batch span's trace
        self.engine.collector.wrap_emit = output_tracer(config.tracing)
        self._stop = False
        # set once the loop stopped and committed: only then may a static member leave (a
        # failed start may be a duplicate, whose leave would remove the live worker)
        self.stopped_cleanly = False
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
        return worker_status(self.engine, self.instance_id, self.last_loop)

    def stop(self, *_: Any) -> None:
        """Ask the loop to finish its batch, commit and exit."""
        self._stop = True

    def start(self) -> bool:
        """Serve the probes, connect, check topics and contracts, and join the group.

        False when asked to stop while still waiting for the cluster (nothing was started).
        """
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
        self.lock.acquire()  # a second worker with this id on this host stops here
        # wrong credentials fail here, within seconds; SIGTERM while the broker is down ends
        # the wait (not the start-up timeout, which may outlast the pod's grace period)
        if not preflight.connect(self.config, lambda: self._stop):
            log.info("processor %s stopped before it started: Kafka at %s did not answer yet",
                     self.processor.name, self.config.bootstrap_servers)
            return False
        admin = self._admin.client
        preflight.check_permissions(admin, self.processor, self.config)  # missing ACLs too
        with preflight.permission_errors(self.processor, self.config):
            ensure_topics(admin, processor_topics(self.processor), self.config,
                          self.processor.source_topics(),
                          copartitioned=self.processor.joined_topics())
            check_contracts(self.processor, self.engine.tasks.serde_ctx)  # may refuse
            self.engine.start(lambda: self._stop)  # global tables load first
        if self.engine.consumer is None:  # stopped while the global tables loaded
            return False
        self.lineage = start_lineage(self.processor, self.config)
        reads = [*self.processor.source_topics(),
                 *(f"{t} (global)" for t in global_topics(self.processor))]
        log.info(
            "processor %s started: reading %s as group %s (%s), instance %s (from %s, %s member)",
            self.processor.name, ", ".join(reads),
            self.processor.group_id, self.processor.guarantee, self.instance_id,
            self.identity.source, "static" if self.static else "dynamic",
        )
        return True

    def run(self, install_signals: bool = True) -> None:
        """Run until SIGTERM/SIGINT (or ``stop()``); then commit and close."""
        if install_signals:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        try:
            if not self.start():
                return  # never joined: no commit, and a static member must not leave
            # the per-record path allocates many short-lived dicts and almost never cycles:
            # collect less often, and move start-up objects out of the collector's view
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 20, 100)
            self.run_loop()
            self.engine.commit()
            self.stopped_cleanly = True
        except Exception as e:
            self.engine.failed = True  # never commit past a failure
            self.failure = e
            # a fenced static member fails wherever it next touches the group: the fatal
            # event itself, or a seek/commit refused in the consumer's fatal state
            if self.static and (fenced_instance(e) or self._fenced_since()):
                self.failure = instance_in_use(
                    self.instance_id, self.processor.name,
                    f"in group {self.processor.group_id!r}: Kafka fenced this static member "
                    "because another consumer joined with the same group.instance.id")
                raise self.failure from e
            raise
        except BaseException as e:
            self.engine.failed = True
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
                self._admin.poll()
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
        if self.static and self.config.leave_on_shutdown and self.stopped_cleanly:
            self._leave_group()
        self._admin.close()
        if self.lineage is not None:  # COMPLETE, or FAIL with the error
            self.lineage.stop(self.failure)
            self.lineage = None
        self.lock.release()

    def _fenced_since(self) -> bool:
        """Whether the consumer holds a not yet consumed FENCED_INSTANCE_ID event."""
        consumer = self.engine.consumer
        if consumer is None:
            return False
        try:
            events = consumer.consume(100, 0)
        except Exception as e:
            return fenced_instance(e)
        return any(m.error() is not None and fenced_instance(ConsumerFatal(m.error()))
                   for m in events)

    def _leave_group(self) -> None:
        """Scale-down: remove this static member from its group now.

        Not after its session timeout: librdkafka's close() sends no LeaveGroup for a static
        member.
        """
        from streamflow.kafka.membership import LeaveGroupError, leave_group

        try:
            leave_group(self.config.client_conf(), self.processor.group_id, self.instance_id,
                        timeout_s=min(10.0, self.config.shutdown_timeout_s))
        except LeaveGroupError as e:
            log.warning("could not leave group %s as %s (its partitions move on after the "
                        "session timeout, %d ms): %s", self.processor.group_id,
                        self.instance_id, self.config.static_session_timeout_ms, e)
        else:
            log.info("left group %s as static member %s", self.processor.group_id,
                     self.instance_id)


def fenced_instance(error: BaseException) -> bool:
    """Whether a fatal consumer error is Kafka fencing this static member.

    Another consumer took its ``group.instance.id`` (FENCED_INSTANCE_ID).
    """
    err: Any = error.args[0] if error.args else None
    code = err.code() if hasattr(err, "code") else None
    if code == client.KafkaError.FENCED_INSTANCE_ID:
        return True
    text = str(err if err is not None else error).lower()
    return "fenced_instance_id" in text or "group.instance.id" in text


__all__ = ["ConsumerFatal", "DeliveryFailed", "ProcessingFailed", "Worker"]
