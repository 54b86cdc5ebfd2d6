"""Avro contracts: do a topology's declared schemas fit what the schema registry holds?

One place answers this for three callers:

- :meth:`Worker.start <streamflow.runtime.worker.Worker.start>` calls
  :func:`check_processor` before consuming: every Avro topic the processor *reads* must be
  readable with its declared (reader) schema — the latest registered (writer) version of
  the subject, if any, must resolve to it; every Avro topic it *writes* must be registered
  or registrable (``Avro.prepare``). Otherwise the processor refuses to start
  (:class:`ContractError`, exit code 3) saying which topic, subject and field, and how to
  fix it. An unreachable registry raises :class:`~streamflow.serde.base.SerdeUnavailable`
  (exit code 4: the supervisor retries).
- ``streamflow check`` (:mod:`streamflow.ops.check`) and ``streamflow schemas
  check|register|list`` (:mod:`streamflow.ops.schemas`) enumerate a topology's Avro subjects
  with :func:`avro_sides` and judge each with :func:`evaluate`.

Besides the declared topics' keys and values, :func:`avro_sides` lists the subjects streamflow
makes itself: a store or an internal topic (repartition, foreign-key subscription) that keeps
a topic's values with the topic's Avro serde (:mod:`streamflow.serde.stored`) writes them
under ``<changelog or internal topic>-value``. Those are registered by the first write, or,
with ``auto_register=False``, by ``streamflow schemas register`` alone; a worker whose store
subject is missing then refuses to start, naming the subject and that command.

>>> import streamflow as sf
>>> from streamflow.kafka.registry import make_registry_client
>>> t = sf.Topology("doc")
>>> src = t.topic("in", value=sf.Avro({"type": "string"}), external=True)
>>> t.processor("p").stream(src).to(t.topic("out", value=sf.Json()))
>>> registry = make_registry_client({"url": "mock://contracts-doc"})
>>> _ = registry.register("in-value", '"long"')
>>> [i.change for i in evaluate(avro_sides(t)[0], registry, reading=True).reading]
['type changed: writer has long, reader has string']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from streamflow.dsl.global_table import global_topics
from streamflow.errors import ConfigurationError
from streamflow.serde import compat
from streamflow.serde.base import SerdeContext, SerdeError, SerdeUnavailable

if TYPE_CHECKING:
    from streamflow.dsl.topology import Processor, Topic, Topology

__all__ = [
    "AvroSide",
    "ContractError",
    "RegistryReader",
    "Verdict",
    "avro_sides",
    "check_processor",
    "evaluate",
    "schema_serdes",
    "serde_sides",
]

READER_FIX = (
    "make the declared schema a compatible reader (give fields the writer lacks a default, "
    "keep field names or add aliases, only widen types), or align it with the producer's "
    "schema"
)
WRITER_FIX = (
    "change the schema compatibly (new fields need defaults; do not remove or retype fields "
    "readers use), or evolve through a new topic"
)


class ContractError(ConfigurationError):
    """A processor's Avro contracts do not fit the schema registry: it must not start."""


class RegistryReader(Protocol):
    """What the contract checks need from a registry client.

    :class:`streamflow.kafka.registry.RegistryClient` fits.
    """

    def versions(self, subject: str) -> list[Any]:
        """Registered versions of ``subject``, oldest first (each with ``schema_str``)."""
        ...

    def compatibility(self, subject: str | None = None) -> str:
        """The subject's compatibility level (BACKWARD, FULL_TRANSITIVE, ...)."""
        ...


@dataclass(frozen=True)
class AvroSide:
    """The key or value of a topic, declared with a schema-registry serde (Avro).

    Or kept with one by streamflow: ``internal`` for a repartition or foreign-key topic, and
    ``store`` names the store whose changelog ``topic`` is (its values only).
    """

    topic: str
    is_key: bool
    serde: Any
    external: bool = False
    readers: tuple[str, ...] = ()  # processors reading the topic
    writers: tuple[str, ...] = ()  # processors writing it with to(topic)
    internal: bool = False  # a topic or store changelog streamflow names and writes itself
    store: str = ""  # the store whose changelog this is
    changelog: str = ""  # its changelog (``topic`` names the subject: it may differ)

    @property
    def side(self) -> str:
        """``"key"`` or ``"value"``."""
        return "key" if self.is_key else "value"

    @property
    def where(self) -> str:
        """``topic 'payments' value``, ``internal topic '...' key`` or the store it keeps."""
        if self.store:
            return (f"store {self.store!r} of processor {self.writers[0]!r} (internal, "
                    f"changelog {self.changelog!r}) {self.side}")
        return f"{'internal topic' if self.internal else 'topic'} {self.topic!r} {self.side}"


@dataclass(frozen=True)
class Verdict:
    """How one declared schema compares with its subject in the registry.

    ``registration``: why the registry would refuse the declared schema under the subject's
    compatibility ``level`` (checked against the registered versions the level names);
    ``reading``: why the declared schema cannot read data written with the latest
    registered version. Both are empty when they were not asked for, or for a subject
    with no versions (``new``).
    """

    side: AvroSide
    subject: str
    declared: Any
    versions: tuple[Any, ...] = ()
    level: str | None = None
    registration: tuple[compat.Incompatibility, ...] = ()
    reading: tuple[compat.Incompatibility, ...] = ()

    @property
    def new(self) -> bool:
        """True when the subject has no registered version yet."""
        return not self.versions

    @property
    def ok(self) -> bool:
        """True when nothing breaks."""
        return not self.registration and not self.reading

    @property
    def latest_label(self) -> str:
        """``v3`` for the latest registered version (``latest`` if the registry gave none)."""
        if not self.versions:
            return "none"
        version = getattr(self.versions[-1], "version", None)
        return f"v{version}" if version else "latest"

    @property
    def extra_reading(self) -> tuple[compat.Incompatibility, ...]:
        """Reading problems that ``registration`` does not already cover.

        A BACKWARD or FULL level (transitive or not) checks that the declared schema reads the
        latest version, so under those levels this is empty.
        """
        if self.level is not None and self.level.upper().startswith(("BACKWARD", "FULL")):
            return ()
        return self.reading


def schema_serdes(serde: Any, topic: str) -> list[tuple[str, Any]]:
    """The schema-registry serdes (Avro) in ``serde`` bound to ``topic``: itself, or those it wraps.

    As ``(topic, serde)``, the topic naming the subject. A wrapper binds what it wraps
    (``inner``: kept values, window and join stores, windowed keys) to the topic it is given,
    or says which serde it binds to which topic with ``parts(topic)`` (a join's unmatched
    records: each side under a subject of its own).
    """
    if serde is None:
        return []
    if callable(getattr(serde, "schema_dict", None)):
        return [(topic, serde)]
    parts = getattr(serde, "parts", None)
    out: list[tuple[str, Any]] = []
    for t, s in parts(topic) if callable(parts) else [(topic, getattr(serde, "inner", None))]:
        out += [b for b in schema_serdes(s, t) if b not in out]
    return out


def serde_sides(topic: Topic) -> list[tuple[bool, Any]]:
    """``(is_key, serde)`` for the key/value serdes of ``topic`` that carry an Avro schema."""
    return [(is_key, inner) for is_key, s in ((True, topic.key), (False, topic.value))
            for _, inner in schema_serdes(s, topic.name)]


def avro_sides(topology: Topology, topics: Iterable[str] | None = None) -> list[AvroSide]:
    """Every Avro key/value of ``topology``'s topics and stores (only ``topics``, if given).

    In declaration order, with the processors that read and write each topic. A store's
    values are listed under its changelog topic, written (not read: its records carry their
    schema ids) by its processor.
    """
    wanted = None if topics is None else set(topics)
    readers: dict[str, list[str]] = {}
    writers: dict[str, list[str]] = {}
    stores: dict[str, tuple[str, Any]] = {}
    for p in topology.processors.values():
        for t in dict.fromkeys([*p.source_topics(), *global_topics(p)]):
            readers.setdefault(t, []).append(p.name)
        for t in dict.fromkeys(p.sink_topics()):
            writers.setdefault(t, []).append(p.name)
        stores.update((spec.changelog, (p.name, spec)) for spec in p.stores.values()
                      if spec.source_serdes is None)
    out: list[AvroSide] = []
    for topic in topology.topics.values():
        if wanted is not None and topic.name not in wanted:
            continue
        out += [AvroSide(topic.name, is_key, serde, topic.external,
                         tuple(readers.get(topic.name, ())), tuple(writers.get(topic.name, ())),
                         topic.internal)
                for is_key, serde in serde_sides(topic)]
        if topic.name in stores:
            owner, spec = stores[topic.name]
            out += [AvroSide(bound, False, serde, writers=(owner,), internal=True,
                             store=spec.name, changelog=topic.name)
                    for bound, serde in schema_serdes(spec.value_serde, topic.name)]
    return out


def evaluate(
    side: AvroSide,
    registry: RegistryReader,
    ctx: SerdeContext | None = None,
    *,
    registration: bool = False,
    reading: bool = False,
) -> Verdict:
    """Compare ``side``'s declared schema with its subject's registered versions.

    ``registration``: apply the subject's compatibility level (:func:`compat.check`);
    ``reading``: can the declared schema read the latest version (:func:`compat.can_read`).
    Raises :class:`SerdeError` when the declared schema cannot be loaded,
    :class:`compat.InvalidSchema` when a schema is not valid Avro, and the registry
    client's errors (unreachable, denied) as they are.
    """
    ctx = ctx or SerdeContext()
    declared = side.serde.schema_dict(ctx)
    subject = str(side.serde.subject(side.topic, side.is_key, ctx))
    versions = tuple(registry.versions(subject))
    if not versions:
        return Verdict(side, subject, declared)
    history = [str(v.schema_str) for v in versions]
    read_issues: tuple[compat.Incompatibility, ...] = ()
    if reading:
        read_issues = tuple(compat.can_read(reader=declared, writer=history[-1]))
    level = None
    reg_issues: tuple[compat.Incompatibility, ...] = ()
    if registration:
        level = registry.compatibility(subject)
        reg_issues = tuple(compat.check(declared, history, level))
    return Verdict(side, subject, declared, versions, level, reg_issues, read_issues)


# -- start-up -------------------------------------------------------------------------------


def check_processor(processor: Processor, ctx: SerdeContext) -> None:
    """Refuse to start ``processor`` when its Avro contracts do not fit the registry.

    Read topics: the declared schema must read the latest registered version of the subject
    (if any). Written topics and the processor's stores: the schema must be registered, or
    registrable when ``auto_register`` is on (this registers it, as producing would). Raises
    :class:`ContractError` listing every problem with its fix, or :class:`SerdeUnavailable`
    when the registry cannot be reached. Does nothing for processors without Avro topics.
    """
    from streamflow.kafka.registry import RegistryError, RegistryUnavailable, as_registry_client

    topology = processor.topology
    reads = avro_sides(topology, [*processor.source_topics(), *global_topics(processor)])
    changelogs = processor.changelog_topics()
    writes = [s for s in avro_sides(topology, [*processor.sink_topics(), *changelogs])
              if callable(getattr(s.serde, "prepare", None))]
    if not reads and not writes:
        return
    head = f"processor {processor.name!r} of topology {topology.name!r} cannot start"
    try:
        registry = as_registry_client(ctx.registry())
    except (SerdeError, ValueError) as e:  # no registry configured; invalid settings
        topics = ", ".join(dict.fromkeys(repr(s.topic) for s in [*reads, *writes]))
        msg = f"{head}: topic(s) {topics} use Avro, but {e}"
        raise ContractError(msg) from e
    problems: list[str] = []
    for side in reads:
        where = f"topic {side.topic!r} ({side.side})"
        try:
            declared = side.serde.schema_dict(ctx)
            subject = str(side.serde.subject(side.topic, side.is_key, ctx))
            latest = registry.latest(subject)
            if latest is None:
                continue  # nothing registered yet: nothing written with a registered schema
            issues = compat.can_read(reader=declared, writer=latest.schema_str)
        except SerdeError as e:
            problems.append(f"{where}: {e}")
            continue
        except compat.InvalidSchema as e:
            problems.append(f"{where}: invalid Avro schema: {e}")
            continue
        except RegistryUnavailable as e:
            msg = f"{head} yet: {e}"
            raise SerdeUnavailable(msg, url=registry.url) from e
        except RegistryError as e:
            problems.append(f"{where}: {e}")
            continue
        if issues:
            version = f"v{latest.version}, " if latest.version else ""
            problems.append(
                f"{where}, subject {subject!r}: the declared schema "
                f"{side.serde.describe(ctx)} cannot read data written with the latest "
                f"registered version ({version}schema id {latest.schema_id}):\n"
                f"{compat.explain(issues)}\n  how to fix: {READER_FIX}"
            )
    for side in writes:
        try:
            side.serde.prepare(side.topic, side.is_key, ctx)
        except SerdeError as e:
            problems.append(f"{side.where}, written here: {e}")
    if problems:
        listed = "\n".join(f"- {p}" for p in problems)
        msg = (
            f"{head}: its Avro contracts do not fit the schema registry at {registry.url}:\n"
            f"{listed}\n`streamflow schemas check MODULE` compares every subject of the "
            "topology with the registry."
        )
        raise ContractError(msg)
