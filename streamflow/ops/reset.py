"""``streamflow reset``: make a processor start over, like Kafka's streams application reset tool.

A reset of processor ``p`` (its consumer group must have no active members):

1. moves the group's committed offsets on its input topics to the earliest or latest offset,
   or to the first record at or after a time (``--to-datetime``, ``--by-duration``);
2. truncates its repartition topics and its foreign-key joins' subscription and response
   topics (deletes every record: DeleteRecords up to the end) and moves the group's offsets
   on them to their end;
3. deletes its changelog topics (Kafka refuses DeleteRecords on compacted topics); a worker
   creates them again when it starts, or this reset does when the ``create_topics`` setting
   is off;
4. wipes the processor's local state folders it can see under ``state_dir``
   (``<state_dir>/<instance id>/<topology>/<processor>``). Workers on other hosts find their
   checkpoints outside the new, empty changelogs and wipe their stores themselves.

:func:`plan_reset` computes every step without changing anything (``--dry-run`` prints it);
:func:`apply_reset` carries the plan out after checking the group once more.

Kafka requests made (and the ACLs they need): DescribeGroups (Describe on the group),
ListOffsets and Metadata (Describe on the topics), OffsetCommit (Read on the group and the
input and repartition topics), DeleteRecords (Delete on the repartition and subscription
topics), DeleteTopics (Delete on the changelog topics), CreateTopics (Create on them, only
with ``create_topics`` off).

>>> parse_duration("PT1H30M"), parse_duration("15m"), parse_duration("P1DT2S")
(5400000, 900000, 86402000)
>>> parse_datetime("2026-11-26T07:00:00Z")
1795676400000
"""

from __future__ import annotations

import datetime
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamflow.config import Config
from streamflow.dsl.topology import Processor, Topology
from streamflow.errors import GroupActiveError, ProcessingError, UsageError
from streamflow.kafka import client, groups
from streamflow.ops.topics import create_specs
from streamflow.runtime.identity import LOCK_FILE, InstanceLock

__all__ = [
    "ResetPlan",
    "ResetStep",
    "apply_reset",
    "parse_datetime",
    "parse_duration",
    "plan_reset",
    "reset_target",
]

Pair = tuple[str, int]

_ISO = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?")
_SHORT = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration(text: str) -> int:
    """Milliseconds of an ISO-8601 duration (``PT1H``, ``P1DT30M``) or ``90s``, ``2h``, ``1d``.

    Raises :class:`~streamflow.errors.UsageError` for anything else.
    """
    t = text.strip()
    m = _ISO.fullmatch(t.upper())
    if m and t.upper() not in ("P", "PT"):
        d, h, mi, s = m.groups()
        return int(((int(d or 0) * 24 + int(h or 0)) * 60 + int(mi or 0)) * 60_000
                   + float(s or 0) * 1000)
    m = _SHORT.fullmatch(t.lower())
    if m:
        return int(float(m.group(1)) * _UNIT_MS[m.group(2)])
    msg = f"duration {text!r}: use ISO-8601 (PT1H, P1DT12H, PT30M) or 90s, 15m, 2h, 1d"
    raise UsageError(msg)


def parse_datetime(text: str) -> int:
    """Milliseconds since the epoch of an ISO-8601 time; without a zone, UTC.

    Raises :class:`~streamflow.errors.UsageError` for anything else.
    """
    try:
        dt = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        msg = f"time {text!r}: use ISO-8601, e.g. 2026-11-26T07:00:00Z (no zone: UTC)"
        raise UsageError(msg) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.UTC)
    return int(dt.timestamp() * 1000)


def reset_target(*, to_earliest: bool = False, to_latest: bool = False,
                 to_datetime: str | None = None, by_duration: str | None = None,
                 now_ms: int | None = None) -> str | int:
    """Where inputs go: ``"earliest"``, ``"latest"`` or a timestamp in ms (exactly one given)."""
    given = [x for x in (to_earliest or None, to_latest or None, to_datetime, by_duration)
             if x is not None]
    if len(given) != 1:
        msg = "give exactly one of --to-earliest, --to-latest, --to-datetime, --by-duration"
        raise UsageError(msg)
    if to_earliest:
        return groups.EARLIEST
    if to_latest:
        return groups.LATEST
    if to_datetime is not None:
        return parse_datetime(to_datetime)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return now - parse_duration(str(by_duration))


@dataclass(frozen=True)
class ResetStep:
    """One thing the reset does: ``action`` on ``target``, in words (``detail``)."""

    action: str  # move-offsets, truncate, delete-topic, create-topic, wipe-state
    target: str
    detail: str

    def __str__(self) -> str:
        return f"{self.action} {self.target}: {self.detail}"


@dataclass(frozen=True)
class ResetPlan:
    """Everything a reset of one processor does, computed without changing anything."""

    topology: str
    processor: str
    group_id: str
    target: str | int
    offsets: dict[Pair, int] = field(default_factory=dict)  # new committed offsets
    truncate: dict[Pair, int] = field(default_factory=dict)  # delete records below
    delete_topics: tuple[str, ...] = ()
    create_topics: tuple[str, ...] = ()  # deleted changelogs made again (create_topics off)
    folders: tuple[Path, ...] = ()
    steps: tuple[ResetStep, ...] = ()


def _check_idle(admin: Any, p: Processor, timeout: float) -> None:
    info = groups.describe_group(admin, p.group_id, timeout)
    if info.members:
        who = ", ".join(f"{m.instance_id or m.client_id} on {m.host}" for m in info.members)
        msg = (f"processor {p.name!r} is running: its group {p.group_id!r} is {info.state} with "
               f"{len(info.members)} active member(s): {who}. Stop every worker of the "
               "processor (static members leave after their session timeout), then reset")
        raise GroupActiveError(msg)


def _folders(config: Config, topology: Topology, p: Processor) -> list[Path]:
    root = Path(config.state_dir)
    if not root.is_dir():
        return []
    return sorted(f for f in root.glob(f"*/{topology.name}/{p.name}") if f.is_dir())


def plan_reset(topology: Topology, processor: str, config: Config, target: str | int, *,
               admin: Any = None, timeout_s: float = 10.0) -> ResetPlan:
    """What resetting ``processor`` to ``target`` would do (nothing is changed).

    Raises :class:`~streamflow.errors.GroupActiveError` while its group has members, and
    :class:`~streamflow.kafka.client.Unreachable` when the broker does not answer.
    """
    p = topology.processors[processor]
    admin = admin if admin is not None else client.make_admin(config.client_conf())
    _check_idle(admin, p, timeout_s)
    sources = p.source_topics()
    inputs = [t for t in sources if not topology.topics[t].internal]
    repartition = [t for t in sources if topology.topics[t].internal]
    changelogs = p.changelog_topics()  # a table restored from its source topic has none
    parts = groups.partitions_of(admin, [*sources, *changelogs], timeout_s)
    in_pairs = [(t, n) for t in inputs for n in parts.get(t, [])]
    re_pairs = [(t, n) for t in repartition for n in parts.get(t, [])]
    committed = groups.group_offsets(admin, p.group_id, in_pairs + re_pairs, timeout_s)
    moved = groups.list_offsets(admin, in_pairs, target, timeout=timeout_s)
    ends = groups.list_offsets(admin, re_pairs, groups.LATEST, read_committed=False,
                               timeout=timeout_s)
    where = target if isinstance(target, str) else (
        "the first record at or after "
        + datetime.datetime.fromtimestamp(target / 1000, datetime.UTC).isoformat())
    steps = []
    for pair in in_pairs:
        before = committed.get(pair)
        steps.append(ResetStep("move-offsets", f"{pair[0]}[{pair[1]}]",
                               f"group {p.group_id}: {'none' if before is None else before} "
                               f"-> {moved[pair]} ({where})"))
    steps += [ResetStep("move-offsets", t, "the topic does not exist: nothing to move")
              for t in inputs if t not in parts]
    for pair in re_pairs:
        steps.append(ResetStep("truncate", f"{pair[0]}[{pair[1]}]",
                               f"delete the records below {ends[pair]}; group "
                               f"{p.group_id} -> {ends[pair]}"))
    deleting = tuple(t for t in changelogs if t in parts)
    steps += [ResetStep("delete-topic", t, "changelog of store "
                        f"{next(s.name for s in p.stores.values() if s.changelog == t)!r}")
              for t in deleting]
    creating = () if config.create_topics else deleting
    steps += [ResetStep("create-topic", t, "made again empty (create_topics is off)")
              for t in creating]
    folders = _folders(config, topology, p)
    steps += [ResetStep("wipe-state", str(f), "local state of instance "
                        f"{f.parent.parent.name!r}") for f in folders]
    offsets = {**moved, **ends}
    return ResetPlan(topology.name, p.name, p.group_id, target, offsets, dict(ends), deleting,
                     creating, tuple(folders), tuple(steps))


def _wait_deleted(admin: Any, names: tuple[str, ...], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while set(names) & set(client.topic_names(admin, timeout)):
        if time.monotonic() > deadline:
            msg = f"topics {', '.join(names)} still exist {timeout:.0f}s after their deletion"
            raise ProcessingError(msg)
        time.sleep(0.2)


def apply_reset(topology: Topology, plan: ResetPlan, config: Config, *, admin: Any = None,
                timeout_s: float = 30.0) -> list[ResetStep]:
    """Carry ``plan`` out; returns the steps done, in order.

    The group is checked again first (:class:`~streamflow.errors.GroupActiveError`), and so
    are local workers holding a state folder.
    """
    p = topology.processors[plan.processor]
    admin = admin if admin is not None else client.make_admin(config.client_conf())
    _check_idle(admin, p, timeout_s)
    locks = [InstanceLock(f, f.parent.parent.name, p.name) for f in plan.folders]
    held = []
    try:
        for lock in locks:  # a local worker holds its folder's lock while it runs
            try:
                lock.acquire()
            except Exception as e:
                raise GroupActiveError(str(e)) from e
            held.append(lock)
        if plan.truncate:
            groups.delete_records(admin, plan.truncate, timeout_s)
        groups.alter_group_offsets(admin, plan.group_id, plan.offsets, timeout_s)
        if plan.delete_topics:
            client.delete_topics(admin, plan.delete_topics, timeout_s)
        if plan.create_topics:
            _wait_deleted(admin, plan.create_topics, timeout_s)
            actual = {t: len(ns) for t, ns in
                      groups.partitions_of(admin, topology.topics, timeout_s).items()}
            specs = {s.name: s for s in create_specs(topology, config, actual)}
            client.create_topics(admin, [(s.name, s.partitions, s.replication, s.config)
                                         for n in plan.create_topics
                                         for s in [specs[n]]], timeout_s)
        for folder in plan.folders:
            for child in folder.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
                elif child.name != LOCK_FILE:
                    child.unlink()
    finally:
        for lock in held:
            lock.release()
    return list(plan.steps)
