"""``streamflow run`` and ``streamflow describe``."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from streamflow.cli.common import CliError, load_settings, processor_names, setup_logging
from streamflow.config import Config
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
    config = load_settings(args.config)
    if args.instance_id:
        config = config.with_overrides(instance_id=args.instance_id)
    if args.leave_on_shutdown:
        config = config.with_overrides(leave_on_shutdown=True)
    topology = load_topology(args.module, name_suffix=config.name_suffix)
    names = processor_names(topology, args.processor)
    if not names:
        msg = f"topology {topology.name!r} declares no processors"
        raise CliError(msg)
    if len(names) == 1 and args.workers == 1:
        # a supervisor's children stay quiet: the supervisor warned already
        return _run_worker(topology, args.module, names[0], config, args.worker_id,
                           warn=args.worker_id is None)
    from streamflow.runtime.supervisor import Supervisor

    setup_logging(config.log_level, f"{topology.name} supervisor", fmt=config.log_format,
                  instance="supervisor", client_interval_s=config.client_log_interval_s)
    _log_unnamed_state(topology, names)
    sup = Supervisor(args.module, names, args.workers, args.config, config.shutdown_timeout_s,
                     config.health_port, extra_args=_child_args(args),
                     instance_id=config.instance_id)
    return sup.run()


def _child_args(args: argparse.Namespace) -> list[str]:
    """The options a supervisor passes on to its children (each appends its index)."""
    out = ["--instance-id", args.instance_id] if args.instance_id else []
    return out + (["--leave-on-shutdown"] if args.leave_on_shutdown else [])


def _log_unnamed_state(topology: Topology, processors: list[str]) -> None:
    """Warn once per run about state named by position (see ``streamflow check``)."""
    for step in unnamed_state(topology):
        if step.processor in processors:
            log.warning("%s", step.warning())


def _run_message(e: StreamflowError, config: Config) -> str:
    from streamflow.config.secret_settings import without_password
    from streamflow.kafka.client import Unreachable
    from streamflow.runtime.topics import TopicMismatch
    from streamflow.serde import SerdeUnavailable

    if isinstance(e, Unreachable):
        return f"cannot reach Kafka at {config.bootstrap_servers}: {e}"
    if isinstance(e, SerdeUnavailable):
        url = e.url or without_password(config.registry_url or "?", "***")
        return (f"schema registry at {url} unreachable; stopped "
                "without committing (records are not skipped: they are processed after a "
                f"restart): {e}")
    if isinstance(e, TopicMismatch):
        return f"topics do not match the topology:\n{e}"
    return str(e)


def _for_module(message: str, module: str) -> str:
    """``message`` with the commands it advises given this run's module.

    The serdes and the registry checks that write the advice do not know the module.
    """
    return message.replace("streamflow schemas register MODULE",
                           f"streamflow schemas register {module}")


def _run_worker(topology: Topology, module: str, name: str, config: Config,
                worker_id: str | None, *, warn: bool) -> int:
    from streamflow.kafka.client import KafkaException
    from streamflow.runtime.worker import Worker

    logging_opts: dict[str, Any] = {"fmt": config.log_format, "processor": name,
                                    "client_interval_s": config.client_log_interval_s}
    try:
        worker = Worker(topology.processors[name], config, worker_id=worker_id)
    except StreamflowError as e:
        setup_logging(config.log_level, f"{topology.name}/{name}", instance=worker_id or "",
                      **logging_opts)
        log.error("%s", _for_module(str(e), module))
        return e.exit_code
    setup_logging(config.log_level, f"{topology.name}/{name}#{worker.instance_id}",
                  instance=worker.instance_id, **logging_opts)
    if warn:
        _log_unnamed_state(topology, [name])
    try:
        worker.run()
    except StreamflowError as e:
        log.error("%s", _for_module(_run_message(e, config), module))
        return e.exit_code
    except KafkaException as e:  # confluent's own error (not a StreamflowError)
        log.error("%s", e)
        return EXIT_FAILED
    log.info("stopped cleanly after %d records", worker.processed)
    return EXIT_OK


def cmd_fleet_leave(args: argparse.Namespace) -> int:
    """``streamflow fleet leave MODULE -p NAME --instance-id ID...``: after a scale-down.

    Removes static members that will not come back from the processor's group, so their
    partitions move on now rather than after the session timeout.
    """
    from streamflow.kafka.membership import leave_group

    config = load_settings(args.config)
    topology = load_topology(args.module, name_suffix=config.name_suffix)
    if args.processor not in topology.processors:
        msg = (f"topology {topology.name!r} has no processor {args.processor!r}; it has "
               f"{', '.join(sorted(topology.processors))}")
        raise CliError(msg)
    group = topology.processors[args.processor].group_id
    for instance in args.instance_id:
        leave_group(config.client_conf(), group, instance, timeout_s=config.startup_timeout_s)
        sys.stdout.write(f"{instance} left group {group}\n")
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
    run.add_argument("--instance-id",
                     help="this worker's id in the fleet, unique per processor and stable "
                     "across restarts (default: $STREAMFLOW_INSTANCE_ID, else $POD_NAME, else "
                     "the host name); names its transactional id, client id, static group "
                     "member and state folder; with --workers N child i is ID-i")
    run.add_argument("--leave-on-shutdown", action="store_true",
                     help="on a clean stop, leave the consumer group at once (a scale-down) "
                     "instead of keeping the static member's partitions for its session "
                     "timeout (a restart)")
    run.add_argument("--worker-id", help=argparse.SUPPRESS)  # the supervisor's child index
    run.set_defaults(func=cmd_run)

    fleet = sub.add_parser("fleet", help="operate a processor's fleet of workers")
    fleet_sub = fleet.add_subparsers(dest="fleet_command", required=True)
    leave = fleet_sub.add_parser(
        "leave", help="remove static members from a processor's group (after a scale-down)",
        description="Remove workers that will not come back (e.g. the pods a StatefulSet "
        "scale-down removed) from the processor's consumer group at once. A static member "
        "sends no LeaveGroup when it stops, so without this its partitions wait for its "
        "session timeout (static_session_timeout_ms). Speaks PLAINTEXT only.")
    leave.add_argument("module", metavar="MODULE[:ATTR]")
    leave.add_argument("--processor", "-p", required=True)
    leave.add_argument("--instance-id", action="append", required=True,
                       help="the member's instance id, e.g. the pod name (repeatable)")
    leave.add_argument("--config", "-c", help="TOML config file (else $STREAMFLOW_CONFIG)")
    leave.set_defaults(func=cmd_fleet_leave)

    desc = sub.add_parser("describe", help="print a topology's topics, processors and steps",
                          description="Print a topology's topics, processors and steps.")
    desc.add_argument("module", metavar="MODULE[:ATTR]")
    desc.add_argument("--format", "-f", choices=["text", "mermaid", "dot", "png", "svg"],
                      default="text", help="png and svg need Graphviz's `dot` installed")
    desc.add_argument("--output", "-o", help="file for png/svg (default: stdout)")
    desc.set_defaults(func=cmd_describe)
