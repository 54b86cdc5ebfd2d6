"""``a`` writes what ``b`` reads and ``b`` writes what ``a`` reads, undeclared."""

import streamflow as sf

topology = sf.Topology("loop")
ping = topology.topic("ping", key=sf.String(), value=sf.Json())
pong = topology.topic("pong", key=sf.String(), value=sf.Json())
topology.processor("a").stream(ping).to(pong)
topology.processor("b").stream(pong).filter(lambda v: v["ttl"] > 0).to(ping)
