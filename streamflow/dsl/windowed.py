"""Windowed streams and tables: ``GroupedStream.window(spec)`` and what follows it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streamflow.dsl.nodes import Sink, WindowAggregate, WindowEmit
from streamflow.dsl.topology import Topic, TopologyError
from streamflow.serde.stored import kept_serde
from streamflow.serde.windowed import WindowValueSerde
from streamflow.windows import Hopping, Session, Sliding, Tumbling, WindowSpec

if TYPE_CHECKING:
    from streamflow.dsl.policies import OnError
    from streamflow.dsl.stream import Stream
    from streamflow.dsl.topology import Processor

_SPECS = (Tumbling, Hopping, Sliding, Session)


class WindowedStream:
    """A grouped stream cut into event-time windows.

    Aggregate it with ``count``, ``reduce`` or ``aggregate`` into a ``WindowedTable``::

        grouped.window(sf.Tumbling(sf.minutes(1))).count().final().to(per_minute)

    See ``streamflow.windows`` for time, lateness and closing rules.
    """

    def __init__(self, processor: Processor, node: str, spec: WindowSpec, *,
                 timestamp: Callable[[Any], int] | None, late_topic: str | None) -> None:
        self._processor = processor
        self._node = node
        self.spec = spec
        self._timestamp = timestamp
        self._late_topic = late_topic

    def _aggregate(self, op: str, initializer: Callable[[], Any] | None,
                   adder: Callable[[Any, Any], Any], merger: Callable[[Any, Any], Any] | None,
                   name: str | None, value_serde: Any,
                   on_error: OnError | None = None) -> WindowedTable:
        if not callable(adder):
            msg = f"window {op}() needs a function, got {type(adder).__name__}"
            raise TopologyError(msg)
        if isinstance(self.spec, Session) and merger is None:
            msg = (
                "session windows merge when a record bridges two sessions: give "
                "aggregate(initializer, adder, merger=lambda agg1, agg2: ...) a merger that "
                "combines two aggregates"
            )
            raise TopologyError(msg)
        p = self._processor
        step = p.node_name(f"window-{op}", name)
        p.check_step_on_error(step, on_error)
        store = p.add_store(step, value_serde=WindowValueSerde(value_serde))
        late_sink = None
        if self._late_topic is not None:
            late_sink = f"{step}.late"
        p.add(WindowAggregate(step, (self._node,), self.spec, store, initializer, adder, merger,
                              op, self._timestamp, late_sink, on_error=on_error))
        if late_sink is not None:
            p.add(Sink(late_sink, (step,), self._late_topic, None))
        return WindowedTable(p, step, self.spec)

    def count(self, *, name: str | None = None) -> WindowedTable:
        """Count the records of each key in each window."""
        return self._aggregate("count", _zero, _count, _add, name, None)

    def reduce(self, fn: Callable[[Any, Any], Any], *, name: str | None = None,
               value_serde: Any = None, on_error: OnError | None = None) -> WindowedTable:
        """Combine the values of each key and window with ``fn(aggregate, value)``.

        The first value is the first aggregate. Sessions merge with ``fn`` too. ``on_error``
        as ``aggregate``'s.
        """
        if value_serde is None:  # the values' own serde (its windows say which format)
            value_serde = kept_serde(self._processor.value_serde_at(self._node))
        return self._aggregate("reduce", None, fn, fn, name, value_serde, on_error)

    def aggregate(self, initializer: Callable[[], Any], adder: Callable[[Any, Any], Any], *,
                  merger: Callable[[Any, Any], Any] | None = None, name: str | None = None,
                  value_serde: Any = None, on_error: OnError | None = None) -> WindowedTable:
        """Fold each key's values per window: ``initializer()``, then ``adder(aggregate, value)``.

        Session windows also need ``merger(agg1, agg2)`` (ignored by other windows). ``value_serde``
        stores the aggregates (JSON by default).

        ``on_error`` (``"fail"``, ``"skip"``, ``"dead_letter"`` or a function deciding;
        default: the processor's ``on_processing_error``) is what happens to a record whose
        ``initializer``, ``adder`` or ``merger`` raises. None of its windows changes then
        (a hopping or sliding record's windows are all updated or none), so nothing of it
        reaches the changelog or downstream; it still moves stream time (which may close
        windows), as in Kafka Streams. Under a policy that may go on (not ``"fail"``),
        ``adder`` and ``merger`` get a copy of a mutable aggregate (see
        ``streamflow.plan.guard``)::

            windowed.aggregate(dict, add_reading, name="per-minute", on_error="skip")

        Keep ``adder`` free of side effects on its input where it can be: sliding windows
        start new windows from a (deep) copy of an existing window's aggregate.
        """
        if not callable(initializer):
            msg = "window aggregate() needs an initializer function, e.g. dict"
            raise TopologyError(msg)
        if merger is not None and not callable(merger):
            msg = "window aggregate() merger must be a function (agg1, agg2)"
            raise TopologyError(msg)
        return self._aggregate("aggregate", initializer, adder, merger, name, value_serde,
                               on_error)

    def __repr__(self) -> str:
        return f"WindowedStream({self._processor.name}/{self._node}, {self.spec.describe()})"


class WindowedTable:
    """The per-window aggregates of a ``WindowedStream``.

    Turn it into a stream keyed by ``Windowed(key, start, end)`` with ``final()`` (each window once,
    when it closes) or ``updates()`` (every change).
    """

    def __init__(self, processor: Processor, node: str, spec: WindowSpec) -> None:
        self._processor = processor
        self._node = node
        self.spec = spec

    @property
    def store(self) -> str:
        """The window store's name (``TopologyTestDriver.store(name)`` shows it)."""
        node = self._processor.nodes[self._node]
        assert isinstance(node, WindowAggregate)
        return node.store

    def _emit(self, mode: str, name: str | None) -> Stream:
        from streamflow.dsl.stream import Stream

        p = self._processor
        node = p.add(WindowEmit(p.node_name(mode, name), (self._node,), mode))
        return Stream(p, node.name)

    def final(self, *, name: str | None = None) -> Stream:
        """One record per window, emitted when it closes: the window's final aggregate.

        A window closes when stream time passes its end plus grace, or ``close_after_idle``
        elapses.
        """
        return self._emit("final", name)

    def updates(self, *, name: str | None = None) -> Stream:
        """One record per change of an open window (a merged-away session emits ``None``)."""
        return self._emit("updates", name)

    def to_stream(self, *, name: str | None = None) -> Stream:
        """Same as ``updates()``."""
        return self._emit("updates", name)

    def __repr__(self) -> str:
        return f"WindowedTable({self._processor.name}/{self._node}, {self.spec.describe()})"


def window(processor: Processor, node: str, spec: Any, timestamp: Any,
           late_topic: Topic | str | None) -> WindowedStream:
    """Validate ``GroupedStream.window`` arguments and make the ``WindowedStream``."""
    if not isinstance(spec, _SPECS):
        msg = (
            f"window() needs a window spec (sf.Tumbling, sf.Hopping, sf.Sliding or "
            f"sf.Session), got {type(spec).__name__}"
        )
        raise TopologyError(msg)
    if timestamp is not None and not callable(timestamp):
        msg = "window(timestamp=...) must be a function value -> milliseconds"
        raise TopologyError(msg)
    late = None
    if late_topic is not None:
        late = processor.topology.resolve_topic(late_topic).name
    return WindowedStream(processor, node, spec, timestamp=timestamp, late_topic=late)


def _zero() -> int:
    return 0


def _count(aggregate: int, _value: Any) -> int:
    return aggregate + 1


def _add(a: int, b: int) -> int:
    return a + b
