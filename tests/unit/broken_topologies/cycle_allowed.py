"""The same feedback loop as ``cycle``, declared with ``allow_cycles=True``: valid."""

import streamflow as sf

topology = sf.Topology("loop", allow_cycles=True)
seed = topology.topic("seed", key=sf.String(), value=sf.Json(), external=True)
ping = topology.topic("ping", key=sf.String(), value=sf.Json())
pong = topology.topic("pong", key=sf.String(), value=sf.Json())
topology.processor("a").stream(seed, ping).to(pong)
topology.processor("b").stream(pong).filter(lambda v: v["ttl"] > 0).to(ping)
