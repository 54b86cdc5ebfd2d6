"""What happens to a record that fails: the processor's ``on_error`` policy.

``fail`` stops the processor with a message naming the record and the step; ``skip`` logs
and drops it; ``dead_letter`` produces the original key and value bytes to the dead-letter
topic with headers describing the failure. The offset of a dead-lettered record is only
committed after the dead letter is acknowledged, because dead letters go through the same
producer that is flushed before every commit.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

from streamflow.errors import ProcessingError
from streamflow.plan.compile import StepError
from streamflow.record import Headers

log = logging.getLogger("streamflow.errors")

Produce = Callable[[str, bytes | None, bytes | None, int, "Headers | None"], None]


class ProcessingFailed(ProcessingError):
    """A record failed under ``on_error="fail"``; the processor stops without committing it."""


def where(topic: str | None, partition: int | None, offset: int | None) -> str:
    """Name a record's position: ``topic[partition]@offset``."""
    return f"{topic}[{partition}]@{offset}"


def _fields(topic: str, partition: int, offset: int, step: str) -> dict[str, object]:
    """The record's position for JSON log lines (``observability.logs.RECORD_FIELDS``)."""
    return {"topic": topic, "partition": partition, "offset": offset, "step": step}


class ErrorPolicy:
    """Applies ``on_error`` to a failed record."""

    def __init__(self, mode: str, processor: str, dead_letter_topic: str, produce: Produce) -> None:
        self.mode = mode
        self.processor = processor
        self.dead_letter_topic = dead_letter_topic
        self.produce = produce
        self.skipped = 0
        self.dead_lettered = 0

    def handle(
        self,
        error: StepError,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: Headers | None,
    ) -> None:
        """Handle one failed record, or raise ``ProcessingFailed`` under ``fail``."""
        pos = where(topic, partition, offset)
        if self.mode == "fail":
            msg = (
                f"processor {self.processor!r}: record {pos} failed in step {error.step!r}: "
                f"{type(error.cause).__name__}: {error.cause}. Fix the data or the code, or set "
                "on_error='dead_letter' (or 'skip') on the processor"
            )
            raise ProcessingFailed(msg) from error.cause
        if self.mode == "skip":
            self.skipped += 1
            log.warning("skipped record %s: step %r: %s", pos, error.step, error.cause,
                        extra=_fields(topic, partition, offset, error.step))
            return
        self.dead_lettered += 1
        tb = "".join(traceback.format_exception(error.cause)).encode()[-8000:]
        dlq_headers: Headers = [
            *(headers or ()),
            ("streamflow.error.type", type(error.cause).__name__.encode()),
            ("streamflow.error.message", str(error.cause).encode()[:4000]),
            ("streamflow.error.traceback", tb),
            ("streamflow.error.step", error.step.encode()),
            ("streamflow.error.processor", self.processor.encode()),
            ("streamflow.source.topic", topic.encode()),
            ("streamflow.source.partition", str(partition).encode()),
            ("streamflow.source.offset", str(offset).encode()),
        ]
        log.warning(
            "dead-lettered record %s to %s: step %r: %s",
            pos, self.dead_letter_topic, error.step, error.cause,
            extra=_fields(topic, partition, offset, error.step),
        )
        self.produce(self.dead_letter_topic, key, value, timestamp, dlq_headers)
