"""``streamflow schemas check|register|list MODULE``: a topology's Avro contracts and the registry.

Every Avro key and value of the topology's topics has a subject in the schema registry
(``<topic>-value`` under the default strategy), and so does every store and internal topic
that keeps a topic's Avro values (:mod:`streamflow.ops.subjects`, which ``list`` prints
without asking the registry). Sides that share a subject and a schema are reported once.

``check`` judges each subject (with :func:`streamflow.runtime.contracts.evaluate`, as
``streamflow check`` and the worker's start-up check do):

- a topic the topology owns (not ``external=True``) would have its declared schema
  registered by producing: it must pass the subject's compatibility level (BACKWARD,
  FORWARD, FULL, their ``_TRANSITIVE`` forms, or NONE) against the registered versions;
- a topic a processor reads, or an external one, must be readable: the declared (reader)
  schema must read data written with the latest registered version;
- a subject with no registered version is ``NEW``, which is fine (the summary says who
  registers it: with ``auto_register=False`` only ``register`` does, and workers refuse to
  start until it has).

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

from collections.abc import Callable
from typing import Any

from streamflow.dsl.topology import Topology
from streamflow.ops.subjects import (
    Subject,
    SubjectReport,
    list_subjects,
    registration_hint,
    topology_subjects,
)
from streamflow.runtime.contracts import READER_FIX, WRITER_FIX, RegistryReader, evaluate
from streamflow.serde import SerdeContext, SerdeError, compat

__all__ = [
    "SubjectReport",
    "check_schemas",
    "list_subjects",
    "register_schemas",
]


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
    groups, reports = topology_subjects(topology, ctx)
    for g in groups:
        registration = include_external or not g.external
        reading = bool(g.readers) or g.external

        def report(status: str, summary: str, details: tuple[str, ...] = (),
                   g: Subject = g) -> SubjectReport:
            return g.report(status, summary, details, ctx)

        try:
            verdict = evaluate(g.first, registry, ctx, registration=registration,
                               reading=reading)
        except (SerdeError, compat.InvalidSchema) as e:
            reports.append(report("ERROR", "the schema cannot be compared", (str(e),)))
            continue
        if verdict.new:
            hint = registration_hint(g, module) if registration else "its producer registers it"
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
            reports.append(report("FAIL", "; ".join(fails), tuple(details)))
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
    groups, reports = topology_subjects(topology, ctx)
    for g in groups:
        side = g.first

        def report(status: str, summary: str, details: tuple[str, ...] = (),
                   g: Subject = g) -> SubjectReport:
            return g.report(status, summary, details, ctx)

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
            reports.append(report("REFUSED", lines[0], tuple(lines[1:])))
            continue
        at = f"version {reg.version}, schema id {reg.schema_id}" if reg.version else \
            f"schema id {reg.schema_id}"
        if created:
            reports.append(report("REGISTERED", f"registered as {at}"))
        else:
            reports.append(report("EXISTS", f"already registered ({at})"))
    return reports
