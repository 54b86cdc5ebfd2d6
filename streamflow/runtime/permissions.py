"""The least-privilege ACLs of one processor, derived from its topology.

A topology declares every topic a processor reads and writes, so the ACLs its worker needs
follow from it (``streamflow acls`` prints and applies them; the worker's start-up check,
:mod:`streamflow.runtime.preflight`, checks the same list):

- inputs, global tables' topics among them: READ, DESCRIBE;
- its consumer group: READ, DESCRIBE;
- outputs, the dead-letter topic (``on_error="dead_letter"``) and late-record topics: WRITE,
  DESCRIBE;
- its changelog and repartition topics: READ, WRITE, DESCRIBE, and CREATE when the worker
  creates them itself (the ``create_topics`` setting);
- every topic it touches: DESCRIBE_CONFIGS (the start-up check compares each topic's
  cleanup.policy with its declaration);
- exactly-once: WRITE, DESCRIBE on the transactional ids ``<group id>-*`` (a prefix: one id
  per worker instance);
- IDEMPOTENT_WRITE on the cluster only for a processor that writes no topic: since Kafka 3.0
  (KIP-679) an idempotent producer is authorised by WRITE on any topic.

>>> import streamflow as sf
>>> t = sf.Topology("shop")
>>> orders = t.topic("orders", external=True)
>>> _ = t.topic("totals")
>>> p = t.processor("totals", guarantee="exactly_once")
>>> _ = p.stream(orders).group_by_key().count(name="n").to_stream().to("totals")
>>> for a in required_acls(t.processors["totals"], "User:app", create_topics=False):
...     print(a.resource, a.pattern, a.name, a.operation)
topic literal orders READ
topic literal orders DESCRIBE
topic literal orders DESCRIBE_CONFIGS
group literal shop.totals READ
group literal shop.totals DESCRIBE
topic literal totals WRITE
topic literal totals DESCRIBE
topic literal totals DESCRIBE_CONFIGS
topic literal shop-totals-n-changelog READ
topic literal shop-totals-n-changelog WRITE
topic literal shop-totals-n-changelog DESCRIBE
topic literal shop-totals-n-changelog DESCRIBE_CONFIGS
transactional_id prefixed shop.totals- WRITE
transactional_id prefixed shop.totals- DESCRIBE
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from streamflow.dsl.global_table import global_topics
from streamflow.kafka.security import Acl
from streamflow.runtime.topics import processor_topics

if TYPE_CHECKING:
    from streamflow.dsl.topology import Processor

__all__ = ["principal_of", "required_acls", "topic_roles"]


def topic_roles(processor: Processor) -> dict[str, str]:
    """Each topic the processor touches: "input", "output" or "internal", in a stable order.

    Internal topics (changelog, repartition) are read and written by the processor itself.
    """
    internal = {t.name for t in processor_topics(processor) if t.internal}
    roles: dict[str, str] = {}
    for name in processor.source_topics():
        roles[name] = "internal" if name in internal else "input"
    for name in global_topics(processor):  # read whole, outside the group
        roles.setdefault(name, "input")
    for t in processor_topics(processor):
        if t.name not in roles:
            roles[t.name] = "internal" if t.internal else "output"
    return roles


_OPERATIONS = {"input": ("READ", "DESCRIBE"), "output": ("WRITE", "DESCRIBE"),
               "internal": ("READ", "WRITE", "DESCRIBE")}


def required_acls(processor: Processor, principal: str, *, create_topics: bool) -> list[Acl]:
    """The ALLOW bindings the processor's workers need, in a stable order."""
    acls: list[Acl] = []

    def topic(name: str, ops: tuple[str, ...]) -> None:
        acls.extend(Acl("topic", name, "literal", op, principal) for op in ops)

    roles = topic_roles(processor)
    group_done = False
    for name, role in roles.items():
        ops = _OPERATIONS[role]
        if role == "internal" and create_topics:
            ops = (*ops, "CREATE")
        topic(name, (*ops, "DESCRIBE_CONFIGS"))
        if role == "input" and not group_done:  # the group right after the first input
            acls.extend(Acl("group", processor.group_id, "literal", op, principal)
                        for op in ("READ", "DESCRIBE"))
            group_done = True
    if not group_done:
        acls.extend(Acl("group", processor.group_id, "literal", op, principal)
                    for op in ("READ", "DESCRIBE"))
    if processor.guarantee == "exactly_once":
        acls.extend(Acl("transactional_id", f"{processor.group_id}-", "prefixed", op, principal)
                    for op in ("WRITE", "DESCRIBE"))
    if not any(a.operation == "WRITE" and a.resource == "topic" for a in acls):
        acls.append(Acl("cluster", "kafka-cluster", "literal", "IDEMPOTENT_WRITE", principal))
    return acls


def principal_of(conf: Mapping[str, Any]) -> str:
    """The principal the broker sees for these client settings, as far as they tell.

    SASL: ``User:<sasl.username>``; otherwise (TLS client certificates, OAuth) the settings do
    not say, and ``User:ANONYMOUS`` is only right for a PLAINTEXT or SSL listener without
    client authentication.
    """
    user = conf.get("sasl.username")
    if user:
        return f"User:{user}"
    protocol = str(conf.get("security.protocol", "plaintext")).lower()
    if protocol in ("plaintext", "ssl") and not conf.get("ssl.certificate.location"):
        return "User:ANONYMOUS"
    return "User:<the principal of these credentials>"
