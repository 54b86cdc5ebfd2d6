"""What every ``streamflow`` command shares: its error, messages and logging set-up.

``setup_logging`` lives in :mod:`streamflow.observability.logs` (re-exported here).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from streamflow.config import Config, load_config
from streamflow.errors import EXIT_CONFIG, StreamflowError
from streamflow.kafka.settings import check_client_settings
from streamflow.observability.logs import setup_logging

if TYPE_CHECKING:
    from streamflow.dsl.topology import Topology

__all__ = ["CONFIG_HELP", "CliError", "command_line", "err", "failing", "load_settings",
           "processor_names", "setup_logging", "warn"]

CONFIG_HELP = "TOML config file (else $STREAMFLOW_CONFIG); STREAMFLOW_* variables override it"


class CliError(StreamflowError):
    """An error reported to the user as one message and an exit code (default 3)."""

    def __init__(self, message: str, code: int = EXIT_CONFIG) -> None:
        super().__init__(message, exit_code=code)


def load_settings(path: str | None) -> Config:
    """A command's settings: :func:`load_config`, then the client tables checked.

    The tables are checked against the clients themselves
    (:func:`~streamflow.kafka.settings.check_client_settings`); errors exit 3.
    """
    config = load_config(path)
    check_client_settings(config)
    return config


def command_line(*words: str, config: str | None = None) -> str:
    """``streamflow WORDS...`` quoted for a shell, with ``--config`` when one was given.

    The command a message tells the user to type next.

    >>> command_line("reset", "shop", "-p", "count", "--to-datetime", "2026-11-26 07:00")
    "streamflow reset shop -p count --to-datetime '2026-11-26 07:00'"
    """
    return shlex.join(["streamflow", *words, *(["--config", config] if config else [])])


def err(message: str) -> None:
    """Print ``streamflow: error: MESSAGE`` to stderr."""
    print(f"streamflow: error: {message}", file=sys.stderr)


def warn(message: str) -> None:
    """Print ``streamflow: warning: MESSAGE`` to stderr."""
    print(f"streamflow: warning: {message}", file=sys.stderr)


@contextmanager
def failing(what: str) -> Iterator[None]:
    """Re-raise a :class:`StreamflowError` with ``what: `` before its message, same exit code."""
    try:
        yield
    except StreamflowError as e:
        msg = f"{what}: {e}"
        raise CliError(msg, e.exit_code) from e


def processor_names(topology: Topology, only: str | None) -> list[str]:
    """The processors a command acts on: ``only``, or every one (``CliError`` if unknown)."""
    if only is None:
        return list(topology.processors)
    if only not in topology.processors:
        msg = (
            f"topology {topology.name!r} has no processor {only!r}; it has "
            f"{', '.join(sorted(topology.processors))}"
        )
        raise CliError(msg)
    return [only]
