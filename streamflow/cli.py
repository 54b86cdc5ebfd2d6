"""The ``streamflow`` command line.

Exit codes: 0 success; 1 the processor failed while running (a record under
``on_error="fail"``, a delivery failure); 2 bad usage; 3 bad configuration or topology
(module not found, invalid topology, topic mismatch); 4 Kafka or the schema registry
unreachable.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from streamflow.dsl.topology import Topology, TopologyError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG, EXIT_UNREACHABLE = 0, 1, 2, 3, 4

log = logging.getLogger("streamflow.cli")


class CliError(Exception):
    """An error reported to the user as one message and an exit code."""

    def __init__(self, message: str, code: int = EXIT_CONFIG) -> None:
        super().__init__(message)
        self.code = code


def load_topology(spec: str) -> Topology:
    """Import ``MODULE[:ATTR]`` (ATTR defaults to ``topology``) and return the Topology."""
    module_name, _, attr = spec.partition(":")
    attr = attr or "topology"
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        # only the module itself (or a parent package) missing; not one that it imports
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise CliError(
                f"cannot import module {module_name!r}: {e}. Run from the directory that holds "
                "it, or give its dotted path (e.g. topologies.payments)"
            ) from e
        raise
    try:
        topology = getattr(module, attr)
    except AttributeError:
        raise CliError(
            f"module {module_name!r} has no attribute {attr!r}; expose the Topology as "
            f"`{attr} = streamflow.Topology(...)` or name it with {module_name}:NAME"
        ) from None
    if callable(topology) and not isinstance(topology, Topology):
        topology = topology()
    if not isinstance(topology, Topology):
        raise CliError(f"{spec} is a {type(topology).__name__}, not a streamflow.Topology")
    return topology


def _setup_logging(level: str, prefix: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s %(levelname)-7s [{prefix}] %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    for noisy in ("httpx", "httpx2", "httpcore"):  # one INFO line per registry request
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _cmd_run(args: argparse.Namespace) -> int:
    from streamflow.runtime.config import load_config

    config = load_config(args.config)
    topology = load_topology(args.module)
    if args.processor and args.processor not in topology.processors:
        raise CliError(
            f"topology {topology.name!r} has no processor {args.processor!r}; it has "
            f"{', '.join(sorted(topology.processors))}"
        )
    if not topology.processors:
        raise CliError(f"topology {topology.name!r} declares no processors")
    names = [args.processor] if args.processor else list(topology.processors)
    if len(names) == 1 and args.workers == 1:
        return _run_worker(topology, names[0], config, args.worker_id)
    from streamflow.runtime.supervisor import Supervisor

    _setup_logging(config.log_level, f"{topology.name} supervisor")
    sup = Supervisor(args.module, names, args.workers, args.config, config.shutdown_timeout_s,
                     config.health_port)
    return sup.run()


def _run_worker(topology: Topology, name: str, config: object, worker_id: str) -> int:
    from streamflow.kafka.client import KafkaException, Unreachable
    from streamflow.runtime.config import Config
    from streamflow.runtime.contracts import ContractError
    from streamflow.runtime.errors import ProcessingFailed
    from streamflow.runtime.topics import TopicMismatch
    from streamflow.runtime.worker import DeliveryFailed, Worker
    from streamflow.serde import SerdeUnavailable

    assert isinstance(config, Config)
    _setup_logging(config.log_level, f"{topology.name}/{name}#{worker_id}")
    worker = Worker(topology.processors[name], config, worker_id=worker_id)
    try:
        worker.run()
    except Unreachable as e:
        log.error("cannot reach Kafka at %s: %s", config.bootstrap_servers, e)
        return EXIT_UNREACHABLE
    except SerdeUnavailable as e:
        log.error("schema registry at %s unreachable; stopped without committing (records are "
                  "not skipped: they are processed after a restart): %s",
                  e.url or config.registry_url, e)
        return EXIT_UNREACHABLE
    except TopicMismatch as e:
        log.error("topics do not match the topology:\n%s", e)
        return EXIT_CONFIG
    except ContractError as e:
        log.error("%s", e)
        return EXIT_CONFIG
    except (ProcessingFailed, DeliveryFailed, KafkaException) as e:
        log.error("%s", e)
        return EXIT_FAILED
    log.info("stopped cleanly after %d records", worker.processed)
    return EXIT_OK


def _cmd_describe(args: argparse.Namespace) -> int:
    topology = load_topology(args.module)
    if args.format in ("png", "svg"):
        from streamflow.ops.commands import describe_image

        return describe_image(topology, args.format, args.output)
    if args.format == "text":
        sys.stdout.write(topology.describe())
    else:
        from streamflow.plan import render

        sys.stdout.write(render.RENDERERS[args.format](topology))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``streamflow --help``)."""
    parser = argparse.ArgumentParser(
        prog="streamflow",
        description="Kafka-native stream processing: run, describe and check topologies.",
        epilog="Exit codes: 0 ok, 1 processing failed, 2 usage, 3 configuration or topology "
        "error, 4 Kafka or registry unreachable.",
    )
    parser.add_argument("--version", action="version", version="streamflow 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run a topology's processors",
                         description="Run every processor of a topology (one supervised "
                         "process each), or one processor with N worker processes.")
    run.add_argument("module", metavar="MODULE[:ATTR]", help="module exposing the Topology")
    run.add_argument("--processor", "-p", help="run only this processor")
    run.add_argument("--workers", "-w", type=int, default=1,
                     help="worker processes per processor (default 1)")
    run.add_argument("--config", "-c", help="TOML config file (else $STREAMFLOW_CONFIG)")
    run.add_argument("--worker-id", default="0", help=argparse.SUPPRESS)
    run.set_defaults(func=_cmd_run)

    desc = sub.add_parser("describe", help="print a topology's topics, processors and steps",
                          description="Print a topology's topics, processors and steps.")
    desc.add_argument("module", metavar="MODULE[:ATTR]")
    desc.add_argument("--format", "-f", choices=["text", "mermaid", "dot", "png", "svg"],
                      default="text", help="png and svg need Graphviz's `dot` installed")
    desc.add_argument("--output", "-o", help="file for png/svg (default: stdout)")
    desc.set_defaults(func=_cmd_describe)

    from streamflow.ops.commands import add_commands  # check, topics, deploy

    add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamflow`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "workers", 1) < 1:
        parser.error("--workers must be at least 1")
    try:
        return int(args.func(args))
    except CliError as e:
        print(f"streamflow: error: {e}", file=sys.stderr)
        return e.code
    except TopologyError as e:
        print(f"streamflow: error: invalid topology: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as e:
        from streamflow.runtime.config import ConfigError

        if isinstance(e, ConfigError):
            print(f"streamflow: error: {e}", file=sys.stderr)
            return EXIT_CONFIG
        raise


if __name__ == "__main__":
    sys.exit(main())
