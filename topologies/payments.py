"""Payments: detect suspicious card activity per minute, with Avro contracts.

    payments (external; Avro com.example.Payment, key = card id)
    cards    (external; compacted JSON card profiles, key = card id)
        -> [detect]  positive payments, per card, in 1-minute tumbling windows (event time
                     from the payment's ``ts``), final results only, rated LOW / MEDIUM /
                     HIGH                                   -> fraud-alerts (Avro FraudAlert)
        -> [flag]    every payment joined with its card's profile; payments of blocked cards
                     and payments abroad                    -> payments.flagged (JSON)

The contracts are ``schemas/payment.avsc`` and ``schemas/fraud_alert.avsc``, held in the
schema registry under ``payments-value`` and ``fraud-alerts-value``. ``detect`` runs
exactly-once: an alert is written once per card and minute, even across crashes. Records
that cannot be decoded go to ``payments.detect.dlq`` with their original bytes; a registry
outage stops the worker instead (nothing is skipped).

Run: ``streamflow run topologies.payments``; contracts: ``streamflow schemas check
topologies.payments``.
"""

from __future__ import annotations

import datetime as dt
import os
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
cards = topology.topic("cards", key=sf.String(), value=sf.Json(), partitions=3,
                       config={"cleanup.policy": "compact"}, external=True)
flagged = topology.topic("payments.flagged", key=sf.String(), value=sf.Json(), partitions=3)

#: wall-clock idleness after which a quiet partition closes its windows
IDLE_MS = int(os.environ.get("PAYMENTS_IDLE_MS", sf.seconds(30)))

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


def event_time(payment: dict[str, Any]) -> int:
    """The payment's own timestamp in epoch milliseconds."""
    ts = payment["ts"]
    return int(ts.timestamp() * 1000) if isinstance(ts, dt.datetime) else int(ts)


def window_alert(record: sf.Record) -> sf.Record:
    """A closed window's summary as a ``FraudAlert`` keyed by the card id."""
    w = record.key
    start = dt.datetime.fromtimestamp(w.start / 1000, dt.UTC)
    end = dt.datetime.fromtimestamp(w.end / 1000, dt.UTC)
    return record.with_key(w.key).with_value(to_alert(w.key, record.value, start, end))


def flag(payment: dict[str, Any], card: dict[str, Any] | None) -> dict[str, Any] | None:
    """Why a payment deserves a look given its card's profile (None when it does not)."""
    reasons = []
    if card is None:
        reasons.append("unknown card")
    else:
        if card.get("blocked"):
            reasons.append("card blocked")
        if card.get("currency") and card["currency"] != payment["currency"]:
            reasons.append(f"paid in {payment['currency']}, card in {card['currency']}")
    if not reasons:
        return None
    return {"payment_id": payment["id"], "card_id": payment["card_id"],
            "amount": payment["amount"], "ts": event_time(payment), "reasons": reasons}


detect = topology.processor("detect", guarantee="exactly_once", on_error="dead_letter")
(
    detect.stream(payments)
    .filter(is_positive, name="positive")
    .group_by_key(name="by-card")
    .window(sf.Tumbling(sf.minutes(1), grace=sf.seconds(10), close_after_idle=IDLE_MS),
            timestamp=event_time)
    .aggregate(new_summary, add_payment, name="per-minute")
    .final(name="closed")
    .filter(is_suspicious, name="suspicious")
    .map_record(window_alert, name="to-alert")
    .to(alerts)
)

check = topology.processor("flag", on_error="dead_letter")
(
    check.stream(payments)
    .left_join(topology.table(cards), flag, name="with-card")
    .filter(lambda f: f is not None, name="flagged-only")
    .to(flagged)
)
