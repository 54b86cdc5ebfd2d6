"""Trace context: W3C ``traceparent``/``tracestate`` across a processor, spans per batch.

Headers of an input record flow to the records produced from it (every step passes them on;
dead letters keep them too), so an output carries its input's ``traceparent`` and with it the
trace id, with or without OpenTelemetry. Results that have no single input record (final
window results, windows closed by the wall clock) carry no input headers.

With the ``tracing`` setting on and OpenTelemetry's API installed (``streamflow[otel]``), the
worker opens one span per processed batch, ``process <processor>`` (kind CONSUMER): the
child of its input's trace when the batch holds records of one trace, else a new trace linked
to every input trace in the batch (up to ``MAX_LINKS``). In the first case the outputs name
the batch span as their parent (``trace_outputs``), so the next processor's span is a child
of this one's. Spans go wherever the OpenTelemetry
SDK the process configures sends them (e.g. ``opentelemetry-instrument streamflow run ...``);
without an SDK the API's no-op tracer makes them free. With ``tracing`` off (the default)
nothing is wrapped: the per-record path is unchanged.

>>> headers = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
>>> trace_id(headers)
'0af7651916cd43dd8448eb211c80319c'
>>> trace_id([("other", b"x")]) is None
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from streamflow.config import ConfigError
from streamflow.record import Headers

__all__ = [
    "MAX_LINKS",
    "TRACE_HEADERS",
    "batch_tracer",
    "output_tracer",
    "require_otel",
    "trace_id",
    "trace_outputs",
]

TRACE_HEADERS = ("traceparent", "tracestate")
MAX_LINKS = 128  # OpenTelemetry's default limit of links per span
Process = Callable[[list[Any]], None]
Emit = Callable[[str, "bytes | None", "bytes | None", int, "Headers | None"], None]


def trace_id(headers: Headers | None) -> str | None:
    """The trace id (32 hex digits) of a ``traceparent`` header, or None."""
    for name, value in headers or ():
        if name == "traceparent" and value:
            parts = value.decode("ascii", "replace").split("-")
            if len(parts) >= 4 and len(parts[1]) == 32:
                return parts[1]
    return None


def require_otel() -> None:
    """Raise ``ConfigError`` saying what to install when OpenTelemetry's API is missing."""
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError as e:
        msg = f"tracing needs OpenTelemetry's API: pip install 'streamflow[otel]' ({e})"
        raise ConfigError(msg) from e


def batch_tracer(process: Process, *, enabled: bool, processor: str, group_id: str,
                 tracer_provider: Any = None) -> Process:
    """``process`` (which takes a consumed batch), in a span per batch when ``enabled``.

    Off: ``process`` itself. ``tracer_provider`` defaults to the global one.
    """
    if not enabled:
        return process
    require_otel()
    from opentelemetry import propagate, trace
    from opentelemetry.propagators.textmap import Getter

    class HeaderGetter(Getter[Headers]):
        """Reads Kafka headers (``(name, bytes)`` pairs) for OpenTelemetry's propagators."""

        def get(self, carrier: Headers, key: str) -> list[str] | None:
            found = [v.decode("latin-1") for k, v in carrier if k == key and v is not None]
            return found or None

        def keys(self, carrier: Headers) -> list[str]:
            return [k for k, _ in carrier]

    tracer = trace.get_tracer("streamflow", tracer_provider=tracer_provider)
    getter = HeaderGetter()
    name = f"process {processor}"

    def contexts(msgs: Iterable[Any]) -> list[Any]:
        seen: dict[tuple[int, int], Any] = {}
        for m in msgs:
            headers = m.headers()
            if not headers or not any(k == "traceparent" for k, _ in headers):
                continue
            ctx = propagate.extract(headers, getter=getter)
            sc = trace.get_current_span(ctx).get_span_context()
            if sc.is_valid and (sc.trace_id, sc.span_id) not in seen:
                seen[(sc.trace_id, sc.span_id)] = ctx
                if len(seen) >= MAX_LINKS:
                    break
        return list(seen.values())

    def traced(msgs: list[Any]) -> None:
        if not msgs:
            process(msgs)
            return
        found = contexts(msgs)
        parent = found[0] if len(found) == 1 else None
        links = [] if parent is not None else [
            trace.Link(trace.get_current_span(c).get_span_context()) for c in found]
        attributes: dict[str, str | int] = {
            "messaging.system": "kafka", "messaging.operation.type": "process",
            "messaging.consumer.group.name": group_id,
            "messaging.batch.message_count": len(msgs)}
        with tracer.start_as_current_span(name, context=parent, kind=trace.SpanKind.CONSUMER,
                                          links=links, attributes=attributes):
            process(msgs)

    return traced


def output_tracer(enabled: bool) -> Callable[[Emit], Emit] | None:
    """``trace_outputs`` when tracing is ``enabled`` (``ConfigError`` without OpenTelemetry)."""
    if not enabled:
        return None
    require_otel()
    return trace_outputs


def trace_outputs(emit: Emit) -> Emit:
    """``emit`` (topic, key, value, timestamp, headers), continuing traces from the batch span.

    An output whose ``traceparent`` belongs to the trace of the current span (the batch span,
    when the batch held records of one trace) gets the span as its parent instead, so the next
    processor's span is a child of this one's. Other outputs are produced as they are.
    """
    from opentelemetry import trace

    get_current_span = trace.get_current_span

    def emit_(topic: str, key: bytes | None, value: bytes | None, ts: int,
              headers: Headers | None) -> None:
        if headers:
            sc = get_current_span().get_span_context()
            if sc.is_valid:
                headers = _reparented(headers, f"{sc.trace_id:032x}", sc.span_id,
                                      int(sc.trace_flags))
        emit(topic, key, value, ts, headers)

    return emit_


def _reparented(headers: Headers, trace_hex: str, span_id: int, flags: int) -> Headers:
    own = f"00-{trace_hex}-{span_id:016x}-{flags:02x}".encode()
    out: Headers = []
    for name, value in headers:
        if name == "traceparent" and trace_id([(name, value)]) == trace_hex:
            value = own
        out.append((name, value))
    return out
