"""Topologies, topics and processors: the declared DAG of a streamflow application."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from streamflow.dsl.policies import ACTIONS, ARGUMENT, PHASES, OnError, Phase, policy_label
from streamflow.dsl.render import describe_text
from streamflow.errors import ConfigurationError
from streamflow.serde import Bytes, Serde
from streamflow.serde.stored import row_serde

# Apply steps whose output value is their input value
_VALUE_KEEPING = frozenset({"filter", "filter_record", "peek", "key_by", "validate"})

if TYPE_CHECKING:
    from streamflow.dsl.global_table import GlobalTableRef
    from streamflow.dsl.nodes import Node, StoreSpec
    from streamflow.dsl.stream import Stream
    from streamflow.dsl.table import Table, TableRef

Guarantee = Literal["at_least_once", "exactly_once"]

_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


class TopologyError(ConfigurationError, ValueError):
    """The topology is not well formed; the message says what to change."""


def check_on_error(what: str, policy: object) -> OnError:
    """Return ``policy`` when it is an action or a function, else raise naming ``what``.

    >>> check_on_error("processor 'p': on_error", "skip")
    'skip'
    """
    if callable(policy) or policy in ACTIONS:
        return policy
    msg = (f"{what} must be 'fail', 'skip' or 'dead_letter', or a function of an ErrorContext "
           f"returning one of them; not {policy!r}")
    raise TopologyError(msg)


def _check_name(what: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name) > 200:
        msg = f"{what} name {name!r} is not valid: use letters, digits, '.', '_' and '-' only"
        raise TopologyError(msg)
    if name in (".", ".."):
        msg = f"{what} name {name!r} is not valid: Kafka reserves '.' and '..'"
        raise TopologyError(msg)
    return name


@dataclass(frozen=True)
class Topic:
    """A declared Kafka topic: its name, key and value serdes, and how it should be created.

    ``external=True`` marks a topic that no processor of this topology produces (an input
    from elsewhere). ``partitions``/``replication``/``config`` are used when streamflow
    creates the topic and checked against the cluster at start-up.
    """

    name: str
    key: Serde = field(default_factory=Bytes)
    value: Serde = field(default_factory=Bytes)
    partitions: int | None = None
    replication: int | None = None
    config: tuple[tuple[str, str], ...] = ()
    external: bool = False
    internal: bool = False

    @property
    def config_dict(self) -> dict[str, str]:
        """The topic configs as a dict (e.g. ``{"cleanup.policy": "compact"}``)."""
        return dict(self.config)

    def __str__(self) -> str:
        return self.name


class Topology:
    """A named set of topics and processors: the workflow DAG.

    >>> import streamflow as sf
    >>> t = sf.Topology("shop")
    >>> orders = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    >>> big = t.topic("big-orders", key=sf.String(), value=sf.Json())
    >>> _ = t.processor("filter").stream(orders).filter(lambda o: o["total"] > 100).to(big)
    >>> sorted(t.processors)
    ['filter']
    """

    def __init__(self, name: str, *, allow_cycles: bool = False) -> None:
        self.name = _check_name("topology", name)
        self.allow_cycles = allow_cycles  # `streamflow check` accepts processor cycles
        self.name_suffix = ""  # what with_name_suffix appended to every Kafka name
        self.topics: dict[str, Topic] = {}
        self.processors: dict[str, Processor] = {}

    def topic(
        self,
        name: str,
        *,
        key: Serde | None = None,
        value: Serde | None = None,
        partitions: int | None = None,
        replication: int | None = None,
        config: dict[str, str] | None = None,
        external: bool = False,
    ) -> Topic:
        """Declare a topic (or return the identical existing declaration)."""
        _check_name("topic", name)
        if partitions is not None and partitions < 1:
            msg = f"topic {name!r}: partitions must be >= 1, got {partitions}"
            raise TopologyError(msg)
        t = Topic(
            name,
            key if key is not None else Bytes(),
            value if value is not None else Bytes(),
            partitions,
            replication,
            tuple(sorted((config or {}).items())),
            external,
        )
        old = self.topics.get(name)
        if old is not None and old != t:
            msg = (
                f"topic {name!r} is declared twice with different settings; declare it once "
                "and reuse the returned Topic"
            )
            raise TopologyError(msg)
        self.topics[name] = t
        return t

    def internal_topic(self, name: str, key: Serde, value: Serde,
                       config: dict[str, str] | None = None) -> Topic:
        """Declare a topic streamflow manages itself (repartition, changelog).

        Its partition count follows the processor's source topics.
        """
        _check_name("topic", name)
        t = Topic(name, key, value, None, None, tuple(sorted((config or {}).items())), False, True)
        old = self.topics.get(name)
        if old is not None and old != t:
            msg = f"internal topic {name!r} collides with a declared topic"
            raise TopologyError(msg)
        self.topics[name] = t
        return t

    def table(self, topic: Topic | str, *, name: str | None = None,
              changelog: Literal["own", "source"] = "own") -> TableRef:
        """Read a (compacted) topic as a table, to join streams against.

        Each processor that joins with it materializes the table in a local store, so the
        topic must be co-partitioned with the joining stream. The store has its own compacted
        changelog topic; ``changelog="source"`` (Kafka Streams' reuse of source topics) gives
        it none: it is restored from the topic itself, which must be declared compacted
        (:mod:`streamflow.dsl.source_reuse`).
        """
        from streamflow.dsl.table import TableRef

        return TableRef(self.resolve_topic(topic), name, changelog)

    def global_table(self, topic: Topic | str, *, name: str | None = None) -> GlobalTableRef:
        """Read a (compacted) topic whole into every worker, to join streams against by any key.

        Kafka Streams' GlobalKTable: no co-partitioning, a key extractor per join
        (``stream.join(table, joiner, key=lambda k, v: ...)``); see
        :mod:`streamflow.dsl.global_table`.
        """
        from streamflow.dsl.global_table import GlobalTableRef

        return GlobalTableRef(self.resolve_topic(topic), name)

    def processor(
        self,
        name: str,
        *,
        guarantee: Guarantee = "at_least_once",
        on_error: OnError = "fail",
        on_deserialize_error: OnError | None = None,
        on_processing_error: OnError | None = None,
        on_produce_error: OnError | None = None,
        dead_letter_topic: str | None = None,
        commit_interval_ms: int | None = None,
        group_id: str | None = None,
        store: str = "rocksdb",
    ) -> Processor:
        """Declare a processor: one consumer group, one unit of deployment and scaling.

        What happens to a record that fails (see :mod:`streamflow.dsl.policies`): each phase
        has a policy, ``"fail"`` (the default), ``"skip"``, ``"dead_letter"`` (to
        ``dead_letter_topic``, by default ``<topology>.<processor>.dlq``) or a function of an
        :class:`~streamflow.dsl.policies.ErrorContext` returning one of them.
        ``on_deserialize_error`` covers undecodable input (Kafka Streams'
        DeserializationExceptionHandler), ``on_processing_error`` exceptions in user code
        (ProcessingExceptionHandler, KIP-1033; steps taking ``on_error=`` override it),
        ``on_produce_error`` outputs that cannot be serialized (ProductionExceptionHandler);
        ``on_error`` sets the phases not given::

            t.processor("enrich", on_error="dead_letter", on_processing_error="fail")
        """
        _check_name("processor", name)
        if dead_letter_topic is not None:
            _check_name("dead-letter topic", dead_letter_topic)
        if name in self.processors:
            msg = f"processor {name!r} is declared twice in topology {self.name!r}"
            raise TopologyError(msg)
        if guarantee not in ("at_least_once", "exactly_once"):
            msg = (
                f"processor {name!r}: guarantee must be 'at_least_once' or 'exactly_once', "
                f"not {guarantee!r}"
            )
            raise TopologyError(msg)
        check_on_error(f"processor {name!r}: on_error", on_error)
        given = {"deserialize": on_deserialize_error, "process": on_processing_error,
                 "produce": on_produce_error}
        policies: dict[Phase, OnError] = {}
        for phase in PHASES:
            arg = given[phase]
            policies[phase] = (on_error if arg is None
                               else check_on_error(f"processor {name!r}: {ARGUMENT[phase]}", arg))
        if store not in ("rocksdb", "memory"):
            msg = f"processor {name!r}: store must be 'rocksdb' or 'memory', not {store!r}"
            raise TopologyError(msg)
        p = Processor(self, name, guarantee, on_error, dead_letter_topic, commit_interval_ms,
                      group_id)
        p.policies = policies
        p.store_backend = store
        self.processors[name] = p
        return p

    def resolve_topic(self, topic: Topic | str) -> Topic:
        """Return the declaration of ``topic`` (a Topic or a name) in this topology."""
        name = topic.name if isinstance(topic, Topic) else topic
        try:
            found = self.topics[name]
        except KeyError:
            msg = (
                f"topic {name!r} is not declared in topology {self.name!r}; declare it with "
                f"topology.topic({name!r}, key=..., value=...)"
            )
            raise TopologyError(msg) from None
        if isinstance(topic, Topic) and topic != found:
            msg = f"topic {name!r} belongs to another topology"
            raise TopologyError(msg)
        return found

    def describe(self) -> str:
        """A readable text of topics, processors and their steps."""
        return describe_text(self)

    def with_name_suffix(self, suffix: str) -> Topology:
        """A copy whose every topic and consumer group, and its own name, end with ``suffix``.

        Topics declared, internal (repartition, changelog) and dead-letter ones, so that tests
        (or branches) running the same topology on one cluster share nothing; ``streamflow``
        commands apply the ``name_suffix`` setting (``STREAMFLOW_NAME_SUFFIX``) this way::

            t = topology.with_name_suffix("-pr42")  # "orders" becomes "orders-pr42"
        """
        from streamflow.dsl.rename import with_name_suffix

        return with_name_suffix(self, suffix)

    def __repr__(self) -> str:
        return f"Topology({self.name!r}, processors={list(self.processors)})"


class Processor:
    """A named stream program inside a topology (one consumer group)."""

    def __init__(
        self,
        topology: Topology,
        name: str,
        guarantee: Guarantee,
        on_error: OnError,
        dead_letter_topic: str | None,
        commit_interval_ms: int | None,
        group_id: str | None,
    ) -> None:
        self.topology = topology
        self.name = name
        self.guarantee: Guarantee = guarantee
        self.on_error: OnError = on_error  # the shorthand; ``policies`` holds each phase's
        self.policies: dict[Phase, OnError] = dict.fromkeys(PHASES, on_error)
        self.dead_letter_topic = dead_letter_topic or f"{topology.name}.{name}.dlq"
        self.commit_interval_ms = commit_interval_ms
        self.group_id = group_id or f"{topology.name}.{name}"
        self.nodes: dict[str, Node] = {}
        self.stores: dict[str, StoreSpec] = {}
        self.store_backend = "rocksdb"
        self._counters: dict[str, int] = {}
        self._derived: set[str] = set()  # step names made by node_name(), not the user
        self._tables: dict[str, Table] = {}
        self._reused = False  # a table reuses its source topic as changelog (source_reuse)

    def stream(self, *topics: Topic | str, name: str | None = None) -> Stream:
        """Start a stream reading from one or more declared topics."""
        from streamflow.dsl.nodes import Source
        from streamflow.dsl.stream import Stream

        if not topics:
            msg = f"processor {self.name!r}: stream() needs at least one topic"
            raise TopologyError(msg)
        resolved = tuple(self.topology.resolve_topic(t).name for t in topics)
        for other in self.nodes.values():
            if isinstance(other, Source) and set(other.topics) & set(resolved):
                msg = (
                    f"processor {self.name!r} reads {sorted(set(other.topics) & set(resolved))} "
                    "in two streams; read it once and branch with .split() or reuse the Stream"
                )
                raise TopologyError(msg)
        node = self.add(Source(self.node_name("source", name), (), resolved))
        return Stream(self, node.name)

    def check_step_on_error(self, step: str, on_error: object) -> None:
        """Refuse a step's ``on_error=`` that is not a policy (None: the processor's applies)."""
        if on_error is not None:
            check_on_error(f"processor {self.name!r}: step {step!r}: on_error", on_error)

    def node_name(self, kind: str, explicit: str | None) -> str:
        """Return a stable step name: the explicit one, or ``<kind>-<n>`` in declaration order."""
        if explicit is not None:
            return _check_name("step", explicit)
        n = self._counters.get(kind, 0)
        while True:  # skip names the user has already given explicitly
            n += 1
            if f"{kind}-{n}" not in self.nodes:
                break
        self._counters[kind] = n
        self._derived.add(f"{kind}-{n}")
        return f"{kind}-{n}"

    def is_derived(self, step: str) -> bool:
        """True when ``step`` is a name :meth:`node_name` derived (not one the user gave).

        Or a part of such a step (``group-by-1.from-repartition``).
        """
        return step in self._derived or step.partition(".")[0] in self._derived

    def add(self, node: Node) -> Node:
        """Register a new step (names are unique within a processor).

        A step whose name was derived is recorded with ``named=False``.
        """
        if node.name in self.nodes:
            msg = (
                f"processor {self.name!r} already has a step named {node.name!r}; "
                "step names must be unique because state and internal topics are named after them"
            )
            raise TopologyError(msg)
        if self._reused:
            from streamflow.dsl.source_reuse import refuse_write

            refuse_write(self, node)
        if node.named and self.is_derived(node.name):
            node = replace(node, named=False)
        self.nodes[node.name] = node
        return node

    def add_store(self, name: str, *, value_serde: Serde | None = None,
                  ttl: int | timedelta | None = None, timestamped: bool = False,
                  source: Topic | None = None) -> str:
        """Declare a key-value store (changelog ``<topology>-<processor>-<store>-changelog``).

        ``ttl`` (milliseconds or a timedelta): an entry not written for that long in event
        time (the store's largest record timestamp) reads as missing and is deleted, so
        state for keys that went quiet does not grow forever. ``timestamped``: each row also
        keeps its event time (a table's store, ``streamflow.state.store.TimestampedStore``).
        ``source``: the topic a table's store is restored from instead of a changelog of its
        own (``topology.table(topic, changelog="source")``).
        """
        from streamflow.dsl.nodes import StoreSpec
        from streamflow.serde import Bytes

        _check_name("store", name)
        if name in self.stores:
            msg = f"processor {self.name!r} already has a store named {name!r}"
            raise TopologyError(msg)
        if source is None:
            changelog = f"{self.topology.name}-{self.name}-{name}-changelog"
            self.topology.internal_topic(changelog, Bytes(), Bytes(),
                                         {"cleanup.policy": "compact"})
        else:
            changelog = source.name
        ttl_ms = None
        if ttl is not None:
            ttl_ms = int(ttl.total_seconds() * 1000) if isinstance(ttl, timedelta) else int(ttl)
            if ttl_ms <= 0:
                msg = f"store {name!r}: ttl must be positive, got {ttl!r}"
                raise TopologyError(msg)
        self.stores[name] = StoreSpec(
            name, changelog, value_serde, ttl_ms=ttl_ms, timestamped=timestamped,
            source_serdes=None if source is None else (source.key, source.value))
        return name

    def repartition(self, node: str, name: str, key: Serde | None, value: Serde | None
                    ) -> str:
        """Route the stream at ``node`` through an internal topic keyed by its current key.

        Return the name of the source step reading it back.
        """
        from streamflow.dsl.nodes import Sink, Source
        from streamflow.serde import Json

        topic = f"{self.topology.name}-{self.name}-{name}-repartition"
        # values the stream's topic encodes go through with its serde (Avro decimals stay)
        value = value or row_serde(self.value_serde_at(node)) or Json()
        self.topology.internal_topic(topic, key or Json(), value)
        self.add(Sink(f"{name}.to-repartition", (node,), topic, None))
        src = self.add(Source(f"{name}.from-repartition", (), (topic,)))
        return src.name

    def value_serde_at(self, node: str) -> Serde | None:
        """The serde of the values at step ``node`` when they are a topic's values unchanged.

        As Kafka Streams' serdes inherited from upstream: through steps that keep the value
        (filter, key_by, peek, validate, branches and merges of the same serde) back to the
        source topic's value serde; None when a step made new values (a map) or the topics
        differ, so JSON is kept.
        """
        from streamflow.dsl.nodes import Apply, Branch, Merge, Source, Split

        n = self.nodes[node]
        found: list[Serde | None]
        if isinstance(n, Source):
            topics = self.topology.topics
            found = [topics[t].value if t in topics else None for t in n.topics]
        elif isinstance(n, Apply) and n.op in _VALUE_KEEPING and n.parents:
            return self.value_serde_at(n.parents[0])
        elif isinstance(n, (Branch, Merge, Split)) and n.parents:
            found = [self.value_serde_at(parent) for parent in n.parents]
        else:
            return None
        return found[0] if found and all(f == found[0] for f in found) else None

    def materialize(self, ref: TableRef) -> Table:
        """This processor's materialization of ``topology.table(topic)`` (made once)."""
        from streamflow.dsl.nodes import TableSource
        from streamflow.dsl.table import Table

        if ref.name not in self._tables:
            from streamflow.dsl.source_reuse import check_reusable

            reuse = check_reusable(self, ref.topic, ref.changelog)
            # rows kept as the topic encodes them (streamflow.serde.stored)
            store = self.add_store(ref.name, value_serde=row_serde(ref.topic.value),
                                   timestamped=True, source=ref.topic if reuse else None)
            node = self.add(TableSource(ref.name, (), ref.topic.name, store, named=ref.named,
                                        reuse_source=reuse))
            self._reused |= reuse
            self._tables[ref.name] = Table(self, node.name, store)
        return self._tables[ref.name]

    def upstream_sources(self, node: str) -> list[str]:
        """The topics whose records reach step ``node``."""
        from streamflow.dsl.nodes import Source, TableSource

        seen: set[str] = set()
        out: list[str] = []
        stack = [node]
        while stack:
            n = self.nodes[stack.pop()]
            if n.name in seen:
                continue
            seen.add(n.name)
            if isinstance(n, Source):
                out += [t for t in n.topics if t not in out]
            elif isinstance(n, TableSource) and n.topic not in out:
                out.append(n.topic)
            stack.extend(n.parents)
        return out

    def source_topics(self) -> list[str]:
        """Topics this processor consumes (declared sources and internal ones)."""
        from streamflow.dsl.nodes import Source, TableSource

        out: list[str] = []
        for n in self.nodes.values():
            if isinstance(n, Source):
                out += n.topics
            elif isinstance(n, TableSource):
                out.append(n.topic)
        return list(dict.fromkeys(out))

    def joined_topics(self) -> list[str]:
        """Topics on either side of this processor's joins (they must be co-partitioned).

        A foreign-key join's tables need not share keys, but their topics need the width of
        its internal topics, which route by key.
        """
        from streamflow.dsl.nodes import ForeignKeyJoin, Join, StreamJoin, TableJoin

        out: list[str] = []
        for n in self.nodes.values():
            if isinstance(n, Join):
                out += [t for t in (*n.left_topics, n.right_topic) if t and t not in out]
            elif isinstance(n, StreamJoin):
                for side in n.parents:
                    out += [t for t in self.upstream_sources(side) if t not in out]
            elif isinstance(n, ForeignKeyJoin) and n.role in ("subscribe", "update"):
                out += [t for t in self.upstream_sources(n.parents[0]) if t not in out]
            elif isinstance(n, TableJoin):
                out += [t for t in self.upstream_sources(n.name) if t not in out]
        return out

    def is_stateful(self) -> bool:
        """True when the processor has stores (tasks must keep co-partitioned inputs together)."""
        return bool(self.stores)

    def changelog_topics(self) -> list[str]:
        """The changelog topics of this processor's stores (tables reusing their source: none)."""
        return [s.changelog for s in self.stores.values() if s.source_serdes is None]

    def sink_topics(self) -> list[str]:
        """Topics this processor produces to by name (dynamic routes are not listed)."""
        from streamflow.dsl.nodes import ForeignKeyJoin, Sink

        out = [n.topic for n in self.nodes.values() if isinstance(n, Sink) and n.topic]
        out += [n.written_topic for n in self.nodes.values()
                if isinstance(n, ForeignKeyJoin) and n.written_topic]
        return list(dict.fromkeys(out))

    def step_policies(self, phase: Phase = "process") -> dict[str, OnError]:
        """The steps whose own policy overrides the processor's for ``phase``.

        ``on_error=`` on a step overrides ``on_processing_error``; ``on_produce_error=`` on a
        sink (``to()``) overrides the processor's ``on_produce_error``. Decoding a source
        has no step override.
        """
        from streamflow.dsl.nodes import Sink

        nodes = self.nodes.values()
        if phase == "process":
            return {n.name: n.on_error for n in nodes if n.on_error is not None}
        if phase == "produce":
            return {n.name: n.on_produce_error for n in nodes
                    if isinstance(n, Sink) and n.on_produce_error is not None}
        return {}

    @property
    def dead_letters(self) -> bool:
        """True when a failed record may go to the dead-letter topic.

        A policy (of a phase or a step) is ``"dead_letter"`` or a function that may return it.
        """
        steps = [p for ph in PHASES for p in self.step_policies(ph).values()]
        return any(p == "dead_letter" or callable(p)
                   for p in (*self.policies.values(), *steps))

    def options(self) -> dict[str, Any]:
        """The processor's settings, for describe and tooling (policies in words)."""
        return {
            "guarantee": self.guarantee,
            "on_error": policy_label(self.on_error),
            **{ARGUMENT[ph]: policy_label(self.policies[ph]) for ph in PHASES},
            "dead_letter_topic": self.dead_letter_topic,
            "group_id": self.group_id,
            "store": self.store_backend,
        }

    def __repr__(self) -> str:
        return f"Processor({self.topology.name}/{self.name})"
