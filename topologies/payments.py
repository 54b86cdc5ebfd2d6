"""Payments: score card payments into fraud-alert candidates, with Avro contracts.

    payments (external; Avro com.example.Payment, key = card id)
        -> [score] -> fraud-alerts (Avro com.example.FraudAlert, key = card id)

The contracts are ``schemas/payment.avsc`` and ``schemas/fraud_alert.avsc``, held in the
schema registry under ``payments-value`` and ``fraud-alerts-value``. ``score`` keeps
payments with a positive amount and turns each into a fraud-alert *candidate*: a summary of
the card's activity over a "window" of that one payment, rated LOW / MEDIUM / HIGH by
:func:`severity`. Records that cannot be decoded go to ``payments.score.dlq`` with their
original bytes; a registry outage stops the worker instead (nothing is skipped).

The building blocks are the pieces of a windowed detector, so per-card windows slot in
without changing them::

    (detect.stream(payments)
        .filter(is_positive)
        .group_by(lambda p: p["card_id"])
        .window(sf.Tumbling(minutes=1, grace=sf.seconds(10)))
        .aggregate(new_summary, add_payment)
        .final()
        .filter(is_suspicious)
        .map(...to_alert(card_id, summary, window start, window end)...)
        .to(alerts))

Run: ``streamflow run topologies.payments``; contracts: ``streamflow schemas check
topologies.payments`` (``schemas register`` registers ``fraud-alerts-value``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import streamflow as sf

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"

topology = sf.Topology("payments")

payments = topology.topic(
    "payments", key=sf.String(), value=sf.Avro(SCHEMAS / "payment.avsc"), partitions=3,
    external=True,
)
alerts = topology.topic(
    "fraud-alerts", key=sf.String(), value=sf.Avro(SCHEMAS / "fraud_alert.avsc"), partitions=3,
)

#: totals (in major currency units) from which a card's activity is rated
MEDIUM_TOTAL = 1_000.0
HIGH_TOTAL = 5_000.0
#: this many payments in one window rate at least MEDIUM, whatever the total
MANY_PAYMENTS = 5

Summary = dict[str, Any]


def is_positive(payment: dict[str, Any]) -> bool:
    """Refunds and zero-amount authorisations are not scored."""
    return bool(payment["amount"] > 0)


def new_summary() -> Summary:
    """The summary of no payments (the aggregate's initial value)."""
    return {"payments": 0, "total": 0.0, "currencies": []}


def add_payment(summary: Summary, payment: dict[str, Any]) -> Summary:
    """The summary with one more payment (a new dict: summaries are never mutated)."""
    currencies = summary["currencies"]
    if payment["currency"] not in currencies:
        currencies = [*currencies, payment["currency"]]
    return {"payments": summary["payments"] + 1,
            "total": round(summary["total"] + payment["amount"], 2),
            "currencies": currencies}


def severity(summary: Summary) -> str:
    """LOW, MEDIUM or HIGH (the ``Severity`` enum of fraud_alert.avsc)."""
    if summary["total"] >= HIGH_TOTAL:
        return "HIGH"
    if summary["total"] >= MEDIUM_TOTAL or summary["payments"] >= MANY_PAYMENTS:
        return "MEDIUM"
    return "LOW"


def is_suspicious(summary: Summary) -> bool:
    """Worth an alert: anything rated above LOW."""
    return severity(summary) != "LOW"


def reason(summary: Summary) -> str | None:
    """Why the summary was rated as it was, for people reading alerts (None when LOW)."""
    parts = []
    if summary["total"] >= MEDIUM_TOTAL:
        parts.append(f"total {summary['total']:.2f} >= {MEDIUM_TOTAL:.0f}")
    if summary["payments"] >= MANY_PAYMENTS:
        parts.append(f"{summary['payments']} payments")
    if len(summary["currencies"]) > 1:
        parts.append(f"currencies {', '.join(summary['currencies'])}")
    return "; ".join(parts) or None


def to_alert(
    card_id: str, summary: Summary, start: dt.datetime, end: dt.datetime
) -> dict[str, Any]:
    """A ``com.example.FraudAlert`` for ``card_id``'s activity between ``start`` and ``end``."""
    return {
        "card_id": card_id,
        "window_start": start,
        "window_end": end,
        "payments": summary["payments"],
        "total": summary["total"],
        "severity": severity(summary),
        "reason": reason(summary),
    }


def candidate(payment: dict[str, Any]) -> dict[str, Any]:
    """The alert candidate for one payment: a window holding just that payment."""
    summary = add_payment(new_summary(), payment)
    return to_alert(payment["card_id"], summary, payment["ts"], payment["ts"])


score = topology.processor("score", on_error="dead_letter")
(
    score.stream(payments)
    .filter(is_positive, name="positive")
    .map(candidate, name="candidate")
    .to(alerts)
)
