"""The conformance scenarios: seeded inputs and the streamflow side of each.

A scenario has a name (the same name keys its Kafka Streams topology in
``java/Scenarios.java``), its input topics and output topics with their value types (``long``:
Kafka's LongSerializer / ``sf.Long()``, ``string``: ``sf.String()``; keys are strings), a seeded
generator of its input records, and ``wire(processor, topics)``, which builds the equivalent
streamflow topology. Both sides get the same records, piped in the same order.

To add a scenario: write its Kafka Streams topology in ``Scenarios.java`` under a new name, then
``add(Scenario(name, ..., inputs=..., wire=...))`` here. A Kafka Streams scenario whose
streamflow side waits for a feature is added with ``pending(Scenario(name, inputs, None, ...),
"what it waits for")``: Kafka Streams runs it (so its inputs and Java side are known to work),
streamflow does not yet; give it a ``wire`` and move it to ``add`` when the feature lands.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import streamflow as sf
from streamflow.dsl import Processor, Stream, Topic
from streamflow.record import Record

Inputs = list[dict[str, Any]]
KEYS = ["a", "b", "c", "aa", "bb"]  # keys of two lengths: windows of both close together


@dataclass(frozen=True)
class Scenario:
    """One topology run through Kafka Streams and streamflow on the same inputs."""

    name: str
    inputs: Callable[[random.Random], Inputs]
    wire: Callable[[Processor, dict[str, Topic]], None] | None
    topics: dict[str, str] = field(default_factory=lambda: {"in": "long"})
    outputs: dict[str, str] = field(default_factory=lambda: {"out": "long"})

    def records(self) -> Inputs:
        """The scenario's inputs, seeded by its name (the same on every run)."""
        return self.inputs(random.Random(zlib.crc32(self.name.encode())))

    def for_java(self) -> dict[str, Any]:
        """The scenario as ``Scenarios.java`` reads it."""
        return {"name": self.name, "topics": self.topics, "outputs": self.outputs,
                "records": self.records()}


SCENARIOS: dict[str, Scenario] = {}

# Kafka Streams scenarios whose streamflow side waits for a feature: name -> (scenario, what)
PENDING: dict[str, tuple[Scenario, str]] = {}


def add(s: Scenario) -> None:
    """Register a scenario (names are unique)."""
    assert s.name not in SCENARIOS and s.name not in PENDING and s.wire is not None, s.name
    SCENARIOS[s.name] = s


def pending(s: Scenario, waits_for: str) -> None:
    """Register a scenario only Kafka Streams runs for now."""
    assert s.name not in SCENARIOS and s.name not in PENDING, s.name
    PENDING[s.name] = (s, waits_for)


def serde(kind: str) -> sf.Serde:
    """The streamflow serde of a value type."""
    return sf.Long() if kind == "long" else sf.String()


def topology(s: Scenario) -> sf.Topology:
    """The streamflow topology of a scenario: its topics, and one processor ``p``."""
    t = sf.Topology(f"conformance-{s.name}")
    topics = {name: t.topic(name, key=sf.String(), value=serde(kind), external=True)
              for name, kind in s.topics.items()}
    topics.update({name: t.topic(name, key=sf.String(), value=serde(kind))
                   for name, kind in s.outputs.items()})
    assert s.wire is not None, f"{s.name} is pending"
    s.wire(t.processor("p"), topics)
    return t


# ---- input generators -------------------------------------------------------------------


def record(topic: str, key: str | None, value: Any, ts: int) -> dict[str, Any]:
    """One input record."""
    return {"topic": topic, "key": key, "value": value, "timestamp": ts}


def disordered(rng: random.Random, n: int, *, start: int = 10_000, step: int = 120,
               back: int = 1500, p_back: float = 0.2) -> Inputs:
    """``n`` keyed longs, time mostly moving forward, a fifth stepping back up to ``back`` ms.

    So some records arrive within grace and some too late for their windows.
    """
    out: Inputs = []
    now = start
    for _ in range(n):
        if rng.random() < p_back:
            ts = max(0, now - rng.randint(1, back))
        else:
            now += rng.randint(0, step)
            ts = now
        out.append(record("in", rng.choice(KEYS), rng.randint(1, 20), ts))
    return out


def early(rng: random.Random) -> Inputs:
    """Records near time 0 for sliding windows of 500 ms: many before ``size``."""
    return disordered(rng, 120, start=0, step=40, back=300, p_back=0.25)


def table_and_stream(rng: random.Random) -> Inputs:
    """A table (strings, some deletes) and a stream (longs, some null) interleaved in time.

    Timestamps are distinct and piped in order, so both engines see one order.
    """
    out: Inputs = []
    ts = 1000
    for _ in range(200):
        ts += rng.randint(1, 50)
        key = rng.choice([*KEYS, "d"])
        if rng.random() < 0.3:
            row = None if rng.random() < 0.2 else f"u{rng.randint(1, 99)}"
            out.append(record("tbl", key, row, ts))
        else:
            value = None if rng.random() < 0.05 else rng.randint(1, 20)
            out.append(record("in", key, value, ts))
    return out


# ---- streamflow helpers -------------------------------------------------------------------


def windowed_key(r: Record) -> Record:
    """``Windowed(key, start, end)`` as ``Scenarios.java`` prints it: ``key@start/end``."""
    w = r.key
    return r.with_key(f"{w.key}@{w.start}/{w.end}")


def concat(agg: str, v: int) -> str:
    """The string aggregate both sides build: ``'3;7;'``."""
    return f"{agg}{v};"


def grouped(p: Processor, topics: dict[str, Topic]) -> Any:
    """The input stream grouped by its key (no repartition)."""
    return p.stream(topics["in"]).group_by_key()


def to_out(s: Stream, topics: dict[str, Topic]) -> None:
    """Windowed results, re-keyed ``key@start/end``, to ``out``."""
    s.map_record(windowed_key).to(topics["out"])


def joined(row: str | None, v: int) -> str:
    """Kafka Streams' ``v + "|" + row`` (a missing row prints ``null``)."""
    return f"{v}|{'null' if row is None else row}"


# ---- scenarios ---------------------------------------------------------------------------


def _stateless(p: Processor, t: dict[str, Topic]) -> None:
    (p.stream(t["in"])
        .filter(lambda v: v % 3 != 0)
        .map(lambda v: v * 10)
        .flat_map(lambda v: [v, v + 1])
        .map_record(lambda r: r.with_key(f"{r.key}-{r.value % 2}"))
        .to(t["out"]))


add(Scenario("stateless-filter-map-flat-map", lambda rng: disordered(rng, 150), _stateless))

add(Scenario("count-by-key", lambda rng: disordered(rng, 150),
             lambda p, t: grouped(p, t).count().to_stream().to(t["out"])))
add(Scenario("reduce-sum-by-key", lambda rng: disordered(rng, 150),
             lambda p, t: grouped(p, t).reduce(lambda a, v: a + v).to_stream().to(t["out"])))
add(Scenario("aggregate-concat-by-key", lambda rng: disordered(rng, 150),
             lambda p, t: grouped(p, t).aggregate(str, concat).to_stream().to(t["out"]),
             outputs={"out": "string"}))
add(Scenario("group-by-repartition-count", lambda rng: disordered(rng, 150),
             lambda p, t: p.stream(t["in"]).group_by(lambda v: f"g{v % 4}",
                                                     key_serde=sf.String())
             .count().to_stream().to(t["out"])))

TUMBLING = sf.Tumbling(1000, grace=200)
HOPPING = sf.Hopping(1000, 250, grace=300)
SLIDING = sf.Sliding(500, grace=200)
SESSION = sf.Session(300, grace=200)

add(Scenario("tumbling-count-updates", lambda rng: disordered(rng, 200),
             lambda p, t: to_out(grouped(p, t).window(TUMBLING).count().updates(), t)))
add(Scenario("tumbling-count-suppressed", lambda rng: disordered(rng, 200),
             lambda p, t: to_out(grouped(p, t).window(TUMBLING).count().final(), t)))
add(Scenario("tumbling-count-emit-on-close", lambda rng: disordered(rng, 200),
             lambda p, t: to_out(grouped(p, t).window(TUMBLING).count().final(), t)))
add(Scenario("hopping-aggregate-updates", lambda rng: disordered(rng, 150),
             lambda p, t: to_out(grouped(p, t).window(HOPPING).aggregate(str, concat)
                                 .updates(), t),
             outputs={"out": "string"}))
add(Scenario("hopping-reduce-suppressed", lambda rng: disordered(rng, 150),
             lambda p, t: to_out(grouped(p, t).window(HOPPING).reduce(lambda a, v: a + v)
                                 .final(), t)))
add(Scenario("sliding-count-updates", lambda rng: disordered(rng, 200),
             lambda p, t: to_out(grouped(p, t).window(SLIDING).count().updates(), t)))
add(Scenario("sliding-aggregate-suppressed", lambda rng: disordered(rng, 200),
             lambda p, t: to_out(grouped(p, t).window(SLIDING).aggregate(str, concat)
                                 .final(), t),
             outputs={"out": "string"}))
add(Scenario("sliding-count-early", early,
             lambda p, t: to_out(grouped(p, t).window(sf.Sliding(500, grace=100)).count()
                                 .updates(), t)))
add(Scenario("session-count-updates", lambda rng: disordered(rng, 200),
             lambda p, t: to_out(grouped(p, t).window(SESSION).count().updates(), t)))
add(Scenario("session-reduce-suppressed", lambda rng: disordered(rng, 200),
             lambda p, t: to_out(grouped(p, t).window(SESSION).reduce(lambda a, v: a + v)
                                 .final(), t)))


def _join(left: bool) -> Callable[[Processor, dict[str, Topic]], None]:
    def wire(p: Processor, t: dict[str, Topic]) -> None:
        ref = p.topology.table(t["tbl"])
        stream = p.stream(t["in"])
        step = stream.left_join if left else stream.join
        step(ref, lambda v, row: joined(row, v)).to(t["out"])

    return wire


JOIN_TOPICS = {"in": "long", "tbl": "string"}
add(Scenario("stream-table-join", table_and_stream, _join(False), topics=JOIN_TOPICS,
             outputs={"out": "string"}))
add(Scenario("stream-table-left-join", table_and_stream, _join(True), topics=JOIN_TOPICS,
             outputs={"out": "string"}))


# ---- pending: the Kafka Streams side is written, streamflow's comes with the feature ----------


def two_streams(rng: random.Random) -> Inputs:
    """Keyed longs on ``left`` and ``right``, out of order now and then (some beyond grace)."""
    out = disordered(rng, 200, step=60, back=600)
    for r in out:
        r["topic"] = rng.choice(["left", "right"])
    return out


def two_tables(rng: random.Random, *, foreign: bool = False) -> Inputs:
    """Rows of ``left`` and ``right`` with deletes; distinct timestamps, in order.

    ``left`` values are ``"<right key>:<n>"``; its keys are the right table's (to join on the
    key) or, with ``foreign``, its own (``o1``..``o12``: to join on the key in the value).
    """
    out: Inputs = []
    ts = 1000
    for _ in range(200):
        ts += rng.randint(1, 50)
        if rng.random() < 0.5:
            row = None if rng.random() < 0.15 else f"{rng.choice(KEYS)}:{rng.randint(1, 99)}"
            key = f"o{rng.randint(1, 12)}" if foreign else rng.choice(KEYS)
            out.append(record("left", key, row, ts))
        else:
            row = None if rng.random() < 0.15 else f"u{rng.randint(1, 99)}"
            out.append(record("right", rng.choice(KEYS), row, ts))
    return out


def global_and_stream(rng: random.Random) -> Inputs:
    """Rows ``k0``..``k4`` of ``glob`` and longs on ``in``, interleaved in time."""
    out: Inputs = []
    ts = 1000
    for _ in range(200):
        ts += rng.randint(1, 50)
        if rng.random() < 0.3:
            row = None if rng.random() < 0.15 else f"g{rng.randint(1, 99)}"
            out.append(record("glob", f"k{rng.randint(0, 4)}", row, ts))
        else:
            out.append(record("in", rng.choice(KEYS), rng.randint(1, 20), ts))
    return out


STREAMS = {"left": "long", "right": "long"}
TABLES = {"left": "string", "right": "string"}
TEXT = {"out": "string"}
WITHIN = sf.JoinWindows(300, grace=100)


def pair(left: Any, right: Any) -> str:
    """Kafka Streams' ``l + "|" + r`` (a missing side prints ``null``)."""
    return f"{'null' if left is None else left}|{'null' if right is None else right}"


def _stream_join(op: str) -> Callable[[Processor, dict[str, Topic]], None]:
    def wire(p: Processor, t: dict[str, Topic]) -> None:
        left = p.stream(t["left"])
        getattr(left, op)(p.stream(t["right"]), pair, window=WITHIN).to(t["out"])

    return wire


def _self_join(p: Processor, t: dict[str, Topic]) -> None:
    s = p.stream(t["left"])
    s.join(s, pair, window=WITHIN).to(t["out"])


for _name, _op in (("stream-stream-join", "join"), ("stream-stream-left-join", "left_join"),
                   ("stream-stream-outer-join", "outer_join")):
    add(Scenario(_name, two_streams, _stream_join(_op), topics=STREAMS, outputs=TEXT))
add(Scenario("stream-stream-self-join", lambda rng: [
    {**r, "topic": "left"} for r in two_streams(rng)], _self_join, topics={"left": "long"},
    outputs=TEXT))


def _table_join(op: str, *, foreign: bool = False) -> Callable[[Processor, dict[str, Topic]], None]:
    def wire(p: Processor, t: dict[str, Topic]) -> None:
        left = p.materialize(p.topology.table(t["left"]))
        right = p.topology.table(t["right"])
        extra: dict[str, Any] = {"foreign_key": lambda v: v.split(":")[0]} if foreign else {}
        getattr(left, op)(right, pair, **extra).to_stream().to(t["out"])

    return wire


for _name, _op in (("table-table-join", "join"), ("table-table-left-join", "left_join"),
                   ("table-table-outer-join", "outer_join")):
    add(Scenario(_name, two_tables, _table_join(_op), topics=TABLES, outputs=TEXT))
for _name, _op in (("foreign-key-join", "join"), ("foreign-key-left-join", "left_join")):
    add(Scenario(_name, lambda rng: two_tables(rng, foreign=True),
                 _table_join(_op, foreign=True), topics=TABLES, outputs=TEXT))


def _global_join(left: bool) -> Callable[[Processor, dict[str, Topic]], None]:
    def wire(p: Processor, t: dict[str, Topic]) -> None:
        glob = p.topology.global_table(t["glob"])
        stream = p.stream(t["in"])
        step = stream.left_join if left else stream.join
        step(glob, lambda v, row: joined(row, v), key=lambda _k, v: f"k{v % 5}").to(t["out"])

    return wire


for _name, _left in (("global-table-join", False), ("global-table-left-join", True)):
    add(Scenario(_name, global_and_stream, _global_join(_left),
                 topics={"in": "long", "glob": "string"}, outputs=TEXT))
