"""``streamflow schemas check|register MODULE``: a topology's Avro contracts and the registry.

Every Avro key and value of the topology's topics has a subject in the schema registry
(``<topic>-value`` under the default strategy). Topics that share a subject and a schema
are reported once.

``check`` judges each subject (with :func:`streamflow.runtime.contracts.evaluate`, as
``streamflow check`` and the worker's start-up check do):

- a topic the topology owns (not ``external=True``) would have its declared schema
  registered by producing: it must pass the subject's compatibility level (BACKWARD,
  FORWARD, FULL, their ``_TRANSITIVE`` forms, or NONE) against the registered versions;
- a topic a processor reads, or an external one, must be readable: the declared (reader)
  schema must read data written with the latest registered version;
- a subject with no registered version is ``NEW``, which is fine.

Each subject gets one line, ``OK``, ``NEW``, ``FAIL`` (with what breaks: field, change and
why, and how to fix it) or ``ERROR`` (the declared schema cannot be loaded). Exit code 3 if
any subject fails, else 0.

``register`` registers the declared schemas (whatever ``auto_register`` says), skipping
external topics unless ``--include-external`` (their producers own those subjects):
``REGISTERED``, ``EXISTS`` (already there), ``REFUSED`` (the registry's message and
streamflow's explanation; exit code 3) or ``SKIPPED``.

Both exit 4 when the registry cannot be reached and 3 when none is configured.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamflow.cli import EXIT_CONFIG, EXIT_OK, EXIT_UNREACHABLE, CliError, load_topology
from streamflow.dsl.topology import Topology
from streamflow.runtime.contracts import (
    READER_FIX,
    WRITER_FIX,
    AvroSide,
    RegistryReader,
    avro_sides,
    evaluate,
)
from streamflow.serde import SerdeContext, SerdeError, SerdeUnavailable, compat

__all__ = [
    "SubjectReport",
    "add_schemas_command",
    "check_schemas",
    "cmd_schemas",
    "register_schemas",
]

FAILED = frozenset({"FAIL", "ERROR", "REFUSED"})


@dataclass(frozen=True)
class SubjectReport:
    """The outcome for one subject: a status word, a one-line summary and details."""

    status: str  # OK NEW FAIL ERROR | REGISTERED EXISTS REFUSED SKIPPED
    subject: str
    where: str  # "topic 'payments' value" (several topics may share a subject)
    schema: str  # "Avro(com.example.Payment)"
    summary: str
    details: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        """True for FAIL, ERROR and REFUSED."""
        return self.status in FAILED

    def render(self) -> str:
        """``STATUS subject (where, schema): summary`` plus indented details."""
        head = f"{self.status:<10} {self.subject} ({self.where}, {self.schema}): {self.summary}"
        return "\n".join([head, *(f"    {d}" for d in self.details)])


# -- grouping --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    subject: str
    sides: tuple[AvroSide, ...]

    @property
    def first(self) -> AvroSide:
        return self.sides[0]

    @property
    def external(self) -> bool:
        return all(s.external for s in self.sides)

    @property
    def readers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r for s in self.sides for r in s.readers))

    @property
    def where(self) -> str:
        return ", ".join(f"topic {s.topic!r} {s.side}" for s in self.sides)


def _describe(serde: Any, ctx: SerdeContext) -> str:
    try:
        return str(serde.describe(ctx))
    except TypeError:  # a schema-registry serde whose describe() takes no context
        return str(serde.describe())


def _groups(topology: Topology, ctx: SerdeContext) -> tuple[list[_Group], list[SubjectReport]]:
    """Avro sides grouped by (subject, declared schema); sides that can't be loaded as errors."""
    groups: dict[tuple[str, str], list[AvroSide]] = {}
    errors: list[SubjectReport] = []
    for side in avro_sides(topology):
        subject = "?"
        try:
            subject = str(side.serde.subject(side.topic, side.is_key, ctx))
            schema = str(side.serde.schema_str(ctx))
        except SerdeError as e:
            errors.append(SubjectReport(
                "ERROR", subject, f"topic {side.topic!r} {side.side}",
                _describe(side.serde, ctx), "the declared schema cannot be loaded",
                (str(e), "fix: the schema file or the Avro(...) declaration"),
            ))
            continue
        groups.setdefault((subject, schema), []).append(side)
    return [_Group(subject, tuple(sides)) for (subject, _), sides in groups.items()], errors


# -- check -----------------------------------------------------------------------------------


def check_schemas(
    topology: Topology,
    registry: RegistryReader,
    ctx: SerdeContext,
    *,
    module: str = "MODULE",
    include_external: bool = False,
) -> list[SubjectReport]:
    """Judge every Avro subject of ``topology`` against ``registry`` (see the module doc).

    ``include_external`` also applies the compatibility level to external topics' subjects
    (as if streamflow registered them). Registry errors propagate.
    """
    groups, reports = _groups(topology, ctx)
    for g in groups:
        side = g.first
        schema = _describe(side.serde, ctx)
        registration = include_external or not g.external
        reading = bool(g.readers) or g.external

        def report(status: str, summary: str, details: Iterable[str] = (),
                   g: _Group = g, schema: str = schema) -> SubjectReport:
            return SubjectReport(status, g.subject, g.where, schema, summary, tuple(details))

        try:
            verdict = evaluate(side, registry, ctx, registration=registration, reading=reading)
        except (SerdeError, compat.InvalidSchema) as e:
            reports.append(report("ERROR", "the schema cannot be compared", [str(e)]))
            continue
        if verdict.new:
            hint = ("its producer registers it" if not registration else
                    f"`streamflow schemas register {module}` (or the first write) registers it")
            reports.append(report("NEW", f"not registered yet (fine: {hint})"))
            continue
        label = verdict.latest_label
        n = len(verdict.versions)
        fails: list[str] = []
        details: list[str] = []
        if verdict.registration:
            scope = (f"all {n} registered versions" if str(verdict.level).endswith("_TRANSITIVE")
                     and n > 1 else f"the latest registered version {label}")
            fails.append(f"the registry would refuse it under {verdict.level} (checked "
                         f"against {scope})")
            details += [f"- {i}" for i in verdict.registration]
            details.append(f"fix: {WRITER_FIX}")
        extra = verdict.extra_reading
        if extra:
            who = ", ".join(repr(r) for r in g.readers) or "its readers"
            fails.append(f"processor(s) {who} read with it, but it cannot read data written "
                         f"with the latest registered version {label}")
            details += [f"- {i}" for i in extra]
            details.append(f"fix: {READER_FIX}")
        if fails:
            reports.append(report("FAIL", "; ".join(fails), details))
            continue
        oks = []
        if registration:
            oks.append(f"compatible under {verdict.level} with {label}"
                       + (f" ({n} versions)" if n > 1 else ""))
        if reading:
            oks.append(f"reads the latest registered version {label}")
        if g.external and not registration:
            oks.append("external topic: not registered by streamflow")
        reports.append(report("OK", "; ".join(oks)))
    return reports


# -- register ----------------------------------------------------------------------------------


def register_schemas(
    topology: Topology, ctx: SerdeContext, *, include_external: bool = False
) -> list[SubjectReport]:
    """Register every Avro subject of ``topology`` (external ones only if asked).

    Refusals become ``REFUSED`` reports; :class:`SerdeUnavailable` propagates.
    """
    groups, reports = _groups(topology, ctx)
    for g in groups:
        side = g.first
        schema = _describe(side.serde, ctx)

        def report(status: str, summary: str, details: Iterable[str] = (),
                   g: _Group = g, schema: str = schema) -> SubjectReport:
            return SubjectReport(status, g.subject, g.where, schema, summary, tuple(details))

        if g.external and not include_external:
            reports.append(report("SKIPPED", "external topic: its producer owns the subject "
                                  "(--include-external registers it anyway)"))
            continue
        register: Callable[..., Any] | None = getattr(side.serde, "register", None)
        if not callable(register):
            reports.append(report("ERROR", f"{type(side.serde).__name__} cannot register"))
            continue
        try:
            reg, created = register(side.topic, side.is_key, ctx)
        except SerdeError as e:
            lines = str(e).splitlines()
            reports.append(report("REFUSED", lines[0], lines[1:]))
            continue
        at = f"version {reg.version}, schema id {reg.schema_id}" if reg.version else \
            f"schema id {reg.schema_id}"
        if created:
            reports.append(report("REGISTERED", f"registered as {at}"))
        else:
            reports.append(report("EXISTS", f"already registered ({at})"))
    return reports


# -- command line ----------------------------------------------------------------------------


def _summary(reports: list[SubjectReport]) -> str:
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.status] = counts.get(r.status, 0) + 1
    parts = ", ".join(f"{n} {status.lower()}" for status, n in counts.items())
    return f"{len(reports)} subject(s): {parts}"


def cmd_schemas(args: argparse.Namespace) -> int:
    """``streamflow schemas check|register MODULE``; returns the exit code."""
    from streamflow.kafka.registry import RegistryError, make_registry_client
    from streamflow.runtime.config import load_config

    config = load_config(args.config)
    topology = load_topology(args.module)
    if not avro_sides(topology):
        print(f"topology {topology.name!r} has no Avro topics: nothing to {args.action}")
        return EXIT_OK
    if not config.registry_url:
        raise CliError("no schema registry configured: set STREAMFLOW_SCHEMA_REGISTRY_URL or "
                       "[schema_registry] url in the config file")
    try:
        registry = make_registry_client(dict(config.schema_registry))
    except ValueError as e:
        raise CliError(str(e)) from e
    ctx = SerdeContext(registry_factory=lambda: registry, schemas_dir=Path(config.schemas_dir))
    try:
        if args.action == "check":
            reports = check_schemas(topology, registry, ctx, module=args.module,
                                    include_external=args.include_external)
        else:
            reports = register_schemas(topology, ctx, include_external=args.include_external)
    except (SerdeUnavailable, RegistryError) as e:
        print(f"streamflow: error: schemas {args.action} failed: {e}", file=sys.stderr)
        return EXIT_UNREACHABLE
    finally:
        registry.close()
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


def add_schemas_command(sub: Any) -> None:
    """Register ``schemas check`` and ``schemas register`` on the ``streamflow`` subparsers."""
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
         "are NEW (fine). One line per subject; what breaks is listed (field, change, why).",
         "Exit codes: 0 every subject ok or new, 3 a subject is incompatible (or a schema "
         "invalid, or no registry configured), 4 schema registry unreachable."),
        ("register", "register every Avro subject's declared schema",
         "Register the declared schema of every Avro key and value of the topology's topics "
         "under its subject (whatever auto_register says). External topics are skipped: "
         "their producers own those subjects (--include-external registers them too).",
         "Exit codes: 0 registered (or already there), 3 the registry refused a schema (its "
         "message and the explanation are shown) or no registry configured, 4 schema "
         "registry unreachable."),
    ]
    for action, short, long, epilog in specs:
        p = actions.add_parser(action, help=short, description=long, epilog=epilog)
        p.add_argument("module", metavar="MODULE[:ATTR]")
        p.add_argument("--config", "-c", help="TOML config file (else $STREAMFLOW_CONFIG); "
                       "STREAMFLOW_* variables override it")
        p.add_argument("--include-external", action="store_true",
                       help="also apply the compatibility level to / register the subjects "
                       "of topics declared external=True")
        p.set_defaults(func=cmd_schemas)
