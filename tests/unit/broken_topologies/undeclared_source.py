"""``payments`` is read, written by no processor, and not declared external."""

import streamflow as sf

topology = sf.Topology("undeclared")
payments = topology.topic("payments", key=sf.String(), value=sf.Json())  # external=True missing
alerts = topology.topic("alerts", key=sf.String(), value=sf.Json())
topology.processor("detect").stream(payments).filter(lambda p: p["amount"] > 1000).to(alerts)
