"""The ``check``, ``topics`` and ``deploy`` subcommands, and ``describe --format png|svg``.

:func:`add_commands` registers the subcommands on ``streamflow``'s argument parser; each
``cmd_*`` function loads the topology and configuration, calls into :mod:`streamflow.ops`,
prints, and returns an exit code (see :mod:`streamflow.cli`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from streamflow.cli import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliError,
    load_topology,
)
from streamflow.dsl.topology import Topology, TopologyError

__all__ = ["add_commands", "cmd_check", "cmd_deploy_k8s", "cmd_topics", "describe_image"]

_CONFIG_HELP = "TOML config file (else $STREAMFLOW_CONFIG); STREAMFLOW_* variables override it"


def _err(message: str) -> None:
    print(f"streamflow: error: {message}", file=sys.stderr)


def _warn(message: str) -> None:
    print(f"streamflow: warning: {message}", file=sys.stderr)


# -- check ------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    """``streamflow check MODULE``: one line per problem with its fix; exit 3 if any."""
    from streamflow.kafka.registry import RegistryError, make_registry_client
    from streamflow.ops.check import check_topology
    from streamflow.runtime.config import load_config

    config = load_config(args.config)
    try:
        topology = load_topology(args.module)
    except TopologyError as e:
        print(f"problem: [invalid-topology] {e}")
        print(f"{args.module}: 1 problem; the topology cannot be loaded until it is fixed")
        return EXIT_CONFIG
    registry: Any = None
    if config.registry_url:
        try:
            registry = make_registry_client(dict(config.schema_registry))
        except ValueError as e:
            raise CliError(str(e)) from e
    try:
        result = check_topology(topology, registry, schemas_dir=config.schemas_dir)
    except RegistryError as e:
        _err(f"schema check failed: {e}")
        return EXIT_UNREACHABLE
    for p in result.problems:
        print(f"problem: {p}")
    for note in result.notes:
        print(f"note: {note}")
    if result.ok:
        print(f"OK: {result.summary}")
        return EXIT_OK
    print(f"{len(result.problems)} problem(s) in {result.summary}")
    return EXIT_CONFIG


# -- topics -----------------------------------------------------------------------------------


def cmd_topics(args: argparse.Namespace) -> int:
    """``streamflow topics create|describe|delete MODULE``."""
    from streamflow.kafka import client
    from streamflow.ops import topics as ops_topics
    from streamflow.runtime.config import load_config

    config = load_config(args.config)
    topology = load_topology(args.module)
    admin = client.make_admin(config.client_conf())
    try:
        client.ping(admin, config.startup_timeout_s)
        if args.action == "create":
            created, existing = ops_topics.create(admin, topology, config)
            for s in created:
                cfg = ", ".join(f"{k}={v}" for k, v in sorted(s.config.items()))
                print(f"created {s.name} (partitions={s.partitions}, "
                      f"replication={s.replication}{', ' + cfg if cfg else ''})")
            for name in existing:
                print(f"exists  {name}")
            if existing:
                print(f"{len(existing)} topic(s) already existed and were left as they are; "
                      f"`streamflow topics describe {args.module}` shows any drift")
            return EXIT_OK
        if args.action == "describe":
            rows = ops_topics.describe(admin, topology, config)
            sys.stdout.write(ops_topics.format_table(rows))
            bad = [r for r in rows if r.status != "ok"]
            if bad:
                print(f"{len(bad)} of {len(rows)} topic(s) missing or drifting from their "
                      f"declaration; create missing ones with `streamflow topics create "
                      f"{args.module}`, fix drift on the cluster or in the declaration")
                return EXIT_FAILED
            print(f"all {len(rows)} topic(s) match their declaration")
            return EXIT_OK
        names = ops_topics.deletable(topology, include_external=args.include_external)
        if not args.yes:
            for n in names:
                print(f"would delete {n}")
            _err("nothing deleted: add --yes to delete these topics and their data")
            return EXIT_USAGE
        deleted, absent = ops_topics.delete(admin, names, config)
        for n in deleted:
            print(f"deleted {n}")
        for n in absent:
            print(f"absent  {n}")
        return EXIT_OK
    except client.Unreachable as e:
        _err(f"cannot reach Kafka at {config.bootstrap_servers}: {e}")
        return EXIT_UNREACHABLE
    except client.KafkaException as e:
        _err(f"Kafka refused: {e}")
        return EXIT_FAILED


# -- deploy k8s -------------------------------------------------------------------------------


def cmd_deploy_k8s(args: argparse.Namespace) -> int:
    """``streamflow deploy k8s MODULE``: print or write Kubernetes manifests."""
    from streamflow.ops import k8s
    from streamflow.runtime.config import load_config

    if args.replicas < 1:
        raise CliError("--replicas must be at least 1", EXIT_USAGE)
    config = load_config(args.config)
    topology = load_topology(args.module)
    opts = k8s.K8sOptions(image=args.image, namespace=args.namespace, replicas=args.replicas,
                          storage=args.storage, storage_class=args.storage_class)
    rendered = k8s.render(topology, args.module, opts, config)
    for w in rendered.warnings:
        _warn(w)
    if args.output in (None, "-"):
        sys.stdout.write(rendered.yaml())
    else:
        for path in k8s.write(rendered, args.output):
            print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK


# -- describe --format png|svg ---------------------------------------------------------------


def describe_image(topology: Topology, fmt: str, output: str | None) -> int:
    """Draw the DAG with Graphviz into ``output`` (a file, or stdout when not a terminal)."""
    from streamflow.ops.draw import GraphvizError, render_image

    if output in (None, "-") and sys.stdout.isatty():
        raise CliError(f"refusing to write {fmt.upper()} to a terminal: use --output FILE "
                       "or redirect stdout", EXIT_USAGE)
    try:
        data = render_image(topology, fmt)
    except GraphvizError as e:
        raise CliError(str(e)) from e
    if output in (None, "-"):
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        with open(output, "wb") as f:
            f.write(data)
    return EXIT_OK


# -- registration -----------------------------------------------------------------------------


def add_commands(sub: Any) -> None:
    """Register ``check``, ``topics`` and ``deploy`` on the ``streamflow`` subparsers."""
    chk = sub.add_parser(
        "check", help="validate a topology's DAG (sources, names, cycles, schemas, joins)",
        description="Validate a topology: topics read but written by no processor must be "
        "external=True; external topics must not be written; group ids, dead-letter and "
        "internal topic names must not collide; processors must not form cycles unless "
        "Topology(..., allow_cycles=True); Avro schemas must be compatible with the "
        "registry (skipped when no registry is configured); joined topics must be "
        "co-partitioned. Prints one line per problem with how to fix it.",
        epilog="Exit codes: 0 no problems, 3 problems found (or the topology cannot be "
        "loaded), 4 schema registry unreachable.",
    )
    chk.add_argument("module", metavar="MODULE[:ATTR]")
    chk.add_argument("--config", "-c", help=_CONFIG_HELP)
    chk.set_defaults(func=cmd_check)

    topics = sub.add_parser(
        "topics", help="create, describe or delete a topology's topics",
        description="Manage a topology's topics on the cluster through the Kafka AdminClient.",
    )
    actions = topics.add_subparsers(dest="action", metavar="ACTION", required=True)
    specs = [
        ("create", "create the topology's missing topics",
         "Create every topic of the topology that does not exist yet, EXTERNAL ONES TOO (this "
         "is the operator's tool: in a test or a fresh environment something must create "
         "them), plus dead-letter topics. Declared partitions, replication and configs are "
         "used; undeclared ones default to the default_partitions / default_replication "
         "settings. Existing topics are left unchanged.",
         "Exit codes: 0 ok, 1 Kafka refused, 3 configuration or topology error, 4 Kafka "
         "unreachable."),
        ("describe", "compare declared topics with the cluster",
         "Print a table of the topology's topics: declared/actual partitions and replication, "
         "declared configs, and a status: ok, MISSING, or DRIFT with what differs.",
         "Exit codes: 0 every topic exists and matches, 1 a topic is missing or drifts, 3 "
         "configuration or topology error, 4 Kafka unreachable."),
        ("delete", "delete the topology's topics (needs --yes)",
         "Delete the topology's topics (internal and dead-letter ones included; external "
         "ones only with --include-external). Without --yes, only lists what would go.",
         "Exit codes: 0 deleted, 2 --yes missing (nothing deleted), 1 Kafka refused, 4 Kafka "
         "unreachable."),
    ]
    for action, short, long, epilog in specs:
        p = actions.add_parser(action, help=short, description=long, epilog=epilog)
        p.add_argument("module", metavar="MODULE[:ATTR]")
        p.add_argument("--config", "-c", help=_CONFIG_HELP)
        if action == "delete":
            p.add_argument("--yes", action="store_true", help="really delete (data is lost)")
            p.add_argument("--include-external", action="store_true",
                           help="also delete topics declared external=True")
        p.set_defaults(func=cmd_topics)

    deploy = sub.add_parser("deploy", help="render deployment manifests",
                            description="Render deployment manifests for a topology.")
    targets = deploy.add_subparsers(dest="target", metavar="TARGET", required=True)
    k = targets.add_parser(
        "k8s", help="Kubernetes manifests: a StatefulSet and headless Service per processor",
        description="Render Kubernetes manifests: a ConfigMap of STREAMFLOW_* settings, and "
        "per processor a StatefulSet (state volume per pod, /healthz and /readyz probes, "
        "resources, `streamflow run MODULE --processor NAME`) and a headless Service. "
        "Replicas are capped at the source topics' declared partitions. Secrets come from "
        "the Secret <topology>-secrets, which you create; none are rendered.",
    )
    k.add_argument("module", metavar="MODULE[:ATTR]")
    k.add_argument("--image", default="streamflow:latest",
                   help="container image with the application (default streamflow:latest)")
    k.add_argument("--namespace", "-n", help="namespace for every object (default: none)")
    k.add_argument("--replicas", "-r", type=int, default=1,
                   help="pods per processor, capped at its source partitions (default 1)")
    k.add_argument("--storage", default="1Gi", help="state volume size per pod (default 1Gi)")
    k.add_argument("--storage-class", help="storageClassName of the state volumes")
    k.add_argument("--output", "-o", default="-",
                   help="directory to write one file per processor into, or - for stdout")
    k.add_argument("--config", "-c", help=_CONFIG_HELP)
    k.set_defaults(func=cmd_deploy_k8s)

    from streamflow.ops.schemas import add_schemas_command  # schemas check|register

    add_schemas_command(sub)
