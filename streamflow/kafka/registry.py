"""Schema-registry client: confluent-kafka's ``SchemaRegistryClient`` behind a small API.

This is the only module that imports ``confluent_kafka.schema_registry``. It adds what the
serdes and the CLI need on top of the confluent client:

- one retry loop with exponential backoff (and jitter) for transient failures — connection
  refused, timeouts, HTTP 408/429/5xx — ending in :class:`RegistryUnavailable`, whose
  message names the URL and what to check;
- registry answers as plain frozen data (:class:`RegisteredSchema`) and errors as a few
  exception types (:class:`SchemaNotFound`, :class:`SchemaRejected`, :class:`RegistryError`)
  carrying the registry's own message;
- a ``mock://`` URL gives confluent's in-memory mock registry, for unit tests.

>>> client = make_registry_client({"url": "mock://doc"})
>>> reg = client.register("payments-value", '{"type": "string"}')
>>> client.schema_by_id(reg.schema_id)
'{"type": "string"}'
"""

from __future__ import annotations

import importlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError

from streamflow.config.secret_settings import without_password
from streamflow.errors import EXIT_UNREACHABLE, StreamflowError

log = logging.getLogger("streamflow.registry")


def _http_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(transport errors, unsupported-protocol errors) of httpx2 and/or httpx.

    confluent-kafka uses httpx2 when installed and httpx otherwise; accept both.
    """
    transport: list[type[BaseException]] = [ConnectionError, TimeoutError]
    unsupported: list[type[BaseException]] = []
    for name in ("httpx2", "httpx"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        transport.append(mod.TransportError)
        unsupported.append(mod.UnsupportedProtocol)
    return tuple(transport), tuple(unsupported)


_TRANSPORT_ERRORS, _UNSUPPORTED_PROTOCOL = _http_errors()

__all__ = [
    "COMPATIBILITY_LEVELS",
    "CompatibilityResult",
    "RegisteredSchema",
    "RegistryClient",
    "RegistryError",
    "RegistryUnavailable",
    "RetryPolicy",
    "SchemaNotFound",
    "SchemaRejected",
    "as_registry_client",
    "make_registry_client",
]

T = TypeVar("T")

COMPATIBILITY_LEVELS = (
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
)
_DEFAULT_LEVEL = "BACKWARD"  # what Confluent Schema Registry and Apicurio ccompat default to
_RETRIABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})

# confluent's keys that we honour ourselves (confluent's own retry loop is switched off)
_RETRY_KEYS = ("max.retries", "retries.wait.ms", "retries.max.wait.ms")
_INT_KEYS = ("timeout", "cache.capacity", "cache.latest.ttl.sec")


class RegistryError(StreamflowError):
    """The schema registry answered with an error.

    ``streamflow`` exits 4, as when it is unreachable: the contracts could not be checked.

    ``status`` is the HTTP status (or ``None`` when there was no answer), ``code`` the
    registry's error code (e.g. 40401 subject not found, 409 incompatible schema), and
    ``registry_message`` the registry's own text.
    """

    exit_code = EXIT_UNREACHABLE

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        registry_message: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.registry_message = registry_message


class RegistryUnavailable(RegistryError):
    """The registry could not be reached (or kept failing) after all retries.

    This is an outage, not bad data: callers should stop or retry later, never skip records.
    """


class SchemaNotFound(RegistryError):
    """The subject, version or schema id does not exist in the registry."""


class SchemaRejected(RegistryError):
    """The registry refused a schema: incompatible with the subject's history, or invalid."""


@dataclass(frozen=True)
class RegisteredSchema:
    """A schema as registered under a subject: its text, global id and version."""

    schema_str: str
    schema_id: int
    version: int | None = None
    subject: str | None = None
    schema_type: str = "AVRO"


@dataclass(frozen=True)
class CompatibilityResult:
    """The registry's verdict on a candidate schema, with its messages when it gave any."""

    is_compatible: bool
    messages: tuple[str, ...] = ()


@dataclass(frozen=True)
class RetryPolicy:
    """How transient registry failures are retried.

    ``attempts`` is the total number of tries; the wait before try *n* (n ≥ 2) is a random
    value up to ``min(max_backoff_s, initial_backoff_s * 2 ** (n - 2))`` ("full jitter").

    >>> RetryPolicy(attempts=3, initial_backoff_s=0.05).max_total_wait_s()
    0.15
    """

    attempts: int = 5
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 5.0

    def backoff(self, retry: int) -> float:
        """Upper bound of the wait before retry number ``retry`` (0-based)."""
        return float(min(self.max_backoff_s, self.initial_backoff_s * (2.0**retry)))

    def max_total_wait_s(self) -> float:
        """The longest the policy can sleep in total (excluding request time)."""
        return round(sum(self.backoff(i) for i in range(max(0, self.attempts - 1))), 6)

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> RetryPolicy:
        """Read confluent's keys ``max.retries``, ``retries.wait.ms``, ``retries.max.wait.ms``."""
        default = cls()
        retries = _num(conf, "max.retries", default.attempts - 1)
        wait_ms = _num(conf, "retries.wait.ms", default.initial_backoff_s * 1000)
        max_ms = _num(conf, "retries.max.wait.ms", default.max_backoff_s * 1000)
        return cls(attempts=int(retries) + 1, initial_backoff_s=wait_ms / 1000,
                   max_backoff_s=max_ms / 1000)


def _num(conf: Mapping[str, Any], key: str, default: float) -> float:
    value = conf.get(key)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        msg = f"schema registry setting {key!r} must be a number, got {value!r}"
        raise ValueError(msg) from None


def make_registry_client(
    conf: Mapping[str, Any], *, retry: RetryPolicy | None = None
) -> RegistryClient:
    """Create a registry client from settings (the ``[schema_registry]`` config table).

    Keys are confluent's: ``url`` (required; comma-separated for several; ``mock://name``
    for the in-memory mock), ``basic.auth.user.info`` (``user:password``),
    ``ssl.ca.location``, ``ssl.certificate.location``, ``ssl.key.location``,
    ``ssl.key.password``, ``timeout`` (seconds per request), ``proxy``; and the retry
    settings ``max.retries`` (default 4), ``retries.wait.ms`` (first backoff, default 200)
    and ``retries.max.wait.ms`` (default 5000), unless ``retry`` is given. Values may be
    strings (from environment variables); numbers are converted.

    >>> make_registry_client({"url": "mock://example"}).url
    'mock://example'
    """
    raw = {str(k): v for k, v in conf.items() if v is not None and v != ""}
    url = raw.get("url")
    if not url:
        msg = (
            "no schema registry URL: set schema_registry.url in the config file or "
            "STREAMFLOW_SCHEMA_REGISTRY_URL"
        )
        raise ValueError(msg)
    policy = retry if retry is not None else RetryPolicy.from_conf(raw)
    confluent_conf: dict[str, Any] = {k: v for k, v in raw.items() if k not in _RETRY_KEYS}
    for key in _INT_KEYS:
        if key in confluent_conf:
            confluent_conf[key] = _num(confluent_conf, key, 0)
    confluent_conf.setdefault("timeout", 10)
    confluent_conf["max.retries"] = 0  # retries are ours, so their total time is known
    try:
        client = SchemaRegistryClient.new_client(confluent_conf)
    except (ValueError, TypeError, OSError) as e:  # OSError: unreadable certificate files
        msg = f"invalid schema registry settings for {without_password(str(url), '***')}: {e}"
        raise ValueError(msg) from e
    return RegistryClient(client, url=str(url), retry=policy)


def as_registry_client(obj: Any) -> RegistryClient:
    """Return ``obj`` as a :class:`RegistryClient`, wrapping a bare confluent client."""
    if isinstance(obj, RegistryClient):
        return obj
    if isinstance(obj, SchemaRegistryClient):
        conf: Any = getattr(obj, "config", dict)
        return RegistryClient(obj, url=str((conf() or {}).get("url", "?")))
    msg = (
        f"expected a streamflow RegistryClient or a confluent SchemaRegistryClient, "
        f"got {type(obj).__name__}"
    )
    raise TypeError(msg)


class RegistryClient:
    """A schema-registry client with retries, plain results and explicit errors.

    Thread-safe as far as the confluent client is; schemas by id are cached forever (ids
    are immutable), everything else is asked of the registry each time.
    """

    def __init__(
        self,
        client: Any,
        *,
        url: str,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self.url = without_password(url, "***")  # for messages: no password of the address
        self.retry = retry if retry is not None else RetryPolicy()
        self._sleep = sleep
        self._by_id: dict[int, str] = {}
        self._lock = threading.Lock()
        self._mock_levels: dict[str | None, str] = {}

    def __repr__(self) -> str:
        return f"RegistryClient({self.url!r})"

    @property
    def is_mock(self) -> bool:
        """True for confluent's in-memory ``mock://`` registry."""
        return self.url.startswith("mock://")

    @property
    def confluent_client(self) -> Any:
        """The underlying confluent ``SchemaRegistryClient`` (for confluent serializers)."""
        return self._client

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.close()

    # -- reads ---------------------------------------------------------------------------

    def schema_by_id(self, schema_id: int) -> str:
        """The schema text registered with global id ``schema_id``.

        Raises :class:`SchemaNotFound` if the registry has no such id.
        """
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        schema = self._call(f"get schema id {schema_id}", self._client.get_schema, schema_id)
        text = str(schema.schema_str)
        with self._lock:
            self._by_id[schema_id] = text
        return text

    def lookup(self, subject: str, schema_str: str) -> RegisteredSchema | None:
        """The registration of ``schema_str`` under ``subject``, or None if not registered."""
        try:
            reg = self._call(
                f"look up schema under subject {subject!r}",
                self._client.lookup_schema, subject, Schema(schema_str, "AVRO"),
            )
        except SchemaNotFound:
            return None
        return self._plain(reg, subject, schema_str)

    def latest(self, subject: str) -> RegisteredSchema | None:
        """The latest version registered under ``subject``, or None if the subject is empty."""
        try:
            reg = self._call(
                f"get latest version of subject {subject!r}",
                self._client.get_latest_version, subject,
            )
        except SchemaNotFound:
            return None
        return self._plain(reg, subject)

    def versions(self, subject: str) -> list[RegisteredSchema]:
        """All live versions of ``subject``, oldest first (empty if the subject is unknown)."""
        try:
            numbers = self._call(
                f"list versions of subject {subject!r}", self._client.get_versions, subject
            )
        except SchemaNotFound:
            return []
        out = []
        for number in sorted(int(n) for n in numbers):
            reg = self._call(
                f"get version {number} of subject {subject!r}",
                self._client.get_version, subject, number,
            )
            out.append(self._plain(reg, subject))
        return out

    def subjects(self) -> list[str]:
        """All subjects in the registry."""
        return [str(s) for s in self._call("list subjects", self._client.get_subjects)]

    def compatibility(self, subject: str | None = None) -> str:
        """The compatibility level of ``subject``, falling back to the global level.

        With ``subject=None``, the global level. The mock registry reports ``BACKWARD``
        unless :meth:`set_compatibility` was called.
        """
        if self.is_mock:
            return self._mock_levels.get(subject) or self._mock_levels.get(None) or _DEFAULT_LEVEL
        if subject is not None:
            try:
                level = self._call(
                    f"get compatibility of subject {subject!r}",
                    self._client.get_compatibility, subject,
                )
                if level:
                    return str(level).upper()
            except SchemaNotFound:
                pass  # no subject-level setting: the global one applies
        level = self._call("get global compatibility", self._client.get_compatibility)
        return str(level or _DEFAULT_LEVEL).upper()

    # -- writes ----------------------------------------------------------------------------

    def register(self, subject: str, schema_str: str) -> RegisteredSchema:
        """Register ``schema_str`` under ``subject`` (idempotent) and return its registration.

        Raises :class:`SchemaRejected` with the registry's message when the schema is
        incompatible with the subject's history or invalid.
        """
        reg = self._call(
            f"register schema under subject {subject!r}",
            self._client.register_schema_full_response, subject, Schema(schema_str, "AVRO"),
        )
        plain = self._plain(reg, subject, schema_str)
        with self._lock:
            self._by_id.setdefault(plain.schema_id, schema_str)
        if plain.version is None:
            found = self.lookup(subject, schema_str)
            if found is not None:
                plain = found
        return plain

    def set_compatibility(self, level: str, subject: str | None = None) -> None:
        """Set the compatibility level of ``subject`` (or the global level)."""
        level = level.upper()
        if level not in COMPATIBILITY_LEVELS:
            known = ", ".join(COMPATIBILITY_LEVELS)
            msg = f"unknown compatibility level {level!r}; use one of {known}"
            raise ValueError(msg)
        if self.is_mock:
            self._mock_levels[subject] = level
            return
        self._call(
            f"set compatibility of {subject or 'the registry'}",
            self._client.set_compatibility, subject, level,
        )

    def test_compatibility(self, subject: str, schema_str: str) -> CompatibilityResult:
        """Ask the registry whether ``schema_str`` could be registered under ``subject``.

        Tests against the versions the subject's level requires (latest, or all for the
        transitive levels). A subject with no versions accepts anything. The mock registry
        does not check compatibility (it always answers compatible, saying so).
        """
        if self.is_mock:
            return CompatibilityResult(True, ("the mock registry does not check compatibility",))
        transitive = self.compatibility(subject).endswith("_TRANSITIVE")
        path = "versions" if transitive else "versions/latest"
        body = Schema(schema_str, "AVRO").to_dict()
        rest = getattr(self._client, "_rest_client", None)
        try:
            if rest is not None:  # verbose answers carry the reasons; the public API drops them
                response = self._call(
                    f"test compatibility under subject {subject!r}", rest.post,
                    f"compatibility/subjects/{_quote(subject)}/{path}?verbose=true", body,
                )
                messages = tuple(str(m) for m in (response or {}).get("messages") or ())
                return CompatibilityResult(bool((response or {}).get("is_compatible")), messages)
            ok = self._call(
                f"test compatibility under subject {subject!r}",
                self._client.test_compatibility, subject, Schema(schema_str, "AVRO"),
            )
            return CompatibilityResult(bool(ok))
        except SchemaNotFound:
            return CompatibilityResult(True, (f"subject {subject!r} has no versions yet",))

    def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        """Delete ``subject`` (soft, or hard with ``permanent``); returns deleted versions."""
        try:
            versions = self._call(
                f"delete subject {subject!r}", self._client.delete_subject, subject, False
            )
            if permanent:
                versions = self._call(
                    f"permanently delete subject {subject!r}",
                    self._client.delete_subject, subject, True,
                )
        except SchemaNotFound:
            return []
        return [int(v) for v in versions or ()]

    # -- plumbing --------------------------------------------------------------------------

    @staticmethod
    def _plain(reg: Any, subject: str, schema_str: str | None = None) -> RegisteredSchema:
        schema = getattr(reg, "schema", None)
        text = getattr(schema, "schema_str", None) or schema_str or ""
        stype = getattr(schema, "schema_type", None) or "AVRO"
        return RegisteredSchema(
            schema_str=str(text),
            schema_id=int(reg.schema_id),
            version=int(reg.version) if getattr(reg, "version", None) is not None else None,
            subject=str(getattr(reg, "subject", None) or subject),
            schema_type=str(stype),
        )

    def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn``, retrying transient failures; map failures to our exceptions."""
        last: BaseException | None = None
        last_text = ""
        for attempt in range(max(1, self.retry.attempts)):
            if attempt:
                delay = random.uniform(0, self.retry.backoff(attempt - 1))
                log.debug("registry %s: retry %d in %.3fs after %s", self.url, attempt, delay,
                          last_text)
                self._sleep(delay)
            try:
                return fn(*args)
            except SchemaRegistryError as e:
                status = int(e.http_status_code) if e.http_status_code is not None else None
                if status in _RETRIABLE_STATUS:
                    last, last_text = e, f"HTTP {status}: {e.error_message}"
                    continue
                raise self._error(what, e) from e
            except Exception as e:
                if not _is_transport_error(e):
                    raise
                last, last_text = e, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        msg = (
            f"schema registry at {self.url} is unavailable: could not {what} after "
            f"{self.retry.attempts} attempt(s); last error: {last_text}. Check that the "
            "registry is running and reachable from here, the URL (schema_registry.url / "
            "STREAMFLOW_SCHEMA_REGISTRY_URL), and its TLS and credential settings "
            "(ssl.ca.location, basic.auth.user.info)."
        )
        raise RegistryUnavailable(msg, status=getattr(last, "http_status_code", None)) from last

    def _error(self, what: str, e: Any) -> RegistryError:
        status = int(e.http_status_code) if e.http_status_code is not None else None
        code = int(e.error_code) if e.error_code is not None else None
        text = str(e.error_message or "")
        where = f"schema registry at {self.url}"
        if status == 404:
            return SchemaNotFound(f"{where}: could not {what}: {text}", status=status, code=code,
                                  registry_message=text)
        if status in (409, 422):
            return SchemaRejected(f"{where} refused to {what}: {text}", status=status,
                                  code=code, registry_message=text)
        if status in (401, 403):
            return RegistryError(
                f"{where} denied access ({status}) when trying to {what}: {text}. Check "
                "basic.auth.user.info (user:password) and the account's permissions.",
                status=status, code=code, registry_message=text,
            )
        return RegistryError(f"{where}: could not {what}: HTTP {status}: {text}",
                             status=status, code=code, registry_message=text)


def _is_transport_error(e: BaseException) -> bool:
    """Connection refused, DNS failure, timeout, reset, TLS handshake: worth retrying."""
    if isinstance(e, _UNSUPPORTED_PROTOCOL):
        return False
    return isinstance(e, _TRANSPORT_ERRORS)


def _quote(subject: str) -> str:
    from urllib.parse import quote

    return quote(subject, safe="")
