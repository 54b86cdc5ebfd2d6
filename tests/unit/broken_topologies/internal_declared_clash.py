"""A declared topic has the name of a store's changelog topic (fails when loaded)."""

import streamflow as sf

topology = sf.Topology("shop")
orders = topology.topic("orders", key=sf.String(), value=sf.Json(), external=True)
clash = topology.topic("shop-count-totals-changelog", key=sf.String(), value=sf.Json())
count = topology.processor("count")
count.stream(orders).process(lambda r, ctx: None, stores=["totals"]).to(clash)
