"""Two processors share one consumer group id."""

import streamflow as sf

topology = sf.Topology("groups")
orders = topology.topic("orders", key=sf.String(), value=sf.Json(), external=True)
a = topology.topic("a", key=sf.String(), value=sf.Json())
b = topology.topic("b", key=sf.String(), value=sf.Json())
topology.processor("first", group_id="shared").stream(orders).to(a)
topology.processor("second", group_id="shared").stream(orders).to(b)
