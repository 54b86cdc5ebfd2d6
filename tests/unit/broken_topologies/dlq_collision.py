"""``enrich`` sends failed records to ``priced``, the topic ``route`` reads as data."""

import streamflow as sf

topology = sf.Topology("dlq")
orders = topology.topic("orders", key=sf.String(), value=sf.Json(), external=True)
priced = topology.topic("priced", key=sf.String(), value=sf.Json())
out = topology.topic("out", key=sf.String(), value=sf.Json())
enrich = topology.processor("enrich", on_error="dead_letter", dead_letter_topic="priced")
enrich.stream(orders).to(priced)
topology.processor("route").stream(priced).to(out)
