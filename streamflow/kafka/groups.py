"""Admin calls behind the operating commands: groups, offsets, records (``streamflow.ops``).

Everything here goes through one ``AdminClient`` (:func:`streamflow.kafka.client.make_admin`)
and takes and returns plain ``(topic, partition)`` pairs, so :mod:`streamflow.ops` never sees
a confluent type. Each function names the Kafka operation and the ACL it needs, for
``streamflow acls`` and operators granting least privilege:

==============================  =====================================================
function                        Kafka request (ACL: operation on resource)
==============================  =====================================================
:func:`describe_group`          DescribeGroups / ConsumerGroupDescribe (Describe on group)
:func:`group_offsets`           OffsetFetch (Describe on group, Describe on the topics)
:func:`alter_group_offsets`     OffsetCommit (Read on group, Read on the topics)
:func:`list_offsets`            ListOffsets (Describe on the topics)
:func:`delete_records`          DeleteRecords (Delete on the topics)
:func:`partitions_of`           Metadata (Describe on the topics)
==============================  =====================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

from streamflow.kafka.client import Unreachable

__all__ = [
    "EARLIEST",
    "LATEST",
    "GroupInfo",
    "GroupMember",
    "alter_group_offsets",
    "delete_records",
    "describe_group",
    "group_offsets",
    "list_offsets",
    "partitions_of",
]

Pair = tuple[str, int]

EARLIEST = "earliest"
LATEST = "latest"


@dataclass(frozen=True)
class GroupMember:
    """One member of a consumer group as the coordinator sees it.

    ``instance_id`` is the static member id (``group.instance.id``), None for a dynamic
    member; ``host`` the address it connected from (without librdkafka's leading ``/``).
    """

    member_id: str
    client_id: str
    instance_id: str | None
    host: str
    partitions: tuple[Pair, ...]


@dataclass(frozen=True)
class GroupInfo:
    """A consumer group: its state (``Stable``, ``Empty``, ``Dead``...), protocol and members.

    A group that never existed (or whose offsets expired) is ``Dead`` with no members.
    """

    group_id: str
    state: str
    protocol: str
    assignor: str
    members: tuple[GroupMember, ...]


def _state_name(state: Any) -> str:
    name = getattr(state, "name", str(state))
    return "".join(w.capitalize() for w in str(name).split("_")) if name else "Unknown"


def describe_group(admin: Any, group: str, timeout: float = 10.0) -> GroupInfo:
    """The state, protocol and members of ``group`` (DescribeGroups; Describe on the group).

    Raises :class:`~streamflow.kafka.client.Unreachable` when the cluster does not answer.
    """
    try:
        desc = admin.describe_consumer_groups([group], request_timeout=timeout)[group].result()
    except KafkaException as e:
        err = e.args[0] if e.args else None
        if err is not None and err.code() == KafkaError.GROUP_ID_NOT_FOUND:
            return GroupInfo(group, "Dead", "", "", ())
        if err is not None and err.code() in (KafkaError._TRANSPORT, KafkaError._TIMED_OUT):
            raise Unreachable(str(err)) from e
        raise
    members = tuple(
        GroupMember(m.member_id, m.client_id, m.group_instance_id or None,
                    str(m.host).lstrip("/"),
                    tuple(sorted((tp.topic, tp.partition)
                                 for tp in (m.assignment.topic_partitions or []))))
        for m in desc.members)
    protocol = _state_name(getattr(desc, "type", "")).lower()
    return GroupInfo(group, _state_name(desc.state), protocol if protocol != "unknown" else "",
                     desc.partition_assignor or "", members)


def group_offsets(admin: Any, group: str, partitions: Iterable[Pair] | None = None,
                  timeout: float = 10.0) -> dict[Pair, int]:
    """The committed offsets of ``group`` (OffsetFetch; Describe on group and topics).

    For ``partitions`` (every partition the group committed for when None); a partition
    without a committed offset is left out.
    """
    tps = None if partitions is None else [TopicPartition(t, p) for t, p in partitions]
    if tps == []:
        return {}
    request = [ConsumerGroupTopicPartitions(group, tps)]
    try:
        result = admin.list_consumer_group_offsets(request, request_timeout=timeout)[group]
        out = result.result()
    except KafkaException as e:
        err = e.args[0] if e.args else None
        if err is not None and err.code() in (KafkaError._TRANSPORT, KafkaError._TIMED_OUT):
            raise Unreachable(str(err)) from e
        raise
    return {(tp.topic, tp.partition): int(tp.offset) for tp in out.topic_partitions or []
            if tp.offset >= 0 and tp.error is None}


def alter_group_offsets(admin: Any, group: str, offsets: Mapping[Pair, int],
                        timeout: float = 10.0) -> None:
    """Set ``group``'s committed offsets (OffsetCommit; Read on the group and the topics).

    The broker refuses while the group has active members.
    """
    if not offsets:
        return
    tps = [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
    request = [ConsumerGroupTopicPartitions(group, tps)]
    result = admin.alter_consumer_group_offsets(request, request_timeout=timeout)[group].result()
    failed = [f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in result.topic_partitions or []
              if tp.error is not None]
    if failed:
        raise KafkaException(KafkaError(KafkaError._INVALID_ARG,
                                        "offset commit refused: " + "; ".join(failed)))


def _spec(at: str | int) -> Any:
    if at == EARLIEST:
        return OffsetSpec.earliest()  # type: ignore[no-untyped-call]
    if at == LATEST:
        return OffsetSpec.latest()  # type: ignore[no-untyped-call]
    if isinstance(at, int):
        return OffsetSpec.for_timestamp(at)
    msg = f"list_offsets: 'at' must be {EARLIEST!r}, {LATEST!r} or a timestamp in ms, got {at!r}"
    raise ValueError(msg)


def list_offsets(admin: Any, partitions: Iterable[Pair], at: str | int = LATEST, *,
                 read_committed: bool = True, timeout: float = 10.0) -> dict[Pair, int]:
    """Offsets of many partitions in one ListOffsets round (Describe on the topics).

    ``at``: ``"earliest"`` (the log start), ``"latest"`` (the end: with ``read_committed``
    the last stable offset, which stops before an open transaction), or a timestamp in ms
    (the first offset whose record is at least that old, or the end when there is none).
    """
    pairs = list(dict.fromkeys(partitions))
    if not pairs:
        return {}
    spec = _spec(at)
    level = IsolationLevel.READ_COMMITTED if read_committed else IsolationLevel.READ_UNCOMMITTED
    request = {TopicPartition(t, p): spec for t, p in pairs}
    try:
        futures = admin.list_offsets(request, isolation_level=level, request_timeout=timeout)
        out = {(tp.topic, tp.partition): int(f.result().offset) for tp, f in futures.items()}
    except KafkaException as e:
        err = e.args[0] if e.args else None
        if err is not None and err.code() in (KafkaError._TRANSPORT, KafkaError._TIMED_OUT):
            raise Unreachable(str(err)) from e
        raise
    if isinstance(at, int):  # no record that recent: the end
        missing = [pair for pair, o in out.items() if o < 0]
        if missing:
            out.update(list_offsets(admin, missing, LATEST, read_committed=read_committed,
                                    timeout=timeout))
    return out


def delete_records(admin: Any, before: Mapping[Pair, int], timeout: float = 30.0
                   ) -> dict[Pair, int]:
    """Delete every record below the given offsets (DeleteRecords; Delete on the topics).

    Returns each partition's new log start. Kafka refuses on topics that are compacted only
    (``cleanup.policy=compact``): delete those topics instead.
    """
    tps = [TopicPartition(t, p, o) for (t, p), o in sorted(before.items())]
    if not tps:
        return {}
    futures = admin.delete_records(tps, request_timeout=timeout, operation_timeout=timeout)
    return {(tp.topic, tp.partition): int(f.result().low_watermark)
            for tp, f in futures.items()}


def partitions_of(admin: Any, topics: Iterable[str], timeout: float = 10.0
                  ) -> dict[str, list[int]]:
    """The partition numbers of each existing topic (Metadata); missing topics are left out."""
    try:
        md = admin.list_topics(timeout=timeout)
    except KafkaException as e:
        raise Unreachable(str(e)) from e
    out = {}
    for name in topics:
        t = md.topics.get(name)
        if t is not None and t.error is None:
            out[name] = sorted(t.partitions)
    return out
