"""ACLs, authorized operations and authentication failures, over confluent-kafka's admin API.

:class:`Acl` is a plain description of one ACL binding (no confluent type), so the layers above
derive, render and compare ACLs without importing ``confluent_kafka``; the functions here turn
them into admin calls. :func:`connect` tells a wrong password or an untrusted certificate from
an unreachable cluster within a second or two.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from streamflow.errors import AccessError
from streamflow.kafka.client import Unreachable, admin_conf, logged

__all__ = [
    "AUTHORIZATION_ERRORS",
    "Acl",
    "AuthenticationFailed",
    "authorized_group_operations",
    "authorized_topic_operations",
    "connect",
    "create_acls",
    "delete_acls",
    "describe_acls",
]

# the broker's refusals of an authenticated principal, by name (as librdkafka spells them)
AUTHORIZATION_ERRORS = ("TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED",
                        "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED")

_RESOURCES = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP,
              "transactional_id": ResourceType.TRANSACTIONAL_ID,
              "cluster": ResourceType.BROKER}
_PATTERNS = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW binding: ``principal`` may do ``operation`` on a resource.

    ``resource``: topic, group, transactional_id or cluster; ``pattern``: literal or prefixed
    (``name`` is then a prefix); ``operation`` in Kafka's spelling (READ, WRITE, DESCRIBE,
    CREATE, DESCRIBE_CONFIGS, IDEMPOTENT_WRITE, ...).
    """

    resource: str
    name: str
    pattern: str
    operation: str
    principal: str
    host: str = "*"

    def covers(self, resource: str, name: str) -> bool:
        """Whether this binding's resource pattern matches the resource ``name``."""
        if resource != self.resource:
            return False
        if self.pattern == "prefixed":
            return name.startswith(self.name)
        return self.name in ("*", name)


class AuthenticationFailed(AccessError):
    """The cluster refused these credentials, or the client does not trust its certificate."""


def _binding(acl: Acl) -> Any:
    return AclBinding(_RESOURCES[acl.resource], acl.name, _PATTERNS[acl.pattern],
                      acl.principal, acl.host, AclOperation[acl.operation],
                      AclPermissionType.ALLOW)


def _acl(b: Any) -> Acl | None:
    """Our description of a confluent binding (None for DENY and unknown kinds)."""
    if b.permission_type != AclPermissionType.ALLOW:
        return None
    resource = {v: k for k, v in _RESOURCES.items()}.get(b.restype)
    pattern = {v: k for k, v in _PATTERNS.items()}.get(b.resource_pattern_type)
    if resource is None or pattern is None:
        return None
    return Acl(resource, b.name, pattern, b.operation.name, b.principal, b.host)


def create_acls(admin: Any, acls: Iterable[Acl], timeout: float = 30.0) -> None:
    """Create ALLOW bindings (ones that exist already are left as they are)."""
    bindings = [_binding(a) for a in dict.fromkeys(acls)]
    if not bindings:
        return
    for fut in admin.create_acls(bindings, request_timeout=timeout).values():
        fut.result()


def describe_acls(admin: Any, principal: str, timeout: float = 30.0) -> list[Acl]:
    """Every ALLOW binding of ``principal`` on the cluster."""
    anything: Any = None  # the filter's wildcard for the resource name and the host
    flt = AclBindingFilter(ResourceType.ANY, anything, ResourcePatternType.ANY, principal,
                           anything, AclOperation.ANY, AclPermissionType.ANY)
    found = admin.describe_acls(flt, request_timeout=timeout).result()
    return sorted(a for a in (_acl(b) for b in found) if a is not None)


def delete_acls(admin: Any, acls: Iterable[Acl], timeout: float = 30.0) -> None:
    """Delete exactly these ALLOW bindings."""
    filters = [AclBindingFilter(_RESOURCES[a.resource], a.name, _PATTERNS[a.pattern],
                                a.principal, a.host, AclOperation[a.operation],
                                AclPermissionType.ALLOW) for a in dict.fromkeys(acls)]
    if not filters:
        return
    for fut in admin.delete_acls(filters, request_timeout=timeout).values():
        fut.result()


def authorized_topic_operations(admin: Any, topics: Iterable[str], timeout: float = 15.0
                                ) -> dict[str, set[str] | str | None]:
    """Per topic: the operations this client may do on it, an error name, or None (unknown).

    ``TOPIC_AUTHORIZATION_FAILED`` when it may not even describe the topic (the broker then
    does not say whether it exists), ``UNKNOWN_TOPIC_OR_PART`` when it does not exist; None
    when the answer says nothing about permissions (a timeout, a leader moving).
    """
    names = list(dict.fromkeys(topics))
    if not names:
        return {}
    futures = admin.describe_topics(TopicCollection(names), include_authorized_operations=True,
                                    request_timeout=timeout)
    out: dict[str, set[str] | str | None] = {}
    for name, fut in futures.items():
        try:
            desc = fut.result()
        except KafkaException as e:
            code = e.args[0].code()
            # a timeout or a moving leader tells nothing about permissions: unknown
            out[name] = e.args[0].name() if code in _TOPIC_VERDICTS else None
            continue
        out[name] = _names(desc.authorized_operations)
    return out


def _names(operations: Any) -> set[str] | None:
    # None: the broker did not say (an old broker); a cluster without an authorizer lists all
    return None if operations is None else {op.name for op in operations}


_TOPIC_VERDICTS = frozenset({KafkaError.TOPIC_AUTHORIZATION_FAILED,
                             KafkaError.UNKNOWN_TOPIC_OR_PART})
_COORDINATOR_MOVING = frozenset({KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                                 KafkaError.COORDINATOR_NOT_AVAILABLE,
                                 KafkaError.NOT_COORDINATOR})


def authorized_group_operations(admin: Any, group: str, timeout: float = 15.0
                                ) -> set[str] | str | None:
    """The operations this client may do on ``group``, an error name, or None (unknown).

    None when the group coordinator did not settle within ``timeout``: the consumer finds
    out on its own then.
    """
    deadline = time.monotonic() + timeout
    while True:
        fut = admin.describe_consumer_groups([group], include_authorized_operations=True,
                                             request_timeout=timeout)[group]
        try:
            desc = fut.result()
        except KafkaException as e:
            err = e.args[0]
            if err.code() in _COORDINATOR_MOVING and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            if err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
                return str(err.name())
            return None
        return _names(desc.authorized_operations)


def connect(conf: dict[str, Any], timeout: float,
            stopping: Callable[[], bool] | None = None) -> bool:
    """Wait until the cluster answers a metadata request with these settings.

    Raise :class:`AuthenticationFailed` as soon as librdkafka reports a SASL authentication
    error or a failed TLS handshake (a wrong password, an untrusted certificate), and
    ``Unreachable`` when nothing answers in ``timeout`` seconds. ``stopping()`` is asked
    between attempts (about once a second): when it turns true (a worker got SIGTERM while
    the broker is down), give up and return False; True means the cluster answered.
    """
    errors: list[Any] = []
    settings: dict[str, Any] = {**admin_conf(conf), "error_cb": errors.append}
    admin = AdminClient(logged(settings))
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
            return True
        except KafkaException as e:
            last = e
        if stopping is not None and stopping():
            return False
        admin.poll(0)  # serves error_cb
        for err in errors:
            if err.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL):
                raise AuthenticationFailed(authentication_advice(err.code(), err.str()))
        if time.monotonic() >= deadline:
            msg = f"Kafka at {conf.get('bootstrap.servers')} did not answer in {timeout:g}s: {last}"
            raise Unreachable(msg)


def authentication_advice(code: int, detail: str) -> str:
    """What a SASL or TLS failure means, and what to check."""
    if code == KafkaError._SSL:
        return (f"TLS handshake with Kafka failed: {detail}. Check that the client trusts the "
                "broker's certificate (kafka setting ssl.ca.location, "
                "STREAMFLOW_KAFKA_SSL_CA_LOCATION) and that security.protocol matches the "
                "listener")
    return (f"Kafka refused the credentials: {detail}. Check sasl.username / sasl.password "
            "(STREAMFLOW_KAFKA_SASL_USERNAME, STREAMFLOW_KAFKA_SASL_PASSWORD or the Secret "
            "they come from) and sasl.mechanism")
