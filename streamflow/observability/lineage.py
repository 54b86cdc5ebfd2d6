"""OpenLineage events of a processor, through the ``openlineage-python`` client.

A processor is an OpenLineage job named ``<topology>.<processor>`` in the ``lineage_namespace``
(default ``streamflow``); every topic it reads is an input dataset and every topic it writes
(sinks, repartition topics, store changelogs, the dead-letter topic under
``on_error="dead_letter"``) an output, named by the OpenLineage naming spec for Kafka:
namespace ``kafka://<host>:<port>`` of the first bootstrap server, name the topic. A topic
whose values have an Avro contract carries a ``schema`` facet with its fields and types.
Topics a ``to(router)`` picks at run time are not known in advance and are not listed.

With ``lineage = true`` a worker emits a ``START`` run event when its processor starts,
``RUNNING`` every ``lineage_interval_s``, and ``COMPLETE`` when it stops cleanly or ``FAIL``
(with the error) when it fails. The client configures its transport itself (console, file,
HTTP, Kafka, ...: ``openlineage.yml`` or the ``OPENLINEAGE_*`` variables). Events are sent
from a background thread: a backend that is down is logged once per interval and never holds
up or stops processing. ``streamflow lineage MODULE`` prints the static lineage (one
``JobEvent`` per processor).

>>> kafka_namespace("SASL_SSL://b1.example:9093,b2.example:9093")
'kafka://b1.example:9093'
>>> avro_fields({"type": "record", "name": "P", "fields": [
...     {"name": "id", "type": "string"},
...     {"name": "amount", "type": ["null", "double"]},
...     {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]})
[('id', 'string', ()), ('amount', 'union<null,double>', ()), ('at', 'timestamp-millis', ())]
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamflow.config import Config, ConfigError
from streamflow.serde import Avro, SerdeContext, SerdeError

if TYPE_CHECKING:
    from streamflow.dsl.topology import Processor

__all__ = [
    "PRODUCER",
    "PROVENANCE_HEADERS",
    "LineageEmitter",
    "ProcessorLineage",
    "avro_fields",
    "kafka_namespace",
    "start_lineage",
    "with_provenance",
]

log = logging.getLogger("streamflow.lineage")

THREAD = "streamflow-lineage"
# the HTTP transport's retries each log a warning through urllib3: the emitter reports its
# failures itself, once per interval
_QUIET = ("urllib3.connectionpool",)

PRODUCER = "urn:streamflow:0.1.0"  # the OpenLineage `producer` of streamflow's events
Field = tuple[str, str, tuple["Field", ...]]  # name, type, nested fields
# the input position each output carries with ``provenance_headers`` on (the names dead letters
# use for the same facts)
PROVENANCE_HEADERS = ("streamflow.source.topic", "streamflow.source.partition",
                      "streamflow.source.offset")


def kafka_namespace(bootstrap_servers: str) -> str:
    """``kafka://host:port`` of the first bootstrap server (the OpenLineage naming spec)."""
    first = bootstrap_servers.split(",")[0].strip()
    host = first.rpartition("://")[2]
    return f"kafka://{host if ':' in host else host + ':9092'}"


def avro_fields(schema: Any) -> list[Field]:
    """The fields of an Avro record schema as ``(name, type, nested fields)``.

    The type is the Avro type name, the logical type when there is one, ``array<...>``,
    ``map<...>`` or ``union<...>``; records nest their fields. Not a record: no fields.
    """
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return []
    return [_field(f["name"], f["type"]) for f in schema.get("fields", [])]


def _field(name: str, schema: Any) -> Field:
    nested = tuple(avro_fields(schema)) if isinstance(schema, dict) else ()
    return (name, _type_name(schema), nested)


def _type_name(schema: Any) -> str:
    if isinstance(schema, list):
        return f"union<{','.join(_type_name(s) for s in schema)}>"
    if not isinstance(schema, dict):
        return str(schema)  # a primitive or a named type defined earlier
    if schema.get("logicalType"):
        return str(schema["logicalType"])
    kind = schema.get("type")
    if kind == "array":
        return f"array<{_type_name(schema.get('items'))}>"
    if kind == "map":
        return f"map<{_type_name(schema.get('values'))}>"
    if isinstance(kind, (dict, list)):
        return _type_name(kind)
    return str(kind)


@dataclass(frozen=True)
class Topics:
    """The topics a processor reads and writes, in declaration order."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @classmethod
    def of(cls, processor: Processor) -> Topics:
        """What ``processor`` reads (sources, tables, repartition topics) and writes."""
        outputs = [*processor.sink_topics(), *processor.changelog_topics()]
        if processor.dead_letters:
            outputs.append(processor.dead_letter_topic)
        return cls(tuple(processor.source_topics()), tuple(dict.fromkeys(outputs)))


def require_openlineage() -> None:
    """Raise ``ConfigError`` saying what to install when openlineage-python is missing."""
    try:
        import openlineage.client  # noqa: F401
    except ImportError as e:
        msg = ("lineage needs the openlineage-python client: pip install 'streamflow[lineage]' "
               f"({e})")
        raise ConfigError(msg) from e


class ProcessorLineage:
    """Builds the OpenLineage events of one processor (the client's own event classes)."""

    def __init__(self, processor: Processor, config: Config) -> None:
        require_openlineage()
        self.processor = processor
        self.namespace = config.lineage_namespace
        self.job_name = f"{processor.topology.name}.{processor.name}"
        self.dataset_namespace = kafka_namespace(config.bootstrap_servers)
        self.topics = Topics.of(processor)
        ctx = SerdeContext(schemas_dir=Path(config.schemas_dir))
        self.fields = {t: self._fields(t, ctx) for t in (*self.topics.inputs,
                                                        *self.topics.outputs)}

    def _fields(self, topic: str, ctx: SerdeContext) -> list[Field] | None:
        declared = self.processor.topology.topics.get(topic)
        serde = declared.value if declared is not None else None
        if not isinstance(serde, Avro):
            return None
        try:
            return avro_fields(serde.schema_dict(ctx))
        except SerdeError as e:  # the contract cannot be read here: no schema facet
            log.debug("no schema facet for %s: %s", topic, e)
            return None

    def job(self) -> Any:
        """The OpenLineage job: ``<topology>.<processor>``, a streaming processor."""
        from openlineage.client.event_v2 import Job
        from openlineage.client.generated.job_type_job import JobTypeJobFacet

        return Job(namespace=self.namespace, name=self.job_name, facets={
            "jobType": JobTypeJobFacet(processingType="STREAMING", integration="STREAMFLOW",
                                       jobType="PROCESSOR", producer=PRODUCER)})

    def datasets(self) -> tuple[list[Any], list[Any]]:
        """The input and output datasets, with a schema facet where the topic has one."""
        from openlineage.client.event_v2 import InputDataset, OutputDataset

        def facets(topic: str) -> dict[str, Any]:
            fields = self.fields.get(topic)
            return {} if fields is None else {"schema": _schema_facet(fields)}

        ns = self.dataset_namespace
        return ([InputDataset(namespace=ns, name=t, facets=facets(t))
                 for t in self.topics.inputs],
                [OutputDataset(namespace=ns, name=t, facets=facets(t))
                 for t in self.topics.outputs])

    def job_event(self) -> Any:
        """The static lineage: a ``JobEvent`` with the job and its datasets."""
        from openlineage.client.event_v2 import JobEvent

        inputs, outputs = self.datasets()
        return JobEvent(eventTime=_now(), producer=PRODUCER, job=self.job(), inputs=inputs,
                        outputs=outputs)

    def run_event(self, state: str, run_id: str, error: BaseException | None = None) -> Any:
        """A ``RunEvent`` of run ``run_id`` in ``state`` (START, RUNNING, COMPLETE, FAIL)."""
        from openlineage.client.event_v2 import Run, RunEvent, RunState
        from openlineage.client.generated.error_message_run import ErrorMessageRunFacet
        from openlineage.client.generated.processing_engine_run import (
            ProcessingEngineRunFacet,
        )

        run_facets: dict[str, Any] = {"processing_engine": ProcessingEngineRunFacet(
            version=PRODUCER.rpartition(":")[2], name="streamflow", producer=PRODUCER)}
        if error is not None:
            run_facets["errorMessage"] = ErrorMessageRunFacet(
                message=f"{type(error).__name__}: {error}", programmingLanguage="python",
                stackTrace="".join(traceback.format_exception(error))[-8000:],
                producer=PRODUCER)
        inputs, outputs = self.datasets()
        return RunEvent(eventType=RunState(state), eventTime=_now(), producer=PRODUCER,
                        run=Run(runId=run_id, facets=run_facets), job=self.job(),
                        inputs=inputs, outputs=outputs)


def _schema_facet(fields: Iterable[Field]) -> Any:
    from openlineage.client.generated.schema_dataset import (
        SchemaDatasetFacet,
        SchemaDatasetFacetFields,
    )

    def convert(fs: Iterable[Field]) -> list[SchemaDatasetFacetFields]:
        return [SchemaDatasetFacetFields(name=n, type=t, fields=convert(sub))
                for n, t, sub in fs]

    return SchemaDatasetFacet(fields=convert(fields), producer=PRODUCER)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LineageEmitter:
    """Emits a processor's run events from a background thread.

    ``START`` at once, ``RUNNING`` every ``interval_s``, ``COMPLETE`` or ``FAIL`` on ``stop``.
    An event the client cannot send is logged (once per interval, with how many failed) and
    dropped: lineage never stops processing.
    """

    def __init__(self, lineage: ProcessorLineage, client: Any, interval_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from openlineage.client.uuid import generate_new_uuid

        self.lineage = lineage
        self.client = client
        self.interval_s = interval_s
        self.clock = clock
        self.run_id = str(generate_new_uuid())
        self.sent = 0
        self.failed = 0
        self._unreported = 0
        self._last_failed = False
        self._last_report: float | None = None
        self._wake = threading.Event()
        self._stopping: tuple[str, BaseException | None] | None = None
        self._thread = threading.Thread(target=self._run, name=THREAD, daemon=True)

    def start(self) -> LineageEmitter:
        """Emit ``START`` and then ``RUNNING`` periodically (in the background)."""
        for name in _QUIET:
            quiet = logging.getLogger(name)
            if not any(isinstance(f, _FromLineageThread) for f in quiet.filters):
                quiet.addFilter(_FromLineageThread())
        self._thread.start()
        return self

    def stop(self, error: BaseException | None = None, timeout_s: float = 5.0) -> None:
        """Emit ``COMPLETE`` (or ``FAIL`` with ``error``) and end the thread.

        Waits ``timeout_s`` for it at most, 1 s when the last event could not be sent (the
        backend is down: the worker's shutdown does not wait on it).
        """
        self._stopping = ("FAIL" if error is not None else "COMPLETE", error)
        self._wake.set()
        self._thread.join(min(timeout_s, 1.0) if self._last_failed else timeout_s)
        try:
            self.client.close(timeout_s)
        except Exception as e:
            log.debug("closing the OpenLineage client: %s", e)

    def _run(self) -> None:
        self.emit("START")
        while not self._wake.wait(self.interval_s):
            self.emit("RUNNING")
        assert self._stopping is not None
        self.emit(*self._stopping)

    def emit(self, state: str, error: BaseException | None = None) -> bool:
        """Send one run event; False (logged at most once per interval) when it failed."""
        try:
            self.client.emit(self.lineage.run_event(state, self.run_id, error))
        except Exception as e:
            self._last_failed = True
            self.failed += 1
            self._unreported += 1
            now = self.clock()
            if self._last_report is None or now - self._last_report >= self.interval_s:
                transport = getattr(getattr(self.client, "transport", None), "kind", "?")
                log.warning("lineage: cannot send %s event of %s through the %s transport "
                            "(%d failed since the last report); processing goes on: %s",
                            state, self.lineage.job_name, transport, self._unreported, e)
                self._last_report = now
                self._unreported = 0
            return False
        self._last_failed = False
        self.sent += 1
        return True


class _FromLineageThread(logging.Filter):
    """Drops the records logged on the lineage emitter's thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.threadName != THREAD


def start_lineage(processor: Processor, config: Config, client: Any = None
                  ) -> LineageEmitter | None:
    """Start emitting ``processor``'s run events when the ``lineage`` setting is on.

    ``client`` defaults to an ``OpenLineageClient`` configured as the client configures
    itself (``openlineage.yml``, ``OPENLINEAGE_*``). None when lineage is off.
    """
    if not config.lineage:
        return None
    lineage = ProcessorLineage(processor, config)  # raises when the client is missing
    if client is None:
        from openlineage.client import OpenLineageClient

        client = OpenLineageClient()
    return LineageEmitter(lineage, client, config.lineage_interval_s).start()


def with_provenance(process: Callable[[list[Any]], None], *, enabled: bool
                    ) -> Callable[[list[Any]], None]:
    """``process`` (which takes a consumed batch), giving each record provenance headers.

    With ``enabled`` every consumed record gets ``PROVENANCE_HEADERS`` (its topic, partition
    and offset, replacing any an upstream processor set) before it is processed, so every
    record produced from it carries them as it carries the other input headers. Off:
    ``process`` itself.
    """
    if not enabled:
        return process
    names = frozenset(PROVENANCE_HEADERS)
    topic_h, partition_h, offset_h = PROVENANCE_HEADERS

    def process_(msgs: list[Any]) -> None:
        for m in msgs:
            if m.error() is not None:
                continue
            kept = [h for h in m.headers() or () if h[0] not in names]
            m.set_headers([*kept, (topic_h, m.topic().encode()),
                           (partition_h, str(m.partition()).encode()),
                           (offset_h, str(m.offset()).encode())])
        process(msgs)

    return process_
