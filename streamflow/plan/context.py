"""What compiled steps share: the step signature, the per-task context and ``StepError``.

A step is a plain function ``(key, value, timestamp, headers) -> None`` that does its work and
calls the next step; an entry takes the raw bytes of a source record. User-function
exceptions are wrapped in ``StepError`` naming the step. ``SerdeUnavailable`` (the schema
registry is unreachable) is never wrapped: it is an outage, not a bad record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamflow.dsl.policies import Phase
from streamflow.errors import ProcessingError
from streamflow.record import Headers
from streamflow.serde import SerdeContext

if TYPE_CHECKING:
    from streamflow.plan.async_steps import AsyncStep

Step = Callable[[Any, Any, int, "Headers | None"], None]
Entry = Callable[[bytes | None, bytes | None, int, "Headers | None"], None]
Emit = Callable[[str, bytes | None, bytes | None, int, "Headers | None"], None]


class StepError(ProcessingError):
    """A record failed in a named step, in a phase.

    ``deserialize`` (decoding a source record), ``process`` (a user function) or ``produce``
    (serializing an output): the processor's policy for that phase decides what happens next.
    """

    def __init__(self, step: str, cause: BaseException, phase: Phase = "process") -> None:
        super().__init__(f"step {step!r} failed: {type(cause).__name__}: {cause}")
        self.step = step
        self.cause = cause
        self.phase: Phase = phase


class TaskContext:
    """Explicit per-task context: which partition, and which source record is current.

    The runtime sets ``topic`` and ``offset`` before calling an entry; steps that hand a
    ``Record`` to user code read them from here (never from a global).
    """

    __slots__ = ("clock", "emit", "flushers", "globals", "metrics", "offset", "partition",
                 "processor", "punctuators", "serde_ctx", "source", "stores", "topic")

    def __init__(self, processor: str, partition: int, emit: Emit, serde_ctx: SerdeContext,
                 stores: dict[str, Any] | None = None) -> None:
        self.processor = processor
        self.partition = partition
        self.emit = emit
        self.serde_ctx = serde_ctx
        self.stores: dict[str, Any] = stores or {}
        # the worker's global tables, shared by every task (streamflow.runtime.global_tables)
        self.globals: dict[str, Any] = {}
        self.topic: str | None = None
        self.offset: int | None = None
        # called with the wall-clock time (ms) by the runtime's loop and by the test
        # driver's advance_wall_clock(); steps that act on time (windows) register here
        self.punctuators: list[Callable[[int], None]] = []
        # the wall clock in ms (the test driver substitutes its own) and task counters
        # such as "<step>.late_records"
        self.clock: Callable[[], int] = _wall_clock_ms
        self.metrics: dict[str, int] = {}
        # async steps (streamflow.plan.async_steps) of this task, which the runtime flushes
        # after each batch; with any, the current source record's raw (key, value, timestamp,
        # headers), which their failures report (a dead letter holds the original bytes)
        self.flushers: list[AsyncStep] = []
        self.source: tuple[bytes | None, bytes | None, int, Headers | None] | None = None

    def punctuate(self, wall_clock_ms: int) -> None:
        """Run every registered punctuator."""
        for p in self.punctuators:
            p(wall_clock_ms)

    def store(self, name: str) -> Any:
        """The task's store called ``name``."""
        try:
            return self.stores[name]
        except KeyError:
            msg = (
                f"processor {self.processor!r} has no store {name!r}; declare it in "
                f"process(..., stores=[{name!r}])"
            )
            raise KeyError(msg) from None


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class CompiledTask:
    """The closures of one processor for one partition: ``entries[topic]`` per source."""

    entries: dict[str, Entry]
    context: TaskContext


def noop(k: Any, v: Any, ts: int, h: Headers | None) -> None:
    """The step that does nothing (a step without children)."""
    return None


def fanout(steps: Sequence[Step]) -> Step:
    """One step calling each of ``steps`` in order.

    ``noop`` for none, and the step itself for one (no extra frame).
    """
    if not steps:
        return noop
    if len(steps) == 1:
        return steps[0]
    all_steps = tuple(steps)

    def fanout_(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        for s in all_steps:
            s(k, v, ts, h)

    return fanout_
