"""A worker's start-up access check: credentials, then every permission it needs.

Without it a missing ACL shows as a minute of retries and a vague timeout; with it the worker
stops at once with :class:`PermissionDenied` (exit 6), naming the topic, group or
transactional id, the operation, the principal and the ``streamflow acls`` command that
grants it. :func:`connect` is the first contact: a wrong password or an untrusted certificate
fails there (:class:`~streamflow.kafka.security.AuthenticationFailed`, exit 6).

What cannot be asked in advance (the transactional id, topics the worker creates) is checked
where it is first used: :func:`permission_errors` turns the broker's refusal into the same
message.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from streamflow.config import Config
from streamflow.errors import AccessError
from streamflow.kafka import security
from streamflow.observability.logs import client_log_conf
from streamflow.runtime.permissions import principal_of, required_acls

if TYPE_CHECKING:
    from streamflow.dsl.topology import Processor, Topology

__all__ = ["PermissionDenied", "check_permissions", "connect", "permission_errors"]


class PermissionDenied(AccessError):
    """The worker's principal lacks an ACL it needs (exit 6)."""


def connect(config: Config, stopping: Callable[[], bool] | None = None) -> bool:
    """Reach the cluster with the worker's settings; a refused login fails within seconds.

    False when ``stopping()`` turned true before the cluster answered.
    """
    # librdkafka's lines go through logging, rate-limited, as the worker's clients' do
    conf = {**client_log_conf(config.client_log_interval_s), **config.client_conf()}
    return security.connect(conf, config.startup_timeout_s, stopping)


def grant_command(processor: Processor, principal: str) -> str:
    """The ``streamflow acls`` command line that creates the processor's ACLs."""
    return (f"streamflow acls {_module_of(processor.topology)} -p {processor.name} "
            f"--principal {principal} --apply")


def _module_of(topology: Topology) -> str:
    for name, module in list(sys.modules.items()):
        if getattr(module, "topology", None) is topology:
            return name
    return "MODULE"


def _denied(processor: Processor, principal: str, problems: list[str]) -> PermissionDenied:
    lines = "\n".join(f"  - {p}" for p in problems)
    return PermissionDenied(
        f"processor {processor.name!r} (principal {principal}) lacks permissions it needs:\n"
        f"{lines}\nGrant them (as an admin) with: {grant_command(processor, principal)}\n"
        "(without --apply it prints them: --format kafka-acls, json or strimzi)")


def check_permissions(admin: Any, processor: Processor, config: Config) -> None:
    """Refuse to start unless the principal may do everything on its topics and group.

    Missing topics that the worker would create are left to the topic check; a cluster with
    no authorizer answers with every operation, so this passes there.
    """
    principal = principal_of(config.client_conf())
    needed = required_acls(processor, principal, create_topics=config.create_topics)
    topic_ops: dict[str, list[str]] = {}
    group_ops: list[str] = []
    for acl in needed:
        if acl.resource == "topic" and acl.operation != "CREATE":
            topic_ops.setdefault(acl.name, []).append(acl.operation)
        elif acl.resource == "group":
            group_ops.append(acl.operation)
    timeout = config.startup_timeout_s
    problems: list[str] = []
    for name, have in security.authorized_topic_operations(admin, topic_ops, timeout).items():
        if have is None or have == "UNKNOWN_TOPIC_OR_PART":
            continue  # not told; or missing: the topic check creates it or says so
        if isinstance(have, str):
            problems.append(f"topic {name!r}: {', '.join(topic_ops[name])} (may not even "
                            f"describe it: {have})")
            continue
        missing = [op for op in topic_ops[name] if op not in have]
        if missing:
            problems.append(f"topic {name!r}: {', '.join(missing)}")
    have_group = security.authorized_group_operations(admin, processor.group_id, timeout)
    if isinstance(have_group, str):
        problems.append(f"group {processor.group_id!r}: {', '.join(group_ops)} ({have_group})")
    elif have_group is not None:
        missing = [op for op in group_ops if op not in have_group]
        if missing:
            problems.append(f"group {processor.group_id!r}: {', '.join(missing)}")
    if problems:
        raise _denied(processor, principal, problems)


@contextlib.contextmanager
def permission_errors(processor: Processor, config: Config) -> Iterator[None]:
    """Turn the broker's authorization refusals inside the block into :class:`PermissionDenied`.

    For what is only checked on first use: the transactional id (``init_transactions``) and
    the CREATE of topics the worker creates.
    """
    try:
        yield
    except AccessError:
        raise
    except Exception as e:
        refusal = _authorization_error(e)
        if refusal is None:
            raise
        principal = principal_of(config.client_conf())
        raise _denied(processor, principal, [_what(processor, refusal, config)]) from e


def _authorization_error(error: BaseException) -> str | None:
    seen: BaseException | None = error
    while seen is not None:
        text = " ".join(str(a) for a in seen.args) if seen.args else str(seen)
        for name in security.AUTHORIZATION_ERRORS:
            if name in text:
                return name
        seen = seen.__cause__ or seen.__context__
    return None


def _what(processor: Processor, refusal: str, config: Config) -> str:
    if refusal == "TRANSACTIONAL_ID_AUTHORIZATION_FAILED":
        return (f"transactional id prefix {processor.group_id + '-'!r}: WRITE, DESCRIBE "
                f"({refusal}, from init_transactions)")
    if refusal == "GROUP_AUTHORIZATION_FAILED":
        return f"group {processor.group_id!r}: READ, DESCRIBE ({refusal})"
    if refusal == "TOPIC_AUTHORIZATION_FAILED":
        creates = " CREATE on its changelog/repartition topics, or" if config.create_topics else ""
        return (f"a topic:{creates} READ/WRITE on a topic it uses ({refusal}; the full list: "
                "streamflow acls --check)")
    return f"the cluster: IDEMPOTENT_WRITE or a topic WRITE ({refusal})"
