"""``streamflow run`` and ``streamflow describe``."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from streamflow.cli.common import CliError, processor_names, setup_logging
from streamflow.config import Config, load_config
from streamflow.dsl import render
from streamflow.dsl.topology import Topology
from streamflow.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, StreamflowError
from streamflow.ops.load import load_topology
from streamflow.ops.state_names import unnamed_state

__all__ = ["add_commands", "cmd_describe", "cmd_run", "describe_image"]

log = logging.getLogger("streamflow.cli")


# -- run --------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """``streamflow run MODULE``: every processor supervised, or one with N workers."""
    config = load_config(args.config)
    topology = load_topology(args.module)
    names = processor_names(topology, args.processor)
    if not names:
        msg = f"topology {topology.name!r} declares no processors"
        raise CliError(msg)
    if len(names) == 1 and args.workers == 1:
        # a supervisor's children stay quiet: the supervisor warned already
        return _run_worker(topology, names[0], config, args.worker_id or "0",
                           warn=args.worker_id is None)
    from streamflow.runtime.supervisor import Supervisor

    setup_logging(config.log_level, f"{topology.name} supervisor", fmt=config.log_format,
                  instance="supervisor", client_interval_s=config.client_log_interval_s)
    _log_unnamed_state(topology, names)
    sup = Supervisor(args.module, names, args.workers, args.config, config.shutdown_timeout_s,
                     config.health_port)
    return sup.run()


def _log_unnamed_state(topology: Topology, processors: list[str]) -> None:
    """Warn once per run about state named by position (see ``streamflow check``)."""
    for step in unnamed_state(topology):
        if step.processor in processors:
            log.warning("%s", step.warning())


def _run_message(e: StreamflowError, config: Config) -> str:
    from streamflow.kafka.client import Unreachable
    from streamflow.runtime.topics import TopicMismatch
    from streamflow.serde import SerdeUnavailable

    if isinstance(e, Unreachable):
        return f"cannot reach Kafka at {config.bootstrap_servers}: {e}"
    if isinstance(e, SerdeUnavailable):
        return (f"schema registry at {e.url or config.registry_url} unreachable; stopped "
                "without committing (records are not skipped: they are processed after a "
                f"restart): {e}")
    if isinstance(e, TopicMismatch):
        return f"topics do not match the topology:\n{e}"
    return str(e)


def _run_worker(topology: Topology, name: str, config: Config, worker_id: str, *,
                warn: bool) -> int:
    from streamflow.kafka.client import KafkaException
    from streamflow.runtime.worker import Worker

    setup_logging(config.log_level, f"{topology.name}/{name}#{worker_id}", fmt=config.log_format,
                  processor=name, instance=worker_id,
                  client_interval_s=config.client_log_interval_s)
    if warn:
        _log_unnamed_state(topology, [name])
    worker = Worker(topology.processors[name], config, worker_id=worker_id)
    try:
        worker.run()
    except StreamflowError as e:
        log.error("%s", _run_message(e, config))
        return e.exit_code
    except KafkaException as e:  # confluent's own error (not a StreamflowError)
        log.error("%s", e)
        return EXIT_FAILED
    log.info("stopped cleanly after %d records", worker.processed)
    return EXIT_OK


# -- describe ---------------------------------------------------------------------------------


def cmd_describe(args: argparse.Namespace) -> int:
    """``streamflow describe MODULE``: text, Mermaid, DOT, or a PNG/SVG picture."""
    topology = load_topology(args.module)
    if args.format in ("png", "svg"):
        return describe_image(topology, args.format, args.output)
    sys.stdout.write(render.RENDERERS[args.format](topology))
    return EXIT_OK


def describe_image(topology: Topology, fmt: str, output: str | None) -> int:
    """Draw the DAG with Graphviz into ``output`` (a file, or stdout when not a terminal)."""
    from streamflow.ops.draw import render_image

    if output in (None, "-") and sys.stdout.isatty():
        msg = (
            f"refusing to write {fmt.upper()} to a terminal: use --output FILE "
            "or redirect stdout"
        )
        raise CliError(msg, EXIT_USAGE)
    data = render_image(topology, fmt)
    if output in (None, "-"):
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        with open(output, "wb") as f:
            f.write(data)
    return EXIT_OK


# -- registration -----------------------------------------------------------------------------


def add_commands(sub: Any) -> None:
    """Register ``run`` and ``describe`` on the ``streamflow`` subparsers."""
    run = sub.add_parser("run", help="run a topology's processors",
                         description="Run every processor of a topology (one supervised "
                         "process each), or one processor with N worker processes. Stateful "
                         "steps without an explicit name are logged once as a warning (see "
                         "`streamflow check`).")
    run.add_argument("module", metavar="MODULE[:ATTR]", help="module exposing the Topology")
    run.add_argument("--processor", "-p", help="run only this processor")
    run.add_argument("--workers", "-w", type=int, default=1,
                     help="worker processes per processor (default 1)")
    run.add_argument("--config", "-c", help="TOML config file (else $STREAMFLOW_CONFIG)")
    run.add_argument("--worker-id", help=argparse.SUPPRESS)  # set by the supervisor
    run.set_defaults(func=cmd_run)

    desc = sub.add_parser("describe", help="print a topology's topics, processors and steps",
                          description="Print a topology's topics, processors and steps.")
    desc.add_argument("module", metavar="MODULE[:ATTR]")
    desc.add_argument("--format", "-f", choices=["text", "mermaid", "dot", "png", "svg"],
                      default="text", help="png and svg need Graphviz's `dot` installed")
    desc.add_argument("--output", "-o", help="file for png/svg (default: stdout)")
    desc.set_defaults(func=cmd_describe)
