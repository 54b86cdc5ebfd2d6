"""``priced`` is declared external but the ``enrich`` processor writes it."""

import streamflow as sf

topology = sf.Topology("external-produced")
orders = topology.topic("orders", key=sf.String(), value=sf.Json(), external=True)
priced = topology.topic("priced", key=sf.String(), value=sf.Json(), external=True)  # wrong
topology.processor("enrich").stream(orders).map(lambda o: {**o, "net": 1}).to(priced)
