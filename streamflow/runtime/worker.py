"""The worker loop for one processor: batch consume, run the compiled chains, produce, commit.

At-least-once commit protocol (DESIGN.md): every ``commit_interval_ms`` flush the producer,
check delivery errors, then commit the offsets of the records processed. A delivery failure
stops the processor without committing, so nothing is lost: on restart the uncommitted
records are processed again (duplicates are bounded by one commit interval).
"""

from __future__ import annotations

import gc
import logging
import signal
import time
from pathlib import Path
from typing import Any

from streamflow.config import Config
from streamflow.dsl.topology import Processor
from streamflow.kafka import client
from streamflow.observability.health import serve_worker_health
from streamflow.plan.compile import StepError, TaskContext, compile_task
from streamflow.record import Headers
from streamflow.runtime.contracts import check_processor as check_contracts
from streamflow.runtime.errors import ErrorPolicy, ProcessingFailed
from streamflow.runtime.topics import ensure_topics, processor_topics
from streamflow.runtime.transactions import Transactions
from streamflow.serde import SerdeContext
from streamflow.state.changelog import restore_store
from streamflow.state.task_state import TaskState

log = logging.getLogger("streamflow.worker")


class DeliveryFailed(Exception):
    """The broker did not acknowledge produced records; offsets were not committed."""


class ConsumerFatal(client.KafkaException):
    """A fatal error of the group consumer: the worker stops (never retried as a broken
    transaction would be)."""


class _Route:
    """Where records of one (topic, partition) go, and how far they are processed."""

    __slots__ = ("committed", "ctx", "entry", "position")

    def __init__(self, entry: Any, ctx: TaskContext) -> None:
        self.entry = entry
        self.ctx = ctx
        self.position = -1  # next offset to process; -1 = nothing processed since assignment
        self.committed = -1


class _Task:
    """One partition of the processor: its compiled chains and its stores."""

    __slots__ = ("compiled", "partition", "state")

    def __init__(self, partition: int, compiled: Any, state: TaskState) -> None:
        self.partition = partition
        self.compiled = compiled
        self.state = state


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

    def __init__(self, processor: Processor, config: Config, *, worker_id: str = "0") -> None:
        self.processor = processor
        self.config = config
        self.worker_id = worker_id
        self.serde_ctx = serde_context(config)
        self._stop = False
        self._failed = False
        self._delivery_errors: list[str] = []
        self._routes: dict[tuple[str, int], _Route] = {}
        self._tasks: dict[int, _Task] = {}
        self.state_dir = Path(config.state_dir)
        self.processed = 0
        self.assigned: list[tuple[str, int]] = []
        self.ready = False
        self.restoring = False
        self.last_loop = time.monotonic()
        self.health: Any = None
        # Kafka's Java clients always set TCP_NODELAY; librdkafka leaves Nagle on, which holds
        # back small pipelined requests (the per-partition produces of a transaction) ~40 ms
        base = {"socket.nagle.disable": True, **config.client_conf()}
        self._producer_conf = {
            **base,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "partitioner": "murmur2_random",
            "delivery.report.only.error": True,
            "on_delivery": self._on_delivery,
            **config.producer,
        }
        self._consumer_conf = {
            **base,
            "group.id": processor.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            # stateful processors keep partition N of every input in one task: the range
            # assignor gives one member the same partition numbers of co-partitioned topics
            "partition.assignment.strategy": (
                "range" if processor.is_stateful() else "cooperative-sticky"
            ),
            "isolation.level": "read_committed",
            "client.id": f"{processor.topology.name}.{processor.name}.{worker_id}",
            # librdkafka >= 2.4 otherwise idles up to 1 s between fetches once its prefetch
            # queue is full, which halves throughput of a loop that drains it in batches
            "fetch.queue.backoff.ms": 10,
            # a crashed worker's partitions move on after 10 s, not the 45 s default
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 2000,
            **config.consumer,
        }
        self.eos = processor.guarantee == "exactly_once"
        if self.eos:
            self._producer_conf["transactional.id"] = f"{processor.group_id}-{worker_id}"
            self._producer_conf.setdefault("transaction.timeout.ms", 30000)
            # a transaction begun while the previous one's markers are still being written
            # is refused with CONCURRENT_TRANSACTIONS until they are; retry soon (as the Java
            # client does, 20 ms) rather than librdkafka's 100 ms doubling up to 1 s
            self._producer_conf.setdefault("retry.backoff.ms", 20)
            self._producer_conf.setdefault("retry.backoff.max.ms", 200)
        self._txn = Transactions(lambda: client.make_producer(self._producer_conf),
                                 config.shutdown_timeout_s)
        self.producer: Any = None
        self.consumer: Any = None
        self._admin: Any = None  # for checkpoints: one ListOffsets for many partitions
        self.policy = ErrorPolicy(processor.on_error, processor.name,
                                  processor.dead_letter_topic, self._emit)

    # -- producing ----------------------------------------------------------------------
    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._delivery_errors.append(
                f"{msg.topic()}[{msg.partition()}]: {err.str() if hasattr(err, 'str') else err}"
            )

    def _bound_emit(self) -> Any:
        """``emit`` for compiled tasks, bound to the current producer (tasks are recompiled
        when an exactly-once worker replaces its producer)."""
        produce = self.producer.produce
        poll = self.producer.poll

        def emit(topic: str, key: bytes | None, value: bytes | None, ts: int,
                 headers: Headers | None) -> None:
            try:
                produce(topic, value, key, timestamp=ts, headers=headers)
            except BufferError:
                while True:  # backpressure: serve deliveries until the queue has room
                    poll(0.05)
                    try:
                        produce(topic, value, key, timestamp=ts, headers=headers)
                        return
                    except BufferError:
                        continue

        return emit

    def _emit(self, topic: str, key: bytes | None, value: bytes | None, ts: int,
              headers: Headers | None) -> None:
        produce = self.producer.produce
        while True:
            try:
                produce(topic, value, key, timestamp=ts, headers=headers)
                return
            except BufferError:
                # backpressure: the local queue is full; serve deliveries and try again
                self.producer.poll(0.05)

    # -- partitions ---------------------------------------------------------------------
    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        pairs = client.tp_pairs(partitions)
        self.ready = False
        log.info("assigned %s", _fmt(pairs))
        new_parts = sorted({p for _, p in pairs} - set(self._tasks))
        for part in new_parts:
            self._tasks[part] = self._open_task(part)
        for topic, part in pairs:
            task = self._tasks[part]
            self._routes[(topic, part)] = _Route(task.compiled.entries[topic],
                                                 task.compiled.context)
        self.assigned = sorted(self._routes)
        self._share_cache()
        self.ready = True

    def _open_task(self, part: int) -> _Task:
        state = TaskState(self.processor, part, self.state_dir, self.processor.store_backend,
                          self.serde_ctx)
        if state.stores:
            self.restoring = True
            sources = self.processor.source_topics()
            # read_committed: waits for stable offsets, up to the transaction timeout
            committed = {t: o for (t, _), o in client.committed(
                self.consumer, [(t, part) for t in sources], timeout=60.0).items()}
            for store in state.stores:
                restore_store(state, store, self.config.client_conf(), committed)
            self.restoring = False
        ctx = TaskContext(self.processor.name, part, self._bound_emit(), self.serde_ctx,
                          state.stores)
        return _Task(part, compile_task(self.processor, ctx), state)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        pairs = client.tp_pairs(partitions)
        log.info("revoking %s", _fmt(pairs))
        try:
            self.commit(only=set(pairs))
        finally:
            self._forget(pairs)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        """Partitions taken away without a revocation (this worker missed its session
        timeout): another worker owns them now, so nothing of them may be committed or
        checkpointed here."""
        pairs = client.tp_pairs(partitions)
        log.warning("lost %s (not committing)", _fmt(pairs))
        aborted = False
        if self.eos and self._txn.open:
            # the open transaction holds outputs of the lost partitions too: abort it
            self.producer = self._txn.recover(client.TxnError("partitions lost", True))
            aborted = True
        self._forget(pairs, checkpoint=False)
        if aborted:
            self._rewind()  # the partitions still owned go back to their committed offsets

    def _forget(self, pairs: list[tuple[str, int]], *, checkpoint: bool = True) -> None:
        for tp in pairs:
            self._routes.pop(tp, None)
        live = {p for _, p in self._routes}
        self._close_tasks([self._tasks.pop(p) for p in list(self._tasks) if p not in live],
                          checkpoint=checkpoint)
        self.assigned = sorted(self._routes)
        self._share_cache()

    def _share_cache(self) -> None:
        """Split the worker's store cache budget evenly over the stores of its tasks."""
        stores = [s for t in self._tasks.values() for s in t.state.stores.values()]
        for store in stores:
            store.resize_cache(self.config.store_cache_entries // len(stores))

    def _close_tasks(self, tasks: list[_Task], *, checkpoint: bool = True) -> None:
        if checkpoint and not self._failed and self.consumer is not None:
            self._checkpoint(tasks)
        for task in tasks:
            task.state.close()

    def _checkpoint(self, tasks: list[_Task]) -> None:
        """Record each store's changelog end as restored-up-to, for all ``tasks`` at once."""
        wanted = [(topic, t.partition) for t in tasks for topic in t.state.changelogs.values()]
        if not wanted:
            return
        try:
            if self._admin is None:
                self._admin = client.make_admin(self.config.client_conf())
            ends = client.end_offsets(self._admin, wanted)
        except Exception as e:  # a checkpoint is an optimisation; never fail on it
            log.warning("no checkpoint for %d changelog partitions: %s", len(wanted), e)
            return
        for task in tasks:
            for store, topic in task.state.changelogs.items():
                task.state.write_checkpoint(store, ends[(topic, task.partition)])

    # -- committing ---------------------------------------------------------------------
    def _produce_to(self, topic: str, partition: int, key: bytes, value: bytes | None,
                    headers: Headers) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, partition=partition, headers=headers)
                return
            except BufferError:
                self.producer.poll(0.05)

    def commit(self, only: set[tuple[str, int]] | None = None) -> None:
        """Commit what was processed: at-least-once flushes stores to their changelogs and
        the producer, checks deliveries, then commits offsets; exactly-once does the same
        inside one transaction. Afterwards the stores' batches go to the local databases."""
        if self.producer is None or self.consumer is None or self._failed:
            return
        # exactly-once: the transaction holds the outputs of every partition processed since
        # the last commit, so it must hold all their offsets too, not only the revoked ones
        offsets = [(tp[0], tp[1], r.position) for tp, r in self._routes.items()
                   if r.position > r.committed and (only is None or self.eos or tp in only)]
        if self.eos:
            try:
                self._txn.ensure_begun()
                self._flush_stores()
                self._txn.commit(self.consumer, offsets)
            except (client.TxnError, client.KafkaException) as e:
                self._restart_transaction(e, "commit")
                return
        else:
            self._flush_stores()
            self._flush_producer()
            client.commit(self.consumer, offsets)
        log.debug("committed %d offsets: %s", len(offsets), offsets)
        for t, p, off in offsets:
            self._routes[(t, p)].committed = off
        # a commit that carried a task's offsets proves this worker still owns it, so the
        # changelog's end is this worker's own writes: only then may it be checkpointed
        proven = {p for _, p, _ in offsets}
        for task in self._tasks.values():
            task.state.write_pending()
        self._checkpoint([t for t in self._tasks.values() if t.state.stores
                          and t.partition in proven and t.state.checkpoint_due(30.0)])

    def _flush_stores(self) -> None:
        """Every store's changes since the last commit to its changelog, each record with
        the source positions it reflects."""
        for task in self._tasks.values():
            if task.state.stores:
                positions = {t: r.position for (t, p), r in self._routes.items()
                             if p == task.partition and r.position >= 0}
                n = task.state.flush(self._produce_to, positions)
                log.debug("task %d: %d changelog records", task.partition, n)

    def _restart_transaction(self, error: client.TxnError | client.KafkaException,
                             what: str) -> None:
        """Exactly-once: the open transaction failed; abort it (or replace the producer)
        and rewind every task to its committed offsets and state."""
        err = error if isinstance(error, client.TxnError) else client.txn_error(error, what)
        self.producer = self._txn.recover(err)
        self._rewind()

    def _flush_producer(self) -> None:
        deadline = time.monotonic() + self.config.shutdown_timeout_s
        while self.producer.flush(1.0) > 0:
            if time.monotonic() > deadline:
                raise DeliveryFailed(
                    f"records not acknowledged within {self.config.shutdown_timeout_s}s; "
                    "offsets not committed (is the broker reachable?)"
                )
        if self._delivery_errors:
            errors = "; ".join(self._delivery_errors[:5])
            raise DeliveryFailed(f"delivery failed, offsets not committed: {errors}")

    def _rewind(self) -> None:
        """After a failed transaction: drop uncommitted state, reopen every task from its
        store and changelog, and seek every input back to its committed offset."""
        self._delivery_errors.clear()
        parts = list(self._tasks)
        for part in parts:
            task = self._tasks.pop(part)
            task.state.discard_uncommitted()
            task.state.close()
        committed = client.committed(self.consumer, list(self._routes), timeout=60.0)
        for part in parts:
            self._tasks[part] = self._open_task(part)
        for (topic, part), _old in list(self._routes.items()):
            task = self._tasks[part]
            route = _Route(task.compiled.entries[topic], task.compiled.context)
            off = committed.get((topic, part), -1)
            route.position = route.committed = off if off >= 0 else -1
            self._routes[(topic, part)] = route
            client.seek(self.consumer, topic, part, off if off >= 0 else client.OFFSET_BEGINNING)
        self._share_cache()
        log.warning("rewound %d tasks to their committed offsets", len(parts))

    # -- the loop -----------------------------------------------------------------------
    def stop(self, *_: Any) -> None:
        """Ask the loop to finish its batch, commit and exit."""
        self._stop = True

    def start(self) -> None:
        """Connect, check topics and subscribe (before ``run_loop``)."""
        self.health = serve_worker_health(self)  # probes answer while we connect
        admin = self._admin = client.make_admin(self.config.client_conf())
        client.ping(admin, self.config.startup_timeout_s)
        ensure_topics(admin, processor_topics(self.processor), self.config,
                      self.processor.source_topics(),
                      copartitioned=self.processor.joined_topics())
        check_contracts(self.processor, self.serde_ctx)  # Avro vs registry; may refuse
        self.producer = (self._txn.start() if self.eos
                         else client.make_producer(self._producer_conf))
        self.consumer = client.make_consumer(self._consumer_conf)
        self.consumer.subscribe(
            self.processor.source_topics(),
            on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost,
        )
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
        self.start()
        # the per-record path allocates many short-lived dicts and almost never cycles:
        # collect less often, and move start-up objects out of the collector's view
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        try:
            self.run_loop()
            self.commit()
        except BaseException:
            self._failed = True  # never commit past a failure
            raise
        finally:
            self.close()

    def run_loop(self) -> None:
        """Consume in batches and process until stopped."""
        consumer = self.consumer
        routes = self._routes
        eos = self.eos
        policy = self.policy
        batch = self.config.batch_size
        timeout = self.config.poll_timeout_ms / 1000.0
        default_ms = self.config.eos_commit_interval_ms if eos else self.config.commit_interval_ms
        interval = (self.processor.commit_interval_ms or default_ms) / 1000.0
        # exactly-once: commit early once the input is drained (see Config)
        early = min(interval, self.config.eos_min_commit_interval_ms / 1000.0) if eos else None
        txn = self._txn
        next_commit = time.monotonic() + interval
        next_punctuate = 0.0
        processed = 0
        while not self._stop:
            self.last_loop = time.monotonic()
            # take what has arrived without waiting; when nothing has, wait for the first
            # record only: consume(n, t) would hold early records back until n arrive or t
            # passes, adding up to the poll timeout to every record's latency
            msgs = consumer.consume(batch, 0) or consumer.consume(1, timeout)
            try:
                if eos and msgs:
                    txn.ensure_begun()
                route: Any = None
                last_part = -1
                last_topic = ""
                for m in msgs:
                    if m.error() is not None:
                        self._consumer_error(m.error())
                        continue
                    part = m.partition()
                    topic = m.topic()
                    if part != last_part or topic != last_topic:  # partition runs
                        route = routes.get((topic, part))
                        last_part, last_topic = part, topic
                        if route is None:
                            continue  # revoked in the meantime
                        entry = route.entry
                        ctx = route.ctx
                        ctx.topic = topic
                    elif route is None:
                        continue
                    off = m.offset()
                    ctx.offset = off
                    try:
                        entry(m.key(), m.value(), m.timestamp()[1], m.headers())
                    except StepError as e:
                        policy.handle(e, topic, part, off, m.key(), m.value(),
                                      m.timestamp()[1], m.headers())
                    route.position = off + 1
                processed += len(msgs)
                self.producer.poll(0)
                now = time.monotonic()
                if now >= next_punctuate:
                    self._punctuate()
                    next_punctuate = now + 0.1
            except (client.KafkaException, client.TxnError) as e:
                if not eos or isinstance(e, ConsumerFatal):
                    raise
                # the transaction broke under us (e.g. aborted by the coordinator after a
                # long pause): produce() now refuses; start over from the committed state
                self._restart_transaction(e, "produce")
                next_commit = time.monotonic() + interval
                continue
            if self._delivery_errors and not eos:  # under EOS the commit fails and rewinds
                raise DeliveryFailed(
                    "delivery failed, offsets not committed: "
                    + "; ".join(self._delivery_errors[:5])
                )
            if now >= next_commit or (
                early is not None and txn.open and len(msgs) < batch
                and now - txn.begun_at >= early
            ):
                self.processed = processed
                self.commit()
                next_commit = now + interval
        self.processed = processed

    def _punctuate(self) -> None:
        """Let time-driven steps (windows closing on idleness) act on the wall clock."""
        wall_ms = int(time.time() * 1000)
        for task in self._tasks.values():
            ctx = task.compiled.context
            if ctx.punctuators:
                if self.eos:
                    self._txn.ensure_begun()
                ctx.topic = None
                ctx.offset = None
                try:
                    ctx.punctuate(wall_ms)
                except StepError as e:
                    raise ProcessingFailed(
                        f"processor {self.processor.name!r}: step {e.step!r} failed while "
                        f"acting on the wall clock: {e.cause}"
                    ) from e.cause

    def _consumer_error(self, err: Any) -> None:
        if client.error_is_fatal(err):
            raise ConsumerFatal(err)
        log.warning("consumer: %s", err)

    def close(self) -> None:
        """Close the consumer (leaving the group), the stores and the producer."""
        if self.health is not None:
            self.health.stop()
            self.health = None
        self._close_tasks([self._tasks.pop(p) for p in list(self._tasks)])
        if self.consumer is not None:
            try:
                self.consumer.close()
            except Exception as e:  # already closed or broker gone
                log.warning("closing consumer: %s", e)
            self.consumer = None
        if self.producer is not None:
            if self.eos:
                self._txn.close()  # aborts a transaction left open by a failure
            else:
                self.producer.flush(self.config.shutdown_timeout_s)
            self.producer = None


def _fmt(pairs: list[tuple[str, int]]) -> str:
    return ", ".join(f"{t}[{p}]" for t, p in sorted(pairs)) or "nothing"


__all__ = ["DeliveryFailed", "ProcessingFailed", "Worker"]
