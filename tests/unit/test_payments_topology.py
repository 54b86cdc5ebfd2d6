"""The example ``topologies.payments`` (Avro contracts from schemas/) through the test driver."""

from __future__ import annotations

import datetime as dt
import importlib
from typing import Any

import pytest

import streamflow as sf
from streamflow.ops.check import check_topology
from streamflow.testing import TopologyTestDriver

payments = importlib.import_module("topologies.payments")
UTC = dt.UTC
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def payment(i: int, card: str, amount: float, currency: str = "EUR") -> dict[str, Any]:
    return {"id": f"p{i}", "card_id": card, "amount": amount, "currency": currency,
            "ts": T0 + dt.timedelta(seconds=i)}


def test_topology_declares_avro_contracts_from_schemas_dir() -> None:
    t = payments.topology
    assert isinstance(t, sf.Topology) and t.name == "payments"
    assert t.topics["payments"].external
    assert t.topics["payments"].value.describe() == "Avro(com.example.Payment)"
    assert t.topics["fraud-alerts"].value.describe() == "Avro(com.example.FraudAlert)"
    assert check_topology(t).ok


def test_positive_payments_become_alert_candidates_keyed_by_card() -> None:
    with TopologyTestDriver(payments.topology) as driver:
        inp = driver.input("payments")
        inp.send(payment(1, "c1", 25.0), key="c1", timestamp=1000)
        inp.send(payment(2, "c2", -10.0), key="c2", timestamp=1001)  # a refund: not scored
        inp.send(payment(3, "c2", 0.0), key="c2", timestamp=1002)
        inp.send(payment(4, "c3", 1500.0, "USD"), key="c3", timestamp=1003)
        inp.send(payment(5, "c4", 9000.0), key="c4", timestamp=1004)
        out = driver.output("fraud-alerts").read_records()
    assert [(r.key, r.timestamp) for r in out] == [("c1", 1000), ("c3", 1003), ("c4", 1004)]
    first = out[0].value
    assert first == {
        "card_id": "c1", "window_start": T0 + dt.timedelta(seconds=1),
        "window_end": T0 + dt.timedelta(seconds=1), "payments": 1, "total": 25.0,
        "severity": "LOW", "reason": None,
    }
    assert [r.value["severity"] for r in out] == ["LOW", "MEDIUM", "HIGH"]
    assert out[1].value["reason"] == "total 1500.00 >= 1000"


def test_undecodable_payments_are_dead_lettered_with_their_bytes() -> None:
    with TopologyTestDriver(payments.topology) as driver:
        inp = driver.input("payments")
        inp.send_raw(b'{"amount": 5}', key=b"c9", timestamp=5)  # JSON, not Avro
        inp.send(payment(6, "c9", 5.0), key="c9", timestamp=6)
        dlq = driver.output("payments.score.dlq").read_records()
        alerts = driver.output("fraud-alerts").read_values()
    assert [(r.key, r.value) for r in dlq] == [(b"c9", b'{"amount": 5}')]
    headers = dict(dlq[0].headers or [])
    assert b"magic byte" in headers["streamflow.error.message"]
    assert [a["total"] for a in alerts] == [5.0]


@pytest.mark.parametrize(("summary", "level"), [
    ({"payments": 1, "total": 10.0, "currencies": ["EUR"]}, "LOW"),
    ({"payments": 5, "total": 10.0, "currencies": ["EUR"]}, "MEDIUM"),
    ({"payments": 2, "total": 1000.0, "currencies": ["EUR"]}, "MEDIUM"),
    ({"payments": 2, "total": 5000.0, "currencies": ["EUR"]}, "HIGH"),
])
def test_severity_rates_a_cards_summary(summary: dict[str, Any], level: str) -> None:
    assert payments.severity(summary) == level
    assert payments.is_suspicious(summary) == (level != "LOW")


def test_summaries_add_up_without_mutating_and_feed_to_alert() -> None:
    """The aggregate pieces a windowed detector will use."""
    empty = payments.new_summary()
    one = payments.add_payment(empty, payment(1, "c1", 700.0))
    two = payments.add_payment(one, payment(2, "c1", 400.0, "USD"))
    assert empty == {"payments": 0, "total": 0.0, "currencies": []}
    assert one == {"payments": 1, "total": 700.0, "currencies": ["EUR"]}
    assert two == {"payments": 2, "total": 1100.0, "currencies": ["EUR", "USD"]}
    alert = payments.to_alert("c1", two, T0, T0 + dt.timedelta(minutes=1))
    assert alert["severity"] == "MEDIUM"
    assert alert["reason"] == "total 1100.00 >= 1000; currencies EUR, USD"
    # the alert fits the FraudAlert contract
    serde = payments.topology.topics["fraud-alerts"].value
    with TopologyTestDriver(payments.topology) as driver:
        data = serde.serializer("fraud-alerts", False, driver.serde_context)(alert)
        assert serde.deserializer("fraud-alerts", False, driver.serde_context)(data) == alert
