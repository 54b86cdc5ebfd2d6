"""What happens to a record that fails: the processor's policy for the phase that failed.

A record fails while being decoded (``deserialize``), in user code (``process``) or while an
output is serialized (``produce``); the processor has a policy per phase
(``on_deserialize_error``, ``on_processing_error``, ``on_produce_error``; ``on_error`` is the
shorthand); a step's own ``on_error=`` overrides ``on_processing_error`` for exceptions in
that step, and a sink's ``on_produce_error=`` (``to(topic, on_produce_error=...)``) the
processor's for its outputs (see :mod:`streamflow.dsl.policies`). A policy that is a function
is called with an :class:`~streamflow.dsl.policies.ErrorContext` and returns the action.

``fail`` stops the processor with a message naming the record and the step; ``skip`` logs
and drops it; ``dead_letter`` produces the original key and value bytes to the dead-letter
topic with headers describing the failure (``streamflow.error.phase`` says which phase). The
offset of a dead-lettered record is only committed after the dead letter is acknowledged,
because dead letters go through the same producer that is flushed before every commit. A
delivery failure (the broker refusing an output) is never a policy's to decide: it stops the
processor without committing, so under either guarantee nothing is lost.

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
from collections.abc import Callable, Mapping

from streamflow.config import ConfigError
from streamflow.dsl.policies import (
    ACTIONS,
    ARGUMENT,
    ErrorAction,
    ErrorContext,
    OnError,
    Phase,
    policy_label,
)
from streamflow.errors import ProcessingError
from streamflow.plan.compile import StepError
from streamflow.record import Headers

log = logging.getLogger("streamflow.errors")

Produce = Callable[[str, bytes | None, bytes | None, int, "Headers | None"], None]

PHASE_HEADER = "streamflow.error.phase"
"""The dead-letter header naming the phase that failed: deserialize, process or produce."""


STEP_ARGUMENT: dict[Phase, str] = {"deserialize": "on_deserialize_error", "process": "on_error",
                                   "produce": "on_produce_error"}
"""The step argument that overrides each phase's policy (the source has none)."""


class ProcessingFailed(ProcessingError):
    """A record failed under a ``fail`` policy; the processor stops without committing it."""


def where(topic: str | None, partition: int | None, offset: int | None) -> str:
    """Name a record's position: ``topic[partition]@offset``."""
    return f"{topic}[{partition}]@{offset}"


def _fields(topic: str, partition: int, offset: int, step: str) -> dict[str, object]:
    """The record's position for JSON log lines (``observability.logs.RECORD_FIELDS``)."""
    return {"topic": topic, "partition": partition, "offset": offset, "step": step}


class ErrorPolicy:
    """Applies a processor's error policies to a failed record.

    ``policies`` holds each phase's policy; ``steps`` per phase the steps whose own policy
    overrides the phase's (``on_error=`` of a step for ``process``, ``on_produce_error=`` of
    a sink for ``produce``): the most specific policy decides.
    """

    def __init__(self, policies: Mapping[Phase, OnError], processor: str,
                 dead_letter_topic: str, produce: Produce, *,
                 steps: Mapping[Phase, Mapping[str, OnError]] | None = None) -> None:
        self.policies = dict(policies)
        self.steps = {ph: dict(by_step) for ph, by_step in (steps or {}).items()}
        self.processor = processor
        self.dead_letter_topic = dead_letter_topic
        self.produce = produce
        self.skipped = 0
        self.dead_lettered = 0
        self.errors: dict[tuple[str, str], int] = {}  # (step, exception type) -> failures
        self.budget: ErrorBudget | None = None
        self._failed = 0  # skipped or dead-lettered since the last account()
        self._last = ""  # the last failure, for the budget's message
        self._actions: set[str] = set()  # what the failures counted by the budget became

    def _policy(self, error: StepError) -> tuple[OnError, str]:
        """The policy for ``error`` and the argument that set it (for messages)."""
        override = self.steps.get(error.phase, {}).get(error.step)
        if override is not None:
            return override, f"{STEP_ARGUMENT[error.phase]} of step {error.step!r}"
        return self.policies[error.phase], ARGUMENT[error.phase]

    def _decide(self, policy: OnError, setting: str, error: StepError, topic: str,
                partition: int, offset: int, key: bytes | None, value: bytes | None,
                timestamp: int, headers: Headers | None) -> ErrorAction:
        """The action of ``policy``: itself, or what the handler function returns."""
        if isinstance(policy, str):
            return policy
        ctx = ErrorContext(error.phase, self.processor, error.step, error.cause, topic,
                           partition, offset, key, value, timestamp, headers)
        pos = where(topic, partition, offset)
        try:
            action = policy(ctx)
        except Exception as e:
            msg = (f"processor {self.processor!r}: the {setting} handler "
                   f"{policy_label(policy)} raised {type(e).__name__}: {e} while deciding "
                   f"about record {pos} (which failed in step {error.step!r}: "
                   f"{type(error.cause).__name__}: {error.cause})")
            raise ProcessingFailed(msg) from e
        if action not in ACTIONS:
            msg = (f"processor {self.processor!r}: the {setting} handler "
                   f"{policy_label(policy)} returned {action!r} for record {pos}; it must "
                   "return 'fail', 'skip' or 'dead_letter'")
            raise ProcessingFailed(msg) from error.cause
        return action

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
        """Handle one failed record, or raise ``ProcessingFailed`` when the policy fails it."""
        pos = where(topic, partition, offset)
        kind = (error.step, type(error.cause).__name__)
        self.errors[kind] = self.errors.get(kind, 0) + 1
        policy, setting = self._policy(error)
        action = self._decide(policy, setting, error, topic, partition, offset, key, value,
                              timestamp, headers)
        if action == "fail":
            next_ = (f"set {setting}='dead_letter' (or 'skip')" if isinstance(policy, str)
                     else f"change the {setting} handler {policy_label(policy)}, which decided "
                     "'fail'")
            msg = (
                f"processor {self.processor!r}: record {pos} failed in step {error.step!r}: "
                f"{type(error.cause).__name__}: {error.cause}. Fix the data or the code, or "
                f"{next_}"
            )
            raise ProcessingFailed(msg) from error.cause
        self._failed += 1
        self._actions.add(action)
        self._last = f"record {pos} in step {error.step!r}: {kind[1]}: {error.cause}"
        if action == "skip":
            self.skipped += 1
            log.warning("skipped record %s: step %r (%s): %s", pos, error.step, error.phase,
                        error.cause, extra=_fields(topic, partition, offset, error.step))
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
            (PHASE_HEADER, error.phase.encode()),
        ]
        log.warning(
            "dead-lettered record %s to %s: step %r (%s): %s",
            pos, self.dead_letter_topic, error.step, error.phase, error.cause,
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
        done = {"skip": "skipped", "dead_letter": "dead-lettered"}
        action = " or ".join(done[a] for a in sorted(self._actions, reverse=True)) or "skipped"
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
