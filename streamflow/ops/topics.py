"""``streamflow topics create|describe|delete``: a topology's topics on a real cluster.

The topics of a topology are its declared topics (external and internal ones included) and
the dead-letter topics of its ``on_error="dead_letter"`` processors. Partitions, replication
and configs come from the declarations; undeclared partitions and replication fall back to
the ``default_partitions`` / ``default_replication`` settings when creating.

Everything talks to Kafka through :mod:`streamflow.kafka.client`.

>>> import streamflow as sf
>>> from streamflow.config import Config
>>> t = sf.Topology("shop")
>>> src = t.topic("orders", partitions=3, external=True)
>>> [(s.name, s.partitions, s.replication) for s in create_specs(t, Config())]
[('orders', 3, 1)]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from streamflow.config import Config
from streamflow.dsl.topology import Processor, Topic, Topology
from streamflow.kafka import client

__all__ = [
    "CreateSpec",
    "TopicRow",
    "create",
    "create_specs",
    "deletable",
    "delete",
    "describe",
    "format_table",
    "topology_topics",
]


def topology_topics(topology: Topology) -> list[Topic]:
    """Declared topics, then dead-letter topics that are not declared, in order."""
    topics = list(topology.topics.values())
    for p in topology.processors.values():
        dlq = p.dead_letter_topic
        if p.dead_letters and all(t.name != dlq for t in topics):
            topics.append(Topic(dlq))
    return topics


def _kind(topology: Topology, t: Topic) -> str:
    if t.external:
        return "external"
    if t.internal:
        return "internal"
    if any(p.dead_letters and p.dead_letter_topic == t.name
           for p in topology.processors.values()):
        return "dead-letter"
    return ""


@dataclass(frozen=True)
class CreateSpec:
    """A topic to create: name, partitions, replication factor and configs."""

    name: str
    partitions: int
    replication: int
    config: dict[str, str]


def _internal_owners(topology: Topology) -> dict[str, Processor]:
    """Internal topic -> the processor that owns it (changelogs, repartition topics)."""
    owners: dict[str, Processor] = {}
    for p in topology.processors.values():
        for name in [*p.source_topics(), *p.sink_topics(), *p.changelog_topics()]:
            t = topology.topics.get(name)
            if t is not None and t.internal:
                owners.setdefault(name, p)
    return owners


def create_specs(topology: Topology, config: Config,
                 actual: Mapping[str, int] | None = None) -> list[CreateSpec]:
    """What ``topics create`` asks for, defaults filled in from ``config``.

    Internal topics get as many partitions as their processor's widest input (``actual``
    partition counts of existing topics, else what will be created), as the runtime
    expects when it starts (``streamflow.runtime.topics.ensure_topics``).
    """
    actual = actual or {}
    specs = [
        CreateSpec(t.name, t.partitions or config.default_partitions,
                   t.replication or config.default_replication, t.config_dict)
        for t in topology_topics(topology)
    ]
    effective = {s.name: actual.get(s.name, s.partitions) for s in specs}
    owners = _internal_owners(topology)
    out = []
    for s in specs:
        owner = owners.get(s.name)
        if owner is not None:
            widths = [effective.get(t, 0) for t in owner.source_topics()
                      if not topology.topics[t].internal]
            width = max(widths or [config.default_partitions]) or config.default_partitions
            s = CreateSpec(s.name, width, s.replication, s.config)
        out.append(s)
    return out


def create(admin: Any, topology: Topology, config: Config) -> tuple[list[CreateSpec], list[str]]:
    """Create the missing topics (external ones too); return ``(created, already_there)``."""
    names = [t.name for t in topology_topics(topology)]
    existing = client.describe_topics(admin, names, timeout=config.startup_timeout_s,
                                      with_config=False)
    specs = create_specs(topology, config, {n: s.partitions for n, s in existing.items()})
    missing = [s for s in specs if s.name not in existing]
    made = set(client.create_topics(
        admin, [(s.name, s.partitions, s.replication, s.config) for s in missing],
        timeout=config.startup_timeout_s,
    ))
    created = [s for s in missing if s.name in made]
    there = [s.name for s in specs if s.name not in made]
    return created, there


@dataclass(frozen=True)
class TopicRow:
    """A topic as declared and as found on the cluster.

    ``actual_*`` are None when it does not exist. ``drift`` lists what differs, one phrase each.
    """

    name: str
    kind: str
    declared_partitions: int | None
    declared_replication: int | None
    declared_config: dict[str, str]
    exists: bool
    actual_partitions: int | None = None
    actual_replication: int | None = None
    actual_config: dict[str, str] = field(default_factory=dict)
    drift: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        """``ok``, ``MISSING`` or ``DRIFT: <what differs>``."""
        if not self.exists:
            return "MISSING"
        if self.drift:
            return "DRIFT: " + "; ".join(self.drift)
        return "ok"


def _policy(v: str) -> set[str]:
    return {p.strip() for p in v.split(",") if p.strip()}


def _config_drift(declared: dict[str, str], actual: dict[str, str]) -> list[str]:
    out = []
    for key, want in declared.items():
        have = actual.get(key)
        same = (have is not None and _policy(have) == _policy(want)) if key == "cleanup.policy" \
            else have == want
        if not same:
            out.append(f"{key} declared {want}, actual {have if have is not None else 'unset'}")
    return out


def describe(admin: Any, topology: Topology, config: Config) -> list[TopicRow]:
    """Compare every topic of the topology with the cluster."""
    topics = topology_topics(topology)
    state = client.describe_topics(admin, [t.name for t in topics],
                                   timeout=config.startup_timeout_s)
    expected = {s.name: s.partitions for s in
                create_specs(topology, config, {n: s.partitions for n, s in state.items()})}
    rows = []
    for t in topics:
        kind = _kind(topology, t)
        if t.internal:  # its partition count follows the processor's inputs
            t = replace(t, partitions=expected[t.name])
        s = state.get(t.name)
        if s is None:
            rows.append(TopicRow(t.name, kind, t.partitions, t.replication, t.config_dict, False))
            continue
        drift = []
        if t.partitions is not None and t.partitions != s.partitions:
            drift.append(f"partitions declared {t.partitions}, actual {s.partitions}")
        if t.replication is not None and t.replication != s.replication:
            drift.append(f"replication declared {t.replication}, actual {s.replication}")
        drift += _config_drift(t.config_dict, s.config)
        rows.append(TopicRow(t.name, kind, t.partitions, t.replication, t.config_dict, True,
                             s.partitions, s.replication, s.config, tuple(drift)))
    return rows


def _num(declared: int | None, actual: int | None, exists: bool) -> str:
    d = "-" if declared is None else str(declared)
    a = str(actual) if exists and actual is not None else "-"
    return f"{d}/{a}"


def format_table(rows: list[TopicRow]) -> str:
    """A plain-text table of the topics.

    Topic, kind, declared/actual partitions and replication, the declared configs, and the
    status (``ok``, ``MISSING`` or ``DRIFT: ...``).
    """
    head = ("TOPIC", "KIND", "PARTITIONS", "REPLICATION", "CONFIG", "STATUS")
    body = [
        (r.name, r.kind or "-", _num(r.declared_partitions, r.actual_partitions, r.exists),
         _num(r.declared_replication, r.actual_replication, r.exists),
         ",".join(f"{k}={v}" for k, v in sorted(r.declared_config.items())) or "-", r.status)
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head) - 1)]
    lines = []
    for row in [head, *body]:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines) + "\n"


def deletable(topology: Topology, *, include_external: bool = False) -> list[str]:
    """Topic names ``topics delete`` removes: all but external ones unless asked."""
    return [t.name for t in topology_topics(topology) if include_external or not t.external]


def delete(admin: Any, names: list[str], config: Config) -> tuple[list[str], list[str]]:
    """Delete the topics that exist; return ``(deleted, absent)``."""
    state = client.describe_topics(admin, names, timeout=config.startup_timeout_s,
                                   with_config=False)
    present = [n for n in names if n in state]
    client.delete_topics(admin, present, timeout=config.startup_timeout_s)
    return present, [n for n in names if n not in state]
