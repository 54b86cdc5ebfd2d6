"""``streamflow acls MODULE --principal User:NAME``: least-privilege ACLs per processor.

Prints them (``--format kafka-acls|json|strimzi``), creates them (``--apply``, audited) or
compares them with the cluster (``--check``); :mod:`streamflow.ops.acls` does the work.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from streamflow.cli.common import CONFIG_HELP, CliError, load_settings, processor_names, warn
from streamflow.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from streamflow.ops import acls as ops_acls
from streamflow.ops import audit
from streamflow.ops.load import load_topology

__all__ = ["add_commands", "cmd_acls"]


def cmd_acls(args: argparse.Namespace) -> int:
    """Print, apply or check the ACLs; returns the exit code."""
    if args.apply and args.check:
        msg = "--apply and --check do not go together: apply, then check"
        raise CliError(msg, EXIT_USAGE)
    if ":" not in args.principal:
        msg = f"--principal {args.principal!r}: give it as TYPE:NAME, e.g. User:{args.principal}"
        raise CliError(msg, EXIT_USAGE)
    config = load_settings(args.config)
    topology = load_topology(args.module, name_suffix=config.name_suffix)
    names = processor_names(topology, args.processor)
    create = config.create_topics if args.create_topics is None else args.create_topics
    planned = ops_acls.plan(topology, names, args.principal, create_topics=create)
    for w in ops_acls.underivable(topology, names):
        warn(w)
    if not args.apply and not args.check:
        sys.stdout.write(ops_acls.render(planned, args.format, cluster=args.cluster,
                                         namespace=args.namespace))
        return EXIT_OK
    from streamflow.kafka import client, security

    security.connect(config.client_conf(), config.startup_timeout_s)
    admin = client.make_admin(config.client_conf())
    target = f"{topology.name}/{','.join(names)} for {args.principal}"
    if args.apply:
        try:
            created = ops_acls.apply(admin, planned)
        except client.KafkaException as e:
            audit.record("acls.apply", target, f"refused: {e}", config=config)
            msg = f"Kafka refused the ACLs (does this principal have ALTER on the cluster?): {e}"
            raise CliError(msg, EXIT_FAILED) from e
        audit.record("acls.apply", target, "ok", config=config,
                     acls=[ops_acls.describe_acl(a) for a in created])
        for a in created:
            print(f"allowed {ops_acls.describe_acl(a)}")
        print(f"{len(created)} ACL(s) in place for {args.principal}")
        return EXIT_OK
    result = ops_acls.check(admin, planned, args.principal)
    for a in result.missing:
        print(f"MISSING  {ops_acls.describe_acl(a)}")
    for a in result.broader:
        print(f"BROADER  {ops_acls.describe_acl(a)} (not needed by {', '.join(names)})")
    if result.ok:
        print(f"OK: {args.principal} has exactly the ACLs of {', '.join(names)}")
        return EXIT_OK
    grant = (f"streamflow acls {args.module} --principal {args.principal}"
             f"{' -p ' + args.processor if args.processor else ''} --apply")
    print(f"{len(result.missing)} missing, {len(result.broader)} broader than needed"
          + (f"; grant the missing ones with: {grant}" if result.missing else ""))
    return EXIT_FAILED


def add_commands(sub: Any) -> None:
    """Register ``acls``."""
    p = sub.add_parser(
        "acls", help="least-privilege ACLs of each processor: print, --apply or --check",
        description="Derive each processor's ACLs from the topology: READ/DESCRIBE on its "
        "inputs and its consumer group, WRITE/DESCRIBE on its outputs, dead-letter and late "
        "topics, READ/WRITE/DESCRIBE on its changelog and repartition topics (CREATE too when "
        "the worker creates them: the create_topics setting), DESCRIBE_CONFIGS on every topic "
        "it checks at start, WRITE/DESCRIBE on the transactional ids <group id>-* under "
        "exactly-once. Print them as kafka-acls commands, JSON or Strimzi KafkaUser "
        "resources; --apply creates them through the admin API (run it with admin "
        "credentials; recorded in the audit log); --check compares them with the cluster.",
        epilog="Exit codes: 0 ok (--check: the cluster grants exactly these), 1 --check found "
        "missing or broader ACLs, or Kafka refused --apply, 2 usage, 3 configuration or "
        "topology error, 4 Kafka unreachable, 6 Kafka refused the credentials.",
    )
    p.add_argument("module", metavar="MODULE[:ATTR]")
    p.add_argument("--processor", "-p", help="only this processor (default: every one)")
    p.add_argument("--principal", required=True,
                   help="the principal the processor's workers authenticate as, e.g. User:app")
    p.add_argument("--format", "-f", choices=ops_acls.FORMATS, default="kafka-acls",
                   help="output format (default kafka-acls: one kafka-acls.sh command per "
                   "resource)")
    p.add_argument("--apply", action="store_true", help="create the ACLs on the cluster")
    p.add_argument("--check", action="store_true",
                   help="compare with the cluster: list missing and broader ACLs")
    create = p.add_mutually_exclusive_group()
    create.add_argument("--create-topics", dest="create_topics", action="store_true",
                        default=None, help="include CREATE on internal topics (default: the "
                        "create_topics setting)")
    create.add_argument("--no-create-topics", dest="create_topics", action="store_false",
                        help="no CREATE: an admin creates every topic beforehand")
    p.add_argument("--cluster", default="my-cluster",
                   help="strimzi: the Kafka cluster the users belong to (strimzi.io/cluster)")
    p.add_argument("--namespace", "-n", help="strimzi: namespace of the KafkaUser resources")
    p.add_argument("--config", "-c", help=CONFIG_HELP)
    p.set_defaults(func=cmd_acls)
