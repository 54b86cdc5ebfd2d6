"""The serde protocol: how declared topics turn bytes into Python values and back.

A serde is a small, immutable description. The runtime asks it once per topic for a
serializer and a deserializer (plain callables), so the per-record path is one call.
``None`` (a tombstone) always passes through both ways.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from streamflow.errors import ProcessingError, UnreachableError

if TYPE_CHECKING:
    from streamflow.serde.encryption import KeyProvider

Serializer = Callable[[Any], bytes | None]
Deserializer = Callable[[bytes | None], Any]


class SerdeError(ProcessingError):
    """A value could not be serialized or bytes could not be deserialized."""


class SerdeUnavailable(UnreachableError):
    """A transient infrastructure failure: the record may be fine, the registry is not reachable.

    Raised by serdes that depend on a service (the schema registry) when it cannot be
    reached after retries. It is deliberately *not* a :class:`SerdeError`: the compiled plan
    re-raises it unwrapped, so the processor's ``on_error`` policy never skips or
    dead-letters a record because of an outage. The worker stops without committing and
    exits with code 4; restarted (the supervisor backs off), it processes the record again.
    ``url`` names the service that was unreachable, when known.
    """

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


@dataclass(frozen=True)
class SerdeContext:
    """What a serde may need from its environment when it binds to a topic.

    ``registry`` is a schema-registry client (confluent-kafka's ``SchemaRegistryClient``
    or its ``mock://`` variant), created lazily by ``registry_factory`` so topologies that
    use no Avro never connect to a registry.

    ``keys`` is the key provider of field-level encryption
    (:class:`~streamflow.serde.encryption.KeyProvider`; a worker builds it from the
    ``encryption_keys`` setting); without one, encrypted fields pass through as ciphertext.
    """

    registry_factory: Callable[[], Any] | None = None
    schemas_dir: Path = Path("schemas")
    keys: KeyProvider | None = field(default=None, repr=False)
    options: dict[str, Any] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def registry(self) -> Any:
        """Return the (shared) schema-registry client, creating it on first use."""
        if "registry" not in self._cache:
            if self.registry_factory is None:
                msg = (
                    "this topic uses a schema-registry serde but no registry is configured; "
                    "set STREAMFLOW_SCHEMA_REGISTRY_URL (or schema_registry.url in the config file)"
                )
                raise SerdeError(msg)
            self._cache["registry"] = self.registry_factory()
        return self._cache["registry"]


@runtime_checkable
class Serde(Protocol):
    """Turns values into bytes and back for one side (key or value) of a topic."""

    def serializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Serializer:
        """Return a callable turning a value into bytes (None stays None)."""
        ...

    def deserializer(self, topic: str, is_key: bool, ctx: SerdeContext) -> Deserializer:
        """Return a callable turning bytes into a value (None stays None)."""
        ...

    def describe(self) -> str:
        """A short human-readable name, e.g. ``Json`` or ``Avro(payment)``."""
        ...
