"""A well-formed two-processor pipeline with a dead-letter topic: ``check`` passes."""

import streamflow as sf

topology = sf.Topology("valid")
orders = topology.topic("orders", key=sf.String(), value=sf.Json(), partitions=3, external=True)
priced = topology.topic("priced", key=sf.String(), value=sf.Json(), partitions=3)
large = topology.topic("large", key=sf.String(), value=sf.Json(), partitions=3)
enrich = topology.processor("enrich", on_error="dead_letter")
enrich.stream(orders).map(lambda o: {**o, "gross": o["net"] * 1.2}).to(priced)
topology.processor("route").stream(priced).filter(lambda o: o["gross"] > 500).to(large)
