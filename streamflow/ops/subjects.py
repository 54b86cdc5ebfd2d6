"""A topology's schema-registry subjects: its topics' and those streamflow keeps itself.

Every Avro key and value of a declared topic has a subject (``<topic>-value`` under the
default strategy). So does every store and internal topic that keeps values with a topic's
Avro serde (:mod:`streamflow.serde.stored`): a topic table's store, a ``reduce``, a
stream-stream join's stores under ``<changelog>-value``, a ``group_by`` under
``<repartition topic>-value``, and a foreign-key join's internal topics under their keys'.
:func:`topology_subjects` lists them all, once per subject and schema, with where each comes
from (:func:`streamflow.runtime.contracts.avro_sides` finds them); ``streamflow schemas
list`` prints :func:`list_subjects`, and ``check`` and ``register``
(:mod:`streamflow.ops.schemas`) work through the same list.

>>> import streamflow as sf
>>> t = sf.Topology("doc")
>>> price = sf.Avro({"type": "record", "name": "Price", "fields": [
...     {"name": "cents", "type": "long"}]}, auto_register=False)
>>> prices = t.topic("prices", key=sf.String(), value=price, external=True)
>>> _ = t.processor("p").stream(prices).group_by_key(name="k").reduce(max, name="top")
>>> for r in list_subjects(t, SerdeContext()):
...     print(r.render())  # doctest: +NORMALIZE_WHITESPACE
EXTERNAL   prices-value (topic 'prices' value, Avro(Price)): read by processor(s) 'p'; its
           producer registers it
INTERNAL   doc-p-top-changelog-value (store 'top' of processor 'p' (internal, changelog
           'doc-p-top-changelog') value, Avro(Price)): written by processor(s) 'p';
           `streamflow schemas register MODULE` registers it (auto_register is off: workers
           refuse to start without it)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamflow.dsl.topology import Topology
from streamflow.runtime.contracts import AvroSide, avro_sides
from streamflow.serde import SerdeContext, SerdeError

__all__ = ["FAILED", "Subject", "SubjectReport", "describe_serde", "list_subjects",
           "registration_hint", "topology_subjects"]

FAILED = frozenset({"FAIL", "ERROR", "REFUSED"})


@dataclass(frozen=True)
class SubjectReport:
    """The outcome for one subject: a status word, a one-line summary and details."""

    status: str  # OK NEW FAIL ERROR | REGISTERED EXISTS REFUSED SKIPPED | TOPIC EXTERNAL INTERNAL
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


@dataclass(frozen=True)
class Subject:
    """One subject and schema, with the topic sides (or stores) that use them."""

    subject: str
    sides: tuple[AvroSide, ...]

    @property
    def first(self) -> AvroSide:
        """The first side (all share the subject and the declared schema)."""
        return self.sides[0]

    @property
    def external(self) -> bool:
        """True when every side is an external topic (its producer owns the subject)."""
        return all(s.external for s in self.sides)

    @property
    def internal(self) -> bool:
        """True when streamflow alone writes the subject (stores, internal topics)."""
        return all(s.internal for s in self.sides)

    @property
    def registers(self) -> bool:
        """True when the first write registers the schema (some side's ``auto_register``)."""
        return any(getattr(s.serde, "auto_register", True) for s in self.sides)

    @property
    def readers(self) -> tuple[str, ...]:
        """Processors that read the subject's topics."""
        return tuple(dict.fromkeys(r for s in self.sides for r in s.readers))

    @property
    def writers(self) -> tuple[str, ...]:
        """Processors that write the subject's topics or stores."""
        return tuple(dict.fromkeys(w for s in self.sides for w in s.writers))

    @property
    def where(self) -> str:
        """Where the subject is used: ``topic 'payments' value, store 'totals' of ...``."""
        return ", ".join(s.where for s in self.sides)

    def report(self, status: str, summary: str, details: tuple[str, ...] = (),
               ctx: SerdeContext | None = None) -> SubjectReport:
        """A :class:`SubjectReport` about this subject."""
        return SubjectReport(status, self.subject, self.where,
                             describe_serde(self.first.serde, ctx or SerdeContext()), summary,
                             details)


def describe_serde(serde: Any, ctx: SerdeContext) -> str:
    """``Avro(com.example.Payment)`` (with the context's schema folder when it takes one)."""
    try:
        return str(serde.describe(ctx))
    except TypeError:  # a schema-registry serde whose describe() takes no context
        return str(serde.describe())


def topology_subjects(topology: Topology, ctx: SerdeContext
                      ) -> tuple[list[Subject], list[SubjectReport]]:
    """Every subject of ``topology``, by (subject, declared schema), in declaration order.

    Sides whose schema cannot be loaded come back as ``ERROR`` reports instead.
    """
    groups: dict[tuple[str, str], list[AvroSide]] = {}
    errors: list[SubjectReport] = []
    for side in avro_sides(topology):
        subject = "?"
        try:
            subject = str(side.serde.subject(side.topic, side.is_key, ctx))
            schema = str(side.serde.schema_str(ctx))
        except SerdeError as e:
            errors.append(SubjectReport(
                "ERROR", subject, side.where, describe_serde(side.serde, ctx),
                "the declared schema cannot be loaded",
                (str(e), "fix: the schema file or the Avro(...) declaration"),
            ))
            continue
        groups.setdefault((subject, schema), []).append(side)
    return [Subject(subject, tuple(sides)) for (subject, _), sides in groups.items()], errors


def registration_hint(s: Subject, module: str) -> str:
    """Who registers the subject's schema: its producer, the first write, or the command."""
    if s.external:
        return "its producer registers it"
    if s.registers:
        return f"`streamflow schemas register {module}` (or the first write) registers it"
    return (f"`streamflow schemas register {module}` registers it (auto_register is off: "
            "workers refuse to start without it)")


def list_subjects(topology: Topology, ctx: SerdeContext, *, module: str = "MODULE"
                  ) -> list[SubjectReport]:
    """One report per subject, without asking the registry.

    ``TOPIC`` (a topic the topology writes), ``EXTERNAL`` (its producer owns the subject) or
    ``INTERNAL`` (a store's or an internal topic's, which streamflow alone writes).
    """
    subjects, reports = topology_subjects(topology, ctx)
    for s in subjects:
        status = "EXTERNAL" if s.external else "INTERNAL" if s.internal else "TOPIC"
        uses = [f"{verb} by processor(s) {', '.join(map(repr, names))}"
                for verb, names in (("read", s.readers), ("written", s.writers)) if names]
        reports.append(s.report(status, "; ".join([*uses, registration_hint(s, module)]),
                                ctx=ctx))
    return reports
