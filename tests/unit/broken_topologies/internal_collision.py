"""Store changelogs are named ``<topology>-<processor>-<store>-changelog``: processor ``a-b``
with store ``c`` and processor ``a`` with store ``b-c`` get the same changelog topic."""

import streamflow as sf

topology = sf.Topology("t")
events = topology.topic("events", key=sf.String(), value=sf.Json(), external=True)
one = topology.topic("one", key=sf.String(), value=sf.Json())
two = topology.topic("two", key=sf.String(), value=sf.Json())
topology.processor("a-b").stream(events).process(lambda r, ctx: None, stores=["c"]).to(one)
topology.processor("a").stream(events).process(lambda r, ctx: None, stores=["b-c"]).to(two)
