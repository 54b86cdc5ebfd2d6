"""streamflow: Kafka-native stream processing for Python.

Topologies of named processors that consume Kafka topics, transform records (stateless,
stateful, windowed) and produce to other topics::

    import streamflow as sf

    topology = sf.Topology("shop")
    orders = topology.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    big = topology.topic("big-orders", key=sf.String(), value=sf.Json())
    topology.processor("big").stream(orders).filter(lambda o: o["total"] > 100).to(big)

Run it with ``streamflow run mymodule``; test it with ``streamflow.testing.TopologyTestDriver``.
"""

from streamflow.dsl import Processor, Stream, Topic, Topology, TopologyError
from streamflow.dsl.policies import ErrorAction, ErrorContext
from streamflow.dsl.validation import InvalidRecord
from streamflow.errors import StreamflowError
from streamflow.record import Record
from streamflow.serde import (
    Avro,
    Bytes,
    Double,
    Int,
    Json,
    Long,
    Serde,
    SerdeError,
    SerdeUnavailable,
    String,
)
from streamflow.serde.windowed import SessionWindowedSerde, TimeWindowedSerde
from streamflow.windows import (
    Hopping,
    JoinWindows,
    Session,
    Sliding,
    Tumbling,
    Windowed,
    hours,
    minutes,
    plain_key,
    seconds,
    with_window_in_value,
)

__version__ = "0.1.0"

__all__ = [
    "Avro",
    "Bytes",
    "Double",
    "ErrorAction",
    "ErrorContext",
    "Hopping",
    "Int",
    "InvalidRecord",
    "JoinWindows",
    "Json",
    "Long",
    "Processor",
    "Record",
    "Serde",
    "SerdeError",
    "SerdeUnavailable",
    "Session",
    "SessionWindowedSerde",
    "Sliding",
    "Stream",
    "StreamflowError",
    "String",
    "TimeWindowedSerde",
    "Topic",
    "Topology",
    "TopologyError",
    "Tumbling",
    "Windowed",
    "__version__",
    "hours",
    "minutes",
    "plain_key",
    "seconds",
    "with_window_in_value",
]
