"""What a processor does with a record that fails: one policy per phase.

A record can fail in three phases, each with its own policy on the processor (Kafka Streams has a
handler for each):

- ``deserialize``: the key or value bytes cannot be decoded (``on_deserialize_error``; Kafka
  Streams' ``DeserializationExceptionHandler``);
- ``process``: the user's code raised (``on_processing_error``; Kafka Streams'
  ``ProcessingExceptionHandler``, KIP-1033). Steps that take ``on_error=`` override it for
  their own exceptions;
- ``produce``: an output key or value cannot be serialized (``on_produce_error``; Kafka
  Streams' ``ProductionExceptionHandler``). A record the broker refuses to take (a delivery
  failure) is not a bad record: it always stops the processor, so nothing is lost.

A policy is ``"fail"`` (stop the processor; the record's offset is not committed),
``"skip"`` (log and drop it), ``"dead_letter"`` (write its original bytes to the processor's
dead-letter topic) or an :data:`ErrorHandler`: a function given an :class:`ErrorContext` that
returns one of the three. ``on_error`` is the shorthand for all three phases::

    def decide(ctx: sf.ErrorContext) -> sf.ErrorAction:
        return "dead_letter" if isinstance(ctx.exception, KeyError) else "fail"

    topology.processor("enrich", on_deserialize_error="dead_letter",
                       on_processing_error=decide)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from streamflow.record import Headers

__all__ = ["ACTIONS", "ARGUMENT", "PHASES", "ErrorAction", "ErrorContext", "ErrorHandler",
           "OnError", "Phase", "phases_label", "policy_label"]

Phase = Literal["deserialize", "process", "produce"]
ErrorAction = Literal["fail", "skip", "dead_letter"]

PHASES: tuple[Phase, ...] = get_args(Phase)
ACTIONS: tuple[ErrorAction, ...] = get_args(ErrorAction)


@dataclass(frozen=True)
class ErrorContext:
    """A failed record, as an :data:`ErrorHandler` sees it.

    ``key`` and ``value`` are the source record's original bytes (what a dead letter holds);
    ``step`` names the step that failed (``<source>:deserialize`` when decoding failed, the
    sink's name when serializing an output did); ``exception`` is what it raised.
    """

    phase: Phase
    processor: str
    step: str
    exception: BaseException
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: Headers | None


ErrorHandler = Callable[[ErrorContext], ErrorAction]
"""A function deciding what happens to a failed record: returns an :data:`ErrorAction`."""

OnError = ErrorAction | ErrorHandler
"""A policy: ``"fail"``, ``"skip"``, ``"dead_letter"`` or an :data:`ErrorHandler`."""


def policy_label(policy: OnError) -> str:
    """The policy in words: the action, or the handler function's name.

    >>> policy_label("dead_letter"), policy_label(len)
    ('dead_letter', 'len()')
    """
    if isinstance(policy, str):
        return policy
    name = getattr(policy, "__qualname__", None) or getattr(policy, "__name__", None)
    return f"{name or type(policy).__name__}()"


def phases_label(policies: Mapping[Phase, OnError]) -> str:
    """``on_error=X`` when one policy covers every phase, else each phase's.

    >>> phases_label({"deserialize": "skip", "process": "skip", "produce": "skip"})
    'on_error=skip'
    >>> phases_label({"deserialize": "dead_letter", "process": "fail", "produce": "fail"})
    'on_deserialize_error=dead_letter, on_processing_error=fail, on_produce_error=fail'
    """
    first = policies[PHASES[0]]
    if all(policies[ph] == first for ph in PHASES):
        return f"on_error={policy_label(first)}"
    return ", ".join(f"{ARGUMENT[ph]}={policy_label(policies[ph])}" for ph in PHASES)


ARGUMENT: dict[Phase, str] = {"deserialize": "on_deserialize_error",
                              "process": "on_processing_error", "produce": "on_produce_error"}
"""The processor argument that sets each phase's policy."""
