"""A foreign-key table-table join on a real broker, across a restart that restores its state.

Orders name a customer in their value; both tables are read from topics of three partitions,
so most orders and their customers sit in different tasks and meet through the join's
subscription and response topics (exactly-once: every round trip crosses a commit). After
the first results, the worker stops and its local state is wiped, so the restarted worker
restores the left rows and the subscriptions from their changelogs; then a customer update, a
foreign-key change, a customer delete and an order delete must each change exactly the
results they should. The output is folded into its latest value per key and compared with
what the joins mean.
"""

from __future__ import annotations

import re
import shutil
import textwrap
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer

from streamflow.testing.admin import TopicAdmin
from tests.integration.kafka_helpers import produce

pytestmark = pytest.mark.integration

TOPOLOGY = '''
import streamflow as sf
from streamflow.dsl.foreign_key import foreign_key_join

topology = sf.Topology("fkj")
orders = topology.topic("fkj-orders", key=sf.String(), value=sf.Json(), external=True)
customers = topology.topic("fkj-customers", key=sf.String(), value=sf.Json(), external=True)
enriched = topology.topic("fkj-enriched", key=sf.String(), value=sf.Json())
p = topology.processor("enrich", guarantee="exactly_once")
joined = foreign_key_join(p.materialize(topology.table(orders)),
                          p.materialize(topology.table(customers)),
                          lambda o: o["customer"],
                          lambda o, c: {"order": o["id"], "name": c["name"]},
                          name="order-customer")
joined.to_stream().to(enriched)
'''

CUSTOMERS = 10
ORDERS = 40


class Folded:
    """The output topic read as a table: the latest value of each key (tombstones delete)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.rows: dict[str, Any] = {}
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"verify-{topic}",
                                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                  "isolation.level": "read_committed"})
        self.consumer.subscribe([topic])

    def until(self, expected: dict[str, Any], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while self.rows != expected and time.monotonic() < deadline:
            for m in self.consumer.consume(500, 0.2):
                if m.error() is None:
                    key = m.key().decode()
                    if m.value() is None:
                        self.rows.pop(key, None)
                    else:
                        self.rows[key] = orjson.loads(m.value())
        return self.rows

    def close(self) -> None:
        self.consumer.close()


def _json(value: Any) -> bytes | None:
    return None if value is None else orjson.dumps(value)


def test_a_foreign_key_join_follows_updates_moves_and_deletes_across_a_restart(
        tmp_path: Path, streamflow_app: Any, name_suffix: str, kafka_admin: TopicAdmin,
        kafka_bootstrap: str) -> None:
    (tmp_path / "fkj_topology.py").write_text(textwrap.dedent(TOPOLOGY))
    orders, customers = f"fkj-orders{name_suffix}", f"fkj-customers{name_suffix}"
    kafka_admin.create_topic(orders, 3, {"cleanup.policy": "compact"})
    kafka_admin.create_topic(customers, 3, {"cleanup.policy": "compact"})
    names = {f"c{i}": f"name-{i}" for i in range(CUSTOMERS)}
    owner = {f"o{i}": f"c{i % CUSTOMERS}" for i in range(ORDERS)}

    def send_customers(rows: dict[str, str | None]) -> None:
        produce(kafka_bootstrap, customers,
                [(k.encode(), _json(None if v is None else {"name": v})) for k, v in rows.items()])

    def send_orders(rows: dict[str, str | None]) -> None:
        produce(kafka_bootstrap, orders,
                [(k.encode(), _json(None if c is None else {"id": k, "customer": c}))
                 for k, c in rows.items()])

    def expected() -> dict[str, Any]:
        return {o: {"order": o, "name": names[c]} for o, c in owner.items() if c in names}

    send_customers(dict(names))
    send_orders(dict(owner))
    env = {"STREAMFLOW_COMMIT_INTERVAL_MS": "100"}
    app = streamflow_app("fkj_topology", "enrich", cwd=tmp_path, name_suffix=name_suffix,
                         env=env)
    out = Folded(kafka_bootstrap, f"fkj-enriched{name_suffix}")
    try:
        assert out.until(expected(), 30) == expected(), app.logs()[-3000:]
        assert app.stop() == 0, app.logs()[-3000:]
        shutil.rmtree(tmp_path / "apps" / "state")  # the restart restores from the changelogs
        app = streamflow_app("fkj_topology", "enrich", cwd=tmp_path, name_suffix=name_suffix,
                             env=env)
        names["c0"] = "renamed"  # every order of c0 follows
        send_customers({"c0": "renamed"})
        owner["o1"] = "c2"  # o1 leaves c1 ...
        send_orders({"o1": "c2"})
        assert out.until(expected(), 20) == expected(), app.logs()[-3000:]
        names["c1"] = "c1-after-o1-left"  # ... so c1's update no longer reaches it
        del names["c5"]  # an inner join drops the orders of a deleted customer
        send_customers({"c1": "c1-after-o1-left", "c5": None})
        del owner["o3"]
        send_orders({"o3": None})
        assert out.until(expected(), 20) == expected(), app.logs()[-3000:]
        assert out.rows["o1"] == {"order": "o1", "name": "name-2"}
        assert "o5" not in out.rows and "o3" not in out.rows
    finally:
        out.close()
    assert app.stop() == 0, app.logs()[-3000:]
    restored = {store: sum(int(n) for n in re.findall(
        rf"restored fkj-enrich-order-customer-{store}-changelog\S*: (\d+) changes applied",
        app.logs())) for store in ("left", "subscriptions")}
    assert restored == {"left": ORDERS, "subscriptions": ORDERS}, app.logs()[-3000:]
