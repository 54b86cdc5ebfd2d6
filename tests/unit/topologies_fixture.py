"""Small topologies shared by the unit tests, built fresh for every test."""

from __future__ import annotations

from typing import Any

import streamflow as sf
from streamflow.dsl.topology import OnError


def passthrough(
    *,
    key: sf.Serde | None = None,
    value: sf.Serde | None = None,
    out_value: sf.Serde | None = None,
) -> sf.Topology:
    """``in`` -> [copy] -> ``out``, records unchanged (serdes default to String/Json)."""
    t = sf.Topology("pass")
    src = t.topic("in", key=key or sf.String(), value=value or sf.Json(), external=True)
    out = t.topic("out", key=key or sf.String(), value=out_value or value or sf.Json())
    t.processor("copy").stream(src).to(out)
    return t


def orders(
    *,
    on_error: OnError = "fail",
    dead_letter_topic: str | None = None,
    out_value: sf.Serde | None = None,
) -> sf.Topology:
    """``orders`` (String/Json) -> [enrich: not-cancelled, price] -> ``priced``.

    ``price`` multiplies ``qty`` by ``unit_price``; it raises KeyError when a field is missing
    and TypeError when a field has the wrong type.
    """
    t = sf.Topology("shop")
    src = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("priced", key=sf.String(), value=out_value or sf.Json())
    p = t.processor(
        "enrich",
        on_error=on_error,
        dead_letter_topic=dead_letter_topic,
    )
    (
        p.stream(src)
        .filter(lambda o: o["status"] != "cancelled", name="not-cancelled")
        .map(price, name="price")
        .to(out, name="to-priced")
    )
    return t


def price(order: dict[str, Any]) -> dict[str, Any]:
    """Add ``total`` to an order."""
    return {**order, "total": order["qty"] * order["unit_price"]}


def order(order_id: str, qty: Any = 1, unit_price: Any = 10, status: str = "new") -> dict[str, Any]:
    """An order value as the ``orders`` topic carries it."""
    return {"id": order_id, "qty": qty, "unit_price": unit_price, "status": status}
