"""Reading stretches of partitions outside any group protocol (``tail``, dead letters).

A :func:`range_consumer` is assigned partitions by hand and never commits; :func:`read_range`
yields its records from given start offsets up to given end offsets (or on and on), and
knows when each partition is done: at its end offset, or at librdkafka's end-of-partition
event (the last stable offset under ``read_committed``, where a transaction marker may sit
after the last record). Callers get the client's messages (``.key()``, ``.value()``,
``.headers()``, ``.timestamp()``...) and close the consumer themselves.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Generator, Mapping
from typing import Any

from streamflow.kafka import client

__all__ = ["range_consumer", "read_range"]

Pair = tuple[str, int]


def range_consumer(conf: Mapping[str, Any], group: str | None = None, *,
                   read_committed: bool = True) -> Any:
    """A consumer for :func:`read_range` (``conf``: the client settings).

    ``group`` names the group whose metadata a transaction may carry (nothing joins it);
    a throw-away name by default.
    """
    return client.make_consumer({
        **conf, "group.id": group or f"streamflow-read-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False, "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
    })


def read_range(consumer: Any, start: Mapping[Pair, int], end: Mapping[Pair, int] | None, *,
               idle_timeout_s: float = 20.0, strict: bool = True,
               stop: Callable[[], bool] | None = None) -> Generator[Any, None, None]:
    """The records from ``start`` up to (not including) ``end``, partition by partition.

    ``end`` None: follow, yielding records as they arrive until ``stop()`` returns True.
    Without ``end``-reaching records for ``idle_timeout_s`` (a broker gone quiet) it raises
    :class:`~streamflow.kafka.client.Unreachable` when ``strict``, else returns.
    """
    todo = {pair for pair in start if end is None or start[pair] < end[pair]}
    if not todo:
        return
    client.assign(consumer, [(t, p, start[(t, p)]) for t, p in sorted(todo)])
    quiet_since = time.monotonic()
    while todo and not (stop is not None and stop()):
        msgs = consumer.consume(num_messages=500, timeout=0.2)
        if msgs:
            quiet_since = time.monotonic()
        elif end is not None and time.monotonic() - quiet_since > idle_timeout_s:
            if not strict:
                return
            msg = (f"nothing read for {idle_timeout_s:.0f}s with {len(todo)} partition(s) "
                   "not read to their end")
            raise client.Unreachable(msg)
        for m in msgs:
            pair = (m.topic(), m.partition())
            err = m.error()
            if err is not None:
                if client.partition_eof(err):
                    if end is not None:
                        todo.discard(pair)
                    continue
                raise client.KafkaException(err)
            if end is not None and m.offset() >= end[pair]:
                todo.discard(pair)
                continue
            yield m
            if end is not None and m.offset() >= end[pair] - 1:
                todo.discard(pair)
