"""The settings model: every setting once, with its type, default, constraints and description.

Adding a setting is one field of :class:`Config`::

    my_setting_ms: int = Field(500, ge=0, description="what it does (0: off)")

It is then read from ``[streamflow] my_setting_ms`` in the file and ``STREAMFLOW_MY_SETTING_MS``
in the environment, typed and range-checked, listed by ``streamflow config show`` and in the
generated configuration reference (docs/hooks.py). Choices are ``Literal[...]`` types; numbers
take ``gt``/``ge``/``le`` bounds; the ``description`` is required (tests/unit/test_docs.py).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from streamflow.errors import ConfigurationError

__all__ = ["TABLES", "Config", "ConfigError", "did_you_mean", "explain"]

TABLES = ("kafka", "consumer", "producer", "schema_registry")


class ConfigError(ConfigurationError, ValueError):
    """The configuration is invalid; the message names the setting."""


# the sources of the values being validated by Config.build (for the error message)
_BUILDING: ContextVar[Mapping[str, str]] = ContextVar("streamflow_config_building",
                                                     default=MappingProxyType({}))


class Config(BaseModel):
    """Settings of a streamflow worker (immutable; :meth:`with_overrides` makes changed copies).

    ``Config(...)`` validates its arguments like the loader does (a :class:`ConfigError`
    naming the setting); :func:`streamflow.config.load_config` builds it from the defaults,
    the TOML file and ``STREAMFLOW_*`` variables and remembers where each value came from.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=False)

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", min_length=1,
        description="the Kafka brokers to connect to (librdkafka's bootstrap.servers)")
    commit_interval_ms: int = Field(
        1000, gt=0,
        description="at-least-once: how often a worker flushes stores and the producer, then "
        "commits offsets (a processor's commit_interval_ms= overrides it)")
    eos_commit_interval_ms: int = Field(
        100, gt=0,
        description="exactly-once: the longest a transaction stays open before it commits (a "
        "processor's commit_interval_ms= overrides it)")
    eos_min_commit_interval_ms: int = Field(
        10, ge=0,
        description="exactly-once also commits as soon as its input is drained, once the "
        "transaction is this old: at moderate rates outputs then wait ~one commit, not a whole "
        "interval")
    batch_size: int = Field(
        1000, gt=0,
        description="the most records a worker takes from its consumer per turn of its loop")
    store_cache_entries: int = Field(
        1_000_000, ge=0,
        description="decoded store values kept in memory per worker, shared by all its tasks' "
        "stores (the data itself lives in RocksDB; this only saves decoding on reads)")
    poll_timeout_ms: int = Field(
        100, ge=0,
        description="how long a worker's loop waits for the first record when none has arrived")
    restore_chunk_records: int = Field(
        20_000, gt=0,
        description="restores read changelog records in chunks between polls of the group "
        "consumer: at most this many per turn of the loop")
    restore_max_rate: int = Field(
        0, ge=0, description="the most changelog records per second a restore reads (0: no cap)")
    group_protocol: Literal["classic", "consumer"] = Field(
        "classic",
        description='"classic" (group_assignor: range for stateful processors, '
        'cooperative-sticky for stateless ones, unless set) or "consumer" (Kafka 4\'s KIP-848 '
        "protocol; group_assignor is the broker's: range for stateful processors, so "
        "co-partitioned inputs stay together, uniform for stateless)")
    group_assignor: str = Field(
        "", description="the partition assignor of the group (empty: chosen per processor, "
        "see group_protocol)")
    max_task_idle_ms: int = Field(
        0, ge=-1, description="a task reading several topics (a stream and a table it joins) "
        "takes their records in timestamp order; when one input has nothing buffered and nothing "
        "more to fetch, the task waits this long for it, then goes on (Kafka Streams' "
        "max.task.idle.ms; -1: never wait)")
    create_topics: bool = Field(
        True,
        description="a worker creates the missing topics it owns at start (never external "
        "ones); off: a missing topic is a configuration error")
    default_partitions: int = Field(
        1, ge=1, description="partitions of created topics that declare none")
    default_replication: int = Field(
        1, ge=1, description="replication factor of created topics that declare none")
    state_dir: str = Field(
        ".streamflow/state", min_length=1,
        description="where RocksDB state lives: <state_dir>/<topology>/<processor>/...")
    shutdown_timeout_s: float = Field(
        30.0, ge=0,
        description="how long a stopping worker (or the supervisor's children) may take to "
        "finish cleanly")
    startup_timeout_s: float = Field(
        30.0, gt=0,
        description="how long start-up waits for the cluster to answer (and topics to be "
        "described)")
    schemas_dir: str = Field(
        "schemas",
        description='the folder of Avro schema files (*.avsc) that sf.Avro("name") refers to')
    health_port: int = Field(
        0, ge=0, le=65535,
        description="the port of /healthz, /readyz, /status and /metrics (0: off); a supervisor "
        "(`run --workers N`, several processors) serves it for all its workers, on internal ports")
    metrics: bool = Field(
        True,
        description="per-output accounting behind /metrics: records produced, end-to-end "
        "latency (off: no /metrics either; docs/metrics.md)")
    statistics_interval_ms: int = Field(
        5000, ge=0,
        description="librdkafka statistics every this many ms: consumer lag, bytes, broker "
        "silence (0: none)")
    broker_timeout_s: float = Field(
        30.0, ge=0,
        description="/readyz turns 503 when the brokers have been silent this long (0: check off)")
    stall_timeout_s: float = Field(
        300.0, ge=0,
        description="/readyz turns 503 when a partition with lag has not progressed this long "
        "(0: check off)")
    max_error_ratio: float = Field(
        0.0, ge=0, lt=1,
        description="error budget: stop when more than this share of the records over "
        "error_window were skipped or dead-lettered (0: off)")
    error_window: str = Field(
        "1000", pattern=r"^\s*([0-9]*[1-9][0-9]*|[0-9]*\.?[0-9]+\s*[sS])\s*$",
        json_schema_extra={"expects": 'a number of records ("1000") or of seconds ("60s")'},
        description='the error budget\'s sliding window: records ("1000") or seconds ("60s")')
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="the level of the workers' logs on stderr (any case)")
    instance_id: str = Field(
        "",
        description="the worker's identity in its fleet (streamflow.runtime.identity): empty = "
        "POD_NAME, else the host name (plus the local worker index)")
    static_membership: Literal["auto", "on", "off"] = Field(
        "auto",
        description="join as a static group member (group.instance.id = the instance id): "
        '"auto" where the identity is stable (an explicit instance_id or POD_NAME), "on" or "off"')
    static_session_timeout_ms: int = Field(
        45000, gt=0,
        description="a static member's session timeout: long enough for a rolling restart of "
        "one worker, so it gets its own partitions back without a rebalance (a dynamic "
        "member: 10 s)")
    leave_on_shutdown: bool = Field(
        False,
        description="on a clean stop, a static member leaves the group at once (scale-down) "
        "instead of holding its partitions for the session timeout (a restart)")
    log_format: Literal["text", "json"] = Field(
        "text", description='"text", or "json": one JSON object per line (docs/observability.md)')
    client_log_interval_s: float = Field(
        10.0, ge=0,
        description="librdkafka repeats a failing connection's lines (FAIL, ERROR) many times "
        "a second: one line per (facility, broker) and interval, with how many were held back")
    tracing: bool = Field(
        False, description="a span per processed batch through OpenTelemetry (streamflow[otel])")
    lineage: bool = Field(
        False, description="OpenLineage run events (streamflow[lineage]; openlineage.yml)")
    lineage_namespace: str = Field(
        "streamflow", min_length=1, description="the OpenLineage job namespace")
    lineage_interval_s: float = Field(
        60.0, gt=0, description="a RUNNING lineage event this often")
    provenance_headers: bool = Field(
        False, description="outputs carry their input's topic, partition, offset")
    name_suffix: str = Field(
        "", description="appended to every topic and group name and to the topology's name by "
        "the commands that load a topology (Topology.with_name_suffix): unique names per test "
        "or per branch")
    audit_log: str = Field(
        ".streamflow/audit.jsonl", description="the audit trail of admin commands (topics "
        "create/delete, schemas register, acls --apply, reset, dlq replay): a JSON-lines file "
        "appended to (\"\" = off)")
    encryption_keys: str = Field(
        "", description="field-level encryption keys (Avro/Json encrypt=[...]): a key file "
        "(`streamflow keys new FILE`, owner-only) or a key-provider plug-in as module:attribute "
        "(\"\" = no key: encrypted fields pass through as ciphertext)")
    kafka: dict[str, Any] = Field(
        default_factory=dict, description="librdkafka settings for every client (SASL, TLS, ...)")
    consumer: dict[str, Any] = Field(
        default_factory=dict, description="librdkafka settings for the consumer only")
    producer: dict[str, Any] = Field(
        default_factory=dict, description="librdkafka settings for the producer only")
    schema_registry: dict[str, Any] = Field(
        default_factory=dict,
        description="schema-registry client settings; `url` is the registry's address")

    # where each value came from: setting (or "kafka.<key>" for a table's key) -> source
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise ConfigError(explain(e, _BUILDING.get())) from None

    @classmethod
    def build(cls, values: dict[str, Any], sources: dict[str, str]) -> Config:
        """A validated ``Config`` from ``values``, remembering each one's source.

        ``sources`` maps a setting (or ``"kafka.<key>"``) to where it came from (``"env
        STREAMFLOW_BATCH_SIZE"``, ``"file streamflow.toml [streamflow] batch_size"``,
        ``"flag"``); a bad value's error names it.
        """
        token = _BUILDING.set(sources)
        try:
            config = cls(**values)
        finally:
            _BUILDING.reset(token)
        config._sources = sources
        return config

    @model_validator(mode="before")
    @classmethod
    def _strict_inputs(cls, data: Any) -> Any:
        """No booleans for numbers (TOML ``true`` is not 1), surrounding blanks ignored."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, value in data.items():
            field = cls.model_fields.get(name)
            if field is None:
                continue
            if isinstance(value, str) and field.annotation is not str:
                out[name] = value.strip()
            elif isinstance(value, bool) and field.annotation in (int, float):
                out[name] = str(value).lower()  # fails as "must be an integer / a number"
        return out

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def __eq__(self, other: object) -> bool:
        """Equal settings (wherever they came from)."""
        if not isinstance(other, Config):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # tables are dicts, like the dataclass it was

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_"):
            msg = f"settings are immutable: config.with_overrides({name}=...) makes a copy"
            raise AttributeError(msg)
        super().__setattr__(name, value)

    @property
    def registry_url(self) -> str | None:
        """The schema registry URL, if configured."""
        url = self.schema_registry.get("url")
        return str(url) if url else None

    def client_conf(self) -> dict[str, Any]:
        """The librdkafka settings shared by every client."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.kafka}

    def with_overrides(self, **changes: Any) -> Config:
        """A copy with some settings changed (validated; their source is ``"flag"``)."""
        sources = {**self._sources, **dict.fromkeys(changes, "flag")}
        return type(self).build({**self.__dict__, **changes}, sources)

    def source_of(self, key: str) -> str:
        """Where a setting's value came from (``key``: a setting or ``"kafka.<key>"``).

        ``"default"``, ``"file <path> [section] key"``, ``"env STREAMFLOW_..."`` or ``"flag"``.
        """
        return self._sources.get(key, "default")


_KINDS = {
    "int": "an integer", "float": "a number", "bool": "true or false", "string": "a string",
    "dict": "a table of settings",
}
_BOUNDS = {
    "greater_than": "greater than {gt}", "greater_than_equal": "at least {ge}",
    "less_than": "below {lt}", "less_than_equal": "at most {le}",
    "string_too_short": "not empty",
}


def _want(error: Any) -> str:
    """What a failed value must be, from a pydantic error."""
    kind: str = error["type"]
    ctx = error.get("ctx") or {}
    field = Config.model_fields.get(str(error["loc"][0])) if error["loc"] else None
    if kind == "literal_error" and field is not None:
        return "one of " + ", ".join(str(a) for a in get_args(field.annotation))
    if kind in _BOUNDS:
        return _BOUNDS[kind].format(**{k: f"{v:g}" if isinstance(v, int | float) else v
                                       for k, v in ctx.items()})
    extra = field.json_schema_extra if field is not None else None
    if kind == "string_pattern_mismatch" and isinstance(extra, dict) and "expects" in extra:
        return str(extra["expects"])
    prefix = kind.split("_")[0]
    if prefix in _KINDS:
        return _KINDS[prefix]
    return str(error["msg"]).removeprefix("Input should be ").removeprefix("Value error, ")


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean <the closest of known>?"``, or nothing when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else ""


def explain(error: ValidationError, sources: Mapping[str, str]) -> str:
    """One line per bad setting: ``name must be <what>, got <value> (<source>)``."""
    lines = []
    for e in error.errors():
        name = ".".join(str(p) for p in e["loc"]) or "settings"
        source = sources.get(name) or sources.get(str(e["loc"][0]) if e["loc"] else "", "")
        where = f" ({source})" if source else ""
        if e["type"] == "extra_forbidden":
            lines.append(f"{name} is not a setting{where}{did_you_mean(name, Config.model_fields)}")
            continue
        lines.append(f"{name} must be {_want(e)}, got {e['input']!r}{where}")
    return "; ".join(lines)
