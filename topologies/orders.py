"""Orders: validate, enrich and route e-commerce orders (JSON).

    orders (external) -> [enrich] -> orders.priced -> [route] -> orders.large / orders.small

``enrich`` drops cancelled orders and prices each one; bad records (invalid JSON, missing
fields) go to the dead-letter topic ``orders.enrich.dlq`` instead of stopping the pipeline.
``route`` splits priced orders by size.

Run: ``streamflow run topologies.orders``; describe: ``streamflow describe topologies.orders``.
"""

from __future__ import annotations

from typing import Any

import streamflow as sf

topology = sf.Topology("orders")

orders = topology.topic("orders", key=sf.String(), value=sf.Json(), partitions=3, external=True)
priced = topology.topic("orders.priced", key=sf.String(), value=sf.Json(), partitions=3)
large = topology.topic("orders.large", key=sf.String(), value=sf.Json(), partitions=3)
small = topology.topic("orders.small", key=sf.String(), value=sf.Json(), partitions=3)

VAT = {"DE": 0.19, "FR": 0.20, "NL": 0.21, "US": 0.0}


def price(order: dict[str, Any]) -> dict[str, Any]:
    """Add net, VAT and gross totals to an order."""
    net = round(sum(line["qty"] * line["unit_price"] for line in order["lines"]), 2)
    vat = round(net * VAT.get(order["country"], 0.2), 2)
    return {**order, "net": net, "vat": vat, "gross": round(net + vat, 2)}


enrich = topology.processor("enrich", on_error="dead_letter")
(
    enrich.stream(orders)
    .filter(lambda o: o["status"] != "cancelled", name="not-cancelled")
    .map(price, name="price")
    .key_by(lambda o: o["customer"], name="by-customer")
    .to(priced)
)

route = topology.processor("route")
parts = route.stream(priced).split(large=lambda o: o["gross"] >= 500, default="small")
parts["large"].to(large)
parts["small"].to(small)
