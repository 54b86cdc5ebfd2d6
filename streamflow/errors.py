"""Every error streamflow raises, under one root that carries its command-line exit code.

``streamflow`` exits with the ``exit_code`` of the :class:`StreamflowError` that stopped it:

- 0 :data:`EXIT_OK`;
- 1 :data:`EXIT_FAILED`: processing failed (a record under ``on_error="fail"``, a delivery
  failure, a broken transaction) — :class:`ProcessingError`;
- 2 :data:`EXIT_USAGE`: bad usage of a command — :class:`UsageError`;
- 3 :data:`EXIT_CONFIG`: bad configuration or topology (module not found, invalid topology,
  topic mismatch, incompatible contract) — :class:`ConfigurationError`;
- 4 :data:`EXIT_UNREACHABLE`: Kafka or the schema registry unreachable —
  :class:`UnreachableError`;
- 5 :data:`EXIT_DUPLICATE_INSTANCE`: another live worker has this worker's instance id (on
  this host, or fenced by Kafka's static membership) — :class:`DuplicateInstanceError`.
  A supervisor does not restart a worker that exits with it: it would only fence the other.
- 7 :data:`EXIT_GROUP_ACTIVE`: an operation that needs a processor stopped (``streamflow
  reset``) found its consumer group with active members (or a local worker holding its state
  folder) — :class:`GroupActiveError`.

Each error class of streamflow derives from one of these families (its module keeps the
class, so ``from streamflow.kafka.client import Unreachable`` still works):

>>> from streamflow.dsl.topology import TopologyError
>>> TopologyError("no such topic").exit_code
3
>>> isinstance(TopologyError("x"), StreamflowError)
True

This module is a shared leaf: it imports nothing from streamflow.
"""

from __future__ import annotations

__all__ = [
    "EXIT_CONFIG",
    "EXIT_DUPLICATE_INSTANCE",
    "EXIT_FAILED",
    "EXIT_GROUP_ACTIVE",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "ConfigurationError",
    "DuplicateInstanceError",
    "GroupActiveError",
    "ProcessingError",
    "StreamflowError",
    "UnreachableError",
    "UsageError",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG, EXIT_UNREACHABLE = 0, 1, 2, 3, 4
EXIT_DUPLICATE_INSTANCE = 5
EXIT_GROUP_ACTIVE = 7  # 6 is left to the security work (issue 16)


class StreamflowError(Exception):
    """The root of streamflow's errors; ``exit_code`` is what ``streamflow`` exits with.

    An instance may override its class's code (``StreamflowError("...", exit_code=2)``).
    """

    exit_code: int = EXIT_FAILED

    def __init__(self, *args: object, exit_code: int | None = None) -> None:
        super().__init__(*args)
        if exit_code is not None:
            self.exit_code = exit_code


class ProcessingError(StreamflowError):
    """Processing failed: a record, a delivery, a transaction or the consumer (exit 1)."""

    exit_code = EXIT_FAILED


class UsageError(StreamflowError):
    """A command was used wrongly: a missing confirmation, a bad option value (exit 2)."""

    exit_code = EXIT_USAGE


class ConfigurationError(StreamflowError):
    """The configuration, the topology or its contracts are wrong; fix them (exit 3)."""

    exit_code = EXIT_CONFIG


class UnreachableError(StreamflowError):
    """Kafka or the schema registry cannot be reached (exit 4). An outage, not bad data."""

    exit_code = EXIT_UNREACHABLE


class DuplicateInstanceError(StreamflowError):
    """Another live worker has this worker's instance id (exit 5); never retried."""

    exit_code = EXIT_DUPLICATE_INSTANCE


class GroupActiveError(StreamflowError):
    """The processor is running: its group has active members (exit 7); stop it first."""

    exit_code = EXIT_GROUP_ACTIVE
