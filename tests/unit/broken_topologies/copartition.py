"""A stream with 3 partitions joined with a table topic of 6 partitions."""

import streamflow as sf

topology = sf.Topology("clicks")
clicks = topology.topic("clicks", key=sf.String(), value=sf.Json(), partitions=3, external=True)
users = topology.topic("users", key=sf.String(), value=sf.Json(), partitions=6, external=True,
                       config={"cleanup.policy": "compact"})
enriched = topology.topic("clicks.enriched", key=sf.String(), value=sf.Json(), partitions=3)
profiles = topology.table(users)
(topology.processor("enrich").stream(clicks)
    .join(profiles, lambda click, user: {**click, "country": user["country"]})
    .to(enriched))
