r"""``streamflow tail``: a topic's records, decoded with the serdes the topology declares.

Keys and values are decoded with the topic's declared serdes (Avro through the schema
registry, windowed keys, JSON, strings...); a topic the topology does not declare is shown as
bytes. A dead letter (a record with ``streamflow.source.topic`` in its headers) is decoded with
the serdes of the topic it came from, so the failed record reads as it was sent. A record
that does not decode is returned raw with the decode error: reading never fails on a record.

Records are read ``read_committed`` by default (what the topology's own processors see):
records of open or aborted transactions are not shown. Reading uses a consumer with manual
assignment and commits nothing (Kafka requests: Metadata, ListOffsets and Fetch; ACL: Read
and Describe on the topic).

>>> import streamflow as sf
>>> from streamflow.serde import SerdeContext
>>> t = sf.Topology("shop")
>>> orders = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
>>> d = Decoder(t, ctx=SerdeContext())
>>> r = d.decode("orders", 0, 7, 1_700_000_000_000, b"o-1", b'{"total": 12}', [])
>>> r.key, r.value, r.value_error
('o-1', {'total': 12}, None)
>>> d.decode("orders", 0, 8, 0, b"o-2", b"not json", []).to_dict()["value_error"][:25]
'SerdeError: Json cannot d'
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from streamflow.config import Config
from streamflow.dsl.topology import Topology
from streamflow.errors import ConfigurationError
from streamflow.kafka import client, groups, reading
from streamflow.runtime.worker import serde_context
from streamflow.serde import Bytes, Deserializer, SerdeContext

__all__ = ["DecodedRecord", "Decoder", "NoSuchTopic", "follow_records", "jsonable", "read_records",
           "topic_name"]

SOURCE_TOPIC = "streamflow.source.topic"
ERROR_PREFIX = "streamflow.error."

Header = tuple[str, bytes | None]


class NoSuchTopic(ConfigurationError, ValueError):
    """The topic (or partition) to read does not exist on the cluster (exit 3)."""


def jsonable(value: Any) -> Any:
    r"""``value`` as JSON types: bytes as text (or ``base64:...``), dataclasses as dicts.

    >>> jsonable({"k": b"caf\xc3\xa9", "n": [Decimal("1.5"), b"\xff"]})
    {'k': 'café', 'n': ['1.5', 'base64:/w==']}
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode()
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)  # pydantic models
    if callable(dump):
        return jsonable(dump())
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    return repr(value)


def header_text(value: bytes | None) -> str | None:
    """A header value as text (``base64:...`` when it is not UTF-8)."""
    out = jsonable(value)
    return out if out is None else str(out)


@dataclass(frozen=True)
class DecodedRecord:
    """One record: where it is, its decoded key and value, its headers and raw bytes.

    ``key_error`` / ``value_error`` say why a side did not decode (``key`` / ``value`` are
    then the raw bytes); ``decoded_with`` names the topic whose serdes were used (the source
    topic for a dead letter).
    """

    topic: str
    partition: int
    offset: int
    timestamp: int | None  # ms since the epoch
    key: Any
    value: Any
    headers: tuple[Header, ...] = ()
    raw_key: bytes | None = None
    raw_value: bytes | None = None
    key_error: str | None = None
    value_error: str | None = None
    decoded_with: str = ""

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` as text (None when absent)."""
        for k, v in reversed(self.headers):
            if k == name:
                return header_text(v)
        return None

    @property
    def error_headers(self) -> dict[str, str | None]:
        """The dead-letter headers (``streamflow.error.*``, without the prefix)."""
        return {k.removeprefix(ERROR_PREFIX): header_text(v) for k, v in self.headers
                if k.startswith(ERROR_PREFIX)}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form: decoded key and value, headers as text, errors."""
        return {
            "topic": self.topic, "partition": self.partition, "offset": self.offset,
            "timestamp": self.timestamp, "key": jsonable(self.key),
            "value": jsonable(self.value),
            "headers": [[k, header_text(v)] for k, v in self.headers],
            "key_error": self.key_error, "value_error": self.value_error,
            "decoded_with": self.decoded_with,
        }


class Decoder:
    """Decodes records of a topology's topics with their declared serdes (made once each)."""

    def __init__(self, topology: Topology, config: Config | None = None, *,
                 ctx: SerdeContext | None = None) -> None:
        self.topology = topology
        self.ctx = ctx if ctx is not None else serde_context(config or Config())
        self._sides: dict[tuple[str, bool], Deserializer | str] = {}

    def _deserializer(self, topic: str, is_key: bool) -> Deserializer | str:
        """The topic's deserializer, or why there is none (the error as text)."""
        side = (topic, is_key)
        if side not in self._sides:
            t = self.topology.topics.get(topic)
            serde = (t.key if is_key else t.value) if t is not None else Bytes()
            try:
                self._sides[side] = serde.deserializer(topic, is_key, self.ctx)
            except Exception as e:  # a registry outage, a missing schema file
                self._sides[side] = f"{type(e).__name__}: {e}"
        return self._sides[side]

    def _one(self, topic: str, is_key: bool, data: bytes | None) -> tuple[Any, str | None]:
        de = self._deserializer(topic, is_key)
        if isinstance(de, str):
            return data, de
        try:
            return de(data), None
        except Exception as e:  # shown with the record, never raised
            return data, f"{type(e).__name__}: {e}"

    def decode(self, topic: str, partition: int, offset: int, timestamp: int | None,
               key: bytes | None, value: bytes | None, headers: Sequence[Header] | None
               ) -> DecodedRecord:
        """One record, decoded (a dead letter with its source topic's serdes)."""
        hdrs = tuple(headers or ())
        serdes_of = topic
        if topic not in self.topology.topics or self._is_dead_letter_topic(topic):
            source = next((header_text(v) for k, v in reversed(hdrs) if k == SOURCE_TOPIC),
                          None)
            if source and source in self.topology.topics:
                serdes_of = source
        k, key_error = self._one(serdes_of, True, key)
        v, value_error = self._one(serdes_of, False, value)
        return DecodedRecord(topic, partition, offset, timestamp, k, v, hdrs, key, value,
                             key_error, value_error, serdes_of)

    def _is_dead_letter_topic(self, topic: str) -> bool:
        return any(p.dead_letter_topic == topic for p in self.topology.processors.values())


def topic_name(topology: Topology, topic: str) -> str:
    """The topic ``streamflow tail TOPIC`` reads.

    Under a name suffix a declared topic may be named as it was declared (``orders`` for
    ``orders-t1``); any other name is read as given.

    >>> import streamflow as sf
    >>> t = sf.Topology("shop")
    >>> _ = t.topic("orders", external=True)
    >>> s = t.with_name_suffix("-t1")
    >>> topic_name(s, "orders"), topic_name(s, "orders-t1"), topic_name(s, "other")
    ('orders-t1', 'orders-t1', 'other')
    """
    if topic in topology.topics or not topology.name_suffix:
        return topic
    suffixed = topic + topology.name_suffix
    return suffixed if suffixed in topology.topics else topic


def _starts(admin: Any, pairs: list[tuple[str, int]], *, last: int | None,
            from_beginning: bool, read_committed: bool, timeout: float
            ) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
    low = groups.list_offsets(admin, pairs, groups.EARLIEST, read_committed=read_committed,
                              timeout=timeout)
    high = groups.list_offsets(admin, pairs, groups.LATEST, read_committed=read_committed,
                               timeout=timeout)
    if from_beginning:
        start = dict(low)
    elif last is not None:
        start = {pair: max(low[pair], high[pair] - last) for pair in pairs}
    else:
        start = dict(high)
    return start, high


def _records(topology: Topology, topic: str, config: Config, *, last: int | None,
             from_beginning: bool, partition: int | None, read_committed: bool, follow: bool,
             timeout_s: float, stop: Callable[[], bool] | None) -> Iterator[DecodedRecord]:
    admin = client.make_admin(config.client_conf())
    parts = groups.partitions_of(admin, [topic], timeout_s).get(topic)
    if parts is None:
        msg = (f"topic {topic!r} does not exist on {config.bootstrap_servers}; "
               "`streamflow topics describe MODULE` lists the topology's topics")
        raise NoSuchTopic(msg)
    if partition is not None:
        if partition not in parts:
            msg = f"topic {topic!r} has no partition {partition} (it has {len(parts)})"
            raise NoSuchTopic(msg)
        parts = [partition]
    pairs = [(topic, p) for p in parts]
    start, end = _starts(admin, pairs, last=last, from_beginning=from_beginning,
                         read_committed=read_committed, timeout=timeout_s)
    decoder = Decoder(topology, config)
    consumer = reading.range_consumer(config.client_conf(), read_committed=read_committed)
    try:
        for m in reading.read_range(consumer, start, None if follow else end,
                                    idle_timeout_s=timeout_s, strict=False, stop=stop):
            kind, ts = m.timestamp()
            yield decoder.decode(m.topic(), m.partition(), m.offset(), ts if kind else None,
                                 m.key(), m.value(), m.headers())
    finally:
        consumer.close()


def read_records(topology: Topology, topic: str, config: Config, *, last: int | None = None,
                 from_beginning: bool = False, partition: int | None = None,
                 max_records: int | None = None, read_committed: bool = True,
                 timeout_s: float = 10.0) -> list[DecodedRecord]:
    """The records of ``topic`` up to its current end, decoded.

    ``last=N``: the latest N records over all partitions (N per partition are read, the
    newest N by timestamp kept); ``from_beginning``: from the log start (up to
    ``max_records``). One of them must be given. ``partition`` reads one partition only.
    Raises :class:`NoSuchTopic` when the topic or partition does not exist and
    :class:`~streamflow.kafka.client.Unreachable` when the broker does not answer.
    """
    if last is None and not from_beginning:
        msg = "read_records needs last=N or from_beginning=True"
        raise ValueError(msg)
    out = []
    for r in _records(topology, topic, config, last=last, from_beginning=from_beginning,
                      partition=partition, read_committed=read_committed, follow=False,
                      timeout_s=timeout_s, stop=None):
        out.append(r)
        if max_records is not None and last is None and len(out) >= max_records:
            break
    if last is not None:
        out.sort(key=lambda r: (r.timestamp or 0, r.partition, r.offset))
        out = out[-last:] if last else []
        if max_records is not None:
            out = out[:max_records]
    return out


def follow_records(topology: Topology, topic: str, config: Config, *, last: int | None = None,
                   from_beginning: bool = False, partition: int | None = None,
                   read_committed: bool = True, timeout_s: float = 10.0,
                   stop: Callable[[], bool] | None = None) -> Iterator[DecodedRecord]:
    """Records of ``topic`` as they arrive, until ``stop()`` returns True (or forever).

    Starts at the end, or ``last`` records before it per partition, or the log start.
    """
    yield from _records(topology, topic, config, last=last, from_beginning=from_beginning,
                        partition=partition, read_committed=read_committed, follow=True,
                        timeout_s=timeout_s, stop=stop)
