"""``streamflow dlq list|replay``: a processor's dead letters, summarised and sent back.

A dead letter holds the failed record's original key, value, timestamp and headers, then
headers the processor added (:mod:`streamflow.runtime.errors`): ``streamflow.error.*`` (type,
message, traceback, step, processor, and the phase when the processor names it) and
``streamflow.source.topic|partition|offset`` (where the record was read).

- :func:`summarize` counts them by error type, step, phase and source topic.
- :func:`replay` re-sends them to their source topic and partition with their original key,
  value, timestamp and headers (the error and source headers the processor added removed, the
  marker ``streamflow.replay.of = <dead-letter topic>[<partition>]@<offset>`` added). Progress
  is kept as the committed offsets of a replay consumer group, ``<group>.dlq-replay`` (plus a
  hash of the filter: each filter keeps its own progress), committed in the same transaction
  as the re-sent records: a second replay does not send a letter again, and a replay that
  crashes half-way sends nothing twice. Letters that do not match the filter are passed over
  (that filter's later replays do not see them again; an unfiltered or other replay does).

Kafka requests made (and the ACLs they need): Metadata, ListOffsets, Fetch (Read and Describe
on the dead-letter topic); for a replay also OffsetFetch and TxnOffsetCommit (Read on the
group ``<group>.dlq-replay*``), InitProducerId, AddPartitionsToTxn, EndTxn (Write and Describe
on the transactional id ``<group>.dlq-replay*``) and Produce (Write on the source topics).

>>> f = ReplayFilter.parse("error=KeyError,topic=orders")
>>> f.matches([("streamflow.error.type", b"KeyError"), ("streamflow.source.topic", b"orders")])
True
>>> f.matches([("streamflow.error.type", b"ValueError"), ("streamflow.source.topic", b"orders")])
False
>>> replay_headers([("trace", b"t1"), ("streamflow.error.type", b"KeyError"),
...                 ("streamflow.source.topic", b"orders")], "orders.dlq[0]@7")
[('trace', b't1'), ('streamflow.replay.of', b'orders.dlq[0]@7')]
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from streamflow.config import Config
from streamflow.dsl.policies import phases_label
from streamflow.dsl.topology import Processor, Topology
from streamflow.errors import ConfigurationError, UsageError
from streamflow.kafka import client, groups, reading

__all__ = [
    "REPLAY_HEADER",
    "DeadLetterSummary",
    "ReplayFilter",
    "ReplayResult",
    "replay",
    "replay_group",
    "replay_headers",
    "summarize",
]

REPLAY_HEADER = "streamflow.replay.of"
ERROR_PREFIX = "streamflow.error."
SOURCE_HEADERS = ("streamflow.source.topic", "streamflow.source.partition",
                  "streamflow.source.offset")

Header = tuple[str, bytes | None]
Pair = tuple[str, int]

# filter key -> the header it compares
FILTER_KEYS = {"error": "streamflow.error.type", "step": "streamflow.error.step",
               "phase": "streamflow.error.phase", "topic": "streamflow.source.topic",
               "processor": "streamflow.error.processor"}


def _last(headers: Sequence[Header] | None, name: str) -> str | None:
    for k, v in reversed(headers or ()):
        if k == name:
            return None if v is None else v.decode(errors="replace")
    return None


def replay_headers(headers: Sequence[Header] | None, marker: str) -> list[Header]:
    """The original record's headers: without what the dead-letter policy added, plus the marker.

    The policy appends its headers after the original ones, so the *last* source headers are
    its own (an earlier ``streamflow.source.*`` is the original's provenance and is kept).
    """
    hdrs = [h for h in headers or () if not h[0].startswith(ERROR_PREFIX)]
    for name in SOURCE_HEADERS:
        for i in range(len(hdrs) - 1, -1, -1):
            if hdrs[i][0] == name:
                del hdrs[i]
                break
    return [*hdrs, (REPLAY_HEADER, marker.encode())]


@dataclass(frozen=True)
class ReplayFilter:
    """Which dead letters to replay: every given field must equal the letter's header.

    ``error`` is the exception type, ``step`` the failed step, ``phase`` the failed phase,
    ``topic`` the source topic.
    """

    fields: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> ReplayFilter:
        """``error=KeyError,step=map-1,topic=orders,phase=process`` (empty: everything)."""
        out = []
        for part in (text or "").split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in FILTER_KEYS or not value.strip():
                msg = (f"--filter {part.strip()!r}: use KEY=VALUE[,KEY=VALUE...] with KEY one "
                       f"of {', '.join(FILTER_KEYS)}")
                raise UsageError(msg)
            out.append((key, value.strip()))
        return cls(tuple(sorted(out)))

    def matches(self, headers: Sequence[Header] | None) -> bool:
        """Whether a dead letter with these headers is selected."""
        return all(_last(headers, FILTER_KEYS[k]) == v for k, v in self.fields)

    def __str__(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.fields)


def replay_group(processor: Processor, flt: ReplayFilter | None = None) -> str:
    """The consumer group (and transactional id) keeping a replay's progress."""
    base = f"{processor.group_id}.dlq-replay"
    if flt is None or not flt.fields:
        return base
    return f"{base}.{hashlib.sha1(str(flt).encode()).hexdigest()[:10]}"


def _dead_letter_topic(topology: Topology, processor: str) -> str:
    p = topology.processors[processor]
    if not p.dead_letters:  # no policy (of a phase, a step or a sink) may dead-letter
        msg = (f"processor {processor!r} has {phases_label(p.policies)} and no step or sink "
               f"that dead-letters: it sends no dead letters (its dead-letter topic would be "
               f"{p.dead_letter_topic!r})")
        raise ConfigurationError(msg)
    return p.dead_letter_topic


@dataclass(frozen=True)
class DeadLetterSummary:
    """A processor's dead letters: how many, by error type, step, phase and source topic.

    ``pending`` is how many an unfiltered replay would still consider (past the committed
    offsets of ``<group>.dlq-replay``; all of them when it never ran).
    """

    processor: str
    topic: str
    total: int
    pending: int
    by_error: dict[str, int] = field(default_factory=dict)
    by_step: dict[str, int] = field(default_factory=dict)
    by_phase: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)
    first_timestamp: int | None = None
    last_timestamp: int | None = None
    exists: bool = True  # False: the dead-letter topic was not created yet


def _offsets(admin: Any, topic: str, timeout: float) -> tuple[dict[Pair, int], dict[Pair, int]]:
    parts = groups.partitions_of(admin, [topic], timeout).get(topic)
    if parts is None:
        return {}, {}
    pairs = [(topic, n) for n in parts]
    return (groups.list_offsets(admin, pairs, groups.EARLIEST, timeout=timeout),
            groups.list_offsets(admin, pairs, groups.LATEST, timeout=timeout))


def summarize(topology: Topology, processor: str, config: Config, *, admin: Any = None,
              timeout_s: float = 10.0) -> DeadLetterSummary:
    """Read the dead-letter topic of ``processor`` and count its letters (headers only)."""
    topic = _dead_letter_topic(topology, processor)
    admin = admin if admin is not None else client.make_admin(config.client_conf())
    start, end = _offsets(admin, topic, timeout_s)
    done = groups.group_offsets(admin, replay_group(topology.processors[processor]),
                                list(start), timeout_s)
    counts: dict[str, Counter[str]] = {k: Counter() for k in ("error", "step", "phase", "topic")}
    total = pending = 0
    first = last = None
    consumer = reading.range_consumer(config.client_conf())
    try:
        for m in reading.read_range(consumer, start, end):
            h = m.headers()
            total += 1
            pending += m.offset() >= done.get((m.topic(), m.partition()), -1)
            for key in counts:
                value = _last(h, FILTER_KEYS[key])
                if value is not None or key != "phase":
                    counts[key][value or "?"] += 1
            kind, ts = m.timestamp()
            if kind:
                first = ts if first is None else min(first, ts)
                last = ts if last is None else max(last, ts)
    finally:
        consumer.close()
    return DeadLetterSummary(
        processor, topic, total, pending, dict(counts["error"].most_common()),
        dict(counts["step"].most_common()), dict(counts["phase"].most_common()),
        dict(counts["topic"].most_common()), first, last, bool(start))


@dataclass
class ReplayResult:
    """What a replay did (or, with ``dry_run``, would do)."""

    processor: str
    topic: str
    group: str
    dry_run: bool
    considered: int = 0  # letters read past the replay's progress
    replayed: int = 0  # sent back (or, dry run, would be)
    filtered_out: int = 0
    unreplayable: int = 0  # no source topic/partition header, or the topic is gone
    by_topic: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _target(headers: Sequence[Header] | None, known: dict[str, list[int]]
            ) -> tuple[str, int] | str:
    topic = _last(headers, "streamflow.source.topic")
    part = _last(headers, "streamflow.source.partition")
    if topic is None or part is None or not part.strip().lstrip("-").isdigit():
        return "no streamflow.source.topic/partition header"
    if topic not in known:
        return f"source topic {topic!r} does not exist"
    if int(part) not in known[topic]:
        return f"source topic {topic!r} has no partition {part}"
    return topic, int(part)


def replay(topology: Topology, processor: str, config: Config, *,
           flt: ReplayFilter | None = None, dry_run: bool = False, batch_size: int = 500,
           admin: Any = None, timeout_s: float = 30.0) -> ReplayResult:
    """Re-send ``processor``'s dead letters (those ``flt`` selects) to where they came from.

    Each batch is one transaction holding the re-sent records and the replay group's new
    offsets, so every letter is sent back once, even across crashes and repeated replays.
    ``dry_run`` counts what would be sent and changes nothing.
    """
    topic = _dead_letter_topic(topology, processor)
    flt = flt or ReplayFilter()
    group = replay_group(topology.processors[processor], flt)
    admin = admin if admin is not None else client.make_admin(config.client_conf())
    result = ReplayResult(processor, topic, group, dry_run)
    low, end = _offsets(admin, topic, timeout_s)
    if not low:
        result.problems.append(f"dead-letter topic {topic!r} does not exist")
        return result
    committed = groups.group_offsets(admin, group, list(low), timeout_s)
    start = {pair: max(low[pair], committed.get(pair, low[pair])) for pair in low}
    known: dict[str, list[int]] = {}
    producer = None
    if not dry_run:
        producer = client.make_producer({
            **config.client_conf(), "transactional.id": group, "enable.idempotence": True,
            "acks": "all", "linger.ms": 5, **config.producer})
        client.init_transactions(producer, timeout_s)
    offsets: dict[Pair, int] = {}
    in_batch = 0
    consumer = reading.range_consumer(config.client_conf(), group)
    try:
        for m in reading.read_range(consumer, start, end):
            headers = m.headers()
            source = _last(headers, "streamflow.source.topic")
            if source and source not in known:
                known.update(groups.partitions_of(admin, [source], timeout_s))
            target = _account(result, flt, headers, known)
            if producer is None:
                continue
            if not offsets:
                client.begin_transaction(producer)
            if target is not None:
                kind, ts = m.timestamp()
                marker = f"{m.topic()}[{m.partition()}]@{m.offset()}"
                _produce(producer, target, m.key(), m.value(), ts if kind else None,
                         replay_headers(headers, marker))
            offsets[(m.topic(), m.partition())] = m.offset() + 1
            in_batch += 1
            if in_batch >= batch_size:
                _commit(producer, consumer, offsets, timeout_s)
                in_batch = 0
        if producer is not None and offsets:
            _commit(producer, consumer, offsets, timeout_s)
    except BaseException:
        if producer is not None and offsets:
            with contextlib.suppress(client.TxnError):  # else it times out on the broker
                client.abort_transaction(producer, timeout_s)
        raise
    finally:
        consumer.close()
    return result


def _commit(producer: Any, consumer: Any, offsets: dict[Pair, int], timeout_s: float) -> None:
    """Commit the open transaction with the replay group's new offsets."""
    client.commit_transaction(producer, consumer.consumer_group_metadata(),
                              [(t, p, o) for (t, p), o in sorted(offsets.items())], timeout_s)
    offsets.clear()


def _account(result: ReplayResult, flt: ReplayFilter, headers: Sequence[Header] | None,
             known: dict[str, list[int]]) -> tuple[str, int] | None:
    """Count one letter; the partition to send it to when it is replayed."""
    result.considered += 1
    if not flt.matches(headers):
        result.filtered_out += 1
        return None
    target = _target(headers, known)
    if isinstance(target, str):
        result.unreplayable += 1
        if target not in result.problems:
            result.problems.append(target)
        return None
    result.replayed += 1
    result.by_topic[target[0]] = result.by_topic.get(target[0], 0) + 1
    return target


def _produce(producer: Any, target: tuple[str, int], key: bytes | None, value: bytes | None,
             timestamp: int | None, headers: list[Header]) -> None:
    kwargs: dict[str, Any] = {"partition": target[1], "headers": headers}
    if timestamp is not None:
        kwargs["timestamp"] = timestamp
    while True:
        try:
            producer.produce(target[0], value, key, **kwargs)
            return
        except BufferError:
            producer.poll(0.1)
