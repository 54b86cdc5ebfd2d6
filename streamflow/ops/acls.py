r"""``streamflow acls``: each processor's least-privilege ACLs, rendered, applied or checked.

The ACLs come from :func:`streamflow.runtime.permissions.required_acls` (what a worker of the
processor does on the cluster); this module renders them as ``kafka-acls`` commands, JSON or
Strimzi ``KafkaUser`` resources, creates them, and compares them with the cluster.

>>> import streamflow as sf
>>> t = sf.Topology("shop")
>>> orders = t.topic("orders", external=True)
>>> audited = t.topic("audited")
>>> t.processor("audit").stream(orders).to(audited)
>>> acls = plan(t, None, "User:app", create_topics=False)
>>> print(render_kafka_acls(acls))  # doctest: +ELLIPSIS
# processor audit
kafka-acls.sh --bootstrap-server "$BOOTSTRAP" --command-config admin.properties --add \
    --allow-principal User:app --operation Read --operation Describe \
    --operation DescribeConfigs --topic orders
...
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from streamflow.dsl.topology import Topology
from streamflow.kafka import security
from streamflow.kafka.security import Acl
from streamflow.runtime.permissions import required_acls

__all__ = [
    "FORMATS",
    "AclCheck",
    "apply",
    "check",
    "compare",
    "kafka_user_name",
    "plan",
    "render",
    "render_json",
    "render_kafka_acls",
    "render_strimzi",
    "underivable",
]

FORMATS = ("kafka-acls", "json", "strimzi")

# Kafka's spelling (kafka-acls.sh, Strimzi) of the operations
_CAMEL = {"READ": "Read", "WRITE": "Write", "DESCRIBE": "Describe", "CREATE": "Create",
          "DESCRIBE_CONFIGS": "DescribeConfigs", "IDEMPOTENT_WRITE": "IdempotentWrite",
          "DELETE": "Delete", "ALTER": "Alter", "ALTER_CONFIGS": "AlterConfigs", "ALL": "All",
          "CLUSTER_ACTION": "ClusterAction"}
_CLI_RESOURCE = {"topic": "--topic", "group": "--group",
                 "transactional_id": "--transactional-id", "cluster": "--cluster"}
_STRIMZI_RESOURCE = {"topic": "topic", "group": "group", "transactional_id": "transactionalId",
                     "cluster": "cluster"}


def plan(topology: Topology, processors: Iterable[str] | None, principal: str, *,
         create_topics: bool) -> dict[str, list[Acl]]:
    """The ACLs of each processor (all of them when ``processors`` is None)."""
    names = list(topology.processors) if processors is None else list(processors)
    return {n: required_acls(topology.processors[n], principal, create_topics=create_topics)
            for n in names}


def underivable(topology: Topology, processors: Iterable[str] | None) -> list[str]:
    """Warnings for routes whose topics only a function knows (their ACLs are not derived)."""
    from streamflow.dsl.nodes import Sink

    names = list(topology.processors) if processors is None else list(processors)
    return [f"processor {n!r}: step {node.name!r} picks its topic per record "
            f"({node.label()}); add WRITE and DESCRIBE on those topics by hand"
            for n in names for node in topology.processors[n].nodes.values()
            if isinstance(node, Sink) and node.topic is None]


def _union(acls: dict[str, list[Acl]]) -> list[Acl]:
    return list(dict.fromkeys(a for per in acls.values() for a in per))


def _grouped(acls: Iterable[Acl]) -> dict[tuple[str, str, str, str, str], list[str]]:
    """Operations per (principal, resource, pattern, name, host), in first-seen order."""
    out: dict[tuple[str, str, str, str, str], list[str]] = {}
    for a in acls:
        ops = out.setdefault((a.principal, a.resource, a.pattern, a.name, a.host), [])
        if a.operation not in ops:
            ops.append(a.operation)
    return out


def render_kafka_acls(acls: dict[str, list[Acl]]) -> str:
    """One ``kafka-acls.sh --add`` command per resource, under a comment per processor."""
    lines: list[str] = []
    for processor, per in acls.items():
        lines.append(f"# processor {processor}")
        for (principal, resource, pattern, name, host), ops in _grouped(per).items():
            parts = ['kafka-acls.sh --bootstrap-server "$BOOTSTRAP" --command-config '
                     "admin.properties --add", f"--allow-principal {principal}"]
            if host != "*":
                parts.append(f"--allow-host {host}")
            parts += [f"--operation {_CAMEL[op]}" for op in ops]
            if pattern != "literal":
                parts.append(f"--resource-pattern-type {pattern}")
            target = _CLI_RESOURCE[resource]
            parts.append(target if resource == "cluster" else f"{target} {name}")
            lines.append(" \\\n    ".join(_wrap(" ".join(parts))))
    return "\n".join(lines) + "\n"


def _wrap(command: str, width: int = 88) -> list[str]:
    """Split a long command into continuation lines at option boundaries."""
    out: list[str] = []
    current = ""
    for word in re.split(r" (?=--)", command):
        if current and len(current) + 1 + len(word) > width:
            out.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    out.append(current)
    return out


def render_json(acls: dict[str, list[Acl]]) -> str:
    """``{processor: [binding, ...]}`` as JSON."""
    return json.dumps({p: [asdict(a) for a in per] for p, per in acls.items()}, indent=2) + "\n"


def kafka_user_name(principal: str) -> str:
    """The KafkaUser resource name of ``User:NAME`` (Strimzi names the user after it)."""
    return principal.split(":", 1)[1] if ":" in principal else principal


def strimzi_users(acls: dict[str, list[Acl]], cluster: str, namespace: str | None = None
                  ) -> list[dict[str, Any]]:
    """One Strimzi ``KafkaUser`` per principal (SCRAM-SHA-512, simple authorization)."""
    by_principal: dict[str, list[Acl]] = {}
    for per in acls.values():
        for a in per:
            by_principal.setdefault(a.principal, []).append(a)
    users = []
    for principal, per in by_principal.items():
        rules = []
        for (_p, resource, pattern, name, host), ops in _grouped(per).items():
            res: dict[str, Any] = {"type": _STRIMZI_RESOURCE[resource]}
            if resource != "cluster":
                res.update(name=name, patternType=pattern)
            rules.append({"resource": res, "operations": [_CAMEL[o] for o in ops],
                          "host": host})
        meta: dict[str, Any] = {"name": kafka_user_name(principal),
                                "labels": {"strimzi.io/cluster": cluster}}
        if namespace:
            meta["namespace"] = namespace
        users.append({"apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaUser",
                      "metadata": meta,
                      "spec": {"authentication": {"type": "scram-sha-512"},
                               "authorization": {"type": "simple", "acls": rules}}})
    return users


def render_strimzi(acls: dict[str, list[Acl]], cluster: str, namespace: str | None = None
                   ) -> str:
    """The ``KafkaUser`` resources as YAML documents."""
    from streamflow.ops.k8s import to_yaml

    return "".join("---\n" + to_yaml(u) for u in strimzi_users(acls, cluster, namespace))


def render(acls: dict[str, list[Acl]], fmt: str, *, cluster: str = "my-cluster",
           namespace: str | None = None) -> str:
    """``acls`` in one of :data:`FORMATS`."""
    if fmt == "json":
        return render_json(acls)
    if fmt == "strimzi":
        return render_strimzi(acls, cluster, namespace)
    return render_kafka_acls(acls)


def apply(admin: Any, acls: dict[str, list[Acl]]) -> list[Acl]:
    """Create the ACLs on the cluster; return them (existing ones are kept as they are)."""
    wanted = _union(acls)
    security.create_acls(admin, wanted)
    return wanted


# operations Kafka grants implicitly with another (READ lets a client DESCRIBE the topic)
_IMPLIED = {"DESCRIBE": {"READ", "WRITE", "DELETE", "ALTER"},
            "DESCRIBE_CONFIGS": {"ALTER_CONFIGS"}}


@dataclass(frozen=True)
class AclCheck:
    """What the cluster lacks (``missing``) and grants beyond the plan (``broader``)."""

    missing: list[Acl]
    broader: list[Acl]

    @property
    def ok(self) -> bool:
        """Neither missing nor broader ACLs."""
        return not self.missing and not self.broader


def _grants(have: Acl, want: Acl) -> bool:
    return (have.covers(want.resource, want.name) and have.host in ("*", want.host)
            and (have.operation in (want.operation, "ALL")
                 or have.operation in _IMPLIED.get(want.operation, ())))


def compare(wanted: Iterable[Acl], existing: Iterable[Acl]) -> AclCheck:
    """Missing: wanted bindings no existing one grants; broader: existing ones not wanted.

    An existing binding that grants a wanted one but more besides (a prefix or ``*`` where a
    literal name is enough, ALL where READ is) is broader; so is one for a resource the plan
    does not name.
    """
    wanted = list(dict.fromkeys(wanted))
    existing = list(dict.fromkeys(existing))
    missing = [w for w in wanted if not any(_grants(h, w) for h in existing)]
    exact = set(wanted)
    broader = [h for h in existing if h not in exact]
    return AclCheck(missing, broader)


def check(admin: Any, acls: dict[str, list[Acl]], principal: str) -> AclCheck:
    """Compare the plan with the ALLOW bindings the cluster holds for ``principal``."""
    return compare(_union(acls), security.describe_acls(admin, principal))


def describe_acl(a: Acl) -> str:
    """``topic orders: READ`` (with the pattern and host when they are not the defaults)."""
    pattern = f" (prefix {a.name!r})" if a.pattern == "prefixed" else ""
    target = "cluster" if a.resource == "cluster" else f"{a.resource} {a.name!r}"
    host = f" from {a.host}" if a.host != "*" else ""
    return f"{target}{pattern}: {a.operation} for {a.principal}{host}"
