"""An in-memory Kafka for ``TopologyTestDriver``.

Partitioned topics, consumer groups with range assignment (eager, or incremental as the
cooperative protocols do), paused partitions, committed offsets, and transactions with
``read_committed`` reads and producer fencing. It implements the engine's
ports (``streamflow.runtime.ports``), so the driver runs the same tasks, committers and
collector as a worker against a broker.

Keyed records go to the partition Kafka's default partitioner picks (murmur2 of the key
bytes, as librdkafka's ``murmur2_random`` and the Java client); records without a key go to
partition 0, so tests stay deterministic.

Failures can be injected with ``InMemoryCluster.fail_next(operation)``.

>>> murmur2(b"21")
-973932308
>>> partition_for(b"21", 4)
0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streamflow.kafka.client import OFFSET_BEGINNING, KafkaError, KafkaException, TxnError
from streamflow.record import Headers

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` (a signed 32-bit hash)."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    end = length & ~3
    for i in range(0, end, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest == 3:
        h ^= data[end + 2] << 16
    if rest >= 2:
        h ^= data[end + 1] << 8
    if rest >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes | None, partitions: int) -> int:
    """The partition of a keyed record (``murmur2 & 0x7fffffff % n``); 0 without a key."""
    if key is None:
        return 0
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass(eq=False)
class _Txn:
    transactional_id: str
    state: str = "open"  # open | committed | aborted


@dataclass(eq=False)
class _Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    ts: int
    headers: Headers | None
    txn: _Txn | None = None

    @property
    def visible(self) -> bool:
        return self.txn is None or self.txn.state == "committed"


class Message:
    """A consumed record, read through the methods of confluent-kafka's ``Message``."""

    __slots__ = ("_r",)

    def __init__(self, rec: _Rec) -> None:
        self._r = rec

    def error(self) -> None:
        """Never an error event."""
        return None

    def topic(self) -> str:
        """The topic."""
        return self._r.topic

    def partition(self) -> int:
        """The partition."""
        return self._r.partition

    def offset(self) -> int:
        """The offset."""
        return self._r.offset

    def key(self) -> bytes | None:
        """The key bytes."""
        return self._r.key

    def value(self) -> bytes | None:
        """The value bytes."""
        return self._r.value

    def timestamp(self) -> tuple[int, int]:
        """``(TIMESTAMP_CREATE_TIME, ms)``."""
        return 1, self._r.ts

    def headers(self) -> Headers | None:
        """The headers."""
        return self._r.headers


@dataclass
class _Group:
    name: str
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    members: list[MemoryConsumer] = field(default_factory=list)
    generation: int = 0


class InMemoryCluster:
    """Topics, groups and transactions in memory."""

    def __init__(self, default_partitions: int = 1, *, incremental: bool = False) -> None:
        self.default_partitions = default_partitions
        self.incremental = incremental  # rebalances move only the partitions that change
        self.logs: dict[str, list[list[_Rec]]] = {}
        self.order: dict[str, list[_Rec]] = {}  # every topic's records in append order
        self.groups: dict[str, _Group] = {}
        self.epochs: dict[str, int] = {}
        self.open_txns: dict[str, _Txn] = {}
        self._failures: list[tuple[str, bool]] = []

    # -- topics ------------------------------------------------------------------------
    def create_topic(self, name: str, partitions: int | None = None) -> None:
        """Create a topic unless it exists."""
        if name not in self.logs:
            self.logs[name] = [[] for _ in range(partitions or self.default_partitions)]
            self.order[name] = []

    def partitions(self, topic: str) -> int:
        """The partition count of a topic (created with the default count if missing)."""
        self.create_topic(topic)
        return len(self.logs[topic])

    def append(self, topic: str, partition: int, key: bytes | None, value: bytes | None,
               ts: int, headers: Headers | None, txn: _Txn | None = None) -> _Rec:
        """Append one record; ``partition < 0`` lets the partitioner choose."""
        n = self.partitions(topic)
        if partition < 0:
            partition = partition_for(key, n)
        elif partition >= n:
            raise KafkaException(KafkaError(KafkaError._UNKNOWN_PARTITION,
                                            f"{topic} has no partition {partition}"))
        log = self.logs[topic][partition]
        rec = _Rec(topic, partition, len(log), key, value, ts,
                   list(headers) if headers else None, txn)
        log.append(rec)
        self.order[topic].append(rec)
        return rec

    def stable(self, topic: str, partition: int, start: int) -> list[_Rec]:
        """``read_committed``: the committed records from ``start``.

        Up to the first record of a still open transaction.
        """
        out = []
        for rec in self.logs[topic][partition][max(start, 0):]:
            if rec.txn is not None and rec.txn.state == "open":
                break
            if rec.visible:
                out.append(rec)
        return out

    def end_offset(self, topic: str, partition: int) -> int:
        """The high watermark."""
        return len(self.logs[topic][partition])

    def stable_end(self, topic: str, partition: int, start: int) -> int:
        """The last stable offset: the first record of an open transaction, else the end."""
        for rec in self.logs[topic][partition][max(start, 0):]:
            if rec.txn is not None and rec.txn.state == "open":
                return rec.offset
        return self.end_offset(topic, partition)

    # -- failures ----------------------------------------------------------------------
    def fail_next(self, operation: str, *, abortable: bool = True) -> None:
        """Make the next ``operation`` fail once.

        ``"commit_transaction"``, ``"begin_transaction"``, ``"produce"`` (in a transaction),
        ``"commit"`` (consumer offsets) or ``"delivery"`` (the next produced record is refused
        by the broker).
        """
        self._failures.append((operation, abortable))

    def take_failure(self, operation: str) -> bool | None:
        """Consume an injected failure of ``operation``: its abortability, or None."""
        for i, (op, abortable) in enumerate(self._failures):
            if op == operation:
                del self._failures[i]
                return abortable
        return None

    # -- groups ------------------------------------------------------------------------
    def group(self, name: str) -> _Group:
        """A consumer group (created on first use)."""
        if name not in self.groups:
            self.groups[name] = _Group(name)
        return self.groups[name]

    def rebalance(self, group: _Group) -> None:
        """Range assignment: partition N of every subscribed topic goes to the same member.

        Eager (the classic range protocol): every member first gives up all its partitions
        (committing them). Incremental (cooperative-sticky, KIP-848): members give up only the
        partitions that move, then the new owners get them.
        """
        if not self.incremental:
            for member in group.members:
                member.revoke(sorted(member.positions))
        group.generation += 1
        members = sorted(group.members, key=lambda m: m.member_id)
        plan: dict[int, list[tuple[str, int]]] = {id(m): [] for m in members}
        if members:
            topics = sorted({t for m in members for t in m.topics})
            for topic in topics:
                n = self.partitions(topic)
                per, extra = divmod(n, len(members))
                start = 0
                for i, m in enumerate(members):
                    count = per + (1 if i < extra else 0)
                    plan[id(m)] += [(topic, p) for p in range(start, start + count)
                                    if topic in m.topics]
                    start += count
        for m in members:
            m.revoke(sorted(set(m.positions) - set(plan[id(m)])))
        for m in members:
            m.assign([tp for tp in plan[id(m)] if tp not in m.positions])


class MemoryConsumer:
    """A group member over the in-memory cluster (``GroupConsumer``)."""

    def __init__(self, cluster: InMemoryCluster, group: str, member_id: str) -> None:
        self.cluster = cluster
        self.group = cluster.group(group)
        self.member_id = member_id
        self.topics: list[str] = []
        self.positions: dict[tuple[str, int], int] = {}
        self.paused: set[tuple[str, int]] = set()
        self._callbacks: tuple[Any, Any, Any] | None = None
        self.closed = False

    def subscribe(self, topics: list[str], *, on_assign: Any, on_revoke: Any,
                  on_lost: Any) -> None:
        """Join the group; the group rebalances at once."""
        self.topics = list(topics)
        self._callbacks = (on_assign, on_revoke, on_lost)
        self.group.members.append(self)
        self.cluster.rebalance(self.group)

    def assign(self, pairs: list[tuple[str, int]]) -> None:
        """Take partitions (called by the group): fetch from the committed offsets."""
        for tp in pairs:
            self.positions[tp] = max(self.group.committed.get(tp, 0), 0)
        if pairs and self._callbacks:
            self._callbacks[0](list(pairs))

    def revoke(self, pairs: list[tuple[str, int]]) -> None:
        """Give up ``pairs``, telling the member first (it commits)."""
        if pairs and self._callbacks:
            self._callbacks[1](list(pairs))
        for tp in pairs:
            self.positions.pop(tp, None)

    def revoke_all(self) -> None:
        """Give up every partition, telling the member first (it commits)."""
        self.revoke(sorted(self.positions))

    def lose_all(self) -> None:
        """Lose every partition without a revocation (a missed session timeout)."""
        pairs = sorted(self.positions)
        self.positions.clear()
        if pairs and self._callbacks:
            self._callbacks[2](pairs)

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        """Up to ``num_messages`` committed records, partition by partition."""
        out: list[Message] = []
        for tp in sorted(self.positions):
            if len(out) >= num_messages:
                break
            if tp in self.paused:
                continue
            recs = self.cluster.stable(tp[0], tp[1], self.positions[tp])
            recs = recs[:num_messages - len(out)]
            if recs:
                out += [Message(r) for r in recs]
                self.positions[tp] = recs[-1].offset + 1
            else:  # skip aborted records below the stable end
                self.positions[tp] = max(self.positions[tp],
                                         self.cluster.stable_end(*tp, self.positions[tp]))
        return out

    def lag(self, topic: str, partition: int) -> int | None:
        """Committed records of an assigned partition not handed out yet (None if unassigned)."""
        position = self.positions.get((topic, partition))
        if position is None:
            return None
        return len(self.cluster.stable(topic, partition, position))

    def pause(self, partitions: list[tuple[str, int]]) -> None:
        """Stop handing out records of ``partitions`` (the member stays in the group)."""
        self.paused.update(partitions)

    def resume(self, partitions: list[tuple[str, int]]) -> None:
        """Hand out records of ``partitions`` again."""
        self.paused.difference_update(partitions)

    def commit(self, offsets: list[tuple[str, int, int]]) -> None:
        """Commit offsets of this group."""
        abortable = self.cluster.take_failure("commit")
        if abortable is not None:
            raise KafkaException(KafkaError(KafkaError._FAIL, "injected commit failure"))
        for t, p, o in offsets:
            self.group.committed[(t, p)] = o

    def committed(self, partitions: list[tuple[str, int]], timeout: float
                  ) -> dict[tuple[str, int], int]:
        """The group's committed offsets (-1001 when none)."""
        return {tp: self.group.committed.get(tp, -1001) for tp in partitions}

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Move the fetch position."""
        self.positions[(topic, partition)] = 0 if offset == OFFSET_BEGINNING else offset

    def group_metadata(self) -> tuple[str, int]:
        """The group and the generation this member joined."""
        return self.group.name, self.group.generation

    def close(self) -> None:
        """Leave the group (the others rebalance)."""
        if self.closed:
            return
        self.closed = True
        self.revoke_all()
        if self in self.group.members:
            self.group.members.remove(self)
            self.cluster.rebalance(self.group)

    def crash(self) -> None:
        """Vanish without revoking or committing (kill -9); the others rebalance."""
        self.closed = True
        self.positions.clear()
        if self in self.group.members:
            self.group.members.remove(self)
            self.cluster.rebalance(self.group)


class MemoryProducer:
    """A producer over the in-memory cluster (``Producer``).

    Transactional when given a transactional id.
    """

    def __init__(self, cluster: InMemoryCluster, on_delivery: Any,
                 transactional_id: str | None = None) -> None:
        self.cluster = cluster
        self.on_delivery = on_delivery
        self.transactional_id = transactional_id
        self.epoch = -1
        self.txn: _Txn | None = None
        self._reports: list[tuple[Any, Any]] = []

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                partition: int = -1, timestamp: int = 0,
                headers: Headers | None = None) -> None:
        """Append a record (inside the open transaction, if transactional)."""
        if self.transactional_id is not None:
            self._check_epoch()
            if self.txn is None:
                raise KafkaException(KafkaError(KafkaError._STATE, "no open transaction"))
            abortable = self.cluster.take_failure("produce")
            if abortable is not None:
                raise KafkaException(KafkaError(KafkaError._FAIL, "injected produce failure",
                                              txn_requires_abort=abortable))
        if self.cluster.take_failure("delivery") is not None:
            err = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "injected delivery failure")
            self._reports.append((err, Message(_Rec(topic, max(partition, 0), -1, key, value,
                                                    timestamp, headers))))
            return
        self.cluster.append(topic, partition, key, value, timestamp, headers, self.txn)

    def poll(self, timeout: float) -> int:
        """Serve delivery reports (errors only)."""
        reports, self._reports = self._reports, []
        for err, msg in reports:
            if self.on_delivery is not None:
                self.on_delivery(err, msg)
        return len(reports)

    def flush(self, timeout: float) -> int:
        """Everything is delivered at once; serve the reports."""
        self.poll(0)
        return 0

    def _check_epoch(self) -> None:
        assert self.transactional_id is not None
        if self.cluster.epochs.get(self.transactional_id) != self.epoch:
            msg = f"producer {self.transactional_id!r} is fenced by a newer one"
            raise TxnError(msg, abortable=False)

    def init_transactions(self, timeout: float) -> None:
        """Fence older producers with this id and abort their open transaction."""
        assert self.transactional_id is not None
        tid = self.transactional_id
        self.epoch = self.cluster.epochs[tid] = self.cluster.epochs.get(tid, -1) + 1
        old = self.cluster.open_txns.pop(tid, None)
        if old is not None:
            old.state = "aborted"

    def begin_transaction(self) -> None:
        """Start a transaction."""
        self._check_epoch()
        abortable = self.cluster.take_failure("begin_transaction")
        if abortable is not None:
            msg = "begin_transaction: injected failure"
            raise TxnError(msg, abortable)
        assert self.transactional_id is not None
        self.txn = self.cluster.open_txns[self.transactional_id] = _Txn(self.transactional_id)

    def commit_transaction(self, offsets: list[tuple[str, int, int]], group_metadata: Any,
                           timeout: float) -> None:
        """Commit the records and the offsets of the open transaction, atomically."""
        self._check_epoch()
        assert self.txn is not None and self.transactional_id is not None
        abortable = self.cluster.take_failure("commit_transaction")
        if abortable is not None:
            msg = "commit_transaction: injected failure"
            raise TxnError(msg, abortable)
        name, generation = group_metadata
        group = self.cluster.group(name)
        if generation != group.generation:
            msg = (
                f"commit_transaction: group {name!r} generation {generation} is "
                f"stale (now {group.generation})"
            )
            raise TxnError(msg, abortable=True)
        self.poll(0)
        for t, p, o in offsets:
            group.committed[(t, p)] = o
        self.txn.state = "committed"
        self.cluster.open_txns.pop(self.transactional_id, None)
        self.txn = None

    def abort_transaction(self, timeout: float) -> None:
        """Abort the open transaction: its records are never read."""
        self._check_epoch()
        if self.txn is not None:
            self.txn.state = "aborted"
            assert self.transactional_id is not None
            self.cluster.open_txns.pop(self.transactional_id, None)
            self.txn = None
        self._reports.clear()


class MemoryAdmin:
    """End offsets from the in-memory cluster (``Admin``)."""

    def __init__(self, cluster: InMemoryCluster) -> None:
        self.cluster = cluster

    def end_offsets(self, partitions: list[tuple[str, int]], timeout: float = 10.0
                    ) -> dict[tuple[str, int], int]:
        """The high watermarks."""
        return {tp: self.cluster.end_offset(*tp) for tp in partitions}


class MemoryChangelogs:
    """The restore consumer over the in-memory cluster (``RestoreConsumer``)."""

    def __init__(self, cluster: InMemoryCluster) -> None:
        self.cluster = cluster
        self.positions: dict[tuple[str, int], int] = {}

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        """``(0, end)``: nothing is ever deleted here."""
        return 0, self.cluster.end_offset(topic, partition)

    def partitions(self, topic: str) -> int:
        """The topic's partition count."""
        return self.cluster.partitions(topic)

    def add(self, topic: str, partition: int, start: int) -> None:
        """Read a changelog partition from ``start``."""
        self.positions[(topic, partition)] = start

    def remove(self, pairs: list[tuple[str, int]]) -> None:
        """Stop reading changelog partitions."""
        for tp in pairs:
            self.positions.pop(tp, None)

    def consume(self, num_messages: int, timeout: float
                ) -> tuple[list[Message], list[tuple[str, int, int]]]:
        """Up to ``num_messages`` committed records, and the partitions read to their end."""
        out: list[Message] = []
        ends: list[tuple[str, int, int]] = []
        for tp in sorted(self.positions):
            room = num_messages - len(out)
            if room <= 0:
                break
            recs = self.cluster.stable(tp[0], tp[1], self.positions[tp])
            out += [Message(r) for r in recs[:room]]
            if len(recs) <= room:
                end = self.cluster.stable_end(*tp, self.positions[tp])
                self.positions[tp] = end
                ends.append((*tp, end))
            else:
                self.positions[tp] = recs[room - 1].offset + 1
        return out, ends

    def close(self) -> None:
        """Forget every partition."""
        self.positions.clear()
