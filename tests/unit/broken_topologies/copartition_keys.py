"""Equal partition counts, but the stream's keys are JSON and the table's are strings."""

import streamflow as sf

topology = sf.Topology("clicks")
clicks = topology.topic("clicks", key=sf.Json(), value=sf.Json(), partitions=4, external=True)
users = topology.topic("users", key=sf.String(), value=sf.Json(), partitions=4, external=True)
enriched = topology.topic("clicks.enriched", key=sf.String(), value=sf.Json(), partitions=4)
(topology.processor("enrich").stream(clicks)
    .join(topology.table(users), lambda click, user: {**click, **user})
    .to(enriched))
