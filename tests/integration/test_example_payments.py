"""topologies/payments.py end to end on the real broker and registry: payments written with
confluent-kafka's AvroSerializer, exactly-once windowed detection read back with its
AvroDeserializer (read_committed), and the card-table join; results equal the driver's."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streamflow.testing import TopologyTestDriver
from tests.integration.kafka_helpers import (
    ROOT,
    StreamflowProcess,
    confluent_registry,
    confluent_serializer,
    read_all,
)
from topologies import payments

pytestmark = pytest.mark.integration

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
CARDS = {f"card-{i}": {"currency": "EUR", "blocked": i == 3} for i in range(8)}


def _payments() -> list[dict[str, Any]]:
    out = []
    for i in range(400):
        card = f"card-{i % 10}"  # card-8 and card-9 have no profile
        amount = 900.0 if card == "card-5" else 2500.0 if card == "card-6" else 12.5
        out.append({"id": f"p{i}", "card_id": card, "amount": amount,
                    "currency": "USD" if i % 17 == 0 else "EUR",
                    "ts": T0 + dt.timedelta(seconds=2 * i)})
    return out


def expected_outputs(rows: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    """The fraud alerts and flagged payments the test driver computes for ``rows``."""
    with TopologyTestDriver(payments.topology, config={"store": "memory"}) as d:
        for card, profile in CARDS.items():
            d.input("cards").send(profile, key=card)
        for p in rows:
            d.input("payments").send(p, key=p["card_id"], timestamp=payments.event_time(p))
        d.advance_wall_clock(payments.IDLE_MS + 1)
        return d.output("fraud-alerts").read_values(), d.output("payments.flagged").read_values()


def _cli(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "streamflow", *args], cwd=ROOT, env=env,
                   capture_output=True, text=True, timeout=120)


def _canon(values: list[Any]) -> Counter[bytes]:
    return Counter(orjson.dumps(v, option=orjson.OPT_SORT_KEYS, default=str) for v in values)


def test_payments_end_to_end(kafka_bootstrap: str, schema_registry_url: str,
                             tmp_path: Path) -> None:
    env = {**os.environ, "STREAMFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "STREAMFLOW_SCHEMA_REGISTRY_URL": schema_registry_url,
           "STREAMFLOW_STATE_DIR": str(tmp_path / "state"), "PAYMENTS_IDLE_MS": "4000",
           "PYTHONPATH": str(ROOT)}
    _cli(env, "topics", "delete", "topologies.payments", "--yes", "--include-external")
    _cli(env, "topics", "create", "topologies.payments")
    registry = confluent_registry(schema_registry_url)
    serialize = confluent_serializer(registry, (ROOT / "schemas/payment.avsc").read_text())
    deserialize = AvroDeserializer(registry)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    # the profiles hold from before the first payment: each payment's task takes the cards
    # table's records first, however the two topics are fetched (time-aligned tasks)
    profiles_from = int(T0.timestamp() * 1000) - 60_000
    for card, profile in CARDS.items():
        producer.produce("cards", orjson.dumps(profile), card.encode(), timestamp=profiles_from)
    producer.flush(30)
    rows = _payments()
    app = StreamflowProcess(["run", "topologies.payments"], ROOT, env, tmp_path / "run.log")
    try:
        ctx = SerializationContext("payments", MessageField.VALUE)
        for p in rows:
            producer.produce("payments", serialize(p, ctx), p["card_id"].encode(),
                             timestamp=payments.event_time(p))
        producer.flush(30)
        want_alerts, want_flags = expected_outputs(rows)
        alert_msgs = read_all(kafka_bootstrap, "fraud-alerts", expect=len(want_alerts),
                              timeout=120, settle=6)
        flag_msgs = read_all(kafka_bootstrap, "payments.flagged", expect=len(want_flags),
                             timeout=60, settle=2)
    finally:
        rc = app.terminate()
    assert rc == 0, app.output()[-3000:]
    actx = SerializationContext("fraud-alerts", MessageField.VALUE)
    got_alerts = [deserialize(m.value(), actx) for m in alert_msgs]
    assert want_alerts and {a["severity"] for a in want_alerts} >= {"MEDIUM", "HIGH"}
    assert _canon(got_alerts) == _canon(want_alerts)
    assert _canon([orjson.loads(m.value()) for m in flag_msgs]) == _canon(want_flags)
    _cli(env, "topics", "delete", "topologies.payments", "--yes", "--include-external")
