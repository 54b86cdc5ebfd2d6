"""One processor writes the topic it reads (a one-processor cycle), undeclared."""

import streamflow as sf

topology = sf.Topology("self")
work = topology.topic("work", key=sf.String(), value=sf.Json())
topology.processor("retry").stream(work).filter(lambda v: v["attempt"] < 3).to(work)
