"""Topologies for the stable-state-name tests (unit, and integration against a broker).

``v1`` and ``v2`` are two versions of one topology whose name is unique per test run: v2
renamed the aggregation ``per-user`` to ``per-customer``, so a deploy of v2 would orphan
v1's changelog. ``unnamed`` names none of its stateful steps.
"""

from __future__ import annotations

import uuid

import streamflow as sf

NAME = f"state-names-{uuid.uuid4().hex[:8]}"


def version(aggregate_name: str) -> sf.Topology:
    """The topology with its one aggregation named ``aggregate_name``."""
    t = sf.Topology(NAME)
    clicks = t.topic(f"{NAME}.clicks", key=sf.String(), value=sf.Json(), partitions=2,
                     external=True)
    totals = t.topic(f"{NAME}.totals", key=sf.String(), value=sf.Json(), partitions=2)
    (t.processor("count")
     .stream(clicks)
     .group_by(lambda click: click["user"], name="by-user")
     .count(name=aggregate_name)
     .to_stream()
     .to(totals))
    return t


v1 = version("per-user")
v2 = version("per-customer")


def _unnamed() -> sf.Topology:
    t = sf.Topology("shop")
    orders = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    p = t.processor("totals")
    s = p.stream(orders)
    s.group_by(lambda o: o["customer"]).count().to_stream().to(t.topic("counts"))
    s.group_by_key().window(sf.Tumbling(sf.minutes(1))).reduce(lambda a, b: a)
    s.process(lambda r, ctx: None, stores=["seen"], name="dedupe")
    s.join(t.table(t.topic("customers", key=sf.String(), external=True)), lambda o, c: o)
    return t


unnamed = _unnamed()
