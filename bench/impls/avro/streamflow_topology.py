"""Avro scenario as a streamflow topology: Avro serdes (Confluent wire format, registry).

Launched as ``python -m streamflow run bench.impls.avro.streamflow_topology`` with
STREAMFLOW_BOOTSTRAP_SERVERS, STREAMFLOW_SCHEMA_REGISTRY_URL, BENCH_INPUT, BENCH_OUTPUT and
BENCH_APP (unique per run, so the consumer group starts from the earliest offset).
BENCH_ENCRYPT (``bench/encryption.py``): comma-separated fields encrypted in the input and
the output (``encrypt=[...]``), with the key file in STREAMFLOW_ENCRYPTION_KEYS.
"""

import os

import streamflow as sf
from bench.impls.avro.schemas import PAYMENT, PAYMENT_CENTS

encrypt = [f for f in os.environ.get("BENCH_ENCRYPT", "").split(",") if f]
topology = sf.Topology(os.environ.get("BENCH_APP", "bench"))
src = topology.topic(os.environ["BENCH_INPUT"], key=sf.String(),
                     value=sf.Avro(PAYMENT, encrypt=encrypt), external=True)
out = topology.topic(os.environ["BENCH_OUTPUT"], key=sf.String(),
                     value=sf.Avro(PAYMENT_CENTS, encrypt=encrypt))

(
    topology.processor("avro")
    .stream(src)
    .map(lambda v: {**v, "amount_cents": int(v["amount"] * 100)})
    .to(out)
)
