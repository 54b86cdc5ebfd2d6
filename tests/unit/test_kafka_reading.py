"""``streamflow.kafka.reading.read_range`` over a scripted consumer: where each partition ends,
following, and a broker that goes quiet."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError

from streamflow.kafka import client
from streamflow.kafka.reading import read_range


class Msg:
    def __init__(self, topic: str, partition: int, offset: int, eof: bool = False) -> None:
        self._t, self._p, self._o = topic, partition, offset
        self._err = KafkaError(KafkaError._PARTITION_EOF) if eof else None

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def error(self) -> Any:
        return self._err


class ScriptedConsumer:
    """Hands out one scripted batch per ``consume()``, then nothing."""

    def __init__(self, batches: list[list[Msg]]) -> None:
        self.batches = batches
        self.assigned: list[tuple[str, int, int]] = []

    def incremental_assign(self, tps: list[Any]) -> None:
        self.assigned += [(tp.topic, tp.partition, tp.offset) for tp in tps]

    def consume(self, num_messages: int, timeout: float) -> list[Msg]:
        return self.batches.pop(0) if self.batches else []


def offsets(it: Iterator[Any]) -> list[tuple[int, int]]:
    return [(m.partition(), m.offset()) for m in it]


def test_each_partition_stops_at_its_end_or_its_end_of_partition_event() -> None:
    c = ScriptedConsumer([
        [Msg("t", 0, 3), Msg("t", 1, 0)],
        # partition 1's last record before the end is followed by a transaction marker
        [Msg("t", 0, 4), Msg("t", 1, 0, eof=True), Msg("t", 0, 5)],
    ])
    got = offsets(read_range(c, {("t", 0): 3, ("t", 1): 0, ("t", 2): 7},
                             {("t", 0): 5, ("t", 1): 2, ("t", 2): 7}))
    assert got == [(0, 3), (1, 0), (0, 4)]  # offset 5 is past the end asked for
    assert c.assigned == [("t", 0, 3), ("t", 1, 0)]  # partition 2 has nothing to read


def test_following_ignores_end_of_partition_until_stopped() -> None:
    c = ScriptedConsumer([[Msg("t", 0, 0, eof=True)], [Msg("t", 0, 0)], [Msg("t", 0, 1)]])
    seen: list[Any] = []
    for m in read_range(c, {("t", 0): 0}, None, stop=lambda: len(seen) >= 2):
        seen.append(m)
    assert [m.offset() for m in seen] == [0, 1]


def test_a_quiet_broker_raises_unless_told_to_return_what_it_read() -> None:
    with pytest.raises(client.Unreachable, match="not read to their end"):
        list(read_range(ScriptedConsumer([]), {("t", 0): 0}, {("t", 0): 5},
                        idle_timeout_s=0.3))
    got = offsets(read_range(ScriptedConsumer([[Msg("t", 0, 0)]]), {("t", 0): 0},
                             {("t", 0): 5}, idle_timeout_s=0.3, strict=False))
    assert got == [(0, 0)]
