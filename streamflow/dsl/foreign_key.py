"""Foreign-key table-table joins (Kafka Streams' KIP-213).

The left table's value names a row of the right table: ``foreign_key(left_value)`` is a right
key. The two tables are keyed differently, so a left row and the right row it names live in
different tasks; they meet through two internal topics, as in Kafka Streams:

- ``<topology>-<processor>-<step>-subscription-registration``, keyed by the foreign key (so it
  is partitioned like the right table): every left-table update subscribes its left key to
  the right row, carrying a hash of the left value; a foreign-key change also unsubscribes
  the left key from the old right row, which then stops contributing.
- ``<topology>-<processor>-<step>-subscription-response``, keyed by the left key (partitioned
  like the left table): the right side answers a subscription, and every later update or
  delete of the right row, with that row's value and the subscription's hash.

The right side keeps its subscriptions in the store ``<step>-subscriptions``, keyed
``(foreign key, left key)`` so one prefix scan finds every left key subscribed to a right
row. The left side keeps each left row in the store ``<step>-left``; a response whose hash
no longer matches the current left value (the row changed or was deleted while the response
was on its way) is dropped, and counted as ``<step>.stale_responses``.

The result is a table keyed by the left key: ``joiner(left_value, right_value)``. A left
delete deletes the result (a tombstone). A right delete deletes the results of its
subscribers in an inner join; a left join emits ``joiner(left_value, None)`` for them, and
for left rows whose right row does not exist (or whose foreign key is None).

When ``foreign_key`` or ``joiner`` raises, the join's ``on_error`` (else the processor's
``on_processing_error``) decides; under ``skip`` or ``dead_letter`` the update emits no
result, and the result table keeps the left key's previous one (possibly stale) until a
later update of the left row or of the right row it follows joins again:

- ``foreign_key`` raising on a left update (step ``<step>.subscribe``): the join does not
  take the update at all. Its left store keeps the previous row, which stays subscribed to
  its foreign key, so right updates go on joining that previous row. The dead letter is the
  left table's record;
- ``joiner`` raising (step ``<step>`` when a response is joined; ``<step>.subscribe`` for a
  left join's row without a foreign key): the join keeps the new left row (subscribed to the
  right row it names, if any); only the result is not emitted. A response's dead letter is
  the response topic's record (the left key, the hash, the right value as it was then);
  replayed, it is joined again unless the left row changed since (then it is stale and
  dropped). It carries no version of the right row: replay it only while that row is
  unchanged, or the result goes back to the older right value.

The subscription and response topics are partitioned by the key bytes, as wide as the
processor's widest input; the tables' own input topics must have that many partitions (as
for every join of a processor: task N reads partition N of each). ``Processor.joined_topics``
lists both tables' topics, so the start-up check refuses them when their counts differ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streamflow.dsl.nodes import ForeignKeyJoin, Source
from streamflow.dsl.table import Table, TableRef
from streamflow.dsl.topology import TopologyError
from streamflow.serde import Bytes

if TYPE_CHECKING:
    from streamflow.dsl.policies import OnError
    from streamflow.dsl.topology import Processor
    from streamflow.serde import Serde

__all__ = ["foreign_key_join"]


def _key_serde(processor: Processor, table: Table, side: str) -> Serde:
    """The key serde the ``side`` table's rows are partitioned by (its upstream topic's)."""
    topics = processor.upstream_sources(table.node.name)
    if not topics:
        msg = f"foreign_key_join(): the {side} table reads no topic"
        raise TopologyError(msg)
    return processor.topology.topics[topics[0]].key


def _check_table(table: object, side: str) -> Table:
    if isinstance(table, TableRef):
        msg = (f"foreign_key_join(): the {side} table is topology.table({table.topic.name!r}); "
               f"materialize it in the joining processor first: "
               f"processor.materialize(topology.table({table.topic.name!r}))")
        raise TopologyError(msg)
    if not isinstance(table, Table):
        msg = f"foreign_key_join(): the {side} table must be a Table, not {type(table).__name__}"
        raise TopologyError(msg)
    return table


def foreign_key_join(left_table: Table, right_table: Table,
                     foreign_key: Callable[[Any], Any], joiner: Callable[[Any, Any], Any], *,
                     left: bool = False, name: str | None = None,
                     on_error: OnError | None = None) -> Table:
    """Join each left row with the right row its value names: ``foreign_key(left_value)``.

    The result is a ``Table`` keyed by the left key, with ``joiner(left_value, right_value)``
    per left row (see the module docstring for updates, foreign-key changes and deletes).
    ``left=True`` keeps left rows without a right row (``right_value=None``). Both tables
    belong to one processor; the right one must be materialized (a topic table or an
    aggregation)::

        p = topology.processor("enrich")
        orders = p.materialize(topology.table(orders_topic))
        customers = p.materialize(topology.table(customers_topic))
        enriched = foreign_key_join(orders, customers, lambda o: o["customer"],
                                    lambda o, c: {**o, "customer_name": c["name"]},
                                    name="orders-customers")
        enriched.to_stream().to(enriched_topic)

    ``on_error`` (default: the processor's ``on_processing_error``) is what happens to an
    update whose ``foreign_key`` or ``joiner`` raises (see the module docstring).
    """
    lt = _check_table(left_table, "left")
    rt = _check_table(right_table, "right")
    p = lt.processor
    if rt.processor is not p:
        msg = (f"foreign_key_join(): both tables must belong to one processor, not "
               f"{p.name!r} and {rt.processor.name!r}")
        raise TopologyError(msg)
    if rt.store is None:
        msg = ("foreign_key_join(): the right table must be materialized (a topic table or an "
               "aggregation), so subscriptions can look its rows up")
        raise TopologyError(msg)
    for what, fn in (("foreign_key", foreign_key), ("joiner", joiner)):
        if not callable(fn):
            msg = f"foreign_key_join() needs a {what} function, got {type(fn).__name__}"
            raise TopologyError(msg)
    left_key = _key_serde(p, lt, "left")
    right_key = _key_serde(p, rt, "right")
    step = p.node_name("fk-join", name)
    p.check_step_on_error(step, on_error)
    topology = p.topology
    prefix = f"{topology.name}-{p.name}-{step}"
    subscriptions = f"{prefix}-subscription-registration"
    responses = f"{prefix}-subscription-response"
    topology.internal_topic(subscriptions, right_key, Bytes())
    topology.internal_topic(responses, left_key, Bytes())
    left_store = p.add_store(f"{step}-left")
    sub_store = p.add_store(f"{step}-subscriptions")
    common: dict[str, Any] = {
        "foreign_key": foreign_key, "joiner": joiner, "left": left,
        "right_store": rt.store, "subscription_topic": subscriptions,
        "response_topic": responses, "result": step,
    }
    # the two steps that run user code: foreign_key (and a left join's joiner(value, None))
    # on left updates, joiner on responses
    p.add(ForeignKeyJoin(f"{step}.subscribe", (lt.node.name,), role="subscribe",
                         stores=(left_store,), on_error=on_error, **common))
    p.add(ForeignKeyJoin(f"{step}.update", (rt.node.name,), role="update",
                         stores=(sub_store,), **common))
    p.add(Source(f"{step}.from-subscription", (), (subscriptions,)))
    p.add(ForeignKeyJoin(f"{step}.lookup", (f"{step}.from-subscription",), role="lookup",
                         stores=(sub_store, rt.store), **common))
    p.add(Source(f"{step}.from-response", (), (responses,)))
    p.add(ForeignKeyJoin(step, (f"{step}.from-response",), role="resolve",
                         stores=(left_store,), on_error=on_error, **common))
    return Table(p, step, None)
