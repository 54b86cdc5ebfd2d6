"""What happens to a record that fails: the processor's ``on_error`` policy.

``fail`` stops the processor with a message naming the record and the step; ``skip`` logs
and drops it; ``dead_letter`` produces the original key and value bytes to the dead-letter
topic with headers describing the failure. The offset of a dead-lettered record is only
committed after the dead letter is acknowledged, because dead letters go through the same
producer that is flushed before every commit.

An error budget (``max_error_ratio``, off by default) stops a processor whose share of skipped
or dead-lettered records over a sliding window (of records, or of seconds) exceeds the ratio:
a mapping bug then stops the processor with a clear message (exit code 1) instead of sending
every record to the dead-letter topic.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections import deque
from collections.abc import Callable

from streamflow.config import ConfigError
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
        self.errors: dict[tuple[str, str], int] = {}  # (step, exception type) -> failures
        self.budget: ErrorBudget | None = None
        self._failed = 0  # skipped or dead-lettered since the last account()
        self._last = ""  # the last failure, for the budget's message

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
        kind = (error.step, type(error.cause).__name__)
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if self.mode == "fail":
            msg = (
                f"processor {self.processor!r}: record {pos} failed in step {error.step!r}: "
                f"{type(error.cause).__name__}: {error.cause}. Fix the data or the code, or set "
                "on_error='dead_letter' (or 'skip') on the processor"
            )
            raise ProcessingFailed(msg) from error.cause
        self._failed += 1
        self._last = f"record {pos} in step {error.step!r}: {kind[1]}: {error.cause}"
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

    def account(self, records: int) -> None:
        """A batch of ``records`` is done: check the error budget (when there is one).

        Raises ``ProcessingFailed`` when the budget is exceeded.
        """
        failed, self._failed = self._failed, 0
        budget = self.budget
        if budget is None or not budget.add(records, failed):
            return
        action = "skipped" if self.mode == "skip" else "dead-lettered"
        msg = (
            f"processor {self.processor!r}: {budget.failed} of the last {budget.records} "
            f"records ({budget.failed / budget.records:.0%}) failed and were {action}, more "
            f"than max_error_ratio {budget.max_ratio:g} allows over {budget.describe()}; "
            f"stopping instead of {action.replace('-', ' ')} everything (nothing of this "
            f"batch is committed). Last failure: {self._last}. Fix the data or the code, or "
            "raise max_error_ratio (0 turns the budget off)"
        )
        raise ProcessingFailed(msg)


MIN_SAMPLE = 100  # a window of seconds is judged once it holds at least this many records


class ErrorBudget:
    """The share of failed records over a sliding window, fed once per batch.

    ``window`` is a number of records (the latest batches covering at least that many; judged
    once that many were seen) or, with ``seconds=True``, of seconds (judged once the window
    holds ``MIN_SAMPLE`` records).

    >>> b = ErrorBudget(0.5, 100)
    >>> b.add(60, 50), b.add(60, 20)  # 70 of 120 failed
    (False, True)
    """

    def __init__(self, max_ratio: float, window: float, *, seconds: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_ratio = max_ratio
        self.window = window
        self.seconds = seconds
        self._clock = clock
        self._batches: deque[tuple[float, int, int]] = deque()  # (time, records, failed)
        self.records = 0
        self.failed = 0

    def describe(self) -> str:
        """The window in words."""
        return f"{self.window:g}s" if self.seconds else f"{int(self.window)} records"

    def add(self, records: int, failed: int) -> bool:
        """Account one batch; return whether the budget is exceeded."""
        if records <= 0 and not failed and not self.seconds:
            return False
        now = self._clock()
        batches = self._batches
        if records > 0 or failed:
            batches.append((now, records, failed))
            self.records += records
            self.failed += failed
        if self.seconds:
            while batches and batches[0][0] < now - self.window:
                self._drop()
            enough = self.records >= MIN_SAMPLE
        else:
            while batches and self.records - batches[0][1] >= self.window:
                self._drop()
            enough = self.records >= self.window
        return enough and self.failed > self.max_ratio * self.records

    def _drop(self) -> None:
        _, records, failed = self._batches.popleft()
        self.records -= records
        self.failed -= failed


def error_budget(max_ratio: float, window: str) -> ErrorBudget | None:
    """The budget of the ``max_error_ratio`` and ``error_window`` settings (None when off).

    ``window``: a number of records (``"1000"``) or of seconds (``"60s"``).

    >>> error_budget(0.2, "60s").describe(), error_budget(0.0, "1000")
    ('60s', None)
    """
    if not 0 <= max_ratio < 1:
        msg = (f"max_error_ratio must be at least 0 (off) and below 1, got {max_ratio:g}: "
               "the share of skipped or dead-lettered records that stops the processor")
        raise ConfigError(msg)
    text = window.strip().lower()
    seconds = text.endswith("s")
    try:
        size = float(text[:-1]) if seconds else int(text)
    except ValueError:
        size = 0
    if size <= 0:
        msg = (f"error_window must be a number of records (e.g. '1000') or of seconds "
               f"(e.g. '60s'), got {window!r}")
        raise ConfigError(msg)
    if not max_ratio:
        return None
    return ErrorBudget(max_ratio, size, seconds=seconds)
