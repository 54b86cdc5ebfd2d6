"""The DSL: pure descriptions of topologies, topics, processors and streams."""

from streamflow.dsl.stream import Stream
from streamflow.dsl.topology import Processor, Topic, Topology, TopologyError

__all__ = ["Processor", "Stream", "Topic", "Topology", "TopologyError"]
