"""Schemas of the ``avro`` scenario (plain data: importable from every benchmark venv).

Input: the project's own contract ``schemas/payment.avsc`` (``com.example.Payment``: id,
card_id, amount, currency, ts as timestamp-millis). Output: the same record plus
``amount_cents`` (``com.example.bench.PaymentCents``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]

PAYMENT: dict[str, Any] = json.loads((ROOT / "schemas" / "payment.avsc").read_text())

PAYMENT_CENTS: dict[str, Any] = {
    "type": "record",
    "name": "PaymentCents",
    "namespace": "com.example.bench",
    "doc": "A payment with its amount in cents (bench/ avro scenario output).",
    "fields": [
        *({k: v for k, v in f.items() if k != "doc"} for f in PAYMENT["fields"]),
        {"name": "amount_cents", "type": "long"},
    ],
}


def transform(v: dict[str, Any]) -> dict[str, Any]:
    """The map step every implementation applies."""
    return {**v, "amount_cents": int(v["amount"] * 100)}
