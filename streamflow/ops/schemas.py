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

Both exit 4 when the registry cannot be reached and 3 when none is configured. The
command itself (arguments, printing, exit codes) is :mod:`streamflow.cli.schemas`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from streamflow.dsl.topology import Topology
from streamflow.runtime.contracts import (
    READER_FIX,
    WRITER_FIX,
    AvroSide,
    RegistryReader,
    avro_sides,
    evaluate,
)
from streamflow.serde import SerdeContext, SerdeError, compat

__all__ = [
    "SubjectReport",
    "check_schemas",
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
