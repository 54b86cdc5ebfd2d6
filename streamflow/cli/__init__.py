"""The ``streamflow`` command line.

Exit codes: 0 success; 1 the processor failed while running (a record under
``on_error="fail"``, a delivery failure); 2 bad usage; 3 bad configuration or topology
(module not found, invalid topology, topic mismatch); 4 Kafka or the schema registry
unreachable; 5 another live worker has this instance id; 6 Kafka refused access (wrong
credentials, an untrusted certificate, or a missing ACL: the message names it and the
``streamflow acls ... --apply`` command that grants it); 7 the processor is running (``reset``
needs it stopped). Each comes from the :class:`~streamflow.errors.StreamflowError` that stopped
the command (its ``exit_code``).

The commands live in :mod:`streamflow.cli.run` (``run``, ``describe``),
:mod:`streamflow.cli.ops` (``check``, ``topics``, ``deploy``), :mod:`streamflow.cli.schemas`
(``schemas``), :mod:`streamflow.cli.lineage` (``lineage``), :mod:`streamflow.cli.operate`
(``status``, ``tail``, ``reset``, ``dlq``), :mod:`streamflow.cli.dashboard` (``dashboard``),
:mod:`streamflow.cli.acls` (``acls``), :mod:`streamflow.cli.config` (``config show``),
:mod:`streamflow.cli.keys` (``keys``, field-level encryption) and
:mod:`streamflow.cli.stack` (``stack``, the local Kafka and registry); they call
:mod:`streamflow.ops`, which returns data and raises errors, and print the results.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from streamflow.cli import (
    acls,
    config,
    dashboard,
    keys,
    lineage,
    operate,
    ops,
    run,
    schemas,
    stack,
)
from streamflow.cli.common import CliError, err
from streamflow.dsl.topology import TopologyError
from streamflow.errors import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    StreamflowError,
)
from streamflow.ops.load import load_topology

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "CliError",
    "build_parser",
    "load_topology",
    "main",
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``streamflow --help``)."""
    parser = argparse.ArgumentParser(
        prog="streamflow",
        description="Kafka-native stream processing: run, describe and check topologies.",
        epilog="Exit codes: 0 ok, 1 processing failed, 2 usage, 3 configuration or topology "
        "error, 4 Kafka or registry unreachable, 5 instance id in use, 6 access refused "
        "(credentials or a missing ACL), 7 processor running (reset).",
    )
    parser.add_argument("--version", action="version", version="streamflow 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run.add_commands(sub)
    ops.add_commands(sub)
    schemas.add_commands(sub)
    stack.add_commands(sub)
    lineage.add_commands(sub)
    operate.add_commands(sub)
    dashboard.add_commands(sub)
    acls.add_commands(sub)
    config.add_commands(sub)
    keys.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamflow`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "workers", 1) < 1:
        parser.error("--workers must be at least 1")
    try:
        return int(args.func(args))
    except StreamflowError as e:
        err(f"invalid topology: {e}" if isinstance(e, TopologyError) else str(e))
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
