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


def _ms(i: int) -> int:
    return int((T0 + dt.timedelta(seconds=i)).timestamp() * 1000)


def test_suspicious_minutes_of_a_card_become_one_alert_when_the_minute_closes() -> None:
    with TopologyTestDriver(payments.topology, config={"store": "memory"}) as driver:
        inp = driver.input("payments")
        inp.send(payment(1, "c1", 25.0), key="c1", timestamp=_ms(1))
        inp.send(payment(2, "c2", -10.0), key="c2", timestamp=_ms(2))  # a refund: not scored
        for i in range(3, 8):  # five payments in one minute: MEDIUM
            inp.send(payment(i, "c3", 20.0, "USD"), key="c3", timestamp=_ms(i))
        inp.send(payment(8, "c4", 9000.0), key="c4", timestamp=_ms(8))
        assert driver.output("fraud-alerts").read_records() == []  # the minute is still open
        # a payment 2 minutes later moves stream time past the first minute + grace
        inp.send(payment(130, "c1", 5.0), key="c1", timestamp=_ms(130))
        out = driver.output("fraud-alerts").read_records()
    assert sorted(r.key for r in out) == ["c3", "c4"]  # c1's 25.00 is LOW: no alert
    by_card = {r.key: r.value for r in out}
    assert by_card["c3"] == {
        "card_id": "c3", "window_start": T0, "window_end": T0 + dt.timedelta(minutes=1),
        "payments": 5, "total": 100.0, "severity": "MEDIUM", "reason": "5 payments",
    }
    assert by_card["c4"]["severity"] == "HIGH"


def test_quiet_cards_are_alerted_on_wall_clock_idleness() -> None:
    with TopologyTestDriver(payments.topology, config={"store": "memory"}) as driver:
        driver.input("payments").send(payment(1, "c4", 7000.0), key="c4", timestamp=_ms(1))
        driver.advance_wall_clock(payments.IDLE_MS + 1)
        assert [a["severity"] for a in driver.output("fraud-alerts").read_values()] == ["HIGH"]


def test_payments_are_flagged_against_the_card_table() -> None:
    with TopologyTestDriver(payments.topology, config={"store": "memory"}) as driver:
        driver.input("cards").send({"currency": "EUR"}, key="c1")
        driver.input("cards").send({"currency": "EUR", "blocked": True}, key="c2")
        inp = driver.input("payments")
        inp.send(payment(1, "c1", 10.0), key="c1", timestamp=_ms(1))  # fine: not flagged
        inp.send(payment(2, "c1", 10.0, "USD"), key="c1", timestamp=_ms(2))
        inp.send(payment(3, "c2", 10.0), key="c2", timestamp=_ms(3))
        inp.send(payment(4, "c9", 10.0), key="c9", timestamp=_ms(4))
        out = driver.output("payments.flagged").read_values()
    assert [(f["payment_id"], f["reasons"]) for f in out] == [
        ("p2", ["paid in USD, card in EUR"]), ("p3", ["card blocked"]), ("p4", ["unknown card"])]


def test_undecodable_payments_are_dead_lettered_with_their_bytes() -> None:
    with TopologyTestDriver(payments.topology, config={"store": "memory"}) as driver:
        inp = driver.input("payments")
        inp.send_raw(b'{"amount": 5}', key=b"c9", timestamp=5)  # JSON, not Avro
        inp.send(payment(6, "c9", 9000.0), key="c9", timestamp=_ms(6))
        driver.advance_wall_clock(payments.IDLE_MS + 1)
        dlq = driver.output("payments.detect.dlq").read_records()
        alerts = driver.output("fraud-alerts").read_values()
    assert [(r.key, r.value) for r in dlq] == [(b"c9", b'{"amount": 5}')]
    headers = dict(dlq[0].headers or [])
    assert b"magic byte" in headers["streamflow.error.message"]
    assert [a["total"] for a in alerts] == [9000.0]


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
