"""Configuration: defaults, then an optional TOML file, then ``STREAMFLOW_*`` variables.

The file::

    [streamflow]
    bootstrap_servers = "broker:9092"
    commit_interval_ms = 500

    [kafka]                      # librdkafka settings for every client (SASL, TLS, ...)
    "security.protocol" = "SASL_SSL"

    [consumer]                   # librdkafka settings for the consumer only
    [producer]                   # ... and the producer only

    [schema_registry]
    url = "https://registry:8081"

Environment: ``STREAMFLOW_<SETTING>`` for the ``[streamflow]`` settings (e.g.
``STREAMFLOW_BOOTSTRAP_SERVERS``), ``STREAMFLOW_KAFKA_<KEY>`` for librdkafka keys with dots
as underscores (``STREAMFLOW_KAFKA_SASL_MECHANISM=SCRAM-SHA-512``), likewise
``STREAMFLOW_CONSUMER_*``, ``STREAMFLOW_PRODUCER_*`` and ``STREAMFLOW_SCHEMA_REGISTRY_*``
(``STREAMFLOW_SCHEMA_REGISTRY_URL``). ``STREAMFLOW_CONFIG`` names the file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from streamflow.errors import ConfigurationError


class ConfigError(ConfigurationError, ValueError):
    """The configuration is invalid; the message names the setting."""


@dataclass(frozen=True)
class Config:
    """Settings of a streamflow worker."""

    # the Kafka brokers to connect to (librdkafka's bootstrap.servers)
    bootstrap_servers: str = "127.0.0.1:9092"
    # at-least-once: how often a worker flushes stores and the producer, then commits offsets
    # (a processor's commit_interval_ms= overrides it)
    commit_interval_ms: int = 1000
    # exactly-once: the longest a transaction stays open before it commits
    eos_commit_interval_ms: int = 100
    # exactly-once also commits as soon as its input is drained, once the transaction is
    # this old: at moderate rates outputs then wait ~one commit, not a whole interval
    eos_min_commit_interval_ms: int = 10
    # the most records a worker takes from its consumer per turn of its loop
    batch_size: int = 1000
    # decoded store values kept in memory per worker, shared by all its tasks' stores (the
    # data itself lives in RocksDB; this only saves decoding on reads)
    store_cache_entries: int = 1_000_000
    # how long a worker's loop waits for the first record when none has arrived
    poll_timeout_ms: int = 100
    # restores and rebalances (issue 19). Restores read changelog records in chunks between
    # polls of the group consumer: at most restore_chunk_records per turn of the loop, and at
    # most restore_max_rate records/s (0: no cap). group_protocol "classic" (group_assignor:
    # range for stateful processors, cooperative-sticky for stateless ones, unless set) or
    # "consumer" (Kafka 4's KIP-848 protocol; group_assignor is the broker's: range for
    # stateful processors, so co-partitioned inputs stay together, uniform for stateless)
    restore_chunk_records: int = 20_000
    restore_max_rate: int = 0
    group_protocol: str = "classic"
    group_assignor: str = ""
    # a task reading several topics (a stream and a table it joins) takes their records in
    # timestamp order; when one input has nothing buffered and nothing more to fetch, the task
    # waits this long for it, then goes on (Kafka Streams' max.task.idle.ms; -1: never wait)
    max_task_idle_ms: int = 0
    # a worker creates the missing topics it owns at start (never external ones); off: a
    # missing topic is a configuration error
    create_topics: bool = True
    # partitions of created topics that declare none
    default_partitions: int = 1
    # replication factor of created topics that declare none
    default_replication: int = 1
    # where RocksDB state lives: <state_dir>/<topology>/<processor>/...
    state_dir: str = ".streamflow/state"
    # how long a stopping worker (or the supervisor's children) may take to finish cleanly
    shutdown_timeout_s: float = 30.0
    # how long start-up waits for the cluster to answer (and topics to be described)
    startup_timeout_s: float = 30.0
    # the folder of Avro schema files (*.avsc) that sf.Avro("name") refers to
    schemas_dir: str = "schemas"
    # the port of /healthz, /readyz, /status and /metrics (0: off); a supervisor (`run
    # --workers N`, several processors) serves it for all its workers, on internal ports
    health_port: int = 0
    # per-output accounting behind /metrics: records produced, end-to-end latency (off: no
    # /metrics either; docs/metrics.md)
    metrics: bool = True
    # librdkafka statistics every this many ms: consumer lag, bytes, broker silence (0: none)
    statistics_interval_ms: int = 5000
    # /readyz turns 503 when the brokers have been silent this long (0: check off)
    broker_timeout_s: float = 30.0
    # /readyz turns 503 when a partition with lag has not progressed this long (0: check off)
    stall_timeout_s: float = 300.0
    # error budget: stop when more than this share of the records over error_window were
    # skipped or dead-lettered (0: off)
    max_error_ratio: float = 0.0
    # the error budget's sliding window: records ("1000") or seconds ("60s")
    error_window: str = "1000"
    # the level of the workers' logs on stderr: DEBUG, INFO, WARNING or ERROR
    log_level: str = "INFO"
    # the worker's identity in its fleet (streamflow.runtime.identity): "" = POD_NAME, else
    # the host name (plus the local worker index)
    instance_id: str = ""
    # join as a static group member (group.instance.id = the instance id): "auto" where the
    # identity is stable (an explicit instance_id or POD_NAME), "on" or "off"
    static_membership: str = "auto"
    # a static member's session timeout: long enough for a rolling restart of one worker, so
    # it gets its own partitions back without a rebalance (a dynamic member: 10 s)
    static_session_timeout_ms: int = 45000
    # on a clean stop, a static member leaves the group at once (scale-down) instead of
    # holding its partitions for the session timeout (a restart)
    leave_on_shutdown: bool = False
    # -- logs, trace context and lineage (docs/observability.md) --
    log_format: str = "text"  # "text", or "json": one JSON object per line
    # librdkafka repeats a failing connection's lines (FAIL, ERROR) many times a second: one
    # line per (facility, broker) and interval, with how many were held back
    client_log_interval_s: float = 10.0
    tracing: bool = False  # a span per processed batch through OpenTelemetry (streamflow[otel])
    lineage: bool = False  # OpenLineage run events (streamflow[lineage]; openlineage.yml)
    lineage_namespace: str = "streamflow"  # the OpenLineage job namespace
    lineage_interval_s: float = 60.0  # a RUNNING event this often
    provenance_headers: bool = False  # outputs carry their input's topic, partition, offset
    kafka: dict[str, Any] = field(default_factory=dict)
    consumer: dict[str, Any] = field(default_factory=dict)
    producer: dict[str, Any] = field(default_factory=dict)
    schema_registry: dict[str, Any] = field(default_factory=dict)

    @property
    def registry_url(self) -> str | None:
        """The schema registry URL, if configured."""
        url = self.schema_registry.get("url")
        return str(url) if url else None

    def client_conf(self) -> dict[str, Any]:
        """The librdkafka settings shared by every client."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.kafka}

    def with_overrides(self, **changes: Any) -> Config:
        """A copy with some settings changed."""
        return replace(self, **changes)


_TABLES = ("kafka", "consumer", "producer", "schema_registry")
_SCALARS = {f.name: f for f in fields(Config) if f.name not in _TABLES}


_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_CHOICES = {"log_format": ("text", "json")}


def _coerce(name: str, raw: Any, source: str) -> Any:
    default = getattr(Config(), name)
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            low = str(raw).strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
        elif isinstance(raw, bool):
            pass  # TOML true/false is not a number or a string
        elif kind is int:
            if isinstance(raw, float) and raw.is_integer():
                return int(raw)
            if isinstance(raw, int | str):
                return int(raw)
        elif kind is float:
            if isinstance(raw, int | float | str):
                return float(raw)
        elif isinstance(raw, str) and raw in _CHOICES.get(name, (raw,)):
            return raw
    except ValueError:
        pass
    want = f"one of {', '.join(_CHOICES[name])}" if name in _CHOICES else _KINDS[kind]
    msg = f"setting {name!r} ({source}) must be {want}, got {raw!r}"
    raise ConfigError(msg)


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Build the configuration from defaults, the TOML file and the environment."""
    env = os.environ if env is None else env
    path = path or env.get("STREAMFLOW_CONFIG") or None
    values: dict[str, Any] = {}
    tables: dict[str, dict[str, Any]] = {t: {} for t in _TABLES}
    if path:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            msg = f"config file {str(p)!r} does not exist"
            raise ConfigError(msg) from None
        except tomllib.TOMLDecodeError as e:
            msg = f"config file {str(p)!r} is not valid TOML: {e}"
            raise ConfigError(msg) from None
        unknown = set(data) - {"streamflow", *_TABLES}
        if unknown:
            msg = (
                f"unknown section(s) {sorted(unknown)} in {str(p)!r}; known: "
                f"[streamflow], {', '.join(f'[{t}]' for t in _TABLES)}"
            )
            raise ConfigError(msg)
        for section in ("streamflow", *_TABLES):
            if not isinstance(data.get(section, {}), dict):
                msg = f"{section!r} in {str(p)!r} must be a [{section}] table of settings"
                raise ConfigError(msg)
        for key, val in data.get("streamflow", {}).items():
            if key not in _SCALARS:
                msg = (
                    f"unknown setting {key!r} in [streamflow] of {str(p)!r}; "
                    f"known: {', '.join(sorted(_SCALARS))}"
                )
                raise ConfigError(msg)
            values[key] = _coerce(key, val, f"[streamflow] of {str(p)!r}")
        for t in _TABLES:
            tables[t].update({str(k): v for k, v in data.get(t, {}).items()})
    for var, val in env.items():
        if not var.startswith("STREAMFLOW_") or var in ("STREAMFLOW_CONFIG",):
            continue
        rest = var[len("STREAMFLOW_"):]
        for t in _TABLES:
            prefix = t.upper() + "_"
            if rest.startswith(prefix):
                tables[t][rest[len(prefix):].lower().replace("_", ".")] = val
                break
        else:
            key = rest.lower()
            if key in _SCALARS:
                values[key] = _coerce(key, val, f"${var}")
    return Config(**values, **tables)  # type: ignore[arg-type]
