"""``streamflow schemas check|register|list MODULE``: print `streamflow.ops.schemas` reports."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from streamflow.cli.common import CONFIG_HELP, CliError, failing, load_settings
from streamflow.errors import EXIT_CONFIG, EXIT_OK
from streamflow.ops import audit
from streamflow.ops.load import load_topology
from streamflow.ops.schemas import SubjectReport, check_schemas, list_subjects, register_schemas
from streamflow.runtime.contracts import avro_sides
from streamflow.serde import SerdeContext

__all__ = ["add_commands", "cmd_schemas"]



def _summary(reports: list[SubjectReport]) -> str:
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.status] = counts.get(r.status, 0) + 1
    parts = ", ".join(f"{n} {status.lower()}" for status, n in counts.items())
    return f"{len(reports)} subject(s): {parts}"


def cmd_schemas(args: argparse.Namespace) -> int:
    """``streamflow schemas check|register|list MODULE``; returns the exit code."""
    from streamflow.kafka.registry import make_registry_client

    config = load_settings(args.config)
    topology = load_topology(args.module, name_suffix=config.name_suffix)
    if not avro_sides(topology):
        print(f"topology {topology.name!r} has no Avro topics: nothing to {args.action}")
        return EXIT_OK
    if args.action == "list":  # no registry needed
        reports = list_subjects(topology, SerdeContext(schemas_dir=Path(config.schemas_dir)),
                                module=args.module)
        print(f"topology {topology.name!r}: Avro subjects (INTERNAL: kept by streamflow in "
              "stores and internal topics)")
        print("\n".join(r.render() for r in reports))
        print(_summary(reports))
        return EXIT_CONFIG if any(r.failed for r in reports) else EXIT_OK
    if not config.registry_url:
        msg = (
            "no schema registry configured: set STREAMFLOW_SCHEMA_REGISTRY_URL or "
            "[schema_registry] url in the config file"
        )
        raise CliError(msg)
    try:
        registry = make_registry_client(dict(config.schema_registry))
    except ValueError as e:
        raise CliError(str(e)) from e
    ctx = SerdeContext(registry_factory=lambda: registry, schemas_dir=Path(config.schemas_dir))
    try:
        with failing(f"schemas {args.action} failed"):
            if args.action == "check":
                reports = check_schemas(topology, registry, ctx, module=args.module,
                                        include_external=args.include_external)
            else:
                reports = register_schemas(topology, ctx,
                                           include_external=args.include_external)
    except Exception as e:
        if args.action == "register":
            audit.record("schemas.register", topology.name, f"error: {e}", config=config)
        raise
    finally:
        registry.close()
    if args.action == "register":
        audit.record("schemas.register", topology.name,
                     "refused" if any(r.failed for r in reports) else "ok", config=config,
                     subjects={r.subject: r.status for r in reports})
    print(f"topology {topology.name!r}: Avro subjects against the schema registry at "
          f"{registry.url}")
    for r in reports:
        print(r.render())
    failed = [r for r in reports if r.failed]
    print(_summary(reports))
    if failed:
        what = "incompatible or invalid" if args.action == "check" else "refused or invalid"
        print(f"{len(failed)} subject(s) {what}: see above")
        return EXIT_CONFIG
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Register ``schemas check|register|list`` on the ``streamflow`` subparsers."""
    schemas = sub.add_parser(
        "schemas", help="compare a topology's Avro schemas with the registry, or register them",
        description="Avro contracts of a topology against the schema registry.",
    )
    actions = schemas.add_subparsers(dest="action", metavar="ACTION", required=True)
    specs = [
        ("check", "compare every Avro subject with the registry",
         "For every Avro key and value of the topology's topics, compare the declared schema "
         "with its subject: topics the topology owns must pass the subject's compatibility "
         "level (BACKWARD, FORWARD, FULL, their _TRANSITIVE forms, NONE) against the "
         "registered versions; topics it reads (and external ones) must be readable, i.e. "
         "the declared schema reads the latest registered version. Unregistered subjects "
         "are NEW (fine). Stores and internal topics that keep a topic's Avro values have "
         "subjects of their own, checked too. One line per subject; what breaks is listed "
         "(field, change, why).",
         "Exit codes: 0 every subject ok or new, 3 a subject is incompatible (or a schema "
         "invalid, or no registry configured), 4 schema registry unreachable."),
        ("register", "register every Avro subject's declared schema",
         "Register the declared schema of every Avro key and value of the topology's topics "
         "under its subject (whatever auto_register says), and those of the stores and "
         "internal topics that keep a topic's Avro values. External topics are skipped: "
         "their producers own those subjects (--include-external registers them too).",
         "Exit codes: 0 registered (or already there), 3 the registry refused a schema (its "
         "message and the explanation are shown) or no registry configured, 4 schema "
         "registry unreachable."),
        ("list", "list every Avro subject, the internal ones too (no registry needed)",
         "List the Avro subjects of the topology: its topics' (TOPIC, EXTERNAL) and those "
         "streamflow writes itself (INTERNAL: stores and repartition or foreign-key topics "
         "that keep a topic's Avro values, under <changelog or topic>-value), with where each "
         "is used and who registers it.",
         "Exit codes: 0 listed, 3 a declared schema cannot be loaded."),
    ]
    for action, short, long, epilog in specs:
        p = actions.add_parser(action, help=short, description=long, epilog=epilog)
        p.add_argument("module", metavar="MODULE[:ATTR]")
        p.add_argument("--config", "-c", help=CONFIG_HELP)
        if action != "list":
            p.add_argument("--include-external", action="store_true",
                           help="also apply the compatibility level to / register the "
                           "subjects of topics declared external=True")
        p.set_defaults(func=cmd_schemas)
