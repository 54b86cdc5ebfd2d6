"""``streamflow check``, ``topics`` and ``deploy``: load, call :mod:`streamflow.ops`, print.

Each ``cmd_*`` function returns an exit code or raises a
:class:`~streamflow.errors.StreamflowError` (whose ``exit_code`` :func:`streamflow.cli.main`
returns).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from streamflow.cli.common import (
    CONFIG_HELP,
    CliError,
    command_line,
    err,
    failing,
    load_settings,
    warn,
)
from streamflow.config import Config
from streamflow.dsl.topology import Topology, TopologyError
from streamflow.errors import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE
from streamflow.ops import audit
from streamflow.ops.check import Problem, check_topology
from streamflow.ops.k8s_keys import MOUNT_CHOICES
from streamflow.ops.load import load_topology
from streamflow.ops.state_names import orphan_fix, state_diff, unnamed_state

__all__ = ["add_commands", "cmd_check", "cmd_deploy_k8s", "cmd_topics"]


# -- check ------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    """``streamflow check MODULE``: one line per problem with its fix; exit 3 if any.

    Stateful steps named by position are warnings (problems with ``--strict``);
    ``--against-cluster`` adds the state a deploy would orphan (problems) and the internal
    topics it would create (notes).
    """
    from streamflow.kafka.registry import make_registry_client

    config = load_settings(args.config)
    try:
        topology = load_topology(args.module, name_suffix=config.name_suffix)
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
    with failing("schema check failed"):
        result = check_topology(topology, registry, schemas_dir=config.schemas_dir)
    problems, notes = list(result.problems), list(result.notes)
    warnings = [Problem("unnamed-state", s.message(), s.advice())
                for s in unnamed_state(topology)]
    if args.strict:
        problems += warnings
        warnings = []
    if args.against_cluster:
        orphaned, creates = _against_cluster(topology, config)
        problems += orphaned
        notes += creates
    for p in problems:
        print(f"problem: {p}")
    for w in warnings:
        print(f"warning: {w}")
    for note in notes:
        print(f"note: {note}")
    if not problems:
        more = f" ({len(warnings)} warning(s); --strict makes them problems)" if warnings else ""
        print(f"OK: {result.summary}{more}")
        return EXIT_OK
    print(f"{len(problems)} problem(s) in {result.summary}")
    return EXIT_CONFIG


def _against_cluster(topology: Topology, config: Config) -> tuple[list[Problem], list[str]]:
    """Problems for state the cluster holds that this version would orphan.

    Notes for the internal topics it would create.
    """
    from streamflow.kafka import client

    admin = client.make_admin(config.client_conf())
    try:
        names = client.topic_names(admin, config.startup_timeout_s)
    except client.Unreachable as e:
        msg = (
            f"--against-cluster: cannot reach Kafka at {config.bootstrap_servers}: "
            f"{e}"
        )
        raise CliError(msg, e.exit_code) from e
    diff = state_diff(topology, names)
    problems = [Problem("orphaned-state",
                        f"topic {t!r} in the cluster holds state of topology "
                        f"{topology.name!r} that this version no longer uses: a deploy would "
                        "orphan it", orphan_fix(topology, t))
                for t in diff.orphaned]
    notes = [f"a deploy would create internal topic {t!r}" for t in diff.to_create]
    notes.append(f"cluster at {config.bootstrap_servers}: {len(diff.kept)} internal topic(s) "
                 f"kept, {len(diff.to_create)} to create, {len(diff.orphaned)} orphaned")
    return problems, notes


# -- topics -----------------------------------------------------------------------------------


def cmd_topics(args: argparse.Namespace) -> int:
    """``streamflow topics create|describe|delete MODULE``."""
    from streamflow.kafka import client, security
    from streamflow.ops import topics as ops_topics

    config = load_settings(args.config)
    topology = load_topology(args.module, name_suffix=config.name_suffix)
    admin = client.make_admin(config.client_conf())
    try:
        # a wrong password or an untrusted certificate fails here at once (exit 6)
        security.connect(config.client_conf(), config.startup_timeout_s)
        if args.action == "create":
            created, existing = ops_topics.create(admin, topology, config)
            audit.record("topics.create", topology.name, "ok", config=config,
                         created=[t.name for t in created], existing=existing)
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
            again = command_line("topics", "delete", args.module,
                                 *(["--include-external"] if args.include_external else []),
                                 "--yes", config=args.config)
            err(f"nothing deleted: add --yes to delete these topics and their data: {again}")
            return EXIT_USAGE
        deleted, absent = ops_topics.delete(admin, names, config)
        audit.record("topics.delete", topology.name, "ok", config=config, deleted=deleted,
                     absent=absent)
        for n in deleted:
            print(f"deleted {n}")
        for n in absent:
            print(f"absent  {n}")
        return EXIT_OK
    except client.Unreachable as e:
        err(f"cannot reach Kafka at {config.bootstrap_servers}: {e}")
        return EXIT_UNREACHABLE
    except client.KafkaException as e:
        if args.action in ("create", "delete"):
            audit.record(f"topics.{args.action}", topology.name, f"refused: {e}",
                         config=config)
        err(f"Kafka refused: {e}")
        return EXIT_FAILED


# -- deploy k8s -------------------------------------------------------------------------------


def cmd_deploy_k8s(args: argparse.Namespace) -> int:
    """``streamflow deploy k8s MODULE``: print or write Kubernetes manifests."""
    from streamflow.ops import k8s

    if args.replicas < 1:
        msg = "--replicas must be at least 1"
        raise CliError(msg, EXIT_USAGE)
    config = load_settings(args.config)
    topology = load_topology(args.module, name_suffix=config.name_suffix)
    opts = k8s.K8sOptions(image=args.image, namespace=args.namespace, replicas=args.replicas,
                          storage=args.storage, storage_class=args.storage_class,
                          kafka_users=args.kafka_users, mount_keys=args.mount_keys,
                          keys_secret=args.keys_secret)
    rendered = k8s.render(topology, args.module, opts, config)
    for w in rendered.warnings:
        warn(w)
    if args.output in (None, "-"):
        sys.stdout.write(rendered.yaml())
    else:
        for path in k8s.write(rendered, args.output):
            print(f"wrote {path}", file=sys.stderr)
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
        "co-partitioned. Prints one line per problem with how to fix it. Stateful steps "
        "(count, reduce, aggregate, windowed ones, group_by) without name= are warnings: "
        "their state is named by position and moves when a step is inserted before them.",
        epilog="Exit codes: 0 no problems, 3 problems found (or the topology cannot be "
        "loaded; with --against-cluster: state a deploy would orphan), 4 schema registry "
        "(or, with --against-cluster, Kafka) unreachable.",
    )
    chk.add_argument("module", metavar="MODULE[:ATTR]")
    chk.add_argument("--config", "-c", help=CONFIG_HELP)
    chk.add_argument("--strict", action="store_true",
                     help="stateful steps without an explicit name= are problems, not warnings")
    chk.add_argument("--against-cluster", action="store_true",
                     help="compare the topology's changelog and repartition topics with the "
                     "cluster's (bootstrap servers from the configuration): list the state a "
                     "deploy would orphan (a problem) and the topics it would create")
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
        p.add_argument("--config", "-c", help=CONFIG_HELP)
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
    k.add_argument("--kafka-users", metavar="CLUSTER",
                   help="also render a Strimzi KafkaUser per processor (in the Kafka cluster "
                   "CLUSTER) with its least-privilege ACLs (see `streamflow acls`); its pods "
                   "log in as that user with the password from the Secret Strimzi creates")
    k.add_argument("--mount-keys", choices=MOUNT_CHOICES, default="auto",
                   help="which processors mount the key file of field-level encryption from "
                   "the Secret --keys-secret (read-only, mode 0400; STREAMFLOW_ENCRYPTION_KEYS "
                   "names it): auto (default) those reading or writing encrypted fields, all, "
                   "or none")
    k.add_argument("--keys-secret", metavar="NAME",
                   help="the Secret holding the key file as keys.json (default "
                   "<topology>-keys; you create it: kubectl create secret generic NAME "
                   "--from-file=keys.json=PATH)")
    k.add_argument("--config", "-c", help=CONFIG_HELP)
    k.set_defaults(func=cmd_deploy_k8s)
