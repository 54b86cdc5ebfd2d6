"""The one way records leave a processor: sinks, dead letters and changelogs.

Kafka Streams' ``RecordCollector`` is the model. ``produce()`` refuses with ``BufferError``
when the producer's local queue is full; the collector then serves delivery reports until
there is room (backpressure) and tries again. Delivery failures are collected from the
producer's delivery callback; ``flush()`` waits for every record and raises
``DeliveryFailed`` if any was refused, so offsets are never committed past a lost record.
"""

from __future__ import annotations

import time
from typing import Any

from streamflow.errors import ProcessingError
from streamflow.record import Headers
from streamflow.runtime.ports import Producer

Emit = Any  # Callable[[str, bytes | None, bytes | None, int, Headers | None], None]


class DeliveryFailed(ProcessingError):
    """The broker did not acknowledge produced records; offsets were not committed."""


class Collector:
    """Sends records through the current producer.

    The producer is replaced when an exactly-once worker recreates it: tasks then take the new
    ``emit``.
    """

    def __init__(self, shutdown_timeout_s: float) -> None:
        self.shutdown_timeout_s = shutdown_timeout_s
        self.errors: list[str] = []
        self._producer: Any = None
        self.emit: Emit = None
        # wraps each new emit (trace context on outputs: observability.tracing.trace_outputs)
        self.wrap_emit: Any = None

    @property
    def producer(self) -> Any:
        """The producer records go through."""
        return self._producer

    @producer.setter
    def producer(self, producer: Producer | None) -> None:
        self._producer = producer
        emit = None if producer is None else _emitter(producer)
        self.emit = emit if emit is None or self.wrap_emit is None else self.wrap_emit(emit)

    def on_delivery(self, err: Any, msg: Any) -> None:
        """The producer's delivery callback (configured to report errors only)."""
        if err is not None:
            text = err.str() if hasattr(err, "str") else err
            self.errors.append(f"{msg.topic()}[{msg.partition()}]: {text}")

    def dead_letter(self, topic: str, key: bytes | None, value: bytes | None, ts: int,
                    headers: Headers | None) -> None:
        """Produce a dead letter (through the current producer)."""
        self.emit(topic, key, value, ts, headers)

    def send_to(self, topic: str, partition: int, key: bytes, value: bytes | None,
                headers: Headers) -> None:
        """Produce to an explicit partition (changelogs: task N writes partition N)."""
        producer = self._producer
        while True:
            try:
                producer.produce(topic, value, key, partition=partition, headers=headers)
                return
            except BufferError:
                producer.poll(0.05)

    def poll(self) -> None:
        """Serve delivery reports that have arrived."""
        self._producer.poll(0)

    def check(self) -> None:
        """Raise ``DeliveryFailed`` if a delivery failed since the last ``clear()``."""
        if self.errors:
            raise DeliveryFailed(
                "delivery failed, offsets not committed: " + "; ".join(self.errors[:5])
            )

    def flush(self) -> None:
        """Wait until every record is acknowledged; raise ``DeliveryFailed`` otherwise."""
        deadline = time.monotonic() + self.shutdown_timeout_s
        while self._producer.flush(1.0) > 0:
            if time.monotonic() > deadline:
                msg = (
                    f"records not acknowledged within {self.shutdown_timeout_s}s; "
                    "offsets not committed (is the broker reachable?)"
                )
                raise DeliveryFailed(msg)
        self.check()

    def clear(self) -> None:
        """Forget delivery errors (their records are being processed again)."""
        self.errors.clear()


def _emitter(producer: Producer) -> Emit:
    """``emit(topic, key, value, ts, headers)`` bound to ``producer``.

    One ``produce()`` per record, backpressure only when the queue is full.
    """
    produce = producer.produce
    poll = producer.poll

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
