"""Avro topics whose declared schemas do not fit what the registry holds (see test_check):

- ``payments`` (external): the declared reader adds ``currency`` without a default, so it
  cannot read the registered writer schema's data;
- ``alerts`` (written here): the declared schema changes ``score`` from double to string,
  which the subject's BACKWARD level rejects.
"""

import streamflow as sf
from streamflow.serde.avro import Avro

PAYMENT_V1 = {"type": "record", "name": "Payment", "namespace": "test",
              "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "double"}]}
PAYMENT_DECLARED = {**PAYMENT_V1, "fields": [*PAYMENT_V1["fields"],
                                             {"name": "currency", "type": "string"}]}
ALERT_V1 = {"type": "record", "name": "Alert", "namespace": "test",
            "fields": [{"name": "id", "type": "string"}, {"name": "score", "type": "double"}]}
ALERT_DECLARED = {**ALERT_V1, "fields": [{"name": "id", "type": "string"},
                                         {"name": "score", "type": "string"}]}

topology = sf.Topology("schemas")
payments = topology.topic("payments", key=sf.String(), value=Avro(PAYMENT_DECLARED),
                          external=True)
alerts = topology.topic("alerts", key=sf.String(), value=Avro(ALERT_DECLARED))
topology.processor("detect").stream(payments).map(
    lambda p: {"id": p["id"], "score": "high"}).to(alerts)
