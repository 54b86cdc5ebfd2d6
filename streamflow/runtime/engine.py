"""One processor's engine: its tasks, committer, collector and group consumer, wired.

The worker drives it from its loop against a broker; ``TopologyTestDriver`` drives the very same
engine over in-memory clients.

The engine owns the protocol between them: what a rebalance commits, what a lost partition
aborts, what a failed transaction rewinds.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamflow.dsl.policies import PHASES
from streamflow.errors import ProcessingError
from streamflow.kafka.client import KafkaException, error_is_fatal
from streamflow.runtime.collector import Collector
from streamflow.runtime.commit import Committer, make_committer
from streamflow.runtime.counters import Counters
from streamflow.runtime.errors import ErrorPolicy
from streamflow.runtime.global_tables import GlobalTables, global_tables
from streamflow.runtime.ports import GroupConsumer, Ports
from streamflow.runtime.tasks import TaskManager
from streamflow.serde import SerdeContext

if TYPE_CHECKING:
    from collections.abc import Callable

    from streamflow.dsl.topology import Processor

log = logging.getLogger("streamflow.engine")


class ConsumerFatal(KafkaException, ProcessingError):
    """A fatal error of the group consumer: the worker stops.

    It is never retried as a broken transaction would be.
    """


class Engine:
    """Runs the tasks of one processor over ``ports``."""

    def __init__(self, processor: Processor, ports: Ports, *, serde_ctx: SerdeContext,
                 state_dir: Path, backend: str | None = None, cache_entries: int = 1_000_000,
                 timeout_s: float = 30.0, clock: Callable[[], int] | None = None,
                 restore_chunk: int = 20_000, restore_max_rate: float = 0.0,
                 max_task_idle_ms: int = 0, metrics: bool = True) -> None:
        self.processor = processor
        self.ports = ports
        self.eos = processor.guarantee == "exactly_once"
        # metrics=False: no per-output accounting (produced counts, latency histogram)
        self.counters = Counters(outputs=metrics)
        self.collector = Collector(timeout_s, self.counters.outputs)
        self.committer: Committer = make_committer(
            self.eos, lambda: ports.producer(self.collector.on_delivery), self.collector,
            timeout_s)
        self.tasks = TaskManager(processor, state_dir=state_dir, backend=backend,
                                 serde_ctx=serde_ctx, changelogs=ports.changelogs,
                                 admin=ports.admin, cache_entries=cache_entries, clock=clock,
                                 restore_chunk=restore_chunk,
                                 restore_max_rate=restore_max_rate,
                                 max_task_idle_ms=max_task_idle_ms)
        # global tables: read whole before the group is joined, polled before each batch
        self.globals: GlobalTables | None = global_tables(
            processor, ports.global_tables, state_dir=self.tasks.state_dir,
            backend=self.tasks.backend, serde_ctx=serde_ctx)
        if self.globals is not None:
            self.tasks.global_stores = self.globals.stores  # filled by start()
        self.policy = ErrorPolicy(processor.policies, processor.name,
                                  processor.dead_letter_topic, self.collector.dead_letter,
                                  steps={ph: processor.step_policies(ph) for ph in PHASES})
        self.consumer: GroupConsumer | None = None
        self.failed = False  # once set, nothing more is committed or checkpointed
        self.joined = False  # a first assignment came (possibly of nothing)
        self.processed = 0

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, stop: Callable[[], bool] | None = None) -> None:
        """Load the global tables, create the producer and the consumer, and join the group.

        ``stop()`` true ends the global tables' loading early (a worker asked to stop).
        """
        if self.globals is not None and not self.globals.bootstrap(stop):
            return
        self.committer.start()
        self.tasks.emit = self.collector.emit
        self.consumer = self.tasks.consumer = self.ports.consumer()
        self.consumer.subscribe(self.processor.source_topics(), on_assign=self.on_assign,
                                on_revoke=self.on_revoke, on_lost=self.on_lost)

    def close(self) -> None:
        """Close the tasks, leave the group, and close the producer.

        Tasks are checkpointed unless failed; a transaction left open by a failure is aborted.
        """
        self.tasks.close(checkpoint=not self.failed and self.consumer is not None)
        if self.globals is not None:
            self.globals.close()
        if self.consumer is not None:
            try:
                self.consumer.close()
            except Exception as e:  # already closed or broker gone
                log.warning("closing consumer: %s", e)
            self.consumer = self.tasks.consumer = None
        if self.collector.producer is not None:
            self.committer.close()

    @property
    def ready(self) -> bool:
        """True once the group assigned partitions and every assigned task is restored."""
        return self.joined and not self.tasks.restoring

    @property
    def restoring(self) -> bool:
        """True while a task restores its stores (``restore()`` has work)."""
        return self.tasks.restoring

    # -- partitions --------------------------------------------------------------------
    def on_assign(self, pairs: list[tuple[str, int]]) -> None:
        """Open the tasks of the assigned partitions (those with stores start restoring)."""
        self.counters.rebalances["assigned"] += 1
        log.info("assigned %s", _fmt(pairs))
        self.tasks.assign(pairs)
        self.joined = True

    def restore(self) -> None:
        """Restore one chunk of changelog records; called between polls while ``restoring``."""
        self.tasks.restore()

    def on_revoke(self, pairs: list[tuple[str, int]]) -> None:
        """Commit what was processed of the revoked partitions, then close their tasks."""
        self.counters.rebalances["revoked"] += 1
        log.info("revoking %s", _fmt(pairs))
        try:
            self.commit(only=set(pairs))
        finally:
            self.tasks.forget(pairs, checkpoint=not self.failed)

    def on_lost(self, pairs: list[tuple[str, int]]) -> None:
        """Partitions taken away without a revocation.

        This worker missed its session timeout: another worker owns them now, so nothing of them
        may be committed or checkpointed here.
        """
        self.counters.rebalances["lost"] += 1
        log.warning("lost %s (not committing)", _fmt(pairs))
        rewind = self.committer.lost()
        self.tasks.forget(pairs, checkpoint=False)
        if rewind:
            self._rewound()

    # -- processing --------------------------------------------------------------------
    def process(self, msgs: list[Any]) -> None:
        """Process one consumed batch.

        Under exactly-once a broken transaction (e.g. one aborted by the coordinator after a long
        pause) rewinds to the committed state; anything else propagates. Then the batch is
        counted (outputs, processing time) and the error budget checked.
        """
        started = time.perf_counter()
        n = len(msgs)
        if self.globals is not None:  # the global tables' news first
            self.globals.poll()
        try:
            if msgs or self.tasks.buffered:  # aligned tasks may process buffered records
                self.committer.begin()
            n = self.tasks.process(msgs, self.policy, self._consumer_error)
            self.processed += n
            self.collector.poll()
        except Exception as e:
            if isinstance(e, ConsumerFatal) or not self.committer.recoverable(e):
                raise
            self.committer.recover(e, "produce")
            self._rewound()
        counters = self.counters
        if msgs:
            counters.batch.observe(time.perf_counter() - started)
        counters.account(time.time() * 1000.0)
        self.policy.account(n)

    def punctuate(self, wall_ms: int) -> None:
        """Run time-driven steps on the wall clock."""
        try:
            self.tasks.punctuate(wall_ms, self.committer.begin)
        except Exception as e:
            if not self.committer.recoverable(e):
                raise
            self.committer.recover(e, "punctuate")
            self._rewound()

    def _consumer_error(self, err: Any) -> None:
        if error_is_fatal(err):
            raise ConsumerFatal(err)
        log.warning("consumer: %s", err)

    # -- committing --------------------------------------------------------------------
    def commit(self, only: set[tuple[str, int]] | None = None) -> bool:
        """Commit what was processed.

        Return False when an exactly-once commit failed and the tasks were rewound to the last
        committed state instead.
        """
        consumer = self.consumer
        if consumer is None or self.collector.producer is None or self.failed:
            return True
        # exactly-once: the transaction holds the outputs of every partition processed
        # since the last commit, so it must hold all their offsets too
        offsets = self.tasks.offsets(None if self.eos else only)
        started = time.perf_counter()
        try:
            self.committer.commit(consumer, offsets,
                                  lambda: self.tasks.flush_stores(self.collector.send_to))
        except Exception as e:
            if not self.committer.recoverable(e):
                self.failed = True
                raise
            self.committer.recover(e, "commit")
            self._rewound()
            return False
        self.counters.commit.observe(time.perf_counter() - started)
        log.debug("committed %d offsets: %s", len(offsets), offsets)
        self.tasks.committed(offsets)
        return True

    def _rewound(self) -> None:
        """Rewind the tasks (the committer has already aborted or replaced the producer)."""
        self.tasks.emit = self.collector.emit
        self.tasks.rewind()

    def check_deliveries(self) -> None:
        """At least once: stop at once when a delivery failed.

        Exactly-once finds out at commit and rewinds.
        """
        if not self.eos:
            self.collector.check()


def _fmt(pairs: list[tuple[str, int]]) -> str:
    return ", ".join(f"{t}[{p}]" for t, p in sorted(pairs)) or "nothing"
